// The forwarding threads' event loop: one edge-triggered epoll instance per thread, each socket
// registered once for reading and writing, and readiness remembered per socket.
//
// Why by hand and not Asio: a proxied TDS login is a dozen short turns, and what a turn costs is
// its system calls. Asio 1.74 (Debian 12) re-arms a socket with epoll_ctl for every wait (4.5
// per login), makes each socket non-blocking with its own ioctl (no accept4), and deletes an
// accepted socket from its epoll set before closing it. Here a socket is added once; a wait
// either finds the edge that already came or parks until the next one; a read that did not fill
// its buffer is not repeated to see EAGAIN (new bytes raise a new edge); sockets are born
// non-blocking. tools/bench/hopscope-minifwd, the same loop with nothing else, used 117-127 us
// of CPU per proxied TDS login where haproxy used 166-180 us and the Asio-based proxy without
// its tap 128-168 us (docs/performance.md).
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hopscope::proxy {

class Loop {
  public:
    using Clock = std::chrono::steady_clock;
    using Fn = std::function<void()>;

    /// Something registered with the loop: told which events came for its descriptor.
    struct Watch {
        virtual ~Watch() = default;
        virtual void on_events(std::uint32_t events) = 0;
    };

    Loop();
    ~Loop();
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;
    /// Whether the epoll instance and the wake-up descriptor were made; `error` says why not.
    [[nodiscard]] bool ok() const { return ep_ >= 0 && wake_fd_ >= 0; }
    [[nodiscard]] const std::string& error() const { return error_; }

    /// Registers `fd` for `events` (EPOLLET is the caller's choice); false with errno set.
    bool add(int fd, Watch* w, std::uint32_t events);
    bool remove(int fd);

    /// Runs `fn` on this loop's thread after the events being handled (this thread only).
    void defer(Fn fn) { deferred_.push_back(std::move(fn)); }
    /// Runs `fn` on this loop's thread soon (any thread).
    void post(Fn fn);
    /// Runs `fn` on this loop's thread once `at` has come (this thread only).
    void at(Clock::time_point when, Fn fn);
    /// Keeps `p` alive until the events being handled are done: a connection that finishes
    /// may still be named by an event of the same batch.
    void retire(std::shared_ptr<void> p) { retired_.push_back(std::move(p)); }

    /// Handles events until stop(); then returns once nothing is deferred.
    void run();
    /// Makes run() return (any thread).
    void stop();

  private:
    struct Timer {
        Clock::time_point when;
        std::uint64_t seq;
        Fn fn;
    };
    struct Wake final : Watch {
        explicit Wake(Loop& l) : loop(l) {}
        Loop& loop;
        void on_events(std::uint32_t events) override;
    };
    void run_posted();
    int timeout_ms() const;
    void run_timers();

    int ep_ = -1;
    int wake_fd_ = -1;
    std::string error_;
    Wake wake_{*this};
    std::vector<Fn> deferred_;
    std::vector<Fn> running_;
    std::vector<std::shared_ptr<void>> retired_;
    std::vector<Timer> timers_;  ///< a heap on `when`, then `seq`
    std::uint64_t timer_seq_ = 0;
    std::mutex mu_;
    std::vector<Fn> posted_;
    std::atomic<bool> stopping_{false};
};

/// A non-blocking stream socket on a Loop, owning its descriptor. Waits are one-shot: wait()
/// runs its callback once the socket is (or has become, since the last wait that completed)
/// ready. An error or hang-up completes both kinds of wait; the next system call on the socket
/// says what happened.
class Sock final : public Loop::Watch {
  public:
    enum class Wait : std::uint8_t { Read, Write };
    using Done = std::function<void()>;

    explicit Sock(Loop& loop) : loop_(loop) {}
    ~Sock() override;
    Sock(const Sock&) = delete;
    Sock& operator=(const Sock&) = delete;

    /// Takes `fd` (non-blocking, connected or connecting) and registers it; false (and the
    /// descriptor closed, errno kept) when it cannot be registered.
    bool adopt(int fd);
    [[nodiscard]] int fd() const { return fd_; }
    /// An error or hang-up was reported for the socket (the next system call says which).
    [[nodiscard]] bool failed() const { return failed_; }
    /// Closes the descriptor (which leaves the epoll set with it); pending waits never run.
    void close();
    void wait(Wait what, Done done);
    /// The caller is about to read (or write) until the socket says it would block, or has
    /// just done so: an edge that came before is covered by that and no longer makes a wait
    /// complete at once (it would cost a system call that finds nothing).
    void took(Wait what) { ready_[what == Wait::Read ? 0 : 1] = false; }

    void on_events(std::uint32_t events) override;

  private:
    Loop& loop_;
    int fd_ = -1;
    bool ready_[2] = {false, false};  ///< an edge came that no wait has taken yet
    /// The peer ended its stream (or the socket failed): reads complete at once from now on, so
    /// the end is read even when it came with the last bytes, in one edge.
    bool read_end_ = false;
    bool failed_ = false;  ///< error or hang-up: writes complete at once from now on
    Done waiting_[2];
};

}  // namespace hopscope::proxy
