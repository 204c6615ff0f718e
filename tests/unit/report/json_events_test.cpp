#include "hopscope/report/json_events.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <string>
#include <thread>

namespace hopscope::report {
namespace {

using namespace hopscope::analysis;

TEST(Time, Rfc3339InUtcWithMicroseconds) {
    EXPECT_EQ(to_rfc3339(Timestamp{1'164'995'541'720'529}), "2006-12-01T17:52:21.720529Z");
    EXPECT_EQ(to_rfc3339(Timestamp{-1}), "1969-12-31T23:59:59.999999Z");
    EXPECT_EQ(to_rfc3339(Timestamp{0}), "1970-01-01T00:00:00.000000Z");
    EXPECT_EQ(to_rfc3339(Timestamp{951'782'400'000'000}), "2000-02-29T00:00:00.000000Z");
    EXPECT_EQ(to_rfc3339(Timestamp{4'107'542'399'999'999}), "2100-02-28T23:59:59.999999Z");
    // A damaged capture's time: clamped to the four-digit years, never garbage or overflow.
    EXPECT_EQ(to_rfc3339(Timestamp{std::numeric_limits<std::int64_t>::max()}),
              "9999-12-31T23:59:59.999999Z");
    EXPECT_EQ(to_rfc3339(Timestamp{std::numeric_limits<std::int64_t>::min()}),
              "0000-01-01T00:00:00.000000Z");
}

TEST(Time, Rfc3339KeepsNoStaleSecond) {
    // The writer keeps the last second's text: times within it, after it, before it and
    // across the epoch, in the order a capture or a damaged one can give them.
    EXPECT_EQ(to_rfc3339(Timestamp{1'164'995'541'720'529}), "2006-12-01T17:52:21.720529Z");
    EXPECT_EQ(to_rfc3339(Timestamp{1'164'995'541'000'001}), "2006-12-01T17:52:21.000001Z");
    EXPECT_EQ(to_rfc3339(Timestamp{1'164'995'542'000'000}), "2006-12-01T17:52:22.000000Z");
    EXPECT_EQ(to_rfc3339(Timestamp{1'164'995'541'999'999}), "2006-12-01T17:52:21.999999Z");
    EXPECT_EQ(to_rfc3339(Timestamp{0}), "1970-01-01T00:00:00.000000Z");
    EXPECT_EQ(to_rfc3339(Timestamp{-1'000'000}), "1969-12-31T23:59:59.000000Z");
    EXPECT_EQ(to_rfc3339(Timestamp{-1}), "1969-12-31T23:59:59.999999Z");
    EXPECT_EQ(to_rfc3339(Timestamp{999'999}), "1970-01-01T00:00:00.999999Z");
    EXPECT_EQ(to_rfc3339(Timestamp{-1'000'001}), "1969-12-31T23:59:58.999999Z");
    // Another thread keeps its own.
    std::string other;
    std::thread([&other] { other = to_rfc3339(Timestamp{86'400'000'000}); }).join();
    EXPECT_EQ(other, "1970-01-02T00:00:00.000000Z");
    EXPECT_EQ(to_rfc3339(Timestamp{-1'000'001}), "1969-12-31T23:59:58.999999Z");
}

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
    // Kept as numbers, written as names; absent (or "") when not seen.
    EXPECT_EQ(j["tls_version"], "");
    EXPECT_EQ(j["tds_version"], "");
    EXPECT_FALSE(j.contains("kerberos_etype"));
    EXPECT_FALSE(j.contains("routing"));
    l.tls_version = 0x0303;
    l.tds_version = 0x74000004;
    l.kerberos_etype = 23;
    l.routing = std::string("replica2.lab.test:14333");
    j = to_json(l);
    EXPECT_EQ(j["tls_version"], "TLS 1.2");
    EXPECT_EQ(j["tds_version"], "7.4");
    EXPECT_EQ(j["kerberos_etype"], "rc4-hmac");
    EXPECT_EQ(j["routing"], "replica2.lab.test:14333");
    l.tls_version = 0x0304;
    l.tds_version = 0x730B0003;
    l.kerberos_etype = 18;
    j = to_json(l);
    EXPECT_EQ(j["tls_version"], "TLS 1.3");
    EXPECT_EQ(j["tds_version"], "7.3B");
    EXPECT_EQ(j["kerberos_etype"], "aes256-cts-hmac-sha1-96");
}

TEST(JsonEvents, KerberosOptionsEnctypesAndPadataAreWrittenAsNames) {
    // The event keeps the numbers of the message; the line names them as the decoder does
    // (auth::kdc_options_to_string, etype_name, pa_type_name), in the message's order.
    KerberosEvent k;
    k.kdc_options = auth::kdc_option::Forwardable | auth::kdc_option::CnameInAddlTkt |
                    auth::kdc_option::Canonicalize | 0x00000400u;  // a bit without a name
    k.etypes = {18, 23, 99, -128};
    k.padata = {auth::pa_type::TgsReq, auth::pa_type::PacOptions, 4242};
    const auto j = to_json(k);
    EXPECT_EQ(j["kdc_options"],
              nlohmann::ordered_json({"forwardable", "cname-in-addl-tkt", "canonicalize"}));
    EXPECT_EQ(auth::kdc_options_to_string(k.kdc_options),
              "forwardable|cname-in-addl-tkt|canonicalize");
    EXPECT_EQ(j["etypes"],
              nlohmann::ordered_json({"aes256-cts-hmac-sha1-96", "rc4-hmac", "99", "-128"}));
    EXPECT_EQ(j["padata"], nlohmann::ordered_json({"PA-TGS-REQ", "PA-PAC-OPTIONS", "?"}));
    EXPECT_TRUE(k.has_option(auth::kdc_option::CnameInAddlTkt));
    EXPECT_FALSE(k.has_option(auth::kdc_option::Forwarded));
    EXPECT_TRUE(k.has_padata(auth::pa_type::PacOptions));
    EXPECT_FALSE(k.has_padata(auth::pa_type::ForUser));
    k = KerberosEvent{};
    const auto empty = to_json(k);
    EXPECT_EQ(empty["kdc_options"], nlohmann::ordered_json::array());
    EXPECT_EQ(empty["etypes"], nlohmann::ordered_json::array());
    EXPECT_EQ(empty["padata"], nlohmann::ordered_json::array());
}

TEST(JsonEvents, FindingHasRuleSeverityEvidenceAndRemedy) {
    Finding f;
    f.rule = "HS010";
    f.name = "ntlm-first-hop";
    f.severity = Severity::Error;
    f.summary = "s";
    f.hops = {"C->A", "A->B"};
    f.evidence.push_back(EvidenceRef{FlowKey{}, Position{13, 0, Direction::ServerToClient},
                                     Timestamp{}, "C's login"});
    f.display_filter = "frame.number in {13}";
    f.remedy = "r";
    auto j = to_json(f);
    EXPECT_EQ(j["event"], "finding");
    EXPECT_EQ(j["rule"], "HS010");
    EXPECT_EQ(j["severity"], "error");
    EXPECT_EQ(j["hops"].size(), 2u);
    EXPECT_EQ(j["evidence"][0]["at"]["frame"], 13);
    EXPECT_EQ(j["evidence"][0]["at"]["stream_offset"], 0) << "0 is the first byte, not unknown";
    EXPECT_EQ(j["evidence"][0]["at"]["direction"], "s2c");
    EXPECT_EQ(j["display_filter"], "frame.number in {13}");
    EXPECT_EQ(j["remedy"], "r");
    EXPECT_FALSE(j.contains("missing"));
}

// json_line writes by hand what nlohmann's compact dump would write: parsing a line and
// dumping it again must give the same bytes, for strings with every kind of escape, non-ASCII
// UTF-8 and invalid UTF-8, in every event type.
/// A line parsed and dumped again by nlohmann, compact, invalid UTF-8 replaced.
std::string redump(const std::string& line) {
    return nlohmann::ordered_json::parse(line).dump(-1, ' ', false,
                                                    nlohmann::json::error_handler_t::replace);
}

TEST(JsonEvents, LinesAreExactlyNlohmannsCompactDump) {
    const std::vector<std::string> tricky = {
        "", "plain", "quote \" backslash \\ slash /", "controls \b\f\n\r\t \x01\x1f end",
        std::string("nul \0 inside", 12), "del \x7f",
        "utf8 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", "invalid \xff\xfe and \xc3 cut",
        "overlong \xc0\xaf surrogate \xed\xa0\x80",
        // longer than the writer's first buffer, plain
        // and with an escape at the far end
        std::string(5000, 'x'), std::string(3000, 'y') + "\"\n"};
    for (const std::string& t : tricky) {
        LoginEvent l;
        l.user = t;
        l.domain = t;
        l.server_aliases = {t, "b"};
        l.ntlm_version = 2;
        l.kerberos_etype = -2147483647 - 1;
        l.kerberos_error = -1765328378;
        l.first_at.frame = ~std::uint64_t{0};
        l.last_at.stream_offset = ~std::uint64_t{0};
        l.routing = t;
        l.error = ServerError{-5, 255, 0, t, t};
        const std::string a = json_line(l);
        EXPECT_EQ(redump(a), a) << t;

        KerberosEvent k;
        k.client = t;
        k.kdc_options = ~std::uint32_t{0};
        k.etypes = {18, -7, 99, std::numeric_limits<std::int32_t>::min()};  // the longest
        k.padata = {129, 0, 5};
        k.extra_to_set().s4u_user = t;
        k.extra_to_set().additional_ticket_snames = {t};
        k.error_code = 7;
        k.extra_to_set().error_text = t;
        const std::string b = json_line(k);
        EXPECT_EQ(redump(b), b) << t;

        ServerErrorEvent e;
        e.error.message = t;
        e.statement = t;
        const std::string c = json_line(e);
        EXPECT_EQ(redump(c), c) << t;

        Finding f;
        f.summary = t;
        f.hops = {t};
        f.evidence = {EvidenceRef{FlowKey{}, Position{13, 5}, Timestamp{}, t},
                      EvidenceRef{FlowKey{}, Position{}, Timestamp{}, ""}};
        f.missing = t;
        const std::string d = json_line(f);
        EXPECT_EQ(redump(d), d) << t;
    }
    // Escapes as nlohmann writes them, and invalid UTF-8 replaced, not dropped.
    ServerErrorEvent e;
    e.statement = "a\x01\"\\\n";
    EXPECT_NE(json_line(e).find(R"("statement":"a\u0001\"\\\n")"), std::string::npos);
    e.statement = "x\xffy";
    EXPECT_NE(json_line(e).find("\"statement\":\"x\xef\xbf\xbdy\""), std::string::npos);
}

TEST(JsonEvents, EveryByteThatNeedsCareIsFoundWhereverItIs) {
    // The writer looks for bytes to escape (or hand to nlohmann) eight at a time, the last eight
    // again where they end, a text of 1 to 7 bytes in one word: each such byte, and its plain
    // neighbours 0x1f+1, 0x7f, at every offset of strings around the word size, gives nlohmann's
    // dump (fails when a short text's middle byte is not looked at, or the last word is read one
    // byte early: tried).
    for (const int special : {0x00, 0x01, 0x1f, 0x20, 0x22, 0x5c, 0x7f, 0x80, 0xc3, 0xff}) {
        for (std::size_t len = 1; len <= 19; ++len) {
            for (std::size_t at = 0; at < len; ++at) {
                std::string t(len, 'a');
                t[at] = static_cast<char>(special);
                if (special == 0xc3 && at + 1 < len) t[at + 1] = static_cast<char>(0xa9);
                ServerErrorEvent e;
                e.statement = t;
                const std::string line = json_line(e);
                EXPECT_EQ(redump(line), line) << special << " at " << at << " of " << len;
                const auto j = nlohmann::ordered_json::parse(line);
                if (special < 0x80) {
                    EXPECT_EQ(j["statement"], t) << special << " at " << at;
                }
            }
        }
    }
}

TEST(JsonEvents, SummaryLineIsNlohmannsDumpWithTheRows) {
    struct Sink : FindingSink {
        void on_finding(const Finding&) override {}
    } sink;
    Analyzer a(sink);
    // Two logins from one client to one server (one hop row, count 2) and one with a user name
    // that needs escaping and one that is not ASCII (nlohmann's path in the writer).
    for (const std::string user : {"alice", "alice", "b\"o\\b caf\xc3\xa9"}) {
        LoginEvent l;
        l.ts = Timestamp{1'000'000 + static_cast<std::int64_t>(user.size())};
        l.started = l.ts;
        l.flow = FlowKey{Endpoint{IpAddress::v4_from(0x0a000002), 50000},
                         Endpoint{IpAddress::v4_from(0x0a000003), 1433}, Transport::Tcp};
        l.auth = user == "alice" ? AuthKind::Ntlm : AuthKind::Sql;
        l.outcome = Outcome::Success;
        l.user = user;
        a.add_login(l);
    }
    a.finish();
    nlohmann::ordered_json counters;
    counters["logins"] = 3;
    const std::string line = summary_line(Timestamp{2'000'000}, a, counters);
    const auto j = nlohmann::ordered_json::parse(line);
    EXPECT_EQ(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), line);
    EXPECT_EQ(j["event"], "summary");
    ASSERT_EQ(j["hops"].size(), 2u) << line;
    std::uint64_t total = 0;
    for (const auto& h : j["hops"])
        total += h["count"].get<std::uint64_t>();
    EXPECT_EQ(total, 3u);
    EXPECT_NE(line.find("b\\\"o\\\\b caf\xc3\xa9"), std::string::npos) << line;
    EXPECT_EQ(j["counters"]["logins"], 3);
    EXPECT_EQ(summary_json(Timestamp{2'000'000}, a, counters), j);
}

// A summary of thousands of rows leaves in pieces (JsonLinesWriter::write_summary): the pieces
// make the line summary_line() gives, once, then one newline; an event written after it starts
// a line of its own.
TEST(JsonEvents, LongSummaryWrittenInPiecesIsTheSummaryLine) {
    struct Sink : FindingSink {
        void on_finding(const Finding&) override {}
    } sink;
    Analyzer a(sink);
    for (std::uint32_t i = 0; i < 3000; ++i) {
        LoginEvent l;
        l.ts = Timestamp{1'000'000 + static_cast<std::int64_t>(i)};
        l.started = l.ts;
        l.flow = FlowKey{Endpoint{IpAddress::v4_from(0x0a010000 + i), 50000},
                         Endpoint{IpAddress::v4_from(0x0a000003), 1433}, Transport::Tcp};
        l.auth = AuthKind::Sql;
        l.outcome = Outcome::Success;
        l.user = "user" + std::to_string(i % 7);
        a.add_login(l);
    }
    a.finish();
    nlohmann::ordered_json counters;
    counters["logins"] = 3000;
    const std::string line = summary_line(Timestamp{2'000'000}, a, counters);
    ASSERT_GT(line.size(), std::size_t{4} * 64 * 1024);  // several pieces
    std::FILE* out = std::tmpfile();
    ASSERT_NE(out, nullptr);
    JsonLinesWriter w(out, false);
    w.write_summary(Timestamp{2'000'000}, a, counters);
    ServerErrorEvent e;
    w.write(e);
    std::fflush(out);
    std::rewind(out);
    std::string written;
    char chunk[4096];
    for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, out)) > 0;)
        written.append(chunk, n);
    std::fclose(out);
    EXPECT_EQ(written, line + "\n" + json_line(e) + "\n");
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
