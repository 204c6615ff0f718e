// Fuzzes the PRELOGIN parser and the encryption negotiation.
#include <cstdint>

#include "hopscope/tds/prelogin.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    hopscope::tds::Prelogin p;
    const hopscope::DecodeResult res =
        hopscope::tds::parse_prelogin(hopscope::Bytes(data, size), p);
    if (res.ok() && p.encryption) {
        const auto n = hopscope::tds::negotiate_encryption(*p.encryption, size ? data[0] : 0);
        (void)hopscope::tds::to_string(n.mode);
        (void)hopscope::tds::encryption_value_name(*p.encryption);
        if (p.version) (void)p.version->to_string();
    }
    (void)hopscope::tds::looks_like_tls(hopscope::Bytes(data, size));
    return 0;
}
