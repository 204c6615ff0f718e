// COLMETADATA / ROW / NBCROW with every TDS 7.4 data type, RETURNVALUE, ALTMETADATA/ALTROW, the
// skipped tokens, streaming of large values and ERROR after rows. Byte vectors follow
// [MS-TDS 2.2.7.4 COLMETADATA, 2.2.7.19 ROW, 2.2.7.15 NBCROW, 2.2.5.5/2.2.5.6 TYPE_INFO,
// 2.2.5.2.3 PLP, 2.2.5.4 data types]; real bytes come from tests/data/tokens.
#include <gtest/gtest.h>

#include "recorder.hpp"

namespace hopscope::tds::test {
namespace {

const Buf kCollation = hex("0904d00034");  // LCID 0x0409, flags 0xd0, version 0, SortId 0x34

struct Col {
    Buf type_info;  // TYPE_INFO bytes
    Buf table;      // TableName bytes (TEXT/NTEXT/IMAGE) or empty
    std::string name;
    Buf value;  // one ROW value
    bool nullable_in_nbc = true;
};

Buf text_table(std::initializer_list<const char*> parts) {
    B b;
    b.u8(static_cast<std::uint8_t>(parts.size()));
    for (const char* p : parts)
        b.usvarchar(p);
    return b.b;
}

// Every TDS 7.4 type [MS-TDS 2.2.5.4], with one value each.
std::vector<Col> all_types() {
    std::vector<Col> c;
    auto fixed = [&](std::uint8_t t, std::size_t n, const char* name) {
        c.push_back({{t}, {}, name, Buf(n, 0x5A)});
    };
    fixed(0x30, 1, "int1");
    fixed(0x32, 1, "bit");
    fixed(0x34, 2, "int2");
    fixed(0x38, 4, "int4");
    fixed(0x7F, 8, "int8");
    fixed(0x3B, 4, "flt4");
    fixed(0x3E, 8, "flt8");
    fixed(0x3C, 8, "money");
    fixed(0x7A, 4, "money4");
    fixed(0x3D, 8, "datetime");
    fixed(0x3A, 4, "datetim4");
    fixed(0x1F, 0, "null");
    auto bytelen = [&](Buf ti, std::size_t n, const char* name) {
        c.push_back({ti, {}, name, B().u8(static_cast<std::uint8_t>(n)).raw(Buf(n, 0x33)).b});
    };
    bytelen({0x26, 4}, 4, "intn");
    bytelen({0x68, 1}, 1, "bitn");
    bytelen({0x6D, 8}, 8, "fltn");
    bytelen({0x6E, 8}, 8, "moneyn");
    bytelen({0x6F, 8}, 8, "datetimn");
    bytelen({0x24, 16}, 16, "guid");
    bytelen({0x6A, 17, 38, 10}, 17, "decimaln");  // precision 38, scale 10
    bytelen({0x6C, 5, 9, 2}, 5, "numericn");      // precision 9, scale 2
    bytelen({0x28}, 3, "date");                   // DATENTYPE has no length in TYPE_INFO
    bytelen({0x29, 7}, 5, "time7");               // scale 7: 5 bytes
    bytelen({0x2A, 3}, 7, "datetime2_3");         // 4 + 3
    bytelen({0x2B, 0}, 8, "dto0");                // 3 + 3 + 2
    bytelen({0x27, 20}, 3, "legacy_varchar");
    auto ushort = [&](std::uint8_t t, std::uint16_t max, bool coll, std::size_t n,
                      const char* name) {
        B ti;
        ti.u8(t).u16(max);
        if (coll) ti.raw(kCollation);
        c.push_back({ti.b, {}, name, B().u16(static_cast<std::uint16_t>(n)).raw(Buf(n, 0x61)).b});
    };
    ushort(0xA7, 50, true, 3, "varchar50");
    ushort(0xAF, 10, true, 10, "char10");
    ushort(0xE7, 100, true, 4, "nvarchar50");
    ushort(0xEF, 8, true, 8, "nchar4");
    ushort(0xA5, 8, false, 2, "varbinary8");
    ushort(0xAD, 4, false, 4, "binary4");
    // PLP: known total length in two chunks; unknown total length.
    c.push_back({B().u8(0xE7).u16(0xFFFF).raw(kCollation).b,
                 {},
                 "nvarchar_max",
                 B().u64(6).u32(4).raw(Buf(4, 0x41)).u32(2).raw(Buf(2, 0x42)).u32(0).b});
    c.push_back({B().u8(0xA5).u16(0xFFFF).b,
                 {},
                 "varbinary_max",
                 B().u64(0xFFFFFFFFFFFFFFFEULL).u32(3).raw(Buf(3, 1)).u32(0).b});
    c.push_back(
        {B().u8(0xA7).u16(0xFFFF).raw(kCollation).b, {}, "varchar_max_empty", B().u64(0).u32(0).b});
    // TEXT/NTEXT/IMAGE: TYPE_INFO, TableName; value = TextPtr, Timestamp, length, data.
    auto textval = [](std::size_t n) {
        return B().u8(16).raw(Buf(16, 0x77)).raw(Buf(8, 0x88)).u32(n).raw(Buf(n, 0x65)).b;
    };
    c.push_back({B().u8(0x23).u32(0x7FFFFFFF).raw(kCollation).b, text_table({"dbo", "t1"}), "text",
                 textval(5)});
    c.push_back(
        {B().u8(0x63).u32(0x7FFFFFFE).raw(kCollation).b, text_table({"t2"}), "ntext", textval(6)});
    c.push_back(
        {B().u8(0x22).u32(0x7FFFFFFF).b, text_table({"db", "dbo", "t3"}), "image", textval(0)});
    // SSVARIANT: length, BaseType, PropBytes, properties, data [MS-TDS 2.2.5.5.4].
    c.push_back({B().u8(0x62).u32(8009).b, {}, "variant_int", B().u32(6).u8(0x38).u8(0).u32(42).b});
    c.push_back({B().u8(0x62).u32(8009).b,
                 {},
                 "variant_nvarchar",
                 B().u32(2 + 7 + 4).u8(0xE7).u8(7).raw(kCollation).u16(100).ucs2("hi").b});
    // XML with schema: SCHEMA_PRESENT, DBNAME B_VARCHAR, OWNING_SCHEMA B_VARCHAR,
    // XML_SCHEMA_COLLECTION US_VARCHAR; value PLP.
    c.push_back({B().u8(0xF1).u8(1).bvarchar("db").bvarchar("dbo").usvarchar("sc").b,
                 {},
                 "xml",
                 B().u64(4).u32(4).ucs2("<a").u32(0).b});
    // UDT (COLMETADATA form): MAX_BYTE_SIZE, DB_NAME, SCHEMA_NAME, TYPE_NAME (B_VARCHAR),
    // ASSEMBLY_QUALIFIED_NAME (US_VARCHAR); value PLP.
    c.push_back({B().u8(0xF0)
                     .u16(892)
                     .bvarchar("db")
                     .bvarchar("sys")
                     .bvarchar("hierarchyid")
                     .usvarchar("Microsoft.SqlServer.Types.SqlHierarchyId")
                     .b,
                 {},
                 "udt",
                 B().u64(2).u32(2).u16(0x5800).u32(0).b});
    return c;
}

Buf colmetadata(const std::vector<Col>& cols) {
    B b;
    b.u8(0x81).u16(static_cast<std::uint16_t>(cols.size()));
    for (const auto& c : cols) {
        b.u32(0).u16(0x0009).raw(c.type_info).raw(c.table).bvarchar(c.name);
    }
    return b.b;
}

Buf row(const std::vector<Col>& cols) {
    B b;
    b.u8(0xD1);
    for (const auto& c : cols)
        b.raw(c.value);
    return b.b;
}

// NBCROW: null bitmap (bit i = column i is NULL), then the non-NULL values.
Buf nbcrow(const std::vector<Col>& cols, const std::vector<bool>& null) {
    B b;
    b.u8(0xD2);
    Buf bitmap((cols.size() + 7) / 8, 0);
    for (std::size_t i = 0; i < cols.size(); ++i)
        if (null[i]) bitmap[i / 8] |= static_cast<std::uint8_t>(1u << (i % 8));
    b.raw(bitmap);
    for (std::size_t i = 0; i < cols.size(); ++i)
        if (!null[i]) b.raw(cols[i].value);
    return b.b;
}

Buf done(std::uint8_t tok, std::uint16_t status, std::uint64_t rows) {
    return B().u8(tok).u16(status).u16(0xC1).u64(rows).b;
}

Buf error_token(std::int32_t number, const std::string& text) {
    return B()
        .token16(0xAA, B().u32(static_cast<std::uint32_t>(number))
                           .u8(1)
                           .u8(16)
                           .usvarchar(text)
                           .bvarchar("SRV")
                           .bvarchar("")
                           .u32(3)
                           .b)
        .b;
}

// A result: COLMETADATA, ROW, NBCROW (every other column NULL), ROW, ERROR, DONE.
Buf result_message() {
    const auto cols = all_types();
    std::vector<bool> nulls(cols.size());
    for (std::size_t i = 0; i < cols.size(); ++i)
        nulls[i] = i % 2 == 0;
    return B()
        .raw(colmetadata(cols))
        .raw(row(cols))
        .raw(nbcrow(cols, nulls))
        .raw(row(cols))
        .raw(error_token(8134, "Divide by zero error encountered."))
        .raw(done(0xFD, 0x0012, 3))
        .b;
}

TEST(Rows, EveryDataTypeMetadata) {
    Recorder rec;
    Parser p(rec);
    const auto cols = all_types();
    const Buf m = result_message();
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed) << p.last_error().detail;
    ASSERT_EQ(rec.metas.size(), 1u);
    const auto& md = rec.metas[0];
    ASSERT_EQ(md.size(), cols.size());
    for (std::size_t i = 0; i < cols.size(); ++i) {
        EXPECT_EQ(md[i].name, cols[i].name);
        EXPECT_EQ(md[i].type, cols[i].type_info[0]) << cols[i].name;
        EXPECT_EQ(md[i].flags, 0x0009);
    }
    auto find = [&](const std::string& n) -> const Column& {
        for (const auto& c : md)
            if (c.name == n) return c;
        ADD_FAILURE() << n;
        return md[0];
    };
    EXPECT_EQ(find("int8").info.kind, ValueKind::Fixed);
    EXPECT_EQ(find("int8").max_length, 8u);
    EXPECT_EQ(find("decimaln").info.precision, 38);
    EXPECT_EQ(find("decimaln").info.scale, 10);
    EXPECT_EQ(find("numericn").info.precision, 9);
    EXPECT_EQ(find("time7").info.scale, 7);
    EXPECT_EQ(find("time7").max_length, 5u);
    EXPECT_EQ(find("dto0").max_length, 8u);
    EXPECT_EQ(find("date").info.kind, ValueKind::ByteLen);
    EXPECT_TRUE(find("nvarchar50").info.has_collation);
    EXPECT_EQ(find("nvarchar50").info.collation[4], 0x34);
    EXPECT_FALSE(find("varbinary8").info.has_collation);
    EXPECT_EQ(find("nvarchar_max").info.kind, ValueKind::Plp);
    EXPECT_EQ(find("varbinary_max").info.kind, ValueKind::Plp);
    EXPECT_EQ(find("text").table_name, "dbo.t1");
    EXPECT_EQ(find("ntext").table_name, "t2");
    EXPECT_EQ(find("image").table_name, "db.dbo.t3");
    EXPECT_EQ(find("text").info.kind, ValueKind::LongLen);
    EXPECT_EQ(find("variant_int").info.kind, ValueKind::Variant);
    EXPECT_EQ(find("xml").info.xml_schema, "db.dbo.sc");
    EXPECT_EQ(find("udt").info.udt_name, "db.sys.hierarchyid");
    EXPECT_EQ(find("udt").info.udt_assembly, "Microsoft.SqlServer.Types.SqlHierarchyId");
    EXPECT_EQ(find("udt").max_length, 892u);
}

TEST(Rows, EveryDataTypeValuesAndErrorAfterRows) {
    Recorder rec;
    Parser p(rec);
    const auto cols = all_types();
    const Buf m = result_message();
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed) << p.last_error().detail;
    EXPECT_EQ(rec.rows, 3u);
    ASSERT_EQ(rec.messages.size(), 1u);
    EXPECT_EQ(rec.messages[0].number, 8134);
    EXPECT_EQ(rec.messages[0].text, "Divide by zero error encountered.");
    ASSERT_EQ(rec.dones.size(), 1u);
    EXPECT_EQ(rec.dones[0].row_count, 3u);
    EXPECT_TRUE(rec.dones[0].error());
    // Token sizes: every row is exactly as long as built.
    ASSERT_EQ(rec.tokens.size(), 6u);
    EXPECT_EQ(rec.tokens[0].second, colmetadata(cols).size());
    EXPECT_EQ(rec.tokens[1], (std::pair<std::uint8_t, std::size_t>{0xD1, row(cols).size()}));
    EXPECT_EQ(rec.tokens[2].first, 0xD2);
    std::size_t total = 0;
    for (const auto& t : rec.tokens)
        total += t.second;
    EXPECT_EQ(total, m.size());
}

TEST(Rows, ChunkingInvarianceOneByteAtATimeAndOthers) {
    const Buf m = result_message();
    Recorder whole;
    {
        Parser p(whole);
        ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    }
    for (std::size_t n : {1, 2, 3, 5, 7, 13, 64, 511, 512, 4096}) {
        Recorder rec;
        Parser p(rec);
        bool bad = false;
        EXPECT_EQ(feed_chunked(p, m, n, &bad), DecodeStatus::Consumed) << n;
        EXPECT_FALSE(bad);
        EXPECT_EQ(rec.log, whole.log) << "chunk " << n;
    }
}

// Columns whose values are all stepped over by the walker's row fast path (fixed, BYTELEN,
// USHORTLEN), and a result of many ROW and NBCROW tokens back to back over them.
std::vector<Col> fast_path_types() {
    std::vector<Col> keep;
    for (const Col& c : all_types()) {
        const std::uint8_t t = c.type_info[0];
        const bool slow = t == 0x23 || t == 0x63 || t == 0x22 || t == 0x62 || t == 0xF1 ||
                          t == 0xF0 ||
                          (c.type_info.size() >= 3 && c.type_info[1] == 0xFF &&
                           c.type_info[2] == 0xFF);  // TEXT, variant, XML, UDT, max
        if (!slow) keep.push_back(c);
    }
    return keep;
}

Buf many_rows_message() {
    const auto cols = fast_path_types();
    B b;
    b.raw(colmetadata(cols));
    for (std::size_t i = 0; i < 40; ++i) {
        if (i % 3 == 2) {
            std::vector<bool> nulls(cols.size());
            for (std::size_t k = 0; k < cols.size(); ++k)
                nulls[k] = (k + i) % 3 == 0 || i % 9 == 8;  // every 9th row: all NULL
            b.raw(nbcrow(cols, nulls));
        } else {
            b.raw(row(cols));
        }
    }
    return b.raw(error_token(208, "Invalid object name 'x'.")).raw(done(0xFD, 0x0012, 40)).b;
}

TEST(Rows, FastPathTypesAreWalkedByIt) {
    // The list above must keep the columns the fast path handles and nothing else.
    const auto cols = fast_path_types();
    ASSERT_GE(cols.size(), 20u);
    Recorder rec;
    Parser p(rec);
    ASSERT_EQ(feed_all(p, many_rows_message()), DecodeStatus::Consumed) << p.last_error().detail;
    ASSERT_EQ(rec.metas.size(), 1u);
    for (const Column& c : rec.metas[0]) {
        EXPECT_TRUE(c.info.kind == ValueKind::Fixed || c.info.kind == ValueKind::ByteLen ||
                    c.info.kind == ValueKind::UShortLen)
            << c.name;
    }
    EXPECT_EQ(rec.rows, 40u);
    ASSERT_EQ(rec.messages.size(), 1u);
    EXPECT_EQ(rec.messages[0].number, 208);
}

TEST(Rows, RowEventsOffReportsEverythingElseAtAnyChunking) {
    for (const Buf& m : {result_message(), many_rows_message()}) {
        Recorder whole;
        {
            Parser p(whole);
            ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
        }
        std::vector<std::string> expected;
        std::size_t row_tokens = 0;
        for (const std::string& line : whole.log) {
            if (line == "row" || line.rfind("token 209 ", 0) == 0 ||
                line.rfind("token 210 ", 0) == 0) {
                row_tokens += line != "row";
                continue;
            }
            expected.push_back(line);
        }
        ASSERT_GE(row_tokens, 3u);
        for (std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7},
                              std::size_t{13}, std::size_t{64}, std::size_t{511}, m.size()}) {
            Recorder rec;
            Parser p(rec);
            p.set_row_events(false);
            bool bad = false;
            EXPECT_EQ(feed_chunked(p, m, n, &bad), DecodeStatus::Consumed) << n;
            EXPECT_FALSE(bad);
            EXPECT_EQ(rec.rows, 0u);
            EXPECT_EQ(rec.log, expected) << "chunk " << n;
        }
    }
}

TEST(Rows, RowEventsOffStillFindsABadValueAtTheSameOffset) {
    // A NVARCHAR(50) value claiming 0x0100 bytes in row 30: the same error either way.
    Buf m = many_rows_message();
    const auto cols = fast_path_types();
    std::size_t nv = 0;
    for (std::size_t k = 0; k < cols.size(); ++k)
        if (cols[k].name == "nvarchar50") nv = k;
    ASSERT_GT(nv, 0u);
    // Row 30 is a ROW (30 % 3 == 0): it starts after COLMETADATA and rows 0..29 as
    // many_rows_message builds them; its nvarchar value after the token byte and the values
    // before it.
    std::size_t off = colmetadata(cols).size();
    for (std::size_t i = 0; i < 30; ++i) {
        if (i % 3 == 2) {
            std::vector<bool> nulls(cols.size());
            for (std::size_t k = 0; k < cols.size(); ++k)
                nulls[k] = (k + i) % 3 == 0 || i % 9 == 8;
            off += nbcrow(cols, nulls).size();
        } else {
            off += row(cols).size();
        }
    }
    std::size_t value_at = off + 1;
    for (std::size_t k = 0; k < nv; ++k)
        value_at += cols[k].value.size();
    ASSERT_EQ(m[off], 0xD1);
    ASSERT_EQ(m[value_at], 4);  // the USHORT length of "aaaa" as built
    m[value_at] = 0x00;
    m[value_at + 1] = 0x01;  // 256 > 100 bytes: impossible
    for (bool events : {true, false}) {
        for (std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{300}, m.size()}) {
            Recorder rec;
            Parser p(rec);
            p.set_row_events(events);
            bool bad = false;
            feed_chunked(p, m, n, &bad);
            EXPECT_TRUE(bad) << events << " " << n;
            EXPECT_EQ(p.last_error().code, DecodeError::Code::BadLength) << events << " " << n;
            EXPECT_EQ(p.last_error().offset, value_at) << events << " " << n;
            EXPECT_EQ(rec.rows, events ? 30u : 0u) << n;
            EXPECT_TRUE(rec.messages.empty());  // the rest of the message is dropped
        }
    }
}

TEST(Rows, FastPathAcceptsExactlyTheLengthsTheTypeAllows) {
    // Every BYTELEN length 0..255 against valid_bytelen_value, through each way the fast path
    // walks a row (whole message) and byte by byte, with row events on and off.
    const std::vector<Buf> infos = {{0x26, 4},       {0x26, 8},   {0x68, 1},  {0x6D, 8},
                                    {0x6E, 4},       {0x6F, 8},   {0x24, 16}, {0x6A, 17, 38, 10},
                                    {0x6C, 5, 9, 2}, {0x28},      {0x29, 7},  {0x29, 0},
                                    {0x2A, 3},       {0x2B, 0},   {0x2B, 7},  {0x27, 20},
                                    {0x27, 40},      {0x25, 255}, {0x2D, 31}};
    for (const Buf& ti : infos) {
        const Buf meta = B().u8(0x81).u16(1).u32(0).u16(0x0009).raw(ti).bvarchar("c").b;
        Recorder meta_rec;
        Parser mp(meta_rec);
        ASSERT_EQ(feed_all(mp, B().raw(meta).raw(done(0xFD, 0x10, 0)).b), DecodeStatus::Consumed)
            << int(ti[0]) << " " << mp.last_error().detail;
        ASSERT_EQ(meta_rec.metas.size(), 1u);
        const TypeInfo info = meta_rec.metas[0][0].info;
        ASSERT_EQ(info.kind, ValueKind::ByteLen);
        for (std::uint32_t len = 0; len < 256; ++len) {
            const Buf value = B().u8(static_cast<std::uint8_t>(len)).raw(Buf(len, 0x11)).b;
            // The row under test first (walked column by column), after a ROW near the end
            // of the bytes (walked with bounds checks), and after a ROW far from the end
            // (walked without them).
            for (int layout = 0; layout < 3; ++layout) {
                B b;
                b.raw(meta);
                if (layout > 0) b.u8(0xD1).u8(0);
                const std::size_t value_at = b.b.size() + 1;
                b.u8(0xD1).raw(value);
                for (int i = 0; i < (layout == 2 ? 300 : 1); ++i)
                    b.u8(0xD1).u8(0);
                const Buf m = b.raw(done(0xFD, 0x10, 2)).b;
                const bool valid = valid_bytelen_value(info, len);
                for (bool events : {true, false}) {
                    for (std::size_t n : {m.size(), std::size_t{1}}) {
                        Recorder rec;
                        Parser p(rec);
                        p.set_row_events(events);
                        bool bad = false;
                        feed_chunked(p, m, n, &bad);
                        EXPECT_EQ(bad, !valid)
                            << "type " << int(ti[0]) << " max " << info.max_length << " len " << len
                            << " layout " << layout << " chunk " << n;
                        if (!valid) {
                            EXPECT_EQ(p.last_error().code, DecodeError::Code::BadLength);
                            EXPECT_EQ(p.last_error().offset, value_at);
                        } else {
                            ASSERT_EQ(rec.dones.size(), 1u);
                        }
                    }
                }
            }
        }
    }
}

TEST(Rows, FastPathUShortLengthsInEveryWayARowIsWalked) {
    // NVARCHAR(50) (100 bytes) after an INT4: NULL (0xFFFF) and 0..100 accepted, 101..0xFFFE
    // refused at the length, whichever way the row is walked.
    const Buf meta = B().u8(0x81)
                         .u16(2)
                         .u32(0)
                         .u16(0x0009)
                         .u8(0x38)
                         .bvarchar("i")
                         .u32(0)
                         .u16(0x0009)
                         .u8(0xE7)
                         .u16(100)
                         .raw(kCollation)
                         .bvarchar("s")
                         .b;
    const Buf ok_row = B().u8(0xD1).u32(7).u16(2).u16('x').b;
    for (std::uint32_t len : {0u, 1u, 99u, 100u, 101u, 102u, 4000u, 0xFFFEu, 0xFFFFu}) {
        const bool valid = len <= 100 || len == 0xFFFF;
        const Buf value = B().u16(static_cast<std::uint16_t>(len))
                              .raw(Buf(len == 0xFFFF ? 0 : std::min<std::uint32_t>(len, 200), 0x41))
                              .b;
        for (int layout = 0; layout < 3; ++layout) {
            B b;
            b.raw(meta);
            if (layout > 0) b.raw(ok_row);
            const std::size_t value_at = b.b.size() + 1 + 4;
            b.u8(0xD1).u32(9).raw(value);
            for (int i = 0; i < (layout == 2 ? 200 : 1); ++i)
                b.raw(ok_row);
            const Buf m = b.raw(done(0xFD, 0x10, 3)).b;
            for (bool events : {true, false}) {
                for (std::size_t n : {m.size(), std::size_t{1}, std::size_t{7}}) {
                    Recorder rec;
                    Parser p(rec);
                    p.set_row_events(events);
                    bool bad = false;
                    feed_chunked(p, m, n, &bad);
                    EXPECT_EQ(bad, !valid) << len << " layout " << layout << " chunk " << n;
                    if (!valid) {
                        EXPECT_EQ(p.last_error().code, DecodeError::Code::BadLength);
                        EXPECT_EQ(p.last_error().offset, value_at) << len << " " << layout;
                    } else {
                        ASSERT_EQ(rec.dones.size(), 1u);
                        EXPECT_EQ(rec.rows, events ? (layout == 2 ? 202u : layout + 2u) : 0u);
                    }
                }
            }
        }
    }
}

TEST(Rows, TruncationAtEveryOffsetNeverCrashes) {
    const Buf m = result_message();
    Recorder whole;
    {
        Parser p(whole);
        ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    }
    std::vector<std::size_t> boundaries{0};
    for (const auto& t : whole.tokens)
        boundaries.push_back(boundaries.back() + t.second);
    for (std::size_t cut = 0; cut < m.size(); ++cut) {
        const bool at_boundary =
            std::find(boundaries.begin(), boundaries.end(), cut) != boundaries.end();
        Recorder a;
        Parser pa(a);
        EXPECT_EQ(pa.feed(Bytes(m.data(), cut), false),
                  at_boundary ? DecodeStatus::Consumed : DecodeStatus::NeedMore)
            << cut;
        Recorder b;
        Parser pb(b);
        const auto st = pb.feed(Bytes(m.data(), cut), true);
        EXPECT_EQ(st, at_boundary ? DecodeStatus::Consumed : DecodeStatus::Malformed) << cut;
        if (!at_boundary) {
            EXPECT_EQ(pb.last_error().code, DecodeError::Code::Truncated) << cut;
        }
    }
}

TEST(Rows, MetadataIsKeptAcrossMessagesAndNoMetaDataKeepsIt) {
    Recorder rec;
    Parser p(rec);
    const auto cols = all_types();
    ASSERT_EQ(feed_all(p, B().raw(colmetadata(cols)).raw(done(0xFD, 0x10, 0)).b),
              DecodeStatus::Consumed);
    // Next message: COLMETADATA 0xFFFF (NoMetaData), then rows using the kept columns.
    Buf m2 = B().u8(0x81).u16(0xFFFF).raw(row(cols)).raw(done(0xFD, 0x10, 1)).b;
    ASSERT_EQ(feed_all(p, m2), DecodeStatus::Consumed) << p.last_error().detail;
    EXPECT_EQ(rec.rows, 1u);
    EXPECT_EQ(rec.metas.size(), 1u);
}

TEST(Rows, RowWithoutMetadataIsUnsupportedAndSkipsTheMessage) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().u8(0xD1).u8(4).u32(1).raw(done(0xFD, 0x10, 1)).b;
    EXPECT_EQ(feed_all(p, m), DecodeStatus::Malformed);
    EXPECT_EQ(p.last_error().code, DecodeError::Code::Unsupported);
    EXPECT_TRUE(rec.dones.empty());
}

TEST(Rows, ImpossibleValueLengthsAreMalformed) {
    struct Case {
        Buf ti;
        Buf value;
    };
    const std::vector<Case> cases = {
        {{0x26, 4}, {3, 0, 0, 0}},  // INTN(4) with length 3
        {{0x24, 16}, {15}},         // GUID length 15
        {{0x28}, {4, 0, 0, 0, 0}},  // DATEN length 4
        {B().u8(0xE7).u16(10).raw(kCollation).b, B().u16(12).raw(Buf(12, 0)).b},  // > max
        {B().u8(0xA5).u16(0xFFFF).b, B().u64(4).u32(5).raw(Buf(5, 0)).u32(0).b},  // PLP > total
        {B().u8(0xA5).u16(0xFFFF).b, B().u64(8).u32(4).raw(Buf(4, 0)).u32(0).b},  // PLP < total
        {B().u8(0x62).u32(8009).b, B().u32(6).u8(0x99).u8(0).u32(0).b},  // variant base type
        {B().u8(0x62).u32(8009).b, B().u32(6).u8(0x38).u8(3).u32(0).b},  // variant props
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        Recorder rec;
        Parser p(rec);
        Buf m = B().u8(0x81)
                    .u16(1)
                    .u32(0)
                    .u16(0)
                    .raw(cases[i].ti)
                    .bvarchar("c")
                    .u8(0xD1)
                    .raw(cases[i].value)
                    .raw(done(0xFD, 0, 1))
                    .b;
        EXPECT_EQ(feed_all(p, m), DecodeStatus::Malformed) << i;
        EXPECT_EQ(rec.rows, 0u) << i;
    }
}

TEST(Rows, BadTypeInfoIsMalformed) {
    for (const Buf& ti :
         {Buf{0x26, 3}, Buf{0x6A, 17, 39, 0}, Buf{0x6A, 17, 10, 11}, Buf{0x29, 8}, Buf{0x99},
          B().u8(0xAF).u16(0xFFFF).raw(kCollation).b, B().u8(0xE7).u16(9000).raw(kCollation).b}) {
        Recorder rec;
        Parser p(rec);
        Buf m = B().u8(0x81).u16(1).u32(0).u16(0).raw(ti).bvarchar("c").b;
        EXPECT_EQ(feed_all(p, m), DecodeStatus::Malformed);
        EXPECT_TRUE(rec.metas.empty());
    }
}

// A 32 MB varchar(max) value streams through a parser that may keep only 1 KB pending: values
// are counted off, never buffered. ERROR after that row is still seen.
TEST(Rows, HugePlpValueIsSkippedAsItStreams) {
    Recorder rec;
    Parser p(rec, TokenStreamParser::Limits{1024});
    const std::uint32_t chunk = 1 << 20;
    const int chunks = 32;
    Buf head = B().u8(0x81)
                   .u16(2)
                   .u32(0)
                   .u16(0)
                   .u8(0xA7)
                   .u16(0xFFFF)
                   .raw(kCollation)
                   .bvarchar("big")
                   .u32(0)
                   .u16(0)
                   .u8(0x38)
                   .bvarchar("n")
                   .u8(0xD1)
                   .u64(std::uint64_t{chunk} * chunks)
                   .b;
    ASSERT_EQ(p.feed(Bytes(head.data(), head.size()), false), DecodeStatus::NeedMore);
    Buf packet(4088, 0x61);
    for (int i = 0; i < chunks; ++i) {
        Buf len = B().u32(chunk).b;
        ASSERT_EQ(p.feed(Bytes(len.data(), len.size()), false), DecodeStatus::NeedMore);
        for (std::uint32_t sent = 0; sent < chunk; sent += packet.size()) {
            const std::size_t n = std::min<std::size_t>(packet.size(), chunk - sent);
            ASSERT_EQ(p.feed(Bytes(packet.data(), n), false), DecodeStatus::NeedMore);
        }
    }
    Buf tail = B().u32(0).u32(7).raw(error_token(1205, "deadlock victim")).raw(done(0xFD, 2, 1)).b;
    ASSERT_EQ(p.feed(Bytes(tail.data(), tail.size()), true), DecodeStatus::Consumed)
        << p.last_error().detail;
    EXPECT_EQ(rec.rows, 1u);
    ASSERT_EQ(rec.messages.size(), 1u);
    EXPECT_EQ(rec.messages[0].number, 1205);
    ASSERT_GE(rec.tokens.size(), 2u);
    EXPECT_EQ(rec.tokens[1].second, 1u + 8 + chunks * (4 + std::size_t{chunk}) + 4 + 4);
}

TEST(Rows, HugeTextValueIsSkippedAsItStreams) {
    Recorder rec;
    Parser p(rec, TokenStreamParser::Limits{1024});
    const std::uint32_t size = 8 << 20;
    Buf head = B().u8(0x81)
                   .u16(1)
                   .u32(0)
                   .u16(0)
                   .u8(0x22)
                   .u32(0x7FFFFFFF)
                   .raw(text_table({"dbo", "blobs"}))
                   .bvarchar("img")
                   .u8(0xD1)
                   .u8(16)
                   .raw(Buf(16, 1))
                   .raw(Buf(8, 2))
                   .u32(size)
                   .b;
    ASSERT_EQ(p.feed(Bytes(head.data(), head.size()), false), DecodeStatus::NeedMore);
    Buf packet(32760, 0);
    for (std::uint32_t sent = 0; sent < size; sent += packet.size()) {
        const std::size_t n = std::min<std::size_t>(packet.size(), size - sent);
        // The row (one column) is complete with its last byte.
        ASSERT_EQ(p.feed(Bytes(packet.data(), n), false),
                  sent + n < size ? DecodeStatus::NeedMore : DecodeStatus::Consumed);
    }
    Buf tail = done(0xFD, 0x10, 1);
    ASSERT_EQ(p.feed(Bytes(tail.data(), tail.size()), true), DecodeStatus::Consumed);
    EXPECT_EQ(rec.rows, 1u);
    EXPECT_EQ(rec.dones.size(), 1u);
}

// [MS-TDS 2.2.7.19] RETURNVALUE: ParamOrdinal, ParamName B_VARCHAR, Status, UserType, Flags,
// TYPE_INFO, Value.
TEST(Rows, ReturnValueAndReturnStatus) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().u8(0xAC)
                .u16(1)
                .bvarchar("@out")
                .u8(0x01)
                .u32(0)
                .u16(0x0001)
                .u8(0xE7)
                .u16(0xFFFF)
                .raw(kCollation)
                .u64(0xFFFFFFFFFFFFFFFEULL)
                .u32(2)
                .ucs2("x")
                .u32(0)
                .u8(0xAC)
                .u16(2)
                .bvarchar("@n")
                .u8(0x01)
                .u32(0)
                .u16(0)
                .u8(0x26)
                .u8(4)
                .u8(0)
                .u8(0x79)
                .u32(0xFFFFFFFF)
                .raw(done(0xFE, 0, 0))
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed) << p.last_error().detail;
    ASSERT_EQ(rec.rvs.size(), 2u);
    EXPECT_EQ(rec.rvs[0].name, "@out");
    EXPECT_EQ(rec.rvs[0].ordinal, 1);
    EXPECT_EQ(rec.rvs[0].info.kind, ValueKind::Plp);
    EXPECT_FALSE(rec.rvs[0].is_null);
    EXPECT_EQ(rec.rvs[1].name, "@n");
    EXPECT_TRUE(rec.rvs[1].is_null);
    ASSERT_EQ(rec.statuses.size(), 1u);
    EXPECT_EQ(rec.statuses[0], -1);
    EXPECT_EQ(rec.rows, 0u);
}

// [MS-TDS 2.2.7.1] ALTMETADATA: Count, Id, ByCols, ColNum*, then per column Op, Operand,
// UserType, Flags, TYPE_INFO, ColName. [MS-TDS 2.2.7.2] ALTROW: Id, then the values.
TEST(Rows, AltMetadataAndAltRow) {
    Recorder rec;
    Parser p(rec);
    const auto cols = all_types();
    Buf m = B().raw(colmetadata(cols))
                .raw(row(cols))
                .u8(0x88)
                .u16(1)
                .u16(7)
                .u8(1)
                .u16(1)
                .u8(0x4D)  // SUM
                .u16(4)
                .u32(0)
                .u16(0)
                .u8(0x26)
                .u8(8)
                .bvarchar("")
                .u8(0xD3)
                .u16(7)
                .u8(8)
                .u64(99)
                .raw(done(0xFD, 0x10, 1))
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed) << p.last_error().detail;
    EXPECT_EQ(rec.rows, 1u);
    ASSERT_EQ(rec.alt_rows.size(), 1u);
    EXPECT_EQ(rec.alt_rows[0], 7);
    Buf unknown_id = B().u8(0xD3).u16(8).b;
    EXPECT_EQ(feed_all(p, unknown_id), DecodeStatus::Malformed);
}

// TABNAME 0xA4, COLINFO 0xA5, ORDER 0xA9 (USHORT length), OFFSET 0x78 (4 bytes),
// SESSIONSTATE 0xE4 (DWORD length): walked over by their lengths [MS-TDS 2.2.7].
TEST(Rows, LengthDelimitedTokensAreSkipped) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().token16(0xA4, B().u8(1).usvarchar("t").b)
                .token16(0xA5, hex("010100"))
                .token16(0xA9, hex("0100"))
                .u8(0x78)
                .u16(1)
                .u16(8)
                .u8(0xE4)
                .u32(5)
                .raw(hex("0102030405"))
                .raw(done(0xFD, 0, 0))
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
    ASSERT_EQ(rec.tokens.size(), 6u);
    EXPECT_EQ(rec.tokens[0].first, 0xA4);
    EXPECT_EQ(rec.tokens[3], (std::pair<std::uint8_t, std::size_t>{0x78, 5}));
    EXPECT_EQ(rec.tokens[4], (std::pair<std::uint8_t, std::size_t>{0xE4, 10}));
}

// Unknown tokens: bits 4-5 give the length class [MS-TDS 2.2.4.2.1]: 0x10 zero-length,
// 0x30 fixed (bits 2-3: 1/2/4/8 bytes), 0x20 USHORT length, 0x00 variable count (cannot skip).
TEST(Rows, UnknownTokensFollowTheLengthClassRule) {
    Recorder rec;
    Parser p(rec);
    Buf m = B().u8(0x50)   // 01 01 0000: zero length
                .u8(0x3C)  // 0011 1100: fixed 8
                .u64(1)
                .u8(0x34)  // 0011 0100: fixed 2
                .u16(1)
                .u8(0xE0)  // 1110 0000: USHORT length
                .u16(3)
                .raw(hex("010203"))
                .raw(done(0xFD, 0, 0))
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed) << p.last_error().detail;
    ASSERT_EQ(rec.tokens.size(), 5u);
    EXPECT_EQ(rec.tokens[0], (std::pair<std::uint8_t, std::size_t>{0x50, 1}));
    EXPECT_EQ(rec.tokens[1], (std::pair<std::uint8_t, std::size_t>{0x3C, 9}));
    EXPECT_EQ(rec.tokens[2], (std::pair<std::uint8_t, std::size_t>{0x34, 3}));
    EXPECT_EQ(rec.tokens[3], (std::pair<std::uint8_t, std::size_t>{0xE0, 6}));
    Buf vc = B().u8(0x0F).u16(1).b;  // variable-count class, unknown: not skippable
    EXPECT_EQ(feed_all(p, vc), DecodeStatus::Malformed);
    EXPECT_EQ(p.last_error().code, DecodeError::Code::Unsupported);
    EXPECT_NE(p.last_error().detail.find("0x0f"), std::string::npos);
}

// TDS 7.1 COLMETADATA: UserType is a USHORT and a TEXT column's TableName is one US_VARCHAR
// (NumParts came with TDS 7.2) [MS-TDS 2.2.7.4].
TEST(Rows, Tds71TextColumnTableName) {
    Recorder rec;
    Parser p(rec);
    p.set_tds_version(0x71000001);
    Buf m = B().u8(0x81)
                .u16(1)
                .u16(0x23)
                .u16(0x0009)
                .u8(0x23)
                .u32(0x7FFFFFFF)
                .raw(kCollation)
                .usvarchar("dbo.notes")
                .bvarchar("body")
                .u8(0xD1)
                .u8(16)
                .raw(Buf(16, 1))
                .raw(Buf(8, 2))
                .u32(3)
                .raw(hex("616263"))
                .u8(0xFD)
                .u16(0x10)
                .u16(0xC1)
                .u32(1)
                .b;
    ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed) << p.last_error().detail;
    ASSERT_EQ(rec.metas.size(), 1u);
    EXPECT_EQ(rec.metas[0][0].user_type, 0x23u);
    EXPECT_EQ(rec.metas[0][0].table_name, "dbo.notes");
    EXPECT_EQ(rec.metas[0][0].name, "body");
    EXPECT_EQ(rec.rows, 1u);
    ASSERT_EQ(rec.dones.size(), 1u);
    EXPECT_EQ(rec.dones[0].row_count, 1u);
}

// Real bytes, midstream capture, connection of frames 10..25 (one parser for the connection):
// values as shown by tshark.
TEST(RealResponses, MidstreamConnectionResponses) {
    Recorder rec;
    Parser p(rec);
    for (const char* f : {"ndpi_f10_response.bin", "ndpi_f12_response.bin", "ndpi_f14_response.bin",
                          "ndpi_f16_response.bin", "ndpi_f19_response.bin", "ndpi_f22_response.bin",
                          "ndpi_f25_response.bin"}) {
        ASSERT_EQ(feed_all(p, load(f)), DecodeStatus::Consumed) << f << p.last_error().detail;
    }
    // f19 and f22: COLMETADATA of three char(30) columns, three rows each.
    ASSERT_EQ(rec.metas.size(), 2u);
    for (const auto& md : rec.metas) {
        ASSERT_EQ(md.size(), 3u);
        EXPECT_EQ(md[0].name, "column1");
        EXPECT_EQ(md[2].name, "column3");
        EXPECT_EQ(md[0].type, 0xAF);
        EXPECT_EQ(md[0].max_length, 30u);
        EXPECT_EQ(md[0].flags, 0x0008);
        EXPECT_EQ(md[1].flags, 0x0009);
    }
    EXPECT_EQ(rec.rows, 6u);
    // DONEINPROC row counts as tshark shows them: f12 0, f14 1, f16 1 and 1, f19 3, f22 3, f25 0.
    std::vector<std::uint64_t> inproc;
    for (const auto& d : rec.dones)
        if (d.token == 0xFF) inproc.push_back(d.row_count);
    EXPECT_EQ(inproc, (std::vector<std::uint64_t>{0, 1, 1, 1, 3, 3, 0}));
    // tshark's "Unknown" tokens after RETURNSTATUS are RETURNVALUEs (sp_prepexec's handle).
    EXPECT_EQ(rec.rvs.size(), 4u);
    EXPECT_EQ(rec.statuses.size(), 9u);
}

TEST(RealResponses, ResultWithNcharAndIntColumns) {
    Recorder rec;
    Parser p(rec);
    ASSERT_EQ(feed_all(p, load("ndpi_f2_response.bin")), DecodeStatus::Consumed);
    ASSERT_EQ(feed_all(p, load("ndpi_f4_response.bin")), DecodeStatus::Consumed);
    ASSERT_EQ(rec.metas.size(), 1u);
    const auto& md = rec.metas[0];
    ASSERT_EQ(md.size(), 4u);
    EXPECT_EQ(md[0].name, "name");
    EXPECT_EQ(md[1].name, "surname");
    EXPECT_EQ(md[2].name, "city");
    EXPECT_EQ(md[3].name, "id");
    EXPECT_EQ(md[2].type, 0xEF);
    EXPECT_EQ(md[2].max_length, 80u);
    EXPECT_EQ(md[3].type, 0x38);
    EXPECT_EQ(rec.rows, 1u);
    ASSERT_EQ(rec.dones.size(), 4u);
    EXPECT_EQ(rec.dones[2].token, 0xFF);
    EXPECT_EQ(rec.dones[2].cur_cmd, 0xC1);
    EXPECT_EQ(rec.dones[2].row_count, 1u);
    EXPECT_EQ(rec.dones[3].token, 0xFE);
}

// Frame 6: tshark 4.0 calls it "Malformed". The payload is a 9-byte DONE: a 4-byte row count,
// i.e. TDS 7.0/7.1 - the request it answers (frame 5) has no ALL_HEADERS, which 7.2+ requires.
// tshark assumed 7.2+ (it never saw the login); the bytes are right.
TEST(RealResponses, Tds71DoneThatTsharkCallsMalformed) {
    const Buf m = load("ndpi_f6_response.bin");
    ASSERT_EQ(m.size(), 9u);
    {
        Recorder rec;
        Parser p(rec);
        p.set_tds_version(0x71000000);
        ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
        ASSERT_EQ(rec.dones.size(), 1u);
        EXPECT_EQ(rec.dones[0].cur_cmd, 0xD5);  // COMMIT TRANSACTION
        EXPECT_EQ(rec.dones[0].row_count, 0u);
    }
    {
        Recorder rec;
        Parser p(rec);  // assumed 7.4, like tshark: the DONE is 4 bytes short
        EXPECT_EQ(feed_all(p, m), DecodeStatus::Malformed);
        EXPECT_EQ(p.last_error().code, DecodeError::Code::Truncated);
    }
}

TEST(RealResponses, Tds71ResultAfterLogin) {
    Recorder rec;
    Parser p(rec);
    ASSERT_EQ(feed_all(p, load("arkime_f7_login_response.bin")), DecodeStatus::Consumed);
    ASSERT_EQ(feed_all(p, load("arkime_f9_result.bin")), DecodeStatus::Consumed)
        << p.last_error().detail;
    ASSERT_EQ(rec.metas.size(), 1u);
    ASSERT_EQ(rec.metas[0].size(), 1u);
    EXPECT_EQ(rec.metas[0][0].name, "name");
    EXPECT_EQ(rec.metas[0][0].user_type, 256u);  // USHORT UserType in TDS 7.1
    EXPECT_EQ(rec.metas[0][0].type, 0xE7);
    EXPECT_EQ(rec.metas[0][0].max_length, 256u);
    EXPECT_EQ(rec.rows, 1u);
    ASSERT_EQ(rec.dones.size(), 2u);
    EXPECT_EQ(rec.dones[1].status, 0x0010);
    EXPECT_EQ(rec.dones[1].row_count, 1u);
}

TEST(RealResponses, ChunkingInvarianceOnRealResults) {
    for (const char* f : {"ndpi_f4_response.bin", "ndpi_f19_response.bin"}) {
        const Buf m = load(f);
        Recorder whole;
        {
            Parser p(whole);
            ASSERT_EQ(feed_all(p, m), DecodeStatus::Consumed);
        }
        for (std::size_t n = 1; n < m.size(); n += (n < 40 ? 1 : 37)) {
            Recorder rec;
            Parser p(rec);
            EXPECT_EQ(feed_chunked(p, m, n), DecodeStatus::Consumed);
            EXPECT_EQ(rec.log, whole.log) << f << " chunk " << n;
        }
    }
}

}  // namespace
}  // namespace hopscope::tds::test
