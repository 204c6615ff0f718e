// libpcap front-ends: capture files (pcap and pcapng, several merged in time order, "-" = stdin)
// and live interfaces. They hand frames to a StreamAssembler.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/captures/stream_assembler.hpp"
#include "hopscope/common/byte_reader.hpp"

struct pcap;

namespace hopscope::captures {

/// One frame as read, valid until the next read from the same file.
struct PacketView {
    Timestamp ts;
    Bytes data;                  ///< captured bytes
    std::uint32_t wire_len = 0;  ///< original length on the wire
    int linktype = 0;
    std::uint64_t frame = 0;       ///< 1-based, in merged order across all files
    std::size_t file_index = 0;    ///< which input file
    std::uint64_t file_frame = 0;  ///< 1-based within that file (Wireshark's frame.number)
};

/// A damaged or unreadable input, named precisely.
struct CaptureError {
    std::string file;
    std::string message;                  ///< from libpcap or ours
    std::optional<std::uint64_t> offset;  ///< byte offset where reading failed, when known
    std::uint64_t frames_read = 0;        ///< frames of this file delivered before the damage
    [[nodiscard]] std::string to_string() const;
};

/// One capture file (or stdin). Timestamps are read with microsecond precision.
///
/// A regular file in the classic pcap format (version 2.4, micro- or nanosecond magic, either
/// byte order) or in pcapng opened with open() is read from a sliding read-only mapping of the
/// file instead of through libpcap's stdio reads; frames, errors and offsets are the same (see
/// the .cpp).
class CaptureFile {
  public:
    /// Opens `path` ("-" = stdin). Returns nullptr and fills `err` on failure (unreadable file,
    /// not a capture, unsupported link type).
    static std::unique_ptr<CaptureFile> open(const std::string& path, CaptureError& err);
    /// Reads from an already open stream (e.g. fmemopen), which it takes over and closes; `name`
    /// is used in messages.
    static std::unique_ptr<CaptureFile> open_stream(std::FILE* fp, const std::string& name,
                                                    CaptureError& err);
    ~CaptureFile();
    CaptureFile(const CaptureFile&) = delete;
    CaptureFile& operator=(const CaptureFile&) = delete;

    /// 1: a frame in `out` (valid until the next call); 0: clean end of file; -1: damaged (see
    /// error()). Sets ts, data, wire_len, linktype and file_frame.
    int next(PacketView& out);

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] int linktype() const { return linktype_; }
    [[nodiscard]] std::uint64_t frames() const { return frames_; }
    /// Bytes consumed so far: the end of the last record or block read (for pcapng read through
    /// libpcap, the stdio position, when seekable).
    [[nodiscard]] std::uint64_t bytes_read() const;
    /// File size, 0 when unknown (stdin, pipes).
    [[nodiscard]] std::uint64_t bytes_total() const { return total_; }
    [[nodiscard]] const CaptureError& error() const { return error_; }
    /// True while records are read by hand from windows of the file (copied into a buffer, or
    /// mapped) rather than through libpcap.
    [[nodiscard]] bool mapped() const { return mapped_; }

    /// For files opened from now on: windows mapped (mmap) instead of copied, of this size
    /// (tests use small ones to cross window ends often); rounded up to whole pages, 0 restores
    /// the default (copied windows of the default size).
    static void set_map_window_for_testing(std::size_t bytes);
    /// For files opened from now on: windows copied (pread), of this size; rounded up to whole
    /// pages, 0 restores the default size.
    static void set_copy_window_for_testing(std::size_t bytes);

  private:
    CaptureFile() = default;
    std::string path_;
    pcap* handle_ = nullptr;
    int linktype_ = 0;
    bool classic_pcap_ = false;  ///< offsets are exact: 24 + sum(16 + caplen)
    std::uint64_t accounted_ = 24;
    std::uint64_t total_ = 0;
    std::uint64_t frames_ = 0;
    CaptureError error_;
    std::unique_ptr<char[]> iobuf_;  ///< stdio buffer of the FILE; outlives it (see ~CaptureFile)

    // Classic pcap read by hand from a window of the file (mapped_ = true): a copy of it in
    // copy_buf_ (copy_ = true, the default) or a read-only mapping of it (see the .cpp).
    bool mapped_ = false;
    bool copy_ = false;
    std::unique_ptr<std::uint8_t[]> copy_buf_;
    std::size_t copy_cap_ = 0;  ///< bytes of copy_buf_
    bool big_endian_ = false;   ///< the file's byte order
    /// Fields in the file's byte order.
    [[nodiscard]] std::uint16_t u16(const std::uint8_t* p) const {
        return big_endian_ ? load_u16be(p) : load_u16le(p);
    }
    [[nodiscard]] std::uint32_t u32(const std::uint8_t* p) const {
        return big_endian_ ? load_u32be(p) : load_u32le(p);
    }
    bool swapped_ = false;       ///< not the host's byte order
    bool nanos_ = false;         ///< nanosecond timestamps (scaled down to microseconds)
    std::uint32_t snaplen_ = 0;  ///< the header's snapshot length as libpcap adjusted it
    int fd_ = -1;                ///< the FILE's descriptor (closed with it)
    std::size_t window_ = 0;     ///< bytes per window
    const std::uint8_t* map_ = nullptr;
    std::uint64_t map_off_ = 0;  ///< file offset of map_[0] (page-aligned)
    std::size_t map_len_ = 0;
    std::uint64_t prefetched_ = 0;  ///< file offset up to which the CPU was asked to prefetch
    std::uint64_t page_mask_ = 0;   ///< ~(page size - 1)
    // pcapng read from the mapping (mapped_ and pcapng_ = true); see next_pcapng().
    struct NgInterface {
        std::uint64_t tsresol = 1'000'000;  ///< time stamp units per second
        std::int64_t tsoffset = 0;          ///< seconds added to every time stamp
        bool binary = false;                ///< tsresol is a power of 2, not of 10
    };
    bool pcapng_ = false;
    std::vector<NgInterface> ng_ifaces_;  ///< of the current section
    std::uint64_t ng_idbs_ = 0;           ///< interface descriptions seen in the whole file
    std::uint32_t ng_first_type_ = 0;     ///< the first interface's link type, as in the file
    std::uint32_t ng_first_snap_ = 0;     ///< and its snapshot length
    // The file cut shorter while it is read (see the .cpp: SIGBUS guard).
    std::uint64_t opened_size_ = 0;  ///< total_ as it was at open
    bool shrunk_ = false;            ///< the file was found shorter than at open; total_ is now
    int slot_ = -1;                  ///< the window's entry in the SIGBUS guard's table
    std::uintptr_t handled_cut_ = ~std::uintptr_t{0};  ///< the guard's mark last looked at

    int next_mapped(PacketView& out);
    void prefetch_ahead();
    int next_pcapng(PacketView& out);
    bool ng_interface(const std::uint8_t* body, std::size_t n);
    int ng_fall_back(PacketView& out);
    const std::uint8_t* map_range(std::uint64_t off, std::size_t n);
    const std::uint8_t* copy_range(std::uint64_t off, std::size_t n, std::uint64_t start,
                                   std::size_t len);
    /// map_range() inline when the window holds [off, off + n) already: every record but a
    /// window's first (callgrind: the call was 30 instructions a record).
    const std::uint8_t* window_at(std::uint64_t off, std::size_t n) {
        if (off >= map_off_ && off + n <= map_off_ + map_len_) return map_ + (off - map_off_);
        return map_range(off, n);
    }
    void unmap();
    int fail(std::uint64_t offset, std::string message);
    bool intact(std::uint64_t end);
    bool intact_by_size(std::uint64_t end);  ///< intact()'s answer when touching cannot tell
    int fail_cut(std::uint64_t offset);

    static std::unique_ptr<CaptureFile> open_impl(std::FILE* fp, const std::string& name,
                                                  CaptureError& err, std::unique_ptr<char[]> iobuf,
                                                  bool may_map);
};

struct ReadProgress {
    std::size_t file_index = 0;
    const std::string* file = nullptr;
    std::uint64_t bytes_read = 0;        ///< over all files
    std::uint64_t bytes_total = 0;       ///< over all files, 0 when any size is unknown
    std::uint64_t file_bytes_read = 0;   ///< of the file the last frame came from
    std::uint64_t file_bytes_total = 0;  ///< its size, 0 when unknown
    std::uint64_t frames = 0;
    bool done = false;  ///< the final call
};

struct ReadOptions {
    std::function<void(const ReadProgress&)> progress;  ///< called every `progress_every` frames
    std::uint64_t progress_every = 4096;
    const std::atomic<bool>* stop = nullptr;  ///< checked between frames (Ctrl-C)
    /// Called with the capture time after a frame at least a second after the previous call:
    /// lets the consumer's time-driven work run (Backend::tick).
    std::function<void(Timestamp)> on_time;
    /// Called before each frame is given to the assembler, with its number and time.
    std::function<void(std::uint64_t frame, Timestamp ts)> before_frame;
    /// Called once after the last frame, before assembler.finish().
    std::function<void()> before_end;
};

struct ReadResult {
    std::uint64_t frames = 0;
    std::vector<CaptureError> errors;  ///< open failures and damaged files (reading goes on)
    [[nodiscard]] bool ok() const { return errors.empty(); }
};

/// Opens every file, merges their frames by timestamp (k-way merge; ties go to the earlier
/// file), feeds them to `assembler`, then calls assembler.finish(). A damaged file stops
/// contributing at the damage; the frames before it are delivered and the others go on.
ReadResult read_captures(const std::vector<std::string>& paths, StreamAssembler& assembler,
                         const ReadOptions& options = {});

struct LiveStats {
    std::uint64_t received = 0;
    std::uint64_t dropped = 0;       ///< by the kernel (buffer full)
    std::uint64_t if_dropped = 0;    ///< by the interface/driver
    std::uint64_t frames = 0;        ///< frames handed to the assembler
    std::uint64_t drop_reports = 0;  ///< calls of LiveOptions::on_drops so far
};

struct LiveOptions {
    std::string interface;
    std::string filter;  ///< BPF, e.g. "tcp port 1433 or port 88"; empty = everything
    int snaplen = 262144;
    bool promiscuous = false;
    /// Deliver every packet as it arrives: one wake-up per packet (and, on Linux, TPACKET_V2 with
    /// one snaplen-sized ring slot per packet). Off by default: the kernel fills ring blocks
    /// (TPACKET_V3) and hands over a block when it is full or `timeout_ms` after its first packet,
    /// so a busy link costs one wake-up per block and a quiet one delays a packet by at most
    /// `timeout_ms`.
    bool immediate = false;
    /// Kernel ring buffer (tcpdump -B; libpcap's default is 2 MiB): 128 MiB holds a second of a
    /// login-dense link at a million packets a second (docs/performance.md, "live on a busy link").
    int buffer_bytes = 128 << 20;
    int timeout_ms = 100;  ///< the longest a packet waits in a ring block
    /// Called with the capture time after a frame at least a second after the previous call, and
    /// with the wall clock (less a second, so that no packet stamped before it is still on its
    /// way) after a read timeout that brought no packet: lets the consumer's time-driven work run
    /// on a quiet link too (Backend::tick).
    std::function<void(Timestamp)> on_time;
    /// Called from run() (between ring blocks, so at least every `timeout_ms` on a quiet link)
    /// when the kernel's or the interface's drop counter grew since the previous check, which
    /// was `drops_every_ms` (or a little more) before: the counters now and at that check (zero
    /// at the first). Also once at the stop, for the last interval.
    std::function<void(const LiveStats& now, const LiveStats& before)> on_drops;
    int drops_every_ms = 1000;
};

/// A live interface. run() blocks until stop() (safe from a signal handler or another thread)
/// or an error.
class LiveCapture {
  public:
    LiveCapture() = default;
    ~LiveCapture();
    LiveCapture(const LiveCapture&) = delete;
    LiveCapture& operator=(const LiveCapture&) = delete;

    /// Returns false with a message naming the interface (no permission, no such device, bad
    /// filter, unsupported link type).
    bool open(const LiveOptions& options, std::string& error);
    bool run(StreamAssembler& assembler, std::string& error);
    void stop();
    /// While running: the kernel's counters now, counted from when the filter was set. After run()
    /// returned because of stop(): the counters as they were at the stop (packets arriving later
    /// are neither read nor counted), with every packet accepted by then handed to the assembler.
    [[nodiscard]] LiveStats stats() const;
    [[nodiscard]] int linktype() const { return linktype_; }

  private:
    pcap* handle_ = nullptr;
    int linktype_ = 0;
    std::atomic<std::uint64_t> frames_{0};  ///< read by stats() from other threads
    std::atomic<bool> stop_{false};
    std::function<void(Timestamp)> on_time_;
    std::function<void(const LiveStats&, const LiveStats&)> on_drops_;
    int drops_every_ms_ = 1000;
    int timeout_ms_ = 0;
    LiveStats reported_;                ///< the counters at the last drop check (run()'s thread)
    std::int64_t next_drop_check_ = 0;  ///< monotonic microseconds
    std::atomic<std::uint64_t> drop_reports_{0};
    /// The kernel's counters (received, dropped, dropped by the interface) when the filter was
    /// set: where ours start.
    std::uint32_t base_[3] = {0, 0, 0};
    /// The kernel's counters since the filter was set (frames not filled in).
    bool counters(LiveStats& out) const;
    void check_drops(bool force);
    mutable std::mutex stats_mutex_;
    std::optional<LiveStats> frozen_;  ///< the counters at the stop
};

}  // namespace hopscope::captures
