// Fuzz target: the proxy's tap path without sockets (proxy/src/tap.cpp): what the two legs of
// proxied connections hand to the analysis thread, through the same TapWriter (TDS or not, the
// Open item, copies, shared forwarding blocks, drops past the queue's budget and the gaps they
// leave, the gaps and Close at the end), Tap (the bounded queue) and TapDispatcher (flows owned
// by their newest connection, the recording, the pipeline) as `hopscope proxy`, into the real
// pipeline::Pipeline and, when chosen, the real pcapng Recorder (written to /dev/null).
//
// Input: [config] then records [op] ([length:2 BE][bytes] for the ops that carry bytes).
//   config: bit 0 a small queue (6 KiB, so chunks are dropped and gaps reported) instead of
//           1 MiB; bit 1 the analyzer's proxy view of explicit listeners (rules on the proxy
//           itself); bit 2 slots 0 and 1 use the same flow (a client port reused while the older
//           connection's items are still queued); bit 3 a recording; bit 4 with its upstream
//           leg; bits 5-7 the proxy terminates the TLS of slot 0, 1, 2's connections.
//   op: bits 0-1 a connection slot (0, 1: clients to the middle server, 2: the middle server
//       to a back end) or 3 for the analysis thread. Slot actions (bits 2-4): 0/1 client/server
//       bytes as forwarded (cut into 4 KiB reads, shared with the queue from a quarter of that,
//       as the pumps do); 2/3 client/server bytes of the role in bits 5-6 (wire, opaque TLS
//       records, plaintext, upstream leg; a connection whose TLS is not terminated has only
//       wire bytes); 4 close (bits 5-6: FIN, RST, timeout, end of input), the slot's next bytes
//       are a new connection; 5 a TLS secret line; 6/7 client/server bytes always in a shared
//       block. Analysis actions: 0 drain the queue into the dispatcher; 1 tick (250 ms times
//       bits 5-7 plus one); 2 the clock steps back (items from other I/O threads); 3 every
//       connection closes (shutdown). Every op else advances the clock by 100 us.
// Checks, besides the sanitizers: for a connection whose TLS is not terminated the decoder sees
// each direction's bytes at their stream offsets, every missing byte announced as a gap; no
// bytes of a flow outside its open and close; at the end nothing queued, nothing open.
// Seeds: the TDS streams of the lab captures (tests/fuzz/make_proxy_tap_seeds.py).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hopscope/pipeline/pipeline.hpp"
#include "hopscope/proxy/recorder.hpp"
#include "hopscope/proxy/tap.hpp"

using namespace hopscope;
using namespace hopscope::proxy;

namespace {

constexpr std::size_t kBlock = 4096;  // the smallest --buffer-size
constexpr std::uint32_t kC = 0x0a4d0002, kA = 0x0a4d0003, kB = 0x0a4d0004, kProxy = 0x0a4d0009;

struct Events : pipeline::EventSink {};

[[noreturn]] void fail() {
    std::abort();
}

/// Between the dispatcher and the pipeline: checks what the decoder is told.
class Checker final : public StreamSink {
  public:
    explicit Checker(pipeline::Pipeline& p) : p_(p) {}
    /// The next Open dispatched is of a connection whose TLS the proxy terminates (its stream
    /// offsets are the client leg's, which the plaintext does not follow).
    void next_open(bool terminated) { next_terminated_ = terminated; }
    [[nodiscard]] std::size_t open() const { return flows_.size(); }

    void on_open(const FlowKey& flow, Timestamp ts, bool handshake_seen) override {
        if (flows_.count(flow)) fail();  // the dispatcher closes the older connection first
        flows_[flow] = State{{0, 0}, !next_terminated_};
        p_.on_open(flow, ts, handshake_seen);
    }
    void on_data(const FlowKey& flow, Direction dir, Timestamp ts, Bytes data,
                 Evidence ev) override {
        State& s = at(flow);
        const int d = static_cast<int>(dir);
        if (s.check && ev.stream_offset != s.next[d]) fail();
        s.next[d] = ev.stream_offset + data.size();
        p_.on_data(flow, dir, ts, data, ev);
    }
    void on_gap(const FlowKey& flow, Direction dir, Timestamp ts, std::uint64_t length) override {
        if (length == 0) fail();
        at(flow).next[static_cast<int>(dir)] += length;
        p_.on_gap(flow, dir, ts, length);
    }
    void on_close(const FlowKey& flow, Timestamp ts, CloseReason why) override {
        at(flow);
        flows_.erase(flow);
        p_.on_close(flow, ts, why);
    }
    void on_datagram(const FlowKey&, Direction, Timestamp, Bytes, Evidence) override { fail(); }
    void on_tls_plaintext(const FlowKey& flow, Direction dir, Timestamp ts, Bytes plaintext,
                          Evidence ev) override {
        at(flow);
        p_.on_tls_plaintext(flow, dir, ts, plaintext, ev);
    }

  private:
    struct State {
        std::uint64_t next[2];
        bool check;
    };
    State& at(const FlowKey& flow) {
        const auto it = flows_.find(flow);
        if (it == flows_.end()) fail();  // bytes of a flow that is not open
        return it->second;
    }
    pipeline::Pipeline& p_;
    std::unordered_map<FlowKey, State, FlowKeyHash> flows_;
    bool next_terminated_ = false;
};

struct Slot {
    std::unique_ptr<TapWriter> w;
    FlowKey flow;
    bool terminated = false;
    std::uint64_t wire[2] = {0, 0};      ///< forwarded (client leg) per direction
    std::uint64_t upstream[2] = {0, 0};  ///< upstream leg, terminated connections
};

FlowKey slot_flow(int slot, bool shared) {
    if (slot == 2)
        return {{IpAddress::v4_from(kA), 40000}, {IpAddress::v4_from(kB), 1433}, Transport::Tcp};
    const std::uint16_t port = slot == 1 && !shared ? 50001 : 50000;
    return {{IpAddress::v4_from(kC), port}, {IpAddress::v4_from(kA), 1433}, Transport::Tcp};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t config = data[0];
    const bool shared_flow = config & 0x04;
    const bool record = config & 0x08;
    const bool record_upstream = record && (config & 0x10);

    Events events;
    pipeline::Pipeline::Options po;
    po.analyzer.proxy.active = true;
    if (config & 0x02) {  // explicit listeners (transparent: clients use the servers' names)
        po.analyzer.proxy.explicit_upstreams = {{IpAddress::v4_from(kA), 1433},
                                                {IpAddress::v4_from(kB), 1433}};
        po.analyzer.proxy.proxy_names = {"proxy", "proxy.lab.test", "10.77.0.9"};
    }
    po.analyzer.proxy.terminates_tls = (config & 0xe0) != 0;
    pipeline::Pipeline pipe(events, po);
    Checker checker(pipe);
    std::unique_ptr<Recorder> recorder;
    if (record) {
        std::string err;
        recorder = Recorder::open(RecorderOptions{"/dev/null", 0, 4, {}}, err);
        if (!recorder) fail();
    }
    BlockPool blocks(kBlock, 8);
    Tap tap((config & 0x01) ? 6 * 1024 : 1 << 20);
    TapDispatcher dispatcher(&checker, recorder.get(), record_upstream);

    std::int64_t clock = 1'700'000'000'000'000;
    std::uint64_t next_id = 1;
    Slot slots[3];
    std::vector<TapItem> batch;
    auto drain = [&] {
        tap.drain(batch, std::chrono::milliseconds(0));
        for (auto& item : batch) {
            if (item.kind == TapItem::Kind::Open) checker.next_open(item.terminated);
            dispatcher.dispatch(item);
        }
        batch.clear();
    };
    auto writer = [&](int s) -> Slot& {
        Slot& sl = slots[s];
        if (!sl.w) {
            sl = Slot{};
            sl.flow = slot_flow(s, shared_flow);
            sl.terminated = config & (0x20 << s);
            sl.w = std::make_unique<TapWriter>(tap, next_id++);
            const Endpoint local{IpAddress::v4_from(kProxy),
                                 static_cast<std::uint16_t>(60000 + next_id % 1000)};
            sl.w->connected(sl.flow, local, sl.terminated);
        }
        return sl;
    };
    auto end = [&](int s, CloseReason why) {
        Slot& sl = writer(s);
        sl.w->close(Timestamp{clock}, why, sl.wire, sl.upstream);
        sl.w.reset();
    };
    // Bytes forwarded in one direction, as the pumps hand them over: reads of at most a
    // buffer, shared with the queue from a quarter of a buffer (or always, `force_block`).
    auto forward = [&](Slot& sl, Direction dir, const std::uint8_t* p, std::size_t n,
                       bool force_block) {
        const int d = static_cast<int>(dir);
        while (n > 0) {
            const std::size_t take = std::min(n, kBlock);
            Block* b = nullptr;
            if (force_block || take >= kBlock / 4) {
                b = blocks.get();
                std::memcpy(b->data(), p, take);
            }
            sl.w->data(dir, Timestamp{clock}, b ? b->data() : p, take, sl.wire[d], b);
            if (b) BlockPool::unref(b);  // the pump lets go of its buffer; the queue may hold it
            sl.wire[d] += take;
            p += take;
            n -= take;
        }
    };

    std::size_t i = 1;
    while (i < size) {
        const std::uint8_t op = data[i++];
        const int s = op & 3;
        const int action = (op >> 2) & 7;
        const int arg = op >> 5;
        clock += 100;
        if (s == 3) {
            switch (action) {
                case 0:
                    drain();
                    break;
                case 1:
                    clock += 250'000 * (arg + 1);
                    pipe.tick(Timestamp{clock});
                    break;
                case 2:
                    clock -= 1000 * (arg + 1);
                    break;
                case 3:
                    for (int k = 0; k < 3; ++k)
                        if (slots[k].w) end(k, CloseReason::EndOfInput);
                    break;
                default:
                    break;
            }
            continue;
        }
        if (action == 4) {
            end(s, static_cast<CloseReason>(arg & 3));
            continue;
        }
        // The ops that carry bytes.
        if (i + 2 > size) break;
        std::size_t len = (std::size_t{data[i]} << 8) | data[i + 1];
        i += 2;
        if (len > size - i) len = size - i;
        const std::uint8_t* p = data + i;
        i += len;
        Slot& sl = writer(s);
        const Direction dir = (action & 1) ? Direction::ServerToClient : Direction::ClientToServer;
        const int d = static_cast<int>(dir);
        switch (action) {
            case 0:
            case 1:
                forward(sl, dir, p, len, false);
                break;
            case 6:
            case 7:
                forward(sl, dir, p, len, true);
                break;
            case 2:
            case 3: {
                const auto role =
                    sl.terminated ? static_cast<TapItem::Role>(arg & 3) : TapItem::Role::Wire;
                switch (role) {
                    case TapItem::Role::Wire:
                        forward(sl, dir, p, len, false);
                        break;
                    case TapItem::Role::Opaque:  // copied only for a recording
                        if (recorder)
                            sl.w->data(dir, Timestamp{clock}, p, len, sl.wire[d], nullptr, role);
                        sl.wire[d] += len;
                        break;
                    case TapItem::Role::Plain:  // at the offset of the record that carried it
                        sl.w->data(dir, Timestamp{clock}, p, len, sl.wire[d], nullptr, role);
                        break;
                    case TapItem::Role::Upstream:
                        if (record_upstream)
                            sl.w->data(dir, Timestamp{clock}, p, len, sl.upstream[d], nullptr,
                                       role);
                        sl.upstream[d] += len;
                        break;
                }
                break;
            }
            case 5:
                if (recorder)
                    sl.w->secret(Timestamp{clock},
                                 std::string_view(reinterpret_cast<const char*>(p), len));
                break;
            default:
                break;
        }
    }
    // Shutdown: every connection closes, the analysis thread takes what is left.
    for (int k = 0; k < 3; ++k)
        if (slots[k].w) end(k, CloseReason::EndOfInput);
    drain();
    tap.close();
    if (tap.drain(batch, std::chrono::milliseconds(0))) fail();  // closed and empty
    if (tap.stats().queued_bytes != 0) fail();
    if (dispatcher.open_connections() != 0 || checker.open() != 0) fail();
    pipe.finish(Timestamp{clock + 1});
    return 0;
}
