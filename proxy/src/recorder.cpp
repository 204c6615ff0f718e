// pcapng writer for the proxy's byte streams (see recorder.hpp).
//
// File layout: one section header block, then two interface description blocks, interface 0 the
// client leg and interface 1 the upstream leg, then one enhanced packet block per synthetic
// packet, with the default timestamp resolution (microseconds). The link type is Ethernet with
// made-up, locally administered MAC addresses: libpcap refuses a pcapng file whose interfaces have
// different link types or snapshot lengths, and libpcap 1.10 also refuses a second LINKTYPE_RAW
// (101) interface (it compares the LINKTYPE of the new interface with the DLT_RAW it mapped the
// first one to), so raw IP cannot give two interfaces; IPv4 and IPv6 also share an interface, which
// LINKTYPE_IPV4/IPV6 cannot. hopscope's capture reader, tshark and Wireshark all open the result.
//
// Packets: real addresses and ports from the FlowKey (IPv4, or IPv6 when either side is IPv6, an
// IPv4 side then written as ::ffff:a.b.c.d), a TCP header with correct checksums (IPv4 header
// checksum, TCP checksum over the pseudo-header), consecutive sequence numbers per direction and
// the peer's next sequence number as acknowledgement. The handshake offers window scaling (shift
// 14), so the advertised window (65535 << 14) is never what limits a bulk transfer in Wireshark's
// analysis; the receiver also sends a pure ACK after every 256 KiB it received without answering.
//
// A gap moves the sender's sequence number on without a packet. The next data segment of that
// direction is then out of order for a reader, so the peer acknowledges it at once: a reader
// (hopscope's StreamAssembler, Wireshark) declares the missing bytes as soon as it sees that ACK
// instead of at the end of the connection. Sequence numbers are 32 bits: a gap of 2^31 bytes or
// more cannot be told from a retransmission, and one of 2^32 or more is not seen at all.
// A gap at the very end of a direction (no data after it) shows only in the sequence number of
// the FIN: hopscope's reader then never sees that direction complete and ends the connection at
// the end of the input instead of at the FINs.
//
// Writes go through a 1 MiB stdio buffer. The first failed write, flush or rotation stops the
// recording (error() says why); the proxy never sees an exception from here.
#include "hopscope/proxy/recorder.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

namespace hopscope::proxy {
namespace {

constexpr std::uint16_t kLinktypeEthernet = 1;
constexpr std::size_t kEthernetHeader = 14;
constexpr std::uint32_t kSnaplen = 262144;
/// Payload bytes per data segment: 20 (IPv4) or 40 (IPv6) + 20 (TCP) + 65000 stays within the
/// 16-bit IP length fields (and the frame, with its Ethernet header, within the snapshot length).
constexpr std::size_t kMaxSegmentPayload = 65000;
/// The receiver acknowledges on its own once this many bytes came in since its last segment.
constexpr std::uint64_t kAckEvery = 256 * 1024;
constexpr std::uint8_t kWindowShift = 14;
constexpr std::size_t kIoBuffer = 1 << 20;

constexpr std::uint32_t kBlockShb = 0x0A0D0D0A;
constexpr std::uint32_t kBlockIdb = 0x00000001;
constexpr std::uint32_t kBlockEpb = 0x00000006;
constexpr std::uint32_t kBlockDsb = 0x0000000A;          ///< Decryption Secrets Block
constexpr std::uint32_t kSecretsTlsKeyLog = 0x544c534b;  ///< "TLSK": NSS key log lines
constexpr std::size_t kMaxSecretsPerConn = 16;

namespace flag {
constexpr unsigned Fin = 0x01;
constexpr unsigned Syn = 0x02;
constexpr unsigned Rst = 0x04;
constexpr unsigned Psh = 0x08;
constexpr unsigned Ack = 0x10;
}  // namespace flag

// ---- byte helpers -------------------------------------------------------------------------------

void put_le16(std::vector<std::uint8_t>& v, std::uint16_t x) {
    v.push_back(static_cast<std::uint8_t>(x));
    v.push_back(static_cast<std::uint8_t>(x >> 8));
}
void put_le32(std::vector<std::uint8_t>& v, std::uint32_t x) {
    for (int i = 0; i < 4; ++i)
        v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}
void put_le64(std::vector<std::uint8_t>& v, std::uint64_t x) {
    for (int i = 0; i < 8; ++i)
        v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}
void set_le32(std::uint8_t* p, std::uint32_t x) {
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<std::uint8_t>(x >> (8 * i));
}
void set_be16(std::uint8_t* p, std::uint16_t x) {
    p[0] = static_cast<std::uint8_t>(x >> 8);
    p[1] = static_cast<std::uint8_t>(x);
}
void set_be32(std::uint8_t* p, std::uint32_t x) {
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<std::uint8_t>(x >> (24 - 8 * i));
}

/// A pcapng option (code, length, value padded to 4 bytes).
void put_option(std::vector<std::uint8_t>& v, std::uint16_t code, const std::string& value) {
    put_le16(v, code);
    put_le16(v, static_cast<std::uint16_t>(value.size()));
    v.insert(v.end(), value.begin(), value.end());
    while (v.size() % 4 != 0)
        v.push_back(0);
}

/// Wraps a block body into type, total length, body, total length.
std::vector<std::uint8_t> block(std::uint32_t type, const std::vector<std::uint8_t>& body) {
    std::vector<std::uint8_t> v;
    const auto total = static_cast<std::uint32_t>(12 + body.size());
    put_le32(v, type);
    put_le32(v, total);
    v.insert(v.end(), body.begin(), body.end());
    put_le32(v, total);
    return v;
}

std::vector<std::uint8_t> file_header(const std::string& comment) {
    std::vector<std::uint8_t> shb;
    put_le32(shb, 0x1A2B3C4D);         // byte-order magic
    put_le16(shb, 1);                  // major version
    put_le16(shb, 0);                  // minor version
    put_le64(shb, ~std::uint64_t{0});  // section length: not given
    if (!comment.empty() && comment.size() < 0xFFFF) put_option(shb, 1, comment);  // opt_comment
    put_option(shb, 4, "hopscope proxy");                                          // shb_userappl
    put_le32(shb, 0);                                                              // opt_endofopt
    std::vector<std::uint8_t> out = block(kBlockShb, shb);

    const std::pair<const char*, const char*> legs[] = {
        {"client leg", "hopscope proxy: the client and the server it asked for"},
        {"upstream leg", "hopscope proxy: the proxy's own address and the upstream server"},
    };
    for (const auto& [name, description] : legs) {
        std::vector<std::uint8_t> idb;
        put_le16(idb, kLinktypeEthernet);
        put_le16(idb, 0);  // reserved
        put_le32(idb, kSnaplen);
        put_option(idb, 2, name);         // if_name
        put_option(idb, 3, description);  // if_description
        put_le32(idb, 0);                 // opt_endofopt (if_tsresol absent: microseconds)
        const auto b = block(kBlockIdb, idb);
        out.insert(out.end(), b.begin(), b.end());
    }
    return out;
}

/// One's complement sum of 16-bit big-endian words; an odd last byte is padded with zero.
std::uint64_t sum16(std::uint64_t acc, const std::uint8_t* p, std::size_t n) {
    std::size_t i = 0;
    for (; i + 1 < n; i += 2)
        acc += static_cast<std::uint64_t>(p[i]) << 8 | p[i + 1];
    if (i < n) acc += static_cast<std::uint64_t>(p[i]) << 8;
    return acc;
}
std::uint16_t fold(std::uint64_t acc) {
    while (acc >> 16)
        acc = (acc & 0xFFFF) + (acc >> 16);
    return static_cast<std::uint16_t>(~acc & 0xFFFF);
}

/// The 16 bytes written for an address in an IPv6 header (IPv4 as ::ffff:a.b.c.d).
std::array<std::uint8_t, 16> as_v6(const IpAddress& a) {
    if (a.v6) return a.bytes;
    std::array<std::uint8_t, 16> out{};
    out[10] = 0xFF;
    out[11] = 0xFF;
    for (int i = 0; i < 4; ++i)
        out[12 + i] = a.bytes[i];
    return out;
}

// ---- the recorder -------------------------------------------------------------------------------

struct Side {
    std::uint32_t next_seq = 0;  ///< sequence number of the next byte this side sends
    std::uint16_t ip_id = 0;
    bool gap_pending = false;   ///< sequence numbers jumped; the next data is out of order
    std::uint64_t unacked = 0;  ///< bytes sent since the peer last sent a segment
};

struct Conn {
    Side side[2];  ///< by Direction of what the side sends: [0] the client, [1] the server
    /// TLS secrets of the connection (client leg), written again at the top of a new file
    /// after a rotation or a reopen, so that what follows there can still be decrypted.
    std::vector<std::string> secrets;
};

class PcapngRecorder final : public Recorder {
  public:
    explicit PcapngRecorder(RecorderOptions options) : opt_(std::move(options)) {}
    ~PcapngRecorder() override { close_file(); }
    PcapngRecorder(const PcapngRecorder&) = delete;
    PcapngRecorder& operator=(const PcapngRecorder&) = delete;

    bool start(std::string& err, const char* mode) {
        if (!open_file(mode)) {
            err = error_;
            return false;
        }
        return true;
    }

    void open_connection(Leg leg, const FlowKey& flow, Timestamp ts) override {
        if (stopped()) return;
        Conn& c = conns_[{leg, flow}];
        c = fresh_conn(flow);  // a new connection on a 4-tuple still open replaces it
        segment(leg, flow, c, Direction::ClientToServer, flag::Syn, ts, {});
        segment(leg, flow, c, Direction::ServerToClient, flag::Syn | flag::Ack, ts, {});
        segment(leg, flow, c, Direction::ClientToServer, flag::Ack, ts, {});
    }

    std::uint64_t data(Leg leg, const FlowKey& flow, Direction dir, Timestamp ts,
                       Bytes data) override {
        if (stopped() || data.empty()) return 0;
        Conn& c = conn(leg, flow);
        const int d = static_cast<int>(dir);
        std::uint64_t first = 0;
        while (!data.empty() && !stopped()) {
            const std::size_t n = std::min(data.size(), kMaxSegmentPayload);
            const unsigned flags = n == data.size() ? flag::Ack | flag::Psh : flag::Ack;
            const std::uint64_t frame = segment(leg, flow, c, dir, flags, ts, data.first(n));
            if (first == 0) first = frame;
            data = data.subspan(n);
        }
        Side& s = c.side[d];
        if (!stopped() && (s.gap_pending || s.unacked >= kAckEvery))
            segment(leg, flow, c, reverse(dir), flag::Ack, ts, {});
        s.gap_pending = false;
        return stopped() ? 0 : first;
    }

    void secret(const FlowKey& flow, Bytes line) override {
        if (stopped() || line.empty()) return;
        auto it = conns_.find({Leg::Client, flow});
        // bounded: a connection has two TLS sessions, each a few lines
        if (it != conns_.end() && it->second.secrets.size() < kMaxSecretsPerConn)
            it->second.secrets.emplace_back(reinterpret_cast<const char*>(line.data()),
                                            line.size());
        write_secret(line);
    }

    void write_secret(Bytes line) {
        const std::size_t len = line.size() + 1;  // with its newline
        const std::size_t padded = (len + 3) & ~std::size_t{3};
        const std::size_t block_len = 16 + padded + 4;
        std::uint8_t head[16];
        set_le32(head, kBlockDsb);
        set_le32(head + 4, static_cast<std::uint32_t>(block_len));
        set_le32(head + 8, kSecretsTlsKeyLog);
        set_le32(head + 12, static_cast<std::uint32_t>(len));
        static constexpr std::uint8_t kTail[4] = {'\n', 0, 0, 0};
        std::uint8_t trailer[4];
        set_le32(trailer, static_cast<std::uint32_t>(block_len));
        if (!write_raw(head, sizeof head) || !write_raw(line.data(), line.size()) ||
            !write_raw(kTail, 1 + padded - len) || !write_raw(trailer, 4))
            return;
    }

    void gap(Leg leg, const FlowKey& flow, Direction dir, std::uint64_t length) override {
        if (stopped() || length == 0) return;
        Side& s = conn(leg, flow).side[static_cast<int>(dir)];
        s.next_seq += static_cast<std::uint32_t>(length);  // modulo 2^32, as TCP counts
        s.gap_pending = true;
    }

    void close_connection(Leg leg, const FlowKey& flow, Timestamp ts, bool reset,
                          Direction from) override {
        auto it = conns_.find({leg, flow});
        if (it == conns_.end()) return;
        if (!stopped()) {
            Conn& c = it->second;
            if (reset) {
                segment(leg, flow, c, from, flag::Rst | flag::Ack, ts, {});
            } else {
                segment(leg, flow, c, Direction::ClientToServer, flag::Fin | flag::Ack, ts, {});
                segment(leg, flow, c, Direction::ServerToClient, flag::Fin | flag::Ack, ts, {});
                segment(leg, flow, c, Direction::ClientToServer, flag::Ack, ts, {});
            }
        }
        conns_.erase(it);
    }

    bool reopen(std::string& err) override {
        close_file();
        error_.clear();
        if (!open_file("ab")) {
            err = error_;
            return false;
        }
        return true;
    }

    void flush() override {
        if (fp_ != nullptr && error_.empty() && std::fflush(fp_) != 0) fail("flush");
    }

    [[nodiscard]] const std::string& error() const override { return error_; }
    [[nodiscard]] std::uint64_t frames_written() const override { return frames_total_; }

  private:
    RecorderOptions opt_;
    std::FILE* fp_ = nullptr;
    std::unique_ptr<char[]> iobuf_;
    std::string error_;
    std::uint64_t file_bytes_ = 0;   ///< size of the current file (what was handed to stdio)
    std::uint64_t file_frames_ = 0;  ///< packets in the current file
    std::uint64_t frames_total_ = 0;
    std::uint32_t connections_ = 0;  ///< connections so far (varies the initial sequence numbers)
    std::map<std::pair<Leg, FlowKey>, Conn> conns_;
    std::vector<std::uint8_t> head_;  ///< scratch: EPB header + IP + TCP header

    [[nodiscard]] bool stopped() const { return fp_ == nullptr || !error_.empty(); }

    void fail(const char* what) {
        if (!error_.empty()) return;
        const int e = errno;
        error_ = opt_.path + ": " + what + ": " + (e != 0 ? std::strerror(e) : "write error");
    }

    bool write_raw(const void* p, std::size_t n) {
        if (n == 0) return true;
        errno = 0;
        if (std::fwrite(p, 1, n, fp_) != n) {
            fail("write");
            return false;
        }
        file_bytes_ += n;
        return true;
    }

    bool open_file(const char* mode) {
        errno = 0;
        fp_ = std::fopen(opt_.path.c_str(), mode);
        if (fp_ == nullptr) {
            fail("cannot open for writing");
            return false;
        }
        // stdio's buffer: not zeroed first (make_unique would write the whole MiB, and fault
        // its pages in, for each file opened).
        iobuf_.reset(new char[kIoBuffer]);
        std::setvbuf(fp_, iobuf_.get(), _IOFBF, kIoBuffer);
        file_bytes_ = 0;
        if (std::fseek(fp_, 0, SEEK_END) == 0) {
            const long pos = std::ftell(fp_);
            if (pos > 0) file_bytes_ = static_cast<std::uint64_t>(pos);
        }
        file_frames_ = 0;
        const auto header = file_header(opt_.section_comment);
        if (!write_raw(header.data(), header.size())) return false;
        for (const auto& [key, c] : conns_)
            for (const auto& line : c.secrets)
                write_secret(
                    Bytes(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()));
        return error_.empty();
    }

    void close_file() {
        if (fp_ == nullptr) return;
        errno = 0;
        const bool ok = std::fclose(fp_) == 0;
        fp_ = nullptr;
        if (!ok) fail("close");
        iobuf_.reset();
    }

    /// FILE -> FILE.1 -> ... -> FILE.<keep> (the oldest dropped), then a fresh FILE.
    bool rotate() {
        close_file();
        if (!error_.empty()) return false;
        const auto name = [this](unsigned i) {
            return i == 0 ? opt_.path : opt_.path + "." + std::to_string(i);
        };
        if (opt_.keep == 0) {
            errno = 0;
            if (std::remove(opt_.path.c_str()) != 0 && errno != ENOENT) {
                fail("rotate (remove)");
                return false;
            }
        } else {
            for (unsigned i = opt_.keep; i > 0; --i) {
                errno = 0;
                if (std::rename(name(i - 1).c_str(), name(i).c_str()) != 0 && errno != ENOENT) {
                    fail("rotate (rename)");
                    return false;
                }
            }
        }
        return open_file("wb");
    }

    /// A connection's initial sequence numbers: any values will do, as long as a new connection
    /// on the same addresses and ports gets other ones (a reader then sees a new connection).
    Conn fresh_conn(const FlowKey& flow) {
        std::uint64_t h = FlowKeyHash{}(flow) ^ (std::uint64_t{++connections_} << 32);
        Conn c;
        for (Side& s : c.side) {
            h ^= h >> 31;
            h *= 0xBF58476D1CE4E5B9ULL;
            h ^= h >> 29;
            s.next_seq = static_cast<std::uint32_t>(h >> 16);
        }
        return c;
    }

    /// The state of a connection, created without a handshake when it was not opened here.
    Conn& conn(Leg leg, const FlowKey& flow) {
        auto it = conns_.find({leg, flow});
        if (it == conns_.end()) it = conns_.emplace(std::pair{leg, flow}, fresh_conn(flow)).first;
        return it->second;
    }

    /// Writes one packet from `from`'s sender; returns its frame number in the current file (0
    /// when nothing could be written).
    std::uint64_t segment(Leg leg, const FlowKey& flow, Conn& c, Direction from, unsigned flags,
                          Timestamp ts, Bytes payload) {
        if (stopped()) return 0;
        const int d = static_cast<int>(from);
        Side& me = c.side[d];
        Side& peer = c.side[1 - d];
        const Endpoint& src = from == Direction::ClientToServer ? flow.client : flow.server;
        const Endpoint& dst = from == Direction::ClientToServer ? flow.server : flow.client;
        const bool v6 = src.addr.v6 || dst.addr.v6;
        const bool syn = (flags & flag::Syn) != 0;

        const std::size_t ip_len = v6 ? 40 : 20;
        const std::size_t tcp_len = syn ? 24 : 20;
        const std::size_t ip_total = ip_len + tcp_len + payload.size();
        const std::size_t packet = kEthernetHeader + ip_total;
        const std::size_t padded = (packet + 3) & ~std::size_t{3};
        const std::size_t block_len = 28 + padded + 4;

        if (opt_.max_bytes != 0 && file_frames_ > 0 && file_bytes_ + block_len > opt_.max_bytes) {
            if (!rotate()) return 0;
        }

        head_.assign(28 + kEthernetHeader + ip_len + tcp_len, 0);
        std::uint8_t* epb = head_.data();
        set_le32(epb, kBlockEpb);
        set_le32(epb + 4, static_cast<std::uint32_t>(block_len));
        set_le32(epb + 8, static_cast<std::uint32_t>(leg));
        // pcapng timestamps are unsigned: a time before 1970 (never from a clock) is written as 0.
        const auto micros = static_cast<std::uint64_t>(std::max<std::int64_t>(ts.micros, 0));
        set_le32(epb + 12, static_cast<std::uint32_t>(micros >> 32));
        set_le32(epb + 16, static_cast<std::uint32_t>(micros));
        set_le32(epb + 20, static_cast<std::uint32_t>(packet));
        set_le32(epb + 24, static_cast<std::uint32_t>(packet));

        // Ethernet: 02:68:73:LL:00:0S, locally administered; LL the leg, S 1 client, 2 server.
        std::uint8_t* eth = epb + 28;
        for (std::uint8_t* mac : {eth, eth + 6}) {
            const bool source = mac != eth;
            const bool client = source == (from == Direction::ClientToServer);
            mac[0] = 0x02;
            mac[1] = 0x68;
            mac[2] = 0x73;
            mac[3] = static_cast<std::uint8_t>(leg);
            mac[5] = client ? 1 : 2;
        }
        set_be16(eth + 12, v6 ? 0x86DD : 0x0800);

        std::uint8_t* ip = eth + kEthernetHeader;
        std::uint8_t* tcp = ip + ip_len;
        const std::uint16_t tcp_total = static_cast<std::uint16_t>(tcp_len + payload.size());
        std::uint64_t pseudo = 0;
        if (v6) {
            const auto s = as_v6(src.addr);
            const auto t = as_v6(dst.addr);
            ip[0] = 0x60;
            set_be16(ip + 4, tcp_total);
            ip[6] = 6;   // next header: TCP
            ip[7] = 64;  // hop limit
            std::memcpy(ip + 8, s.data(), 16);
            std::memcpy(ip + 24, t.data(), 16);
            pseudo = sum16(pseudo, ip + 8, 32);
            pseudo += tcp_total;  // upper-layer length (32 bits, fits in 16 here)
            pseudo += 6;
        } else {
            ip[0] = 0x45;
            set_be16(ip + 2, static_cast<std::uint16_t>(ip_total));
            set_be16(ip + 4, me.ip_id++);
            ip[6] = 0x40;  // don't fragment
            ip[8] = 64;    // TTL
            ip[9] = 6;     // TCP
            std::memcpy(ip + 12, src.addr.bytes.data(), 4);
            std::memcpy(ip + 16, dst.addr.bytes.data(), 4);
            set_be16(ip + 10, fold(sum16(0, ip, 20)));
            pseudo = sum16(pseudo, ip + 12, 8);
            pseudo += 6;
            pseudo += tcp_total;
        }

        set_be16(tcp, src.port);
        set_be16(tcp + 2, dst.port);
        set_be32(tcp + 4, me.next_seq);
        set_be32(tcp + 8, (flags & flag::Ack) != 0 ? peer.next_seq : 0);
        tcp[12] = static_cast<std::uint8_t>((tcp_len / 4) << 4);
        tcp[13] = static_cast<std::uint8_t>(flags);
        set_be16(tcp + 14, 0xFFFF);  // window (scaled by 2^14 after a handshake)
        if (syn) {
            tcp[20] = 1;  // NOP
            tcp[21] = 3;  // window scale
            tcp[22] = 3;
            tcp[23] = kWindowShift;
        }
        std::uint64_t sum = sum16(pseudo, tcp, tcp_len);
        sum = sum16(sum, payload.data(), payload.size());
        set_be16(tcp + 16, fold(sum));

        static constexpr std::uint8_t kZeros[4] = {};
        std::uint8_t trailer[4];
        set_le32(trailer, static_cast<std::uint32_t>(block_len));
        if (!write_raw(head_.data(), head_.size()) || !write_raw(payload.data(), payload.size()) ||
            !write_raw(kZeros, padded - packet) || !write_raw(trailer, 4)) {
            return 0;
        }

        me.next_seq += static_cast<std::uint32_t>(payload.size()) + (syn ? 1u : 0u) +
                       ((flags & flag::Fin) != 0 ? 1u : 0u);
        me.unacked += payload.size();
        if ((flags & flag::Ack) != 0) peer.unacked = 0;
        ++file_frames_;
        ++frames_total_;
        return file_frames_;
    }
};

}  // namespace

std::unique_ptr<Recorder> Recorder::open(const RecorderOptions& options, std::string& err) {
    auto r = std::make_unique<PcapngRecorder>(options);
    if (!r->start(err, "wb")) return nullptr;
    return r;
}

}  // namespace hopscope::proxy
