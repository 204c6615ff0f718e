// Typed decode results shared by every parser.
//
// One way to fail: every parser (and every step of one) returns a DecodeResult. It is explicit
// about success - `if (!r.ok())`, or `r.status()` where NeedMore/Encrypted/NotTds matter - and is
// never read as a bare truth value. A Malformed result carries a DecodeError that says what was
// wrong and where; "where" is an offset inside the unit being parsed (a TDS message, an SSPI
// blob, a Kerberos record), the session layer adds the stream offset. Parsers never throw on bad
// input. What a parser found goes to its out-parameter; callbacks report facts and return
// nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

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
};

const char* to_string(DecodeError::Code c);

/// What a parser returns: ok() (Consumed: the bytes were understood and used), or why not -
/// status() NeedMore, Encrypted, NotTds or Malformed, and for Malformed error(). No conversion to
/// bool, and a result may not be dropped silently.
class [[nodiscard]] DecodeResult {
  public:
    DecodeResult() = default;  ///< ok
    /// Malformed, with what was wrong and where (`return make_error(...)` in a parser).
    DecodeResult(DecodeError e)  // NOLINT(google-explicit-constructor): a failing return
        : status_(DecodeStatus::Malformed), error_(std::make_unique<DecodeError>(std::move(e))) {}
    DecodeResult(const DecodeResult& o)
        : status_(o.status_),
          error_(o.error_ ? std::make_unique<DecodeError>(*o.error_) : nullptr) {}
    DecodeResult& operator=(const DecodeResult& o) {
        if (this != &o) *this = DecodeResult(o);
        return *this;
    }
    DecodeResult(DecodeResult&&) noexcept = default;
    DecodeResult& operator=(DecodeResult&&) noexcept = default;
    ~DecodeResult() = default;

    static DecodeResult need_more() { return DecodeResult(DecodeStatus::NeedMore); }
    static DecodeResult encrypted() { return DecodeResult(DecodeStatus::Encrypted); }
    static DecodeResult not_tds() { return DecodeResult(DecodeStatus::NotTds); }

    [[nodiscard]] bool ok() const { return status_ == DecodeStatus::Consumed; }
    [[nodiscard]] DecodeStatus status() const { return status_; }
    /// Code None unless Malformed.
    [[nodiscard]] const DecodeError& error() const {
        static const DecodeError kNone{};
        return error_ ? *error_ : kNone;
    }

  private:
    explicit DecodeResult(DecodeStatus s) : status_(s) {}

    DecodeStatus status_ = DecodeStatus::Consumed;
    /// Only when Malformed: a result that is fine (nearly all of them: every DER element and
    /// token read returns one) is a status and a null pointer, with no string to make and
    /// destroy (callgrind, login-dense capture: 6 % fewer instructions in the Kerberos parse).
    std::unique_ptr<DecodeError> error_;
};

inline DecodeError make_error(DecodeError::Code code, std::size_t offset, std::string detail) {
    return DecodeError{code, offset, std::move(detail)};
}

}  // namespace hopscope
