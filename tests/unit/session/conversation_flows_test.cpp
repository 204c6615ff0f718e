// Conversation over hand-built flows: every encryption mode, integrated logins, the protocol's
// traps (big-endian TDSVersion, SSPI as raw 0x11 payload, login-only TLS), memory caps and
// secrets. Byte layouts: MS-TDS 2.2.3.1 / 2.2.6.4 / 2.2.6.5 / 2.2.7, RFC 5246/8446.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "builders.hpp"
#include "fact_recorder.hpp"

namespace hopscope::session {
namespace {

using testing::Buf;
using testing::FactRecorder;
using C = Direction;

struct Step {
    Direction dir;
    Buf bytes;
};

struct Outcome {
    std::vector<std::string> facts;
    std::vector<LoginRecord> logins;
    std::vector<std::pair<AuthBlobSource, Buf>> blobs;
    std::size_t max_buffered = 0;
};

// Feeds the steps (frame n = step n+1, time = 1000 * frame), whole or byte by byte.
Outcome play(const std::vector<Step>& steps, bool bytewise = false, Conversation::Options o = {}) {
    FactRecorder rec;
    Conversation conv(rec, o);
    Outcome r;
    std::uint64_t off[2] = {0, 0};
    std::uint64_t frame = 0;
    for (const auto& s : steps) {
        ++frame;
        auto& base = off[static_cast<int>(s.dir)];
        const Timestamp ts{static_cast<std::int64_t>(frame * 1000)};
        if (bytewise) {
            for (std::size_t i = 0; i < s.bytes.size(); ++i) {
                conv.feed(s.dir, ts, Bytes(&s.bytes[i], 1), Evidence{frame, base + i});
                r.max_buffered = std::max(r.max_buffered, conv.buffered_bytes());
            }
        } else {
            conv.feed(s.dir, ts, s.bytes, Evidence{frame, base});
            r.max_buffered = std::max(r.max_buffered, conv.buffered_bytes());
        }
        base += s.bytes.size();
    }
    conv.close(Timestamp{static_cast<std::int64_t>((frame + 1) * 1000)});
    r.facts = rec.facts;
    r.logins = rec.logins;
    r.blobs = rec.blobs;
    return r;
}

bool has(const std::vector<std::string>& facts, const std::string& needle) {
    return std::any_of(facts.begin(), facts.end(),
                       [&](const std::string& f) { return f.find(needle) != std::string::npos; });
}

std::string dump(const Outcome& r) {
    std::string s;
    for (const auto& f : r.facts)
        s += f + "\n";
    return s;
}

Buf prelogin_msg(std::uint8_t enc) {
    return testing::packet(0x12, 0x01,
                           testing::prelogin({{0x00, testing::from_hex("10000fa00000")},
                                              {0x01, {enc}},
                                              {0x02, {0x00}},
                                              {0x03, {0, 0, 0, 1}},
                                              {0x04, {0x00}}}));
}
Buf prelogin_resp(std::uint8_t enc) {
    return testing::packet(0x04, 0x01,
                           testing::prelogin({{0x00, testing::from_hex("0f0010d20000")},
                                              {0x01, {enc}},
                                              {0x02, {0x00}},
                                              {0x04, {0x00}}}));
}

// NTLM messages: only the signature and type matter to the conversation (opaque blobs).
const Buf kNtlmNegotiate = testing::from_hex("4e544c4d5353500001000000078208a2");
const Buf kNtlmChallenge = testing::from_hex("4e544c4d53535000020000000000000038000000");
const Buf kNtlmAuthenticate = testing::from_hex("4e544c4d5353500003000000180018004000000000");

std::vector<Step> ntlm_anonymous_failure() {
    testing::Login7Spec l;
    l.flags2 = 0x83;  // fODBC | fIntSecurity
    l.user = "";
    l.sspi = kNtlmNegotiate;
    Buf resp1 = testing::sspi_token(kNtlmChallenge);
    Buf resp2 = testing::error_token(
        18456, 1, 14, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.", "SQLB");
    testing::append(resp2, testing::done(0x0002));
    return {{C::ClientToServer, prelogin_msg(tds::encrypt::kNotSup)},
            {C::ServerToClient, prelogin_resp(tds::encrypt::kNotSup)},
            {C::ClientToServer, testing::packet(0x10, 0x01, testing::login7(l))},
            {C::ServerToClient, testing::packet(0x04, 0x01, resp1)},
            {C::ClientToServer, testing::packet(0x11, 0x01, kNtlmAuthenticate)},
            {C::ServerToClient, testing::packet(0x04, 0x01, resp2)}};
}

TEST(ConversationFlows, NtlmLoginFailureWithBlobsInOrder) {
    const Outcome r = play(ntlm_anonymous_failure());
    ASSERT_EQ(r.logins.size(), 1u) << dump(r);
    const LoginRecord& l = r.logins[0];
    EXPECT_EQ(l.outcome, LoginOutcome::Failure);
    EXPECT_EQ(l.auth, AuthKind::Integrated);
    EXPECT_EQ(l.encryption, tds::EncryptionMode::None);
    EXPECT_FALSE(l.encryption_downgraded);
    ASSERT_TRUE(l.error);
    EXPECT_EQ(l.error->number, 18456);
    EXPECT_EQ(l.error->text, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.");
    ASSERT_EQ(l.auth_blobs.size(), 3u);
    EXPECT_EQ(l.auth_blobs[0].source, AuthBlobSource::Login7);
    EXPECT_EQ(l.auth_blobs[1].source, AuthBlobSource::SspiToken);
    EXPECT_EQ(l.auth_blobs[1].dir, Direction::ServerToClient);
    EXPECT_EQ(l.auth_blobs[2].source, AuthBlobSource::SspiPacket);
    EXPECT_EQ(l.auth_blobs[2].length, kNtlmAuthenticate.size());
    ASSERT_EQ(r.blobs.size(), 3u);
    EXPECT_EQ(r.blobs[0].second, kNtlmNegotiate);
    EXPECT_EQ(r.blobs[1].second, kNtlmChallenge);
    EXPECT_EQ(r.blobs[2].second, kNtlmAuthenticate) << "0x11 payload is the raw token";
    EXPECT_EQ(l.last_evidence.frame, 6u);
}

TEST(ConversationFlows, LoginOnlyEncryptionFollowsTlsThenClearTds) {
    // PRELOGIN OFF/OFF -> TLS handshake tunnelled in 0x12 packets (the server's flight split
    // across two packets, records not aligned with packets) -> the first LOGIN7 packet as a raw
    // TLS application-data record -> clear 0x04 response with 0xED + LOGINACK + DONE.
    Buf sflight = testing::tls_record(0x16, testing::server_hello(0xc02f, false));
    testing::append(sflight, testing::tls_record(0x16, testing::handshake(11, Buf(300, 0x30))));
    testing::append(sflight, testing::tls_record(0x16, testing::handshake(14, {})));
    const Buf s1(sflight.begin(), sflight.begin() + 100);
    const Buf s2(sflight.begin() + 100, sflight.end());
    Buf cflight = testing::tls_record(0x16, testing::handshake(16, Buf(70, 0x44)));
    testing::append(cflight, testing::tls_record(0x14, {0x01}));
    testing::append(cflight, testing::tls_record(0x16, Buf(40, 0x99)));  // encrypted Finished
    Buf sfin = testing::tls_record(0x14, {0x01});
    testing::append(sfin, testing::tls_record(0x16, Buf(40, 0x98)));
    Buf resp = testing::sspi_token(testing::from_hex("a1073005a0030a0100"));
    testing::append(resp, testing::loginack("Microsoft SQL Server", 0x74000004, 16, 0, 4218));
    testing::append(resp, testing::done(0));
    const std::vector<Step> steps{
        {C::ClientToServer, prelogin_msg(tds::encrypt::kOff)},
        {C::ServerToClient, prelogin_resp(tds::encrypt::kOff)},
        {C::ClientToServer,
         testing::packet(
             0x12, 0x01,
             testing::tls_record(0x16, testing::client_hello("sqla.lab.test", {}, false)))},
        {C::ServerToClient, testing::packet(0x12, 0x00, s1, 1)},
        {C::ServerToClient, testing::packet(0x12, 0x01, s2, 2)},
        {C::ClientToServer, testing::packet(0x12, 0x01, cflight)},
        {C::ServerToClient, testing::packet(0x12, 0x01, sfin)},
        {C::ClientToServer, testing::tls_record(0x17, Buf(900, 0xEE))},
        {C::ServerToClient, testing::packet(0x04, 0x01, resp)},
        {C::ClientToServer, testing::packet(0x01, 0x01, testing::ucs2("select 1"))},
    };
    const Outcome r = play(steps);
    EXPECT_TRUE(has(r.facts, "encryption mode=login-only")) << dump(r);
    EXPECT_TRUE(has(r.facts, "client_hello sni=sqla.lab.test max=TLS 1.2")) << dump(r);
    EXPECT_TRUE(has(r.facts, "s2c@38 f=4 t=4000 server_hello version=TLS 1.2 cipher=c02f"))
        << dump(r);
    EXPECT_TRUE(has(r.facts, "c2s@131 f=6 t=6000 encrypted handshake 40")) << dump(r);
    EXPECT_TRUE(has(r.facts, "f=8 t=8000 encrypted login7 900")) << dump(r);
    EXPECT_TRUE(has(r.facts, "s2c@480 f=9 t=9000 auth_blob sspi-token 9")) << dump(r);
    EXPECT_TRUE(has(r.facts, "s2c@421 f=7 t=7000 encrypted handshake 40")) << dump(r);
    EXPECT_TRUE(has(r.facts, "loginack Microsoft SQL Server 16.0.4218 tds=74000004")) << dump(r);
    EXPECT_TRUE(has(r.facts, "sql_batch")) << dump(r);
    EXPECT_FALSE(has(r.facts, "problem")) << dump(r);
    ASSERT_EQ(r.logins.size(), 1u);
    const LoginRecord& l = r.logins[0];
    EXPECT_EQ(l.outcome, LoginOutcome::Success);
    EXPECT_EQ(l.encryption, tds::EncryptionMode::LoginOnly);
    EXPECT_TRUE(l.login7_encrypted);
    EXPECT_FALSE(l.login7_seen);
    EXPECT_EQ(l.auth, AuthKind::Integrated);
    EXPECT_EQ(l.auth_detail, "LOGIN7 encrypted; SSPI exchange seen");
    EXPECT_EQ(l.tls_version, 0x0303);
    EXPECT_EQ(l.tls_sni, "sqla.lab.test");
    EXPECT_EQ(r.facts, play(steps, true).facts) << "chunking invariance";
}

TEST(ConversationFlows, LoginOnlySqlAuthIsUnknownBecauseEncrypted) {
    Buf resp = testing::loginack("Microsoft SQL Server", 0x74000004, 16, 0, 4218);
    testing::append(resp, testing::done(0));
    const std::vector<Step> steps{
        {C::ClientToServer, prelogin_msg(tds::encrypt::kOff)},
        {C::ServerToClient, prelogin_resp(tds::encrypt::kOff)},
        {C::ClientToServer,
         testing::packet(0x12, 0x01,
                         testing::tls_record(0x16, testing::client_hello("", {}, true)))},
        {C::ServerToClient,
         testing::packet(0x12, 0x01,
                         testing::tls_record(0x16, testing::server_hello(0x1301, true)))},
        {C::ServerToClient, testing::packet(0x12, 0x01, testing::tls_record(0x17, Buf(50, 1)))},
        {C::ClientToServer, testing::packet(0x12, 0x01, testing::tls_record(0x17, Buf(50, 2)))},
        {C::ClientToServer, testing::tls_record(0x17, Buf(300, 3))},
        {C::ServerToClient, testing::packet(0x04, 0x01, resp)},
    };
    const Outcome r = play(steps);
    ASSERT_EQ(r.logins.size(), 1u) << dump(r);
    EXPECT_EQ(r.logins[0].auth, AuthKind::Unknown);
    EXPECT_EQ(r.logins[0].auth_detail, "LOGIN7 encrypted (login-only TLS)");
    EXPECT_EQ(r.logins[0].tls_version, 0x0304) << "TLS 1.3 via supported_versions";
    EXPECT_EQ(r.logins[0].outcome, LoginOutcome::Success);
}

TEST(ConversationFlows, FullEncryptionReportsEncryptedNotGuessed) {
    const std::vector<Step> steps{
        {C::ClientToServer, prelogin_msg(tds::encrypt::kOn)},
        {C::ServerToClient, prelogin_resp(tds::encrypt::kReq)},
        {C::ClientToServer,
         testing::packet(0x12, 0x01,
                         testing::tls_record(0x16, testing::client_hello("db", {}, false)))},
        {C::ServerToClient,
         testing::packet(0x12, 0x01,
                         testing::tls_record(0x16, testing::server_hello(0xc030, false)))},
        {C::ClientToServer, testing::tls_record(0x17, Buf(400, 4))},
        {C::ServerToClient, testing::tls_record(0x17, Buf(200, 5))},
        {C::ClientToServer, testing::tls_record(0x17, Buf(100, 6))},
    };
    const Outcome r = play(steps);
    EXPECT_TRUE(has(r.facts, "encryption mode=full")) << dump(r);
    EXPECT_TRUE(has(r.facts, "f=5 t=5000 encrypted data 400")) << dump(r);
    EXPECT_TRUE(has(r.facts, "encrypted data 200")) << dump(r);
    EXPECT_FALSE(has(r.facts, "login7 ")) << dump(r);
    ASSERT_EQ(r.logins.size(), 1u);
    EXPECT_EQ(r.logins[0].outcome, LoginOutcome::Incomplete);
    EXPECT_EQ(r.logins[0].outcome_detail, "encrypted");
    EXPECT_EQ(r.logins[0].auth, AuthKind::Unknown);
    EXPECT_EQ(r.logins[0].auth_detail, "LOGIN7 encrypted (TLS for the whole connection)");
    EXPECT_EQ(r.facts, play(steps, true).facts);
}

TEST(ConversationFlows, StrictTlsFromTheFirstByte) {
    // TDS 8.0: ClientHello with ALPN tds/8.0 before any TDS byte [MS-TDS 3.3.5.4].
    const std::vector<Step> steps{
        {C::ClientToServer,
         testing::tls_record(0x16, testing::client_hello("sqlb.lab.test", {"tds/8.0"}, true),
                             0x0301)},
        {C::ServerToClient, testing::tls_record(0x16, testing::server_hello(0x1302, true))},
        {C::ServerToClient, testing::tls_record(0x17, Buf(1000, 7))},
        {C::ClientToServer, testing::tls_record(0x17, Buf(64, 8))},
    };
    const Outcome r = play(steps);
    EXPECT_TRUE(has(r.facts, "c2s@0 f=1 t=1000 encryption mode=strict")) << dump(r);
    EXPECT_TRUE(has(r.facts, "client_hello sni=sqlb.lab.test max=TLS 1.3 alpn=tds/8.0")) << dump(r);
    EXPECT_TRUE(has(r.facts, "server_hello version=TLS 1.3 cipher=1302")) << dump(r);
    ASSERT_EQ(r.logins.size(), 1u);
    EXPECT_EQ(r.logins[0].encryption, tds::EncryptionMode::Strict);
    EXPECT_EQ(r.logins[0].auth_detail, "strict TLS (TDS 8.0)");
    EXPECT_EQ(r.logins[0].tls_alpn, std::vector<std::string>{"tds/8.0"});
    EXPECT_EQ(r.facts, play(steps, true).facts);
}

TEST(ConversationFlows, ImpacketBigEndianVersionAndMultiPacketLogin7) {
    // TDSVersion written big-endian (0x71000001 as 71 00 00 01, see Login7.BigEndianTdsVersion);
    // a Kerberos-sized SSPI blob makes LOGIN7 span three 512-byte packets.
    testing::Login7Spec l;
    l.tds_version_wire = 0x01000071;
    l.flags2 = 0x83;
    l.sspi = Buf(1200, 0x6e);
    Buf resp = testing::loginack("Microsoft SQL Server", 0x71000001, 8, 0, 2039);
    const std::vector<Step> steps{
        {C::ClientToServer, prelogin_msg(tds::encrypt::kNotSup)},
        {C::ServerToClient, prelogin_resp(tds::encrypt::kNotSup)},
        {C::ClientToServer, testing::message(0x10, testing::login7(l), 504)},
        {C::ServerToClient, testing::packet(0x04, 0x01, resp)},
    };
    const Outcome r = play(steps);
    ASSERT_EQ(r.logins.size(), 1u) << dump(r);
    EXPECT_EQ(r.logins[0].tds_version, 0x71000001u);
    EXPECT_TRUE(r.logins[0].tds_version_big_endian);
    EXPECT_EQ(r.logins[0].auth, AuthKind::Integrated);
    ASSERT_EQ(r.blobs.size(), 1u);
    EXPECT_EQ(r.blobs[0].second.size(), 1200u);
    EXPECT_EQ(r.logins[0].outcome, LoginOutcome::Success);
    EXPECT_EQ(r.facts, play(steps, true).facts);
}

TEST(ConversationFlows, FedAuthLoginAndTokenPacketLengthOnly) {
    testing::Login7Spec l;
    l.user = "";
    l.feature_ext = testing::from_hex("02 02000000 05 02");  // FEDAUTH, ADAL, echo, integrated
    Buf token = testing::ucs2("eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu");
    Buf fed;
    testing::put32le(fed, static_cast<std::uint32_t>(token.size() + 4));
    testing::put32le(fed, static_cast<std::uint32_t>(token.size()));
    testing::append(fed, token);
    const std::vector<Step> steps{
        {C::ClientToServer, prelogin_msg(tds::encrypt::kNotSup)},
        {C::ServerToClient, prelogin_resp(tds::encrypt::kNotSup)},
        {C::ClientToServer, testing::packet(0x10, 0x01, testing::login7(l))},
        {C::ClientToServer, testing::packet(0x08, 0x01, fed)},
    };
    const Outcome r = play(steps);
    ASSERT_EQ(r.logins.size(), 1u) << dump(r);
    EXPECT_EQ(r.logins[0].auth, AuthKind::FedAuth);
    ASSERT_TRUE(r.logins[0].fed_auth);
    EXPECT_EQ(r.logins[0].fed_auth->workflow, 0x02);
    EXPECT_TRUE(has(r.facts, "other 8 " + std::to_string(fed.size()) +
                                 " federated authentication token (length only)"));
    for (const auto& f : r.facts)
        EXPECT_EQ(f.find("eyJ"), std::string::npos) << f;
}

TEST(ConversationFlows, PasswordsNeverReachFactsOrRecords) {
    testing::Login7Spec l;
    l.user = "sa";
    l.password = "Winter2026!";
    l.change_password = "Summer2027!";
    l.flags3 = 0x01;
    const Buf login = testing::login7(l);
    // The obfuscated password as it is on the wire, to look for it too.
    Buf obf = testing::ucs2(l.password);
    for (auto& x : obf)
        x = static_cast<std::uint8_t>(((x << 4) | (x >> 4)) ^ 0xA5);
    const std::string obf_hex = to_hex(obf);
    const Outcome r = play({{C::ClientToServer, prelogin_msg(0)},
                            {C::ServerToClient, prelogin_resp(0x02)},
                            {C::ClientToServer, testing::packet(0x10, 0x01, login)}});
    ASSERT_EQ(r.logins.size(), 1u);
    std::vector<std::string> all = r.facts;
    all.push_back(to_string(r.logins[0]));
    all.push_back(r.logins[0].user + r.logins[0].host + r.logins[0].app);
    for (const auto& f : all) {
        EXPECT_EQ(f.find("Winter"), std::string::npos) << f;
        EXPECT_EQ(f.find("Summer"), std::string::npos) << f;
        EXPECT_EQ(f.find(obf_hex.substr(0, 8)), std::string::npos) << f;
    }
    EXPECT_TRUE(r.logins[0].password_present);
    EXPECT_EQ(r.logins[0].password_length, 11u);
    EXPECT_TRUE(r.logins[0].change_password);
    EXPECT_TRUE(r.blobs.empty());
}

TEST(ConversationFlows, MemoryIsCappedAndBigMessagesStream) {
    Conversation::Options o;
    o.max_message = 4096;
    o.request_prefix = 1024;
    testing::Login7Spec l;
    l.flags2 = 0x83;
    l.sspi = Buf(8000, 0x60);
    Buf batch_text = testing::ucs2(std::string(200000, 'x'));
    Buf results;
    for (int i = 0; i < 3000; ++i)
        testing::append(results, testing::done(0x0001, 1));
    testing::append(results, testing::done(0, 0));
    const std::vector<Step> steps{
        {C::ClientToServer, testing::message(0x10, testing::login7(l), 4088)},
        {C::ClientToServer, testing::message(0x01, batch_text, 4088)},
        {C::ServerToClient, testing::message(0x04, results, 4088)},
    };
    const Outcome r = play(steps, false, o);
    EXPECT_TRUE(has(r.facts, "problem malformed too-large LOGIN7 message larger than the limit"))
        << dump(r);
    EXPECT_TRUE(has(r.facts, "truncated")) << "the batch keeps only a prefix";
    EXPECT_LE(r.max_buffered, 65535u + 4096 + 1024) << "one packet + one capped message";
    const Outcome rb = play(steps, true, o);
    EXPECT_LE(rb.max_buffered, 4096u + 1024 + 2 * 4096);
    EXPECT_EQ(r.facts, rb.facts);
}

TEST(ConversationFlows, AttentionRoutingAndGap) {
    Buf resp = testing::loginack("Microsoft SQL Server", 0x74000004, 16, 0, 1000);
    testing::append(resp, testing::routing("replica2.corp.example", 1433));
    testing::append(resp, testing::done(0));
    testing::Login7Spec l;
    l.user = "app";
    l.password = "pw";
    Outcome r = play({{C::ClientToServer, prelogin_msg(0x02)},
                      {C::ServerToClient, prelogin_resp(0x02)},
                      {C::ClientToServer, testing::packet(0x10, 0x01, testing::login7(l))},
                      {C::ServerToClient, testing::packet(0x04, 0x01, resp)},
                      {C::ClientToServer, testing::packet(0x06, 0x01, {})}});
    ASSERT_EQ(r.logins.size(), 1u) << dump(r);
    EXPECT_EQ(r.logins[0].routing_server, "replica2.corp.example:1433");
    EXPECT_TRUE(has(r.facts, "attention"));

    // A gap in the middle of the login response: the attempt ends incomplete, marked.
    FactRecorder rec;
    Conversation conv(rec);
    const Buf pl = prelogin_msg(0x02);
    const Buf lg = testing::packet(0x10, 0x01, testing::login7(l));
    conv.feed(C::ClientToServer, Timestamp{1}, pl, Evidence{1, 0});
    conv.feed(C::ClientToServer, Timestamp{2}, lg, Evidence{2, pl.size()});
    const Buf rp = testing::packet(0x04, 0x01, resp);
    conv.feed(C::ServerToClient, Timestamp{3}, Bytes(rp.data(), 10), Evidence{3, 0});
    conv.gap(C::ServerToClient, Timestamp{4}, 20);
    conv.close(Timestamp{5});
    ASSERT_EQ(rec.logins.size(), 1u);
    EXPECT_EQ(rec.logins[0].outcome, LoginOutcome::Incomplete);
    EXPECT_TRUE(rec.logins[0].gap_seen);
    EXPECT_TRUE(has(rec.facts, "s2c@10 f=3 t=4 gap 20"));
    EXPECT_TRUE(has(rec.facts, "resync skipped=10"));
}

TEST(ConversationFlows, GarbageIsReportedNeverCrashes) {
    Buf junk(5000);
    for (std::size_t i = 0; i < junk.size(); ++i)
        junk[i] = static_cast<std::uint8_t>(i * 37 + 11);
    const Outcome r = play({{C::ClientToServer, junk}, {C::ServerToClient, junk}});
    EXPECT_TRUE(has(r.facts, "resync")) << dump(r);
    EXPECT_TRUE(r.logins.empty());
    // HTTP on the TDS port: nothing frames; at the end the direction is reported as not TDS.
    const std::string http = "GET / HTTP/1.1\r\nHost: sqla\r\n\r\n";
    const Outcome h = play({{C::ClientToServer, Buf(http.begin(), http.end())}});
    EXPECT_TRUE(has(h.facts, "c2s@0 f=1 t=2000 problem not-tds desync 30 bytes without a TDS"))
        << dump(h);
}

Buf load_tls(const std::string& name) {
    std::ifstream in(testing::data_path("tds/tls/" + name), std::ios::binary);
    return Buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<Buf> records_of(const Buf& stream) {
    std::vector<Buf> out;
    std::size_t i = 0;
    while (i + 5 <= stream.size()) {
        const std::size_t n = 5 + load_u16be(&stream[i + 3]);
        out.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(i),
                         stream.begin() + static_cast<std::ptrdiff_t>(i + n));
        i += n;
    }
    return out;
}

TEST(ConversationFlows, RealOpenSslStrictConnection) {
    // tests/data/tds/tls/tls13.*: a real TLS 1.3 handshake with ALPN tds/8.0 from the first byte.
    // tshark: client records 22 (512), 20 (1), 23 (69), 23 (117).
    const std::vector<Step> steps{{C::ClientToServer, load_tls("tls13.c2s")},
                                  {C::ServerToClient, load_tls("tls13.s2c")}};
    const Outcome r = play(steps);
    EXPECT_TRUE(has(r.facts, "c2s@0 f=1 t=1000 encryption mode=strict")) << dump(r);
    EXPECT_TRUE(has(r.facts, "client_hello sni=sqlb.lab.test max=TLS 1.3 alpn=tds/8.0"));
    EXPECT_TRUE(has(r.facts, "server_hello version=TLS 1.3 cipher=1302"));
    EXPECT_TRUE(has(r.facts, "c2s@597 f=1 t=1000 encrypted data 117")) << dump(r);
    EXPECT_FALSE(has(r.facts, "problem")) << dump(r);
    EXPECT_FALSE(has(r.facts, "resync")) << dump(r);
    EXPECT_EQ(r.facts, play(steps, true).facts);
}

TEST(ConversationFlows, RealOpenSsl12TunnelledInPreloginLoginOnly) {
    // The real TLS 1.2 records of tests/data/tds/tls/tls12.* placed as a TDS 7.x client/server
    // would: handshake in 0x12 packets (the server flight split across two packets), then the
    // client's application-data record raw (the encrypted first LOGIN7 packet), then clear TDS.
    const auto c = records_of(load_tls("tls12.c2s"));  // CH, CKE, CCS, Finished, data
    const Buf s2c = load_tls("tls12.s2c");
    ASSERT_EQ(c.size(), 5u);
    Buf cflight2 = c[1];
    testing::append(cflight2, c[2]);
    testing::append(cflight2, c[3]);
    const std::size_t cut = 700;
    Buf resp = testing::sspi_token(testing::from_hex("a1073005a0030a0100"));
    testing::append(
        resp, testing::error_token(18456, 1, 14, "Login failed for user 'LAB\\bob'.", "SQLA"));
    testing::append(resp, testing::done(0x0002));
    const std::vector<Step> steps{
        {C::ClientToServer, prelogin_msg(tds::encrypt::kOff)},
        {C::ServerToClient, prelogin_resp(tds::encrypt::kOff)},
        {C::ClientToServer, testing::packet(0x12, 0x01, c[0])},
        {C::ServerToClient, testing::packet(0x12, 0x00, Buf(s2c.begin(), s2c.begin() + cut), 1)},
        {C::ServerToClient, testing::packet(0x12, 0x01, Buf(s2c.begin() + cut, s2c.end()), 2)},
        {C::ClientToServer, testing::packet(0x12, 0x01, cflight2)},
        {C::ClientToServer, c[4]},
        {C::ServerToClient, testing::packet(0x04, 0x01, resp)},
    };
    const Outcome r = play(steps);
    EXPECT_TRUE(has(r.facts, "server_hello version=TLS 1.2 cipher=c030")) << dump(r);
    EXPECT_TRUE(has(r.facts, "f=7 t=7000 encrypted login7 124")) << dump(r);
    EXPECT_FALSE(has(r.facts, "problem")) << dump(r);
    ASSERT_EQ(r.logins.size(), 1u) << dump(r);
    EXPECT_EQ(r.logins[0].outcome, LoginOutcome::Failure);
    EXPECT_EQ(r.logins[0].error->text, "Login failed for user 'LAB\\bob'.");
    EXPECT_EQ(r.logins[0].auth, AuthKind::Integrated);
    EXPECT_EQ(r.logins[0].tls_version, 0x0303);
    EXPECT_EQ(r.facts, play(steps, true).facts);
}

TEST(ConversationFlows, LoginOnlyLogin7ContinuationAndIgnoredMessage) {
    // A LOGIN7 bigger than one packet in login-only mode: the first packet travels as TLS, the
    // rest in clear 0x10 packets (MS-TDS 2.2.6.5). The continuation cannot be decoded and
    // is reported as such. Then a batch with the IGNORE bit is reported as ignored.
    Buf resp = testing::loginack("Microsoft SQL Server", 0x74000004, 16, 0, 4218);
    testing::append(resp, testing::done(0));
    const std::vector<Step> steps{
        {C::ClientToServer, prelogin_msg(tds::encrypt::kOff)},
        {C::ServerToClient, prelogin_resp(tds::encrypt::kOff)},
        {C::ClientToServer,
         testing::packet(0x12, 0x01,
                         testing::tls_record(0x16, testing::client_hello("", {}, false)))},
        {C::ServerToClient,
         testing::packet(0x12, 0x01,
                         testing::tls_record(0x16, testing::server_hello(0xc02f, false)))},
        {C::ClientToServer, testing::tls_record(0x17, Buf(4100, 1))},
        {C::ClientToServer, testing::packet(0x10, 0x01, Buf(1500, 0x60), 2)},
        {C::ServerToClient, testing::packet(0x04, 0x01, resp)},
        {C::ClientToServer, testing::packet(0x01, 0x03, testing::ucs2("select 1"))},
    };
    const Outcome r = play(steps);
    EXPECT_TRUE(has(r.facts, "encrypted login7 4100")) << dump(r);
    EXPECT_TRUE(has(r.facts, "other 16 1500 LOGIN7 continuation; the first packet was encrypted"))
        << dump(r);
    EXPECT_TRUE(has(r.facts, "other 1 16 ignored (status IGNORE)")) << dump(r);
    EXPECT_FALSE(has(r.facts, "sql_batch")) << dump(r);
    EXPECT_FALSE(has(r.facts, "problem")) << dump(r);
    ASSERT_EQ(r.logins.size(), 1u);
    EXPECT_EQ(r.logins[0].outcome, LoginOutcome::Success);
}

TEST(ConversationFlows, ImpossibleLengthIsATypedErrorThenResync) {
    // Length 3 (< 8) in a header: a bad-length problem, no allocation, and the next packet is
    // found again.
    Buf b = testing::from_hex("0101000300000100");
    testing::append(b, testing::packet(0x01, 0x01, testing::ucs2("select 2")));
    const Outcome r = play({{C::ClientToServer, b}});
    EXPECT_TRUE(has(r.facts, "c2s@0 f=1 t=1000 problem malformed bad-length")) << dump(r);
    EXPECT_TRUE(has(r.facts, "resync skipped=8")) << dump(r);
    EXPECT_TRUE(has(r.facts, "sql_batch \"select 2\"")) << dump(r);
}

TEST(ConversationFlows, TlsAlertAndPreloginResponseWithoutTheRequest) {
    // The client rejects the server certificate: a clear fatal alert 2/42 (bad_certificate)
    // tunnelled in a 0x12 packet [RFC 5246 7.2].
    const Outcome r = play({
        {C::ClientToServer, prelogin_msg(tds::encrypt::kOn)},
        {C::ServerToClient, prelogin_resp(tds::encrypt::kOn)},
        {C::ClientToServer,
         testing::packet(0x12, 0x01,
                         testing::tls_record(0x16, testing::client_hello("sqla", {}, false)))},
        {C::ServerToClient,
         testing::packet(0x12, 0x01,
                         testing::tls_record(0x16, testing::server_hello(0xc02f, false)))},
        {C::ClientToServer, testing::packet(0x12, 0x01, testing::tls_record(0x15, {0x02, 42}))},
    });
    EXPECT_TRUE(has(r.facts, "f=5 t=5000 tls_alert 2/42")) << dump(r);
    // A capture that starts after the client's PRELOGIN: the response is still recognised.
    const Outcome late = play({{C::ServerToClient, prelogin_resp(tds::encrypt::kNotSup)}});
    EXPECT_TRUE(has(late.facts, "s2c@0 f=1 t=1000 prelogin version=15.0.4306")) << dump(late);
    EXPECT_FALSE(has(late.facts, "problem")) << dump(late);
}

Buf smp(std::uint8_t flags, std::uint16_t sid, const Buf& data, std::uint32_t seq = 1) {
    // MC-SMP 2.2.1: SMID 0x53, FLAGS, SID, LENGTH (header included), SEQNUM, WNDW; little-endian.
    Buf b{0x53, flags};
    testing::put16le(b, sid);
    testing::put32le(b, static_cast<std::uint32_t>(16 + data.size()));
    testing::put32le(b, seq);
    testing::put32le(b, 4);
    testing::append(b, data);
    return b;
}

TEST(ConversationFlows, MarsSpecSampleFirstCommandInASession) {
    // MC-SMP 4.3 "First Command in a Session": DATA, SID 5, LENGTH 0x60, SEQNUM 1, WNDW 4, carrying
    // a SQL batch "SET QUOTED_IDENTIFIER OFF" (TDS 7.2 ALL_HEADERS).
    const Buf b = testing::from_hex(
        "53 08 05 00 60 00 00 00 01 00 00 00 04 00 00 00"
        "01 01 00 50 00 00 01 00 16 00 00 00 12 00 00 00 02 00 00 00 00 00 00 00 00 00 01 00 00 00"
        "53 00 45 00 54 00 20 00 51 00 55 00 4F 00 54 00 45 00 44 00 5F 00 49 00 44 00 45 00 4E 00"
        "54 00 49 00 46 00 49 00 45 00 52 00 20 00 4F 00 46 00 46 00");
    ASSERT_EQ(b.size(), 0x60u);
    const Outcome r = play({{C::ClientToServer, b}});
    EXPECT_TRUE(has(r.facts, "c2s@0 f=1 t=1000 sql_batch \"SET QUOTED_IDENTIFIER OFF\""))
        << dump(r);
    EXPECT_FALSE(has(r.facts, "problem")) << dump(r);
    const Outcome late = play({{C::ClientToServer, b}}, false, [] {
        Conversation::Options o;
        o.handshake_seen = false;
        return o;
    }());
    EXPECT_TRUE(has(late.facts, "sql_batch \"SET QUOTED_IDENTIFIER OFF\"")) << dump(late);
}

// SQL batch payload for TDS 7.2+: ALL_HEADERS with a transaction descriptor header [MS-TDS
// 2.2.5.3], then the UCS-2 text.
Buf batch72(const std::string& text) {
    Buf b = testing::from_hex("16000000 12000000 0200 0000000000000000 01000000");
    testing::append(b, testing::ucs2(text));
    return b;
}

TEST(ConversationFlows, MarsLoginAndInterleavedSessions) {
    // PRELOGIN with MARS on, then SMP: LOGIN7 on session 0 split over two DATA packets (a TDS
    // packet straddles them), the login response on session 0, then two sessions whose batches
    // interleave (session 0's batch is two TDS packets with session 1's batch in between).
    testing::Login7Spec l;
    l.user = "app";
    l.password = "x";
    const Buf login = testing::packet(0x10, 0x01, testing::login7(l));
    Buf resp = testing::loginack("Microsoft SQL Server", 0x74000004, 16, 0, 4218);
    testing::append(resp, testing::done(0));
    const Buf b0 = testing::message(0x01, batch72("select 'first half and second half'"), 30);
    const std::size_t first_packet = 8 + 30;
    const std::vector<Step> steps{
        {C::ClientToServer, prelogin_msg(tds::encrypt::kNotSup)},
        {C::ServerToClient, prelogin_resp(tds::encrypt::kNotSup)},
        {C::ClientToServer, smp(0x01, 0, {})},
        {C::ClientToServer, smp(0x08, 0, Buf(login.begin(), login.begin() + 50), 1)},
        {C::ClientToServer, smp(0x08, 0, Buf(login.begin() + 50, login.end()), 2)},
        {C::ServerToClient, smp(0x08, 0, testing::packet(0x04, 0x01, resp), 1)},
        {C::ClientToServer, smp(0x01, 1, {})},
        {C::ClientToServer,
         smp(0x08, 0, Buf(b0.begin(), b0.begin() + static_cast<std::ptrdiff_t>(first_packet)), 3)},
        {C::ClientToServer,
         smp(0x08, 1, testing::packet(0x01, 0x01, batch72("select 'other session'")), 1)},
        {C::ClientToServer,
         smp(0x08, 0, Buf(b0.begin() + static_cast<std::ptrdiff_t>(first_packet), b0.end()), 4)},
        {C::ServerToClient, smp(0x02, 0, {}, 2)},
        {C::ClientToServer, smp(0x04, 1, {}, 2)},
    };
    const Outcome r = play(steps);
    EXPECT_FALSE(has(r.facts, "problem")) << dump(r);
    EXPECT_FALSE(has(r.facts, "resync")) << dump(r);
    EXPECT_TRUE(has(r.facts, "f=5 t=5000 login7 tds=7.4")) << dump(r);
    EXPECT_TRUE(has(r.facts, "f=6 t=6000 loginack Microsoft SQL Server 16.0.4218")) << dump(r);
    EXPECT_TRUE(has(r.facts, "f=9 t=9000 sql_batch \"select 'other session'\"")) << dump(r);
    EXPECT_TRUE(has(r.facts, "f=10 t=10000 sql_batch \"select 'first half and second half'\""))
        << dump(r);
    ASSERT_EQ(r.logins.size(), 1u);
    EXPECT_EQ(r.logins[0].outcome, LoginOutcome::Success);
    EXPECT_EQ(r.logins[0].user, "app");
    EXPECT_EQ(r.facts, play(steps, true).facts);
}

}  // namespace
}  // namespace hopscope::session
