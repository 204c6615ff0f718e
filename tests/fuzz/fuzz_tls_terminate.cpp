// Fuzz target: the proxy's TLS terminator (proxy/src/tls_terminate.cpp) with hostile peers.
//
// Input: [mode] then chunks [flags][length][bytes]. Mode 0..2 first runs a real handshake through
// the terminator (TDS 7.x full, login-only, TDS 8.0 strict) with an OpenSSL client and server, so
// that the chunks reach the relay of an established connection; mode 3 starts from nothing.
// Chunk flags: bit 0 the side that sends it (client / upstream); bit 1 sealed as a TLS record
// of that side's real session (valid records of hostile TDS, or a close_notify or a
// renegotiation request when the chunk is empty); bit 2 wrapped in a PRELOGIN packet; bit 3
// split in two feeds. After a failure the terminator must keep refusing, and what it holds must
// stay within its bound.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "../unit/proxy/tls_ends.hpp"
#include "hopscope/proxy/tls_terminate.hpp"

using namespace hopscope;
using namespace hopscope::proxy;
using namespace hopscope::proxy::testing;

namespace {

const TlsContexts& contexts() {
    static std::unique_ptr<TlsContexts> c = [] {
        TlsOptions o;
        o.terminate = true;
        std::string err;
        auto made = TlsContexts::make(o, {"sqla.lab.test"}, err);
        if (!made) std::abort();
        return made;
    }();
    return *c;
}

void check_bound(const TlsTerminator& t) {
    // held input, queued plaintext and one partial unit per direction
    if (t.buffered() > 4 * TlsTerminator::kMaxHeld) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const int mode = data[0] % 4;
    Seen seen;
    TlsTerminator t(contexts(), "sqla.lab.test", seen);
    std::unique_ptr<End> client;
    std::unique_ptr<End> server;
    if (mode < 3) {
        const bool wrapped = mode < 2;
        client =
            std::make_unique<End>(false, wrapped, TLS1_3_VERSION, mode == 2 ? "tds/8.0" : nullptr);
        server = std::make_unique<End>(true, wrapped);
        Wire w{*client, *server, t};
        if (mode == 2)
            w.to_proxy_from_client(client->step());
        else
            connect(w, mode == 0 ? kOn : kOff, mode == 0 ? kOn : kOff);
        if (!w.ok || !client->done() || !server->done()) std::abort();  // the fixture broke
        t.to_client().clear();
        t.to_upstream().clear();
    }
    bool failed = false;
    std::size_t at = 1;
    while (at + 2 <= size) {
        const std::uint8_t flags = data[at];
        const std::size_t len = data[at + 1];
        at += 2;
        const std::size_t n = len < size - at ? len : size - at;
        Buf chunk(data + at, data + at + n);
        at += n;
        const bool from_client = (flags & 1) == 0;
        End* end = from_client ? client.get() : server.get();
        if ((flags & 2) && end) {
            if (chunk.empty()) {
                // a close_notify, or a renegotiation request (refused by the terminator)
                chunk = (flags & 16) ? end->close_notify() : end->renegotiate();
            } else {
                chunk = end->write(chunk);
            }
        }
        if (flags & 4) {
            const std::size_t k = chunk.size() + 8;
            Buf p = {
                0x12, 0x01, static_cast<std::uint8_t>(k >> 8), static_cast<std::uint8_t>(k), 0, 0,
                1,    0};
            p.insert(p.end(), chunk.begin(), chunk.end());
            chunk.swap(p);
        }
        const std::size_t cut = (flags & 8) ? chunk.size() / 2 : chunk.size();
        for (const Bytes part : {Bytes(chunk).first(cut), Bytes(chunk).subspan(cut)}) {
            if (part.empty()) continue;
            const bool ok = from_client ? t.from_client(part) : t.from_upstream(part);
            if (failed && ok) std::abort();              // a failed connection stays failed
            if (!ok && t.error().empty()) std::abort();  // every failure says why
            failed = failed || !ok;
            check_bound(t);
        }
        t.to_client().clear();
        t.to_upstream().clear();
    }
    if (!failed) {
        t.client_closed();
        t.upstream_closed();
    }
    return 0;
}
