// A capture file cut shorter while it is being read from its mapping (log rotation, tcpdump -C,
// truncate): no SIGBUS, an error naming the file and the offset of the first record past the new
// end, and every record before it delivered (captures/src/capture_source.cpp, SIGBUS guard).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <thread>

#include "capture_test_util.hpp"
#include "reader_compare.hpp"

namespace hopscope::captures::testing {
namespace {

const char* kTds7 = "tds7_sqlauth_login_prelogin_loginack_arkime.pcap";

/// The public capture's records repeated until the file holds at least `min_bytes`, timestamps
/// rising, with the record ends (file offsets) of the result.
struct BigCapture {
    std::vector<std::uint8_t> bytes;
    std::vector<std::uint64_t> ends;
};

BigCapture make_big(std::size_t min_bytes) {
    const PcapData one = load_pcap(public_dir() + "/" + kTds7);
    PcapData d;
    d.linktype = one.linktype;
    std::int64_t shift = 0;
    std::size_t size = 24;
    while (size < min_bytes) {
        for (Record r : one.records) {
            r.ts_us += shift;
            size += 16 + r.bytes.size();
            d.records.push_back(std::move(r));
        }
        shift += 3'600'000'000;  // an hour later: the copies are separate connections
    }
    BigCapture out;
    out.bytes = pcap_bytes(d);
    std::uint64_t off = 24;
    for (const auto& r : d.records) {
        off += 16 + r.bytes.size();
        out.ends.push_back(off);
    }
    return out;
}

/// Records wholly within the first `size` bytes.
std::uint64_t records_within(const BigCapture& c, std::uint64_t size) {
    return static_cast<std::uint64_t>(std::upper_bound(c.ends.begin(), c.ends.end(), size) -
                                      c.ends.begin());
}

void expect_cut_error(const ReadResult& r, const std::string& path, std::uint64_t new_size) {
    ASSERT_EQ(r.errors.size(), 1u);
    const CaptureError& e = r.errors[0];
    EXPECT_EQ(e.file, path);
    ASSERT_TRUE(e.offset.has_value());
    const std::string text = e.to_string();
    EXPECT_NE(text.find(path + ": damaged capture: the file was cut to " +
                        std::to_string(new_size) + " bytes while being read"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("(at byte offset " + std::to_string(*e.offset) + ")"), std::string::npos)
        << text;
}

// Deterministic: the file is cut from the progress callback (between two records) at offsets
// ahead of, inside and behind the record being read, with windows small and large. The result
// is exactly what reading a file of the new size would give, except that the end is an error.
TEST(CutWhileRead, ErrorAtTheFirstRecordPastTheNewEndEveryRecordBeforeIt) {
    const BigCapture big = make_big(3 << 20);
    RecordingSink clean_sink;
    TempFile clean("cut_clean.pcap", big.bytes);
    ASSERT_TRUE(read_into(clean_sink, {clean.path()}).ok());
    const std::uint64_t total = big.bytes.size();
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    struct Case {
        std::size_t window;
        std::uint64_t at_frames;  // cut when this many frames were read
        std::int64_t ahead;       // new size: the reader's position plus this
    };
    const std::vector<Case> cases = {
        {1 << 20, 1000, 77},          {1 << 20, 1000, 4096 + 13}, {1 << 20, 1000, 300'000},
        {1 << 20, 1000, 2'000'000},   {64 << 10, 3000, 1},        {64 << 10, 3000, 65536},
        {8 << 20, 2000, 1234},        {8 << 20, 2000, 0},         {8 << 20, 2000, -5000},
        {64 << 10, 4000, -1'000'000}, {1 << 20, 1000, 2 * 4096},
    };
    for (const Case& c : cases) {
        MapWindow w(c.window);
        TempFile f("cut.pcap", big.bytes);
        RecordingSink sink;
        StreamAssembler a(sink, accept_all_config());
        std::uint64_t new_size = 0, frames_then = 0, pos_then = 0;
        bool cut = false;
        ReadOptions o;
        o.progress_every = 1;
        o.progress = [&](const ReadProgress& p) {
            if (cut || p.frames < c.at_frames) return;
            cut = true;
            pos_then = p.bytes_read;  // the next record (already read) ends here
            frames_then = p.frames + 1;
            const std::int64_t want = static_cast<std::int64_t>(pos_then) + c.ahead;
            new_size = static_cast<std::uint64_t>(std::max<std::int64_t>(0, want));
            ASSERT_EQ(::truncate(f.path().c_str(), static_cast<off_t>(new_size)), 0);
        };
        const ReadResult r = read_captures({f.path()}, a, o);
        const std::string what = "window " + std::to_string(c.window) + " ahead " +
                                 std::to_string(c.ahead) + " page " + std::to_string(page);
        ASSERT_TRUE(cut) << what;
        ASSERT_LT(new_size, total) << what;
        expect_cut_error(r, f.path(), new_size);
        if (r.errors.empty()) continue;
        const CaptureError& e = r.errors[0];
        // Records already read when the file was cut are delivered; after them, every record
        // that the file still holds.
        const std::uint64_t expect_frames = std::max(frames_then, records_within(big, new_size));
        EXPECT_EQ(r.frames, expect_frames) << what;
        EXPECT_EQ(e.frames_read, expect_frames) << what;
        EXPECT_EQ(*e.offset, big.ends[expect_frames - 1]) << what;
        // What was delivered is the clean run's prefix.
        for (const auto& conn : sink.conns) {
            const auto it = std::find_if(clean_sink.conns.begin(), clean_sink.conns.end(),
                                         [&](const auto& k) { return k.key == conn.key; });
            ASSERT_NE(it, clean_sink.conns.end()) << what;
            EXPECT_EQ(it->bytes[0].compare(0, conn.bytes[0].size(), conn.bytes[0]), 0) << what;
            EXPECT_EQ(it->bytes[1].compare(0, conn.bytes[1].size(), conn.bytes[1]), 0) << what;
        }
    }
}

// For real: another thread cuts the file while the reader is inside a window, mapped or copied
// (the reader holds on, at a progress report, until the cut is done, so that it happens while
// the window is in use and before the reader has passed the new end).
TEST(CutWhileRead, ByAnotherThreadDuringAnalysis) {
    // Cut well past the window being read: copied windows (the default) and mapped ones end
    // the same way.
    const BigCapture big = make_big(6 << 20);
    for (const bool map : {false, true})
        for (const std::uint64_t fraction : {2u, 3u, 5u}) {
            std::optional<MapWindow> mapped;
            if (map) mapped.emplace(std::size_t{8} << 20);
            TempFile f("cut_thread.pcap", big.bytes);
            const std::uint64_t new_size = big.bytes.size() / fraction + 999;
            std::mutex mu;
            std::condition_variable cv;
            bool start_cut = false, cut_done = false;
            std::thread cutter([&] {
                std::unique_lock<std::mutex> lock(mu);
                cv.wait(lock, [&] { return start_cut; });
                EXPECT_EQ(::truncate(f.path().c_str(), static_cast<off_t>(new_size)), 0);
                cut_done = true;
                cv.notify_all();
            });
            RecordingSink sink;
            StreamAssembler a(sink, accept_all_config());
            ReadOptions o;
            o.progress_every = 64;
            o.progress = [&](const ReadProgress& p) {
                if (p.frames < 640) return;
                std::unique_lock<std::mutex> lock(mu);
                if (start_cut) return;
                start_cut = true;
                cv.notify_all();
                cv.wait(lock, [&] { return cut_done; });
            };
            const ReadResult r = read_captures({f.path()}, a, o);
            cutter.join();
            expect_cut_error(r, f.path(), new_size);
            EXPECT_EQ(r.frames, records_within(big, new_size));
            if (!r.errors.empty()) {
                ASSERT_TRUE(r.errors[0].offset.has_value());
                EXPECT_EQ(*r.errors[0].offset, big.ends[r.frames - 1]);
            }
            EXPECT_FALSE(sink.conns.empty());
        }
}

// A SIGBUS that is not in a capture window still ends the process (the guard passes it on).
TEST(CutWhileReadDeathTest, OtherFaultsStillEndTheProcess) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    const BigCapture big = make_big(1 << 16);
    TempFile f("cut_other.pcap", big.bytes);
    {
        // Installs the guard.
        RecordingSink sink;
        ASSERT_TRUE(read_into(sink, {f.path()}).ok());
    }
    EXPECT_DEATH(
        {
            const int fd = ::open(f.path().c_str(), O_RDONLY);
            void* p = ::mmap(nullptr, 1 << 16, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED || ::ftruncate(::open(f.path().c_str(), O_RDWR), 0) != 0)
                std::_Exit(0);
            std::_Exit(static_cast<const volatile std::uint8_t*>(p)[8192]);
        },
        "");
}

}  // namespace
}  // namespace hopscope::captures::testing
