// TLS session secrets in the NSS key log format (the SSLKEYLOGFILE format written by NSS, OpenSSL's
// SSL_CTX_set_keylog_callback, GnuTLS, node's 'keylog' event; read by Wireshark):
//
//   # comment
//   CLIENT_RANDOM <client random, 64 hex> <master secret, 96 hex>                  (TLS 1.2)
//   CLIENT_HANDSHAKE_TRAFFIC_SECRET <client random> <secret, 64 or 96 hex>          (TLS 1.3)
//   SERVER_HANDSHAKE_TRAFFIC_SECRET, CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0  (same form)
//
// Other labels (EXPORTER_SECRET, CLIENT_EARLY_TRAFFIC_SECRET, RSA, ...) are skipped and counted.
// Pure: the caller reads the file and passes its text. A secret is never printed: KeyLogError
// messages name the label, the field and the line, never the bytes, and Secret has no text form.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/tls/tls.hpp"

namespace hopscope::tls {

/// Secret bytes (up to 48: a TLS 1.2 master secret or a SHA-384 traffic secret), wiped when
/// destroyed. Deliberately without a printable form.
class Secret {
  public:
    static constexpr std::size_t kMaxSize = 48;
    Secret() = default;
    explicit Secret(Bytes b);
    Secret(const Secret& o) = default;
    Secret& operator=(const Secret& o) = default;
    ~Secret();

    [[nodiscard]] Bytes bytes() const { return Bytes(b_.data(), n_); }
    [[nodiscard]] std::size_t size() const { return n_; }
    [[nodiscard]] bool empty() const { return n_ == 0; }
    [[nodiscard]] bool operator==(const Secret& o) const;

  private:
    std::array<std::uint8_t, kMaxSize> b_{};
    std::size_t n_ = 0;
};

/// What a key log holds for one TLS session (named by its ClientHello random).
struct SessionSecrets {
    Secret master;            ///< TLS 1.2: CLIENT_RANDOM
    Secret client_handshake;  ///< TLS 1.3: CLIENT_HANDSHAKE_TRAFFIC_SECRET
    Secret server_handshake;  ///< SERVER_HANDSHAKE_TRAFFIC_SECRET
    Secret client_traffic;    ///< CLIENT_TRAFFIC_SECRET_0
    Secret server_traffic;    ///< SERVER_TRAFFIC_SECRET_0
};

/// Where a decrypting conversation looks up the secrets of a session. The key log file is one;
/// a front-end that logs the secrets of its own TLS connections (the proxy) can be another.
class KeySource {
  public:
    virtual ~KeySource() = default;
    /// The secrets of the session whose ClientHello carried `client_random`, or nullptr. The
    /// pointer is used during the call that asked for it only.
    [[nodiscard]] virtual const SessionSecrets* find(const Random& client_random) const = 0;
};

/// A bad line of a key log: 1-based line number and what is wrong (never the secret).
struct KeyLogError {
    std::size_t line = 0;
    std::string message;
};

/// The sessions of one or more key logs. Not thread-safe: add everything, then look up (or
/// guard both with one lock).
class KeyLog final : public KeySource {
  public:
    /// Adds every line of `text`. Bad lines (wrong field count, bad hex, wrong lengths, a second
    /// different secret for the same session and label) are returned, the good ones kept.
    std::vector<KeyLogError> add_text(std::string_view text);
    /// One line without its newline (what OpenSSL's keylog callback hands over). True when it
    /// was used or skipped (comment, blank, other label); false with `why` when it is bad.
    bool add_line(std::string_view line, std::string* why = nullptr);

    [[nodiscard]] const SessionSecrets* find(const Random& client_random) const override;
    [[nodiscard]] std::size_t sessions() const { return sessions_.size(); }
    /// Lines with a label that is not used for decryption.
    [[nodiscard]] std::size_t skipped_lines() const { return skipped_; }

  private:
    std::map<Random, SessionSecrets> sessions_;
    std::size_t skipped_ = 0;
};

}  // namespace hopscope::tls
