#include "hopscope/tds/prelogin.hpp"

#include <gtest/gtest.h>

#include "tds_builders.hpp"

namespace hopscope::tds {
namespace {

using testing::Buf;

TEST(Prelogin, MsTdsSample41) {
    // MS-TDS 4.1 "Pre-Login Request" sample (packet header stripped): VERSION 9.0.0.0,
    // ENCRYPTION 0x01, INSTOPT "", THREADID 0xB80D0000 (bytes B8 0D 00 00), MARS 1.
    const Buf p = testing::from_hex(
        "12 01 00 2F 00 00 01 00 00 00 1A 00 06 01 00 20 00 01 02 00 21 00 01 03 00 22 00 04 04 "
        "00 26 00 01 FF 09 00 00 00 00 00 01 00 B8 0D 00 00 01");
    Prelogin pl;
    DecodeResult res;
    ASSERT_EQ((res = parse_prelogin(Bytes(p).subspan(8), pl)).status(), DecodeStatus::Consumed)
        << res.error().detail;
    ASSERT_EQ(pl.options.size(), 5u);
    EXPECT_EQ(pl.options[0].offset, 0x1A);
    ASSERT_TRUE(pl.version);
    EXPECT_EQ(pl.version->to_string(), "9.0.0");
    EXPECT_EQ(pl.encryption, encrypt::kOn);
    EXPECT_EQ(pl.instance, "");
    EXPECT_EQ(pl.thread_id, 0xB80D0000u);
    EXPECT_EQ(pl.mars, 1);
    EXPECT_FALSE(pl.trace_id);
}

TEST(Prelogin, RealSql2000ExchangeMatchesTshark) {
    // Frames 4 and 5 of tds7_sqlauth_login_prelogin_loginack_arkime.pcap. tshark: client Version
    // 8.0.341, Encryption 0, InstOpt "MSSQLServer", ThreadID 3624075264; server Version 8.0.2039,
    // Encryption 2 (not available), InstOpt "", ThreadID with length 0.
    const Buf c = testing::from_hex(
        "000015000601001b000102001c000c0300280004ff080001550000004d5353514c53657276657200d8030000");
    const Buf s = testing::from_hex("000015000601001b000102001c000103001d0000ff080007f700000200");
    Prelogin pc, ps;
    DecodeResult res;
    ASSERT_EQ((res = parse_prelogin(c, pc)).status(), DecodeStatus::Consumed) << res.error().detail;
    ASSERT_EQ((res = parse_prelogin(s, ps)).status(), DecodeStatus::Consumed) << res.error().detail;
    EXPECT_EQ(pc.version->to_string(), "8.0.341");
    EXPECT_EQ(pc.encryption, encrypt::kOff);
    EXPECT_EQ(pc.instance, "MSSQLServer");
    EXPECT_EQ(pc.thread_id, 3624075264u);
    EXPECT_EQ(ps.version->to_string(), "8.0.2039");
    EXPECT_EQ(ps.encryption, encrypt::kNotSup);
    EXPECT_EQ(ps.instance, "");
    EXPECT_FALSE(ps.thread_id) << "zero-length THREADID carries no value";
    const auto n = negotiate_encryption(*pc.encryption, *ps.encryption);
    EXPECT_EQ(n.mode, EncryptionMode::None);
    EXPECT_TRUE(n.downgraded) << "client offered login encryption, server has none";
}

/// A PRELOGIN with every option [MS-TDS 2.2.6.5] set, and one of an unknown token (0x42): VERSION
/// 15.0.4660.1, ENCRYPT_REQ, INSTOPT "SQL", THREADID 256, MARS off, TRACEID bytes 0..35,
/// FEDAUTHREQUIRED 1, NONCEOPT 32 x 0xAB.
Buf every_option() {
    Buf trace(36, 0);
    for (int i = 0; i < 36; ++i)
        trace[i] = static_cast<std::uint8_t>(i);
    return testing::prelogin({{0x00, testing::from_hex("0f00 1234 0001")},
                              {0x01, {0x03}},
                              {0x02, {'S', 'Q', 'L', 0}},
                              {0x03, {0, 0, 1, 0}},
                              {0x04, {0x00}},
                              {0x05, trace},
                              {0x06, {0x01}},
                              {0x07, Buf(32, 0xAB)},
                              {0x42, {1, 2, 3}}});
}

TEST(Prelogin, AllOptionsIncludingTraceIdFedAuthAndNonce) {
    const Buf p = every_option();
    Prelogin pl;
    DecodeResult res;
    ASSERT_EQ((res = parse_prelogin(p, pl)).status(), DecodeStatus::Consumed) << res.error().detail;
    EXPECT_EQ(pl.options.size(), 9u);
    EXPECT_EQ(pl.version->build, 0x1234);
    EXPECT_EQ(pl.version->sub_build, 1);
    EXPECT_EQ(pl.encryption, encrypt::kReq);
    EXPECT_EQ(pl.instance, "SQL");
    EXPECT_EQ(pl.thread_id, 256u);
    EXPECT_EQ(pl.mars, 0);
    ASSERT_TRUE(pl.trace_id);
    EXPECT_EQ(pl.trace_id->connection_id[15], 15);
    EXPECT_EQ(pl.trace_id->activity_id[0], 16);
    EXPECT_EQ(pl.trace_id->activity_sequence, 0x23222120u);
    EXPECT_EQ(pl.fed_auth_required, 1);
    ASSERT_TRUE(pl.nonce);
    EXPECT_EQ((*pl.nonce)[31], 0xAB);
}

TEST(Prelogin, EachParseStartsFromNothing) {
    // Every option first, then ENCRYPTION alone into the same Prelogin: nothing of the first
    // parse is left over.
    const Buf all = every_option();
    Prelogin pl;
    ASSERT_EQ(parse_prelogin(all, pl).status(), DecodeStatus::Consumed);
    ASSERT_TRUE(pl.version && pl.instance && pl.thread_id && pl.mars && pl.trace_id &&
                pl.fed_auth_required && pl.nonce);
    ASSERT_EQ(parse_prelogin(testing::prelogin({{0x01, {0x00}}}), pl).status(),
              DecodeStatus::Consumed);
    EXPECT_EQ(pl.options.size(), 1u);
    EXPECT_EQ(pl.encryption, encrypt::kOff);
    EXPECT_FALSE(pl.version);
    EXPECT_FALSE(pl.instance);
    EXPECT_FALSE(pl.thread_id);
    EXPECT_FALSE(pl.mars);
    EXPECT_FALSE(pl.trace_id);
    EXPECT_FALSE(pl.fed_auth_required);
    EXPECT_FALSE(pl.nonce);
    // And a malformed one leaves nothing of the one before it either.
    ASSERT_EQ(parse_prelogin(all, pl).status(), DecodeStatus::Consumed);
    EXPECT_EQ(parse_prelogin(testing::from_hex("0000050001"), pl).status(),
              DecodeStatus::Malformed);
    EXPECT_FALSE(pl.version);
    EXPECT_FALSE(pl.nonce);
}

TEST(Prelogin, MalformedTablesAreTypedErrors) {
    Prelogin pl;
    DecodeResult res;
    // No terminator.
    EXPECT_EQ((res = parse_prelogin(testing::from_hex("0000050001"), pl)).status(),
              DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::Truncated);
    // Option pointing past the end.
    EXPECT_EQ((res = parse_prelogin(testing::from_hex("010010 0001 ff"), pl)).status(),
              DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::Truncated);
    // ENCRYPTION with length 2.
    EXPECT_EQ((res = parse_prelogin(testing::from_hex("010006 0002 ff 0000"), pl)).status(),
              DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::BadLength);
    // Empty payload.
    EXPECT_EQ((res = parse_prelogin({}, pl)).status(), DecodeStatus::Malformed);
}

TEST(Prelogin, TableHoldsItsCapacityAndRefusesOneMore) {
    // Unknown tokens with one data byte each: the table's whole capacity parses, in wire order;
    // one entry more is TooLarge (not a longer table, not a crash).
    auto table = [](std::size_t n) {
        std::vector<std::pair<std::uint8_t, Buf>> opts;
        for (std::size_t i = 0; i < n; ++i)
            opts.emplace_back(static_cast<std::uint8_t>(0x40 + i % 0x80),
                              Buf{static_cast<std::uint8_t>(i)});
        return testing::prelogin(opts);
    };
    Prelogin pl;
    DecodeResult res;
    const std::size_t cap = PreloginOptions::kCapacity;
    ASSERT_EQ((res = parse_prelogin(table(cap), pl)).status(), DecodeStatus::Consumed)
        << res.error().detail;
    ASSERT_EQ(pl.options.size(), cap);
    EXPECT_EQ(pl.options[0].token, 0x40);
    EXPECT_EQ(pl.options[cap - 1].token, 0x40 + (cap - 1) % 0x80);
    EXPECT_EQ(pl.options[cap - 1].offset, cap * 5 + 1 + (cap - 1));
    std::size_t seen = 0;
    for (const PreloginOption& o : pl.options)
        seen += o.length;
    EXPECT_EQ(seen, cap);
    EXPECT_EQ((res = parse_prelogin(table(cap + 1), pl)).status(), DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::TooLarge);
    // A parse starts from an empty table: a short one after the full one has its own size.
    ASSERT_EQ((res = parse_prelogin(table(2), pl)).status(), DecodeStatus::Consumed);
    EXPECT_EQ(pl.options.size(), 2u);
}

TEST(Prelogin, EncryptionNegotiationTable) {
    using M = EncryptionMode;
    struct Row {
        std::uint8_t c, s;
        M mode;
        bool downgraded, abort;
    };
    // MS-TDS 2.2.6.5: NOT_SUP on either side -> no TLS; OFF/OFF -> login only; else full.
    const Row rows[] = {
        {encrypt::kOff, encrypt::kOff, M::LoginOnly, false, false},
        {encrypt::kOff, encrypt::kOn, M::Full, false, false},
        {encrypt::kOff, encrypt::kReq, M::Full, false, false},
        {encrypt::kOff, encrypt::kNotSup, M::None, true, false},
        {encrypt::kOn, encrypt::kOn, M::Full, false, false},
        {encrypt::kOn, encrypt::kOff, M::Full, false, false},
        {encrypt::kOn, encrypt::kNotSup, M::None, true, true},
        {encrypt::kReq, encrypt::kNotSup, M::None, true, true},
        {encrypt::kNotSup, encrypt::kNotSup, M::None, false, false},
        {encrypt::kNotSup, encrypt::kReq, M::None, false, true},
        {encrypt::kNotSup, encrypt::kOff, M::None, false, false},
        {static_cast<std::uint8_t>(encrypt::kOn | encrypt::kClientCert), encrypt::kOn, M::Full,
         false, false},
        {0x07, encrypt::kOn, M::Unknown, false, false},
    };
    for (const Row& r : rows) {
        const auto n = negotiate_encryption(r.c, r.s);
        EXPECT_EQ(n.mode, r.mode) << int(r.c) << "/" << int(r.s);
        EXPECT_EQ(n.downgraded, r.downgraded) << int(r.c) << "/" << int(r.s);
        EXPECT_EQ(n.peer_should_abort, r.abort) << int(r.c) << "/" << int(r.s);
    }
    EXPECT_EQ(encryption_value_name(0x81), "ENCRYPT_ON|CLIENT_CERT");
}

}  // namespace
}  // namespace hopscope::tds
