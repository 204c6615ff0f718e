#include "hopscope/tds/login7.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tds_builders.hpp"

namespace hopscope::tds {
namespace {

using testing::Buf;

// LOGIN7 of frame 6 of tds7_sqlauth_login_prelogin_loginack_arkime.pcap (payload, header
// stripped), from tests/data/tds/tds7_sqlauth_login_prelogin_loginack_arkime.segments.
Buf arkime_login7() {
    for (const auto& s : testing::load_segments(
             testing::data_path("tds/tds7_sqlauth_login_prelogin_loginack_arkime.segments"))) {
        if (s.frame == 6) return Buf(s.bytes.begin() + 8, s.bytes.end());
    }
    return {};
}

TEST(Login7, RealSql2000LoginMatchesTshark) {
    const Buf p = arkime_login7();
    ASSERT_EQ(p.size(), 226u);
    Login7 l;
    Bytes sspi;
    DecodeResult res;
    ASSERT_EQ((res = parse_login7(p, l, sspi)).status(), DecodeStatus::Consumed)
        << res.error().detail;
    // tshark: Total Packet Length 226, TDS version 0x71000001, Client PID 1712, Option Flags 1
    // 0xe0, Option Flags 2 0x03, Collation 0x00000809, offsets 86.., names as below.
    EXPECT_EQ(l.length, 226u);
    EXPECT_EQ(l.tds_version, 0x71000001u);
    EXPECT_FALSE(l.tds_version_big_endian);
    EXPECT_EQ(tds_version_name(l.tds_version), "7.1 rev1");
    EXPECT_EQ(l.client_pid, 1712u);
    EXPECT_EQ(l.option_flags1, 0xe0);
    EXPECT_EQ(l.option_flags2, 0x03);
    EXPECT_FALSE(l.integrated_security());
    EXPECT_EQ(l.client_lcid, 0x809u);
    EXPECT_FALSE(l.has_tds72_fields) << "TDS 7.1: variable data starts at 86";
    EXPECT_EQ(l.host_name.offset, 86);
    EXPECT_EQ(l.host, "LIV-VXP-007");
    EXPECT_EQ(l.user, "testuser");
    EXPECT_EQ(l.app, "Microsoft Data Access Components");
    EXPECT_EQ(l.server, "217.77.3.25");
    EXPECT_EQ(l.library, "ODBC");
    EXPECT_EQ(l.lang, "");
    EXPECT_EQ(l.db, "");
    EXPECT_EQ(l.client_id_string(), "00:0c:29:4c:84:92");
    EXPECT_TRUE(l.password_present);
    EXPECT_EQ(l.password_length, 4u);
    EXPECT_TRUE(sspi.empty());
}

TEST(Login7, NeverDecodesPasswords) {
    testing::Login7Spec s;
    s.user = "sa";
    s.password = "Sup3rS3cretPw";
    s.change_password = "N3wS3cretPw";
    s.flags3 = login_flags::kChangePassword;
    const Buf p = testing::login7(s);
    Login7 l;
    Bytes sspi;
    DecodeResult res;
    ASSERT_EQ((res = parse_login7(p, l, sspi)).status(), DecodeStatus::Consumed)
        << res.error().detail;
    EXPECT_EQ(l.password_length, 13u);
    EXPECT_TRUE(l.change_password_present);
    EXPECT_EQ(l.change_password_length, 11u);
    const std::string text = to_string(l);
    EXPECT_EQ(text.find("Sup3r"), std::string::npos) << text;
    EXPECT_EQ(text.find("N3wS3"), std::string::npos) << text;
    EXPECT_NE(text.find("password=present(13 chars)"), std::string::npos) << text;
    // No string member of the struct holds any part of either password.
    for (const std::string* f :
         {&l.host, &l.user, &l.app, &l.server, &l.library, &l.lang, &l.db, &l.attach_db}) {
        EXPECT_EQ(f->find("S3cret"), std::string::npos);
    }
}

TEST(Login7, BigEndianTdsVersionFromImpacket) {
    // A client that writes the TDSVersion constant big-endian (bytes 71 00 00 01): the LE read
    // gives 0x01000071, byte-swapped it is the known 0x71000001. (Older impacket releases wrote
    // it so; the lab's impacket 0.10 packs its pre-swapped constant with '>L', so its bytes
    // 00 00 00 71 read correctly as 0x71000000 - tests/data/tds/lab/1-ntlm-single-hop.tshark.tsv.)
    testing::Login7Spec s;
    s.tds_version_wire = 0x01000071;
    s.user = "u";
    Login7 l;
    Bytes sspi;
    DecodeResult res;
    ASSERT_EQ((res = parse_login7(testing::login7(s), l, sspi)).status(), DecodeStatus::Consumed);
    EXPECT_EQ(l.tds_version, 0x71000001u);
    EXPECT_EQ(l.tds_version_wire, 0x01000071u);
    EXPECT_TRUE(l.tds_version_big_endian);
}

TEST(Login7, SpecVersionBytes) {
    // MS-TDS 4.2 LOGIN7 sample: TDSVersion bytes 02 00 09 72 -> 0x72090002 (TDS 7.2).
    testing::Login7Spec s;
    s.tds_version_wire = 0x72090002;
    Login7 l;
    Bytes sspi;
    DecodeResult res;
    const Buf p = testing::login7(s);
    EXPECT_EQ(p[4], 0x02);
    EXPECT_EQ(p[7], 0x72);
    ASSERT_EQ((res = parse_login7(p, l, sspi)).status(), DecodeStatus::Consumed);
    EXPECT_EQ(tds_version_name(l.tds_version), "7.2");
    EXPECT_STREQ(tds_version_product(l.tds_version), "SQL Server 2005");
    EXPECT_EQ(tds_version_name(0x08000000), "8.0");
    EXPECT_EQ(tds_version_name(0x12345678), "unknown (0x12345678)");
}

TEST(Login7, FreeTdsRawKerberosTokenAsSspi) {
    // FreeTDS Kerberos: fIntSecurity, empty user, raw RFC 4121 token (60 .. 06 09 2a864886f712
    // 010202 01 00 6e ..) as the SSPI blob (lab.md section 2).
    testing::Login7Spec s;
    s.flags2 = 0x83;
    s.sspi = testing::from_hex("6082001006092a864886f71201020201006e0a0102030405060708090a");
    Login7 l;
    Bytes sspi;
    DecodeResult res;
    const Buf p = testing::login7(s);
    ASSERT_EQ((res = parse_login7(p, l, sspi)).status(), DecodeStatus::Consumed);
    EXPECT_TRUE(l.integrated_security());
    EXPECT_EQ(l.user, "");
    ASSERT_EQ(sspi.size(), s.sspi.size());
    EXPECT_TRUE(std::equal(sspi.begin(), sspi.end(), s.sspi.begin()));
    EXPECT_EQ(l.sspi_length, s.sspi.size());
}

TEST(Login7, SspiLongForBlobsOf64KAndMore) {
    // MS-TDS 2.2.6.4: cbSSPI = 0xFFFF and cbSSPILong = real length when it is >= 0xFFFF.
    testing::Login7Spec s;
    s.flags2 = 0x83;
    s.sspi = Buf(70000, 0x60);
    s.sspi_long = true;
    Login7 l;
    Bytes sspi;
    DecodeResult res;
    ASSERT_EQ((res = parse_login7(testing::login7(s), l, sspi)).status(), DecodeStatus::Consumed)
        << res.error().detail;
    EXPECT_EQ(l.sspi.length, 0xFFFF);
    EXPECT_EQ(l.sspi_long, 70000u);
    EXPECT_EQ(sspi.size(), 70000u);
}

TEST(Login7, FeatureExtWithFedAuth) {
    // FEDAUTH (0x02), ADAL library (0x02 << 1) with echo, workflow 0x02; then UTF8_SUPPORT.
    testing::Login7Spec s;
    s.user = "";
    s.feature_ext = testing::from_hex("02 02000000 05 02   0a 01000000 01");
    Login7 l;
    Bytes sspi;
    DecodeResult res;
    ASSERT_EQ((res = parse_login7(testing::login7(s), l, sspi)).status(), DecodeStatus::Consumed)
        << res.error().detail;
    ASSERT_EQ(l.features.size(), 2u);
    EXPECT_EQ(l.features[0].id, feature::kFedAuth);
    EXPECT_EQ(l.features[1].id, feature::kUtf8Support);
    ASSERT_TRUE(l.fed_auth);
    EXPECT_EQ(l.fed_auth->library, 0x02);
    EXPECT_TRUE(l.fed_auth->echo);
    EXPECT_EQ(l.fed_auth->workflow, 0x02);
    // SecurityToken library: token length only.
    s.feature_ext = testing::from_hex("02 0b000000 02 06000000 414243444546");
    ASSERT_EQ((res = parse_login7(testing::login7(s), l, sspi)).status(), DecodeStatus::Consumed)
        << res.error().detail;
    ASSERT_TRUE(l.fed_auth);
    EXPECT_EQ(l.fed_auth->library, 0x01);
    EXPECT_FALSE(l.fed_auth->echo);
    EXPECT_EQ(l.fed_auth->token_length, 6u);
    EXPECT_EQ(to_string(l).find("ABCDEF"), std::string::npos);
}

TEST(Login7, HostileOffsetsAndLengthsAreTypedErrors) {
    testing::Login7Spec s;
    s.user = "bob";
    Buf p = testing::login7(s);
    Login7 l;
    Bytes sspi;
    DecodeResult res;
    // Length field larger than the message.
    Buf q = p;
    q[0] = 0xFF;
    q[1] = 0xFF;
    EXPECT_EQ((res = parse_login7(q, l, sspi)).status(), DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::Truncated);
    // Length field below the fixed part.
    q = p;
    q[0] = 10;
    q[1] = 0;
    EXPECT_EQ((res = parse_login7(q, l, sspi)).status(), DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::BadLength);
    // cchUserName pointing past the end.
    q = p;
    q[42] = 0xFF;
    EXPECT_EQ((res = parse_login7(q, l, sspi)).status(), DecodeStatus::Malformed);
    EXPECT_EQ(res.error().code, DecodeError::Code::Truncated);
    // cbSSPI past the end.
    q = p;
    q[80] = 0x00;
    q[81] = 0x10;
    EXPECT_EQ((res = parse_login7(q, l, sspi)).status(), DecodeStatus::Malformed);
    // Every truncation of a valid LOGIN7 is rejected, never read past.
    for (std::size_t n = 0; n < p.size(); ++n) {
        EXPECT_EQ((res = parse_login7(Bytes(p.data(), n), l, sspi)).status(),
                  DecodeStatus::Malformed)
            << n;
    }
}

}  // namespace
}  // namespace hopscope::tds
