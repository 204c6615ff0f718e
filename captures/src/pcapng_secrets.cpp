#include "hopscope/captures/pcapng_secrets.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

namespace hopscope::captures {

namespace {

constexpr std::uint32_t kShb = 0x0A0D0D0A;
constexpr std::uint32_t kDsb = 0x0000000A;
constexpr std::uint32_t kByteOrder = 0x1A2B3C4D;
constexpr std::uint32_t kTlsKeyLog = 0x544c534b;  // "TLSK"
constexpr std::uint16_t kOptComment = 1;
constexpr std::size_t kMaxComments = 16;

std::uint32_t load32(const std::uint8_t* p, bool swap) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

std::uint16_t load16(const std::uint8_t* p, bool swap) {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return swap ? __builtin_bswap16(v) : v;
}

/// Reads a file at given offsets through a 1 MiB window (pread): the block headers of a capture
/// are mostly a few hundred bytes apart, so one system call serves thousands of them. (Walking
/// them with fread and fseeko through stdio cost about 350 instructions per block: 0.35 s of CPU
/// per million packets, most of a second on a few GB.) The window is not cleared, and the first
/// read is short: every input of `analyze` is looked at here, most are classic pcap files whose
/// first 12 bytes end the search, and clearing and filling 1 MiB for them cost 256 page faults
/// of 4 KiB on each run (about 4 ms on the VM of docs/performance.md, "Starting").
class WindowedFile {
  public:
    explicit WindowedFile(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY)) {}
    ~WindowedFile() {
        if (fd_ >= 0) ::close(fd_);
    }
    WindowedFile(const WindowedFile&) = delete;
    WindowedFile& operator=(const WindowedFile&) = delete;
    [[nodiscard]] bool ok() const { return fd_ >= 0; }

    /// The n bytes at `off` (n <= the window), or nullptr past the end of the file or on an error.
    const std::uint8_t* at(std::uint64_t off, std::size_t n) {
        if (off < start_ || off + n > start_ + len_) {
            // Only the pages read into are touched (an allocation this large is fresh memory).
            if (!buf_) buf_ = std::make_unique_for_overwrite<std::uint8_t[]>(kWindow);
            const std::size_t want = std::max(n, std::exchange(read_size_, kWindow));
            std::size_t got = 0;
            while (got < want) {
                const ssize_t r =
                    ::pread(fd_, buf_.get() + got, want - got, static_cast<off_t>(off + got));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) break;
                got += static_cast<std::size_t>(r);
            }
            start_ = off;
            len_ = got;
            if (n > len_) return nullptr;
        }
        return buf_.get() + (off - start_);
    }
    /// Appends the n bytes at `off` to `out`; false if the file ends before.
    bool append(std::uint64_t off, std::size_t n, std::string& out) {
        while (n > 0) {
            const std::size_t k = std::min(n, kWindow);
            const std::uint8_t* p = at(off, k);
            if (p == nullptr) return false;
            out.append(reinterpret_cast<const char*>(p), k);
            off += k;
            n -= k;
        }
        return true;
    }

  private:
    static constexpr std::size_t kWindow = 1 << 20;
    static constexpr std::size_t kFirstRead = 64 << 10;
    int fd_;
    std::unique_ptr<std::uint8_t[]> buf_;
    std::size_t read_size_ = kFirstRead;  ///< of the next read: kWindow after the first
    std::uint64_t start_ = 0;
    std::size_t len_ = 0;
};

}  // namespace

PcapngSecrets read_pcapng_secrets(const std::string& path, std::size_t max_bytes) {
    PcapngSecrets out;
    WindowedFile f(path);
    if (!f.ok()) return out;
    bool swap = false;
    bool first = true;
    for (std::uint64_t off = 0;;) {
        const std::uint8_t* head = f.at(off, 12);
        if (head == nullptr) break;  // the end (a last block under 12 bytes is damage anyway)
        std::uint32_t type;
        std::memcpy(&type, head, 4);
        if (type == kShb) {
            // A section header: its byte-order magic says how to read what follows.
            std::uint32_t magic;
            std::memcpy(&magic, head + 8, 4);
            if (magic == kByteOrder)
                swap = false;
            else if (__builtin_bswap32(magic) == kByteOrder)
                swap = true;
            else
                break;
        } else if (first) {
            break;  // not pcapng
        }
        first = false;
        type = load32(head, swap);
        const std::uint32_t len = load32(head + 4, swap);
        if (len < 12 || len % 4 != 0) break;  // damaged: the packet reader says so
        if (type == kShb && len >= 28) {
            // The options after magic, version and section length (16 bytes), up to the
            // trailing length: code, length, value padded to 4 bytes.
            std::uint64_t at = off + 24;
            const std::uint64_t end = off + len - 4;
            while (at + 4 <= end) {
                const std::uint8_t* o = f.at(at, 4);
                if (o == nullptr) break;
                const std::uint16_t code = load16(o, swap);
                const std::uint16_t n = load16(o + 2, swap);
                if (code == 0 || at + 4 + n > end) break;  // opt_endofopt, or damaged
                if (code == kOptComment && out.section_comments.size() < kMaxComments) {
                    std::string text;
                    if (!f.append(at + 4, n, text)) break;
                    out.section_comments.push_back(std::move(text));
                }
                at += 4 + ((n + 3u) & ~3u);
            }
        }
        if (type == kDsb && len >= 20) {
            const std::uint8_t* dsb = f.at(off + 8, 8);
            if (dsb == nullptr) break;
            const std::uint32_t secrets_type = load32(dsb, swap);
            const std::uint32_t secrets_len = load32(dsb + 4, swap);
            if (secrets_len > len - 20) break;
            if (secrets_type == kTlsKeyLog) {
                if (out.keylog.size() + secrets_len > max_bytes) {
                    out.truncated = true;
                    break;
                }
                if (!f.append(off + 16, secrets_len, out.keylog)) break;
                if (!out.keylog.empty() && out.keylog.back() != '\n') out.keylog += '\n';
                ++out.blocks;
            }
        }
        off += len;
    }
    return out;
}

}  // namespace hopscope::captures
