// Prometheus metrics of the proxy: the text format, and the HTTP server over real loopback
// sockets (several io_context threads, hostile clients).
#include "hopscope/proxy/metrics.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <chrono>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace hopscope::proxy {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        out.push_back(line);
    return out;
}

bool has_line(const std::string& text, const std::string& line) {
    for (const auto& l : lines_of(text))
        if (l == line) return true;
    return false;
}

TEST(Metrics, RenderHasEveryMetricWithHelpTypeAndValue) {
    Metrics m;
    m.connections_open = 3;
    m.connections_total = 17;
    m.connections_refused = 2;
    m.upstream_connect_failures = 1;
    m.bytes_client_to_server = 123456789012ULL;
    m.bytes_server_to_client = 42;
    m.decode_problems = 5;
    m.tap_gaps = 6;
    m.tap_gap_bytes = 7000;
    m.count_login("ntlm", "failure");
    m.count_login("ntlm", "failure");
    m.count_login("kerberos", "success");
    m.count_finding("HS010", "error");
    const std::string text = m.render();

    for (const char* line : {
             "# TYPE hopscope_proxy_connections_open gauge",
             "hopscope_proxy_connections_open 3",
             "# TYPE hopscope_proxy_connections_total counter",
             "hopscope_proxy_connections_total 17",
             "# TYPE hopscope_proxy_connections_refused_total counter",
             "hopscope_proxy_connections_refused_total 2",
             "# TYPE hopscope_proxy_upstream_connect_failures_total counter",
             "hopscope_proxy_upstream_connect_failures_total 1",
             "# TYPE hopscope_proxy_bytes_total counter",
             "hopscope_proxy_bytes_total{direction=\"client_to_server\"} 123456789012",
             "hopscope_proxy_bytes_total{direction=\"server_to_client\"} 42",
             "# TYPE hopscope_logins_total counter",
             "hopscope_logins_total{auth=\"ntlm\",outcome=\"failure\"} 2",
             "hopscope_logins_total{auth=\"kerberos\",outcome=\"success\"} 1",
             "# TYPE hopscope_findings_total counter",
             "hopscope_findings_total{rule=\"HS010\",severity=\"error\"} 1",
             "# TYPE hopscope_decode_problems_total counter",
             "hopscope_decode_problems_total 5",
             "# TYPE hopscope_tap_gaps_total counter",
             "hopscope_tap_gaps_total 6",
             "# TYPE hopscope_tap_gap_bytes_total counter",
             "hopscope_tap_gap_bytes_total 7000",
         }) {
        EXPECT_TRUE(has_line(text, line)) << "missing: " << line << "\n" << text;
    }

    // The text format's grammar: comments are HELP/TYPE of the metric that follows, samples
    // name{label="value",...} value, every sample's metric declared before it, nothing twice.
    const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
    const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge))");
    const std::regex sample(
        R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)+\})? [0-9]+)");
    std::set<std::string> helped;
    std::set<std::string> typed;
    std::set<std::string> samples;
    std::string current;
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    for (const auto& l : lines_of(text)) {
        std::smatch mt;
        if (std::regex_match(l, mt, help)) {
            EXPECT_TRUE(helped.insert(mt[1]).second) << l;
            current = mt[1];
        } else if (std::regex_match(l, mt, type)) {
            EXPECT_EQ(mt[1], current) << "TYPE right after its HELP: " << l;
            EXPECT_TRUE(typed.insert(mt[1]).second) << l;
        } else if (std::regex_match(l, mt, sample)) {
            EXPECT_EQ(mt[1], current) << "sample of the metric declared last: " << l;
            EXPECT_TRUE(samples.insert(l.substr(0, l.rfind(' '))).second) << "twice: " << l;
        } else {
            ADD_FAILURE() << "not the text format: " << l;
        }
    }
    EXPECT_EQ(helped, typed);
    EXPECT_EQ(helped.size(), 10u);
    for (const auto& name : helped) {
        if (name.rfind("hopscope_proxy_", 0) != 0) {
            EXPECT_TRUE(name == "hopscope_logins_total" || name == "hopscope_findings_total" ||
                        name == "hopscope_decode_problems_total" ||
                        name == "hopscope_tap_gaps_total" || name == "hopscope_tap_gap_bytes_total")
                << name;
        }
    }
}

TEST(Metrics, LabelValuesAreEscaped) {
    Metrics m;
    m.count_finding("HS\"0\\1\n0", "err\\or");
    const std::string text = m.render();
    EXPECT_TRUE(
        has_line(text, R"(hopscope_findings_total{rule="HS\"0\\1\n0",severity="err\\or"} 1)"))
        << text;
    // No metric without samples is left out: the labelled ones still have HELP and TYPE.
    EXPECT_TRUE(has_line(Metrics{}.render(), "# TYPE hopscope_logins_total counter"));
}

TEST(Metrics, CountingFromSeveralThreads) {
    Metrics m;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&m, t] {
            for (int i = 0; i < 1000; ++i) {
                m.bytes_client_to_server.fetch_add(2, std::memory_order_relaxed);
                m.count_login(t % 2 ? "ntlm" : "sql", "success");
                if (i % 100 == 0) (void)m.render();
            }
        });
    }
    for (auto& t : threads)
        t.join();
    const std::string text = m.render();
    EXPECT_TRUE(has_line(text, "hopscope_proxy_bytes_total{direction=\"client_to_server\"} 8000"));
    EXPECT_TRUE(has_line(text, "hopscope_logins_total{auth=\"ntlm\",outcome=\"success\"} 2000"));
    EXPECT_TRUE(has_line(text, "hopscope_logins_total{auth=\"sql\",outcome=\"success\"} 2000"));
}

// ---- the server ---------------------------------------------------------------------------------

/// A blocking loopback client with a receive timeout (a hung server fails the test, not the run).
class Client {
  public:
    explicit Client(std::uint16_t port, int timeout_s = 15) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        timeval tv{timeout_s, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    }
    ~Client() { ::close(fd_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    [[nodiscard]] bool connected() const { return connected_; }
    /// Sends everything it can; false when the peer stopped taking it.
    bool send(const std::string& s) {
        std::size_t off = 0;
        while (off < s.size()) {
            const ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return false;
            off += static_cast<std::size_t>(n);
        }
        return true;
    }
    /// Reads until the server closes; nullopt on a timeout.
    std::optional<std::string> read_all() {
        std::string out;
        char buf[4096];
        for (;;) {
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n == 0) return out;
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
                return out;  // reset: what came before it
            }
            out.append(buf, static_cast<std::size_t>(n));
        }
    }

  private:
    int fd_ = -1;
    bool connected_ = false;
};

struct Response {
    int status = 0;
    std::string head;
    std::string body;
};

Response parse(const std::string& raw) {
    Response r;
    const auto end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return r;
    r.status = std::stoi(raw.substr(9, 3));
    r.head = raw.substr(0, end + 2);
    r.body = raw.substr(end + 4);
    return r;
}

std::string header(const Response& r, const std::string& name) {
    const auto at = r.head.find("\r\n" + name + ": ");
    if (at == std::string::npos) return "";
    const auto from = at + 4 + name.size();
    return r.head.substr(from, r.head.find("\r\n", from) - from);
}

class MetricsServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        metrics.connections_total = 9;
        metrics.count_login("ntlm", "failure");
        server.emplace(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0), metrics);
        port = server->local_endpoint().port();
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
    }
    void TearDown() override {
        server.reset();
        work.reset();
        for (auto& t : threads)
            t.join();
    }

    Response request(const std::string& req) {
        Client c(port);
        EXPECT_TRUE(c.connected());
        EXPECT_TRUE(c.send(req));
        const auto raw = c.read_all();
        EXPECT_TRUE(raw.has_value()) << "no answer to " << req.substr(0, 60);
        return parse(raw.value_or(""));
    }

    Metrics metrics;
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::optional<MetricsServer> server;
    std::uint16_t port = 0;
    std::vector<std::thread> threads;
};

TEST_F(MetricsServerTest, GetMetricsAnswersTheTextFormat) {
    EXPECT_NE(port, 0);
    const Response r = request("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(header(r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(header(r, "Connection"), "close");
    EXPECT_EQ(header(r, "Content-Length"), std::to_string(r.body.size()));
    EXPECT_EQ(r.body, metrics.render());
    EXPECT_TRUE(has_line(r.body, "hopscope_proxy_connections_total 9"));
    EXPECT_TRUE(has_line(r.body, "hopscope_logins_total{auth=\"ntlm\",outcome=\"failure\"} 1"));

    // Counters read when asked, not when the server started.
    metrics.connections_total = 10;
    EXPECT_TRUE(has_line(request("GET /metrics HTTP/1.0\r\n\r\n").body,
                         "hopscope_proxy_connections_total 10"));
    // A query string, bare LF line ends, absolute form.
    EXPECT_EQ(request("GET /metrics?name[]=x HTTP/1.1\r\n\r\n").status, 200);
    EXPECT_EQ(request("GET /metrics HTTP/1.1\nHost: x\n\n").status, 200);
    EXPECT_EQ(request("GET http://127.0.0.1/metrics HTTP/1.1\r\n\r\n").status, 200);
    // HEAD: the head of the answer only.
    const Response head = request("HEAD /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(head.status, 200);
    EXPECT_EQ(head.body, "");
    EXPECT_NE(header(head, "Content-Length"), "0");
}

TEST_F(MetricsServerTest, OtherPathsMethodsAndGarbage) {
    EXPECT_EQ(request("GET / HTTP/1.1\r\n\r\n").status, 404);
    EXPECT_EQ(request("GET /metricsx HTTP/1.1\r\n\r\n").status, 404);
    EXPECT_EQ(request("GET /metrics/ HTTP/1.1\r\n\r\n").status, 404);
    const Response post = request("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(post.status, 405);
    EXPECT_EQ(header(post, "Allow"), "GET, HEAD");
    EXPECT_EQ(header(post, "Connection"), "close");
    for (const std::string& bad : {
             std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15),
             std::string("GET /metrics\r\n\r\n"),
             std::string("GET /metrics HTTP/2.0\r\n\r\n"),
             std::string("GET  /metrics HTTP/1.1\r\n\r\n"),
             std::string("GET metrics HTTP/1.1\r\n\r\n"),
             std::string("G(T /metrics HTTP/1.1\r\n\r\n"),
             std::string("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n"),
             std::string("GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n"),
             std::string("GET /met\x01rics HTTP/1.1\r\n\r\n"),
             std::string("GET /metrics HTTP/1.1\r\nX: a") + '\0' + "b\r\n\r\n",
             std::string("\r\n\r\n"),
         }) {
        const Response r = request(bad);
        EXPECT_EQ(r.status, 400) << bad;
        EXPECT_EQ(header(r, "Connection"), "close");
    }
}

TEST_F(MetricsServerTest, SurvivesSilentAndFloodingClients) {
    // A client that never sends anything is closed after the deadline (5 s), and others are
    // served meanwhile.
    const auto start = std::chrono::steady_clock::now();
    Client silent(port);
    ASSERT_TRUE(silent.connected());
    EXPECT_EQ(request("GET /metrics HTTP/1.1\r\n\r\n").status, 200);
    // A client sending 1 MiB without ever ending its request head: 431 after 8 KiB, and the
    // rest of what it sends is read and thrown away until it stops (no reset that could destroy
    // the answer).
    std::optional<std::string> flood_answer;
    std::thread flood([this, &flood_answer] {
        Client c(port);
        ASSERT_TRUE(c.connected());
        c.send(std::string(1 << 20, 'A'));
        flood_answer = c.read_all();
    });
    // Same with a long header line after a valid request line.
    Client long_head(port);
    ASSERT_TRUE(long_head.connected());
    long_head.send("GET /metrics HTTP/1.1\r\nX-Long: " + std::string(20000, 'b'));
    const auto long_answer = long_head.read_all();
    flood.join();
    ASSERT_TRUE(flood_answer.has_value());
    EXPECT_EQ(parse(*flood_answer).status, 431);
    ASSERT_TRUE(long_answer.has_value());
    EXPECT_EQ(parse(*long_answer).status, 431);

    const auto nothing = silent.read_all();
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(nothing.has_value()) << "the silent client was not closed";
    EXPECT_EQ(*nothing, "");
    EXPECT_GE(waited, std::chrono::milliseconds(4500));
    EXPECT_LT(waited, std::chrono::seconds(10));
    EXPECT_EQ(request("GET /metrics HTTP/1.1\r\n\r\n").status, 200);
}

TEST_F(MetricsServerTest, ManyClientsOnSeveralThreads) {
    std::vector<std::thread> clients;
    std::atomic<int> ok{0};
    for (int t = 0; t < 8; ++t) {
        clients.emplace_back([this, &ok] {
            for (int i = 0; i < 25; ++i) {
                metrics.bytes_server_to_client.fetch_add(1, std::memory_order_relaxed);
                metrics.count_finding("HS010", "error");
                Client c(port);
                if (!c.connected() || !c.send("GET /metrics HTTP/1.1\r\n\r\n")) continue;
                const auto raw = c.read_all();
                if (raw && parse(*raw).status == 200) ++ok;
            }
        });
    }
    for (auto& c : clients)
        c.join();
    EXPECT_EQ(ok.load(), 200);
    const Response r = request("GET /metrics HTTP/1.1\r\n\r\n");
    EXPECT_TRUE(has_line(r.body, "hopscope_findings_total{rule=\"HS010\",severity=\"error\"} 200"));
}

TEST_F(MetricsServerTest, StopClosesTheListenerAndOpenConnections) {
    Client idle(port);
    ASSERT_TRUE(idle.connected());
    Client half(port);
    ASSERT_TRUE(half.connected());
    half.send("GET /metrics HTTP/1.1\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto start = std::chrono::steady_clock::now();
    server->stop();
    server->stop();  // twice is fine
    EXPECT_TRUE(idle.read_all().has_value());
    EXPECT_TRUE(half.read_all().has_value());
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3))
        << "connections were left to their deadline";
    Client late(port);
    EXPECT_FALSE(late.connected() && late.send("GET /metrics HTTP/1.1\r\n\r\n") &&
                 parse(late.read_all().value_or("")).status == 200);
}

TEST_F(MetricsServerTest, BindingATakenPortThrows) {
    EXPECT_THROW(MetricsServer(io, tcp::endpoint(asio::ip::address_v4::loopback(), port), metrics),
                 boost::system::system_error);
}

TEST(MetricsServer, DestroyedWhileConnectionsAreOpenOnARunningContext) {
    // Destruction order of a real program: server first, then the threads, then the io_context
    // and the metrics. Connections still open must neither touch the metrics nor leak.
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
        threads.emplace_back([&io] { io.run(); });
    std::uint16_t port = 0;
    std::vector<std::unique_ptr<Client>> clients;
    {
        Metrics metrics;
        MetricsServer server(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0), metrics);
        port = server.local_endpoint().port();
        for (int i = 0; i < 10; ++i) {
            clients.push_back(std::make_unique<Client>(port, 5));
            if (i % 2) clients.back()->send("GET /metrics HTTP/1.1\r\n");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // The metrics are gone now; a request completed by a client must not reach them.
    for (auto& c : clients)
        c->send("\r\n");
    for (auto& c : clients) {
        const auto raw = c->read_all();
        ASSERT_TRUE(raw.has_value());
        const int status = parse(*raw).status;
        EXPECT_TRUE(status == 0 || status == 503) << *raw;
    }
    work.reset();
    for (auto& t : threads)
        t.join();
}

}  // namespace
}  // namespace hopscope::proxy
