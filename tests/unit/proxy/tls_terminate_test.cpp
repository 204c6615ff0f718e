// TlsTerminator between a real OpenSSL client and a real OpenSSL server that speak TDS's TLS
// (PRELOGIN exchange, handshake in PRELOGIN packets, then raw records; or TDS 8.0 strict): what
// each side sends arrives unchanged at the other, the observer sees the clear bytes and the
// plaintext, and hostile input ends the connection with a reason.
#include "hopscope/proxy/tls_terminate.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace hopscope::proxy {
namespace {

using Buf = std::vector<std::uint8_t>;

constexpr std::uint8_t kOff = 0x00, kOn = 0x01, kNotSup = 0x02;

/// A PRELOGIN packet: VERSION and ENCRYPTION (MS-TDS 2.2.6.5).
Buf prelogin(std::uint8_t type, std::uint8_t enc) {
    const Buf payload = {0x00, 0x00, 0x0B, 0x00, 0x06, 0x01, 0x00, 0x11, 0x00,
                         0x01, 0xFF, 16,   0,    0x07, 0xD0, 0,    0,    enc};
    Buf p = {type, 0x01, 0, static_cast<std::uint8_t>(8 + payload.size()), 0, 0, 1, 0};
    p.insert(p.end(), payload.begin(), payload.end());
    return p;
}

/// A TDS packet of `type` with `body` (EOM).
Buf packet(std::uint8_t type, const std::string& body) {
    const std::size_t len = 8 + body.size();
    Buf p = {type, 0x01, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len), 0, 0,
             1,    0};
    p.insert(p.end(), body.begin(), body.end());
    return p;
}

struct Key {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    explicit Key(const char* cn) {
        X509_set_version(cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_set_pubkey(cert, key);
        X509_NAME* n = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
        X509_set_issuer_name(cert, n);
        X509_sign(cert, key, EVP_sha256());
    }
    ~Key() {
        X509_free(cert);
        EVP_PKEY_free(key);
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

Key& server_key() {
    static Key k("sqla.lab.test");
    return k;
}

/// One end: a TDS client or server with OpenSSL over memory BIOs. `wrapped`: the handshake
/// travels in PRELOGIN packets (TDS 7.x); else raw (strict).
class End {
  public:
    End(bool server, bool wrapped, int max_version = TLS1_3_VERSION, const char* alpn = nullptr)
        : server_(server), wrapped_(wrapped) {
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
                pending_ += step_bytes();
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
                pending_ += step_bytes();
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
    [[nodiscard]] std::string version() const { return SSL_get_version(ssl_); }

    Buf plain_in;
    Buf clear_in;
    std::string alpn_seen;

  private:
    int step_bytes() {
        const Buf b = step();
        pending_wire_.insert(pending_wire_.end(), b.begin(), b.end());
        return 0;
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
    bool server_;
    bool wrapped_;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    bool done_ = false;
    bool done_sent_ = false;
    bool clear_ = false;
    Buf in_;
    Buf pending_wire_;
    int pending_ = 0;
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

const TlsContexts& contexts(const std::string& ca = "") {
    static std::unique_ptr<TlsContexts> plain;
    static std::unique_ptr<TlsContexts> verifying;
    auto& slot = ca.empty() ? plain : verifying;
    if (!slot || !ca.empty()) {
        TlsOptions o;
        o.terminate = true;
        o.upstream_ca = ca;
        std::string err;
        slot = TlsContexts::make(o, {"sqla.lab.test"}, err);
        EXPECT_TRUE(slot) << err;
    }
    return *slot;
}

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
void connect(Wire& w, std::uint8_t client_enc, std::uint8_t server_enc) {
    const Buf req = prelogin(0x12, client_enc);
    const Buf resp = prelogin(0x04, server_enc);
    w.ok = w.t.from_client(req);
    EXPECT_EQ(w.t.to_upstream(), req);
    w.t.to_upstream().clear();
    w.ok = w.ok && w.t.from_upstream(resp);
    EXPECT_EQ(w.t.to_client(), resp);
    w.t.to_client().clear();
    w.to_proxy_from_client(w.client.step());
}

TEST(TlsTerminator, FullEncryptionCarriesEveryByteAndShowsThePlaintext) {
    End client(false, true), server(true, true);
    Seen seen;
    TlsTerminator t(contexts(), "sqla.lab.test", seen);
    Wire w{client, server, t};
    connect(w, kOn, kOn);
    ASSERT_TRUE(w.ok) << t.error();
    ASSERT_TRUE(client.done());
    ASSERT_TRUE(server.done());
    EXPECT_EQ(t.mode(), TlsTerminator::Mode::Full);
    // TDS 7.x: TLS 1.2 on both legs, whatever the peers could do
    EXPECT_EQ(client.version(), "TLSv1.2");
    EXPECT_EQ(server.version(), "TLSv1.2");
    EXPECT_EQ(t.client_session().rfind("TLSv1.2 ", 0), 0u) << t.client_session();

    const Buf login = packet(0x10, std::string(3000, 'L'));
    w.to_proxy_from_client(client.write(login));
    ASSERT_TRUE(w.ok) << t.error();
    EXPECT_EQ(server.plain_in, login);
    const Buf answer = packet(0x04, std::string(40000, 'R'));  // several records
    w.to_proxy_from_server(server.write(answer));
    ASSERT_TRUE(w.ok) << t.error();
    EXPECT_EQ(client.plain_in, answer);

    EXPECT_EQ(seen.plain[0], login);
    EXPECT_EQ(seen.plain[1], answer);
    // the clear part of the client leg: both PRELOGINs and the tunnelled handshake
    ASSERT_GE(seen.client_clear[0].size(), 8u);
    EXPECT_EQ(seen.client_clear[0][0], 0x12);
    EXPECT_EQ(seen.client_clear[1][0], 0x04);
    EXPECT_FALSE(seen.client_opaque[0].empty());
    EXPECT_FALSE(seen.client_opaque[1].empty());
    // the secrets of both sessions (TLS 1.2: one CLIENT_RANDOM line each)
    ASSERT_EQ(seen.secrets.size(), 2u);
    for (const auto& s : seen.secrets)
        EXPECT_EQ(s.rfind("CLIENT_RANDOM ", 0), 0u) << s;
}

TEST(TlsTerminator, LoginOnlyProtectsTheFirstPacketThenPassesClearTds) {
    End client(false, true), server(true, true);
    Seen seen;
    TlsTerminator t(contexts(), "sqla.lab.test", seen);
    Wire w{client, server, t};
    connect(w, kOff, kOff);
    ASSERT_TRUE(w.ok) << t.error();
    EXPECT_EQ(t.mode(), TlsTerminator::Mode::LoginOnly);
    const Buf login = packet(0x10, std::string(500, 'L'));
    Buf wire = client.write(login);
    client.go_clear();
    const Buf sspi = packet(0x11, "clear SSPI");
    wire.insert(wire.end(), sspi.begin(), sspi.end());  // one read: record, then clear TDS
    w.to_proxy_from_client(wire);
    ASSERT_TRUE(w.ok) << t.error();
    EXPECT_EQ(server.plain_in, login);
    // the server leaves TLS after the first packet, as SQL Server does
    server.go_clear();
    // (the clear packet reached the server inside its TLS input: take it from there)
    EXPECT_EQ(seen.plain[0], login);
    const Buf answer = packet(0x04, "LOGINACK in clear");
    w.to_proxy_from_server(answer);
    EXPECT_EQ(client.clear_in, answer);
    EXPECT_TRUE(seen.plain[1].empty());
    // what the client sent after its login went through in clear, unchanged
    const Buf& up = seen.upstream[0];
    ASSERT_GE(up.size(), sspi.size());
    EXPECT_TRUE(std::equal(sspi.begin(), sspi.end(), up.end() - static_cast<long>(sspi.size())));
}

TEST(TlsTerminator, StrictTds8StartsWithTlsAndOffersTheAlpnUpstream) {
    End client(false, false, TLS1_3_VERSION, "tds/8.0"), server(true, false);
    Seen seen;
    TlsTerminator t(contexts(), "sqla.lab.test", seen);
    Wire w{client, server, t};
    w.to_proxy_from_client(client.step());
    ASSERT_TRUE(w.ok) << t.error();
    ASSERT_TRUE(client.done());
    ASSERT_TRUE(server.done());
    EXPECT_EQ(t.mode(), TlsTerminator::Mode::Strict);
    EXPECT_EQ(client.version(), "TLSv1.3");
    EXPECT_EQ(server.alpn_seen, "tds/8.0");
    const Buf pre = prelogin(0x12, kOff);
    w.to_proxy_from_client(client.write(pre));
    ASSERT_TRUE(w.ok) << t.error();
    EXPECT_EQ(server.plain_in, pre);
    EXPECT_EQ(seen.plain[0], pre);
}

TEST(TlsTerminator, NoEncryptionNegotiatedPassesEverythingThrough) {
    Seen seen;
    TlsTerminator t(contexts(), "", seen);
    const Buf req = prelogin(0x12, kNotSup);
    const Buf resp = prelogin(0x04, kNotSup);
    ASSERT_TRUE(t.from_client(req));
    EXPECT_EQ(t.to_upstream(), req);
    ASSERT_TRUE(t.from_upstream(resp));
    EXPECT_EQ(t.to_client(), resp);
    EXPECT_EQ(t.mode(), TlsTerminator::Mode::Passthrough);
    const Buf login = packet(0x10, "clear login");
    t.to_upstream().clear();
    ASSERT_TRUE(t.from_client(login));
    EXPECT_EQ(t.to_upstream(), login);
    EXPECT_TRUE(seen.secrets.empty());
}

TEST(TlsTerminator, BytesThatAreNotTdsPassThrough) {
    Seen seen;
    TlsTerminator t(contexts(), "", seen);
    const std::string http = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_TRUE(
        t.from_client(Bytes(reinterpret_cast<const std::uint8_t*>(http.data()), http.size())));
    EXPECT_EQ(t.mode(), TlsTerminator::Mode::Passthrough);
    EXPECT_EQ(std::string(t.to_upstream().begin(), t.to_upstream().end()), http);
}

TEST(TlsTerminator, AnotherPacketDuringTheHandshakeEndsTheConnection) {
    End client(false, true), server(true, true);
    Seen seen;
    TlsTerminator t(contexts(), "", seen);
    ASSERT_TRUE(t.from_client(prelogin(0x12, kOn)));
    ASSERT_TRUE(t.from_upstream(prelogin(0x04, kOn)));
    EXPECT_FALSE(t.from_client(packet(0x10, "a LOGIN7 where the ClientHello belongs")));
    EXPECT_NE(t.error().find("PRELOGIN packet during the TLS handshake"), std::string::npos)
        << t.error();
    EXPECT_FALSE(t.from_client(prelogin(0x12, kOn)));  // and stays ended
}

TEST(TlsTerminator, GarbageInsteadOfARecordEndsTheConnection) {
    End client(false, true), server(true, true);
    Seen seen;
    TlsTerminator t(contexts(), "", seen);
    Wire w{client, server, t};
    connect(w, kOn, kOn);
    ASSERT_TRUE(w.ok) << t.error();
    EXPECT_FALSE(t.from_client(packet(0x01, "clear SQL batch inside a TLS connection")));
    EXPECT_NE(t.error().find("other than a TLS record"), std::string::npos) << t.error();
    // a well-formed record with a forged body: the decryption fails
    Seen seen2;
    End c2(false, true), s2(true, true);
    TlsTerminator t2(contexts(), "", seen2);
    Wire w2{c2, s2, t2};
    connect(w2, kOn, kOn);
    Buf forged = c2.write(packet(0x01, "select 1"));
    forged.back() ^= 0x55;
    EXPECT_FALSE(t2.from_client(forged));
    EXPECT_NE(t2.error().find("TLS from the client"), std::string::npos) << t2.error();
}

TEST(TlsTerminator, WhatAClientSendsBeforeTheUpstreamIsReadyIsBounded) {
    End client(false, true), server(true, true);
    Seen seen;
    TlsTerminator t(contexts(), "", seen);
    ASSERT_TRUE(t.from_client(prelogin(0x12, kOn)));
    ASSERT_TRUE(t.from_upstream(prelogin(0x04, kOn)));
    t.to_upstream().clear();
    t.to_client().clear();
    // the client leg completes; the upstream never answers the proxy's ClientHello
    Buf out = client.step();
    for (int i = 0; i < 10 && !client.done(); ++i) {
        ASSERT_TRUE(t.from_client(out)) << t.error();
        client.receive(t.to_client());
        t.to_client().clear();
        out = client.take_pending();
        if (out.empty()) out = client.step();
    }
    if (!out.empty()) {
        ASSERT_TRUE(t.from_client(out)) << t.error();
    }
    ASSERT_TRUE(client.done());
    const Buf big = packet(0x07, std::string(30000, 'B'));
    bool ok = true;
    for (int i = 0; i < 50 && ok; ++i)
        ok = t.from_client(client.write(big));
    EXPECT_FALSE(ok);
    EXPECT_NE(t.error().find("before the upstream's TLS handshake finished"), std::string::npos)
        << t.error();
    EXPECT_LT(t.buffered(), TlsTerminator::kMaxHeld + 100000);
}

TEST(TlsTerminator, AnUpstreamCertificateThatDoesNotChainIsRefused) {
    Key other("someone.else");
    const std::string wrong_ca = other.pem_file();
    End client(false, true), server(true, true);
    Seen seen;
    TlsTerminator t(contexts(wrong_ca), "sqla.lab.test", seen);
    Wire w{client, server, t};
    connect(w, kOn, kOn);
    EXPECT_FALSE(w.ok);
    EXPECT_NE(t.error().find("not trusted"), std::string::npos) << t.error();
    for (const auto& f : other.files)
        ::unlink(f.c_str());
}

TEST(TlsTerminator, TheRightCaAndNameAreAccepted) {
    const std::string ca = server_key().pem_file();
    End client(false, true), server(true, true);
    Seen seen;
    TlsTerminator t(contexts(ca), "sqla.lab.test", seen);
    Wire w{client, server, t};
    connect(w, kOn, kOn);
    EXPECT_TRUE(w.ok) << t.error();
    EXPECT_TRUE(server.done());
    ::unlink(ca.c_str());
}

TEST(TlsContexts, ASelfSignedCertificateNamesTheUpstreams) {
    TlsOptions o;
    o.terminate = true;
    std::string err;
    auto c = TlsContexts::make(o, {"sqla.lab.test", "10.0.0.7"}, err);
    ASSERT_TRUE(c) << err;
    EXPECT_TRUE(c->self_signed());
    EXPECT_NE(c->subject().find("CN=sqla.lab.test"), std::string::npos) << c->subject();
    EXPECT_EQ(c->fingerprint().size(), 32u * 3 - 1);
}

TEST(TlsContexts, BadFilesAreClearErrors) {
    TlsOptions o;
    o.terminate = true;
    o.cert_file = "/nonexistent/cert.pem";
    o.key_file = "/nonexistent/key.pem";
    std::string err;
    EXPECT_FALSE(TlsContexts::make(o, {}, err));
    EXPECT_NE(err.find("--tls-cert /nonexistent/cert.pem"), std::string::npos) << err;
    o = TlsOptions{};
    o.terminate = true;
    o.keylog_file = "/nonexistent/dir/keys.log";
    EXPECT_FALSE(TlsContexts::make(o, {}, err));
    EXPECT_NE(err.find("--tls-keylog"), std::string::npos) << err;
}

}  // namespace
}  // namespace hopscope::proxy
