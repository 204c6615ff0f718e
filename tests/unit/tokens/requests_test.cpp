// SQL batch and RPC requests [MS-TDS 2.2.6.6, 2.2.6.7, 2.2.5.3 ALL_HEADERS], on real payloads
// from the public captures (values as shown by tshark, see tests/data/tokens/README.md) and on
// spec byte vectors.
#include "hopscope/tds/requests.hpp"

#include <gtest/gtest.h>

#include "recorder.hpp"

namespace hopscope::tds::test {
namespace {

/// A request as the tests look at it: what the parser read, and how its parse ended.
template <typename Request>
struct Parsed : Request {
    DecodeStatus status = DecodeStatus::Consumed;
    DecodeError error;
};

Parsed<SqlBatch> batch(Bytes payload, std::uint32_t version, RequestLimits limits = {}) {
    Parsed<SqlBatch> b;
    const DecodeResult res = parse_sql_batch(payload, version, b, limits);
    b.status = res.status();
    b.error = res.error();
    return b;
}

Parsed<RpcRequest> rpc(Bytes payload, std::uint32_t version, RequestLimits limits = {}) {
    Parsed<RpcRequest> r;
    const DecodeResult res = parse_rpc(payload, version, r, limits);
    r.status = res.status();
    r.error = res.error();
    return r;
}

Bytes span(const Buf& b) {
    return Bytes(b.data(), b.size());
}

// ALL_HEADERS with one transaction descriptor header: TotalLength 22, HeaderLength 18, type 2,
// TransactionDescriptor ULONGLONG, OutstandingRequestCount DWORD [MS-TDS 2.2.5.3.2].
Buf all_headers(std::uint64_t td = 0) {
    return B().u32(22).u32(18).u16(2).u64(td).u32(1).b;
}

TEST(SqlBatch, RealTds71BatchHasNoAllHeaders) {
    const Buf m = load("arkime_f8_sql_batch.bin");
    const auto b = batch(span(m), 0x71000001);
    EXPECT_EQ(b.status, DecodeStatus::Consumed);
    EXPECT_FALSE(b.headers.present);
    EXPECT_FALSE(b.truncated);
    EXPECT_EQ(b.text,
              "select name from master.dbo.syscharsets where id = convert(tinyint, "
              "databasepropertyex ( db_name() , 'sqlcharset'))");
}

TEST(SqlBatch, RealBatchWithAllHeadersVersionKnownAndUnknown) {
    const Buf m = load("ndpi_f1_sql_batch.bin");
    for (std::uint32_t v : {0x74000004u, 0u}) {
        const auto b = batch(span(m), v);
        EXPECT_EQ(b.status, DecodeStatus::Consumed);
        EXPECT_TRUE(b.headers.present);
        EXPECT_EQ(b.headers.total_length, 22u);
        ASSERT_TRUE(b.headers.transaction_descriptor.has_value());
        EXPECT_EQ(*b.headers.transaction_descriptor, 0u);
        EXPECT_EQ(b.headers.outstanding_requests.value_or(99), 1u);
        EXPECT_EQ(b.text,
                  " set transaction isolation level  read committed  set implicit_transactions "
                  "off ");
    }
}

// Frame 5 of the midstream capture: "COMMIT TRANSACTION" without ALL_HEADERS, so the client
// speaks TDS 7.0/7.1 - and the server's answer (frame 6) has a 4-byte DONE row count.
TEST(SqlBatch, MidstreamDetectsMissingAllHeaders) {
    const Buf m = load("ndpi_f5_sql_batch.bin");
    const auto b = batch(span(m), 0);
    EXPECT_FALSE(b.headers.present);
    EXPECT_EQ(b.text, "COMMIT TRANSACTION");
    // Declared 7.4, the same bytes break the ALL_HEADERS rule: reported, not guessed.
    const auto strict = batch(span(m), 0x74000004);
    EXPECT_EQ(strict.status, DecodeStatus::Malformed);
}

TEST(SqlBatch, TextLeftUnconvertedGivesTheSameTextLater) {
    // RequestLimits::convert_text false: the UTF-16 units behind `text` (cap applied), which
    // sql_text() turns into the same masked text.
    Buf m = B().raw(all_headers()).ucs2("ALTER LOGIN a WITH PASSWORD = 'pw1' -- more").b;
    RequestLimits lazy;
    lazy.convert_text = false;
    lazy.max_text_chars = 36;
    const auto raw = batch(span(m), 0x74000004, lazy);
    EXPECT_EQ(raw.status, DecodeStatus::Consumed);
    EXPECT_TRUE(raw.text.empty());
    EXPECT_EQ(raw.utf16.size(), 36u * 2);
    EXPECT_EQ(raw.utf16.data(), m.data() + 22);  // a view into the payload, not a copy
    EXPECT_TRUE(raw.truncated);
    RequestLimits eager;
    eager.max_text_chars = 36;
    const auto now = batch(span(m), 0x74000004, eager);
    EXPECT_TRUE(now.utf16.empty());
    EXPECT_EQ(now.text, "ALTER LOGIN a WITH PASSWORD = '***' ");
    EXPECT_EQ(sql_text(raw.utf16), now.text);
}

TEST(SqlBatch, TextIsCappedAndPrefixIsTruncated) {
    Buf m = B().raw(all_headers()).ucs2("SELECT 1234567890").b;
    const auto capped = batch(span(m), 0x74000004, RequestLimits{6, 256, 64});
    EXPECT_EQ(capped.text, "SELECT");
    EXPECT_TRUE(capped.truncated);
    EXPECT_EQ(capped.text_chars, 17u);
    Buf prefix(m.begin(), m.begin() + 22 + 7);  // odd: cut inside a character
    const auto p = batch(span(prefix), 0x74000004);
    EXPECT_EQ(p.status, DecodeStatus::Consumed);
    EXPECT_TRUE(p.truncated);
    EXPECT_EQ(p.text, "SEL");
    Buf hdr_prefix(m.begin(), m.begin() + 10);
    const auto h = batch(span(hdr_prefix), 0x74000004);
    EXPECT_EQ(h.status, DecodeStatus::Consumed);
    EXPECT_TRUE(h.truncated);
}

TEST(SqlBatch, BadAllHeadersIsMalformed) {
    // HeaderLength 30 does not fit TotalLength 22.
    Buf m = B().u32(22).u32(30).u16(2).u64(0).u32(1).ucs2("x").b;
    const auto b = batch(span(m), 0x74000004);
    EXPECT_EQ(b.status, DecodeStatus::Malformed);
    EXPECT_EQ(b.error.code, DecodeError::Code::BadLength);
}

TEST(SqlBatch, PasswordsAreMasked) {
    Buf m = B().raw(all_headers())
                .ucs2("CREATE LOGIN bob WITH PASSWORD = 'S3cr''et!', CHECK_POLICY=OFF")
                .b;
    const auto b = batch(span(m), 0x74000004);
    EXPECT_EQ(b.text, "CREATE LOGIN bob WITH PASSWORD = '***', CHECK_POLICY=OFF");
    EXPECT_EQ(b.text.find("S3cr"), std::string::npos);
}

TEST(SqlBatch, LinkedServerLoginSecretsAreMasked) {
    EXPECT_EQ(mask_sql_secrets("EXEC sp_addlinkedsrvlogin @rmtsrvname='B', @useself='FALSE', "
                               "@rmtuser='svc', @rmtpassword = N'hunter2'"),
              "EXEC sp_addlinkedsrvlogin @rmtsrvname='***', @useself='***', @rmtuser='***', "
              "@rmtpassword = N'***'");
    EXPECT_EQ(mask_sql_secrets("exec sp_addlogin 'eve', 'pw1'; select 'keep'"),
              "exec sp_addlogin '***', '***'; select 'keep'");
    EXPECT_EQ(mask_sql_secrets("ALTER LOGIN x WITH PASSWORD=0x0200AB HASHED"),
              "ALTER LOGIN x WITH PASSWORD=0x*** HASHED");
    EXPECT_EQ(mask_sql_secrets("select 'password = ''x''' from t"),
              "select 'password = ''x''' from t");
    EXPECT_EQ(mask_sql_secrets("CREATE CREDENTIAL c WITH IDENTITY='u', SECRET='abc"),
              "CREATE CREDENTIAL c WITH IDENTITY='u', SECRET='***'");
}

TEST(Rpc, RealSpPrepexecByProcId) {
    const Buf m = load("ndpi_f3_rpc.bin");
    const auto r = rpc(span(m), 0x74000004);
    ASSERT_EQ(r.status, DecodeStatus::Consumed);
    EXPECT_TRUE(r.headers.present);
    EXPECT_FALSE(r.truncated);
    ASSERT_EQ(r.calls.size(), 1u);
    const auto& c = r.calls[0];
    EXPECT_EQ(c.proc_id, 13);
    EXPECT_EQ(c.proc_name, "sp_prepexec");
    EXPECT_EQ(c.param_count, 5u);
    ASSERT_EQ(c.params.size(), 5u);
    const std::uint8_t types[] = {0x26, 0xE7, 0xE7, 0xE7, 0x26};
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(c.params[i].type.type, types[i]) << i;
    EXPECT_EQ(c.params[0].status_flags, 0x01);  // @handle OUTPUT
    EXPECT_EQ(c.params[1].type.max_length, 8000u);
    EXPECT_EQ(c.statement,
              "select * from test_table_1 where name = @P0 and id = @P1                ");
    EXPECT_FALSE(c.statement_truncated);
}

TEST(Rpc, RealSpExecutesqlByNameWithoutAllHeaders) {
    const Buf m = load("ndpi_f8_rpc.bin");
    const auto r = rpc(span(m), 0);
    ASSERT_EQ(r.status, DecodeStatus::Consumed);
    EXPECT_FALSE(r.headers.present);
    ASSERT_EQ(r.calls.size(), 1u);
    const auto& c = r.calls[0];
    EXPECT_EQ(c.proc_name, "sp_executesql");
    EXPECT_EQ(c.proc_id, 0);
    EXPECT_EQ(c.option_flags, 0x0002);
    ASSERT_EQ(c.params.size(), 3u);
    EXPECT_EQ(c.params[2].name, "@HandlingStatus1");
    EXPECT_EQ(c.params[2].type.type, 0x26);
    EXPECT_EQ(c.params[2].type.max_length, 1u);
    EXPECT_EQ(c.statement.size(), 934u / 2);
    EXPECT_EQ(c.statement.rfind("SELECT TOP 88 [dbo].[MyExampleTable].[ID], ", 0), 0u);
    // A bounded prefix of the same message: the call is described as far as it goes.
    Buf prefix(m.begin(), m.begin() + 200);
    const auto p = rpc(span(prefix), 0);
    EXPECT_EQ(p.status, DecodeStatus::Consumed);
    EXPECT_TRUE(p.truncated);
    ASSERT_EQ(p.calls.size(), 1u);
    EXPECT_EQ(p.calls[0].proc_name, "sp_executesql");
    EXPECT_TRUE(p.calls[0].statement_truncated);
    EXPECT_EQ(p.calls[0].statement.rfind("SELECT TOP 88", 0), 0u);
}

TEST(Rpc, RealBatchedSpExecuteSeparatedByBatchFlag) {
    const Buf m = load("ndpi_f15_rpc.bin");
    const auto r = rpc(span(m), 0x74000004);
    ASSERT_EQ(r.status, DecodeStatus::Consumed);
    ASSERT_EQ(r.calls.size(), 2u);
    for (const auto& c : r.calls) {
        EXPECT_EQ(c.proc_name, "sp_execute");
        EXPECT_EQ(c.proc_id, 12);
        EXPECT_EQ(c.param_count, 1u);
    }
}

TEST(Rpc, RealNamedProcsAndParameterNames) {
    {
        const auto r = rpc(span(load("ndpi_f7_rpc.bin")), 0);
        ASSERT_EQ(r.calls.size(), 1u);
        EXPECT_EQ(r.calls[0].proc_name, "p_GetBogusData");
        ASSERT_EQ(r.calls[0].params.size(), 3u);
        EXPECT_EQ(r.calls[0].params[0].name, "@SearchType");
        EXPECT_EQ(r.calls[0].params[1].name, "@MaxWaitTimeInSeconds");
        EXPECT_EQ(r.calls[0].params[2].name, "@ProcessNegativeAck");
        EXPECT_TRUE(r.calls[0].statement.empty());
    }
    {
        const auto r = rpc(span(load("ndpi_f34_rpc.bin")), 0);
        ASSERT_EQ(r.calls.size(), 1u);
        EXPECT_EQ(r.calls[0].proc_name, "p_GetMyExampleTableRowCount");
        EXPECT_EQ(r.calls[0].param_count, 0u);
    }
    {
        // GUID, NULLTYPE, NVARCHAR(0), BIGVARCHAR, INTN, INTN, BIGVARBINARY, INTN.
        const auto r = rpc(span(load("ndpi_f35_rpc.bin")), 0);
        ASSERT_EQ(r.status, DecodeStatus::Consumed);
        ASSERT_EQ(r.calls.size(), 1u);
        EXPECT_EQ(r.calls[0].proc_name, "proc_GetMyExampleTableSampleMetaData");
        const std::uint8_t types[] = {0x24, 0x1F, 0xE7, 0xA7, 0x26, 0x26, 0xA5, 0x26};
        ASSERT_EQ(r.calls[0].params.size(), 8u);
        for (int i = 0; i < 8; ++i)
            EXPECT_EQ(r.calls[0].params[i].type.type, types[i]) << i;
    }
    {
        const auto r = rpc(span(load("ndpi_f37_rpc.bin")), 0);
        ASSERT_EQ(r.status, DecodeStatus::Consumed);
        ASSERT_EQ(r.calls.size(), 1u);
        EXPECT_EQ(r.calls[0].proc_name, "proc_FetchMyExampleData");
        EXPECT_EQ(r.calls[0].param_count, 20u);
    }
    {
        const auto r = rpc(span(load("ndpi_f38_rpc.bin")), 0);
        ASSERT_EQ(r.calls.size(), 1u);
        EXPECT_EQ(r.calls[0].proc_name, "dbo.proc_GetMySampleDataItems");
        ASSERT_EQ(r.calls[0].params.size(), 6u);
        EXPECT_EQ(r.calls[0].params[5].name, "@SomeOtherSampleId");
    }
}

// Frames 31+32: a two-packet RPC whose first parameter is nvarchar(max) sent as PLP.
TEST(Rpc, RealTwoPacketRpcWithPlpParameter) {
    const Buf m = load("ndpi_f31_f32_rpc.bin");
    const auto r = rpc(span(m), 0x74000004);
    ASSERT_EQ(r.status, DecodeStatus::Consumed) << r.error.detail;
    EXPECT_FALSE(r.truncated);
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].proc_name, "p_SaveExample");
    ASSERT_EQ(r.calls[0].params.size(), 2u);
    EXPECT_EQ(r.calls[0].params[0].name, "@LongParam");
    EXPECT_EQ(r.calls[0].params[0].type.kind, ValueKind::Plp);
    EXPECT_EQ(r.calls[0].params[1].name, "@Operation");
    // Only the first packet (a prefix): the PLP value runs out, nothing fails.
    Buf first(m.begin(), m.begin() + 7992);
    const auto p = rpc(span(first), 0x74000004);
    EXPECT_EQ(p.status, DecodeStatus::Consumed);
    EXPECT_TRUE(p.truncated);
    ASSERT_EQ(p.calls.size(), 1u);
    EXPECT_EQ(p.calls[0].param_count, 1u);
}

TEST(Rpc, StatementOfSpExecutesqlIsMasked) {
    Buf stmt = B().ucs2("ALTER LOGIN sa WITH PASSWORD = 'topsecret'").b;
    Buf m = B().raw(all_headers())
                .u16(0xFFFF)
                .u16(10)
                .u16(0)
                .u8(0)
                .u8(0)
                .u8(0xE7)
                .u16(8000)
                .raw(hex("0904d00034"))
                .u16(stmt.size())
                .raw(stmt)
                .b;
    const auto r = rpc(span(m), 0x74000004);
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].proc_name, "sp_executesql");
    EXPECT_EQ(r.calls[0].statement, "ALTER LOGIN sa WITH PASSWORD = '***'");
    EXPECT_TRUE(r.calls[0].statement_raw.empty());
    // Left unconverted (RequestLimits::convert_text false): the UTF-16 bytes, which sql_text()
    // turns into the same statement.
    RequestLimits lazy;
    lazy.convert_text = false;
    const auto raw = rpc(span(m), 0x74000004, lazy);
    ASSERT_EQ(raw.calls.size(), 1u);
    EXPECT_TRUE(raw.calls[0].statement.empty());
    EXPECT_TRUE(raw.calls[0].statement_unicode);
    EXPECT_EQ(raw.calls[0].statement_raw, stmt);
    EXPECT_EQ(sql_text(raw.calls[0].statement_raw, raw.calls[0].statement_unicode),
              r.calls[0].statement);
}

// [MS-TDS 2.2.5.5.5] TVP_TYPE_INFO and the TVP value: type name, TVP_COLMETADATA,
// TVP_ORDER_UNIQUE, TVP_END_TOKEN, two TVP_ROWs, TVP_END_TOKEN; then an ordinary parameter.
Buf tvp_rpc(bool with_rows) {
    B b;
    b.raw(all_headers()).u16(7).ucs2("dbo.put").u16(0);
    b.bvarchar("@rows").u8(0).u8(0xF3).bvarchar("").bvarchar("dbo").bvarchar("IdList");
    b.u16(2);
    b.u32(0).u16(0).u8(0x26).u8(4).bvarchar("");
    b.u32(0).u16(0).u8(0xE7).u16(100).raw(hex("0904d00034")).bvarchar("");
    b.u8(0x10).u16(1).u16(1).u8(0x01);  // ORDER_UNIQUE: column 1 ascending
    b.u8(0x00);
    if (with_rows) {
        b.u8(0x01).u8(4).u32(1).u16(4).ucs2("ab");
        b.u8(0x01).u8(0).u16(0xFFFF);
    }
    b.u8(0x00);
    b.bvarchar("@n").u8(0).u8(0x26).u8(4).u8(4).u32(5);
    return b.b;
}

TEST(Rpc, TableValuedParameter) {
    for (bool rows : {true, false}) {
        const Buf m = tvp_rpc(rows);
        const auto r = rpc(span(m), 0x74000004);
        ASSERT_EQ(r.status, DecodeStatus::Consumed) << r.error.detail;
        EXPECT_FALSE(r.truncated);
        ASSERT_EQ(r.calls.size(), 1u);
        EXPECT_EQ(r.calls[0].proc_name, "dbo.put");
        ASSERT_EQ(r.calls[0].params.size(), 2u);
        EXPECT_EQ(r.calls[0].params[0].name, "@rows");
        EXPECT_EQ(r.calls[0].params[0].type.type, 0xF3);
        EXPECT_EQ(r.calls[0].params[0].type.udt_name, "dbo.IdList");
        EXPECT_EQ(r.calls[0].params[1].name, "@n");
        for (std::size_t cut = 0; cut < m.size(); ++cut) {
            const auto p = rpc(Bytes(m.data(), cut), 0x74000004);
            EXPECT_EQ(p.status, DecodeStatus::Consumed) << cut;
        }
    }
    Buf bad = tvp_rpc(true);
    bad[bad.size() - 18] = 0x07;  // the second TVP_ROW_TOKEN becomes garbage
    const auto r = rpc(span(bad), 0x74000004);
    EXPECT_EQ(r.status, DecodeStatus::Malformed);
    EXPECT_EQ(r.error.code, DecodeError::Code::BadValue);
}

TEST(Rpc, UnknownProcIdAndBadTypeAreMalformed) {
    Buf m = B().raw(all_headers()).u16(0xFFFF).u16(99).u16(0).b;
    EXPECT_EQ(rpc(span(m), 0x74000004).status, DecodeStatus::Malformed);
    Buf t = B().raw(all_headers()).u16(0xFFFF).u16(12).u16(0).u8(0).u8(0).u8(0x99).b;
    const auto r = rpc(span(t), 0x74000004);
    EXPECT_EQ(r.status, DecodeStatus::Malformed);
    EXPECT_EQ(r.error.code, DecodeError::Code::BadValue);
}

TEST(Rpc, EveryPrefixOfRealRpcsIsHandled) {
    for (const char* f :
         {"ndpi_f3_rpc.bin", "ndpi_f8_rpc.bin", "ndpi_f37_rpc.bin", "ndpi_f15_rpc.bin"}) {
        const Buf m = load(f);
        const auto whole = rpc(span(m), 0x74000004);
        for (std::size_t cut = 0; cut < m.size(); ++cut) {
            const auto r = rpc(Bytes(m.data(), cut), 0x74000004);
            // A prefix is never an error when the whole message is fine.
            if (whole.status == DecodeStatus::Consumed) {
                EXPECT_EQ(r.status, DecodeStatus::Consumed) << f << " cut " << cut;
            }
            EXPECT_LE(r.calls.size(), whole.calls.size() + 1);
        }
    }
}

}  // namespace
}  // namespace hopscope::tds::test
