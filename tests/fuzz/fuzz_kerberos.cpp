// Fuzz target: Kerberos messages, GSS krb5 tokens and the TCP record framer (input split at a
// position taken from the first byte, so records straddle feeds).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "hopscope/auth/kerberos.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace hopscope::auth;
    const hopscope::Bytes in(data, size);
    KerberosMessage m;
    if (parse_kerberos(in, m).ok()) (void)to_string(m);
    Krb5GssToken tok;
    if (parse_krb5_token(in, tok).ok()) (void)to_string(tok.message);

    KrbTcpFramer framer(1u << 16);
    std::vector<std::vector<std::uint8_t>> records;
    const std::size_t cut = size ? (data[0] * 7u) % (size + 1) : 0;
    if (framer.feed(in.subspan(0, cut), records).ok()) (void)framer.feed(in.subspan(cut), records);
    for (const auto& r : records) {
        KerberosMessage rm;
        if (parse_kerberos(hopscope::Bytes(r), rm).ok()) (void)to_string(rm);
    }
    return 0;
}
