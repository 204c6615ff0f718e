// Tests of the lab server's byte handling on real traffic: the fixtures in data/ are TDS messages
// from the committed lab captures (captures/lab/*.pcap, extracted by data/extract.py with tshark
// as the reference reader). Where possible the project's own decoder is used as the independent
// second reader of what the lab encodes.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "hopscope/auth/gss.hpp"
#include "hopscope/auth/ntlm.hpp"
#include "hopscope/auth/sspi.hpp"
#include "hopscope/tds/login7.hpp"
#include "hopscope/tds/prelogin.hpp"
#include "hopscope/tds/tokens.hpp"
#include "wire.hpp"

namespace hopscope::lab {
namespace {

Buffer fixture(const std::string& name) {
    std::ifstream in(std::string(HOPSCOPE_LAB_DATA_DIR) + "/" + name + ".hex");
    EXPECT_TRUE(in.good()) << name;
    Buffer out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        for (std::size_t i = 0; i + 1 < line.size(); i += 2)
            out.push_back(static_cast<std::uint8_t>(std::stoul(line.substr(i, 2), nullptr, 16)));
    }
    return out;
}

std::uint32_t ntlm_flags(const Buffer& m, std::size_t at) {
    return load_u32le(m.data() + at);
}

Buffer sspi_of(const std::string& login7_fixture) {
    auto li = parse_login7(fixture(login7_fixture), nullptr, nullptr);
    EXPECT_TRUE(li.has_value()) << login7_fixture;
    return li ? li->sspi : Buffer{};
}

// ------------------------------------------------------------------------------ framing, PRELOGIN
TEST(LabFraming, SplitsAtThePacketSizeWithEomOnTheLastPacket) {
    Buffer payload(1000, 0x5A);
    const Buffer wire = frame_packets(pkt::Reply, payload, 512);
    ASSERT_EQ(wire.size(), 1000u + 2 * 8);
    // MS-TDS 2.2.3.1: type, status (EOM 0x01), length BE incl. header, SPID, packet id, window
    EXPECT_EQ(wire[0], 0x04);
    EXPECT_EQ(wire[1], 0x00);
    EXPECT_EQ(load_u16be(wire.data() + 2), 512);
    EXPECT_EQ(wire[6], 1);
    EXPECT_EQ(wire[512], 0x04);
    EXPECT_EQ(wire[513], 0x01);
    EXPECT_EQ(load_u16be(wire.data() + 514), 1000 - 504 + 8);
    EXPECT_EQ(wire[518], 2);
}

TEST(LabPrelogin, ServerAnswerHasExactlyTheFourOptionsImpacketReads) {
    for (std::uint8_t e : {enc::NotSup, enc::Off, enc::On, enc::Req}) {
        tds::Prelogin p;
        DecodeResult res;
        ASSERT_EQ((res = tds::parse_prelogin(build_prelogin_response(e), p)).status(),
                  DecodeStatus::Consumed)
            << res.error().detail;
        ASSERT_EQ(p.options.size(), 4u);
        EXPECT_EQ(p.options[0].token, 0x00);  // VERSION first [MS-TDS 2.2.6.5]
        EXPECT_EQ(p.options[1].token, 0x01);
        EXPECT_EQ(p.options[2].token, 0x02);
        EXPECT_EQ(p.options[3].token, 0x03);
        EXPECT_EQ(p.options[0].offset, 21);  // impacket assumes 4 options: data starts at 21
        ASSERT_TRUE(p.encryption);
        EXPECT_EQ(*p.encryption, e);
        ASSERT_TRUE(p.version);
        EXPECT_EQ(p.version->major, 16);
    }
}

TEST(LabPrelogin, ProviderRequestReadsBackWithTheDecoder) {
    tds::Prelogin p;
    DecodeResult res;
    ASSERT_EQ((res = tds::parse_prelogin(build_prelogin_request(enc::NotSup), p)).status(),
              DecodeStatus::Consumed);
    EXPECT_EQ(p.encryption, enc::NotSup);
    EXPECT_EQ(p.instance, "MSSQLServer");
    EXPECT_EQ(p.mars, 0);
    auto mine = parse_prelogin(build_prelogin_request(enc::Off));
    ASSERT_TRUE(mine);
    EXPECT_EQ(mine->encryption, enc::Off);
}

// ------------------------------------------------------------------------------ LOGIN7
TEST(LabLogin7, SqlLoginPasswordIsCheckedButNeverPartOfTheResult) {
    const Buffer raw = fixture("login7_freetds_sql");
    SecretString pw;
    auto li = parse_login7(raw, &pw, nullptr);
    ASSERT_TRUE(li);
    EXPECT_EQ(li->user, "sa");
    EXPECT_FALSE(li->integrated);
    EXPECT_EQ(li->password_chars, 7u);
    EXPECT_TRUE(pw.equals("S3cret!"));  // the lab's SQL login (tools/lab/run)
    EXPECT_FALSE(pw.equals("S3cret"));
    EXPECT_FALSE(pw.equals("S3cret!!"));
    // Without a SecretString the password is not decoded at all; the decoder's text has no trace.
    auto li2 = parse_login7(raw, nullptr, nullptr);
    ASSERT_TRUE(li2);
    tds::Login7 l;
    Bytes sspi;
    DecodeResult res;
    ASSERT_EQ((res = tds::parse_login7(raw, l, sspi)).status(), DecodeStatus::Consumed);
    EXPECT_EQ(tds::to_string(l).find("S3cret"), std::string::npos);
    pw.wipe();
    EXPECT_EQ(pw.size(), 0u);
}

TEST(LabLogin7, FreeTdsKerberosWithDelegationCarriesARawKrb5ApReq) {
    auto li = parse_login7(fixture("login7_freetds_krb_deleg"), nullptr, nullptr);
    ASSERT_TRUE(li);
    EXPECT_TRUE(li->integrated);
    EXPECT_TRUE(li->user.empty());
    EXPECT_EQ(li->tds_version, kTds74);
    EXPECT_EQ(gssframe::classify(li->sspi), gssframe::Kind::RawKrb5);
    const auto info = auth::classify_sspi(li->sspi);
    EXPECT_EQ(info.mechanism, auth::SspiMechanism::Kerberos);
    EXPECT_EQ(info.krb_tok_id, 0x0100);  // AP-REQ [RFC 4121 4.1]
    EXPECT_GT(li->sspi.size(), 1200u);   // the forwarded TGT (KRB-CRED) makes it large
}

TEST(LabLogin7, ImpacketWritesTds71ByteSwappedAndIsNormalised) {
    auto li = parse_login7(fixture("login7_impacket_ntlm"), nullptr, nullptr);
    ASSERT_TRUE(li);
    EXPECT_EQ(li->tds_version >> 24, 0x71u);
    EXPECT_TRUE(li->old_tds());
    EXPECT_EQ(gssframe::classify(li->sspi), gssframe::Kind::RawNtlm);
    EXPECT_EQ(li->sspi.size(), 32u);  // impacket's NEGOTIATE has no Version field
}

TEST(LabLogin7, ProviderLoginReadsBackWithTheDecoderAndMatchesTheCapture) {
    Login7Request q;
    q.host = "SQLA";
    q.app = "Microsoft SQL Server";
    q.server = "sqlb.lab.test";
    q.sspi = {0x60, 0x01, 0x02, 0x03};
    const Buffer b = build_login7(q);
    tds::Login7 l;
    Bytes sspi;
    DecodeResult res;
    ASSERT_EQ((res = tds::parse_login7(b, l, sspi)).status(), DecodeStatus::Consumed)
        << res.error().detail;
    EXPECT_EQ(l.tds_version, tds::tds_version::k74);
    EXPECT_TRUE(l.integrated_security());
    EXPECT_EQ(l.host, "SQLA");
    EXPECT_EQ(l.library, "OLEDB");
    EXPECT_EQ(l.db, "master");
    EXPECT_EQ(Buffer(sspi.begin(), sspi.end()), q.sspi);
    EXPECT_FALSE(l.password_present);
    // the captured A->B login was produced by the same code
    auto li = parse_login7(fixture("login7_a_to_b_krb"), nullptr, nullptr);
    ASSERT_TRUE(li);
    EXPECT_EQ(li->host, "SQLA");
    EXPECT_EQ(li->app, "Microsoft SQL Server");
    EXPECT_EQ(li->server, "sqlb.lab.test");
    EXPECT_EQ(gssframe::classify(li->sspi), gssframe::Kind::RawKrb5);
}

// ------------------------------------------------------------------------------ NTLM fixes
TEST(LabNtlm, FreeTdsNegotiateGetsRequestTargetAndNothingElse) {
    const Buffer orig = sspi_of("login7_freetds_ntlm");
    ASSERT_EQ(orig.size(), 45u);
    EXPECT_EQ(ntlm_flags(orig, 12), 0x0008b201u);  // no REQUEST_TARGET (MS-NLMP 2.2.2.5)
    Buffer m = orig;
    EXPECT_NE(ntlm::fix_negotiate(m), "");
    EXPECT_EQ(ntlm_flags(m, 12), 0x0008b205u);
    m[12] = orig[12];
    EXPECT_EQ(m, orig);
    Buffer again = orig;
    ntlm::fix_negotiate(again);
    EXPECT_EQ(ntlm::fix_negotiate(again), "");
}

TEST(LabNtlm, ImpacketNegotiateIsPaddedTo40Bytes) {
    Buffer m = sspi_of("login7_impacket_ntlm");
    ASSERT_EQ(m.size(), 32u);
    EXPECT_NE(ntlm::fix_negotiate(m), "");
    EXPECT_EQ(m.size(), 40u);
    EXPECT_EQ(ntlm_flags(m, 12), 0xa0880205u);  // REQUEST_TARGET was already there
}

TEST(LabNtlm, FreeTdsAuthenticateLosesTheVersionFlagItHasNoFieldFor) {
    Buffer m = fixture("sspi_freetds_ntlmv2_authenticate");
    ASSERT_EQ(ntlm::message_type(m), 3u);
    ASSERT_TRUE(ntlm_flags(m, 60) & ntlm::kVersion);
    EXPECT_NE(ntlm::fix_authenticate(m), "");
    EXPECT_FALSE(ntlm_flags(m, 60) & ntlm::kVersion);
    EXPECT_EQ(ntlm::fix_nt_length(m), "");  // a proper NTLMv2 length: untouched
    Buffer imp = fixture("sspi_impacket_ntlmv2_authenticate");
    EXPECT_EQ(ntlm::fix_authenticate(imp), "");
}

TEST(LabNtlm, TediousNtResponseLengthIsExtendedOverItsBlob) {
    Buffer m = fixture("sspi_tedious_authenticate");
    auto before = ntlm::parse_authenticate(m);
    ASSERT_TRUE(before);
    EXPECT_EQ(before->nt_len, 16);
    EXPECT_NE(ntlm::fix_nt_length(m), "");
    EXPECT_EQ(load_u16le(m.data() + 20), m.size() - load_u32le(m.data() + 24));
    auth::NtlmMessage nm;
    ASSERT_TRUE(auth::parse_ntlm(m, nm).ok());
    const auto& a = std::get<auth::NtlmAuthenticate>(nm.msg);
    EXPECT_EQ(a.response_kind, auth::NtlmResponseKind::V2);
    EXPECT_EQ(a.user, "alice");
}

TEST(LabNtlm, AnonymousIsJudgedFromTheFieldsNotTheFlag) {
    auto imp = ntlm::parse_authenticate(fixture("sspi_impacket_anonymous_authenticate"));
    ASSERT_TRUE(imp);
    EXPECT_TRUE(imp->anonymous);
    EXPECT_FALSE(imp->flags & ntlm::kAnonymous);  // impacket does not set it
    EXPECT_EQ(imp->lm_len, 1);
    EXPECT_EQ(imp->nt_len, 0);
    auto ours = ntlm::parse_authenticate(fixture("sspi_a_to_b_anonymous_authenticate"));
    ASSERT_TRUE(ours);
    EXPECT_TRUE(ours->anonymous);
    EXPECT_TRUE(ours->flags & ntlm::kAnonymous);
    EXPECT_EQ(ours->workstation, "SQLA");
    auto alice = ntlm::parse_authenticate(fixture("sspi_freetds_ntlmv2_authenticate"));
    ASSERT_TRUE(alice);
    EXPECT_FALSE(alice->anonymous);
    EXPECT_EQ(alice->user, "alice");
    EXPECT_EQ(alice->domain, "LAB");
    EXPECT_EQ(alice->ntlm_version, 2);
}

TEST(LabNtlm, AnonymousMessagesAreWhatTheCaptureHolds) {
    EXPECT_EQ(ntlm::build_anonymous_authenticate("SQLA"),
              fixture("sspi_a_to_b_anonymous_authenticate"));
    auth::NtlmMessage nm;
    ASSERT_TRUE(auth::parse_ntlm(ntlm::build_anonymous_negotiate(), nm).ok());
    EXPECT_EQ(nm.type, 1u);
}

// ------------------------------------------------------------------------------ GSS framing
TEST(LabGss, ImpacketSpnegoWithABareApReqIsRewrappedAsKrb5) {
    const Buffer spnego = sspi_of("login7_impacket_krb_spnego");
    ASSERT_EQ(gssframe::classify(spnego), gssframe::Kind::Spnego);
    const auto before = auth::classify_sspi(spnego);
    EXPECT_EQ(before.wrapper, auth::SspiWrapper::Spnego);
    auto w = gssframe::rewrap_spnego_bare_apreq(spnego);
    ASSERT_TRUE(w);
    auth::GssInitialToken g;
    ASSERT_TRUE(auth::parse_gss_initial(*w, g).ok());
    // RFC 4121 4.1: krb5 OID, TOK_ID 01 00, then the AP-REQ ([APPLICATION 14] = 0x6E)
    ASSERT_GE(g.inner.size(), 3u);
    EXPECT_EQ(g.inner[0], 0x01);
    EXPECT_EQ(g.inner[1], 0x00);
    EXPECT_EQ(g.inner[2], 0x6E);
    const auto after = auth::classify_sspi(*w);
    EXPECT_EQ(after.mechanism, auth::SspiMechanism::Kerberos);
    EXPECT_EQ(after.krb_tok_id, 0x0100);
    EXPECT_EQ(gssframe::classify(*w), gssframe::Kind::RawKrb5);
    // the AP-REQ itself is carried over unchanged: it is the tail of both tokens
    const std::size_t apreq = g.inner.size() - 2;
    EXPECT_TRUE(std::equal(w->end() - static_cast<std::ptrdiff_t>(apreq), w->end(),
                           spnego.end() - static_cast<std::ptrdiff_t>(apreq)));
}

TEST(LabGss, OnlySpnegoWithABareApReqIsRewrapped) {
    EXPECT_FALSE(gssframe::rewrap_spnego_bare_apreq(sspi_of("login7_freetds_krb_deleg")));
    EXPECT_FALSE(gssframe::rewrap_spnego_bare_apreq(sspi_of("login7_freetds_ntlm")));
    EXPECT_EQ(gssframe::classify(Buffer{0x30, 0x00}), gssframe::Kind::Unknown);
}

// ------------------------------------------------------------------------------ tokens
struct Collect : tds::TokenSink {
    std::vector<tds::ServerMessage> msgs;
    std::vector<tds::Done> dones;
    std::vector<tds::EnvChange> envs;
    std::optional<tds::LoginAck> ack;
    void on_message(const tds::ServerMessage& m) override { msgs.push_back(m); }
    void on_done(const tds::Done& d) override { dones.push_back(d); }
    void on_env_change(const tds::EnvChange& e) override { envs.push_back(e); }
    void on_login_ack(const tds::LoginAck& a) override { ack = a; }
};

TEST(LabTokens, AnonymousLoginFailureFromBReadsTheSameInBothParsers) {
    const Buffer reply = fixture("reply_b_anonymous_18456");
    auto r = parse_reply(reply, nullptr);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->errors.size(), 1u);
    EXPECT_EQ(r->errors[0].number, 18456u);
    EXPECT_EQ(r->errors[0].state, 1);
    EXPECT_EQ(r->errors[0].cls, 14);
    EXPECT_EQ(r->errors[0].text, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.");
    EXPECT_TRUE(r->done_error);
    EXPECT_FALSE(r->loginack);
    Collect c;
    tds::TokenStreamParser p(c);
    ASSERT_EQ(p.feed(reply, true).status(), DecodeStatus::Consumed);
    ASSERT_EQ(c.msgs.size(), 1u);
    EXPECT_TRUE(c.msgs[0].is_error);
    EXPECT_EQ(c.msgs[0].number, 18456);
    EXPECT_EQ(c.msgs[0].server, "SQLB");
    ASSERT_EQ(c.dones.size(), 1u);
    EXPECT_TRUE(c.dones[0].error());
}

TEST(LabTokens, MiddleServerRelays18456Then7303) {
    auto r = parse_reply(fixture("reply_a_relayed_18456_7303"), nullptr);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->errors.size(), 2u);
    EXPECT_EQ(r->errors[0].number, 18456u);
    EXPECT_EQ(r->errors[0].server, "SQLB");
    EXPECT_EQ(r->errors[1].number, 7303u);
    EXPECT_EQ(r->errors[1].cls, 16);
    EXPECT_EQ(r->errors[1].text,
              "Cannot initialize the data source object of OLE DB provider \"MSOLEDBSQL\" for "
              "linked server \"SQLB\".");
    EXPECT_TRUE(r->done_error);
}

TEST(LabTokens, SuccessfulLoginReplyReadsWithTheDecoder) {
    Collect c;
    tds::TokenStreamParser p(c);
    ASSERT_EQ(p.feed(fixture("reply_login_ok_sql"), true).status(), DecodeStatus::Consumed);
    ASSERT_TRUE(c.ack);
    EXPECT_EQ(c.ack->tds_version, 0x74000004u);  // BE on the wire [MS-TDS 2.2.7.14]
    EXPECT_EQ(c.ack->prog_name, "Microsoft SQL Server");
    bool db = false, packet = false;
    for (const auto& e : c.envs) {
        db |= e.type == 1 && e.new_value == "master";
        packet |= e.type == 4 && e.new_value == "4096";
    }
    EXPECT_TRUE(db);
    EXPECT_TRUE(packet);
    ASSERT_FALSE(c.dones.empty());
    EXPECT_FALSE(c.dones.back().error());
}

TEST(LabTokens, DoneRowCountIsFourBytesForTds71AndEightLater) {
    TokenWriter old(true), cur(false);
    old.done(kDoneCount, 0xC1, 3);
    cur.done(kDoneCount, 0xC1, 3);
    EXPECT_EQ(old.bytes().size(), 1u + 2 + 2 + 4);
    EXPECT_EQ(cur.bytes().size(), 1u + 2 + 2 + 8);
    Collect c;
    tds::TokenStreamParser p(c);
    p.set_tds_version(0x71000001);
    ASSERT_EQ(p.feed(old.bytes(), true).status(), DecodeStatus::Consumed);
    ASSERT_EQ(c.dones.size(), 1u);
    EXPECT_EQ(c.dones[0].row_count, 3u);
}

TEST(LabTokens, ResultSetRoundTrip) {
    TokenWriter tw(false);
    tw.result({"name"}, {{"master"}, {"tempdb"}});
    tw.done(kDoneCount, 0xC1, 2);
    auto r = parse_reply(tw.bytes(), nullptr);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->columns, std::vector<std::string>{"name"});
    ASSERT_EQ(r->rows.size(), 2u);
    EXPECT_EQ(r->rows[1][0], "tempdb");
    TokenWriter ti(false);
    ti.result({""}, {{"1"}}, true);
    auto ri = parse_reply(ti.bytes(), nullptr);
    ASSERT_TRUE(ri);
    EXPECT_EQ(ri->rows.at(0).at(0), "1");
}

TEST(LabSqlBatch, AllHeadersAreSkippedForTds72AndLater) {
    const Buffer b = build_sql_batch("select suser_sname()");
    EXPECT_EQ(parse_sql_batch(b, false), "select suser_sname()");
    EXPECT_EQ(parse_sql_batch(ucs2("select 1"), true), "select 1");
    EXPECT_FALSE(parse_sql_batch(Buffer{0xFF, 0xFF, 0, 0}, false));  // header longer than batch
}

// ------------------------------------------------------------------------------ hostile input
TEST(LabHostile, TruncatedAndCorruptedRealInputsAreRejectedOrReadSafely) {
    const char* names[] = {"login7_freetds_ntlm",
                           "login7_freetds_sql",
                           "login7_freetds_krb_deleg",
                           "login7_impacket_krb_spnego",
                           "sspi_freetds_ntlmv2_authenticate",
                           "sspi_tedious_authenticate",
                           "sspi_impacket_anonymous_authenticate",
                           "reply_b_anonymous_18456",
                           "reply_a_relayed_18456_7303",
                           "reply_login_ok_sql"};
    auto all = [](const Buffer& b) {
        SecretString pw;
        (void)parse_login7(b, &pw, nullptr);
        (void)parse_reply(b, nullptr);
        (void)parse_prelogin(b);
        (void)parse_sql_batch(b, false);
        (void)ntlm::parse_authenticate(b);
        (void)gssframe::classify(b);
        (void)gssframe::rewrap_spnego_bare_apreq(b);
        Buffer c = b;
        (void)ntlm::fix_negotiate(c);
        (void)ntlm::fix_authenticate(c);
        (void)ntlm::fix_nt_length(c);
    };
    for (const char* n : names) {
        const Buffer full = fixture(n);
        for (std::size_t len = 0; len < full.size(); ++len)
            all(Buffer(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len)));
        for (std::size_t i = 0; i < full.size(); ++i) {
            for (std::uint8_t x : {0x01, 0x80, 0xFF}) {
                Buffer b = full;
                b[i] ^= x;
                all(b);
            }
        }
    }
    // specific rejections
    const Buffer l7 = fixture("login7_freetds_sql");
    EXPECT_FALSE(parse_login7(Buffer(l7.begin(), l7.begin() + 80), nullptr, nullptr));
    const Buffer rep = fixture("reply_b_anonymous_18456");
    EXPECT_FALSE(parse_reply(Buffer(rep.begin(), rep.begin() + 20), nullptr));
    Buffer ted = fixture("sspi_tedious_authenticate");
    ted.resize(80);  // the NT buffer now points past the end
    EXPECT_EQ(ntlm::fix_nt_length(ted), "");
}

}  // namespace
}  // namespace hopscope::lab
