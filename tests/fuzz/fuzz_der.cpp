// Fuzz target: the DER reader and its typed helpers, under both length rules, recursively.
#include <cstddef>
#include <cstdint>
#include <string>

#include "hopscope/auth/der.hpp"

namespace {

using namespace hopscope::auth::der;

void walk(Reader r, unsigned& budget) {
    while (!r.at_end() && budget > 0) {
        --budget;
        Tlv t;
        if (!r.next(t).ok()) return;
        std::int64_t i = 0;
        std::int32_t i32 = 0;
        std::uint32_t u32 = 0, bits = 0;
        std::size_t nbits = 0;
        bool b = false;
        hopscope::Bytes bytes;
        std::string s;
        (void)as_integer(t, i);
        (void)as_int32(t, i32);
        (void)as_uint32(t, u32);
        (void)as_enumerated(t, i);
        (void)as_boolean(t, b);
        (void)as_octet_string(t, bytes);
        (void)as_bit_string(t, bits, nbits);
        (void)as_string(t, s);
        (void)as_kerberos_time(t, s);
        if (as_oid(t, bytes).ok()) (void)oid_to_dotted(bytes);
        Tlv inner;
        (void)explicit_inner(t, inner);
        Reader child;
        if (t.constructed && Reader::enter(t, child).ok()) walk(child, budget);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const hopscope::Bytes in(data, size);
    unsigned budget = 100000;
    walk(Reader(in), budget);
    budget = 100000;
    walk(Reader(in, 0, 0, LengthRule::BerDefinite), budget);
    (void)oid_to_dotted(in);
    return 0;
}
