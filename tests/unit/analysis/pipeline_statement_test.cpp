// The statement of a server_error event: the client's last request before the error (an SQL
// batch, or the statement of an RPC such as sp_executesql), read only when an error needs it
// (the pipeline keeps the request's text as it came and converts it then), with its passwords
// masked and its length capped as when every request was converted at once. Hand-built TDS 7.4
// messages [MS-TDS 2.2.6.7 SQLBatch, 2.2.6.6 RPC Request, 2.2.5.3 ALL_HEADERS, 2.2.7.10 ERROR].
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../session/builders.hpp"
#include "hopscope/pipeline/pipeline.hpp"

namespace hopscope::analysis {
namespace {

using testing::Buf;

struct Errors : pipeline::EventSink {
    std::vector<ServerErrorEvent> errors;
    std::size_t logins = 0;
    void on_login(const LoginEvent&) override { ++logins; }
    void on_kerberos(const KerberosEvent&) override {}
    void on_server_error(const ServerErrorEvent& e) override { errors.push_back(e); }
    void on_finding(const Finding&) override {}
};

/// SQLBatch payload: ALL_HEADERS with the transaction descriptor header, then the UTF-16LE text.
Buf sql_batch(const std::string& text) {
    Buf b;
    testing::put32le(b, 22);  // TotalLength
    testing::put32le(b, 18);  // HeaderLength
    testing::put16le(b, 2);   // transaction descriptor
    for (int i = 0; i < 8; ++i)
        b.push_back(0);
    testing::put32le(b, 1);  // OutstandingRequestCount
    testing::append(b, testing::ucs2(text));
    return b;
}

/// RPCRequest payload [MS-TDS 2.2.6.6]: ALL_HEADERS, then one call. `proc` empty: ProcID 10
/// (sp_executesql) with its statement as an NVARCHAR parameter; else the procedure's name and
/// no parameters.
Buf rpc(const std::string& proc, const std::string& statement = "") {
    Buf b = sql_batch("");
    if (!proc.empty()) {
        testing::put16le(b, static_cast<std::uint32_t>(proc.size()));
        testing::append(b, testing::ucs2(proc));
        testing::put16le(b, 0);  // OptionFlags
        return b;
    }
    testing::put16le(b, 0xFFFF);
    testing::put16le(b, 10);  // sp_executesql
    testing::put16le(b, 0);   // OptionFlags
    b.push_back(0);           // parameter name: none
    b.push_back(0);           // StatusFlags
    b.push_back(0xE7);        // NVARCHAR
    testing::put16le(b, 8000);
    for (std::uint8_t c : {0x09, 0x04, 0xD0, 0x00, 0x34})  // collation
        b.push_back(c);
    testing::put16le(b, static_cast<std::uint32_t>(statement.size() * 2));
    testing::append(b, testing::ucs2(statement));
    return b;
}

class Session {
  public:
    Session() : pipeline_(sink) {
        flow_.client = Endpoint{IpAddress::v4_from(0x0A000002), 50000};
        flow_.server = Endpoint{IpAddress::v4_from(0x0A000003), 1433};
        pipeline_.on_open(flow_, at(), true);
        testing::Login7Spec l;
        l.user = "app";
        l.password = "LoginPw1";
        send(Direction::ClientToServer, testing::packet(0x10, 0x01, testing::login7(l)));
        Buf ack = testing::loginack("Microsoft SQL Server", 0x74000004, 16, 0, 1000);
        testing::append(ack, testing::done(0));
        send(Direction::ServerToClient, testing::packet(0x04, 0x01, ack));
    }
    void batch(const std::string& text) {
        send(Direction::ClientToServer, testing::packet(0x01, 0x01, sql_batch(text)));
    }
    void call(const Buf& payload) {
        send(Direction::ClientToServer, testing::packet(0x03, 0x01, payload));
    }
    void error(std::int32_t number) {
        Buf r = testing::error_token(number, 1, 16, "it failed", "SQLA");
        testing::append(r, testing::done(0x0002));
        send(Direction::ServerToClient, testing::packet(0x04, 0x01, r));
    }
    Errors sink;

  private:
    Timestamp at() { return Timestamp{1'700'000'000'000'000 + 1000 * ++tick_}; }
    void send(Direction d, const Buf& bytes) {
        auto& off = offset_[static_cast<int>(d)];
        pipeline_.on_data(flow_, d, at(), bytes, Evidence{0, off});
        off += bytes.size();
    }
    pipeline::Pipeline pipeline_;
    FlowKey flow_;
    std::uint64_t offset_[2] = {0, 0};
    std::int64_t tick_ = 0;
};

TEST(PipelineStatement, AnErrorCarriesTheLastBatchWithItsPasswordMasked) {
    Session s;
    ASSERT_EQ(s.sink.logins, 1u);
    s.error(208);  // no batch yet
    s.batch("select name from sys.databases where name = N'long enough to be the longer one'");
    s.batch("ALTER LOGIN bob WITH PASSWORD = 'Secr3t!'  \r\n");
    s.error(15118);
    s.error(15118);  // the same batch again, already converted
    ASSERT_EQ(s.sink.errors.size(), 3u);
    EXPECT_EQ(s.sink.errors[0].statement, "");
    // The second batch is shorter than the first: nothing of the first is left in it.
    EXPECT_EQ(s.sink.errors[1].statement, "ALTER LOGIN bob WITH PASSWORD = '***'");
    EXPECT_EQ(s.sink.errors[2].statement, s.sink.errors[1].statement);
    for (const auto& e : s.sink.errors)
        EXPECT_EQ(e.statement.find("Secr3t"), std::string::npos);
}

TEST(PipelineStatement, AnRpcGivesItsStatementOrItsProcedure) {
    Session s;
    s.batch("select 1");
    s.call(rpc("", "ALTER LOGIN bob WITH PASSWORD = N'Secr3t!'"));
    s.error(15118);
    s.call(rpc("dbo.refresh_all"));
    s.error(50000);
    s.call(rpc("dbo.refresh_all"));
    s.batch("select 2");  // the batch after the RPC is the last request
    s.error(208);
    ASSERT_EQ(s.sink.errors.size(), 3u);
    EXPECT_EQ(s.sink.errors[0].statement, "ALTER LOGIN bob WITH PASSWORD = N'***'");
    EXPECT_EQ(s.sink.errors[1].statement, "exec dbo.refresh_all");
    EXPECT_EQ(s.sink.errors[2].statement, "select 2");
}

TEST(PipelineStatement, ALongBatchIsCutAfterItsSecretIsMasked) {
    Session s;
    // The literal runs past where the statement is cut: masked whole, the text after it moves in.
    const std::string secret(600, 'x');
    s.batch("CREATE LOGIN eve WITH PASSWORD = '" + secret + "'; select 1 " + std::string(600, ' ') +
            "-- end");
    s.error(15118);
    ASSERT_EQ(s.sink.errors.size(), 1u);
    const std::string& st = s.sink.errors[0].statement;
    EXPECT_EQ(st.rfind("CREATE LOGIN eve WITH PASSWORD = '***'; select 1 ", 0), 0u) << st;
    EXPECT_EQ(st.find("xxx"), std::string::npos);
    EXPECT_EQ(st.size(), 512u + 3u);  // 512 bytes kept, then "..."
    EXPECT_EQ(st.substr(st.size() - 3), "...");
}

}  // namespace
}  // namespace hopscope::analysis
