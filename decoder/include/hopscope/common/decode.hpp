// Typed decode results shared by every parser.
//
// Parsers never throw on bad input: they return a DecodeStatus, and for Malformed a DecodeError
// that says what was wrong and where. "Where" is an offset inside the unit being parsed (a TDS
// message, an SSPI blob, a Kerberos record); the session layer adds the stream offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hopscope {

enum class DecodeStatus : std::uint8_t {
    Consumed,   ///< bytes were understood and used
    NeedMore,   ///< a prefix of a valid unit: feed more bytes
    Encrypted,  ///< bytes are TLS-protected; shown as such, never guessed at
    NotTds,     ///< the stream does not carry TDS (or not the protocol the parser expects)
    Malformed,  ///< the bytes break the protocol; see DecodeError
};

const char* to_string(DecodeStatus s);

/// Why a unit could not be decoded. `code` is stable and machine-readable; `detail` is for people.
struct DecodeError {
    enum class Code : std::uint16_t {
        None = 0,
        Truncated,    ///< a length field points past the end of its container
        BadLength,    ///< a length is impossible (too small, too large, inconsistent)
        BadValue,     ///< a field holds a value the protocol does not allow
        BadTag,       ///< ASN.1: unexpected tag / class
        TooDeep,      ///< ASN.1 or token nesting over the limit
        TooLarge,     ///< a unit exceeds the configured memory cap
        Unsupported,  ///< valid but not handled (e.g. an unknown token we cannot skip)
        Desync,       ///< framing lost; the stream is being re-synchronised
    };
    Code code = Code::None;
    std::size_t offset = 0;  ///< offset inside the unit being parsed
    std::string detail;      ///< short human text, never containing secret bytes

    [[nodiscard]] explicit operator bool() const { return code != Code::None; }
};

const char* to_string(DecodeError::Code c);

inline DecodeError make_error(DecodeError::Code code, std::size_t offset, std::string detail) {
    return DecodeError{code, offset, std::move(detail)};
}

}  // namespace hopscope
