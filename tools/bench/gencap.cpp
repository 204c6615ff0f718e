// hopscope-gencap: writes a large, TDS-heavy capture for benchmarks, deterministically (seeded).
//
// Classic pcap, Ethernet/IPv4/TCP with valid handshakes, sequence/acknowledgement numbers,
// checksums and FINs. Many concurrent connections to a few SQL Servers on port 1433, each with
// PRELOGIN and a LOGIN7 (SQL authentication built here; NTLM and Kerberos logins replayed from
// the lab captures, see templates.inc), then SQL batches answered by result sets (COLMETADATA,
// ROW tokens, DONE) split over 4096-byte TDS packets, a few server errors (18456 on failed SQL
// logins, the linked server's ANONYMOUS LOGON 18456, 208), and Kerberos exchanges with a KDC on
// TCP port 88. Layouts follow [MS-TDS] 2.2.3.1 (packet header), 2.2.6.4 (LOGIN7), 2.2.6.5
// (PRELOGIN), 2.2.6.7 (SQLBatch, ALL_HEADERS 2.2.5.3), 2.2.7 (tokens).
//
// At the end it prints what it wrote, as one line of key=value pairs that the benchmark script
// compares with hopscope's JSON summary counters.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hopscope::bench {
namespace {

using namespace std::literals;

struct TemplateSegment {
    bool client;
    std::string_view bytes;
};
#include "templates.inc"

// ---------------------------------------------------------------------------------------------
// Deterministic randomness (splitmix64).
class Rng {
  public:
    explicit Rng(std::uint64_t seed) : s_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    /// Uniform in [lo, hi].
    std::uint64_t range(std::uint64_t lo, std::uint64_t hi) { return lo + next() % (hi - lo + 1); }
    /// True with probability `percent`/100.
    bool chance(unsigned percent) { return next() % 100 < percent; }

  private:
    std::uint64_t s_;
};

// ---------------------------------------------------------------------------------------------
// Little byte builders.
using Buf = std::string;

void u8(Buf& b, unsigned v) {
    b.push_back(static_cast<char>(v & 0xFF));
}
void le16(Buf& b, unsigned v) {
    u8(b, v);
    u8(b, v >> 8);
}
void be16(Buf& b, unsigned v) {
    u8(b, v >> 8);
    u8(b, v);
}
void le32(Buf& b, std::uint32_t v) {
    le16(b, v & 0xFFFF);
    le16(b, v >> 16);
}
void le64(Buf& b, std::uint64_t v) {
    le32(b, static_cast<std::uint32_t>(v));
    le32(b, static_cast<std::uint32_t>(v >> 32));
}
void put_le16(Buf& b, std::size_t at, unsigned v) {
    b[at] = static_cast<char>(v & 0xFF);
    b[at + 1] = static_cast<char>((v >> 8) & 0xFF);
}
/// ASCII to UCS-2LE.
void ucs2(Buf& b, std::string_view s) {
    for (char c : s)
        le16(b, static_cast<unsigned char>(c));
}
/// B_VARCHAR: character count in one byte, then UCS-2LE.
void b_varchar(Buf& b, std::string_view s) {
    u8(b, static_cast<unsigned>(s.size()));
    ucs2(b, s);
}
/// US_VARCHAR: character count in two bytes, then UCS-2LE.
void us_varchar(Buf& b, std::string_view s) {
    le16(b, static_cast<unsigned>(s.size()));
    ucs2(b, s);
}

constexpr std::size_t kTdsPacketSize = 4096;  // negotiated packet size, header included

/// Splits a TDS message into packets [MS-TDS 2.2.3.1]: status EOM (0x01) on the last one, the
/// packet id counting from 1.
Buf tds_message(std::uint8_t type, std::string_view body) {
    Buf out;
    out.reserve(body.size() + (body.size() / (kTdsPacketSize - 8) + 1) * 8);
    std::size_t off = 0;
    unsigned id = 1;
    do {
        const std::size_t n = std::min(body.size() - off, kTdsPacketSize - 8);
        const bool last = off + n == body.size();
        u8(out, type);
        u8(out, last ? 0x01 : 0x00);
        be16(out, static_cast<unsigned>(n + 8));
        be16(out, 0);  // SPID
        u8(out, id++ & 0xFF);
        u8(out, 0);  // window
        out.append(body.substr(off, n));
        off += n;
    } while (off < body.size());
    return out;
}

// PRELOGIN [MS-TDS 2.2.6.5]: VERSION, ENCRYPTION (ENCRYPT_NOT_SUP), INSTOPT, THREADID, MARS.
Buf prelogin_request(Rng& rng) {
    Buf b;
    const unsigned opts = 5, table = opts * 5 + 1;
    unsigned off = table;
    const std::array<std::pair<unsigned, unsigned>, 5> o{{{0, 6}, {1, 1}, {2, 1}, {3, 4}, {4, 1}}};
    for (auto [tok, len] : o) {
        u8(b, tok);
        be16(b, off);
        be16(b, len);
        off += len;
    }
    u8(b, 0xFF);
    u8(b, 11), u8(b, 0), be16(b, 0), be16(b, 0);  // client version 11.0.0.0
    u8(b, 0x02);                                  // ENCRYPT_NOT_SUP
    u8(b, 0);                                     // default instance
    le32(b, static_cast<std::uint32_t>(rng.range(1000, 60000)));
    u8(b, 0);  // MARS off
    return tds_message(0x12, b);
}

Buf prelogin_response() {
    Buf b;
    const unsigned table = 4 * 5 + 1;
    unsigned off = table;
    const std::array<std::pair<unsigned, unsigned>, 4> o{{{0, 6}, {1, 1}, {2, 1}, {4, 1}}};
    for (auto [tok, len] : o) {
        u8(b, tok);
        be16(b, off);
        be16(b, len);
        off += len;
    }
    u8(b, 0xFF);
    u8(b, 16), u8(b, 0), be16(b, 0x1068), be16(b, 0);  // 16.0.4200
    u8(b, 0x02);
    u8(b, 0);
    u8(b, 0);
    return tds_message(0x04, b);
}

/// LOGIN7 with SQL authentication [MS-TDS 2.2.6.4]; the password is obfuscated as the spec
/// says (nibbles swapped, XOR 0xA5).
Buf login7_sql(std::string_view host, std::string_view user, std::string_view password,
               std::string_view app, std::string_view server, std::string_view database) {
    Buf b(94, '\0');
    std::size_t at = 0;
    auto set32 = [&b](std::size_t pos, std::uint32_t v) {
        for (int i = 0; i < 4; ++i)
            b[pos + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
    };
    set32(4, 0x74000004);  // TDS 7.4
    set32(8, kTdsPacketSize);
    set32(12, 0x07000000);
    set32(16, 4242);
    b[24] = static_cast<char>(0xE0);  // OptionFlags1: USE_DB, INIT_DB_FATAL, SET_LANG
    b[25] = 0x03;                     // OptionFlags2: INIT_LANG_FATAL, ODBC
    b[32] = 0x09, b[33] = 0x04;       // LCID 0x0409
    at = 36;
    auto field = [&b, &at](std::string_view s, bool obfuscate = false) {
        put_le16(b, at, static_cast<unsigned>(b.size()));
        put_le16(b, at + 2, static_cast<unsigned>(s.size()));
        at += 4;
        for (char c : s) {
            unsigned lo = static_cast<unsigned char>(c), hi = 0;
            if (obfuscate) {
                lo = (((lo << 4) | (lo >> 4)) & 0xFF) ^ 0xA5;
                hi = 0xA5;  // the high byte 0x00, obfuscated
            }
            u8(b, lo);
            u8(b, hi);
        }
    };
    field(host);
    field(user);
    field(password, true);
    field(app);
    field(server);
    field("");  // extension (unused)
    field("hopscope-gencap");
    field("");  // language
    field(database);
    at += 6;    // ClientID (MAC address), zero
    field("");  // SSPI
    field("");  // AtchDBFile
    field("");  // ChangePassword
    set32(0, static_cast<std::uint32_t>(b.size()));
    return tds_message(0x10, b);
}

void done_token(Buf& b, unsigned status, unsigned curcmd, std::uint64_t rows) {
    u8(b, 0xFD);
    le16(b, status);
    le16(b, curcmd);
    le64(b, rows);
}

void error_token(Buf& b, std::uint32_t number, unsigned state, unsigned cls, std::string_view msg,
                 std::string_view server) {
    Buf t;
    le32(t, number);
    u8(t, state);
    u8(t, cls);
    us_varchar(t, msg);
    b_varchar(t, server);
    b_varchar(t, "");
    le32(t, 1);
    u8(b, 0xAA);
    le16(b, static_cast<unsigned>(t.size()));
    b += t;
}

void envchange_database(Buf& b, std::string_view db) {
    Buf t;
    u8(t, 1);
    b_varchar(t, db);
    b_varchar(t, "master");
    u8(b, 0xE3);
    le16(b, static_cast<unsigned>(t.size()));
    b += t;
}

Buf login_ack_response(std::string_view db) {
    Buf b;
    envchange_database(b, db);
    Buf t;
    u8(t, 1);  // SQL_TSQL
    u8(t, 0x74), u8(t, 0), u8(t, 0), u8(t, 0x04);
    b_varchar(t, "Microsoft SQL Server");
    u8(t, 16), u8(t, 0), u8(t, 0x10), u8(t, 0x68);
    u8(b, 0xAD);
    le16(b, static_cast<unsigned>(t.size()));
    b += t;
    done_token(b, 0, 0, 0);
    return tds_message(0x04, b);
}

Buf sql_batch(std::string_view sql) {
    Buf b;
    le32(b, 22);  // ALL_HEADERS total length [MS-TDS 2.2.5.3]
    le32(b, 18);
    le16(b, 2);  // transaction descriptor
    le64(b, 0);
    le32(b, 1);
    ucs2(b, sql);
    return tds_message(0x01, b);
}

/// COLMETADATA + `rows` ROW tokens + DONE(count) [MS-TDS 2.2.7.4, 2.2.7.19, 2.2.7.6]. Columns:
/// id INT, amount BIGINT (INTN 8), price FLOAT, name NVARCHAR(64), note NVARCHAR(200).
Buf result_set(Rng& rng, std::uint64_t rows) {
    static constexpr std::string_view kWords[] = {
        "alpha", "bravo",  "charlie", "delta", "echo", "foxtrot",  "golf",  "hotel",
        "india", "juliet", "kilo",    "lima",  "mike", "november", "oscar", "papa"};
    Buf b;
    b.reserve(64 + rows * 120);
    u8(b, 0x81);
    le16(b, 5);
    auto col = [&b](unsigned flags) {  // UserType, Flags (nullable)
        le32(b, 0);
        le16(b, flags);
    };
    const unsigned char collation[5] = {0x09, 0x04, 0xD0, 0x00, 0x34};
    col(0x0000);
    u8(b, 0x38);  // INT4
    b_varchar(b, "id");
    col(0x0001);
    u8(b, 0x26), u8(b, 8);  // INTN(8)
    b_varchar(b, "amount");
    col(0x0001);
    u8(b, 0x3E);  // FLT8
    b_varchar(b, "price");
    col(0x0001);
    u8(b, 0xE7), le16(b, 128);  // NVARCHAR(64)
    b.append(reinterpret_cast<const char*>(collation), 5);
    b_varchar(b, "name");
    col(0x0001);
    u8(b, 0xE7), le16(b, 400);  // NVARCHAR(200)
    b.append(reinterpret_cast<const char*>(collation), 5);
    b_varchar(b, "note");
    const std::uint32_t base = static_cast<std::uint32_t>(rng.range(1, 1'000'000));
    for (std::uint64_t r = 0; r < rows; ++r) {
        const std::uint64_t x = rng.next();
        u8(b, 0xD1);
        le32(b, base + static_cast<std::uint32_t>(r));
        if ((x & 0x1F) == 0) {
            u8(b, 0);  // NULL
        } else {
            u8(b, 8);
            le64(b, x >> 8);
        }
        const double price = static_cast<double>(x % 100000) / 100.0;
        std::uint64_t bits = 0;
        std::memcpy(&bits, &price, sizeof bits);
        le64(b, bits);
        const std::string_view w1 = kWords[(x >> 12) & 15], w2 = kWords[(x >> 16) & 15];
        le16(b, static_cast<unsigned>(2 * (w1.size() + 1 + w2.size())));
        ucs2(b, w1);
        ucs2(b, " ");
        ucs2(b, w2);
        const unsigned words = static_cast<unsigned>((x >> 20) % 8);
        std::size_t len_at = b.size();
        le16(b, 0);
        std::size_t chars = 0;
        for (unsigned i = 0; i < words; ++i) {
            const std::string_view w = kWords[(x >> (24 + 4 * i)) & 15];
            if (i) ucs2(b, " "), ++chars;
            ucs2(b, w);
            chars += w.size();
        }
        put_le16(b, len_at, static_cast<unsigned>(2 * chars));
    }
    done_token(b, 0x0010, 0xC1, rows);
    return b;
}

// ---------------------------------------------------------------------------------------------
// Classic pcap output with a large buffer.
class PcapWriter {
  public:
    bool open(const std::string& path) {
        fp_ = path == "-" ? stdout : std::fopen(path.c_str(), "wb");
        if (!fp_) return false;
        buf_.reserve(kFlush + 70000);
        Buf h;
        le32(h, 0xA1B2C3D4);
        le16(h, 2);
        le16(h, 4);
        le32(h, 0);
        le32(h, 0);
        le32(h, 262144);
        le32(h, 1);  // LINKTYPE_ETHERNET
        buf_ += h;
        bytes_ = h.size();
        return true;
    }
    void record(std::uint64_t ts_us, const Buf& frame) { record(ts_us, frame, frame.size()); }
    /// A frame of which `frame` is the captured part (`orig_len` long on the wire).
    void record(std::uint64_t ts_us, const Buf& frame, std::size_t orig_len) {
        Buf h;
        le32(h, static_cast<std::uint32_t>(ts_us / 1'000'000));
        le32(h, static_cast<std::uint32_t>(ts_us % 1'000'000));
        le32(h, static_cast<std::uint32_t>(frame.size()));
        le32(h, static_cast<std::uint32_t>(orig_len));
        buf_ += h;
        buf_ += frame;
        bytes_ += h.size() + frame.size();
        ++frames_;
        if (buf_.size() >= kFlush) flush();
    }
    bool close() {
        flush();
        bool ok = ok_;
        if (fp_ && fp_ != stdout) ok = std::fclose(fp_) == 0 && ok;
        fp_ = nullptr;
        return ok;
    }
    [[nodiscard]] std::uint64_t bytes() const { return bytes_; }
    [[nodiscard]] std::uint64_t frames() const { return frames_; }

  private:
    void flush() {
        if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), fp_) != buf_.size())
            ok_ = false;
        buf_.clear();
    }
    static constexpr std::size_t kFlush = 4 << 20;
    std::FILE* fp_ = nullptr;
    Buf buf_;
    std::uint64_t bytes_ = 0, frames_ = 0;
    bool ok_ = true;
};

std::uint32_t sum16(const char* p, std::size_t n, std::uint32_t acc) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i + 1 < n; i += 2)
        acc += (u[i] << 8) | u[i + 1];
    if (n & 1) acc += u[n - 1] << 8;
    return acc;
}
/// A one's-complement sum with its carries added back in: 16 bits.
std::uint16_t carry(std::uint32_t acc) {
    while (acc >> 16)
        acc = (acc & 0xFFFF) + (acc >> 16);
    return static_cast<std::uint16_t>(acc);
}
/// The Internet checksum of a sum (RFC 1071).
std::uint16_t fold(std::uint32_t acc) {
    return static_cast<std::uint16_t>(~carry(acc) & 0xFFFF);
}

// ---------------------------------------------------------------------------------------------
// TCP connections as message lists, emitted segment by segment.
struct Message {
    bool client;
    Buf bytes;
};

struct Endpoint {
    std::uint32_t ip;
    std::uint16_t port;
    std::uint32_t seq;  ///< next sequence number to send
};

enum : std::uint8_t { kFin = 0x01, kSyn = 0x02, kPsh = 0x08, kAck = 0x10 };

class Emitter {
  public:
    Emitter(PcapWriter& w, Rng& rng, std::uint64_t start_us, std::uint64_t max_gap_us)
        : w_(w), rng_(rng), now_(start_us), max_gap_us_(max_gap_us) {}

    void segment(const Endpoint& from, const Endpoint& to, std::uint8_t flags,
                 std::string_view payload) {
        const std::size_t tcp_at = begin(from, to, 6, 20 + payload.size(), true);
        be16(frame_, from.port);
        be16(frame_, to.port);
        be32(frame_, from.seq);
        be32(frame_, (flags & kAck) ? to.seq : 0);
        u8(frame_, 5 << 4);
        u8(frame_, flags);
        be16(frame_, 64240);
        be16(frame_, 0);  // checksum, below
        be16(frame_, 0);
        frame_.append(payload);
        finish(from, to, 6, tcp_at);
    }
    /// One UDP datagram (Kerberos over UDP: the message without TCP's 4-byte length).
    void datagram(const Endpoint& from, const Endpoint& to, std::string_view payload) {
        const unsigned udp_len = 8 + static_cast<unsigned>(payload.size());
        const std::size_t udp_at = begin(from, to, 17, udp_len, false);
        be16(frame_, from.port);
        be16(frame_, to.port);
        be16(frame_, udp_len);
        be16(frame_, 0);  // checksum, below
        frame_.append(payload);
        finish(from, to, 17, udp_at);
    }
    void pause(std::uint64_t us) { now_ += us; }

  private:
    /// The next packet's time, its Ethernet and IPv4 headers (checksum included) for a
    /// transport header and payload of `l4_len` bytes: where the transport header starts.
    std::size_t begin(const Endpoint& from, const Endpoint& to, std::uint8_t proto,
                      std::size_t l4_len, bool dont_fragment) {
        now_ += rng_.range(1, max_gap_us_);
        frame_.clear();
        // Ethernet: locally administered MACs derived from the IPs.
        mac(frame_, to.ip);
        mac(frame_, from.ip);
        be16(frame_, 0x0800);
        // IPv4
        const std::size_t ip_at = frame_.size();
        u8(frame_, 0x45);
        u8(frame_, 0);
        be16(frame_, static_cast<unsigned>(20 + l4_len));
        be16(frame_, ip_id_++ & 0xFFFF);
        be16(frame_, dont_fragment ? 0x4000 : 0);
        u8(frame_, 64);
        u8(frame_, proto);
        be16(frame_, 0);
        be32(frame_, from.ip);
        be32(frame_, to.ip);
        const std::uint16_t ipsum = fold(sum16(frame_.data() + ip_at, 20, 0));
        frame_[ip_at + 10] = static_cast<char>(ipsum >> 8);
        frame_[ip_at + 11] = static_cast<char>(ipsum & 0xFF);
        return frame_.size();
    }
    /// The TCP (6) or UDP (17) checksum over the IPv4 pseudo-header and the transport header
    /// that starts at `l4_at`, then the frame to the file. UDP writes a zero sum as 0xFFFF: 0
    /// means "no checksum" there.
    void finish(const Endpoint& from, const Endpoint& to, std::uint8_t proto, std::size_t l4_at) {
        const std::size_t sum_at = l4_at + (proto == 6 ? 16 : 6);
        std::uint32_t acc = 0;
        acc += from.ip >> 16, acc += from.ip & 0xFFFF, acc += to.ip >> 16, acc += to.ip & 0xFFFF;
        acc += proto + static_cast<std::uint32_t>(frame_.size() - l4_at);
        std::uint16_t sum = fold(sum16(frame_.data() + l4_at, frame_.size() - l4_at, acc));
        if (proto == 17 && sum == 0) sum = 0xFFFF;
        frame_[sum_at] = static_cast<char>(sum >> 8);
        frame_[sum_at + 1] = static_cast<char>(sum & 0xFF);
        w_.record(now_, frame_);
    }
    static void be32(Buf& b, std::uint32_t v) {
        be16(b, v >> 16);
        be16(b, v & 0xFFFF);
    }
    static void mac(Buf& b, std::uint32_t ip) {
        u8(b, 0x02);
        u8(b, 0x00);
        be32(b, ip);
    }
    PcapWriter& w_;
    Rng& rng_;
    std::uint64_t now_;
    std::uint64_t max_gap_us_;
    std::uint32_t ip_id_ = 1;
    Buf frame_;
};

class Connection {
  public:
    Connection(Endpoint client, Endpoint server, std::vector<Message> msgs, bool udp = false)
        : c_(client), s_(server), msgs_(std::move(msgs)), udp_(udp) {}

    /// Emits the next few packets; false when the connection is closed.
    bool step(Emitter& e, Rng& rng) {
        if (udp_) {  // one datagram a step, each message without TCP's record marker
            const Message& m = msgs_[msg_];
            e.datagram(m.client ? c_ : s_, m.client ? s_ : c_,
                       std::string_view(m.bytes).substr(std::min<std::size_t>(4, m.bytes.size())));
            return ++msg_ < msgs_.size();
        }
        switch (phase_) {
            case 0:
                e.segment(c_, s_, kSyn, {});
                ++c_.seq;
                e.segment(s_, c_, kSyn | kAck, {});
                ++s_.seq;
                e.segment(c_, s_, kAck, {});
                phase_ = 1;
                return true;
            case 1: {
                if (msg_ == msgs_.size()) {
                    phase_ = 2;
                    return true;
                }
                const Message& m = msgs_[msg_];
                Endpoint& from = m.client ? c_ : s_;
                Endpoint& to = m.client ? s_ : c_;
                const unsigned burst = static_cast<unsigned>(rng.range(1, 8));
                for (unsigned i = 0; i < burst && off_ < m.bytes.size(); ++i) {
                    const std::size_t n = std::min<std::size_t>(1460, m.bytes.size() - off_);
                    const bool last = off_ + n == m.bytes.size();
                    e.segment(from, to, kAck | (last ? kPsh : 0),
                              std::string_view(m.bytes).substr(off_, n));
                    from.seq += static_cast<std::uint32_t>(n);
                    off_ += n;
                    if (++unacked_ == 2 || last) {  // delayed ACK: every second segment
                        e.segment(to, from, kAck, {});
                        unacked_ = 0;
                    }
                }
                if (off_ == m.bytes.size()) {
                    ++msg_;
                    off_ = 0;
                    unacked_ = 0;
                }
                return true;
            }
            case 2:
                e.segment(c_, s_, kFin | kAck, {});
                ++c_.seq;
                e.segment(s_, c_, kFin | kAck, {});
                ++s_.seq;
                e.segment(c_, s_, kAck, {});
                phase_ = 3;
                return false;
            default:
                return false;
        }
    }

  private:
    Endpoint c_, s_;
    std::vector<Message> msgs_;
    int phase_ = 0;
    std::size_t msg_ = 0, off_ = 0;
    unsigned unacked_ = 0;
    bool udp_ = false;
};

// ---------------------------------------------------------------------------------------------
/// What was written. server_errors: ERROR tokens after a successful login (a failed login's
/// 18456 is counted in failed_logins).
struct Totals {
    std::uint64_t tds_connections = 0, logins = 0, sql_logins = 0, ntlm_logins = 0,
                  kerberos_logins = 0, failed_logins = 0, server_errors = 0, anonymous_errors = 0,
                  kdc_flows = 0, kdc_messages = 0, kdc_udp_messages = 0, batches = 0, rows = 0;
};

class Generator {
  public:
    Generator(std::uint64_t seed, std::uint64_t target, unsigned concurrency,
              std::uint64_t max_gap_us, unsigned max_batches, bool logins_profile, PcapWriter& w)
        : rng_(seed),
          target_(target),
          concurrency_(concurrency),
          max_batches_(max_batches),
          logins_profile_(logins_profile),
          w_(w),
          emit_(w, rng_, 1'793'613'600ULL * 1'000'000ULL, max_gap_us) {}  // 2026-11-02 10:00 UTC

    void run() {
        std::vector<std::unique_ptr<Connection>> active;
        while (true) {
            while (active.size() < concurrency_ && w_.bytes() < target_)
                active.push_back(new_connection());
            if (active.empty()) break;
            const std::size_t i = rng_.next() % active.size();
            if (!active[i]->step(emit_, rng_)) {
                active[i] = std::move(active.back());
                active.pop_back();
            }
        }
    }
    [[nodiscard]] const Totals& totals() const { return t_; }

  private:
    static constexpr std::uint32_t kClientNet = 0x0A140000;  // 10.20.0.0/16
    static constexpr std::uint32_t kServerNet = 0x0A0A0000;  // 10.10.0.0/16
    static constexpr std::uint32_t kKdc = 0x0A0A0064;        // 10.10.0.100
    static constexpr unsigned kClients = 250, kServers = 4;

    Endpoint client_endpoint() {
        const unsigned c = static_cast<unsigned>(rng_.next() % kClients);
        const std::uint16_t port = static_cast<std::uint16_t>(49152 + (next_port_[c]++ % 16384));
        return {kClientNet + 1 + c, port, static_cast<std::uint32_t>(rng_.next())};
    }

    /// The server's last answer of a replayed login replaced by error 18456.
    void refuse(std::vector<Message>& m, const std::string& text, const std::string& server) {
        while (!m.empty() && !m.back().client)
            m.pop_back();
        Buf b;
        error_token(b, 18456, 1, 14, text, server);
        done_token(b, 0x0002, 0, 0);
        m.push_back({false, tds_message(0x04, b)});
        ++t_.failed_logins;
    }

    static void replay(std::vector<Message>& m, const TemplateSegment* segs, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i)
            m.push_back({segs[i].client, Buf(segs[i].bytes)});
    }

    std::unique_ptr<Connection> new_connection() {
        std::vector<Message> m;
        // One KDC conversation for every few SQL connections; the logins profile has a busy KDC
        // (about as many KDC exchanges as logins), half of them over UDP.
        if (logins_profile_ ? rng_.chance(50) : rng_.chance(15)) {
            const unsigned k = static_cast<unsigned>(rng_.range(0, 9));
            if (k == 0)
                replay(m, kKdcPreauthRequired, std::size(kKdcPreauthRequired));
            else if (k <= 3)
                replay(m, kKdcAsExchange, std::size(kKdcAsExchange));
            else
                replay(m, kKdcTgsExchange, std::size(kKdcTgsExchange));
            ++t_.kdc_flows;
            t_.kdc_messages += m.size();
            const bool udp = logins_profile_ && rng_.chance(50);
            t_.kdc_udp_messages += udp ? m.size() : 0;
            return std::make_unique<Connection>(
                client_endpoint(), Endpoint{kKdc, 88, static_cast<std::uint32_t>(rng_.next())},
                std::move(m), udp);
        }
        ++t_.tds_connections;
        ++t_.logins;
        const unsigned server = static_cast<unsigned>(rng_.range(1, kServers));
        const Endpoint srv{kServerNet + server, 1433, static_cast<std::uint32_t>(rng_.next())};
        const std::string user = "app" + std::to_string(rng_.range(1, 40));
        const std::string db = "sales" + std::to_string(server);
        const unsigned kind = static_cast<unsigned>(rng_.range(0, 9));
        if (kind < 4) {  // SQL authentication
            ++t_.sql_logins;
            m.push_back({true, prelogin_request(rng_)});
            m.push_back({false, prelogin_response()});
            m.push_back({true, login7_sql("ws" + std::to_string(rng_.range(1, 250)), user,
                                          "Secret-" + std::to_string(rng_.next() % 100000), "app",
                                          "sql" + std::to_string(server), db)});
            if (rng_.chance(8)) {  // wrong password
                Buf b;
                error_token(b, 18456, 1, 14, "Login failed for user '" + user + "'.",
                            "SQL" + std::to_string(server));
                done_token(b, 0x0002, 0, 0);
                m.push_back({false, tds_message(0x04, b)});
                ++t_.failed_logins;  // its error is part of the login, not a server error
                return std::make_unique<Connection>(client_endpoint(), srv, std::move(m));
            }
            m.push_back({false, login_ack_response(db)});
        } else if (kind < 7) {
            ++t_.ntlm_logins;
            replay(m, kNtlmLogin, std::size(kNtlmLogin));
            if (logins_profile_ && rng_.chance(10)) {  // the NTLM AUTHENTICATE refused
                refuse(m, "Login failed for user 'LAB\\bob'.", "SQL" + std::to_string(server));
                return std::make_unique<Connection>(client_endpoint(), srv, std::move(m));
            }
        } else {
            ++t_.kerberos_logins;
            replay(m, kKerberosLogin, std::size(kKerberosLogin));
            if (logins_profile_ && rng_.chance(10)) {  // refused after the AP-REQ (no AP-REP)
                refuse(m, "Login failed for user 'LAB\\alice'.", "SQL" + std::to_string(server));
                return std::make_unique<Connection>(client_endpoint(), srv, std::move(m));
            }
        }
        const unsigned batches =
            max_batches_ ? static_cast<unsigned>(rng_.range(1, max_batches_)) : 0;
        for (unsigned i = 0; i < batches; ++i) {
            ++t_.batches;
            const unsigned what = static_cast<unsigned>(rng_.range(0, 99));
            if (what < 2) {
                m.push_back({true, sql_batch("SELECT * FROM SQLB.sales.dbo.orders")});
                Buf b;
                error_token(b, 18456, 1, 14,
                            "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.", "SQLB");
                done_token(b, 0x0002, 0xC1, 0);
                m.push_back({false, tds_message(0x04, b)});
                ++t_.server_errors;
                ++t_.anonymous_errors;
                continue;
            }
            if (what < 4) {
                m.push_back({true, sql_batch("SELECT * FROM dbo.missing_table")});
                Buf b;
                error_token(b, 208, 1, 16, "Invalid object name 'dbo.missing_table'.",
                            "SQL" + std::to_string(server));
                done_token(b, 0x0002, 0xC1, 0);
                m.push_back({false, tds_message(0x04, b)});
                ++t_.server_errors;
                continue;
            }
            const std::uint64_t rows = rng_.chance(25) ? rng_.range(500, 12000) : rng_.range(1, 60);
            m.push_back({true, sql_batch("SELECT id, amount, price, name, note FROM dbo.orders "
                                         "WHERE region = " +
                                         std::to_string(rng_.range(1, 99)))});
            m.push_back({false, tds_message(0x04, result_set(rng_, rows))});
            t_.rows += rows;
        }
        return std::make_unique<Connection>(client_endpoint(), srv, std::move(m));
    }

    Rng rng_;
    std::uint64_t target_;
    unsigned concurrency_;
    unsigned max_batches_;
    bool logins_profile_;
    PcapWriter& w_;
    Emitter emit_;
    Totals t_;
    std::array<std::uint32_t, kClients> next_port_{};
};

bool parse_size(const char* s, std::uint64_t& out) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s, &end);
    if (errno || end == s || v <= 0) return false;
    double mult = 1;
    switch (*end) {
        case '\0':
            break;
        case 'k':
        case 'K':
            mult = 1024.0;
            ++end;
            break;
        case 'm':
        case 'M':
            mult = 1024.0 * 1024;
            ++end;
            break;
        case 'g':
        case 'G':
            mult = 1024.0 * 1024 * 1024;
            ++end;
            break;
        default:
            return false;
    }
    if (*end != '\0') return false;
    out = static_cast<std::uint64_t>(v * mult);
    return true;
}

// ---------------------------------------------------------------------------------------------
// --replicate: real captures (the lab's) repeated with fresh addresses, for a benchmark shape of
// real traffic. Each copy k (1, 2, ...) maps every IPv4 address a.b.c.d to a.(k>>8).(k&255).d,
// so that the hosts of one copy keep their roles (a middle server is the client of its linked
// server in the same copy) and no two copies share a flow; the IPv4, TCP and UDP checksums are
// adjusted for the new addresses (RFC 1624), so a checksum that was right stays right. The
// inputs follow each other in time, one copy after another, 1 ms apart.

/// One input frame.
struct InFrame {
    std::uint64_t ts_us;
    std::uint32_t orig_len;
    Buf bytes;
};

/// The frames of a classic little-endian Ethernet pcap (microsecond or nanosecond stamps).
bool read_pcap(const std::string& path, std::vector<InFrame>& out, std::string& err) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f) {
        err = path + ": " + std::strerror(errno);
        return false;
    }
    unsigned char h[24];
    if (std::fread(h, 1, sizeof h, f.get()) != sizeof h) {
        err = path + ": not a pcap file (short header)";
        return false;
    }
    auto u32 = [](const unsigned char* p) {
        return static_cast<std::uint32_t>(p[0] | (p[1] << 8) | (p[2] << 16)) |
               (static_cast<std::uint32_t>(p[3]) << 24);
    };
    const std::uint32_t magic = u32(h);
    if (magic != 0xA1B2C3D4 && magic != 0xA1B23C4D) {
        err =
            path + ": not a little-endian classic pcap file (pcapng? convert with editcap -F pcap)";
        return false;
    }
    if (u32(h + 20) != 1) {
        err = path + ": link type " + std::to_string(u32(h + 20)) + ", not Ethernet";
        return false;
    }
    const bool nanos = magic == 0xA1B23C4D;
    unsigned char r[16];
    while (std::fread(r, 1, sizeof r, f.get()) == sizeof r) {
        InFrame fr;
        const std::uint32_t frac = u32(r + 4);
        fr.ts_us = std::uint64_t{u32(r)} * 1'000'000 + (nanos ? frac / 1000 : frac);
        const std::uint32_t caplen = u32(r + 8);
        fr.orig_len = u32(r + 12);
        if (caplen > 262144) {
            err = path + ": a record of " + std::to_string(caplen) + " bytes";
            return false;
        }
        fr.bytes.resize(caplen);
        if (std::fread(fr.bytes.data(), 1, caplen, f.get()) != caplen) {
            err = path + ": truncated record";
            return false;
        }
        out.push_back(std::move(fr));
    }
    return true;
}

/// The 16-bit checksum at `p` updated for covered words whose sum went from `old_sum` to
/// `new_sum` (RFC 1624: HC' = ~(~HC + ~m + m')).
void adjust_checksum(char* p, std::uint16_t old_sum, std::uint16_t new_sum, bool udp) {
    auto* u = reinterpret_cast<unsigned char*>(p);
    const std::uint32_t hc = (u[0] << 8) | u[1];
    if (udp && hc == 0) return;  // UDP over IPv4: no checksum
    std::uint16_t out = fold((~hc & 0xFFFF) + (~std::uint32_t{old_sum} & 0xFFFF) + new_sum);
    if (udp && out == 0) out = 0xFFFF;
    u[0] = static_cast<unsigned char>(out >> 8);
    u[1] = static_cast<unsigned char>(out & 0xFF);
}

/// Copy `k` of an Ethernet frame: IPv4 addresses renumbered, checksums adjusted. Frames that
/// are not IPv4 (ARP, IPv6) are copied as they are.
void renumber(Buf& frame, unsigned k) {
    std::size_t off = 14;
    if (frame.size() < off + 20) return;
    auto* u = reinterpret_cast<unsigned char*>(frame.data());
    std::uint16_t type = static_cast<std::uint16_t>((u[12] << 8) | u[13]);
    if (type == 0x8100 && frame.size() >= 18 + 20) {  // one VLAN tag
        type = static_cast<std::uint16_t>((u[16] << 8) | u[17]);
        off = 18;
    }
    if (type != 0x0800 || (u[off] >> 4) != 4) return;
    unsigned char* ip = u + off;
    const std::size_t ihl = static_cast<std::size_t>(ip[0] & 0x0F) * 4;
    const char* addrs = reinterpret_cast<const char*>(ip + 12);  // source and destination
    const std::uint16_t before = carry(sum16(addrs, 8, 0));
    for (unsigned char* a : {ip + 12, ip + 16}) {
        a[1] = static_cast<unsigned char>(k >> 8);
        a[2] = static_cast<unsigned char>(k & 0xFF);
    }
    const std::uint16_t after = carry(sum16(addrs, 8, 0));
    adjust_checksum(reinterpret_cast<char*>(ip + 10), before, after, false);
    // The transport checksum covers the pseudo-header's addresses: only in the first fragment.
    const bool first_fragment = ((ip[6] & 0x1F) | ip[7]) == 0;
    if (!first_fragment || ihl < 20) return;
    const std::size_t l4 = off + ihl;
    if (ip[9] == 6 && frame.size() >= l4 + 18)
        adjust_checksum(frame.data() + l4 + 16, before, after, false);
    else if (ip[9] == 17 && frame.size() >= l4 + 8)
        adjust_checksum(frame.data() + l4 + 6, before, after, true);
}

/// Writes copies of `inputs` until `size` bytes are reached (whole copies only); the number of
/// copies in `copies`.
bool replicate(const std::vector<std::string>& inputs, std::uint64_t size, PcapWriter& w,
               unsigned& copies, std::string& err) {
    std::vector<std::vector<InFrame>> files;
    for (const std::string& path : inputs) {
        files.emplace_back();
        if (!read_pcap(path, files.back(), err)) return false;
    }
    std::uint64_t clock = 1'700'000'000ULL * 1'000'000;  // 2023-11-14, whatever the inputs say
    copies = 0;
    while (copies == 0 || w.bytes() < size) {
        if (++copies > 65535) {
            err = "more than 65535 copies: give larger inputs or a smaller --size";
            return false;
        }
        for (const auto& frames : files) {
            if (frames.empty()) continue;
            const std::uint64_t first = frames.front().ts_us;
            std::uint64_t last = clock;
            for (const InFrame& f : frames) {
                Buf b = f.bytes;
                renumber(b, copies);
                // Stamps keep their spacing (never going back: a capture's may, slightly).
                last = std::max(last, clock + (f.ts_us >= first ? f.ts_us - first : 0));
                w.record(last, b, f.orig_len);
            }
            clock = last + 1000;
        }
    }
    return true;
}

int usage() {
    std::fputs(
        "usage: hopscope-gencap --size N[K|M|G] --out FILE [--seed N] [--concurrency N]\n"
        "                       [--max-gap-us N] [--max-batches N] [--profile mix|logins]\n"
        "Writes a deterministic TDS-heavy classic pcap of about N bytes ('-' = stdout) and\n"
        "prints what it contains as key=value pairs on stderr. --concurrency: connections\n"
        "open at once (24); --max-gap-us: packets are 1..N microseconds apart (120, i.e.\n"
        "about 16 MB/s of traffic; larger values spread the same traffic over more time);\n"
        "--max-batches: SQL batches per connection are 1..N (6); 0 = logins only.\n"
        "--profile: mix (the default: logins, result sets, a KDC on TCP) or logins (no\n"
        "batches unless --max-batches says otherwise, a busy KDC on UDP and TCP: about\n"
        "as many KDC exchanges as logins, half of them in datagrams; a tenth of the NTLM\n"
        "and Kerberos logins refused with 18456).\n"
        "\n"
        "       hopscope-gencap --size N[K|M|G] --out FILE --replicate PCAP [--replicate ...]\n"
        "Real captures (classic Ethernet pcap, e.g. captures/lab/*.pcap) one after another,\n"
        "repeated with fresh IPv4 addresses per copy (a.b.c.d -> a.K/256.K%256.d, checksums\n"
        "adjusted) until N bytes are written (whole copies); prints bytes=, frames=, copies=.\n",
        stderr);
    return 2;
}

}  // namespace
}  // namespace hopscope::bench

int main(int argc, char** argv) {
    using namespace hopscope::bench;
    std::uint64_t size = 0, seed = 1;
    unsigned concurrency = 24;
    std::uint64_t max_gap_us = 120;
    unsigned max_batches = 6;
    bool batches_given = false, logins_profile = false;
    std::string out;
    std::vector<std::string> replicas;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has = i + 1 < argc;
        if (a == "--size" && has) {
            if (!parse_size(argv[++i], size)) return usage();
        } else if (a == "--out" && has) {
            out = argv[++i];
        } else if (a == "--seed" && has) {
            seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (a == "--max-batches" && has) {
            max_batches = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
            batches_given = true;
        } else if (a == "--profile" && has) {
            const std::string p = argv[++i];
            if (p != "mix" && p != "logins") return usage();
            logins_profile = p == "logins";
        } else if (a == "--max-gap-us" && has) {
            max_gap_us = std::strtoull(argv[++i], nullptr, 10);
            if (max_gap_us == 0) return usage();
        } else if (a == "--replicate" && has) {
            replicas.emplace_back(argv[++i]);
        } else if (a == "--concurrency" && has) {
            concurrency = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
            if (concurrency == 0) return usage();
        } else {
            return usage();
        }
    }
    if (size == 0 || out.empty()) return usage();
    PcapWriter w;
    if (!w.open(out)) {
        std::fprintf(stderr, "hopscope-gencap: %s: %s\n", out.c_str(), std::strerror(errno));
        return 1;
    }
    if (!replicas.empty()) {
        unsigned copies = 0;
        std::string err;
        const bool ok = replicate(replicas, size, w, copies, err);
        if (!w.close() || !ok) {
            std::fprintf(stderr, "hopscope-gencap: %s\n", ok ? "write failed" : err.c_str());
            return 1;
        }
        std::fprintf(stderr, "bytes=%llu frames=%llu copies=%u\n",
                     static_cast<unsigned long long>(w.bytes()),
                     static_cast<unsigned long long>(w.frames()), copies);
        return 0;
    }
    if (logins_profile && !batches_given) max_batches = 0;
    Generator g(seed, size, concurrency, max_gap_us, max_batches, logins_profile, w);
    g.run();
    if (!w.close()) {
        std::fprintf(stderr, "hopscope-gencap: %s: write failed\n", out.c_str());
        return 1;
    }
    const Totals& t = g.totals();
    std::fprintf(
        stderr,
        "bytes=%llu frames=%llu tds_connections=%llu logins=%llu sql_logins=%llu "
        "ntlm_logins=%llu kerberos_logins=%llu failed_logins=%llu server_errors=%llu "
        "anonymous_errors=%llu kerberos_flows=%llu kerberos_messages=%llu "
        "kerberos_udp_messages=%llu batches=%llu rows=%llu\n",
        static_cast<unsigned long long>(w.bytes()), static_cast<unsigned long long>(w.frames()),
        static_cast<unsigned long long>(t.tds_connections),
        static_cast<unsigned long long>(t.logins), static_cast<unsigned long long>(t.sql_logins),
        static_cast<unsigned long long>(t.ntlm_logins),
        static_cast<unsigned long long>(t.kerberos_logins),
        static_cast<unsigned long long>(t.failed_logins),
        static_cast<unsigned long long>(t.server_errors),
        static_cast<unsigned long long>(t.anonymous_errors),
        static_cast<unsigned long long>(t.kdc_flows),
        static_cast<unsigned long long>(t.kdc_messages),
        static_cast<unsigned long long>(t.kdc_udp_messages),
        static_cast<unsigned long long>(t.batches), static_cast<unsigned long long>(t.rows));
    return 0;
}
