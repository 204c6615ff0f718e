// TDS data types: TYPE_INFO [MS-TDS 2.2.5.6] and how each type's values are laid out on the wire
// [MS-TDS 2.2.5.2, 2.2.5.4, 2.2.5.5]. Shared by the token stream (COLMETADATA, RETURNVALUE,
// ALTMETADATA) and the RPC request parser (parameter TYPE_INFO).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::tds {

/// How a value of a type is framed in ROW/NBCROW/ALTROW/RETURNVALUE and RPC parameters.
enum class ValueKind : std::uint8_t {
    Fixed,      ///< fixed size, no length prefix (INT4, DATETIME, ...); size in max_length
    ByteLen,    ///< 1-byte length prefix, 0 = NULL (INTN, GUID, DECIMALN, DATEN, TIMEN, ...)
    UShortLen,  ///< 2-byte length prefix, 0xFFFF = NULL (BIGVARCHAR(n), NVARCHAR(n), ...)
    LongLen,    ///< TEXT/NTEXT/IMAGE: text pointer length (0 = NULL), pointer, timestamp, 4-byte
                ///< length
    Variant,    ///< SSVARIANT: 4-byte length (0 = NULL), base type, property bytes, data
    Plp,        ///< partially length-prefixed: 8-byte total length, chunks, 4-byte 0 terminator
};

/// Where a TYPE_INFO is read: UDT metadata differs between COLMETADATA and RPC parameters.
enum class TypeContext : std::uint8_t { Metadata, Rpc };

/// One decoded TYPE_INFO. Names only; never any value bytes.
struct TypeInfo {
    std::uint8_t type = 0;  ///< TDS type byte, e.g. 0xE7 NVARCHAR
    ValueKind kind = ValueKind::Fixed;
    /// Fixed: value size. ByteLen/UShortLen/LongLen/Variant: declared maximum length in bytes
    /// (0xFFFF for the max types, which are then Plp). Plp: 0xFFFF (or the UDT max byte size).
    std::uint32_t max_length = 0;
    std::uint8_t precision = 0;  ///< DECIMALN/NUMERICN
    std::uint8_t scale = 0;      ///< DECIMALN/NUMERICN, TIMEN, DATETIME2N, DATETIMEOFFSETN
    bool has_collation = false;
    std::array<std::uint8_t, 5> collation{};
    std::string xml_schema;    ///< XML with schema: "db.owner.collection"
    std::string udt_name;      ///< UDT or table-valued parameter type: "db.schema.type"
    std::string udt_assembly;  ///< UDT in metadata: assembly-qualified name
};

/// Reads one TYPE_INFO. Returns Consumed (reader advanced past it), NeedMore (the reader ran out;
/// its position is then unspecified) or Malformed (offsets relative to the reader).
DecodeResult parse_type_info(ByteReader& r, TypeContext ctx, TypeInfo& out);

/// Skips one complete value of type `ti` (all of it must be in the reader). NeedMore if the
/// reader ran out, Malformed on an impossible length. `is_null` says whether it was NULL.
DecodeResult skip_value(ByteReader& r, const TypeInfo& ti, bool* is_null = nullptr);

/// SQL name of a TDS type byte ("int", "nvarchar", "datetime2", ...); "unknown" if not a type.
const char* type_name(std::uint8_t type);

/// True if a ByteLen value of this type may have length `len` (e.g. INTN: 0, 1, 2, 4, 8).
bool valid_bytelen_value(const TypeInfo& ti, std::uint32_t len);

}  // namespace hopscope::tds
