// Golden tests on the lab scenario captures (captures/lab/, made by tools/lab/run with real
// clients, a real MIT KDC and real GSSAPI acceptors): every capture through the whole offline
// pipeline must give the logins its .expect.json lists and exactly the expected verdicts - no
// false alarm on healthy scenarios - also when the capture is split per host and merged back, and
// with the "missing evidence" form when port-88 traffic is absent.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "run_pipeline.hpp"

namespace hopscope::golden {
namespace {

namespace fs = std::filesystem;
using analysis::EncryptionMode;
using analysis::Outcome;

std::string lab(const std::string& name) {
    return std::string(HOPSCOPE_CAPTURES_DIR) + "/lab/" + name;
}

// The lab's addresses (tools/lab/run): KDC .1, C .2, A (sqla) .3, B (sqlb) .4, sqlc .5, sqlx .6.
const std::map<std::string, std::string> kRoleIp{{"C", "10.77.0.2"},    {"A", "10.77.0.3"},
                                                 {"SQLA", "10.77.0.3"}, {"SQLB", "10.77.0.4"},
                                                 {"SQLC", "10.77.0.5"}, {"SQLX", "10.77.0.6"}};

struct Scenario {
    std::string file;
    std::vector<std::string> rules;
};

const std::vector<Scenario> kScenarios{
    {"1-ntlm-single-hop", {"HS001", "HS040", "HS043"}},
    {"2-kerberos-single-hop", {"HS043"}},
    {"3-sql-auth", {"HS042"}},
    {"4-double-hop-delegation", {"HS050"}},
    {"4x-double-hop-delegation-checked-before-loginack", {"HS050"}},
    {"5-double-hop-ntlm-anonymous", {"HS001", "HS003", "HS010"}},
    {"6-double-hop-no-delegation", {"HS001", "HS003", "HS011"}},
    {"6x-double-hop-no-delegation-no-login7", {"HS013", "HS043"}},
    {"7-sensitive-user", {"HS001", "HS003", "HS011", "HS012"}},
    {"8-spn-missing", {"HS020"}},
    {"9-stale-keytab", {"HS021"}},
    {"9b-spn-wrong-account", {"HS021"}},
    {"10-clock-skew", {"HS022"}},
    {"11-sql2000-null", {"HS001", "HS002", "HS003", "HS010"}},
    {"12a-ntlm-tls-login-only", {}},
    {"12b-ntlm-tls-full", {"HS090"}},
    {"12c-double-hop-delegation-tls-login-only", {"HS050"}},
    {"12d-double-hop-delegation-tls-full", {"HS050"}},
    {"12e-double-hop-ntlm-tls-login-only", {"HS001", "HS003", "HS010"}},
    {"12f-double-hop-ntlm-tls-full", {"HS001", "HS090"}},
    {"13-spnego-delegation-policy", {"HS001", "HS003", "HS010", "HS011", "HS050"}},
    {"14-tds8-strict-ntlm-double-hop", {"HS001", "HS090"}},
    {"15-constrained-delegation-refused", {"HS001", "HS003", "HS011", "HS023"}},
    {"18-constrained-delegation-allowed", {"HS050"}},
    {"19-constrained-delegation-not-in-list", {"HS001", "HS003", "HS011", "HS023"}},
    {"20-protocol-transition", {"HS050"}},
    {"21-protocol-transition-not-allowed", {"HS001", "HS003", "HS010", "HS023"}},
    {"22-constrained-delegation-sensitive-user", {"HS001", "HS003", "HS011", "HS023"}},
    {"23-rbcd-allowed", {"HS050"}},
    {"24-rbcd-not-allowed", {"HS001", "HS003", "HS011", "HS023"}},
    {"25-extended-protection", {}},
};

TEST(LabGolden, EveryLabCaptureHasExpectations) {
    std::set<std::string> listed;
    for (const auto& s : kScenarios)
        listed.insert(s.file);
    for (const auto& entry : fs::directory_iterator(std::string(HOPSCOPE_CAPTURES_DIR) + "/lab")) {
        if (entry.path().extension() != ".pcap") continue;
        EXPECT_TRUE(listed.count(entry.path().stem().string()))
            << entry.path() << " is not checked by the golden tests";
    }
}

std::string ip_of(const Endpoint& e) {
    return to_string(e.addr);
}

/// One expected login of a .expect.json against what hopscope reports. Under full or strict TLS
/// the login is invisible by design: hopscope must say "unknown"/"incomplete", not guess.
void check_logins(const std::string& name, const Collected& c) {
    std::ifstream in(lab(name + ".expect.json"));
    ASSERT_TRUE(in) << name;
    nlohmann::json expect = nlohmann::json::parse(in);
    std::vector<bool> used(c.logins.size(), false);
    for (const auto& x : expect["logins"]) {
        if (!x.contains("auth")) continue;  // a connection that never reached LOGIN7
        const std::string client = kRoleIp.at(x["client"].get<std::string>());
        const std::string server = kRoleIp.at(x["server"].get<std::string>());
        const std::string tls = x.value("encryption", x.value("tls", ""));
        const bool hidden = tls == "full" || tls == "strict";
        const std::string auth = hidden ? "unknown" : x["auth"].get<std::string>();
        std::string outcome = x["outcome"].get<std::string>();
        if (outcome == "ok") outcome = "success";
        if (outcome == "failed") outcome = "failure";
        if (hidden) outcome = "incomplete";
        bool found = false;
        for (std::size_t i = 0; i < c.logins.size() && !found; ++i) {
            const auto& l = c.logins[i];
            if (used[i] || ip_of(l.flow.client) != client || ip_of(l.flow.server) != server)
                continue;
            if (to_string(l.auth) != auth || to_string(l.outcome) != outcome) continue;
            if (!hidden && l.anonymous != x.value("anonymous", false)) continue;
            const int err = x.value("error", 0);
            if (!hidden && (err ? !l.error || l.error->number != err : l.error.has_value()))
                continue;
            used[i] = found = true;
        }
        EXPECT_TRUE(found) << name << ": no login " << x.dump();
    }
    for (std::size_t i = 0; i < c.logins.size(); ++i)
        if (!used[i] && c.logins[i].outcome != Outcome::Incomplete)
            ADD_FAILURE() << name << ": unexpected login " << report::to_json(c.logins[i]).dump();
}

TEST(LabGolden, EveryScenarioGivesItsLoginsAndExactlyItsVerdicts) {
    for (const auto& s : kScenarios) {
        SCOPED_TRACE(s.file);
        Collected c;
        auto r = run_pipeline({lab(s.file + ".pcap")}, c);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(c.rules(), s.rules);
        check_logins(s.file, c);
    }
}

TEST(LabGolden, NtlmDoubleHopNamesTheCauseAndTheFix) {
    Collected c;
    run_pipeline({lab("5-double-hop-ntlm-anonymous.pcap")}, c);
    const analysis::Finding* f = nullptr;
    for (const auto& x : c.findings)
        if (x.rule == "HS010") f = &x;
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("LAB\\alice reached sqla"), std::string::npos) << f->summary;
    EXPECT_NE(f->summary.find("NT AUTHORITY\\ANONYMOUS LOGON"), std::string::npos);
    EXPECT_NE(f->remedy.find("setspn -S MSSQLSvc/<FQDN of sqla>:1433 LAB\\"), std::string::npos)
        << f->remedy;
    EXPECT_NE(f->remedy.find("MSSQLSvc/sqlb.lab.test:1433"), std::string::npos) << f->remedy;
    ASSERT_EQ(f->evidence.size(), 2u);
    EXPECT_NE(f->evidence[0].at.frame, 0u);
    EXPECT_EQ(f->display_filter.rfind("frame.number in {", 0), 0u);
    // The relayed error names the query that drew it.
    bool relayed = false;
    for (const auto& e : c.errors)
        relayed |=
            e.error.number == 18456 && e.statement.find("openquery(SQLB") != std::string::npos;
    EXPECT_TRUE(relayed);
}

TEST(LabGolden, KerberosLoginsGetSpnDelegationAndUserFromPort88) {
    Collected c;
    run_pipeline({lab("4-double-hop-delegation.pcap")}, c);
    ASSERT_FALSE(c.logins.empty());
    const auto& first = c.logins.front();
    EXPECT_EQ(first.auth, AuthKind::Kerberos);
    EXPECT_EQ(first.spn, "MSSQLSvc/sqla.lab.test:1433");
    EXPECT_EQ(first.delegation, analysis::Tristate::Yes);
    EXPECT_EQ(first.user, "alice");
    EXPECT_EQ(first.domain, "LAB.TEST");
}

TEST(LabGolden, EveryKerberosLoginWithItsTgsRepInTheCaptureNamesItsUser) {
    // The KDC's TGS-REP for the login's SPN to the login's client names the user in clear
    // (cname@crealm): every such login, on either hop, says who it was and where that came from.
    std::size_t checked = 0;
    for (const auto& s : kScenarios) {
        SCOPED_TRACE(s.file);
        Collected c;
        ASSERT_TRUE(run_pipeline({lab(s.file + ".pcap")}, c).ok());
        for (const auto& l : c.logins) {
            if (l.auth != AuthKind::Kerberos) continue;
            const analysis::KerberosEvent* rep = nullptr;
            for (const auto& k : c.kerberos)
                if (k.reply == "TGS-REP" && k.flow.client.addr == l.flow.client.addr &&
                    k.sname == l.spn && k.ts <= l.ts)
                    rep = &k;
            if (rep == nullptr) continue;
            SCOPED_TRACE(report::to_json(l).dump());
            EXPECT_EQ(l.user + "@" + l.domain, rep->client);
            EXPECT_EQ(l.user_source, analysis::UserSource::KdcReply);
            EXPECT_EQ(report::to_json(l)["user_source"], "kdc-reply");
            ++checked;
        }
    }
    // C's logins of scenarios 2, 4, 6, 7, 9, 9b, 10, 13, 15, and A's Kerberos logins to B.
    EXPECT_GE(checked, 20u);
}

TEST(LabGolden, TheChainNamesTheUserOnEachHop) {
    Collected c;
    run_pipeline({lab("4-double-hop-delegation.pcap")}, c);
    int to_b = 0;
    for (const auto& l : c.logins)
        if (ip_of(l.flow.server) == "10.77.0.4") {
            EXPECT_EQ(l.user, "alice");
            EXPECT_EQ(l.domain, "LAB.TEST");
            ++to_b;
        }
    EXPECT_EQ(to_b, 3);
    const analysis::Finding* f = nullptr;
    for (const auto& x : c.findings)
        if (x.rule == "HS050") f = &x;
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("alice@LAB.TEST -> sqla.lab.test -> sqlb.lab.test as alice@LAB.TEST"),
              std::string::npos)
        << f->summary;
    ASSERT_EQ(f->hops.size(), 2u);
    EXPECT_NE(f->hops[1].find("alice@LAB.TEST"), std::string::npos) << f->hops[1];
}

TEST(LabGolden, MiddleServerThatGivesUpAfterPreloginBreaksTheChain) {
    // 6x: A opens a connection to B just after C's Kerberos login without a delegated TGT and
    // closes it after PRELOGIN: linked into C's chain, with the cause seen on port 88.
    Collected c;
    ASSERT_TRUE(run_pipeline({lab("6x-double-hop-no-delegation-no-login7.pcap")}, c).ok());
    const analysis::Finding* f = nullptr;
    for (const auto& x : c.findings)
        if (x.rule == "HS013") f = &x;
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->severity, analysis::Severity::Error);
    EXPECT_NE(f->summary.find("sqla.lab.test could not build a credential for 10.77.0.4"),
              std::string::npos)
        << f->summary;
    EXPECT_NE(f->summary.find("Cannot generate SSPI context"), std::string::npos);
    EXPECT_NE(f->summary.find("did not ask for a forwarded TGT"), std::string::npos);
    EXPECT_NE(f->summary.find("alice@LAB.TEST -> sqla.lab.test -> 10.77.0.4"), std::string::npos);
    EXPECT_NE(f->remedy.find("Trust sqla.lab.test's service account for delegation"),
              std::string::npos)
        << f->remedy;
    // B's name was never on the wire: the SPN to trust says which name to fill in.
    EXPECT_NE(f->remedy.find("MSSQLSvc/<FQDN of 10.77.0.4>:1433"), std::string::npos);
    EXPECT_TRUE(f->missing.empty());
    ASSERT_EQ(f->hops.size(), 2u);
    EXPECT_NE(f->hops[1].find("no LOGIN7"), std::string::npos) << f->hops[1];
    EXPECT_EQ(f->display_filter, "frame.number in {39, 50}");
}

TEST(LabGolden, LinkedServerLoginMadeBeforeTheLoginackIsInTheChain) {
    // 4x: A logs in to B between C's LOGIN7 and A's LOGINACK to C, so A's login is reported
    // first; it is still C's chain, and the healthy verdict names both hops.
    Collected c;
    ASSERT_TRUE(
        run_pipeline({lab("4x-double-hop-delegation-checked-before-loginack.pcap")}, c).ok());
    ASSERT_EQ(c.logins.size(), 2u);
    EXPECT_EQ(ip_of(c.logins[0].flow.client), "10.77.0.3");  // reported before C's
    ASSERT_EQ(c.findings.size(), 1u);
    EXPECT_EQ(c.findings[0].rule, "HS050");
    EXPECT_NE(c.findings[0].summary.find("as alice@LAB.TEST"), std::string::npos)
        << c.findings[0].summary;
}

TEST(LabGolden, ConstrainedDelegationIsAHealthyDoubleHop) {
    // 18 (Samba AD DC): alice sends no forwarded TGT; SQLA (svc_sqla, allowed to delegate to
    // B's SPN) gets its ticket to B in her name (S4U2Proxy) and logs in to B as alice.
    Collected c;
    ASSERT_TRUE(run_pipeline({lab("18-constrained-delegation-allowed.pcap")}, c).ok());
    ASSERT_EQ(c.logins.size(), 2u);
    EXPECT_EQ(c.logins[0].delegation, analysis::Tristate::No);
    ASSERT_EQ(c.findings.size(), 1u);
    const analysis::Finding& f = c.findings[0];
    EXPECT_EQ(f.rule, "HS050");
    EXPECT_NE(f.summary.find("Healthy double hop through constrained delegation: alice@AD.LAB.TEST "
                             "-> sqla.ad.lab.test -> sqlb.ad.lab.test as alice@AD.LAB.TEST"),
              std::string::npos)
        << f.summary;
    EXPECT_NE(f.summary.find("got its ticket to MSSQLSvc/sqlb.ad.lab.test:1433 in the user's name "
                             "from the KDC (S4U2Proxy), without a forwarded TGT"),
              std::string::npos)
        << f.summary;
    // C's login, A's login, and A's S4U2Proxy exchange on port 88.
    ASSERT_EQ(f.evidence.size(), 3u);
    EXPECT_EQ(ip_of(f.evidence[2].flow.client), "10.77.0.3");
    EXPECT_EQ(f.evidence[2].flow.server.port, 88);
    EXPECT_NE(f.evidence[2].what.find("S4U2Proxy"), std::string::npos);
    // Scenario 4 (a forwarded TGT) keeps the plain form.
    Collected fwd;
    ASSERT_TRUE(run_pipeline({lab("4-double-hop-delegation.pcap")}, fwd).ok());
    for (const auto& x : fwd.findings)
        EXPECT_EQ(x.summary.find("constrained"), std::string::npos) << x.summary;
}

/// The findings of a refused S4U2Proxy request: the KDC exchange's (HS023) and the chain's
/// (HS011), each null when missing.
std::pair<const analysis::Finding*, const analysis::Finding*> refusal_findings(const Collected& c) {
    const analysis::Finding *kdc = nullptr, *chain = nullptr;
    for (const auto& x : c.findings) {
        if (x.rule == "HS023") kdc = &x;
        if (x.rule == "HS011") chain = &x;
    }
    return {kdc, chain};
}

TEST(LabGolden, RefusedConstrainedDelegationNamesTheAccountsAndTheFix) {
    // 19 (Samba AD DC): B's SPN is not in svc_sqla's msDS-AllowedToDelegateTo; the DC refuses
    // A's S4U2Proxy request (KDC_ERR_BADOPTION) and A reaches B anonymously.
    Collected c;
    ASSERT_TRUE(run_pipeline({lab("19-constrained-delegation-not-in-list.pcap")}, c).ok());
    const auto [kdc, chain] = refusal_findings(c);
    ASSERT_NE(kdc, nullptr);
    ASSERT_NE(chain, nullptr);
    for (const analysis::Finding* f : {kdc, chain}) {
        SCOPED_TRACE(f->rule);
        EXPECT_NE(f->summary.find("MSSQLSvc/sqlb.ad.lab.test:1433 is not in svc_sqla's "
                                  "msDS-AllowedToDelegateTo"),
                  std::string::npos)
            << f->summary;
        EXPECT_NE(f->remedy.find("Set-ADUser svc_sqla -Add "
                                 "@{'msDS-AllowedToDelegateTo'='MSSQLSvc/sqlb.ad.lab.test:1433'}"),
                  std::string::npos)
            << f->remedy;
        EXPECT_NE(f->remedy.find("-PrincipalsAllowedToDelegateToAccount (Get-ADUser svc_sqla)"),
                  std::string::npos)
            << f->remedy;
        EXPECT_NE(f->remedy.find("Set-ADComputer sqlb "), std::string::npos) << f->remedy;
    }
    EXPECT_NE(chain->summary.find("or alice@AD.LAB.TEST's ticket to the middle server was not "
                                  "forwardable"),
              std::string::npos)
        << chain->summary;
    EXPECT_NE(chain->summary.find("alice@AD.LAB.TEST -> sqla.ad.lab.test -> sqlb.ad.lab.test as "
                                  "NT AUTHORITY\\ANONYMOUS LOGON"),
              std::string::npos)
        << chain->summary;
}

TEST(LabGolden, ResourceBasedConstrainedDelegationLooksLikeConstrainedDelegation) {
    // 23 (Samba 4.22 DC): svc_sqla has no msDS-AllowedToDelegateTo; svc_sqlb's
    // msDS-AllowedToActOnBehalfOfOtherIdentity names svc_sqla. A's S4U2Proxy request and the
    // DC's ticket have the form of scenario 18's (the KDC's decision is not on the wire): the same
    // healthy verdict.
    Collected c;
    ASSERT_TRUE(run_pipeline({lab("23-rbcd-allowed.pcap")}, c).ok());
    ASSERT_EQ(c.findings.size(), 1u);
    EXPECT_NE(c.findings[0].summary.find("Healthy double hop through constrained delegation: "
                                         "alice@AD.LAB.TEST -> sqla.ad.lab.test -> "
                                         "sqlb.ad.lab.test as alice@AD.LAB.TEST"),
              std::string::npos)
        << c.findings[0].summary;
    ASSERT_EQ(c.findings[0].evidence.size(), 3u);
    EXPECT_NE(c.findings[0].evidence[2].what.find("S4U2Proxy"), std::string::npos);
}

TEST(LabGolden, RefusedResourceBasedDelegationNamesBothRemedies) {
    // 24 (Samba 4.22 DC): svc_sqlb allows another account, not svc_sqla. The refusal is a bare
    // KDC_ERR_BADOPTION (its FAST-armored inner KRB-ERROR has no e-data either), as in scenario
    // 19: which list the KDC checked cannot be told, so the finding names both remedies.
    Collected c;
    ASSERT_TRUE(run_pipeline({lab("24-rbcd-not-allowed.pcap")}, c).ok());
    const auto [kdc, chain] = refusal_findings(c);
    ASSERT_NE(kdc, nullptr);
    ASSERT_NE(chain, nullptr);
    for (const analysis::Finding* f : {kdc, chain}) {
        SCOPED_TRACE(f->rule);
        EXPECT_NE(f->summary.find("MSSQLSvc/sqlb.ad.lab.test:1433 is not in svc_sqla's "
                                  "msDS-AllowedToDelegateTo and the back-end's account does not "
                                  "allow svc_sqla (resource-based constrained delegation)"),
                  std::string::npos)
            << f->summary;
        EXPECT_NE(f->remedy.find("Set-ADUser svc_sqla -Add "
                                 "@{'msDS-AllowedToDelegateTo'='MSSQLSvc/sqlb.ad.lab.test:1433'}"),
                  std::string::npos)
            << f->remedy;
        // B's account (svc_sqlb) is nowhere on the wire of a refusal: named by its SPN.
        EXPECT_NE(f->remedy.find("Set-ADUser <account of MSSQLSvc/sqlb.ad.lab.test:1433> "
                                 "-PrincipalsAllowedToDelegateToAccount (Get-ADUser svc_sqla)"),
                  std::string::npos)
            << f->remedy;
    }
}

TEST(LabGolden, ProtocolTransitionAndTheSensitiveUserAreNamed) {
    // 20: NTLM to SQLA, then S4U2Self and S4U2Proxy: a healthy double hop, not an NTLM first hop.
    Collected pt;
    ASSERT_TRUE(run_pipeline({lab("20-protocol-transition.pcap")}, pt).ok());
    ASSERT_EQ(pt.findings.size(), 1u);
    EXPECT_NE(pt.findings[0].summary.find("S4U2Self, then S4U2Proxy: protocol transition"),
              std::string::npos)
        << pt.findings[0].summary;
    EXPECT_EQ(pt.findings[0].evidence.size(), 4u);
    // 21: the same without 'use any authentication protocol': the S4U2Proxy request is refused.
    Collected no_pt;
    ASSERT_TRUE(run_pipeline({lab("21-protocol-transition-not-allowed.pcap")}, no_pt).ok());
    const analysis::Finding* f = nullptr;
    for (const auto& x : no_pt.findings)
        if (x.rule == "HS010") f = &x;
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("tried protocol transition (S4U2Self for alice@AD.LAB.TEST), but its "
                              "S4U2Proxy request to MSSQLSvc/sqlb.ad.lab.test:1433 was refused"),
              std::string::npos)
        << f->summary;
    EXPECT_NE(f->remedy.find("Set-ADAccountControl svc_sqla -TrustedToAuthForDelegation $true"),
              std::string::npos)
        << f->remedy;
    // 22: alice is sensitive; her client did not even ask for a forwardable ticket to SQLA.
    Collected sensitive;
    ASSERT_TRUE(
        run_pipeline({lab("22-constrained-delegation-sensitive-user.pcap")}, sensitive).ok());
    f = nullptr;
    for (const auto& x : sensitive.findings)
        if (x.rule == "HS011") f = &x;
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("alice@AD.LAB.TEST's ticket to sqla.ad.lab.test is not forwardable"),
              std::string::npos)
        << f->summary;
    EXPECT_EQ(f->remedy.rfind("Clear 'Account is sensitive and cannot be delegated' for "
                              "alice@AD.LAB.TEST",
                              0),
              0u)
        << f->remedy;
}

TEST(LabGolden, DelegationIsTiedToTheLoginThatAskedForIt) {
    // Scenario 13: the same client delegates to sqla (trusted for delegation) and, a fraction of
    // a second later, does not delegate to sqlc (not trusted): the forwarded-TGT request
    // belongs to the first login only.
    Collected c;
    run_pipeline({lab("13-spnego-delegation-policy.pcap")}, c);
    int seen = 0;
    for (const auto& l : c.logins) {
        if (l.auth != AuthKind::Kerberos || ip_of(l.flow.client) != "10.77.0.2") continue;
        if (ip_of(l.flow.server) == "10.77.0.3") {
            EXPECT_EQ(l.delegation, analysis::Tristate::Yes);
            ++seen;
        }
        if (ip_of(l.flow.server) == "10.77.0.5") {
            EXPECT_EQ(l.delegation, analysis::Tristate::No);
            ++seen;
        }
    }
    EXPECT_EQ(seen, 2);
}

/// Writes the packets of `src` for which `keep(ip_src, ip_dst, sport, dport)` holds to `dst`.
/// Ethernet + IPv4 only, which is what the lab captures are.
void filter_pcap(
    const std::string& src, const std::string& dst,
    const std::function<bool(const std::string&, const std::string&, int, int)>& keep) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* in = pcap_open_offline(src.c_str(), err);
    ASSERT_NE(in, nullptr) << err;
    pcap_dumper_t* out = pcap_dump_open(in, dst.c_str());
    ASSERT_NE(out, nullptr);
    pcap_pkthdr* h;
    const u_char* p;
    while (pcap_next_ex(in, &h, &p) == 1) {
        if (h->caplen < 14 + 20 + 4 || p[12] != 0x08 || p[13] != 0x00) continue;
        const u_char* ip = p + 14;
        auto addr = [](const u_char* a) {
            return std::to_string(a[0]) + "." + std::to_string(a[1]) + "." + std::to_string(a[2]) +
                   "." + std::to_string(a[3]);
        };
        const std::size_t ihl = (ip[0] & 0x0F) * 4u;
        const u_char* l4 = ip + ihl;
        const int sport = (l4[0] << 8) | l4[1], dport = (l4[2] << 8) | l4[3];
        if (keep(addr(ip + 12), addr(ip + 16), sport, dport))
            pcap_dump(reinterpret_cast<u_char*>(out), h, p);
    }
    pcap_dump_close(out);
    pcap_close(in);
}

TEST(LabGolden, SplitPerHostAndMergedGivesTheSameVerdicts) {
    const fs::path dir =
        fs::temp_directory_path() / ("hopscope-golden-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    for (const auto& s : kScenarios) {
        SCOPED_TRACE(s.file);
        const std::string c_side = (dir / "c.pcap").string(), rest = (dir / "rest.pcap").string();
        // Sensor 1 on the client's segment, sensor 2 on the servers' segment.
        auto on_c = [](const std::string& a, const std::string& b, int, int) {
            return a == "10.77.0.2" || b == "10.77.0.2";
        };
        filter_pcap(lab(s.file + ".pcap"), c_side, on_c);
        filter_pcap(lab(s.file + ".pcap"), rest,
                    [&](const std::string& a, const std::string& b, int x, int y) {
                        return !on_c(a, b, x, y);
                    });
        Collected merged;
        ASSERT_TRUE(run_pipeline({c_side, rest}, merged).ok());
        EXPECT_EQ(merged.rules(), s.rules);
    }
    fs::remove_all(dir);
}

TEST(LabGolden, WithoutPort88TheVerdictSaysWhatIsMissing) {
    const fs::path dir =
        fs::temp_directory_path() / ("hopscope-nokdc-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const std::map<std::string, std::vector<std::string>> expect{
        // The cause (no forwarded TGT / BADOPTION) needs the KDC traffic: without it the verdict
        // stays, in its "missing evidence" form.
        {"6-double-hop-no-delegation", {"HS001", "HS003", "HS011"}},
        {"7-sensitive-user", {"HS001", "HS003", "HS011"}},
        {"5-double-hop-ntlm-anonymous", {"HS001", "HS003", "HS010"}},
        {"4-double-hop-delegation", {"HS050"}},
        {"6x-double-hop-no-delegation-no-login7", {"HS013", "HS043"}},
        // Constrained delegation without the middle server's S4U2Proxy exchange: a plain
        // healthy double hop, and a lost identity whose cause is not visible.
        {"18-constrained-delegation-allowed", {"HS050"}},
        {"19-constrained-delegation-not-in-list", {"HS001", "HS003", "HS011"}},
        {"23-rbcd-allowed", {"HS050"}},
        {"24-rbcd-not-allowed", {"HS001", "HS003", "HS011"}},
    };
    for (const auto& [name, rules] : expect) {
        SCOPED_TRACE(name);
        const std::string f = (dir / "nokdc.pcap").string();
        filter_pcap(lab(name + ".pcap"), f,
                    [](const std::string&, const std::string&, int sp, int dp) {
                        return sp != 88 && dp != 88;
                    });
        Collected c;
        ASSERT_TRUE(run_pipeline({f}, c).ok());
        EXPECT_TRUE(c.kerberos.empty());
        EXPECT_EQ(c.rules(), rules);
        for (const auto& x : c.findings)
            if (x.rule == "HS011" || x.rule == "HS013") {
                EXPECT_NE(x.missing.find("port 88"), std::string::npos);
                EXPECT_NE(x.summary.find("cannot be seen without its port-88 traffic"),
                          std::string::npos)
                    << x.summary;
            }
    }
    fs::remove_all(dir);
}

}  // namespace
}  // namespace hopscope::golden

namespace hopscope::golden {
namespace {

// The lab captures hold the lab's passwords (SQL auth in LOGIN7, obfuscated; NTLM responses
// computed from them; Kerberos keys derived from them). None of it may reach an event.
TEST(LabGolden, NoSecretReachesAnyEvent) {
    std::size_t events = 0;
    for (const auto& entry : fs::directory_iterator(std::string(HOPSCOPE_CAPTURES_DIR) + "/lab")) {
        if (entry.path().extension() != ".pcap") continue;
        SCOPED_TRACE(entry.path().filename().string());
        Collected c;
        ASSERT_TRUE(run_pipeline({entry.path().string()}, c).ok());
        for (const auto& line : c.json) {
            ++events;
            for (const char* secret : {"Passw0rd", "S3cret", "masterpw"})
                EXPECT_EQ(line.find(secret), std::string::npos) << line;
            // No field carries raw bytes: a long run of hex digits would be a response or key.
            std::size_t run = 0;
            for (char ch : line) {
                run = std::isxdigit(static_cast<unsigned char>(ch)) ? run + 1 : 0;
                ASSERT_LT(run, 32u) << line;
            }
        }
    }
    EXPECT_GT(events, 50u);
}

}  // namespace
}  // namespace hopscope::golden
