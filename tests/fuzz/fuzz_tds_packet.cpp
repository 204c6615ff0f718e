// Fuzzes the TDS/TLS framer: any bytes, fed whole and in input-chosen chunks, in either direction,
// synced or not. The two runs must report exactly the same units (chunking invariance).
#include <cstdint>
#include <string>
#include <vector>

#include "hopscope/tds/packet.hpp"

namespace {

struct Log : hopscope::tds::FramerSink {
    std::string out;
    void on_unit(const hopscope::tds::FramedUnit& u) override {
        out += "u" + std::to_string(u.offset) + ":" + std::to_string(u.bytes.size()) + ";";
    }
    void on_skipped(std::uint64_t off, std::uint64_t n) override {
        out += "s" + std::to_string(off) + ":" + std::to_string(n) + ";";
    }
    void on_framing_error(std::uint64_t off, const hopscope::DecodeError& e) override {
        out += "e" + std::to_string(off) + ":" + std::to_string(static_cast<int>(e.code)) + ";";
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t mode = data[0];
    const hopscope::Bytes in(data + 1, size - 1);
    const auto dir =
        (mode & 1) ? hopscope::Direction::ServerToClient : hopscope::Direction::ClientToServer;
    const bool synced = (mode & 2) != 0;
    const std::size_t chunk = 1 + (mode >> 2);

    Log whole, pieces;
    hopscope::tds::PacketFramer a(whole, dir, synced);
    a.feed(in);
    a.finish();
    hopscope::tds::PacketFramer b(pieces, dir, synced);
    for (std::size_t i = 0; i < in.size(); i += chunk) {
        b.feed(in.subspan(i, std::min(chunk, in.size() - i)));
    }
    b.finish();
    if (whole.out != pieces.out) __builtin_trap();
    return 0;
}
