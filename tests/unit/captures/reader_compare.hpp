// Comparing the mapped readers of CaptureFile::open (classic pcap and pcapng read from a mapping
// of the file) with libpcap's reading of the same file (CaptureFile::open_stream): the same
// frames, the same end, the same error text, offset and count.
#pragma once

#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include "capture_test_util.hpp"

namespace hopscope::captures::testing {

inline std::vector<std::uint8_t> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Frame {
    std::int64_t ts = 0;
    std::uint32_t wire_len = 0;
    int linktype = 0;
    std::uint64_t file_frame = 0;
    std::vector<std::uint8_t> bytes;
    std::uint64_t bytes_read = 0;  // CaptureFile::bytes_read() after this frame
    bool operator==(const Frame&) const = default;
};

inline void PrintTo(const Frame& f, std::ostream* os) {
    *os << "{ts " << f.ts << ", wire_len " << f.wire_len << ", linktype " << f.linktype
        << ", file_frame " << f.file_frame << ", " << f.bytes.size() << " bytes, bytes_read "
        << f.bytes_read << "}";
}

struct ReadAll {
    bool opened = false;
    bool mapped = false;
    std::vector<Frame> frames;
    int rc = 0;
    CaptureError error;
    std::uint64_t bytes_read = 0;  // at the end
    bool mapped_at_end = false;    // still read from the mapping when the end came
};

inline ReadAll drain(CaptureFile& f) {
    ReadAll out;
    out.opened = true;
    out.mapped = f.mapped();
    PacketView v;
    while ((out.rc = f.next(v)) == 1) {
        Frame fr;
        fr.ts = v.ts.micros;
        fr.wire_len = v.wire_len;
        fr.linktype = v.linktype;
        fr.file_frame = v.file_frame;
        fr.bytes.assign(v.data.begin(), v.data.end());
        fr.bytes_read = f.bytes_read();
        out.frames.push_back(std::move(fr));
    }
    if (out.rc < 0) out.error = f.error();
    out.bytes_read = f.bytes_read();
    out.mapped_at_end = f.mapped();
    return out;
}

inline ReadAll read_mapped(const std::string& path) {
    CaptureError err;
    auto f = CaptureFile::open(path, err);
    if (!f) {
        ReadAll r;
        r.error = err;
        return r;
    }
    return drain(*f);
}

inline ReadAll read_libpcap(const std::string& path) {
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    EXPECT_NE(fp, nullptr) << path;
    CaptureError err;
    auto f = CaptureFile::open_stream(fp, path, err);
    if (!f) {
        ReadAll r;
        r.error = err;
        return r;
    }
    EXPECT_FALSE(f->mapped());
    return drain(*f);
}

// Compares what the two readers gave; `offsets` also compares bytes_read() and the error offset
// (libpcap's path cannot see how long a record cut to the snapshot length was).
inline void expect_same(const ReadAll& m, const ReadAll& l, const std::string& what,
                        bool offsets = true) {
    ASSERT_EQ(m.opened, l.opened) << what;
    ASSERT_EQ(m.frames.size(), l.frames.size()) << what;
    for (std::size_t i = 0; i < m.frames.size(); ++i) {
        Frame a = m.frames[i], b = l.frames[i];
        if (!offsets) a.bytes_read = b.bytes_read = 0;
        EXPECT_EQ(a, b) << what << " frame " << i + 1;
        if (a != b) break;
    }
    EXPECT_EQ(m.rc, l.rc) << what;
    EXPECT_EQ(m.error.message, l.error.message) << what;
    EXPECT_EQ(m.error.frames_read, l.error.frames_read) << what;
    EXPECT_EQ(m.error.file, l.error.file) << what;
    if (offsets) {
        EXPECT_EQ(m.error.offset, l.error.offset) << what;
        EXPECT_EQ(m.bytes_read, l.bytes_read) << what;
    }
}

/// Files opened in its scope are read from mapped windows of this size (0: the default way,
/// copied windows of the default size).
class MapWindow {
  public:
    explicit MapWindow(std::size_t bytes) { CaptureFile::set_map_window_for_testing(bytes); }
    ~MapWindow() { CaptureFile::set_map_window_for_testing(0); }
    MapWindow(const MapWindow&) = delete;
    MapWindow& operator=(const MapWindow&) = delete;
};

/// Files opened in its scope are read from copied windows of this size (0: the default size).
class CopyWindow {
  public:
    explicit CopyWindow(std::size_t bytes) { CaptureFile::set_copy_window_for_testing(bytes); }
    ~CopyWindow() { CaptureFile::set_copy_window_for_testing(0); }
    CopyWindow(const CopyWindow&) = delete;
    CopyWindow& operator=(const CopyWindow&) = delete;
};

}  // namespace hopscope::captures::testing
