#include "loop.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

namespace hopscope::proxy {

namespace {
bool later(const auto& a, const auto& b) {
    return a.when != b.when ? a.when > b.when : a.seq > b.seq;
}
}  // namespace

Loop::Loop() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
        error_ = std::string("epoll_create1: ") + std::strerror(errno);
        return;
    }
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) {
        error_ = std::string("eventfd: ") + std::strerror(errno);
        return;
    }
    if (!add(wake_fd_, &wake_, EPOLLIN)) {
        error_ = std::string("epoll_ctl: ") + std::strerror(errno);
        ::close(wake_fd_);
        wake_fd_ = -1;
    }
}

Loop::~Loop() {
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (ep_ >= 0) ::close(ep_);
}

bool Loop::add(int fd, Watch* w, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = w;
    return ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool Loop::remove(int fd) {
    epoll_event ev{};
    return ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, &ev) == 0;
}

void Loop::post(Fn fn) {
    bool first = false;
    {
        std::lock_guard lock(mu_);
        first = posted_.empty();
        posted_.push_back(std::move(fn));
    }
    // One wake-up for however many tasks are posted before the loop takes them.
    if (first) {
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
    }
}

void Loop::stop() {
    stopping_.store(true, std::memory_order_release);
    post([] {});
}

void Loop::at(Clock::time_point when, Fn fn) {
    timers_.push_back(Timer{when, timer_seq_++, std::move(fn)});
    std::push_heap(timers_.begin(), timers_.end(),
                   [](const Timer& a, const Timer& b) { return later(a, b); });
}

void Loop::Wake::on_events(std::uint32_t) {
    std::uint64_t n = 0;
    [[maybe_unused]] const ssize_t r = ::read(loop.wake_fd_, &n, sizeof n);
    loop.run_posted();
}

void Loop::run_posted() {
    {
        std::lock_guard lock(mu_);
        running_.swap(posted_);
    }
    for (auto& fn : running_)
        fn();
    running_.clear();
}

int Loop::timeout_ms() const {
    if (!deferred_.empty()) return 0;
    if (timers_.empty()) return -1;
    const auto left = timers_.front().when - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    // Rounded up: a timer never runs before its time.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<int>(std::min<std::int64_t>(ms, 60'000));
}

void Loop::run_timers() {
    const auto now = Clock::now();
    const auto cmp = [](const Timer& a, const Timer& b) { return later(a, b); };
    while (!timers_.empty() && timers_.front().when <= now) {
        std::pop_heap(timers_.begin(), timers_.end(), cmp);
        Fn fn = std::move(timers_.back().fn);
        timers_.pop_back();
        fn();
    }
}

void Loop::run() {
    epoll_event events[128];
    std::vector<Fn> now;
    for (;;) {
        try {
            const int n = ::epoll_wait(ep_, events, 128, timeout_ms());
            if (n < 0 && errno != EINTR) {
                spdlog::error("I/O thread: epoll_wait: {}", std::strerror(errno));
                return;
            }
            for (int i = 0; i < n; ++i)
                static_cast<Watch*>(events[i].data.ptr)->on_events(events[i].events);
            // What was deferred so far runs now; what that defers waits for the next round,
            // after the events that came meanwhile (the others' turn).
            now.swap(deferred_);
            for (auto& fn : now)
                fn();
            now.clear();
            run_timers();
            retired_.clear();
            if (stopping_.load(std::memory_order_acquire) && deferred_.empty()) {
                run_posted();
                if (deferred_.empty()) return;
            }
        } catch (const std::exception& e) {
            // A handler threw (allocation failure): log, keep serving the others.
            spdlog::error("I/O thread: {}", e.what());
            now.clear();
            retired_.clear();
        }
    }
}

Sock::~Sock() {
    if (fd_ >= 0) ::close(fd_);
}

bool Sock::adopt(int fd) {
    close();
    fd_ = fd;
    ready_[0] = ready_[1] = false;
    read_end_ = failed_ = false;
    if (!loop_.add(fd, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)) {
        const int e = errno;
        ::close(fd);
        fd_ = -1;
        errno = e;
        return false;
    }
    return true;
}

void Sock::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ready_[0] = ready_[1] = false;
    read_end_ = failed_ = false;
    waiting_[0] = nullptr;
    waiting_[1] = nullptr;
}

void Sock::wait(Wait what, Done done) {
    const int i = what == Wait::Read ? 0 : 1;
    if (ready_[i] || (i == 0 ? read_end_ : failed_)) {
        // The edge came before this wait: taken now, so the next wait parks until a new one.
        ready_[i] = false;
        loop_.defer(std::move(done));
        return;
    }
    waiting_[i] = std::move(done);
}

void Sock::on_events(std::uint32_t events) {
    if (fd_ < 0) return;  // closed while this batch of events was on its way
    const bool failed = (events & (EPOLLERR | EPOLLHUP)) != 0;
    if (failed) failed_ = true;
    if (failed || (events & EPOLLRDHUP) != 0) read_end_ = true;
    const bool want[2] = {failed || (events & (EPOLLIN | EPOLLRDHUP)) != 0,
                          failed || (events & EPOLLOUT) != 0};
    for (int i = 0; i < 2; ++i) {
        if (!want[i]) continue;
        if (waiting_[i]) {
            Done done = std::move(waiting_[i]);
            waiting_[i] = nullptr;
            done();
            if (fd_ < 0) return;
        } else {
            ready_[i] = true;
        }
    }
}

}  // namespace hopscope::proxy
