#include "hopscope/proxy/proxy.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_set>

#include "hopscope/proxy/metrics.hpp"
#include "hopscope/proxy/recorder.hpp"
#include "hopscope/proxy/tls_terminate.hpp"
#include "loop.hpp"

namespace hopscope::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

Timestamp now() {
    const auto t = std::chrono::system_clock::now().time_since_epoch();
    return Timestamp{std::chrono::duration_cast<std::chrono::microseconds>(t).count()};
}

Endpoint to_endpoint(const tcp::endpoint& e) {
    Endpoint out;
    out.port = e.port();
    const auto a = e.address();
    if (a.is_v4()) {
        const auto b = a.to_v4().to_bytes();
        out.addr = IpAddress::v4_from_bytes(b.data());
    } else if (a.to_v6().is_v4_mapped()) {
        const auto b = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_bytes();
        out.addr = IpAddress::v4_from_bytes(b.data());
    } else {
        const auto b = a.to_v6().to_bytes();
        out.addr = IpAddress::v6_from_bytes(b.data());
    }
    return out;
}

namespace {

// Linux netfilter: the destination a NATed (REDIRECT/DNAT) connection had before translation.
// <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h> define both as 80; their
// headers do not compile cleanly as C++, so the values are restated here.
constexpr int kSoOriginalDst = 80;
constexpr int kIp6tSoOriginalDst = 80;

std::optional<tcp::endpoint> from_sockaddr(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET) {
        const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
        return tcp::endpoint(asio::ip::address_v4(ntohl(sin->sin_addr.s_addr)),
                             ntohs(sin->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        asio::ip::address_v6::bytes_type b;
        std::memcpy(b.data(), &sin6->sin6_addr, b.size());
        return tcp::endpoint(asio::ip::address_v6(b, sin6->sin6_scope_id), ntohs(sin6->sin6_port));
    }
    return std::nullopt;
}

/// The socket's own address (getsockname).
std::optional<tcp::endpoint> local_endpoint(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
    return from_sockaddr(ss);
}

/// SO_ORIGINAL_DST of an accepted socket whose own address is `local`, when netfilter
/// translated its destination.
std::optional<tcp::endpoint> original_destination(int fd, const tcp::endpoint& local) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const bool v6 = local.address().is_v6() && !local.address().to_v6().is_v4_mapped();
    const int rc = v6 ? getsockopt(fd, SOL_IPV6, kIp6tSoOriginalDst, &ss, &len)
                      : getsockopt(fd, SOL_IP, kSoOriginalDst, &ss, &len);
    if (rc != 0) return std::nullopt;
    return from_sockaddr(ss);
}

/// SO_LINGER 0: the close that follows sends a reset, not a FIN.
void reset_on_close(int fd) {
    const linger l{1, 0};
    if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

bool would_block(int e) {
    return e == EAGAIN || e == EWOULDBLOCK;
}

/// recv(2) without waiting: bytes read, 0 at the end of the stream, -1 with errno set.
ssize_t recv_now(int fd, std::uint8_t* buf, std::size_t n) {
    ssize_t r;
    do {
        r = ::recv(fd, buf, n, 0);
    } while (r < 0 && errno == EINTR);
    return r;
}

/// send(2) without waiting and without SIGPIPE: bytes taken, or -1 with errno set.
ssize_t send_now(int fd, const std::uint8_t* buf, std::size_t n) {
    ssize_t r;
    do {
        r = ::send(fd, buf, n, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    return r;
}

/// Forwarding buffers of one I/O thread: blocks this thread alone holds, reused without a lock.
/// A direction holds one only while bytes flow through it, so an idle connection holds none. A
/// block also held by the tap goes back to the shared pool when the analysis thread is done.
class BufferPool {
  public:
    explicit BufferPool(BlockPool& shared) : shared_(shared) {}
    ~BufferPool() {
        for (Block* b : free_)
            BlockPool::unref(b);
    }
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;
    Block* get() {
        if (free_.empty()) return shared_.get();
        Block* b = free_.back();
        free_.pop_back();
        return b;
    }
    void put(Block* b) {
        if (exclusive(b) && free_.size() < kKeep)
            free_.push_back(b);
        else
            BlockPool::unref(b);
    }
    /// Whether only this thread holds `b` (the tap is done with it, or never had it).
    static bool exclusive(Block* b) { return b->refs.load(std::memory_order_acquire) == 1; }
    [[nodiscard]] std::size_t size() const { return shared_.size(); }

  private:
    static constexpr std::size_t kKeep = 64;
    BlockPool& shared_;
    std::vector<Block*> free_;
};

class Connection;

struct Worker {
    Worker(BlockPool& blocks, BlockPool& copy_blocks) : pool(blocks), copies(copy_blocks) {}
    Loop loop;  ///< the thread's sockets, timers and tasks (loop.hpp says why not Asio)
    std::thread thread;
    BufferPool pool;
    CopyArena copies;                                       ///< the tap's copies of small chunks
    std::unordered_set<std::shared_ptr<Connection>> conns;  ///< touched on this thread only
    /// Connections this thread serves or is about to (read by the acceptors of every thread).
    std::atomic<std::size_t> serving{0};
    /// Connect and idle timeouts of all this thread's connections are checked a few times per
    /// timeout period by one sweep (Impl::sweep). A timer per connection cost two timerfd
    /// updates per connection (armed for the connect, re-armed for idleness) and its handler;
    /// the sweep costs neither.
    bool stopping = false;
};

struct Listener {
    Route route;
    /// One listening socket per I/O thread on the same address (SO_REUSEPORT): the kernel
    /// spreads new connections over them, and each thread serves what it accepts, with no
    /// hand-over (a wake-up of another thread) per connection.
    struct Acceptor final : Loop::Watch {
        Worker* worker = nullptr;
        int fd = -1;  ///< listening, non-blocking; closed on its worker's thread
        std::function<void()> ready;
        Acceptor() = default;
        Acceptor(const Acceptor&) = delete;
        Acceptor& operator=(const Acceptor&) = delete;
        ~Acceptor() override {
            if (fd >= 0) ::close(fd);
        }
        void on_events(std::uint32_t) override {
            if (ready) ready();
        }
    };
    std::vector<std::unique_ptr<Acceptor>> acceptors;  ///< registered: their addresses stay
    std::vector<tcp::endpoint> upstream;               ///< explicit: resolved at start
    tcp::endpoint bound;
};

}  // namespace

struct Proxy::Impl {
    Impl(ProxyOptions o, AnalysisHooks h, Metrics* m)
        : opt(std::move(o)),
          hooks(std::move(h)),
          metrics(m),
          dispatcher(hooks.sink, hooks.recorder, hooks.record_upstream_leg),
          blocks(opt.buffer_size,
                 std::min<std::size_t>(
                     opt.tap_queue_bytes / std::max<std::size_t>(opt.buffer_size, 1), 256) +
                     64),
          copy_blocks(kCopyBlock, 64, true),
          tap(opt.tap_queue_bytes) {}

    /// The tap's copies of small chunks go into blocks of this size (CopyArena): 64 KiB hold
    /// some forty TDS logins' packets, so the I/O and analysis threads meet at the pool's lock
    /// about once per forty logins.
    static constexpr std::size_t kCopyBlock = 64 * 1024;

    ProxyOptions opt;
    AnalysisHooks hooks;
    Metrics* metrics;
    /// Tap items to the pipeline and the recording (analysis thread only).
    TapDispatcher dispatcher;
    /// Forwarding buffers, shared with the tap; declared before everything that holds them.
    BlockPool blocks;
    BlockPool copy_blocks;  ///< the CopyArenas' blocks
    Tap tap;
    /// --tls-terminate: the contexts every terminated connection uses.
    std::unique_ptr<TlsContexts> tls;
    std::vector<std::unique_ptr<Worker>> workers;
    std::vector<Listener> listeners;
    std::thread analysis;
    std::atomic<bool> accepting{false};
    std::atomic<std::uint64_t> next_id{1};
    std::atomic<std::uint64_t> open{0};
    std::atomic<std::uint64_t> total{0};
    std::atomic<std::uint64_t> refused{0};
    std::atomic<std::uint64_t> connect_failures{0};
    std::atomic<std::uint64_t> tapped{0};
    std::atomic<std::uint64_t> handed_over{0};      ///< accepted by one thread, served by another
    std::atomic<std::uint64_t> analysis_raised{0};  ///< the analysis left idle priority to catch up
    bool started = false;
    bool stopped = false;

    bool start(std::string& err);
    bool bind_listener(Listener& l, const tcp::endpoint& at, std::string& err);
    struct HandedSocket;
    void accept(Listener& l, Listener::Acceptor& a);
    void sweep(Worker& w);
    void analysis_loop();
    void stop_accepting();
    void shutdown(std::chrono::milliseconds grace);
};

namespace {

/// One proxied connection: the client's socket, the upstream's, and a pump each way.
class Connection : public std::enable_shared_from_this<Connection> {
  public:
    /// Takes `client_fd`, an accepted non-blocking socket.
    Connection(Proxy::Impl& px, Worker& w, int client_fd, const tcp::endpoint& peer,
               const Listener& l)
        : px_(px),
          w_(w),
          client_(w.loop),
          upstream_(w.loop),
          client_fd_(client_fd),
          listener_(l),
          id_(px.next_id.fetch_add(1, std::memory_order_relaxed)),
          tapw_(px.tap, id_) {
        flow_.client = to_endpoint(peer);
        pumps_[0].from = &client_;
        pumps_[0].to = &upstream_;
        pumps_[1].from = &upstream_;
        pumps_[1].to = &client_;
    }

    ~Connection() {
        if (client_fd_ >= 0) ::close(client_fd_);
        for (auto& p : pumps_) {
            release(p);
            close_pipe(p);
        }
    }

    void start() {
        w_.conns.insert(shared_from_this());
        if (!client_.adopt(std::exchange(client_fd_, -1))) {
            spdlog::warn("conn {} from {}: cannot watch the socket: {}", id_,
                         to_string(flow_.client), std::strerror(errno));
            finish(CloseReason::Rst);
            return;
        }
        if (listener_.route.mode == RouteMode::Explicit) {
            targets_ = &listener_.upstream;
        } else if (auto t = transparent_target()) {
            original_dst_ = *t;
        } else {
            return;  // refused and logged
        }
        deadline_ = Clock::now() + px_.opt.connect_timeout;
        connect_to(0);
    }

    /// Called by the thread's sweep: ends a connect that took too long, or an idle connection.
    void check_timeouts(Clock::time_point at) {
        if (closed_) return;
        if (!connected_) {
            if (at < deadline_ || timed_out_) return;
            timed_out_ = true;
            upstream_.close();  // the connect's wait will not run
            on_connected(asio::error::timed_out, connecting_);
            return;
        }
        if (px_.opt.idle_timeout.count() > 0 && at - last_ >= px_.opt.idle_timeout)
            finish(CloseReason::Timeout, "idle timeout");
    }

    /// Closes both sockets; `why` goes to the decoder. Safe to call more than once.
    void finish(CloseReason why, const char* note = nullptr) {
        if (closed_) return;
        closed_ = true;
        // Alive until the loop is done with the events of this round, which may name it.
        w_.loop.retire(shared_from_this());
        if (why == CloseReason::Rst) {
            // Tell both peers the stream broke rather than ended (SO_LINGER 0: RST on close).
            reset_on_close(client_.fd());
            reset_on_close(upstream_.fd());
        }
        client_.close();
        upstream_.close();
        for (auto& p : pumps_) {
            release(p);
            close_pipe(p);
        }
        const std::uint64_t wire_end[2] = {pumps_[0].offset, pumps_[1].offset};
        tapw_.close(now(), why, wire_end, upstream_offset_);
        px_.open.fetch_sub(1, std::memory_order_relaxed);
        if (px_.metrics) px_.metrics->connections_open.fetch_sub(1, std::memory_order_relaxed);
        w_.serving.fetch_sub(1, std::memory_order_relaxed);
        if (note)
            spdlog::debug("conn {} {} -> {}: closed: {} ({} / {} bytes)", id_,
                          to_string(flow_.client), to_string(flow_.server), note, pumps_[0].offset,
                          pumps_[1].offset);
        // Last: may drop the registry's reference (handlers in flight hold their own).
        w_.conns.erase(shared_from_this());
    }

  private:
    struct Pump {
        Sock* from = nullptr;
        Sock* to = nullptr;
        Block* buf = nullptr;
        bool done = false;  ///< end of stream read and passed on
        std::uint64_t offset = 0;
        int pipe[2] = {-1, -1};      ///< splice path: read end, write end
        std::size_t pipe_bytes = 0;  ///< spliced in, not yet out
    };

    void release(Pump& p) {
        if (p.buf) w_.pool.put(p.buf);
        p.buf = nullptr;
    }

    std::optional<tcp::endpoint> transparent_target() {
        const auto local = local_endpoint(client_.fd());
        std::optional<tcp::endpoint> target;
        bool loops = false;
        if (listener_.route.tproxy) {
            // TPROXY keeps the original destination as the connection's local address (conntrack
            // may report the same as SO_ORIGINAL_DST). A connection made straight to the proxy
            // has the listener's port there instead.
            target = local;
            loops = target && local->port() == listener_.bound.port();
        } else if (local) {
            // REDIRECT/DNAT: the destination before the rewrite. A connection made straight to
            // the proxy's port was not redirected: forwarding it to "its destination" would loop
            // into the proxy itself.
            target = original_destination(client_.fd(), *local);
            loops = target && (*target == *local || *target == listener_.bound);
        }
        if (!target || loops) {
            spdlog::warn(
                "conn {} from {}: refused: {} (transparent listener {}; see docs/proxy.md)", id_,
                to_string(flow_.client),
                !target ? "no original destination (connection was not redirected to the proxy)"
                        : "addressed to the proxy itself, not redirected",
                listener_.route.listen.str());
            finish(CloseReason::Rst);
            return std::nullopt;
        }
        return target;
    }

    void on_connected(const error_code& e, const tcp::endpoint& at) {
        if (closed_) return;
        // A connect to several addresses goes on with the next after the timer aborted one;
        // the timeout covers them all.
        if (e || timed_out_) {
            px_.connect_failures.fetch_add(1, std::memory_order_relaxed);
            if (px_.metrics)
                px_.metrics->upstream_connect_failures.fetch_add(1, std::memory_order_relaxed);
            spdlog::warn("conn {} from {}: cannot connect to the upstream {}: {}", id_,
                         to_string(flow_.client), describe_targets(),
                         timed_out_ ? "timed out (--connect-timeout)" : e.message());
            finish(CloseReason::Rst);
            return;
        }
        connected_ = true;
        flow_.server = to_endpoint(at);
        // The proxy's own address on the upstream leg names that leg in a recording; nothing
        // else needs it, so the system call is made only then.
        if (px_.hooks.recorder && px_.hooks.record_upstream_leg) {
            if (const auto local = local_endpoint(upstream_.fd()))
                proxy_local_ = to_endpoint(*local);
        }
        tapw_.connected(flow_, proxy_local_, px_.tls != nullptr);
        // Segments go on as they come, as between the peers themselves: no Nagle delay on
        // TDS's request/response turns (the client socket has it from the listener).
        const int one = 1;
        ::setsockopt(upstream_.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        spdlog::debug("conn {} {} -> {}: open", id_, to_string(flow_.client),
                      to_string(flow_.server));
        last_ = Clock::now();
        if (px_.tls) {
            tls_start();
            return;
        }
        // Each side's bytes, when it has any: an edge that came while connecting is
        // remembered, so neither side is read to find nothing.
        wait_then(client_, Sock::Wait::Read, 0, &Connection::read);
        wait_then(upstream_, Sock::Wait::Read, 1, &Connection::read);
    }

    std::string describe_targets() const {
        if (listener_.route.mode == RouteMode::Explicit) return listener_.route.upstream.str();
        return to_string(to_endpoint(original_dst_));
    }

    /// Connects to the `i`-th target (the next one after a failure), without waiting: a
    /// socket made non-blocking, a connect(2), and the socket's first writable edge (or its
    /// error) says how it went (SO_ERROR).
    void connect_to(std::size_t i) {
        const tcp::endpoint target = targets_ ? (*targets_)[i] : original_dst_;
        const bool last = !targets_ || i + 1 >= targets_->size();
        connecting_ = target;
        upstream_.close();
        const int fd =
            ::socket(target.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            on_connected(error_code(errno, boost::system::system_category()), target);
            return;
        }
        int rc;
        do {
            rc = ::connect(fd, target.data(), static_cast<socklen_t>(target.size()));
        } while (rc != 0 && errno == EINTR);
        const int connect_errno = rc == 0 ? 0 : errno;
        if (connect_errno != 0 && connect_errno != EINPROGRESS) {
            ::close(fd);
            const error_code failed(connect_errno, boost::system::system_category());
            if (last || timed_out_) {
                on_connected(failed, target);
            } else {
                connect_to(i + 1);
            }
            return;
        }
        if (!upstream_.adopt(fd)) {
            on_connected(error_code(errno, boost::system::system_category()), target);
            return;
        }
        if (rc == 0) {
            on_connected({}, target);
            return;
        }
        upstream_.wait(Sock::Wait::Write, [self = shared_from_this(), i, last, target] {
            if (self->closed_) return;
            // Writable without an error or hang-up: connected. Otherwise SO_ERROR says why not.
            error_code e;
            if (self->upstream_.failed()) {
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(self->upstream_.fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                    err = errno;
                e.assign(err != 0 ? err : ECONNREFUSED, boost::system::system_category());
            }
            if (e && !last && !self->timed_out_) {
                self->connect_to(i + 1);
                return;
            }
            self->on_connected(e, target);
        });
    }

    /// Waits until `sock` is ready, then runs `next(d)` (which finds out, by its system call,
    /// whether the socket failed).
    void wait_then(Sock& sock, Sock::Wait what, int d, void (Connection::*next)(int)) {
        sock.wait(what, [self = shared_from_this(), d, next] {
            if (self->closed_) return;
            ((*self).*next)(d);
        });
    }

    /// One turn of a pump: read what is there (without waiting), or wait until there is some;
    /// then forward it. System calls are what this path costs (a TDS login is a dozen small
    /// turns), so it makes as few as it can: the bytes go out with a plain non-blocking send, and
    /// only a send the peer cannot take at once becomes an asynchronous write; a read that did
    /// not fill the buffer has most likely emptied the socket, so the pump then waits for
    /// readiness instead of spending a read on EAGAIN.
    void read(int d) {
        Pump& p = pumps_[d];
        constexpr int kTurns = 16;  // full buffers in a row; then let the thread's others run
        for (int turn = 0; turn < kTurns; ++turn) {
            if (closed_ || p.done) return;
            if (tapw_.state() == TapWriter::State::Off && px_.opt.splice) {
                splice_pump(d);
                return;
            }
            bool eof = false;
            const std::size_t n = read_now(d, &Connection::read, eof);
            if (eof) {
                end_of_stream(d);
                return;
            }
            if (n == 0) return;  // waiting, or reset
            // The tap takes the bytes before they are forwarded: what a peer does because of
            // them (a server relaying its linked server's 18456 to its client, on another
            // connection and maybe another thread) then reaches the tap after them. Tapping
            // after the write let the relay overtake its cause (lab scenario 21 through the
            // proxy: the finding lost the failed login of A to B).
            tap(d, p.buf, n);
            p.offset += n;
            const ssize_t sent = send_now(p.to->fd(), p.buf->data(), n);
            if (sent < 0 && !would_block(errno)) {
                finish(CloseReason::Rst,
                       d == 0 ? "upstream gone on write" : "client gone on write");
                return;
            }
            if (sent < 0 || static_cast<std::size_t>(sent) < n) {
                forward_rest(d, sent < 0 ? 0 : static_cast<std::size_t>(sent), n);
                return;
            }
            if (n < w_.pool.size()) {
                // The socket had no more: its next bytes raise a new edge, so no read is spent
                // on EAGAIN.
                release(p);
                wait_then(*p.from, Sock::Wait::Read, d, &Connection::read);
                return;
            }
        }
        w_.loop.defer([self = shared_from_this(), d] {
            if (!self->closed_) self->read(d);
        });
    }

    /// The start of a pump's turn, plain or TLS: reads what is there into the pump's buffer,
    /// without waiting. Returns how many bytes; 0 when there were none (the pump then waits
    /// for readiness and runs `again`), when the stream ended (`eof`) or was reset (the
    /// connection is finished).
    std::size_t read_now(int d, void (Connection::*again)(int), bool& eof) {
        Pump& p = pumps_[d];
        if (p.buf && !BufferPool::exclusive(p.buf)) release(p);  // the tap still reads it
        if (!p.buf) p.buf = w_.pool.get();
        p.from->took(Sock::Wait::Read);
        const ssize_t got = recv_now(p.from->fd(), p.buf->data(), w_.pool.size());
        if (got < 0 && would_block(errno)) {
            release(p);  // nothing in flight: an idle direction holds no buffer
            wait_then(*p.from, Sock::Wait::Read, d, again);
            return 0;
        }
        if (got == 0) {
            eof = true;
            return 0;
        }
        if (got < 0) {
            finish(CloseReason::Rst, d == 0 ? "client reset" : "upstream reset");
            return 0;
        }
        const auto n = static_cast<std::size_t>(got);
        last_ = Clock::now();
        if (px_.metrics)
            (d == 0 ? px_.metrics->bytes_client_to_server : px_.metrics->bytes_server_to_client)
                .fetch_add(n, std::memory_order_relaxed);
        return n;
    }

    /// The part of a chunk the peer could not take at once: written asynchronously (the pump
    /// reads no more until it is out: backpressure), then the pump goes on.
    void forward_rest(int d, std::size_t from, std::size_t n) {
        pumps_[d].to->wait(Sock::Wait::Write, [self = shared_from_this(), d, from, n] {
            if (self->closed_) return;
            Pump& p = self->pumps_[d];
            const ssize_t sent = send_now(p.to->fd(), p.buf->data() + from, n - from);
            if (sent < 0 && !would_block(errno)) {
                self->finish(CloseReason::Rst,
                             d == 0 ? "upstream gone on write" : "client gone on write");
                return;
            }
            const std::size_t at = from + (sent < 0 ? 0 : static_cast<std::size_t>(sent));
            if (at < n) {
                self->forward_rest(d, at, n);
                return;
            }
            self->read(d);
        });
    }

    /// The same turn for a connection that is not decoded: splice(2) moves the bytes from one
    /// socket to the other through a pipe, without copying them into the process. The pipe is
    /// made on first use and closed when the direction goes idle, so an idle connection holds no
    /// descriptors beyond its sockets.
    void splice_pump(int d) {
        Pump& p = pumps_[d];
        constexpr int kTurns = 16;  // then let the thread's other connections run
        for (int turn = 0; turn < kTurns; ++turn) {
            if (p.pipe_bytes == 0) {
                if (p.pipe[0] < 0 && pipe2(p.pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
                    p.pipe[0] = p.pipe[1] = -1;
                    finish(CloseReason::Rst, "no pipe for splice");
                    return;
                }
                const ssize_t n = ::splice(p.from->fd(), nullptr, p.pipe[1], nullptr,
                                           px_.opt.buffer_size, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                    close_pipe(p);
                    wait_then(*p.from, Sock::Wait::Read, d, &Connection::splice_pump);
                    return;
                }
                if (n == 0) {
                    close_pipe(p);
                    end_of_stream(d);
                    return;
                }
                if (n < 0) {
                    finish(CloseReason::Rst, d == 0 ? "client reset" : "upstream reset");
                    return;
                }
                last_ = Clock::now();
                p.pipe_bytes = static_cast<std::size_t>(n);
                p.offset += static_cast<std::uint64_t>(n);
                if (px_.metrics)
                    (d == 0 ? px_.metrics->bytes_client_to_server
                            : px_.metrics->bytes_server_to_client)
                        .fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
            }
            while (p.pipe_bytes > 0) {
                const ssize_t m = ::splice(p.pipe[0], nullptr, p.to->fd(), nullptr, p.pipe_bytes,
                                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (m < 0 && (errno == EAGAIN || errno == EINTR)) {
                    wait_then(*p.to, Sock::Wait::Write, d, &Connection::splice_pump);
                    return;
                }
                if (m <= 0) {
                    finish(CloseReason::Rst,
                           d == 0 ? "upstream gone on write" : "client gone on write");
                    return;
                }
                p.pipe_bytes -= static_cast<std::size_t>(m);
            }
        }
        w_.loop.defer([self = shared_from_this(), d] {
            if (!self->closed_) self->splice_pump(d);
        });
    }

    static void close_pipe(Pump& p) {
        for (int& fd : p.pipe) {
            if (fd >= 0) ::close(fd);
            fd = -1;
        }
        p.pipe_bytes = 0;
    }

    /// FIN from one side: pass it on (half-close), let the other direction go on.
    void end_of_stream(int d) {
        Pump& p = pumps_[d];
        p.done = true;
        release(p);
        if (pumps_[1 - d].done) {
            // Both ways ended: closing sends the FIN the shutdown would (the socket's receive
            // queue is empty, its end of stream was read), one system call fewer per connection.
            finish(CloseReason::Fin, "closed by both sides");
            return;
        }
        ::shutdown(p.to->fd(), SHUT_WR);
    }

    /// Hands a copy of forwarded bytes to the analysis thread. The connection is tapped once its
    /// first client bytes look like the start of TDS; a server that speaks first, or other first
    /// bytes, mean it is not TDS, and it is forwarded without copies from then on.
    void tap(int d, Block* block, std::size_t n) {
        // A large chunk is shared with the tap rather than copied (see Block); a small one is
        // copied, so that it does not hold a whole block in the queue.
        tap_bytes(d, block->data(), n, pumps_[d].offset, n >= w_.pool.size() / 4 ? block : nullptr,
                  TapItem::Role::Wire);
    }

    void tap_bytes(int d, const std::uint8_t* data, std::size_t n, std::uint64_t offset,
                   Block* block, TapItem::Role role) {
        if (tapw_.state() == TapWriter::State::Off) return;
        const Direction dir = d == 0 ? Direction::ClientToServer : Direction::ServerToClient;
        if (block == nullptr && tapw_.state() == TapWriter::State::On && w_.copies.fits(n))
            block = w_.copies.copy(data, n, data);
        const auto r = tapw_.data(dir, now(), data, n, offset, block, role);
        if (r.not_tds && d == 0) spdlog::debug("conn {}: not TDS, forwarded without decoding", id_);
        if (r.opened) px_.tapped.fetch_add(1, std::memory_order_relaxed);
        if (r.dropped_bytes > 0 && px_.metrics) {
            if (r.gap_started) px_.metrics->tap_gaps.fetch_add(1, std::memory_order_relaxed);
            px_.metrics->tap_gap_bytes.fetch_add(r.dropped_bytes, std::memory_order_relaxed);
        }
    }

    // -- --tls-terminate -------------------------------------------------------------------
    //
    // The terminator (tls_terminate.hpp) decides what goes to which side; these pumps read a
    // socket, feed it, and write what it queued. Each socket has one write in flight at a time;
    // a direction reads again once the socket it feeds has taken the last write (backpressure,
    // as the plain pumps).

    /// What the terminator saw, to the tap: the client leg as the decoder reads it, the
    /// plaintext, the upstream leg and the session secrets for the recording.
    struct TermTap final : TlsTerminator::Observer {
        explicit TermTap(Connection& conn) : c(conn) {}
        Connection& c;
        void client_leg(Direction dir, Bytes wire, bool clear) override {
            const int d = static_cast<int>(dir);
            // Records of application data matter only to a recording (their content comes as
            // plaintext): without one they are not copied to the tap at all (a tenth of the
            // proxy's time under TLS load went to copying them for nothing, by perf).
            if (clear || c.px_.hooks.recorder)
                c.tap_bytes(d, wire.data(), wire.size(), c.leg_offset_[d], nullptr,
                            clear ? TapItem::Role::Wire : TapItem::Role::Opaque);
            c.leg_offset_[d] += wire.size();
        }
        void plaintext(Direction dir, Bytes plain, std::uint64_t wire_offset) override {
            c.tap_bytes(static_cast<int>(dir), plain.data(), plain.size(), wire_offset, nullptr,
                        TapItem::Role::Plain);
        }
        void upstream_leg(Direction dir, Bytes wire) override {
            const int d = static_cast<int>(dir);
            if (c.px_.hooks.recorder && c.px_.hooks.record_upstream_leg)
                c.tap_bytes(d, wire.data(), wire.size(), c.upstream_offset_[d], nullptr,
                            TapItem::Role::Upstream);
            c.upstream_offset_[d] += wire.size();
        }
        void secret(std::string_view line) override {
            if (c.px_.hooks.recorder) c.tapw_.secret(now(), line);
        }
    };

    void tls_start() {
        const std::string name =
            listener_.route.mode == RouteMode::Explicit ? listener_.route.upstream.host : "";
        term_tap_ = std::make_unique<TermTap>(*this);
        term_ = std::make_unique<TlsTerminator>(*px_.tls, name, *term_tap_);
        tls_read(0);
        tls_read(1);
    }

    /// Socket that direction `d` writes to: 0 the upstream (client -> upstream), 1 the client.
    Sock& sock(int s) { return s == 0 ? upstream_ : client_; }

    void tls_read(int d) {
        Pump& p = pumps_[d];
        constexpr int kTurns = 16;  // then let the thread's other connections run
        for (int turn = 0; turn < kTurns; ++turn) {
            if (closed_ || p.done) return;
            if (writing_[d]) {
                paused_[d] = true;  // tls_wrote() goes on
                return;
            }
            bool eof = false;
            const std::size_t n = read_now(d, &Connection::tls_read, eof);
            if (eof) {
                p.done = true;
                release(p);
                d == 0 ? term_->client_closed() : term_->upstream_closed();
                shut_[d] = true;  // FIN on the other side once what it is owed is written
                tls_flush();
                return;
            }
            if (n == 0) return;  // waiting, or reset
            p.offset += n;
            const Bytes in(p.buf->data(), n);
            const bool ok = d == 0 ? term_->from_client(in) : term_->from_upstream(in);
            if (!ok) {
                spdlog::warn("conn {} {} -> {}: TLS: {}; connection closed", id_,
                             to_string(flow_.client), to_string(flow_.server), term_->error());
                finish(CloseReason::Rst, "TLS error");
                return;
            }
            tls_flush();
        }
        w_.loop.defer([self = shared_from_this(), d] {
            if (!self->closed_) self->tls_read(d);
        });
    }

    /// Starts a write of what the terminator queued for each socket, unless one is in flight;
    /// passes on a FIN once a side's queue is empty; ends the connection when both sides are
    /// done and everything is written.
    void tls_flush() {
        for (int s = 0; s < 2; ++s) {
            auto& out = s == 0 ? term_->to_upstream() : term_->to_client();
            if (writing_[s]) continue;
            if (!out.empty()) {
                wbuf_[s].clear();
                std::swap(wbuf_[s], out);
                writing_[s] = true;
                tls_write(s, 0);
            } else if (shut_[s] && !shut_sent_[s]) {
                // The direction that feeds socket s has ended: half-close it.
                shut_sent_[s] = true;
                ::shutdown(sock(s).fd(), SHUT_WR);
            }
        }
        if (pumps_[0].done && pumps_[1].done && !writing_[0] && !writing_[1])
            finish(CloseReason::Fin, "closed by both sides");
    }

    /// Writes wbuf_[s] from `from` on, waiting for the socket as needed; tls_wrote(s) runs
    /// after the last byte, never from within this call (tls_flush walks both sockets).
    void tls_write(int s, std::size_t from) {
        const auto& out = wbuf_[s];
        while (from < out.size()) {
            const ssize_t sent = send_now(sock(s).fd(), out.data() + from, out.size() - from);
            if (sent < 0 && would_block(errno)) {
                sock(s).wait(Sock::Wait::Write, [self = shared_from_this(), s, from] {
                    if (!self->closed_) self->tls_write(s, from);
                });
                return;
            }
            if (sent < 0) {
                finish(CloseReason::Rst,
                       s == 0 ? "upstream gone on write" : "client gone on write");
                return;
            }
            from += static_cast<std::size_t>(sent);
        }
        w_.loop.defer([self = shared_from_this(), s] {
            if (!self->closed_) self->tls_wrote(s);
        });
    }

    void tls_wrote(int s) {
        writing_[s] = false;
        tls_flush();
        if (closed_) return;
        // Direction s feeds socket s (0: client -> upstream, 1: upstream -> client).
        if (paused_[s]) {
            paused_[s] = false;
            tls_read(s);
        }
    }

    Proxy::Impl& px_;
    Worker& w_;
    Sock client_;
    Sock upstream_;
    int client_fd_ = -1;        ///< the accepted socket until start() hands it to client_
    tcp::endpoint connecting_;  ///< the target of the connect in progress
    const std::vector<tcp::endpoint>* targets_ = nullptr;  ///< explicit: the listener's
    tcp::endpoint original_dst_;                           ///< transparent
    Clock::time_point deadline_{};                         ///< of the connect
    const Listener& listener_;
    const std::uint64_t id_;
    FlowKey flow_;
    Endpoint proxy_local_;
    Pump pumps_[2];
    bool connected_ = false;
    bool timed_out_ = false;
    bool closed_ = false;
    Clock::time_point last_;
    TapWriter tapw_;  ///< the copies to the analysis thread
    // --tls-terminate only
    std::unique_ptr<TermTap> term_tap_;
    std::unique_ptr<TlsTerminator> term_;
    std::uint64_t leg_offset_[2] = {0, 0};       ///< client leg, per direction
    std::uint64_t upstream_offset_[2] = {0, 0};  ///< upstream leg, per direction
    std::vector<std::uint8_t> wbuf_[2];          ///< in flight to the upstream [0] / client [1]
    bool writing_[2] = {false, false};
    bool paused_[2] = {false, false};
    bool shut_[2] = {false, false};  ///< FIN owed to the upstream [0] / client [1]
    bool shut_sent_[2] = {false, false};
};

std::optional<tcp::endpoint> resolve_one(const HostPort& hp, std::string& err) {
    asio::io_context io;
    tcp::resolver r(io);
    error_code ec;
    const auto results =
        r.resolve(hp.host, std::to_string(hp.port), tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
        err = hp.str() + ": cannot resolve: " + (ec ? ec.message() : "no address");
        return std::nullopt;
    }
    return results.begin()->endpoint();
}

}  // namespace

bool resolve_upstreams(ProxyOptions& options, std::string& err) {
    for (auto& route : options.routes) {
        if (route.mode != RouteMode::Explicit || !route.upstream_addresses.empty()) continue;
        asio::io_context io;
        tcp::resolver r(io);
        error_code ec;
        const auto results = r.resolve(route.upstream.host, std::to_string(route.upstream.port),
                                       tcp::resolver::numeric_service, ec);
        if (ec || results.empty()) {
            err = "upstream " + route.upstream.str() +
                  ": cannot resolve: " + (ec ? ec.message() : "no address");
            return false;
        }
        for (const auto& e : results)
            route.upstream_addresses.push_back(e.endpoint().address().to_string());
    }
    return true;
}

bool Proxy::Impl::start(std::string& err) {
    if (std::string v = validate(opt); !v.empty()) {
        err = v;
        return false;
    }
    if (!resolve_upstreams(opt, err)) return false;
    if (opt.tls.terminate) {
        std::vector<std::string> names;
        for (const auto& r : opt.routes)
            if (r.mode == RouteMode::Explicit &&
                std::find(names.begin(), names.end(), r.upstream.host) == names.end())
                names.push_back(r.upstream.host);
        tls = TlsContexts::make(opt.tls, names, err);
        if (!tls) return false;
    }
    unsigned n = opt.threads ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) {
        workers.push_back(std::make_unique<Worker>(blocks, copy_blocks));
        if (!workers.back()->loop.ok()) {
            err = "I/O thread: " + workers.back()->loop.error();
            return false;
        }
    }
    listeners.reserve(opt.routes.size());  // connections keep references to their listener
    for (const auto& route : opt.routes) {
        Listener l;
        l.route = route;
        if (route.mode == RouteMode::Explicit) {
            for (const auto& a : route.upstream_addresses) {
                error_code ec;
                const auto addr = asio::ip::make_address(a, ec);
                if (ec) {
                    err = "upstream " + route.upstream.str() + ": bad address " + a;
                    return false;
                }
                l.upstream.emplace_back(addr, route.upstream.port);
            }
        }
        auto at = resolve_one(route.listen, err);
        if (!at) {
            err = "listen " + err;
            return false;
        }
        if (!bind_listener(l, *at, err)) return false;
        listeners.push_back(std::move(l));
    }
    accepting = true;
    for (auto& l : listeners)
        for (auto& a : l.acceptors) {
            Listener::Acceptor* ap = a.get();
            ap->ready = [this, &l, ap] { accept(l, *ap); };
            if (!ap->worker->loop.add(ap->fd, ap, EPOLLIN)) {
                err = "listen " + l.route.listen.str() + ": epoll_ctl: " + std::strerror(errno);
                return false;
            }
        }
    for (auto& w : workers) {
        sweep(*w);
        Worker* wp = w.get();
        wp->thread = std::thread([wp] { wp->loop.run(); });
    }
    analysis = std::thread([this] { analysis_loop(); });
    started = true;
    return true;
}

/// An accepted socket on its way to another thread: closed, and counted out of the proxy's open
/// connections and that thread's load, if it never gets there (the proxy stopped first).
struct Proxy::Impl::HandedSocket {
    HandedSocket(Impl& p, Worker& w, int f) : px(p), worker(w), fd(f) {}
    HandedSocket(const HandedSocket&) = delete;
    HandedSocket& operator=(const HandedSocket&) = delete;
    ~HandedSocket() {
        if (arrived) return;
        if (fd >= 0) ::close(fd);
        px.open.fetch_sub(1, std::memory_order_relaxed);
        if (px.metrics) px.metrics->connections_open.fetch_sub(1, std::memory_order_relaxed);
        worker.serving.fetch_sub(1, std::memory_order_relaxed);
    }
    Impl& px;
    Worker& worker;
    int fd;
    bool arrived = false;  ///< a Connection owns the descriptor
};

void Proxy::Impl::accept(Listener& l, Listener::Acceptor& a) {
    // Level-triggered: what is left after this round's share is reported again.
    for (int i = 0; i < 64 && accepting && a.fd >= 0; ++i) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        const int fd =
            ::accept4(a.fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            const int e = errno;
            if (would_block(e)) return;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
            const bool no_fds = e == EMFILE || e == ENFILE || e == ENOMEM || e == ENOBUFS;
            spdlog::warn("listener {}: accept failed: {}{}", l.route.listen.str(), std::strerror(e),
                         no_fds ? " (pausing 100 ms; raise the open-files limit, ulimit -n)" : "");
            if (!no_fds) return;
            // Out of the loop for a while: level-triggered, it would report the same
            // connection again at once.
            a.worker->loop.remove(a.fd);
            a.worker->loop.at(Loop::Clock::now() + std::chrono::milliseconds(100), [this, &a] {
                if (accepting && a.fd >= 0) a.worker->loop.add(a.fd, &a, EPOLLIN);
            });
            return;
        }
        const auto peer = from_sockaddr(ss);
        if (!peer) {
            ::close(fd);
            continue;
        }
        if (open.load(std::memory_order_relaxed) >= opt.max_connections) {
            refused.fetch_add(1, std::memory_order_relaxed);
            if (metrics) metrics->connections_refused.fetch_add(1, std::memory_order_relaxed);
            reset_on_close(fd);
            ::close(fd);
            spdlog::warn("listener {}: connection refused: --max-connections {} reached",
                         l.route.listen.str(), opt.max_connections);
            continue;
        }
        open.fetch_add(1, std::memory_order_relaxed);
        total.fetch_add(1, std::memory_order_relaxed);
        if (metrics) {
            metrics->connections_open.fetch_add(1, std::memory_order_relaxed);
            metrics->connections_total.fetch_add(1, std::memory_order_relaxed);
        }
        // The kernel spreads connections over the threads' listening sockets by a hash of their
        // addresses: a few long ones (a linked server's, a bulk load) may all land on one thread
        // while the other idles. When this thread serves two or more connections more than the
        // least busy one, that one takes this connection (rare with many short connections).
        Worker* to = a.worker;
        for (const auto& w : workers)
            if (w->serving.load(std::memory_order_relaxed) <
                to->serving.load(std::memory_order_relaxed))
                to = w.get();
        if (to != a.worker && a.worker->serving.load(std::memory_order_relaxed) <
                                  to->serving.load(std::memory_order_relaxed) + 2)
            to = a.worker;
        to->serving.fetch_add(1, std::memory_order_relaxed);
        if (to == a.worker) {
            std::make_shared<Connection>(*this, *to, fd, *peer, l)->start();
            continue;
        }
        handed_over.fetch_add(1, std::memory_order_relaxed);
        auto handed = std::make_shared<HandedSocket>(*this, *to, fd);
        to->loop.post([this, handed, peer = *peer, &l] {
            handed->arrived = true;
            std::make_shared<Connection>(*this, handed->worker, std::exchange(handed->fd, -1), peer,
                                         l)
                ->start();
        });
    }
}

bool Proxy::Impl::bind_listener(Listener& l, const tcp::endpoint& at, std::string& err) {
    const bool shared = workers.size() > 1;
    const auto fail = [&](const error_code& ec) {
        err = "listen " + l.route.listen.str() + ": " + ec.message();
        if (ec == asio::error::access_denied)
            err +=
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE; transparent "
                "TPROXY needs CAP_NET_ADMIN)";
        if (ec == asio::error::address_in_use) err += " (is another proxy listening there?)";
        return false;
    };
    const auto open_bound = [&](tcp::acceptor& acc, const tcp::endpoint& where, bool reuse_port,
                                error_code& ec) {
        acc.open(where.protocol(), ec);
        if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
        const int one = 1;
        if (!ec && reuse_port &&
            setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
            ec.assign(errno, boost::system::system_category());
        if (!ec && l.route.tproxy) {
            const bool v6 = where.address().is_v6();
            // IP_TRANSPARENT (19) / IPV6_TRANSPARENT (75): accept connections TPROXY hands us
            // for addresses that are not ours. Needs CAP_NET_ADMIN.
            if (setsockopt(acc.native_handle(), v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? 75 : 19, &one,
                           sizeof one) != 0)
                ec.assign(errno, boost::system::system_category());
        }
        // Accepted sockets inherit TCP_NODELAY from the listening one (Linux copies the
        // listener's TCP state into each child): one system call per connection fewer.
        if (!ec && setsockopt(acc.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            ec.assign(errno, boost::system::system_category());
        if (!ec) acc.bind(where, ec);
    };
    error_code ec;
    tcp::endpoint where = at;
    if (shared) {
        // SO_REUSEPORT would let these sockets share the address with another process of the
        // same user (a second proxy started by mistake) without an error: a plain bind first
        // says whether the address is free, and fixes the port when 0 was asked for.
        asio::io_context io;
        tcp::acceptor probe(io);
        open_bound(probe, at, false, ec);
        if (ec) return fail(ec);
        where = probe.local_endpoint(ec);
        if (ec) return fail(ec);
    }
    // Asio opens and binds; the descriptors then belong to the I/O threads' loops.
    asio::io_context io;
    for (auto& w : workers) {
        auto a = std::make_unique<Listener::Acceptor>();
        a->worker = w.get();
        tcp::acceptor acc(io);
        open_bound(acc, where, shared, ec);
        if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
        if (!ec && l.acceptors.empty()) l.bound = acc.local_endpoint(ec);
        if (!ec) a->fd = acc.release(ec);
        if (!ec && ::fcntl(a->fd, F_SETFL, ::fcntl(a->fd, F_GETFL) | O_NONBLOCK) != 0)
            ec.assign(errno, boost::system::system_category());
        if (ec) return fail(ec);
        l.acceptors.push_back(std::move(a));
        if (!shared) break;
    }
    return true;
}

void Proxy::Impl::sweep(Worker& w) {
    // Often enough that a timeout ends within a quarter of its length (and 250 ms).
    auto period = std::chrono::milliseconds(250);
    for (const auto t : {opt.connect_timeout, opt.idle_timeout})
        if (t.count() > 0) period = std::min(period, std::max(t / 4, std::chrono::milliseconds(5)));
    w.loop.at(Loop::Clock::now() + period, [this, &w] {
        if (w.stopping) return;
        const auto at = Clock::now();
        std::vector<std::shared_ptr<Connection>> all(w.conns.begin(), w.conns.end());
        for (const auto& c : all)
            c->check_timeouts(at);
        sweep(w);
    });
}

namespace {

/// The calling thread's niceness raised by `add` (to 19 at most). On Linux a thread's niceness
/// is its own (setpriority on its id).
void lower_own_priority(int add) {
    if (add <= 0) return;
    const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
    errno = 0;
    const int base = ::getpriority(PRIO_PROCESS, tid);
    if (errno != 0 || ::setpriority(PRIO_PROCESS, tid, std::min(19, base + add)) != 0)
        spdlog::debug("analysis thread: cannot lower its priority: {}", std::strerror(errno));
}

bool set_own_policy(int policy) {
    const sched_param none{};
    return ::sched_setscheduler(0, policy, &none) == 0;  // 0: the calling thread
}

/// Whether a thread at the calling thread's niceness may go to idle priority and come back.
/// Leaving SCHED_IDLE takes root, CAP_SYS_NICE or an RLIMIT_NICE that allows the niceness (and
/// in a user namespace the capability may show yet not count), so a throwaway thread tries it:
/// the same check by the kernel itself, and a thread that stays stuck at idle priority is not
/// the analysis.
bool may_leave_idle() {
    bool ok = false;
    try {
        std::thread probe([&] {  // at the caller's niceness, as threads inherit it
            ok = set_own_policy(SCHED_IDLE) && set_own_policy(SCHED_OTHER);
        });
        probe.join();
    } catch (const std::system_error& e) {  // no thread to spare: keep the niceness
        spdlog::debug("analysis thread: cannot probe idle priority: {}", e.what());
        return false;
    }
    return ok;
}

}  // namespace

void Proxy::Impl::analysis_loop() {
    // The forwarding must not wait for the analysis: the analysis catches up from the tap's
    // queue (it drops, and reports a gap, only when that is full).
    //
    // While the queue is short the thread runs at idle priority (SCHED_IDLE): an I/O thread
    // that wakes on its core takes the core at once, where a merely nicer thread keeps it to the
    // end of its slice (the added latency's p99, 1 KiB -> 4 KiB exchanges, both proxies in one
    // run: 1.24-1.25 of haproxy's at niceness 10 alone, 0.86-1.24 at idle priority;
    // docs/performance.md). Idle priority gets a core only when nothing
    // else wants it, so when a batch it takes is over an eighth of the queue's budget (the cores
    // were busy for long) the thread goes back to SCHED_OTHER at its niceness to catch up, and
    // to idle again once a batch is below a 64th. Where the process may not leave SCHED_IDLE it
    // stays at its niceness throughout.
    lower_own_priority(opt.analysis_nice);
    const bool may_idle = opt.analysis_idle && may_leave_idle();
    bool idle = may_idle && set_own_policy(SCHED_IDLE);
    const std::uint64_t raise_at = opt.tap_queue_bytes / 8;
    const std::uint64_t idle_below = opt.tap_queue_bytes / 64;
    std::vector<TapItem> batch;
    auto next_tick = Clock::now() + std::chrono::seconds(1);
    for (;;) {
        // After a batch, nap 5 ms at idle priority (else 2 ms) to gather the next; when there was
        // nothing, sleep until an item comes.
        // Longer naps make larger batches, cheaper per login (10 ms: 10-12 us of this thread's
        // CPU per TDS login at full load against 14-17 us at 2 ms) and fewer wake-ups on the
        // cores the I/O threads want. At niceness 10 a larger batch held a core too long (the
        // added latency's p99 1.3-2.5 of haproxy's at 10 ms); at idle priority the I/O threads
        // take it back at once, and 5 ms gave the steadiest p99 (both proxies in one run,
        // three times: 0.92-0.98 at 5 ms, 0.97-1.21 at 2 ms, 0.86-1.04 at 10 ms).
        const bool busy = !batch.empty();
        const auto nap = std::chrono::milliseconds(idle ? 5 : 2);
        const bool more =
            busy ? tap.drain(batch, nap, true) : tap.drain(batch, std::chrono::milliseconds(250));
        if (may_idle) {
            const std::uint64_t behind = tap.drained_bytes();
            if (idle && behind > raise_at) {
                idle = !set_own_policy(SCHED_OTHER);
                if (!idle) analysis_raised.fetch_add(1, std::memory_order_relaxed);
            } else if (!idle && behind < idle_below) {
                idle = set_own_policy(SCHED_IDLE);
            }
        }
        for (auto& item : batch)
            dispatcher.dispatch(item);
        if (Clock::now() >= next_tick) {
            next_tick = Clock::now() + std::chrono::seconds(1);
            if (hooks.tick) hooks.tick(now());
        }
        if (hooks.after_batch) hooks.after_batch();
        if (!more) break;
    }
    if (hooks.finish) hooks.finish(now());
}

void Proxy::Impl::stop_accepting() {
    if (!accepting.exchange(false)) return;
    if (workers.empty()) return;
    // Each listening socket is closed on the thread that serves it.
    for (auto& w : workers) {
        std::promise<void> done;
        auto f = done.get_future();
        Worker* wp = w.get();
        wp->loop.post([this, wp, &done] {
            for (auto& l : listeners)
                for (auto& a : l.acceptors) {
                    if (a->worker != wp || a->fd < 0) continue;
                    ::close(a->fd);  // leaves the loop with it
                    a->fd = -1;
                }
            done.set_value();
        });
        f.wait();
    }
}

void Proxy::Impl::shutdown(std::chrono::milliseconds grace) {
    if (!started || stopped) return;
    stopped = true;
    stop_accepting();
    const auto until = Clock::now() + grace;
    while (open.load() > 0 && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto left = open.load();
    if (left > 0)
        spdlog::info("closing {} connection{} still open after the grace period", left,
                     left == 1 ? "" : "s");
    for (auto& w : workers) {
        Worker* wp = w.get();
        wp->loop.post([wp] {
            wp->stopping = true;
            const auto conns = wp->conns;  // finish() erases from the set
            for (const auto& c : conns)
                c->finish(CloseReason::EndOfInput, "proxy stopping");
        });
        wp->loop.stop();
    }
    for (auto& w : workers)
        if (w->thread.joinable()) w->thread.join();
    tap.close();
    if (analysis.joinable()) analysis.join();
}

Proxy::Proxy(ProxyOptions options, AnalysisHooks hooks, Metrics* metrics)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(hooks), metrics)) {}

Proxy::~Proxy() {
    shutdown(std::chrono::milliseconds(0));
}

bool Proxy::start(std::string& err) {
    if (impl_->started) {
        err = "already started";
        return false;
    }
    if (impl_->start(err)) return true;
    // Nothing was started: threads only start after every listener is bound.
    impl_->accepting = false;
    impl_->listeners.clear();
    impl_->workers.clear();
    return false;
}

std::vector<Endpoint> Proxy::listen_endpoints() const {
    std::vector<Endpoint> out;
    for (const auto& l : impl_->listeners)
        out.push_back(to_endpoint(l.bound));
    return out;
}

void Proxy::stop_accepting() {
    impl_->stop_accepting();
}

void Proxy::shutdown(std::chrono::milliseconds grace) {
    impl_->shutdown(grace);
}

const TlsContexts* Proxy::tls() const {
    return impl_->tls.get();
}

ProxyStats Proxy::stats() const {
    ProxyStats s;
    s.connections_open = impl_->open.load();
    s.connections_total = impl_->total.load();
    s.connections_refused = impl_->refused.load();
    s.upstream_connect_failures = impl_->connect_failures.load();
    s.tapped_connections = impl_->tapped.load();
    for (const auto& w : impl_->workers)
        s.connections_per_thread.push_back(w->serving.load());
    s.handed_over = impl_->handed_over.load();
    s.analysis_raised = impl_->analysis_raised.load();
    s.tap = impl_->tap.stats();
    return s;
}

}  // namespace hopscope::proxy
