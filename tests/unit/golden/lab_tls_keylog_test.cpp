// The lab's TLS scenarios (12a-12f, 14, 25) with the key log the lab server wrote for them
// (captures/lab/<id>.keylog): every login is read as if it had been clear - the auth, outcome,
// user and error of its .expect.json - and the verdicts are those of the clear-text counterpart
// (full TLS 12b/12d/12f like login-only 12a/12c/12e; strict 14 like the NTLM double hop 12e).
// Without the key log they stay as LabGolden has them. tshark is the reference: with the same
// key log it decrypts the same captures and finds the same LOGIN7s inside (skipped without it).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../lab_keytab.hpp"
#include "../run_command.hpp"
#include "hopscope/tls/keylog.hpp"
#include "run_pipeline.hpp"

namespace hopscope::golden {
namespace {

std::string lab(const std::string& name) {
    return std::string(HOPSCOPE_CAPTURES_DIR) + "/lab/" + name;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

const std::map<std::string, std::string> kRoleIp{{"C", "10.77.0.2"},    {"A", "10.77.0.3"},
                                                 {"SQLA", "10.77.0.3"}, {"SQLB", "10.77.0.4"},
                                                 {"SQLC", "10.77.0.5"}, {"SQLX", "10.77.0.6"}};

struct TlsScenario {
    std::string file;
    std::vector<std::string> rules_with_keys;
    bool strict = false;
};

const std::vector<TlsScenario> kTlsScenarios{
    {"12a-ntlm-tls-login-only", {}},
    {"12b-ntlm-tls-full", {}},  // as 12a: the HS090 "not visible" is gone
    {"12c-double-hop-delegation-tls-login-only", {"HS050"}},
    {"12d-double-hop-delegation-tls-full", {"HS050"}},
    {"12e-double-hop-ntlm-tls-login-only", {"HS001", "HS003", "HS010"}},
    {"12f-double-hop-ntlm-tls-full", {"HS001", "HS003", "HS010"}},
    {"14-tds8-strict-ntlm-double-hop", {"HS001", "HS003", "HS010"}, true},
    {"25-extended-protection", {}},
};

tls::KeyLog load_keylog(const std::string& name) {
    tls::KeyLog log;
    const auto errors = log.add_text(slurp(lab(name + ".keylog")));
    EXPECT_TRUE(errors.empty()) << name << ": line " << errors.front().line << ": "
                                << errors.front().message;
    EXPECT_GT(log.sessions(), 0u) << name;
    return log;
}

std::string ip_of(const Endpoint& e) {
    return to_string(e.addr);
}

TEST(LabTlsKeylog, EveryTlsLoginIsReadAsIfClear) {
    for (const auto& s : kTlsScenarios) {
        SCOPED_TRACE(s.file);
        const tls::KeyLog log = load_keylog(s.file);
        Collected c;
        ASSERT_TRUE(run_pipeline({lab(s.file + ".pcap")}, c, &log).ok());
        EXPECT_EQ(c.rules(), s.rules_with_keys);
        for (const auto& l : c.logins) {
            EXPECT_NE(l.auth, AuthKind::Unknown) << report::to_json(l).dump();
            EXPECT_NE(l.outcome, analysis::Outcome::Incomplete) << report::to_json(l).dump();
            EXPECT_NE(l.tds_version, 0u) << "LOGIN7 not decoded: " << report::to_json(l).dump();
        }
        // Every login of the expectations, with its auth, outcome, anonymity and error.
        std::ifstream in(lab(s.file + ".expect.json"));
        const nlohmann::json expect = nlohmann::json::parse(in);
        std::vector<bool> used(c.logins.size(), false);
        for (const auto& x : expect["logins"]) {
            if (!x.contains("auth")) continue;
            const std::string client = kRoleIp.at(x["client"].get<std::string>());
            const std::string server = kRoleIp.at(x["server"].get<std::string>());
            std::string outcome = x["outcome"].get<std::string>();
            if (outcome == "ok") outcome = "success";
            if (outcome == "failed") outcome = "failure";
            bool found = false;
            for (std::size_t i = 0; i < c.logins.size() && !found; ++i) {
                const auto& l = c.logins[i];
                if (used[i] || ip_of(l.flow.client) != client || ip_of(l.flow.server) != server)
                    continue;
                if (to_string(l.auth) != x["auth"].get<std::string>() ||
                    to_string(l.outcome) != outcome || l.anonymous != x.value("anonymous", false))
                    continue;
                const int err = x.value("error", 0);
                if (err ? !l.error || l.error->number != err : l.error.has_value()) continue;
                if (x.contains("user") && !x["anonymous"].get<bool>()) {
                    const std::string user = x["user"].get<std::string>();
                    const std::string got = l.domain.empty() ? l.user : l.domain + "\\" + l.user;
                    if (l.auth == AuthKind::Ntlm && got != user) continue;
                }
                used[i] = found = true;
            }
            EXPECT_TRUE(found) << "no login " << x.dump();
        }
        for (std::size_t i = 0; i < c.logins.size(); ++i)
            EXPECT_TRUE(used[i]) << "unexpected login " << report::to_json(c.logins[i]).dump();
    }
}

TEST(LabTlsKeylog, TheClientsOwnKeyLogGivesTheSameLogins) {
    // <id>.client.keylog: what FreeTDS (GnuTLS, SSLKEYLOGFILE) and tedious (node --tls-keylog)
    // wrote themselves; impacket (pyOpenSSL) writes none. Every login it decrypts is the very
    // login the server's key log gives.
    for (const auto& s : kTlsScenarios) {
        SCOPED_TRACE(s.file);
        tls::KeyLog client;
        ASSERT_TRUE(client.add_text(slurp(lab(s.file + ".client.keylog"))).empty());
        const tls::KeyLog server = load_keylog(s.file);
        Collected a;
        Collected b;
        ASSERT_TRUE(run_pipeline({lab(s.file + ".pcap")}, a, &client).ok());
        ASSERT_TRUE(run_pipeline({lab(s.file + ".pcap")}, b, &server).ok());
        ASSERT_EQ(a.logins.size(), b.logins.size());
        int decrypted = 0;
        for (std::size_t i = 0; i < a.logins.size(); ++i) {
            if (a.logins[i].library.empty()) continue;  // LOGIN7 not read: not the client's
            ++decrypted;
            EXPECT_EQ(report::to_json(a.logins[i]).dump(), report::to_json(b.logins[i]).dump());
        }
        EXPECT_GT(decrypted, 0);
    }
}

TEST(LabTlsKeylog, AKeyLogWithoutTheSessionsSaysSo) {
    // The key log of another run: the right format, none of these sessions.
    const tls::KeyLog other = load_keylog("12b-ntlm-tls-full");
    Collected c;
    ASSERT_TRUE(run_pipeline({lab("12d-double-hop-delegation-tls-full.pcap")}, c, &other).ok());
    EXPECT_EQ(c.rules(), (std::vector<std::string>{"HS050"}));  // as without keys
    int hidden = 0;
    for (const auto& l : c.logins) {
        if (ip_of(l.flow.client) != "10.77.0.2") continue;
        ++hidden;
        EXPECT_EQ(l.auth, AuthKind::Unknown);
        EXPECT_NE(l.auth_detail.find("not decrypted: no CLIENT_RANDOM"), std::string::npos)
            << l.auth_detail;
    }
    EXPECT_GT(hidden, 0);
}

TEST(LabTlsKeylog, NoSecretReachesTheEvents) {
    for (const auto& s : kTlsScenarios) {
        SCOPED_TRACE(s.file);
        const std::string text = slurp(lab(s.file + ".keylog"));
        const tls::KeyLog log = load_keylog(s.file);
        Collected c;
        ASSERT_TRUE(run_pipeline({lab(s.file + ".pcap")}, c, &log).ok());
        std::string all;
        for (const auto& j : c.json)
            all += j + "\n";
        std::istringstream lines(text);
        std::string label, random, secret;
        while (lines >> label >> random >> secret) {
            ASSERT_GE(secret.size(), 64u);
            // any 16 hex digits of a secret, either case
            std::string upper = secret;
            for (auto& ch : upper)
                ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            for (std::size_t i = 0; i + 16 <= secret.size(); i += 16) {
                EXPECT_EQ(all.find(secret.substr(i, 16)), std::string::npos) << label;
                EXPECT_EQ(all.find(upper.substr(i, 16)), std::string::npos) << label;
            }
        }
    }
}

TEST(LabTlsKeylog, ChannelBindingsAsTheLabsClientsPutThemOnTheWire) {
    // Scenario 25: hopscope-labclient binds its NTLM login (gss-ntlmssp: MsvAvChannelBindings)
    // and its Kerberos login (MIT: the GSS checksum of the authenticator) to the TLS session;
    // FreeTDS binds nothing. Read inside TLS with the server's key log, and the authenticator
    // with the run's keytab, that is what the login events say - what HS062 stands on.
    const std::string name = "25-extended-protection";
    const tls::KeyLog log = load_keylog(name);
    const auto keys = testing::lab_keytab(name);
    Collected c;
    ASSERT_TRUE(run_pipeline({lab(name + ".pcap")}, c, &log, keys.get()).ok());
    int bound_ntlm = 0, unbound_ntlm = 0, bound_kerberos = 0;
    for (const auto& l : c.logins) {
        SCOPED_TRACE(report::to_json(l).dump());
        if (l.auth == AuthKind::Ntlm && l.app_name == "hopscope-labclient") {
            EXPECT_TRUE(l.ntlm_channel_bindings);
            ++bound_ntlm;
        } else if (l.auth == AuthKind::Ntlm) {
            EXPECT_FALSE(l.ntlm_channel_bindings);
            ++unbound_ntlm;
        } else if (l.auth == AuthKind::Kerberos) {
            ASSERT_TRUE(l.keytab);
            EXPECT_TRUE(l.keytab->authenticator_decrypted);
            EXPECT_TRUE(l.keytab->channel_bindings);
            ++bound_kerberos;
        }
    }
    EXPECT_EQ(bound_ntlm, 1);
    EXPECT_EQ(unbound_ntlm, 1);
    EXPECT_EQ(bound_kerberos, 1);
}

/// First bytes of every record tshark decrypted from C (10.77.0.2) to port 1433.
std::vector<std::string> tshark_decrypted_from_client(const std::string& name, bool keys,
                                                      bool strict) {
    std::string cmd = "tshark -r '" + lab(name + ".pcap") + "'";
    if (keys) cmd += " -o 'tls.keylog_file:" + lab(name + ".keylog") + "'";
    if (strict) cmd += " -d tcp.port==1433,tls";  // TLS from the first byte: no TDS around it
    cmd += " -Y 'ip.src==10.77.0.2 && tcp.dstport==1433' -x 2>/dev/null";
    std::istringstream out(testing::run_command(cmd));
    std::vector<std::string> firsts;
    std::string line;
    bool next = false;
    while (std::getline(out, line)) {
        if (next && line.size() > 8) firsts.push_back(line.substr(6, 2));  // "0000  10 01 ..."
        next = line.rfind("Decrypted TLS", 0) == 0;
    }
    return firsts;
}

TEST(LabTlsKeylog, TsharkDecryptsTheSameLogin7s) {
    if (std::system("tshark -v >/dev/null 2>&1") != 0) GTEST_SKIP() << "tshark not installed";
    for (const auto& s : kTlsScenarios) {
        SCOPED_TRACE(s.file);
        const auto with = tshark_decrypted_from_client(s.file, true, s.strict);
        const auto count = [](const std::vector<std::string>& v, const std::string& t) {
            return std::count(v.begin(), v.end(), t);
        };
        // LOGIN7 packets (type 0x10) inside the client's TLS, as tshark reads them.
        const auto login7s = count(with, "10");
        EXPECT_GT(login7s, 0);
        if (s.strict) {
            EXPECT_GT(count(with, "12"), 0);  // the PRELOGIN inside TLS
        }
        EXPECT_TRUE(tshark_decrypted_from_client(s.file, false, s.strict).empty());
        // hopscope with the same key log: one decoded LOGIN7 per login from C.
        const tls::KeyLog log = load_keylog(s.file);
        Collected c;
        ASSERT_TRUE(run_pipeline({lab(s.file + ".pcap")}, c, &log).ok());
        long ours = 0;
        for (const auto& l : c.logins)
            if (ip_of(l.flow.client) == "10.77.0.2" && l.tds_version != 0) ++ours;
        EXPECT_EQ(ours, login7s);
    }
}

}  // namespace
}  // namespace hopscope::golden
