// TLS termination for TDS (--tls-terminate): the proxy is the TLS server on the client leg and a
// TLS client on the upstream leg, so it reads the logins that travel inside TLS.
//
// TDS carries TLS its own way [MS-TDS 2.2.6.5, 3.2.5.3]: after a clear PRELOGIN exchange, TDS 7.x
// tunnels the TLS handshake in PRELOGIN (0x12) packets and then switches to raw TLS records:
// for the whole connection (ENCRYPT_ON/REQ), or for the first LOGIN7 packet only (both sides
// ENCRYPT_OFF), clear TDS resuming after it. TDS 8.0 "strict" starts with a raw TLS handshake
// (ALPN tds/8.0) and carries everything, PRELOGIN included, inside TLS.
//
// The proxy relays the PRELOGIN exchange unchanged, so each leg negotiates exactly what its own
// peer asked for: the client and the upstream see each other's ENCRYPTION values, and neither leg
// ever gets less protection than the client asked for and the server offered. A login is never
// turned from encrypted into clear: what one leg carried inside TLS, the other carries inside TLS.
//
// TlsTerminator is the state machine of one connection without I/O (OpenSSL over memory BIOs):
// the caller feeds what it read from either socket and writes out what the terminator queued for
// each side. It runs on the connection's I/O thread only. Memory is bounded per connection (one
// partial TDS packet or TLS record per direction, what one leg produced before the other leg's
// handshake finished, capped), and every malformed or hostile input ends that connection with a
// reason, never the process.
//
// OpenSSL does the TLS (hand-written TLS would be a liability); the TDS framing around it is the
// product's own and small.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/flow.hpp"
#include "hopscope/proxy/config.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace hopscope::proxy {

/// The OpenSSL contexts of a terminating proxy, made once at start and shared by every
/// connection (an SSL_CTX is safe to share once set up).
class TlsContexts {
  public:
    /// `names`: the upstreams' host names (the self-signed certificate's subject and alternative
    /// names). nullptr with `err` when a file cannot be read or a key does not match.
    static std::unique_ptr<TlsContexts> make(const TlsOptions& options,
                                             const std::vector<std::string>& names,
                                             std::string& err);
    ~TlsContexts();
    TlsContexts(const TlsContexts&) = delete;
    TlsContexts& operator=(const TlsContexts&) = delete;

    [[nodiscard]] SSL_CTX* server() const { return server_; }
    [[nodiscard]] SSL_CTX* client() const { return client_; }
    [[nodiscard]] bool verify_upstream() const { return verify_; }
    [[nodiscard]] bool self_signed() const { return self_signed_; }
    /// SHA-256 of the certificate shown to clients, as AA:BB:...
    [[nodiscard]] const std::string& fingerprint() const { return fingerprint_; }
    /// Its subject (one line).
    [[nodiscard]] const std::string& subject() const { return subject_; }
    /// Appends one NSS key log line to --tls-keylog (any thread).
    void write_keylog(const char* line) const;

  private:
    TlsContexts() = default;
    SSL_CTX* server_ = nullptr;
    SSL_CTX* client_ = nullptr;
    bool verify_ = false;
    bool self_signed_ = false;
    std::string fingerprint_;
    std::string subject_;
    struct KeylogFile;
    std::unique_ptr<KeylogFile> keylog_;
};

class TlsTerminator {
  public:
    /// What the terminator saw, for the analysis and the recording. Called synchronously from
    /// the feeding calls, in wire order per direction.
    struct Observer {
        virtual ~Observer() = default;
        /// Bytes of the client leg, as they travel on it (client -> proxy, or proxy -> client).
        /// `clear`: TDS or the TLS handshake (what a decoder reads as it is); otherwise TLS
        /// records of application data, whose content comes through plaintext().
        virtual void client_leg(Direction dir, Bytes wire, bool clear) = 0;
        /// What TLS application data carried on the client leg, in order (a TDS byte stream).
        /// `wire_offset`: where on the client leg, in `dir`, its record starts.
        virtual void plaintext(Direction dir, Bytes plain, std::uint64_t wire_offset) = 0;
        /// Bytes of the upstream leg (proxy -> upstream, or upstream -> proxy).
        virtual void upstream_leg(Direction dir, Bytes wire) = 0;
        /// A session secret of either leg, one NSS key log line without its newline.
        virtual void secret(std::string_view line) = 0;
    };

    enum class Mode : std::uint8_t {
        Undecided,    ///< PRELOGIN not yet answered
        Passthrough,  ///< no TLS negotiated, or not TDS: bytes go through unchanged
        LoginOnly,    ///< TLS for the first LOGIN7 packet, then clear TDS
        Full,         ///< TLS for the whole connection
        Strict,       ///< TDS 8.0: TLS from the first byte
    };

    /// `upstream_name`: the upstream's host name (explicit routes) or empty; with the client's
    /// SNI it names the upstream in the TLS handshake and in certificate verification.
    TlsTerminator(const TlsContexts& contexts, std::string upstream_name, Observer& observer);
    ~TlsTerminator();
    TlsTerminator(const TlsTerminator&) = delete;
    TlsTerminator& operator=(const TlsTerminator&) = delete;

    /// Bytes read from the client / from the upstream. False when the connection must end;
    /// error() says why (and what was queued until then may still be written).
    bool from_client(Bytes in);
    bool from_upstream(Bytes in);
    /// The client / upstream closed its sending side: what it sent that never became a unit
    /// before the PRELOGIN exchange was decided is passed on as it is.
    void client_closed();
    void upstream_closed();

    /// Bytes to write to the client / to the upstream, in order. The caller takes them (swap
    /// with an empty vector, or clear after writing).
    std::vector<std::uint8_t>& to_client() { return out_[1]; }
    std::vector<std::uint8_t>& to_upstream() { return out_[0]; }

    [[nodiscard]] Mode mode() const { return mode_; }
    [[nodiscard]] const std::string& error() const { return error_; }
    /// "TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384" of a leg once its handshake is done, else "".
    [[nodiscard]] std::string client_session() const;
    [[nodiscard]] std::string upstream_session() const;
    /// Bytes held now (input remainders, queued plaintext), for the memory bound.
    [[nodiscard]] std::size_t buffered() const;

    /// Most bytes one leg may hold for the other before its handshake is done.
    static constexpr std::size_t kMaxHeld = 1 << 20;
    /// Largest TDS packet accepted around the TLS handshake (TDS allows 32 767).
    static constexpr std::size_t kMaxPacket = 32767;
    /// Size of the PRELOGIN packets the proxy wraps its handshake flights in.
    static constexpr std::size_t kWrapPacket = 4096;

    struct Impl;

  private:
    const TlsContexts& ctx_;
    std::string upstream_name_;
    Observer& obs_;
    Mode mode_ = Mode::Undecided;
    std::string error_;
    std::vector<std::uint8_t> out_[2];  ///< [0] to upstream, [1] to client
    std::unique_ptr<Impl> impl_;
    friend struct Impl;
};

const char* to_string(TlsTerminator::Mode m);

}  // namespace hopscope::proxy
