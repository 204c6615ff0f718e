// Key log parsing and TLS record decryption: RFC 8448's TLS 1.3 trace (section 3, simple 1-RTT
// handshake, TLS_AES_128_GCM_SHA256) for the key schedule and the record layer, and real OpenSSL
// sessions (tls_pair.hpp) for every supported TLS 1.2 and 1.3 suite.
#include "hopscope/tls/decrypt.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "../tds/tds_builders.hpp"
#include "hopscope/tls/keylog.hpp"
#include "tls_pair.hpp"

namespace hopscope::tls {
namespace {

using testing::Buf;
using testing::from_hex;

// RFC 8448 section 3.
const char* kClientHsSecret = "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21";
const char* kServerHsSecret = "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38";
const char* kClientApSecret = "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5";
const char* kServerApSecret = "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";
// {client} send handshake record: the client's Finished under the client handshake keys.
const char* kClientFinishedRecord =
    "17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0 51 7f e9 b9"
    "3c 7a 4b fc 44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26 c4 05 46";
const char* kClientFinished =
    "14 00 00 20 a8 ec 43 6d 67 76 34 ae 52 5a c1 fc eb e1 1a 03 9e c1 76 94 fa c6 e9 85"
    "27 b6 42 f2 ed d5 ce 61";
// {client} send application_data record: 00 01 .. 31 (50 bytes).
const char* kClientAppRecord =
    "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66"
    "bc ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70"
    "14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4";

Buf counting(std::size_t n) {
    Buf b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = static_cast<std::uint8_t>(i);
    return b;
}

std::string hex(Bytes b) {
    std::string s;
    char buf[3];
    for (auto x : b) {
        std::snprintf(buf, sizeof buf, "%02x", x);
        s += buf;
    }
    return s;
}

TEST(Rfc8448, HkdfExpandLabelGivesTheTrafficKeysAndIvs) {
    std::uint8_t key[16];
    std::uint8_t iv[12];
    ASSERT_TRUE(hkdf_expand_label(Hash::Sha256, from_hex(kServerHsSecret), "key", {}, key));
    ASSERT_TRUE(hkdf_expand_label(Hash::Sha256, from_hex(kServerHsSecret), "iv", {}, iv));
    EXPECT_EQ(hex(key), "3fce516009c21727d0f2e4e86ee403bc");
    EXPECT_EQ(hex(iv), "5d313eb2671276ee13000b30");
    ASSERT_TRUE(hkdf_expand_label(Hash::Sha256, from_hex(kClientHsSecret), "key", {}, key));
    ASSERT_TRUE(hkdf_expand_label(Hash::Sha256, from_hex(kClientHsSecret), "iv", {}, iv));
    EXPECT_EQ(hex(key), "dbfaa693d1762c5b666af5d950258d01");
    EXPECT_EQ(hex(iv), "5bd3c71b836e0b76bb73265f");
    ASSERT_TRUE(hkdf_expand_label(Hash::Sha256, from_hex(kServerApSecret), "key", {}, key));
    ASSERT_TRUE(hkdf_expand_label(Hash::Sha256, from_hex(kServerApSecret), "iv", {}, iv));
    EXPECT_EQ(hex(key), "9f02283b6c9c07efc26bb9f2ac92e356");
    EXPECT_EQ(hex(iv), "cf782b88dd83549aadf1e984");
}

TEST(Rfc8448, RecordsOpenUnderTheirTrafficSecrets) {
    const CipherSuite* cs = find_cipher_suite(0x1301);
    ASSERT_NE(cs, nullptr);
    RecordDecrypter hs;
    ASSERT_TRUE(hs.init_tls13(*cs, from_hex(kClientHsSecret)));
    std::vector<std::uint8_t> plain;
    std::uint8_t type = 0;
    DecodeResult res;
    ASSERT_EQ((res = hs.open(from_hex(kClientFinishedRecord), plain, type)).status(),
              DecodeStatus::Consumed)
        << res.error().detail;
    EXPECT_EQ(type, content_type::kHandshake);
    EXPECT_EQ(plain, from_hex(kClientFinished));

    RecordDecrypter ap;
    ASSERT_TRUE(ap.init_tls13(*cs, from_hex(kClientApSecret)));
    ASSERT_EQ((res = ap.open(from_hex(kClientAppRecord), plain, type)).status(),
              DecodeStatus::Consumed);
    EXPECT_EQ(type, content_type::kApplicationData);
    EXPECT_EQ(plain, counting(50));
    EXPECT_EQ(ap.sequence(), 1u);

    // A second open of the same record uses sequence number 1: authentication fails.
    EXPECT_EQ((res = ap.open(from_hex(kClientAppRecord), plain, type)).status(),
              DecodeStatus::Malformed);
    EXPECT_NE(res.error().detail.find("failed authentication"), std::string::npos);
}

TEST(Rfc8448, TamperedOrShortRecordsAreTypedErrors) {
    const CipherSuite* cs = find_cipher_suite(0x1301);
    Buf rec = from_hex(kClientAppRecord);
    rec[20] ^= 1;
    RecordDecrypter ap;
    ASSERT_TRUE(ap.init_tls13(*cs, from_hex(kClientApSecret)));
    std::vector<std::uint8_t> plain;
    std::uint8_t type = 0;
    DecodeResult res;
    EXPECT_EQ((res = ap.open(rec, plain, type)).status(), DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::BadValue);
    EXPECT_TRUE(plain.empty());
    for (std::size_t n : {0u, 4u, 5u, 20u}) {
        Buf cut(rec.begin(), rec.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_EQ((res = ap.open(cut, plain, type)).status(), DecodeStatus::Malformed) << n;
    }
    RecordDecrypter none;
    EXPECT_EQ((res = none.open(rec, plain, type)).status(), DecodeStatus::Malformed);
}

TEST(Rfc8448, SessionFollowsTheClientFromHandshakeToApplicationKeys) {
    Random cr{};
    cr[0] = 0xcb;
    KeyLog log;
    const std::string r = hex(cr);
    ASSERT_TRUE(log.add_text("CLIENT_HANDSHAKE_TRAFFIC_SECRET " + r + " " + kClientHsSecret +
                             "\nSERVER_HANDSHAKE_TRAFFIC_SECRET " + r + " " + kServerHsSecret +
                             "\nCLIENT_TRAFFIC_SECRET_0 " + r + " " + kClientApSecret +
                             "\nSERVER_TRAFFIC_SECRET_0 " + r + " " + kServerApSecret + "\n")
                    .empty());
    SessionDecrypter dec(log);
    ClientHello ch;
    ch.random = cr;
    dec.client_hello(ch);
    ServerHello sh;
    sh.cipher_suite = 0x1301;
    sh.legacy_version = 0x0303;
    sh.selected_version = 0x0304;
    dec.server_hello(sh);
    ASSERT_TRUE(dec.keyed()) << dec.why_not();
    EXPECT_FALSE(dec.protects(Direction::ClientToServer, content_type::kChangeCipherSpec));
    ASSERT_TRUE(dec.protects(Direction::ClientToServer, content_type::kApplicationData));
    OpenedRecord o;
    DecodeResult res;
    ASSERT_EQ(
        (res = dec.open(Direction::ClientToServer, from_hex(kClientFinishedRecord), o)).status(),
        DecodeStatus::Consumed);
    EXPECT_EQ(o.type, content_type::kHandshake);
    ASSERT_EQ((res = dec.open(Direction::ClientToServer, from_hex(kClientAppRecord), o)).status(),
              DecodeStatus::Consumed)
        << res.error().detail;
    EXPECT_EQ(o.type, content_type::kApplicationData);
    EXPECT_EQ(Buf(o.plaintext.begin(), o.plaintext.end()), counting(50));
    EXPECT_EQ(dec.why_not(), "");
}

// ---- key log -----------------------------------------------------------------------------------

const std::string kRandom(64, 'a');
const std::string kMaster(96, '7');
const std::string kSecret32(64, 'b');

TEST(KeyLog, ParsesTheNssLabelsAndSkipsTheRest) {
    KeyLog log;
    const auto errors =
        log.add_text("# SSL/TLS secrets log file\n\nCLIENT_RANDOM " + kRandom + " " + kMaster +
                     "\r\nEXPORTER_SECRET " + kRandom + " " + kSecret32 +
                     "\nCLIENT_TRAFFIC_SECRET_0 " + kRandom + " " + kSecret32 + "\n");
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(log.sessions(), 1u);
    EXPECT_EQ(log.skipped_lines(), 1u);
    Random r{};
    r.fill(0xaa);
    const SessionSecrets* s = log.find(r);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->master.size(), 48u);
    EXPECT_EQ(s->client_traffic.size(), 32u);
    EXPECT_TRUE(s->server_traffic.empty());
    r[0] = 0;
    EXPECT_EQ(log.find(r), nullptr);
}

TEST(KeyLog, BadLinesAreNamedByNumberWithoutTheSecret) {
    KeyLog log;
    const std::string secret_a = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
    const std::string text = "CLIENT_RANDOM " + kRandom + "\n" +                   // 1: 2 fields
                             "CLIENT_RANDOM " + kRandom + " " + secret_a + "\n" +  // 2: 31 bytes
                             "CLIENT_RANDOM zz " + kMaster + "\n" +                // 3: bad random
                             "SERVER_TRAFFIC_SECRET_0 " + kRandom + " " + secret_a + "xy\n" +  // 4
                             secret_a + secret_a + "\n" +  // 5: a bare secret
                             "CLIENT_RANDOM " + kRandom + " " + kMaster + "\n" +  // 6: fine
                             "CLIENT_RANDOM " + kRandom + " " + std::string(96, '8') +
                             "\n";  // 7: conflicts with 6
    const auto errors = log.add_text(text);
    ASSERT_EQ(errors.size(), 6u);
    EXPECT_EQ(errors[0].line, 1u);
    EXPECT_EQ(errors[1].line, 2u);
    EXPECT_EQ(errors[2].line, 3u);
    EXPECT_EQ(errors[3].line, 4u);
    EXPECT_EQ(errors[4].line, 5u);
    EXPECT_EQ(errors[5].line, 7u);
    for (const auto& e : errors) {
        EXPECT_EQ(e.message.find(secret_a.substr(0, 16)), std::string::npos) << e.message;
        EXPECT_EQ(e.message.find("8888"), std::string::npos) << e.message;
        EXPECT_EQ(e.message.find("7777"), std::string::npos) << e.message;
        EXPECT_FALSE(e.message.empty());
    }
    EXPECT_NE(errors[0].message.find("CLIENT_RANDOM"), std::string::npos);
    EXPECT_EQ(log.sessions(), 1u);
}

// ---- real OpenSSL sessions ----------------------------------------------------------------------

/// Follows the flights of a TlsPair like the conversation does: records split per direction,
/// clear ones through a HandshakeObserver that feeds the hellos and CCS to the decrypter.
struct Follow : ObserverSink {
    explicit Follow(const KeySource& keys) : dec(keys), obs{{*this}, {*this}} {}
    SessionDecrypter dec;
    Direction cur = Direction::ClientToServer;
    struct Obs {
        Obs(ObserverSink& s) : o(s) {}  // NOLINT(google-explicit-constructor)
        HandshakeObserver o;
    };
    Obs obs[2];
    Buf pending[2];
    Buf app[2];
    int encrypted = 0;
    int failures = 0;

    void on_client_hello(const ClientHello& ch) override { dec.client_hello(ch); }
    void on_server_hello(const ServerHello& sh) override { dec.server_hello(sh); }
    void on_change_cipher_spec() override { dec.change_cipher_spec(cur); }
    void on_encrypted_record(std::uint8_t, std::size_t) override { ++encrypted; }

    void feed(const testing::Flight& f) {
        cur = f.dir;
        const int d = f.dir == Direction::ClientToServer ? 0 : 1;
        Buf& p = pending[d];
        p.insert(p.end(), f.bytes.begin(), f.bytes.end());
        while (p.size() >= 5) {
            const std::size_t n = 5 + ((std::size_t{p[3]} << 8) | p[4]);
            if (p.size() < n) break;
            const Bytes rec(p.data(), n);
            if (dec.protects(f.dir, rec[0])) {
                OpenedRecord o;
                DecodeResult res;
                if ((res = dec.open(f.dir, rec, o)).status() == DecodeStatus::Consumed) {
                    if (o.type == content_type::kApplicationData)
                        app[d].insert(app[d].end(), o.plaintext.begin(), o.plaintext.end());
                } else {
                    ++failures;
                }
            } else {
                obs[d].o.on_record(rec);
            }
            p.erase(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n));
        }
    }
};

struct SuiteCase {
    int version;
    const char* openssl_name;
    std::uint16_t id;
};

class RealSessions : public ::testing::TestWithParam<SuiteCase> {};

TEST_P(RealSessions, EveryRecordOpensWithTheClientsKeyLog) {
    const SuiteCase& c = GetParam();
    testing::TlsPairConfig cfg;
    cfg.version = c.version;
    (c.version == TLS1_3_VERSION ? cfg.ciphersuites : cfg.cipher_list) = c.openssl_name;
    testing::TlsPair pair(cfg);
    pair.handshake();
    ASSERT_EQ(pair.cipher_id(), c.id);
    const Buf up = counting(3000);
    const Buf down = counting(20000);  // two records
    pair.send(Direction::ClientToServer, up);
    pair.send(Direction::ServerToClient, down);
    pair.send(Direction::ClientToServer, Buf{1, 2, 3});

    KeyLog log;
    ASSERT_TRUE(log.add_text(pair.keylog).empty());
    Follow f(log);
    for (const auto& fl : pair.flights)
        f.feed(fl);
    EXPECT_EQ(f.failures, 0) << f.dec.why_not();
    EXPECT_EQ(f.dec.why_not(), "");
    Buf want_up = up;
    want_up.insert(want_up.end(), {1, 2, 3});
    EXPECT_EQ(f.app[0], want_up);
    EXPECT_EQ(f.app[1], down);
    EXPECT_EQ(f.encrypted, 0);  // nothing left opaque

    // Without the key log the same session stays opaque, and says why.
    KeyLog empty;
    Follow g(empty);
    for (const auto& fl : pair.flights)
        g.feed(fl);
    EXPECT_TRUE(g.app[0].empty());
    EXPECT_GT(g.encrypted, 0);
    EXPECT_NE(g.dec.why_not().find("key log"), std::string::npos) << g.dec.why_not();
}

INSTANTIATE_TEST_SUITE_P(
    Suites, RealSessions,
    ::testing::Values(SuiteCase{TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", 0x1301},
                      SuiteCase{TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", 0x1302},
                      SuiteCase{TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", 0x1303},
                      SuiteCase{TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B},
                      SuiteCase{TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02C},
                      SuiteCase{TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", 0xCCA9}),
    [](const ::testing::TestParamInfo<SuiteCase>& i) {
        std::string n = std::string(i.param.version == TLS1_3_VERSION ? "tls13_" : "tls12_") +
                        i.param.openssl_name;
        std::replace_if(
            n.begin(), n.end(),
            [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
        return n;
    });

TEST(RealSessionsShapes, HelloRetryRequestThenTheRealServerHello) {
    testing::TlsPairConfig cfg;
    cfg.client_groups = "X25519:P-256";  // key share for X25519 only
    cfg.server_groups = "P-256";         // so the server asks again
    testing::TlsPair pair(cfg);
    pair.handshake();
    pair.send(Direction::ClientToServer, counting(500));
    pair.send(Direction::ServerToClient, counting(700));
    KeyLog log;
    ASSERT_TRUE(log.add_text(pair.keylog).empty());
    Follow f(log);
    for (const auto& fl : pair.flights)
        f.feed(fl);
    EXPECT_EQ(f.dec.why_not(), "");
    EXPECT_EQ(f.app[0], counting(500));
    EXPECT_EQ(f.app[1], counting(700));
}

TEST(RealSessionsShapes, ResumedSessionsAreFollowed) {
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        SCOPED_TRACE(version);
        testing::TlsPairConfig cfg;
        cfg.version = version;
        testing::TlsPair pair(cfg);
        pair.handshake();
        pair.send(Direction::ClientToServer, counting(10));
        pair.send(Direction::ServerToClient, counting(10));  // the client reads its tickets
        pair.resume();
        pair.handshake();
        ASSERT_TRUE(pair.reused());
        pair.send(Direction::ClientToServer, counting(300));
        pair.send(Direction::ServerToClient, counting(400));
        KeyLog log;
        ASSERT_TRUE(log.add_text(pair.keylog).empty());
        Follow f(log);
        for (const auto& fl : pair.flights)
            f.feed(fl);
        EXPECT_EQ(f.dec.why_not(), "");
        EXPECT_EQ(f.app[0], counting(300));
        EXPECT_EQ(f.app[1], counting(400));
    }
}

TEST(RealSessionsLimits, CbcSuiteIsRefusedWithItsName) {
    testing::TlsPairConfig cfg;
    cfg.version = TLS1_2_VERSION;
    cfg.cipher_list = "ECDHE-ECDSA-AES128-SHA256";
    testing::TlsPair pair(cfg);
    pair.handshake();
    pair.send(Direction::ClientToServer, counting(100));
    KeyLog log;
    ASSERT_TRUE(log.add_text(pair.keylog).empty());
    Follow f(log);
    for (const auto& fl : pair.flights)
        f.feed(fl);
    EXPECT_TRUE(f.app[0].empty());
    EXPECT_NE(f.dec.why_not().find("0xc023"), std::string::npos) << f.dec.why_not();
    EXPECT_NE(f.dec.why_not().find("not decrypted"), std::string::npos);
}

TEST(RealSessionsLimits, KeyUpdateStopsThatDirectionWithAReason) {
    testing::TlsPairConfig cfg;
    testing::TlsPair pair(cfg);
    pair.handshake();
    pair.send(Direction::ClientToServer, counting(10));
    pair.key_update(Direction::ClientToServer);
    pair.send(Direction::ClientToServer, counting(20));
    pair.send(Direction::ServerToClient, counting(30));
    KeyLog log;
    ASSERT_TRUE(log.add_text(pair.keylog).empty());
    Follow f(log);
    for (const auto& fl : pair.flights)
        f.feed(fl);
    EXPECT_EQ(f.app[0], counting(10));  // up to the KeyUpdate
    EXPECT_EQ(f.app[1], counting(30));  // the other direction goes on
    EXPECT_NE(f.dec.why_not().find("KeyUpdate"), std::string::npos) << f.dec.why_not();
    EXPECT_GT(f.encrypted, 0);
}

TEST(RealSessionsLimits, WrongKeysFailAuthenticationAndDeliverNothing) {
    testing::TlsPairConfig cfg;
    cfg.version = TLS1_2_VERSION;
    testing::TlsPair pair(cfg);
    pair.handshake();
    pair.send(Direction::ClientToServer, counting(10));
    std::string text = pair.keylog;
    const std::size_t sp = text.rfind(' ');
    text[sp + 1] = text[sp + 1] == '0' ? '1' : '0';  // first hex digit of the master secret
    KeyLog wrong;
    ASSERT_TRUE(wrong.add_text(text).empty());
    Follow g(wrong);
    for (const auto& fl : pair.flights)
        g.feed(fl);
    EXPECT_TRUE(g.app[0].empty());
    EXPECT_GT(g.failures, 0);
    EXPECT_NE(g.dec.why_not().find("failed authentication"), std::string::npos) << g.dec.why_not();
}

}  // namespace
}  // namespace hopscope::tls
