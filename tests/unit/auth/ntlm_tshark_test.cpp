// Differential test: every NTLMSSP message of the public captures, decoded by us and by tshark
// 4.0 (values extracted once by tests/data/auth/extract.py into ntlm_tshark.txt).
#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "hopscope/auth/ntlm.hpp"

namespace hopscope::auth {
namespace {

using test::Fields;

std::string version_string(const NtlmVersion& v) {
    return std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.build) +
           "/" + std::to_string(v.ntlm_revision);
}

void add_av(const AvPairs& a, const std::string& p, Fields& f) {
    if (a.nb_computer) f.emplace_back(p + "nb_computer", *a.nb_computer);
    if (a.nb_domain) f.emplace_back(p + "nb_domain", *a.nb_domain);
    if (a.dns_computer) f.emplace_back(p + "dns_computer", *a.dns_computer);
    if (a.dns_domain) f.emplace_back(p + "dns_domain", *a.dns_domain);
    if (a.dns_tree) f.emplace_back(p + "dns_tree", *a.dns_tree);
    if (a.flags) f.emplace_back(p + "flags", test::hex32(*a.flags));
    if (a.target_name) f.emplace_back(p + "target_name", *a.target_name);
    if (a.channel_bindings != ChannelBindings::Absent) {
        f.emplace_back(p + "channel_bindings", to_string(a.channel_bindings));
    }
}

Fields ours(const NtlmMessage& m) {
    Fields f;
    f.emplace_back("messagetype", std::to_string(m.type));
    if (const auto* n = std::get_if<NtlmNegotiate>(&m.msg)) {
        f.emplace_back("flags", test::hex32(n->flags));
        if (n->version) f.emplace_back("version", version_string(*n->version));
        if (n->domain) f.emplace_back("domain", *n->domain);
        if (n->workstation) f.emplace_back("workstation", *n->workstation);
    } else if (const auto* c = std::get_if<NtlmChallenge>(&m.msg)) {
        f.emplace_back("flags", test::hex32(c->flags));
        if (c->version) f.emplace_back("version", version_string(*c->version));
        f.emplace_back("target_name", c->target_name.value_or(""));
        if (c->has_target_info) add_av(c->target_info, "ti.", f);
    } else if (const auto* a = std::get_if<NtlmAuthenticate>(&m.msg)) {
        f.emplace_back("flags", test::hex32(a->flags));
        if (a->version) f.emplace_back("version", version_string(*a->version));
        f.emplace_back("domain", a->domain);
        f.emplace_back("user", a->user);
        f.emplace_back("workstation", a->workstation);
        f.emplace_back("lm_len", std::to_string(a->lm_response_len));
        f.emplace_back("nt_len", std::to_string(a->nt_response_len));
        if (a->v2_av_pairs) {
            f.emplace_back("response", "ntlmv2");
            add_av(*a->v2_av_pairs, "v2.", f);
        }
        f.emplace_back("mic", a->mic_field_present ? "1" : "0");
    }
    return f;
}

TEST(NtlmTshark, EveryPublicMessageMatchesTshark) {
    auto recs = test::load_records("ntlm_tshark.txt");
    const auto lab = test::load_records("lab_ntlm_tshark.txt");  // tools/lab/run captures
    ASSERT_GE(lab.size(), 5u);
    recs.insert(recs.end(), lab.begin(), lab.end());
    const auto lab2 = test::load_records("lab2_ntlm_tshark.txt");  // captures/lab 9b 13 15 16
    ASSERT_FALSE(lab2.empty());
    recs.insert(recs.end(), lab2.begin(), lab2.end());
    ASSERT_GE(recs.size(), 50u) << "fixture missing or truncated";
    int types[4] = {0, 0, 0, 0};
    for (const auto& r : recs) {
        NtlmMessage m;
        const auto err = parse_ntlm(Bytes(r.bytes), m);
        ASSERT_TRUE(err.ok()) << r.where() << ": " << err.error().detail << " at "
                              << err.error().offset;
        EXPECT_TRUE(test::same_fields(r.fields, ours(m))) << r.where();
        if (m.type <= 3) ++types[m.type];
    }
    EXPECT_GT(types[1], 10);
    EXPECT_GT(types[2], 10);
    EXPECT_GT(types[3], 10);
}

}  // namespace
}  // namespace hopscope::auth
