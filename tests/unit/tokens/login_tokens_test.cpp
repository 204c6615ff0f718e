// Login-time tokens: LOGINACK, ERROR/INFO, ENVCHANGE, SSPI, FEATUREEXTACK, FEDAUTHINFO, DONE*.
// Byte vectors are built field by field from the [MS-TDS] token definitions cited per test; the
// real bytes come from tests/data/tokens (see README.md there for how they were extracted).
#include <gtest/gtest.h>

#include "recorder.hpp"

namespace hopscope::tds::test {
namespace {

// [MS-TDS 2.2.7.14] LOGINACK: Interface, TDSVersion (big-endian on the wire), ProgName
// B_VARCHAR, MajorVer, MinorVer, BuildNumHi, BuildNumLow.
Buf login_ack_74() {
    Buf body = B().u8(1)
                   .u32be(0x74000004)
                   .bvarchar("Microsoft SQL Server")
                   .u8(16)
                   .u8(0)
                   .u8(0x10)
                   .u8(0x7A)
                   .b;
    return B().token16(0xAD, body).b;
}

// [MS-TDS 2.2.7.10] ERROR: Number LONG, State, Class, MsgText US_VARCHAR, ServerName B_VARCHAR,
// ProcName B_VARCHAR, LineNumber LONG (TDS 7.2+).
Buf error_18456() {
    Buf body = B().u32(18456)
                   .u8(1)
                   .u8(14)
                   .usvarchar("Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.")
                   .bvarchar("SQLB")
                   .bvarchar("")
                   .u32(1)
                   .b;
    return B().token16(0xAA, body).b;
}

// [MS-TDS 2.2.7.6] DONE: Status USHORT, CurCmd USHORT, DoneRowCount ULONGLONG (TDS 7.2+).
Buf done(std::uint8_t tok, std::uint16_t status, std::uint16_t cmd, std::uint64_t rows) {
    return B().u8(tok).u16(status).u16(cmd).u64(rows).b;
}

TEST(LoginTokens, LoginAckSpecVector) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().raw(login_ack_74()).raw(done(0xFD, 0, 0, 0)).b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.acks.size(), 1u);
    EXPECT_EQ(rec.acks[0].interface, 1);
    EXPECT_EQ(rec.acks[0].tds_version, 0x74000004u);
    EXPECT_EQ(rec.acks[0].prog_name, "Microsoft SQL Server");
    EXPECT_EQ(rec.acks[0].major, 16);
    EXPECT_EQ(rec.acks[0].minor, 0);
    EXPECT_EQ(rec.acks[0].build, 4218);
    ASSERT_EQ(rec.dones.size(), 1u);
    ASSERT_EQ(rec.tokens.size(), 2u);
    EXPECT_EQ(rec.tokens[0].first, 0xAD);
    EXPECT_EQ(rec.tokens[0].second, login_ack_74().size());
    EXPECT_EQ(rec.tokens[1].second, 13u);
}

TEST(LoginTokens, ErrorAnonymousLogonThenDoneError) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().raw(error_18456()).raw(done(0xFD, 0x0002, 0, 0)).b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.messages.size(), 1u);
    const auto& e = rec.messages[0];
    EXPECT_TRUE(e.is_error);
    EXPECT_EQ(e.number, 18456);
    EXPECT_EQ(e.state, 1);
    EXPECT_EQ(e.severity, 14);
    EXPECT_EQ(e.text, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.");
    EXPECT_EQ(e.server, "SQLB");
    EXPECT_EQ(e.proc, "");
    EXPECT_EQ(e.line, 1u);
    ASSERT_EQ(rec.dones.size(), 1u);
    EXPECT_TRUE(rec.dones[0].error());
    EXPECT_FALSE(rec.dones[0].more());
}

TEST(LoginTokens, InfoToken) {
    Recorder rec;
    Parser p(rec);
    Buf body = B().u32(5701).u8(2).u8(0).usvarchar("x").bvarchar("S").bvarchar("P").u32(7).b;
    Buf m = B().token16(0xAB, body).b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.messages.size(), 1u);
    EXPECT_FALSE(rec.messages[0].is_error);
    EXPECT_EQ(rec.messages[0].proc, "P");
    EXPECT_EQ(rec.messages[0].line, 7u);
}

// With INFO messages off (a sink that wants only errors), an INFO token is checked and counted
// but not reported; ERROR tokens are; a short INFO token is still an error.
TEST(LoginTokens, InfoMessagesOffReportsErrorsOnly) {
    Recorder rec;
    Parser p(rec);
    p.set_info_messages(false);
    Buf info = B().u32(5701)
                   .u8(2)
                   .u8(0)
                   .usvarchar("Changed database context to 'master'.")
                   .bvarchar("SQLB")
                   .bvarchar("")
                   .u32(1)
                   .b;
    Buf m = B().token16(0xAB, info).raw(error_18456()).raw(done(0xFD, 0x0002, 0, 0)).b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.messages.size(), 1u);
    EXPECT_TRUE(rec.messages[0].is_error);
    EXPECT_EQ(rec.messages[0].number, 18456);
    EXPECT_EQ(rec.messages[0].server, "SQLB");
    ASSERT_EQ(rec.tokens.size(), 3u);
    EXPECT_EQ(rec.tokens[0].first, 0xAB);
    EXPECT_EQ(rec.tokens[0].second, 3 + info.size());

    Recorder rec2;
    Parser p2(rec2);
    p2.set_info_messages(false);
    Buf cut(info.begin(), info.end() - 4);  // no line number
    Buf cut2(cut.begin(), cut.end() - 1);   // nor all of the procedure name's length
    for (const Buf& body : {cut, cut2}) {
        EXPECT_EQ(feed_all(p2, B().token16(0xAB, body).b), DecodeStatus::Malformed);
        EXPECT_EQ(p2.last_error().code, DecodeError::Code::Truncated);
    }
    EXPECT_TRUE(rec2.messages.empty());
    p2.set_info_messages(true);
    ASSERT_EQ(feed_all(p2, B().token16(0xAB, info).b), DecodeStatus::Consumed);
    ASSERT_EQ(rec2.messages.size(), 1u);
    EXPECT_EQ(rec2.messages[0].text, "Changed database context to 'master'.");
}

// [MS-TDS 2.2.7.9] ENVCHANGE type 20 Routing: NewValue = RoutingDataValueLength USHORT,
// Protocol BYTE (0 = TCP), ProtocolProperty USHORT (port), AlternateServer US_VARCHAR;
// OldValue = 0x0000.
TEST(LoginTokens, EnvChangeRouting) {
    Recorder rec;
    Parser p(rec);
    Buf route = B().u8(0).u16(1433).usvarchar("replica.contoso.com").b;
    Buf body = B().u8(20).u16(route.size()).raw(route).u16(0).b;
    Buf m = B().token16(0xE3, body).raw(done(0xFD, 0, 0, 0)).b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.envs.size(), 1u);
    EXPECT_EQ(rec.envs[0].type, 20);
    EXPECT_EQ(rec.envs[0].routing_protocol, 0);
    EXPECT_EQ(rec.envs[0].routing_port, 1433);
    EXPECT_EQ(rec.envs[0].routing_server, "replica.contoso.com");
}

TEST(LoginTokens, EnvChangeRoutingInnerLengthMismatchIsMalformed) {
    Recorder rec;
    Parser p(rec);
    Buf route = B().u8(0).u16(1433).usvarchar("abc").b;
    Buf body = B().u8(20).u16(route.size() + 5).raw(route).u16(0).b;  // length lies
    Buf m = B().token16(0xE3, body).b;
    EXPECT_EQ(feed_all(p, m), DecodeStatus::Malformed);
    EXPECT_TRUE(rec.envs.empty());
    EXPECT_EQ(p.last_error().code, DecodeError::Code::Truncated);
}

// [MS-TDS 2.2.7.9] ENVCHANGE type 4 Packet size: B_VARCHAR new and old values; type 7 SQL
// collation: B_VARBYTE (5 bytes) new, empty old; type 8 begin transaction: B_VARBYTE new.
TEST(LoginTokens, EnvChangePacketSizeCollationTransaction) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().token16(0xE3, B().u8(4).bvarchar("8000").bvarchar("4096").b)
                .token16(0xE3, B().u8(7).u8(5).raw(hex("0904d00034")).u8(0).b)
                .token16(0xE3, B().u8(8).u8(8).raw(hex("0100000000000000")).u8(0).b)
                .token16(0xE3, B().u8(18).u8(0).u8(0).b)
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.envs.size(), 4u);
    EXPECT_EQ(rec.envs[0].type, 4);
    EXPECT_EQ(rec.envs[0].new_value, "8000");
    EXPECT_EQ(rec.envs[0].old_value, "4096");
    EXPECT_EQ(rec.envs[1].new_value, "0904d00034");
    EXPECT_EQ(rec.envs[1].old_value, "");
    EXPECT_EQ(rec.envs[2].new_value, "0100000000000000");
    EXPECT_EQ(rec.envs[3].type, 18);
}

// [MS-TDS 2.2.7.22] SSPI: SSPIBuffer US_VARBYTE. Here an SPNEGO negTokenResp accept-completed.
TEST(LoginTokens, SspiBlob) {
    Recorder rec;
    Parser p(rec);
    Buf blob = hex("a1 07 30 05 a0 03 0a 01 00");
    Buf m = B().token16(0xED, blob).b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.sspi.size(), 1u);
    EXPECT_EQ(rec.sspi[0], blob);
}

// [MS-TDS 2.2.7.11] FEATUREEXTACK: {FeatureId BYTE, FeatureAckDataLen DWORD, data}* 0xFF.
TEST(LoginTokens, FeatureExtAck) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().u8(0xAE)
                .u8(0x02)
                .u32(64)
                .raw(Buf(64, 0x11))
                .u8(0x0A)
                .u32(1)
                .u8(1)
                .u8(0xFF)
                .raw(done(0xFD, 0, 0, 0))
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.feature_acks.size(), 1u);
    ASSERT_EQ(rec.feature_acks[0].size(), 2u);
    EXPECT_EQ(rec.feature_acks[0][0].feature_id, 0x02);
    EXPECT_EQ(rec.feature_acks[0][0].data_length, 64u);
    EXPECT_EQ(rec.feature_acks[0][1].feature_id, 0x0A);
    EXPECT_EQ(rec.tokens[0].second, 1u + 5 + 64 + 5 + 1 + 1);
}

// [MS-TDS 2.2.7.12] FEDAUTHINFO: TokenLength DWORD, CountOfInfoIDs DWORD, then per id
// FedAuthInfoID BYTE, FedAuthInfoDataLen DWORD, FedAuthInfoDataOffset DWORD (from
// CountOfInfoIDs), then the UCS-2 data.
TEST(LoginTokens, FedAuthInfo) {
    Recorder rec;
    Parser p(rec);
    Buf sts = B().ucs2("https://login.example/").b;
    Buf spn = B().ucs2("https://db.example/").b;
    const std::uint32_t data_off = 4 + 2 * 9;
    Buf body = B().u32(2)
                   .u8(0x01)
                   .u32(sts.size())
                   .u32(data_off)
                   .u8(0x02)
                   .u32(spn.size())
                   .u32(data_off + sts.size())
                   .raw(sts)
                   .raw(spn)
                   .b;
    Buf m = B().u8(0xEE).u32(body.size()).raw(body).b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.fed_auth.size(), 1u);
    EXPECT_EQ(rec.fed_auth[0].sts_url, "https://login.example/");
    EXPECT_EQ(rec.fed_auth[0].spn, "https://db.example/");
}

TEST(LoginTokens, FedAuthInfoOffsetOutsideTokenIsMalformed) {
    Recorder rec;
    Parser p(rec);
    Buf body = B().u32(1).u8(0x01).u32(10).u32(200).raw(Buf(10, 0)).b;
    Buf m = B().u8(0xEE).u32(body.size()).raw(body).b;
    EXPECT_EQ(feed_all(p, m), DecodeStatus::Malformed);
    EXPECT_EQ(p.last_error().code, DecodeError::Code::BadLength);
}

TEST(LoginTokens, DoneProcAndDoneInProc) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().raw(done(0xFF, 0x0011, 0xC1, 5))
                .raw(done(0xFE, 0x0000, 0xE0, 0))
                .raw(done(0xFD, 0x0020, 0, 0))
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.dones.size(), 3u);
    EXPECT_EQ(rec.dones[0].token, 0xFF);
    EXPECT_EQ(rec.dones[0].row_count, 5u);
    EXPECT_EQ(rec.dones[0].cur_cmd, 0xC1);
    EXPECT_TRUE(rec.dones[0].more());
    EXPECT_EQ(rec.dones[1].token, 0xFE);
    EXPECT_TRUE(rec.dones[2].attention());
}

// TDS 7.0/7.1: DoneRowCount is a LONG [MS-TDS 2.2.7.6].
TEST(LoginTokens, DoneRowCount4BytesBefore72) {
    Recorder rec;
    Parser p(rec);
    p.set_tds_version(0x71000001);
    Buf m = B().u8(0xFD).u16(0x10).u16(0xC1).u32(3).u8(0xFD).u16(0).u16(0).u32(0).b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.dones.size(), 2u);
    EXPECT_EQ(rec.dones[0].row_count, 3u);
    EXPECT_EQ(rec.tokens[0].second, 9u);
}

// Real bytes: SQL Server 2000 (TDS 7.1) login response, frame 7 of
// tds7_sqlauth_login_prelogin_loginack_arkime.pcap; values as shown by tshark.
TEST(LoginTokens, RealSql2000LoginResponse) {
    Recorder rec;
    Parser p(rec);
    Buf m = load("arkime_f7_login_response.bin");
    ASSERT_EQ(m.size(), 377u);
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed) << p.last_error().detail;
    ASSERT_EQ(rec.envs.size(), 4u);
    EXPECT_EQ(rec.envs[0].type, 1);
    EXPECT_EQ(rec.envs[0].new_value, "master");
    EXPECT_EQ(rec.envs[0].old_value, "master");
    EXPECT_EQ(rec.envs[1].type, 7);
    EXPECT_EQ(rec.envs[1].new_value, "0904d00000");
    EXPECT_EQ(rec.envs[2].type, 2);
    EXPECT_EQ(rec.envs[2].new_value, "us_english");
    EXPECT_EQ(rec.envs[3].type, 4);
    EXPECT_EQ(rec.envs[3].new_value, "4096");
    ASSERT_EQ(rec.messages.size(), 2u);
    EXPECT_EQ(rec.messages[0].number, 5701);
    EXPECT_EQ(rec.messages[0].state, 2);
    EXPECT_EQ(rec.messages[0].text, "Changed database context to 'master'.");
    EXPECT_EQ(rec.messages[0].server, "JB-MSAD-01");
    EXPECT_EQ(rec.messages[1].number, 5703);
    EXPECT_EQ(rec.messages[1].text, "Changed language setting to us_english.");
    ASSERT_EQ(rec.acks.size(), 1u);
    EXPECT_EQ(rec.acks[0].tds_version, 0x71000001u);
    EXPECT_EQ(rec.acks[0].prog_name, "Microsoft SQL Server");
    EXPECT_EQ(rec.acks[0].major, 8);
    EXPECT_EQ(rec.acks[0].minor, 0);
    EXPECT_EQ(rec.acks[0].build, 2039);
    // After a 7.1 LOGINACK the DONE carries a 4-byte row count: 9 bytes in all.
    ASSERT_EQ(rec.dones.size(), 1u);
    EXPECT_EQ(rec.tokens.back(), (std::pair<std::uint8_t, std::size_t>{0xFD, 9}));
    EXPECT_EQ(rec.tokens.size(), 8u);
}

TEST(LoginTokens, ChunkingInvarianceOnRealLoginResponse) {
    const Buf m = load("arkime_f7_login_response.bin");
    Recorder whole;
    {
        Parser p(whole);
        ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    }
    for (std::size_t n = 1; n <= m.size(); ++n) {
        Recorder rec;
        Parser p(rec);
        bool bad = false;
        EXPECT_EQ(feed_chunked(p, m, n, &bad), DecodeStatus::Consumed) << n;
        EXPECT_FALSE(bad) << n;
        EXPECT_EQ(rec.log, whole.log) << "chunk size " << n;
    }
}

TEST(LoginTokens, TruncationAtEveryOffset) {
    const Buf m = B().raw(error_18456()).raw(login_ack_74()).raw(done(0xFD, 2, 0, 0)).b;
    const std::size_t b1 = error_18456().size(), b2 = b1 + login_ack_74().size();
    for (std::size_t cut = 0; cut < m.size(); ++cut) {
        Buf prefix(m.begin(), m.begin() + cut);
        {
            Recorder rec;
            Parser p(rec);
            const auto st = p.feed(Bytes(prefix.data(), prefix.size()), false);
            const bool boundary = cut == 0 || cut == b1 || cut == b2;
            EXPECT_EQ(st, boundary ? DecodeStatus::Consumed : DecodeStatus::NeedMore) << cut;
        }
        {
            Recorder rec;
            Parser p(rec);
            const auto st = p.feed(Bytes(prefix.data(), prefix.size()), true);
            const bool boundary = cut == 0 || cut == b1 || cut == b2;
            EXPECT_EQ(st, boundary ? DecodeStatus::Consumed : DecodeStatus::Malformed) << cut;
            if (!boundary) {
                EXPECT_EQ(p.last_error().code, DecodeError::Code::Truncated);
            }
        }
    }
}

TEST(LoginTokens, MalformedSkipsRestOfMessageThenRecovers) {
    Recorder rec;
    Parser p(rec);
    Buf bad_ack = B().token16(0xAD, B().u8(1).u32be(0x74000004).u8(50).b).b;  // name runs out
    Buf m1 = B().raw(bad_ack).raw(done(0xFD, 0, 0, 0)).b;
    EXPECT_EQ(p.feed(Bytes(m1.data(), m1.size()), false), DecodeStatus::Malformed);
    EXPECT_EQ(p.last_error().code, DecodeError::Code::Truncated);
    Buf tail = done(0xFD, 0, 0, 0);
    EXPECT_EQ(p.feed(Bytes(tail.data(), tail.size()), true), DecodeStatus::Consumed);
    EXPECT_TRUE(rec.dones.empty());  // the rest of the broken message was skipped
    Buf m2 = B().raw(error_18456()).raw(done(0xFD, 2, 0, 0)).b;
    EXPECT_EQ(feed_all(p, m2), DecodeStatus::Consumed);
    EXPECT_EQ(rec.messages.size(), 1u);
    EXPECT_EQ(rec.dones.size(), 1u);
}

TEST(LoginTokens, PendingLimitIsEnforced) {
    Recorder rec;
    Parser p(rec, TokenStreamParser::Limits{64});
    Buf m = B().token16(0xED, Buf(500, 0x4E)).b;
    EXPECT_EQ(p.feed(Bytes(m.data(), 100), false), DecodeStatus::Malformed);
    EXPECT_EQ(p.last_error().code, DecodeError::Code::TooLarge);
    Buf fed = B().u8(0xEE).u32(1000).raw(Buf(10, 0)).b;
    EXPECT_EQ(p.feed(Bytes(m.data() + 100, m.size() - 100), true), DecodeStatus::Consumed);
    EXPECT_EQ(feed_all(p, fed), DecodeStatus::Malformed);
    EXPECT_EQ(p.last_error().code, DecodeError::Code::TooLarge);
}

// [MS-TDS 2.2.7.9] type 15 promote transaction: L_VARBYTE new value, 0x00 old value; types
// without a known layout are reported with their type and skipped by the token length.
TEST(LoginTokens, EnvChangePromoteAndUnknownType) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().token16(0xE3, B().u8(15).u32(3).raw(hex("aabbcc")).u8(0).b)
                .token16(0xE3, B().u8(99).raw(hex("0102030405")).b)
                .raw(done(0xFD, 0, 0, 0))
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.envs.size(), 2u);
    EXPECT_EQ(rec.envs[0].new_value, "aabbcc");
    EXPECT_EQ(rec.envs[1].type, 99);
    EXPECT_EQ(rec.tokens[1].second, 9u);
    EXPECT_STREQ(env_change_name(20), "routing");
    EXPECT_STREQ(env_change_name(99), "unknown");
    EXPECT_STREQ(token_name(0xAD), "LOGINACK");
    EXPECT_STREQ(token_name(0xD2), "NBCROW");
    EXPECT_STREQ(token_name(0x00), "UNKNOWN");
}

TEST(LoginTokens, ResetMessageDropsThePartialToken) {
    Recorder rec;
    Parser p(rec);
    const Buf m = error_18456();
    EXPECT_EQ(p.feed(Bytes(m.data(), 10), false), DecodeStatus::NeedMore);
    p.reset_message();  // e.g. a gap in the capture
    const Buf d = done(0xFD, 0, 0, 0);
    EXPECT_EQ(feed_all(p, d), DecodeStatus::Consumed);
    EXPECT_TRUE(rec.messages.empty());
    EXPECT_EQ(rec.dones.size(), 1u);
}

}  // namespace
}  // namespace hopscope::tds::test
