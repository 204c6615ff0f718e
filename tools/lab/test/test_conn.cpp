// Tests of the lab server's TDS transport: TDS 7.x TLS with the handshake inside PRELOGIN (0x12)
// packets [MS-TDS 2.2.6.5, 3.2.5.3], login-only encryption (only the first LOGIN7 packet is TLS,
// then clear text both ways) and full encryption; TDS 8.0 strict (TLS first, ALPN tds/8.0)
// [MS-TDS 3.3.5.4]. The client side here is a minimal OpenSSL client over a socketpair that wraps
// the handshake the way FreeTDS and tedious do.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "conn.hpp"
#include "wire.hpp"

namespace hopscope::lab {
namespace {

// A throwaway self-signed certificate, made in memory for each test run.
SSL_CTX* server_ctx(bool strict) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("sqla.lab.test"), -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, key, EVP_sha256());
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, x);
    SSL_CTX_use_PrivateKey(ctx, key);
    if (strict) {
        SSL_CTX_set_alpn_select_cb(
            ctx,
            [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) -> int {
                static const unsigned char kTds8[] = {7, 't', 'd', 's', '/', '8', '.', '0'};
                unsigned char* sel = nullptr;
                if (SSL_select_next_proto(&sel, outlen, kTds8, sizeof kTds8, in, inlen) !=
                    OPENSSL_NPN_NEGOTIATED)
                    return SSL_TLSEXT_ERR_NOACK;
                *out = sel;
                return SSL_TLSEXT_ERR_OK;
            },
            nullptr);
    } else {
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

bool read_exact(int fd, std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        const ssize_t k = recv(fd, p, n, 0);
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

/// The client half: an OpenSSL client whose records travel either wrapped in 0x12 packets
/// (TDS 7.x) or raw (strict).
struct Client {
    int fd;
    bool wrapped;
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = nullptr;
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    std::size_t wrapped_packets_seen = 0;

    Client(int f, bool w) : fd(f), wrapped(w) {
        ssl = SSL_new(ctx);
        SSL_set_bio(ssl, rbio, wbio);
        SSL_set_connect_state(ssl);
        if (!wrapped) {
            static const unsigned char alpn[] = {7, 't', 'd', 's', '/', '8', '.', '0'};
            SSL_set_alpn_protos(ssl, alpn, sizeof alpn);
        }
    }
    ~Client() {
        SSL_free(ssl);
        SSL_CTX_free(ctx);
    }
    bool flush_raw() {
        Buffer out(BIO_ctrl_pending(wbio));
        if (out.empty()) return true;
        BIO_read(wbio, out.data(), static_cast<int>(out.size()));
        return ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size());
    }
    bool flush_wrapped() {
        Buffer out(BIO_ctrl_pending(wbio));
        if (out.empty()) return true;
        BIO_read(wbio, out.data(), static_cast<int>(out.size()));
        const Buffer wire = frame_packets(pkt::Prelogin, out, 4096);
        return ::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(wire.size());
    }
    bool feed_wrapped() {  // one TDS packet from the server: its payload is TLS handshake bytes
        std::uint8_t hdr[8];
        if (!read_exact(fd, hdr, 8)) return false;
        Buffer body(load_u16be(hdr + 2) - 8u);
        if (!read_exact(fd, body.data(), body.size())) return false;
        if (hdr[0] == pkt::Prelogin) ++wrapped_packets_seen;
        BIO_write(rbio, body.data(), static_cast<int>(body.size()));
        return true;
    }
    bool feed_raw() {
        std::uint8_t buf[4096];
        const ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k <= 0) return false;
        BIO_write(rbio, buf, static_cast<int>(k));
        return true;
    }
    bool handshake() {
        for (int i = 0; i < 20; ++i) {
            const int rc = SSL_do_handshake(ssl);
            if (!(wrapped ? flush_wrapped() : flush_raw())) return false;
            if (rc == 1) return true;
            if (SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ) return false;
            if (!(wrapped ? feed_wrapped() : feed_raw())) return false;
        }
        return false;
    }
    bool send_tls(const Buffer& bytes) {
        return SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size())) ==
                   static_cast<int>(bytes.size()) &&
               flush_raw();
    }
    bool read_tls(std::uint8_t* p, std::size_t n) {
        while (n > 0) {
            const int k = SSL_read(ssl, p, static_cast<int>(n));
            if (k > 0) {
                p += k;
                n -= static_cast<std::size_t>(k);
            } else if (SSL_get_error(ssl, k) != SSL_ERROR_WANT_READ || !feed_raw()) {
                return false;
            }
        }
        return true;
    }
};

struct Pair {
    int fds[2]{-1, -1};
    Pair() {
        EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
        const timeval limit{5, 0};  // a broken test fails instead of hanging
        for (int fd : fds)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    }
};

TEST(LabConn, LoginOnlyTlsEncryptsExactlyTheFirstLogin7Packet) {
    SSL_CTX* ctx = server_ctx(false);
    Pair p;
    const Buffer login7 = ucs2("pretend LOGIN7");
    const Buffer sspi = ucs2("pretend AUTHENTICATE");
    std::string server_error;
    Buffer got_login7, got_sspi;
    std::thread server([&] {
        Conn c(p.fds[0]);
        if (!c.tls_accept(ctx, &server_error)) return;
        c.tls_login_only();
        auto m1 = c.read_message(&server_error);
        auto m2 = m1 ? c.read_message(&server_error) : std::nullopt;
        if (m1 && m1->type == pkt::Login7) got_login7 = m1->payload;
        if (m2 && m2->type == pkt::Sspi) got_sspi = m2->payload;
        c.send(pkt::Reply, ucs2("clear reply"));
    });
    Client cl(p.fds[1], true);
    ASSERT_TRUE(cl.handshake());
    EXPECT_GE(cl.wrapped_packets_seen, 1u);  // the server's flights came in 0x12 packets
    ASSERT_TRUE(cl.send_tls(frame_packets(pkt::Login7, login7, 4096)));  // one TLS record
    const Buffer plain = frame_packets(pkt::Sspi, sspi, 4096);           // then clear text
    ASSERT_EQ(::send(p.fds[1], plain.data(), plain.size(), 0), static_cast<ssize_t>(plain.size()));
    std::uint8_t hdr[8];
    ASSERT_TRUE(read_exact(p.fds[1], hdr, 8));
    EXPECT_EQ(hdr[0], pkt::Reply);  // a TDS header, not a TLS record (0x17)
    server.join();
    EXPECT_EQ(server_error, "");
    EXPECT_EQ(got_login7, login7);
    EXPECT_EQ(got_sspi, sspi);
    close(p.fds[1]);
    SSL_CTX_free(ctx);
}

TEST(LabConn, FullTlsCarriesEverythingAfterTheHandshake) {
    SSL_CTX* ctx = server_ctx(false);
    Pair p;
    const Buffer batch = build_sql_batch("select 1");
    Buffer got;
    std::thread server([&] {
        Conn c(p.fds[0]);
        std::string why;
        if (!c.tls_accept(ctx, &why)) return;
        c.tls_full();
        auto m = c.read_message(&why);
        if (m) got = m->payload;
        TokenWriter tw(false);
        tw.done(kDoneFinal, 0, 0);
        c.send(pkt::Reply, tw.bytes());
    });
    Client cl(p.fds[1], true);
    ASSERT_TRUE(cl.handshake());
    ASSERT_TRUE(cl.send_tls(frame_packets(pkt::SqlBatch, batch, 4096)));
    std::uint8_t first = 0;
    ASSERT_EQ(recv(p.fds[1], &first, 1, MSG_PEEK), 1);
    EXPECT_EQ(first, 0x17);  // application data record
    std::uint8_t hdr[8];
    ASSERT_TRUE(cl.read_tls(hdr, 8));
    EXPECT_EQ(hdr[0], pkt::Reply);
    EXPECT_EQ(load_u16be(hdr + 2), 8 + 13);
    server.join();
    EXPECT_EQ(got, batch);
    close(p.fds[1]);
    SSL_CTX_free(ctx);
}

TEST(LabConn, StrictTlsComesFirstAndSelectsTds80) {
    SSL_CTX* ctx = server_ctx(true);
    Pair p;
    Buffer got;
    std::string alpn;
    std::thread server([&] {
        Conn c(p.fds[0]);
        std::string why;
        if (!c.tls_accept_direct(ctx, &why)) return;
        c.tls_full();
        alpn = c.alpn();
        auto m = c.read_message(&why);
        if (m && m->type == pkt::Prelogin) got = m->payload;
        c.send(pkt::Reply, build_prelogin_response(enc::On));
    });
    Client cl(p.fds[1], false);
    ASSERT_TRUE(cl.handshake());
    const unsigned char* sel = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(cl.ssl, &sel, &len);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(sel), len), "tds/8.0");
    const Buffer pre = build_prelogin_request(enc::NotSup);
    ASSERT_TRUE(cl.send_tls(frame_packets(pkt::Prelogin, pre, 4096)));
    std::uint8_t hdr[8];
    ASSERT_TRUE(cl.read_tls(hdr, 8));
    EXPECT_EQ(hdr[0], pkt::Reply);
    server.join();
    EXPECT_EQ(alpn, "tds/8.0");
    EXPECT_EQ(got, pre);
    close(p.fds[1]);
    SSL_CTX_free(ctx);
}

TEST(LabConn, FramingRejectsShortPacketsAndEndsOnEof) {
    Pair p;
    const std::uint8_t bad[8] = {0x12, 0x01, 0x00, 0x04, 0, 0, 1, 0};  // length 4 < 8
    ASSERT_EQ(::send(p.fds[1], bad, sizeof bad, 0), 8);
    close(p.fds[1]);
    Conn c(p.fds[0]);
    std::string why;
    EXPECT_FALSE(c.read_message(&why));
    EXPECT_EQ(why, "TDS packet length below 8");
    EXPECT_FALSE(c.read_message(&why));
    EXPECT_EQ(why, "connection closed");
}

}  // namespace
}  // namespace hopscope::lab
