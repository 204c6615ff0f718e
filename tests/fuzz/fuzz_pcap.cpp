// Fuzz target: the bytes are a capture file (pcap or pcapng), read through libpcap from memory
// (fmemopen + pcap_fopen_offline) and fed to a StreamAssembler that hands on every flow.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "hopscope/captures/capture_source.hpp"

namespace {

using namespace hopscope;

struct NullSink : StreamSink {
    std::uint64_t bytes = 0;
    void on_open(const FlowKey&, Timestamp, bool) override {}
    void on_data(const FlowKey&, Direction, Timestamp, Bytes b, Evidence) override {
        bytes += b.size();
    }
    void on_gap(const FlowKey&, Direction, Timestamp, std::uint64_t) override {}
    void on_close(const FlowKey&, Timestamp, CloseReason) override {}
    void on_datagram(const FlowKey&, Direction, Timestamp, Bytes b, Evidence) override {
        bytes += b.size();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::vector<std::uint8_t> copy(data, data + size);  // fmemopen wants a mutable buffer
    std::FILE* fp = fmemopen(copy.data(), copy.size(), "rb");
    if (fp == nullptr) return 0;
    captures::CaptureError err;
    auto file = captures::CaptureFile::open_stream(fp, "<fuzz>", err);
    if (!file) {
        (void)err.to_string();
        return 0;
    }
    NullSink sink;
    captures::AssemblerConfig cfg;
    cfg.filter.accept_all = true;
    cfg.max_connections = 64;
    captures::StreamAssembler a(sink, cfg);
    captures::PacketView pkt;
    int rc;
    std::uint64_t frame = 0;
    while ((rc = file->next(pkt)) == 1 && frame < 100000)
        a.on_frame(pkt.linktype, pkt.ts, pkt.data, ++frame);
    if (rc < 0) (void)file->error().to_string();
    (void)file->bytes_read();
    a.finish(pkt.ts);
    return 0;
}
