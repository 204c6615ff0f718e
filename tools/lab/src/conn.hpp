// One TDS connection over a socket, optionally through TLS the way SQL Server does it: the
// handshake travels inside PRELOGIN (0x12) packets, then either everything is TLS (ENCRYPT_ON)
// or only the first LOGIN7 packet is (ENCRYPT_OFF, "login-only").
#pragma once

#include <openssl/ssl.h>

#include <optional>
#include <string>

#include "wire.hpp"

namespace hopscope::lab {

struct Message {
    std::uint8_t type = 0;
    Buffer payload;
};

class Conn {
  public:
    explicit Conn(int fd) : fd_(fd) {}
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    ~Conn();

    /// Reads packets up to EOM (at most 1 MiB in all). nullopt on EOF or a framing error.
    std::optional<Message> read_message(std::string* why);
    bool send(std::uint8_t type, const Buffer& payload);
    void set_packet_size(std::size_t n) { packet_size_ = n; }
    [[nodiscard]] std::size_t packet_size() const { return packet_size_; }

    /// Server side of the TDS 7.x TLS handshake (records wrapped in 0x12 packets).
    bool tls_accept(SSL_CTX* ctx, std::string* why);
    /// Client side of the same handshake (after a PRELOGIN exchange that agreed on TLS).
    bool tls_connect(SSL_CTX* ctx, std::string* why);
    /// The channel binding data of the TLS session, as Extended Protection binds a login to it:
    /// "tls-unique:" + the handshake's first Finished message (RFC 5929; TLS 1.2 and older, the
    /// type SQL Server's drivers use) or, for TLS 1.3, which has no tls-unique,
    /// "tls-exporter:" + 32 bytes exported with the label "EXPORTER-Channel-Binding" (RFC 9266).
    /// Empty without TLS.
    [[nodiscard]] Buffer channel_binding() const;
    /// TDS 8.0 "strict": the TLS handshake comes first, as raw TLS records (no TDS wrapping);
    /// everything after it, PRELOGIN included, is TLS. Call tls_full() afterwards.
    bool tls_accept_direct(SSL_CTX* ctx, std::string* why);
    /// The ALPN protocol the client and server agreed on ("" when none).
    [[nodiscard]] std::string alpn() const;
    /// After tls_accept: every later byte goes through TLS.
    void tls_full() { tls_read_ = tls_write_ = true; }
    /// After tls_accept: only the next packet read is TLS, then plain text both ways.
    void tls_login_only() { tls_read_ = true, tls_one_packet_ = true, tls_write_ = false; }
    [[nodiscard]] int fd() const { return fd_; }

  private:
    bool handshake_wrapped(SSL_CTX* ctx, bool client, std::string* why);
    bool raw_read(std::uint8_t* p, std::size_t n);
    bool raw_write(const std::uint8_t* p, std::size_t n);
    bool feed_record();  // one TLS record from the socket into the read BIO
    bool flush_tls();    // pending TLS output to the socket, unwrapped
    bool io_read(std::uint8_t* p, std::size_t n);
    bool io_write(const std::uint8_t* p, std::size_t n);

    int fd_;
    std::size_t packet_size_ = 4096;
    SSL* ssl_ = nullptr;
    BIO* rbio_ = nullptr;
    BIO* wbio_ = nullptr;
    bool tls_read_ = false, tls_write_ = false, tls_one_packet_ = false;
};

/// TCP connect to host:port (resolved with getaddrinfo, so nss_wrapper applies), from the IPv4
/// address `source` when it is not empty. -1 on failure.
int tcp_connect(const std::string& host, const std::string& port, std::string* why,
                const std::string& source = "");

}  // namespace hopscope::lab
