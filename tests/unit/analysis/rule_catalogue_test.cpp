// The rule catalogue (hopscope/analysis/rules.hpp) against the rule table of docs/events.md, and
// the rules that decide the same verdict from two kinds of evidence (a login, a KDC exchange)
// agreeing with each other. Which rule fires on which lab capture: tests/unit/golden.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <string>

#include "hopscope/analysis/analyzer.hpp"
#include "hopscope/analysis/rules.hpp"

namespace hopscope::analysis {
namespace {

constexpr std::int64_t kSec = 1'000'000;
constexpr std::uint32_t kC = 0x0a4d0002, kA = 0x0a4d0003, kKdc = 0x0a4d0001;

FlowKey tcp(std::uint32_t c, std::uint16_t cport, std::uint32_t s, std::uint16_t sport) {
    return FlowKey{Endpoint{IpAddress::v4_from(c), cport}, Endpoint{IpAddress::v4_from(s), sport},
                   Transport::Tcp};
}

struct Collect : FindingSink {
    std::vector<Finding> all;
    void on_finding(const Finding& f) override { all.push_back(f); }
    [[nodiscard]] const Finding* get(const std::string& rule) const {
        for (const auto& f : all)
            if (f.rule == rule) return &f;
        return nullptr;
    }
};

struct DocRow {
    std::string id, name, severity, when;
};

/// The rows of the rule table of docs/events.md, in order; backticks (code spans) dropped.
std::vector<DocRow> doc_rules() {
    std::ifstream in(std::string(HOPSCOPE_CAPTURES_DIR) + "/../docs/events.md");
    EXPECT_TRUE(in) << "docs/events.md";
    const std::regex row(R"(^\| (HS[0-9]{3}) \| ([^|]+) \| ([^|]+) \| (.*) \|$)");
    std::vector<DocRow> out;
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (!std::regex_match(line, m, row)) continue;
        std::string when = m[4];
        std::erase(when, '`');
        out.push_back(DocRow{m[1], m[2], m[3], when});
    }
    return out;
}

TEST(RuleCatalogue, IdsAreUniqueAndInOrder) {
    std::set<std::string_view> ids;
    std::string_view previous;
    for (const auto& r : rule_catalogue()) {
        EXPECT_TRUE(ids.insert(r.id).second) << r.id;
        EXPECT_LT(previous, r.id);
        previous = r.id;
        EXPECT_EQ(find_rule(r.id), &r);
        EXPECT_FALSE(r.name.empty());
        EXPECT_FALSE(r.meaning.empty());
    }
    EXPECT_EQ(find_rule("HS999"), nullptr);
    EXPECT_EQ(rule_catalogue().size(), 24u);
}

TEST(RuleCatalogue, MatchesTheRuleTableOfTheDocs) {
    const std::vector<DocRow> doc = doc_rules();
    ASSERT_EQ(doc.size(), rule_catalogue().size());
    for (std::size_t i = 0; i < doc.size(); ++i) {
        const RuleInfo& r = rule_catalogue()[i];
        SCOPED_TRACE(r.id);
        EXPECT_EQ(doc[i].id, r.id);
        EXPECT_EQ(doc[i].name, r.name);
        EXPECT_EQ(doc[i].severity, to_string(r.severity));
        EXPECT_EQ(doc[i].when, r.meaning);
    }
}

TEST(RuleCatalogue, EveryFindingCarriesItsCatalogueEntry) {
    // A few rules of each occasion; each finding's name and severity come from the catalogue.
    Collect out;
    Analyzer a(out);
    KerberosEvent k;
    k.flow = tcp(kC, 51000, kKdc, 88);
    k.ts = Timestamp{kSec};
    k.request = "TGS-REQ";
    k.reply = "KRB-ERROR";
    k.sname = "MSSQLSvc/sqlx.lab.test:1433";
    k.error_code = krb_error::kSPrincipalUnknown;
    a.add_kerberos(k);
    LoginEvent l;
    l.flow = tcp(kC, 50000, kA, 1433);
    l.ts = l.started = Timestamp{2 * kSec};
    l.auth = AuthKind::Sql;
    l.user = "sa";
    l.encryption = EncryptionMode::None;
    l.outcome = Outcome::Failure;
    l.error = ServerError{sql_error::kLoginFailed, 1, 14, "Login failed for user 'sa'.", "SQLA"};
    a.add_login(l);
    a.finish();
    ASSERT_EQ(out.all.size(), 2u);
    for (const auto& f : out.all) {
        const RuleInfo* r = find_rule(f.rule);
        ASSERT_NE(r, nullptr) << f.rule;
        EXPECT_EQ(f.name, r->name);
        EXPECT_EQ(f.severity, r->severity);
    }
}

TEST(RuleCatalogue, SpnFormIsJudgedAlikeFromTheTicketAndFromTheKdc) {
    const std::vector<std::pair<std::string, bool>> spns{
        {"MSSQLSvc/sqla.lab.test:1433", false},
        {"MSSQLSvc/sqla.lab.test:1433@LAB.TEST", false},
        {"MSSQLSvc/SQLA.LAB.TEST:1433", false},
        {"mssqlsvc/sqla.lab.test:1433", false},
        {"MSSQLSvc/sqla.lab.test", true},
        {"MSSQLSvc/sqla.lab.test@LAB.TEST", true},
        {"MSSQLSvc/sqla:1433", true},
        {"MSSQLSvc/10.77.0.3:1433", true},
        {"MSSQLSvc/[fd00::3]:1433", true},
        {"MSSQLSvc/[fd00::3]", true},
        {"MSSQLSvc/[sqla.lab.test]", true},
        {"HTTP/sqla.lab.test", false},
        {"krbtgt/LAB.TEST", false},
    };
    for (const auto& [spn, wrong] : spns) {
        SCOPED_TRACE(spn);
        EXPECT_EQ(spn_form_wrong(spn), wrong);
        Collect from_kdc;
        {
            Analyzer a(from_kdc);
            KerberosEvent k;
            k.flow = tcp(kC, 51000, kKdc, 88);
            k.ts = Timestamp{kSec};
            k.request = "TGS-REQ";
            k.reply = "TGS-REP";
            k.sname = spn;
            a.add_kerberos(k);
            a.finish();
        }
        Collect from_login;
        {
            Analyzer a(from_login);
            LoginEvent l;
            l.flow = tcp(kC, 50000, kA, 1433);
            l.ts = l.started = Timestamp{kSec};
            l.auth = AuthKind::Kerberos;
            l.outcome = Outcome::Success;
            l.user = "alice";
            l.spn = spn;
            a.add_login(l);
            a.finish();
        }
        EXPECT_EQ(from_kdc.get("HS024") != nullptr, wrong);
        EXPECT_EQ(from_login.get("HS024") != nullptr, wrong);
        if (wrong && from_kdc.get("HS024") && from_login.get("HS024")) {
            EXPECT_EQ(from_kdc.get("HS024")->remedy, from_login.get("HS024")->remedy);
        }
    }
}

/// HS021 and HS022 from the server's SSPI reply (`krb` in the login) and from the KDC.
struct BothWays {
    Collect from_login, from_kdc;
};

BothWays ticket_error(std::int32_t krb) {
    BothWays out;
    {
        Analyzer a(out.from_login);
        LoginEvent l;
        l.flow = tcp(kC, 50000, kA, 1433);
        l.ts = l.started = Timestamp{kSec};
        l.auth = AuthKind::Kerberos;
        l.outcome = Outcome::Failure;
        l.spn = "MSSQLSvc/sqla.lab.test:1433";
        l.kerberos_error = krb;
        l.error = ServerError{sql_error::kUntrustedLogin, 1, 14,
                              "Login failed. The login is from an untrusted domain and cannot be "
                              "used with Windows authentication.",
                              "SQLA"};
        a.add_login(l);
        a.finish();
    }
    {
        Analyzer a(out.from_kdc);
        KerberosEvent k;
        k.flow = tcp(kC, 51000, kKdc, 88);
        k.ts = Timestamp{kSec};
        k.request = "TGS-REQ";
        k.reply = "KRB-ERROR";
        k.client = "alice@LAB.TEST";
        k.sname = "MSSQLSvc/sqla.lab.test:1433";
        k.error_code = krb;
        a.add_kerberos(k);
        a.finish();
    }
    return out;
}

TEST(RuleCatalogue, WrongKeyAndSkewGiveTheSameAdviceFromEitherSide) {
    const BothWays skew = ticket_error(krb_error::kSkew);
    ASSERT_NE(skew.from_login.get("HS022"), nullptr);
    ASSERT_NE(skew.from_kdc.get("HS022"), nullptr);
    EXPECT_EQ(skew.from_login.get("HS022")->remedy, skew.from_kdc.get("HS022")->remedy);
    EXPECT_NE(skew.from_kdc.get("HS022")->remedy.find("w32tm /resync"), std::string::npos);
    EXPECT_EQ(skew.from_login.get("HS002"), nullptr) << "the skew is the cause, not 18452";

    const BothWays modified = ticket_error(krb_error::kModified);
    ASSERT_NE(modified.from_login.get("HS021"), nullptr);
    ASSERT_NE(modified.from_kdc.get("HS021"), nullptr);
    EXPECT_EQ(modified.from_login.get("HS021")->remedy, modified.from_kdc.get("HS021")->remedy);
    EXPECT_NE(modified.from_kdc.get("HS021")->remedy.find("setspn -Q MSSQLSvc/sqla.lab.test:1433"),
              std::string::npos);
}

TEST(RuleCatalogue, WrongKeyEvidenceNamesTheErrorTheServerSent) {
    for (const std::int32_t krb :
         {krb_error::kBadIntegrity, krb_error::kModified, krb_error::kBadKeyVersion}) {
        SCOPED_TRACE(krb);
        const BothWays r = ticket_error(krb);
        const Finding* f = r.from_login.get("HS021");
        ASSERT_NE(f, nullptr);
        ASSERT_EQ(f->evidence.size(), 1u);
        EXPECT_EQ(f->evidence[0].what, "KRB-ERROR " + std::to_string(krb) + " in the SSPI reply");
        EXPECT_EQ(r.from_login.get("HS002"), nullptr);
    }
    // From the KDC only MODIFIED means a wrong key (BAD_INTEGRITY there is about the request).
    EXPECT_EQ(ticket_error(krb_error::kBadIntegrity).from_kdc.get("HS021"), nullptr);
    EXPECT_EQ(ticket_error(krb_error::kBadKeyVersion).from_kdc.get("HS021"), nullptr);
}

}  // namespace
}  // namespace hopscope::analysis
