// Real tokens, damaged: every proper prefix and single-byte corruption of the public and lab
// Kerberos/SPNEGO/NTLM tokens must decode to a typed error or a valid result, never crash (run
// under ASan/UBSan), and a cut DER token must never be accepted as complete.
#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "hopscope/auth/kerberos.hpp"
#include "hopscope/auth/ntlm.hpp"
#include "hopscope/auth/spnego.hpp"
#include "hopscope/auth/sspi.hpp"

namespace hopscope::auth {
namespace {

std::vector<test::Record> sample(const char* file, std::size_t every) {
    std::vector<test::Record> out;
    const auto all = test::load_records(file);
    for (std::size_t i = 0; i < all.size(); i += every)
        out.push_back(all[i]);
    return out;
}

TEST(Hostile, TruncatedDerTokensAreAlwaysErrors) {
    int cases = 0;
    for (const char* file : {"krb_tshark.txt", "gss_tshark.txt"}) {
        for (const auto& r : sample(file, 5)) {
            const bool tcp = r.get("transport") == "tcp";
            const Bytes all = tcp ? Bytes(r.bytes).subspan(4) : Bytes(r.bytes);
            for (std::size_t n = 0; n < all.size(); n += 1 + n / 64) {
                const Bytes cut = all.first(n);
                Krb5GssToken k;
                SpnegoToken s;
                const DecodeResult e =
                    r.kind == "krb" ? parse_krb5_token(cut, k) : parse_spnego(cut, s);
                ASSERT_FALSE(e.ok()) << r.where() << " accepted a " << n << "-byte prefix";
                EXPECT_NE(e.error().code, DecodeError::Code::None);
                EXPECT_LE(e.error().offset, all.size()) << r.where();
                ++cases;
            }
        }
    }
    EXPECT_GT(cases, 2000);
}

TEST(Hostile, CorruptedTokensNeverCrash) {
    int decoded = 0, rejected = 0;
    for (const char* file :
         {"krb_tshark.txt", "gss_tshark.txt", "ntlm_tshark.txt", "lab_sspi.txt"}) {
        for (const auto& r : sample(file, 7)) {
            std::vector<std::uint8_t> b = r.bytes;
            for (std::size_t i = 0; i < b.size(); i += 1 + b.size() / 40) {
                for (std::uint8_t x : {0x01, 0x80, 0xff}) {
                    b[i] ^= x;
                    const SspiInfo s = classify_sspi(Bytes(b));
                    (void)to_string(s);
                    KerberosMessage m;
                    if (parse_kerberos(Bytes(b), m).ok()) (void)to_string(m);
                    NtlmMessage n;
                    if (parse_ntlm(Bytes(b), n).ok()) (void)to_string(n);
                    (!s.decoded.ok() ? rejected : decoded)++;
                    b[i] ^= x;
                }
            }
        }
    }
    EXPECT_GT(rejected, 100);
    EXPECT_GT(decoded, 100) << "flips in names or cipher text still decode";
}

}  // namespace
}  // namespace hopscope::auth
