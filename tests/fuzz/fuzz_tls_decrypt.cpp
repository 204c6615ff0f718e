// Fuzzes the decrypting TLS-in-TDS path of a Conversation: key log parsing, the TLS session state
// machine (hellos, ChangeCipherSpec, epochs, KeyUpdate, renegotiation) and record opening, and
// the TDS decoded from the plaintext. Input:
//   [keylog length:2 big-endian][NSS key log text][records as in fuzz_conversation]
// records: [ctl:1][len:2 big-endian][bytes:len]; ctl bit 0: direction (1 = server to client),
// bit 1: a gap of `len` bytes, bit 2: feed byte by byte, bit 3: hand the bytes over as plaintext
// (Conversation::feed_plaintext, the terminating front-end's path).
// The key source answers any client random with the key log's first session, so mutated hellos
// still reach the decryption. Seeds: real OpenSSL sessions in the three TDS modes, written by
// tests/unit/tls/tls_in_tds_test.cpp (HOPSCOPE_WRITE_FUZZ_SEEDS=tests/fuzz/corpus/tls_decrypt).
#include <cstdint>
#include <string_view>

#include "hopscope/session/conversation.hpp"
#include "hopscope/tls/keylog.hpp"

namespace {

struct Quiet : hopscope::session::ConversationCallbacks {
    void on_login(const hopscope::session::LoginRecord& r) override {
        (void)hopscope::session::to_string(r);
    }
};

struct AnySession : hopscope::tls::KeySource {
    hopscope::tls::KeyLog log;
    hopscope::tls::SessionSecrets first;
    bool have = false;
    const hopscope::tls::SessionSecrets* find(const hopscope::tls::Random& r) const override {
        if (const auto* s = log.find(r)) return s;
        return have ? &first : nullptr;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    std::size_t klen = (std::size_t{data[0]} << 8) | data[1];
    klen = std::min(klen, size - 2);
    AnySession keys;
    const std::string_view text(reinterpret_cast<const char*>(data + 2), klen);
    (void)keys.log.add_text(text);
    // The first session of the text (whatever its random) answers every lookup.
    hopscope::tls::KeyLog probe;
    for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t nl = text.find('\n', pos);
        const std::string_view line =
            text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        if (line.size() < 64 + 2) continue;
        const std::size_t sp = line.find(' ');
        if (sp == std::string_view::npos || line.size() < sp + 65) continue;
        hopscope::tls::Random r{};
        bool ok = true;
        for (std::size_t i = 0; i < 32 && ok; ++i) {
            auto hexv = [](char c) {
                return c >= '0' && c <= '9'   ? c - '0'
                       : c >= 'a' && c <= 'f' ? c - 'a' + 10
                       : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                              : -1;
            };
            const int hi = hexv(line[sp + 1 + 2 * i]);
            const int lo = hexv(line[sp + 2 + 2 * i]);
            ok = hi >= 0 && lo >= 0;
            r[i] = static_cast<std::uint8_t>((hi << 4) | (lo & 0xF));
        }
        if (const auto* s = ok ? keys.log.find(r) : nullptr) {
            keys.first = *s;
            keys.have = true;
            break;
        }
    }

    Quiet cb;
    hopscope::session::Conversation::Options o;
    o.max_message = 64 * 1024;
    o.tls_keys = &keys;
    hopscope::session::Conversation conv(cb, o);
    std::size_t i = 2 + klen;
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
        const hopscope::Evidence ev{frame, off[ctl & 1]};
        if (ctl & 8) {
            conv.feed_plaintext(dir, ts, chunk, ev);
        } else if (ctl & 4) {
            for (std::size_t k = 0; k < len; ++k) {
                conv.feed(dir, ts, chunk.subspan(k, 1),
                          hopscope::Evidence{frame, off[ctl & 1] + k});
            }
        } else {
            conv.feed(dir, ts, chunk, ev);
        }
        off[ctl & 1] += len;
        i += len;
        // As fuzz_conversation's bound, plus per direction one partial TDS unit of plaintext.
        if (conv.buffered_bytes() >
            2 * (65551 + o.max_message + (5 + 18432) + 16 * 65535 + o.max_message + 65551)) {
            __builtin_trap();
        }
    }
    conv.close(hopscope::Timestamp{static_cast<std::int64_t>(frame + 1)});
    return 0;
}
