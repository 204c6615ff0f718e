// Differential test: every GSS-API/SPNEGO security blob of the public captures (SMB, LDAP, HTTP,
// DCE-RPC carry the same tokens as TDS SSPI), classified by us and decoded by tshark 4.0 (values
// extracted once by tests/data/auth/extract.py into gss_tshark.txt).
#include <gtest/gtest.h>

#include <map>

#include "fixtures.hpp"
#include "hopscope/auth/sspi.hpp"

namespace hopscope::auth {
namespace {

using test::Fields;

Fields ours(Bytes blob, const SspiInfo& s) {
    Fields f;
    SpnegoToken t;
    if (!parse_spnego(blob, t).ok()) return f;
    f.emplace_back("wrapped", t.gss_wrapped ? "1" : "0");
    if (t.kind == SpnegoToken::Kind::Init) {
        f.emplace_back("spnego", "init");
        std::string mechs;
        for (const auto& o : t.init.mech_types) {
            mechs += (mechs.empty() ? "" : ",");
            mechs += o.dotted();
        }
        f.emplace_back("mech_types", mechs);
        f.emplace_back("mech_token", t.init.has_mech_token ? "1" : "0");
        if (t.init.hint_name) f.emplace_back("hint_name", *t.init.hint_name);
    } else {
        f.emplace_back("spnego", "resp");
        if (t.resp.neg_state) {
            f.emplace_back("neg_state", std::to_string(static_cast<int>(*t.resp.neg_state)));
        }
        if (t.resp.supported_mech) {
            f.emplace_back("supported_mech", std::string(t.resp.supported_mech->dotted()));
        }
        f.emplace_back("response_token", t.resp.has_response_token ? "1" : "0");
        f.emplace_back("mic", t.resp.has_mech_list_mic ? "1" : "0");
    }
    if (s.ntlm) f.emplace_back("inner", "ntlm:" + std::to_string(s.ntlm->type));
    if (s.kerberos) f.emplace_back("inner", "krb:" + std::to_string(s.kerberos->msg_type));
    return f;
}

TEST(SspiTshark, EveryPublicSpnegoBlobMatchesTshark) {
    auto recs = test::load_records("gss_tshark.txt");
    const auto lab = test::load_records("lab_gss_tshark.txt");  // tools/lab/run captures
    ASSERT_GE(lab.size(), 1u);
    recs.insert(recs.end(), lab.begin(), lab.end());
    const auto lab2 = test::load_records("lab2_gss_tshark.txt");  // captures/lab 9b 13 15 16
    ASSERT_FALSE(lab2.empty());
    recs.insert(recs.end(), lab2.begin(), lab2.end());
    ASSERT_GE(recs.size(), 40u) << "fixture missing or truncated";
    std::map<std::string, int> mechs;
    for (const auto& r : recs) {
        const SspiInfo s = classify_sspi(Bytes(r.bytes));
        ASSERT_TRUE(s.decoded.ok())
            << r.where() << ": " << s.decoded.error().detail << " at " << s.decoded.error().offset;
        EXPECT_EQ(s.wrapper, SspiWrapper::Spnego) << r.where();
        EXPECT_TRUE(test::same_fields(r.fields, ours(Bytes(r.bytes), s))) << r.where();
        ++mechs[to_string(s.mechanism)];
        const std::string inner = r.get("inner");
        if (inner.rfind("ntlm", 0) == 0) {
            EXPECT_EQ(s.mechanism, SspiMechanism::Ntlm) << r.where();
        }
        if (inner.rfind("krb", 0) == 0) {
            EXPECT_EQ(s.mechanism, SspiMechanism::Kerberos) << r.where();
        }
    }
    EXPECT_GT(mechs["ntlm"], 10);
    EXPECT_GT(mechs["kerberos"], 10);
}

}  // namespace
}  // namespace hopscope::auth
