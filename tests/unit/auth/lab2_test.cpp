// Later lab scenarios (captures/lab 9b, 13, 15; extracted by tests/data/auth/extract.py
// --lab-more): a real MIT KDC refusing S4U2Proxy, a GSSAPI SPNEGO client with and without
// delegation and with NTLM, and a KRB-ERROR from an acceptor whose key does not match.
#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "hopscope/auth/sspi.hpp"

namespace hopscope::auth {
namespace {

const test::Record& find(const char* file, const std::string& name, const std::string& frame) {
    static const auto sspi = test::load_records("lab2_sspi.txt");
    static const auto krb = test::load_records("lab2_krb_tshark.txt");
    for (const auto* set : {&sspi, &krb}) {
        for (const auto& r : *set) {
            if (r.file == name && r.frame == frame && (file[0] == 's') == (set == &sspi)) return r;
        }
    }
    ADD_FAILURE() << "no record " << name << " frame " << frame;
    static const test::Record none;
    return none;
}
const test::Record& blob(const std::string& name, const std::string& frame) {
    return find("sspi", name, frame);
}
KerberosMessage kdc(const std::string& name, const std::string& frame) {
    KerberosMessage m;
    const auto& r = find("krb", name, frame);
    EXPECT_EQ(r.get("transport"), "tcp");
    const Bytes b = Bytes(r.bytes).subspan(std::min<std::size_t>(4, r.bytes.size()));
    const auto e = parse_kerberos(b, m);
    EXPECT_TRUE(e.ok()) << e.error().detail;
    return m;
}

TEST(Lab2, EveryBlobClassifiesWithoutError) {
    const auto recs = test::load_records("lab2_sspi.txt");
    ASSERT_GE(recs.size(), 15u);
    for (const auto& r : recs) {
        const SspiInfo s = classify_sspi(Bytes(r.bytes));
        EXPECT_TRUE(s.decoded.ok()) << r.where() << ": " << s.decoded.error().detail;
        if (s.has_inner_token) {
            EXPECT_TRUE(s.ntlm || s.kerberos) << r.where();
        }
    }
}

TEST(Lab2, MitKdcRefusesS4U2Proxy) {
    const std::string pcap = "15-constrained-delegation-refused.pcap";
    const KerberosMessage req = kdc(pcap, "71");
    ASSERT_EQ(req.msg_type, krb_msg::TgsReq);
    const auto& q = std::get<KdcReq>(req.body);
    EXPECT_TRUE(q.kdc_options & kdc_option::CnameInAddlTkt);
    ASSERT_TRUE(q.sname);
    EXPECT_EQ(q.sname->str(), "MSSQLSvc/sqlb.lab.test:1433");
    ASSERT_EQ(q.additional_tickets.size(), 1u);
    EXPECT_EQ(q.additional_tickets[0].sname.str(), "MSSQLSvc/sqla.lab.test:1433");
    const PaData* po = q.find_padata(pa_type::PacOptions);
    ASSERT_TRUE(po && po->pac_options);
    EXPECT_TRUE(*po->pac_options & pac_option::ResourceBasedConstrainedDelegation);
    const PaData* tgs = q.find_padata(pa_type::TgsReq);
    ASSERT_TRUE(tgs && tgs->tgs_ap_req);
    EXPECT_EQ(tgs->tgs_ap_req->ticket.sname.str(), "krbtgt/LAB.TEST");

    const KerberosMessage rep = kdc(pcap, "73");
    ASSERT_EQ(rep.msg_type, krb_msg::Error);
    EXPECT_EQ(krb_error_name(std::get<KrbError>(rep.body).error_code), "KDC_ERR_BADOPTION");
}

TEST(Lab2, ForwardedTgtRequestBeforeADelegatingLogin) {
    const KerberosMessage m = kdc("13-spnego-delegation-policy.pcap", "41");
    const auto& q = std::get<KdcReq>(m.body);
    EXPECT_EQ(kdc_options_to_string(q.kdc_options), "forwardable|forwarded");
    EXPECT_EQ(q.sname->str(), "krbtgt/LAB.TEST");
}

TEST(Lab2, SpnegoKerberosWithAndWithoutDelegation) {
    const std::string pcap = "13-spnego-delegation-policy.pcap";
    const SspiInfo deleg = classify_sspi(Bytes(blob(pcap, "48").bytes));
    EXPECT_EQ(deleg.wrapper, SspiWrapper::Spnego);
    EXPECT_EQ(deleg.mechanism, SspiMechanism::Kerberos);
    EXPECT_TRUE(deleg.inner_gss_wrapped);
    EXPECT_EQ(deleg.krb_tok_id, krb5_tok::ApReq);
    const SspiInfo plain = classify_sspi(Bytes(blob(pcap, "97").bytes));
    ASSERT_TRUE(deleg.kerberos && plain.kerberos);
    EXPECT_GT(std::get<ApReq>(deleg.kerberos->body).authenticator.cipher_len,
              std::get<ApReq>(plain.kerberos->body).authenticator.cipher_len + 500);

    const SspiInfo reply = classify_sspi(Bytes(blob(pcap, "50").bytes));
    EXPECT_EQ(reply.spnego_kind, SpnegoToken::Kind::Resp);
    EXPECT_EQ(reply.neg_state, NegState::AcceptCompleted);
    EXPECT_EQ(reply.krb_tok_id, krb5_tok::ApRep);
}

TEST(Lab2, SpnegoNtlmRoundTrip) {
    const std::string pcap = "13-spnego-delegation-policy.pcap";
    const SspiInfo init = classify_sspi(Bytes(blob(pcap, "125").bytes));
    ASSERT_EQ(init.mechs_offered.size(), 1u);
    EXPECT_EQ(init.mechs_offered[0].mech, Mech::Ntlmssp);
    EXPECT_EQ(init.ntlm->type, 1u);

    const SspiInfo challenge = classify_sspi(Bytes(blob(pcap, "126").bytes));
    EXPECT_EQ(challenge.neg_state, NegState::AcceptIncomplete);
    EXPECT_EQ(challenge.supported_mech->mech, Mech::Ntlmssp);
    EXPECT_EQ(challenge.ntlm->type, 2u);

    // The client's second token is a NegTokenResp carrying AUTHENTICATE and a mechListMIC.
    const SspiInfo auth = classify_sspi(Bytes(blob(pcap, "127").bytes));
    EXPECT_EQ(auth.spnego_kind, SpnegoToken::Kind::Resp);
    EXPECT_TRUE(auth.has_mech_list_mic);
    ASSERT_TRUE(auth.ntlm);
    const auto& a = std::get<NtlmAuthenticate>(auth.ntlm->msg);
    EXPECT_EQ(a.user, "alice");
    EXPECT_EQ(a.domain, "LAB");
    EXPECT_EQ(a.response_kind, NtlmResponseKind::V2);

    // The server's last token has no mechanism token at all: nothing to classify, no error.
    const SspiInfo done = classify_sspi(Bytes(blob(pcap, "128").bytes));
    EXPECT_TRUE(done.decoded.ok());
    EXPECT_EQ(done.neg_state, NegState::AcceptCompleted);
    EXPECT_FALSE(done.has_inner_token);
    EXPECT_EQ(done.mechanism, SspiMechanism::Unknown);
}

TEST(Lab2, AcceptorWithTheWrongKeyAnswersBadIntegrity) {
    const SspiInfo s = classify_sspi(Bytes(blob("9b-spn-wrong-account.pcap", "39").bytes));
    ASSERT_TRUE(s.kerberos);
    EXPECT_EQ(krb_error_name(std::get<KrbError>(s.kerberos->body).error_code),
              "KRB_AP_ERR_BAD_INTEGRITY");
}

}  // namespace
}  // namespace hopscope::auth
