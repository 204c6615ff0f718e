// Length-prefixed UCS-2LE strings of the TDS wire [MS-TDS 2.2.5.1.3 B_VARCHAR, US_VARCHAR].
//
// B_VARCHAR is a BYTE character count, US_VARCHAR a USHORT character count; either is followed
// by count * 2 bytes of UCS-2LE. Each reader returns false when the bytes at hand end early (the
// count may already be consumed then, as with any ByteReader sequence).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/text.hpp"

namespace hopscope::tds {

/// B_VARCHAR as raw UCS-2LE bytes (a view, no copy).
inline bool read_b_varchar(ByteReader& r, Bytes& out) {
    std::uint8_t n = 0;
    return r.u8(n) && r.bytes(std::size_t{n} * 2, out);
}

/// US_VARCHAR as raw UCS-2LE bytes (a view, no copy).
inline bool read_us_varchar(ByteReader& r, Bytes& out) {
    std::uint16_t n = 0;
    return r.u16le(n) && r.bytes(std::size_t{n} * 2, out);
}

/// B_VARCHAR converted to UTF-8.
inline bool read_b_varchar(ByteReader& r, std::string& out) {
    Bytes b;
    if (!read_b_varchar(r, b)) return false;
    out = utf16le_to_utf8(b);
    return true;
}

/// US_VARCHAR converted to UTF-8.
inline bool read_us_varchar(ByteReader& r, std::string& out) {
    Bytes b;
    if (!read_us_varchar(r, b)) return false;
    out = utf16le_to_utf8(b);
    return true;
}

}  // namespace hopscope::tds
