#include "hopscope/report/time.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace hopscope::report {

namespace {
char* digits(char* p, unsigned v, int width) {
    for (int i = width - 1; i >= 0; --i) {
        p[i] = static_cast<char>('0' + v % 10);
        v /= 10;
    }
    return p + width;
}
}  // namespace

void write_rfc3339(Timestamp t, char* out) {
    // Calendar arithmetic and fixed-width digits rather than gmtime_r and snprintf: every event
    // carries a time, and those two (a time-zone lock and printf's machinery) showed in the
    // proxy's analysis thread (perf).
    // RFC 3339 has four-digit years: a time outside 0000-9999 (a damaged capture's) is
    // clamped to the nearest end, which also keeps the arithmetic below from overflowing.
    constexpr std::int64_t kFirst = -62'167'219'200'000'000;  // 0000-01-01T00:00:00Z
    constexpr std::int64_t kLast = 253'402'300'799'999'999;   // 9999-12-31T23:59:59.999999Z
    using namespace std::chrono;
    const sys_time<microseconds> at{microseconds{std::clamp(t.micros, kFirst, kLast)}};
    const sys_days day = floor<days>(at);
    const year_month_day ymd{day};
    const hh_mm_ss<microseconds> tod{at - day};
    const int y = static_cast<int>(ymd.year());
    char* p = digits(out, static_cast<unsigned>(y), 4);
    *p++ = '-';
    p = digits(p, static_cast<unsigned>(ymd.month()), 2);
    *p++ = '-';
    p = digits(p, static_cast<unsigned>(ymd.day()), 2);
    *p++ = 'T';
    p = digits(p, static_cast<unsigned>(tod.hours().count()), 2);
    *p++ = ':';
    p = digits(p, static_cast<unsigned>(tod.minutes().count()), 2);
    *p++ = ':';
    p = digits(p, static_cast<unsigned>(tod.seconds().count()), 2);
    *p++ = '.';
    p = digits(p, static_cast<unsigned>(tod.subseconds().count()), 6);
    *p = 'Z';
}

std::string to_rfc3339(Timestamp t) {
    std::string s(kRfc3339Size, '\0');
    write_rfc3339(t, s.data());
    return s;
}

}  // namespace hopscope::report
