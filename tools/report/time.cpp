#include "hopscope/report/time.hpp"

#include <cstdio>
#include <ctime>

namespace hopscope::report {

std::string to_rfc3339(Timestamp t) {
    std::int64_t secs = t.micros / 1'000'000;
    std::int64_t us = t.micros % 1'000'000;
    if (us < 0) {
        us += 1'000'000;
        secs -= 1;
    }
    std::time_t tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[96];  // generous: gcc cannot bound the int fields' widths
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<long long>(us));
    return buf;
}

}  // namespace hopscope::report
