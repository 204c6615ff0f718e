// `--keytab FILE` (analyze, live, proxy): the service keytabs the pipeline decrypts Kerberos
// logins with, as one key source over every file given.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hopscope/auth/kerberos_keys.hpp"
#include "hopscope/captures/keytab.hpp"

namespace hopscope::cli {

/// The --keytab option's help text, shared by the commands that take it.
extern const char* const kKeytabHelp;

/// Every --keytab file, tried in the order given: the first that decrypts wins; otherwise the
/// most telling failure (a wrong key before another kvno before no key at all).
class KeytabSet final : public auth::KerberosKeys {
  public:
    /// Reads each file; false, with a message on standard error naming the file (never a key),
    /// when one cannot be read or holds no key. `prefix` starts the message ("hopscope").
    bool load(const std::vector<std::string>& paths, const char* prefix);
    [[nodiscard]] bool empty() const { return keytabs_.empty(); }
    /// This set as the pipeline's key source, or nullptr when no file was given.
    [[nodiscard]] const auth::KerberosKeys* keys() const { return empty() ? nullptr : this; }

    auth::KeyStatus decrypt(const auth::KeyName& who, std::int32_t usage, Bytes cipher,
                            auth::SecretBuffer& plain) const override;
    auth::KeyStatus decrypt(const auth::KeyBlock& key, std::int32_t usage, Bytes cipher,
                            auth::SecretBuffer& plain) const override;

  private:
    std::vector<std::unique_ptr<captures::Keytab>> keytabs_;
};

}  // namespace hopscope::cli
