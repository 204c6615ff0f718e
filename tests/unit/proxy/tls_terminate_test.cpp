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

#include "tls_ends.hpp"

namespace hopscope::proxy {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace): the test ends

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

/// The TLS records in `wire` from `from` on: their count (5-byte headers, lengths followed).
std::size_t count_records(const Buf& wire, std::size_t from) {
    std::size_t n = 0;
    while (from + 5 <= wire.size()) {
        from += 5 + ((std::size_t{wire[from + 3]} << 8) | wire[from + 4]);
        ++n;
    }
    return from == wire.size() ? n : 0;
}

TEST(TlsTerminator, TheServersSmallRecordsReachTheClientGatheredIntoFullOnes) {
    End client(false, true), server(true, true);
    Seen seen;
    TlsTerminator t(contexts(), "sqla.lab.test", seen);
    Wire w{client, server, t};
    connect(w, kOn, kOn);
    ASSERT_TRUE(w.ok) << t.error();
    // Eight TDS packets of 4 KiB, one record each, arriving together.
    Buf answer, records;
    for (int i = 0; i < 8; ++i) {
        const Buf p = packet(0x04, std::string(4088, static_cast<char>('a' + i)));
        answer.insert(answer.end(), p.begin(), p.end());
        const Buf r = server.write(p);
        records.insert(records.end(), r.begin(), r.end());
    }
    ASSERT_EQ(count_records(records, 0), 8u);
    const std::size_t before = seen.client_opaque[1].size();
    w.to_proxy_from_server(records);
    ASSERT_TRUE(w.ok) << t.error();
    EXPECT_EQ(client.plain_in, answer);
    EXPECT_EQ(seen.plain[1], answer);
    // 32 KiB of plaintext: two full records for the client.
    EXPECT_EQ(count_records(seen.client_opaque[1], before), 2u);
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
