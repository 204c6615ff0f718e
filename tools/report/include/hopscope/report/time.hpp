// How the outputs write a time: the decoder carries Timestamps (microseconds since the epoch),
// only the report layer turns them into text.
#pragma once

#include <cstddef>
#include <string>

#include "hopscope/common/flow.hpp"

namespace hopscope::report {

/// RFC 3339 in UTC with microseconds, e.g. 2026-11-26T15:00:05.123456Z.
std::string to_rfc3339(Timestamp t);

/// Its length: always kRfc3339Size characters.
inline constexpr std::size_t kRfc3339Size = 27;
/// The same text written to `out` (kRfc3339Size bytes, no terminator), for writers that keep
/// their own buffer: no allocation.
void write_rfc3339(Timestamp t, char* out);

}  // namespace hopscope::report
