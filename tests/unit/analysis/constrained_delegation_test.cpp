// Constrained delegation (S4U2Self / S4U2Proxy) on facts shaped like the lab's AD scenarios
// (tools/lab, 18-22): C=10.77.0.2, A=10.77.0.3 (sqla, account svc_sqla), B=10.77.0.4 (sqlb),
// the DC 10.77.0.7. The lab captures themselves are checked in tests/unit/golden; these pin the
// forms the captures do not show (a computer account, an MIT-style requester, no port 88 from C).
#include <gtest/gtest.h>

#include <algorithm>

#include "hopscope/analysis/analyzer.hpp"
#include "kdc_option_bits.hpp"

namespace hopscope::analysis {
namespace {

constexpr std::int64_t kSec = 1'000'000;
constexpr std::uint32_t kC = 0x0a4d0002, kA = 0x0a4d0003, kB = 0x0a4d0004, kDc = 0x0a4d0007;
constexpr const char* kSpnB = "MSSQLSvc/sqlb.ad.lab.test:1433";

FlowKey tcp(std::uint32_t c, std::uint16_t cport, std::uint32_t s, std::uint16_t sport) {
    return FlowKey{Endpoint{IpAddress::v4_from(c), cport}, Endpoint{IpAddress::v4_from(s), sport},
                   Transport::Tcp};
}

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

/// alice's login to A: Kerberos without a forwarded TGT, or NTLM.
LoginEvent c_to_a(std::int64_t t, AuthKind auth) {
    LoginEvent l = login(tcp(kC, 50000, kA, 1433), t, auth, Outcome::Success);
    l.server_name = "sqla.ad.lab.test";
    l.user = "alice";
    l.domain = auth == AuthKind::Ntlm ? "ADLAB" : "AD.LAB.TEST";
    if (auth == AuthKind::Kerberos) {
        l.spn = "MSSQLSvc/sqla.ad.lab.test:1433";
        l.delegation = Tristate::No;
    }
    return l;
}

LoginEvent a_to_b_as_alice(std::int64_t t) {
    LoginEvent l = login(tcp(kA, 40000, kB, 1433), t, AuthKind::Kerberos, Outcome::Success);
    l.server_name = "sqlb.ad.lab.test";
    l.spn = kSpnB;
    l.user = "alice";
    l.domain = "AD.LAB.TEST";
    return l;
}

LoginEvent anonymous_a_to_b(std::int64_t t) {
    LoginEvent l = login(tcp(kA, 40000, kB, 1433), t, AuthKind::Ntlm, Outcome::Failure);
    l.server_name = "sqlb.ad.lab.test";
    l.anonymous = true;
    l.error =
        ServerError{18456, 1, 14, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.", "SQLB"};
    return l;
}

/// A TGS exchange of `client` host with the DC at second `t` (frame t).
KerberosEvent tgs(std::uint32_t client, std::int64_t t, const std::string& sname,
                  std::vector<std::string> opts, std::int32_t err = 0) {
    KerberosEvent k;
    k.flow = tcp(client, static_cast<std::uint16_t>(52000 + t), kDc, 88);
    k.ts = Timestamp{t * kSec};
    k.request_at.frame = static_cast<std::uint64_t>(t);
    k.reply_at = Position{k.request_at.frame + 1, 0, Direction::ServerToClient};
    k.request = "TGS-REQ";
    k.reply = err ? "KRB-ERROR" : "TGS-REP";
    k.sname = sname;
    k.realm = "AD.LAB.TEST";
    k.kdc_options = test::kdc_option_bits(opts);
    k.error_code = err;
    return k;
}

/// A's S4U2Proxy request for B's SPN with alice's ticket as evidence; `err` 13 = refused.
KerberosEvent s4u2proxy(std::int64_t t, const std::string& requester, std::int32_t err = 0) {
    KerberosEvent k = tgs(kA, t, kSpnB, {"forwardable", "cname-in-addl-tkt", "canonicalize"}, err);
    k.client = err ? requester : "alice@AD.LAB.TEST";
    k.padata = {auth::pa_type::TgsReq, auth::pa_type::PacOptions};
    k.extra_to_set().additional_ticket_snames = {"MSSQLSvc/sqla.ad.lab.test:1433"};
    return k;
}

/// A's S4U2Self request: a ticket to itself in alice's name (PA-FOR-USER).
KerberosEvent s4u2self(std::int64_t t) {
    KerberosEvent k = tgs(kA, t, "svc_sqla", {"forwardable", "canonicalize"});
    k.client = "alice@AD.LAB.TEST";
    k.padata = {auth::pa_type::TgsReq, auth::pa_type::ForUser, auth::pa_type::S4uX509User};
    k.extra_to_set().s4u_user = "alice@AD.LAB.TEST";
    return k;
}

TEST(ConstrainedDelegation, GrantedS4u2ProxyIsAHealthyDoubleHop) {
    Collect out;
    Analyzer a(out);
    a.add_kerberos(tgs(kC, 1, "MSSQLSvc/sqla.ad.lab.test:1433", {"forwardable", "canonicalize"}));
    a.add_login(c_to_a(2, AuthKind::Kerberos));
    a.add_kerberos(s4u2proxy(3, "svc_sqla@AD.LAB.TEST"));
    a.add_login(a_to_b_as_alice(4));
    a.finish();
    ASSERT_EQ(out.rules(), (std::vector<std::string>{"HS050"}));
    const Finding* f = out.get("HS050");
    EXPECT_NE(f->summary.find("through constrained delegation"), std::string::npos) << f->summary;
    EXPECT_NE(f->summary.find("(S4U2Proxy), without a forwarded TGT"), std::string::npos)
        << f->summary;
    EXPECT_EQ(f->display_filter, "frame.number in {4, 23, 43}");
}

/// What the keytab opened of a port-88 ticket (`--keytab`).
std::shared_ptr<const KdcTicketFacts> ticket(bool forwardable, const std::string& target = {}) {
    auto t = std::make_shared<KdcTicketFacts>();
    t->decrypted = true;
    t->forwardable = forwardable;
    t->client = "alice@AD.LAB.TEST";
    if (!target.empty()) {
        t->s4u2proxy_target = target;
        t->transited_services = {"svc_sqla@AD.LAB.TEST"};
    }
    return t;
}

TEST(ConstrainedDelegation, GrantedTicketsPacNamesTheTargetWhenBsLoginIsNotReadable) {
    // With the keytab, the KDC's reply ticket says whom it was issued for and through whom, even
    // when A's login to B was not decrypted (no kerberos_ticket on it).
    Collect out;
    Analyzer a(out);
    a.add_kerberos(tgs(kC, 1, "MSSQLSvc/sqla.ad.lab.test:1433", {"forwardable", "canonicalize"}));
    a.add_login(c_to_a(2, AuthKind::Kerberos));
    KerberosEvent k = s4u2proxy(3, "svc_sqla@AD.LAB.TEST");
    k.extra_to_set().evidence_ticket = ticket(true);
    k.extra_to_set().reply_ticket = ticket(true, kSpnB);
    a.add_kerberos(k);
    a.add_login(a_to_b_as_alice(4));
    a.finish();
    ASSERT_EQ(out.rules(), (std::vector<std::string>{"HS050"}));
    const Finding* f = out.get("HS050");
    EXPECT_NE(f->summary.find("; the keytab shows the ticket the KDC issued (frame 4) for "
                              "alice@AD.LAB.TEST names MSSQLSvc/sqlb.ad.lab.test:1433 as its "
                              "S4U2Proxy target, requested by svc_sqla@AD.LAB.TEST (PAC "
                              "S4U_DELEGATION_INFO)"),
              std::string::npos)
        << f->summary;
}

TEST(ConstrainedDelegation, RefusedWithANonForwardableEvidenceTicketNamesTransitionOrSensitive) {
    Collect out;
    Analyzer a(out);
    KerberosEvent k = s4u2proxy(3, "svc_sqla@AD.LAB.TEST", 13);
    k.extra_to_set().evidence_ticket = ticket(false);
    a.add_kerberos(k);
    a.finish();
    const Finding* f = out.get("HS023");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("the keytab shows the evidence ticket for alice@AD.LAB.TEST (its "
                              "ticket to svc_sqla) was not forwardable (frame 3)"),
              std::string::npos)
        << f->summary;
    EXPECT_NE(f->remedy.find("-TrustedToAuthForDelegation $true"), std::string::npos);
    EXPECT_NE(f->remedy.find("Clear 'Account is sensitive and cannot be delegated' for "
                             "alice@AD.LAB.TEST"),
              std::string::npos)
        << f->remedy;
    // An evidence ticket the keytab could not open changes nothing.
    Collect plain_out, problem_out;
    Analyzer plain(plain_out), with_problem(problem_out);
    plain.add_kerberos(s4u2proxy(3, "svc_sqla@AD.LAB.TEST", 13));
    KerberosEvent p = s4u2proxy(3, "svc_sqla@AD.LAB.TEST", 13);
    auto unread = std::make_shared<KdcTicketFacts>();
    unread->problem = "keytab: no key for svc_sqla@AD.LAB.TEST kvno 2 etype 18 (evidence ticket)";
    p.extra_to_set().evidence_ticket = unread;
    with_problem.add_kerberos(p);
    plain.finish();
    with_problem.finish();
    ASSERT_TRUE(plain_out.get("HS023") && problem_out.get("HS023"));
    EXPECT_EQ(plain_out.get("HS023")->summary, problem_out.get("HS023")->summary);
    EXPECT_EQ(plain_out.get("HS023")->remedy, problem_out.get("HS023")->remedy);
}

TEST(ConstrainedDelegation, ProtocolTransitionAfterNtlmIsHealthyNotAnNtlmFirstHop) {
    Collect out;
    Analyzer a(out);
    LoginEvent in = c_to_a(2, AuthKind::Ntlm);
    in.ntlm_version = 2;
    a.add_login(in);
    a.add_kerberos(s4u2self(3));
    a.add_kerberos(s4u2proxy(4, "svc_sqla@AD.LAB.TEST"));
    a.add_login(a_to_b_as_alice(5));
    a.finish();
    ASSERT_EQ(out.rules(), (std::vector<std::string>{"HS050"}));
    const Finding* f = out.get("HS050");
    EXPECT_NE(f->summary.find("ntlm to sqla.ad.lab.test, then Kerberos"), std::string::npos)
        << f->summary;
    EXPECT_NE(f->summary.find("S4U2Self, then S4U2Proxy: protocol transition"), std::string::npos)
        << f->summary;
    EXPECT_EQ(f->evidence.size(), 4u);
}

TEST(ConstrainedDelegation, NtlmThenKerberosWithoutPort88IsProtocolTransitionUnseen) {
    // What the proxy sees of scenario 20: no KDC traffic, NTLM to A, Kerberos from A to B.
    Collect out;
    Analyzer a(out);
    LoginEvent in = c_to_a(2, AuthKind::Ntlm);
    in.ntlm_version = 2;
    a.add_login(in);
    LoginEvent to_b = a_to_b_as_alice(5);
    to_b.user.clear();
    to_b.domain.clear();
    a.add_login(to_b);
    a.finish();
    ASSERT_EQ(out.rules(), (std::vector<std::string>{"HS050"}));
    const Finding* f = out.get("HS050");
    EXPECT_NE(f->summary.find("must have used protocol transition"), std::string::npos)
        << f->summary;
    EXPECT_NE(f->missing.find("capture port 88 on sqla.ad.lab.test"), std::string::npos)
        << f->missing;
}

TEST(ConstrainedDelegation, NtlmFirstHopWithoutProtocolTransitionNamesTheSetting) {
    Collect out;
    Analyzer a(out);
    LoginEvent in = c_to_a(2, AuthKind::Ntlm);
    in.ntlm_version = 2;
    a.add_login(in);
    a.add_kerberos(s4u2self(3));
    a.add_kerberos(s4u2proxy(4, "svc_sqla@AD.LAB.TEST", 13));
    a.add_login(anonymous_a_to_b(5));
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS001", "HS010", "HS023"}));
    const Finding* f = out.get("HS010");
    EXPECT_NE(f->summary.find("tried protocol transition (S4U2Self for alice@AD.LAB.TEST)"),
              std::string::npos)
        << f->summary;
    EXPECT_NE(f->remedy.find("Set-ADAccountControl svc_sqla -TrustedToAuthForDelegation $true"),
              std::string::npos)
        << f->remedy;
}

TEST(ConstrainedDelegation, RefusalNamesAComputerAccountAsAComputer) {
    // SQL Server running as its machine account (NT Service\MSSQLSERVER): the requester is SQLA$.
    Collect out;
    Analyzer a(out);
    a.add_kerberos(s4u2proxy(3, "SQLA$@AD.LAB.TEST", 13));
    a.finish();
    ASSERT_EQ(out.rules(), (std::vector<std::string>{"HS023"}));
    const std::string& r = out.get("HS023")->remedy;
    EXPECT_NE(r.find("Set-ADComputer SQLA -Add @{'msDS-AllowedToDelegateTo'='" +
                     std::string(kSpnB) + "'}"),
              std::string::npos)
        << r;
    EXPECT_NE(r.find("-PrincipalsAllowedToDelegateToAccount (Get-ADComputer SQLA)"),
              std::string::npos)
        << r;
}

TEST(ConstrainedDelegation, RequesterNamedByItsSpnGetsAPlaceholder) {
    // MIT's KDC names the requester by the SPN its keytab holds (lab scenario 15): no account.
    Collect out;
    Analyzer a(out);
    KerberosEvent k = s4u2proxy(3, "MSSQLSvc/sqla.lab.test:1433@LAB.TEST", 13);
    k.extra_to_set().additional_ticket_snames = {"MSSQLSvc/sqla.lab.test:1433"};
    a.add_kerberos(k);
    a.finish();
    const std::string& r = out.get("HS023")->remedy;
    EXPECT_NE(r.find("Set-ADUser <service account of MSSQLSvc/sqla.lab.test:1433> -Add"),
              std::string::npos)
        << r;
}

TEST(ConstrainedDelegation, UserTicketNotForwardableIsTheCauseOnTheChain) {
    // The client asked for its ticket to A without 'forwardable' (its TGT is not: a sensitive
    // user); A's S4U2Proxy request with it is refused although B's SPN may be in the list.
    Collect out;
    Analyzer a(out);
    a.add_kerberos(tgs(kC, 1, "MSSQLSvc/sqla.ad.lab.test:1433", {"canonicalize"}));
    a.add_login(c_to_a(2, AuthKind::Kerberos));
    a.add_kerberos(s4u2proxy(3, "svc_sqla@AD.LAB.TEST", 13));
    a.add_login(anonymous_a_to_b(4));
    a.finish();
    EXPECT_EQ(out.rules(), (std::vector<std::string>{"HS001", "HS011", "HS023"}));
    const Finding* f = out.get("HS011");
    EXPECT_NE(f->summary.find("alice@AD.LAB.TEST's ticket to sqla.ad.lab.test is not forwardable "
                              "(the client did not ask for a forwardable one"),
              std::string::npos)
        << f->summary;
    EXPECT_EQ(f->remedy.rfind("Clear 'Account is sensitive and cannot be delegated' for "
                              "alice@AD.LAB.TEST",
                              0),
              0u)
        << f->remedy;
    // With 'forwardable' asked for, the list (or RBCD) is named first.
    Collect out2;
    Analyzer b(out2);
    b.add_kerberos(tgs(kC, 1, "MSSQLSvc/sqla.ad.lab.test:1433", {"forwardable", "canonicalize"}));
    b.add_login(c_to_a(2, AuthKind::Kerberos));
    b.add_kerberos(s4u2proxy(3, "svc_sqla@AD.LAB.TEST", 13));
    b.add_login(anonymous_a_to_b(4));
    b.finish();
    EXPECT_NE(out2.get("HS011")->summary.find(std::string(kSpnB) +
                                              " is not in svc_sqla's msDS-AllowedToDelegateTo"),
              std::string::npos)
        << out2.get("HS011")->summary;
}

}  // namespace
}  // namespace hopscope::analysis
