#include "keytabs.hpp"

#include <cstdio>

namespace hopscope::cli {
namespace {

/// How much a failed decryption says: a key that did not fit says more than no key.
int weight(auth::KeyStatus s) {
    switch (s) {
        case auth::KeyStatus::Ok:
            return 4;
        case auth::KeyStatus::WrongKey:
            return 3;
        case auth::KeyStatus::OtherKvno:
            return 2;
        case auth::KeyStatus::Unsupported:
            return 1;
        case auth::KeyStatus::NoKey:
            return 0;
    }
    return 0;
}

template <class Key>
auth::KeyStatus first_that_decrypts(const std::vector<std::unique_ptr<captures::Keytab>>& keytabs,
                                    const Key& key, std::int32_t usage, Bytes cipher,
                                    auth::SecretBuffer& plain) {
    auth::KeyStatus best = auth::KeyStatus::NoKey;
    for (const auto& k : keytabs) {
        const auth::KeyStatus s = k->decrypt(key, usage, cipher, plain);
        if (s == auth::KeyStatus::Ok) return s;
        if (weight(s) > weight(best)) best = s;
    }
    return best;
}

}  // namespace

const char* const kKeytabHelp =
    "Kerberos keytab of the SQL Server service accounts (MIT krb5 format, e.g. ktpass or "
    "ktutil output): decrypt the ticket, authenticator and forwarded TGT of each Kerberos login "
    "whose authentication can be read (clear, login-only TLS, a TLS key log, the terminating "
    "proxy) and report its flags, client and delegation as facts (login event "
    "'kerberos_ticket', 'delegation_proof'; a login it cannot decrypt gets 'keytab_problem'), "
    "and on port 88 the evidence ticket of S4U2Proxy requests and the ticket of KDC replies "
    "(kerberos event 'evidence_ticket', 'reply_ticket'). "
    "Repeat for several files. A missing, unreadable or empty keytab stops the run (exit 2). "
    "Keys are never printed; the file is a secret";

bool KeytabSet::load(const std::vector<std::string>& paths, const char* prefix) {
    bool ok = true;
    for (const auto& path : paths) {
        std::string error;
        auto k = captures::Keytab::load(path, error);
        if (!k) {
            std::fprintf(stderr, "%s: --keytab %s\n", prefix, error.c_str());
            ok = false;
            continue;
        }
        keytabs_.push_back(std::move(k));
    }
    return ok;
}

auth::KeyStatus KeytabSet::decrypt(const auth::KeyName& who, std::int32_t usage, Bytes cipher,
                                   auth::SecretBuffer& plain) const {
    return first_that_decrypts(keytabs_, who, usage, cipher, plain);
}

auth::KeyStatus KeytabSet::decrypt(const auth::KeyBlock& key, std::int32_t usage, Bytes cipher,
                                   auth::SecretBuffer& plain) const {
    return first_that_decrypts(keytabs_, key, usage, cipher, plain);
}

}  // namespace hopscope::cli
