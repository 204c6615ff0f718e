// The decrypted parts of Kerberos messages on hand-built plaintexts (RFC 4120 §5.3, §5.5.1,
// §5.8.1; RFC 4121 §4.1.1; MS-PAC §2.9), and decrypt_ap_req's steps with a stand-in key source
// whose "decryption" returns the cipher text as it is.
#include "hopscope/auth/kerberos_enc.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "fixtures.hpp"
#include "hopscope/auth/kerberos_keys.hpp"
#include "hopscope/common/text.hpp"

namespace hopscope::auth {
namespace {

using test::Buf;
using test::cat;
using test::ctx;
using test::gstring;
using test::integer;
using test::seq;
using test::tlv;
using Code = DecodeError::Code;

const Buf kSessionKey(32, 0xab);
const Buf kSubkey(32, 0xcd);
const Buf kTgtKey(32, 0xef);

Buf principal(std::initializer_list<const char*> comps) {
    Buf names;
    for (const char* c : comps)
        names = cat({names, gstring(c)});
    return seq({ctx(0, integer(1)), ctx(1, tlv(0x30, names))});
}
Buf flags(std::uint32_t v) {
    return tlv(0x03, {0x00, static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
                      static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)});
}
Buf key(std::uint8_t etype, const Buf& value) {
    return seq({ctx(0, integer(etype)), ctx(1, tlv(0x04, value))});
}
Buf time(const char* t) {
    return tlv(0x18, test::str(t));
}
Buf enc_data(std::uint8_t etype, const Buf& cipher) {
    return seq({ctx(0, integer(etype)), ctx(1, integer(3)), ctx(2, tlv(0x04, cipher))});
}
Buf le32(std::uint32_t v) {
    return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
            static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
}
Buf le16(std::uint16_t v) {
    return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8)};
}

/// An NDR-serialised S4U_DELEGATION_INFO (MS-PAC §2.9, MS-RPCE §2.2.6).
Buf s4u_delegation_info(const std::string& target, const std::vector<std::string>& transited) {
    auto utf16 = [](const std::string& s) {
        Buf b;
        for (char c : s)
            b.insert(b.end(), {static_cast<std::uint8_t>(c), 0});
        return b;
    };
    auto pad4 = [](Buf& b) {
        while (b.size() % 4)
            b.push_back(0);
    };
    auto string_body = [&](Buf& b, const std::string& s) {
        const auto n = static_cast<std::uint32_t>(s.size());
        b = cat({b, le32(n), le32(0), le32(n), utf16(s)});
        pad4(b);
    };
    Buf body = cat({le32(0x00020000),  // referent of the top-level pointer
                    le16(static_cast<std::uint16_t>(target.size() * 2)),
                    le16(static_cast<std::uint16_t>(target.size() * 2)), le32(0x00020004),
                    le32(static_cast<std::uint32_t>(transited.size())), le32(0x00020008)});
    string_body(body, target);
    body = cat({body, le32(static_cast<std::uint32_t>(transited.size()))});
    for (std::size_t i = 0; i < transited.size(); ++i) {
        const auto n = static_cast<std::uint16_t>(transited[i].size() * 2);
        body = cat({body, le16(n), le16(n), le32(0x0002000c + 4 * static_cast<std::uint32_t>(i))});
    }
    for (const auto& t : transited)
        string_body(body, t);
    return cat({{0x01, 0x10, 0x08, 0x00, 0xcc, 0xcc, 0xcc, 0xcc},
                le32(static_cast<std::uint32_t>(body.size())),
                le32(0),
                body});
}

/// PACTYPE with one S4U_DELEGATION_INFO buffer and one empty buffer of type 1.
Buf pac(const Buf& s4u) {
    const std::uint32_t header = 8 + 2 * 16;
    Buf b = cat({le32(2), le32(0), le32(11), le32(static_cast<std::uint32_t>(s4u.size())),
                 le32(header), le32(0), le32(1), le32(0), le32(header), le32(0), s4u});
    return b;
}

Buf authorization(const Buf& pac_bytes) {
    const Buf inner = seq({seq({ctx(0, integer(128)), ctx(1, tlv(0x04, pac_bytes))})});
    return seq({seq({ctx(0, integer(1)), ctx(1, tlv(0x04, inner))})});
}

Buf enc_ticket_part(std::uint32_t f, const Buf& ad = {}) {
    Buf fields =
        cat({ctx(0, flags(f)), ctx(1, key(18, kSessionKey)), ctx(2, gstring("LAB.TEST")),
             ctx(3, principal({"alice"})), ctx(4, seq({ctx(0, integer(1)), ctx(1, tlv(0x04, {}))})),
             ctx(5, time("20240102030405Z")), ctx(7, time("20240102130405Z"))});
    if (!ad.empty()) fields = cat({fields, ctx(10, ad)});
    return tlv(0x63, tlv(0x30, fields));
}

Buf gss_checksum(std::uint32_t f, const Buf& deleg) {
    Buf b = cat({le32(16), Buf(16, 0), le32(f)});
    if (f & gss_flag::Deleg)
        b = cat({b, le16(1), le16(static_cast<std::uint16_t>(deleg.size())), deleg});
    return b;
}

Buf authenticator(const Buf& cksum_value) {
    return tlv(
        0x62,
        seq({ctx(0, integer(5)), ctx(1, gstring("LAB.TEST")), ctx(2, principal({"alice"})),
             ctx(3, seq({ctx(0, tlv(0x02, {0x00, 0x80, 0x03})), ctx(1, tlv(0x04, cksum_value))})),
             ctx(4, integer(7)), ctx(5, time("20240102030406Z")), ctx(6, key(18, kSubkey))}));
}

Buf enc_krb_cred_part() {
    return tlv(
        0x7d,
        seq({ctx(0, seq({seq({ctx(0, key(18, kTgtKey)), ctx(1, gstring("LAB.TEST")),
                              ctx(2, principal({"alice"})),
                              ctx(3, flags(ticket_flag::Forwardable | ticket_flag::Forwarded)),
                              ctx(8, gstring("LAB.TEST")),
                              ctx(9, principal({"krbtgt", "LAB.TEST"}))})}))}));
}

Buf krb_cred(std::uint8_t etype, const Buf& enc_part) {
    const Buf ticket = tlv(0x61, seq({ctx(0, integer(5)), ctx(1, gstring("LAB.TEST")),
                                      ctx(2, principal({"krbtgt", "LAB.TEST"})),
                                      ctx(3, enc_data(18, Buf(40, 0x11)))}));
    return tlv(0x76, seq({ctx(0, integer(5)), ctx(1, integer(22)), ctx(2, seq({ticket})),
                          ctx(3, enc_data(etype, enc_part))}));
}

Buf ap_req(const Buf& ticket_plain, const Buf& authenticator_plain) {
    const Buf ticket = tlv(0x61, seq({ctx(0, integer(5)), ctx(1, gstring("LAB.TEST")),
                                      ctx(2, principal({"MSSQLSvc", "sqla.lab.test:1433"})),
                                      ctx(3, enc_data(18, ticket_plain))}));
    return tlv(0x6e, seq({ctx(0, integer(5)), ctx(1, integer(14)), ctx(2, flags(0)), ctx(3, ticket),
                          ctx(4, enc_data(18, authenticator_plain))}));
}

/// "Decrypts" by returning the cipher text: the plaintexts above go where the cipher text goes.
struct ClearKeys : KerberosKeys {
    KeyStatus service = KeyStatus::Ok;
    mutable std::vector<std::pair<std::int32_t, std::string>> calls;  ///< usage, which key
    KeyStatus decrypt(const KeyName& who, std::int32_t usage, Bytes cipher,
                      SecretBuffer& plain) const override {
        calls.emplace_back(usage, who.name.str());
        if (service != KeyStatus::Ok) return service;
        std::copy(cipher.begin(), cipher.end(), plain.reset(cipher.size()));
        return KeyStatus::Ok;
    }
    KeyStatus decrypt(const KeyBlock& k, std::int32_t usage, Bytes cipher,
                      SecretBuffer& plain) const override {
        calls.emplace_back(usage, to_hex(k.bytes()).substr(0, 2));
        std::copy(cipher.begin(), cipher.end(), plain.reset(cipher.size()));
        return KeyStatus::Ok;
    }
};

ApReq parsed(const Buf& b) {
    KerberosMessage m;
    EXPECT_TRUE(parse_kerberos(Bytes(b), m).ok());
    return std::get<ApReq>(m.body);
}

/// No rendering may hold a key: neither the raw bytes nor their hex.
void expect_no_key(const std::string& s) {
    for (const Buf* k : {&kSessionKey, &kSubkey, &kTgtKey}) {
        const std::string raw(k->begin(), k->begin() + 8);
        EXPECT_EQ(s.find(raw), std::string::npos) << s;
        const std::string hex = to_hex(Bytes(*k).first(4));
        EXPECT_EQ(s.find(hex), std::string::npos) << s;
        std::string upper = hex;
        std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
        EXPECT_EQ(s.find(upper), std::string::npos) << s;
    }
}

TEST(KerberosEnc, EncTicketPartWithPacAndS4uDelegationInfo) {
    const Buf b = enc_ticket_part(
        ticket_flag::Forwardable | ticket_flag::OkAsDelegate,
        authorization(pac(s4u_delegation_info("MSSQLSvc/sqlb.lab.test:1433", {"sqla$@LAB.TEST"}))));
    EncTicketPart t;
    const auto r = parse_enc_ticket_part(Bytes(b), t);
    ASSERT_TRUE(r.ok()) << r.error().detail << " at " << r.error().offset;
    EXPECT_EQ(t.cname.str() + "@" + t.crealm, "alice@LAB.TEST");
    EXPECT_EQ(ticket_flags_to_string(t.flags), "forwardable|ok-as-delegate");
    EXPECT_EQ(t.key.etype(), 18);
    EXPECT_TRUE(std::equal(kSessionKey.begin(), kSessionKey.end(), t.key.bytes().begin()));
    EXPECT_EQ(t.authtime, "20240102030405Z");
    EXPECT_EQ(t.authorization.ad_types, (std::vector<std::int32_t>{1, 128}));
    ASSERT_TRUE(t.authorization.pac);
    EXPECT_EQ(t.authorization.pac->buffer_types, (std::vector<std::uint32_t>{11, 1}));
    EXPECT_EQ(t.authorization.pac->s4u2proxy_target, "MSSQLSvc/sqlb.lab.test:1433");
    EXPECT_EQ(t.authorization.pac->s4u_transited, (std::vector<std::string>{"sqla$@LAB.TEST"}));
    expect_no_key(to_string(t));
    EXPECT_NE(to_string(t).find("s4u2proxy-target=MSSQLSvc/sqlb.lab.test:1433"), std::string::npos);
}

TEST(KerberosEnc, PaddingAfterThePlaintextIsAllowed) {
    Buf b = enc_ticket_part(0);
    b.insert(b.end(), 7, 0);  // des/rc4 plaintexts come padded
    EncTicketPart t;
    EXPECT_TRUE(parse_enc_ticket_part(Bytes(b), t).ok());
}

TEST(KerberosEnc, BrokenPlaintextsAreTypedErrors) {
    EncTicketPart t;
    Authenticator a;
    EncKrbCredPart c;
    EncKdcRepPart k;
    EXPECT_EQ(parse_enc_ticket_part({}, t).error().code, Code::Truncated);
    EXPECT_EQ(parse_authenticator(Bytes(enc_ticket_part(0)), a).error().code, Code::BadTag);
    const Buf b = enc_ticket_part(0);
    for (std::size_t n = 0; n < b.size(); ++n) {
        const auto r = parse_enc_ticket_part(Bytes(b).first(n), t);
        EXPECT_EQ(r.status(), DecodeStatus::Malformed) << n;
    }
    // An authenticator without ctime.
    const Buf no_ctime = tlv(0x62, seq({ctx(0, integer(5)), ctx(1, gstring("R")),
                                        ctx(2, principal({"a"})), ctx(4, integer(1))}));
    const auto r = parse_authenticator(Bytes(no_ctime), a);
    EXPECT_EQ(r.error().code, Code::BadValue);
    EXPECT_EQ(r.error().detail, "missing Authenticator field");
    EXPECT_FALSE(parse_enc_krb_cred_part(Bytes(no_ctime), c).ok());
    EXPECT_FALSE(parse_enc_kdc_rep_part(Bytes(no_ctime), k).ok());
}

TEST(KerberosEnc, GssChecksumFields) {
    GssChecksum g;
    ASSERT_TRUE(parse_gss_checksum(Bytes(gss_checksum(0x3e, {})), g).ok());
    EXPECT_EQ(gss_flags_to_string(g.flags), "mutual|replay|sequence|conf|integ");
    EXPECT_FALSE(g.dlg_opt);
    EXPECT_FALSE(g.channel_binding);
    // Bnd (bytes 4-19, RFC 4121 4.1.1): any non-zero byte is a channel binding.
    Buf bound = gss_checksum(0x3e, {});
    bound[19] = 0x01;
    ASSERT_TRUE(parse_gss_checksum(Bytes(bound), g).ok());
    EXPECT_TRUE(g.channel_binding);

    const Buf cred = krb_cred(0, enc_krb_cred_part());
    ASSERT_TRUE(parse_gss_checksum(Bytes(gss_checksum(0x3f, cred)), g).ok());
    EXPECT_EQ(g.dlg_opt, 1);
    EXPECT_EQ(g.deleg.size(), cred.size());
    EXPECT_EQ(g.extensions_len, 0u);

    Buf bad = gss_checksum(0x3f, cred);
    EXPECT_EQ(parse_gss_checksum(Bytes(bad).first(23), g).error().code, Code::Truncated);
    EXPECT_EQ(parse_gss_checksum(Bytes(bad).first(26), g).error().code, Code::Truncated);
    EXPECT_EQ(parse_gss_checksum(Bytes(bad).first(bad.size() - 1), g).error().code,
              Code::Truncated);
    bad[0] = 15;
    EXPECT_EQ(parse_gss_checksum(Bytes(bad), g).error().code, Code::BadValue);
}

TEST(KerberosEnc, PacOutsideItsBuffersIsAnError) {
    PacInfo p;
    Buf b = pac(s4u_delegation_info("x", {}));
    b[12] = 0xff;  // first buffer's size
    EXPECT_EQ(parse_pac(Bytes(b), p).error().code, Code::BadLength);
    EXPECT_EQ(parse_pac(Bytes(b).first(20), p).error().code, Code::Truncated);
}

TEST(KerberosEnc, DecryptApReqFollowsTicketAuthenticatorAndKrbCred) {
    for (std::uint8_t cred_etype : {std::uint8_t{0}, std::uint8_t{18}}) {
        SCOPED_TRACE(cred_etype);
        const Buf cred = krb_cred(cred_etype, enc_krb_cred_part());
        const Buf b = ap_req(enc_ticket_part(ticket_flag::Forwardable | ticket_flag::OkAsDelegate),
                             authenticator(gss_checksum(0x3f, cred)));
        ClearKeys keys;
        const ApReqFacts f = decrypt_ap_req(parsed(b), keys);
        ASSERT_TRUE(f.ok()) << to_string(f);
        EXPECT_EQ(f.ticket.client, "alice@LAB.TEST");
        EXPECT_TRUE(f.deleg);
        EXPECT_TRUE(f.krb_cred_decrypted);
        EXPECT_TRUE(f.forwarded_tgt);
        EXPECT_EQ(f.forwarded_tgt_client, "alice@LAB.TEST");
        EXPECT_EQ(f.forwarded_tgt_flags, ticket_flag::Forwardable | ticket_flag::Forwarded);
        // Ticket with the service key (2), authenticator (11) and KRB-CRED (14) with the session
        // key (0xab...); an enctype-0 KRB-CRED is read as it is.
        std::vector<std::pair<std::int32_t, std::string>> want{{2, "MSSQLSvc/sqla.lab.test:1433"},
                                                               {11, "ab"}};
        if (cred_etype) want.emplace_back(14, "ab");
        EXPECT_EQ(keys.calls, want);
        const std::string s = to_string(f);
        expect_no_key(s);
        EXPECT_EQ(s,
                  "ticket client=alice@LAB.TEST flags=forwardable|ok-as-delegate "
                  "authtime=20240102030405Z session-key=aes256-cts-hmac-sha1-96 authenticator "
                  "cksum=32771 gss-flags=deleg|mutual|replay|sequence|conf|integ krb-cred "
                  "tickets=1 forwarded-tgt flags=forwardable|forwarded client=alice@LAB.TEST");
        Authenticator a;
        ASSERT_TRUE(parse_authenticator(Bytes(authenticator(gss_checksum(0x3f, cred))), a).ok());
        expect_no_key(to_string(a));
        EncKrbCredPart c;
        ASSERT_TRUE(parse_enc_krb_cred_part(Bytes(enc_krb_cred_part()), c).ok());
        expect_no_key(to_string(c));
    }
}

TEST(KerberosEnc, DecryptApReqProblemsAreTypedAndKeepEarlierFacts) {
    const Buf good_ticket = enc_ticket_part(0);
    ClearKeys keys;
    for (auto [status, kind, text] :
         {std::tuple{KeyStatus::NoKey, KeytabProblem::Kind::NoKey,
                     "keytab: no key for MSSQLSvc/sqla.lab.test:1433@LAB.TEST kvno 3 etype 18 "
                     "(ticket)"},
          std::tuple{KeyStatus::OtherKvno, KeytabProblem::Kind::NoKey,
                     "keytab: no key for MSSQLSvc/sqla.lab.test:1433@LAB.TEST kvno 3 etype 18 "
                     "(the keytab has this key with another kvno) (ticket)"},
          std::tuple{KeyStatus::WrongKey, KeytabProblem::Kind::WrongKey,
                     "keytab: decrypt failed (wrong key?) with "
                     "MSSQLSvc/sqla.lab.test:1433@LAB.TEST kvno 3 etype 18 (ticket)"}}) {
        keys.service = status;
        const ApReqFacts f = decrypt_ap_req(parsed(ap_req(good_ticket, {0x01})), keys);
        ASSERT_TRUE(f.problem);
        EXPECT_EQ(f.problem->kind, kind);
        EXPECT_EQ(to_string(*f.problem), text);
    }
    keys.service = KeyStatus::Ok;
    // A ticket that decrypts to garbage; then a good ticket and a garbage authenticator.
    ApReqFacts f = decrypt_ap_req(parsed(ap_req({0x30, 0x00}, {0x01})), keys);
    ASSERT_TRUE(f.problem);
    EXPECT_EQ(f.problem->kind, KeytabProblem::Kind::Malformed);
    EXPECT_EQ(to_string(*f.problem),
              "keytab: malformed EncTicketPart: unexpected application tag at offset 0 (ticket)");
    f = decrypt_ap_req(parsed(ap_req(good_ticket, {0x62, 0x05})), keys);
    EXPECT_TRUE(f.ticket.decrypted);
    EXPECT_EQ(f.ticket.client, "alice@LAB.TEST");
    ASSERT_TRUE(f.problem);
    EXPECT_EQ(f.problem->step, "authenticator");
    // DELEG with something else than a KRB-CRED in the delegation field.
    f = decrypt_ap_req(parsed(ap_req(good_ticket, authenticator(gss_checksum(0x3f, good_ticket)))),
                       keys);
    EXPECT_TRUE(f.deleg);
    ASSERT_TRUE(f.problem);
    EXPECT_EQ(f.problem->step, "krb-cred");
    EXPECT_EQ(f.problem->kind, KeytabProblem::Kind::Malformed);
}

Buf tgs_rep(const Buf& enc_part_plain, bool fast) {
    const Buf ticket = tlv(0x61, seq({ctx(0, integer(5)), ctx(1, gstring("LAB.TEST")),
                                      ctx(2, principal({"MSSQLSvc", "sqla.lab.test:1433"})),
                                      ctx(3, enc_data(18, Buf(40, 0x11)))}));
    Buf fields = cat({ctx(0, integer(5)), ctx(1, integer(13))});
    if (fast) {
        fields = cat({fields, ctx(2, seq({seq({ctx(1, tlv(0x02, {0x00, 0x88})),
                                               ctx(2, tlv(0x04, {0x30, 0x00}))})}))});
    }
    fields = cat({fields, ctx(3, gstring("LAB.TEST")), ctx(4, principal({"alice"})), ctx(5, ticket),
                  ctx(6, enc_data(18, enc_part_plain))});
    return tlv(0x6d, tlv(0x30, fields));
}

TEST(KerberosEnc, DecryptTgsRepWithTheRequestsSessionKey) {
    const Buf part = tlv(
        0x7a, seq({ctx(0, key(18, kSessionKey)), ctx(1, seq({})), ctx(2, integer(9)),
                   ctx(4, flags(ticket_flag::Forwardable | ticket_flag::OkAsDelegate)),
                   ctx(5, time("20240102030405Z")), ctx(7, time("20240102130405Z")),
                   ctx(9, gstring("LAB.TEST")), ctx(10, principal({"MSSQLSvc", "sqla:1433"}))}));
    EncKdcRepPart p;
    ASSERT_TRUE(parse_enc_kdc_rep_part(Bytes(part), p).ok());
    EXPECT_EQ(p.tag, 26u);
    expect_no_key(to_string(p));

    KerberosMessage m;
    const Buf plain_rep = tgs_rep(part, false);  // the parsed message views it
    ASSERT_TRUE(parse_kerberos(Bytes(plain_rep), m).ok());
    const auto& rep = std::get<KdcRep>(m.body);
    ClearKeys keys;
    KdcRepFacts f = decrypt_kdc_rep(rep, keys);
    ASSERT_TRUE(f.problem);
    EXPECT_EQ(f.problem->kind, KeytabProblem::Kind::NoKey);
    KeyBlock session;
    ASSERT_TRUE(session.assign(18, Bytes(kSubkey)));
    f = decrypt_kdc_rep(rep, keys, &session);
    ASSERT_TRUE(f.decrypted) << to_string(f);
    EXPECT_EQ(to_string(f),
              "kdc-reply server=MSSQLSvc/sqla:1433@LAB.TEST flags=forwardable|ok-as-delegate "
              "authtime=20240102030405Z session-key=aes256-cts-hmac-sha1-96");
    expect_no_key(to_string(f));

    const Buf fast_rep = tgs_rep(part, true);
    ASSERT_TRUE(parse_kerberos(Bytes(fast_rep), m).ok());
    f = decrypt_kdc_rep(std::get<KdcRep>(m.body), keys, &session);
    ASSERT_TRUE(f.problem);
    EXPECT_EQ(f.problem->kind, KeytabProblem::Kind::Unsupported);
}

}  // namespace
}  // namespace hopscope::auth
