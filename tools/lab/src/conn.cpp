#include "conn.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hopscope::lab {

namespace {
constexpr std::size_t kMaxMessage = 1 << 20;

std::string ssl_errors() {
    std::string s;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!s.empty()) s += "; ";
        s += buf;
    }
    return s;
}
}  // namespace

Conn::~Conn() {
    if (ssl_) SSL_free(ssl_);  // frees both BIOs
    if (fd_ >= 0) close(fd_);
}

bool Conn::raw_read(std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        const ssize_t k = recv(fd_, p, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

bool Conn::raw_write(const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        const ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

bool Conn::feed_record() {
    std::uint8_t hdr[5];
    if (!raw_read(hdr, 5)) return false;
    const std::size_t len = load_u16be(hdr + 3);
    if (hdr[0] < 0x14 || hdr[0] > 0x18 || len > 18432) return false;  // not a TLS record
    Buffer rec(5 + len);
    std::memcpy(rec.data(), hdr, 5);
    if (!raw_read(rec.data() + 5, len)) return false;
    return BIO_write(rbio_, rec.data(), static_cast<int>(rec.size())) ==
           static_cast<int>(rec.size());
}

bool Conn::flush_tls() {
    std::uint8_t buf[16384];
    while (BIO_ctrl_pending(wbio_) > 0) {
        const int k = BIO_read(wbio_, buf, sizeof buf);
        if (k <= 0) return false;
        if (!raw_write(buf, static_cast<std::size_t>(k))) return false;
    }
    return true;
}

bool Conn::io_read(std::uint8_t* p, std::size_t n) {
    if (!tls_read_) return raw_read(p, n);
    while (n > 0) {
        const int k = SSL_read(ssl_, p, static_cast<int>(n));
        if (k > 0) {
            p += k;
            n -= static_cast<std::size_t>(k);
            continue;
        }
        if (SSL_get_error(ssl_, k) != SSL_ERROR_WANT_READ || !feed_record()) return false;
    }
    return true;
}

bool Conn::io_write(const std::uint8_t* p, std::size_t n) {
    if (!tls_write_) return raw_write(p, n);
    if (SSL_write(ssl_, p, static_cast<int>(n)) != static_cast<int>(n)) return false;
    return flush_tls();
}

std::optional<Message> Conn::read_message(std::string* why) {
    Message m;
    for (;;) {
        std::uint8_t hdr[8];
        if (!io_read(hdr, 8)) {
            if (why) *why = "connection closed";
            return std::nullopt;
        }
        const std::size_t len = load_u16be(hdr + 2);
        if (len < 8) {
            if (why) *why = "TDS packet length below 8";
            return std::nullopt;
        }
        const std::size_t at = m.payload.size();
        if (at + len - 8 > kMaxMessage) {
            if (why) *why = "TDS message over 1 MiB";
            return std::nullopt;
        }
        m.payload.resize(at + len - 8);
        if (!io_read(m.payload.data() + at, len - 8)) {
            if (why) *why = "connection closed inside a packet";
            return std::nullopt;
        }
        if (at == 0) m.type = hdr[0];
        if (tls_one_packet_) tls_read_ = tls_one_packet_ = false;
        if (hdr[1] & 0x01) return m;
    }
}

bool Conn::send(std::uint8_t type, const Buffer& payload) {
    const Buffer wire = frame_packets(type, payload, packet_size_);
    return io_write(wire.data(), wire.size());
}

bool Conn::tls_accept(SSL_CTX* ctx, std::string* why) {
    return handshake_wrapped(ctx, false, why);
}

bool Conn::tls_connect(SSL_CTX* ctx, std::string* why) {
    return handshake_wrapped(ctx, true, why);
}

// Either side: each flight of records goes out in one PRELOGIN message, the peer's comes back in
// one.
bool Conn::handshake_wrapped(SSL_CTX* ctx, bool client, std::string* why) {
    ssl_ = SSL_new(ctx);
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    if (!ssl_ || !rbio_ || !wbio_) return false;
    SSL_set_bio(ssl_, rbio_, wbio_);
    if (client)
        SSL_set_connect_state(ssl_);
    else
        SSL_set_accept_state(ssl_);
    for (int round = 0; round < 16; ++round) {
        const int rc = SSL_do_handshake(ssl_);
        if (BIO_ctrl_pending(wbio_) > 0) {
            Buffer out(BIO_ctrl_pending(wbio_));
            const int k = BIO_read(wbio_, out.data(), static_cast<int>(out.size()));
            if (k <= 0) return false;
            out.resize(static_cast<std::size_t>(k));
            if (!send(pkt::Prelogin, out)) {
                if (why) *why = "peer closed during the TLS handshake";
                return false;
            }
        }
        if (rc == 1) return true;
        if (SSL_get_error(ssl_, rc) != SSL_ERROR_WANT_READ) {
            if (why) *why = "TLS handshake failed: " + ssl_errors();
            return false;
        }
        auto m = read_message(why);
        if (!m) return false;
        if (BIO_write(rbio_, m->payload.data(), static_cast<int>(m->payload.size())) !=
            static_cast<int>(m->payload.size()))
            return false;
    }
    if (why) *why = "TLS handshake did not finish";
    return false;
}

bool Conn::tls_accept_direct(SSL_CTX* ctx, std::string* why) {
    ssl_ = SSL_new(ctx);
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    if (!ssl_ || !rbio_ || !wbio_) return false;
    SSL_set_bio(ssl_, rbio_, wbio_);
    SSL_set_accept_state(ssl_);
    for (int round = 0; round < 32; ++round) {
        const int rc = SSL_do_handshake(ssl_);
        if (!flush_tls()) {
            if (why) *why = "peer closed during the TLS handshake";
            return false;
        }
        if (rc == 1) return true;
        if (SSL_get_error(ssl_, rc) != SSL_ERROR_WANT_READ) {
            if (why) *why = "TLS handshake failed: " + ssl_errors();
            return false;
        }
        if (!feed_record()) {
            if (why) *why = "peer closed during the TLS handshake";
            return false;
        }
    }
    if (why) *why = "TLS handshake did not finish";
    return false;
}

Buffer Conn::channel_binding() const {
    if (!ssl_) return {};
    static constexpr char kUnique[] = "tls-unique:";
    static constexpr char kExporter[] = "tls-exporter:";
    if (SSL_version(ssl_) >= TLS1_3_VERSION) {
        static constexpr char kLabel[] = "EXPORTER-Channel-Binding";
        Buffer out(kExporter, kExporter + sizeof kExporter - 1);
        const std::size_t at = out.size();
        out.resize(at + 32);
        if (SSL_export_keying_material(ssl_, out.data() + at, 32, kLabel, sizeof kLabel - 1,
                                       nullptr, 0, 0) != 1)
            return {};
        return out;
    }
    // The first Finished of a full handshake is the client's (no resumption in the lab).
    std::uint8_t fin[64];
    const std::size_t n = SSL_is_server(ssl_) ? SSL_get_peer_finished(ssl_, fin, sizeof fin)
                                              : SSL_get_finished(ssl_, fin, sizeof fin);
    if (n == 0 || n > sizeof fin) return {};
    Buffer out(kUnique, kUnique + sizeof kUnique - 1);
    out.insert(out.end(), fin, fin + n);
    return out;
}

std::string Conn::alpn() const {
    if (!ssl_) return "";
    const unsigned char* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl_, &p, &len);
    return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
}

int tcp_connect(const std::string& host, const std::string& port, std::string* why,
                const std::string& source) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
        if (why) *why = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    for (auto* ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        if (!source.empty() && ai->ai_family == AF_INET) {
            sockaddr_in src{};
            src.sin_family = AF_INET;
            if (inet_pton(AF_INET, source.c_str(), &src.sin_addr) != 1 ||
                bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
                close(fd);
                fd = -1;
                continue;
            }
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0 && why) *why = "cannot connect to " + host + ":" + port;
    if (fd >= 0) {  // a silent server must not hang the caller
        const timeval limit{30, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    }
    return fd;
}

}  // namespace hopscope::lab
