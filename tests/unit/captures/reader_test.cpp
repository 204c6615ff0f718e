// Capture files: damaged files, unreadable inputs, stdin, several files merged in time order,
// progress reporting; and a live capture on the loopback interface.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "capture_test_util.hpp"
#include "reader_compare.hpp"

namespace hopscope::captures::testing {
namespace {

// Record boundaries of a little-endian classic pcap (24-byte header, 16-byte record headers).
std::vector<std::size_t> record_ends(const std::vector<std::uint8_t>& b) {
    std::vector<std::size_t> ends;
    std::size_t off = 24;
    while (off + 16 <= b.size()) {
        const std::size_t caplen = load_u32le(&b[off + 8]);
        if (off + 16 + caplen > b.size()) break;
        off += 16 + caplen;
        ends.push_back(off);
    }
    return ends;
}

bool is_prefix(const std::string& a, const std::string& b) {
    return a.size() <= b.size() && b.compare(0, a.size(), a) == 0;
}

// Source: arkime tests/pcap/tds7.pcap (Apache-2.0), see tests/data/public/MANIFEST.md.
const char* kTds7 = "tds7_sqlauth_login_prelogin_loginack_arkime.pcap";

TEST(Reader, TruncatedPcapReportsFileAndOffsetAndKeepsEarlierData) {
    for (const char* name : {kTds7, "krb_ntlm_ldap_aduser_zeek.pcap"}) {
        const std::string path = public_dir() + "/" + name;
        const auto bytes = file_bytes(path);
        ASSERT_EQ(load_u32le(bytes.data()), 0xA1B2C3D4u) << "test expects a little-endian pcap";
        const auto ends = record_ends(bytes);
        ASSERT_EQ(ends.back(), bytes.size());
        RecordingSink clean;
        ASSERT_TRUE(read_into(clean, {path}).ok());

        for (std::size_t cut = 24; cut < bytes.size(); cut += 13) {
            const std::vector<std::uint8_t> prefix(
                bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
            TempFile f("trunc.pcap", prefix);
            RecordingSink sink;
            const ReadResult r = read_into(sink, {f.path()});
            const auto whole = std::upper_bound(ends.begin(), ends.end(), cut) - ends.begin();
            const std::size_t last_end = whole ? ends[static_cast<std::size_t>(whole) - 1] : 24;
            EXPECT_EQ(r.frames, static_cast<std::uint64_t>(whole)) << name << " cut " << cut;
            if (last_end == cut) {
                EXPECT_TRUE(r.ok()) << "a cut on a record boundary is a clean end";
            } else {
                ASSERT_EQ(r.errors.size(), 1u) << name << " cut " << cut;
                const CaptureError& e = r.errors[0];
                EXPECT_EQ(e.file, f.path());
                ASSERT_TRUE(e.offset.has_value());
                EXPECT_EQ(*e.offset, last_end) << "offset of the first unreadable record";
                EXPECT_EQ(e.frames_read, static_cast<std::uint64_t>(whole));
                const std::string text = e.to_string();
                EXPECT_NE(text.find(f.path()), std::string::npos) << text;
                EXPECT_NE(text.find("offset " + std::to_string(last_end)), std::string::npos)
                    << text;
                EXPECT_NE(text.find("truncated"), std::string::npos) << text;
            }
            // What was read is a prefix of the clean streams.
            for (std::size_t i = 0; i < sink.conns.size(); ++i) {
                const auto& c = sink.conns[i];
                const auto it = std::find_if(clean.conns.begin(), clean.conns.end(),
                                             [&](const auto& k) { return k.key == c.key; });
                ASSERT_NE(it, clean.conns.end());
                EXPECT_TRUE(is_prefix(c.bytes[0], it->bytes[0])) << cut;
                EXPECT_TRUE(is_prefix(c.bytes[1], it->bytes[1])) << cut;
            }
        }
    }
}

TEST(Reader, TruncatedPcapngReportsFileAndOffset) {
    // Source: zeek testing/btest/Traces/dce-rpc/dce_rpc_ntlm.pcapng (BSD-3-Clause).
    const std::string path = public_dir() + "/ntlm_dcerpc_bind_zeek.pcapng";
    const auto bytes = file_bytes(path);
    RecordingSink clean;
    const ReadResult full = read_into(clean, {path});
    ASSERT_TRUE(full.ok());
    std::uint64_t prev_frames = 0;
    int errors = 0;
    for (std::size_t cut = 100; cut < bytes.size(); cut += 97) {
        TempFile f("trunc.pcapng",
                   std::vector<std::uint8_t>(bytes.begin(),
                                             bytes.begin() + static_cast<std::ptrdiff_t>(cut)));
        RecordingSink sink;
        const ReadResult r = read_into(sink, {f.path()});
        EXPECT_GE(r.frames, prev_frames);
        EXPECT_LE(r.frames, full.frames);
        prev_frames = r.frames;
        if (!r.ok()) {
            ++errors;
            ASSERT_EQ(r.errors.size(), 1u);
            EXPECT_EQ(r.errors[0].file, f.path());
            EXPECT_TRUE(r.errors[0].offset.has_value());
            EXPECT_LE(*r.errors[0].offset, cut);
        }
    }
    EXPECT_GT(errors, 10);
}

TEST(Reader, UnreadableInputsGiveClearErrors) {
    ReadResult r;
    {
        RecordingSink sink;
        r = read_into(sink, {"/nonexistent/x.pcap"});
        ASSERT_EQ(r.errors.size(), 1u);
        EXPECT_NE(r.errors[0].to_string().find("/nonexistent/x.pcap: cannot open"),
                  std::string::npos)
            << r.errors[0].to_string();
    }
    {
        TempFile f("text.pcap", std::vector<std::uint8_t>(100, 'x'));
        RecordingSink sink;
        r = read_into(sink, {f.path()});
        ASSERT_EQ(r.errors.size(), 1u);
        EXPECT_NE(r.errors[0].to_string().find("not a readable pcap"), std::string::npos);
    }
    {
        PcapData d;
        d.linktype = 147;  // LINKTYPE_USER0
        d.records.push_back({1, {1, 2, 3}, 3});
        TempFile f("user0.pcap", pcap_bytes(d));
        RecordingSink sink;
        r = read_into(sink, {f.path()});
        ASSERT_EQ(r.errors.size(), 1u);
        EXPECT_NE(r.errors[0].to_string().find("unsupported link type 147"), std::string::npos)
            << r.errors[0].to_string();
    }
}

TEST(Reader, SeveralFilesMergeInTimeOrder) {
    const std::string path = public_dir() + "/krb_ntlm_ldap_aduser_zeek.pcap";
    PcapData d = load_pcap(path);
    for (std::size_t i = 1; i < d.records.size(); ++i)
        ASSERT_LT(d.records[i - 1].ts_us, d.records[i].ts_us) << "needs distinct timestamps";
    PcapData odd, even;
    odd.linktype = even.linktype = d.linktype;
    for (std::size_t i = 0; i < d.records.size(); ++i)
        (i % 2 ? odd : even).records.push_back(d.records[i]);
    TempFile a("odd.pcap", pcap_bytes(odd));
    TempFile b("even.pcap", pcap_bytes(even));
    RecordingSink whole, merged;
    ASSERT_TRUE(read_into(whole, {path}).ok());
    ASSERT_TRUE(read_into(merged, {a.path(), b.path()}).ok());
    ASSERT_EQ(whole.conns.size(), merged.conns.size());
    for (std::size_t i = 0; i < whole.conns.size(); ++i) {
        EXPECT_EQ(whole.conns[i].key, merged.conns[i].key);
        for (int dir = 0; dir < 2; ++dir) {
            EXPECT_EQ(whole.conns[i].bytes[dir], merged.conns[i].bytes[dir]);
            // Merged frame numbers are the positions in time order = the original numbers.
            EXPECT_EQ(whole.conns[i].frames[dir], merged.conns[i].frames[dir]);
        }
    }
}

TEST(Reader, ProgressReachesTheFileSize) {
    const std::string path = public_dir() + "/" + kTds7;
    RecordingSink sink;
    StreamAssembler a(sink, accept_all_config());
    std::vector<ReadProgress> seen;
    ReadOptions o;
    o.progress_every = 2;
    o.progress = [&](const ReadProgress& p) { seen.push_back(p); };
    ASSERT_TRUE(read_captures({path}, a, o).ok());
    ASSERT_GE(seen.size(), 3u);
    for (std::size_t i = 1; i < seen.size(); ++i)
        EXPECT_GE(seen[i].bytes_read, seen[i - 1].bytes_read);
    EXPECT_TRUE(seen.back().done);
    EXPECT_EQ(seen.back().bytes_total, std::filesystem::file_size(path));
    EXPECT_EQ(seen.back().bytes_read, seen.back().bytes_total);
    EXPECT_EQ(seen.back().file_bytes_read, seen.back().bytes_total);
    EXPECT_EQ(seen.back().file_bytes_total, seen.back().bytes_total);
    EXPECT_EQ(seen.back().frames, 13u);
}

TEST(Reader, StopFlagEndsReadingEarly) {
    const std::string path = public_dir() + "/ntlm_smb3_multichannel_zeek.pcap";
    RecordingSink sink;
    StreamAssembler a(sink, accept_all_config());
    std::atomic<bool> stop{false};
    ReadOptions o;
    o.stop = &stop;
    o.progress_every = 100;
    o.progress = [&](const ReadProgress&) { stop = true; };
    const ReadResult r = read_captures({path}, a, o);
    EXPECT_EQ(r.frames, 100u);
    EXPECT_EQ(sink.still_open(), 0u) << "finish() still runs";
}

TEST(Reader, StdinDash) {
    const std::string path = public_dir() + "/" + kTds7;
    ASSERT_NE(std::freopen(path.c_str(), "rb", stdin), nullptr);
    RecordingSink a, b;
    const ReadResult r = read_into(a, {"-"});
    ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
    ASSERT_TRUE(read_into(b, {path}).ok());
    EXPECT_EQ(r.frames, 13u);
    ASSERT_EQ(a.conns.size(), 1u);
    EXPECT_EQ(a.conns[0].bytes[0], b.conns[0].bytes[0]);
    EXPECT_EQ(a.conns[0].bytes[1], b.conns[0].bytes[1]);
}

// ---- classic pcap read from a mapping of the file, against libpcap
// ------------------------------- CaptureFile::open reads the records of a classic pcap itself
// (from a mapping of the file); open_stream reads the same file through libpcap. Both must give the
// same frames, the same end, the same error text, offset and count.

struct RawRecord {
    std::uint32_t sec = 0;
    std::uint32_t frac = 0;  // micro- or nanoseconds
    std::uint32_t caplen = 0;
    std::uint32_t len = 0;
    std::vector<std::uint8_t> data;  // written as is (its size may differ from caplen)
};

struct RawPcap {
    std::uint32_t magic = 0xA1B2C3D4;
    bool big_endian = false;
    std::uint16_t major = 2;
    std::uint16_t minor = 4;
    std::uint32_t snaplen = 262144;
    std::uint32_t linktype = 1;
    std::vector<RawRecord> records;
};

std::vector<std::uint8_t> raw_bytes(const RawPcap& p) {
    std::vector<std::uint8_t> v;
    auto u32 = [&](std::uint32_t x) {
        for (int i = 0; i < 4; ++i)
            v.push_back(static_cast<std::uint8_t>(p.big_endian ? x >> (24 - 8 * i) : x >> (8 * i)));
    };
    auto u16 = [&](std::uint16_t x) {
        for (int i = 0; i < 2; ++i)
            v.push_back(static_cast<std::uint8_t>(p.big_endian ? x >> (8 - 8 * i) : x >> (8 * i)));
    };
    u32(p.magic);
    u16(p.major);
    u16(p.minor);
    u32(0);
    u32(0);
    u32(p.snaplen);
    u32(p.linktype);
    for (const auto& r : p.records) {
        u32(r.sec);
        u32(r.frac);
        u32(r.caplen);
        u32(r.len);
        v.insert(v.end(), r.data.begin(), r.data.end());
    }
    return v;
}

// The records of a capture read by libpcap, as raw records (microseconds, or nanoseconds with
// `extra_ns` added below the microsecond).
RawPcap raw_from(const PcapData& d, bool nanos = false, std::uint32_t extra_ns = 0) {
    RawPcap p;
    p.magic = nanos ? 0xA1B23C4D : 0xA1B2C3D4;
    p.linktype = static_cast<std::uint32_t>(d.linktype);
    for (const auto& r : d.records) {
        RawRecord rr;
        rr.sec = static_cast<std::uint32_t>(r.ts_us / 1000000);
        const auto us = static_cast<std::uint32_t>(r.ts_us % 1000000);
        rr.frac = nanos ? us * 1000 + extra_ns : us;
        rr.caplen = static_cast<std::uint32_t>(r.bytes.size());
        rr.len = r.wire_len;
        rr.data = r.bytes;
        p.records.push_back(std::move(rr));
    }
    return p;
}

std::vector<std::string> classic_captures() {
    std::vector<std::string> out;
    for (const std::string& dir : {public_dir(), std::string(HOPSCOPE_CAPTURES_DIR) + "/lab"}) {
        for (const auto& e : std::filesystem::directory_iterator(dir)) {
            const auto b = file_bytes(e.path().string());  // by content: some .pcap are pcapng
            if (b.size() >= 4 && load_u32le(b.data()) == 0xA1B2C3D4)
                out.push_back(e.path().string());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST(MappedReader, SameFramesAsLibpcapOnEveryCapture) {
    const auto paths = classic_captures();
    ASSERT_GT(paths.size(), 40u);
    std::size_t mapped = 0, cut = 0;
    for (const auto& path : paths) {
        const ReadAll m = read_mapped(path);
        const ReadAll l = read_libpcap(path);
        ASSERT_TRUE(m.opened) << m.error.to_string();
        // Records longer than the file's snapshot length (one public capture has one): cut to it,
        // and libpcap's path then counts only the bytes delivered in its offsets.
        const auto bytes = file_bytes(path);
        const auto ends = record_ends(bytes);
        bool has_cut = false;
        for (std::size_t i = 0; i < ends.size(); ++i)
            has_cut |= load_u32le(&bytes[(i ? ends[i - 1] : 24) + 8]) > load_u32le(&bytes[16]);
        cut += has_cut ? 1 : 0;
        expect_same(m, l, path, !has_cut);
        EXPECT_EQ(m.rc, 0) << m.error.to_string();
        ASSERT_EQ(m.frames.size(), ends.size()) << path;
        for (std::size_t i = 0; i < ends.size(); ++i)
            EXPECT_EQ(m.frames[i].bytes_read, ends[i]) << path << " frame " << i + 1;
        EXPECT_EQ(m.bytes_read, bytes.size()) << path;
        mapped += m.mapped ? 1 : 0;
    }
    // Every one of them is a standard little-endian 2.4 file: all are read from the mapping.
    EXPECT_EQ(mapped, paths.size());
    EXPECT_GE(cut, 1u);
}

TEST(MappedReader, SameFramesWithSmallWindowsAndRecordsCrossingThem) {
    // One page per window: most records cross a window end, big ones are larger than a window.
    const auto paths = classic_captures();
    std::vector<ReadAll> whole_window;
    for (const auto& path : paths)
        whole_window.push_back(read_mapped(path));
    MapWindow w(1);
    for (std::size_t i = 0; i < paths.size(); ++i) {
        const ReadAll m = read_mapped(paths[i]);
        EXPECT_TRUE(m.mapped);
        expect_same(m, whole_window[i], paths[i]);
    }
}

TEST(MappedReader, SameFramesFromCopiedAndMappedWindowsOfEverySize) {
    // The default (copied windows of 512 KiB) against one-page copies, one-page mappings and the
    // mapping's 8 MiB windows: records crossing windows' ends, and records larger than a window.
    const auto paths = classic_captures();
    for (const auto& path : paths) {
        const ReadAll dflt = read_mapped(path);
        EXPECT_TRUE(dflt.mapped) << path;
        // (libpcap's offsets differ where a record is longer than the snapshot length)
        expect_same(dflt, read_libpcap(path), path, false);
        {
            CopyWindow w(1);
            expect_same(read_mapped(path), dflt, path + " (one-page copies)");
        }
        {
            MapWindow w(1);
            expect_same(read_mapped(path), dflt, path + " (one-page mappings)");
        }
        {
            MapWindow w(std::size_t{8} << 20);
            expect_same(read_mapped(path), dflt, path + " (8 MiB mappings)");
        }
    }
}

TEST(MappedReader, BigEndianFile) {
    const PcapData d = load_pcap(public_dir() + "/" + kTds7);
    RawPcap p = raw_from(d);
    p.big_endian = true;
    TempFile f("be.pcap", raw_bytes(p));
    const ReadAll m = read_mapped(f.path());
    EXPECT_TRUE(m.mapped);
    expect_same(m, read_libpcap(f.path()), "big-endian");
    ASSERT_EQ(m.frames.size(), d.records.size());
    for (std::size_t i = 0; i < d.records.size(); ++i) {
        EXPECT_EQ(m.frames[i].ts, d.records[i].ts_us);
        EXPECT_EQ(m.frames[i].bytes, d.records[i].bytes);
        EXPECT_EQ(m.frames[i].wire_len, d.records[i].wire_len);
    }
}

TEST(MappedReader, NanosecondFileTruncatedToMicroseconds) {
    const PcapData d = load_pcap(public_dir() + "/krb_ntlm_ldap_aduser_zeek.pcap");
    for (const bool big : {false, true}) {
        RawPcap p = raw_from(d, true, 999);
        p.big_endian = big;
        // Fields libpcap reads as signed 32-bit values.
        p.records.push_back({0xFFFFFFFF, 0xFFFFFFF0, 1, 1, {0x45}});
        p.records.push_back({0x80000000, 0x80000000, 1, 60, {0x45}});
        p.records.push_back({5, 999999999, 1, 1, {0x45}});
        TempFile f("ns.pcap", raw_bytes(p));
        const ReadAll m = read_mapped(f.path());
        EXPECT_TRUE(m.mapped);
        expect_same(m, read_libpcap(f.path()), big ? "ns big-endian" : "ns");
        ASSERT_EQ(m.frames.size(), d.records.size() + 3);
        for (std::size_t i = 0; i < d.records.size(); ++i)
            EXPECT_EQ(m.frames[i].ts, d.records[i].ts_us) << i;
        EXPECT_EQ(m.frames[d.records.size() + 2].ts, 5'999'999);
    }
}

TEST(MappedReader, RecordLongerThanTheSnapshotLengthIsCut) {
    RawPcap p;
    p.snaplen = 100;
    std::vector<std::uint8_t> big(150);
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<std::uint8_t>(i);
    p.records.push_back({1, 1, 150, 1500, big});
    p.records.push_back({1, 2, 3, 3, {7, 8, 9}});
    TempFile f("snap.pcap", raw_bytes(p));
    const ReadAll m = read_mapped(f.path());
    EXPECT_TRUE(m.mapped);
    // libpcap's path cuts the record too, but its offsets count only the bytes it delivered.
    expect_same(m, read_libpcap(f.path()), "caplen > snaplen", false);
    ASSERT_EQ(m.frames.size(), 2u);
    EXPECT_EQ(m.frames[0].bytes, std::vector<std::uint8_t>(big.begin(), big.begin() + 100));
    EXPECT_EQ(m.frames[0].wire_len, 1500u);
    EXPECT_EQ(m.frames[0].bytes_read, 24u + 16 + 150);
    EXPECT_EQ(m.frames[1].bytes, (std::vector<std::uint8_t>{7, 8, 9}));
    EXPECT_EQ(m.rc, 0);
    EXPECT_EQ(m.bytes_read, std::filesystem::file_size(f.path()));

    // Beyond the largest snapshot length libpcap accepts for the link type: an error there.
    for (const std::uint32_t snaplen : {100u, 0u, 262144u, 300000u}) {
        p.snaplen = snaplen;
        p.records.push_back({1, 3, 262145, 262145, std::vector<std::uint8_t>(262145)});
        TempFile g("huge.pcap", raw_bytes(p));
        p.records.pop_back();
        const ReadAll h = read_mapped(g.path());
        expect_same(h, read_libpcap(g.path()), "caplen 262145", false);
        EXPECT_EQ(h.rc, -1);
        EXPECT_EQ(h.frames.size(), 2u);
        ASSERT_TRUE(h.error.offset.has_value());
        EXPECT_EQ(*h.error.offset, 24u + 16 + 150 + 16 + 3);
        EXPECT_NE(h.error.message.find("invalid packet capture length 262145"), std::string::npos)
            << h.error.message;
    }
}

TEST(MappedReader, TruncatedRecordHeaderAndData) {
    RawPcap p = raw_from(load_pcap(public_dir() + "/" + kTds7));
    p.snaplen = 200;  // some records are longer: cut ones are truncated too
    const auto bytes = raw_bytes(p);
    std::vector<std::size_t> starts{24};
    for (const auto& r : p.records)
        starts.push_back(starts.back() + 16 + r.data.size());
    ASSERT_EQ(starts.back(), bytes.size());
    for (std::size_t cut = 24; cut <= bytes.size(); ++cut) {
        TempFile f("cut.pcap",
                   std::vector<std::uint8_t>(bytes.begin(),
                                             bytes.begin() + static_cast<std::ptrdiff_t>(cut)));
        const ReadAll m = read_mapped(f.path());
        ASSERT_TRUE(m.mapped);
        const std::string what = "cut at " + std::to_string(cut);
        expect_same(m, read_libpcap(f.path()), what, false);
        const auto whole = static_cast<std::size_t>(
            std::upper_bound(starts.begin(), starts.end(), cut) - starts.begin() - 1);
        EXPECT_EQ(m.frames.size(), whole) << what;
        if (starts[whole] == cut) {
            EXPECT_EQ(m.rc, 0) << what;
            EXPECT_EQ(m.bytes_read, cut) << what;
            continue;
        }
        ASSERT_EQ(m.rc, -1) << what;
        ASSERT_TRUE(m.error.offset.has_value()) << what;
        EXPECT_EQ(*m.error.offset, starts[whole]) << what;
        EXPECT_EQ(m.error.frames_read, whole) << what;
        EXPECT_EQ(m.bytes_read, starts[whole]) << what;
        const std::string in_header =
            "damaged capture: truncated dump file; tried to read 16 "
            "header bytes, only got " +
            std::to_string(cut - starts[whole]);
        if (cut - starts[whole] < 16)
            EXPECT_EQ(m.error.message, in_header) << what;
        else
            EXPECT_NE(m.error.message.find("damaged capture: truncated dump file; tried to read "),
                      std::string::npos)
                << what << ": " << m.error.message;
    }
}

TEST(MappedReader, NoRecordsAfterTheHeader) {
    RawPcap p;
    TempFile f("empty.pcap", raw_bytes(p));
    const ReadAll m = read_mapped(f.path());
    EXPECT_TRUE(m.mapped);
    expect_same(m, read_libpcap(f.path()), "empty");
    EXPECT_EQ(m.rc, 0);
    EXPECT_TRUE(m.frames.empty());
    EXPECT_EQ(m.bytes_read, 24u);
}

TEST(MappedReader, OtherFormatsAndInputsStayOnLibpcap) {
    const PcapData d = load_pcap(public_dir() + "/" + kTds7);
    RawPcap p = raw_from(d);
    p.minor = 3;  // 2.3: caplen and len may be swapped, libpcap's business
    TempFile v23("v23.pcap", raw_bytes(p));
    const ReadAll m = read_mapped(v23.path());
    EXPECT_FALSE(m.mapped);
    EXPECT_EQ(m.frames.size(), d.records.size());
    p.minor = 4;
    p.magic = 0xA1B2CD34;  // Kuznetzov's modified format
    TempFile kuz("kuz.pcap", raw_bytes(p));
    EXPECT_FALSE(read_mapped(kuz.path()).mapped);

    CaptureError err;
    const std::string path = public_dir() + "/" + kTds7;
    ASSERT_NE(std::freopen(path.c_str(), "rb", stdin), nullptr);
    auto in = CaptureFile::open("-", err);
    ASSERT_TRUE(in) << err.to_string();
    EXPECT_FALSE(in->mapped());
    const ReadAll s = drain(*in);
    expect_same(read_mapped(path), s, "stdin");
}

// Records of 1..max_len bytes with deterministic contents and increasing timestamps.
RawPcap generated(std::size_t count, std::size_t max_len, std::uint32_t seed) {
    std::mt19937 rng(seed);
    RawPcap p;
    for (std::size_t i = 0; i < count; ++i) {
        RawRecord r;
        const std::size_t n = 1 + rng() % max_len;
        r.data.resize(n);
        for (auto& b : r.data)
            b = static_cast<std::uint8_t>(rng());
        r.sec = 1'700'000'000 + static_cast<std::uint32_t>(i / 1000);
        r.frac = static_cast<std::uint32_t>(i % 1000) * 1000;
        r.caplen = static_cast<std::uint32_t>(n);
        r.len = r.caplen + static_cast<std::uint32_t>(rng() % 3);
        p.records.push_back(std::move(r));
    }
    return p;
}

TEST(MappedReader, FileLargerThanTheDefaultWindow) {
    // The default window is 32 MiB; ~40 MiB of records of up to 64 KiB.
    const RawPcap p = generated(1300, 65536, 7);
    const auto bytes = raw_bytes(p);
    ASSERT_GT(bytes.size(), std::size_t{36} << 20);
    TempFile f("big.pcap", bytes);
    const ReadAll m = read_mapped(f.path());
    EXPECT_TRUE(m.mapped);
    expect_same(m, read_libpcap(f.path()), "40 MiB");
    ASSERT_EQ(m.frames.size(), p.records.size());
    EXPECT_EQ(m.bytes_read, bytes.size());
    for (std::size_t i = 0; i < p.records.size(); ++i)
        ASSERT_EQ(m.frames[i].bytes, p.records[i].data) << i;
}

TEST(MappedReader, FileGrowingOrShrinkingWhileRead) {
    MapWindow w(4096);
    const RawPcap p = generated(8000, 600, 3);  // ~2.5 MB
    const auto bytes = raw_bytes(p);
    std::vector<std::size_t> starts{24};
    for (const auto& r : p.records)
        starts.push_back(starts.back() + 16 + r.data.size());
    {
        // Appended after opening: read up to the size at open.
        TempFile f("grow.pcap", bytes);
        CaptureError err;
        auto c = CaptureFile::open(f.path(), err);
        ASSERT_TRUE(c);
        std::FILE* app = std::fopen(f.path().c_str(), "ab");
        ASSERT_NE(app, nullptr);
        std::fwrite(bytes.data() + 24, 1, bytes.size() - 24, app);
        std::fclose(app);
        const ReadAll m = drain(*c);
        EXPECT_EQ(m.rc, 0);
        EXPECT_EQ(m.frames.size(), p.records.size());
        EXPECT_EQ(m.bytes_read, bytes.size());
    }
    {
        // Cut short while being read: the pages beyond the new end are not touched; the next
        // window is mapped up to the new end, and the first record past it is reported as cut
        // (tests/unit/captures/cut_while_read_test.cpp has cuts inside the window being read).
        TempFile f("shrink.pcap", bytes);
        CaptureError err;
        auto c = CaptureFile::open(f.path(), err);
        ASSERT_TRUE(c);
        PacketView v;
        std::size_t before = 0;
        while (c->bytes_read() < (std::size_t{3} << 19)) {
            ASSERT_EQ(c->next(v), 1);
            ASSERT_TRUE(std::equal(v.data.begin(), v.data.end(), p.records[before].data.begin(),
                                   p.records[before].data.end()));
            ++before;
        }
        EXPECT_TRUE(c->mapped());
        // Beyond the window in use (records are shorter than a page).
        const std::size_t cut = (c->bytes_read() + 4095) / 4096 * 4096 + 4096 + 100;
        ASSERT_LT(cut, bytes.size());
        ASSERT_EQ(::truncate(f.path().c_str(), static_cast<off_t>(cut)), 0);
        ReadAll m = drain(*c);
        const auto whole = static_cast<std::size_t>(
            std::upper_bound(starts.begin(), starts.end(), cut) - starts.begin() - 1);
        EXPECT_EQ(m.rc, -1);
        ASSERT_EQ(m.frames.size() + before, whole);
        for (std::size_t i = 0; i < m.frames.size(); ++i)
            EXPECT_EQ(m.frames[i].bytes, p.records[before + i].data) << i;
        ASSERT_TRUE(m.error.offset.has_value());
        EXPECT_EQ(*m.error.offset, starts[whole]);
        EXPECT_EQ(m.error.frames_read, whole);
        EXPECT_NE(m.error.message.find("the file was cut to " + std::to_string(cut) +
                                       " bytes while being read"),
                  std::string::npos)
            << m.error.message;
    }
}

TEST(MappedReader, DamagedFilesGiveTheSameResultAsLibpcap) {
    // Random damage to a small capture: record header fields, truncation, snapshot lengths.
    const RawPcap base = raw_from(load_pcap(public_dir() + "/" + kTds7));
    std::mt19937 rng(11);
    MapWindow w(4096);
    for (int iter = 0; iter < 300; ++iter) {
        RawPcap p = base;
        p.big_endian = rng() % 2;
        p.magic = rng() % 2 ? 0xA1B2C3D4 : 0xA1B23C4D;
        const std::uint32_t snaps[] = {0, 60, 200, 262144, 262145, 0xFFFFFFFF};
        p.snaplen = snaps[rng() % 6];
        for (auto& r : p.records) {
            switch (rng() % 8) {
                case 0:
                    r.caplen = static_cast<std::uint32_t>(rng() % 400);
                    break;
                case 1:
                    r.caplen = rng();
                    break;
                case 2:
                    r.frac = rng();
                    break;
                case 3:
                    r.sec = rng();
                    break;
                default:
                    break;
            }
        }
        auto bytes = raw_bytes(p);
        if (rng() % 2) bytes.resize(24 + rng() % (bytes.size() - 23));
        TempFile f("damaged.pcap", bytes);
        const ReadAll m = read_mapped(f.path());
        EXPECT_TRUE(m.mapped);
        const bool cut = p.snaplen != 0 && p.snaplen < 262144;
        expect_same(m, read_libpcap(f.path()), "iteration " + std::to_string(iter), !cut);
        if (::testing::Test::HasFailure()) break;
    }
}

// ---- live ---------------------------------------------------------------------------------------

// A listener on an unprivileged loopback port chosen by the kernel and a live capture on `lo`
// filtered on that port (skipped where capturing is not permitted).
class LiveOnLoopback : public ::testing::Test {
  protected:
    void SetUp() override {
        srv_ = ::socket(AF_INET, SOCK_STREAM, 0);
        ASSERT_GE(srv_, 0);
        addr_.sin_family = AF_INET;
        addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_EQ(::bind(srv_, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_), 0);
        socklen_t alen = sizeof addr_;
        ASSERT_EQ(::getsockname(srv_, reinterpret_cast<sockaddr*>(&addr_), &alen), 0);
        ASSERT_EQ(::listen(srv_, 1), 0);
        port_ = ntohs(addr_.sin_port);
        std::string err;
        if (!open_capture(err)) GTEST_SKIP() << "cannot capture on lo here: " << err;
    }
    /// The capture on `lo`, filtered on the listener's port.
    virtual bool open_capture(std::string& err) {
        LiveOptions o;
        o.interface = "lo";
        o.filter = "tcp port " + std::to_string(port_);
        return cap_.open(o, err);
    }
    void TearDown() override { close_listener(); }
    void close_listener() {
        if (srv_ >= 0) ::close(srv_);
        srv_ = -1;
    }
    // A client connection to the listener and the server's end of it.
    void connect_pair(int& cli, int& acc) {
        cli = ::socket(AF_INET, SOCK_STREAM, 0);
        ASSERT_EQ(::connect(cli, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_), 0);
        acc = ::accept(srv_, nullptr, nullptr);
        ASSERT_GE(acc, 0);
    }
    /// One connection that sends "ping-1433" and closes; once the kernel has counted its packets
    /// (handshake, data, ack, FIN exchange), stop() and then run(): every packet captured so far
    /// is in the ring, unread, and the drain at the stop must read it into `sink`.
    void ping_then_stop_and_drain(RecordingSink& sink, LiveStats& st) {
        int cli = -1, acc = -1;
        connect_pair(cli, acc);
        ASSERT_EQ(::send(cli, "ping-1433", 9, 0), 9);
        char buf[16];
        ASSERT_EQ(::recv(acc, buf, sizeof buf, 0), 9);
        ::close(cli);
        ::close(acc);
        close_listener();
        for (int i = 0; i < 200 && cap_.stats().received < 14; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ASSERT_GE(cap_.stats().received, 14u);
        AssemblerConfig cfg;
        cfg.filter.tds_ports = {port_};
        StreamAssembler a(sink, cfg);
        cap_.stop();
        std::string run_err;
        ASSERT_TRUE(cap_.run(a, run_err)) << run_err;
        st = cap_.stats();
    }

    LiveCapture cap_;
    int srv_ = -1;
    sockaddr_in addr_{};
    std::uint16_t port_ = 0;
};

TEST_F(LiveOnLoopback, TcpIsSeenAsAStream) {
    LiveCapture& cap = cap_;
    const std::uint16_t port = port_;
    EXPECT_EQ(cap.linktype(), 1) << "Linux loopback is Ethernet-framed";

    RecordingSink sink;
    AssemblerConfig cfg;
    cfg.filter.tds_ports = {port};
    StreamAssembler a(sink, cfg);
    std::thread runner([&] {
        std::string run_err;
        EXPECT_TRUE(cap.run(a, run_err)) << run_err;
    });
    int cli = -1, acc = -1;
    connect_pair(cli, acc);
    ASSERT_EQ(::send(cli, "ping-1433", 9, 0), 9);
    char buf[16];
    ASSERT_EQ(::recv(acc, buf, sizeof buf, 0), 9);
    ASSERT_EQ(::send(acc, "pong", 4, 0), 4);
    ASSERT_EQ(::recv(cli, buf, sizeof buf, 0), 4);
    ::close(cli);
    ::close(acc);
    close_listener();
    // Wait (bounded) until the FIN exchange has been captured, then stop.
    for (int i = 0; i < 200 && cap.stats().frames < 10; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cap.stop();
    runner.join();
    ASSERT_EQ(sink.conns.size(), 1u);
    const auto& c = sink.conns[0];
    EXPECT_TRUE(c.handshake);
    EXPECT_EQ(c.key.server.port, port);
    EXPECT_EQ(c.bytes[0], "ping-1433");
    EXPECT_EQ(c.bytes[1], "pong");
    EXPECT_TRUE(c.closed);
    const LiveStats st = cap.stats();
    EXPECT_GE(st.received, 10u);
    EXPECT_EQ(st.dropped, 0u);
}

// A stop that comes while the capture loop is outside pcap_dispatch (decoding, checking drops)
// leaves libpcap's break flag set; the drain at the stop must still read what the kernel had
// accepted. stop() before run() is that case made certain: the loop never starts and every
// packet captured so far is in the ring, unread.
TEST_F(LiveOnLoopback, StopOutsideTheReadStillDrainsWhatTheKernelAccepted) {
    RecordingSink sink;
    LiveStats st;
    ASSERT_NO_FATAL_FAILURE(ping_then_stop_and_drain(sink, st));
    EXPECT_EQ(st.dropped, 0u);
    EXPECT_GE(st.received, 7u);
    // On lo the kernel counts each packet twice (its outgoing and its incoming copy) and libpcap
    // hands over the incoming one only.
    EXPECT_EQ(st.frames * 2, st.received) << "captured packets left unread in the ring at the stop";
    ASSERT_EQ(sink.conns.size(), 1u);
    EXPECT_EQ(sink.conns[0].bytes[0], "ping-1433");
}

// Between pcap_activate() and pcap_setfilter() the kernel takes every packet; libpcap filters the
// ring's blocks from that time in user space, so a packet there that the filter refuses is
// counted by the kernel but never read. Traffic outside the filter runs while the capture opens;
// "captured" must still count only what was there to be read (else the drain at the stop waits
// for packets that will never come, and the summary says packets were left unread).
class LiveOpenedAmidOtherTraffic : public LiveOnLoopback {
  protected:
    bool open_capture(std::string& err) override {
        const int tx = ::socket(AF_INET, SOCK_DGRAM, 0);
        if (tx < 0) {
            err = "no UDP socket";
            return false;
        }
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        to.sin_port = htons(9);  // discard: nobody listens, ICMP replies are fine too
        std::atomic<bool> go{true};
        std::atomic<std::uint64_t> sent{0};
        std::thread noise([&] {
            while (go.load()) {
                (void)::sendto(tx, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
                sent.fetch_add(1);
            }
        });
        while (sent.load() < 1000)
            std::this_thread::yield();
        const bool opened = LiveOnLoopback::open_capture(err);
        go.store(false);
        noise.join();
        ::close(tx);
        return opened;
    }
};

TEST_F(LiveOpenedAmidOtherTraffic, PacketsOutsideTheFilterWhileOpeningAreNotCounted) {
    RecordingSink sink;
    LiveStats st;
    ASSERT_NO_FATAL_FAILURE(ping_then_stop_and_drain(sink, st));
    EXPECT_EQ(st.dropped, 0u);
    EXPECT_GE(st.frames, 7u);
    // On lo each packet is counted twice (outgoing and incoming) and read once.
    EXPECT_EQ(st.frames * 2, st.received) << "packets counted that the filter refused";
    ASSERT_EQ(sink.conns.size(), 1u);
    EXPECT_EQ(sink.conns[0].bytes[0], "ping-1433");
}

}  // namespace
}  // namespace hopscope::captures::testing
