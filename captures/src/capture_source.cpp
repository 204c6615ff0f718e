// Capture files are opened through libpcap (it checks the file header, maps LINKTYPE_ values to
// DLT_ values, reads pcapng and standard input). The records of a classic pcap file, though, are
// read here by hand from a window of the file that slides along it: a copy of 512 KiB of it
// (pread) by default, or a read-only mapping of 8 MiB (mmap; the tests use both). Why by hand:
// reading through libpcap (fread of every record through a stdio buffer, then a copy into libpcap's
// buffer) was about a quarter of hopscope's CPU time on a 1 GB capture (kernel copy into stdio ~18
// %, fread ~7 % of the profile). Measured on a 1 GB hopscope-gencap capture, Release, page cache
// warm: `hopscope analyze` took 0.73 s CPU at best (median 0.77-0.95 s, 0.15 s of it system time)
// through libpcap and 0.56-0.60 s at best (median 0.70 s, 0.03 s system) from the mapping. Peak
// RSS: 18 MiB on 1 GB, 27 MiB on 4 GB (the window and the analyzer's state; docs/performance.md).
// Why a copy and not the mapping (which hands on pointers into the page cache, no copy, and was
// the only way until 2026-12-06): on a VM the mapping's cost is per page (its page-table entries
// set up, then a nested TLB miss at each page's first touch), and there it cost more than the
// kernel's copy into one buffer that stays in the CPU's cache: reading 227 MB of the page cache
// touching each cache line took 48-62 ms through 8 MiB mappings against 15.5 ms through pread
// into 512 KiB; `analyze` of 200 MB (release build, 5 alternating runs, one thread / two):
// result-set traffic 0.20-0.21 -> 0.10-0.11 s / 0.23-0.24 -> 0.10 s, login-dense 0.94-1.01 ->
// 0.86-0.94 s / 0.75-0.81 -> 0.59-0.63 s, the lab's captures 0.73-0.76 -> 0.60-0.61 s /
// 0.57-0.61 -> 0.44-0.46 s (docs/performance.md, "Reading the file: a copy, not a mapping").
// The reading follows libpcap 1.10's sf-pcap.c record by record, with its messages: a record
// longer than the header's snapshot length is cut to it (beyond 262144 bytes it is an error), a
// short record header or short data at the end is "truncated dump file", a file ending on a
// record boundary ends cleanly. Only the window being read is held (copied or mapped), so the
// resident size does not grow with the file.
//
// A file cut shorter while it is read through copies: what was copied before the cut is read
// as copied; the next copy sees the new size (fstat, and a short pread) and the file ends there
// as a damaged file does (below). The rest of this comment is about the mapping.
// A file cut shorter while it is mapped (log rotation, `tcpdump -C`, a user's `truncate`): the
// kernel then takes the pages past the new end out of the mapping, and touching one raises
// SIGBUS. The reader guards against that without fstat per record and without longjmp:
// - every mapping is registered in a small table (g_maps) read by a SIGBUS handler installed on
//   the first mapping; a fault inside a registered mapping replaces the mapping from the faulting
//   page to the end of the window with anonymous zero pages (mmap MAP_FIXED), marks the mapping
//   as cut and returns, so the access completes (reading zeros) instead of killing the process.
//   A fault anywhere else goes to the handler that was there before (or the default action).
// - before a record is handed on, the reader touches the first page after the record's last
//   byte (at the window's last page it asks fstat instead). A cut at or before
//   that page faults there and is seen before the record leaves, so no handed-on record depends
//   on bytes past the new end (a cut inside the record's last page does not fault on that page,
//   hence the page after it). Once a cut is seen the size is read again (fstat) and the file
//   ends there as a damaged file does: an error naming the file, the new size and the offset of
//   the first record past it, every record before it delivered.
// - the only inexact case: a cut landing while a record already handed on is being decoded
//   (between the check and the decoder's reads) makes the rest of that frame read as zeros (the
//   decoder takes any bytes); the next read then reports the cut.
#include "hopscope/captures/capture_source.hpp"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>

#include "hopscope/captures/frame.hpp"

namespace hopscope::captures {
namespace {

constexpr std::uint32_t kPcapMagicUs = 0xA1B2C3D4;
constexpr std::uint32_t kPcapMagicNs = 0xA1B23C4D;
constexpr std::size_t kIoBuffer = 1 << 20;
constexpr std::size_t kFileHeader = 24;
constexpr std::size_t kRecordHeader = 16;
/// Bytes of a classic pcap file mapped at a time. Large enough that remapping (and prefaulting
/// the window, MAP_POPULATE) costs little per byte, small enough to keep the resident size low:
/// 8 MiB read a 1 GB file as fast as 32 MiB did (same best and median CPU time over 15 runs) with
/// 24 MiB less RSS.
constexpr std::size_t kMapWindow = std::size_t{8} << 20;
/// Bytes of a file copied at a time (pread): small enough to stay in the CPU's L2 cache between
/// the copy and the decoding (2 MiB measured the same on 200 MB; see the top of the file).
constexpr std::size_t kCopyWindow = std::size_t{512} << 10;
/// How far past the record handed on the CPU is asked to fetch the mapping into its caches. The
/// bytes are first touched by the code the frame goes to, and fresh page-cache pages are in no
/// CPU cache (a copy, as libpcap makes, would bring them in); prefetching saves ~10 % of the CPU
/// time on 1 GB.
constexpr std::uint64_t kPrefetchAhead = 16 << 10;
/// libpcap's max_snaplen_for_dlt() for every link type we accept (is_supported_linktype):
/// MAXIMUM_SNAPLEN. Only D-Bus, EBHSCR and USBPcap have other limits there.
constexpr std::uint32_t kMaxSnaplen = 262144;
// pcapng (draft-ietf-opsawg-pcapng): block types and the section header's byte-order magic.
constexpr std::uint32_t kPcapngShb = 0x0A0D0D0A;
constexpr std::uint32_t kPcapngByteOrder = 0x1A2B3C4D;
constexpr std::uint32_t kPcapngIdb = 1;
constexpr std::uint32_t kPcapngPb = 2;  ///< the obsolete Packet Block
constexpr std::uint32_t kPcapngSpb = 3;
constexpr std::uint32_t kPcapngEpb = 6;
/// libpcap 1.10's INITIAL_MAX_BLOCKSIZE: the largest block it reads for the link types we accept
/// (their MAX_BLOCKSIZE_FOR_SNAPLEN is smaller); beyond it, it reports an error.
constexpr std::uint32_t kPcapngMaxBlock = 16u << 20;

std::atomic<std::size_t> g_map_window{kMapWindow};
std::atomic<std::size_t> g_copy_window{kCopyWindow};
std::atomic<bool> g_copy{true};  ///< windows copied (the default) or mapped

std::size_t page_size() {
    static const std::size_t size = [] {
        const long v = sysconf(_SC_PAGESIZE);
        return v > 0 ? static_cast<std::size_t>(v) : std::size_t{4096};
    }();
    return size;
}

/// Who reads the records of a capture that starts with these `got` bytes: this reader (classic
/// pcap 2.4 and pcapng, copied or mapped windows) or libpcap (anything else).
enum class Layout { Libpcap, Classic, Pcapng };
Layout layout_of(const unsigned char* h, std::size_t got) {
    if (got >= kFileHeader) {
        const std::uint32_t be = load_u32be(h);
        const bool big = be == kPcapMagicUs || be == kPcapMagicNs;
        const std::uint32_t le = load_u32le(h);
        if (big || le == kPcapMagicUs || le == kPcapMagicNs) {
            const auto u16 = [big](const unsigned char* p) {
                return big ? load_u16be(p) : load_u16le(p);
            };
            return u16(h + 4) == 2 && u16(h + 6) == 4 ? Layout::Classic : Layout::Libpcap;
        }
    }
    if (got >= 12 && load_u32le(h) == kPcapngShb &&
        (load_u32le(h + 8) == kPcapngByteOrder || load_u32be(h + 8) == kPcapngByteOrder)) {
        return Layout::Pcapng;
    }
    return Layout::Libpcap;
}

/// Whether `fd`, just opened, is a regular file whose records this reader takes (layout_of).
bool own_records(int fd) {
    struct stat sb {};
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
    unsigned char h[kFileHeader];
    const ssize_t got = ::pread(fd, h, sizeof h, 0);
    return got > 0 && layout_of(h, static_cast<std::size_t>(got)) != Layout::Libpcap;
}

// ---- SIGBUS guard for mapped windows (see the top of the file)

/// One mapped window: [base, base + len), and the page-aligned offset into it from which the
/// SIGBUS handler replaced it with zeros (kNotCut: never). Lock-free atomics only: the handler
/// reads and writes them.
struct MapSlot {
    static constexpr std::uintptr_t kNotCut = ~std::uintptr_t{0};
    std::atomic<std::uintptr_t> base{0};
    std::atomic<std::size_t> len{0};
    std::atomic<std::uintptr_t> cut_at{kNotCut};
};
/// Windows mapped at the same time (one per open mapped file); a file that finds no free slot is
/// read through libpcap instead.
constexpr std::size_t kMapSlots = 256;
std::array<MapSlot, kMapSlots> g_maps;
std::size_t g_page = 4096;  // set before the handler is installed
struct sigaction g_previous_sigbus {};

void on_sigbus(int sig, siginfo_t* info, void* uctx) {
    const int saved_errno = errno;
    const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
    for (MapSlot& m : g_maps) {
        const std::uintptr_t base = m.base.load(std::memory_order_relaxed);
        const std::size_t len = m.len.load(std::memory_order_relaxed);
        if (base == 0 || addr < base || addr - base >= len) continue;
        const std::uintptr_t page = addr & ~static_cast<std::uintptr_t>(g_page - 1);
        const std::size_t span = (base + len - page + g_page - 1) & ~(g_page - 1);
        void* p = mmap(reinterpret_cast<void*>(page), span, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED) break;  // cannot repair: as if it were not ours
        std::uintptr_t expected = MapSlot::kNotCut;
        const std::uintptr_t at = page - base;
        while (at < expected && !m.cut_at.compare_exchange_weak(expected, at)) {
        }
        errno = saved_errno;
        return;
    }
    // Not a fault in a mapped capture window: what would have happened without this handler.
    if ((g_previous_sigbus.sa_flags & SA_SIGINFO) != 0 && g_previous_sigbus.sa_sigaction) {
        errno = saved_errno;
        g_previous_sigbus.sa_sigaction(sig, info, uctx);
        return;
    }
    if (g_previous_sigbus.sa_handler != SIG_DFL && g_previous_sigbus.sa_handler != SIG_IGN) {
        errno = saved_errno;
        g_previous_sigbus.sa_handler(sig);
        return;
    }
    // Default action: restore it and return; the faulting access runs again and ends the process.
    signal(SIGBUS, SIG_DFL);
    errno = saved_errno;
}

void install_sigbus_guard() {
    static std::once_flag once;
    std::call_once(once, [] {
        const long v = sysconf(_SC_PAGESIZE);
        g_page = v > 0 ? static_cast<std::size_t>(v) : std::size_t{4096};
        struct sigaction sa {};
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, &g_previous_sigbus);
    });
}

/// A free slot for a new window, or -1.
int claim_slot(const std::uint8_t* base, std::size_t len) {
    for (std::size_t i = 0; i < kMapSlots; ++i) {
        std::uintptr_t expected = 0;
        // Claimed with a placeholder base of 1 (no mapping starts there), then filled in.
        // (len is 0 while a slot is free, so the handler matches nothing until len is stored.)
        if (g_maps[i].base.compare_exchange_strong(expected, 1)) {
            g_maps[i].cut_at.store(MapSlot::kNotCut);
            g_maps[i].base.store(reinterpret_cast<std::uintptr_t>(base));
            g_maps[i].len.store(len);
            return static_cast<int>(i);
        }
    }
    return -1;
}

void release_slot(int slot) {
    if (slot < 0) return;
    g_maps[static_cast<std::size_t>(slot)].len.store(0);
    g_maps[static_cast<std::size_t>(slot)].base.store(0);
}

Timestamp to_ts(const pcap_pkthdr& h) {
    // A hostile pcapng timestamp can put tv_sec beyond what microseconds since 1970 hold in 64
    // bits; such times are clamped rather than overflowed.
    constexpr std::int64_t kMaxSeconds = INT64_MAX / 1'000'000 - 1;
    const std::int64_t sec = static_cast<std::int64_t>(h.ts.tv_sec);
    if (sec > kMaxSeconds) return Timestamp{kMaxSeconds * 1'000'000};
    if (sec < -kMaxSeconds) return Timestamp{-kMaxSeconds * 1'000'000};
    return Timestamp{sec * 1'000'000 + static_cast<std::int64_t>(h.ts.tv_usec)};
}

}  // namespace

std::string CaptureError::to_string() const {
    std::string s = file + ": " + message;
    if (offset) s += " (at byte offset " + std::to_string(*offset) + ")";
    if (frames_read > 0) s += "; " + std::to_string(frames_read) + " frames before it were read";
    return s;
}

std::unique_ptr<CaptureFile> CaptureFile::open(const std::string& path, CaptureError& err) {
    err = CaptureError{};
    err.file = path;
    std::FILE* fp = nullptr;
    if (path == "-") {
        fp = stdin;
    } else {
        fp = std::fopen(path.c_str(), "rb");
        if (fp == nullptr) {
            err.message = std::string("cannot open: ") + std::strerror(errno);
            return nullptr;
        }
    }
    // libpcap reads each record with fread through the FILE's buffer (4 KiB by default): a
    // larger one saves most of the stdio and read(2) overhead. Must be set before any I/O.
    // Standard input gets a buffer that lives as long as the process, set on its first use only.
    // A file whose records this reader takes itself (own_records()) keeps the small one: libpcap
    // reads only its header, and a 1 MiB buffer there was cleared and then filled by stdio's
    // first read, 256 page faults of 4 KiB for nothing on every open (about 4 ms on the VM of
    // docs/performance.md, "Starting"; once per thread with --threads). Not cleared either way:
    // what stdio reads into it is all that is read from it.
    std::unique_ptr<char[]> iobuf;
    if (fp == stdin) {
        static bool stdin_buffered = false;
        static std::unique_ptr<char[]> stdin_buf;
        if (!stdin_buffered) {
            stdin_buffered = true;
            stdin_buf = std::make_unique_for_overwrite<char[]>(kIoBuffer);
            std::setvbuf(fp, stdin_buf.get(), _IOFBF, kIoBuffer);
        }
    } else if (!own_records(fileno(fp))) {
        iobuf = std::make_unique_for_overwrite<char[]>(kIoBuffer);
        if (std::setvbuf(fp, iobuf.get(), _IOFBF, kIoBuffer) != 0) iobuf.reset();
    }
    return open_impl(fp, path, err, std::move(iobuf), fp != stdin);
}

std::unique_ptr<CaptureFile> CaptureFile::open_stream(std::FILE* fp, const std::string& name,
                                                      CaptureError& err) {
    return open_impl(fp, name, err, nullptr, false);
}

void CaptureFile::set_map_window_for_testing(std::size_t bytes) {
    const std::size_t page = page_size();
    g_map_window = bytes == 0 ? kMapWindow : (bytes + page - 1) / page * page;
    g_copy = bytes == 0;
}

void CaptureFile::set_copy_window_for_testing(std::size_t bytes) {
    const std::size_t page = page_size();
    g_copy_window = bytes == 0 ? kCopyWindow : (bytes + page - 1) / page * page;
    g_copy = true;
}

std::unique_ptr<CaptureFile> CaptureFile::open_impl(std::FILE* fp, const std::string& name,
                                                    CaptureError& err,
                                                    std::unique_ptr<char[]> iobuf, bool may_map) {
    err = CaptureError{};
    err.file = name;
    std::unique_ptr<CaptureFile> cf(new CaptureFile());
    cf->path_ = name;
    cf->iobuf_ = std::move(iobuf);
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    struct stat sb {};
    const int fd = fileno(fp);
    bool map_it = false;
    bool map_ng = false;
    if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        cf->total_ = static_cast<std::uint64_t>(sb.st_size);
        cf->opened_size_ = cf->total_;
        // Peek at the header so that offsets in pcap files can be exact (own accounting), and to
        // see whether the records can be read from a mapping: a standard version 2.4 header at
        // the start of the file (2.3 and older, Kuznetzov's and other variants stay on libpcap).
        unsigned char h[kFileHeader] = {};
        const off_t pos = ftello(fp);
        const std::size_t got = pos >= 0 ? std::fread(h, 1, sizeof h, fp) : 0;
        if (got >= 4) {
            const std::uint32_t le = load_u32le(h);
            const std::uint32_t be = load_u32be(h);
            cf->classic_pcap_ = le == kPcapMagicUs || le == kPcapMagicNs || be == kPcapMagicUs ||
                                be == kPcapMagicNs;
            cf->big_endian_ = be == kPcapMagicUs || be == kPcapMagicNs;
            cf->nanos_ = le == kPcapMagicNs || be == kPcapMagicNs;
        }
        if (pos < 0 || fseeko(fp, pos, SEEK_SET) != 0) cf->classic_pcap_ = false;
        cf->accounted_ = static_cast<std::uint64_t>(pos < 0 ? 0 : pos) + kFileHeader;
        // Records read by this reader: a classic 2.4 header, or a pcapng section header block
        // with its byte-order magic either way, at the start of the file (as own_records()).
        const Layout layout = pos == 0 ? layout_of(h, got) : Layout::Libpcap;
        map_it = may_map && cf->classic_pcap_ && layout == Layout::Classic;
        if (may_map && layout == Layout::Pcapng) {
            map_ng = true;
            cf->big_endian_ = load_u32be(h + 8) == kPcapngByteOrder;
        }
    }
    cf->handle_ = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_MICRO, errbuf);
    if (cf->handle_ == nullptr) {
        if (fp != stdin) std::fclose(fp);
        err.message = std::string("not a readable pcap/pcapng capture: ") + errbuf;
        err.offset = 0;
        return nullptr;
    }
    cf->linktype_ = pcap_datalink(cf->handle_);
    if (!is_supported_linktype(cf->linktype_)) {
        const char* lname = pcap_datalink_val_to_name(cf->linktype_);
        err.message = "unsupported link type " + std::to_string(cf->linktype_) + " (" +
                      (lname ? lname : "unknown") +
                      "); supported: Ethernet, Linux cooked (SLL, SLL2), raw IP, BSD loopback, PPP";
        return nullptr;
    }
    const int snapshot = pcap_snapshot(cf->handle_);
    if ((map_it || map_ng) && snapshot > 0) {
        cf->mapped_ = true;
        cf->pcapng_ = map_ng;
        if (map_ng) cf->accounted_ = 0;  // its blocks are walked from the section header on
        cf->fd_ = fd;
        cf->snaplen_ = static_cast<std::uint32_t>(snapshot);
        cf->copy_ = g_copy.load();
        cf->window_ = cf->copy_ ? g_copy_window.load() : g_map_window.load();
        cf->page_mask_ = ~(std::uint64_t{page_size()} - 1);
        cf->swapped_ = cf->big_endian_ != (std::endian::native == std::endian::big);
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    cf->error_.file = name;
    return cf;
}

CaptureFile::~CaptureFile() {
    unmap();
    if (handle_ != nullptr) pcap_close(handle_);  // also closes the FILE (stdin included)
}

void CaptureFile::unmap() {
    if (copy_) {  // the buffer stays for the next copy
        map_ = nullptr;
        map_off_ = 0;
        map_len_ = 0;
        return;
    }
    release_slot(slot_);  // before munmap: the addresses may be reused by any mapping after it
    slot_ = -1;
    if (map_ != nullptr) munmap(const_cast<std::uint8_t*>(map_), map_len_);
    map_ = nullptr;
    map_off_ = 0;
    map_len_ = 0;
}

// Maps the window holding [off, off + n) (within the file size taken at open). Returns nullptr
// when that is not possible: the file is now shorter than off + n (total_ and shrunk_ then say
// so), the mapping failed (e.g. ENOMEM), or no slot of the SIGBUS guard is free. The window
// covers only what the file holds now, so its pages can be read unless the file is cut again
// while they are (see intact()).
const std::uint8_t* CaptureFile::map_range(std::uint64_t off, std::size_t n) {
    if (off >= map_off_ && off + n <= map_off_ + map_len_) return map_ + (off - map_off_);
    unmap();
    struct stat sb {};
    if (fstat(fd_, &sb) != 0) return nullptr;
    if (static_cast<std::uint64_t>(sb.st_size) < total_) {
        total_ = static_cast<std::uint64_t>(sb.st_size);  // the file shrank while being read
        shrunk_ = true;
    }
    if (off + n > total_) {
        errno = ENODATA;
        return nullptr;
    }
    const std::uint64_t start = off & ~static_cast<std::uint64_t>(page_size() - 1);
    const std::uint64_t len =
        std::min<std::uint64_t>(std::max<std::uint64_t>(window_, off + n - start), total_ - start);
    if (copy_) return copy_range(off, n, start, static_cast<std::size_t>(len));
    install_sigbus_guard();
    void* p = mmap(nullptr, static_cast<std::size_t>(len), PROT_READ, MAP_PRIVATE | MAP_POPULATE,
                   fd_, static_cast<off_t>(start));
    if (p == MAP_FAILED) return nullptr;
    slot_ = claim_slot(static_cast<const std::uint8_t*>(p), static_cast<std::size_t>(len));
    if (slot_ < 0) {
        munmap(p, static_cast<std::size_t>(len));
        errno = EMFILE;
        return nullptr;
    }
    map_ = static_cast<const std::uint8_t*>(p);
    map_off_ = start;
    map_len_ = static_cast<std::size_t>(len);
    handled_cut_ = MapSlot::kNotCut;
    // Have the kernel read the next window ahead while this one is being worked on.
    if (start + len < total_)
        (void)posix_fadvise(fd_, static_cast<off_t>(start + len), static_cast<off_t>(window_),
                            POSIX_FADV_WILLNEED);
    return map_ + (off - start);
}

// map_range() for a copied window: [start, start + len) read into copy_buf_. A short read is the
// file cut meanwhile (total_ and shrunk_ then say so); an error of the read, as a failed mapping.
const std::uint8_t* CaptureFile::copy_range(std::uint64_t off, std::size_t n, std::uint64_t start,
                                            std::size_t len) {
    if (copy_cap_ < len) {
        copy_buf_.reset();  // before the new one: not both at once
        copy_buf_.reset(new (std::nothrow) std::uint8_t[len]);
        copy_cap_ = copy_buf_ ? len : 0;
        if (!copy_buf_) {
            errno = ENOMEM;
            return nullptr;
        }
    }
    std::size_t got = 0;
    while (got < len) {
        const ssize_t r =
            ::pread(fd_, copy_buf_.get() + got, len - got, static_cast<off_t>(start + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return nullptr;
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    if (got < len) {
        total_ = start + got;  // cut since the fstat of map_range()
        shrunk_ = true;
    }
    map_ = copy_buf_.get();
    map_off_ = start;
    map_len_ = got;
    if (off + n > start + got) {
        errno = ENODATA;
        return nullptr;
    }
    return map_ + (off - start);
}

// True when the file still holds every byte before `end` (end > map_off_), as far as the mapping
// shows: the first page after `end - 1` is touched (for every record: a cut inside a page already
// touched makes no fault there, its bytes past the new end just read as zeros, so only the next
// page tells; the load hits the CPU cache); at the window's last page, or once the SIGBUS handler
// has marked the window as cut, fstat says. A cut makes total_ the new size (and no more than
// where the window was replaced by zeros) and sets shrunk_.
// (The page is found with a mask, not a division by the page size: callgrind had intact() at 43
// instructions a record, most of them the division and the call.)
inline bool CaptureFile::intact(std::uint64_t end) {
    // A copied window is what the file held when it was read: only bytes past it are in doubt.
    if (copy_) return end <= map_off_ + map_len_ || intact_by_size(end);
    const std::uint64_t next_page = (end + ~page_mask_) & page_mask_;
    if (handled_cut_ == MapSlot::kNotCut && next_page < map_off_ + map_len_) {
        (void)*static_cast<const volatile std::uint8_t*>(map_ + (next_page - map_off_));
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (g_maps[static_cast<std::size_t>(slot_)].cut_at.load(std::memory_order_relaxed) ==
            MapSlot::kNotCut)
            return true;
    }
    return intact_by_size(end);
}

bool CaptureFile::intact_by_size(std::uint64_t end) {
    struct stat sb {};
    std::uint64_t size = fstat(fd_, &sb) == 0 ? static_cast<std::uint64_t>(sb.st_size) : 0;
    if (slot_ >= 0) {  // a mapped window: the SIGBUS guard's mark
        handled_cut_ =
            g_maps[static_cast<std::size_t>(slot_)].cut_at.load(std::memory_order_relaxed);
        if (handled_cut_ != MapSlot::kNotCut) size = std::min(size, map_off_ + handled_cut_);
    }
    if (size < total_) {
        total_ = size;
        shrunk_ = true;
    }
    return end <= total_;
}

int CaptureFile::fail_cut(std::uint64_t offset) {
    return fail(offset, "the file was cut to " + std::to_string(total_) +
                            " bytes while being read (it had " + std::to_string(opened_size_) +
                            " when opened)");
}

int CaptureFile::fail(std::uint64_t offset, std::string message) {
    error_.file = path_;
    error_.message = "damaged capture: " + std::move(message);
    error_.offset = offset;
    error_.frames_read = frames_;
    return -1;
}

// Asks the CPU to fetch the mapping up to kPrefetchAhead past the record just handed on (each
// cache line once).
void CaptureFile::prefetch_ahead() {
    if (copy_) return;  // the copy brought the window into the cache
    const std::uint64_t ahead = std::min(accounted_ + kPrefetchAhead, map_off_ + map_len_);
    std::uint64_t line = std::max(prefetched_, accounted_ & ~std::uint64_t{63});
    for (; line < ahead; line += 64)
        __builtin_prefetch(map_ + (line - map_off_));
    prefetched_ = line;
}

int CaptureFile::next_mapped(PacketView& out) {
    const std::uint64_t off = accounted_;  // where this record starts
    if (off >= total_) return shrunk_ ? fail_cut(off) : 0;
    const std::uint64_t left = total_ - off;
    if (left < kRecordHeader)
        return shrunk_ ? fail_cut(off)
                       : fail(off, "truncated dump file; tried to read 16 header bytes, only got " +
                                       std::to_string(left));
    const std::uint8_t* rec = window_at(off, kRecordHeader);
    if (rec == nullptr && shrunk_ && off + kRecordHeader > total_) return fail_cut(off);
    std::uint32_t sec = 0, frac = 0, caplen = 0, len = 0;
    if (rec != nullptr) {
        // The header is checked with the record (one intact() per record, at its end): bytes
        // past a cut read as zeros, so a cut header gives caplen 0 or a smaller one, and the
        // check at the record's end sees the cut. Only an error about the header asks first
        // whether the header itself is still there (the cut is then what is reported).
        sec = u32(rec);
        frac = u32(rec + 4);
        caplen = u32(rec + 8);
        len = u32(rec + 12);
        if (caplen > kMaxSnaplen) {
            if (!intact(off + kRecordHeader)) return fail_cut(off);
            return fail(off, "invalid packet capture length " + std::to_string(caplen) +
                                 (caplen > snaplen_
                                      ? ", bigger than snaplen of " + std::to_string(snaplen_)
                                      : ", bigger than maximum of " + std::to_string(kMaxSnaplen)));
        }
        // Like libpcap: a record longer than the snapshot length is cut to it (its data is read
        // up to the snapshot length, then up to caplen); the file offset moves by caplen.
        if (total_ - off - kRecordHeader < caplen && !intact(off + kRecordHeader))
            return fail_cut(off);
        const std::uint64_t avail = total_ - off - kRecordHeader;  // total_: as intact() left it
        if (avail < caplen) {
            if (shrunk_) return fail_cut(off);
            const std::uint32_t tried = caplen > snaplen_ && avail < snaplen_ ? snaplen_ : caplen;
            return fail(off, "truncated dump file; tried to read " + std::to_string(tried) +
                                 " captured bytes, only got " + std::to_string(avail));
        }
        const std::uint32_t keep = std::min(caplen, snaplen_);
        if (off + kRecordHeader + keep > map_off_ + map_len_) {
            rec = map_range(off, kRecordHeader + keep);
            if (rec == nullptr && shrunk_ && off + kRecordHeader + keep > total_)
                return fail_cut(off);
        }
        if (rec != nullptr) {
            if (!intact(off + kRecordHeader + caplen)) return fail_cut(off);
            ++frames_;
            accounted_ = off + kRecordHeader + caplen;
            // As libpcap 1.10 reads them: signed 32-bit fields in a file of the host's byte
            // order, unsigned ones once byte-swapped (its SWAPLONG).
            std::int64_t secs = sec, sub = frac;
            if (!swapped_) {
                secs = static_cast<std::int32_t>(sec);
                sub = static_cast<std::int32_t>(frac);
            }
            if (nanos_) sub /= 1000;
            out.ts = Timestamp{secs * 1'000'000 + sub};
            out.data = Bytes(rec + kRecordHeader, keep);
            out.wire_len = len;
            out.linktype = linktype_;
            out.file_frame = frames_;
            prefetch_ahead();
            return 1;
        }
    }
    // The window cannot be mapped: go on through libpcap from this record on.
    const int map_errno = errno;
    unmap();
    mapped_ = false;
    std::FILE* fp = pcap_file(handle_);
    if (fp == nullptr || fseeko(fp, static_cast<off_t>(off), SEEK_SET) != 0)
        return fail(off, std::string("cannot map the file here (") + std::strerror(map_errno) +
                             ") nor seek to this record");
    return next(out);
}

// pcapng from the mapping. What it reads is what libpcap 1.10's sf-pcapng.c gives for the same
// blocks: the same packets (Enhanced, Simple and the obsolete Packet Blocks; every other block
// skipped), time stamps converted with the interface's if_tsresol and if_tsoffset the same
// way, and bytes_read() at the end of the block, where libpcap's stdio position is. Why by
// hand: through libpcap, every block is copied twice (read(2) into stdio's buffer, fread into
// libpcap's), and `analyze` of a pcapng took 30-40 % longer than of the same packets in a
// classic pcap (docs/performance.md).
// Only what reads cleanly is handled here. Anything libpcap could refuse or would read
// differently (a malformed or over-long block, a block cut by the end of the file, a packet on
// an interface not described, an interface of another link type or snapshot length, a section
// in the other byte order, an option it rejects) hands the file to libpcap: it reads it again
// from its first packet, the packets already handed on are skipped, and what follows, error
// messages included, is libpcap's. That costs a second read, for damaged files only.
int CaptureFile::next_pcapng(PacketView& out) {
    for (;;) {
        const std::uint64_t off = accounted_;  // where this block starts
        if (off >= total_ && !shrunk_) return 0;
        if (total_ - std::min(off, total_) < 12) return ng_fall_back(out);
        // (A header on a page the file no longer has reads as zeros, see on_sigbus: a length
        // of 0, handed to libpcap below.)
        const std::uint8_t* b = map_range(off, 8);
        if (b == nullptr) return ng_fall_back(out);
        const std::uint32_t type = u32(b);
        const std::uint32_t len = u32(b + 4);
        if (len < 12 || len % 4 != 0 || len > kPcapngMaxBlock || len > total_ - off)
            return ng_fall_back(out);
        if (off + len > map_off_ + map_len_) b = map_range(off, len);
        if (b == nullptr || !intact(off + len) || u32(b + len - 4) != len) return ng_fall_back(out);
        const std::uint8_t* body = b + 8;
        const std::size_t n = len - 12;
        std::uint32_t iface = 0, caplen = 0, wire = 0;
        std::uint64_t t = 0;
        const std::uint8_t* data = nullptr;
        std::size_t room = 0;  // bytes of the body after the fixed part
        switch (type) {
            case kPcapngShb:
                // A new section: same byte order and major version, its own interfaces.
                if (n < 16 || u32(body) != kPcapngByteOrder || u16(body + 4) != 1)
                    return ng_fall_back(out);
                ng_ifaces_.clear();
                accounted_ = off + len;
                continue;
            case kPcapngIdb:
                if (!ng_interface(body, n)) return ng_fall_back(out);
                accounted_ = off + len;
                continue;
            case kPcapngEpb:
            case kPcapngPb:
                // The same layout, but the Packet Block's interface is 16 bits (then a drop
                // count).
                if (n < 20) return ng_fall_back(out);
                iface = type == kPcapngEpb ? u32(body) : u16(body);
                t = std::uint64_t{u32(body + 4)} << 32 | u32(body + 8);
                caplen = u32(body + 12);
                wire = u32(body + 16);
                data = body + 20;
                room = n - 20;
                break;
            case kPcapngSpb:
                // No time stamp and no captured length: the packet's length cut to the snapshot
                // length, on the first interface.
                if (n < 4) return ng_fall_back(out);
                wire = u32(body);
                caplen = std::min(wire, snaplen_);
                data = body + 4;
                room = n - 4;
                break;
            default:
                accounted_ = off + len;  // name resolution, statistics, secrets, custom...
                continue;
        }
        if (iface >= ng_ifaces_.size() || caplen > snaplen_ || caplen > room)
            return ng_fall_back(out);
        const NgInterface& ifc = ng_ifaces_[iface];
        // As libpcap converts it (unsigned 64-bit arithmetic, wrapping where it wraps), to the
        // microseconds it is asked for.
        constexpr std::uint64_t kMicro = 1'000'000;
        const std::uint64_t sec = t / ifc.tsresol + static_cast<std::uint64_t>(ifc.tsoffset);
        std::uint64_t frac = t % ifc.tsresol;
        if (ifc.tsresol != kMicro) {
            if (ifc.binary)
                frac = frac * kMicro / ifc.tsresol;
            else if (ifc.tsresol > kMicro)
                frac /= ifc.tsresol / kMicro;
            else
                frac *= kMicro / ifc.tsresol;
        }
        pcap_pkthdr h{};
        h.ts.tv_sec = static_cast<time_t>(sec);
        h.ts.tv_usec = static_cast<int>(frac);
        ++frames_;
        accounted_ = off + len;
        out.ts = to_ts(h);
        out.data = Bytes(data, caplen);
        out.wire_len = wire;
        out.linktype = linktype_;
        out.file_frame = frames_;
        prefetch_ahead();
        return 1;
    }
}

// An Interface Description Block's body: link type, snapshot length and the time stamp options,
// checked as libpcap checks them. False where libpcap would stop or read it otherwise.
bool CaptureFile::ng_interface(const std::uint8_t* body, std::size_t n) {
    if (n < 8) return false;
    const std::uint32_t type = u16(body);
    const std::uint32_t snap = u32(body + 4);
    // libpcap stops at a later interface whose link type or snapshot length differs from the
    // first's (compared after its own adjustments, which differ between its versions): here only
    // the same values as the first interface's, in the file, are read without it.
    if (ng_idbs_ == 0) {
        ng_first_type_ = type;
        ng_first_snap_ = snap;
    } else if (type != ng_first_type_ || type != static_cast<std::uint32_t>(linktype_) ||
               snap != ng_first_snap_) {
        return false;
    }
    NgInterface ifc;
    bool saw_resol = false, saw_offset = false;
    std::size_t at = 8;
    while (at < n) {
        if (n - at < 4) return false;
        const std::uint16_t code = u16(body + at);
        const std::uint16_t olen = u16(body + at + 2);
        const std::size_t padded = (std::size_t{olen} + 3) / 4 * 4;
        at += 4;
        if (n - at < padded) return false;
        const std::uint8_t* v = body + at;
        at += padded;
        if (code == 0) {  // opt_endofopt
            if (olen != 0) return false;
            break;
        }
        if (code == 9) {  // if_tsresol
            if (olen != 1 || saw_resol) return false;
            saw_resol = true;
            if ((v[0] & 0x80) != 0) {
                if ((v[0] & 0x7F) > 63) return false;
                ifc.binary = true;
                ifc.tsresol = std::uint64_t{1} << (v[0] & 0x7F);
            } else {
                if (v[0] > 19) return false;
                ifc.tsresol = 1;
                for (unsigned i = 0; i < v[0]; ++i)
                    ifc.tsresol *= 10;
            }
        } else if (code == 14) {  // if_tsoffset
            if (olen != 8 || saw_offset) return false;
            saw_offset = true;
            const std::uint64_t raw = big_endian_ ? load_u64be(v) : load_u64le(v);
            ifc.tsoffset = static_cast<std::int64_t>(raw);
        }
    }
    ++ng_idbs_;
    ng_ifaces_.push_back(ifc);
    return true;
}

// Hands the file to libpcap (see next_pcapng()): a new handle reads it from its start, as a
// reader through libpcap alone would read the file as it is now (the handle opened with the file
// has read ahead into its stdio buffer, which may hold bytes the file no longer has); the
// packets already handed on are skipped.
int CaptureFile::ng_fall_back(PacketView& out) {
    unmap();
    mapped_ = false;
    pcapng_ = false;
    ng_ifaces_.clear();
    const auto fail_here = [&](std::string message) {
        error_.file = path_;
        error_.message = "damaged capture: " + std::move(message);
        error_.frames_read = frames_;
        error_.offset = accounted_;
        return -1;
    };
    const int fd = ::dup(fd_);
    std::FILE* fp = fd >= 0 ? ::fdopen(fd, "rb") : nullptr;
    if (fp == nullptr) {
        if (fd >= 0) ::close(fd);
        return fail_here(std::string("cannot read the file again: ") + std::strerror(errno));
    }
    pcap_close(handle_);  // closes the first FILE (a buffer of ours there is free again)
    handle_ = nullptr;
    fd_ = -1;
    // The file was opened with stdio's small buffer (own_records()): libpcap reads it all now.
    if (!iobuf_) iobuf_ = std::make_unique_for_overwrite<char[]>(kIoBuffer);
    if (std::setvbuf(fp, iobuf_.get(), _IOFBF, kIoBuffer) != 0) iobuf_.reset();
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    if (fseeko(fp, 0, SEEK_SET) != 0 || (handle_ = pcap_fopen_offline_with_tstamp_precision(
                                             fp, PCAP_TSTAMP_PRECISION_MICRO, errbuf)) == nullptr) {
        std::fclose(fp);
        return fail_here(std::string("cannot read the file again: ") +
                         (errbuf[0] != 0 ? errbuf : "seek failed"));
    }
    for (std::uint64_t i = 0; i < frames_; ++i) {
        pcap_pkthdr* hdr = nullptr;
        const u_char* data = nullptr;
        const int rc = pcap_next_ex(handle_, &hdr, &data);
        if (rc == 1) continue;
        return fail_here(rc == PCAP_ERROR_BREAK ? std::string("the file changed while being read")
                                                : std::string(pcap_geterr(handle_)));
    }
    return next(out);
}

int CaptureFile::next(PacketView& out) {
    if (mapped_) return pcapng_ ? next_pcapng(out) : next_mapped(out);
    if (handle_ == nullptr) return -1;  // pcapng that could not be read again (error() says why)
    pcap_pkthdr* hdr = nullptr;
    const u_char* data = nullptr;
    const int rc = pcap_next_ex(handle_, &hdr, &data);
    if (rc == 1) {
        ++frames_;
        // For a record longer than the snapshot length libpcap gives the cut length: offsets
        // after it come out short by the difference (the mapped reader has the real one).
        accounted_ += 16 + hdr->caplen;
        out.ts = to_ts(*hdr);
        out.data = Bytes(data, hdr->caplen);
        out.wire_len = hdr->len;
        out.linktype = linktype_;
        out.file_frame = frames_;
        return 1;
    }
    if (rc == PCAP_ERROR_BREAK) return 0;  // end of file
    error_.file = path_;
    error_.message = std::string("damaged capture: ") + pcap_geterr(handle_);
    error_.frames_read = frames_;
    if (classic_pcap_) {
        error_.offset = accounted_;  // where the record that could not be read starts
    } else if (std::FILE* fp = pcap_file(handle_)) {
        const long pos = std::ftell(fp);
        if (pos >= 0) error_.offset = static_cast<std::uint64_t>(pos);
    }
    return -1;
}

std::uint64_t CaptureFile::bytes_read() const {
    if (classic_pcap_ || pcapng_ || handle_ == nullptr) return accounted_;
    if (std::FILE* fp = pcap_file(handle_)) {
        const long pos = std::ftell(fp);
        if (pos >= 0) return static_cast<std::uint64_t>(pos);
    }
    return accounted_;
}

ReadResult read_captures(const std::vector<std::string>& paths, StreamAssembler& assembler,
                         const ReadOptions& options) {
    ReadResult result;
    struct Source {
        std::unique_ptr<CaptureFile> file;
        PacketView pkt;
        bool has = false;
    };
    std::vector<Source> sources;
    sources.reserve(paths.size());
    bool sizes_known = true;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        CaptureError err;
        auto f = CaptureFile::open(paths[i], err);
        if (!f) {
            result.errors.push_back(std::move(err));
            continue;
        }
        if (f->bytes_total() == 0) sizes_known = false;
        total += f->bytes_total();
        Source s;
        s.file = std::move(f);
        s.pkt.file_index = i;
        sources.push_back(std::move(s));
    }
    auto advance = [&](Source& s) {
        const std::size_t idx = s.pkt.file_index;
        const int rc = s.file->next(s.pkt);
        s.pkt.file_index = idx;
        s.has = rc == 1;
        if (rc < 0) result.errors.push_back(s.file->error());
    };
    for (auto& s : sources)
        advance(s);

    ReadProgress prog;
    prog.bytes_total = sizes_known ? total : 0;
    auto report = [&](std::size_t file_index, bool done) {
        if (!options.progress) return;
        prog.file_index = file_index;
        prog.file = file_index < paths.size() ? &paths[file_index] : nullptr;
        prog.bytes_read = 0;
        prog.file_bytes_read = prog.file_bytes_total = 0;
        for (const auto& s : sources) {
            const std::uint64_t n = s.file->bytes_read();
            prog.bytes_read += n;
            if (s.pkt.file_index == file_index) {
                prog.file_bytes_read = n;
                prog.file_bytes_total = s.file->bytes_total();
            }
        }
        prog.frames = result.frames;
        prog.done = done;
        options.progress(prog);
    };

    Timestamp last{};
    std::int64_t next_time = std::numeric_limits<std::int64_t>::min();  // of options.on_time
    const std::uint64_t every = options.progress_every ? options.progress_every : 4096;
    std::uint64_t until_report = every;  // counted down: no division per frame
    for (;;) {
        if (options.stop && options.stop->load(std::memory_order_relaxed)) break;
        Source* best = nullptr;
        for (auto& s : sources) {
            if (s.has && (best == nullptr || s.pkt.ts < best->pkt.ts)) best = &s;
        }
        if (best == nullptr) break;
        best->pkt.frame = ++result.frames;
        last = best->pkt.ts;
        if (options.before_frame) options.before_frame(best->pkt.frame, best->pkt.ts);
        assembler.on_frame(best->pkt.linktype, best->pkt.ts, best->pkt.data, best->pkt.frame);
        if (options.on_time && last.micros >= next_time) {
            options.on_time(last);
            next_time = last.micros + 1'000'000;
        }
        const std::size_t fi = best->pkt.file_index;
        advance(*best);
        if (--until_report == 0) {
            until_report = every;
            report(fi, false);
        }
    }
    if (options.before_end) options.before_end();
    assembler.finish(last);
    report(sources.empty() ? 0 : sources.back().pkt.file_index, true);
    return result;
}

// ---- live
// ----------------------------------------------------------------------------------------

LiveCapture::~LiveCapture() {
    if (handle_ != nullptr) pcap_close(handle_);
}

bool LiveCapture::open(const LiveOptions& o, std::string& error) {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    const std::string where = "interface " + o.interface + ": ";
    on_time_ = o.on_time;
    on_drops_ = o.on_drops;
    drops_every_ms_ = std::max(1, o.drops_every_ms);
    timeout_ms_ = o.timeout_ms;
    handle_ = pcap_create(o.interface.c_str(), errbuf);
    if (handle_ == nullptr) {
        error = where + errbuf;
        return false;
    }
    pcap_set_snaplen(handle_, o.snaplen);
    pcap_set_promisc(handle_, o.promiscuous ? 1 : 0);
    pcap_set_timeout(handle_, o.timeout_ms);
    pcap_set_immediate_mode(handle_, o.immediate ? 1 : 0);
    pcap_set_buffer_size(handle_, o.buffer_bytes);
    pcap_set_tstamp_precision(handle_, PCAP_TSTAMP_PRECISION_MICRO);
    const int rc = pcap_activate(handle_);
    if (rc < 0) {
        const char* detail = pcap_geterr(handle_);
        error = where + ((detail != nullptr && *detail != '\0') ? detail : pcap_statustostr(rc));
        if (rc == PCAP_ERROR_PERM_DENIED)
            error += " (capturing needs root or the CAP_NET_RAW capability)";
        pcap_close(handle_);
        handle_ = nullptr;
        return false;
    }
    linktype_ = pcap_datalink(handle_);
    if (!is_supported_linktype(linktype_)) {
        error = where + "unsupported link type " + std::to_string(linktype_);
        return false;
    }
    if (!o.filter.empty()) {
        bpf_program prog{};
        if (pcap_compile(handle_, &prog, o.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
            error = where + "bad capture filter '" + o.filter + "': " + pcap_geterr(handle_);
            return false;
        }
        const int src = pcap_setfilter(handle_, &prog);
        pcap_freecode(&prog);
        if (src != 0) {
            error = where + "cannot set filter: " + pcap_geterr(handle_);
            return false;
        }
    }
    // Between pcap_activate() and pcap_setfilter() the kernel took every packet on the link and
    // counted it; libpcap filters the ring blocks of that time in user space, so what the filter
    // refuses is never read. The counters start here, when the filter holds. (A packet of that
    // time that the filter lets through is read without being counted: frames may exceed
    // "captured" by the few that can arrive in those microseconds, never fall short of it.)
    pcap_stat base{};
    if (pcap_stats(handle_, &base) == 0) {
        base_[0] = base.ps_recv;
        base_[1] = base.ps_drop;
        base_[2] = base.ps_ifdrop;
    }
    return true;
}

bool LiveCapture::counters(LiveStats& out) const {
    pcap_stat ps{};
    if (pcap_stats(handle_, &ps) != 0) return false;
    // libpcap's counters are 32-bit and wrap; the differences are taken modulo 2^32.
    out.received = static_cast<std::uint32_t>(ps.ps_recv - base_[0]);
    out.dropped = static_cast<std::uint32_t>(ps.ps_drop - base_[1]);
    out.if_dropped = static_cast<std::uint32_t>(ps.ps_ifdrop - base_[2]);
    return true;
}

namespace {
std::int64_t monotonic_us() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000 + t.tv_nsec / 1000;
}
}  // namespace

void LiveCapture::check_drops(bool force) {
    if (!on_drops_) return;
    const std::int64_t now_us = monotonic_us();
    if (!force && now_us < next_drop_check_) return;
    next_drop_check_ = now_us + std::int64_t{drops_every_ms_} * 1000;
    LiveStats now;
    if (!counters(now)) return;
    now.frames = frames_.load();
    now.drop_reports = drop_reports_.load();
    if (now.dropped > reported_.dropped || now.if_dropped > reported_.if_dropped) {
        now.drop_reports = drop_reports_.fetch_add(1) + 1;
        on_drops_(now, reported_);
    }
    reported_ = now;
}

bool LiveCapture::run(StreamAssembler& assembler, std::string& error) {
    if (handle_ == nullptr) {
        error = "live capture not open";
        return false;
    }
    struct Ctx {
        StreamAssembler* a;
        int lt;
        std::atomic<std::uint64_t>* frames;
        Timestamp last;
        const std::function<void(Timestamp)>* on_time;
        std::int64_t next_time;
    } ctx{&assembler,  linktype_, &frames_,
          Timestamp{}, &on_time_, std::numeric_limits<std::int64_t>::min()};
    auto cb = [](u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
        auto* c = reinterpret_cast<Ctx*>(user);
        c->last = to_ts(*h);
        c->a->on_frame(c->lt, c->last, Bytes(bytes, h->caplen), c->frames->fetch_add(1) + 1);
        if (*c->on_time && c->last.micros >= c->next_time) {
            (*c->on_time)(c->last);
            c->next_time = c->last.micros + 1'000'000;
        }
    };
    next_drop_check_ = monotonic_us() + std::int64_t{drops_every_ms_} * 1000;
    while (!stop_.load()) {
        // One ring block (or, in immediate mode, what is there) per call.
        const int rc = pcap_dispatch(handle_, -1, cb, reinterpret_cast<u_char*>(&ctx));
        if (rc == PCAP_ERROR_BREAK) break;
        check_drops(false);
        if (rc == 0) {
            // A quiet read timeout: let the wall clock (what live timestamps are) age idle flows.
            timeval tv{};
            gettimeofday(&tv, nullptr);
            const Timestamp now{static_cast<std::int64_t>(tv.tv_sec) * 1'000'000 + tv.tv_usec};
            assembler.advance_time(now);
            if (on_time_) on_time_(Timestamp{now.micros - 1'000'000});
        }
        if (rc < 0) {
            error = std::string("capture failed: ") + pcap_geterr(handle_);
            assembler.finish(ctx.last);
            return false;
        }
    }
    // Stopped (Ctrl-C): the kernel may already hold packets that were not handed over yet - the
    // last replies of a connection that just ended. The counters are frozen here, at the stop,
    // and what the kernel had accepted by then is read, without blocking and within a bounded
    // time, so that it is not silently lost. A read that finds nothing is not the end (without
    // immediate mode a packet waits in a ring block until the block's timer expires), so the
    // loop waits for it, bounded, instead of giving up. Packets arriving after the stop may
    // still be read here; they are decoded but not counted as captured.
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    if (LiveStats frozen; counters(frozen)) {
        if (on_drops_ &&
            (frozen.dropped > reported_.dropped || frozen.if_dropped > reported_.if_dropped)) {
            frozen.frames = frames_.load();
            frozen.drop_reports = drop_reports_.fetch_add(1) + 1;
            on_drops_(frozen, reported_);
            reported_ = frozen;
        }
        frozen.drop_reports = drop_reports_.load();
        {
            const std::lock_guard<std::mutex> lock(stats_mutex_);
            frozen_ = frozen;
        }
        // On Linux ps_recv also counts the packets the kernel dropped.
        const std::uint64_t accepted =
            frozen.received >= frozen.dropped ? frozen.received - frozen.dropped : 0;
        if (pcap_setnonblock(handle_, 1, errbuf) == 0) {
            timeval start{}, now{};
            gettimeofday(&start, nullptr);
            const std::int64_t budget_us =
                std::max<std::int64_t>(1'000'000, std::int64_t{timeout_ms_} * 2'000);
            while (frames_.load() < accepted) {
                const int rc = pcap_dispatch(handle_, -1, cb, reinterpret_cast<u_char*>(&ctx));
                // The stop's pcap_breakloop() stays pending when it came while the loop above was
                // outside pcap_dispatch; the next read reports it (and clears it) before reading
                // anything, which is no reason to leave the accepted packets unread.
                if (rc < 0 && rc != PCAP_ERROR_BREAK) break;
                gettimeofday(&now, nullptr);
                if ((now.tv_sec - start.tv_sec) * 1'000'000 + (now.tv_usec - start.tv_usec) >
                    budget_us)
                    break;
                if (rc == 0) usleep(2'000);
            }
        }
    }
    assembler.finish(ctx.last);
    return true;
}

void LiveCapture::stop() {
    stop_.store(true);
    if (handle_ != nullptr) pcap_breakloop(handle_);
}

LiveStats LiveCapture::stats() const {
    LiveStats s;
    {
        const std::lock_guard<std::mutex> lock(stats_mutex_);
        if (frozen_) {
            s = *frozen_;
            s.frames = frames_.load();
            return s;
        }
    }
    s.frames = frames_.load();
    s.drop_reports = drop_reports_.load();
    if (handle_ != nullptr) {
        LiveStats now;
        if (counters(now)) {
            s.received = now.received;
            s.dropped = now.dropped;
            s.if_dropped = now.if_dropped;
        }
    }
    return s;
}

}  // namespace hopscope::captures
