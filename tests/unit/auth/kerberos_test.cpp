// Kerberos on hand-built messages: the delegation requests a passive observer must read on port 88
// (RFC 4120 §5.4.1 KDC-REQ; MS-SFU §2.2.1 PA-FOR-USER, §2.2.2 PA-S4U-X509-USER, §2.2.3
// cname-in-addl-tkt, §2.2.5 / MS-KILE §2.2.10 PA-PAC-OPTIONS), GSS token forms (RFC 4121 §4.1)
// and the TCP record framing (RFC 4120 §7.2.2).
#include "hopscope/auth/kerberos.hpp"

#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "hopscope/common/text.hpp"
#include "hopscope/pipeline/pipeline.hpp"

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

Buf principal(std::uint8_t type, std::initializer_list<const char*> comps) {
    Buf names;
    for (const char* c : comps)
        names = cat({names, gstring(c)});
    return seq({ctx(0, integer(type)), ctx(1, tlv(0x30, names))});
}
Buf enc_data(std::uint8_t etype, int kvno, std::size_t cipher_len) {
    Buf f = ctx(0, integer(etype));
    if (kvno >= 0) f = cat({f, ctx(1, integer(static_cast<std::uint8_t>(kvno)))});
    return tlv(0x30, cat({f, ctx(2, tlv(0x04, Buf(cipher_len, 0xe7)))}));
}
Buf ticket(const char* realm, Buf sname) {
    return tlv(0x61, seq({ctx(0, integer(5)), ctx(1, gstring(realm)), ctx(2, sname),
                          ctx(3, enc_data(18, 2, 300))}));
}
Buf bits32(std::uint32_t v) {
    return tlv(0x03, {0x00, static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
                      static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)});
}
Buf ap_req(Buf tkt, std::uint32_t options = 0) {
    return tlv(0x6e, seq({ctx(0, integer(5)), ctx(1, integer(14)), ctx(2, bits32(options)),
                          ctx(3, tkt), ctx(4, enc_data(18, -1, 150))}));
}
Buf pa(std::uint8_t type, const Buf& value) {
    return seq({ctx(1, integer(type)), ctx(2, tlv(0x04, value))});
}
Buf ktime(const char* t) {
    return tlv(0x18, test::str(t));
}
Buf tgs_req(Buf padata, std::uint32_t kdc_options, Buf sname, Buf extra_body = {}) {
    Buf body = cat({ctx(0, bits32(kdc_options)), ctx(2, gstring("LAB.TEST")), ctx(3, sname),
                    ctx(5, ktime("20370913024805Z")), ctx(7, integer(0x42)),
                    ctx(8, seq({integer(18), integer(17), integer(23)}))});
    body = cat({body, extra_body});
    return tlv(0x6c, seq({ctx(1, integer(5)), ctx(2, integer(12)), ctx(3, tlv(0x30, padata)),
                          ctx(4, tlv(0x30, body))}));
}
Buf tgt_ap_req() {
    return ap_req(ticket("LAB.TEST", principal(2, {"krbtgt", "LAB.TEST"})));
}
/// An AP-REQ with pvno and msg-type only: no ap-options, ticket nor authenticator.
Buf damaged_ap_req() {
    return tlv(0x6e, seq({ctx(0, integer(5)), ctx(1, integer(14))}));
}

KerberosMessage parse(const Buf& b) {
    KerberosMessage m;
    const auto e = parse_kerberos(Bytes(b), m);
    EXPECT_TRUE(e.ok()) << e.error().detail << " at " << e.error().offset;
    return m;
}

TEST(Kerberos, S4U2SelfWithPaForUser) {
    // MS-SFU §3.1.5.1.1.1: the service asks a ticket to itself for alice, authenticated by its TGT.
    const Buf for_user = seq({ctx(0, principal(10, {"alice"})), ctx(1, gstring("LAB.TEST")),
                              ctx(2, seq({ctx(0, integer(0x76)), ctx(1, tlv(0x04, Buf(16, 1)))})),
                              ctx(3, gstring("Kerberos"))});
    const auto m =
        parse(tgs_req(cat({pa(1, tgt_ap_req()), pa(129, for_user)}),
                      kdc_option::Forwardable | kdc_option::Canonicalize, principal(1, {"sqla$"})));
    ASSERT_EQ(m.msg_type, krb_msg::TgsReq);
    const auto& q = std::get<KdcReq>(m.body);
    ASSERT_EQ(q.padata.size(), 2u);
    const PaData* tgs = q.find_padata(pa_type::TgsReq);
    ASSERT_TRUE(tgs && tgs->tgs_ap_req);
    EXPECT_EQ(tgs->tgs_ap_req->ticket.sname.str(), "krbtgt/LAB.TEST");
    const PaData* fu = q.find_padata(pa_type::ForUser);
    ASSERT_TRUE(fu && fu->for_user);
    EXPECT_EQ(fu->for_user->user_name.str(), "alice");
    EXPECT_EQ(fu->for_user->user_name.name_type, 10);
    EXPECT_EQ(fu->for_user->user_realm, "LAB.TEST");
    EXPECT_EQ(fu->for_user->auth_package, "Kerberos");
    EXPECT_EQ(kdc_options_to_string(q.kdc_options), "forwardable|canonicalize");
    ASSERT_TRUE(q.sname);
    EXPECT_EQ(q.sname->str(), "sqla$");
    EXPECT_EQ(q.etypes, (std::vector<std::int32_t>{18, 17, 23}));
    EXPECT_EQ(q.till, "20370913024805Z");
    EXPECT_EQ(q.nonce, 0x42u);
}

TEST(Kerberos, TgsReqWithItsApReqLeftUndecoded) {
    // KerberosParse::tgs_ap_req = false: the PA-TGS-REQ value is only an OCTET STRING of known
    // length; every other field and PA value reads as with it decoded.
    const Buf for_user = seq({ctx(0, principal(10, {"alice"})), ctx(1, gstring("LAB.TEST")),
                              ctx(2, seq({ctx(0, integer(0x76)), ctx(1, tlv(0x04, Buf(16, 1)))})),
                              ctx(3, gstring("Kerberos"))});
    const Buf ap = tgt_ap_req();
    const Buf msg = tgs_req(cat({pa(1, ap), pa(129, for_user)}), kdc_option::Forwardable,
                            principal(2, {"MSSQLSvc", "sqlb.lab.test:1433"}));
    KerberosMessage m;
    ASSERT_TRUE(parse_kerberos(Bytes(msg), m, KerberosParse{.tgs_ap_req = false}).ok());
    const auto& q = std::get<KdcReq>(m.body);
    ASSERT_EQ(q.padata.size(), 2u);
    const PaData* tgs = q.find_padata(pa_type::TgsReq);
    ASSERT_TRUE(tgs);
    EXPECT_FALSE(tgs->tgs_ap_req);
    EXPECT_EQ(tgs->length, ap.size());
    const PaData* fu = q.find_padata(pa_type::ForUser);
    ASSERT_TRUE(fu && fu->for_user);
    EXPECT_EQ(fu->for_user->user_name.str(), "alice");
    ASSERT_TRUE(q.sname);
    EXPECT_EQ(q.sname->str(), "MSSQLSvc/sqlb.lab.test:1433");
    EXPECT_EQ(q.etypes, (std::vector<std::int32_t>{18, 17, 23}));
    // By default it is decoded.
    const auto full = parse(msg);
    const PaData* decoded = std::get<KdcReq>(full.body).find_padata(pa_type::TgsReq);
    ASSERT_TRUE(decoded && decoded->tgs_ap_req);
    EXPECT_EQ(decoded->tgs_ap_req->ticket.sname.str(), "krbtgt/LAB.TEST");

    // A damaged AP-REQ makes the message malformed only when it is decoded.
    const Buf damaged =
        tgs_req(pa(1, damaged_ap_req()), kdc_option::Forwardable, principal(1, {"sqla$"}));
    KerberosMessage d;
    EXPECT_FALSE(parse_kerberos(Bytes(damaged), d).ok());
    ASSERT_TRUE(parse_kerberos(Bytes(damaged), d, KerberosParse{.tgs_ap_req = false}).ok());
    EXPECT_EQ(std::get<KdcReq>(d.body).padata.at(0).type, pa_type::TgsReq);
}

TEST(Kerberos, PipelineReportsAnExchangeWhoseTgtItDoesNotRead) {
    // The pipeline leaves a TGS-REQ's AP-REQ undecoded (it reads nothing of it): a damaged one is
    // an exchange like any other, not a decode problem.
    struct Sink : pipeline::EventSink {
        std::vector<analysis::KerberosEvent> kdc;
        void on_kerberos(const analysis::KerberosEvent& e) override { kdc.push_back(e); }
    } sink;
    pipeline::Pipeline p(sink);
    const Buf req = tgs_req(pa(1, damaged_ap_req()), kdc_option::Forwardable,
                            principal(2, {"MSSQLSvc", "sqlb.lab.test:1433"}));
    FlowKey k;
    k.client = {IpAddress::v4_from(0x0a000001), 50000};
    k.server = {IpAddress::v4_from(0x0a000002), 88};
    k.transport = Transport::Udp;
    p.on_datagram(k, Direction::ClientToServer, Timestamp{1'000'000}, Bytes(req), Evidence{1, 0});
    p.finish(Timestamp{2'000'000});
    ASSERT_EQ(sink.kdc.size(), 1u);  // unanswered: reported at the end
    EXPECT_EQ(sink.kdc[0].request.view(), "TGS-REQ");
    EXPECT_EQ(sink.kdc[0].sname, "MSSQLSvc/sqlb.lab.test:1433");
    EXPECT_EQ(sink.kdc[0].padata, (std::vector<std::int32_t>{pa_type::TgsReq}));
    EXPECT_EQ(p.counters().kerberos_messages, 1u);
    EXPECT_EQ(p.counters().decode_problems, 0u);
}

TEST(Kerberos, S4U2ProxyWithAdditionalTicketAndPacOptions) {
    // MS-SFU §3.1.5.2.1: cname-in-addl-tkt, the user's ticket to the middle service as evidence,
    // PA-PAC-OPTIONS resource-based-constrained-delegation, sname = the back-end SPN.
    const Buf pac_options = seq({ctx(0, bits32(pac_option::ResourceBasedConstrainedDelegation))});
    const Buf evidence = ticket("LAB.TEST", principal(2, {"MSSQLSvc", "sqla.lab.test:1433"}));
    const auto m = parse(
        tgs_req(cat({pa(1, tgt_ap_req()), pa(167, pac_options)}),
                kdc_option::Forwardable | kdc_option::CnameInAddlTkt | kdc_option::Canonicalize,
                principal(2, {"MSSQLSvc", "sqlb.lab.test:1433"}), ctx(11, tlv(0x30, evidence))));
    const auto& q = std::get<KdcReq>(m.body);
    EXPECT_TRUE(q.kdc_options & kdc_option::CnameInAddlTkt);
    EXPECT_EQ(kdc_options_to_string(q.kdc_options), "forwardable|cname-in-addl-tkt|canonicalize");
    const PaData* po = q.find_padata(pa_type::PacOptions);
    ASSERT_TRUE(po && po->pac_options);
    EXPECT_EQ(*po->pac_options, pac_option::ResourceBasedConstrainedDelegation);
    EXPECT_EQ(pac_options_to_string(*po->pac_options), "resource-based-constrained-delegation");
    ASSERT_EQ(q.additional_tickets.size(), 1u);
    EXPECT_EQ(q.additional_tickets[0].sname.str(), "MSSQLSvc/sqla.lab.test:1433");
    EXPECT_EQ(q.additional_tickets[0].enc_part.kvno, 2u);
    EXPECT_EQ(q.sname->str(), "MSSQLSvc/sqlb.lab.test:1433");
    const std::string text = to_string(m);
    EXPECT_NE(text.find("cname-in-addl-tkt"), std::string::npos) << text;
    EXPECT_NE(text.find("additional-ticket=MSSQLSvc/sqla.lab.test:1433@LAB.TEST"),
              std::string::npos)
        << text;
}

TEST(Kerberos, PaS4uX509UserAndPacRequest) {
    // MS-SFU §2.2.2: PA-S4U-X509-USER ::= SEQUENCE { user-id [0] S4UUserID, checksum [1] }.
    const Buf user_id = seq({ctx(0, integer(7)), ctx(1, principal(1, {"alice"})),
                             ctx(2, gstring("LAB.TEST")), ctx(4, bits32(0x20000000))});
    const Buf x509 =
        seq({ctx(0, user_id), ctx(1, seq({ctx(0, integer(16)), ctx(1, tlv(0x04, Buf(12, 3)))}))});
    const Buf pac_request = seq({ctx(0, tlv(0x01, {0xff}))});
    const auto m = parse(tgs_req(cat({pa(1, tgt_ap_req()), pa(130, x509), pa(128, pac_request)}),
                                 kdc_option::Forwardable, principal(1, {"sqla$"})));
    const auto& q = std::get<KdcReq>(m.body);
    const PaData* x = q.find_padata(pa_type::S4uX509User);
    ASSERT_TRUE(x && x->s4u_x509_user);
    ASSERT_TRUE(x->s4u_x509_user->cname);
    EXPECT_EQ(x->s4u_x509_user->cname->str(), "alice");
    EXPECT_EQ(x->s4u_x509_user->crealm, "LAB.TEST");
    EXPECT_FALSE(x->s4u_x509_user->has_certificate);
    EXPECT_EQ(x->s4u_x509_user->options, 0x20000000u);
    const PaData* pr = q.find_padata(pa_type::PacRequest);
    ASSERT_TRUE(pr && pr->include_pac);
    EXPECT_TRUE(*pr->include_pac);
}

TEST(Kerberos, MalformedPadataFailsTheMessage) {
    const Buf bad_for_user = seq({ctx(1, gstring("LAB.TEST"))});  // userName missing
    KerberosMessage m;
    const Buf req = tgs_req(pa(129, bad_for_user), 0, principal(1, {"x"}));
    EXPECT_EQ(parse_kerberos(Bytes(req), m).error().code, Code::BadValue);
}

Buf krb_error(std::uint8_t code, bool with_sname) {
    Buf f = cat({ctx(0, integer(5)), ctx(1, integer(30)), ctx(4, ktime("20261126151732Z")),
                 ctx(5, integer(3)), ctx(6, integer(code)), ctx(9, gstring("LAB.TEST"))});
    if (with_sname) f = cat({f, ctx(10, principal(2, {"MSSQLSvc", "sqlx.lab.test:1433"}))});
    f = cat({f, ctx(11, gstring("no such service"))});
    return tlv(0x7e, tlv(0x30, f));
}

TEST(Kerberos, KrbErrorFieldsAndNames) {
    const auto m = parse(krb_error(7, true));
    const auto& e = std::get<KrbError>(m.body);
    EXPECT_EQ(e.error_code, 7);
    EXPECT_EQ(krb_error_name(e.error_code), "KDC_ERR_S_PRINCIPAL_UNKNOWN");
    EXPECT_EQ(e.stime, "20261126151732Z");
    EXPECT_EQ(e.susec, 3);
    EXPECT_EQ(e.sname->str(), "MSSQLSvc/sqlx.lab.test:1433");
    EXPECT_EQ(e.e_text, "no such service");
    EXPECT_FALSE(e.ctime);
    EXPECT_FALSE(parse(krb_error(60, false)).msg_type != krb_msg::Error);
    EXPECT_EQ(krb_error_name(13), "KDC_ERR_BADOPTION");
    EXPECT_EQ(krb_error_name(41), "KRB_AP_ERR_MODIFIED");
    EXPECT_EQ(krb_error_name(999), "KRB_ERR_999");
}

TEST(Kerberos, KrbErrorEData) {
    // MS-KILE §2.2.1-2.2.2: KERB-ERROR-DATA { data-type [1], data-value [2] }; type 3 carries
    // KERB-EXT-ERROR { NTSTATUS, reserved, flags } little-endian.
    auto with_e_data = [](const Buf& e_data) {
        return tlv(0x7e,
                   seq({ctx(0, integer(5)), ctx(1, integer(30)), ctx(4, ktime("20190205033849Z")),
                        ctx(5, integer(0)), ctx(6, integer(13)), ctx(9, gstring("LAB.TEST")),
                        ctx(12, tlv(0x04, e_data))}));
    };
    const Buf ext = seq(
        {ctx(1, integer(3)), ctx(2, tlv(0x04, {0xbb, 0x00, 0x00, 0xc0, 0, 0, 0, 0, 3, 0, 0, 0}))});
    auto e = std::get<KrbError>(parse(with_e_data(ext)).body);
    EXPECT_EQ(e.e_data_type, 3);
    EXPECT_EQ(e.ext_status, 0xc00000bbu);  // STATUS_NOT_SUPPORTED
    EXPECT_NE(to_string(parse(with_e_data(ext))).find("ntstatus=0xc00000bb"), std::string::npos);

    e = std::get<KrbError>(parse(with_e_data(seq({ctx(1, integer(2))}))).body);
    EXPECT_EQ(e.e_data_type, 2);  // KERB_AP_ERR_TYPE_SKEW_RECOVERY
    EXPECT_FALSE(e.ext_status);

    // RFC 4120 §5.9.1 METHOD-DATA.
    e = std::get<KrbError>(parse(with_e_data(seq({pa(19, seq({})), pa(2, {})}))).body);
    EXPECT_EQ(e.e_data_padata, (std::vector<std::int32_t>{19, 2}));

    // e-data is opaque: an unreadable one is kept by length, the KRB-ERROR still decodes.
    e = std::get<KrbError>(parse(with_e_data({0x30, 0x05, 0x01})).body);
    EXPECT_EQ(e.e_data_len, 3u);
    EXPECT_TRUE(e.e_data_padata.empty());
    EXPECT_FALSE(e.e_data_type);
}

TEST(Kerberos, GssTokenForms) {
    // RFC 4121 §4.1: 60 len 06 09 <krb5 OID> TOK_ID(2, big-endian) message; the 0x60 framing is
    // optional on replies, and impacket sends a bare AP-REQ.
    const Buf ap_rep =
        tlv(0x6f, seq({ctx(0, integer(5)), ctx(1, integer(15)), ctx(2, enc_data(18, -1, 100))}));
    const Buf oid{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
    const Buf wrapped = tlv(0x60, cat({oid, {0x02, 0x00}, ap_rep}));
    const Buf unwrapped = cat({{0x02, 0x00}, ap_rep});
    for (const Buf* b : {&wrapped, &unwrapped, &ap_rep}) {
        Krb5GssToken t;
        ASSERT_TRUE(parse_krb5_token(Bytes(*b), t).ok());
        EXPECT_EQ(t.message.msg_type, krb_msg::ApRep);
        EXPECT_EQ(std::get<ApRep>(t.message.body).enc_part.cipher_len, 100u);
    }
    Krb5GssToken t;
    ASSERT_TRUE(parse_krb5_token(Bytes(wrapped), t).ok());
    EXPECT_TRUE(t.gss_wrapped);
    EXPECT_EQ(t.mech.mech, Mech::Kerberos);
    EXPECT_EQ(t.tok_id, krb5_tok::ApRep);
    ASSERT_TRUE(parse_krb5_token(Bytes(ap_rep), t).ok());
    EXPECT_FALSE(t.tok_id);

    const Buf error_tok = cat({{0x03, 0x00}, krb_error(37, true)});
    ASSERT_TRUE(parse_krb5_token(Bytes(error_tok), t).ok());
    EXPECT_EQ(std::get<KrbError>(t.message.body).error_code, 37);

    const Buf mismatch = cat({{0x01, 0x00}, ap_rep});  // AP-REQ id on an AP-REP
    EXPECT_EQ(parse_krb5_token(Bytes(mismatch), t).error().code, Code::BadValue);
    const Buf ntlm_oid =
        tlv(0x60, cat({{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a},
                       {0x01, 0x00},
                       ap_rep}));
    EXPECT_EQ(parse_krb5_token(Bytes(ntlm_oid), t).error().code, Code::BadValue);
}

TEST(Kerberos, ApReqFieldsAndErrors) {
    const Buf b = ap_req(ticket("LAB.TEST", principal(2, {"MSSQLSvc", "sqla.lab.test:1433"})),
                         ap_option::MutualRequired);
    const auto m = parse(b);
    const auto& a = std::get<ApReq>(m.body);
    EXPECT_EQ(ap_options_to_string(a.ap_options), "mutual-required");
    EXPECT_EQ(a.ticket.tkt_vno, 5);
    EXPECT_EQ(a.ticket.sname.name_type, 2);
    EXPECT_EQ(a.ticket.enc_part.cipher_len, 300u);
    EXPECT_FALSE(a.authenticator.kvno);
    EXPECT_EQ(a.size, b.size());

    KerberosMessage out;
    Buf trailing = b;
    trailing.push_back(0);
    EXPECT_EQ(parse_kerberos(Bytes(trailing), out).error().code, Code::BadLength);
    const Buf pvno4 = tlv(0x6e, seq({ctx(0, integer(4)), ctx(1, integer(14))}));
    EXPECT_EQ(parse_kerberos(Bytes(pvno4), out).error().code, Code::BadValue);
    const Buf wrong_type = tlv(0x6e, seq({ctx(0, integer(5)), ctx(1, integer(15))}));
    EXPECT_EQ(parse_kerberos(Bytes(wrong_type), out).error().code, Code::BadValue);
    const Buf missing = tlv(0x6e, seq({ctx(0, integer(5)), ctx(1, integer(14))}));
    EXPECT_EQ(parse_kerberos(Bytes(missing), out).error().code, Code::BadValue);
    const Buf out_of_order = tlv(0x6e, seq({ctx(0, integer(5)), ctx(1, integer(14)),
                                            ctx(4, enc_data(18, -1, 4)), ctx(2, bits32(0))}));
    EXPECT_EQ(parse_kerberos(Bytes(out_of_order), out).error().code, Code::BadTag);
    const Buf safe = tlv(0x74, seq({}));  // KRB-SAFE: valid, not handled
    EXPECT_EQ(parse_kerberos(Bytes(safe), out).error().code, Code::Unsupported);
    EXPECT_EQ(parse_kerberos(Bytes(Buf{0x6e, 0x05, 0x30}), out).error().code, Code::Truncated);
}

TEST(Kerberos, PrincipalNamesKeepTheirComponents) {
    // A name's components are kept joined with '/', with their count and the first one's length
    // (RFC 4120 §5.2.2: SEQUENCE OF KerberosString): three components, an empty one, one that
    // holds a '/' itself, none at all.
    const auto sname = [](std::initializer_list<const char*> comps) {
        const auto m = parse(ap_req(ticket("LAB.TEST", principal(2, comps))));
        return std::get<ApReq>(m.body).ticket.sname;
    };
    PrincipalName n = sname({"HTTP", "web.lab.test", "LAB"});
    EXPECT_EQ(n.str(), "HTTP/web.lab.test/LAB");
    EXPECT_EQ(n.count, 3u);
    EXPECT_EQ(n.first(), "HTTP");
    EXPECT_EQ(n.at("LAB.TEST"), "HTTP/web.lab.test/LAB@LAB.TEST");
    n = sname({"", "x"});
    EXPECT_EQ(n.str(), "/x");
    EXPECT_EQ(n.count, 2u);
    EXPECT_EQ(n.first(), "");
    n = sname({"krbtgt/LAB.TEST"});
    EXPECT_EQ(n.str(), "krbtgt/LAB.TEST");
    EXPECT_EQ(n.count, 1u);
    EXPECT_EQ(n.first(), "krbtgt/LAB.TEST");  // one component, not "krbtgt"
    n = sname({});
    EXPECT_EQ(n.str(), "");
    EXPECT_EQ(n.count, 0u);
    EXPECT_EQ(n.first(), "");
    // Longer than the 256 bytes joined on the stack: from the first component, from the third.
    const std::string h300(300, 'h'), a200(200, 'a'), b100(100, 'b');
    n = sname({h300.c_str(), "x"});
    EXPECT_EQ(n.str(), h300 + "/x");
    EXPECT_EQ(n.count, 2u);
    EXPECT_EQ(n.first(), h300);
    n = sname({a200.c_str(), "c", b100.c_str(), "d"});
    EXPECT_EQ(n.str(), a200 + "/c/" + b100 + "/d");
    EXPECT_EQ(n.count, 4u);
    EXPECT_EQ(n.first(), a200);
    const PrincipalName made = PrincipalName::of(2, {"MSSQLSvc", "sqla.lab.test:1433"});
    const PrincipalName parsed = sname({"MSSQLSvc", "sqla.lab.test:1433"});
    EXPECT_EQ(made.name_type, parsed.name_type);
    EXPECT_EQ(made.text, parsed.text);
    EXPECT_EQ(made.count, parsed.count);
    EXPECT_EQ(made.first_len, parsed.first_len);
    // A component that is not a string fails the message (as it did when each was a string).
    const Buf bad = seq({ctx(0, integer(2)), ctx(1, tlv(0x30, cat({gstring("a"), integer(1)})))});
    KerberosMessage out;
    EXPECT_EQ(parse_kerberos(Bytes(ap_req(ticket("LAB.TEST", bad))), out).error().code,
              Code::BadTag);
}

TEST(Kerberos, NoCipherBytesInRenderedOutput) {
    // Real AP-REQs and TGS-REPs from the public and lab captures: no 12-byte run of any
    // enc-part / authenticator cipher text may appear in to_string, raw or hex.
    int checked = 0;
    for (const char* file : {"krb_tshark.txt", "lab_krb_tshark.txt"}) {
        for (const auto& r : test::load_records(file)) {
            const std::string t = r.get("msg_type");
            if ((t != "14" && t != "13") || r.get("transport") == "tcp") continue;
            Krb5GssToken tok;
            ASSERT_TRUE(parse_krb5_token(Bytes(r.bytes), tok).ok()) << r.where();
            const std::string out = to_string(tok.message);
            // Find every OCTET STRING over 32 bytes (the cipher texts) by scanning the DER.
            for (std::size_t i = 0; i + 4 < r.bytes.size(); ++i) {
                if (r.bytes[i] != 0x04 || r.bytes[i + 1] < 0x81 || r.bytes[i + 1] > 0x82) continue;
                const std::size_t at = i + 2 + (r.bytes[i + 1] - 0x80);
                if (at + 12 > r.bytes.size()) continue;
                const Bytes window = Bytes(r.bytes).subspan(at, 12);
                EXPECT_EQ(out.find(std::string(window.begin(), window.end())), std::string::npos);
                EXPECT_EQ(out.find(to_hex(window)), std::string::npos) << r.where();
                ++checked;
            }
        }
    }
    EXPECT_GT(checked, 20);
}

TEST(Kerberos, KrbCredTickets) {
    // RFC 4120 §5.8.1: KRB-CRED (what a delegating client puts in the 0x8003 checksum).
    const Buf tgt = ticket("LAB.TEST", principal(2, {"krbtgt", "LAB.TEST"}));
    const Buf cred = tlv(0x76, seq({ctx(0, integer(5)), ctx(1, integer(22)), ctx(2, tlv(0x30, tgt)),
                                    ctx(3, enc_data(0, -1, 40))}));
    const auto m = parse(cred);
    ASSERT_EQ(m.msg_type, krb_msg::Cred);
    const auto& c = std::get<KrbCred>(m.body);
    ASSERT_EQ(c.tickets.size(), 1u);
    EXPECT_EQ(c.tickets[0].sname.str(), "krbtgt/LAB.TEST");
    EXPECT_EQ(c.enc_part.cipher_len, 40u);
}

/// A message as Kerberos over TCP sends it: its 4-byte big-endian length first.
Buf framed(const Buf& m) {
    Buf out{0, 0, static_cast<std::uint8_t>(m.size() >> 8), static_cast<std::uint8_t>(m.size())};
    out.insert(out.end(), m.begin(), m.end());
    return out;
}

TEST(KrbTcpFramer, SplitsAndJoinsRecords) {
    // RFC 4120 §7.2.2: each message is preceded by its 4-byte big-endian length.
    const Buf a = krb_error(25, true), b = krb_error(7, false);
    const Buf stream = cat({framed(a), framed(b)});
    {
        KrbTcpFramer f;
        std::vector<std::vector<std::uint8_t>> out;
        ASSERT_TRUE(f.feed(Bytes(stream), out).ok());  // two records in one segment
        ASSERT_EQ(out.size(), 2u);
        EXPECT_EQ(out[0], a);
        EXPECT_EQ(out[1], b);
    }
    {
        KrbTcpFramer f;
        std::vector<std::vector<std::uint8_t>> out;
        for (std::uint8_t byte : stream)
            ASSERT_TRUE(f.feed(Bytes(&byte, 1), out).ok());
        ASSERT_EQ(out.size(), 2u);
        EXPECT_EQ(out[1], b);
        EXPECT_EQ(f.buffered(), 0u);
    }
    {
        KrbTcpFramer f;
        std::vector<std::vector<std::uint8_t>> out;
        ASSERT_TRUE(f.feed(Bytes(stream).subspan(0, 10), out).ok());
        EXPECT_TRUE(out.empty());
        EXPECT_EQ(f.buffered(), 10u);
    }
}

TEST(KrbTcpFramer, RecordsComeAsViewsWhenWholeAndFromTheBufferWhenSplit) {
    const Buf a = krb_error(25, true), b = krb_error(7, false);
    const Buf stream = cat({framed(a), framed({}), framed(b)});  // an empty record between
    const std::vector<Buf> want{a, {}, b};
    {
        // One segment: every record is a view into it, in order.
        KrbTcpFramer f;
        std::vector<const std::uint8_t*> at;
        std::vector<Buf> got;
        ASSERT_TRUE(f.feed_each(Bytes(stream), [&](Bytes r) {
                         at.push_back(r.data());
                         got.emplace_back(r.begin(), r.end());
                     }).ok());
        EXPECT_EQ(got, want);
        ASSERT_EQ(at.size(), 3u);
        EXPECT_EQ(at[0], stream.data() + 4);
        EXPECT_EQ(at[2], stream.data() + 4 + a.size() + 4 + 4);
    }
    // Every cut into two segments, and one byte at a time: the same records, none held after.
    std::vector<std::vector<std::size_t>> cuts;
    for (std::size_t i = 0; i <= stream.size(); ++i)
        cuts.push_back({i});
    std::vector<std::size_t> bytes;
    for (std::size_t i = 1; i < stream.size(); ++i)
        bytes.push_back(i);
    cuts.push_back(bytes);
    for (const auto& cut : cuts) {
        KrbTcpFramer f;
        std::vector<Buf> got;
        std::size_t from = 0;
        for (std::size_t k = 0; k <= cut.size(); ++k) {
            const std::size_t to = k < cut.size() ? cut[k] : stream.size();
            ASSERT_TRUE(f.feed_each(Bytes(stream).subspan(from, to - from), [&](Bytes r) {
                             got.emplace_back(r.begin(), r.end());
                         }).ok());
            from = to;
        }
        EXPECT_EQ(got, want) << cut.front();
        EXPECT_EQ(f.buffered(), 0u);
    }
    // A bad mark after a whole record: the record first, then the error, for good.
    Buf bad = framed(a);
    bad.insert(bad.end(), {0x80, 0x00, 0x00, 0x01, 0x00});
    KrbTcpFramer f;
    std::vector<Buf> got;
    const DecodeResult r =
        f.feed_each(Bytes(bad), [&](Bytes rec) { got.emplace_back(rec.begin(), rec.end()); });
    EXPECT_EQ(r.error().code, Code::Desync);
    EXPECT_EQ(r.error().offset, 4 + a.size());
    EXPECT_EQ(got, std::vector<Buf>{a});
}

TEST(KrbTcpFramer, ReservedBitAndCapAreStickyErrors) {
    KrbTcpFramer f(1000);
    std::vector<std::vector<std::uint8_t>> out;
    const Buf reserved{0x80, 0x00, 0x00, 0x10};
    EXPECT_EQ(f.feed(Bytes(reserved), out).error().code, Code::Desync);
    EXPECT_TRUE(f.failed());
    EXPECT_EQ(f.feed(Bytes(reserved), out).error().code, Code::Desync);

    KrbTcpFramer g(1000);
    const Buf big{0x00, 0x00, 0x03, 0xe9};  // 1001 > cap
    EXPECT_EQ(g.feed(Bytes(big), out).error().code, Code::TooLarge);
    EXPECT_EQ(g.buffered(), 4u) << "only the record mark was kept";
    EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace hopscope::auth
