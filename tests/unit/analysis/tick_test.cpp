// Time-driven verdicts: Analyzer::tick / Pipeline::tick run the verdicts that wait for a window
// once it has passed (not only at finish()), the answer does not depend on how often tick is
// called, repeats are quiet only within the de-duplication window, and idle UDP Kerberos flows
// are let go.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "../auth/fixtures.hpp"
#include "hopscope/analysis/analyzer.hpp"
#include "hopscope/pipeline/pipeline.hpp"
#include "synthetic_traffic.hpp"

namespace hopscope::analysis {
namespace {

using synthetic::kSec;
constexpr std::int64_t kT0 = synthetic::kEpoch;
constexpr std::int64_t kWindow = Analyzer::Options{}.chain_window_us;
const IpAddress kC = IpAddress::v4_from(0x0a4d0002);
const IpAddress kA = IpAddress::v4_from(0x0a4d0003);
const IpAddress kB = IpAddress::v4_from(0x0a4d0004);

struct Collect : FindingSink {
    std::vector<Finding> all;
    void on_finding(const Finding& f) override { all.push_back(f); }
    [[nodiscard]] std::size_t count(const std::string& rule) const {
        return static_cast<std::size_t>(std::count_if(
            all.begin(), all.end(), [&rule](const Finding& f) { return f.rule == rule; }));
    }
};

FlowKey tcp(const IpAddress& c, std::uint16_t cport, const IpAddress& s) {
    return FlowKey{Endpoint{c, cport}, Endpoint{s, 1433}, Transport::Tcp};
}

LoginEvent login(const FlowKey& flow, std::int64_t started, std::int64_t ended, AuthKind auth,
                 Outcome outcome) {
    LoginEvent l;
    l.flow = flow;
    l.started = Timestamp{started};
    l.ts = Timestamp{ended};
    l.auth = auth;
    l.outcome = outcome;
    l.encryption = EncryptionMode::LoginOnly;
    return l;
}

/// C's login to A is hidden by TLS and reported when its connection ends, after A's Kerberos
/// login to B that it caused: the chain can only be linked once the outbound login's chaining
/// window has passed.
void hidden_double_hop(Analyzer& a) {
    LoginEvent out = login(tcp(kA, 40000, kB), kT0 + 1 * kSec, kT0 + 1 * kSec + 50'000,
                           AuthKind::Kerberos, Outcome::Success);
    out.server_name = "sqlb.lab.test";
    out.user = "alice";
    out.domain = "LAB.TEST";
    a.add_login(out);
    a.connection_closed(out.flow, Timestamp{kT0 + 2 * kSec});
    LoginEvent in =
        login(tcp(kC, 50000, kA), kT0, kT0 + 3 * kSec, AuthKind::Unknown, Outcome::Incomplete);
    in.auth_detail = "strict tls";
    in.encryption = EncryptionMode::Strict;
    a.add_login(in);
    a.connection_closed(in.flow, Timestamp{kT0 + 3 * kSec});
}

TEST(AnalyzerTick, LateChainComesOutWhenItsWindowHasPassed) {
    Collect sink;
    Analyzer a(sink);
    hidden_double_hop(a);
    const std::int64_t due = kT0 + 1 * kSec + 50'000 + kWindow;
    a.tick(Timestamp{due - 1});
    EXPECT_EQ(sink.count("HS050"), 0u);
    EXPECT_TRUE(a.chain_summary().empty());
    a.tick(Timestamp{due});
    ASSERT_EQ(sink.count("HS050"), 1u) << "tick did not run the late link";
    EXPECT_NE(sink.all[0].summary.find("whose own login is not visible"), std::string::npos)
        << sink.all[0].summary;
    EXPECT_EQ(a.chain_summary().size(), 1u);
    a.finish();
    EXPECT_EQ(sink.all.size(), 1u) << "finish() repeated a verdict tick had given";
}

TEST(AnalyzerTick, FinishStillDecidesWhatNoTickHasReached) {
    Collect sink;
    Analyzer a(sink);
    hidden_double_hop(a);
    a.tick(Timestamp{kT0 + 60 * kSec});
    EXPECT_EQ(sink.all.size(), 0u);
    a.finish();
    EXPECT_EQ(sink.count("HS050"), 1u);
}

TEST(AnalyzerTick, NtlmToMiddleServerComesOutTwoWindowsAfterTheLogin) {
    Collect sink;
    Analyzer a(sink);
    // C2 logs in to A with NTLM and runs no linked-server query; later A proves to be a middle
    // server (C's Kerberos login to A, then A's login to B).
    const IpAddress c2 = IpAddress::v4_from(0x0a4d0012);
    LoginEvent ntlm =
        login(tcp(c2, 50001, kA), kT0, kT0 + 50'000, AuthKind::Ntlm, Outcome::Success);
    ntlm.user = "bob";
    ntlm.domain = "LAB";
    ntlm.server_name = "sqla.lab.test";
    a.add_login(ntlm);
    LoginEvent in = login(tcp(kC, 50002, kA), kT0 + 100 * kSec, kT0 + 100 * kSec + 50'000,
                          AuthKind::Kerberos, Outcome::Success);
    in.user = "alice";
    in.domain = "LAB.TEST";
    a.add_login(in);
    LoginEvent out = login(tcp(kA, 40001, kB), kT0 + 101 * kSec, kT0 + 101 * kSec + 50'000,
                           AuthKind::Kerberos, Outcome::Success);
    out.user = "alice";
    out.domain = "LAB.TEST";
    a.add_login(out);
    ASSERT_EQ(sink.count("HS050"), 1u);  // decided at once: both logins were seen

    a.tick(Timestamp{kT0 + 50'000 + 2 * kWindow - 1});
    EXPECT_EQ(sink.count("HS030"), 0u);
    a.tick(Timestamp{kT0 + 50'000 + 2 * kWindow});
    EXPECT_EQ(sink.count("HS030"), 1u) << "tick did not run the late verdicts";
    const std::size_t before = sink.all.size();
    a.finish();
    EXPECT_EQ(sink.all.size(), before);
}

TEST(AnalyzerTick, MissingEvidenceComesOutTwoWindowsAfterTheLogin) {
    Collect sink;
    Analyzer a(sink);
    LoginEvent l =
        login(tcp(kC, 50000, kA), kT0, kT0 + 2 * kSec, AuthKind::Unknown, Outcome::Incomplete);
    l.auth_detail = "strict tls";
    a.add_login(l);
    a.tick(Timestamp{kT0 + 2 * kSec + 2 * kWindow - 1});
    EXPECT_EQ(sink.count("HS090"), 0u);
    a.tick(Timestamp{kT0 + 2 * kSec + 2 * kWindow});
    EXPECT_EQ(sink.count("HS090"), 1u);
}

TEST(AnalyzerTick, RepeatsAreQuietOnlyWithinTheDedupWindow) {
    Collect sink;
    Analyzer a(sink);
    const std::int64_t dedup = Analyzer::Options{}.dedup_window_us;
    const std::int64_t minute = 60 * kSec;
    auto sql_login = [&a](std::int64_t at, std::uint16_t port) {
        LoginEvent l = login(tcp(kC, port, kA), at, at + 10'000, AuthKind::Sql, Outcome::Success);
        l.user = "app";
        l.encryption = EncryptionMode::None;
        a.add_login(l);
    };
    // Every 10 minutes for two hours: one verdict, the evidence keeps recurring.
    std::uint16_t port = 50000;
    std::int64_t t = kT0;
    for (; t <= kT0 + 120 * minute; t += 10 * minute)
        sql_login(t, port++);
    EXPECT_EQ(sink.count("HS042"), 1u);
    // Then a pause longer than the window: reported again.
    t += dedup + minute;
    sql_login(t, port++);
    EXPECT_EQ(sink.count("HS042"), 2u);
    // And a pause just within it: quiet.
    t += dedup - minute;
    sql_login(t, port++);
    EXPECT_EQ(sink.count("HS042"), 2u);
    a.tick(Timestamp{t + 10 * 60 * minute});
    EXPECT_EQ(a.stats().dedup_keys, 0u) << "old de-duplication keys were not dropped";
    EXPECT_EQ(a.stats().recent_logins, 0u);
}

/// Every finding as text, without the order they came in (with it: `sorted` false).
std::vector<std::string> signatures(const std::vector<Finding>& all, bool sorted = true) {
    std::vector<std::string> out;
    for (const auto& f : all) {
        std::string s = f.rule + " " + std::to_string(f.ts.micros) + " " + f.summary;
        for (const auto& h : f.hops)
            s += " | " + h;
        for (const auto& e : f.evidence)
            s += " | " + e.what + "@" + std::to_string(e.ts.micros);
        out.push_back(s + " | " + f.remedy + " | " + f.missing);
    }
    if (sorted) std::sort(out.begin(), out.end());
    return out;
}

TEST(AnalyzerTick, VerdictsDoNotDependOnHowOftenTickIsCalled) {
    // Short windows, so that a few simulated hours hold many late verdicts and expired
    // de-duplication keys.
    Analyzer::Options o;
    o.chain_window_us = 60 * kSec;
    o.kerberos_window_us = 60 * kSec;
    o.dedup_window_us = 120 * kSec;
    constexpr int kHours = 3;
    constexpr std::uint64_t kLogins = 3000;
    const std::vector<std::int64_t> periods = {1 * kSec, 97 * kSec, 0};  // 0: never
    std::vector<std::vector<std::string>> results;
    for (const std::int64_t period : periods) {
        Collect sink;
        Analyzer a(sink, o);
        synthetic::Trace trace(kLogins, kHours);
        std::int64_t next_tick = synthetic::kEpoch;
        for (std::int64_t t = synthetic::kEpoch; t <= trace.end(); t += kSec) {
            trace.run_until(t, [&a](const synthetic::Fact& f) { synthetic::feed(a, f); });
            if (period != 0 && t >= next_tick) {
                a.tick(Timestamp{t});
                next_tick = t + period;
            }
        }
        if (period == kSec) {
            // Ticked every second: the late verdicts came out during the run.
            EXPECT_GT(sink.count("HS050"), 0u);
            EXPECT_GT(sink.count("HS030"), 0u);
        }
        a.finish();
        results.push_back(signatures(sink.all));
    }
    ASSERT_FALSE(results[0].empty());
    EXPECT_EQ(results[0], results[1]) << "ticks every 97 s changed the verdicts";
    EXPECT_EQ(results[0], results[2]) << "no ticks at all changed the verdicts";
}

TEST(AnalyzerTick, FinishGivesWhatTheClockPastEveryWindowGives) {
    // finish() forgets what falls out of the windows while its late verdicts run by counting it
    // (the lookups skip it) instead of destroying it; the clock moved past every window forgets
    // by destroying. The same verdicts, in the same order, either way, with either window the
    // longer; and after finish() nothing is kept and the analyzer takes more.
    struct Windows {
        std::int64_t chain, kerberos;
    };
    for (const Windows w : {Windows{60, 60}, Windows{60, 150}, Windows{150, 60}}) {
        Analyzer::Options o;
        o.chain_window_us = w.chain * kSec;
        o.kerberos_window_us = w.kerberos * kSec;
        o.dedup_window_us = 120 * kSec;
        std::vector<std::vector<std::string>> results;
        for (const bool by_finish : {true, false}) {
            Collect sink;
            Analyzer a(sink, o);
            synthetic::Trace trace(3000, 2);
            trace.run_until(trace.end() + 1,
                            [&a](const synthetic::Fact& f) { synthetic::feed(a, f); });
            const std::size_t during = sink.all.size();
            if (!by_finish) a.tick(Timestamp{trace.end() + 24 * 3600 * kSec});
            a.finish();
            if (by_finish) {
                EXPECT_GT(sink.all.size(), during) << "nothing was left to finish()";
            }
            const Analyzer::Stats s = a.stats();
            EXPECT_EQ(s.recent_logins, 0u);
            EXPECT_EQ(s.kdc_exchanges, 0u);
            EXPECT_EQ(s.pending_logins, 0u);
            results.push_back(signatures(sink.all, false));
            // It goes on: a login and a KDC exchange after the end are kept, then forgotten.
            LoginEvent l;
            l.flow = FlowKey{Endpoint{IpAddress::v4_from(0x0a000001), 50000},
                             Endpoint{IpAddress::v4_from(0x0a000002), 1433}, Transport::Tcp};
            l.ts = l.started = Timestamp{trace.end() + 48 * 3600 * kSec};
            l.auth = AuthKind::Kerberos;
            l.outcome = Outcome::Success;
            KerberosEvent k;
            k.flow = FlowKey{l.flow.client, Endpoint{IpAddress::v4_from(0x0a000003), 88},
                             Transport::Udp};
            k.ts = l.ts;
            k.request = "TGS-REQ";
            k.reply = "TGS-REP";
            a.add_kerberos(std::move(k));
            a.add_login(std::move(l));
            EXPECT_EQ(a.stats().recent_logins, 1u);
            EXPECT_EQ(a.stats().kdc_exchanges, 1u);
            a.finish();
            EXPECT_EQ(a.stats().recent_logins, 0u);
            EXPECT_EQ(a.stats().kdc_exchanges, 0u);
        }
        ASSERT_FALSE(results[0].empty());
        EXPECT_EQ(results[0], results[1])
            << "windows " << w.chain << " s and " << w.kerberos << " s";
    }
}

TEST(AnalyzerTick, CapsHoldWhateverTheTraffic) {
    Analyzer::Options o;
    o.max_recent = 300;
    o.max_dedup_keys = 100;
    o.max_summary_rows = 40;
    o.max_hosts = 30;
    Collect sink;
    Analyzer a(sink, o);
    synthetic::Trace trace(6'000, 1);
    for (std::int64_t t = synthetic::kEpoch; t <= trace.end(); t += kSec) {
        trace.run_until(t, [&a](const synthetic::Fact& f) { synthetic::feed(a, f); });
        a.tick(Timestamp{t});
        if ((t - synthetic::kEpoch) % (10 * kSec) != 0) continue;
        const Analyzer::Stats s = a.stats();
        ASSERT_LE(s.recent_logins, o.max_recent + 1);
        ASSERT_LE(s.kdc_exchanges, o.max_recent + 1);
        ASSERT_LE(s.dedup_keys, o.max_dedup_keys);
        ASSERT_LE(s.hop_rows, o.max_summary_rows);
        ASSERT_LE(s.chain_rows, o.max_summary_rows);
        ASSERT_LE(s.named_hosts, o.max_hosts);
        ASSERT_LE(s.middle_servers, o.max_hosts);
    }
    a.finish();
    EXPECT_GT(a.stats().summary_overflow, 0u);
}

// ---- Pipeline ------------------------------------------------------------------------------

struct KerberosSink : pipeline::EventSink {
    std::vector<KerberosEvent> kdc;
    void on_kerberos(const KerberosEvent& k) override { kdc.push_back(k); }
};

/// The first KDC message of `msg_type` sent over TCP in the public captures, with its 4-byte
/// record mark (empty if none).
std::vector<std::uint8_t> kdc_tcp_record(const char* msg_type) {
    for (const auto& r : auth::test::load_records("krb_tshark.txt"))
        if (r.get("transport") == "tcp" && r.get("msg_type") == msg_type)
            return {r.bytes.begin(), r.bytes.end()};
    return {};
}
const IpAddress kKdcClient = IpAddress::v4_from(0x0a090002);
const IpAddress kKdc = IpAddress::v4_from(0x0a090001);
FlowKey kdc_udp(std::uint16_t port) {
    return FlowKey{Endpoint{kKdcClient, port}, Endpoint{kKdc, 88}, Transport::Udp};
}

/// A pipeline and an AS-REQ as sent over TCP, to send in UDP datagrams (after its 4-byte record
/// mark).
class PipelineTick : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_GT(record_.size(), 4u);
        as_req = Bytes(record_).subspan(4);
    }
    std::vector<std::uint8_t> record_ = kdc_tcp_record("10");
    Bytes as_req;
    KerberosSink sink;
    pipeline::Pipeline p{sink};
};

TEST_F(PipelineTick, IdleUdpKerberosFlowsAreLetGo) {
    // AS-REQs that are never answered, each from its own port as clients do.
    for (std::uint16_t i = 0; i < 100; ++i) {
        p.on_datagram(kdc_udp(static_cast<std::uint16_t>(40000 + i)), Direction::ClientToServer,
                      Timestamp{kT0 + i * 100'000}, as_req, Evidence{i + 1u, 0});
    }
    EXPECT_EQ(p.open_flows(), 100u);
    EXPECT_TRUE(sink.kdc.empty());
    p.tick(Timestamp{kT0 + 30 * kSec});
    EXPECT_EQ(p.open_flows(), 100u);
    p.tick(Timestamp{kT0 + 10 * kSec + pipeline::Pipeline::Options{}.kdc_udp_idle_us + 1});
    EXPECT_EQ(p.open_flows(), 0u);
    ASSERT_EQ(sink.kdc.size(), 100u) << "unanswered requests of expired flows not reported";
    EXPECT_EQ(sink.kdc[0].request, "AS-REQ");
    EXPECT_EQ(sink.kdc[0].reply, "");
    p.finish(Timestamp{kT0 + 200 * kSec});
    EXPECT_EQ(sink.kdc.size(), 100u);
}

TEST_F(PipelineTick, AUdpKerberosFlowInUseIsKeptAndTheIdleOnesBehindItGo) {
    // Flows are let go oldest-used first: a flow that sees a datagram again becomes the most
    // recently used, so the flows idle behind it go at their time, and it at its own.
    const auto udp = kdc_udp;
    const std::int64_t idle = pipeline::Pipeline::Options{}.kdc_udp_idle_us;
    // A first, then B and C: A is the oldest-used until it is used again at 50 s.
    p.on_datagram(udp(40001), Direction::ClientToServer, Timestamp{kT0}, as_req, Evidence{1, 0});
    p.on_datagram(udp(40002), Direction::ClientToServer, Timestamp{kT0 + 1}, as_req,
                  Evidence{2, 0});
    p.on_datagram(udp(40003), Direction::ClientToServer, Timestamp{kT0 + 2}, as_req,
                  Evidence{3, 0});
    p.on_datagram(udp(40001), Direction::ClientToServer, Timestamp{kT0 + 50 * kSec}, as_req,
                  Evidence{4, 0});
    p.tick(Timestamp{kT0 + 2 + idle + 1});  // B and C idle, A not
    EXPECT_EQ(p.open_flows(), 1u) << "the flows idle behind the one used again were kept";
    ASSERT_EQ(sink.kdc.size(), 2u);
    EXPECT_EQ(sink.kdc[0].flow, udp(40002));
    EXPECT_EQ(sink.kdc[1].flow, udp(40003));
    p.tick(Timestamp{kT0 + 50 * kSec + idle});  // A's last datagram exactly idle_us ago: kept
    EXPECT_EQ(p.open_flows(), 1u);
    p.tick(Timestamp{kT0 + 50 * kSec + idle + 1});
    EXPECT_EQ(p.open_flows(), 0u);
    ASSERT_EQ(sink.kdc.size(), 4u);  // A's two requests, oldest first
    EXPECT_EQ(sink.kdc[2].flow, udp(40001));
    EXPECT_EQ(sink.kdc[2].request_at.frame, 1u);
    EXPECT_EQ(sink.kdc[3].request_at.frame, 4u);
}

TEST_F(PipelineTick, AnAnsweredUdpKerberosExchangeGoesWithItsAnswer) {
    // A UDP flow holds only its unanswered requests: answered, it goes at once. A datagram on
    // the same ports later starts it again and is reported as it was while the flow was kept:
    // a second answer alone as an answer without a request, a new request paired with its own
    // answer.
    const std::vector<std::uint8_t> as_rep = kdc_tcp_record("11");
    ASSERT_GT(as_rep.size(), 4u);
    const Bytes rep = Bytes(as_rep).subspan(4);
    const FlowKey flow = kdc_udp(40200);
    p.on_datagram(flow, Direction::ClientToServer, Timestamp{kT0}, as_req, Evidence{1, 0});
    EXPECT_EQ(p.open_flows(), 1u);
    p.on_datagram(flow, Direction::ServerToClient, Timestamp{kT0 + 500}, rep, Evidence{2, 0});
    EXPECT_EQ(p.open_flows(), 0u) << "the answered exchange was kept";
    ASSERT_EQ(sink.kdc.size(), 1u);
    EXPECT_EQ(sink.kdc[0].request, "AS-REQ");
    EXPECT_EQ(sink.kdc[0].reply, "AS-REP");
    EXPECT_EQ(sink.kdc[0].flow, flow);
    // The KDC answers twice (a retransmitted request): the second answer alone.
    p.on_datagram(flow, Direction::ServerToClient, Timestamp{kT0 + 900}, rep, Evidence{3, 0});
    EXPECT_EQ(p.open_flows(), 0u);
    ASSERT_EQ(sink.kdc.size(), 2u);
    EXPECT_EQ(sink.kdc[1].request, "");
    EXPECT_EQ(sink.kdc[1].reply, "AS-REP");
    EXPECT_EQ(sink.kdc[1].flow, flow) << "the client is still the side that asked";
    EXPECT_EQ(sink.kdc[1].reply_at.frame, 3u);
    // The client asks again from the same port: a new exchange, paired with its answer.
    p.on_datagram(flow, Direction::ClientToServer, Timestamp{kT0 + kSec}, as_req, Evidence{4, 0});
    p.on_datagram(flow, Direction::ServerToClient, Timestamp{kT0 + kSec + 500}, rep,
                  Evidence{5, 0});
    ASSERT_EQ(sink.kdc.size(), 3u);
    EXPECT_EQ(sink.kdc[2].request_at.frame, 4u);
    EXPECT_EQ(sink.kdc[2].reply_at.frame, 5u);
    EXPECT_EQ(p.open_flows(), 0u);
    EXPECT_EQ(p.counters().kerberos_messages, 5u);
    p.finish(Timestamp{kT0 + 2 * kSec});
    EXPECT_EQ(sink.kdc.size(), 3u);
}

TEST(PipelineFinish, UnansweredKdcRequestsAreReportedAtTheEndInFlowOrder) {
    // At the end of input, each request still waiting for its answer is reported (as an
    // exchange without a reply), in FlowKey order whatever order the flows came in; answered
    // flows only go. Requests and answers: an AS-REQ and an AS-REP as sent over TCP.
    const std::vector<std::uint8_t> as_req = kdc_tcp_record("10"), as_rep = kdc_tcp_record("11");
    ASSERT_FALSE(as_req.empty());
    ASSERT_FALSE(as_rep.empty());
    const Bytes req_udp = Bytes(as_req).subspan(4), rep_udp = Bytes(as_rep).subspan(4);
    KerberosSink sink;
    pipeline::Pipeline p(sink);
    std::uint64_t frame = 0;
    // UDP exchanges from ports in descending order; every other one answered.
    for (std::uint16_t i = 0; i < 20; ++i) {
        const FlowKey flow = kdc_udp(static_cast<std::uint16_t>(40100 - i));
        p.on_datagram(flow, Direction::ClientToServer, Timestamp{kT0 + i * 1000}, req_udp,
                      Evidence{++frame, 0});
        if (i % 2 == 0) {
            p.on_datagram(flow, Direction::ServerToClient, Timestamp{kT0 + i * 1000 + 500}, rep_udp,
                          Evidence{++frame, 0});
        }
    }
    // And a TCP connection to the KDC whose request is never answered, from a low port.
    const FlowKey tcp_flow{Endpoint{kKdcClient, 30000}, Endpoint{kKdc, 88}, Transport::Tcp};
    p.on_open(tcp_flow, Timestamp{kT0 + 30'000}, true);
    p.on_data(tcp_flow, Direction::ClientToServer, Timestamp{kT0 + 30'000}, Bytes(as_req),
              Evidence{++frame, 0});
    ASSERT_EQ(sink.kdc.size(), 10u);  // the answered ones, as they were answered
    EXPECT_EQ(p.open_flows(), 11u) << "an answered UDP exchange is kept after its answer";
    p.finish(Timestamp{kT0 + kSec});  // well before the UDP flows' idle time
    ASSERT_EQ(sink.kdc.size(), 21u) << "unanswered requests not reported at the end";
    std::vector<FlowKey> last;
    for (std::size_t i = 10; i < sink.kdc.size(); ++i) {
        EXPECT_EQ(sink.kdc[i].request, "AS-REQ");
        EXPECT_EQ(sink.kdc[i].reply, "") << i;
        last.push_back(sink.kdc[i].flow);
    }
    EXPECT_TRUE(std::is_sorted(last.begin(), last.end())) << "not in FlowKey order";
    EXPECT_EQ(last.front(), tcp_flow);
    EXPECT_EQ(p.open_flows(), 0u);
}

}  // namespace
}  // namespace hopscope::analysis
