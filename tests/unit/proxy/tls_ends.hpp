// Test ends for the TLS terminator (tests/unit/proxy/tls_terminate_test.cpp and
// tests/fuzz/fuzz_tls_terminate.cpp): a TDS client and server with real OpenSSL sessions over
// memory BIOs, speaking TDS's TLS (handshake in PRELOGIN packets, or TDS 8.0 strict), and the
// wiring that moves bytes between them and a TlsTerminator.
#pragma once

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "../tls/test_cert.hpp"
#include "hopscope/proxy/tls_terminate.hpp"

namespace hopscope::proxy::testing {

using Buf = std::vector<std::uint8_t>;

constexpr std::uint8_t kOff = 0x00, kOn = 0x01, kNotSup = 0x02;

/// A PRELOGIN packet: VERSION and ENCRYPTION (MS-TDS 2.2.6.5).
inline Buf prelogin(std::uint8_t type, std::uint8_t enc) {
    const Buf payload = {0x00, 0x00, 0x0B, 0x00, 0x06, 0x01, 0x00, 0x11, 0x00,
                         0x01, 0xFF, 16,   0,    0x07, 0xD0, 0,    0,    enc};
    Buf p = {type, 0x01, 0, static_cast<std::uint8_t>(8 + payload.size()), 0, 0, 1, 0};
    p.insert(p.end(), payload.begin(), payload.end());
    return p;
}

/// A TDS packet of `type` with `body` (EOM).
inline Buf packet(std::uint8_t type, const std::string& body) {
    const std::size_t len = 8 + body.size();
    Buf p = {type, 0x01, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len), 0, 0,
             1,    0};
    p.insert(p.end(), body.begin(), body.end());
    return p;
}

struct Key : hopscope::testing::TestCert {
    explicit Key(const char* cn) : TestCert(cn, 7) {}
    ~Key() {
        for (const auto& f : files)
            ::unlink(f.c_str());
    }
    /// The certificate as a PEM file (a CA bundle of one), removed with the object.
    std::string pem_file() {
        char path[] = "/tmp/hopscope-tls-test-XXXXXX";
        const int fd = mkstemp(path);
        FILE* f = fdopen(fd, "w");
        PEM_write_X509(f, cert);
        std::fclose(f);
        files.push_back(path);
        return path;
    }
    std::vector<std::string> files;
    Key(const Key&) = delete;
    Key& operator=(const Key&) = delete;
};

inline Key& server_key() {
    static Key k("sqla.lab.test");
    return k;
}

/// One end: a TDS client or server with OpenSSL over memory BIOs. `wrapped`: the handshake
/// travels in PRELOGIN packets (TDS 7.x); else raw (strict).
class End {
  public:
    End(bool server, bool wrapped, int max_version = TLS1_3_VERSION, const char* alpn = nullptr)
        : wrapped_(wrapped) {
        ctx_ = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
        SSL_CTX_set_max_proto_version(ctx_, max_version);
        if (server) {
            SSL_CTX_use_certificate(ctx_, server_key().cert);
            SSL_CTX_use_PrivateKey(ctx_, server_key().key);
            SSL_CTX_set_alpn_select_cb(
                ctx_,
                [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                   unsigned int, void* arg) {
                    static_cast<End*>(arg)->alpn_seen =
                        std::string(reinterpret_cast<const char*>(in + 1), in[0]);
                    *out = in + 1;
                    *outlen = in[0];
                    return SSL_TLSEXT_ERR_OK;
                },
                this);
        }
        ssl_ = SSL_new(ctx_);
        SSL_set_bio(ssl_, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
        if (server) {
            SSL_set_accept_state(ssl_);
        } else {
            SSL_set_connect_state(ssl_);
            SSL_set_tlsext_host_name(ssl_, "sqla.lab.test");
            if (alpn) {
                const unsigned char wire[] = {7, 't', 'd', 's', '/', '8', '.', '0'};
                SSL_set_alpn_protos(ssl_, wire, sizeof wire);
            }
        }
    }
    ~End() {
        SSL_free(ssl_);
        SSL_CTX_free(ctx_);
    }
    End(const End&) = delete;
    End& operator=(const End&) = delete;

    /// Starts (or goes on with) the handshake; returns what to send.
    Buf step() {
        if (!done_) {
            const int rc = SSL_do_handshake(ssl_);
            if (rc == 1) done_ = true;
        }
        return take_output(!done_sent_);
    }
    [[nodiscard]] bool done() const { return done_; }

    /// Bytes from the proxy.
    void receive(const Buf& b) {
        in_.insert(in_.end(), b.begin(), b.end());
        for (;;) {
            if (!done_ && wrapped_) {
                if (in_.size() < 8) return;
                const std::size_t len = (in_[2] << 8) | in_[3];
                if (in_.size() < len) return;
                BIO_write(SSL_get_rbio(ssl_), in_.data() + 8, static_cast<int>(len - 8));
                in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(len));
                step_bytes();
                continue;
            }
            if (clear_) {
                clear_in.insert(clear_in.end(), in_.begin(), in_.end());
                in_.clear();
                return;
            }
            if (in_.empty()) return;
            BIO_write(SSL_get_rbio(ssl_), in_.data(), static_cast<int>(in_.size()));
            in_.clear();
            if (!done_) {
                step_bytes();
                continue;
            }
            std::uint8_t buf[1 << 15];
            int n;
            while ((n = SSL_read(ssl_, buf, sizeof buf)) > 0)
                plain_in.insert(plain_in.end(), buf, buf + n);
            return;
        }
    }

    /// What the handshake produced in reply to the last bytes received.
    Buf take_pending() {
        Buf out;
        std::swap(out, pending_wire_);
        return out;
    }

    Buf write(const Buf& plain) {
        SSL_write(ssl_, plain.data(), static_cast<int>(plain.size()));
        return take_output(false);
    }
    void go_clear() { clear_ = true; }
    /// A close_notify alert.
    Buf close_notify() {
        SSL_shutdown(ssl_);
        return take_output(false);
    }
    /// TLS 1.2: a renegotiation (client: a new ClientHello; server: a HelloRequest); TLS 1.3:
    /// a KeyUpdate that asks the peer to update too.
    Buf renegotiate() {
        if (SSL_version(ssl_) == TLS1_3_VERSION)
            SSL_key_update(ssl_, SSL_KEY_UPDATE_REQUESTED);
        else
            SSL_renegotiate(ssl_);
        SSL_do_handshake(ssl_);
        ERR_clear_error();
        return take_output(false);
    }
    [[nodiscard]] std::string version() const { return SSL_get_version(ssl_); }

    Buf plain_in;
    Buf clear_in;
    std::string alpn_seen;

  private:
    void step_bytes() {
        const Buf b = step();
        pending_wire_.insert(pending_wire_.end(), b.begin(), b.end());
    }
    Buf take_output(bool handshake) {
        Buf raw;
        char buf[4096];
        int n;
        while ((n = BIO_read(SSL_get_wbio(ssl_), buf, sizeof buf)) > 0)
            raw.insert(raw.end(), buf, buf + n);
        if (done_) done_sent_ = true;
        if (raw.empty() || !handshake || !wrapped_) return raw;
        Buf p = {0x12,
                 0x01,
                 static_cast<std::uint8_t>((raw.size() + 8) >> 8),
                 static_cast<std::uint8_t>(raw.size() + 8),
                 0,
                 0,
                 1,
                 0};
        p.insert(p.end(), raw.begin(), raw.end());
        return p;
    }
    bool wrapped_;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    bool done_ = false;
    bool done_sent_ = false;
    bool clear_ = false;
    Buf in_;
    Buf pending_wire_;
};

struct Seen : TlsTerminator::Observer {
    Buf client_clear[2], client_opaque[2], plain[2], upstream[2];
    std::vector<std::string> secrets;
    void client_leg(Direction d, Bytes w, bool clear) override {
        auto& b = clear ? client_clear[static_cast<int>(d)] : client_opaque[static_cast<int>(d)];
        b.insert(b.end(), w.begin(), w.end());
    }
    void plaintext(Direction d, Bytes p, std::uint64_t) override {
        plain[static_cast<int>(d)].insert(plain[static_cast<int>(d)].end(), p.begin(), p.end());
    }
    void upstream_leg(Direction d, Bytes w) override {
        upstream[static_cast<int>(d)].insert(upstream[static_cast<int>(d)].end(), w.begin(),
                                             w.end());
    }
    void secret(std::string_view line) override { secrets.emplace_back(line); }
};

/// Client, terminator and server wired together; every call moves bytes until nothing moves.
struct Wire {
    End& client;
    End& server;
    TlsTerminator& t;
    bool ok = true;

    void to_proxy_from_client(const Buf& b) {
        if (!b.empty()) ok = ok && t.from_client(b);
        pump();
    }
    void to_proxy_from_server(const Buf& b) {
        if (!b.empty()) ok = ok && t.from_upstream(b);
        pump();
    }
    void pump() {
        for (int i = 0; i < 50 && ok; ++i) {
            Buf up, down;
            std::swap(up, t.to_upstream());
            std::swap(down, t.to_client());
            if (up.empty() && down.empty()) return;
            if (!up.empty()) {
                server.receive(up);
                const Buf r = server.take_pending();
                if (!r.empty()) ok = ok && t.from_upstream(r);
            }
            if (!down.empty()) {
                client.receive(down);
                const Buf r = client.take_pending();
                if (!r.empty()) ok = ok && t.from_client(r);
            }
        }
    }
};

/// PRELOGIN both ways (relayed unchanged; the test ends do not parse it), then both handshakes.
inline void connect(Wire& w, std::uint8_t client_enc, std::uint8_t server_enc) {
    const Buf req = prelogin(0x12, client_enc);
    const Buf resp = prelogin(0x04, server_enc);
    w.ok = w.t.from_client(req) && w.t.to_upstream() == req;
    w.t.to_upstream().clear();
    w.ok = w.ok && w.t.from_upstream(resp) && w.t.to_client() == resp;
    w.t.to_client().clear();
    w.to_proxy_from_client(w.client.step());
}

}  // namespace hopscope::proxy::testing
