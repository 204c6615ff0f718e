// hopscope-minifwd: the floor for forwarding on this machine - the least a TCP proxy does per
// connection, measured by proxy-vs-haproxy --stand-in minifwd. One epoll instance per thread,
// each socket registered once, edge-triggered (EPOLLIN | EPOLLOUT | EPOLLRDHUP): no system call
// to wait again after a read, none to make a socket non-blocking (accept4 and socket with
// SOCK_NONBLOCK), a read that did not fill the buffer is not repeated to see EAGAIN (the next
// bytes raise a new edge). Byte-exact and in order, with half-close, resets passed on as
// resets, and backpressure (a direction whose writer is blocked reads no more); nothing else:
// no tap, no timeouts, no limits, IPv4 loopback only. Not part of the product.
//
// usage: hopscope-minifwd LISTEN_PORT UPSTREAM_PORT [THREADS]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

struct Conn;
struct Side {
    Conn* conn = nullptr;
    int fd = -1;
    int index = 0;  ///< 0: the client, 1: the upstream
};
struct Conn {
    Side side[2];
    bool eof[2] = {false, false};  ///< end of stream read from side i
    std::vector<char> pending[2];  ///< bytes still to be written to side i
    bool closed = false;
};

sockaddr_in upstream{};
int listen_port = 0;
constexpr std::size_t kBuffer = 65536;

struct Loop {
    int ep = -1;
    std::vector<Conn*> dead;  ///< freed after the batch of events that may still name them
    std::vector<char> buf = std::vector<char>(kBuffer);

    void close_conn(Conn* c, bool reset) {
        if (c->closed) return;
        c->closed = true;
        for (Side& s : c->side) {
            if (s.fd < 0) continue;
            if (reset) {
                const linger l{1, 0};
                setsockopt(s.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            }
            close(s.fd);  // also leaves the epoll set
            s.fd = -1;
        }
        dead.push_back(c);
    }

    /// Forwards what side i has to the other side; false when the connection ended.
    bool pump(Conn* c, int i) {
        const int o = 1 - i;
        if (c->eof[i] || !c->pending[o].empty()) return true;  // ended, or waiting for the writer
        for (;;) {
            const ssize_t n = recv(c->side[i].fd, buf.data(), buf.size(), 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) return true;
                close_conn(c, true);
                return false;
            }
            if (n == 0) {
                c->eof[i] = true;
                if (c->eof[o]) {
                    close_conn(c, false);
                    return false;
                }
                shutdown(c->side[o].fd, SHUT_WR);
                return true;
            }
            ssize_t w = send(c->side[o].fd, buf.data(), static_cast<std::size_t>(n), MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) {
                close_conn(c, true);
                return false;
            }
            if (w < 0) w = 0;
            if (w < n) {
                c->pending[o].assign(buf.data() + w, buf.data() + n);
                return true;
            }
            if (static_cast<std::size_t>(n) < buf.size()) return true;
        }
    }

    /// Side i can take bytes again: the rest of what it was owed, then the other side's reads.
    bool flush(Conn* c, int i) {
        auto& p = c->pending[i];
        if (p.empty()) return true;
        const ssize_t w = send(c->side[i].fd, p.data(), p.size(), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            close_conn(c, true);
            return false;
        }
        if (w > 0) p.erase(p.begin(), p.begin() + w);
        if (!p.empty()) return true;
        if (c->eof[1 - i]) {
            shutdown(c->side[i].fd, SHUT_WR);
            return true;
        }
        return pump(c, 1 - i);
    }

    void accept_all(int ls) {
        const int one = 1;
        for (;;) {
            const int cfd = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (cfd < 0) return;
            const int ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (ufd < 0) {
                close(cfd);
                continue;
            }
            setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(ufd, reinterpret_cast<const sockaddr*>(&upstream), sizeof upstream) != 0 &&
                errno != EINPROGRESS) {
                close(cfd);
                close(ufd);
                continue;
            }
            auto* c = new Conn;
            c->side[0] = Side{c, cfd, 0};
            c->side[1] = Side{c, ufd, 1};
            for (Side& s : c->side) {
                epoll_event e{};
                e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
                e.data.ptr = &s;
                epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &e);
            }
        }
    }

    void run() {
        ep = epoll_create1(EPOLL_CLOEXEC);
        const int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const int one = 1;
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        setsockopt(ls, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // inherited when accepted
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(listen_port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (ep < 0 || ls < 0 || bind(ls, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
            listen(ls, 4096) != 0) {
            std::perror("hopscope-minifwd: listen");
            std::exit(1);
        }
        epoll_event lev{};
        lev.events = EPOLLIN;
        lev.data.ptr = nullptr;
        epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
        std::vector<epoll_event> evs(256);
        for (;;) {
            for (Conn* c : dead)
                delete c;
            dead.clear();
            const int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), -1);
            for (int k = 0; k < n; ++k) {
                if (evs[k].data.ptr == nullptr) {
                    accept_all(ls);
                    continue;
                }
                auto* s = static_cast<Side*>(evs[k].data.ptr);
                Conn* c = s->conn;
                const std::uint32_t e = evs[k].events;
                if (c->closed) continue;
                if ((e & EPOLLERR) != 0) {
                    close_conn(c, true);
                    continue;
                }
                if ((e & EPOLLOUT) != 0 && !flush(c, s->index)) continue;
                if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0) pump(c, s->index);
            }
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fputs("usage: hopscope-minifwd LISTEN_PORT UPSTREAM_PORT [THREADS]\n", stderr);
        return 2;
    }
    listen_port = std::atoi(argv[1]);
    upstream.sin_family = AF_INET;
    upstream.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[2])));
    upstream.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int threads = argc > 3 ? std::max(1, std::atoi(argv[3])) : 2;
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i)
        pool.emplace_back([] { Loop().run(); });
    for (auto& t : pool)
        t.join();
}
