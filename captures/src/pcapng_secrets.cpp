#include "hopscope/captures/pcapng_secrets.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace hopscope::captures {

namespace {

constexpr std::uint32_t kShb = 0x0A0D0D0A;
constexpr std::uint32_t kDsb = 0x0000000A;
constexpr std::uint32_t kByteOrder = 0x1A2B3C4D;
constexpr std::uint32_t kTlsKeyLog = 0x544c534b;  // "TLSK"

std::uint32_t load32(const std::uint8_t* p, bool swap) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

PcapngSecrets read_pcapng_secrets(const std::string& path, std::size_t max_bytes) {
    PcapngSecrets out;
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
    if (!f) return out;
    // Block headers are walked with fseeko over the bodies: stdio's buffer makes the small
    // blocks of a capture sequential reads.
    static constexpr std::size_t kBuffer = 1 << 20;
    std::setvbuf(f.get(), nullptr, _IOFBF, kBuffer);
    std::uint8_t head[12];
    bool swap = false;
    bool first = true;
    std::vector<std::uint8_t> body;
    for (;;) {
        if (std::fread(head, 1, 8, f.get()) != 8) break;
        std::uint32_t type;
        std::memcpy(&type, head, 4);
        if (type == kShb) {
            // A section header: its byte-order magic says how to read what follows.
            if (std::fread(head + 8, 1, 4, f.get()) != 4) break;
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
        const std::size_t consumed = type == kShb ? 12 : 8;
        if (type == kDsb && len >= 20) {
            std::uint8_t dsb[8];
            if (std::fread(dsb, 1, 8, f.get()) != 8) break;
            const std::uint32_t secrets_type = load32(dsb, swap);
            const std::uint32_t secrets_len = load32(dsb + 4, swap);
            if (secrets_len > len - 20) break;
            if (secrets_type == kTlsKeyLog) {
                if (out.keylog.size() + secrets_len > max_bytes) {
                    out.truncated = true;
                    break;
                }
                body.resize(secrets_len);
                if (std::fread(body.data(), 1, secrets_len, f.get()) != secrets_len) break;
                out.keylog.append(reinterpret_cast<const char*>(body.data()), secrets_len);
                if (!out.keylog.empty() && out.keylog.back() != '\n') out.keylog += '\n';
                ++out.blocks;
                if (fseeko(f.get(), static_cast<off_t>(len - 16 - secrets_len), SEEK_CUR) != 0)
                    break;
                continue;
            }
            if (fseeko(f.get(), static_cast<off_t>(len - 16), SEEK_CUR) != 0) break;
            continue;
        }
        if (fseeko(f.get(), static_cast<off_t>(len - consumed), SEEK_CUR) != 0) break;
    }
    return out;
}

}  // namespace hopscope::captures
