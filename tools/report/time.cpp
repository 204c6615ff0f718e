#include "hopscope/report/time.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>

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

namespace {
/// "YYYY-MM-DDTHH:MM:SS." of the second `at` is in (20 bytes).
void write_second(std::chrono::sys_time<std::chrono::seconds> at, char* out) {
    using namespace std::chrono;
    const sys_days day = floor<days>(at);
    const year_month_day ymd{day};
    const hh_mm_ss<seconds> tod{at - day};
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
    *p = '.';
}
constexpr std::size_t kSecondSize = 20;  // up to and with the decimal point
}  // namespace

void write_rfc3339(Timestamp t, char* out) {
    // Calendar arithmetic and fixed-width digits rather than gmtime_r and snprintf: every event
    // carries a time, and those two (a time-zone lock and printf's machinery) showed in the
    // proxy's analysis thread (perf). The second's text is kept by the thread and made again
    // only when the second changes: events come in bursts within a second, and the calendar
    // arithmetic was ~290 instructions a time (callgrind, login-dense traffic).
    // RFC 3339 has four-digit years: a time outside 0000-9999 (a damaged capture's) is
    // clamped to the nearest end, which also keeps the arithmetic below from overflowing.
    constexpr std::int64_t kFirst = -62'167'219'200'000'000;  // 0000-01-01T00:00:00Z
    constexpr std::int64_t kLast = 253'402'300'799'999'999;   // 9999-12-31T23:59:59.999999Z
    constexpr std::int64_t kPerSecond = 1'000'000;
    const std::int64_t us = std::clamp(t.micros, kFirst, kLast);
    std::int64_t second = us / kPerSecond;  // rounded down, also before 1970
    std::int64_t micros = us % kPerSecond;
    if (micros < 0) {
        micros += kPerSecond;
        --second;
    }
    struct Kept {
        // No clamped time falls in this second: the first call makes the text.
        std::int64_t second = std::numeric_limits<std::int64_t>::min();
        char text[kSecondSize];
    };
    thread_local Kept kept;
    if (kept.second != second) {
        write_second(std::chrono::sys_time<std::chrono::seconds>{std::chrono::seconds{second}},
                     kept.text);
        kept.second = second;
    }
    std::memcpy(out, kept.text, kSecondSize);
    digits(out + kSecondSize, static_cast<unsigned>(micros), 6);
    out[kSecondSize + 6] = 'Z';
}

std::string to_rfc3339(Timestamp t) {
    std::string s(kRfc3339Size, '\0');
    write_rfc3339(t, s.data());
    return s;
}

}  // namespace hopscope::report
