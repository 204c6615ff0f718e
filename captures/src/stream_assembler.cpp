// TCP reassembly and flow demultiplexing, written by hand.
//
// Why not libtins (or another packet library): its TCPIP::StreamFollower copies every payload
// into a per-stream std::vector before calling back, allocates per packet (PDU objects) and gives
// no frame numbers or gap offsets in the form the decoders need; it would be one more dependency
// for ~600 lines of code. Here the in-order fast path hands the decoders a span pointing straight
// into libpcap's packet buffer (zero copies, zero allocations per packet); only out-of-order
// segments are copied, into a per-direction buffer with a hard cap. If a measurement ever shows a
// library faster on our workload (many connections, few interesting), revisit.
//
// Flow lookup is an open-addressing hash table (linear probing, backward-shift deletion) of
// 32-bit indexes into a pool of Flow records; both directions of a connection map to one
// canonical key. Two intrusive LRU lists over the pool (connections followed; finished ones kept
// for their stray packets, and UDP flows) give the idle timeout and the eviction order in O(1)
// per packet.
#include "hopscope/captures/stream_assembler.hpp"

#include <algorithm>
#include <array>
#include <bitset>
#include <cstring>
#include <map>
#include <vector>

#include "hopscope/captures/frame.hpp"

namespace hopscope::captures {
namespace {

constexpr std::uint32_t kNil = 0xFFFFFFFFu;
constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;

/// Both endpoints as four 64-bit words (address bytes in memory order) plus ports: compared and
/// hashed word-wise, which is what the per-packet lookup spends its time on.
struct CanonKey {
    std::uint64_t w[4] = {};  ///< side a address (2 words), side b address (2 words)
    std::uint32_t ports = 0;  ///< side a port << 16 | side b port
    std::uint8_t proto = 0;
    std::uint8_t v6 = 0;
    bool operator==(const CanonKey& o) const {
        return ((w[0] ^ o.w[0]) | (w[1] ^ o.w[1]) | (w[2] ^ o.w[2]) | (w[3] ^ o.w[3])) == 0 &&
               ports == o.ports && proto == o.proto && v6 == o.v6;
    }
};

/// A FlowKey as five words that sort as the key does (FlowKey's defaulted ordering: the client's
/// address bytes, its v6 flag and port, the same for the server, then the transport), each word
/// big-endian so that comparing words compares those bytes in order. Why: close_together() sorts
/// every flow still open at the end of a capture (tens of thousands on login-dense traffic, UDP
/// KDC exchanges being closed only by their idle timeout), and the member-wise comparison
/// reached through the flow table was a third of the end's instructions.
struct OrderKey {
    std::array<std::uint64_t, 5> w{};
    std::uint32_t flow = 0;
};
OrderKey order_key(const FlowKey& k, std::uint32_t flow) {
    std::array<std::uint8_t, 40> b{};  // 39 bytes, the last one 0
    auto endpoint = [&b](std::size_t at, const Endpoint& e) {
        std::memcpy(b.data() + at, e.addr.bytes.data(), 16);
        b[at + 16] = e.addr.v6 ? 1 : 0;
        b[at + 17] = static_cast<std::uint8_t>(e.port >> 8);
        b[at + 18] = static_cast<std::uint8_t>(e.port & 0xFF);
    };
    endpoint(0, k.client);
    endpoint(19, k.server);
    b[38] = static_cast<std::uint8_t>(k.transport);
    OrderKey o;
    for (std::size_t i = 0; i < o.w.size(); ++i)
        for (std::size_t j = 0; j < 8; ++j)
            o.w[i] = o.w[i] << 8 | b[i * 8 + j];
    o.flow = flow;
    return o;
}

std::uint64_t hash_key(const CanonKey& k) {
    // Independent multiplies (no serial chain), then a final avalanche.
    std::uint64_t h =
        k.w[0] * 0x9E3779B97F4A7C15ULL ^ k.w[1] * 0xC2B2AE3D27D4EB4FULL ^
        k.w[2] * 0x165667B19E3779F9ULL ^ k.w[3] * 0xD6E8FEB86659FD93ULL ^
        (static_cast<std::uint64_t>(k.ports) << 16 | k.proto << 8 | k.v6) * 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    return h;
}

/// Canonical key for a packet; returns 0 when the sender is side `a`, 1 when it is side `b`.
/// The order of the sides is arbitrary but the same for both directions.
int make_key(const IpAddress& src, std::uint16_t sport, const IpAddress& dst, std::uint16_t dport,
             std::uint8_t proto, CanonKey& k) {
    std::uint64_t s[2], d[2];
    std::memcpy(s, src.bytes.data(), 16);
    std::memcpy(d, dst.bytes.data(), 16);
    const bool src_first =
        s[0] < d[0] || (s[0] == d[0] && (s[1] < d[1] || (s[1] == d[1] && sport <= dport)));
    k.proto = proto;
    k.v6 = src.v6 ? 1 : 0;
    if (src_first) {
        k.w[0] = s[0];
        k.w[1] = s[1];
        k.w[2] = d[0];
        k.w[3] = d[1];
        k.ports = static_cast<std::uint32_t>(sport) << 16 | dport;
        return 0;
    }
    k.w[0] = d[0];
    k.w[1] = d[1];
    k.w[2] = s[0];
    k.w[3] = s[1];
    k.ports = static_cast<std::uint32_t>(dport) << 16 | sport;
    return 1;
}

struct Segment {
    std::vector<std::uint8_t> bytes;
    std::uint64_t frame = 0;
};

struct Dir {
    std::uint32_t base = 0;    ///< sequence number of stream offset 0 (modulo 2^32)
    std::uint64_t offset = 0;  ///< next stream offset to hand on
    bool started = false;
    bool syn = false;
    bool fin = false;
    std::uint64_t fin_offset = 0;
    std::map<std::uint64_t, Segment> ooo;  ///< out-of-order bytes by stream offset, disjoint
    std::size_t ooo_bytes = 0;

    /// Makes `seq` stream offset 0, unless the stream has started already: a late or forged
    /// SYN(+ACK), or a segment from before the first one seen, never moves a direction that
    /// already delivered bytes.
    void anchor(std::uint32_t seq) {
        if (started) return;
        base = seq;
        offset = 0;
        started = true;
    }

    [[nodiscard]] std::uint32_t next_seq() const {
        return base + static_cast<std::uint32_t>(offset);
    }
    /// Stream offset of a sequence number, taken as the nearest one to `offset` (handles wrap).
    [[nodiscard]] std::int64_t rel(std::uint32_t seq) const {
        return static_cast<std::int64_t>(offset) + static_cast<std::int32_t>(seq - next_seq());
    }
};

struct Flow {
    CanonKey key;
    std::uint64_t hash = 0;
    // Its FlowKey is not kept: flow_key() makes it from `key` and `a_is_client` for each call of
    // the sink (42 of the 130 bytes a flow had, in a table of up to max_connections flows).
    bool a_is_client = true;
    FlowClass cls = FlowClass::Dropped;
    bool udp = false;
    bool open = false;    ///< on_open was called and on_close not yet
    bool closed = false;  ///< finished connection kept to swallow its stray packets
    bool handshake = false;
    /// Which recency list it is on (Impl::lru): 0 for a TCP connection followed, 1 for what
    /// holds no connection state (a finished connection kept for its stray packets, a UDP flow).
    std::uint8_t list = 0;
    Timestamp first_ts;
    Timestamp last_ts;
    /// The two directions' reassembly state (indexed by Direction), held only while a TCP
    /// connection is followed: the table keeps closed connections and UDP flows too (up to
    /// AssemblerConfig::max_connections, 65 536), and with the state inline every entry was
    /// 300 bytes (20 MiB of table on a login-dense capture), 130 without it.
    std::unique_ptr<std::array<Dir, 2>> dirs;
    std::uint32_t prev = kNil;
    std::uint32_t next = kNil;

    Dir& dir(int d) { return (*dirs)[static_cast<std::size_t>(d)]; }
};

/// The FlowKey the sink is given for `f`: side a or b of its canonical key as the client, as
/// orient() decided.
FlowKey flow_key(const Flow& f) {
    FlowKey k;
    k.transport = static_cast<Transport>(f.key.proto);  // kTcp and kUdp are Transport's values
    Endpoint a, b;
    std::memcpy(a.addr.bytes.data(), &f.key.w[0], 16);
    std::memcpy(b.addr.bytes.data(), &f.key.w[2], 16);
    a.addr.v6 = b.addr.v6 = f.key.v6 != 0;
    a.port = static_cast<std::uint16_t>(f.key.ports >> 16);
    b.port = static_cast<std::uint16_t>(f.key.ports & 0xFFFF);
    k.client = f.a_is_client ? a : b;
    k.server = f.a_is_client ? b : a;
    return k;
}

/// Open addressing, linear probing, load factor at most 1/2. A slot holds the flow's pool index
/// + 1 (0: empty) in its low half and the low 32 bits of the flow's hash in its high half, so
/// that probing and the backward shift of erase() compare and place entries without reading the
/// pool. Why: on a login-dense capture the table holds up to max_connections flows (closed
/// connections and UDP KDC flows stay until their idle timeout), their 130-byte entries are far
/// beyond the caches, and a probe that read another flow's entry was a cache miss: perf on 200 MB
/// of login-dense traffic (profile-guided build) had a quarter of ip_packet()'s samples on those
/// loads; with the hash in the slot, ip_packet() 10.4 % -> 8.7 % of the run, erase() 1.1 -> 0.9 %.
class FlowTable {
  public:
    FlowTable() { slots_.assign(1024, 0); }

    std::uint32_t find(const CanonKey& k, std::uint64_t h) const {
        const std::size_t mask = slots_.size() - 1;
        const std::uint64_t tag = tag_of(h);
        for (std::size_t i = h & mask;; i = (i + 1) & mask) {
            const std::uint64_t s = slots_[i];
            if (s == 0) return kNil;
            if ((s & kTagMask) != tag) continue;
            const std::uint32_t idx = index_of(s);
            const Flow& f = flow(idx);
            if (f.hash == h && f.key == k) return idx;
        }
    }

    std::uint32_t insert(const CanonKey& k, std::uint64_t h) {
        if ((count_ + 1) * 2 > slots_.size()) grow();
        std::uint32_t idx;
        if (!free_.empty()) {
            idx = free_.back();
            free_.pop_back();
            flow(idx) = Flow{};
        } else {
            idx = made_++;
            if ((idx >> kChunkShift) == chunks_.size())
                chunks_.push_back(std::make_unique<Flow[]>(std::size_t{1} << kChunkShift));
        }
        Flow& f = flow(idx);
        f.key = k;
        f.hash = h;
        place(slot_of(idx, h));
        ++count_;
        return idx;
    }

    void erase(std::uint32_t idx) {
        const std::size_t mask = slots_.size() - 1;
        const std::uint64_t mine = slot_of(idx, flow(idx).hash);
        std::size_t i = flow(idx).hash & mask;
        while (slots_[i] != mine)
            i = (i + 1) & mask;
        slots_[i] = 0;
        // Backward-shift deletion: pull later entries of the probe run into the hole. An entry's
        // home slot comes from the hash bits its slot keeps (the mask is narrower than 32 bits).
        for (std::size_t j = (i + 1) & mask; slots_[j] != 0; j = (j + 1) & mask) {
            const std::size_t home = (slots_[j] >> 32) & mask;
            const bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
            if (stays) continue;
            slots_[i] = slots_[j];
            slots_[j] = 0;
            i = j;
        }
        flow(idx) = Flow{};  // releases buffers now
        free_.push_back(idx);
        --count_;
    }

    Flow& at(std::uint32_t idx) { return flow(idx); }
    [[nodiscard]] std::size_t size() const { return count_; }

  private:
    static constexpr std::uint64_t kTagMask = 0xFFFFFFFF00000000u;
    static std::uint64_t tag_of(std::uint64_t h) { return h << 32; }
    static std::uint64_t slot_of(std::uint32_t idx, std::uint64_t h) {
        return tag_of(h) | (std::uint64_t{idx} + 1);
    }
    static std::uint32_t index_of(std::uint64_t slot) {
        return static_cast<std::uint32_t>(slot) - 1;
    }
    void place(std::uint64_t slot) {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = (slot >> 32) & mask;
        while (slots_[i] != 0)
            i = (i + 1) & mask;
        slots_[i] = slot;
    }
    void grow() {
        std::vector<std::uint64_t> old;
        old.swap(slots_);
        slots_.assign(old.size() * 2, 0);
        for (const std::uint64_t s : old)
            if (s != 0) place(s);
    }

    Flow& flow(std::uint32_t idx) { return chunks_[idx >> kChunkShift][idx & kChunkMask]; }
    const Flow& flow(std::uint32_t idx) const {
        return chunks_[idx >> kChunkShift][idx & kChunkMask];
    }

    std::vector<std::uint64_t> slots_;
    /// The flows, in chunks of 2^kChunkShift made as the table first grows into them: a flow
    /// stays where it is made (no growth copies every flow, and the table's memory is never
    /// held twice; as one vector that doubled, it was 8.4 MB at its last growth on 200 MB of
    /// login-dense traffic, with the 4.2 MB before it still held during the copy).
    static constexpr unsigned kChunkShift = 10;
    static constexpr std::uint32_t kChunkMask = (std::uint32_t{1} << kChunkShift) - 1;
    std::vector<std::unique_ptr<Flow[]>> chunks_;
    std::uint32_t made_ = 0;  ///< flows made so far (indices below it are in chunks_)
    std::vector<std::uint32_t> free_;
    std::size_t count_ = 0;
};

}  // namespace

struct StreamAssembler::Impl {
    Impl(StreamSink& s, AssemblerConfig c) : sink(s), cfg(std::move(c)), defrag(cfg.defrag) {
        for (auto p : cfg.filter.tds_ports)
            tds_ports.set(p);
        for (auto p : cfg.filter.kerberos_ports)
            krb_ports.set(p);
        if (cfg.max_connections == 0) cfg.max_connections = 1;
        // FlowTable's slots keep 32 bits of each hash, which place a flow only while the table
        // has fewer than 2^32 slots (it has at most twice the flows).
        cfg.max_connections = std::min<std::size_t>(cfg.max_connections, std::size_t{1} << 30);
    }

    StreamSink& sink;
    AssemblerConfig cfg;
    IpDefragmenter defrag;
    AssemblerStats st;
    /// Where the figures about frames go: `st` in shard 0, elsewhere nowhere (see
    /// AssemblerConfig::shard_index).
    AssemblerStats not_counted;
    AssemblerStats* fs = cfg.shard_index == 0 ? &st : &not_counted;
    std::vector<std::uint32_t> closing;  ///< expire(), finish(): the flows closed together
    std::vector<OrderKey> order;         ///< close_together()'s sort
    /// Reassembly states of closed connections, for the next ones (at most kMaxSpareDirs).
    static constexpr std::size_t kMaxSpareDirs = 1024;
    std::vector<std::unique_ptr<std::array<Dir, 2>>> spare_dirs;
    FlowTable table;
    std::bitset<65536> tds_ports;
    std::bitset<65536> krb_ports;
    Timestamp last_ts{};
    std::int64_t next_expiry_check = 0;
    std::int64_t last_expiry_check = 0;
    std::size_t buffered_total = 0;  ///< out-of-order bytes held over all connections
    /// The flows by recency, each list most recently used first: [0] the TCP connections
    /// followed, [1] what holds no connection state: the finished connections the table keeps to
    /// swallow their stray packets, and UDP flows (each datagram stands alone; the flow only
    /// keeps which side is the client, and a busy KDC makes one per request, its client taking
    /// a new port each time). When the table is full the least recently used of [1] goes first,
    /// a connection followed only when [1] is empty: with one list, a quiet pooled connection (a
    /// linked server's) went before the hundreds of short connections and KDC exchanges that had
    /// come and gone since (test Assembler.AQuietConnectionOutlivesTheClosedOnes...).
    struct Lru {
        std::uint32_t head = kNil;  ///< most recently used
        std::uint32_t tail = kNil;  ///< least recently used
    };
    std::array<Lru, 2> lru;

    // ---- LRU ----------------------------------------------------------------------------------
    void unlink(Flow& f) {
        Lru& l = lru[f.list];
        if (f.prev != kNil)
            table.at(f.prev).next = f.next;
        else
            l.head = f.next;
        if (f.next != kNil)
            table.at(f.next).prev = f.prev;
        else
            l.tail = f.prev;
        f.prev = f.next = kNil;
    }
    void push_front(std::uint32_t idx, Flow& f) {
        Lru& l = lru[f.list];
        f.prev = kNil;
        f.next = l.head;
        if (l.head != kNil) table.at(l.head).prev = idx;
        l.head = idx;
        if (l.tail == kNil) l.tail = idx;
    }
    void touch(std::uint32_t idx, Flow& f) {
        if (lru[f.list].head == idx) return;
        unlink(f);
        push_front(idx, f);
    }
    /// A connection finished while in the table (FIN, RST) moves to the finished ones' list.
    void retire(std::uint32_t idx, Flow& f) {
        unlink(f);
        f.list = 1;
        push_front(idx, f);
    }
    /// The flow the table lets go when it is full: the least recently used of those without
    /// connection state, else the least recently used connection.
    [[nodiscard]] std::uint32_t evictable() const {
        return lru[1].tail != kNil ? lru[1].tail : lru[0].tail;
    }
    void remove(std::uint32_t idx) {
        unlink(table.at(idx));
        table.erase(idx);
    }

    // ---- delivery -----------------------------------------------------------------------------
    void deliver(Flow& f, int d, Timestamp ts, Bytes data, std::uint64_t frame) {
        Dir& D = f.dir(d);
        if (data.empty()) return;
        sink.on_data(flow_key(f), static_cast<Direction>(d), ts, data, Evidence{frame, D.offset});
        D.offset += data.size();
    }
    void gap(Flow& f, int d, Timestamp ts, std::uint64_t n) {
        if (n == 0) return;
        ++st.gaps;
        st.gap_bytes += n;
        sink.on_gap(flow_key(f), static_cast<Direction>(d), ts, n);
        f.dir(d).offset += n;
    }
    void drain(Flow& f, int d, Timestamp ts) {
        Dir& D = f.dir(d);
        while (!D.ooo.empty()) {
            auto it = D.ooo.begin();
            if (it->first > D.offset) break;
            const std::uint64_t end = it->first + it->second.bytes.size();
            if (end > D.offset) {
                Bytes b(it->second.bytes.data(), it->second.bytes.size());
                deliver(f, d, ts, b.subspan(static_cast<std::size_t>(D.offset - it->first)),
                        it->second.frame);
            }
            D.ooo_bytes -= it->second.bytes.size();
            buffered_total -= it->second.bytes.size();
            D.ooo.erase(it);
        }
    }
    /// Hands on everything buffered, declaring the holes as gaps.
    void flush(Flow& f, int d, Timestamp ts) {
        if (!f.dirs) return;  // a UDP flow
        Dir& D = f.dir(d);
        while (!D.ooo.empty()) {
            const std::uint64_t first = D.ooo.begin()->first;
            if (first > D.offset) gap(f, d, ts, first - D.offset);
            drain(f, d, ts);
        }
    }
    void buffer(Dir& D, std::uint64_t rel, Bytes payload, std::uint64_t frame) {
        // First copy wins: only the parts not yet buffered are stored.
        const std::uint64_t end = rel + payload.size();
        std::uint64_t cur = rel;
        auto it = D.ooo.upper_bound(cur);
        if (it != D.ooo.begin()) {
            auto p = std::prev(it);
            const std::uint64_t pend = p->first + p->second.bytes.size();
            if (pend > cur) cur = pend;
        }
        while (cur < end) {
            it = D.ooo.lower_bound(cur);
            const std::uint64_t piece_end = it == D.ooo.end() ? end : std::min(end, it->first);
            if (piece_end > cur) {
                const auto* from = payload.data() + (cur - rel);
                Segment s;
                s.bytes.assign(from, from + (piece_end - cur));
                s.frame = frame;
                D.ooo_bytes += s.bytes.size();
                buffered_total += s.bytes.size();
                D.ooo.emplace(cur, std::move(s));
            }
            if (it == D.ooo.end()) break;
            cur = std::max(cur, it->first + it->second.bytes.size());
        }
    }

    void tcp_data(Flow& f, int d, Timestamp ts, std::uint32_t seq, Bytes payload,
                  std::uint32_t wire, std::uint64_t frame) {
        Dir& D = f.dir(d);
        const std::int64_t rel = D.rel(seq);
        const std::int64_t end = rel + wire;
        const auto cur = static_cast<std::int64_t>(D.offset);
        if (end <= cur) {
            st.retransmitted_bytes += wire;
            return;
        }
        if (rel <= cur) {
            const auto skip = static_cast<std::size_t>(cur - rel);
            st.retransmitted_bytes += skip;
            if (skip < payload.size()) deliver(f, d, ts, payload.subspan(skip), frame);
            // Bytes on the wire but not in the capture (snaplen): a gap now.
            if (static_cast<std::int64_t>(D.offset) < end)
                gap(f, d, ts, static_cast<std::uint64_t>(end) - D.offset);
            drain(f, d, ts);
            return;
        }
        ++st.out_of_order_segments;
        if (!payload.empty()) buffer(D, static_cast<std::uint64_t>(rel), payload, frame);
        if (!D.ooo.empty() && (D.ooo_bytes > cfg.max_buffered_per_direction ||
                               D.ooo.size() > cfg.max_segments_per_direction ||
                               buffered_total > cfg.max_buffered_total)) {
            // Give up on the hole: declare it and go on with what was buffered.
            const std::uint64_t first = D.ooo.begin()->first;
            gap(f, d, ts, first - D.offset);
            drain(f, d, ts);
        }
    }

    /// The peer acknowledged bytes of direction `d` that are missing here: they were on the wire
    /// but not in the capture. Declare them lost up to the next buffered segment.
    void ack_gap(Flow& f, int d, Timestamp ts, std::uint32_t ack) {
        Dir& D = f.dir(d);
        if (!D.started || D.ooo.empty()) return;
        const std::int64_t ack_rel = D.rel(ack);
        if (ack_rel <= static_cast<std::int64_t>(D.offset)) return;
        const std::uint64_t to =
            std::min(static_cast<std::uint64_t>(ack_rel), D.ooo.begin()->first);
        gap(f, d, ts, to - D.offset);
        drain(f, d, ts);
    }

    void close_flow(Flow& f, Timestamp ts, CloseReason why) {
        if (f.open) {
            flush(f, 0, ts);
            flush(f, 1, ts);
            sink.on_close(flow_key(f), ts, why);
            f.open = false;
        }
        f.closed = true;
        give_dirs(f);
    }

    void drop_buffers(Flow& f) {
        if (!f.dirs) return;
        for (Dir& D : *f.dirs) {
            buffered_total -= D.ooo_bytes;
            D.ooo_bytes = 0;
            D.ooo.clear();
        }
    }
    /// Reassembly state for a new TCP connection: a spare one when there is one (no allocation
    /// in the steady state of a busy capture), reset.
    std::unique_ptr<std::array<Dir, 2>> take_dirs() {
        if (spare_dirs.empty()) return std::make_unique<std::array<Dir, 2>>();
        auto d = std::move(spare_dirs.back());
        spare_dirs.pop_back();
        (*d)[0] = Dir{};
        (*d)[1] = Dir{};
        return d;
    }
    /// A connection no longer followed gives its (emptied) reassembly state back.
    void give_dirs(Flow& f) {
        if (!f.dirs) return;
        drop_buffers(f);
        if (spare_dirs.size() < kMaxSpareDirs) spare_dirs.push_back(std::move(f.dirs));
        f.dirs.reset();
    }

    void open_flow(Flow& f) {
        f.open = true;
        ++st.connections;
        sink.on_open(flow_key(f), f.first_ts, f.handshake);
    }

    // ---- flow creation ------------------------------------------------------------------------
    FlowClass classify(std::uint16_t sport, std::uint16_t dport, bool udp) const {
        if (krb_ports.test(sport) || krb_ports.test(dport)) return FlowClass::Kerberos;
        if (!udp && (tds_ports.test(sport) || tds_ports.test(dport))) return FlowClass::Tds;
        if (cfg.filter.accept_all) return FlowClass::Other;
        if (!udp && cfg.filter.tds_heuristic) return FlowClass::Undecided;
        return FlowClass::Dropped;
    }
    bool server_port(std::uint16_t p) const { return tds_ports.test(p) || krb_ports.test(p); }

    /// A new flow in the table, on recency list `list` (Lru), making room first if it is full.
    std::uint32_t create(const CanonKey& k, std::uint64_t h, Timestamp ts, std::uint8_t list = 0) {
        for (std::uint32_t old = evictable(); table.size() >= cfg.max_connections && old != kNil;
             old = evictable()) {
            Flow& f = table.at(old);
            if (f.open) ++st.evictions;
            close_flow(f, ts, CloseReason::Timeout);
            remove(old);
        }
        const std::uint32_t idx = table.insert(k, h);
        Flow& f = table.at(idx);
        f.list = list;
        push_front(idx, f);
        f.first_ts = f.last_ts = ts;
        return idx;
    }

    /// Which side of its key is the client (flow_key() makes the FlowKey from it): the sender,
    /// side `side`, when `sender_is_client`.
    static void orient(Flow& f, int side, bool sender_is_client) {
        f.a_is_client = (side == 0) == sender_is_client;
    }

    /// Closes idle connections. Runs at most once per second of capture time (so the timeout has
    /// a resolution of one second), not on every packet.
    void maybe_expire(Timestamp now) {
        if (now.micros < next_expiry_check && now.micros >= last_expiry_check) return;
        last_expiry_check = now.micros;
        next_expiry_check = now.micros + 1'000'000;
        expire(now);
        if (defrag.pending() > 0) defrag.expire(now);
    }
    void expire(Timestamp now) {
        closing.clear();
        for (const Lru& l : lru) {
            for (std::uint32_t i = l.tail; i != kNil; i = table.at(i).prev) {
                if (now.micros - table.at(i).last_ts.micros <= cfg.idle_timeout_us) break;
                closing.push_back(i);
            }
        }
        close_together(now, CloseReason::Timeout);
    }
    /// Closes the flows in `closing`, those still open in FlowKey order: the order of the
    /// events they end with is then the same however the flows are sharded.
    void close_together(Timestamp ts, CloseReason why) {
        // Only the connections still open call the sink (their last data, then on_close), so
        // only they are sorted; the rest (UDP flows, connections closed already) are removed as
        // they come. At the end of a login-dense capture most of what is left is UDP KDC flows,
        // and sorting them too was most of this step (callgrind, 40 MB: 13.5 M instructions for
        // the end's close).
        order.clear();
        for (const std::uint32_t i : closing) {
            Flow& f = table.at(i);
            if (f.open) {
                order.push_back(order_key(flow_key(f), i));
                continue;
            }
            close_flow(f, ts, why);  // marks it closed, gives its buffers back: no sink call
            remove(i);
        }
        if (order.size() > 1) {
            std::sort(order.begin(), order.end(),
                      [](const OrderKey& a, const OrderKey& b) { return a.w < b.w; });
        }
        for (const OrderKey& o : order) {
            Flow& f = table.at(o.flow);
            if (why == CloseReason::Timeout) ++st.timeouts;
            close_flow(f, ts, why);
            remove(o.flow);
        }
        closing.clear();
    }
    bool mine(std::uint64_t h) const {
        return cfg.shard_count <= 1 || (h >> 32) % cfg.shard_count == cfg.shard_index;
    }

    // ---- TCP ----------------------------------------------------------------------------------
    void tcp(Timestamp ts, const IpPacket& ip, const TcpSegment& seg, std::uint64_t frame) {
        ++fs->tcp_segments;
        CanonKey k;
        const int side = make_key(ip.src, seg.sport, ip.dst, seg.dport, kTcp, k);
        const std::uint64_t h = hash_key(k);
        if (!mine(h)) return;
        std::uint32_t idx = table.find(k, h);
        if (idx != kNil && !tcp_known(idx, side, seg, ts)) return;
        if (idx == kNil) {
            idx = tcp_open(k, h, side, seg, ts);
            if (idx == kNil) return;
        }
        Flow& f = table.at(idx);
        touch(idx, f);
        f.last_ts = ts;
        if (f.cls == FlowClass::Dropped) {
            ++st.dropped_packets;
            return;
        }
        tcp_segment(f, ((side == 0) == f.a_is_client) ? 0 : 1, seg, ts, frame);
        if (f.closed && f.list == 0) retire(idx, f);  // FIN both ways, or RST
    }

    /// A segment of a connection in the table: false when it is dropped (the connection was
    /// closed); `idx` becomes kNil when a fresh SYN starts a new connection in its place.
    bool tcp_known(std::uint32_t& idx, int side, const TcpSegment& seg, Timestamp ts) {
        Flow& f = table.at(idx);
        const bool sender_client = (side == 0) == f.a_is_client;
        const bool fresh_syn = (seg.flags & tcp_flag::Syn) != 0 && (seg.flags & tcp_flag::Ack) == 0;
        bool restart = false;
        if (f.closed || f.cls == FlowClass::Dropped) {
            restart = fresh_syn;
        } else if (fresh_syn) {
            const Dir& c = f.dir(sender_client ? 0 : 1);
            restart = !sender_client || !c.syn || c.base != seg.seq + 1;
        }
        if (restart) {
            close_flow(f, ts, CloseReason::Timeout);  // superseded by a new connection
            remove(idx);
            idx = kNil;
        } else if (f.closed) {
            touch(idx, f);
            f.last_ts = ts;
            ++st.dropped_packets;
            return false;
        }
        return true;
    }

    /// A new connection from its first segment, oriented by the SYN or by the ports; kNil (and
    /// the segment dropped) when its ports are not followed or the segment cannot start one.
    std::uint32_t tcp_open(const CanonKey& k, std::uint64_t h, int side, const TcpSegment& seg,
                           Timestamp ts) {
        const bool syn = (seg.flags & tcp_flag::Syn) != 0;
        const bool ack = (seg.flags & tcp_flag::Ack) != 0;
        const FlowClass cls = classify(seg.sport, seg.dport, false);
        // A connection starts with a SYN or with data; a lone ACK/FIN/RST starts nothing.
        if (cls == FlowClass::Dropped || (!syn && seg.wire_payload == 0)) {
            ++st.dropped_packets;
            return kNil;
        }
        bool sender_client;
        if (syn) {
            sender_client = !ack;
        } else if (cls == FlowClass::Tds || cls == FlowClass::Kerberos) {
            sender_client = server_port(seg.dport) ? true : !server_port(seg.sport);
            if (server_port(seg.dport) && server_port(seg.sport))
                sender_client = seg.sport > seg.dport;
        } else if (cls == FlowClass::Undecided) {
            sender_client = true;  // the sender of a recognised first payload
        } else {
            sender_client = seg.sport > seg.dport;
        }
        const std::uint32_t idx = create(k, h, ts);
        Flow& f = table.at(idx);
        f.cls = cls;
        f.handshake = syn;
        f.dirs = take_dirs();
        orient(f, side, sender_client);
        if (cls != FlowClass::Undecided) open_flow(f);
        return idx;
    }

    /// A segment in direction `d` of a followed connection: SYN, ACK (gaps the peer cannot have
    /// skipped), data, FIN and RST.
    void tcp_segment(Flow& f, int d, const TcpSegment& seg, Timestamp ts, std::uint64_t frame) {
        Dir& D = f.dir(d);
        if (seg.flags & tcp_flag::Rst) {
            close_flow(f, ts, CloseReason::Rst);
            return;
        }
        std::uint32_t data_seq = seg.seq;
        if (seg.flags & tcp_flag::Syn) {
            D.anchor(seg.seq + 1);
            D.syn = true;
            data_seq = seg.seq + 1;
        }
        if (seg.flags & tcp_flag::Ack) ack_gap(f, 1 - d, ts, seg.ack);
        if (seg.wire_payload > 0) {
            D.anchor(data_seq);
            if (f.cls == FlowClass::Undecided && !decide_by_first_payload(f, d, seg.payload))
                return;
            tcp_data(f, d, ts, data_seq, seg.payload, seg.wire_payload, frame);
        }
        if (seg.flags & tcp_flag::Fin) {
            D.anchor(data_seq);
            if (!D.fin) {
                D.fin = true;
                const std::int64_t fo = D.rel(data_seq) + seg.wire_payload;
                D.fin_offset = fo > 0 ? static_cast<std::uint64_t>(fo) : 0;
            }
        }
        if (f.open && f.dir(0).fin && f.dir(1).fin && f.dir(0).offset >= f.dir(0).fin_offset &&
            f.dir(1).offset >= f.dir(1).fin_offset) {
            close_flow(f, ts, CloseReason::Fin);
        }
    }

    /// A connection on no known port is TDS when its client's first payload starts TDS (or a TDS
    /// 8.0 ClientHello); otherwise it is dropped (false).
    bool decide_by_first_payload(Flow& f, int d, Bytes payload) {
        const bool tds = d == 0 && (looks_like_tds_client_start(payload) ||
                                    is_tls_client_hello_with_tds8_alpn(payload));
        if (!tds) {
            f.cls = FlowClass::Dropped;
            give_dirs(f);
            ++st.dropped_packets;
            return false;
        }
        f.cls = FlowClass::Tds;
        open_flow(f);
        return true;
    }

    // ---- UDP ----------------------------------------------------------------------------------
    void udp(Timestamp ts, const IpPacket& ip, const UdpDatagram& dg, std::uint64_t frame) {
        ++fs->udp_datagrams;
        const FlowClass cls = classify(dg.sport, dg.dport, true);
        if (cls == FlowClass::Dropped || cls == FlowClass::Undecided) {
            ++fs->dropped_packets;
            return;
        }
        if (dg.truncated) {
            ++fs->bad_frames;
            return;
        }
        CanonKey k;
        const int side = make_key(ip.src, dg.sport, ip.dst, dg.dport, kUdp, k);
        const std::uint64_t h = hash_key(k);
        if (!mine(h)) return;
        std::uint32_t idx = table.find(k, h);
        if (idx == kNil) {
            idx = create(k, h, ts, 1);
            Flow& f = table.at(idx);
            f.cls = cls;
            f.udp = true;
            bool sender_client = true;  // first sender, unless one side is a server port
            if (server_port(dg.sport) != server_port(dg.dport))
                sender_client = server_port(dg.dport);
            orient(f, side, sender_client);
            ++st.udp_flows;
        }
        Flow& f = table.at(idx);
        touch(idx, f);
        f.last_ts = ts;
        const int d = ((side == 0) == f.a_is_client) ? 0 : 1;
        sink.on_datagram(flow_key(f), static_cast<Direction>(d), ts, dg.payload,
                         Evidence{frame, 0});
    }

    // ---- IP -----------------------------------------------------------------------------------
    void ip_packet(Timestamp ts, Bytes l3, std::uint64_t frame) {
        IpPacket ip;
        if (parse_ip(l3, ip) != FrameError::None) {
            ++fs->bad_frames;
            return;
        }
        if (ip.protocol != kTcp && ip.protocol != kUdp) {
            ++fs->other_l4;
            return;
        }
        if (ip.fragment) {
            Bytes whole;
            if (!defrag.add(ip, ts, whole)) return;
            ip.payload = whole;
            ip.wire_payload_len = static_cast<std::uint32_t>(whole.size());
            ip.fragment = false;
        }
        if (ip.protocol == kTcp) {
            TcpSegment seg;
            if (parse_tcp(ip.payload, ip.wire_payload_len, seg) != FrameError::None) {
                ++fs->bad_frames;
                return;
            }
            tcp(ts, ip, seg, frame);
        } else {
            UdpDatagram dg;
            if (parse_udp(ip.payload, dg) != FrameError::None) {
                ++fs->bad_frames;
                return;
            }
            udp(ts, ip, dg, frame);
        }
    }
};

StreamAssembler::StreamAssembler(StreamSink& sink, AssemblerConfig config)
    : impl_(std::make_unique<Impl>(sink, std::move(config))) {}

StreamAssembler::~StreamAssembler() = default;

void StreamAssembler::on_frame(int linktype, Timestamp ts, Bytes frame, std::uint64_t frame_no) {
    Impl& m = *impl_;
    ++m.fs->frames;
    if (m.last_ts < ts) m.last_ts = ts;
    m.maybe_expire(ts);
    Bytes l3;
    const FrameError e = strip_link(linktype, frame, l3);
    if (e == FrameError::NotIp) {
        ++m.fs->not_ip;
        return;
    }
    if (e != FrameError::None) {
        ++m.fs->bad_frames;
        return;
    }
    m.ip_packet(ts, l3, frame_no);
}

void StreamAssembler::on_ip(Timestamp ts, Bytes l3, std::uint64_t frame_no) {
    Impl& m = *impl_;
    ++m.fs->frames;
    if (m.last_ts < ts) m.last_ts = ts;
    m.maybe_expire(ts);
    m.ip_packet(ts, l3, frame_no);
}

void StreamAssembler::advance_time(Timestamp now) {
    Impl& m = *impl_;
    if (now < m.last_ts) return;  // never behind the frames already seen
    m.maybe_expire(now);
}

void StreamAssembler::expire(Timestamp ts) {
    impl_->maybe_expire(ts);
}

void StreamAssembler::finish(Timestamp ts) {
    Impl& m = *impl_;
    m.closing.clear();
    for (const Impl::Lru& l : m.lru)
        for (std::uint32_t i = l.tail; i != kNil; i = m.table.at(i).prev)
            m.closing.push_back(i);
    m.close_together(ts, CloseReason::EndOfInput);
}

AssemblerStats& AssemblerStats::operator+=(const AssemblerStats& o) {
    frames += o.frames;
    not_ip += o.not_ip;
    bad_frames += o.bad_frames;
    other_l4 += o.other_l4;
    tcp_segments += o.tcp_segments;
    udp_datagrams += o.udp_datagrams;
    dropped_packets += o.dropped_packets;
    connections += o.connections;
    udp_flows += o.udp_flows;
    retransmitted_bytes += o.retransmitted_bytes;
    out_of_order_segments += o.out_of_order_segments;
    gaps += o.gaps;
    gap_bytes += o.gap_bytes;
    timeouts += o.timeouts;
    evictions += o.evictions;
    defrag.fragments += o.defrag.fragments;
    defrag.reassembled += o.defrag.reassembled;
    defrag.dropped += o.defrag.dropped;
    return *this;
}

AssemblerStats StreamAssembler::stats() const {
    AssemblerStats s = impl_->st;
    if (impl_->cfg.shard_index == 0) s.defrag = impl_->defrag.stats();
    return s;
}

Timestamp StreamAssembler::last_timestamp() const {
    return impl_->last_ts;
}

std::size_t StreamAssembler::open_flows() const {
    return impl_->table.size();
}

}  // namespace hopscope::captures
