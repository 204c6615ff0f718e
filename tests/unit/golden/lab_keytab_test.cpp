// The lab captures through the whole pipeline with their keytabs (`hopscope analyze --keytab`):
// the delegation facts of each Kerberos login in its event, the user named from the decrypted
// ticket, the verdicts the keytab turns into facts (HS014), another run's keytab as a problem per
// login, and no key of the keytab in any JSON line or console line.
#include "../lab_keytab.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "hopscope/captures/keytab.hpp"
#include "hopscope/report/console.hpp"
#include "run_pipeline.hpp"

namespace hopscope::golden {
namespace {

using analysis::LoginEvent;

constexpr auto lab = &testing::lab_file;
constexpr auto keytab = &testing::lab_keytab;

Collected run(const std::string& capture, const std::string& keytab_of) {
    const auto k = keytab(keytab_of);
    Collected c;
    EXPECT_TRUE(run_pipeline({lab(capture + ".pcap")}, c, nullptr, k.get()).ok());
    return c;
}

const char* const kC = "10.77.0.2";
const char* const kA = "10.77.0.3";

/// The Kerberos login from `client` (an address), or nullptr.
const LoginEvent* kerberos_login_from(const Collected& c, const std::string& client) {
    for (const auto& l : c.logins)
        if (l.auth == AuthKind::Kerberos && to_string(l.flow.client.addr) == client) return &l;
    return nullptr;
}

const analysis::Finding* finding(const Collected& c, const std::string& rule) {
    for (const auto& f : c.findings)
        if (f.rule == rule) return &f;
    return nullptr;
}

TEST(LabKeytab, DelegatedDoubleHopShowsDelegAndTheForwardedTgtOnTheFirstHop) {
    const Collected c = run("4-double-hop-delegation", "4-double-hop-delegation");
    const LoginEvent* in = kerberos_login_from(c, kC);
    ASSERT_NE(in, nullptr);
    ASSERT_TRUE(in->keytab);
    const auto& k = *in->keytab;
    EXPECT_EQ(k.problem, "");
    EXPECT_TRUE(k.ticket_decrypted);
    EXPECT_TRUE(k.forwardable);
    EXPECT_EQ(k.client, "alice@LAB.TEST");
    EXPECT_EQ(k.enctype, "aes256-cts-hmac-sha1-96");
    EXPECT_EQ(k.authtime.size(), 20u) << k.authtime;  // 2026-11-26T15:00:05Z
    EXPECT_TRUE(k.deleg);
    EXPECT_TRUE(k.forwarded_tgt);
    EXPECT_EQ(k.forwarded_tgt_client, "alice@LAB.TEST");
    EXPECT_NE(std::find(k.forwarded_tgt_flags.begin(), k.forwarded_tgt_flags.end(), "forwarded"),
              k.forwarded_tgt_flags.end());
    EXPECT_EQ(k.ap_req_at.frame, 49u);  // C's LOGIN7 with the AP-REQ (keytab_lab_test)
    // A's login to B as alice, with the delegated TGT: no DELEG of its own.
    const LoginEvent* out = kerberos_login_from(c, kA);
    ASSERT_NE(out, nullptr);
    ASSERT_TRUE(out->keytab);
    EXPECT_EQ(out->keytab->ap_req_at.frame, 70u);
    EXPECT_FALSE(out->keytab->deleg);
    EXPECT_FALSE(out->keytab->forwarded_tgt);
    EXPECT_TRUE(out->keytab->forwarded) << "a ticket got with the forwarded TGT";
    EXPECT_EQ(out->keytab->client, "alice@LAB.TEST");
    // The healthy verdict stays the only one.
    EXPECT_EQ(c.rules(), std::vector<std::string>{"HS050"});
    // In the JSON lines: the scenario's double hops, the first with its AP-REQ in frame 49.
    std::size_t delegated = 0;
    bool frame49 = false;
    for (const auto& line : c.json)
        if (line.find("\"delegation_proof\":{\"deleg\":true,\"forwarded_tgt\":true") !=
            std::string::npos) {
            ++delegated;
            EXPECT_NE(line.find("\"kerberos_ticket\":{\"forwardable\":true"), std::string::npos)
                << line;
            EXPECT_NE(line.find("\"user_source\":\"keytab\""), std::string::npos) << line;
            frame49 = frame49 || line.find("\"at\":{\"frame\":49,") != std::string::npos;
        }
    EXPECT_GE(delegated, 2u);
    EXPECT_TRUE(frame49);
}

TEST(LabKeytab, ConstrainedDelegationTicketNamesWhoAskedForIt) {
    // Scenario 18 (AD): B's keytab opens the ticket A got by S4U2Proxy; the KDC wrote into its
    // PAC (S4U_DELEGATION_INFO) the service asked for and the account that asked.
    const Collected c =
        run("18-constrained-delegation-allowed", "18-constrained-delegation-allowed");
    const LoginEvent* out = kerberos_login_from(c, kA);
    ASSERT_NE(out, nullptr);
    ASSERT_TRUE(out->keytab);
    EXPECT_EQ(out->keytab->client, "alice@AD.LAB.TEST");
    EXPECT_EQ(out->keytab->s4u2proxy_target, "MSSQLSvc/sqlb.ad.lab.test:1433");
    EXPECT_EQ(out->keytab->transited_services, std::vector<std::string>{"svc_sqla@AD.LAB.TEST"});
    // C's own ticket to A came from the KDC directly: no delegation info.
    const LoginEvent* in = kerberos_login_from(c, kC);
    ASSERT_NE(in, nullptr);
    ASSERT_TRUE(in->keytab);
    EXPECT_TRUE(in->keytab->ticket_decrypted);
    EXPECT_TRUE(in->keytab->transited_services.empty());
    EXPECT_EQ(in->keytab->s4u2proxy_target, "");
    EXPECT_EQ(c.rules(), std::vector<std::string>{"HS050"});
    const analysis::Finding* f = finding(c, "HS050");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("was issued through svc_sqla@AD.LAB.TEST (PAC "
                              "S4U_DELEGATION_INFO, target MSSQLSvc/sqlb.ad.lab.test:1433)"),
              std::string::npos)
        << f->summary;
    bool json = false;
    for (const auto& line : c.json)
        json =
            json || line.find(
                        "\"s4u2proxy_target\":\"MSSQLSvc/sqlb.ad.lab.test:1433\","
                        "\"transited_services\":[\"svc_sqla@AD.LAB.TEST\"]") != std::string::npos;
    EXPECT_TRUE(json);
}

/// The S4U2Proxy exchange (TGS-REQ with cname-in-addl-tkt) of a capture, or nullptr.
const analysis::KerberosEvent* s4u2proxy(const Collected& c) {
    for (const auto& k : c.kerberos)
        if (k.has_option(auth::kdc_option::CnameInAddlTkt)) return &k;
    return nullptr;
}

TEST(LabKeytab, S4u2ProxyEvidenceTicketOnTheKerberosEvent) {
    // The AD scenarios: what the keytab shows of the evidence ticket of A's S4U2Proxy request
    // (18, 19, 23, 24 forwardable; 21 an S4U2Self ticket of an account without protocol
    // transition, 22 a sensitive user's ticket: not forwardable) and of the ticket granted.
    for (const auto& [s, forwardable] : testing::kEvidenceTicketForwardable) {
        SCOPED_TRACE(s);
        const Collected c = run(s, s);
        const analysis::KerberosEvent* k = s4u2proxy(c);
        ASSERT_NE(k, nullptr);
        ASSERT_TRUE(k->extra().evidence_ticket);
        EXPECT_TRUE(k->extra().evidence_ticket->decrypted) << k->extra().evidence_ticket->problem;
        EXPECT_EQ(k->extra().evidence_ticket->problem, "");
        EXPECT_EQ(k->extra().evidence_ticket->client, "alice@AD.LAB.TEST");
        EXPECT_EQ(k->extra().evidence_ticket->forwardable, forwardable);
        EXPECT_TRUE(k->extra().fast_armored);
        const bool granted = k->reply == "TGS-REP";
        EXPECT_EQ(granted, std::string(s).find("allowed") != std::string::npos &&
                               std::string(s).find("not-allowed") == std::string::npos);
        if (granted) {
            ASSERT_TRUE(k->extra().reply_ticket);
            EXPECT_TRUE(k->extra().reply_ticket->decrypted);
            EXPECT_EQ(k->extra().reply_ticket->s4u2proxy_target, "MSSQLSvc/sqlb.ad.lab.test:1433");
            EXPECT_EQ(k->extra().reply_ticket->transited_services,
                      std::vector<std::string>{"svc_sqla@AD.LAB.TEST"});
        } else {
            EXPECT_FALSE(k->extra().reply_ticket);
        }
        bool json = false;
        for (const auto& line : c.json)
            json = json ||
                   (line.find("\"evidence_ticket\":{\"decrypted\":true,\"forwardable\":" +
                              std::string(forwardable ? "true" : "false")) != std::string::npos &&
                    line.find("\"fast_armor\":\"not decrypted\"") != std::string::npos);
        EXPECT_TRUE(json);
    }
}

TEST(LabKeytab, RefusedS4u2ProxyNamesTheCauseTheEvidenceTicketShows) {
    // 19 and 24: a forwardable evidence ticket, so the refusal is the delegation list / RBCD.
    for (const char* s : {"19-constrained-delegation-not-in-list", "24-rbcd-not-allowed"}) {
        SCOPED_TRACE(s);
        const Collected c = run(s, s);
        const auto* f = finding(c, "HS023");
        ASSERT_NE(f, nullptr);
        EXPECT_NE(f->summary.find("is not in svc_sqla's msDS-AllowedToDelegateTo and the "
                                  "back-end's account does not allow svc_sqla (resource-based "
                                  "constrained delegation) (the keytab shows the evidence ticket "
                                  "for alice@AD.LAB.TEST is forwardable (frame 73))"),
                  std::string::npos)
            << f->summary;
        EXPECT_EQ(f->remedy.find("sensitive"), std::string::npos) << f->remedy;
        EXPECT_NE(f->remedy.find("PrincipalsAllowedToDelegateToAccount"), std::string::npos);
        bool evidence = false;
        for (const auto& e : f->evidence)
            evidence = evidence || (e.at.frame == 73 &&
                                    e.what.find("forwardable (keytab)") != std::string::npos);
        EXPECT_TRUE(evidence);
        const auto* chain = finding(c, "HS011");
        ASSERT_NE(chain, nullptr);
        EXPECT_NE(chain->summary.find("the evidence ticket for alice@AD.LAB.TEST is forwardable "
                                      "(frame 73)"),
                  std::string::npos)
            << chain->summary;
    }
    // 21: the S4U2Self ticket of an account without protocol transition is not forwardable.
    const Collected pt =
        run("21-protocol-transition-not-allowed", "21-protocol-transition-not-allowed");
    const auto* f = finding(pt, "HS023");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("the keytab shows the evidence ticket for alice@AD.LAB.TEST (its "
                              "ticket to svc_sqla) was not forwardable (frame 56)"),
              std::string::npos)
        << f->summary;
    EXPECT_NE(f->remedy.find("Set-ADAccountControl svc_sqla -TrustedToAuthForDelegation $true"),
              std::string::npos)
        << f->remedy;
    f = finding(pt, "HS010");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("the keytab shows the S4U2Self ticket for alice@AD.LAB.TEST it gave "
                              "as evidence was not forwardable (frame 56): svc_sqla may not use "
                              "any authentication protocol"),
              std::string::npos)
        << f->summary;
    // 22: the sensitive user's ticket to A, given as evidence, is not forwardable.
    const Collected sensitive =
        run("22-constrained-delegation-sensitive-user", "22-constrained-delegation-sensitive-user");
    f = finding(sensitive, "HS011");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("alice@AD.LAB.TEST's ticket to sqla.ad.lab.test is not forwardable "
                              "(keytab: the S4U2Proxy request's evidence ticket (frame 73))"),
              std::string::npos)
        << f->summary;
    EXPECT_NE(f->remedy.find("Clear 'Account is sensitive"), std::string::npos) << f->remedy;
}

TEST(LabKeytab, AnotherRunsKeytabLeavesTheEvidenceTicketAProblem) {
    // 19's capture with 23's keytab: same names and kvno, other keys.
    const Collected c = run("19-constrained-delegation-not-in-list", "23-rbcd-allowed");
    const analysis::KerberosEvent* k = s4u2proxy(c);
    ASSERT_NE(k, nullptr);
    ASSERT_TRUE(k->extra().evidence_ticket);
    EXPECT_FALSE(k->extra().evidence_ticket->decrypted);
    EXPECT_EQ(k->extra().evidence_ticket->problem,
              "keytab: decrypt failed (wrong key?) with svc_sqla@AD.LAB.TEST kvno 2 etype 18 "
              "(evidence ticket)");
    // The verdicts are those of the run without a keytab.
    Collected plain;
    ASSERT_TRUE(run_pipeline({lab("19-constrained-delegation-not-in-list.pcap")}, plain).ok());
    EXPECT_EQ(c.rules(), plain.rules());
    const auto* with = finding(c, "HS023");
    const auto* without = finding(plain, "HS023");
    ASSERT_TRUE(with && without);
    EXPECT_EQ(with->summary, without->summary);
}

TEST(LabKeytab, EveryDecryptedLoginNamesItsUserFromTheTicket) {
    for (const char* s : {"4-double-hop-delegation", "6-double-hop-no-delegation",
                          "13-spnego-delegation-policy", "2-kerberos-single-hop"}) {
        SCOPED_TRACE(s);
        const Collected c = run(s, s);
        std::size_t kerberos = 0;
        for (const auto& l : c.logins) {
            if (l.auth != AuthKind::Kerberos || !l.keytab || !l.keytab->ticket_decrypted) continue;
            ++kerberos;
            EXPECT_EQ(l.user_source, analysis::UserSource::Keytab);
            EXPECT_EQ(l.user + "@" + l.domain, l.keytab->client);
        }
        EXPECT_GE(kerberos, 1u);
    }
}

TEST(LabKeytab, NoDelegationIsProvedOnTheFirstHopWithItsFrame) {
    const Collected c = run("6-double-hop-no-delegation", "6-double-hop-no-delegation");
    const LoginEvent* in = kerberos_login_from(c, kC);
    ASSERT_NE(in, nullptr);
    ASSERT_TRUE(in->keytab);
    EXPECT_TRUE(in->keytab->delegation_known());
    EXPECT_FALSE(in->keytab->deleg);
    EXPECT_FALSE(in->keytab->forwarded_tgt);
    const std::uint64_t ap_frame = in->keytab->ap_req_at.frame;
    ASSERT_NE(ap_frame, 0u);
    // The proof replaces the inference from port 88 (HS011).
    const auto* f = finding(c, "HS014");
    ASSERT_NE(f, nullptr) << "rules: " << c.rules().size();
    EXPECT_EQ(finding(c, "HS011"), nullptr);
    EXPECT_NE(f->summary.find("carried no forwarded TGT (frame " + std::to_string(ap_frame) + ")"),
              std::string::npos)
        << f->summary;
    EXPECT_NE(f->summary.find("did not request delegation"), std::string::npos) << f->summary;
    EXPECT_NE(f->remedy.find("Trust sqla"), std::string::npos) << f->remedy;
    bool evidence = false;
    for (const auto& e : f->evidence)
        if (e.at.frame == ap_frame && e.at.stream_offset == in->keytab->ap_req_at.stream_offset &&
            e.what.find("keytab") != std::string::npos)
            evidence = true;
    EXPECT_TRUE(evidence);
    EXPECT_NE(f->display_filter.find(std::to_string(ap_frame)), std::string::npos)
        << f->display_filter;
}

TEST(LabKeytab, TheTicketNamesWhyNoTgtWasDelegated) {
    // 7: bob is 'sensitive and cannot be delegated': his ticket is not forwardable.
    const Collected sensitive = run("7-sensitive-user", "7-sensitive-user");
    const auto* f = finding(sensitive, "HS014");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(finding(sensitive, "HS011"), nullptr);
    EXPECT_NE(f->summary.find("the ticket is not forwardable"), std::string::npos) << f->summary;
    EXPECT_NE(f->remedy.find("Clear 'Account is sensitive"), std::string::npos) << f->remedy;
    // 13: a client that delegates like Windows does so to sqla (ok-as-delegate), not to sqlc.
    const Collected policy = run("13-spnego-delegation-policy", "13-spnego-delegation-policy");
    f = finding(policy, "HS014");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("-> sqlc.lab.test -> sqlb.lab.test"), std::string::npos)
        << f->summary;
    EXPECT_NE(f->summary.find("not ok-as-delegate"), std::string::npos) << f->summary;
    std::size_t ok_as_delegate_deleg = 0;
    for (const auto& l : policy.logins)
        if (l.keytab && l.keytab->ok_as_delegate && l.keytab->deleg && l.keytab->forwarded_tgt)
            ++ok_as_delegate_deleg;
    EXPECT_GE(ok_as_delegate_deleg, 1u);
}

TEST(LabKeytab, MiddleServerThatGivesUpAfterPreloginSaysWhatTheKeytabShows) {
    // 6x: scenario 2's logins (its keytab) and a connection from A to B closed after PRELOGIN.
    const Collected c = run("6x-double-hop-no-delegation-no-login7", "2-kerberos-single-hop");
    const auto* f = finding(c, "HS013");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("the keytab shows the ticket to sqla.lab.test carried no forwarded "
                              "TGT (frame "),
              std::string::npos)
        << f->summary;
}

TEST(LabKeytab, AnotherRunsKeytabIsAProblemPerLoginNotACrash) {
    const Collected c = run("4-double-hop-delegation", "6-double-hop-no-delegation");
    std::size_t kerberos = 0;
    for (const auto& l : c.logins) {
        if (l.auth != AuthKind::Kerberos) continue;
        ++kerberos;
        ASSERT_TRUE(l.keytab);
        EXPECT_FALSE(l.keytab->ticket_decrypted);
        EXPECT_FALSE(l.keytab->delegation_known());
        EXPECT_EQ(l.keytab->problem.rfind("keytab: ", 0), 0u) << l.keytab->problem;
        EXPECT_NE(l.user_source, analysis::UserSource::Keytab);
    }
    EXPECT_GE(kerberos, 2u);
    std::size_t problems = 0;
    for (const auto& line : c.json) {
        if (line.find("\"keytab_problem\":\"keytab: ") != std::string::npos) ++problems;
        EXPECT_EQ(line.find("delegation_proof"), std::string::npos) << line;
    }
    EXPECT_EQ(problems, kerberos);
    // The verdicts are those of the run without a keytab.
    Collected plain;
    ASSERT_TRUE(run_pipeline({lab("4-double-hop-delegation.pcap")}, plain).ok());
    EXPECT_EQ(c.rules(), plain.rules());
}

// ---- no key of the keytab in any output ------------------------------------------------------

std::uint32_t be(const std::string& b, std::size_t at, int n) {
    std::uint32_t v = 0;
    for (int i = 0; i < n; ++i)
        v = (v << 8) | static_cast<unsigned char>(b.at(at + static_cast<std::size_t>(i)));
    return v;
}

/// Every key in an MIT keytab file (format 0x0502): read here independently of the code under
/// test.
std::vector<std::string> keytab_keys(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    const std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> keys;
    EXPECT_EQ(be(b, 0, 2), 0x0502u) << path;
    std::size_t p = 2;
    while (p + 4 <= b.size()) {
        const auto size = static_cast<std::int32_t>(be(b, p, 4));
        p += 4;
        if (size <= 0) {  // a hole
            p += static_cast<std::size_t>(-static_cast<std::int64_t>(size));
            continue;
        }
        const std::size_t end = p + static_cast<std::size_t>(size);
        std::size_t q = p;
        const std::uint32_t components = be(b, q, 2);
        q += 2;
        for (std::uint32_t i = 0; i <= components; ++i)  // realm, then the components
            q += 2 + be(b, q, 2);
        q += 4 + 4 + 1 + 2;  // name type, timestamp, 8-bit kvno, enctype
        const std::uint32_t len = be(b, q, 2);
        keys.push_back(b.substr(q + 2, len));
        p = end;
    }
    return keys;
}

std::string hex(const std::string& raw) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s;
    for (unsigned char ch : raw) {
        s.push_back(kHex[ch >> 4]);
        s.push_back(kHex[ch & 0xF]);
    }
    return s;
}

/// The JSON lines and the console view (every login, KDC exchange and finding, then the
/// summary) of a capture analysed with its keytab, as `hopscope analyze -v --json` writes them.
struct Rendered : pipeline::EventSink {
    std::vector<std::string> json;
    char* text = nullptr;
    std::size_t text_size = 0;
    std::FILE* console_out = open_memstream(&text, &text_size);
    report::ConsoleRenderer console{console_out, false};
    const pipeline::Pipeline* p = nullptr;

    ~Rendered() override {
        if (console_out) std::fclose(console_out);
        std::free(text);  // NOLINT(cppcoreguidelines-no-malloc): open_memstream's buffer
    }
    void on_login(const LoginEvent& e) override {
        json.push_back(report::to_json(e).dump());
        console.login(e, p->analyzer());
    }
    void on_kerberos(const analysis::KerberosEvent& e) override {
        json.push_back(report::to_json(e).dump());
        console.kerberos(e);
    }
    void on_server_error(const analysis::ServerErrorEvent& e) override {
        json.push_back(report::to_json(e).dump());
        console.server_error(e);
    }
    void on_finding(const analysis::Finding& f) override {
        json.push_back(report::to_json(f).dump());
        console.finding(f);
    }
    std::string console_text() {
        std::fflush(console_out);
        return std::string(text, text_size);
    }
};

TEST(LabKeytab, NoKeyOfTheKeytabInJsonOrConsole) {
    for (const char* s :
         {"4-double-hop-delegation", "6-double-hop-no-delegation", "13-spnego-delegation-policy",
          "7-sensitive-user", "18-constrained-delegation-allowed",
          "19-constrained-delegation-not-in-list", "21-protocol-transition-not-allowed",
          "22-constrained-delegation-sensitive-user", "23-rbcd-allowed", "24-rbcd-not-allowed"}) {
        SCOPED_TRACE(s);
        const auto k = keytab(s);
        ASSERT_TRUE(k);
        Rendered r;
        pipeline::Pipeline::Options o;
        o.kerberos_keys = k.get();
        pipeline::Pipeline p(r, o);
        r.p = &p;
        captures::StreamAssembler assembler(p);
        ASSERT_TRUE(captures::read_captures({lab(std::string(s) + ".pcap")}, assembler).ok());
        p.finish(Timestamp{});
        r.console.summary(p.analyzer());
        std::string all = r.console_text();
        for (const auto& line : r.json)
            all += line + "\n";
        // (21's logins are NTLM: there the keytab opens only the port-88 tickets.)
        ASSERT_TRUE(all.find("kerberos_ticket") != std::string::npos ||
                    all.find("\"evidence_ticket\":{\"decrypted\":true") != std::string::npos)
            << "the keytab was not used";
        ASSERT_TRUE(all.find(" ticket=") != std::string::npos ||
                    all.find(" evidence-ticket=") != std::string::npos)
            << "nor shown on the console";
        std::string lower = all;
        for (char& ch : lower)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        // The lab users' password (alice, bob) is in no output either.
        EXPECT_EQ(all.find("Passw0rd"), std::string::npos);
        const auto keys = keytab_keys(lab(std::string(s) + ".keytab"));
        ASSERT_GE(keys.size(), 6u);
        for (const auto& key : keys) {
            ASSERT_GE(key.size(), 16u);
            const std::string h = hex(key.substr(0, 8));
            EXPECT_EQ(lower.find(h), std::string::npos) << "a key's hex is in the output";
            EXPECT_EQ(all.find(key.substr(0, 8)), std::string::npos) << "a key is in the output";
        }
    }
}

}  // namespace
}  // namespace hopscope::golden
