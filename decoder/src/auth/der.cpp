#include "hopscope/auth/der.hpp"

#include <string>

namespace hopscope::auth::der {
namespace {

using Code = DecodeError::Code;

DecodeResult universal_primitive(const Tlv& t, std::uint32_t number, const char* what) {
    if (!t.is_universal(number) || t.constructed) {
        return make_error(Code::BadTag, t.offset, std::string("expected ") + what);
    }
    return {};
}

// Shared two's-complement decoding for INTEGER and ENUMERATED (X.690 §8.3.2: minimal octets).
DecodeResult twos_complement(const Tlv& t, std::int64_t& out) {
    const Bytes v = t.value;
    if (v.empty()) return make_error(Code::BadLength, t.offset, "empty integer");
    if (v.size() > 8) return make_error(Code::TooLarge, t.offset, "integer over 64 bits");
    if (v.size() > 1 &&
        ((v[0] == 0x00 && (v[1] & 0x80) == 0) || (v[0] == 0xff && (v[1] & 0x80) != 0))) {
        return make_error(Code::BadValue, t.offset, "integer not minimally encoded");
    }
    std::uint64_t u = (v[0] & 0x80) ? ~std::uint64_t{0} : 0;
    for (std::uint8_t b : v)
        u = (u << 8) | b;
    out = static_cast<std::int64_t>(u);
    return {};
}

}  // namespace

bool Reader::peek(Tlv& out) const {
    Reader copy = *this;
    return copy.next(out).ok();
}

DecodeResult Reader::next_general(Tlv& out) {
    ByteReader r = r_;
    const std::size_t start = base_ + r.position();
    std::uint8_t id = 0;
    if (!r.u8(id)) return make_error(Code::Truncated, start, "missing tag");
    Tlv t;
    t.offset = start;
    t.depth = depth_;
    t.rule = rule_;
    t.cls = static_cast<TagClass>(id >> 6);
    t.constructed = (id & 0x20) != 0;
    std::uint32_t number = id & 0x1f;
    if (number == 0x1f) {
        // High tag number form (X.690 §8.1.2.4): base-128, no leading 0x80 octet, fits 28 bits.
        number = 0;
        for (int i = 0;; ++i) {
            std::uint8_t b = 0;
            if (!r.u8(b)) return make_error(Code::Truncated, start, "truncated tag number");
            if (i == 0 && b == 0x80) return make_error(Code::BadTag, start, "non-minimal tag");
            if (i >= 4) return make_error(Code::BadTag, start, "tag number too large");
            number = (number << 7) | (b & 0x7f);
            if ((b & 0x80) == 0) break;
        }
        if (number < 0x1f) return make_error(Code::BadTag, start, "non-minimal tag");
    }
    t.number = number;

    std::uint8_t l0 = 0;
    if (!r.u8(l0)) return make_error(Code::Truncated, start, "missing length");
    std::size_t len = 0;
    if (l0 < 0x80) {
        len = l0;
    } else if (l0 == 0x80) {
        return make_error(Code::BadLength, start, "indefinite length (not DER)");
    } else {
        const unsigned n = l0 & 0x7f;
        if (n > 4) return make_error(Code::TooLarge, start, "length over 4 octets");
        std::uint32_t v = 0;
        for (unsigned i = 0; i < n; ++i) {
            std::uint8_t b = 0;
            if (!r.u8(b)) return make_error(Code::Truncated, start, "truncated length");
            v = (v << 8) | b;
        }
        const bool minimal = v >= 0x80 && (n == 1 || (v >> (8 * (n - 1))) != 0);
        if (!minimal && rule_ == LengthRule::Der) {
            return make_error(Code::BadLength, start, "non-minimal length");
        }
        len = v;
    }
    t.header = r.position() - (start - base_);
    if (!r.bytes(len, t.value)) {
        return make_error(Code::Truncated, start, "value runs past its container");
    }
    r_ = r;
    out = t;
    return {};
}

DecodeResult Reader::expect(Tlv& out, TagClass cls, std::uint32_t number, bool constructed) {
    Tlv t;
    if (auto e = next(t); !e.ok()) return e;
    if (t.cls != cls || t.number != number || t.constructed != constructed) {
        return make_error(Code::BadTag, t.offset, "unexpected tag");
    }
    out = t;
    return {};
}

DecodeResult Reader::enter_error(const Tlv& t) {
    if (!t.constructed) return make_error(Code::BadTag, t.offset, "expected constructed");
    return make_error(Code::TooDeep, t.offset, "nesting too deep");
}

namespace detail {

DecodeResult trailing_bytes(std::size_t offset) {
    return make_error(Code::BadLength, offset, "trailing bytes in tag");
}

DecodeResult explicit_inner_general(const Tlv& wrapper, Tlv& inner) {
    Reader r;
    if (auto e = Reader::enter(wrapper, r); !e.ok()) return e;
    if (auto e = r.next(inner); !e.ok()) return e;
    if (!r.at_end()) return trailing_bytes(r.offset());
    return {};
}

DecodeResult bad_field(const Tlv& wrapper) {
    if (wrapper.cls != TagClass::Context || !wrapper.constructed) {
        return make_error(Code::BadTag, wrapper.offset, "expected a context tag");
    }
    return make_error(Code::BadTag, wrapper.offset, "fields out of order");
}

}  // namespace detail

DecodeResult as_integer(const Tlv& t, std::int64_t& out) {
    if (auto e = universal_primitive(t, tag::Integer, "INTEGER"); !e.ok()) return e;
    return twos_complement(t, out);
}

DecodeResult detail::as_int32_general(const Tlv& t, std::int32_t& out) {
    std::int64_t v = 0;
    if (auto e = as_integer(t, v); !e.ok()) return e;
    if (v < INT32_MIN || v > INT32_MAX) return make_error(Code::BadValue, t.offset, "not Int32");
    out = static_cast<std::int32_t>(v);
    return {};
}

DecodeResult as_uint32(const Tlv& t, std::uint32_t& out) {
    std::int64_t v = 0;
    if (auto e = as_integer(t, v); !e.ok()) return e;
    if (v < 0 || v > UINT32_MAX) return make_error(Code::BadValue, t.offset, "not UInt32");
    out = static_cast<std::uint32_t>(v);
    return {};
}

DecodeResult as_enumerated(const Tlv& t, std::int64_t& out) {
    if (auto e = universal_primitive(t, tag::Enumerated, "ENUMERATED"); !e.ok()) return e;
    return twos_complement(t, out);
}

DecodeResult as_boolean(const Tlv& t, bool& out) {
    if (auto e = universal_primitive(t, tag::Boolean, "BOOLEAN"); !e.ok()) return e;
    if (t.value.size() != 1 || (t.value[0] != 0x00 && t.value[0] != 0xff)) {
        return make_error(Code::BadValue, t.offset, "BOOLEAN must be 00 or FF");
    }
    out = t.value[0] == 0xff;
    return {};
}

DecodeResult as_octet_string(const Tlv& t, Bytes& out) {
    if (auto e = universal_primitive(t, tag::OctetString, "OCTET STRING"); !e.ok()) return e;
    out = t.value;
    return {};
}

DecodeResult as_bit_string(const Tlv& t, std::uint32_t& bits, std::size_t& bit_count) {
    if (auto e = universal_primitive(t, tag::BitString, "BIT STRING"); !e.ok()) return e;
    const Bytes v = t.value;
    if (v.empty()) return make_error(Code::BadLength, t.offset, "empty BIT STRING");
    const std::uint8_t unused = v[0];
    if (unused > 7 || (v.size() == 1 && unused != 0)) {
        return make_error(Code::BadValue, t.offset, "bad unused-bits count");
    }
    bits = 0;
    for (std::size_t i = 1; i < v.size() && i <= 4; ++i) {
        bits |= static_cast<std::uint32_t>(v[i]) << (8 * (4 - i));
    }
    bit_count = (v.size() - 1) * 8 - unused;
    return {};
}

DecodeResult as_string_view(const Tlv& t, std::string_view& out) {
    if (t.cls != TagClass::Universal || t.constructed ||
        (t.number != tag::GeneralString && t.number != tag::Utf8String &&
         t.number != tag::Ia5String && t.number != tag::PrintableString)) {
        return make_error(Code::BadTag, t.offset, "expected a string");
    }
    out = std::string_view(reinterpret_cast<const char*>(t.value.data()), t.value.size());
    return {};
}

DecodeResult as_string(const Tlv& t, std::string& out) {
    std::string_view v;
    if (auto e = as_string_view(t, v); !e.ok()) return e;
    out.assign(v);
    return {};
}

DecodeResult as_kerberos_time(const Tlv& t, std::string& out) {
    if (auto e = universal_primitive(t, tag::GeneralizedTime, "GeneralizedTime"); !e.ok()) return e;
    const Bytes v = t.value;
    bool ok = v.size() == 15 && v[14] == 'Z';
    for (std::size_t i = 0; ok && i < 14; ++i)
        ok = v[i] >= '0' && v[i] <= '9';
    if (!ok) return make_error(Code::BadValue, t.offset, "KerberosTime is not YYYYMMDDHHMMSSZ");
    out.assign(reinterpret_cast<const char*>(v.data()), v.size());
    return {};
}

bool oid_valid(Bytes c) {
    if (c.empty() || (c.back() & 0x80) != 0) return false;
    bool start = true;
    unsigned septets = 0;
    for (std::uint8_t b : c) {
        if (start && b == 0x80) return false;  // non-minimal arc
        ++septets;
        if (septets > 9) return false;  // more than 63 bits
        start = (b & 0x80) == 0;
        if (start) septets = 0;
    }
    return true;
}

std::string oid_to_dotted(Bytes c) {
    if (!oid_valid(c)) return {};
    std::string out;
    std::uint64_t arc = 0;
    bool first = true;
    for (std::uint8_t b : c) {
        arc = (arc << 7) | (b & 0x7f);
        if (b & 0x80) continue;
        if (first) {
            // X.690 §8.19.4: the first subidentifier packs the first two arcs.
            const std::uint64_t a = arc < 40 ? 0 : (arc < 80 ? 1 : 2);
            out += std::to_string(a);
            out += '.';
            out += std::to_string(arc - a * 40);
            first = false;
        } else {
            // Appended piecewise: '"." + to_string()' trips gcc 12's -O3 -Wrestrict false positive.
            out += '.';
            out += std::to_string(arc);
        }
        arc = 0;
    }
    return out;
}

DecodeResult as_oid(const Tlv& t, Bytes& content) {
    if (auto e = universal_primitive(t, tag::Oid, "OBJECT IDENTIFIER"); !e.ok()) return e;
    if (!oid_valid(t.value)) return make_error(Code::BadValue, t.offset, "invalid OID encoding");
    content = t.value;
    return {};
}

}  // namespace hopscope::auth::der
