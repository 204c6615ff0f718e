// Fuzzes a whole Conversation. Input scheme (also used to make the seed corpus, see
// tests/data/tds/make_fuzz_seeds.py): a sequence of records
//   [ctl:1][len:2 big-endian][bytes:len]
// ctl bit 0: direction (0 client to server, 1 server to client); bit 1: a gap of `len` bytes
// instead of data; bit 2: feed the bytes one at a time. The first record's ctl bit 7 clears
// handshake_seen. Memory must stay under the documented bound at every step.
#include <cstdint>

#include "hopscope/session/conversation.hpp"

namespace {
struct Quiet : hopscope::session::ConversationCallbacks {
    void on_login(const hopscope::session::LoginRecord& r) override {
        (void)hopscope::session::to_string(r);
    }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Quiet cb;
    hopscope::session::Conversation::Options o;
    o.max_message = 64 * 1024;
    o.handshake_seen = !(size > 0 && (data[0] & 0x80));
    hopscope::session::Conversation conv(cb, o);
    std::size_t i = 0;
    std::uint64_t frame = 0;
    std::uint64_t off[2] = {0, 0};
    while (i + 3 <= size) {
        const std::uint8_t ctl = data[i];
        std::size_t len = (std::size_t{data[i + 1]} << 8) | data[i + 2];
        i += 3;
        const auto dir =
            (ctl & 1) ? hopscope::Direction::ServerToClient : hopscope::Direction::ClientToServer;
        const hopscope::Timestamp ts{static_cast<std::int64_t>(++frame)};
        if (ctl & 2) {
            conv.gap(dir, ts, len);
            off[ctl & 1] += len;
            continue;
        }
        len = std::min(len, size - i);
        const hopscope::Bytes chunk(data + i, len);
        if (ctl & 4) {
            for (std::size_t k = 0; k < len; ++k) {
                conv.feed(dir, ts, chunk.subspan(k, 1),
                          hopscope::Evidence{frame, off[ctl & 1] + k});
            }
        } else {
            conv.feed(dir, ts, chunk, hopscope::Evidence{frame, off[ctl & 1]});
        }
        off[ctl & 1] += len;
        i += len;
        // Per direction: a partial unit, a capped message, a partial TLS record, and for MARS
        // up to 16 sessions' partial packets plus one shared message budget.
        if (conv.buffered_bytes() >
            2 * (65551 + o.max_message + (5 + 18432) + 16 * 65535 + o.max_message)) {
            __builtin_trap();
        }
    }
    conv.close(hopscope::Timestamp{static_cast<std::int64_t>(frame + 1)});
    return 0;
}
