// A Kerberos keytab file as the decoder's key source (auth::KerberosKeys), for `--keytab`:
// MIT krb5 reads the file (any format it reads: FILE:, the default) once, when it is opened, and
// decrypts with krb5_c_decrypt. The decoder stays free of files and of krb5's context and
// configuration (docs/architecture.md, "Kerberos decryption with a keytab").
//
// Which key decrypts what: the entries of the ticket's service principal (realm included) with the
// ticket's enctype, and its kvno when the ticket names one (an 8-bit kvno of an old keytab entry
// matches the low byte); then, if that principal has no entry at all, every other entry with the
// enctype and kvno (a keytab exported under the service account's name holds the key of each of
// its SPNs). The integrity check of the decryption says which key is right, so trying more
// keys cannot give a wrong plaintext. Key bytes are wiped when the Keytab is destroyed and are
// never in an error text.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hopscope/auth/kerberos_keys.hpp"

namespace hopscope::captures {

class Keytab final : public auth::KerberosKeys {
  public:
    /// Reads every entry of `path`. nullptr, with `error` naming the file and krb5's reason,
    /// when it cannot be read or holds no key.
    static std::unique_ptr<Keytab> load(const std::string& path, std::string& error);
    ~Keytab() override;
    Keytab(const Keytab&) = delete;
    Keytab& operator=(const Keytab&) = delete;

    auth::KeyStatus decrypt(const auth::KeyName& who, std::int32_t usage, Bytes cipher,
                            auth::SecretBuffer& plain) const override;
    auth::KeyStatus decrypt(const auth::KeyBlock& key, std::int32_t usage, Bytes cipher,
                            auth::SecretBuffer& plain) const override;

    /// Number of keys read.
    [[nodiscard]] std::size_t size() const;
    /// Decryptions tried so far (one per key tried on a cipher text).
    [[nodiscard]] std::uint64_t decryptions() const;
    /// "MSSQLSvc/sqla.lab.test:1433@LAB.TEST kvno 2 etype 18" for each key (no key bytes).
    [[nodiscard]] std::vector<std::string> describe() const;

  private:
    struct Impl;
    explicit Keytab(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace hopscope::captures
