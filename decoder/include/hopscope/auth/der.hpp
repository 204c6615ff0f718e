// A small strict DER reader (ITU-T X.690 §8 and §10) for the ASN.1 found in GSS-API, SPNEGO and
// Kerberos tokens.
//
// Strictness: definite lengths only (the indefinite form 0x80 is BER, never DER: X.690 §10.1),
// length in the minimal number of octets (§10.1), at most 4 length octets, multi-byte tag numbers
// in minimal base-128 form (§8.1.2.4), a nesting limit, and every TLV must fit in its container.
// All offsets in errors are relative to the start of the buffer the first reader was built on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::auth::der {

enum class TagClass : std::uint8_t { Universal = 0, Application = 1, Context = 2, Private = 3 };

/// Universal tag numbers used here (X.680 §8.4).
namespace tag {
inline constexpr std::uint32_t Boolean = 1;
inline constexpr std::uint32_t Integer = 2;
inline constexpr std::uint32_t BitString = 3;
inline constexpr std::uint32_t OctetString = 4;
inline constexpr std::uint32_t Null = 5;
inline constexpr std::uint32_t Oid = 6;
inline constexpr std::uint32_t Enumerated = 10;
inline constexpr std::uint32_t Utf8String = 12;
inline constexpr std::uint32_t Sequence = 16;
inline constexpr std::uint32_t Set = 17;
inline constexpr std::uint32_t PrintableString = 19;
inline constexpr std::uint32_t Ia5String = 22;
inline constexpr std::uint32_t GeneralizedTime = 24;
inline constexpr std::uint32_t GeneralString = 27;
}  // namespace tag

inline constexpr unsigned kMaxDepth = 32;

/// How length octets are checked. `Der` rejects a long form that could be shorter (X.690
/// §10.1). `BerDefinite` accepts it (X.690 §8.1.3.5 allows it in BER): some real senders write
/// `06 82 00 06` (seen in an SMB1 SPNEGO token), and tshark reads those tokens, so the protocol
/// decoders use it. Indefinite lengths are rejected by both.
enum class LengthRule : std::uint8_t { Der, BerDefinite };

/// One decoded tag-length-value.
struct Tlv {
    TagClass cls = TagClass::Universal;
    bool constructed = false;
    std::uint32_t number = 0;
    Bytes value{};                      ///< the contents octets (a view into the input)
    std::size_t offset = 0;             ///< absolute offset of the identifier octet
    std::size_t header = 0;             ///< identifier + length octets
    unsigned depth = 0;                 ///< nesting depth of the reader that produced it
    LengthRule rule = LengthRule::Der;  ///< inherited by readers entering this TLV

    [[nodiscard]] std::size_t total() const { return header + value.size(); }
    [[nodiscard]] bool is(TagClass c, std::uint32_t n) const { return cls == c && number == n; }
    [[nodiscard]] bool is_universal(std::uint32_t n) const { return is(TagClass::Universal, n); }
    [[nodiscard]] bool is_context(std::uint32_t n) const { return is(TagClass::Context, n); }
    [[nodiscard]] bool is_application(std::uint32_t n) const {
        return is(TagClass::Application, n);
    }
};

/// Reads consecutive TLVs from a span. Never reads outside it.
class Reader {
  public:
    Reader() = default;
    /// `base` is the absolute offset of data[0] (for error offsets), `depth` the nesting level.
    explicit Reader(Bytes data, std::size_t base = 0, unsigned depth = 0,
                    LengthRule rule = LengthRule::Der)
        : r_(data), base_(base), depth_(depth), rule_(rule) {}

    [[nodiscard]] bool at_end() const { return r_.empty(); }
    [[nodiscard]] std::size_t offset() const { return base_ + r_.position(); }
    [[nodiscard]] unsigned depth() const { return depth_; }
    [[nodiscard]] LengthRule rule() const { return rule_; }

    /// Reads the next TLV. On error the reader is left unchanged.
    [[gnu::always_inline]] DecodeResult next(Tlv& out) {
        // Inline for the usual element, a one-octet tag below 31 and a short length that fits:
        // the same result as next_general() for those octets, without a call (a Kerberos message
        // is some 70 elements; callgrind counted about 80 instructions each in the call).
        // The same for the minimal one- and two-octet long forms (81 xx with xx >= 0x80, 82 xx xx
        // with a first octet not 0): tickets, authenticators and their cipher texts, some 220 000
        // calls on 40 MB of login-dense traffic. Forced inline: GCC kept it a call, 1.2 M of them
        // there (inlined: 956.5 M -> 944.8 M instructions for the whole run).
        const Bytes rest = r_.rest();
        std::size_t header = 0;
        std::size_t len = 0;
        if (!usual_header(rest, header, len)) return next_general(out);
        fill(out, rest, header, len, offset(), depth_, rule_);
        (void)r_.skip(header + len);
        return {};
    }
    /// The usual element at the start of `rest`: a one-octet tag below 31, a short length or a
    /// minimal one- or two-octet long form, contents within `rest`. False for anything else
    /// (next_general() decides those, errors included).
    [[gnu::always_inline]] static bool usual_header(Bytes rest, std::size_t& header,
                                                    std::size_t& len) {
        if (rest.size() < 2 || (rest[0] & 0x1f) == 0x1f) return false;
        header = 2;
        len = rest[1];
        if (len >= 0x80) {
            if (len == 0x81 && rest.size() >= 3 && rest[2] >= 0x80) {
                header = 3;
                len = rest[2];
            } else if (len == 0x82 && rest.size() >= 4 && rest[2] != 0) {
                header = 4;
                len = std::size_t{rest[2]} << 8 | rest[3];
            } else {
                return false;
            }
        }
        return len <= rest.size() - header;
    }
    /// `out` for the usual element read by usual_header() at `offset`.
    [[gnu::always_inline]] static void fill(Tlv& out, Bytes rest, std::size_t header,
                                            std::size_t len, std::size_t offset, unsigned depth,
                                            LengthRule rule) {
        // The identifier read once: `out` may, for all the compiler knows, overlap the bytes
        // (they are unsigned char), so each use of rest[0] after a store was a load again.
        const std::uint8_t id = rest[0];
        out.cls = static_cast<TagClass>(id >> 6);
        out.constructed = (id & 0x20) != 0;
        out.number = id & 0x1fu;
        out.value = rest.subspan(header, len);
        out.offset = offset;
        out.header = header;
        out.depth = depth;
        out.rule = rule;
    }
    /// Reads the next TLV and checks its class, number and constructed bit.
    DecodeResult expect(Tlv& out, TagClass cls, std::uint32_t number, bool constructed);
    /// Decodes the next identifier without consuming anything (false at end / on a bad tag).
    bool peek(Tlv& out) const;

    /// A reader over a constructed TLV's contents, one level deeper; TooDeep over kMaxDepth.
    static DecodeResult enter(const Tlv& t, Reader& out) {
        if (!t.constructed || t.depth + 1 > kMaxDepth) return enter_error(t);
        out = Reader(t.value, t.offset + t.header, t.depth + 1, t.rule);
        return {};
    }

  private:
    DecodeResult next_general(Tlv& out);
    static DecodeResult enter_error(const Tlv& t);

    ByteReader r_;
    std::size_t base_ = 0;
    unsigned depth_ = 0;
    LengthRule rule_ = LengthRule::Der;
};

/// Reads a context tag [n] that wraps exactly one inner TLV (EXPLICIT tagging, as used by
/// Kerberos and SPNEGO), returning the inner TLV.
namespace detail {
// The errors of the inline readers below, out of line: their text is not built on the way.
DecodeResult trailing_bytes(std::size_t offset);
/// `wrapper` is not a constructed context tag, or its number is not above the last field's.
DecodeResult bad_field(const Tlv& wrapper);
}  // namespace detail

namespace detail {
/// explicit_inner() for the other wrappers (errors included), out of line.
DecodeResult explicit_inner_general(const Tlv& wrapper, Tlv& inner);
}  // namespace detail

[[gnu::always_inline]] inline DecodeResult explicit_inner(const Tlv& wrapper, Tlv& inner) {
    // Inline for a wrapper that holds exactly one usual element (Reader::next's fast path): the
    // same result as entering it with a reader, without one and without a call (callgrind
    // counted some 75 instructions a call, 620 000 calls on 40 MB of login-dense traffic).
    const Bytes v = wrapper.value;
    std::size_t header = 0;
    std::size_t len = 0;
    if (wrapper.constructed && wrapper.depth + 1 <= kMaxDepth &&
        Reader::usual_header(v, header, len) && header + len == v.size()) {
        Reader::fill(inner, v, header, len, wrapper.offset + wrapper.header, wrapper.depth + 1,
                     wrapper.rule);
        return {};
    }
    return detail::explicit_inner_general(wrapper, inner);
}

/// Reads the EXPLICIT context-tagged fields [n] of a SEQUENCE's contents: each must be a
/// constructed context tag wrapping exactly one TLV, in strictly increasing tag order (X.680
/// §25: the components of a SEQUENCE come in the order of their definition).
class FieldReader {
  public:
    /// A reader over the contents of constructed `t` (no check of its own tag).
    static DecodeResult enter(const Tlv& t, FieldReader& out) {
        out.last_ = -1;
        return Reader::enter(t, out.r_);
    }
    [[nodiscard]] bool at_end() const { return r_.at_end(); }
    /// Reads the next field: its [n] `wrapper` and the `inner` TLV it wraps.
    DecodeResult next(Tlv& wrapper, Tlv& inner) {
        if (auto e = r_.next(wrapper); !e.ok()) return e;
        if (wrapper.cls != TagClass::Context || !wrapper.constructed ||
            static_cast<std::int64_t>(wrapper.number) <= last_) {
            return detail::bad_field(wrapper);
        }
        last_ = wrapper.number;
        return explicit_inner(wrapper, inner);
    }

  private:
    Reader r_;
    std::int64_t last_ = -1;
};

/// Calls `fn(wrapper, inner)` (returning DecodeResult) for each EXPLICIT [n] field of constructed
/// `t`, in order; stops at the first error, from the fields or from `fn`.
template <typename Fn>
DecodeResult for_each_field(const Tlv& t, Fn&& fn) {
    FieldReader f;
    if (auto e = FieldReader::enter(t, f); !e.ok()) return e;
    // Made once, not per field: each successful next() writes every member of both (callgrind
    // on 40 MB of login-dense traffic: 953.2 M -> 949.7 M instructions for the whole run).
    Tlv wrapper, inner;
    while (!f.at_end()) {
        if (auto e = f.next(wrapper, inner); !e.ok()) return e;
        if (auto e = fn(wrapper, inner); !e.ok()) return e;
    }
    return {};
}

/// Calls `fn(item)` (returning DecodeResult) for each TLV inside constructed `t` (the elements
/// of a SEQUENCE OF); stops at the first error, from the reader or from `fn`. Size caps are the
/// caller's: `fn` sees every element before anything is kept.
template <typename Fn>
DecodeResult for_each_element(const Tlv& t, Fn&& fn) {
    Reader r;
    if (auto e = Reader::enter(t, r); !e.ok()) return e;
    Tlv item;  // made once: each successful next() writes all of it
    while (!r.at_end()) {
        if (auto e = r.next(item); !e.ok()) return e;
        if (auto e = fn(item); !e.ok()) return e;
    }
    return {};
}

// Typed value helpers. Each checks the universal tag of `t` and the DER rules for the type.
DecodeResult as_integer(const Tlv& t, std::int64_t& out);  ///< X.690 §8.3, up to 8 octets
namespace detail {
DecodeResult as_int32_general(const Tlv& t, std::int32_t& out);
}  // namespace detail
/// Kerberos Int32. Inline for a primitive INTEGER of one to four minimal octets (each one fits:
/// msg-types, etypes, name types, PA-DATA types, error codes; callgrind counted three calls
/// and ~60 instructions for each of some 200 000 of them on 40 MB of login-dense traffic); the
/// rest, errors included, as_integer's way.
inline DecodeResult as_int32(const Tlv& t, std::int32_t& out) {
    const Bytes v = t.value;
    if (t.cls == TagClass::Universal && t.number == tag::Integer && !t.constructed && !v.empty() &&
        v.size() <= 4 &&
        (v.size() == 1 ||
         !((v[0] == 0x00 && (v[1] & 0x80) == 0) || (v[0] == 0xff && (v[1] & 0x80) != 0)))) {
        std::uint32_t u = (v[0] & 0x80) != 0 ? ~std::uint32_t{0} : 0;
        for (const std::uint8_t b : v)
            u = (u << 8) | b;
        out = static_cast<std::int32_t>(u);
        return {};
    }
    return detail::as_int32_general(t, out);
}
DecodeResult as_uint32(const Tlv& t, std::uint32_t& out);     ///< Kerberos UInt32
DecodeResult as_enumerated(const Tlv& t, std::int64_t& out);  ///< X.690 §8.4
DecodeResult as_boolean(const Tlv& t, bool& out);             ///< X.690 §11.1 (00 / FF)
DecodeResult as_octet_string(const Tlv& t, Bytes& out);       ///< primitive only (DER)
/// BIT STRING (X.690 §8.6): `bits` holds up to the first 32 bits, MSB = bit 0 (the Kerberos and
/// SPNEGO flag convention), `bit_count` the number of meaningful bits.
DecodeResult as_bit_string(const Tlv& t, std::uint32_t& bits, std::size_t& bit_count);
/// GeneralString / KerberosString (RFC 4120 §5.2.1): bytes taken as text (IA5 in practice).
/// Also accepts UTF8String, IA5String and PrintableString.
DecodeResult as_string(const Tlv& t, std::string& out);
/// The same check, the text as a view into the input (valid while it lives).
DecodeResult as_string_view(const Tlv& t, std::string_view& out);
/// KerberosTime (RFC 4120 §5.2.3): GeneralizedTime "YYYYMMDDHHMMSSZ", returned as written.
DecodeResult as_kerberos_time(const Tlv& t, std::string& out);
/// OBJECT IDENTIFIER (X.690 §8.19): content octets, validated.
DecodeResult as_oid(const Tlv& t, Bytes& content);

/// Dotted form of OID content octets, e.g. "1.2.840.113554.1.2.2"; empty if invalid.
std::string oid_to_dotted(Bytes content);
/// Checks OID content octets: non-empty, minimal base-128 arcs, no arc over 64 bits.
bool oid_valid(Bytes content);

}  // namespace hopscope::auth::der
