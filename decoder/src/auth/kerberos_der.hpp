// Internal to decoder/src/auth: the DER walking shared by the Kerberos message parsers
// (kerberos.cpp) and the parsers of their decrypted parts (kerberos_enc.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "hopscope/auth/der.hpp"
#include "hopscope/auth/kerberos.hpp"

namespace hopscope::auth::krb_der {

using der::Tlv;
using Code = DecodeError::Code;

constexpr std::size_t kMaxList = 256;  // names, etypes, padata, tickets

/// Walks the EXPLICIT [n] fields of a SEQUENCE in increasing tag order, calling
/// `fn(n, inner)` (returning DecodeResult) for each. `seen` gets bit n of every field `fn`
/// accepted (bit 31 for any n over 31), for the caller's check of required fields.
template <typename Fn>
DecodeResult walk_sequence(const Tlv& seq, unsigned& seen, Fn&& fn) {
    if (!seq.is_universal(der::tag::Sequence) || !seq.constructed) {
        return make_error(Code::BadTag, seq.offset, "expected SEQUENCE");
    }
    seen = 0;
    return der::for_each_field(seq, [&](const Tlv& wrapper, const Tlv& inner) -> DecodeResult {
        if (auto e = fn(wrapper.number, inner); !e.ok()) return e;
        seen |= 1u << std::min<std::uint32_t>(wrapper.number, 31);
        return {};
    });
}

/// SEQUENCE OF: `fn(item)` for each element; `not_sequence` is the error detail when `t` is not
/// a SEQUENCE.
template <typename Fn>
DecodeResult walk_sequence_of(const Tlv& t, const char* not_sequence, Fn&& fn) {
    if (!t.is_universal(der::tag::Sequence) || !t.constructed) {
        return make_error(Code::BadTag, t.offset, not_sequence);
    }
    return der::for_each_element(t, fn);
}

/// An OPTIONAL field: `parse(v, value)` into a fresh value, kept in `out` only on success.
template <typename T, typename Parse>
DecodeResult parse_optional(const Tlv& v, std::optional<T>& out, Parse&& parse) {
    T value{};
    if (auto e = parse(v, value); !e.ok()) return e;
    out = std::move(value);
    return {};
}

DecodeResult missing(const Tlv& t, const char* what);
/// [APPLICATION n] wrapping a SEQUENCE.
DecodeResult app_sequence(const Tlv& app, std::uint32_t n, Tlv& seq);
/// PrincipalName (RFC 4120 §5.2.2).
DecodeResult parse_principal(const Tlv& seq, PrincipalName& out);
/// "a|b|c": the names of the bits set in `v`, in the order given.
std::string flag_names(std::uint32_t v,
                       std::initializer_list<std::pair<std::uint32_t, const char*>> names);
std::string flag_names(std::uint32_t v,
                       std::span<const std::pair<std::uint32_t, const char*>> names);

}  // namespace hopscope::auth::krb_der
