// Fuzz target: the bytes are a capture file (pcap or pcapng), read through libpcap from memory
// (fmemopen + pcap_fopen_offline) and fed to a StreamAssembler that hands on every flow. The
// same bytes are then read again as a file (a memfd, opened by path): a classic pcap or pcapng
// file goes through the hand-written mapped readers (with a one-page window, so that records and
// blocks cross window ends), which must deliver exactly the frames libpcap delivered and end the
// same way (pcapng: also when they hand the file back to libpcap part way).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
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

struct Frame {
    std::int64_t ts;
    std::uint32_t wire_len;
    std::vector<std::uint8_t> bytes;
    bool operator==(const Frame&) const = default;
};

/// Frames of `file` (at most `limit`), and how reading ended (0 end of file, -1 damaged).
int frames_of(captures::CaptureFile& file, std::vector<Frame>& out, std::size_t limit) {
    captures::PacketView pkt;
    int rc = 0;
    while (out.size() < limit && (rc = file.next(pkt)) == 1)
        out.push_back(Frame{pkt.ts.micros, pkt.wire_len, {pkt.data.begin(), pkt.data.end()}});
    return out.size() < limit ? rc : 1;
}

void compare_with_mapped(const std::uint8_t* data, std::size_t size) {
    const int fd = memfd_create("fuzz_pcap", 0);
    if (fd < 0) return;
    std::size_t written = 0;
    while (written < size) {
        const ssize_t n = write(fd, data + written, size - written);
        if (n <= 0) break;
        written += static_cast<std::size_t>(n);
    }
    if (written == size) {
        std::vector<std::uint8_t> copy(data, data + size);
        std::FILE* fp = fmemopen(copy.data(), copy.size(), "rb");
        captures::CaptureError e1, e2;
        auto via_libpcap = fp ? captures::CaptureFile::open_stream(fp, "<fuzz>", e1) : nullptr;
        captures::CaptureFile::set_map_window_for_testing(4096);
        auto via_path = captures::CaptureFile::open("/proc/self/fd/" + std::to_string(fd), e2);
        captures::CaptureFile::set_map_window_for_testing(0);
        if ((via_libpcap == nullptr) != (via_path == nullptr)) __builtin_trap();
        if (via_libpcap && via_path) {
            std::vector<Frame> a, b;
            const int ra = frames_of(*via_libpcap, a, 2000);
            const int rb = frames_of(*via_path, b, 2000);
            if (ra != rb || a != b) __builtin_trap();
        }
    }
    close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    compare_with_mapped(data, size);
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
