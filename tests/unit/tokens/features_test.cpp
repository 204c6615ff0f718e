// Negotiated-feature tokens and secret hygiene: Always Encrypted COLMETADATA (CekTable and
// CryptoMetaData, [MS-TDS 2.2.7.4]), DATACLASSIFICATION [MS-TDS 2.2.7.5], and a check that no
// value bytes (or encrypted column keys) ever reach the sink.
#include <gtest/gtest.h>

#include "recorder.hpp"

namespace hopscope::tds::test {
namespace {

const Buf kColl = hex("0904d00034");

Buf done() {
    return B().u8(0xFD).u16(0x10).u16(0xC1).u64(1).b;
}

// FEATUREEXTACK: FeatureId, FeatureAckDataLen DWORD, data; 0xFF [MS-TDS 2.2.7.11].
Buf feature_ack(std::uint8_t id, const Buf& data) {
    return B().u8(0xAE).u8(id).u32(data.size()).raw(data).u8(0xFF).b;
}

Buf encrypted_result() {
    return B()
        .u8(0x81)
        .u16(2)
        // CekTable: EkValueCount 1; DatabaseId, CekId, CekVersion, CekMDVersion, Count 1;
        // EncryptedKey US_VARBYTE, KeyStoreName B_VARCHAR, KeyPath US_VARCHAR, AsymmetricAlgo.
        .u16(1)
        .u32(5)
        .u32(1)
        .u32(1)
        .u64(0x1122334455667788ULL)
        .u8(1)
        .u16(12)
        .raw(B().ucs2("KEYMAT").b)
        .bvarchar("MSSQL_CERTIFICATE_STORE")
        .usvarchar("CurrentUser/My/0123")
        .bvarchar("RSA_OAEP")
        // Column 1: encrypted (fEncrypted 0x0800), varbinary on the wire, then CryptoMetaData:
        // Ordinal, UserType, BaseTypeInfo nvarchar(50), EncryptionAlgo 2, EncryptionAlgoType 1
        // (deterministic), NormVersion 1.
        .u32(0)
        .u16(0x0801)
        .u8(0xA5)
        .u16(8000)
        .u16(0)
        .u32(0)
        .u8(0xE7)
        .u16(100)
        .raw(kColl)
        .u8(2)
        .u8(1)
        .u8(1)
        .bvarchar("ssn")
        // Column 2: plain int.
        .u32(0)
        .u16(0)
        .u8(0x38)
        .bvarchar("id")
        .u8(0xD1)
        .u16(4)
        .raw(hex("deadbeef"))
        .u32(7)
        .raw(done())
        .b;
}

TEST(Features, AlwaysEncryptedColumnMetadata) {
    Recorder rec;
    Parser p(rec);
    ASSERT_EQ(feed_all(p, feature_ack(0x04, {0x01})), DecodeStatus::Consumed);
    ASSERT_EQ(feed_all(p, encrypted_result()), DecodeStatus::Consumed) << p.last_error().detail;
    ASSERT_EQ(rec.metas.size(), 1u);
    ASSERT_EQ(rec.metas[0].size(), 2u);
    EXPECT_EQ(rec.metas[0][0].name, "ssn");
    EXPECT_EQ(rec.metas[0][0].type, 0xA5);
    EXPECT_TRUE(rec.metas[0][0].flags & 0x0800);
    EXPECT_EQ(rec.metas[0][1].name, "id");
    EXPECT_EQ(rec.rows, 1u);
    for (const auto& line : rec.log)
        EXPECT_EQ(line.find("KEYMAT"), std::string::npos) << line;
}

TEST(Features, EncryptedColumnWithoutNegotiationIsUnsupported) {
    Recorder rec;
    Parser p(rec);
    // Without the FEATUREEXTACK the CekTable is taken for column data: the message is refused.
    EXPECT_EQ(feed_all(p, encrypted_result()), DecodeStatus::Malformed);
    EXPECT_TRUE(rec.metas.empty());
    // A column flagged fEncrypted on a connection that did not negotiate it: unsupported.
    Buf m = B().u8(0x81).u16(1).u32(0).u16(0x0800).u8(0xA5).u16(8000).bvarchar("x").b;
    EXPECT_EQ(feed_all(p, m), DecodeStatus::Malformed);
    EXPECT_EQ(p.last_error().code, DecodeError::Code::Unsupported);
    EXPECT_TRUE(rec.metas.empty());
}

Buf classified_result() {
    return B()
        .u8(0x81)
        .u16(1)
        .u32(0)
        .u16(0)
        .u8(0x38)
        .bvarchar("salary")
        // SensitivityLabels, InformationTypes, SensitivityRank (v2), then per column
        // SensitivityProperties {label index, information type index, rank}.
        .u8(0xA3)
        .u16(1)
        .usvarchar("Confidential")
        .usvarchar("L1")
        .u16(1)
        .usvarchar("Financial")
        .usvarchar("I1")
        .u32(20)
        .u16(1)
        .u16(1)
        .u16(0)
        .u16(0)
        .u32(20)
        .u8(0xD1)
        .u32(1000)
        .raw(done())
        .b;
}

TEST(Features, DataClassificationVersion2) {
    Recorder rec;
    Parser p(rec);
    ASSERT_EQ(feed_all(p, feature_ack(0x09, {0x02, 0x01})), DecodeStatus::Consumed);
    const Buf m = classified_result();
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed) << p.last_error().detail;
    EXPECT_EQ(rec.rows, 1u);
    ASSERT_EQ(rec.dones.size(), 1u);
    bool seen = false;
    for (const auto& t : rec.tokens)
        seen |= t.first == 0xA3;
    EXPECT_TRUE(seen);
    // Byte at a time gives the same tokens.
    Recorder one;
    Parser q(one);
    ASSERT_EQ(feed_all(q, feature_ack(0x09, {0x02, 0x01})), DecodeStatus::Consumed);
    one.log.clear();
    rec.log.clear();
    Parser r2(rec);
    ASSERT_EQ(feed_all(r2, feature_ack(0x09, {0x02, 0x01})), DecodeStatus::Consumed);
    rec.log.clear();
    ASSERT_EQ(feed_all(r2, m), DecodeStatus::Consumed);
    EXPECT_EQ(feed_chunked(q, m, 1), DecodeStatus::Consumed);
    EXPECT_EQ(one.log, rec.log);
}

TEST(Features, DataClassificationWithoutNegotiationIsUnsupported) {
    Recorder rec;
    Parser p(rec);
    EXPECT_EQ(feed_all(p, classified_result()), DecodeStatus::Malformed);
    EXPECT_EQ(p.last_error().code, DecodeError::Code::Unsupported);
    EXPECT_TRUE(rec.dones.empty());
}

// Secrets never leave the parser: row values, output parameter values and FEDAUTH ack data
// (nonce, signature) are walked over; only lengths and names reach the sink.
TEST(Features, ValuesNeverReachTheSink) {
    Recorder rec;
    Parser p(rec);
    const Buf secret = B().ucs2("TOPSECRET").b;
    Buf m = B().u8(0xAE)
                .u8(0x02)
                .u32(secret.size())
                .raw(secret)
                .u8(0xFF)
                .u8(0x81)
                .u16(1)
                .u32(0)
                .u16(0)
                .u8(0xE7)
                .u16(100)
                .raw(kColl)
                .bvarchar("c")
                .u8(0xD1)
                .u16(secret.size())
                .raw(secret)
                .u8(0xAC)
                .u16(1)
                .bvarchar("@p")
                .u8(1)
                .u32(0)
                .u16(0)
                .u8(0xE7)
                .u16(100)
                .raw(kColl)
                .u16(secret.size())
                .raw(secret)
                .raw(done())
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed) << p.last_error().detail;
    EXPECT_EQ(rec.rows, 1u);
    ASSERT_EQ(rec.rvs.size(), 1u);
    EXPECT_EQ(rec.feature_acks.at(0).at(0).data_length, secret.size());
    for (const auto& line : rec.log)
        EXPECT_EQ(line.find("TOPSECRET"), std::string::npos) << line;
    for (const auto& md : rec.metas) {
        for (const auto& c : md) {
            EXPECT_EQ(c.name.find("TOPSECRET"), std::string::npos);
            EXPECT_EQ(c.table_name.find("TOPSECRET"), std::string::npos);
        }
    }
}

}  // namespace
}  // namespace hopscope::tds::test
