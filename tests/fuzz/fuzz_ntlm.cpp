// Fuzz target: NTLM messages and AV_PAIR lists, including the renderer.
#include <cstddef>
#include <cstdint>

#include "hopscope/auth/ntlm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace hopscope::auth;
    const hopscope::Bytes in(data, size);
    NtlmMessage m;
    if (parse_ntlm(in, m).ok()) (void)to_string(m);
    AvPairs av;
    (void)parse_av_pairs(in, 0, av);
    (void)ntlm_flags_to_string(size >= 4 ? hopscope::load_u32le(data) : 0);
    return 0;
}
