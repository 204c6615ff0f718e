// The decrypting Conversation: TLS made by real OpenSSL peers (tls_pair.hpp), carried the way TDS
// carries it [MS-TDS 3.2.5.3, 3.3.5.4] - handshake in PRELOGIN packets then raw records (login-only
// and full encryption), or TLS from the first byte with ALPN tds/8.0 (strict) - with the key log
// the client wrote. The logins inside must come out as if they had been clear.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "../session/builders.hpp"
#include "hopscope/session/conversation.hpp"
#include "hopscope/tls/keylog.hpp"
#include "tls_pair.hpp"

namespace hopscope::session {
namespace {

using testing::Buf;
using Dir = Direction;

struct Rec : ConversationCallbacks {
    std::vector<LoginRecord> logins;
    std::vector<DecodeError> problems;
    int decrypted = 0;
    int encrypted = 0;
    void on_login(const LoginRecord& r) override { logins.push_back(r); }
    void on_problem(const FactContext&, DecodeStatus s, const DecodeError& e) override {
        if (s == DecodeStatus::Malformed) problems.push_back(e);
    }
    void on_decrypted(const FactContext&, const char*, std::size_t) override { ++decrypted; }
    void on_encrypted(const FactContext&, const char*, std::size_t) override { ++encrypted; }
};

enum class Mode { LoginOnly, Full, Strict };

/// One chunk as the network delivered it; `plain` marks what TLS carried (for feed_plaintext).
struct Chunk {
    Dir dir;
    Buf bytes;
    bool protected_data = false;
    Buf plain;
};

Buf prelogin_packet(std::uint8_t type, std::uint8_t enc) {
    return testing::packet(type, 0x01,
                           testing::prelogin({{0x00, {16, 0, 0x07, 0xd0, 0, 0}}, {0x01, {enc}}}));
}

Buf server_answer() {
    Buf tokens = testing::loginack("Microsoft SQL Server", 0x74000004, 16, 0, 4000);
    testing::append(tokens, testing::done(0));
    return testing::packet(0x04, 0x01, tokens);
}

Buf login7_message() {
    testing::Login7Spec s;
    s.user = "sa";
    s.password = "S3cret!";
    s.host = "C01";
    s.server = "sqla.lab.test";
    return testing::message(0x10, testing::login7(s));
}

/// A whole connection in `mode`, TLS `version`, and the client's key log.
/// `split`: the handshake flights travel in PRELOGIN packets of at most that many bytes (records
/// cut across packets).
std::vector<Chunk> connection(Mode mode, int version, std::string& keylog, std::size_t split = 0,
                              bool hello_retry = false) {
    testing::TlsPairConfig cfg;
    cfg.version = version;
    if (hello_retry) {
        cfg.client_groups = "X25519:P-256";  // key share for X25519 only,
        cfg.server_groups = "P-256";         // which the server refuses: HelloRetryRequest
    }
    if (mode == Mode::Strict) cfg.alpn = {"tds/8.0"};
    testing::TlsPair pair(cfg);
    std::vector<Chunk> out;
    if (mode != Mode::Strict) {
        const std::uint8_t enc = mode == Mode::LoginOnly ? 0x00 : 0x01;
        out.push_back({Dir::ClientToServer, prelogin_packet(0x12, enc), false, {}});
        out.push_back({Dir::ServerToClient, prelogin_packet(0x04, enc), false, {}});
    }
    pair.handshake();
    auto take = [&](bool app, const Buf& plain) {
        for (auto& f : pair.flights) {
            Chunk c{f.dir, f.bytes, app, app ? plain : Buf{}};
            if (!app && mode != Mode::Strict) {
                const std::uint8_t type = f.dir == Dir::ClientToServer ? 0x12 : 0x04;
                c.bytes = split ? testing::message(type, f.bytes, split)
                                : testing::packet(type, 0x01, f.bytes);
            }
            out.push_back(std::move(c));
        }
        pair.flights.clear();
    };
    take(false, {});
    auto send = [&](Dir d, const Buf& tds) {
        pair.send(d, tds);
        // a flight of the peer (a TLS 1.3 ticket) may follow the data: plaintext only for the
        // first, which is the data's
        std::vector<testing::Flight> fl = std::move(pair.flights);
        pair.flights.clear();
        for (std::size_t i = 0; i < fl.size(); ++i)
            out.push_back({fl[i].dir, fl[i].bytes, true, i == 0 ? tds : Buf{}});
    };
    if (mode == Mode::Strict) {
        send(Dir::ClientToServer, prelogin_packet(0x12, 0x00));
        send(Dir::ServerToClient, prelogin_packet(0x04, 0x00));
    }
    send(Dir::ClientToServer, login7_message());
    if (mode == Mode::LoginOnly) {
        out.push_back({Dir::ServerToClient, server_answer(), false, {}});
    } else {
        send(Dir::ServerToClient, server_answer());
    }
    keylog = pair.keylog;
    return out;
}

/// Feeds the chunks (each byte on its own with `bytewise`); with `plaintext_frontend` the
/// protected chunks are replaced by their plaintext through feed_plaintext.
Rec run(const std::vector<Chunk>& chunks, const tls::KeySource* keys, bool bytewise = false,
        bool plaintext_frontend = false) {
    Rec rec;
    Conversation::Options o;
    o.tls_keys = keys;
    Conversation conv(rec, o);
    std::uint64_t off[2] = {0, 0};
    std::uint64_t frame = 0;
    for (const auto& c : chunks) {
        const int d = c.dir == Dir::ClientToServer ? 0 : 1;
        const Timestamp ts{static_cast<std::int64_t>(++frame)};
        if (plaintext_frontend && c.protected_data) {
            if (!c.plain.empty()) conv.feed_plaintext(c.dir, ts, c.plain, Evidence{frame, off[d]});
        } else if (bytewise) {
            for (std::size_t i = 0; i < c.bytes.size(); ++i)
                conv.feed(c.dir, ts, Bytes(&c.bytes[i], 1), Evidence{frame, off[d] + i});
        } else {
            conv.feed(c.dir, ts, c.bytes, Evidence{frame, off[d]});
        }
        off[d] += c.bytes.size();
    }
    conv.close(Timestamp{static_cast<std::int64_t>(++frame)});
    return rec;
}

struct ModeCase {
    Mode mode;
    int version;
    const char* name;
};

class TlsInTds : public ::testing::TestWithParam<ModeCase> {};

TEST_P(TlsInTds, TheLoginInsideIsDecodedAsIfClear) {
    std::string keylog;
    const auto chunks = connection(GetParam().mode, GetParam().version, keylog);
    tls::KeyLog log;
    ASSERT_TRUE(log.add_text(keylog).empty());
    for (bool bytewise : {false, true}) {
        SCOPED_TRACE(bytewise ? "byte by byte" : "chunks");
        const Rec r = run(chunks, &log, bytewise);
        EXPECT_TRUE(r.problems.empty()) << r.problems.front().detail;
        ASSERT_EQ(r.logins.size(), 1u);
        const LoginRecord& l = r.logins[0];
        EXPECT_EQ(l.outcome, LoginOutcome::Success) << to_string(l);
        EXPECT_EQ(l.auth, AuthKind::Sql) << to_string(l);
        EXPECT_EQ(l.user, "sa");
        EXPECT_EQ(l.server_name, "sqla.lab.test");
        EXPECT_TRUE(l.login7_seen);
        EXPECT_FALSE(l.login7_encrypted);
        EXPECT_TRUE(l.tls_decrypted);
        EXPECT_EQ(l.tls_not_decrypted, "");
        EXPECT_TRUE(l.login_ack.has_value());
        EXPECT_EQ(l.encryption, GetParam().mode == Mode::LoginOnly ? tds::EncryptionMode::LoginOnly
                                : GetParam().mode == Mode::Full    ? tds::EncryptionMode::Full
                                                                   : tds::EncryptionMode::Strict);
        EXPECT_EQ(r.encrypted, 0);
        EXPECT_GT(r.decrypted, 0);
        // the password stays a length
        EXPECT_EQ(l.password_length, 7u);
        EXPECT_EQ(to_string(l).find("S3cret"), std::string::npos);
    }
}

TEST_P(TlsInTds, WithoutTheKeyTheLoginStaysUnknownAndSaysWhy) {
    std::string keylog;
    const auto chunks = connection(GetParam().mode, GetParam().version, keylog);
    tls::KeyLog other;  // a key log without this session
    ASSERT_TRUE(
        other.add_text("CLIENT_RANDOM " + std::string(64, '1') + " " + std::string(96, '2') + "\n")
            .empty());
    const Rec r = run(chunks, &other);
    ASSERT_EQ(r.logins.size(), 1u);
    const LoginRecord& l = r.logins[0];
    EXPECT_EQ(l.auth, AuthKind::Unknown) << to_string(l);
    EXPECT_FALSE(l.tls_decrypted);
    EXPECT_NE(l.auth_detail.find("not decrypted: no "), std::string::npos) << l.auth_detail;
    EXPECT_NE(l.auth_detail.find("key log"), std::string::npos) << l.auth_detail;
    EXPECT_EQ(r.decrypted, 0);
    EXPECT_GT(r.encrypted, 0);

    // With no key log at all: as before decryption existed.
    const Rec n = run(chunks, nullptr);
    ASSERT_EQ(n.logins.size(), 1u);
    EXPECT_EQ(n.logins[0].auth, AuthKind::Unknown);
    EXPECT_EQ(n.logins[0].auth_detail.find("not decrypted"), std::string::npos);
    EXPECT_EQ(n.logins[0].tls_not_decrypted, "");
}

TEST_P(TlsInTds, AFrontEndCanHandOverThePlaintextInstead) {
    std::string keylog;
    const auto chunks = connection(GetParam().mode, GetParam().version, keylog);
    const Rec r = run(chunks, nullptr, false, true);
    EXPECT_TRUE(r.problems.empty()) << r.problems.front().detail;
    ASSERT_EQ(r.logins.size(), 1u);
    const LoginRecord& l = r.logins[0];
    EXPECT_EQ(l.outcome, LoginOutcome::Success) << to_string(l);
    EXPECT_EQ(l.auth, AuthKind::Sql);
    EXPECT_EQ(l.user, "sa");
    EXPECT_TRUE(l.tls_decrypted);
    EXPECT_NE(l.tls_version, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, TlsInTds,
    ::testing::Values(ModeCase{Mode::LoginOnly, TLS1_2_VERSION, "login_only_12"},
                      ModeCase{Mode::LoginOnly, TLS1_3_VERSION, "login_only_13"},
                      ModeCase{Mode::Full, TLS1_2_VERSION, "full_12"},
                      ModeCase{Mode::Full, TLS1_3_VERSION, "full_13"},
                      ModeCase{Mode::Strict, TLS1_3_VERSION, "strict_13"},
                      ModeCase{Mode::Strict, TLS1_2_VERSION, "strict_12"}),
    [](const ::testing::TestParamInfo<ModeCase>& i) { return i.param.name; });

TEST(TlsInTdsHostile, RecordsSplitAcrossPreloginPacketsAndReads) {
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        std::string keylog;
        const auto chunks = connection(Mode::Full, version, keylog, 37);
        tls::KeyLog log;
        ASSERT_TRUE(log.add_text(keylog).empty());
        std::vector<Chunk> halves;
        for (const auto& c : chunks) {
            const auto mid = c.bytes.begin() + static_cast<std::ptrdiff_t>(c.bytes.size() / 2);
            halves.push_back({c.dir, Buf(c.bytes.begin(), mid), false, {}});
            halves.push_back({c.dir, Buf(mid, c.bytes.end()), false, {}});
        }
        const Rec r = run(halves, &log);
        EXPECT_TRUE(r.problems.empty()) << r.problems.front().detail;
        ASSERT_EQ(r.logins.size(), 1u);
        EXPECT_EQ(r.logins[0].auth, AuthKind::Sql) << to_string(r.logins[0]);
        EXPECT_EQ(r.logins[0].outcome, LoginOutcome::Success);
    }
}

TEST(TlsInTdsShapes, HelloRetryRequestInEveryMode) {
    for (Mode m : {Mode::LoginOnly, Mode::Full, Mode::Strict}) {
        std::string keylog;
        const auto chunks = connection(m, TLS1_3_VERSION, keylog, 0, true);
        tls::KeyLog log;
        ASSERT_TRUE(log.add_text(keylog).empty());
        const Rec r = run(chunks, &log);
        EXPECT_TRUE(r.problems.empty()) << r.problems.front().detail;
        ASSERT_EQ(r.logins.size(), 1u);
        EXPECT_EQ(r.logins[0].auth, AuthKind::Sql) << to_string(r.logins[0]);
        EXPECT_EQ(r.logins[0].outcome, LoginOutcome::Success);
        EXPECT_EQ(r.logins[0].tls_version, 0x0304);
    }
}

TEST(TlsInTdsHostile, DamagedRecordsAreTypedErrors) {
    std::string keylog;
    auto chunks = connection(Mode::Full, TLS1_3_VERSION, keylog);
    tls::KeyLog log;
    ASSERT_TRUE(log.add_text(keylog).empty());
    // Flip one byte inside the client's LOGIN7 record.
    for (auto& c : chunks) {
        if (c.protected_data && c.dir == Dir::ClientToServer && !c.plain.empty()) {
            c.bytes[c.bytes.size() / 2] ^= 0x40;
            break;
        }
    }
    const Rec r = run(chunks, &log);
    ASSERT_FALSE(r.problems.empty());
    bool auth_failure = false;
    for (const auto& e : r.problems)
        auth_failure |= e.detail.find("failed authentication") != std::string::npos;
    EXPECT_TRUE(auth_failure);
    ASSERT_EQ(r.logins.size(), 1u);
    EXPECT_EQ(r.logins[0].auth, AuthKind::Unknown);
    EXPECT_NE(r.logins[0].tls_not_decrypted.find("failed authentication"), std::string::npos)
        << r.logins[0].tls_not_decrypted;
}

/// Writes the fuzz_tls_decrypt seeds (its input format, see tests/fuzz/fuzz_tls_decrypt.cpp) when
/// HOPSCOPE_WRITE_FUZZ_SEEDS names a directory; otherwise does nothing.
TEST(TlsInTdsSeeds, WrittenOnRequest) {
    const char* dir = std::getenv("HOPSCOPE_WRITE_FUZZ_SEEDS");
    if (!dir) GTEST_SKIP() << "set HOPSCOPE_WRITE_FUZZ_SEEDS=tests/fuzz/corpus/tls_decrypt";
    for (const auto& m : {ModeCase{Mode::LoginOnly, TLS1_2_VERSION, "login_only_12"},
                          ModeCase{Mode::Full, TLS1_3_VERSION, "full_13"},
                          ModeCase{Mode::Full, TLS1_2_VERSION, "full_12"},
                          ModeCase{Mode::Strict, TLS1_3_VERSION, "strict_13"}}) {
        std::string keylog;
        const auto chunks = connection(m.mode, m.version, keylog);
        for (bool plain : {false, true}) {
            Buf out{static_cast<std::uint8_t>(keylog.size() >> 8),
                    static_cast<std::uint8_t>(keylog.size())};
            out.insert(out.end(), keylog.begin(), keylog.end());
            for (const auto& c : chunks) {
                const bool as_plain = plain && c.protected_data;
                if (as_plain && c.plain.empty()) continue;
                const Buf& b = as_plain ? c.plain : c.bytes;
                std::uint8_t ctl = c.dir == Dir::ServerToClient ? 1 : 0;
                if (as_plain) ctl |= 8;
                out.push_back(ctl);
                out.push_back(static_cast<std::uint8_t>(b.size() >> 8));
                out.push_back(static_cast<std::uint8_t>(b.size()));
                out.insert(out.end(), b.begin(), b.end());
            }
            std::ofstream f(std::string(dir) + "/" + m.name + (plain ? "_plaintext" : ""),
                            std::ios::binary);
            f.write(reinterpret_cast<const char*>(out.data()),
                    static_cast<std::streamsize>(out.size()));
        }
    }
}

}  // namespace
}  // namespace hopscope::session
