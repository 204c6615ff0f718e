// The inline proxy over real loopback sockets: every byte forwarded unchanged and in order in both
// directions, half-close and resets passed on, timeouts, the connection limit, backpressure, and
// the tap (what the decoder is given, gaps when it falls behind, hostile bytes).
#include "hopscope/proxy/proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "hopscope/pipeline/pipeline.hpp"
#include "hopscope/proxy/config.hpp"

namespace hopscope::proxy {
namespace {

using namespace std::chrono_literals;
using Bytes8 = std::vector<std::uint8_t>;

// --- plain sockets for the peers -------------------------------------------------------------

int listen_on(bool v6, std::uint16_t& port) {
    const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 1024) != 0) {
        close(fd);
        return -1;
    }
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                    : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return fd;
}

int connect_to(const Endpoint& e) {
    const int fd = socket(e.addr.v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (e.addr.v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        std::memcpy(&a->sin6_addr, e.addr.bytes.data(), 16);
        a->sin6_port = htons(e.port);
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        std::memcpy(&a->sin_addr, e.addr.bytes.data(), 4);
        a->sin_port = htons(e.port);
        len = sizeof *a;
    }
    if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void set_nonblocking(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

struct Exchanged {
    Bytes8 received;
    bool reset = false;  ///< the peer's stream ended with ECONNRESET
    bool timed_out = false;
};

/// Sends out[from..] in random chunk sizes while reading until end of stream; half-closes after
/// the last byte. With `send_after_eof` nothing is sent until the peer's end of stream arrived.
Exchanged exchange(int fd, const Bytes8& out, std::size_t from, bool send_after_eof,
                   std::mt19937_64& rng, std::chrono::milliseconds limit = 60s) {
    set_nonblocking(fd);
    Exchanged r;
    std::size_t sent = from;
    bool eof = false, shut = false;
    std::vector<std::uint8_t> buf(1 << 16);
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!(eof && shut)) {
        if (std::chrono::steady_clock::now() > until) {
            r.timed_out = true;
            return r;
        }
        const bool may_send = !shut && (!send_after_eof || eof);
        if (may_send && sent == out.size()) {
            shutdown(fd, SHUT_WR);
            shut = true;
            continue;
        }
        pollfd p{fd, static_cast<short>((eof ? 0 : POLLIN) | (may_send ? POLLOUT : 0)), 0};
        if (poll(&p, 1, 200) <= 0) continue;
        if (!eof && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
            const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
            if (n > 0) {
                r.received.insert(r.received.end(), buf.begin(), buf.begin() + n);
            } else if (n == 0) {
                eof = true;
            } else if (errno != EAGAIN && errno != EINTR) {
                r.reset = errno == ECONNRESET;
                return r;
            }
        }
        if (may_send && (p.revents & POLLOUT) && sent < out.size()) {
            const std::size_t chunk = std::min<std::size_t>(out.size() - sent, 1 + rng() % 70000);
            const ssize_t n = send(fd, out.data() + sent, chunk, MSG_NOSIGNAL);
            if (n > 0)
                sent += static_cast<std::size_t>(n);
            else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                r.reset = errno == ECONNRESET || errno == EPIPE;
                return r;
            }
        }
    }
    return r;
}

Bytes8 random_bytes(std::mt19937_64& rng, std::size_t n) {
    Bytes8 b(n);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const std::uint64_t v = rng();
        std::memcpy(b.data() + i, &v, 8);
    }
    for (; i < n; ++i)
        b[i] = static_cast<std::uint8_t>(rng());
    return b;
}

bool read_exact(int fd, std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        const ssize_t r = recv(fd, p, n, 0);
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

/// An upstream that runs `handler` on its own thread for every accepted connection.
class Upstream {
  public:
    explicit Upstream(std::function<void(int)> handler, bool v6 = false)
        : handler_(std::move(handler)) {
        fd_ = listen_on(v6, port_);
        accept_thread_ = std::thread([this] { run(); });
    }
    ~Upstream() {
        stop_ = true;
        accept_thread_.join();
        close(fd_);
        for (auto& t : threads_)
            t.join();
    }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] int accepted() const { return accepted_.load(); }
    [[nodiscard]] bool ok() const { return fd_ >= 0; }

  private:
    void run() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) continue;
            const int c = accept(fd_, nullptr, nullptr);
            if (c < 0) continue;
            ++accepted_;
            threads_.emplace_back([this, c] {
                handler_(c);
                close(c);
            });
        }
    }
    std::function<void(int)> handler_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::thread accept_thread_;
    std::vector<std::thread> threads_;
};

// --- what the tap hands on ---------------------------------------------------------------------

/// Every connection the decoder was told about, in order. A client may reuse its address and
/// port for a new connection, so a flow key opened again starts a new entry.
class RecordingSink final : public StreamSink {
  public:
    struct Flow {
        FlowKey key;
        int opens = 0;
        Bytes8 data[2];
        std::uint64_t gaps[2] = {0, 0};
        std::uint64_t next_offset[2] = {0, 0};
        bool offsets_ok = true;
        bool data_after_close = false;
        int closes = 0;
        CloseReason why = CloseReason::Fin;
    };
    std::chrono::microseconds delay_per_chunk{0};

    void on_open(const FlowKey& f, Timestamp, bool) override {
        std::lock_guard l(mu);
        if (auto it = current.find(f); it != current.end() && flows[it->second].closes == 0)
            ++unclosed_reopens;  // the proxy must close the old one for the decoder first
        current[f] = flows.size();
        flows.push_back(Flow{});
        flows.back().key = f;
        flows.back().opens = 1;
    }
    void on_data(const FlowKey& f, Direction d, Timestamp, Bytes b, Evidence ev) override {
        if (delay_per_chunk.count()) std::this_thread::sleep_for(delay_per_chunk);
        std::lock_guard l(mu);
        Flow& fl = at(f);
        const int i = static_cast<int>(d);
        if (ev.stream_offset != fl.next_offset[i]) fl.offsets_ok = false;
        if (fl.closes) fl.data_after_close = true;
        fl.data[i].insert(fl.data[i].end(), b.begin(), b.end());
        fl.next_offset[i] = ev.stream_offset + b.size();
    }
    void on_gap(const FlowKey& f, Direction d, Timestamp, std::uint64_t n) override {
        std::lock_guard l(mu);
        Flow& fl = at(f);
        const int i = static_cast<int>(d);
        fl.gaps[i] += n;
        fl.next_offset[i] += n;
    }
    void on_close(const FlowKey& f, Timestamp, CloseReason why) override {
        std::lock_guard l(mu);
        Flow& fl = at(f);
        fl.closes++;
        fl.why = why;
    }
    void on_datagram(const FlowKey&, Direction, Timestamp, Bytes, Evidence) override {}

    std::mutex mu;
    std::vector<Flow> flows;
    std::map<FlowKey, std::size_t> current;
    int unclosed_reopens = 0;
    Flow stray;  ///< events for a flow never opened land here (and fail the tests)

  private:
    Flow& at(const FlowKey& f) {
        const auto it = current.find(f);
        if (it == current.end()) {
            stray.opens = -1;
            return stray;
        }
        return flows[it->second];
    }
};

ProxyOptions one_route(std::uint16_t upstream_port, const char* listen = "127.0.0.1:0",
                       const char* upstream_host = "127.0.0.1") {
    ProxyOptions o;
    Route r;
    std::string err;
    r.listen = *parse_host_port(listen, err);
    r.upstream.host = upstream_host;
    r.upstream.port = upstream_port;
    o.routes.push_back(r);
    o.threads = 2;
    return o;
}

/// A client stream whose first 32 bytes tell the test upstream what to answer: 16 bytes that
/// pass for a TDS PRELOGIN header (so the connection is tapped) or not, then the seed, the
/// length of the answer and the half-close mode.
enum Mode : std::uint8_t { Simultaneous = 0, ServerAfterClientEof = 1, ClientAfterServerEof = 2 };
constexpr std::size_t kControl = 32;

Bytes8 client_stream(std::mt19937_64& rng, bool tds, std::uint64_t seed, std::uint32_t s2c,
                     Mode mode, std::size_t c2s_len) {
    Bytes8 b = random_bytes(rng, kControl + c2s_len);
    const std::uint8_t tds_head[16] = {0x12, 0x01, 0x10, 0x00, 0,    0,    1, 0,
                                       0x00, 0x00, 0x10, 0x00, 0x06, 0xff, 0, 0};
    const std::uint8_t other[16] = {'N', 'O', 'T', ' ', 'T', 'D', 'S', '!', 0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(b.data(), tds ? tds_head : other, 16);
    std::memcpy(b.data() + 16, &seed, 8);
    std::memcpy(b.data() + 24, &s2c, 4);
    b[28] = mode;
    return b;
}

std::string first_difference(const Bytes8& got, const Bytes8& want) {
    std::size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i])
        ++i;
    return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
           ", first difference at " + std::to_string(i);
}

/// The test upstream's side: read the control bytes, answer with seed-derived bytes, read the
/// rest; remembers what it received per seed.
struct EchoBook {
    std::mutex mu;
    std::map<std::uint64_t, Bytes8> received;  ///< seed -> bytes after the control block
    std::map<std::uint64_t, bool> problems;
};

void serve(int fd, EchoBook& book) {
    std::uint8_t ctl[kControl];
    if (!read_exact(fd, ctl, kControl)) return;
    std::uint64_t seed = 0;
    std::uint32_t s2c = 0;
    std::memcpy(&seed, ctl + 16, 8);
    std::memcpy(&s2c, ctl + 24, 4);
    const auto mode = static_cast<Mode>(ctl[28]);
    std::mt19937_64 rng(seed);
    const Bytes8 answer = random_bytes(rng, s2c);
    const Exchanged ex = exchange(fd, answer, 0, mode == ServerAfterClientEof, rng);
    std::lock_guard l(book.mu);
    book.received[seed] = ex.received;
    book.problems[seed] = ex.reset || ex.timed_out;
}

struct ClientRun {
    std::uint64_t seed;
    Bytes8 sent;
    Exchanged got;
    Bytes8 expected;  ///< the upstream's answer
};

ClientRun client_run(const Endpoint& proxy, bool tds, std::uint64_t seed, std::size_t c2s,
                     std::uint32_t s2c, Mode mode) {
    std::mt19937_64 rng(seed * 7919 + 1);
    ClientRun r;
    r.seed = seed;
    r.sent = client_stream(rng, tds, seed, s2c, mode, c2s);
    std::mt19937_64 answer_rng(seed);
    r.expected = random_bytes(answer_rng, s2c);
    const int fd = connect_to(proxy);
    if (fd < 0) {
        r.got.reset = true;
        return r;
    }
    // The control block goes first and whole; the rest follows the mode.
    std::size_t off = 0;
    while (off < kControl) {
        const ssize_t n = send(fd, r.sent.data() + off, kControl - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
    }
    r.got = exchange(fd, r.sent, kControl, mode == ClientAfterServerEof, rng);
    close(fd);
    return r;
}

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds limit = 5s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return cond();
}

/// Waits until the test upstream has received everything of the client run `seed`.
bool received_within(EchoBook& book, std::uint64_t seed, std::chrono::milliseconds limit = 5s) {
    return wait_for(
        [&] {
            std::lock_guard l(book.mu);
            return book.received.count(seed) > 0;
        },
        limit);
}

// --- forwarding --------------------------------------------------------------------------------

/// (TDS-looking first bytes, splice for the connections that are not decoded)
class ProxyForwarding : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(ProxyForwarding, EveryByteInOrderBothWaysWithHalfCloseEachWay) {
    const bool tds = std::get<0>(GetParam());
    const bool splice = std::get<1>(GetParam());
    EchoBook book;
    Upstream up([&](int fd) { serve(fd, book); });
    ASSERT_TRUE(up.ok());
    RecordingSink sink;
    AnalysisHooks hooks;
    hooks.sink = &sink;
    ProxyOptions opts = one_route(up.port());
    opts.splice = splice;
    Proxy px(opts, hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const Endpoint at = px.listen_endpoints().at(0);

    // Big transfers in every half-close order, then many small connections at once.
    std::vector<ClientRun> runs;
    std::uint64_t seed = tds ? 1000 : 1;
    for (Mode m : {Simultaneous, ServerAfterClientEof, ClientAfterServerEof})
        runs.push_back(client_run(at, tds, seed++, 3'000'000, 2'500'000, m));
    std::mutex mu;
    std::vector<std::thread> clients;
    for (int t = 0; t < 8; ++t) {
        clients.emplace_back([&, t] {
            for (int i = 0; i < 125; ++i) {  // 1000 connections in all
                const std::uint64_t s = (tds ? 100000 : 10000) + t * 1000 + i;
                ClientRun r = client_run(at, tds, s, s % 3000, static_cast<std::uint32_t>(s % 5000),
                                         static_cast<Mode>(s % 3));
                std::lock_guard l(mu);
                runs.push_back(std::move(r));
            }
        });
    }
    for (auto& c : clients)
        c.join();
    ASSERT_TRUE(wait_for([&] { return px.stats().connections_open == 0; }));
    ASSERT_TRUE(wait_for(  // the upstream may still be reading the last bytes
        [&] {
            std::lock_guard l(book.mu);
            return book.received.size() == runs.size();
        },
        30s));
    px.shutdown(1s);

    ASSERT_EQ(runs.size(), 1003u);
    std::lock_guard l(book.mu);
    for (const ClientRun& r : runs) {
        SCOPED_TRACE("seed " + std::to_string(r.seed));
        ASSERT_FALSE(r.got.reset);
        ASSERT_FALSE(r.got.timed_out);
        ASSERT_TRUE(r.got.received == r.expected) << "server -> client bytes differ";
        const Bytes8 body(r.sent.begin() + kControl, r.sent.end());
        ASSERT_TRUE(book.received[r.seed] == body)
            << "client -> server bytes differ: " << first_difference(book.received[r.seed], body);
        ASSERT_FALSE(book.problems[r.seed]);
    }
    const ProxyStats st = px.stats();
    EXPECT_EQ(st.connections_total, 1003u);
    EXPECT_EQ(st.upstream_connect_failures, 0u);
    // The tap: TDS-looking connections are decoded and get exactly the forwarded bytes; other
    // connections are never handed to the decoder.
    std::lock_guard sl(sink.mu);
    if (!tds) {
        EXPECT_EQ(st.tapped_connections, 0u);
        EXPECT_TRUE(sink.flows.empty());
        return;
    }
    EXPECT_EQ(st.tapped_connections, 1003u);
    ASSERT_EQ(sink.flows.size(), 1003u);
    EXPECT_EQ(sink.unclosed_reopens, 0);
    EXPECT_EQ(sink.stray.opens, 0);
    std::map<std::uint64_t, const RecordingSink::Flow*> by_seed;
    for (const auto& f : sink.flows) {
        EXPECT_EQ(f.opens, 1);
        EXPECT_EQ(f.closes, 1);
        EXPECT_FALSE(f.data_after_close);
        EXPECT_TRUE(f.offsets_ok);
        EXPECT_EQ(f.gaps[0] + f.gaps[1], 0u);
        EXPECT_EQ(f.key.server.port, up.port());
        std::uint64_t s = 0;
        if (f.data[0].size() >= kControl) std::memcpy(&s, f.data[0].data() + 16, 8);
        by_seed[s] = &f;
    }
    for (const ClientRun& r : runs) {
        SCOPED_TRACE("seed " + std::to_string(r.seed));
        ASSERT_TRUE(by_seed.count(r.seed));
        EXPECT_TRUE(by_seed[r.seed]->data[0] == r.sent);
        EXPECT_TRUE(by_seed[r.seed]->data[1] == r.expected);
    }
}

INSTANTIATE_TEST_SUITE_P(TdsAndOther, ProxyForwarding,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& p) {
                             return std::string(std::get<0>(p.param) ? "Tds" : "NotTds") +
                                    (std::get<1>(p.param) ? "Splice" : "Copy");
                         });

TEST(Proxy, Ipv6ListenerAndUpstream) {
    EchoBook book;
    Upstream up([&](int fd) { serve(fd, book); }, true);
    if (!up.ok()) GTEST_SKIP() << "no IPv6 loopback here";
    RecordingSink sink;
    AnalysisHooks hooks;
    hooks.sink = &sink;
    Proxy px(one_route(up.port(), "[::1]:0", "::1"), hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const Endpoint at = px.listen_endpoints().at(0);
    EXPECT_TRUE(at.addr.v6);
    const ClientRun r = client_run(at, true, 77, 100000, 200000, Simultaneous);
    ASSERT_TRUE(received_within(book, 77));
    px.shutdown(2s);
    EXPECT_TRUE(r.got.received == r.expected);
    std::lock_guard l(book.mu);
    EXPECT_TRUE(book.received[77] == Bytes8(r.sent.begin() + kControl, r.sent.end()));
    std::lock_guard sl(sink.mu);
    ASSERT_EQ(sink.flows.size(), 1u);
    EXPECT_TRUE(sink.flows.front().key.client.addr.v6);
    EXPECT_TRUE(sink.flows.front().key.server.addr.v6);
}

/// A thread's /proc stat line; empty when the thread has ended meanwhile (its files then fail
/// to read, which an ifstream reports by throwing).
std::string task_stat(const std::filesystem::path& task) {
    std::string out;
    const int fd = ::open((task / "stat").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return out;
    char buf[1024];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
        out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return out;
}

/// The niceness of each of this process's threads (from /proc/self/task/*/stat, field 19).
std::vector<int> thread_nice_values() {
    std::vector<int> out;
    for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
        const std::string stat = task_stat(t.path());
        const auto end = stat.rfind(") ");
        if (end == std::string::npos) continue;  // the thread ended meanwhile
        // after the ")" that ends the command name: state is field 3, nice field 19
        std::istringstream rest(stat.substr(end + 2));
        std::string field;
        for (int i = 3; i < 19 && rest >> field; ++i) {
        }
        int nice = 0;
        if (rest >> nice) out.push_back(nice);
    }
    return out;
}

/// The scheduling policy of each of this process's threads (/proc/self/task/*/stat, field 41).
std::vector<int> thread_policies() {
    std::vector<int> out;
    for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
        const std::string stat = task_stat(t.path());
        const auto end = stat.rfind(") ");
        if (end == std::string::npos) continue;         // the thread ended meanwhile
        std::istringstream rest(stat.substr(end + 2));  // field 3 on
        std::string field;
        for (int i = 3; i < 41 && rest >> field; ++i) {
        }
        int policy = -1;
        if (rest >> policy) out.push_back(policy);
    }
    return out;
}

/// Whether a thread of this process may go to idle priority and come back (root, CAP_SYS_NICE
/// or RLIMIT_NICE), asked of the kernel by a thread of its own.
bool may_leave_idle_here() {
    bool ok = false;
    std::thread t([&] {
        const sched_param none{};
        ok = ::sched_setscheduler(0, SCHED_IDLE, &none) == 0 &&
             ::sched_setscheduler(0, SCHED_OTHER, &none) == 0;
    });
    t.join();
    return ok;
}

long idle_threads() {
    const auto p = thread_policies();
    return std::count(p.begin(), p.end(), SCHED_IDLE);
}

TEST(Proxy, TheAnalysisThreadYieldsToTheForwarding) {
    EchoBook book;
    Upstream up([&](int fd) { serve(fd, book); });
    RecordingSink sink;
    AnalysisHooks hooks;
    hooks.sink = &sink;
    ProxyOptions o = one_route(up.port());
    o.analysis_nice = 7;
    errno = 0;
    const int base = ::getpriority(PRIO_PROCESS, 0);
    ASSERT_EQ(errno, 0);
    if (base + 7 > 19) GTEST_SKIP() << "the test runs at niceness " << base;
    const auto before = thread_nice_values();
    Proxy px(o, hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    // The analysis thread lowers its own priority as it starts; the I/O threads keep theirs.
    std::vector<int> now;
    ASSERT_TRUE(wait_for([&] {
        now = thread_nice_values();
        return std::count(now.begin(), now.end(), base + 7) == 1;
    })) << "no thread at niceness "
        << base + 7;
    EXPECT_EQ(std::count(now.begin(), now.end(), base),
              std::count(before.begin(), before.end(), base) + 2)
        << "the two I/O threads";
    // And while its queue is short it runs at idle priority, where it may come back.
    if (may_leave_idle_here()) {
        EXPECT_TRUE(wait_for([] { return idle_threads() == 1; }));
    } else {
        EXPECT_EQ(idle_threads(), 0);
    }
    px.shutdown(2s);
}

TEST(Proxy, TheAnalysisThreadKeepsItsNicenessWhenToldTo) {
    ProxyOptions o = one_route(9);  // nothing connects
    o.analysis_idle = false;
    Proxy px(o, AnalysisHooks{});
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(idle_threads(), 0);
    px.shutdown(2s);
    EXPECT_EQ(px.stats().analysis_raised, 0u);
}

TEST(Proxy, TheAnalysisThreadCatchesUpAtItsNicenessThenIdlesAgain) {
    if (!may_leave_idle_here()) GTEST_SKIP() << "this process may not leave idle priority";
    EchoBook book;
    Upstream up([&](int fd) { serve(fd, book); });
    RecordingSink sink;
    sink.delay_per_chunk = 1ms;  // the analysis falls behind the link
    AnalysisHooks hooks;
    hooks.sink = &sink;
    ProxyOptions o = one_route(up.port());
    o.tap_queue_bytes = 1u << 20;  // raised past a batch of 128 KiB, idle below 16 KiB
    Proxy px(o, hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    ASSERT_TRUE(wait_for([] { return idle_threads() == 1; }));
    const ClientRun r =
        client_run(px.listen_endpoints().at(0), true, 23, 4u << 20, 4u << 20, Simultaneous);
    ASSERT_TRUE(received_within(book, 23, 30s));
    EXPECT_TRUE(r.got.received == r.expected);
    EXPECT_GE(px.stats().analysis_raised, 1u);
    // Caught up (nothing more comes), it is back at idle priority.
    EXPECT_TRUE(wait_for([] { return idle_threads() == 1; }, 10s));
    px.shutdown(5s);
}

// --- faults ------------------------------------------------------------------------------------

TEST(ProxyFaults, UpstreamRefusingClosesTheClientAndCounts) {
    std::uint16_t dead_port = 0;
    const int probe = listen_on(false, dead_port);
    close(probe);  // nothing listens there now: connections are refused
    Proxy px(one_route(dead_port), AnalysisHooks{});
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const int fd = connect_to(px.listen_endpoints().at(0));
    ASSERT_GE(fd, 0);
    std::uint8_t b = 0;
    const ssize_t n = recv(fd, &b, 1, 0);  // the proxy closes the client's connection
    EXPECT_LE(n, 0);
    close(fd);
    EXPECT_TRUE(wait_for([&] { return px.stats().upstream_connect_failures == 1; }));
    EXPECT_TRUE(wait_for([&] { return px.stats().connections_open == 0; }));
    px.shutdown(0ms);
}

TEST(ProxyFaults, AnUpstreamAddressThatRefusesFallsOverToTheNext) {
    // The upstream's name gave two addresses: nothing listens on the first (127.0.0.2, same
    // port), the second serves. The connection goes to the second and its bytes flow.
    Upstream up([](int fd) {
        std::uint8_t b[4];
        if (read_exact(fd, b, sizeof b)) (void)!send(fd, b, sizeof b, MSG_NOSIGNAL);
    });
    ProxyOptions o = one_route(up.port());
    o.routes[0].upstream_addresses = {"127.0.0.2", "127.0.0.1"};
    Proxy px(o, AnalysisHooks{});
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const int fd = connect_to(px.listen_endpoints().at(0));
    ASSERT_GE(fd, 0);
    const std::uint8_t ping[4] = {9, 8, 7, 6};
    ASSERT_EQ(send(fd, ping, sizeof ping, 0), 4);
    std::uint8_t got[4] = {};
    ASSERT_TRUE(read_exact(fd, got, sizeof got));
    EXPECT_EQ(std::memcmp(got, ping, sizeof ping), 0);
    EXPECT_EQ(px.stats().upstream_connect_failures, 0U);
    close(fd);
    px.shutdown(0ms);
}

TEST(ProxyFaults, UpstreamThatNeverAnswersTimesOut) {
    // A listener whose accept queue is full drops further SYNs: a connect to it hangs.
    std::uint16_t port = 0;
    const int full = listen_on(false, port);
    ASSERT_EQ(listen(full, 0), 0);
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
        const int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        (void)!connect(f, reinterpret_cast<sockaddr*>(&a), sizeof a);
        fillers.push_back(f);
    }
    std::this_thread::sleep_for(100ms);
    ProxyOptions o = one_route(port);
    o.connect_timeout = 300ms;
    Proxy px(o, AnalysisHooks{});
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const auto t0 = std::chrono::steady_clock::now();
    const int fd = connect_to(px.listen_endpoints().at(0));
    ASSERT_GE(fd, 0);
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1) << "the client was not closed after the connect timeout";
    const auto waited = std::chrono::steady_clock::now() - t0;
    std::uint8_t b;
    EXPECT_LE(recv(fd, &b, 1, 0), 0);
    EXPECT_GE(waited, 250ms);
    EXPECT_TRUE(wait_for([&] { return px.stats().upstream_connect_failures == 1; }));
    close(fd);
    px.shutdown(0ms);
    for (int f : fillers)
        close(f);
    close(full);
}

TEST(ProxyFaults, UpstreamResetMidStreamResetsTheClient) {
    Upstream up([](int fd) {
        std::uint8_t buf[100];
        (void)!recv(fd, buf, sizeof buf, 0);
        const std::uint8_t hello[5] = {1, 2, 3, 4, 5};
        (void)!send(fd, hello, sizeof hello, MSG_NOSIGNAL);
        std::this_thread::sleep_for(50ms);
        const linger lg{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);  // close() sends RST
    });
    RecordingSink sink;
    AnalysisHooks hooks;
    hooks.sink = &sink;
    Proxy px(one_route(up.port()), hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const int fd = connect_to(px.listen_endpoints().at(0));
    std::mt19937_64 rng(5);
    const Bytes8 first = client_stream(rng, true, 5, 0, Simultaneous, 0);
    ASSERT_EQ(send(fd, first.data(), first.size(), 0), static_cast<ssize_t>(first.size()));
    std::uint8_t got[5];
    ASSERT_TRUE(read_exact(fd, got, 5));
    std::uint8_t b;
    const ssize_t n = recv(fd, &b, 1, 0);
    EXPECT_EQ(n, -1);
    EXPECT_EQ(errno, ECONNRESET);
    close(fd);
    ASSERT_TRUE(wait_for([&] { return px.stats().connections_open == 0; }));
    px.shutdown(0ms);
    std::lock_guard l(sink.mu);
    ASSERT_EQ(sink.flows.size(), 1u);
    EXPECT_EQ(sink.flows.front().why, CloseReason::Rst);
}

TEST(ProxyFaults, ClientVanishingResetsTheUpstreamAndFreesTheConnection) {
    std::atomic<bool> upstream_saw_reset{false};
    Upstream up([&](int fd) {
        std::uint8_t buf[4096];
        for (;;) {
            const ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n > 0) continue;
            if (n < 0 && errno == ECONNRESET) upstream_saw_reset = true;
            return;
        }
    });
    Proxy px(one_route(up.port()), AnalysisHooks{});
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const int fd = connect_to(px.listen_endpoints().at(0));
    std::mt19937_64 rng(9);
    const Bytes8 some = random_bytes(rng, 1000);
    ASSERT_EQ(send(fd, some.data(), some.size(), 0), 1000);
    std::this_thread::sleep_for(50ms);
    const linger lg{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    EXPECT_TRUE(wait_for([&] { return upstream_saw_reset.load(); }));
    EXPECT_TRUE(wait_for([&] { return px.stats().connections_open == 0; }));
    px.shutdown(0ms);
}

TEST(ProxyFaults, SlowReaderSlowsTheWriterInsteadOfFillingMemory) {
    std::atomic<bool> start_reading{false};
    EchoBook book;
    Upstream up([&](int fd) {
        while (!start_reading)
            std::this_thread::sleep_for(10ms);
        serve(fd, book);
    });
    Proxy px(one_route(up.port()), AnalysisHooks{});
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const int fd = connect_to(px.listen_endpoints().at(0));
    std::mt19937_64 rng(11);
    const Bytes8 all = client_stream(rng, false, 11, 10, Simultaneous, 96u << 20);
    set_nonblocking(fd);
    // Write until the path is full: the upstream reads nothing, so the kernel buffers on both
    // legs and at most one proxy buffer can hold what was accepted.
    std::size_t sent = 0;
    auto quiet_since = std::chrono::steady_clock::now();
    while (sent < all.size() && std::chrono::steady_clock::now() - quiet_since < 300ms) {
        const ssize_t n = send(fd, all.data() + sent,
                               std::min<std::size_t>(65536, all.size() - sent), MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            quiet_since = std::chrono::steady_clock::now();
        } else {
            std::this_thread::sleep_for(1ms);
        }
    }
    // Loopback socket buffers grow to a few MiB each (four of them on the path) plus one proxy
    // buffer; a proxy without backpressure would have taken all 96 MiB.
    EXPECT_LT(sent, 40u << 20) << "the proxy kept reading although nobody read its writes";
    start_reading = true;
    const Exchanged ex = exchange(fd, all, sent, false, rng);
    close(fd);
    EXPECT_FALSE(ex.reset);
    ASSERT_TRUE(received_within(book, 11, 60s));
    px.shutdown(2s);
    std::lock_guard l(book.mu);
    EXPECT_TRUE(book.received[11] == Bytes8(all.begin() + kControl, all.end()))
        << first_difference(book.received[11], Bytes8(all.begin() + kControl, all.end()))
        << (book.problems[11] ? " (upstream saw a reset or timed out)" : "");
}

TEST(ProxyFaults, IdleTimeoutClosesASilentConnectionButNotATrickle) {
    Upstream up([](int fd) {
        std::uint8_t buf[256];
        while (recv(fd, buf, sizeof buf, 0) > 0) {
        }
    });
    ProxyOptions o = one_route(up.port());
    o.idle_timeout = 300ms;
    Proxy px(o, AnalysisHooks{});
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const int fd = connect_to(px.listen_endpoints().at(0));
    // A slow writer (one byte per 50 ms for 1 s) keeps the connection alive...
    for (int i = 0; i < 20; ++i) {
        const std::uint8_t b = 'x';
        ASSERT_EQ(send(fd, &b, 1, MSG_NOSIGNAL), 1) << "closed while active, after " << i;
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(px.stats().connections_open, 1u);
    // ...silence ends it.
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 3000), 1);
    std::uint8_t b;
    EXPECT_LE(recv(fd, &b, 1, 0), 0);
    close(fd);
    EXPECT_TRUE(wait_for([&] { return px.stats().connections_open == 0; }));
    px.shutdown(0ms);
}

TEST(ProxyFaults, ConnectionLimitRefusesTheExtraOnesAndRecovers) {
    EchoBook book;
    Upstream up([&](int fd) { serve(fd, book); });
    ProxyOptions o = one_route(up.port());
    o.max_connections = 5;
    Proxy px(o, AnalysisHooks{});
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const Endpoint at = px.listen_endpoints().at(0);
    std::vector<int> held;
    for (int i = 0; i < 5; ++i)
        held.push_back(connect_to(at));
    ASSERT_TRUE(wait_for([&] { return up.accepted() == 5; }));
    const int extra = connect_to(at);
    std::uint8_t b;
    EXPECT_LE(recv(extra, &b, 1, 0), 0) << "the sixth connection must be refused";
    close(extra);
    EXPECT_EQ(px.stats().connections_refused, 1u);
    EXPECT_EQ(up.accepted(), 5);
    close(held.back());
    held.pop_back();
    ASSERT_TRUE(wait_for([&] { return px.stats().connections_open == 4; }));
    const ClientRun r = client_run(at, false, 31, 1000, 1000, Simultaneous);
    EXPECT_TRUE(r.got.received == r.expected);
    for (int fd : held)
        close(fd);
    px.shutdown(1s);
}

TEST(Proxy, LongConnectionsAreSpreadOverTheThreads) {
    // The kernel hashes each connection to one thread's listening socket; left to it, 100 held
    // connections split unevenly between 2 threads (more than 2 apart about 4 times in 5). A
    // thread two ahead of the other hands new connections over.
    Upstream up([](int fd) {  // echoes byte by byte until the end
        std::uint8_t b = 0;
        while (recv(fd, &b, 1, 0) == 1 && send(fd, &b, 1, MSG_NOSIGNAL) == 1) {
        }
    });
    ProxyOptions o = one_route(up.port());
    Proxy px(o, AnalysisHooks{});
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const Endpoint at = px.listen_endpoints().at(0);
    std::vector<int> held;
    for (int i = 0; i < 100; ++i)
        held.push_back(connect_to(at));
    ASSERT_TRUE(wait_for([&] { return up.accepted() == 100; }));
    const ProxyStats s = px.stats();
    ASSERT_EQ(s.connections_per_thread.size(), 2u);
    EXPECT_EQ(s.connections_per_thread[0] + s.connections_per_thread[1], 100u);
    const auto [lo, hi] = std::minmax(s.connections_per_thread[0], s.connections_per_thread[1]);
    EXPECT_LE(hi - lo, 2u) << "handed over: " << s.handed_over;
    // Handed-over connections forward like the others.
    for (int fd : held) {
        const std::uint8_t ping = 0x42;
        ASSERT_EQ(send(fd, &ping, 1, MSG_NOSIGNAL), 1);
        std::uint8_t back = 0;
        EXPECT_TRUE(read_exact(fd, &back, 1));
        EXPECT_EQ(back, ping);
        close(fd);
    }
    ASSERT_TRUE(wait_for([&] { return px.stats().connections_open == 0; }));
    EXPECT_EQ(px.stats().connections_per_thread[0] + px.stats().connections_per_thread[1], 0u);
    px.shutdown(1s);
}

TEST(ProxyFaults, TransparentListenerRefusesConnectionsThatWereNotRedirected) {
    EchoBook book;
    Upstream up([&](int fd) { serve(fd, book); });
    ProxyOptions o;
    Route r;
    std::string err;
    r.listen = *parse_host_port("127.0.0.1:0", err);
    r.mode = RouteMode::Transparent;
    o.routes.push_back(r);
    o.threads = 1;
    Proxy px(o, AnalysisHooks{});
    ASSERT_TRUE(px.start(err)) << err;
    const int fd = connect_to(px.listen_endpoints().at(0));
    std::uint8_t b;
    EXPECT_LE(recv(fd, &b, 1, 0), 0);
    close(fd);
    EXPECT_TRUE(wait_for([&] { return px.stats().connections_open == 0; }));
    EXPECT_EQ(up.accepted(), 0);  // it never connects anywhere a client chose
    px.shutdown(0ms);
}

TEST(ProxyFaults, ShutdownClosesWhatIsLeftAfterTheGraceAndTellsTheDecoder) {
    Upstream up([](int fd) {
        std::uint8_t buf[256];
        while (recv(fd, buf, sizeof buf, 0) > 0) {
        }
    });
    RecordingSink sink;
    bool finished = false;
    AnalysisHooks hooks;
    hooks.sink = &sink;
    hooks.finish = [&](Timestamp) { finished = true; };
    Proxy px(one_route(up.port()), hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const int fd = connect_to(px.listen_endpoints().at(0));
    std::mt19937_64 rng(3);
    const Bytes8 first = client_stream(rng, true, 3, 0, Simultaneous, 0);
    ASSERT_EQ(send(fd, first.data(), first.size(), 0), static_cast<ssize_t>(first.size()));
    ASSERT_TRUE(wait_for([&] {
        std::lock_guard l(sink.mu);
        return !sink.flows.empty();
    }));
    const auto t0 = std::chrono::steady_clock::now();
    px.stop_accepting();
    EXPECT_LT(connect_to(px.listen_endpoints().at(0)), 0) << "still accepting";
    px.shutdown(200ms);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
    std::uint8_t b;
    EXPECT_LE(recv(fd, &b, 1, 0), 0);
    close(fd);
    EXPECT_TRUE(finished);
    std::lock_guard l(sink.mu);
    ASSERT_EQ(sink.flows.size(), 1u);
    EXPECT_EQ(sink.flows.front().closes, 1);
    EXPECT_EQ(sink.flows.front().why, CloseReason::EndOfInput);
}

// --- the tap -----------------------------------------------------------------------------------

TEST(ProxyTap, SlowDecoderGetsGapsWhileForwardingGoesOnAtFullSpeed) {
    EchoBook book;
    Upstream up([&](int fd) { serve(fd, book); });
    RecordingSink sink;
    sink.delay_per_chunk = 2ms;  // a decoder far slower than the link
    AnalysisHooks hooks;
    hooks.sink = &sink;
    ProxyOptions o = one_route(up.port());
    o.tap_queue_bytes = 256 * 1024;
    Proxy px(o, hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const ClientRun r =
        client_run(px.listen_endpoints().at(0), true, 21, 16u << 20, 16u << 20, Simultaneous);
    ASSERT_TRUE(received_within(book, 21, 30s));
    px.shutdown(5s);
    EXPECT_FALSE(r.got.reset);
    EXPECT_TRUE(r.got.received == r.expected);
    {
        std::lock_guard l(book.mu);
        EXPECT_TRUE(book.received[21] == Bytes8(r.sent.begin() + kControl, r.sent.end()));
    }
    const ProxyStats st = px.stats();
    EXPECT_GT(st.tap.dropped_bytes, 0u);
    EXPECT_LE(st.tap.peak_bytes, o.tap_queue_bytes);
    std::lock_guard l(sink.mu);
    ASSERT_EQ(sink.flows.size(), 1u);
    const auto& f = sink.flows.front();
    // What the decoder got plus what it was told it missed is the whole stream, in order.
    EXPECT_TRUE(f.offsets_ok);
    EXPECT_EQ(f.data[0].size() + f.gaps[0], r.sent.size());
    EXPECT_EQ(f.data[1].size() + f.gaps[1], r.expected.size());
    EXPECT_GT(f.gaps[0] + f.gaps[1], 0u);
    EXPECT_EQ(f.closes, 1);
}

TEST(ProxyTap, LargeChunksSharedWithALaggingDecoderAreNotOverwritten) {
    // Large chunks reach the decoder in the very buffer they were forwarded from. While the
    // decoder lags, the forwarding side must read the next bytes into another buffer: what the
    // decoder gets is exactly what was forwarded, with no gap (the queue is large enough).
    EchoBook book;
    Upstream up([&](int fd) { serve(fd, book); });
    RecordingSink sink;
    sink.delay_per_chunk = 1ms;
    AnalysisHooks hooks;
    hooks.sink = &sink;
    ProxyOptions o = one_route(up.port());
    o.tap_queue_bytes = 512u << 20;
    Proxy px(o, hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const ClientRun r =
        client_run(px.listen_endpoints().at(0), true, 22, 6u << 20, 6u << 20, Simultaneous);
    ASSERT_TRUE(received_within(book, 22, 30s));
    ASSERT_TRUE(wait_for([&] { return px.stats().connections_open == 0; }));
    px.shutdown(30s);
    EXPECT_FALSE(r.got.reset);
    EXPECT_TRUE(r.got.received == r.expected);
    const ProxyStats st = px.stats();
    EXPECT_GT(st.tap.shared_chunks, 10u);
    EXPECT_EQ(st.tap.dropped_bytes, 0u);
    std::lock_guard l(sink.mu);
    ASSERT_EQ(sink.flows.size(), 1u);
    const auto& f = sink.flows.front();
    EXPECT_TRUE(f.offsets_ok);
    EXPECT_EQ(f.gaps[0] + f.gaps[1], 0u);
    EXPECT_TRUE(f.data[0] == r.sent) << first_difference(f.data[0], r.sent);
    EXPECT_TRUE(f.data[1] == r.expected) << first_difference(f.data[1], r.expected);
}

TEST(ProxyTap, HostileBytesThroughTheRealDecoderNeitherBreakNorChangeForwarding) {
    EchoBook book;
    Upstream up([&](int fd) { serve(fd, book); });
    struct Quiet final : pipeline::EventSink {
    } events;
    pipeline::Pipeline pipe(events);
    bool finished = false;
    AnalysisHooks hooks;
    hooks.sink = &pipe;
    hooks.finish = [&](Timestamp ts) {
        pipe.finish(ts);
        finished = true;
    };
    Proxy px(one_route(up.port()), hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const Endpoint at = px.listen_endpoints().at(0);
    std::vector<std::thread> clients;
    std::atomic<int> bad{0};
    for (int t = 0; t < 4; ++t) {
        clients.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) {
                const std::uint64_t s = 500000 + t * 100 + i;
                const ClientRun r =
                    client_run(at, true, s, s % 20000, static_cast<std::uint32_t>(s % 30000),
                               static_cast<Mode>(s % 3));
                if (r.got.reset || r.got.timed_out || r.got.received != r.expected) ++bad;
            }
        });
    }
    for (auto& c : clients)
        c.join();
    px.shutdown(2s);
    EXPECT_EQ(bad.load(), 0);
    EXPECT_TRUE(finished);
    EXPECT_EQ(pipe.counters().tds_connections, 200u);
    EXPECT_GT(pipe.counters().decode_problems, 0u);  // the bytes were garbage, and were read
}

TEST(ProxyTap, TheAnalysisThreadTicksOnceASecondWhenNothingHappens) {
    std::atomic<int> ticks{0};
    std::atomic<std::int64_t> last{0};
    AnalysisHooks hooks;
    hooks.tick = [&](Timestamp ts) {
        ++ticks;
        last = ts.micros;
    };
    Proxy px(one_route(9), hooks);
    std::string err;
    ASSERT_TRUE(px.start(err)) << err;
    const Timestamp before = now();
    std::this_thread::sleep_for(2300ms);
    px.shutdown(0ms);
    EXPECT_GE(ticks.load(), 2);
    EXPECT_LE(ticks.load(), 3);
    EXPECT_GT(last.load(), before.micros);  // wall-clock time
}

// --- configuration -----------------------------------------------------------------------------

TEST(ProxyConfig, HostPort) {
    std::string err;
    auto a = parse_host_port("10.1.2.3:1433", err);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "10.1.2.3");
    EXPECT_EQ(a->port, 1433);
    auto b = parse_host_port("[fd00::1]:15433", err);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->host, "fd00::1");
    EXPECT_EQ(b->str(), "[fd00::1]:15433");
    auto c = parse_host_port("sqla.corp.example:1433", err);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->host, "sqla.corp.example");
    for (const char* bad : {"", "sqla", ":1433", "sqla:", "sqla:70000", "sqla:14x3", "fd00::1:1433",
                            "[fd00::1]1433", "[fd00::1"}) {
        err.clear();
        EXPECT_FALSE(parse_host_port(bad, err)) << bad;
        EXPECT_FALSE(err.empty()) << bad;
    }
}

TEST(ProxyConfig, Validate) {
    ProxyOptions o;
    EXPECT_NE(validate(o), "");
    o = one_route(1433);
    EXPECT_EQ(validate(o), "");
    ProxyOptions twice = o;
    twice.routes[0].listen.port = 15433;
    twice.routes.push_back(twice.routes[0]);
    EXPECT_NE(validate(twice).find("twice"), std::string::npos);
    ProxyOptions transparent_with_upstream = o;
    transparent_with_upstream.routes[0].mode = RouteMode::Transparent;
    EXPECT_NE(validate(transparent_with_upstream).find("transparent"), std::string::npos);
    ProxyOptions tiny = o;
    tiny.buffer_size = 100;
    EXPECT_NE(validate(tiny), "");
    ProxyOptions no_upstream = o;
    no_upstream.routes[0].upstream = HostPort{};
    EXPECT_NE(validate(no_upstream), "");
}

TEST(ProxyConfig, StartFailsClearlyAndLeavesNothingRunning) {
    std::uint16_t port = 0;
    const int busy = listen_on(false, port);
    ProxyOptions o = one_route(1433);
    o.routes[0].listen.port = port;
    Proxy px(o, AnalysisHooks{});
    std::string err;
    EXPECT_FALSE(px.start(err));
    EXPECT_NE(err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << err;
    close(busy);
    // The I/O threads share the listening address (SO_REUSEPORT), but a second proxy on the
    // same address is still refused, not silently given half of the connections.
    Proxy first(one_route(1433), AnalysisHooks{});
    ASSERT_TRUE(first.start(err)) << err;
    const Endpoint taken = first.listen_endpoints().at(0);
    ProxyOptions again = one_route(1433);
    again.routes[0].listen.port = taken.port;
    Proxy second(again, AnalysisHooks{});
    EXPECT_FALSE(second.start(err));
    EXPECT_NE(err.find("in use"), std::string::npos) << err;
    first.shutdown(0ms);
    ProxyOptions unresolvable = one_route(1433, "127.0.0.1:0", "no-such-host.invalid");
    Proxy px2(unresolvable, AnalysisHooks{});
    EXPECT_FALSE(px2.start(err));
    EXPECT_NE(err.find("no-such-host.invalid"), std::string::npos) << err;
}

}  // namespace
}  // namespace hopscope::proxy
