// Real TDS SSPI blobs from the lab: FreeTDS 1.3 (tsql), impacket mssqlclient, tedious 18 and the
// lab server's MIT GSSAPI acceptor, captured by tools/lab/run and extracted by
// tests/data/auth/extract.py --lab into lab_sspi.txt. Each test pins one real-client form of
// lab.md §2 ("What each client really sends").
#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "hopscope/auth/sspi.hpp"

namespace hopscope::auth {
namespace {

const std::vector<test::Record>& lab() {
    static const auto recs = test::load_records("lab_sspi.txt");
    return recs;
}

const test::Record& blob(const std::string& file, const std::string& frame) {
    for (const auto& r : lab())
        if (r.file == file && r.frame == frame) return r;
    ADD_FAILURE() << "no lab blob " << file << " frame " << frame;
    static const test::Record none;
    return none;
}

// By value: callers pass temporaries.
NtlmAuthenticate auth_of(const SspiInfo& s) {
    const NtlmAuthenticate none;
    if (!s.ntlm || !std::holds_alternative<NtlmAuthenticate>(s.ntlm->msg)) {
        ADD_FAILURE() << "not an AUTHENTICATE: " << to_string(s);
        return none;
    }
    return std::get<NtlmAuthenticate>(s.ntlm->msg);
}

ApReq ap_req_of(const SspiInfo& s) {
    const ApReq none;
    if (!s.kerberos || !std::holds_alternative<ApReq>(s.kerberos->body)) {
        ADD_FAILURE() << "not an AP-REQ: " << to_string(s);
        return none;
    }
    return std::get<ApReq>(s.kerberos->body);
}

TEST(LabSspi, EveryBlobClassifiesWithoutError) {
    ASSERT_GE(lab().size(), 20u);
    for (const auto& r : lab()) {
        const SspiInfo s = classify_sspi(Bytes(r.bytes));
        EXPECT_TRUE(s.decoded.ok())
            << r.where() << ": " << s.decoded.error().detail << " at " << s.decoded.error().offset;
        EXPECT_NE(s.mechanism, SspiMechanism::Unknown) << r.where();
        EXPECT_TRUE(s.ntlm || s.kerberos) << r.where();
    }
}

TEST(LabSspi, FreeTdsNtlmNegotiateIsRawOemWithoutRequestTarget) {
    const auto& r = blob("1-ntlm-single-hop.pcap", "8");
    EXPECT_EQ(r.bytes.size(), 45u);
    const SspiInfo s = classify_sspi(Bytes(r.bytes));
    EXPECT_EQ(s.wrapper, SspiWrapper::Raw);
    ASSERT_TRUE(s.ntlm);
    const auto& n = std::get<NtlmNegotiate>(s.ntlm->msg);
    EXPECT_EQ(n.flags, 0x0008b201u);
    EXPECT_EQ(n.domain, "LAB");
    EXPECT_EQ(n.workstation, "vm");
    EXPECT_FALSE(n.version);
}

TEST(LabSspi, FreeTdsAuthenticateHasVersionFlagButNoVersionField) {
    // MS-NLMP 2.2.1.3: Version is present only when the payload starts at 72 or later; FreeTDS
    // sets NTLMSSP_NEGOTIATE_VERSION and starts the payload at 64.
    const SspiInfo s = classify_sspi(Bytes(blob("1-ntlm-single-hop.pcap", "10").bytes));
    const auto a = auth_of(s);
    EXPECT_TRUE(a.flags & ntlm_flag::Version);
    EXPECT_FALSE(a.version);
    EXPECT_TRUE(a.version_flag_without_field);
    EXPECT_FALSE(a.mic_field_present);
    EXPECT_EQ(a.domain, "LAB");
    EXPECT_EQ(a.user, "alice");
    EXPECT_EQ(a.workstation, "vm");
    EXPECT_EQ(a.lm_response_len, 24u);
    EXPECT_EQ(a.nt_response_len, 114u);
    EXPECT_EQ(a.response_kind, NtlmResponseKind::V2);
    EXPECT_FALSE(a.anonymous);
    ASSERT_TRUE(a.v2_av_pairs);
    EXPECT_EQ(a.v2_av_pairs->nb_computer, "VM");
}

TEST(LabSspi, FreeTdsNtlmV1HasA24ByteNtResponse) {
    const auto a = auth_of(classify_sspi(Bytes(blob("1-ntlm-single-hop.pcap", "26").bytes)));
    EXPECT_EQ(a.nt_response_len, 24u);
    EXPECT_EQ(a.lm_response_len, 24u);
    EXPECT_EQ(a.response_kind, NtlmResponseKind::V1);
    EXPECT_FALSE(a.v2_av_pairs);
}

TEST(LabSspi, ImpacketNegotiateIs32BytesWithoutVersion) {
    const auto& r = blob("1-ntlm-single-hop.pcap", "54");
    EXPECT_EQ(r.bytes.size(), 32u);
    const SspiInfo s = classify_sspi(Bytes(r.bytes));
    ASSERT_TRUE(s.ntlm);
    const auto& n = std::get<NtlmNegotiate>(s.ntlm->msg);
    EXPECT_EQ(n.flags, 0xa0880205u);
    EXPECT_FALSE(n.version);
    EXPECT_FALSE(n.domain);
}

TEST(LabSspi, ImpacketAuthenticateIsNtlmV2WithEmptyWorkstation) {
    const auto a = auth_of(classify_sspi(Bytes(blob("1-ntlm-single-hop.pcap", "56").bytes)));
    EXPECT_EQ(a.nt_response_len, 132u);
    EXPECT_EQ(a.user, "alice");
    EXPECT_EQ(a.workstation, "");
    EXPECT_EQ(a.response_kind, NtlmResponseKind::V2);
}

TEST(LabSspi, ImpacketAnonymousIsDetectedFromTheFieldsNotTheFlag) {
    // MS-NLMP 3.3.2 / 3.2.5.1.2: anonymous = empty user, empty NT response, LM response empty or
    // a single zero byte. impacket does not set NTLMSSP_NEGOTIATE_ANONYMOUS.
    const auto a = auth_of(classify_sspi(Bytes(blob("1-ntlm-single-hop.pcap", "72").bytes)));
    EXPECT_TRUE(a.anonymous);
    EXPECT_FALSE(a.anonymous_flag);
    EXPECT_EQ(a.user, "");
    EXPECT_EQ(a.domain, "LAB");
    EXPECT_EQ(a.lm_response_len, 1u);
    EXPECT_EQ(a.nt_response_len, 0u);
    EXPECT_EQ(a.response_kind, NtlmResponseKind::None);
}

TEST(LabSspi, LabServerAnonymousFallbackSetsTheFlagToo) {
    const auto a = auth_of(classify_sspi(Bytes(blob("11-sql2000-null.pcap", "22").bytes)));
    EXPECT_TRUE(a.anonymous);
    EXPECT_TRUE(a.anonymous_flag);
    EXPECT_EQ(a.workstation, "SQLA");
}

TEST(LabSspi, TediousNegotiateAndShortNtLenAuthenticate) {
    const auto& neg = blob("1-ntlm-single-hop.pcap", "84");
    EXPECT_EQ(neg.bytes.size(), 43u);
    const SspiInfo n = classify_sspi(Bytes(neg.bytes));
    ASSERT_TRUE(n.ntlm);
    EXPECT_EQ(std::get<NtlmNegotiate>(n.ntlm->msg).flags, 0xa2089207u);

    // tedious writes NtChallengeResponseFields.Len = 16 (NTProofStr only) while the NTLMv2 blob
    // follows to the end of the message.
    const auto& r = blob("1-ntlm-single-hop.pcap", "86");
    EXPECT_EQ(r.bytes.size(), 218u);
    const auto a = auth_of(classify_sspi(Bytes(r.bytes)));
    EXPECT_EQ(a.flags, 0x00088201u);
    EXPECT_EQ(a.nt_response_len, 16u);
    EXPECT_TRUE(a.blob_past_nt_len);
    EXPECT_EQ(a.response_kind, NtlmResponseKind::V2);
    ASSERT_TRUE(a.v2_av_pairs);
    EXPECT_EQ(a.v2_av_pairs->dns_computer, "vm");
    EXPECT_TRUE(a.v2_av_pairs->terminated);
    EXPECT_EQ(a.user, "alice");
}

TEST(LabSspi, FreeTdsKerberosIsARawGssTokenNotSpnego) {
    const SspiInfo s = classify_sspi(Bytes(blob("2-kerberos-single-hop.pcap", "38").bytes));
    EXPECT_EQ(s.mechanism, SspiMechanism::Kerberos);
    EXPECT_EQ(s.wrapper, SspiWrapper::Gss);
    EXPECT_TRUE(s.inner_gss_wrapped);
    ASSERT_TRUE(s.inner_mech_oid);
    EXPECT_EQ(s.inner_mech_oid->dotted(), "1.2.840.113554.1.2.2");
    EXPECT_EQ(s.krb_tok_id, krb5_tok::ApReq);
    const auto ap = ap_req_of(s);
    EXPECT_EQ(ap.ap_options, ap_option::MutualRequired);
    EXPECT_EQ(ap.ticket.sname.str(), "MSSQLSvc/sqla.lab.test:1433");
    EXPECT_EQ(ap.ticket.realm, "LAB.TEST");
    EXPECT_EQ(ap.ticket.enc_part.etype, 18);
    EXPECT_EQ(ap.ticket.enc_part.kvno, 2u);
    EXPECT_EQ(ap.authenticator.etype, 18);
}

TEST(LabSspi, DelegatingFreeTdsAuthenticatorIsMuchLarger) {
    // lab.md §2: ~1450 bytes with the forwarded TGT in the 0x8003 checksum, ~703 without.
    const auto with =
        ap_req_of(classify_sspi(Bytes(blob("4-double-hop-delegation.pcap", "49").bytes)));
    const auto without =
        ap_req_of(classify_sspi(Bytes(blob("2-kerberos-single-hop.pcap", "38").bytes)));
    EXPECT_GT(with.authenticator.cipher_len, without.authenticator.cipher_len + 500);
}

TEST(LabSspi, ImpacketKerberosIsSpnegoAroundABareApReq) {
    const SspiInfo s = classify_sspi(Bytes(blob("2-kerberos-single-hop.pcap", "52").bytes));
    EXPECT_EQ(s.wrapper, SspiWrapper::Spnego);
    EXPECT_EQ(s.mechanism, SspiMechanism::Kerberos);
    ASSERT_EQ(s.mechs_offered.size(), 1u);
    EXPECT_EQ(s.mechs_offered[0].mech, Mech::MsKerberos);
    EXPECT_FALSE(s.inner_gss_wrapped);
    EXPECT_FALSE(s.krb_tok_id);
    const auto ap = ap_req_of(s);
    EXPECT_EQ(ap.ap_options, 0u);
    EXPECT_EQ(ap.ticket.sname.str(), "MSSQLSvc/sqla.lab.test:1433");
}

TEST(LabSspi, ServerApRepIsAGssWrapped0200Token) {
    const SspiInfo s = classify_sspi(Bytes(blob("2-kerberos-single-hop.pcap", "39").bytes));
    EXPECT_EQ(s.mechanism, SspiMechanism::Kerberos);
    EXPECT_EQ(s.krb_tok_id, krb5_tok::ApRep);
    ASSERT_TRUE(s.kerberos);
    EXPECT_EQ(s.kerberos->msg_type, krb_msg::ApRep);
    EXPECT_EQ(std::get<ApRep>(s.kerberos->body).enc_part.etype, 18);
}

TEST(LabSspi, AcceptorKrbErrorsAre0300Tokens) {
    const SspiInfo skew = classify_sspi(Bytes(blob("10-clock-skew.pcap", "40").bytes));
    EXPECT_EQ(skew.krb_tok_id, krb5_tok::Error);
    ASSERT_TRUE(skew.kerberos);
    const auto& e = std::get<KrbError>(skew.kerberos->body);
    EXPECT_EQ(e.error_code, 37);
    EXPECT_EQ(krb_error_name(e.error_code), "KRB_AP_ERR_SKEW");
    ASSERT_TRUE(e.sname);
    EXPECT_EQ(e.sname->str(), "MSSQLSvc/sqla.lab.test:1433");

    const SspiInfo stale = classify_sspi(Bytes(blob("9-stale-keytab.pcap", "39").bytes));
    ASSERT_TRUE(stale.kerberos);
    EXPECT_EQ(std::get<KrbError>(stale.kerberos->body).error_code, 44);  // KRB_AP_ERR_BADKEYVER
    // ... and the AP-REQ that caused it carried kvno 3 (the KDC's), not the acceptor's 2.
    EXPECT_EQ(ap_req_of(classify_sspi(Bytes(blob("9-stale-keytab.pcap", "36").bytes)))
                  .ticket.enc_part.kvno,
              3u);
}

}  // namespace
}  // namespace hopscope::auth
