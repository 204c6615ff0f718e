// How the outputs write a time: the decoder carries Timestamps (microseconds since the epoch),
// only the report layer turns them into text.
#pragma once

#include <string>

#include "hopscope/common/flow.hpp"

namespace hopscope::report {

/// RFC 3339 in UTC with microseconds, e.g. 2026-11-26T15:00:05.123456Z.
std::string to_rfc3339(Timestamp t);

}  // namespace hopscope::report
