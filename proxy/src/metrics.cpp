// Prometheus text exposition (format 0.0.4) of the proxy's counters, and the small HTTP server
// that serves it (see metrics.hpp).
//
// The server runs on the caller's io_context, which several threads may run:
// - the acceptor is only touched under Impl::mu (accept is re-armed from its completion handler,
//   stop() closes it from any thread);
// - each connection lives on its own strand (socket and deadline timer share it), so its handlers
//   never run concurrently;
// - a connection renders the metrics only while the server is not stopped, checked under Impl::mu,
//   so once ~MetricsServer has returned nothing reads the Metrics any more, even if connections
//   are still winding down on the io_context.
//
// HTTP: one request per connection. The request head is read up to kMaxRequest bytes within
// kDeadline of the accept; a longer head gets 431, a malformed one 400, GET/HEAD /metrics 200,
// another method on /metrics 405, any other path 404; every answer says Connection: close. After
// answering, the server shuts down its sending side and discards what the client still sends until
// it closes or the deadline passes (closing with unread input would reset the connection and could
// destroy the answer before the client read it).
#include "hopscope/proxy/metrics.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

namespace hopscope::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// ---- Metrics ------------------------------------------------------------------------------------

namespace {

/// A label value as the text format wants it: backslash, double quote and line feed escaped.
void append_label_value(std::string& out, const std::string& v) {
    for (const char ch : v) {
        switch (ch) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += ch;
        }
    }
}

void append_header(std::string& out, const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void append_single(std::string& out, const char* name, const char* type, const char* help,
                   const std::atomic<std::uint64_t>& value) {
    append_header(out, name, type, help);
    out += name;
    out += ' ';
    out += std::to_string(value.load(std::memory_order_relaxed));
    out += '\n';
}

void append_labelled(std::string& out, const char* name, const char* help, const char* label1,
                     const char* label2,
                     const std::map<std::pair<std::string, std::string>, std::uint64_t>& values) {
    append_header(out, name, "counter", help);
    for (const auto& [labels, count] : values) {
        out += name;
        out += '{';
        out += label1;
        out += "=\"";
        append_label_value(out, labels.first);
        out += "\",";
        out += label2;
        out += "=\"";
        append_label_value(out, labels.second);
        out += "\"} ";
        out += std::to_string(count);
        out += '\n';
    }
}

}  // namespace

void Metrics::count_login(const std::string& auth, const std::string& outcome) {
    const std::lock_guard lock(mu_);
    ++logins_[{auth, outcome}];
}

void Metrics::count_finding(const std::string& rule, const std::string& severity) {
    const std::lock_guard lock(mu_);
    ++findings_[{rule, severity}];
}

std::string Metrics::render() const {
    std::string out;
    out.reserve(2048);
    append_single(out, "hopscope_proxy_connections_open", "gauge",
                  "Client connections being proxied now.", connections_open);
    append_single(out, "hopscope_proxy_connections_total", "counter",
                  "Client connections accepted and forwarded.", connections_total);
    append_single(out, "hopscope_proxy_connections_refused_total", "counter",
                  "Client connections refused because too many were open.", connections_refused);
    append_single(out, "hopscope_proxy_upstream_connect_failures_total", "counter",
                  "Connections to the upstream server that failed.", upstream_connect_failures);
    append_header(out, "hopscope_proxy_bytes_total", "counter", "Bytes forwarded, by direction.");
    out += "hopscope_proxy_bytes_total{direction=\"client_to_server\"} ";
    out += std::to_string(bytes_client_to_server.load(std::memory_order_relaxed));
    out += "\nhopscope_proxy_bytes_total{direction=\"server_to_client\"} ";
    out += std::to_string(bytes_server_to_client.load(std::memory_order_relaxed));
    out += '\n';
    {
        const std::lock_guard lock(mu_);
        append_labelled(out, "hopscope_logins_total",
                        "Login attempts decoded, by authentication kind and outcome.", "auth",
                        "outcome", logins_);
        append_labelled(out, "hopscope_findings_total", "Findings reported, by rule and severity.",
                        "rule", "severity", findings_);
    }
    append_single(out, "hopscope_decode_problems_total", "counter",
                  "Malformed units met by the decoder (TDS, SSPI, Kerberos).", decode_problems);
    append_single(out, "hopscope_tap_gaps_total", "counter",
                  "Times the analysis tap dropped bytes because it fell behind.", tap_gaps);
    append_single(out, "hopscope_tap_gap_bytes_total", "counter",
                  "Bytes the analysis tap dropped (forwarding is not affected).", tap_gap_bytes);
    return out;
}

// ---- MetricsServer ------------------------------------------------------------------------------

namespace {

constexpr std::size_t kMaxRequest = 8 * 1024;
constexpr std::chrono::seconds kDeadline{5};
constexpr std::size_t kMaxConnections = 64;
constexpr std::chrono::milliseconds kAcceptRetry{100};

struct Answer {
    int status = 200;
    const char* reason = "OK";
    bool body = true;           ///< false for HEAD
    bool allow_header = false;  ///< 405 says which methods are allowed
};

bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (const char c : s)
        if (!is_tchar(c)) return false;
    return true;
}

/// Visible ASCII only (request targets).
bool is_visible(std::string_view s) {
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7F) return false;
    }
    return true;
}

Answer bad_request() {
    return Answer{400, "Bad Request", true, false};
}

/// Decides the answer to a complete request head (request line and header lines, each ending in
/// LF or CRLF, without the empty line).
Answer decide(std::string_view head) {
    std::vector<std::string_view> lines;
    while (!head.empty()) {
        const auto lf = head.find('\n');
        std::string_view line = head.substr(0, lf);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        if (lf == std::string_view::npos) break;
        head.remove_prefix(lf + 1);
    }
    if (lines.empty()) return bad_request();

    // Request line: METHOD SP TARGET SP HTTP/1.x
    const std::string_view rl = lines[0];
    const auto sp1 = rl.find(' ');
    if (sp1 == std::string_view::npos) return bad_request();
    const auto sp2 = rl.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos)
        return bad_request();
    const std::string_view method = rl.substr(0, sp1);
    std::string_view target = rl.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = rl.substr(sp2 + 1);
    if (!is_token(method) || target.empty() || !is_visible(target)) return bad_request();
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return bad_request();

    // Header fields: NAME ":" value, no folding, no control characters other than tab.
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const std::string_view line = lines[i];
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
            return bad_request();
        for (const char c : line.substr(colon + 1)) {
            const auto u = static_cast<unsigned char>(c);
            if ((u < 0x20 && c != '\t') || u == 0x7F) return bad_request();
        }
    }

    // Absolute form (http://host/path) is allowed as well as origin form (/path).
    if (target.substr(0, 7) == "http://" || target.substr(0, 8) == "https://") {
        const auto scheme_end = target.find("//") + 2;
        const auto slash = target.find('/', scheme_end);
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
    if (target.front() != '/') return bad_request();
    const auto query = target.find('?');
    if (query != std::string_view::npos) target = target.substr(0, query);

    if (target != "/metrics") return Answer{404, "Not Found", true, false};
    if (method == "GET") return Answer{200, "OK", true, false};
    if (method == "HEAD") return Answer{200, "OK", false, false};
    return Answer{405, "Method Not Allowed", true, true};
}

}  // namespace

struct MetricsServer::Impl : std::enable_shared_from_this<MetricsServer::Impl> {
    class Connection;

    Impl(asio::io_context& io_, const tcp::endpoint& at, const Metrics& m)
        : io(io_), metrics(&m), acceptor(io_), retry(io_) {
        acceptor.open(at.protocol());
        acceptor.set_option(asio::socket_base::reuse_address(true));
        acceptor.bind(at);
        acceptor.listen();
        endpoint = acceptor.local_endpoint();
    }

    asio::io_context& io;
    std::mutex mu;           ///< guards everything below
    const Metrics* metrics;  ///< nullptr once stopped
    tcp::acceptor acceptor;
    asio::steady_timer retry;  ///< after an accept error (e.g. out of descriptors)
    tcp::endpoint endpoint;
    std::set<std::shared_ptr<Connection>> live;
    bool stopped = false;

    void accept();
    void stop();
    /// The metrics text, or nothing when the server was stopped in the meantime.
    bool render(std::string& out) {
        const std::lock_guard lock(mu);
        if (metrics == nullptr) return false;
        out = metrics->render();
        return true;
    }
    void forget(const std::shared_ptr<Connection>& c) {
        const std::lock_guard lock(mu);
        live.erase(c);
    }
};

class MetricsServer::Impl::Connection : public std::enable_shared_from_this<Connection> {
  public:
    Connection(std::shared_ptr<Impl> server, asio::io_context& io)
        : server_(std::move(server)),
          socket_(asio::make_strand(io)),
          timer_(socket_.get_executor()) {}

    tcp::socket& socket() { return socket_; }

    /// Runs on the connection's strand.
    void start() {
        request_.reserve(1024);
        timer_.expires_after(kDeadline);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec) self->finish();  // the deadline passed
        });
        read();
    }

    /// Closes the socket (cancelling what is pending); safe to post from any thread.
    void finish() {
        if (done_) return;
        done_ = true;
        boost::system::error_code ignored;
        timer_.cancel();
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        server_->forget(shared_from_this());
    }

  private:
    std::shared_ptr<Impl> server_;
    tcp::socket socket_;
    asio::steady_timer timer_;
    std::string request_;
    std::array<char, 2048> buf_{};
    std::string response_;
    bool done_ = false;

    void read() {
        socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](
                                                        const boost::system::error_code& ec,
                                                        std::size_t n) { self->on_read(ec, n); });
    }

    void on_read(const boost::system::error_code& ec, std::size_t n) {
        if (done_) return;
        if (ec) {
            finish();  // the client went away (or the deadline closed the socket)
            return;
        }
        const std::size_t scan_from = request_.size() >= 3 ? request_.size() - 3 : 0;
        request_.append(buf_.data(), n);
        // End of the head: an empty line (CRLF CRLF, or bare LF LF from lenient clients).
        const std::size_t head_len =
            std::min(request_.find("\r\n\r\n", scan_from), request_.find("\n\n", scan_from));
        if (head_len != std::string::npos && head_len <= kMaxRequest) {
            answer(decide(std::string_view(request_).substr(0, head_len)));
        } else if (request_.size() > kMaxRequest) {
            answer(Answer{431, "Request Header Fields Too Large", true, false});
        } else {
            read();
        }
    }

    void answer(const Answer& a) {
        std::string body;
        Answer out = a;
        if (a.status == 200 && !server_->render(body)) {
            out = Answer{503, "Service Unavailable", a.body, false};
            body = "stopped\n";
        } else if (a.status != 200) {
            body = std::to_string(a.status) + " " + a.reason + "\n";
        }
        const bool exposition = out.status == 200;
        response_ = "HTTP/1.1 " + std::to_string(out.status) + " " + out.reason + "\r\n";
        response_ += exposition ? "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                                : "Content-Type: text/plain; charset=utf-8\r\n";
        response_ += "Content-Length: " + std::to_string(body.size()) + "\r\n";
        if (out.allow_header) response_ += "Allow: GET, HEAD\r\n";
        response_ += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
        if (out.body) response_ += body;
        request_.clear();
        request_.shrink_to_fit();
        asio::async_write(socket_, asio::buffer(response_),
                          [self = shared_from_this()](const boost::system::error_code& ec,
                                                      std::size_t) { self->on_written(ec); });
    }

    void on_written(const boost::system::error_code& ec) {
        if (done_) return;
        if (ec) {
            finish();
            return;
        }
        boost::system::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
        drain();
    }

    /// Discards input until the client closes (or the deadline closes the socket).
    void drain() {
        socket_.async_read_some(
            asio::buffer(buf_),
            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                if (self->done_) return;
                if (ec) {
                    self->finish();
                } else {
                    self->drain();
                }
            });
    }
};

void MetricsServer::Impl::accept() {
    // Called with mu held.
    if (stopped) return;
    auto conn = std::make_shared<Connection>(shared_from_this(), io);
    acceptor.async_accept(
        conn->socket(), [self = shared_from_this(), conn](const boost::system::error_code& ec) {
            const std::lock_guard lock(self->mu);
            if (self->stopped) return;  // conn's socket closes when it goes
            if (ec) {
                // Out of descriptors and the like: try again a little later rather than spin.
                self->retry.expires_after(kAcceptRetry);
                self->retry.async_wait([self](const boost::system::error_code& e) {
                    if (e) return;
                    const std::lock_guard relock(self->mu);
                    self->accept();
                });
                return;
            }
            if (self->live.size() < kMaxConnections) {
                self->live.insert(conn);
                asio::post(conn->socket().get_executor(), [conn] { conn->start(); });
            }
            // Over the limit: conn goes out of scope and its socket is closed.
            self->accept();
        });
}

void MetricsServer::Impl::stop() {
    std::set<std::shared_ptr<Connection>> conns;
    {
        const std::lock_guard lock(mu);
        if (stopped) return;
        stopped = true;
        metrics = nullptr;
        boost::system::error_code ignored;
        acceptor.close(ignored);
        retry.cancel();
        conns.swap(live);
    }
    for (const auto& c : conns)
        asio::post(c->socket().get_executor(), [c] { c->finish(); });
}

MetricsServer::MetricsServer(asio::io_context& io, const tcp::endpoint& at, const Metrics& metrics)
    : impl_(std::make_shared<Impl>(io, at, metrics)) {
    const std::lock_guard lock(impl_->mu);
    impl_->accept();
}

MetricsServer::~MetricsServer() {
    stop();
}

tcp::endpoint MetricsServer::local_endpoint() const {
    return impl_->endpoint;
}

void MetricsServer::stop() {
    impl_->stop();
}

}  // namespace hopscope::proxy
