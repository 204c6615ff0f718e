#include "hopscope/report/json_events.hpp"

#include <gtest/gtest.h>

namespace hopscope::report {
namespace {

using namespace hopscope::analysis;

TEST(JsonEvents, LoginCarriesTheDocumentedNames) {
    LoginEvent l;
    l.ts = Timestamp{1'164'995'541'720'529};
    l.flow = FlowKey{Endpoint{IpAddress::v4_from(0x0a4d0002), 50000},
                     Endpoint{IpAddress::v4_from(0x0a4d0003), 1433}, Transport::Tcp};
    l.auth = AuthKind::Ntlm;
    l.outcome = Outcome::Failure;
    l.user = "";
    l.anonymous = true;
    l.encryption = EncryptionMode::LoginOnly;
    l.error =
        ServerError{18456, 1, 14, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.", "SQLB"};
    auto j = to_json(l);
    EXPECT_EQ(j["schema"], kSchemaVersion);
    EXPECT_EQ(j["event"], "login");
    EXPECT_EQ(j["ts"], "2006-12-01T17:52:21.720529Z");
    EXPECT_EQ(j["client"], "10.77.0.2:50000");
    EXPECT_EQ(j["server"], "10.77.0.3:1433");
    EXPECT_EQ(j["auth"], "ntlm");
    EXPECT_EQ(j["outcome"], "failure");
    EXPECT_EQ(j["anonymous"], true);
    EXPECT_EQ(j["encryption"], "login-only");
    EXPECT_EQ(j["error"]["number"], 18456);
    EXPECT_EQ(j["error"]["state"], 1);
    EXPECT_EQ(j["error"]["message"], "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.");
    for (const char* k : {"user", "domain", "spn"})
        EXPECT_TRUE(j.contains(k)) << k;
}

TEST(JsonEvents, FindingHasRuleSeverityEvidenceAndRemedy) {
    Finding f;
    f.rule = "HS010";
    f.name = "ntlm-first-hop";
    f.severity = Severity::Error;
    f.summary = "s";
    f.hops = {"C->A", "A->B"};
    f.evidence.push_back(EvidenceRef{FlowKey{}, 13, 0, Timestamp{}, "C's login"});
    f.display_filter = "frame.number in {13}";
    f.remedy = "r";
    auto j = to_json(f);
    EXPECT_EQ(j["event"], "finding");
    EXPECT_EQ(j["rule"], "HS010");
    EXPECT_EQ(j["severity"], "error");
    EXPECT_EQ(j["hops"].size(), 2u);
    EXPECT_EQ(j["evidence"][0]["frame"], 13);
    EXPECT_EQ(j["display_filter"], "frame.number in {13}");
    EXPECT_EQ(j["remedy"], "r");
    EXPECT_FALSE(j.contains("missing"));
}

TEST(JsonEvents, InvalidUtf8FromTheWireDoesNotThrow) {
    ServerErrorEvent e;
    e.error.message = std::string("bad \xff\xfe utf8");
    std::FILE* sink = std::tmpfile();
    ASSERT_NE(sink, nullptr);
    JsonLinesWriter w(sink);
    EXPECT_NO_THROW(w.write(to_json(e)));
    std::fclose(sink);
}

}  // namespace
}  // namespace hopscope::report
