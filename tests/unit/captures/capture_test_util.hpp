// Helpers for the capture tests: a StreamSink that records and checks what it is given, a small
// pcap reader/writer, and the file list of the public captures.
#pragma once

#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "hopscope/captures/capture_source.hpp"
#include "hopscope/common/stream_events.hpp"

namespace hopscope::captures::testing {

inline std::string public_dir() {
    return std::string(HOPSCOPE_TEST_DATA_DIR) + "/public";
}
inline std::string expected_dir() {
    return std::string(HOPSCOPE_TEST_DATA_DIR) + "/captures";
}

inline std::vector<std::string> public_captures() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(public_dir())) {
        const auto ext = e.path().extension().string();
        if (ext == ".pcap" || ext == ".pcapng") out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

/// A test name for a capture file name (gtest allows letters, digits and underscores).
inline std::string capture_test_name(const ::testing::TestParamInfo<std::string>& i) {
    std::string n = i.param;
    for (char& ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    return n;
}

/// Records every event and checks the StreamSink contract as it goes: data and gaps only between
/// open and close, stream offsets contiguous per direction, no event after close.
class RecordingSink : public StreamSink {
  public:
    struct Conn {
        FlowKey key;
        bool handshake = false;
        bool closed = false;
        CloseReason why = CloseReason::EndOfInput;
        std::string bytes[2];        // delivered payload per Direction
        std::uint64_t next[2] = {};  // next expected stream offset
        std::uint64_t gaps[2] = {};  // bytes declared missing
        std::vector<std::uint64_t> frames[2];
    };
    struct Datagram {
        FlowKey key;
        Direction dir;
        std::uint64_t frame;
        std::string payload;
    };

    void on_open(const FlowKey& flow, Timestamp, bool handshake_seen) override {
        EXPECT_EQ(live_.count(flow), 0u) << "open twice: " << to_string(flow.client);
        live_[flow] = conns.size();
        Conn c;
        c.key = flow;
        c.handshake = handshake_seen;
        conns.push_back(std::move(c));
    }
    void on_data(const FlowKey& flow, Direction dir, Timestamp, Bytes data, Evidence ev) override {
        Conn* c = find(flow);
        if (c == nullptr) return;
        const int d = static_cast<int>(dir);
        EXPECT_EQ(ev.stream_offset, c->next[d]) << "offset jump in " << to_string(flow.client);
        EXPECT_FALSE(data.empty());
        EXPECT_GT(ev.frame, 0u);
        c->bytes[d].append(reinterpret_cast<const char*>(data.data()), data.size());
        c->next[d] += data.size();
        c->frames[d].push_back(ev.frame);
    }
    void on_gap(const FlowKey& flow, Direction dir, Timestamp, std::uint64_t length) override {
        Conn* c = find(flow);
        if (c == nullptr) return;
        EXPECT_GT(length, 0u);
        c->next[static_cast<int>(dir)] += length;
        c->gaps[static_cast<int>(dir)] += length;
    }
    void on_close(const FlowKey& flow, Timestamp, CloseReason why) override {
        Conn* c = find(flow);
        if (c == nullptr) return;
        c->closed = true;
        c->why = why;
        live_.erase(flow);
    }
    void on_datagram(const FlowKey& flow, Direction dir, Timestamp, Bytes payload,
                     Evidence ev) override {
        datagrams.push_back(
            {flow, dir, ev.frame,
             std::string(reinterpret_cast<const char*>(payload.data()), payload.size())});
    }

    std::vector<Conn> conns;
    std::vector<Datagram> datagrams;
    [[nodiscard]] std::size_t still_open() const { return live_.size(); }

  private:
    Conn* find(const FlowKey& flow) {
        auto it = live_.find(flow);
        EXPECT_NE(it, live_.end())
            << "event for a connection that is not open: " << to_string(flow.client) << " -> "
            << to_string(flow.server);
        return it == live_.end() ? nullptr : &conns[it->second];
    }
    std::map<FlowKey, std::size_t> live_;
};

inline AssemblerConfig accept_all_config() {
    AssemblerConfig cfg;
    cfg.filter.accept_all = true;
    return cfg;
}

/// Reads captures into a RecordingSink.
inline ReadResult read_into(RecordingSink& sink, const std::vector<std::string>& paths,
                            AssemblerConfig cfg = accept_all_config(),
                            AssemblerStats* stats = nullptr) {
    StreamAssembler a(sink, std::move(cfg));
    ReadResult r = read_captures(paths, a);
    if (stats) *stats = a.stats();
    return r;
}

// ---- pcap files in memory -----------------------------------------------------------------------

struct Record {
    std::int64_t ts_us = 0;
    std::vector<std::uint8_t> bytes;
    std::uint32_t wire_len = 0;
};

struct PcapData {
    int linktype = 1;
    std::vector<Record> records;
};

/// Reads any pcap/pcapng with libpcap (test-side reference reader).
inline PcapData load_pcap(const std::string& path) {
    PcapData out;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p =
        pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_MICRO, err);
    if (p == nullptr) {
        ADD_FAILURE() << path << ": " << err;
        return out;
    }
    out.linktype = pcap_datalink(p);
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        Record r;
        r.ts_us = static_cast<std::int64_t>(h->ts.tv_sec) * 1000000 + h->ts.tv_usec;
        r.bytes.assign(d, d + h->caplen);
        r.wire_len = h->len;
        out.records.push_back(std::move(r));
    }
    pcap_close(p);
    return out;
}

inline void put32(std::vector<std::uint8_t>& v, std::uint32_t x) {
    for (int i = 0; i < 4; ++i)
        v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}
inline void put16(std::vector<std::uint8_t>& v, std::uint16_t x) {
    v.push_back(static_cast<std::uint8_t>(x));
    v.push_back(static_cast<std::uint8_t>(x >> 8));
}

/// Serialises as classic little-endian microsecond pcap (the format of libpcap's savefile.c).
inline std::vector<std::uint8_t> pcap_bytes(const PcapData& d) {
    std::vector<std::uint8_t> v;
    put32(v, 0xA1B2C3D4);
    put16(v, 2);
    put16(v, 4);
    put32(v, 0);
    put32(v, 0);
    put32(v, 262144);
    put32(v, static_cast<std::uint32_t>(d.linktype));
    for (const auto& r : d.records) {
        put32(v, static_cast<std::uint32_t>(r.ts_us / 1000000));
        put32(v, static_cast<std::uint32_t>(r.ts_us % 1000000));
        put32(v, static_cast<std::uint32_t>(r.bytes.size()));
        put32(v, std::max<std::uint32_t>(r.wire_len, static_cast<std::uint32_t>(r.bytes.size())));
        v.insert(v.end(), r.bytes.begin(), r.bytes.end());
    }
    return v;
}

/// A file under the test's temporary directory, removed when the object goes.
class TempFile {
  public:
    explicit TempFile(const std::string& name, const std::vector<std::uint8_t>& bytes) {
        path_ = (std::filesystem::temp_directory_path() /
                 ("hopscope_" + std::to_string(::getpid()) + "_" + name))
                    .string();
        std::FILE* f = std::fopen(path_.c_str(), "wb");
        EXPECT_NE(f, nullptr);
        if (f) {
            std::fwrite(bytes.data(), 1, bytes.size(), f);
            std::fclose(f);
        }
    }
    ~TempFile() { std::remove(path_.c_str()); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }

  private:
    std::string path_;
};

}  // namespace hopscope::captures::testing
