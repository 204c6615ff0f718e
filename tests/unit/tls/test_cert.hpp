// Test helper: a self-signed certificate and its P-256 key, made in memory, for the tests (and
// the fuzz target) that run real OpenSSL sessions.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace hopscope::testing {

struct TestCert {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    explicit TestCert(const char* common_name, long serial = 1) {
        X509_set_version(cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_set_pubkey(cert, key);
        X509_NAME* n = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
        X509_set_issuer_name(cert, n);
        X509_sign(cert, key, EVP_sha256());
    }
    ~TestCert() {
        X509_free(cert);
        EVP_PKEY_free(key);
    }
    TestCert(const TestCert&) = delete;
    TestCert& operator=(const TestCert&) = delete;
};

}  // namespace hopscope::testing
