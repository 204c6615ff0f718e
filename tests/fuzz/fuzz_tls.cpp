// Fuzzes the TLS metadata parser: the input as a record stream (through the framer and the
// handshake observer, both directions' logic is the same), and as bare hello bodies.
#include <cstdint>

#include "hopscope/tds/packet.hpp"
#include "hopscope/tls/tls.hpp"

namespace {

struct Split : hopscope::tds::FramerSink {
    hopscope::tls::HandshakeObserver* obs = nullptr;
    void on_unit(const hopscope::tds::FramedUnit& u) override {
        if (u.kind == hopscope::tds::FramedUnit::Kind::TlsRecord) obs->on_record(u.bytes);
    }
    void on_skipped(std::uint64_t, std::uint64_t) override {}
    void on_framing_error(std::uint64_t, const hopscope::DecodeError&) override {}
};

struct Sink : hopscope::tls::ObserverSink {
    void on_client_hello(const hopscope::tls::ClientHello& h) override { (void)h.max_version(); }
    void on_server_hello(const hopscope::tls::ServerHello& h) override {
        (void)hopscope::tls::version_name(h.version());
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const hopscope::Bytes in(data, size);
    Sink sink;
    hopscope::tls::HandshakeObserver obs(sink, 4096);
    Split split;
    split.obs = &obs;
    hopscope::tds::PacketFramer f(split, hopscope::Direction::ClientToServer, true);
    f.feed(in);
    f.finish();
    hopscope::tls::ClientHello ch;
    if (hopscope::tls::parse_client_hello(in, ch).ok()) (void)ch.max_version();
    hopscope::tls::ServerHello sh;
    if (hopscope::tls::parse_server_hello(in, sh).ok()) (void)sh.version();
    return 0;
}
