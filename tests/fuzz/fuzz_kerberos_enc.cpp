// Fuzz target: the decrypted parts of Kerberos messages (EncTicketPart, Authenticator with its
// GSS checksum, EncKrbCredPart, EncKDCRepPart, the PAC), each parser on the same input, and
// decrypt_ap_req's steps over an AP-REQ whose "decryption" returns the cipher text as it is (and
// decrypt_kdc_rep's, decrypt_ticket's over a KDC reply's ticket and a TGS-REQ's additional ones).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "hopscope/auth/kerberos_enc.hpp"
#include "hopscope/auth/kerberos_keys.hpp"

namespace {

using namespace hopscope::auth;

/// Plaintext = cipher text: the fuzzer's bytes stand where decrypted bytes would be.
struct ClearKeys : KerberosKeys {
    KeyStatus decrypt(const KeyName&, std::int32_t, hopscope::Bytes cipher,
                      SecretBuffer& plain) const override {
        std::copy(cipher.begin(), cipher.end(), plain.reset(cipher.size()));
        return KeyStatus::Ok;
    }
    KeyStatus decrypt(const KeyBlock&, std::int32_t, hopscope::Bytes cipher,
                      SecretBuffer& plain) const override {
        std::copy(cipher.begin(), cipher.end(), plain.reset(cipher.size()));
        return KeyStatus::Ok;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const hopscope::Bytes in(data, size);
    EncTicketPart t;
    if (parse_enc_ticket_part(in, t).ok()) (void)to_string(t);
    Authenticator a;
    if (parse_authenticator(in, a).ok()) (void)to_string(a);
    EncKrbCredPart c;
    if (parse_enc_krb_cred_part(in, c).ok()) (void)to_string(c);
    EncKdcRepPart r;
    if (parse_enc_kdc_rep_part(in, r).ok()) (void)to_string(r);
    GssChecksum g;
    (void)parse_gss_checksum(in, g);
    PacInfo p;
    (void)parse_pac(in, p);

    KerberosMessage m;
    if (parse_kerberos(in, m).ok()) {
        const ClearKeys keys;
        if (const auto* ap = std::get_if<ApReq>(&m.body))
            (void)to_string(decrypt_ap_req(*ap, keys));
        if (const auto* rep = std::get_if<KdcRep>(&m.body)) {
            (void)to_string(decrypt_kdc_rep(*rep, keys, &t.key, a.subkey ? &*a.subkey : nullptr));
            (void)to_string(decrypt_ticket(rep->ticket, keys, "reply ticket"));
        }
        // The port-88 tickets: S4U2Proxy's evidence ticket (an additional ticket).
        if (const auto* req = std::get_if<KdcReq>(&m.body))
            for (const auto& extra : req->additional_tickets)
                (void)to_string(decrypt_ticket(extra, keys, "evidence ticket"));
    }
    return 0;
}
