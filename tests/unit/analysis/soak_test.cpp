// Soak: a simulated day of logins (NTLM, Kerberos with its KDC exchanges, SQL auth, NTLM double
// hops refused with relayed 18456 errors on distinct statements, healthy and hidden Kerberos double
// hops, NTLM to middle servers, missing SPNs) through the Analyzer, with a tick every simulated
// second. What the analyzer holds must stay bounded by the rate and the time windows, never by the
// number of logins seen so far: the same at the 24th hour as at the 2nd, which carries the same
// load.
//
// HOPSCOPE_SOAK_LOGINS sets the number of logins a day: 15 000 by default (a few seconds in a
// Debug build with the sanitizers); HOPSCOPE_SOAK_DAYS the number of days (1). docs/performance.md
// has the figures of a million a day in a Release build. The RSS printed is only meaningful
// without ASan, whose quarantine keeps freed memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "hopscope/analysis/analyzer.hpp"
#include "synthetic_traffic.hpp"

namespace hopscope::analysis {
namespace {

using synthetic::kHour;
using synthetic::kSec;

struct Count : FindingSink {
    std::map<std::string, std::uint64_t> by_rule;
    std::uint64_t total = 0;
    void on_finding(const Finding& f) override {
        ++by_rule[f.rule];
        ++total;
    }
};

std::uint64_t from_env(const char* name, std::uint64_t fallback) {
    const char* env = std::getenv(name);
    if (env == nullptr || *env == '\0') return fallback;
    return std::strtoull(env, nullptr, 10);
}

/// Resident set size now and at its peak, in KiB (0 when /proc is not there).
std::pair<long, long> rss_kib() {
    std::ifstream in("/proc/self/status");
    std::string key;
    long now = 0, peak = 0;
    while (in >> key) {
        if (key == "VmRSS:") in >> now;
        if (key == "VmHWM:") in >> peak;
    }
    return {now, peak};
}

void print(const char* when, const Analyzer::Stats& s) {
    const auto [rss, peak] = rss_kib();
    std::printf(
        "soak %-8s logins %6zu  kdc %6zu  index %6zu  pending %6zu  dedup %6zu  names %4zu/%4zu  "
        "middle %3zu  hops %5zu  chains %5zu (over %llu)  rss %ld KiB (peak %ld)\n",
        when, s.recent_logins, s.kdc_exchanges, s.index_entries, s.pending_logins, s.dedup_keys,
        s.named_hosts, s.host_names, s.middle_servers, s.hop_rows, s.chain_rows,
        static_cast<unsigned long long>(s.summary_overflow), rss, peak);
}

/// `a` and `b` within a factor of two of each other, give or take `slack`.
::testing::AssertionResult same_order(const char* what, std::size_t a, std::size_t b,
                                      std::size_t slack) {
    if (a <= 2 * b + slack && b <= 2 * a + slack) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << what << ": " << a << " at hour 2 but " << b << " in the last hour";
}

TEST(AnalyzerSoak, MemoryStaysFlatOverADay) {
    const std::uint64_t n = from_env("HOPSCOPE_SOAK_LOGINS", 15'000);  // per day
    const int days =
        static_cast<int>(std::max<std::uint64_t>(1, from_env("HOPSCOPE_SOAK_DAYS", 1)));
    Count sink;
    Analyzer::Options o;
    Analyzer a(sink, o);
    synthetic::Trace trace(n * static_cast<std::uint64_t>(days), 24 * days);

    // Bounds from the busiest hour's rate and the windows: what a window can hold at that rate,
    // twice over. They grow with the rate, not with the number of logins so far.
    const double per_sec = static_cast<double>(trace.peak_hour_logins()) / 3600.0;
    const double horizon_s =
        2.0 * static_cast<double>(std::max(o.chain_window_us, o.kerberos_window_us)) / 1e6;
    const auto bound = [per_sec](double seconds, double per_login) {
        return static_cast<std::size_t>(2.0 * per_sec * seconds * per_login) + 64;
    };
    const std::size_t max_logins = bound(horizon_s, 1.0);
    const std::size_t max_kdc = bound(horizon_s, 1.5);        // at most 1.5 exchanges per login
    const std::size_t max_index = 3 * max_logins + 3 * 4096;  // three indexes, swept every 4096
    // Keys alive: those of the evidence of the last dedup window and horizon (at most a few per
    // login), plus one per pair of hosts that keeps recurring.
    const std::size_t max_dedup =
        bound(static_cast<double>(o.dedup_window_us) / 1e6 + horizon_s, 2.0) +
        synthetic::Network::kClients * 2;
    // Aggregates: bounded by the network, whatever the run length.
    const std::size_t hosts = synthetic::Network::kPlain + synthetic::Network::kMiddle * 2 +
                              synthetic::Network::kHidden * 2;

    Analyzer::Stats hour2{}, peak{};
    std::uint64_t findings_before_finish = 0;
    std::map<std::string, std::uint64_t> late_before_finish;
    for (std::int64_t t = synthetic::kEpoch; t <= trace.end(); t += kSec) {
        trace.run_until(t, [&a](const synthetic::Fact& f) { synthetic::feed(a, f); });
        a.tick(Timestamp{t});
        if ((t - synthetic::kEpoch) % (10 * 60 * kSec) != 0) continue;
        const Analyzer::Stats s = a.stats();
        peak.recent_logins = std::max(peak.recent_logins, s.recent_logins);
        peak.kdc_exchanges = std::max(peak.kdc_exchanges, s.kdc_exchanges);
        peak.index_entries = std::max(peak.index_entries, s.index_entries);
        peak.pending_logins = std::max(peak.pending_logins, s.pending_logins);
        peak.dedup_keys = std::max(peak.dedup_keys, s.dedup_keys);
        ASSERT_LE(s.recent_logins, max_logins);
        ASSERT_LE(s.kdc_exchanges, max_kdc);
        ASSERT_LE(s.index_entries, max_index);
        ASSERT_LE(s.pending_logins, s.recent_logins);
        ASSERT_LE(s.dedup_keys, max_dedup);
        ASSERT_LE(s.named_hosts, hosts);
        ASSERT_LE(s.middle_servers, synthetic::Network::kMiddle + synthetic::Network::kHidden);
        // A client has at most six rows (three auths to its plain server, two to its middle
        // server, one to a hidden one) and five chains (either first hop with either second hop
        // of its middle server, as concurrent sessions get linked too, and a hidden one).
        ASSERT_LE(s.hop_rows, 6 * synthetic::Network::kClients + 16);
        ASSERT_LE(s.chain_rows, 5 * synthetic::Network::kClients + 16);
        if (t - synthetic::kEpoch == 2 * kHour) {
            hour2 = s;
            print("hour 2", s);
        }
        if ((t - synthetic::kEpoch) % (24 * kHour) == 0 && t > synthetic::kEpoch && t < trace.end())
            print(("hour " + std::to_string((t - synthetic::kEpoch) / kHour)).c_str(), s);
    }
    const Analyzer::Stats hour24 = a.stats();  // the last hour of the last day
    print(("hour " + std::to_string(24 * days)).c_str(), hour24);
    std::printf("soak peak     logins %6zu  kdc %6zu  index %6zu  pending %6zu  dedup %6zu\n",
                peak.recent_logins, peak.kdc_exchanges, peak.index_entries, peak.pending_logins,
                peak.dedup_keys);
    findings_before_finish = sink.total;
    late_before_finish = sink.by_rule;
    a.finish();

    EXPECT_TRUE(same_order("recent logins", hour2.recent_logins, hour24.recent_logins, 64));
    EXPECT_TRUE(same_order("KDC exchanges", hour2.kdc_exchanges, hour24.kdc_exchanges, 64));
    EXPECT_TRUE(same_order("index entries", hour2.index_entries, hour24.index_entries, 4096));
    EXPECT_TRUE(same_order("pending logins", hour2.pending_logins, hour24.pending_logins, 64));
    EXPECT_TRUE(same_order("dedup keys", hour2.dedup_keys, hour24.dedup_keys, 64));

    std::printf(
        "soak: %llu logins, %llu KDC exchanges, %llu relayed errors; %llu findings (%llu "
        "before finish):",
        static_cast<unsigned long long>(trace.logins()),
        static_cast<unsigned long long>(trace.kdc_exchanges()),
        static_cast<unsigned long long>(trace.relayed_errors()),
        static_cast<unsigned long long>(sink.total),
        static_cast<unsigned long long>(findings_before_finish));
    for (const auto& [rule, count] : sink.by_rule)
        std::printf(" %s %llu", rule.c_str(), static_cast<unsigned long long>(count));
    std::printf("\n");

    // Each hour plans whole actions (one or two logins): a login over per hour at most.
    EXPECT_LE(trace.logins(), n * static_cast<std::uint64_t>(days) + 24 * days);
    EXPECT_GE(trace.logins(), n * static_cast<std::uint64_t>(days));
    // Every relayed 18456 on its own statement is a verdict of its own (its 7303 twin is not).
    EXPECT_EQ(sink.by_rule["HS003"], trace.relayed_errors());
    // The late verdicts came out during the run, not only at the end.
    EXPECT_GT(late_before_finish["HS050"], 0u);
    EXPECT_GT(late_before_finish["HS030"], 0u);
    EXPECT_LT(sink.total - findings_before_finish, findings_before_finish / 10 + 100);
}

}  // namespace
}  // namespace hopscope::analysis
