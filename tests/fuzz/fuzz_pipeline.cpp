// Fuzzes the whole decoding pipeline behind the capture front-end: TDS conversations, SSPI
// classification, Kerberos framing and pairing, and the analyzer's correlation and rules.
//
// Input: records of [selector:1][length:2 BE][bytes]. Selector bits 0-1 pick one of four flows
// (0, 1: TDS between two clients and a middle server; 2: the middle server to a back end;
// 3: Kerberos over TCP), bit 2 the direction, bit 3 a gap instead of data, bit 4 closes the
// flow; a flow 3 record with bit 5 set is sent as a UDP datagram. Seeds are lab captures
// rewritten to this format by tests/fuzz/make_pipeline_seeds.py.
#include <cstddef>
#include <cstdint>

#include "hopscope/pipeline/pipeline.hpp"

namespace {

using namespace hopscope;

FlowKey flow(int i, bool udp) {
    const std::uint32_t c = 0x0a4d0002, a = 0x0a4d0003, b = 0x0a4d0004, kdc = 0x0a4d0001;
    switch (i) {
        case 0:
            return {{IpAddress::v4_from(c), 50000}, {IpAddress::v4_from(a), 1433}, Transport::Tcp};
        case 1:
            return {{IpAddress::v4_from(c), 50001}, {IpAddress::v4_from(a), 1433}, Transport::Tcp};
        case 2:
            return {{IpAddress::v4_from(a), 40000}, {IpAddress::v4_from(b), 1433}, Transport::Tcp};
        default:
            return {{IpAddress::v4_from(c), 51000},
                    {IpAddress::v4_from(kdc), 88},
                    udp ? Transport::Udp : Transport::Tcp};
    }
}

struct Sink : pipeline::EventSink {};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Sink sink;
    pipeline::Pipeline p(sink);
    std::int64_t t = 1'700'000'000'000'000;
    std::uint64_t frame = 0;
    std::size_t i = 0;
    while (i + 3 <= size) {
        const std::uint8_t sel = data[i];
        std::size_t len = (std::size_t{data[i + 1]} << 8) | data[i + 2];
        i += 3;
        if (len > size - i) len = size - i;
        const Bytes bytes(data + i, len);
        i += len;
        t += 1000;
        ++frame;
        const int f = sel & 3;
        const bool udp = f == 3 && (sel & 0x20);
        const FlowKey k = flow(f, udp);
        const Direction d = (sel & 4) ? Direction::ServerToClient : Direction::ClientToServer;
        if (sel & 0x10) {
            p.on_close(k, Timestamp{t}, CloseReason::Fin);
        } else if (udp) {
            p.on_datagram(k, d, Timestamp{t}, bytes, Evidence{frame, 0});
        } else if (sel & 8) {
            p.on_gap(k, d, Timestamp{t}, len + 1);
        } else {
            p.on_data(k, d, Timestamp{t}, bytes, Evidence{frame, 0});
        }
    }
    p.finish(Timestamp{t + 1});
    return 0;
}
