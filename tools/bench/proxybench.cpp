// hopscope-proxybench: the servers and load generators of tools/bench/proxy-vs-haproxy.
//
//   serve    a TDS server on one port: PRELOGIN (no encryption), LOGIN7 (any SQL or integrated
//            login is accepted: LOGINACK), SQL batches answered by generated result sets
//            (COLMETADATA, ROW tokens, DONE) in the negotiated packet size. A connection whose
//            first byte is not a TDS client packet type is echoed instead (for bare TCP loads).
//   bulk     logs in with a packet size and reads one large result set: MB/s.
//   latency  logs in, then request/response exchanges of fixed wire sizes: percentiles; with a
//            baseline connection (direct to the server), alternating exchanges on both; with
//            --also, a second path measured in alternating blocks in the same run.
//   conns    connections per second from a few worker threads: bare TCP (connect, 64-byte echo,
//            close) or a full TDS login (PRELOGIN, LOGIN7, LOGINACK) per connection.
//   idle     opens N connections (each logged in, or one echo), then reads the resident memory of
//            the given processes (and their children) from /proc: KiB per connection.
//   scrape   GET /metrics from a Prometheus endpoint and sum the samples of one metric.
//   tls-serve  the same TDS server over TLS only, a thread per connection: TDS 7.x with full
//            encryption (PRELOGIN ENCRYPT_ON, the handshake inside PRELOGIN packets, then TLS
//            records) or TLS from the first byte (TDS 8.0 strict, plain TLS to a proxy).
//   tls-load connections logged in over TLS, then result sets read on all of them at once for
//            a fixed time: MB/s of TDS after the login phase.
//
// Loopback only: every address given must be in 127.0.0.0/8 or ::1. Every load is bounded in
// count and in time. Results are printed as one line of key=value pairs.
//
// Layouts follow [MS-TDS] 2.2.3.1 (packet header), 2.2.6.4 (LOGIN7), 2.2.6.5 (PRELOGIN), 2.2.6.7
// (SQLBatch), 2.2.7 (COLMETADATA, ROW, DONE); the lab's encoders (tools/lab/src/wire.hpp) build
// the PRELOGIN messages, the login reply tokens and the batch headers.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "wire.hpp"

namespace hopscope::bench {
namespace {

using lab::Buffer;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxPacket = 32767;

std::atomic<bool> g_stop{false};

void on_signal(int) {
    g_stop.store(true);
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------------
// Options: --name value pairs after the subcommand.
class Args {
  public:
    Args(int argc, char** argv, int first) {
        for (int i = first; i < argc; ++i) {
            std::string a = argv[i];
            if (a.rfind("--", 0) != 0 || i + 1 >= argc) {
                bad_ = a;
                return;
            }
            values_[a.substr(2)] = argv[++i];
        }
    }
    [[nodiscard]] const std::string& bad() const { return bad_; }
    [[nodiscard]] std::string str(const std::string& k, std::string def = {}) {
        used_.insert(k);
        const auto it = values_.find(k);
        return it == values_.end() ? def : it->second;
    }
    /// A non-negative number; `ok` becomes false on garbage.
    std::uint64_t num(const std::string& k, std::uint64_t def) {
        used_.insert(k);
        const auto it = values_.find(k);
        if (it == values_.end()) return def;
        char* end = nullptr;
        errno = 0;
        const unsigned long long v = std::strtoull(it->second.c_str(), &end, 10);
        if (errno != 0 || end == it->second.c_str() || *end != '\0' || it->second[0] == '-') {
            bad_ = "--" + k + " " + it->second;
            return def;
        }
        return v;
    }
    double real(const std::string& k, double def) {
        used_.insert(k);
        const auto it = values_.find(k);
        if (it == values_.end()) return def;
        char* end = nullptr;
        const double v = std::strtod(it->second.c_str(), &end);
        if (end == it->second.c_str() || *end != '\0' || !(v >= 0)) {
            bad_ = "--" + k + " " + it->second;
            return def;
        }
        return v;
    }
    /// The first option that was given but never asked for, or "".
    [[nodiscard]] std::string unknown() const {
        if (!bad_.empty()) return bad_;
        for (const auto& [k, v] : values_)
            if (!used_.contains(k)) return "--" + k;
        return {};
    }

  private:
    std::map<std::string, std::string> values_;
    std::set<std::string> used_;
    std::string bad_;
};

// ---------------------------------------------------------------------------------------------
// Addresses: numeric, loopback only.
struct Endpoint {
    sockaddr_storage addr{};
    socklen_t len = 0;
    int family = AF_INET;
};

std::optional<Endpoint> parse_endpoint(const std::string& s, std::string& err) {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || colon + 1 >= s.size()) {
        err = "expected ADDR:PORT, got '" + s + "'";
        return std::nullopt;
    }
    std::string host = s.substr(0, colon);
    const long port = std::strtol(s.c_str() + colon + 1, nullptr, 10);
    if (port <= 0 || port > 65535) {
        err = "bad port in '" + s + "'";
        return std::nullopt;
    }
    Endpoint ep;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        a.sin6_port = htons(static_cast<std::uint16_t>(port));
        if (inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1 ||
            !IN6_IS_ADDR_LOOPBACK(&a.sin6_addr)) {
            err = "only loopback addresses (127.0.0.0/8, [::1]) are allowed: '" + s + "'";
            return std::nullopt;
        }
        std::memcpy(&ep.addr, &a, sizeof a);
        ep.len = sizeof a;
        ep.family = AF_INET6;
        return ep;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1 ||
        (ntohl(a.sin_addr.s_addr) >> 24) != 127) {
        err = "only loopback addresses (127.0.0.0/8, [::1]) are allowed: '" + s + "'";
        return std::nullopt;
    }
    std::memcpy(&ep.addr, &a, sizeof a);
    ep.len = sizeof a;
    return ep;
}

const sockaddr* sa(const Endpoint& ep) {
    return reinterpret_cast<const sockaddr*>(&ep.addr);
}

void set_nodelay(int fd) {
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// A blocking client socket with send/receive timeouts, connected; -1 with errno on failure.
int connect_to(const Endpoint& ep, int timeout_s) {
    const int fd = socket(ep.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    timeval tv{};
    tv.tv_sec = timeout_s;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    set_nodelay(fd);
    if (connect(fd, sa(ep), ep.len) != 0) {
        const int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

bool write_all(int fd, const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}
bool write_all(int fd, const Buffer& b) {
    return write_all(fd, b.data(), b.size());
}

std::uint16_t be16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

// ---------------------------------------------------------------------------------------------
// Buffered reading of TDS packets on a blocking socket.
class Reader {
  public:
    explicit Reader(int fd, std::size_t capacity = 64 * 1024) : fd_(fd), buf_(capacity) {}

    /// At least n (<= capacity) bytes buffered; false on EOF, error or timeout.
    bool need(std::size_t n) {
        if (end_ - begin_ >= n) return true;
        if (begin_ > 0) {
            std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        while (end_ < n) {
            const ssize_t r = recv(fd_, buf_.data() + end_, buf_.size() - end_, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return false;
            end_ += static_cast<std::size_t>(r);
            received_ += static_cast<std::uint64_t>(r);
        }
        return true;
    }
    /// Drops n bytes, reading and discarding what is not buffered yet.
    bool skip(std::size_t n) {
        const std::size_t have = std::min(n, end_ - begin_);
        begin_ += have;
        n -= have;
        if (n == 0) return true;
        while (n > 0) {
            const ssize_t r = recv(fd_, buf_.data(), std::min(buf_.size(), n), 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return false;
            received_ += static_cast<std::uint64_t>(r);
            n -= static_cast<std::size_t>(r);
        }
        begin_ = end_ = 0;
        return true;
    }
    const std::uint8_t* data() const { return buf_.data() + begin_; }
    void consume(std::size_t n) { begin_ += n; }
    [[nodiscard]] std::uint64_t received() const { return received_; }

    /// One whole TDS message (packets up to the one with the end-of-message bit), payload only.
    bool message(std::uint8_t& type, Buffer& payload) {
        payload.clear();
        for (int packets = 0; packets < 4096; ++packets) {
            if (!need(8)) return false;
            const std::uint8_t* h = data();
            const std::size_t len = be16(h + 2);
            if (len < 8) return false;
            if (packets == 0) type = h[0];
            const bool eom = (h[1] & 0x01) != 0;
            if (!need(len)) return false;
            payload.insert(payload.end(), data() + 8, data() + len);
            consume(len);
            if (eom) return true;
        }
        return false;
    }

  private:
    int fd_;
    std::vector<std::uint8_t> buf_;
    std::size_t begin_ = 0, end_ = 0;
    std::uint64_t received_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Little-endian builders for what the lab's encoders do not make.
void put8(Buffer& b, std::uint8_t v) {
    b.push_back(v);
}
void put16(Buffer& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v));
    b.push_back(static_cast<std::uint8_t>(v >> 8));
}
void put32(Buffer& b, std::uint32_t v) {
    put16(b, static_cast<std::uint16_t>(v));
    put16(b, static_cast<std::uint16_t>(v >> 16));
}
void put64(Buffer& b, std::uint64_t v) {
    put32(b, static_cast<std::uint32_t>(v));
    put32(b, static_cast<std::uint32_t>(v >> 32));
}
void set16(Buffer& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v);
    b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}
void set32(Buffer& b, std::size_t at, std::uint32_t v) {
    set16(b, at, static_cast<std::uint16_t>(v));
    set16(b, at + 2, static_cast<std::uint16_t>(v >> 16));
}
void b_varchar_ucs2(Buffer& b, std::string_view s) {
    put8(b, static_cast<std::uint8_t>(s.size()));
    const Buffer u = lab::ucs2(s);
    b.insert(b.end(), u.begin(), u.end());
}

constexpr std::uint8_t kCollation[5] = {0x09, 0x04, 0xD0, 0x00, 0x34};  // Latin1_General_CI_AS

/// A LOGIN7 with SQL authentication (user name and obfuscated password), TDS 7.4.
Buffer build_sql_login7(std::uint32_t packet_size, std::string_view user,
                        std::string_view password) {
    Buffer b(94, 0);
    set32(b, 4, lab::kTds74);
    set32(b, 8, packet_size);
    set32(b, 12, 0x07000000);  // client program version
    set32(b, 16, static_cast<std::uint32_t>(getpid()));
    b[24] = 0xE0;  // fUseDB | fDatabase | fSetLang
    b[25] = 0x03;  // fLanguage | fODBC, SQL authentication
    set32(b, 32, 0x0409);
    Buffer var;
    const auto add = [&](std::size_t at, const Buffer& data) {
        set16(b, at, static_cast<std::uint16_t>(94 + var.size()));
        set16(b, at + 2, static_cast<std::uint16_t>(data.size() / 2));
        var.insert(var.end(), data.begin(), data.end());
    };
    Buffer pw = lab::ucs2(password);
    for (auto& c : pw)  // [MS-TDS] 2.2.6.4: swap the nibbles, then XOR 0xA5
        c = static_cast<std::uint8_t>((((c << 4) & 0xF0) | (c >> 4)) ^ 0xA5);
    add(36, lab::ucs2("benchclient"));
    add(40, lab::ucs2(user));
    add(44, pw);
    add(48, lab::ucs2("hopscope-proxybench"));
    add(52, lab::ucs2("127.0.0.1"));
    add(56, {});  // no FeatureExt
    add(60, lab::ucs2("ODBC"));
    add(64, {});
    add(68, lab::ucs2("master"));
    for (std::size_t i = 0; i < 6; ++i)
        b[72 + i] = static_cast<std::uint8_t>(0x10 + i);  // client MAC address
    add(78, {});                                          // no SSPI
    add(82, {});
    add(86, {});
    b.insert(b.end(), var.begin(), var.end());
    set32(b, 0, static_cast<std::uint32_t>(b.size()));
    return b;
}

/// A SQL batch in packets of `packet_size`; with `wire` > 0, of exactly that many bytes on the
/// wire (headers of every packet included; even), padded with a comment.
Buffer build_batch(std::string text, std::size_t wire, std::size_t packet_size) {
    if (wire == 0)
        return lab::frame_packets(lab::pkt::SqlBatch, lab::build_sql_batch(text), packet_size);
    const std::size_t chunk = packet_size - 8;
    const std::size_t base = lab::build_sql_batch("").size();
    std::size_t payload = wire;
    for (int i = 0; i < 3; ++i)  // the number of packets depends on the payload
        payload = wire - 8 * ((payload + chunk - 1) / chunk);
    if (payload > base + 2 * text.size() + 6) {
        text += " --";
        text.append((payload - base) / 2 - text.size(), 'x');
    }
    return lab::frame_packets(lab::pkt::SqlBatch, lab::build_sql_batch(text), packet_size);
}

// ---------------------------------------------------------------------------------------------
// The generated result set: COLMETADATA (INT, BIGINT, FLOAT, NVARCHAR(50), NVARCHAR(200)),
// rows taken in turn from a ring of distinct pre-built rows, DONE with the row count.
class ResultSet {
  public:
    static const ResultSet& get() {
        static const ResultSet rs;
        return rs;
    }
    Buffer colmetadata;
    Buffer ring;  ///< kRingRows ROW tokens back to back
    static constexpr std::size_t kRingRows = 1024;

  private:
    ResultSet() {
        Buffer& m = colmetadata;
        put8(m, 0x81);
        put16(m, 5);
        const auto col = [&](std::string_view name) { b_varchar_ucs2(m, name); };
        const auto head = [&](std::uint8_t type) {
            put32(m, 0);       // user type
            put16(m, 0x0001);  // nullable
            put8(m, type);
        };
        const auto nvarchar = [&](std::uint16_t max_bytes, std::string_view name) {
            head(0xE7);
            put16(m, max_bytes);
            m.insert(m.end(), kCollation, kCollation + 5);
            col(name);
        };
        head(0x38);  // INT
        col("id");
        head(0x7F);  // BIGINT
        col("amount");
        head(0x6D);  // FLTN(8): FLOAT
        put8(m, 8);
        col("ratio");
        nvarchar(100, "name");
        nvarchar(400, "note");
        std::uint64_t s = 0x5eed;
        const auto next = [&s] {
            std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            return z ^ (z >> 31);
        };
        static constexpr std::string_view kWords[] = {"order", "shipped", "pending", "invoice",
                                                      "north", "south",   "retail",  "return"};
        for (std::size_t i = 0; i < kRingRows; ++i) {
            put8(ring, 0xD1);
            put32(ring, static_cast<std::uint32_t>(i));
            put64(ring, next() % 100000000);
            put8(ring, 8);
            const double ratio = static_cast<double>(next() % 100000) / 1000.0;
            std::uint64_t bits = 0;
            std::memcpy(&bits, &ratio, sizeof bits);
            put64(ring, bits);
            char name[32];
            std::snprintf(name, sizeof name, "customer-%06zu", i);
            const Buffer n = lab::ucs2(name);
            put16(ring, static_cast<std::uint16_t>(n.size()));
            ring.insert(ring.end(), n.begin(), n.end());
            std::string note;
            const std::size_t words = 2 + next() % 24;
            for (std::size_t w = 0; w < words; ++w) {
                if (w) note += ' ';
                note += kWords[next() % std::size(kWords)];
            }
            note.resize(std::min<std::size_t>(note.size(), 200));
            const Buffer t = lab::ucs2(note);
            put16(ring, static_cast<std::uint16_t>(t.size()));
            ring.insert(ring.end(), t.begin(), t.end());
        }
    }
};

Buffer done_token(std::uint64_t rows) {
    Buffer d;
    put8(d, 0xFD);
    put16(d, lab::kDoneCount);
    put16(d, 0xC1);  // SELECT
    put64(d, rows);
    return d;
}

/// Streams one reply message of the generated result set, packet by packet.
class ResultStream {
  public:
    ResultStream(std::uint64_t approx_bytes, std::size_t packet_size)
        : rs_(ResultSet::get()), chunk_(packet_size - 8) {
        const std::uint64_t want = std::max<std::uint64_t>(approx_bytes, 1);
        rows_ = std::max<std::uint64_t>(1, want * ResultSet::kRingRows / rs_.ring.size());
        row_bytes_ = rows_ / ResultSet::kRingRows * rs_.ring.size();
        // The partial last turn of the ring: whole rows, found by walking their lengths.
        std::size_t off = 0;
        for (std::uint64_t i = 0; i < rows_ % ResultSet::kRingRows; ++i)
            off += row_size(off);
        row_bytes_ += off;
        done_ = done_token(rows_);
        total_ = rs_.colmetadata.size() + row_bytes_ + done_.size();
    }
    [[nodiscard]] bool finished() const { return pos_ >= total_; }

    /// Appends whole packets to `out` while they fit in `room` bytes.
    void fill(Buffer& out, std::size_t room) {
        while (!finished() && room >= chunk_ + 8) {
            const std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(chunk_, total_ - pos_));
            const std::size_t at = out.size();
            out.resize(at + 8 + n);
            std::uint8_t* h = out.data() + at;
            h[0] = lab::pkt::Reply;
            h[1] = pos_ + n == total_ ? 0x01 : 0x00;
            h[2] = static_cast<std::uint8_t>((n + 8) >> 8);
            h[3] = static_cast<std::uint8_t>(n + 8);
            h[4] = h[5] = 0;
            h[6] = packet_id_++;
            h[7] = 0;
            copy(h + 8, n);
            room -= n + 8;
        }
    }

  private:
    std::size_t row_size(std::size_t off) const {
        // token, INT, BIGINT, FLTN length + 8, then two USHORTLEN values
        const std::uint8_t* r = rs_.ring.data() + off;
        std::size_t p = 1 + 4 + 8 + 1 + 8;
        p += 2 + (r[p] | (r[p + 1] << 8));
        p += 2 + (r[p] | (r[p + 1] << 8));
        return p;
    }
    void copy(std::uint8_t* dst, std::size_t n) {
        const std::uint64_t meta = rs_.colmetadata.size();
        while (n > 0) {
            std::size_t k = 0;
            if (pos_ < meta) {
                k = static_cast<std::size_t>(std::min<std::uint64_t>(n, meta - pos_));
                std::memcpy(dst, rs_.colmetadata.data() + pos_, k);
            } else if (pos_ < meta + row_bytes_) {
                const std::uint64_t q = pos_ - meta;
                const std::size_t in_ring = static_cast<std::size_t>(q % rs_.ring.size());
                k = static_cast<std::size_t>(
                    std::min<std::uint64_t>({n, rs_.ring.size() - in_ring, row_bytes_ - q}));
                std::memcpy(dst, rs_.ring.data() + in_ring, k);
            } else {
                const std::size_t d = static_cast<std::size_t>(pos_ - meta - row_bytes_);
                k = std::min(n, done_.size() - d);
                std::memcpy(dst, done_.data() + d, k);
            }
            dst += k;
            n -= k;
            pos_ += k;
        }
    }

    const ResultSet& rs_;
    std::size_t chunk_;
    std::uint64_t rows_ = 0, row_bytes_ = 0, total_ = 0, pos_ = 0;
    Buffer done_;
    std::uint8_t packet_id_ = 1;
};

/// A reply of exactly `wire` bytes (headers of every packet included): a VARCHAR(8000) result
/// set, its rows sized to fill.
Buffer exact_reply(std::size_t wire, std::size_t packet_size) {
    const std::size_t chunk = packet_size - 8;
    std::size_t payload = wire;
    for (int i = 0; i < 3; ++i)
        payload = wire - 8 * ((payload + chunk - 1) / chunk);
    Buffer p;
    put8(p, 0x81);
    put16(p, 1);
    put32(p, 0);
    put16(p, 0x0001);
    put8(p, 0xA7);  // BIGVARCHAR
    put16(p, 8000);
    p.insert(p.end(), kCollation, kCollation + 5);
    b_varchar_ucs2(p, "r");
    const std::size_t tail = done_token(0).size();
    std::uint64_t rows = 0;
    Buffer rows_bytes;
    std::size_t left = payload > p.size() + tail ? payload - p.size() - tail : 0;
    while (left >= 3) {
        std::size_t take = std::min<std::size_t>(left, 8003);
        if (left - take > 0 && left - take < 3) take -= 3;
        put8(rows_bytes, 0xD1);
        put16(rows_bytes, static_cast<std::uint16_t>(take - 3));
        rows_bytes.insert(rows_bytes.end(), take - 3, static_cast<std::uint8_t>('a' + rows % 26));
        left -= take;
        ++rows;
    }
    p.insert(p.end(), rows_bytes.begin(), rows_bytes.end());
    const Buffer d = done_token(rows);
    p.insert(p.end(), d.begin(), d.end());
    return lab::frame_packets(lab::pkt::Reply, p, packet_size);
}

Buffer login_reply(std::uint32_t packet_size) {
    lab::TokenWriter tw(false);
    tw.env_string(1, "master", "master");
    tw.env_collation();
    tw.loginack(lab::kTds74);
    tw.env_string(4, std::to_string(packet_size), "4096");
    tw.done(lab::kDoneFinal, 0, 0);
    return lab::frame_packets(lab::pkt::Reply, tw.bytes(), packet_size);
}

// ---------------------------------------------------------------------------------------------
// serve: an epoll loop per thread, each with its own SO_REUSEPORT listener on the same port.
struct ServerConn {
    int fd = -1;
    bool listener = false;
    enum class Mode : std::uint8_t { Sniff, Tds, Echo } mode = Mode::Sniff;
    Buffer in;
    Buffer msg;  ///< the TDS message being assembled
    std::uint8_t msg_type = 0;
    Buffer out;
    std::size_t out_off = 0;
    std::unique_ptr<ResultStream> stream;
    std::size_t packet_size = 4096;
    bool want_out = false;
};

class ServerThread {
  public:
    ServerThread(const Endpoint& ep, std::string& err) {
        ep_ = ep;
        epfd_ = epoll_create1(EPOLL_CLOEXEC);
        const int lfd = socket(ep.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(lfd, sa(ep), ep.len) != 0 || listen(lfd, 4096) != 0) {
            err = std::string("cannot listen: ") + std::strerror(errno);
            close(lfd);
            return;
        }
        auto l = std::make_unique<ServerConn>();
        l->fd = lfd;
        l->listener = true;
        add(std::move(l), EPOLLIN);
    }
    ~ServerThread() {
        for (auto& [fd, c] : conns_)
            close(fd);
        if (epfd_ >= 0) close(epfd_);
    }
    ServerThread(const ServerThread&) = delete;
    ServerThread& operator=(const ServerThread&) = delete;

    void run(Clock::time_point deadline) {
        epoll_event evs[256];
        while (!g_stop.load() && Clock::now() < deadline) {
            const int n = epoll_wait(epfd_, evs, 256, 200);
            for (int i = 0; i < n; ++i) {
                auto* c = static_cast<ServerConn*>(evs[i].data.ptr);
                if (c->listener) {
                    accept_all(c->fd);
                    continue;
                }
                bool alive = true;
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) alive = on_readable(*c);
                if (alive && (evs[i].events & EPOLLOUT)) alive = flush(*c);
                if (!alive) drop(c->fd);
            }
        }
    }

  private:
    void add(std::unique_ptr<ServerConn> c, std::uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = c.get();
        epoll_ctl(epfd_, EPOLL_CTL_ADD, c->fd, &ev);
        const int fd = c->fd;
        conns_[fd] = std::move(c);
    }
    void drop(int fd) {
        epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        conns_.erase(fd);
    }
    void accept_all(int lfd) {
        for (int i = 0; i < 64; ++i) {
            const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;
            set_nodelay(fd);
            auto c = std::make_unique<ServerConn>();
            c->fd = fd;
            add(std::move(c), EPOLLIN);
        }
    }
    void want_out(ServerConn& c, bool on) {
        if (c.want_out == on) return;
        c.want_out = on;
        epoll_event ev{};
        ev.events = on ? EPOLLOUT : EPOLLIN;  // no new requests while a reply is going out
        ev.data.ptr = &c;
        epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
    }
    bool on_readable(ServerConn& c) {
        std::uint8_t buf[65536];
        const ssize_t r = recv(c.fd, buf, sizeof buf, 0);
        if (r < 0) return errno == EAGAIN || errno == EINTR;
        if (r == 0) return false;
        const auto n = static_cast<std::size_t>(r);
        if (c.mode == ServerConn::Mode::Sniff) {
            const std::uint8_t t = buf[0];
            c.mode = (t == lab::pkt::Prelogin || t == lab::pkt::Login7 || t == lab::pkt::SqlBatch)
                         ? ServerConn::Mode::Tds
                         : ServerConn::Mode::Echo;
        }
        if (c.mode == ServerConn::Mode::Echo) {
            c.out.insert(c.out.end(), buf, buf + n);
            return flush(c);
        }
        c.in.insert(c.in.end(), buf, buf + n);
        std::size_t pos = 0;
        while (c.in.size() - pos >= 8) {
            const std::uint8_t* h = c.in.data() + pos;
            const std::size_t len = be16(h + 2);
            if (len < 8) return false;
            if (c.in.size() - pos < len) break;
            if (c.msg.empty()) c.msg_type = h[0];
            c.msg.insert(c.msg.end(), h + 8, h + len);
            if (c.msg.size() > (1u << 20)) return false;
            pos += len;
            if (h[1] & 0x01) {
                if (!handle(c)) return false;
                c.msg.clear();
            }
        }
        c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(pos));
        return flush(c);
    }
    bool handle(ServerConn& c) {
        Buffer reply;
        if (c.msg_type == lab::pkt::Prelogin) {
            if (!lab::parse_prelogin(c.msg)) return false;
            reply = lab::frame_packets(lab::pkt::Reply,
                                       lab::build_prelogin_response(lab::enc::NotSup), 4096);
        } else if (c.msg_type == lab::pkt::Login7) {
            std::string why;
            const auto li = lab::parse_login7(c.msg, nullptr, &why);
            if (!li) return false;
            c.packet_size = std::clamp<std::size_t>(li->packet_size, 512, kMaxPacket);
            reply = login_reply(static_cast<std::uint32_t>(c.packet_size));
        } else if (c.msg_type == lab::pkt::SqlBatch) {
            const auto sql = lab::parse_sql_batch(c.msg, false);
            if (!sql) return false;
            // "bytes N": a result set of about N bytes; "reply N": exactly N bytes on the wire.
            std::istringstream words(*sql);
            std::string verb;
            std::uint64_t n = 0;
            words >> verb >> n;
            if (verb == "bytes") {
                c.stream = std::make_unique<ResultStream>(n, c.packet_size);
            } else if (verb == "reply") {
                reply = exact_reply(std::clamp<std::uint64_t>(n, 64, 1 << 20), c.packet_size);
            } else {
                c.stream = std::make_unique<ResultStream>(1, c.packet_size);
            }
        } else {
            return false;
        }
        c.out.insert(c.out.end(), reply.begin(), reply.end());
        return true;
    }
    bool flush(ServerConn& c) {
        constexpr std::size_t kRoom = 256 * 1024;
        for (;;) {
            if (c.out_off == c.out.size()) {
                c.out.clear();
                c.out_off = 0;
                if (c.stream) {
                    c.stream->fill(c.out, kRoom);
                    if (c.stream->finished()) c.stream.reset();
                }
                if (c.out.empty()) {
                    want_out(c, false);
                    return true;
                }
            }
            const ssize_t w =
                send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    want_out(c, true);
                    return true;
                }
                return false;
            }
            c.out_off += static_cast<std::size_t>(w);
        }
    }

    Endpoint ep_;
    int epfd_ = -1;
    std::map<int, std::unique_ptr<ServerConn>> conns_;
};

int cmd_serve(Args& a) {
    std::string err;
    const auto ep = parse_endpoint(a.str("listen"), err);
    const auto threads =
        static_cast<unsigned>(a.num("threads", std::thread::hardware_concurrency()));
    const double limit = a.real("time-limit", 7200);
    if (!a.unknown().empty() || !ep || threads == 0 || threads > 64) {
        std::fprintf(stderr, "hopscope-proxybench serve: %s\n",
                     !ep ? err.c_str() : ("bad option " + a.unknown()).c_str());
        return 2;
    }
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    std::vector<std::unique_ptr<ServerThread>> loops;
    for (unsigned i = 0; i < threads; ++i) {
        loops.push_back(std::make_unique<ServerThread>(*ep, err));
        if (!err.empty()) {
            std::fprintf(stderr, "hopscope-proxybench serve: %s\n", err.c_str());
            return 1;
        }
    }
    (void)ResultSet::get();
    const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(limit * 1000));
    std::vector<std::thread> ts;
    for (auto& l : loops)
        ts.emplace_back([&l, deadline] { l->run(deadline); });
    for (auto& t : ts)
        t.join();
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Clients.
struct ClientOptions {
    Endpoint to;
    int timeout_s = 10;
};

/// PRELOGIN and a SQL-authentication LOGIN7 on a connected socket; true when LOGINACK came back.
bool tds_login(int fd, Reader& rd, std::uint32_t packet_size, std::string& err) {
    if (!write_all(fd, lab::frame_packets(lab::pkt::Prelogin,
                                          lab::build_prelogin_request(lab::enc::NotSup), 4096))) {
        err = "send PRELOGIN";
        return false;
    }
    std::uint8_t type = 0;
    Buffer payload;
    if (!rd.message(type, payload) || type != lab::pkt::Reply || !lab::parse_prelogin(payload)) {
        err = "PRELOGIN response";
        return false;
    }
    if (!write_all(fd,
                   lab::frame_packets(lab::pkt::Login7,
                                      build_sql_login7(packet_size, "bench", "bench-pw"), 4096))) {
        err = "send LOGIN7";
        return false;
    }
    if (!rd.message(type, payload) || type != lab::pkt::Reply) {
        err = "login response";
        return false;
    }
    const auto reply = lab::parse_reply(payload, &err);
    if (!reply || !reply->loginack) {
        if (err.empty()) err = "no LOGINACK";
        return false;
    }
    return true;
}

std::optional<ClientOptions> client_options(Args& a, const char* cmd) {
    std::string err;
    ClientOptions o;
    const auto ep = parse_endpoint(a.str("to"), err);
    o.timeout_s = static_cast<int>(a.num("io-timeout", 10));
    if (!ep) {
        std::fprintf(stderr, "hopscope-proxybench %s: %s\n", cmd, err.c_str());
        return std::nullopt;
    }
    o.to = *ep;
    return o;
}

bool bad_options(Args& a, const char* cmd) {
    if (a.unknown().empty()) return false;
    std::fprintf(stderr, "hopscope-proxybench %s: bad option %s\n", cmd, a.unknown().c_str());
    return true;
}

int cmd_bulk(Args& a) {
    auto o = client_options(a, "bulk");
    const std::uint64_t mb = a.num("mb", 256);
    const auto packet_size = static_cast<std::uint32_t>(a.num("packet-size", 4096));
    const std::uint64_t batches = a.num("batches", 1);
    const double limit = a.real("time-limit", 60);
    if (!o || bad_options(a, "bulk") || packet_size < 512 || packet_size > kMaxPacket || mb == 0 ||
        batches == 0)
        return 2;
    const int fd = connect_to(o->to, o->timeout_s);
    if (fd < 0) {
        std::fprintf(stderr, "hopscope-proxybench bulk: connect: %s\n", std::strerror(errno));
        return 1;
    }
    Reader rd(fd, 256 * 1024);
    std::string err;
    if (!tds_login(fd, rd, packet_size, err)) {
        std::fprintf(stderr, "hopscope-proxybench bulk: login: %s\n", err.c_str());
        close(fd);
        return 1;
    }
    const std::uint64_t before = rd.received();
    std::uint64_t packets = 0, done = 0;
    const auto t0 = Clock::now();
    bool ok = true;
    for (std::uint64_t b = 0; b < batches && ok && seconds_since(t0) < limit; ++b) {
        const Buffer req =
            build_batch("bytes " + std::to_string(mb * 1000000 / batches), 0, packet_size);
        if (!write_all(fd, req)) {
            ok = false;
            break;
        }
        for (;;) {
            if (!rd.need(8)) {
                ok = false;
                break;
            }
            const std::size_t len = be16(rd.data() + 2);
            const bool eom = (rd.data()[1] & 0x01) != 0;
            if (len < 8 || rd.data()[0] != lab::pkt::Reply) {
                ok = false;
                break;
            }
            ++packets;
            if (!eom) {
                if (!rd.skip(len)) ok = false;
                if (!ok || seconds_since(t0) > limit) {
                    ok = false;
                    break;
                }
                continue;
            }
            // The last packet ends with the DONE token (13 bytes from TDS 7.2 on).
            if (!rd.need(len) || len < 8 + 13 || rd.data()[len - 13] != 0xFD) {
                ok = false;
                break;
            }
            rd.consume(len);
            ++done;
            break;
        }
    }
    const double s = seconds_since(t0);
    close(fd);
    const std::uint64_t bytes = rd.received() - before;
    std::printf("bytes=%llu packets=%llu results=%llu seconds=%.3f mb_per_s=%.1f ok=%d\n",
                static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(packets),
                static_cast<unsigned long long>(done), s, static_cast<double>(bytes) / 1e6 / s,
                ok ? 1 : 0);
    return ok ? 0 : 1;
}

double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.empty()) return 0;
    const auto i =
        static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(i, sorted.size() - 1)];
}

/// A logged-in connection for request/response timing.
struct Exchanger {
    int fd = -1;
    std::unique_ptr<Reader> rd;
    std::vector<double> us;
    Buffer payload;

    bool open(const ClientOptions& o, const Endpoint& to, const char* what) {
        fd = connect_to(to, o.timeout_s);
        if (fd < 0) {
            std::fprintf(stderr, "hopscope-proxybench latency: connect to %s: %s\n", what,
                         std::strerror(errno));
            return false;
        }
        rd = std::make_unique<Reader>(fd);
        std::string err;
        if (!tds_login(fd, *rd, 4096, err)) {
            std::fprintf(stderr, "hopscope-proxybench latency: login to %s: %s\n", what,
                         err.c_str());
            return false;
        }
        return true;
    }
    /// One timed exchange; false on error or a reply of the wrong size.
    bool exchange(const Buffer& req, std::size_t response, bool keep) {
        const std::uint64_t got0 = rd->received();
        std::uint8_t type = 0;
        const auto s = Clock::now();
        if (!write_all(fd, req) || !rd->message(type, payload)) return false;
        const double d = std::chrono::duration<double, std::micro>(Clock::now() - s).count();
        if (rd->received() - got0 != response) {
            std::fprintf(stderr, "hopscope-proxybench latency: reply of %llu bytes, not %zu\n",
                         static_cast<unsigned long long>(rd->received() - got0), response);
            return false;
        }
        if (keep) us.push_back(d);
        return true;
    }
    ~Exchanger() {
        if (fd >= 0) close(fd);
    }
};

int cmd_latency(Args& a) {
    auto o = client_options(a, "latency");
    const std::string baseline_arg = a.str("baseline");
    const std::string also_arg = a.str("also");
    const std::uint64_t count = a.num("count", 20000);
    const std::uint64_t warmup = a.num("warmup", 500);
    const std::uint64_t rounds = a.num("rounds", 20);
    const std::size_t request = a.num("request", 1024);
    const std::size_t response = a.num("response", 4096);
    const double limit = a.real("time-limit", 30);
    std::string err;
    std::optional<Endpoint> baseline, also;
    for (auto [arg, ep] : {std::pair{&baseline_arg, &baseline}, std::pair{&also_arg, &also}}) {
        if (arg->empty()) continue;
        *ep = parse_endpoint(*arg, err);
        if (!*ep) {
            std::fprintf(stderr, "hopscope-proxybench latency: %s\n", err.c_str());
            return 2;
        }
    }
    if (!o || bad_options(a, "latency") || count == 0 || count > 10000000 || request < 64 ||
        request > 65536 || response < 64 || response > 65536 || rounds == 0 || rounds > count)
        return 2;
    // With --baseline, every exchange on --to is followed by one on the baseline connection, so
    // both see the same moments of a busy machine; their difference is the time the path to
    // --to adds. With --also, a second path is measured the same way in the same run: the
    // exchanges go in --rounds blocks, one path's block then the other's (which goes first
    // alternates), so a machine whose speed drifts from second to second (a shared VM) weighs
    // on both alike, and each path's proxy has the machine to itself while its block runs.
    Exchanger to, other, base;
    if (!to.open(*o, o->to, "--to") || (also && !other.open(*o, *also, "--also")) ||
        (baseline && !base.open(*o, *baseline, "--baseline")))
        return 1;
    const Buffer req = build_batch("reply " + std::to_string(response), request, 4096);
    to.us.reserve(count);
    if (also) other.us.reserve(count);
    if (baseline) base.us.reserve(also ? 2 * count : count);
    const auto t0 = Clock::now();
    bool ok = true;
    const auto block = [&](Exchanger& x, std::uint64_t n, bool keep) {
        for (std::uint64_t i = 0; i < n && ok && seconds_since(t0) < limit; ++i)
            ok = x.exchange(req, response, keep) &&
                 (!baseline || base.exchange(req, response, keep));
    };
    block(to, warmup, false);
    if (also) block(other, warmup, false);
    if (!also) {
        block(to, count, true);
    } else {
        for (std::uint64_t r = 0; r < rounds && ok; ++r) {
            const std::uint64_t n = count / rounds + (r < count % rounds ? 1 : 0);
            block(r % 2 == 0 ? to : other, n, true);
            block(r % 2 == 0 ? other : to, n, true);
        }
    }
    const auto summary = [](std::vector<double>& us, const char* prefix) {
        std::sort(us.begin(), us.end());
        double sum = 0;
        for (double d : us)
            sum += d;
        std::printf(" %sp50_us=%.1f %sp90_us=%.1f %sp99_us=%.1f %smean_us=%.1f", prefix,
                    percentile(us, 50), prefix, percentile(us, 90), prefix, percentile(us, 99),
                    prefix, us.empty() ? 0.0 : sum / static_cast<double>(us.size()));
    };
    std::printf("count=%zu request=%zu response=%zu", to.us.size(), request, response);
    summary(to.us, "");
    if (also) summary(other.us, "also_");
    if (baseline) {
        summary(base.us, "base_");
        std::printf(" added_p50_us=%.1f added_p99_us=%.1f",
                    percentile(to.us, 50) - percentile(base.us, 50),
                    percentile(to.us, 99) - percentile(base.us, 99));
        if (also)
            std::printf(" also_added_p50_us=%.1f also_added_p99_us=%.1f",
                        percentile(other.us, 50) - percentile(base.us, 50),
                        percentile(other.us, 99) - percentile(base.us, 99));
    }
    ok = ok && (!also || other.us.size() == to.us.size());
    std::printf(" ok=%d\n", ok ? 1 : 0);
    return ok && !to.us.empty() ? 0 : 1;
}

/// One short connection: bare TCP (64 bytes out, the same 64 back) or a TDS login.
bool one_connection(const ClientOptions& o, bool tds, std::string& err) {
    const int fd = connect_to(o.to, o.timeout_s);
    if (fd < 0) {
        err = std::string("connect: ") + std::strerror(errno);
        return false;
    }
    bool ok = false;
    if (tds) {
        Reader rd(fd, 8192);
        ok = tds_login(fd, rd, 4096, err);
    } else {
        std::uint8_t msg[64];
        std::memset(msg, 'p', sizeof msg);  // not a TDS packet type: the server echoes
        std::uint8_t back[64];
        std::size_t got = 0;
        ok = write_all(fd, msg, sizeof msg);
        while (ok && got < sizeof back) {
            const ssize_t r = recv(fd, back + got, sizeof back - got, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0)
                ok = false;
            else
                got += static_cast<std::size_t>(r);
        }
        if (!ok) err = "echo";
    }
    close(fd);
    return ok;
}

int cmd_conns(Args& a) {
    auto o = client_options(a, "conns");
    const std::string mode = a.str("mode", "tcp");
    const auto workers = static_cast<unsigned>(a.num("workers", 4));
    const double secs = a.real("seconds", 3);
    const std::uint64_t max = a.num("max", 200000);
    if (!o || bad_options(a, "conns") || (mode != "tcp" && mode != "tds") || workers == 0 ||
        workers > 256 || secs <= 0 || secs > 600)
        return 2;
    const bool tds = mode == "tds";
    std::atomic<std::uint64_t> ok{0}, failed{0}, started{0};
    std::string first_err;
    std::atomic<bool> have_err{false};
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::milliseconds(static_cast<long>(secs * 1000));
    std::vector<std::thread> ts;
    for (unsigned w = 0; w < workers; ++w) {
        ts.emplace_back([&] {
            std::string err;
            while (Clock::now() < deadline && started.fetch_add(1) < max) {
                if (one_connection(*o, tds, err)) {
                    ok.fetch_add(1, std::memory_order_relaxed);
                } else {
                    failed.fetch_add(1, std::memory_order_relaxed);
                    if (!have_err.exchange(true)) first_err = err;
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                }
            }
        });
    }
    for (auto& t : ts)
        t.join();
    const double s = seconds_since(t0);
    std::printf("mode=%s workers=%u connections=%llu failed=%llu seconds=%.3f conns_per_s=%.0f\n",
                mode.c_str(), workers, static_cast<unsigned long long>(ok.load()),
                static_cast<unsigned long long>(failed.load()), s,
                static_cast<double>(ok.load()) / s);
    if (have_err.load())
        std::fprintf(stderr, "hopscope-proxybench conns: first failure: %s\n", first_err.c_str());
    return ok.load() > 0 ? 0 : 1;
}

/// Resident KiB of the processes and all their descendants.
std::uint64_t rss_kib(const std::vector<long>& roots) {
    std::map<long, long> parent;
    if (DIR* d = opendir("/proc")) {
        while (const dirent* e = readdir(d)) {
            const long pid = std::strtol(e->d_name, nullptr, 10);
            if (pid <= 0) continue;
            std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
            std::string line;
            if (!std::getline(f, line)) continue;
            const auto rp = line.rfind(')');  // the command name may hold spaces and parentheses
            if (rp == std::string::npos) continue;
            std::istringstream rest(line.substr(rp + 2));
            char state = 0;
            long ppid = 0;
            rest >> state >> ppid;
            parent[pid] = ppid;
        }
        closedir(d);
    }
    std::set<long> all(roots.begin(), roots.end());
    for (bool grew = true; grew;) {
        grew = false;
        for (const auto& [pid, pp] : parent)
            if (all.contains(pp) && all.insert(pid).second) grew = true;
    }
    std::uint64_t total = 0;
    for (long pid : all) {
        std::ifstream f("/proc/" + std::to_string(pid) + "/status");
        std::string line;
        while (std::getline(f, line))
            if (line.rfind("VmRSS:", 0) == 0) total += std::strtoull(line.c_str() + 6, nullptr, 10);
    }
    return total;
}

int cmd_idle(Args& a) {
    auto o = client_options(a, "idle");
    const std::uint64_t count = a.num("count", 5000);
    const std::uint64_t warm = a.num("warm", 20);
    const std::string mode = a.str("mode", "tds");
    const std::string pids_arg = a.str("pid");
    const double settle = a.real("settle", 1.0);
    const double limit = a.real("time-limit", 60);
    std::vector<long> pids;
    for (std::size_t p = 0; p < pids_arg.size();) {
        const auto c = pids_arg.find(',', p);
        const long v = std::strtol(pids_arg.substr(p, c - p).c_str(), nullptr, 10);
        if (v > 0) pids.push_back(v);
        if (c == std::string::npos) break;
        p = c + 1;
    }
    if (!o || bad_options(a, "idle") || count == 0 || count > 60000 || pids.empty() ||
        (mode != "tds" && mode != "tcp") || settle > 60)
        return 2;
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < count + 64) {
        rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, count + 1024);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const bool tds = mode == "tds";
    const auto pause = [](double s) {
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(s * 1000)));
    };
    std::string err;
    for (std::uint64_t i = 0; i < warm; ++i)
        one_connection(*o, tds, err);
    pause(settle);
    const std::uint64_t before = rss_kib(pids);
    const auto t0 = Clock::now();
    std::vector<int> fds;
    fds.reserve(count);
    for (std::uint64_t i = 0; i < count && seconds_since(t0) < limit; ++i) {
        const int fd = connect_to(o->to, o->timeout_s);
        if (fd < 0) {
            err = std::string("connect: ") + std::strerror(errno);
            break;
        }
        fds.push_back(fd);
        if (tds) {
            Reader rd(fd, 8192);
            if (!tds_login(fd, rd, 4096, err)) break;
        } else {
            std::uint8_t msg[64];
            std::memset(msg, 'p', sizeof msg);
            std::uint8_t back[64];
            if (!write_all(fd, msg, sizeof msg) || recv(fd, back, sizeof back, MSG_WAITALL) != 64) {
                err = "echo";
                break;
            }
        }
    }
    const double open_s = seconds_since(t0);
    pause(settle);
    const std::uint64_t after = rss_kib(pids);
    for (int fd : fds)
        close(fd);
    const std::size_t opened = fds.size();
    std::printf(
        "mode=%s connections=%zu seconds=%.3f rss_before_kib=%llu rss_after_kib=%llu "
        "kib_per_conn=%.2f\n",
        mode.c_str(), opened, open_s, static_cast<unsigned long long>(before),
        static_cast<unsigned long long>(after),
        opened ? (static_cast<double>(after) - static_cast<double>(before)) /
                     static_cast<double>(opened)
               : 0.0);
    if (opened < count) {
        std::fprintf(stderr, "hopscope-proxybench idle: %zu of %llu connections: %s\n", opened,
                     static_cast<unsigned long long>(count), err.c_str());
        return 1;
    }
    return 0;
}

int cmd_scrape(Args& a) {
    auto o = client_options(a, "scrape");
    const std::string metric = a.str("metric");
    if (!o || bad_options(a, "scrape") || metric.empty()) return 2;
    const int fd = connect_to(o->to, o->timeout_s);
    if (fd < 0) {
        std::fprintf(stderr, "hopscope-proxybench scrape: connect: %s\n", std::strerror(errno));
        return 1;
    }
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    std::string body;
    if (write_all(fd, reinterpret_cast<const std::uint8_t*>(req.data()), req.size())) {
        char buf[16384];
        for (;;) {
            const ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r <= 0 || body.size() > (16u << 20)) break;
            body.append(buf, static_cast<std::size_t>(r));
        }
    }
    close(fd);
    if (body.rfind("HTTP/1.", 0) != 0) {
        std::fprintf(stderr, "hopscope-proxybench scrape: no HTTP answer\n");
        return 1;
    }
    double sum = 0;
    std::size_t samples = 0;
    std::istringstream lines(body);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind(metric, 0) != 0 || line.size() <= metric.size()) continue;
        const char next = line[metric.size()];
        if (next != '{' && next != ' ') continue;
        const auto sp = line.rfind(' ');
        sum += std::strtod(line.c_str() + sp + 1, nullptr);
        ++samples;
    }
    std::printf("metric=%s samples=%zu value=%.0f\n", metric.c_str(), samples, sum);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// TLS: the server and the load of the TLS throughput measurement. Both ends pin TLS 1.2 and one
// cipher suite (--ciphers), so a proxy in between negotiates the same on both of its legs.
//
//   tds7    TDS 7.x with full encryption: a clear PRELOGIN exchange (ENCRYPTION ON both ways),
//           the TLS handshake inside PRELOGIN (0x12) packets, then raw TLS records carrying
//           everything else (LOGIN7, the batch, the result set).
//   strict  TLS from the first byte (TDS 8.0 strict: ALPN tds/8.0 offered, PRELOGIN inside TLS),
//           which is also plain TLS for a proxy that knows nothing of TDS (haproxy `ssl`).

constexpr const char* kDefaultCiphers = "ECDHE-RSA-AES128-GCM-SHA256";

std::string ssl_errors() {
    std::string s;
    while (const unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!s.empty()) s += "; ";
        s += buf;
    }
    return s.empty() ? std::string("no detail from OpenSSL") : s;
}

int select_tds8(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
    static const unsigned char kTds8[] = {7, 't', 'd', 's', '/', '8', '.', '0'};
    unsigned char* sel = nullptr;
    if (SSL_select_next_proto(&sel, outlen, kTds8, sizeof kTds8, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/// A TLS 1.2 context with one cipher list; the server's with its certificate and key.
SSL_CTX* tls_context(bool server, const std::string& ciphers, const std::string& cert,
                     const std::string& key, std::string& err) {
    SSL_CTX* c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c) {
        err = ssl_errors();
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    bool ok = SSL_CTX_set_cipher_list(c, ciphers.c_str()) == 1;
    if (!ok) err = "--ciphers " + ciphers + ": " + ssl_errors();
    if (ok && server) {
        ok = SSL_CTX_use_certificate_chain_file(c, cert.c_str()) == 1 &&
             SSL_CTX_use_PrivateKey_file(c, key.c_str(), SSL_FILETYPE_PEM) == 1 &&
             SSL_CTX_check_private_key(c) == 1;
        if (!ok) err = "--cert " + cert + " / --key " + key + ": " + ssl_errors();
        SSL_CTX_set_alpn_select_cb(c, select_tds8, nullptr);
    }
    if (ok && !server) SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    if (!ok) {
        SSL_CTX_free(c);
        return nullptr;
    }
    return c;
}

bool read_exact(int fd, std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        const ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

/// One clear TDS message read straight from the socket, packet by packet (never a byte more:
/// what follows it may be TLS).
bool raw_message(int fd, std::uint8_t& type, Buffer& payload) {
    payload.clear();
    for (int packets = 0; packets < 256; ++packets) {
        std::uint8_t h[8];
        if (!read_exact(fd, h, 8)) return false;
        const std::size_t len = be16(h + 2);
        if (len < 8) return false;
        if (packets == 0) type = h[0];
        const std::size_t at = payload.size();
        payload.resize(at + len - 8);
        if (!read_exact(fd, payload.data() + at, len - 8)) return false;
        if (h[1] & 0x01) return true;
    }
    return false;
}

/// A blocking TLS connection (the socket's timeouts apply).
class TlsLink {
  public:
    explicit TlsLink(int fd) : fd_(fd) {}
    ~TlsLink() {
        SSL_free(ssl_);
        if (fd_ >= 0) close(fd_);
    }
    TlsLink(const TlsLink&) = delete;
    TlsLink& operator=(const TlsLink&) = delete;

    /// TLS from the first byte (strict; the client offers ALPN tds/8.0).
    bool handshake_direct(SSL_CTX* ctx, bool server, std::string& err) {
        ssl_ = SSL_new(ctx);
        if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) return fail(err, "SSL_new");
        if (!server) {
            static const unsigned char kTds8[] = {7, 't', 'd', 's', '/', '8', '.', '0'};
            SSL_set_alpn_protos(ssl_, kTds8, sizeof kTds8);
        }
        ERR_clear_error();
        if ((server ? SSL_accept(ssl_) : SSL_connect(ssl_)) != 1)
            return fail(err, "TLS handshake: " + ssl_errors());
        return true;
    }

    /// TDS 7.x: the handshake's flights travel in PRELOGIN packets (end-of-message on the last
    /// packet of each); afterwards the session reads and writes the socket directly.
    bool handshake_wrapped(SSL_CTX* ctx, bool server, std::string& err) {
        ssl_ = SSL_new(ctx);
        BIO* rbio = BIO_new(BIO_s_mem());
        BIO* wbio = BIO_new(BIO_s_mem());
        if (!ssl_ || !rbio || !wbio) {
            BIO_free(rbio);
            BIO_free(wbio);
            return fail(err, "SSL_new");
        }
        SSL_set_bio(ssl_, rbio, wbio);
        if (server)
            SSL_set_accept_state(ssl_);
        else
            SSL_set_connect_state(ssl_);
        for (int round = 0; round < 16; ++round) {
            ERR_clear_error();
            const int rc = SSL_do_handshake(ssl_);
            const int e = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
            if (const std::size_t n = BIO_ctrl_pending(wbio); n > 0) {
                Buffer flight(n);
                if (BIO_read(wbio, flight.data(), static_cast<int>(n)) != static_cast<int>(n))
                    return fail(err, "BIO_read");
                if (!write_all(fd_, lab::frame_packets(lab::pkt::Prelogin, flight, 4096)))
                    return fail(err, "the peer closed during the TLS handshake");
            }
            if (e == SSL_ERROR_NONE) {
                if (BIO_ctrl_pending(rbio) != 0)
                    return fail(err, "TLS bytes after the peer's last handshake flight");
                // From here on the session reads and writes the socket itself.
                if (SSL_set_fd(ssl_, fd_) != 1) return fail(err, "SSL_set_fd");
                return true;
            }
            if (e != SSL_ERROR_WANT_READ) return fail(err, "TLS handshake: " + ssl_errors());
            std::uint8_t type = 0;
            Buffer in;
            if (!raw_message(fd_, type, in))
                return fail(err, "the peer closed during the TLS handshake");
            if (type != lab::pkt::Prelogin && (server || type != lab::pkt::Reply))
                return fail(err, "a packet other than PRELOGIN during the TLS handshake");
            if (BIO_write(rbio, in.data(), static_cast<int>(in.size())) !=
                static_cast<int>(in.size()))
                return fail(err, "BIO_write");
        }
        return fail(err, "the TLS handshake did not finish");
    }

    bool write(const std::uint8_t* p, std::size_t n) {
        while (n > 0) {
            const int w = SSL_write(ssl_, p, static_cast<int>(std::min<std::size_t>(n, 1 << 20)));
            if (w <= 0) return false;
            p += w;
            n -= static_cast<std::size_t>(w);
        }
        return true;
    }
    bool write(const Buffer& b) { return write(b.data(), b.size()); }
    /// Up to n bytes of plaintext; <= 0 on close, error or timeout.
    int read(std::uint8_t* p, std::size_t n) {
        return SSL_read(ssl_, p, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
    }
    bool read_exact(std::uint8_t* p, std::size_t n) {
        while (n > 0) {
            const int r = read(p, n);
            if (r <= 0) return false;
            p += r;
            n -= static_cast<std::size_t>(r);
        }
        return true;
    }
    /// One whole TDS message inside TLS.
    bool message(std::uint8_t& type, Buffer& payload) {
        payload.clear();
        for (int packets = 0; packets < 4096; ++packets) {
            std::uint8_t h[8];
            if (!read_exact(h, 8)) return false;
            const std::size_t len = be16(h + 2);
            if (len < 8 || payload.size() + len > (1u << 22)) return false;
            if (packets == 0) type = h[0];
            const std::size_t at = payload.size();
            payload.resize(at + len - 8);
            if (!read_exact(payload.data() + at, len - 8)) return false;
            if (h[1] & 0x01) return true;
        }
        return false;
    }
    /// "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256"
    [[nodiscard]] std::string session() const {
        return ssl_ ? std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_) : "";
    }
    [[nodiscard]] int fd() const { return fd_; }

  private:
    static bool fail(std::string& err, std::string why) {
        err = std::move(why);
        return false;
    }
    int fd_;
    SSL* ssl_ = nullptr;
};

/// tls-serve: one connection's life on its own thread.
void tls_serve_connection(int fd, SSL_CTX* ctx, std::atomic<unsigned>& live) {
    struct Done {
        std::atomic<unsigned>& n;
        ~Done() { n.fetch_sub(1); }
    } done{live};
    timeval tv{};
    tv.tv_sec = 30;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    set_nodelay(fd);
    TlsLink link(fd);
    std::string err;
    std::uint8_t first = 0;
    if (recv(fd, &first, 1, MSG_PEEK) != 1) return;
    if (first == 0x16) {  // a TLS handshake record: strict
        if (!link.handshake_direct(ctx, true, err)) return;
        std::uint8_t type = 0;
        Buffer pre;
        if (!link.message(type, pre) || type != lab::pkt::Prelogin || !lab::parse_prelogin(pre))
            return;
        if (!link.write(lab::frame_packets(lab::pkt::Reply,
                                           lab::build_prelogin_response(lab::enc::On), 4096)))
            return;
    } else {
        std::uint8_t type = 0;
        Buffer pre;
        if (!raw_message(fd, type, pre) || type != lab::pkt::Prelogin) return;
        const auto pi = lab::parse_prelogin(pre);
        if (!pi || !pi->encryption ||
            (*pi->encryption != lab::enc::On && *pi->encryption != lab::enc::Req))
            return;  // this server speaks TLS only
        if (!write_all(fd, lab::frame_packets(lab::pkt::Reply,
                                              lab::build_prelogin_response(lab::enc::On), 4096)))
            return;
        if (!link.handshake_wrapped(ctx, true, err)) return;
    }
    {
        // What was negotiated, one line per connection (the benchmark reports them).
        const std::string s = link.session();
        const auto sp = s.find(' ');
        std::printf("connection mode=%s tls=%s cipher=%s\n", first == 0x16 ? "strict" : "tds7",
                    s.substr(0, sp).c_str(), sp == std::string::npos ? "-" : s.c_str() + sp + 1);
        std::fflush(stdout);
    }
    std::uint8_t type = 0;
    Buffer msg;
    if (!link.message(type, msg) || type != lab::pkt::Login7) return;
    std::string why;
    const auto li = lab::parse_login7(msg, nullptr, &why);
    if (!li) return;
    const std::size_t packet_size = std::clamp<std::size_t>(li->packet_size, 512, kMaxPacket);
    if (!link.write(login_reply(static_cast<std::uint32_t>(packet_size)))) return;
    Buffer out;
    while (!g_stop.load() && link.message(type, msg) && type == lab::pkt::SqlBatch) {
        const auto sql = lab::parse_sql_batch(msg, false);
        if (!sql) return;
        std::istringstream words(*sql);
        std::string verb;
        std::uint64_t n = 1;
        words >> verb >> n;
        ResultStream stream(verb == "bytes" ? n : 1, packet_size);
        while (!stream.finished() && !g_stop.load()) {
            out.clear();
            stream.fill(out, 256 * 1024);
            if (!link.write(out)) return;
        }
    }
}

int cmd_tls_serve(Args& a) {
    std::string err;
    const auto ep = parse_endpoint(a.str("listen"), err);
    const std::string cert = a.str("cert");
    const std::string key = a.str("key");
    const std::string ciphers = a.str("ciphers", kDefaultCiphers);
    const double limit = a.real("time-limit", 7200);
    const auto max_conns = static_cast<unsigned>(a.num("max-connections", 256));
    if (!a.unknown().empty() || !ep || cert.empty() || key.empty()) {
        std::fprintf(stderr, "hopscope-proxybench tls-serve: %s\n",
                     !ep ? err.c_str()
                         : (cert.empty() || key.empty() ? std::string("--cert and --key needed")
                                                        : "bad option " + a.unknown())
                               .c_str());
        return 2;
    }
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    SSL_CTX* ctx = tls_context(true, ciphers, cert, key, err);
    if (!ctx) {
        std::fprintf(stderr, "hopscope-proxybench tls-serve: %s\n", err.c_str());
        return 1;
    }
    const int lfd = socket(ep->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, sa(*ep), ep->len) != 0 || listen(lfd, 1024) != 0) {
        std::fprintf(stderr, "hopscope-proxybench tls-serve: cannot listen: %s\n",
                     std::strerror(errno));
        return 1;
    }
    (void)ResultSet::get();
    std::atomic<unsigned> live{0};
    const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(limit * 1000));
    while (!g_stop.load() && Clock::now() < deadline) {
        pollfd p{lfd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) continue;
        const int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        if (live.load() >= max_conns) {
            close(fd);
            continue;
        }
        live.fetch_add(1);
        std::thread(tls_serve_connection, fd, ctx, std::ref(live)).detach();
    }
    close(lfd);
    // Connections end when their clients go; give them a moment, then leave (the detached
    // threads end with the process).
    for (int i = 0; i < 20 && live.load() > 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::_Exit(0);
}

/// tls-load: one client connection, logged in over TLS.
struct TlsClient {
    std::unique_ptr<TlsLink> link;
    std::string err;

    bool open(const Endpoint& to, int timeout_s, SSL_CTX* ctx, bool strict,
              std::uint32_t packet_size) {
        const int fd = connect_to(to, timeout_s);
        if (fd < 0) {
            err = std::string("connect: ") + std::strerror(errno);
            return false;
        }
        link = std::make_unique<TlsLink>(fd);
        const Buffer pre =
            lab::frame_packets(lab::pkt::Prelogin, lab::build_prelogin_request(lab::enc::On), 4096);
        std::uint8_t type = 0;
        Buffer payload;
        if (strict) {
            if (!link->handshake_direct(ctx, false, err)) return false;
            if (!link->write(pre) || !link->message(type, payload) || type != lab::pkt::Reply) {
                err = "PRELOGIN response";
                return false;
            }
        } else {
            if (!write_all(fd, pre) || !raw_message(fd, type, payload) || type != lab::pkt::Reply) {
                err = "PRELOGIN response";
                return false;
            }
            const auto pi = lab::parse_prelogin(payload);
            if (!pi || !pi->encryption || *pi->encryption != lab::enc::On) {
                err = "the server did not answer ENCRYPT_ON";
                return false;
            }
            if (!link->handshake_wrapped(ctx, false, err)) return false;
        }
        if (!link->write(lab::frame_packets(
                lab::pkt::Login7, build_sql_login7(packet_size, "bench", "bench-pw"), 4096)) ||
            !link->message(type, payload) || type != lab::pkt::Reply) {
            err = "login response";
            return false;
        }
        const auto reply = lab::parse_reply(payload, &err);
        if (!reply || !reply->loginack) {
            if (err.empty()) err = "no LOGINACK";
            return false;
        }
        return true;
    }

    /// Reads result sets (asking for the next at each DONE) until the deadline: TDS bytes read.
    std::uint64_t stream(Clock::time_point deadline, std::uint32_t packet_size, bool& ok) {
        const Buffer req = build_batch("bytes 1000000000000", 0, packet_size);
        std::vector<std::uint8_t> buf(64 * 1024);
        std::uint64_t bytes = 0;
        std::uint8_t h[8];
        std::size_t have = 0, left = 0;
        bool eom = true;
        ok = true;
        while (Clock::now() < deadline) {
            if (eom && left == 0 && have == 0) {
                if (!link->write(req)) {
                    err = "send the batch";
                    ok = false;
                    return bytes;
                }
                eom = false;
            }
            const int r = link->read(buf.data(), buf.size());
            if (r <= 0) {
                err = "read: " + ssl_errors();
                ok = false;
                return bytes;
            }
            bytes += static_cast<std::uint64_t>(r);
            // Follow the packets: type REPLY, their lengths, the end-of-message bit.
            for (std::size_t at = 0, n = static_cast<std::size_t>(r); at < n;) {
                if (left > 0) {
                    const std::size_t k = std::min(left, n - at);
                    left -= k;
                    at += k;
                    continue;
                }
                while (have < 8 && at < n)
                    h[have++] = buf[at++];
                if (have < 8) break;
                have = 0;
                const std::size_t len = be16(h + 2);
                if (h[0] != lab::pkt::Reply || len < 8) {
                    err = "not a TDS reply packet";
                    ok = false;
                    return bytes;
                }
                left = len - 8;
                eom = (h[1] & 0x01) != 0;
            }
        }
        return bytes;
    }
};

int cmd_tls_load(Args& a) {
    auto o = client_options(a, "tls-load");
    const std::string mode = a.str("mode", "tds7");
    const std::string ciphers = a.str("ciphers", kDefaultCiphers);
    const auto conns = static_cast<unsigned>(a.num("connections", 4));
    const double secs = a.real("seconds", 4);
    const auto packet_size = static_cast<std::uint32_t>(a.num("packet-size", 4096));
    if (!o || bad_options(a, "tls-load") || (mode != "tds7" && mode != "strict") || conns == 0 ||
        conns > 256 || secs <= 0 || secs > 600 || packet_size < 512 || packet_size > kMaxPacket)
        return 2;
    std::string err;
    SSL_CTX* ctx = tls_context(false, ciphers, "", "", err);
    if (!ctx) {
        std::fprintf(stderr, "hopscope-proxybench tls-load: %s\n", err.c_str());
        return 1;
    }
    const bool strict = mode == "strict";
    // Every connection logs in first; the measured time starts when all have.
    std::vector<TlsClient> clients(conns);
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    Clock::time_point deadline{};
    std::vector<std::uint64_t> bytes(conns, 0);
    std::vector<char> oks(conns, 0);
    const auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (unsigned i = 0; i < conns; ++i) {
        ts.emplace_back([&, i] {
            TlsClient& c = clients[i];
            const bool opened = c.open(o->to, o->timeout_s, ctx, strict, packet_size);
            ready.fetch_add(1);
            while (!go.load())
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            if (!opened) return;
            bool ok = false;
            bytes[i] = c.stream(deadline, packet_size, ok);
            oks[i] = ok ? 1 : 0;
        });
    }
    while (ready.load() < conns)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    const double login_s = seconds_since(t0);
    const auto t1 = Clock::now();
    deadline = t1 + std::chrono::milliseconds(static_cast<long>(secs * 1000));
    go.store(true);
    for (auto& t : ts)
        t.join();
    const double s = seconds_since(t1);
    std::uint64_t total = 0;
    unsigned good = 0;
    std::string first_err, session;
    for (unsigned i = 0; i < conns; ++i) {
        total += bytes[i];
        good += oks[i] ? 1 : 0;
        if (!oks[i] && first_err.empty()) first_err = clients[i].err;
        if (session.empty() && clients[i].link) session = clients[i].link->session();
    }
    const auto sp = session.find(' ');
    std::printf(
        "mode=%s connections=%u ok_connections=%u login_s=%.3f seconds=%.3f bytes=%llu "
        "mb_per_s=%.1f tls=%s cipher=%s ok=%d\n",
        mode.c_str(), conns, good, login_s, s, static_cast<unsigned long long>(total),
        static_cast<double>(total) / 1e6 / s,
        sp == std::string::npos ? "-" : session.substr(0, sp).c_str(),
        sp == std::string::npos ? "-" : session.substr(sp + 1).c_str(), good == conns ? 1 : 0);
    if (!first_err.empty())
        std::fprintf(stderr, "hopscope-proxybench tls-load: first failure: %s\n",
                     first_err.c_str());
    for (auto& c : clients)
        c.link.reset();
    SSL_CTX_free(ctx);
    return good == conns ? 0 : 1;
}

int usage() {
    std::fputs(
        "usage: hopscope-proxybench COMMAND --option value ...   (loopback addresses only)\n"
        "  serve   --listen ADDR:PORT [--threads N] [--time-limit S]\n"
        "  bulk    --to ADDR:PORT [--mb N] [--packet-size N] [--batches N] [--time-limit S]\n"
        "  latency --to ADDR:PORT [--also ADDR:PORT] [--baseline ADDR:PORT] [--count N]\n"
        "          [--rounds N] [--warmup N] [--request BYTES] [--response BYTES]\n"
        "          [--time-limit S]\n"
        "  conns   --to ADDR:PORT [--mode tcp|tds] [--workers N] [--seconds S] [--max N]\n"
        "  idle    --to ADDR:PORT --pid PID[,PID...] [--count N] [--mode tds|tcp] [--warm N]\n"
        "          [--settle S] [--time-limit S]\n"
        "  scrape  --to ADDR:PORT --metric NAME\n"
        "  tls-serve --listen ADDR:PORT --cert PEM --key PEM [--ciphers LIST] [--time-limit S]\n"
        "  tls-load  --to ADDR:PORT [--mode tds7|strict] [--connections N] [--seconds S]\n"
        "            [--packet-size N] [--ciphers LIST]\n"
        "Clients also take --io-timeout S (per socket operation, default 10).\n",
        stderr);
    return 2;
}

}  // namespace
}  // namespace hopscope::bench

int main(int argc, char** argv) {
    using namespace hopscope::bench;
    if (argc < 2) return usage();
    const std::string cmd = argv[1];
    Args a(argc, argv, 2);
    if (cmd == "serve") return cmd_serve(a);
    if (cmd == "tls-serve") return cmd_tls_serve(a);
    std::signal(SIGPIPE, SIG_IGN);
    if (cmd == "bulk") return cmd_bulk(a);
    if (cmd == "latency") return cmd_latency(a);
    if (cmd == "conns") return cmd_conns(a);
    if (cmd == "idle") return cmd_idle(a);
    if (cmd == "scrape") return cmd_scrape(a);
    if (cmd == "tls-load") return cmd_tls_load(a);
    return usage();
}
