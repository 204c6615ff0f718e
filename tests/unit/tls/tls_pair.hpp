// Test helper: a real OpenSSL client and server talking through memory BIOs, with the bytes each
// side wrote recorded flight by flight and the client's key log (SSL_CTX_set_keylog_callback)
// kept as text - the same secrets node, GnuTLS or the lab server would write.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "hopscope/common/flow.hpp"
#include "test_cert.hpp"

namespace hopscope::testing {

struct Flight {
    Direction dir;
    std::vector<std::uint8_t> bytes;
};

struct TlsPairConfig {
    int version = TLS1_3_VERSION;   ///< min = max
    std::string cipher_list;        ///< TLS 1.2 (OpenSSL names), "" = default
    std::string ciphersuites;       ///< TLS 1.3, "" = default
    std::vector<std::string> alpn;  ///< offered by the client; the server picks the first
    std::string client_groups;      ///< e.g. "X25519:P-256" (key share for the first only)
    std::string server_groups;      ///< a server without the client's first group: HRR
};

class TlsPair {
  public:
    explicit TlsPair(const TlsPairConfig& cfg) {
        cctx_ = SSL_CTX_new(TLS_client_method());
        sctx_ = SSL_CTX_new(TLS_server_method());
        for (SSL_CTX* c : {cctx_, sctx_}) {
            SSL_CTX_set_min_proto_version(c, cfg.version);
            SSL_CTX_set_max_proto_version(c, cfg.version);
            if (!cfg.cipher_list.empty()) SSL_CTX_set_cipher_list(c, cfg.cipher_list.c_str());
            if (!cfg.ciphersuites.empty()) SSL_CTX_set_ciphersuites(c, cfg.ciphersuites.c_str());
            SSL_CTX_set_security_level(c, 0);
        }
        if (!cfg.client_groups.empty()) SSL_CTX_set1_groups_list(cctx_, cfg.client_groups.c_str());
        if (!cfg.server_groups.empty()) SSL_CTX_set1_groups_list(sctx_, cfg.server_groups.c_str());
        SSL_CTX_use_certificate(sctx_, cert_.cert);
        SSL_CTX_use_PrivateKey(sctx_, cert_.key);
        SSL_CTX_set_ex_data(cctx_, 0, this);
        SSL_CTX_set_keylog_callback(cctx_, [](const SSL* ssl, const char* line) {
            auto* self = static_cast<TlsPair*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0));
            self->keylog += line;
            self->keylog += "\n";
        });
        if (!cfg.alpn.empty()) {
            std::vector<unsigned char> wire;
            for (const auto& a : cfg.alpn) {
                wire.push_back(static_cast<unsigned char>(a.size()));
                wire.insert(wire.end(), a.begin(), a.end());
            }
            SSL_CTX_set_alpn_protos(cctx_, wire.data(), static_cast<unsigned>(wire.size()));
            SSL_CTX_set_alpn_select_cb(
                sctx_,
                [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                   unsigned int, void*) {
                    *outlen = in[0];
                    *out = in + 1;
                    return SSL_TLSEXT_ERR_OK;
                },
                nullptr);
        }
        connect();
    }

    /// A new connection that resumes the last one's session (flights and key log start over).
    void resume() {
        SSL_SESSION* sess = SSL_get1_session(c_);
        // a connection freed without a shutdown takes its session out of the cache
        SSL_set_shutdown(c_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_set_shutdown(s_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c_);
        SSL_free(s_);
        connect();
        SSL_set_session(c_, sess);
        SSL_SESSION_free(sess);
        flights.clear();
        keylog.clear();
    }
    [[nodiscard]] bool reused() const { return SSL_session_reused(c_) == 1; }

    ~TlsPair() {
        SSL_free(c_);
        SSL_free(s_);
        SSL_CTX_free(cctx_);
        SSL_CTX_free(sctx_);
    }
    TlsPair(const TlsPair&) = delete;
    TlsPair& operator=(const TlsPair&) = delete;

    /// Runs the handshake; every flight each side wrote lands in `flights`.
    void handshake() {
        for (int i = 0; i < 20; ++i) {
            SSL_do_handshake(c_);
            shuttle(Direction::ClientToServer);
            SSL_do_handshake(s_);
            shuttle(Direction::ServerToClient);
            if (SSL_is_init_finished(c_) && SSL_is_init_finished(s_)) break;
        }
        if (!SSL_is_init_finished(c_) || !SSL_is_init_finished(s_)) {
            throw std::runtime_error("TLS handshake did not finish");
        }
    }

    /// Application data from one side; the peer reads it (so its state moves on too).
    void send(Direction dir, const std::vector<std::uint8_t>& data) {
        SSL* from = dir == Direction::ClientToServer ? c_ : s_;
        SSL* to = dir == Direction::ClientToServer ? s_ : c_;
        SSL_write(from, data.data(), static_cast<int>(data.size()));
        shuttle(dir);
        std::vector<std::uint8_t> buf(1 << 16);
        while (SSL_read(to, buf.data(), static_cast<int>(buf.size())) > 0) {
        }
        shuttle(dir == Direction::ClientToServer ? Direction::ServerToClient
                                                 : Direction::ClientToServer);
    }

    /// TLS 1.3 KeyUpdate from one side (sent with its next write).
    void key_update(Direction dir) {
        SSL_key_update(dir == Direction::ClientToServer ? c_ : s_, SSL_KEY_UPDATE_NOT_REQUESTED);
    }

    [[nodiscard]] std::uint16_t cipher_id() const {
        return static_cast<std::uint16_t>(SSL_CIPHER_get_id(SSL_get_current_cipher(c_)) & 0xFFFF);
    }

    std::vector<Flight> flights;
    std::string keylog;

  private:
    void connect() {
        c_ = SSL_new(cctx_);
        s_ = SSL_new(sctx_);
        SSL_set_tlsext_host_name(c_, "sqla.lab.test");
        for (SSL* x : {c_, s_}) {
            BIO* r = BIO_new(BIO_s_mem());
            BIO* w = BIO_new(BIO_s_mem());
            SSL_set_bio(x, r, w);
        }
        SSL_set_connect_state(c_);
        SSL_set_accept_state(s_);
    }

    void shuttle(Direction dir) {
        SSL* from = dir == Direction::ClientToServer ? c_ : s_;
        SSL* to = dir == Direction::ClientToServer ? s_ : c_;
        BIO* w = SSL_get_wbio(from);
        std::vector<std::uint8_t> out;
        char buf[4096];
        int n;
        while ((n = BIO_read(w, buf, sizeof buf)) > 0)
            out.insert(out.end(), buf, buf + n);
        if (out.empty()) return;
        BIO_write(SSL_get_rbio(to), out.data(), static_cast<int>(out.size()));
        flights.push_back(Flight{dir, std::move(out)});
    }

    TestCert cert_{"sqla.lab.test"};
    SSL_CTX* cctx_ = nullptr;
    SSL_CTX* sctx_ = nullptr;
    SSL* c_ = nullptr;
    SSL* s_ = nullptr;
};

}  // namespace hopscope::testing
