// Conversation over the project's lab captures (captures/lab/*.pcap: real FreeTDS, impacket,
// tedious and SPNEGO clients, real MIT KDC and GSSAPI acceptors; see captures/lab/README.md),
// read through the capture front-end. Each scenario's <id>.expect.json lists the logins the lab
// server saw; the passive view must agree wherever the bytes are visible, and say "encrypted"
// (never guess) where they are not.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "lab_driver.hpp"

namespace hopscope::session {
namespace {

std::string lab_dir() {
    return std::string(HOPSCOPE_CAPTURES_DIR) + "/lab";
}

std::vector<std::string> lab_captures() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(lab_dir(), ec)) {
        if (e.path().extension() == ".pcap") out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Lab addresses (captures/lab/README.md): C .2, A/SQLA .3, B/SQLB .4, SQLC .5, SQLX .6.
std::string ip_of(const std::string& name) {
    if (name == "C") return "10.77.0.2";
    if (name == "A" || name == "SQLA") return "10.77.0.3";
    if (name == "SQLB") return "10.77.0.4";
    if (name == "SQLC") return "10.77.0.5";
    if (name == "SQLX") return "10.77.0.6";
    return "?";
}

TEST(ConversationLab, EveryScenarioAgreesWithTheLabServer) {
    const auto pcaps = lab_captures();
    ASSERT_GE(pcaps.size(), 15u) << "lab captures missing in " << lab_dir();
    for (const auto& pcap : pcaps) {
        SCOPED_TRACE(pcap);
        const std::string expect_path = pcap.substr(0, pcap.size() - 5) + ".expect.json";
        std::ifstream in(expect_path);
        ASSERT_TRUE(in.good()) << expect_path;
        const auto expect = nlohmann::json::parse(in);
        const auto driver = testing::replay_capture(pcap);

        // Logins in connection order, with their connection's addresses.
        struct Seen {
            std::string client, server;
            const LoginRecord* rec;
            bool used = false;
        };
        std::vector<Seen> seen;
        for (const auto& c : driver->all) {
            for (const auto& f : c->rec->facts) {
                EXPECT_EQ(f.find("problem"), std::string::npos) << f;
                EXPECT_EQ(f.find("resync"), std::string::npos) << f;
            }
            for (const auto& r : c->rec->logins) {
                seen.push_back(
                    {to_string(c->flow.client.addr), to_string(c->flow.server.addr), &r});
            }
        }
        ASSERT_EQ(seen.size(), expect["logins"].size());
        for (const auto& e : expect["logins"]) {
            const std::string client = ip_of(e["client"]), server = ip_of(e["server"]);
            auto it = std::find_if(seen.begin(), seen.end(), [&](const Seen& s) {
                return !s.used && s.client == client && s.server == server;
            });
            ASSERT_NE(it, seen.end()) << e.dump();
            it->used = true;
            const LoginRecord& r = *it->rec;
            SCOPED_TRACE(e.dump() + "\n  seen: " + to_string(r));
            const bool hidden = r.encryption == tds::EncryptionMode::Full ||
                                r.encryption == tds::EncryptionMode::Strict;
            if (e.contains("encryption")) {
                EXPECT_EQ(tds::to_string(r.encryption), e["encryption"].get<std::string>());
            }
            const std::string outcome = e["outcome"];
            if (hidden) {
                EXPECT_EQ(r.outcome, LoginOutcome::Incomplete);
                EXPECT_EQ(r.outcome_detail, "encrypted");
                EXPECT_EQ(r.auth, AuthKind::Unknown);
                continue;
            }
            EXPECT_EQ(to_string(r.outcome), outcome);
            const std::string auth = e.value("auth", "");
            if (auth == "sql") {
                EXPECT_EQ(r.auth, AuthKind::Sql);
                EXPECT_EQ(r.user, e["user"].get<std::string>());
            } else if (auth == "ntlm" || auth == "kerberos") {
                EXPECT_EQ(r.auth, AuthKind::Integrated);
                EXPECT_FALSE(r.auth_blobs.empty());
            } else {
                EXPECT_EQ(r.auth, AuthKind::Unknown);
            }
            const int error = e.value("error", 0);
            if (error != 0) {
                ASSERT_TRUE(r.error);
                EXPECT_EQ(r.error->number, error);
                if (e.value("anonymous", false) && error == 18456) {
                    EXPECT_NE(r.error->text.find("ANONYMOUS LOGON"), std::string::npos);
                }
            } else if (outcome == "success") {
                EXPECT_TRUE(r.login_ack);
                EXPECT_FALSE(r.error);
            }
            if (e.contains("alpn")) {
                EXPECT_EQ(r.tls_alpn, std::vector<std::string>{e["alpn"].get<std::string>()});
            }
        }
    }
}

TEST(ConversationLab, ChunkingInvarianceOverEveryLabCapture) {
    for (const auto& pcap : lab_captures()) {
        SCOPED_TRACE(pcap);
        const auto whole = testing::replay_capture(pcap, false);
        const auto bytes = testing::replay_capture(pcap, true);
        ASSERT_EQ(whole->all.size(), bytes->all.size());
        for (std::size_t i = 0; i < whole->all.size(); ++i) {
            EXPECT_FALSE(whole->all[i]->rec->facts.empty());
            EXPECT_EQ(whole->all[i]->rec->facts, bytes->all[i]->rec->facts);
        }
    }
}

TEST(ConversationLab, SqlPasswordsOfTheLabNeverAppear) {
    // Scenario 3: SQL login sa with the lab password "S3cret!" and a wrong one.
    const auto d = testing::replay_capture(lab_dir() + "/3-sql-auth.pcap");
    ASSERT_EQ(d->all.size(), 2u);
    for (const auto& c : d->all) {
        ASSERT_EQ(c->rec->logins.size(), 1u);
        EXPECT_TRUE(c->rec->logins[0].password_present);
        std::vector<std::string> all = c->rec->facts;
        all.push_back(to_string(c->rec->logins[0]));
        for (const auto& f : all) {
            EXPECT_EQ(f.find("S3cret"), std::string::npos) << f;
            EXPECT_EQ(f.find("Passw0rd"), std::string::npos) << f;
        }
    }
    EXPECT_EQ(d->all[0]->rec->logins[0].password_length, 7u) << "S3cret! has 7 characters";
}

// Public captures that are not SQL Server 7+ (tests/data/public/MANIFEST.md): they must be
// reported for what they are, never crash, and stay chunking-invariant.
TEST(ConversationPublic, LegacyAndSyntheticTdsCaptures) {
    const std::string dir = std::string(HOPSCOPE_TEST_DATA_DIR) + "/public/";
    // FreeTDS fisql TDS 4.2 login (packet type 2, 572 bytes in two packets per tshark) to a
    // non-standard emulator whose reply has packet type 0.
    auto d = testing::replay_capture(dir + "tds42_login_fisql_client_to_tdspsql_emulator.pcap");
    ASSERT_EQ(d->all.size(), 1u);
    auto has = [](const std::vector<std::string>& facts, const std::string& needle) {
        return std::any_of(facts.begin(), facts.end(), [&](const std::string& f) {
            return f.find(needle) != std::string::npos;
        });
    };
    EXPECT_TRUE(has(d->all[0]->rec->facts, "c2s@0 f=4 t=1441537433181050 other 2 572 pre-TDS7"));
    EXPECT_TRUE(has(d->all[0]->rec->facts, "problem malformed desync byte 0 starts no TDS packet"));
    EXPECT_TRUE(d->all[0]->rec->logins.empty());
    // Sybase TDS 5.0 (port 3106): a TDS4/5 login packet without EOM, then packet type 0x0F
    // (not MS-TDS): a desync problem, and the Sybase token stream is reported as malformed.
    d = testing::replay_capture(dir + "tds5_sybase_login_query_arkime.pcap", false, 3106);
    ASSERT_EQ(d->all.size(), 1u);
    EXPECT_TRUE(has(d->all[0]->rec->facts,
                    "c2s@512 f=5 t=1465335293232618 problem malformed "
                    "desync byte 15 starts no TDS packet"));
    EXPECT_TRUE(d->all[0]->rec->logins.empty());
    // Arkime's SYNTHETIC NTLM capture (stream 13, IPv6): TDS 7.4 LOGIN7 with a 53-byte NTLM
    // NEGOTIATE, the CHALLENGE in a server 0x11 packet (72 bytes; not what servers send, but
    // tolerated), AUTHENTICATE in a client 0x11 packet (186 bytes; tshark: User TDSDOM\mona).
    d = testing::replay_capture(dir + "SYNTHETIC_ntlm_multi_protocol_incl_tds7_sspi_arkime.pcap");
    ASSERT_EQ(d->all.size(), 1u);
    const auto& f = d->all[0]->rec->facts;
    EXPECT_TRUE(has(f, "c2s@0 f=210 t=1700000007818000 auth_blob login7 53"));
    EXPECT_TRUE(has(f, "s2c@0 f=212 t=1700000007830000 auth_blob sspi-packet 72"));
    EXPECT_TRUE(has(f, "c2s@155 f=214 t=1700000007842000 auth_blob sspi-packet 186"));
    EXPECT_FALSE(has(f, "problem"));
    ASSERT_EQ(d->all[0]->rec->blobs.size(), 3u);
    const auto& auth = d->all[0]->rec->blobs[2].second;
    EXPECT_EQ(std::string(auth.begin(), auth.begin() + 7), "NTLMSSP");
    for (const char* name : {"tds42_login_fisql_client_to_tdspsql_emulator.pcap",
                             "tds5_sybase_login_query_arkime.pcap",
                             "SYNTHETIC_ntlm_multi_protocol_incl_tds7_sspi_arkime.pcap"}) {
        const std::uint16_t port = std::string(name).rfind("tds5", 0) == 0 ? 3106 : 1433;
        const auto a = testing::replay_capture(dir + name, false, port);
        const auto b = testing::replay_capture(dir + name, true, port);
        ASSERT_EQ(a->all.size(), b->all.size());
        for (std::size_t i = 0; i < a->all.size(); ++i) {
            EXPECT_EQ(a->all[i]->rec->facts, b->all[i]->rec->facts) << name;
        }
    }
}

// Frozen copies of three lab captures (tests/data/tds/lab/, see the README there) with tshark's
// view of every LOGIN7 and SSPI packet: the conversation must find the same LOGIN7 fields and
// hand on the same NTLM messages and Kerberos AP-REQs, at the same frames.
std::vector<std::vector<std::string>> read_tsv(const std::string& path) {
    std::vector<std::vector<std::string>> rows;
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::vector<std::string> cols;
        std::size_t start = 0;
        for (;;) {
            const std::size_t tab = line.find('\t', start);
            cols.push_back(line.substr(start, tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        cols.resize(11);
        rows.push_back(cols);
    }
    return rows;
}

bool contains(const testing::Buf& b, const testing::Buf& needle) {
    return std::search(b.begin(), b.end(), needle.begin(), needle.end()) != b.end();
}

TEST(ConversationLabTshark, Login7AndSspiMatchTshark) {
    const std::string dir = std::string(HOPSCOPE_TEST_DATA_DIR) + "/tds/lab/";
    std::size_t rows_checked = 0;
    for (const char* name :
         {"1-ntlm-single-hop", "2-kerberos-single-hop", "12a-ntlm-tls-login-only"}) {
        SCOPED_TRACE(name);
        const auto d = testing::replay_capture(dir + name + ".pcap");
        std::vector<std::string> facts;
        std::vector<std::tuple<std::uint64_t, AuthBlobSource, testing::Buf>> blobs;
        for (const auto& c : d->all) {
            facts.insert(facts.end(), c->rec->facts.begin(), c->rec->facts.end());
            for (std::size_t i = 0; i < c->rec->blobs.size(); ++i) {
                blobs.emplace_back(c->rec->blob_frames[i], c->rec->blobs[i].first,
                                   c->rec->blobs[i].second);
            }
        }
        // columns: frame srcport tds.type version clientname appname servername libraryname
        //          option_flags2 ntlmssp.messagetype kerberos.msg_type
        for (const auto& row : read_tsv(dir + name + ".tshark.tsv")) {
            SCOPED_TRACE(row[0]);
            const std::uint64_t frame = std::stoull(row[0]);
            const std::string at = " f=" + row[0] + " ";
            const AuthBlobSource want_src =
                row[2] == "16" ? AuthBlobSource::Login7 : AuthBlobSource::SspiPacket;
            if (row[2] == "16") {
                auto it = std::find_if(facts.begin(), facts.end(), [&](const std::string& f) {
                    return f.find(at) != std::string::npos &&
                           f.find(" login7 ") != std::string::npos;
                });
                ASSERT_NE(it, facts.end());
                const std::string& f = *it;
                const std::uint32_t v = static_cast<std::uint32_t>(std::stoul(row[3], nullptr, 16));
                EXPECT_NE(f.find("tds=" + tds::tds_version_name(v) + " "), std::string::npos) << f;
                EXPECT_NE(f.find(" host=" + row[4] + " "), std::string::npos) << f;
                EXPECT_NE(f.find(" app=" + row[5] + " "), std::string::npos) << f;
                EXPECT_NE(f.find(" library=" + row[7] + " "), std::string::npos) << f;
                EXPECT_NE(f.find("/" + row[8].substr(2) + "/"), std::string::npos) << f;
                // tshark 4.0 does not know the FeatureExt pointer (ibExtension) FreeTDS and
                // tedious send, and shows the server name with the pointer's bytes appended
                // ("sqla,\xc3\x8d"); MS-TDS 2.2.6.4 gives cchServerName characters: "sqla".
                const std::string server = row[6].substr(0, row[6].find(','));
                EXPECT_NE(f.find(" server=" + server + " "), std::string::npos) << f;
            }
            auto b = std::find_if(blobs.begin(), blobs.end(), [&](const auto& x) {
                return std::get<0>(x) == frame && std::get<1>(x) == want_src;
            });
            ASSERT_NE(b, blobs.end());
            const testing::Buf& blob = std::get<2>(*b);
            if (!row[9].empty()) {  // NTLMSSP message type (raw NTLM in all these clients)
                ASSERT_GE(blob.size(), 12u);
                EXPECT_EQ(std::string(blob.begin(), blob.begin() + 8), std::string("NTLMSSP\0", 8));
                EXPECT_EQ(blob[8], std::stoul(row[9], nullptr, 16));
            }
            if (row[10] == "14") {  // Kerberos AP-REQ: a GSS token with a KRB5 mechanism OID
                EXPECT_EQ(blob[0], 0x60);
                EXPECT_TRUE(contains(blob, testing::from_hex("2a864886f712010202")) ||
                            contains(blob, testing::from_hex("2a864882f712010202")));
            }
            ++rows_checked;
        }
    }
    EXPECT_EQ(rows_checked, 12u + 2 + 2);
}

}  // namespace
}  // namespace hopscope::session
