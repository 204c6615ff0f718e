// Fuzz target: GSS-API framing, SPNEGO and the SSPI classifier (which decodes inner NTLM and
// Kerberos tokens), including the renderers.
#include <cstddef>
#include <cstdint>

#include "hopscope/auth/gss.hpp"
#include "hopscope/auth/spnego.hpp"
#include "hopscope/auth/sspi.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace hopscope::auth;
    const hopscope::Bytes in(data, size);
    GssInitialToken g;
    (void)parse_gss_initial(in, g);
    SpnegoToken t;
    if (parse_spnego(in, t).ok()) (void)to_string(t);
    const SspiInfo s = classify_sspi(in);
    (void)to_string(s);
    return 0;
}
