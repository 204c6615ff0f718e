// TYPE_INFO and value framing [MS-TDS 2.2.5.2 Data Type Dependent Data Streams, 2.2.5.4 Data Type
// Definitions, 2.2.5.5 Type Info Rule Definition, 2.2.5.6 Type Info Rule Definition].
#include "hopscope/tds/types.hpp"

#include "hopscope/common/text.hpp"
#include "hopscope/tds/wire_text.hpp"

namespace hopscope::tds {
namespace {

using Code = DecodeError::Code;

DecodeResult bad(Code code, std::size_t off, const char* what) {
    return make_error(code, off, what);
}

void join(std::string& out, const std::string& part) {
    if (!out.empty() || !part.empty()) {
        if (!out.empty()) out += '.';
        out += part;
    }
}

}  // namespace

const char* type_name(std::uint8_t type) {
    switch (type) {
        case 0x1F:
            return "null";
        case 0x30:
            return "tinyint";
        case 0x32:
            return "bit";
        case 0x34:
            return "smallint";
        case 0x38:
            return "int";
        case 0x3A:
            return "smalldatetime";
        case 0x3B:
            return "real";
        case 0x3C:
            return "money";
        case 0x3D:
            return "datetime";
        case 0x3E:
            return "float";
        case 0x7A:
            return "smallmoney";
        case 0x7F:
            return "bigint";
        case 0x24:
            return "uniqueidentifier";
        case 0x26:
            return "intn";
        case 0x37:
            return "decimal(legacy)";
        case 0x3F:
            return "numeric(legacy)";
        case 0x68:
            return "bitn";
        case 0x6A:
            return "decimal";
        case 0x6C:
            return "numeric";
        case 0x6D:
            return "floatn";
        case 0x6E:
            return "moneyn";
        case 0x6F:
            return "datetimen";
        case 0x28:
            return "date";
        case 0x29:
            return "time";
        case 0x2A:
            return "datetime2";
        case 0x2B:
            return "datetimeoffset";
        case 0x2F:
            return "char(legacy)";
        case 0x27:
            return "varchar(legacy)";
        case 0x2D:
            return "binary(legacy)";
        case 0x25:
            return "varbinary(legacy)";
        case 0xA5:
            return "varbinary";
        case 0xA7:
            return "varchar";
        case 0xAD:
            return "binary";
        case 0xAF:
            return "char";
        case 0xE7:
            return "nvarchar";
        case 0xEF:
            return "nchar";
        case 0x22:
            return "image";
        case 0x23:
            return "text";
        case 0x63:
            return "ntext";
        case 0x62:
            return "sql_variant";
        case 0xF1:
            return "xml";
        case 0xF0:
            return "udt";
        case 0xF3:
            return "table";
        default:
            return "unknown";
    }
}

namespace {

// Size of the fixed-length types [MS-TDS 2.2.5.4.1]; -1 if `type` is not one.
int fixed_size(std::uint8_t type) {
    switch (type) {
        case 0x1F:
            return 0;  // NULLTYPE
        case 0x30:     // INT1TYPE
        case 0x32:
            return 1;  // BITTYPE
        case 0x34:
            return 2;  // INT2TYPE
        case 0x38:     // INT4TYPE
        case 0x3A:     // DATETIM4TYPE
        case 0x3B:     // FLT4TYPE
        case 0x7A:
            return 4;  // MONEY4TYPE
        case 0x3C:     // MONEYTYPE
        case 0x3D:     // DATETIMETYPE
        case 0x3E:     // FLT8TYPE
        case 0x7F:
            return 8;  // INT8TYPE
        default:
            return -1;
    }
}

// Largest value of TIMEN for a scale [MS-TDS 2.2.5.4.2]: 3 bytes for scale 0-2, 4 for 3-4, 5 for
// 5-7.
std::uint32_t time_bytes(std::uint8_t scale) {
    return scale <= 2 ? 3 : scale <= 4 ? 4 : 5;
}

}  // namespace

bool valid_bytelen_value(const TypeInfo& ti, std::uint32_t len) {
    if (len == 0) return true;  // NULL
    switch (ti.type) {
        case 0x26:
            return (len == 1 || len == 2 || len == 4 || len == 8) && len <= ti.max_length;
        case 0x68:
            return len == 1;
        case 0x6D:
        case 0x6E:
        case 0x6F:
            return (len == 4 || len == 8) && len <= ti.max_length;
        case 0x24:
            return len == 16;
        case 0x28:
            return len == 3;
        case 0x29:
            return len == time_bytes(ti.scale);
        case 0x2A:
            return len == time_bytes(ti.scale) + 3;
        case 0x2B:
            return len == time_bytes(ti.scale) + 5;
        default:
            return len <= ti.max_length;
    }
}

DecodeResult parse_type_info(ByteReader& r, TypeContext ctx, TypeInfo& out) {
    out = TypeInfo{};
    const std::size_t start = r.position();
    std::uint8_t t = 0;
    if (!r.u8(t)) return DecodeResult::need_more();
    out.type = t;
    const int fs = fixed_size(t);
    if (fs >= 0) {
        out.kind = ValueKind::Fixed;
        out.max_length = static_cast<std::uint32_t>(fs);
        return {};
    }
    switch (t) {
        // BYTELEN types: TYPE_VARLEN is a BYTE.
        case 0x24:    // GUIDTYPE
        case 0x26:    // INTNTYPE
        case 0x68:    // BITNTYPE
        case 0x6D:    // FLTNTYPE
        case 0x6E:    // MONEYNTYPE
        case 0x6F:    // DATETIMNTYPE
        case 0x2F:    // CHARTYPE (legacy)
        case 0x27:    // VARCHARTYPE (legacy)
        case 0x2D:    // BINARYTYPE (legacy)
        case 0x25:    // VARBINARYTYPE (legacy)
        case 0x37:    // DECIMALTYPE (legacy)
        case 0x3F:    // NUMERICTYPE (legacy)
        case 0x6A:    // DECIMALNTYPE
        case 0x6C: {  // NUMERICNTYPE
            std::uint8_t len = 0;
            if (!r.u8(len)) return DecodeResult::need_more();
            out.kind = ValueKind::ByteLen;
            out.max_length = len;
            bool ok = true;
            switch (t) {
                case 0x24:
                    ok = len == 16;
                    break;
                case 0x26:
                    ok = len == 1 || len == 2 || len == 4 || len == 8;
                    break;
                case 0x68:
                    ok = len == 1;
                    break;
                case 0x6D:
                case 0x6E:
                case 0x6F:
                    ok = len == 4 || len == 8;
                    break;
                case 0x37:
                case 0x3F:
                case 0x6A:
                case 0x6C:
                    ok = len >= 1 && len <= 17;
                    break;
                default:
                    break;
            }
            if (!ok) return bad(Code::BadLength, start, "TYPE_INFO: impossible length");
            if (t == 0x37 || t == 0x3F || t == 0x6A || t == 0x6C) {
                if (!r.u8(out.precision) || !r.u8(out.scale)) return DecodeResult::need_more();
                if (out.precision < 1 || out.precision > 38 || out.scale > out.precision) {
                    return bad(Code::BadValue, start, "TYPE_INFO: bad decimal precision/scale");
                }
            }
            return {};
        }
        case 0x28:  // DATENTYPE: no TYPE_VARLEN
            out.kind = ValueKind::ByteLen;
            out.max_length = 3;
            return {};
        case 0x29:  // TIMENTYPE
        case 0x2A:  // DATETIME2NTYPE
        case 0x2B:  // DATETIMEOFFSETNTYPE: SCALE only
            if (!r.u8(out.scale)) return DecodeResult::need_more();
            if (out.scale > 7) return bad(Code::BadValue, start, "TYPE_INFO: scale > 7");
            out.kind = ValueKind::ByteLen;
            out.max_length = time_bytes(out.scale) + (t == 0x2A ? 3 : t == 0x2B ? 5 : 0);
            return {};
        // USHORTLEN types.
        case 0xA5:    // BIGVARBINARYTYPE
        case 0xA7:    // BIGVARCHRTYPE
        case 0xAD:    // BIGBINARYTYPE
        case 0xAF:    // BIGCHARTYPE
        case 0xE7:    // NVARCHARTYPE
        case 0xEF: {  // NCHARTYPE
            std::uint16_t len = 0;
            if (!r.u16le(len)) return DecodeResult::need_more();
            out.max_length = len;
            if (len == 0xFFFF) {
                if (t == 0xAD || t == 0xAF || t == 0xEF) {
                    return bad(Code::BadLength, start, "TYPE_INFO: fixed char/binary of max");
                }
                out.kind = ValueKind::Plp;
            } else {
                if (len > 8000) return bad(Code::BadLength, start, "TYPE_INFO: length > 8000");
                out.kind = ValueKind::UShortLen;
            }
            if (t == 0xA7 || t == 0xAF || t == 0xE7 || t == 0xEF) {
                Bytes c;
                if (!r.bytes(5, c)) return DecodeResult::need_more();
                out.has_collation = true;
                for (std::size_t i = 0; i < 5; ++i)
                    out.collation[i] = c[i];
            }
            return {};
        }
        // LONGLEN types.
        case 0x22:    // IMAGETYPE
        case 0x23:    // TEXTTYPE
        case 0x63: {  // NTEXTTYPE
            std::uint32_t len = 0;
            if (!r.u32le(len)) return DecodeResult::need_more();
            out.kind = ValueKind::LongLen;
            out.max_length = len;
            if (t != 0x22) {
                Bytes c;
                if (!r.bytes(5, c)) return DecodeResult::need_more();
                out.has_collation = true;
                for (std::size_t i = 0; i < 5; ++i)
                    out.collation[i] = c[i];
            }
            return {};
        }
        case 0x62: {  // SSVARIANTTYPE
            std::uint32_t len = 0;
            if (!r.u32le(len)) return DecodeResult::need_more();
            out.kind = ValueKind::Variant;
            out.max_length = len;
            if (len > 8009) return bad(Code::BadLength, start, "TYPE_INFO: sql_variant > 8009");
            return {};
        }
        case 0xF1: {  // XMLTYPE: XML_INFO
            std::uint8_t schema_present = 0;
            if (!r.u8(schema_present)) return DecodeResult::need_more();
            out.kind = ValueKind::Plp;
            out.max_length = 0xFFFF;
            if (schema_present > 1) return bad(Code::BadValue, start, "XML_INFO: bad flag");
            if (schema_present) {
                std::string db, owner, coll;
                if (!read_b_varchar(r, db) || !read_b_varchar(r, owner) ||
                    !read_us_varchar(r, coll)) {
                    return DecodeResult::need_more();
                }
                join(out.xml_schema, db);
                join(out.xml_schema, owner);
                join(out.xml_schema, coll);
            }
            return {};
        }
        case 0xF0: {  // UDTTYPE: UDT_INFO
            out.kind = ValueKind::Plp;
            out.max_length = 0xFFFF;
            std::string db, schema, name;
            if (ctx == TypeContext::Metadata) {
                std::uint16_t max_size = 0;
                if (!r.u16le(max_size)) return DecodeResult::need_more();
                out.max_length = max_size;
            }
            if (!read_b_varchar(r, db) || !read_b_varchar(r, schema) || !read_b_varchar(r, name)) {
                return DecodeResult::need_more();
            }
            join(out.udt_name, db);
            join(out.udt_name, schema);
            join(out.udt_name, name);
            if (ctx == TypeContext::Metadata && !read_us_varchar(r, out.udt_assembly)) {
                return DecodeResult::need_more();
            }
            return {};
        }
        case 0xF3:
            return bad(Code::Unsupported, start, "TYPE_INFO: table-valued parameter");
        default:
            return bad(Code::BadValue, start, "TYPE_INFO: unknown data type");
    }
}

namespace {

// Property byte count of each base type allowed inside SSVARIANT [MS-TDS 2.2.5.5.4].
int variant_prop_bytes(std::uint8_t base) {
    switch (base) {
        case 0x30:
        case 0x32:
        case 0x34:
        case 0x38:
        case 0x7F:
        case 0x3B:
        case 0x3E:
        case 0x3C:
        case 0x7A:
        case 0x3D:
        case 0x3A:
        case 0x24:
        case 0x28:
            return 0;
        case 0x29:
        case 0x2A:
        case 0x2B:
            return 1;
        case 0x6A:
        case 0x6C:
        case 0xA5:
        case 0xAD:
            return 2;
        case 0xA7:
        case 0xAF:
        case 0xE7:
        case 0xEF:
            return 7;
        default:
            return -1;
    }
}

}  // namespace

DecodeResult skip_value(ByteReader& r, const TypeInfo& ti, bool* is_null) {
    const std::size_t start = r.position();
    bool null = false;
    switch (ti.kind) {
        case ValueKind::Fixed:
            if (!r.skip(ti.max_length)) return DecodeResult::need_more();
            null = ti.type == 0x1F;
            break;
        case ValueKind::ByteLen: {
            std::uint8_t len = 0;
            if (!r.u8(len)) return DecodeResult::need_more();
            if (!valid_bytelen_value(ti, len)) {
                return bad(Code::BadLength, start, "value: impossible length for its type");
            }
            if (!r.skip(len)) return DecodeResult::need_more();
            null = len == 0;
            break;
        }
        case ValueKind::UShortLen: {
            std::uint16_t len = 0;
            if (!r.u16le(len)) return DecodeResult::need_more();
            if (len == 0xFFFF) {
                null = true;
                break;
            }
            if (len > ti.max_length) {
                return bad(Code::BadLength, start, "value: longer than the column maximum");
            }
            if (!r.skip(len)) return DecodeResult::need_more();
            break;
        }
        case ValueKind::LongLen: {
            std::uint8_t ptr_len = 0;
            if (!r.u8(ptr_len)) return DecodeResult::need_more();
            if (ptr_len == 0) {
                null = true;
                break;
            }
            std::uint32_t len = 0;
            if (!r.skip(std::size_t{ptr_len} + 8) || !r.u32le(len))
                return DecodeResult::need_more();
            if (len > 0x7FFFFFFF) return bad(Code::BadLength, start, "value: TEXT > 2 GB");
            if (!r.skip(len)) return DecodeResult::need_more();
            break;
        }
        case ValueKind::Variant: {
            std::uint32_t len = 0;
            if (!r.u32le(len)) return DecodeResult::need_more();
            if (len == 0) {
                null = true;
                break;
            }
            if (len > ti.max_length || len < 2) {
                return bad(Code::BadLength, start, "sql_variant: bad length");
            }
            std::uint8_t base = 0, props = 0;
            if (!r.u8(base) || !r.u8(props)) return DecodeResult::need_more();
            const int expect = variant_prop_bytes(base);
            if (expect < 0) return bad(Code::BadValue, start, "sql_variant: bad base type");
            if (props != expect || std::uint32_t{props} + 2 > len) {
                return bad(Code::BadLength, start, "sql_variant: bad property length");
            }
            if (!r.skip(len - 2)) return DecodeResult::need_more();
            break;
        }
        case ValueKind::Plp: {
            std::uint64_t total = 0;
            if (!r.u64le(total)) return DecodeResult::need_more();
            if (total == 0xFFFFFFFFFFFFFFFFULL) {
                null = true;
                break;
            }
            std::uint64_t sum = 0;
            for (;;) {
                std::uint32_t chunk = 0;
                if (!r.u32le(chunk)) return DecodeResult::need_more();
                if (chunk == 0) break;
                sum += chunk;
                if (total != 0xFFFFFFFFFFFFFFFEULL && sum > total) {
                    return bad(Code::BadLength, start, "PLP: chunks exceed the total length");
                }
                if (!r.skip(chunk)) return DecodeResult::need_more();
            }
            if (total != 0xFFFFFFFFFFFFFFFEULL && sum != total) {
                return bad(Code::BadLength, start, "PLP: chunks do not add up to the total");
            }
            break;
        }
    }
    if (is_null) *is_null = null;
    return {};
}

}  // namespace hopscope::tds
