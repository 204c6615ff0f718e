// Every rule of the catalogue fires on at least one lab capture (captures/lab/), read without and
// with its keytab (--keytab), except the few listed below that no lab capture can show, which
// unit tests cover instead; and the healthy scenarios raise nothing but the healthy-double-hop
// verdict, with or without the keytab.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "hopscope/analysis/rules.hpp"
#include "hopscope/captures/keytab.hpp"
#include "run_pipeline.hpp"

namespace hopscope::golden {
namespace {

namespace fs = std::filesystem;

/// The rules no lab capture triggers, why, and the unit tests that make them fire instead.
const std::map<std::string, std::string> kNotInCaptures{
    {"HS015",
     "no lab middle server fails to use a forwarded TGT it received (the lab server delegates "
     "whenever it gets one); tests/unit/analysis: "
     "Analyzer.ForwardedTgtReceivedButUnusedPointsAtTheMiddleServer"},
    {"HS024",
     "every lab client asks for MSSQLSvc/<fqdn>:<port>; tests/unit/analysis: "
     "Analyzer.SpnWithIpAddressWillNotMatch, "
     "RuleCatalogue.SpnFormIsJudgedAlikeFromTheTicketAndFromTheKdc"},
    {"HS030",
     "needs an NTLM session to a middle server that runs no linked-server query; scenario 17 "
     "shows it but keeps no capture; tests/unit/analysis: "
     "Analyzer.NtlmToAHostSeenAsMiddleServerLaterIsWarnedAtTheEnd"},
    {"HS041",
     "the lab's MIT realm issues AES tickets only; tests/unit/analysis: "
     "Analyzer.Rc4TicketIsFlagged"},
    {"HS060",
     "a proxy rule: analyze reads captures without the proxy's view (lab scenario 17 checks it "
     "live); tests/unit/analysis: AnalyzerProxy.NtlmLoginNamingTheProxyThroughAnExplicitListener, "
     "AnalyzerProxy.UnknownProxySpnAtTheKdcThenNtlm, AnalyzerProxy.KerberosTicketForTheProxyName"},
    {"HS061",
     "a proxy rule, and the lab has no server that routes (availability group, gateway); "
     "tests/unit/analysis: AnalyzerProxy.RoutingTokenSendsTheClientAroundTheProxy, "
     "PipelineEvidence.RoutingAroundTheProxyIsFoundWithItsOffset"},
    {"HS062",
     "a rule of the TLS-terminating proxy, which no capture analysis raises: the lab raises it "
     "with 'tools/lab/run tls 25' (Extended Protection at A, bound NTLM and Kerberos logins, "
     "checked in the proxy's events); its inputs are read from scenario 25's capture by "
     "LabTlsKeylog.ChannelBindingsAsTheLabsClientsPutThemOnTheWire; tests/unit/analysis: "
     "AnalyzerProxy.ChannelBoundNtlmLoginThroughTheTerminatingProxyIsReported, "
     "AnalyzerProxy.ChannelBindingsAreNoMatterWithoutTermination"},
};

/// Scenarios where the identity reaches every server it should.
const std::set<std::string> kHealthy{
    "4-double-hop-delegation",
    "4x-double-hop-delegation-checked-before-loginack",
    "12a-ntlm-tls-login-only",
    "12c-double-hop-delegation-tls-login-only",
    "12d-double-hop-delegation-tls-full",
    "18-constrained-delegation-allowed",
    "20-protocol-transition",
    "23-rbcd-allowed",
};

std::map<std::string, std::set<std::string>> rules_per_capture() {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& entry : fs::directory_iterator(std::string(HOPSCOPE_CAPTURES_DIR) + "/lab")) {
        if (entry.path().extension() != ".pcap") continue;
        auto& rules = out[entry.path().stem().string()];
        Collected c;
        EXPECT_TRUE(run_pipeline({entry.path().string()}, c).ok()) << entry.path();
        for (const auto& r : c.rules())
            rules.insert(r);
        // Again with the capture's keytab (the derived captures have none of their own).
        fs::path kt = entry.path();
        kt.replace_extension(".keytab");
        if (!fs::exists(kt)) continue;
        std::string error;
        const auto keys = captures::Keytab::load(kt.string(), error);
        EXPECT_TRUE(keys) << error;
        Collected k;
        EXPECT_TRUE(run_pipeline({entry.path().string()}, k, nullptr, keys.get()).ok());
        for (const auto& r : k.rules())
            rules.insert(r);
    }
    return out;
}

TEST(RuleCoverage, EveryRuleFiresOnALabCaptureOrIsListedWithItsUnitTests) {
    const auto per_capture = rules_per_capture();
    ASSERT_FALSE(per_capture.empty());
    std::map<std::string, std::string> fired;  // rule -> a capture that shows it
    for (const auto& [capture, rules] : per_capture)
        for (const auto& r : rules)
            fired.emplace(r, capture);
    for (const auto& rule : analysis::rule_catalogue()) {
        const std::string id(rule.id);
        if (kNotInCaptures.count(id)) {
            EXPECT_EQ(fired.count(id), 0u)
                << id << " now fires on " << fired[id] << ": take it off the list";
        } else {
            EXPECT_EQ(fired.count(id), 1u) << id << " fires on no lab capture";
        }
    }
    for (const auto& [id, capture] : fired)
        EXPECT_NE(analysis::find_rule(id), nullptr)
            << id << " (" << capture << ") is not catalogued";
    for (const auto& [id, why] : kNotInCaptures)
        EXPECT_NE(analysis::find_rule(id), nullptr) << id;
}

TEST(RuleCoverage, HealthyScenariosRaiseOnlyTheHealthyVerdict) {
    const auto per_capture = rules_per_capture();
    for (const auto& name : kHealthy) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(per_capture.count(name));
        for (const auto& r : per_capture.at(name)) {
            EXPECT_EQ(r, "HS050");
            ASSERT_NE(analysis::find_rule(r), nullptr);
            EXPECT_EQ(analysis::find_rule(r)->severity, analysis::Severity::Info);
        }
    }
}

}  // namespace
}  // namespace hopscope::golden
