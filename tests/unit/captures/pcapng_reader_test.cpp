// pcapng read from a mapping of the file (CaptureFile::open) against libpcap's reading of the same
// file (open_stream): every packet block kind, time stamp resolutions and offsets, several
// sections, both byte orders; what libpcap refuses is left to libpcap (same frames, same error
// text, offset and count); random damage gives the same result either way.
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <random>

#include "capture_test_util.hpp"
#include "hopscope/captures/pcapng_secrets.hpp"
#include "reader_compare.hpp"

namespace hopscope::captures::testing {
namespace {

// Source: arkime tests/pcap/tds7.pcap (Apache-2.0), see tests/data/public/MANIFEST.md.
const char* kTds7 = "tds7_sqlauth_login_prelogin_loginack_arkime.pcap";

/// Builds pcapng blocks (draft-ietf-opsawg-pcapng) in either byte order.
class Ng {
  public:
    explicit Ng(bool big_endian) : be_(big_endian) {}
    std::vector<std::uint8_t> bytes;

    void shb() {
        Body b(be_);
        b.u32(0x1A2B3C4D).u16(1).u16(0).u64(~std::uint64_t{0});
        block(0x0A0D0D0A, b);
    }
    struct Option {
        std::uint16_t code;
        std::vector<std::uint8_t> value;
    };
    void idb(std::uint16_t linktype, std::uint32_t snaplen, const std::vector<Option>& opts = {}) {
        Body b(be_);
        b.u16(linktype).u16(0).u32(snaplen);
        for (const Option& o : opts)
            b.u16(o.code).u16(static_cast<std::uint16_t>(o.value.size())).raw(o.value).pad();
        if (!opts.empty()) b.u16(0).u16(0);
        block(1, b);
    }
    void epb(std::uint32_t iface, std::uint64_t t, const std::vector<std::uint8_t>& data,
             std::uint32_t wire) {
        Body b(be_);
        b.u32(iface).u32(static_cast<std::uint32_t>(t >> 32)).u32(static_cast<std::uint32_t>(t));
        b.u32(static_cast<std::uint32_t>(data.size())).u32(wire).raw(data).pad();
        b.u16(1).u16(4).raw({'c', 'm', 't', '!'}).u16(0).u16(0);  // opt_comment
        block(6, b);
    }
    void pb(std::uint16_t iface, std::uint64_t t, const std::vector<std::uint8_t>& data,
            std::uint32_t wire) {
        Body b(be_);
        b.u16(iface).u16(0).u32(static_cast<std::uint32_t>(t >> 32));
        b.u32(static_cast<std::uint32_t>(t)).u32(static_cast<std::uint32_t>(data.size()));
        b.u32(wire).raw(data).pad();
        block(2, b);
    }
    void spb(const std::vector<std::uint8_t>& data, std::uint32_t wire) {
        Body b(be_);
        b.u32(wire).raw(data).pad();
        block(3, b);
    }
    /// A Decryption Secrets Block of TLS key log text ("TLSK").
    void dsb(const std::string& text) {
        Body b(be_);
        b.u32(0x544c534b).u32(static_cast<std::uint32_t>(text.size()));
        b.raw(std::vector<std::uint8_t>(text.begin(), text.end())).pad();
        block(0x0A, b);
    }
    void other(std::uint32_t type, std::size_t body_bytes) {
        Body b(be_);
        for (std::size_t i = 0; i < body_bytes; ++i)
            b.raw({static_cast<std::uint8_t>(i * 7)});
        b.pad();
        block(type, b);
    }

  private:
    class Body {
      public:
        explicit Body(bool be) : be_(be) {}
        std::vector<std::uint8_t> v;
        Body& u16(std::uint16_t x) { return put(x, 2); }
        Body& u32(std::uint32_t x) { return put(x, 4); }
        Body& u64(std::uint64_t x) { return put(x, 8); }
        Body& raw(const std::vector<std::uint8_t>& d) {
            v.insert(v.end(), d.begin(), d.end());
            return *this;
        }
        Body& pad() {
            while (v.size() % 4 != 0)
                v.push_back(0);
            return *this;
        }

      private:
        bool be_;
        Body& put(std::uint64_t x, int n) {
            for (int i = 0; i < n; ++i)
                v.push_back(static_cast<std::uint8_t>(be_ ? x >> (8 * (n - 1 - i)) : x >> (8 * i)));
            return *this;
        }
    };
    void block(std::uint32_t type, const Body& body) {
        Body b(be_);
        const auto len = static_cast<std::uint32_t>(12 + body.v.size());
        b.u32(type).u32(len).raw(body.v).u32(len);
        bytes.insert(bytes.end(), b.v.begin(), b.v.end());
    }
    bool be_;
};

std::vector<std::string> pcapng_captures() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(public_dir())) {
        const auto b = file_bytes(e.path().string());  // by content: some .pcap are pcapng
        if (b.size() >= 4 && load_u32le(b.data()) == 0x0A0D0D0A) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST(MappedPcapng, SameFramesAsLibpcapOnEveryCapture) {
    const auto paths = pcapng_captures();
    ASSERT_GE(paths.size(), 4u);
    for (const auto& path : paths) {
        const ReadAll m = read_mapped(path);
        ASSERT_TRUE(m.opened) << m.error.to_string();
        EXPECT_TRUE(m.mapped) << path;
        EXPECT_TRUE(m.mapped_at_end) << path << ": left to libpcap";
        EXPECT_EQ(m.rc, 0) << m.error.to_string();
        EXPECT_GT(m.frames.size(), 5u) << path;
        EXPECT_EQ(m.bytes_read, file_bytes(path).size()) << path;
        expect_same(m, read_libpcap(path), path);
        {
            MapWindow w(1);  // one page per window: most blocks cross a window's end
            expect_same(read_mapped(path), m, path + " (small mapped windows)");
        }
        CopyWindow w(1);
        expect_same(read_mapped(path), m, path + " (small copied windows)");
    }
}

/// Every block kind and time stamp option, two sections, in one byte order; the expected
/// (microsecond) time stamps of the packets, in order.
struct Built {
    std::vector<std::uint8_t> bytes;
    std::vector<std::int64_t> ts;
};

Built every_kind(bool big_endian) {
    const PcapData d = load_pcap(public_dir() + "/" + kTds7);
    Ng ng(big_endian);
    Built out;
    ng.shb();
    ng.other(4, 20);  // name resolution, before any interface
    // if_tsoffset +1000 s, in the file's byte order.
    std::vector<std::uint8_t> plus_1000{0xE8, 3, 0, 0, 0, 0, 0, 0};
    if (big_endian) std::reverse(plus_1000.begin(), plus_1000.end());
    ng.idb(1, 262144, {{9, {9}}});                      // nanoseconds
    ng.idb(1, 262144, {{9, {0x94}}, {14, plus_1000}});  // 2^-20 s, +1000 s
    ng.idb(1, 262144, {{2, {'e', 't', 'h', '0'}}});     // microseconds, a name option
    std::size_t i = 0;
    const auto next = [&]() -> const Record& { return d.records[i++ % d.records.size()]; };
    const std::int64_t base_s = 1'700'000'000;
    for (int round = 0; round < 3; ++round) {
        const Record& a = next();
        const std::uint64_t ns = static_cast<std::uint64_t>(base_s + round) * 1'000'000'000 +
                                 123'456'789 + static_cast<std::uint64_t>(round);
        ng.epb(0, ns, a.bytes, a.wire_len);
        out.ts.push_back(static_cast<std::int64_t>(ns / 1000));
        const Record& b = next();
        const std::uint64_t bin = (static_cast<std::uint64_t>(base_s + round) << 20) | 0x80000;
        ng.epb(1, bin, b.bytes, b.wire_len);
        out.ts.push_back((base_s + round + 1000) * 1'000'000 + 500'000);
        const Record& c = next();
        ng.pb(2, static_cast<std::uint64_t>(base_s) * 1'000'000 + 42, c.bytes, c.wire_len);
        out.ts.push_back(base_s * 1'000'000 + 42);
        ng.other(5, 24);          // interface statistics
        ng.other(10, 40);         // decryption secrets of another type
        ng.other(0x40000BAD, 8);  // custom, may be copied
        ng.other(0x12345, 4);     // unknown
        const Record& e = next();
        ng.spb(e.bytes, e.wire_len);  // no time stamp: 0 on the first interface
        out.ts.push_back(0);
    }
    // A second section: its own interfaces (a default one), same link type and snapshot length.
    ng.shb();
    ng.idb(1, 262144);
    const Record& f = next();
    ng.epb(0, static_cast<std::uint64_t>(base_s) * 1'000'000 + 7, f.bytes, f.wire_len);
    out.ts.push_back(base_s * 1'000'000 + 7);
    out.bytes = std::move(ng.bytes);
    return out;
}

TEST(MappedPcapng, EveryBlockKindTimeStampOptionAndSectionAsLibpcap) {
    for (const bool be : {false, true}) {
        const Built b = every_kind(be);
        TempFile f(be ? "kinds-be.pcapng" : "kinds-le.pcapng", b.bytes);
        const ReadAll m = read_mapped(f.path());
        ASSERT_TRUE(m.opened) << m.error.to_string();
        EXPECT_TRUE(m.mapped_at_end) << (be ? "big-endian" : "little-endian");
        EXPECT_EQ(m.rc, 0) << m.error.to_string();
        ASSERT_EQ(m.frames.size(), b.ts.size());
        for (std::size_t i = 0; i < b.ts.size(); ++i)
            EXPECT_EQ(m.frames[i].ts, b.ts[i]) << "packet " << i + 1;
        EXPECT_EQ(m.bytes_read, b.bytes.size());
        expect_same(m, read_libpcap(f.path()), be ? "big-endian" : "little-endian");
        MapWindow w(1);
        expect_same(read_mapped(f.path()), m, "small windows");
    }
}

TEST(MappedPcapng, WhatLibpcapRefusesIsLeftToIt) {
    const PcapData d = load_pcap(public_dir() + "/" + kTds7);
    const Record& r = d.records[0];
    const auto start = [&](Ng& ng) {
        ng.shb();
        ng.idb(1, 262144);
        ng.epb(0, 1'700'000'000'000'000, r.bytes, r.wire_len);
        ng.epb(0, 1'700'000'000'000'001, r.bytes, r.wire_len);
    };
    struct Case {
        const char* what;
        std::function<void(Ng&)> tail;
    };
    const std::vector<Case> cases = {
        {"an interface of another link type", [&](Ng& ng) { ng.idb(101, 262144); }},
        {"an interface of another snapshot length", [&](Ng& ng) { ng.idb(1, 100); }},
        {"an interface of another snapshot length, beyond the maximum",
         [&](Ng& ng) { ng.idb(1, 262157); }},
        {"an interface of snapshot length 0", [&](Ng& ng) { ng.idb(1, 0); }},
        {"a packet on an undescribed interface",
         [&](Ng& ng) { ng.epb(3, 1'700'000'000'000'002, r.bytes, r.wire_len); }},
        {"a packet longer than the snapshot length",
         [&](Ng& ng) {
             ng.idb(1, 262144);
             std::vector<std::uint8_t> big(262145, 0x55);
             ng.epb(1, 1, big, 262145);
         }},
        {"if_tsresol of 2 bytes",
         [&](Ng& ng) {
             ng.idb(1, 262144, {{9, {6, 0}}});
         }},
        {"two if_tsoffset",
         [&](Ng& ng) {
             ng.idb(1, 262144,
                    {{14, std::vector<std::uint8_t>(8, 0)}, {14, std::vector<std::uint8_t>(8, 0)}});
         }},
        {"if_tsresol 10^-20",
         [&](Ng& ng) {
             ng.idb(1, 262144, {{9, {20}}});
         }},
        {"a section in the other byte order",
         [&](Ng& ng) {
             Ng other(true);
             other.shb();
             ng.bytes.insert(ng.bytes.end(), other.bytes.begin(), other.bytes.end());
         }},
        {"trailer and header lengths differ",
         [&](Ng& ng) {
             ng.other(5, 8);
             ng.bytes[ng.bytes.size() - 4] ^= 4;
         }},
        {"a block length not a multiple of 4",
         [&](Ng& ng) {
             ng.other(5, 8);
             ng.bytes[ng.bytes.size() - 20 + 4] = 21;
         }},
        {"a block past the end of the file",
         [&](Ng& ng) {
             ng.epb(0, 2, r.bytes, r.wire_len);
             ng.bytes.resize(ng.bytes.size() - 6);
         }},
        {"a few bytes after the last block", [&](Ng& ng) { ng.bytes.resize(ng.bytes.size() + 5); }},
    };
    for (const Case& c : cases) {
        Ng ng(false);
        start(ng);
        c.tail(ng);
        ng.epb(0, 1'700'000'000'000'009, r.bytes, r.wire_len);
        TempFile f("refused.pcapng", ng.bytes);
        const ReadAll m = read_mapped(f.path());
        const ReadAll l = read_libpcap(f.path());
        EXPECT_TRUE(m.mapped) << c.what;
        EXPECT_FALSE(m.mapped_at_end) << c.what << ": read to the end from the mapping";
        EXPECT_GE(m.frames.size(), 2u) << c.what;
        expect_same(m, l, c.what);
    }
}

TEST(MappedPcapng, DamagedFilesGiveTheSameResultAsLibpcap) {
    const Built clean = every_kind(false);
    std::mt19937 rng(23);
    MapWindow w(4096);
    int left_to_libpcap = 0;
    for (int iter = 0; iter < 400; ++iter) {
        std::vector<std::uint8_t> bytes = clean.bytes;
        const int damage = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < damage && bytes.size() > 32; ++k) {
            const std::size_t at = 28 + rng() % (bytes.size() - 28);  // past the first SHB
            switch (rng() % 3) {
                case 0:
                    bytes[at] = static_cast<std::uint8_t>(rng());
                    break;
                case 1:
                    bytes[at & ~std::size_t{3}] = static_cast<std::uint8_t>(rng() % 16);
                    break;
                default:
                    bytes.resize(at);
                    break;
            }
        }
        TempFile f("damaged.pcapng", bytes);
        const ReadAll m = read_mapped(f.path());
        const ReadAll l = read_libpcap(f.path());
        if (!l.opened) {
            EXPECT_FALSE(m.opened);
            continue;
        }
        left_to_libpcap += m.mapped_at_end ? 0 : 1;
        expect_same(m, l, "iteration " + std::to_string(iter));
        if (::testing::Test::HasFailure()) break;
    }
    EXPECT_GT(left_to_libpcap, 100);
}

/// 6 000 packets of a public capture in one pcapng section.
Ng many_packets() {
    const PcapData d = load_pcap(public_dir() + "/" + kTds7);
    Ng ng(false);
    ng.shb();
    ng.idb(1, 262144);
    for (std::uint64_t i = 0; i < 6000; ++i) {
        const Record& r = d.records[i % d.records.size()];
        ng.epb(0, 1'700'000'000'000'000 + i, r.bytes, r.wire_len);
    }
    return ng;
}

/// Reads `path` to its 512th KiB (`before` packets), cuts the file 3 pages and 10 bytes past the
/// page the reader is in, then reads the rest.
ReadAll read_cut_read(const std::string& path, std::size_t& before) {
    CaptureError err;
    auto c = CaptureFile::open(path, err);
    EXPECT_TRUE(c) << err.to_string();
    if (!c) return {};
    PacketView v;
    while (c->bytes_read() < (std::size_t{1} << 19)) {
        if (c->next(v) != 1) {
            ADD_FAILURE() << "the file ends before its 512th KiB";
            return {};
        }
        ++before;
    }
    const std::size_t cut = (c->bytes_read() + 4095) / 4096 * 4096 + 3 * 4096 + 10;
    EXPECT_EQ(::truncate(path.c_str(), static_cast<off_t>(cut)), 0);
    return drain(*c);
}

TEST(MappedPcapng, FileCutWhileReadEndsAsLibpcapReadsIt) {
    // The file is cut a few pages ahead of the reader: beyond the window in use (one page per
    // window, mapped or copied: seen when the next window is made) or inside it (the mapping's
    // default window: the pages past the new end fault, see on_sigbus).
    const Ng ng = many_packets();
    for (const int way : {0, 1, 2}) {
        const std::size_t window = way == 1 ? std::size_t{8} << 20 : 4096;
        std::optional<MapWindow> mapped;
        std::optional<CopyWindow> copied;
        if (way == 2)
            copied.emplace(window);
        else
            mapped.emplace(window);
        TempFile f("cut.pcapng", ng.bytes);
        std::size_t before = 0;
        const ReadAll m = read_cut_read(f.path(), before);
        EXPECT_EQ(m.rc, -1) << window;
        EXPECT_FALSE(m.mapped_at_end);
        const ReadAll l = read_libpcap(f.path());  // the file as it is now
        EXPECT_EQ(before + m.frames.size(), l.frames.size()) << window;
        EXPECT_EQ(m.error.message, l.error.message) << window;
        EXPECT_EQ(m.error.offset, l.error.offset) << window;
        EXPECT_EQ(m.error.frames_read, l.error.frames_read) << window;
        EXPECT_NE(m.error.message.find("truncated"), std::string::npos) << m.error.message;
    }
}

TEST(MappedPcapng, FileCutInsideACopiedWindowEndsAfterWhatWasCopied) {
    // Copied windows (the default): what was copied before the cut is read as it was; the file
    // ends at the first packet past the copy, as libpcap reads the file from there now.
    const Ng ng = many_packets();
    TempFile whole("whole.pcapng", ng.bytes);
    const ReadAll uncut = read_libpcap(whole.path());
    TempFile f("cut.pcapng", ng.bytes);
    std::size_t before = 0;
    const ReadAll m = read_cut_read(f.path(), before);
    EXPECT_EQ(m.rc, -1);
    EXPECT_NE(m.error.message.find("truncated"), std::string::npos) << m.error.message;
    const ReadAll now = read_libpcap(f.path());
    // More than the file holds now (the rest of the copy), fewer than it held.
    EXPECT_GT(before + m.frames.size(), now.frames.size());
    ASSERT_LT(before + m.frames.size(), uncut.frames.size());
    for (std::size_t i = 0; i < m.frames.size(); ++i) {
        Frame a = m.frames[i], b = uncut.frames[before + i];
        a.bytes_read = b.bytes_read = 0;
        ASSERT_EQ(a, b) << "frame " << before + i + 1;
    }
    EXPECT_EQ(m.error.frames_read, before + m.frames.size());
}

TEST(PcapngSecrets, FoundWhereverTheyLieAcrossTheReadWindows) {
    // The secrets scan reads the file through a window (a short first read, then 1 MiB ones):
    // key log blocks right after the header, across the first read's end, one larger than the
    // first read, and blocks past the first MiB and at the end, in both byte orders, all found
    // whole and in order; a classic pcap file has none.
    for (const bool be : {false, true}) {
        Ng ng(be);
        ng.shb();
        ng.idb(1, 65535);
        std::string expected;
        int n = 0;
        const auto secret = [&](std::size_t bytes) {
            std::string text = "CLIENT_RANDOM " + std::to_string(n++) + " ";
            while (text.size() + 1 < bytes)
                text += static_cast<char>('a' + text.size() % 26);
            text += '\n';
            ng.dsb(text);
            expected += text;
        };
        const auto fill_to = [&](std::size_t size) {
            std::vector<std::uint8_t> frame(1400);
            for (std::uint64_t t = 0; ng.bytes.size() < size; ++t)
                ng.epb(0, t, frame, 1400);
        };
        secret(40);
        fill_to((64u << 10) - 200);  // the next block crosses the first read's end
        secret(600);
        secret(100u << 10);  // larger than the first read
        fill_to((1u << 20) + (70u << 10));
        secret(300);
        fill_to(3u << 20);
        secret(77);
        TempFile f(be ? "secrets-be.pcapng" : "secrets-le.pcapng", ng.bytes);
        const PcapngSecrets s = read_pcapng_secrets(f.path());
        EXPECT_EQ(s.blocks, 5u);
        EXPECT_FALSE(s.truncated);
        EXPECT_EQ(s.keylog, expected);
    }
    const PcapngSecrets none = read_pcapng_secrets(public_dir() + "/" + kTds7);
    EXPECT_EQ(none.blocks, 0u);
    EXPECT_TRUE(none.keylog.empty());
}

}  // namespace
}  // namespace hopscope::captures::testing
