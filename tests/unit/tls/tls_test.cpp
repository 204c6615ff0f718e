// TLS metadata from real OpenSSL handshakes (tests/data/tds/tls/, made by gen.py there with the
// system OpenSSL 3; expected values from tshark, *.tshark.tsv next to them).
#include "hopscope/tls/tls.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "../tds/tds_builders.hpp"
#include "hopscope/tds/packet.hpp"

namespace hopscope::tls {
namespace {

using testing::Buf;

Buf load(const std::string& name) {
    std::ifstream in(testing::data_path("tds/tls/" + name), std::ios::binary);
    return Buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Seen : ObserverSink {
    std::vector<ClientHello> ch;
    std::vector<ServerHello> sh;
    std::vector<std::pair<std::uint8_t, std::size_t>> messages;
    std::vector<std::pair<std::uint8_t, std::size_t>> encrypted;
    int ccs = 0;
    int errors = 0;
    void on_client_hello(const ClientHello& h) override { ch.push_back(h); }
    void on_server_hello(const ServerHello& h) override { sh.push_back(h); }
    void on_handshake_message(std::uint8_t t, std::size_t n) override {
        messages.emplace_back(t, n);
    }
    void on_change_cipher_spec() override { ++ccs; }
    void on_encrypted_record(std::uint8_t t, std::size_t n) override {
        encrypted.emplace_back(t, n);
    }
    void on_error(const DecodeError&) override { ++errors; }
};

// Splits a raw record stream with the TDS framer (as the conversation does) and observes it.
Seen observe(const Buf& stream, bool bytewise = false) {
    struct Split : tds::FramerSink {
        HandshakeObserver* obs = nullptr;
        int other = 0;
        void on_unit(const tds::FramedUnit& u) override {
            if (u.kind == tds::FramedUnit::Kind::TlsRecord) {
                obs->on_record(u.bytes);
            } else {
                ++other;
            }
        }
        void on_skipped(std::uint64_t, std::uint64_t) override { ++other; }
        void on_framing_error(std::uint64_t, const DecodeError&) override { ++other; }
    };
    Seen seen;
    HandshakeObserver obs(seen);
    Split split;
    split.obs = &obs;
    tds::PacketFramer f(split, Direction::ClientToServer, true);
    if (bytewise) {
        for (auto b : stream)
            f.feed(Bytes(&b, 1));
    } else {
        f.feed(stream);
    }
    f.finish();
    EXPECT_EQ(split.other, 0);
    return seen;
}

TEST(Tls, OpenSsl13ClientHelloMatchesTshark) {
    // tshark frame 1: SNI sqlb.lab.test, ALPN tds/8.0, supported_versions 0x0304,0x0303,0x0302,
    // 0x0301, 31 cipher suites; records 22,20,23,23 (record version 0x0301 on the first).
    const Seen s = observe(load("tls13.c2s"));
    ASSERT_EQ(s.ch.size(), 1u);
    const ClientHello& h = s.ch[0];
    EXPECT_EQ(h.record_version, 0x0301) << "tshark: first record version 0x0301";
    EXPECT_EQ(h.legacy_version, 0x0303);
    EXPECT_EQ(h.sni, "sqlb.lab.test");
    EXPECT_EQ(h.alpn, std::vector<std::string>{"tds/8.0"});
    EXPECT_EQ(h.supported_versions, (std::vector<std::uint16_t>{0x0304, 0x0303, 0x0302, 0x0301}));
    EXPECT_EQ(h.cipher_suite_count, 31u);
    EXPECT_EQ(h.max_version(), 0x0304);
    EXPECT_EQ(s.ccs, 1);
    ASSERT_EQ(s.encrypted.size(), 2u) << "client Finished and the application data";
    EXPECT_EQ(s.encrypted[0].first, content_type::kApplicationData);
    EXPECT_EQ(s.errors, 0);
}

TEST(Tls, OpenSsl13ServerHelloSelectsVersionByExtension) {
    // tshark frame 2: ServerHello, supported_version 0x0304, cipher 0x1302; legacy 0x0303.
    const Seen s = observe(load("tls13.s2c"));
    ASSERT_EQ(s.sh.size(), 1u);
    EXPECT_EQ(s.sh[0].legacy_version, 0x0303);
    EXPECT_EQ(s.sh[0].record_version, 0x0303);
    EXPECT_EQ(s.sh[0].selected_version, 0x0304);
    EXPECT_EQ(s.sh[0].version(), 0x0304);
    EXPECT_EQ(s.sh[0].cipher_suite, 0x1302);
    EXPECT_FALSE(s.sh[0].hello_retry_request);
    EXPECT_EQ(version_name(s.sh[0].version()), "TLS 1.3");
    EXPECT_GE(s.encrypted.size(), 1u);
}

TEST(Tls, OpenSsl12FullHandshake) {
    // tshark: server records 22 x5 (ServerHello, Certificate 799, ServerKeyExchange 300,
    // ServerHelloDone 4, NewSessionTicket 186), CCS, encrypted Finished 40; cipher 0xc030,
    // ALPN tds/8.0. Client: ClientHello, ClientKeyExchange, CCS, Finished, data (124).
    const Seen s = observe(load("tls12.s2c"));
    ASSERT_EQ(s.sh.size(), 1u);
    EXPECT_EQ(s.sh[0].version(), 0x0303);
    EXPECT_FALSE(s.sh[0].selected_version);
    EXPECT_EQ(s.sh[0].cipher_suite, 0xc030);
    EXPECT_EQ(s.sh[0].alpn, "tds/8.0");
    std::vector<std::uint8_t> types;
    for (const auto& m : s.messages)
        types.push_back(m.first);
    EXPECT_EQ(types, (std::vector<std::uint8_t>{11, 12, 14, 4}));
    EXPECT_EQ(s.ccs, 1);
    ASSERT_EQ(s.encrypted.size(), 1u);
    EXPECT_EQ(s.encrypted[0], (std::pair<std::uint8_t, std::size_t>{22, 40}));
    const Seen c = observe(load("tls12.c2s"), true);
    ASSERT_EQ(c.ch.size(), 1u);
    EXPECT_TRUE(c.ch[0].supported_versions.empty());
    EXPECT_EQ(c.ch[0].max_version(), 0x0303);
    ASSERT_EQ(c.encrypted.size(), 2u);
    EXPECT_EQ(c.encrypted[1], (std::pair<std::uint8_t, std::size_t>{23, 124}));
}

TEST(Tls, HandshakeMessagesSplitAcrossRecords) {
    // The same ClientHello cut into 1-byte records reassembles to the same result.
    const Buf c2s = load("tls13.c2s");
    const std::size_t len = load_u16be(&c2s[3]);
    Buf split;
    for (std::size_t i = 0; i < len; ++i) {
        testing::append(split, Buf{0x16, 0x03, 0x01, 0x00, 0x01, c2s[5 + i]});
    }
    const Seen s = observe(split);
    ASSERT_EQ(s.ch.size(), 1u);
    EXPECT_EQ(s.ch[0].sni, "sqlb.lab.test");
}

TEST(Tls, HostileRecordsAndHellosAreTypedErrors) {
    RecordHeader h;
    DecodeResult res;
    EXPECT_EQ((res = parse_record_header(testing::from_hex("1603014801"), h)).status(),
              DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::BadLength);
    EXPECT_EQ((res = parse_record_header(testing::from_hex("1802010001"), h)).status(),
              DecodeStatus::Malformed);
    EXPECT_EQ((res = parse_record_header(testing::from_hex("1603"), h)).status(),
              DecodeStatus::NeedMore);
    // Every truncation of the real ClientHello body is rejected or parsed, never over-read.
    const Buf c2s = load("tls13.c2s");
    const std::size_t len = load_u16be(&c2s[3]);
    const Bytes body = Bytes(c2s).subspan(9, len - 4);
    ClientHello ch;
    for (std::size_t n = 0; n < body.size(); ++n) {
        const DecodeStatus st = (res = parse_client_hello(body.first(n), ch)).status();
        EXPECT_TRUE(st == DecodeStatus::Malformed || st == DecodeStatus::Consumed) << n;
    }
    EXPECT_EQ((res = parse_client_hello(body.first(20), ch)).status(), DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::Truncated);
    EXPECT_TRUE(looks_like_record(testing::from_hex("170303")));
    EXPECT_FALSE(looks_like_record(testing::from_hex("1201")));
}

}  // namespace
}  // namespace hopscope::tls
