// Fuzz target: frames through link/IP/TCP/UDP decoding, defragmentation and TCP reassembly.
//
// Input: one byte choosing the link type, then frames as [u16 LE length][u8 time step][bytes].
// The assembler runs with small limits (connections, buffers, fragments) so that eviction, gaps
// and timeouts are reached quickly; the sink checks the StreamSink contract and aborts on a breach.
#include <cstdint>
#include <cstdlib>
#include <map>

#include "hopscope/captures/stream_assembler.hpp"

namespace {

using namespace hopscope;

constexpr int kLinks[] = {0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276, 147};

struct CheckingSink : StreamSink {
    std::map<std::pair<FlowKey, int>, std::uint64_t> next;
    std::map<FlowKey, int> open;
    void on_open(const FlowKey& f, Timestamp, bool) override {
        if (open.count(f)) std::abort();
        open[f] = 1;
        next[{f, 0}] = 0;
        next[{f, 1}] = 0;
    }
    void on_data(const FlowKey& f, Direction d, Timestamp, Bytes b, Evidence ev) override {
        if (!open.count(f) || b.empty()) std::abort();
        auto& n = next[{f, static_cast<int>(d)}];
        if (ev.stream_offset != n) std::abort();
        volatile std::uint8_t sink = 0;
        for (auto x : b)
            sink = sink ^ x;  // touch every byte (ASan checks the span)
        n += b.size();
    }
    void on_gap(const FlowKey& f, Direction d, Timestamp, std::uint64_t len) override {
        if (!open.count(f) || len == 0) std::abort();
        next[{f, static_cast<int>(d)}] += len;
    }
    void on_close(const FlowKey& f, Timestamp, CloseReason) override {
        if (!open.erase(f)) std::abort();
        next.erase({f, 0});
        next.erase({f, 1});
    }
    void on_datagram(const FlowKey&, Direction, Timestamp, Bytes b, Evidence) override {
        volatile std::uint8_t sink = 0;
        for (auto x : b)
            sink = sink ^ x;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const int link = kLinks[(data[0] & 0x7F) % (sizeof kLinks / sizeof kLinks[0])];
    captures::AssemblerConfig cfg;
    cfg.filter.accept_all = (data[0] & 0x80) == 0;  // also exercise the filter + heuristic
    cfg.max_connections = 8;
    cfg.max_buffered_per_direction = 512;
    cfg.max_segments_per_direction = 16;
    cfg.idle_timeout_us = 1000;
    cfg.defrag.max_pending = 4;
    cfg.defrag.timeout_us = 500;
    CheckingSink sink;
    {
        captures::StreamAssembler a(sink, cfg);
        std::size_t pos = 1;
        std::int64_t t = 0;
        std::uint64_t frame = 0;
        while (pos + 3 <= size) {
            std::size_t len = data[pos] | (data[pos + 1] << 8);
            t += data[pos + 2] * 16;
            pos += 3;
            if (len > size - pos) len = size - pos;
            a.on_frame(link, Timestamp{t}, Bytes(data + pos, len), ++frame);
            pos += len;
        }
        a.finish(Timestamp{t});
        (void)a.stats();
    }
    if (!sink.open.empty()) std::abort();  // finish() closes everything
    return 0;
}
