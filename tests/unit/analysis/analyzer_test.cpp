// Rule tests on facts shaped like the lab scenarios (tools/lab): C=10.77.0.2, A=10.77.0.3 (sqla),
// B=10.77.0.4 (sqlb), KDC=10.77.0.1. Golden tests on the lab captures themselves live with the
// capture pipeline; these pin each rule's trigger and its absence on healthy chains.
#include "hopscope/analysis/analyzer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "kdc_option_bits.hpp"

namespace hopscope::analysis {
namespace {

constexpr std::int64_t kSec = 1'000'000;

FlowKey tcp(std::uint32_t c, std::uint16_t cport, std::uint32_t s, std::uint16_t sport) {
    return FlowKey{Endpoint{IpAddress::v4_from(c), cport}, Endpoint{IpAddress::v4_from(s), sport},
                   Transport::Tcp};
}
constexpr std::uint32_t kC = 0x0a4d0002, kA = 0x0a4d0003, kB = 0x0a4d0004, kKdc = 0x0a4d0001;

struct Collect : FindingSink {
    std::vector<Finding> all;
    void on_finding(const Finding& f) override { all.push_back(f); }
    [[nodiscard]] std::vector<std::string> rules() const {
        std::vector<std::string> r;
        for (const auto& f : all)
            r.push_back(f.rule);
        std::sort(r.begin(), r.end());
        return r;
    }
    [[nodiscard]] const Finding* get(const std::string& rule) const {
        for (const auto& f : all)
            if (f.rule == rule) return &f;
        return nullptr;
    }
};

LoginEvent login(FlowKey flow, std::int64_t t, AuthKind auth, Outcome outcome) {
    LoginEvent l;
    l.flow = flow;
    l.started = Timestamp{t * kSec};
    l.ts = Timestamp{t * kSec + 1000};
    l.first_at.frame = static_cast<std::uint64_t>(t) * 10;
    l.last_at = Position{l.first_at.frame + 3, 200, Direction::ServerToClient};
    l.auth = auth;
    l.outcome = outcome;
    l.encryption = EncryptionMode::None;
    return l;
}

LoginEvent c_to_a(std::int64_t t, AuthKind auth) {
    LoginEvent l = login(tcp(kC, 50000, kA, 1433), t, auth, Outcome::Success);
    l.server_name = "sqla.lab.test";
    l.user = "alice";
    l.domain = auth == AuthKind::Ntlm ? "LAB" : "LAB.TEST";
    return l;
}

LoginEvent anonymous_a_to_b(std::int64_t t) {
    LoginEvent l = login(tcp(kA, 40000, kB, 1433), t, AuthKind::Ntlm, Outcome::Failure);
    l.server_name = "sqlb.lab.test";
    l.anonymous = true;
    l.ntlm_version = 2;
    l.error =
        ServerError{18456, 1, 14, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.", "SQLB"};
    return l;
}

KerberosEvent tgs(std::int64_t t, const std::string& sname, std::vector<std::string> opts,
                  std::int32_t err = 0) {
    KerberosEvent k;
    k.flow = tcp(kC, 51000, kKdc, 88);
    k.ts = Timestamp{t * kSec};
    k.request_at.frame = static_cast<std::uint64_t>(t);
    k.reply_at = Position{k.request_at.frame + 1, 0, Direction::ServerToClient};
    k.request = "TGS-REQ";
    k.reply = err ? "KRB-ERROR" : "TGS-REP";
    k.sname = sname;
    k.realm = "LAB.TEST";
    k.client = "alice@LAB.TEST";
    k.kdc_options = test::kdc_option_bits(opts);
    k.error_code = err;
    return k;
}

TEST(Analyzer, NtlmFirstHopIsTheCauseOfTheAnonymousSecondHop) {
    Collect out;
    Analyzer a(out);
    LoginEvent in = c_to_a(1, AuthKind::Ntlm);
    in.ntlm_version = 2;
    a.add_login(in);
    a.add_login(anonymous_a_to_b(3));
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS001", "HS010"}));
    const Finding* f = out.get("HS010");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->severity, Severity::Error);
    EXPECT_NE(f->summary.find("NTLM"), std::string::npos);
    EXPECT_NE(f->remedy.find("setspn -S MSSQLSvc/sqla.lab.test:1433 LAB\\"), std::string::npos)
        << f->remedy;
    ASSERT_EQ(f->hops.size(), 2u);
    EXPECT_EQ(f->display_filter, "frame.number in {13, 33}");
    auto chains = a.chain_summary();
    ASSERT_EQ(chains.size(), 1u);
    EXPECT_EQ(chains[0].first_auth, AuthKind::Ntlm);
    EXPECT_TRUE(chains[0].second_anonymous);
}

TEST(Analyzer, HopRowsAreOnePerClientServerAuthOutcomeAndAnonymityInTheirTextsOrder) {
    // hop_summary(): a row per client, server address and port, authentication, outcome and
    // anonymity, sorted by its key as text ("10.77.0.10>..." before "10.77.0.2>...").
    Collect out;
    Analyzer a(out);
    auto hop = [](std::uint32_t client, std::uint16_t port, AuthKind auth, Outcome outcome,
                  bool anonymous, std::int64_t t) {
        LoginEvent l = login(tcp(client, 50000, kA, port), t, auth, outcome);
        l.user = "u" + std::to_string(t);
        l.domain = "LAB";
        l.anonymous = anonymous;
        return l;
    };
    const std::uint32_t kC10 = 0x0a4d000a;  // 10.77.0.10
    a.add_login(hop(kC, 1433, AuthKind::Kerberos, Outcome::Success, false, 1));
    a.add_login(hop(kC, 1434, AuthKind::Kerberos, Outcome::Success, false, 2));
    a.add_login(hop(kC, 1433, AuthKind::Ntlm, Outcome::Success, false, 3));
    a.add_login(hop(kC, 1433, AuthKind::Kerberos, Outcome::Success, true, 4));
    a.add_login(hop(kC, 1433, AuthKind::Kerberos, Outcome::Failure, false, 5));
    a.add_login(hop(kC10, 1433, AuthKind::Kerberos, Outcome::Success, false, 6));
    a.add_login(hop(kC, 1433, AuthKind::Kerberos, Outcome::Success, false, 7));
    const std::vector<HopSummary> rows = a.hop_summary();
    std::vector<std::string> got;
    for (const HopSummary& h : rows)
        got.push_back(to_string(h.client) + ">" + to_string(h.server) + "/" + to_string(h.auth) +
                      "/" + to_string(h.outcome) + (h.anonymous ? "/anon" : "") + " " + h.user +
                      " x" + std::to_string(h.count));
    EXPECT_EQ(got,
              (std::vector<std::string>{
                  "10.77.0.10>10.77.0.3:1433/kerberos/success u6@LAB x1",
                  "10.77.0.2>10.77.0.3:1433/kerberos/failure u5@LAB x1",
                  "10.77.0.2>10.77.0.3:1433/kerberos/success u7@LAB x2",
                  "10.77.0.2>10.77.0.3:1433/kerberos/success/anon NT AUTHORITY\\ANONYMOUS LOGON x1",
                  "10.77.0.2>10.77.0.3:1433/ntlm/success LAB\\u3 x1",
                  "10.77.0.2>10.77.0.3:1434/kerberos/success u2@LAB x1",
              }));
    EXPECT_EQ(a.stats().hop_rows, 6u);
}

TEST(Analyzer, BusyMiddleServerChainsTheConnectionOpenAtTheOutboundStart) {
    // Thousands of short connections to A from other clients, each closed before the outbound
    // login starts, one still open from C, and one that opened after it: the outbound login
    // belongs to C's.
    Collect out;
    Analyzer a(out);
    LoginEvent in = c_to_a(1, AuthKind::Ntlm);
    in.ntlm_version = 2;
    a.add_login(in);
    for (std::uint32_t i = 0; i < 5000; ++i) {
        LoginEvent other =
            login(tcp(0x0a4e0000 + i, 50000, kA, 1433), 2, AuthKind::Ntlm, Outcome::Success);
        other.started = Timestamp{2 * kSec + i * 100};
        other.ts = Timestamp{2 * kSec + i * 100 + 50};
        other.user = "other" + std::to_string(i);
        a.add_login(other);
        a.connection_closed(other.flow, Timestamp{2 * kSec + i * 100 + 80});
    }
    a.add_login(anonymous_a_to_b(3));
    LoginEvent later = login(tcp(0x0a4f0001, 50001, kA, 1433), 4, AuthKind::Ntlm, Outcome::Success);
    a.add_login(later);
    a.finish();
    auto chains = a.chain_summary();
    ASSERT_EQ(chains.size(), 1u);
    EXPECT_EQ(chains[0].client, IpAddress::v4_from(kC));
    EXPECT_EQ(chains[0].user, "LAB\\alice");
}

TEST(Analyzer, ClosingAConnectionClosesEveryLoginItCarried) {
    // D logs in to A several times over one connection (2, then 6: more than a few) and closes
    // it before A's outbound login; C's connection stays open through it. Every one of D's
    // logins is closed with the connection, not only the latest, so the chain is C's.
    for (const std::uint32_t n : {2u, 6u}) {
        Collect out;
        Analyzer a(out);
        a.add_login(c_to_a(1, AuthKind::Ntlm));
        const FlowKey d_flow = tcp(0x0a4e0009, 50000, kA, 1433);
        for (std::uint32_t i = 0; i < n; ++i) {
            LoginEvent d = login(d_flow, 1, AuthKind::Ntlm, Outcome::Success);
            d.started = Timestamp{kSec + 100'000 + i * 10'000};
            d.ts = Timestamp{kSec + 105'000 + i * 10'000};
            d.user = "dave" + std::to_string(i);
            a.add_login(d);
        }
        a.connection_closed(d_flow, Timestamp{2 * kSec});
        a.add_login(anonymous_a_to_b(3));
        a.finish();
        auto chains = a.chain_summary();
        ASSERT_EQ(chains.size(), 1u) << n << " logins on D's connection";
        EXPECT_EQ(chains[0].client, IpAddress::v4_from(kC)) << n << " logins on D's connection";
        EXPECT_EQ(chains[0].user, "LAB\\alice") << n << " logins on D's connection";
    }
}

TEST(Analyzer, HiddenOutcomeReportedAtItsCloseChainsTheOutboundLoginsItWasOpenFor) {
    // A login under TLS from start to end is reported when its connection closes, after the
    // outbound login it caused; the one that closed before the outbound login started does not
    // count, the one open through it does, whichever order they are reported in.
    Collect out;
    Analyzer a(out);
    auto hidden = [](std::uint32_t client, std::int64_t start_s, std::int64_t end_s) {
        LoginEvent l =
            login(tcp(client, 50000, kA, 1433), start_s, AuthKind::Unknown, Outcome::Incomplete);
        l.ts = Timestamp{end_s * kSec};
        return l;
    };
    const LoginEvent early = hidden(0x0a4e0001, 1, 2);  // closed before the outbound login
    a.add_login(early);
    a.connection_closed(early.flow, Timestamp{2 * kSec});
    a.add_login(anonymous_a_to_b(3));
    const LoginEvent open = hidden(kC, 1, 5);  // open from 1 s to 5 s
    a.add_login(open);
    a.connection_closed(open.flow, Timestamp{5 * kSec});
    a.finish();
    auto chains = a.chain_summary();
    ASSERT_EQ(chains.size(), 1u);
    EXPECT_EQ(chains[0].client, IpAddress::v4_from(kC));
    EXPECT_EQ(chains[0].first_auth, AuthKind::Unknown);
}

TEST(Analyzer, HealthyKerberosDoubleHopGivesOnlyTheInfoVerdict) {
    Collect out;
    Analyzer a(out);
    a.add_kerberos(tgs(0, "MSSQLSvc/sqla.lab.test:1433", {"forwardable", "canonicalize"}));
    a.add_kerberos(tgs(0, "krbtgt/LAB.TEST", {"forwardable", "forwarded"}));
    a.add_login(c_to_a(1, AuthKind::Kerberos));
    LoginEvent out_login = login(tcp(kA, 40000, kB, 1433), 2, AuthKind::Kerberos, Outcome::Success);
    out_login.user = "alice";
    out_login.domain = "LAB.TEST";
    a.add_login(out_login);
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS050"}));
    EXPECT_EQ(out.get("HS050")->severity, Severity::Info);
}

TEST(Analyzer, EnrichLooksAtTheLatestKdcExchangesWhateverOrderTheyArrivedIn) {
    // The KDC walk starts at a client's latest exchange and stops where no older one can matter
    // (each exchange carries the latest time among those kept before it). An exchange that
    // arrives late with an older time must not hide a later one: here the forwarded TGT request
    // at 6 s is followed by an exchange of 4 s (an unanswered UDP request, reported at expiry),
    // with the client's previous login in between (5 s).
    Collect out;
    Analyzer a(out);
    for (int i = 0; i < 50; ++i)  // many older exchanges of the same client, none forwarded
        a.add_kerberos(tgs(1, "MSSQLSvc/other" + std::to_string(i) + ".lab.test:1433", {}));
    a.add_kerberos(tgs(2, "MSSQLSvc/sqla.lab.test:1433", {"forwardable"}));
    LoginEvent previous = c_to_a(5, AuthKind::Kerberos);
    previous.started = Timestamp{4 * kSec + 500'000};
    previous.ts = Timestamp{5 * kSec};
    a.add_login(previous);
    a.add_kerberos(tgs(6, "krbtgt/LAB.TEST", {"forwardable", "forwarded"}));
    a.add_kerberos(tgs(4, "MSSQLSvc/other.lab.test:1433", {}));  // late, older
    LoginEvent l = c_to_a(7, AuthKind::Kerberos);
    l.user.clear();
    l.domain.clear();
    l.spn.clear();
    l.delegation = Tristate::Unknown;
    a.enrich(l);
    EXPECT_EQ(l.delegation, Tristate::Yes);
    EXPECT_EQ(l.spn, "MSSQLSvc/sqla.lab.test:1433");  // the one of this server, not the latest
    EXPECT_EQ(l.user, "alice");                       // from the TGS-REP for that SPN
    // Before the forwarded request: the client's earlier exchanges say no forwarded TGT.
    LoginEvent early = c_to_a(3, AuthKind::Kerberos);
    early.delegation = Tristate::Unknown;
    a.enrich(early);
    EXPECT_EQ(early.delegation, Tristate::No);
}

TEST(Analyzer, OutboundLoginAnsweredBeforeTheInboundLoginIsLinkedWhenTheInboundIsReported) {
    // A logs in to B while it is still answering C's login: A's login is reported first. The
    // chain is found when C's login is reported, not one window later.
    Collect out;
    Analyzer a(out);
    a.add_kerberos(tgs(0, "MSSQLSvc/sqla.lab.test:1433", {"forwardable", "canonicalize"}));
    a.add_kerberos(tgs(0, "krbtgt/LAB.TEST", {"forwardable", "forwarded"}));
    LoginEvent in = c_to_a(1, AuthKind::Kerberos);
    in.ts = Timestamp{3 * kSec};  // LOGINACK after A's login to B
    LoginEvent b = login(tcp(kA, 40000, kB, 1433), 2, AuthKind::Kerberos, Outcome::Success);
    b.user = "alice";
    b.domain = "LAB.TEST";
    a.add_login(b);
    EXPECT_TRUE(a.chain_summary().empty());
    a.add_login(in);
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS050"}));
    ASSERT_EQ(a.chain_summary().size(), 1u);
    EXPECT_EQ(a.chain_summary()[0].second_user, "alice@LAB.TEST");
    // One that started before C's login did is not C's.
    Collect out2;
    Analyzer a2(out2);
    LoginEvent early = b;
    early.started = Timestamp{kSec / 2};
    a2.add_login(early);
    a2.add_login(in);
    a2.finish();
    EXPECT_TRUE(a2.chain_summary().empty());
}

// A TCP relay R (a port forwarder, an explicit proxy) between C and A: C names R, R passes C's
// LOGIN7 on to A unchanged. R -> A is not a second hop of a chain, and A is not named after R.
// R's login to A is answered first (A's LOGINACK reaches R before R passes it to C), so it is
// reported before C's login to R; the other order is checked too.
constexpr std::uint32_t kR = 0x0a4d0009;
LoginEvent relayed_ntlm(FlowKey flow, std::int64_t t) {
    LoginEvent l = login(flow, t, AuthKind::Ntlm, Outcome::Success);
    l.server_name = "sqlpx.lab.test";
    l.host_name = "WS01";
    l.app_name = "client";
    l.spn = "MSSQLSvc/sqlpx.lab.test";
    l.server_aliases = {"sqla.lab.test"};  // the NTLM CHALLENGE's name: A's own
    l.user = "alice";
    l.domain = "LAB";
    l.ntlm_version = 2;
    return l;
}

TEST(Analyzer, RelayedLoginIsNotASecondHopAndDoesNotNameTheServerAfterTheRelay) {
    for (const bool relay_first : {true, false}) {
        SCOPED_TRACE(relay_first ? "relayed login reported first" : "client's login first");
        Collect out;
        Analyzer a(out);
        LoginEvent c_to_r = relayed_ntlm(tcp(kC, 50000, kR, 1433), 1);
        c_to_r.ts = Timestamp{3 * kSec};
        LoginEvent r_to_a = relayed_ntlm(tcp(kR, 48000, kA, 1433), 2);
        if (relay_first) {
            a.add_login(r_to_a);
            a.add_login(c_to_r);
        } else {
            a.add_login(c_to_r);
            a.add_login(r_to_a);
        }
        // A's own linked-server login, anonymous at B: the chain is R -> A -> B.
        LoginEvent a_to_b = anonymous_a_to_b(4);
        a_to_b.host_name = "SQLA";
        a.add_login(a_to_b);
        a.finish();
        EXPECT_EQ(a.host_name(IpAddress::v4_from(kA)), "sqla.lab.test");
        EXPECT_EQ(a.host_name(IpAddress::v4_from(kR)), "sqlpx.lab.test");
        const auto chains = a.chain_summary();
        ASSERT_EQ(chains.size(), 1u) << "the relay made a chain of its own";
        int hs010 = 0;
        for (const auto& f : out.all)
            if (f.rule == "HS010") {
                ++hs010;
                EXPECT_EQ(f.summary.find("sqlpx.lab.test reached"), std::string::npos) << f.summary;
                EXPECT_NE(f.summary.find("sqla.lab.test reached sqlb.lab.test"), std::string::npos)
                    << f.summary;
            }
        EXPECT_EQ(hs010, 1);
    }
}

TEST(Analyzer, ALinkedServerLoginIsNotTakenForARelay) {
    // The same middle server logging in with its own LOGIN7 (its host name, B's name): a hop.
    Collect out;
    Analyzer a(out);
    LoginEvent in = c_to_a(1, AuthKind::Ntlm);
    in.host_name = "WS01";
    in.app_name = "client";
    a.add_login(in);
    LoginEvent b = anonymous_a_to_b(3);
    b.host_name = "SQLA";
    b.app_name = "client";
    a.add_login(b);
    a.finish();
    EXPECT_EQ(a.chain_summary().size(), 1u);
}

TEST(Analyzer, UnknownSpnIsNamedOnceHoweverOftenTheClientAsked) {
    Collect out;
    Analyzer a(out);
    for (int i = 0; i < 4; ++i)
        a.add_kerberos(tgs(0, "MSSQLSvc/sqla.lab.test:1433", {"forwardable"}, 7));
    LoginEvent in = c_to_a(1, AuthKind::Ntlm);
    in.ntlm_version = 2;
    a.add_login(in);
    a.add_login(anonymous_a_to_b(3));
    a.finish();
    const Finding* f = out.get("HS010");
    ASSERT_NE(f, nullptr);
    const std::string said = "(the KDC did not know MSSQLSvc/sqla.lab.test:1433)";
    const auto first = f->summary.find(said);
    ASSERT_NE(first, std::string::npos) << f->summary;
    EXPECT_EQ(f->summary.find(said, first + 1), std::string::npos) << f->summary;
}

TEST(Analyzer, MiddleServerClosingAfterPreloginWithoutPort88SaysTheCauseIsNotVisible) {
    Collect out;
    Analyzer a(out);
    a.add_login(c_to_a(1, AuthKind::Kerberos));
    LoginEvent b = login(tcp(kA, 40000, kB, 1433), 2, AuthKind::Unknown, Outcome::Incomplete);
    b.auth_detail = "no LOGIN7 sent";
    b.prelogin_only = true;
    a.add_login(b);
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS013"}));
    const Finding* f = out.get("HS013");
    EXPECT_NE(f->summary.find("cannot be seen without its port-88 traffic"), std::string::npos)
        << f->summary;
    EXPECT_NE(f->missing.find("port 88"), std::string::npos);
    ASSERT_EQ(a.chain_summary().size(), 1u);
    EXPECT_TRUE(a.chain_summary()[0].second_prelogin_only);
}

TEST(Analyzer, KerberosUserComesFromTheLatestTgsRepForItsSpn) {
    Collect out;
    Analyzer a(out);
    KerberosEvent bob = tgs(0, "MSSQLSvc/sqla.lab.test:1433", {"forwardable"});
    bob.client = "bob@LAB.TEST";
    a.add_kerberos(bob);
    KerberosEvent alice = tgs(1, "MSSQLSvc/sqla.lab.test:1433", {"forwardable"});
    alice.client = "alice@OTHER.TEST";
    a.add_kerberos(alice);
    KerberosEvent other = tgs(1, "MSSQLSvc/sqlc.lab.test:1433", {"forwardable"});
    other.client = "carol@LAB.TEST";
    a.add_kerberos(other);
    LoginEvent l = login(tcp(kC, 50000, kA, 1433), 2, AuthKind::Kerberos, Outcome::Success);
    l.spn = "MSSQLSvc/sqla.lab.test:1433";
    l.domain = "LAB.TEST";  // the ticket's realm
    a.enrich(l);
    EXPECT_EQ(l.user, "alice");
    EXPECT_EQ(l.domain, "OTHER.TEST");
    EXPECT_EQ(l.user_source, UserSource::KdcReply);
    // A refused request names nobody; nor does a TGS-REP for another SPN.
    Collect out2;
    Analyzer a2(out2);
    a2.add_kerberos(tgs(1, "MSSQLSvc/sqla.lab.test:1433", {}, 7));
    a2.add_kerberos(other);
    LoginEvent l2 = l;
    l2.user.clear();
    l2.user_source = UserSource::None;
    a2.enrich(l2);
    EXPECT_EQ(l2.user, "");
    EXPECT_EQ(l2.user_source, UserSource::None);
}

TEST(Analyzer, KerberosWithoutForwardedTgtRequestSaysTheClientDidNotDelegate) {
    Collect out;
    Analyzer a(out);
    a.add_kerberos(tgs(0, "MSSQLSvc/sqla.lab.test:1433", {"forwardable"}));
    a.add_login(c_to_a(1, AuthKind::Kerberos));
    a.add_login(anonymous_a_to_b(2));
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS001", "HS011"}));
    const Finding* f = out.get("HS011");
    EXPECT_NE(f->summary.find("did not ask for a forwarded TGT"), std::string::npos) << f->summary;
    EXPECT_TRUE(f->missing.empty());
}

TEST(Analyzer, SensitiveUserBadOptionIsNamedAsTheCause) {
    Collect out;
    Analyzer a(out);
    a.add_kerberos(tgs(0, "MSSQLSvc/sqla.lab.test:1433", {"forwardable"}));
    a.add_kerberos(tgs(0, "krbtgt/LAB.TEST", {"forwardable", "forwarded"}, 13));
    a.add_login(c_to_a(1, AuthKind::Kerberos));
    a.add_login(anonymous_a_to_b(2));
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS001", "HS011", "HS012"}));
    EXPECT_NE(out.get("HS011")->summary.find("KDC_ERR_BADOPTION"), std::string::npos);
    EXPECT_NE(out.get("HS012")->remedy.find("sensitive"), std::string::npos);
}

TEST(Analyzer, WithoutPort88TheVerdictSaysWhatIsMissing) {
    Collect out;
    Analyzer a(out);
    a.add_login(c_to_a(1, AuthKind::Kerberos));
    a.add_login(anonymous_a_to_b(2));
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS001", "HS011"}));
    EXPECT_NE(out.get("HS011")->missing.find("port 88"), std::string::npos);
}

/// C's login to A with what a keytab read of its AP-REQ (frame 12, offset 8).
LoginEvent c_to_a_with_keytab(std::int64_t t, bool forwardable, bool deleg, bool tgt) {
    LoginEvent l = c_to_a(t, AuthKind::Kerberos);
    KeytabFacts k;
    k.ap_req_at = Position{12, 8, Direction::ClientToServer};
    k.ticket_decrypted = true;
    k.forwardable = forwardable;
    k.client = "alice@LAB.TEST";
    k.authenticator_decrypted = true;
    k.deleg = deleg;
    k.forwarded_tgt = tgt;
    if (tgt) k.forwarded_tgt_client = "alice@LAB.TEST";
    l.keytab = std::make_shared<const KeytabFacts>(k);
    return l;
}

bool has_evidence_at(const Finding& f, std::uint64_t frame, std::uint64_t offset) {
    return std::any_of(f.evidence.begin(), f.evidence.end(), [&](const EvidenceRef& e) {
        return e.at.frame == frame && e.at.stream_offset == offset;
    });
}

TEST(Analyzer, ForwardedTgtReceivedButUnusedPointsAtTheMiddleServer) {
    Collect out;
    Analyzer a(out);
    a.add_login(c_to_a_with_keytab(1, true, true, true));
    a.add_login(anonymous_a_to_b(2));
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS001", "HS015"}));
    const Finding* f = out.get("HS015");
    EXPECT_NE(f->summary.find("received a forwarded TGT for alice@LAB.TEST (frame 12)"),
              std::string::npos)
        << f->summary;
    EXPECT_NE(f->remedy.find("login mapping"), std::string::npos) << f->remedy;
    EXPECT_NE(f->remedy.find("MSSQLSvc/sqlb.lab.test:1433"), std::string::npos) << f->remedy;
    EXPECT_TRUE(has_evidence_at(*f, 12, 8));
    EXPECT_TRUE(f->missing.empty());
}

TEST(Analyzer, KeytabNamesWhyNoTgtWasDelegated) {
    struct Case {
        bool forwardable, deleg;
        const char* why;
    };
    for (const Case& x : {Case{false, false, "the ticket is not forwardable"},
                          Case{true, false, "did not request delegation"},
                          Case{true, true, "set DELEG but sent no TGT"}}) {
        SCOPED_TRACE(x.why);
        Collect out;
        Analyzer a(out);
        a.add_login(c_to_a_with_keytab(1, x.forwardable, x.deleg, false));
        a.add_login(anonymous_a_to_b(2));
        a.finish();
        EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS001", "HS014"}));
        const Finding* f = out.get("HS014");
        EXPECT_NE(f->summary.find("carried no forwarded TGT (frame 12): "), std::string::npos)
            << f->summary;
        EXPECT_NE(f->summary.find(x.why), std::string::npos) << f->summary;
        EXPECT_TRUE(has_evidence_at(*f, 12, 8));
        // No port-88 traffic is needed: the keytab is the evidence.
        EXPECT_TRUE(f->missing.empty());
    }
}

TEST(Analyzer, RefusedS4u2ProxyStaysTheCauseWithAKeytab) {
    Collect out;
    Analyzer a(out);
    a.add_login(c_to_a_with_keytab(1, true, false, false));
    KerberosEvent s4u =
        tgs(2, "MSSQLSvc/sqlb.lab.test:1433", {"forwardable", "cname-in-addl-tkt"}, 13);
    s4u.flow = tcp(kA, 52000, kKdc, 88);
    a.add_kerberos(s4u);
    a.add_login(anonymous_a_to_b(3));
    a.finish();
    const Finding* f = out.get("HS011");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(out.get("HS014"), nullptr);
    EXPECT_NE(f->summary.find("constrained delegation"), std::string::npos) << f->summary;
}

TEST(Analyzer, FinishDoesNotLetALateChainSeeTheKdcExchangesItsWindowsForgot) {
    // Windows of 60 s. A's S4U2Self and S4U2Proxy requests for B (1040 s) are one Kerberos window
    // before A's Kerberos login to B (1100 s). C's login to A (1090 s, under TLS: reported at its
    // close, 1150 s) is linked to it one chaining window after it (1160.001 s), when those
    // requests have just been forgotten (two windows after them, 1160.000001 s). finish() must
    // give what the clock moved past every window gives: the chain's verdict without them.
    Analyzer::Options o;
    o.chain_window_us = 60 * kSec;
    o.kerberos_window_us = 60 * kSec;
    std::vector<std::vector<std::string>> results;
    for (const bool by_finish : {true, false}) {
        Collect out;
        Analyzer a(out, o);
        KerberosEvent self = tgs(1040, "sqla$@LAB.TEST", {"forwardable"});
        self.flow = tcp(kA, 52000, kKdc, 88);
        self.padata = {auth::pa_type::TgsReq, auth::pa_type::ForUser};
        a.add_kerberos(self);
        KerberosEvent proxy =
            tgs(1040, "MSSQLSvc/sqlb.lab.test:1433", {"forwardable", "cname-in-addl-tkt"});
        proxy.flow = tcp(kA, 52001, kKdc, 88);
        a.add_kerberos(proxy);
        LoginEvent a_to_b =
            login(tcp(kA, 40000, kB, 1433), 1100, AuthKind::Kerberos, Outcome::Success);
        a_to_b.user = "alice";
        a_to_b.domain = "LAB.TEST";
        a.add_login(a_to_b);
        LoginEvent c_to_a_hidden =
            login(tcp(kC, 50000, kA, 1433), 1090, AuthKind::Unknown, Outcome::Incomplete);
        c_to_a_hidden.ts = Timestamp{1150 * kSec};
        a.add_login(c_to_a_hidden);
        a.connection_closed(c_to_a_hidden.flow, Timestamp{1150 * kSec});
        if (!by_finish) a.tick(Timestamp{100'000 * kSec});
        a.finish();
        ASSERT_EQ(a.chain_summary().size(), 1u) << "the late link was not made";
        std::vector<std::string> texts;
        for (const Finding& f : out.all) {
            std::string t = f.rule + ": " + f.summary;
            for (const auto& e : f.evidence)
                t += " | " + e.what;
            texts.push_back(t);
        }
        results.push_back(texts);
    }
    ASSERT_NE(results[0].size(), 0u);
    EXPECT_EQ(results[0], results[1]);
    for (const std::string& t : results[0])
        EXPECT_EQ(t.find("S4U2Proxy"), std::string::npos) << t;
}

TEST(Analyzer, MissingSpnGivesSetspnWithTheRealName) {
    Collect out;
    Analyzer a(out);
    a.add_kerberos(tgs(0, "MSSQLSvc/sqlx.lab.test:1433", {"forwardable"}, 7));
    a.finish();
    ASSERT_EQ(out.rules(), (std::vector<std::string>{"HS020"}));
    EXPECT_NE(out.get("HS020")->remedy.find("setspn -S MSSQLSvc/sqlx.lab.test:1433 LAB.TEST\\"),
              std::string::npos);
}

TEST(Analyzer, RelayedErrorOnEstablishedSessionNamesMiddleServerAndQuery) {
    Collect out;
    Analyzer a(out);
    a.add_login(c_to_a(1, AuthKind::Ntlm));
    ServerErrorEvent e;
    e.flow = tcp(kC, 50000, kA, 1433);
    e.ts = Timestamp{5 * kSec};
    e.at = Position{55, 900, Direction::ServerToClient};
    e.error =
        ServerError{18456, 1, 14, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.", "SQLB"};
    e.statement = "select * from SQLB.master.dbo.sysdatabases";
    a.add_server_error(e);
    a.finish();
    ASSERT_EQ(out.rules(), (std::vector<std::string>{"HS003"}));
    const Finding* f = out.get("HS003");
    EXPECT_NE(f->summary.find("sqla.lab.test"), std::string::npos) << f->summary;
    EXPECT_NE(f->summary.find("SQLB.master.dbo.sysdatabases"), std::string::npos);
    EXPECT_NE(f->remedy.find("NTLM, which cannot be delegated"), std::string::npos);
    EXPECT_NE(f->missing.find("capture on sqla.lab.test"), std::string::npos);
}

TEST(Analyzer, SqlAuthInClearAndNtlmV1AreFlagged) {
    Collect out;
    Analyzer a(out);
    LoginEvent sql = login(tcp(kC, 50001, kA, 1433), 1, AuthKind::Sql, Outcome::Success);
    sql.user = "sa";
    a.add_login(sql);
    LoginEvent v1 = c_to_a(2, AuthKind::Ntlm);
    v1.ntlm_version = 1;
    a.add_login(v1);
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS040", "HS042"}));
}

TEST(Analyzer, OfAServersNamesOfEqualWeightTheFirstAlphabeticallyNamesIt) {
    // Two short names of the same server, one login each (the same weight), learned in reverse
    // alphabetical order: a finding names the server by the first in alphabetical order.
    Collect out;
    Analyzer a(out);
    LoginEvent first = login(tcp(kC, 50001, kA, 1433), 1, AuthKind::Sql, Outcome::Success);
    first.user = "sa";
    first.server_name = "zeta";
    a.add_login(first);
    LoginEvent second = login(tcp(kB, 50002, kA, 1433), 2, AuthKind::Sql, Outcome::Success);
    second.user = "sa";
    second.server_name = "Alpha";
    a.add_login(second);
    a.finish();
    ASSERT_EQ(out.all.size(), 2u);
    EXPECT_NE(out.all[0].summary.find(" to zeta "), std::string::npos) << out.all[0].summary;
    EXPECT_NE(out.all[1].summary.find(" to alpha "), std::string::npos) << out.all[1].summary;
}

TEST(Analyzer, NullLogin18452) {
    Collect out;
    Analyzer a(out);
    LoginEvent l = login(tcp(kA, 40000, kB, 1433), 1, AuthKind::Ntlm, Outcome::Failure);
    l.error = ServerError{18452, 1, 14,
                          "Login failed for user '(null)'. Reason: Not associated with a trusted "
                          "SQL Server connection.",
                          "SQLB"};
    a.add_login(l);
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS002"}));
}

TEST(Analyzer, RepeatedLoginsGiveOneFindingAndCountedSummaries) {
    Collect out;
    Analyzer a(out);
    for (int i = 0; i < 5; ++i) {
        a.add_login(c_to_a(10 * i + 1, AuthKind::Ntlm));
        a.add_login(anonymous_a_to_b(10 * i + 2));
    }
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS001", "HS010"}));
    auto chains = a.chain_summary();
    ASSERT_EQ(chains.size(), 1u);
    EXPECT_EQ(chains[0].count, 5u);
}

TEST(Analyzer, SpnWithIpAddressWillNotMatch) {
    Collect out;
    Analyzer a(out);
    a.add_kerberos(tgs(0, "MSSQLSvc/10.77.0.3:1433", {"forwardable"}));
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS024"}));
}

TEST(Analyzer, Rc4TicketIsFlagged) {
    Collect out;
    Analyzer a(out);
    LoginEvent l = c_to_a(1, AuthKind::Kerberos);
    l.spn = "MSSQLSvc/sqla.lab.test:1433";
    l.kerberos_etype = 23;  // rc4-hmac
    a.add_login(l);
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS041"}));
    const Finding* f = out.get("HS041");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(f->evidence.size(), 1u);
    EXPECT_EQ(f->evidence[0].what, "AP-REQ ticket enctype rc4-hmac");
}

TEST(Analyzer, OnlyRc4EnctypesAreFlagged) {
    // The rule reads the enctype's name: the export RC4 too, in any case; AES, DES and numbers
    // without a name (which are written as the number) not.
    for (const std::int32_t etype : {24, 18, 17, 3, 0, -128, 99}) {
        SCOPED_TRACE(etype);
        Collect out;
        Analyzer a(out);
        LoginEvent l = c_to_a(1, AuthKind::Kerberos);
        l.spn = "MSSQLSvc/sqla.lab.test:1433";
        l.kerberos_etype = etype;
        a.add_login(l);
        a.finish();
        EXPECT_EQ(out.get("HS041") != nullptr, etype == 24);
        if (etype == 24) {
            EXPECT_EQ(out.get("HS041")->evidence[0].what, "AP-REQ ticket enctype rc4-hmac-exp");
        }
    }
}

TEST(Analyzer, NtlmToAHostSeenAsMiddleServerLaterIsWarnedAtTheEnd) {
    Collect out;
    Analyzer a(out);
    // A Kerberos chain makes sqla a known middle server...
    a.add_kerberos(tgs(0, "krbtgt/LAB.TEST", {"forwardable", "forwarded"}));
    a.add_login(c_to_a(1, AuthKind::Kerberos));
    LoginEvent ok = login(tcp(kA, 40000, kB, 1433), 2, AuthKind::Kerberos, Outcome::Success);
    a.add_login(ok);
    // ...and a later NTLM session to it, with no linked-server query, is a double hop waiting to
    // fail. A closed connection ends the window for chaining.
    a.connection_closed(tcp(kC, 50000, kA, 1433), Timestamp{3 * kSec});
    LoginEvent ntlm = c_to_a(30 * 60, AuthKind::Ntlm);
    ntlm.flow.client.port = 50001;
    ntlm.ntlm_version = 2;
    a.add_login(ntlm);
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS030", "HS050"}));
}

TEST(Analyzer, KdcErrorsNameTheirCause) {
    Collect out;
    Analyzer a(out);
    KerberosEvent s4u =
        tgs(0, "MSSQLSvc/sqlb.lab.test:1433", {"forwardable", "cname-in-addl-tkt"}, 13);
    s4u.flow = tcp(kA, 52000, kKdc, 88);
    s4u.client = "";
    a.add_kerberos(s4u);
    a.add_kerberos(tgs(1, "krbtgt/LAB.TEST", {}, 37));
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS022", "HS023"}));
    EXPECT_NE(out.get("HS023")->remedy.find("msDS-AllowedToDelegateTo"), std::string::npos);
}

TEST(Analyzer, ServerRejectingTheTicketIsAWrongAccountSpnNotANullLogin) {
    Collect out;
    Analyzer a(out);
    LoginEvent l = login(tcp(kC, 50000, kA, 1433), 1, AuthKind::Kerberos, Outcome::Failure);
    l.spn = "MSSQLSvc/sqla.lab.test:1433";
    l.kerberos_error = 41;
    l.error = ServerError{18452, 1, 14,
                          "Login failed. The login is from an untrusted domain and cannot be used "
                          "with Windows authentication.",
                          "SQLA"};
    a.add_login(l);
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS021"}));
    EXPECT_NE(out.get("HS021")->remedy.find("setspn -Q MSSQLSvc/sqla.lab.test:1433"),
              std::string::npos);
}

// ---- the inline proxy ---------------------------------------------------------------------
// An explicit-mode listener on sqlproxy (10.77.0.9) forwards to A; the flow's server is A.

Analyzer::Options explicit_proxy_to_a() {
    Analyzer::Options o;
    o.proxy.explicit_upstreams = {Endpoint{IpAddress::v4_from(kA), 1433}};
    o.proxy.proxy_names = {"sqlproxy", "sqlproxy.lab.test", "10.77.0.9"};
    o.proxy.active = true;
    return o;
}

TEST(AnalyzerProxy, NtlmLoginNamingTheProxyThroughAnExplicitListener) {
    Collect out;
    Analyzer a(out, explicit_proxy_to_a());
    LoginEvent l = c_to_a(1, AuthKind::Ntlm);
    l.server_name = "tcp:SQLPROXY,1433";
    l.server_aliases = {"sqla.lab.test"};  // the upstream's NTLM CHALLENGE
    l.ntlm_version = 2;
    a.add_login(l);
    a.finish();
    EXPECT_EQ(a.host_name(IpAddress::v4_from(kA)), "sqla.lab.test")
        << "the proxy's name is not A's";
    ASSERT_EQ(out.rules(), (std::vector<std::string>{"HS060"}));
    const Finding* f = out.get("HS060");
    EXPECT_EQ(f->name, "proxy-in-the-way");
    EXPECT_EQ(f->severity, Severity::Error);
    EXPECT_NE(f->summary.find("proxy itself"), std::string::npos) << f->summary;
    EXPECT_NE(f->summary.find("NTLM"), std::string::npos) << f->summary;
    EXPECT_NE(f->remedy.find("--transparent"), std::string::npos) << f->remedy;
    EXPECT_NE(f->remedy.find("MSSQLSvc/sqla.lab.test:1433"), std::string::npos) << f->remedy;
    EXPECT_NE(f->remedy.find("docs/proxy.md"), std::string::npos);
    ASSERT_EQ(f->evidence.size(), 1u);
    EXPECT_EQ(f->evidence[0].at.frame, l.last_at.frame);
}

TEST(AnalyzerProxy, UnknownProxySpnAtTheKdcThenNtlm) {
    Collect out;
    Analyzer a(out, explicit_proxy_to_a());
    a.add_kerberos(tgs(0, "MSSQLSvc/sqlproxy.lab.test:1433", {"forwardable"}, 7));
    LoginEvent l = c_to_a(1, AuthKind::Ntlm);
    l.server_name = "";  // not visible (login-only TLS)
    a.add_login(l);
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS020", "HS060"}));
    const Finding* f = out.get("HS060");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("MSSQLSvc/sqlproxy.lab.test:1433"), std::string::npos) << f->summary;
    EXPECT_NE(f->summary.find("KDC_ERR_S_PRINCIPAL_UNKNOWN"), std::string::npos) << f->summary;
    ASSERT_EQ(f->evidence.size(), 2u) << "the login and the KDC exchange";
    EXPECT_EQ(f->evidence[1].at.direction, Direction::ServerToClient) << "the KRB-ERROR";
}

TEST(AnalyzerProxy, KerberosTicketForTheProxyName) {
    Collect out;
    Analyzer a(out, explicit_proxy_to_a());
    LoginEvent l = c_to_a(1, AuthKind::Kerberos);
    l.outcome = Outcome::Failure;
    l.spn = "MSSQLSvc/sqlproxy.lab.test:1433";
    l.kerberos_error = 41;
    a.add_login(l);
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS021", "HS060"}));
}

TEST(AnalyzerProxy, NoProxyFindingWhenTheClientAskedForTheServer) {
    for (int variant = 0; variant < 5; ++variant) {
        SCOPED_TRACE(variant);
        Collect out;
        Analyzer::Options o = explicit_proxy_to_a();
        LoginEvent l = c_to_a(1, AuthKind::Ntlm);
        l.server_name = "sqlproxy.lab.test";
        switch (variant) {
            case 0:  // transparent: no explicit listener in front of A
                o.proxy.explicit_upstreams.clear();
                break;
            case 1:  // the server's name is aliased to the proxy: the client names the server
                l.server_name = "sqla.lab.test";
                break;
            case 2:  // Kerberos for the server's own SPN
                l = c_to_a(1, AuthKind::Kerberos);
                l.server_name = "sqla.lab.test";
                l.spn = "MSSQLSvc/sqla.lab.test:1433";
                break;
            case 3:  // SQL authentication has no SPN to get wrong
                l = login(tcp(kC, 50000, kA, 1433), 1, AuthKind::Sql, Outcome::Success);
                l.server_name = "sqlproxy";
                l.user = "app";
                l.encryption = EncryptionMode::LoginOnly;
                break;
            case 4:  // the proxy's SPN registered on the server's account: Kerberos works
                l = c_to_a(1, AuthKind::Kerberos);
                l.spn = "MSSQLSvc/sqlproxy.lab.test:1433";
                break;
        }
        Analyzer a(out, o);
        a.add_login(l);
        a.finish();
        EXPECT_EQ(out.get("HS060"), nullptr);
    }
}

TEST(AnalyzerProxy, RoutingTokenSendsTheClientAroundTheProxy) {
    Collect out;
    Analyzer a(out, explicit_proxy_to_a());
    LoginEvent l = c_to_a(1, AuthKind::Kerberos);
    l.spn = "MSSQLSvc/sqla.lab.test:1433";
    l.routing = "replica2.lab.test:14333";
    a.add_login(l);
    a.finish();
    ASSERT_EQ(out.rules(), (std::vector<std::string>{"HS061"}));
    const Finding* f = out.get("HS061");
    EXPECT_EQ(f->name, "routing-around-proxy");
    EXPECT_EQ(f->severity, Severity::Warning);
    EXPECT_NE(f->summary.find("replica2.lab.test:14333"), std::string::npos) << f->summary;
    EXPECT_NE(f->summary.find("around the proxy"), std::string::npos) << f->summary;
    EXPECT_NE(f->remedy.find("replica2.lab.test:14333 behind the proxy"), std::string::npos);
}

TEST(AnalyzerProxy, RoutingIsNoProxyMatterOutsideTheProxyOrBackToIt) {
    {
        Collect out;
        Analyzer a(out);  // analyze / live
        LoginEvent l = c_to_a(1, AuthKind::Kerberos);
        l.routing = "replica2.lab.test:14333";
        a.add_login(l);
        a.finish();
        EXPECT_EQ(out.get("HS061"), nullptr);
    }
    {
        Collect out;
        Analyzer a(out, explicit_proxy_to_a());
        LoginEvent l = c_to_a(1, AuthKind::Kerberos);
        l.routing = "SQLPROXY.lab.test:1433";  // routed to the proxy: still through it
        a.add_login(l);
        a.finish();
        EXPECT_EQ(out.get("HS061"), nullptr);
    }
}

}  // namespace
}  // namespace hopscope::analysis

namespace hopscope::analysis {
namespace {

Analyzer::Options terminating_proxy() {
    Analyzer::Options o;
    o.proxy.active = true;
    o.proxy.terminates_tls = true;
    return o;
}

LoginEvent bound_ntlm_login(Outcome outcome) {
    LoginEvent l = c_to_a(1, AuthKind::Ntlm);
    l.outcome = outcome;
    l.domain = "LAB";
    l.encryption = EncryptionMode::Full;
    l.tls_decrypted = true;
    l.ntlm_channel_bindings = true;
    return l;
}

TEST(AnalyzerProxy, ChannelBoundNtlmLoginThroughTheTerminatingProxyIsReported) {
    for (const Outcome outcome : {Outcome::Success, Outcome::Failure}) {
        Collect out;
        Analyzer a(out, terminating_proxy());
        a.add_login(bound_ntlm_login(outcome));
        a.finish();
        const Finding* f = out.get("HS062");
        ASSERT_NE(f, nullptr) << to_string(outcome);
        EXPECT_EQ(f->name, "channel-binding-intercepted");
        EXPECT_EQ(f->severity, outcome == Outcome::Failure ? Severity::Error : Severity::Warning);
        EXPECT_NE(f->summary.find("Extended Protection"), std::string::npos) << f->summary;
        EXPECT_NE(f->remedy.find("without --tls-terminate"), std::string::npos) << f->remedy;
    }
}

TEST(AnalyzerProxy, KerberosLoginBoundToItsChannelIsReportedWithTheKeytab) {
    // The authenticator's GSS checksum, decrypted with the keytab, carries channel bindings: a
    // fact, whatever the outcome; without them, or without the authenticator, nothing is said.
    struct Case {
        bool decrypted, bound;
        Outcome outcome;
        bool reported;
    };
    for (const Case c :
         {Case{true, true, Outcome::Success, true}, Case{true, true, Outcome::Failure, true},
          Case{true, false, Outcome::Success, false}, Case{false, true, Outcome::Success, false}}) {
        Collect out;
        Analyzer a(out, terminating_proxy());
        LoginEvent l = c_to_a(1, AuthKind::Kerberos);
        l.outcome = c.outcome;
        l.encryption = EncryptionMode::Full;
        l.tls_decrypted = true;
        auto k = std::make_shared<KeytabFacts>();
        k->ticket_decrypted = true;
        k->authenticator_decrypted = c.decrypted;
        k->channel_bindings = c.bound;
        l.keytab = k;
        a.add_login(l);
        a.finish();
        const Finding* f = out.get("HS062");
        ASSERT_EQ(f != nullptr, c.reported) << c.decrypted << c.bound;
        if (!f) continue;
        EXPECT_EQ(f->severity, c.outcome == Outcome::Failure ? Severity::Error : Severity::Warning);
        EXPECT_NE(f->summary.find("bound its Kerberos login to its TLS channel"), std::string::npos)
            << f->summary;
        EXPECT_EQ(f->remedy.find("To confirm"), std::string::npos) << "a fact needs no check";
    }
}

TEST(AnalyzerProxy, KerberosLoginRefusedAsExtendedProtectionDoesThroughTheTerminatingProxy) {
    // 18452 to a Kerberos login read inside the proxy's TLS: what SQL Server answers when the
    // authenticator's channel bindings name another channel. Any other refusal, or the same one
    // without termination, is not this.
    struct Case {
        bool terminates;
        std::int32_t number;
        std::int32_t kerberos_error;
        bool expect;
    };
    for (const Case c :
         {Case{true, 18452, 0, true}, Case{true, 18456, 0, false}, Case{false, 18452, 0, false},
          Case{true, 18452, 37 /* KRB_AP_ERR_SKEW */, false}}) {
        Analyzer::Options o;
        o.proxy.active = true;
        o.proxy.terminates_tls = c.terminates;
        Collect out;
        Analyzer a(out, o);
        LoginEvent l = c_to_a(1, AuthKind::Kerberos);
        l.outcome = Outcome::Failure;
        l.encryption = EncryptionMode::Full;
        l.tls_decrypted = c.terminates;
        l.kerberos_error = c.kerberos_error;
        l.error = ServerError{c.number, 1, 14,
                              "Login failed. The login is from an untrusted "
                              "domain and cannot be used with Integrated authentication.",
                              "A"};
        a.add_login(l);
        a.finish();
        const Finding* f = out.get("HS062");
        ASSERT_EQ(f != nullptr, c.expect) << c.number << " " << c.terminates;
        if (!f) continue;
        EXPECT_EQ(f->severity, Severity::Error);
        EXPECT_NE(f->summary.find("Kerberos login with 18452"), std::string::npos) << f->summary;
        EXPECT_NE(f->remedy.find("SEC_E_BAD_BINDINGS"), std::string::npos) << f->remedy;
    }
}

TEST(AnalyzerProxy, A18452ForABoundLoginIsHS062sNotANullLogin) {
    // The refusal of a login bound to the client's TLS channel, seen by the terminating proxy, is
    // one finding naming the proxy (HS062), not also the SQL Server 2000 style '(null)' one; the
    // same 18452 without termination stays HS002.
    for (const bool terminates : {true, false}) {
        for (const AuthKind auth : {AuthKind::Ntlm, AuthKind::Kerberos}) {
            Analyzer::Options o;
            o.proxy.active = true;
            o.proxy.terminates_tls = terminates;
            Collect out;
            Analyzer a(out, o);
            LoginEvent l = bound_ntlm_login(Outcome::Failure);
            l.auth = auth;
            l.ntlm_channel_bindings = auth == AuthKind::Ntlm;
            l.tls_decrypted = terminates;
            l.error = ServerError{18452, 1, 14,
                                  "Login failed. The login is from an untrusted domain and cannot "
                                  "be used with Windows authentication.",
                                  "A"};
            a.add_login(l);
            a.finish();
            EXPECT_EQ(out.get("HS062") != nullptr, terminates) << terminates << to_string(auth);
            EXPECT_EQ(out.get("HS002") != nullptr, !terminates) << terminates << to_string(auth);
        }
    }
}

TEST(AnalyzerProxy, HS062IsOncePerClientServerAndMechanism) {
    // The lab's scenario 25 through the terminating proxy: a bound NTLM login and a Kerberos one
    // from the same client, both refused, then the NTLM one again: two findings, not one or three.
    Collect out;
    Analyzer a(out, terminating_proxy());
    const ServerError refused{18452, 1, 14,
                              "Login failed. The login is from an untrusted domain and cannot be "
                              "used with Windows authentication.",
                              "A"};
    LoginEvent ntlm = bound_ntlm_login(Outcome::Failure);
    ntlm.error = refused;
    LoginEvent krb = ntlm;
    krb.auth = AuthKind::Kerberos;
    krb.ntlm_channel_bindings = false;
    a.add_login(ntlm);
    a.add_login(krb);
    ntlm.ts = Timestamp{ntlm.ts.micros + kSec};
    a.add_login(ntlm);
    a.finish();
    const auto r = out.rules();
    EXPECT_EQ(std::count(r.begin(), r.end(), "HS062"), 2) << ::testing::PrintToString(r);
}

TEST(AnalyzerProxy, ChannelBindingsAreNoMatterWithoutTermination) {
    struct Case {
        bool active, terminates, decrypted, bound;
    };
    for (const Case c : {Case{false, false, true, true},    // analyze with a key log
                         Case{true, false, false, true},    // pass-through proxy
                         Case{true, true, false, true},     // not read inside TLS
                         Case{true, true, true, false}}) {  // no bindings
        Analyzer::Options o;
        o.proxy.active = c.active;
        o.proxy.terminates_tls = c.terminates;
        Collect out;
        Analyzer a(out, o);
        LoginEvent l = bound_ntlm_login(Outcome::Success);
        l.tls_decrypted = c.decrypted;
        l.ntlm_channel_bindings = c.bound;
        a.add_login(l);
        a.finish();
        EXPECT_EQ(out.get("HS062"), nullptr);
    }
}

}  // namespace
}  // namespace hopscope::analysis
