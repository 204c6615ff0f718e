// How `hopscope proxy` saw the traffic (analysis::ProxyView), as text in its recording's section
// header, so that `hopscope analyze` of the recording applies the proxy's own rules (HS060,
// HS061, HS062) and gives the proxy's events.
//
//   hopscope proxy view 1; tls-terminate=yes; explicit=10.77.0.3/1433,::1/1433; names=sqlpx,...
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "hopscope/analysis/analyzer.hpp"

namespace hopscope::cli {

/// The comment for RecorderOptions::section_comment. Names that could not be read back (with
/// separators or spaces in them) are left out.
std::string view_comment(const analysis::Analyzer::ProxyView& v);

/// The view a comment describes (active), or nullopt when it is not one of ours or is damaged.
std::optional<analysis::Analyzer::ProxyView> view_from_comment(std::string_view text);

}  // namespace hopscope::cli
