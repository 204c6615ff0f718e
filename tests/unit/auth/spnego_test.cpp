// SPNEGO (RFC 4178 §4.2, MS-SPNG §2.2.1) and classify_sspi on hand-built tokens for the forms TDS
// carries (protocol.md §4.1, §5.3).
#include "hopscope/auth/spnego.hpp"

#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "hopscope/auth/sspi.hpp"

namespace hopscope::auth {
namespace {

using test::Buf;
using test::cat;
using test::ctx;
using test::seq;
using test::tlv;
using Code = DecodeError::Code;

const Buf kSpnegoOid{0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
const Buf kMsKrb5{0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02};
const Buf kKrb5{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
const Buf kNtlm{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};
const Buf kNegoEx{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x1e};

Buf ntlm_negotiate() {
    Buf m{'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 1, 0, 0, 0, 0x05, 0x02, 0x88, 0xa0};
    m.resize(32, 0);
    return m;
}

Buf ntlm_challenge() {
    Buf m{'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 2, 0, 0, 0};
    m.resize(48, 0);
    m[20] = 0x01;  // UNICODE
    return m;
}

Buf init_token(const Buf& mechs, const Buf& mech_token, bool wrapped = true) {
    Buf body = ctx(0, tlv(0x30, mechs));
    if (!mech_token.empty()) body = cat({body, ctx(2, tlv(0x04, mech_token))});
    const Buf nt = ctx(0, tlv(0x30, body));
    return wrapped ? tlv(0x60, cat({kSpnegoOid, nt})) : nt;
}

TEST(Spnego, WindowsNegTokenInitWithNtlmFallback) {
    // A Windows client that cannot get a ticket still lists Kerberos but sends NTLM NEGOTIATE.
    const Buf tok = init_token(cat({kMsKrb5, kKrb5, kNegoEx, kNtlm}), ntlm_negotiate());
    SpnegoToken t;
    ASSERT_TRUE(parse_spnego(Bytes(tok), t).ok());
    EXPECT_TRUE(t.gss_wrapped);
    ASSERT_EQ(t.kind, SpnegoToken::Kind::Init);
    ASSERT_EQ(t.init.mech_types.size(), 4u);
    EXPECT_EQ(t.init.mech_types[0].mech, Mech::MsKerberos);
    EXPECT_EQ(t.init.mech_types[2].mech, Mech::NegoEx);
    EXPECT_TRUE(t.init.has_mech_token);
    EXPECT_EQ(t.init.mech_token.size(), 32u);

    const SspiInfo s = classify_sspi(Bytes(tok));
    EXPECT_TRUE(s.decoded.ok());
    EXPECT_EQ(s.wrapper, SspiWrapper::Spnego);
    EXPECT_EQ(s.mechanism, SspiMechanism::Ntlm) << "the token decides, not the preference";
    EXPECT_EQ(s.mechs_offered.size(), 4u);
    ASSERT_TRUE(s.ntlm);
    EXPECT_EQ(s.ntlm->type, 1u);
}

TEST(Spnego, NegTokenInit2WithNegHintsAndMic) {
    // MS-SPNG §2.2.1: negHints [3] SEQUENCE { hintName [0] GeneralString }, mechListMIC [4].
    const Buf hints = seq({ctx(0, test::gstring("not_defined_in_RFC4178@please_ignore"))});
    const Buf body = cat({ctx(0, tlv(0x30, cat({kMsKrb5, kNtlm}))), ctx(3, hints),
                          ctx(4, tlv(0x04, Buf(16, 0x11)))});
    const Buf tok = tlv(0x60, cat({kSpnegoOid, ctx(0, tlv(0x30, body))}));
    SpnegoToken t;
    ASSERT_TRUE(parse_spnego(Bytes(tok), t).ok());
    EXPECT_TRUE(t.init.is_init2);
    EXPECT_EQ(t.init.hint_name, "not_defined_in_RFC4178@please_ignore");
    EXPECT_TRUE(t.init.has_mech_list_mic);
    EXPECT_EQ(t.init.mech_list_mic_len, 16u);
    EXPECT_FALSE(t.init.has_mech_token);
    EXPECT_EQ(to_string(t).find("1111"), std::string::npos) << "MIC bytes are not rendered";

    // In a plain NegTokenInit, [3] is mechListMIC (RFC 4178) and [4] does not exist.
    const Buf rfc = ctx(0, tlv(0x30, cat({ctx(0, tlv(0x30, kKrb5)), ctx(3, tlv(0x04, {1, 2}))})));
    ASSERT_TRUE(parse_spnego(Bytes(rfc), t).ok());
    EXPECT_FALSE(t.init.is_init2);
    EXPECT_TRUE(t.init.has_mech_list_mic);
    const Buf bad = ctx(0, tlv(0x30, cat({ctx(0, tlv(0x30, kKrb5)), ctx(4, tlv(0x04, {1}))})));
    EXPECT_EQ(parse_spnego(Bytes(bad), t).error().code, Code::BadTag);
}

TEST(Spnego, ReqFlagsAreReadWhenPresent) {
    // RFC 4178 §4.2.1 ContextFlags: delegFlag(0), mutualFlag(1); MS-SPNG says SHOULD be omitted.
    const Buf body = cat({ctx(0, tlv(0x30, kKrb5)), ctx(1, tlv(0x03, {0x06, 0xc0}))});
    SpnegoToken t;
    ASSERT_TRUE(parse_spnego(Bytes(ctx(0, tlv(0x30, body))), t).ok());
    ASSERT_TRUE(t.init.req_flags);
    EXPECT_EQ(context_flags_to_string(*t.init.req_flags), "deleg|mutual");
    const SspiInfo s = classify_sspi(Bytes(ctx(0, tlv(0x30, body))));
    EXPECT_EQ(s.req_flags, context_flag::Deleg | context_flag::Mutual);
    EXPECT_NE(to_string(s).find("reqFlags=deleg|mutual"), std::string::npos) << to_string(s);
}

TEST(Spnego, ServerRepliesNegTokenResp) {
    // accept-incomplete + supportedMech NTLMSSP + a CHALLENGE (protocol.md §5.3).
    const Buf resp = ctx(
        1, seq({ctx(0, tlv(0x0a, {0x01})), ctx(1, kNtlm), ctx(2, tlv(0x04, ntlm_challenge()))}));
    const SspiInfo s = classify_sspi(Bytes(resp));
    EXPECT_TRUE(s.decoded.ok()) << s.decoded.error().detail;
    EXPECT_EQ(s.wrapper, SspiWrapper::Spnego);
    EXPECT_EQ(s.spnego_kind, SpnegoToken::Kind::Resp);
    EXPECT_EQ(s.neg_state, NegState::AcceptIncomplete);
    ASSERT_TRUE(s.supported_mech);
    EXPECT_EQ(s.supported_mech->mech, Mech::Ntlmssp);
    EXPECT_EQ(s.mechanism, SspiMechanism::Ntlm);
    ASSERT_TRUE(s.ntlm);
    EXPECT_EQ(s.ntlm->type, 2u);

    // accept-completed with a KRB-ERROR 03 00 token without the 0x60 wrapper, then reject.
    const Buf krb_err = tlv(
        0x7e,
        seq({ctx(0, test::integer(5)), ctx(1, test::integer(30)),
             ctx(4, tlv(0x18, test::str("20261126151732Z"))), ctx(5, test::integer(0)),
             ctx(6, test::integer(41)), ctx(9, test::gstring("LAB.TEST")),
             ctx(10, seq({ctx(0, test::integer(2)),
                          ctx(1, seq({test::gstring("MSSQLSvc"), test::gstring("a:1433")}))}))}));
    const Buf reject = ctx(1, seq({ctx(0, tlv(0x0a, {0x02})), ctx(1, kMsKrb5),
                                   ctx(2, tlv(0x04, cat({{0x03, 0x00}, krb_err})))}));
    const SspiInfo r = classify_sspi(Bytes(reject));
    EXPECT_TRUE(r.decoded.ok()) << r.decoded.error().detail;
    EXPECT_EQ(r.neg_state, NegState::Reject);
    EXPECT_EQ(r.mechanism, SspiMechanism::Kerberos);
    EXPECT_EQ(r.krb_tok_id, 0x0300);
    EXPECT_FALSE(r.inner_gss_wrapped);
    ASSERT_TRUE(r.kerberos);
    EXPECT_EQ(std::get<KrbError>(r.kerberos->body).error_code, 41);
}

TEST(Spnego, RawTokensWithoutSpnego) {
    const SspiInfo n = classify_sspi(Bytes(ntlm_negotiate()));
    EXPECT_EQ(n.wrapper, SspiWrapper::Raw);
    EXPECT_EQ(n.mechanism, SspiMechanism::Ntlm);
    EXPECT_TRUE(n.decoded.ok());

    const Buf negoex = init_token(cat({kNegoEx, kNtlm}), test::str("NEGOEXTS\x01\x02"));
    const SspiInfo x = classify_sspi(Bytes(negoex));
    EXPECT_EQ(x.mechanism, SspiMechanism::NegoEx);
    EXPECT_TRUE(x.decoded.ok());

    const SspiInfo u = classify_sspi(Bytes(Buf{0x01, 0x02, 0x03}));
    EXPECT_EQ(u.mechanism, SspiMechanism::Unknown);
    EXPECT_EQ(u.decoded.error().code, Code::Unsupported);
    EXPECT_EQ(classify_sspi(Bytes()).decoded.error().code, Code::Truncated);
}

TEST(Spnego, MalformedTokensAreTypedErrors) {
    SpnegoToken t;
    // NegotiationToken CHOICE [2] does not exist.
    EXPECT_EQ(parse_spnego(Bytes(ctx(2, seq({}))), t).error().code, Code::BadTag);
    // Fields out of order.
    const Buf ooo = ctx(1, seq({ctx(1, kNtlm), ctx(0, tlv(0x0a, {0x00}))}));
    EXPECT_EQ(parse_spnego(Bytes(ooo), t).error().code, Code::BadTag);
    // negState out of range.
    EXPECT_EQ(parse_spnego(Bytes(ctx(1, seq({ctx(0, tlv(0x0a, {0x07}))}))), t).error().code,
              Code::BadValue);
    // Wrapped with the Kerberos OID instead of SPNEGO's.
    const Buf wrong = tlv(0x60, cat({kKrb5, ctx(0, seq({}))}));
    EXPECT_EQ(parse_spnego(Bytes(wrong), t).error().code, Code::BadValue);
    // Truncated inside.
    Buf cut = init_token(cat({kKrb5}), ntlm_negotiate());
    cut.resize(cut.size() - 5);
    EXPECT_EQ(parse_spnego(Bytes(cut), t).error().code, Code::Truncated);
    // A broken inner token is reported by classify_sspi with the outer layer kept.
    Buf bad_inner = ntlm_negotiate();
    bad_inner.resize(12);
    const SspiInfo s = classify_sspi(Bytes(init_token(kNtlm, bad_inner)));
    EXPECT_EQ(s.wrapper, SspiWrapper::Spnego);
    EXPECT_EQ(s.mechanism, SspiMechanism::Ntlm);
    EXPECT_EQ(s.mechs_offered.size(), 1u);
    EXPECT_EQ(s.decoded.error().code, Code::Truncated);
    EXPECT_GT(s.decoded.error().offset, 12u) << "offset points into the whole blob";
}

}  // namespace
}  // namespace hopscope::auth
