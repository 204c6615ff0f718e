// StreamAssembler on hand-built packets: TCP state and sequence edge cases, the flow filter, and
// the memory bounds. Header layouts follow RFC 791 (IPv4), RFC 8200 (IPv6), RFC 9293 (TCP).
#include "capture_test_util.hpp"
#include "hopscope/captures/frame.hpp"
#include "packet_builder.hpp"

namespace hopscope::captures::testing {
namespace {

constexpr std::uint8_t SYN = 0x02, ACK = 0x10, FIN = 0x01, RST = 0x04, PSH = 0x08;

const Addr kC = Addr::v4(10, 0, 0, 1);
const Addr kS = Addr::v4(10, 0, 0, 2);

struct Harness {
    RecordingSink sink;
    StreamAssembler a;
    std::uint64_t frame = 0;
    std::int64_t t = 1'000'000;
    explicit Harness(AssemblerConfig cfg = {}) : a(sink, std::move(cfg)) {}
    void ip(const Buf& p, std::int64_t advance_us = 1) {
        t += advance_us;
        a.on_ip(Timestamp{t}, Bytes(p.data(), p.size()), ++frame);
    }
    void done() { a.finish(Timestamp{t}); }
};

TEST(Assembler, HandshakeDataFinGivesOneClosedConnection) {
    Harness h;
    h.ip(tcp4(kC, 50000, kS, 1433, 100, 0, SYN));
    h.ip(tcp4(kS, 1433, kC, 50000, 900, 101, SYN | ACK));
    h.ip(tcp4(kC, 50000, kS, 1433, 101, 901, ACK));
    h.ip(tcp4(kC, 50000, kS, 1433, 101, 901, ACK | PSH, text("hello ")));
    h.ip(tcp4(kS, 1433, kC, 50000, 901, 107, ACK | PSH, text("world")));
    h.ip(tcp4(kC, 50000, kS, 1433, 107, 906, ACK | FIN));
    h.ip(tcp4(kS, 1433, kC, 50000, 906, 108, ACK | FIN));
    h.ip(tcp4(kC, 50000, kS, 1433, 108, 907, ACK));
    ASSERT_EQ(h.sink.conns.size(), 1u);
    const auto& c = h.sink.conns[0];
    EXPECT_TRUE(c.handshake);
    EXPECT_TRUE(c.closed);
    EXPECT_EQ(c.why, CloseReason::Fin);
    EXPECT_EQ(c.key.client.port, 50000);
    EXPECT_EQ(c.key.server.port, 1433);
    EXPECT_EQ(c.bytes[0], "hello ");
    EXPECT_EQ(c.bytes[1], "world");
    EXPECT_EQ(c.frames[0], std::vector<std::uint64_t>{4});
    EXPECT_EQ(c.frames[1], std::vector<std::uint64_t>{5});
    // The final ACK after close is swallowed, not a new connection.
    h.done();
    EXPECT_EQ(h.sink.conns.size(), 1u);
}

TEST(Assembler, SequenceNumbersWrapAround) {
    Harness h;
    const std::uint32_t isn = 0xFFFFFFF0u;
    h.ip(tcp4(kC, 50001, kS, 1433, isn, 0, SYN));
    // 40 bytes in 8-byte segments crossing 2^32, the last three out of order.
    const std::string data = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
    std::vector<int> order = {0, 1, 4, 3, 2};
    for (int i : order) {
        const std::uint32_t seq = isn + 1 + static_cast<std::uint32_t>(8 * i);
        h.ip(tcp4(kC, 50001, kS, 1433, seq, 1, ACK, text(data.substr(8 * i, 8))));
    }
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 1u);
    EXPECT_EQ(h.sink.conns[0].bytes[0], data);
    EXPECT_EQ(h.sink.conns[0].gaps[0], 0u);
    EXPECT_EQ(h.sink.conns[0].why, CloseReason::EndOfInput);
}

TEST(Assembler, RetransmissionAndOverlapFirstCopyWins) {
    Harness h;
    h.ip(tcp4(kC, 50002, kS, 1433, 0, 0, SYN));
    h.ip(tcp4(kC, 50002, kS, 1433, 1, 1, ACK, text("AAAA")));
    h.ip(tcp4(kC, 50002, kS, 1433, 9, 1, ACK, text("CCCC")));      // buffered, out of order
    h.ip(tcp4(kC, 50002, kS, 1433, 7, 1, ACK, text("xxYYYYzz")));  // overlaps the buffered CCCC
    h.ip(tcp4(kC, 50002, kS, 1433, 1, 1, ACK, text("bbbbBB")));    // retransmission + 2 new bytes
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 1u);
    // offsets: AAAA(0-3) BB(4-5) xx(6-7) CCCC(8-11) zz(12-13): delivered bytes never change and
    // the buffered CCCC is not overwritten by the later copy's "YYYY".
    EXPECT_EQ(h.sink.conns[0].bytes[0], "AAAABBxxCCCCzz");
    EXPECT_EQ(h.a.stats().retransmitted_bytes, 4u);
}

TEST(Assembler, PeerAckOfUnseenBytesDeclaresGap) {
    Harness h;
    h.ip(tcp4(kC, 50003, kS, 1433, 0, 0, SYN));
    h.ip(tcp4(kS, 1433, kC, 50003, 0, 1, SYN | ACK));
    h.ip(tcp4(kC, 50003, kS, 1433, 1, 1, ACK, text("one")));
    // bytes 4..9 ("-lost-") never captured
    h.ip(tcp4(kC, 50003, kS, 1433, 10, 1, ACK, text("two")));
    EXPECT_EQ(h.sink.conns[0].bytes[0], "one");   // still waiting for the hole
    h.ip(tcp4(kS, 1433, kC, 50003, 1, 13, ACK));  // the server has them all
    EXPECT_EQ(h.sink.conns[0].bytes[0], "onetwo");
    EXPECT_EQ(h.sink.conns[0].gaps[0], 6u);
}

TEST(Assembler, OutOfOrderBufferCapDeclaresGap) {
    AssemblerConfig cfg;
    cfg.max_buffered_per_direction = 64;
    Harness h(cfg);
    h.ip(tcp4(kC, 50004, kS, 1433, 0, 0, SYN));
    // Segment 1..10 lost; 100 bytes after it arrive in 10-byte segments.
    for (int i = 0; i < 10; ++i)
        h.ip(tcp4(kC, 50004, kS, 1433, 11 + 10 * i, 1, ACK,
                  Buf(10, static_cast<std::uint8_t>('a' + i))));
    ASSERT_EQ(h.sink.conns.size(), 1u);
    const auto& c = h.sink.conns[0];
    EXPECT_EQ(c.gaps[0], 10u) << "the hole is given up once the buffer holds more than 64 bytes";
    EXPECT_GE(c.bytes[0].size(), 60u);
    h.done();
    EXPECT_EQ(h.sink.conns[0].bytes[0].size(), 100u);
}

TEST(Assembler, BufferCapOverAllConnections) {
    AssemblerConfig cfg;
    cfg.max_buffered_total = 100;
    Harness h(cfg);
    // Three connections each hold 40 out-of-order bytes behind a lost first segment: the third
    // takes the total over 100, and that connection gives up its hole.
    for (std::uint16_t port = 1; port <= 3; ++port) {
        h.ip(tcp4(kC, port, kS, 1433, 0, 0, SYN));
        h.ip(tcp4(kC, port, kS, 1433, 11, 1, ACK, Buf(40, 'x')));
    }
    ASSERT_EQ(h.sink.conns.size(), 3u);
    EXPECT_EQ(h.sink.conns[0].gaps[0], 0u);
    EXPECT_EQ(h.sink.conns[1].gaps[0], 0u);
    EXPECT_EQ(h.sink.conns[2].gaps[0], 10u);
    EXPECT_EQ(h.sink.conns[2].bytes[0].size(), 40u);
    h.done();
    for (const auto& c : h.sink.conns)
        EXPECT_EQ(c.bytes[0].size(), 40u);
}

TEST(Assembler, SnaplenCutSegmentBecomesGap) {
    Harness h;
    h.ip(tcp4(kC, 50005, kS, 1433, 0, 0, SYN));
    Buf p = tcp4(kC, 50005, kS, 1433, 1, 1, ACK, text("0123456789"));
    p.resize(p.size() - 4);  // the capture kept 6 of 10 payload bytes; IP length still says 10
    h.ip(p);
    h.ip(tcp4(kC, 50005, kS, 1433, 11, 1, ACK, text("next")));
    h.done();
    EXPECT_EQ(h.sink.conns[0].bytes[0], "012345next");
    EXPECT_EQ(h.sink.conns[0].gaps[0], 4u);
}

TEST(Assembler, RstClosesAndSynReopens) {
    Harness h;
    h.ip(tcp4(kC, 50006, kS, 1433, 0, 0, SYN));
    h.ip(tcp4(kC, 50006, kS, 1433, 1, 1, ACK, text("x")));
    h.ip(tcp4(kS, 1433, kC, 50006, 1, 2, RST | ACK));
    h.ip(tcp4(kC, 50006, kS, 1433, 2, 1, ACK, text("late")));  // stray: ignored
    h.ip(tcp4(kC, 50006, kS, 1433, 5000, 0, SYN));             // port reuse: a new connection
    h.ip(tcp4(kC, 50006, kS, 1433, 5001, 1, ACK, text("y")));
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 2u);
    EXPECT_EQ(h.sink.conns[0].why, CloseReason::Rst);
    EXPECT_EQ(h.sink.conns[0].bytes[0], "x");
    EXPECT_EQ(h.sink.conns[1].bytes[0], "y");
}

// Found by fuzz_packet: a SYN+ACK after data must not restart the stream offsets.
TEST(Assembler, LateSynAckDoesNotRewindTheStream) {
    Harness h;
    h.ip(tcp4(kC, 50008, kS, 1433, 100, 1, ACK, text("first")));
    h.ip(tcp4(kC, 50008, kS, 1433, 500, 1, SYN | ACK));
    h.ip(tcp4(kC, 50008, kS, 1433, 105, 1, ACK, text("second")));
    h.ip(tcp4(kC, 50008, kS, 1433, 501, 1, ACK, text("stray")));  // far ahead: buffered, then gap
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 1u);  // the sink checks that offsets never go back
    EXPECT_EQ(h.sink.conns[0].bytes[0].substr(0, 11), "firstsecond");
}

TEST(Assembler, MidstreamClientIsOffTheServerPort) {
    Harness h;
    // The server speaks first in this capture; no handshake seen.
    h.ip(tcp4(kS, 1433, kC, 50007, 7000, 3000, ACK, text("resp")));
    h.ip(tcp4(kC, 50007, kS, 1433, 3000, 7004, ACK, text("req")));
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 1u);
    const auto& c = h.sink.conns[0];
    EXPECT_FALSE(c.handshake);
    EXPECT_EQ(c.key.client.port, 50007);
    EXPECT_EQ(c.bytes[0], "req");
    EXPECT_EQ(c.bytes[1], "resp");
}

TEST(Assembler, ThousandsOfConnectionsComingAndGoingStayOneConnectionEach) {
    // 4 000 connections in waves of 200 through a table of 300 entries: the closed ones are
    // evicted (removed from the flow table) while the next wave's are looked up and inserted,
    // over and over. A flow the table loses, or finds in another's place, would show as a second
    // connection (opened mid-stream) or as bytes in the wrong one.
    AssemblerConfig cfg;
    cfg.max_connections = 300;
    Harness h(cfg);
    constexpr int kWaves = 20, kPerWave = 200;
    auto client = [](int n) {
        return Addr::v4(10, 1, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n));
    };
    auto port = [](int n) { return static_cast<std::uint16_t>(40000 + n % 7); };
    for (int w = 0; w < kWaves; ++w) {
        const int first = w * kPerWave;
        for (int n = first; n < first + kPerWave; ++n)
            h.ip(tcp4(client(n), port(n), kS, 1433, 100, 0, SYN));
        for (int n = first + kPerWave - 1; n >= first; --n)
            h.ip(tcp4(client(n), port(n), kS, 1433, 101, 1, ACK | PSH,
                      text("c" + std::to_string(n))));
        for (int n = first; n < first + kPerWave; n += 2) {
            const auto end = static_cast<std::uint32_t>(101 + ("c" + std::to_string(n)).size());
            h.ip(tcp4(client(n), port(n), kS, 1433, end, 1, ACK | FIN));
            h.ip(tcp4(kS, 1433, client(n), port(n), 1, end + 1, ACK | FIN));
        }
        for (int n = first + 1; n < first + kPerWave; n += 2)
            h.ip(tcp4(kS, 1433, client(n), port(n), 1, 0, RST));
    }
    h.done();
    ASSERT_EQ(h.sink.conns.size(), static_cast<std::size_t>(kWaves * kPerWave));
    for (int n = 0; n < kWaves * kPerWave; ++n) {
        const auto& c = h.sink.conns[static_cast<std::size_t>(n)];
        ASSERT_EQ(c.key.client.addr, IpAddress::v4_from_bytes(client(n).bytes)) << n;
        EXPECT_TRUE(c.handshake) << n;
        EXPECT_EQ(c.bytes[0], "c" + std::to_string(n)) << n;
        EXPECT_EQ(c.why, n % 2 == 0 ? CloseReason::Fin : CloseReason::Rst) << n;
    }
    EXPECT_EQ(h.a.stats().evictions, 0u);  // only closed connections had to go
}

TEST(Assembler, AQuietConnectionOutlivesTheClosedOnesWhenTheTableIsFull) {
    // A pooled connection (a linked server's, say) quiet while hundreds of short connections
    // come and go through a table of 50 entries: the table keeps each closed connection for a
    // while to swallow its stray packets, and those must go before a connection still open
    // does, however long it has been quiet; its later bytes then continue it.
    AssemblerConfig cfg;
    cfg.max_connections = 50;
    Harness h(cfg);
    const Addr pool = Addr::v4(10, 0, 0, 9);
    h.ip(tcp4(pool, 40000, kS, 1433, 100, 0, SYN));
    h.ip(tcp4(kS, 1433, pool, 40000, 500, 101, SYN | ACK));
    h.ip(tcp4(pool, 40000, kS, 1433, 101, 501, ACK | PSH, text("login")));
    for (int n = 0; n < 400; ++n) {
        const auto c =
            Addr::v4(10, 2, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n));
        h.ip(tcp4(c, 50000, kS, 1433, 100, 0, SYN));
        h.ip(tcp4(c, 50000, kS, 1433, 101, 1, ACK | PSH, text("x")));
        h.ip(tcp4(c, 50000, kS, 1433, 102, 1, ACK | FIN));
        h.ip(tcp4(kS, 1433, c, 50000, 1, 103, ACK | FIN));
    }
    h.ip(tcp4(pool, 40000, kS, 1433, 106, 501, ACK | PSH, text(" later")));
    EXPECT_EQ(h.a.stats().evictions, 0u);
    EXPECT_EQ(h.a.open_flows(), 50u);
    // The finished connections kept still time out; the quiet one, used again, does not.
    const std::int64_t idle = cfg.idle_timeout_us;
    h.ip(tcp4(pool, 40000, kS, 1433, 112, 501, ACK | PSH, text("!")), idle * 2 / 3);
    EXPECT_EQ(h.a.open_flows(), 50u);
    h.a.advance_time(Timestamp{h.t + idle / 2});
    EXPECT_EQ(h.a.open_flows(), 1u);
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 401u);
    const auto& c = h.sink.conns[0];
    EXPECT_EQ(c.key.client.port, 40000);
    EXPECT_TRUE(c.handshake);
    EXPECT_EQ(c.bytes[0], "login later!");
    EXPECT_EQ(c.why, CloseReason::EndOfInput);
    for (std::size_t i = 1; i < h.sink.conns.size(); ++i)
        ASSERT_EQ(h.sink.conns[i].why, CloseReason::Fin) << i;
}

TEST(Assembler, AQuietConnectionOutlivesTheKdcExchangesOverUdp) {
    // The same with a busy KDC over UDP, each request from a new client port (a flow each):
    // the UDP flows go first when the table is full, their datagrams still reach the sink with
    // the client on the right side.
    AssemblerConfig cfg;
    cfg.max_connections = 50;
    Harness h(cfg);
    const Addr pool = Addr::v4(10, 0, 0, 9);
    const Addr kdc = Addr::v4(10, 0, 0, 88);
    h.ip(tcp4(pool, 40000, kS, 1433, 100, 0, SYN));
    h.ip(tcp4(kS, 1433, pool, 40000, 500, 101, SYN | ACK));
    h.ip(tcp4(pool, 40000, kS, 1433, 101, 501, ACK | PSH, text("login")));
    for (int n = 0; n < 400; ++n) {
        const auto port = static_cast<std::uint16_t>(50000 + n);
        h.ip(udp4_or_6(kC, port, kdc, 88, text("req" + std::to_string(n))));
        h.ip(udp4_or_6(kdc, 88, kC, port, text("rep" + std::to_string(n))));
    }
    h.ip(tcp4(pool, 40000, kS, 1433, 106, 501, ACK | PSH, text(" later")));
    EXPECT_EQ(h.a.stats().evictions, 0u);
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 1u);
    EXPECT_EQ(h.sink.conns[0].bytes[0], "login later");
    ASSERT_EQ(h.sink.datagrams.size(), 800u);
    for (std::size_t i = 0; i < h.sink.datagrams.size(); ++i) {
        const auto& d = h.sink.datagrams[i];
        ASSERT_EQ(d.key.server.port, 88) << i;
        ASSERT_EQ(d.dir, i % 2 == 0 ? Direction::ClientToServer : Direction::ServerToClient) << i;
    }
}

TEST(Assembler, ThousandsOfOpenFlowsKeepTheirOwnKeys) {
    // 3 000 TCP connections open at once (the flow table keeps its flows in chunks of 1 024,
    // made as it grows: these fill three) and 600 UDP exchanges with a KDC, over IPv4 and IPv6,
    // with IPv4 clients on both sides of the server's address (the table's key orders the two
    // addresses, so the client is the lower one for some flows and the higher for others).
    // Every event must carry its own flow's key, the client the side that opened it.
    Harness h;
    constexpr int kConns = 3000, kUdp = 600;
    auto client = [](int n) {
        if (n % 3 == 2) {
            Addr a = Addr::v6_last(static_cast<std::uint8_t>(n));
            a.bytes[14] = static_cast<std::uint8_t>(n >> 8);
            a.bytes[12] = 1;  // 2001:db8::100:<n>, apart from the servers' ::1 and ::2
            return a;
        }
        // 9.x.x.x below the server's 10.0.0.2, 11.x.x.x above it.
        return Addr::v4(n % 3 == 0 ? 9 : 11, 1, static_cast<std::uint8_t>(n >> 8),
                        static_cast<std::uint8_t>(n));
    };
    auto server = [&](int n) { return n % 3 == 2 ? Addr::v6_last(2) : kS; };
    auto ip = [](const Addr& a) {
        return a.v6 ? IpAddress::v6_from_bytes(a.bytes) : IpAddress::v4_from_bytes(a.bytes);
    };
    auto port = [](int n) { return static_cast<std::uint16_t>(40000 + n % 11); };
    for (int n = 0; n < kConns; ++n)
        h.ip(tcp4_or_6(client(n), port(n), server(n), 1433, 100, 0, SYN));
    for (int n = kConns - 1; n >= 0; --n)
        h.ip(tcp4_or_6(server(n), 1433, client(n), port(n), 900, 101, SYN | ACK));
    for (int n = 0; n < kConns; ++n)
        h.ip(tcp4_or_6(client(n), port(n), server(n), 1433, 101, 901, ACK | PSH,
                       text("c" + std::to_string(n))));
    for (int n = kConns - 1; n >= 0; --n)
        h.ip(tcp4_or_6(server(n), 1433, client(n), port(n), 901, 101, ACK | PSH,
                       text("s" + std::to_string(n))));
    // UDP to and from the KDC: the even exchanges seen from their request, the odd ones from
    // their answer only (the client is then the side that is not on port 88).
    for (int n = 0; n < kUdp; ++n) {
        const Addr c = client(n);
        const auto cp = static_cast<std::uint16_t>(50000 + n);
        const Addr kdc = n % 3 == 2 ? Addr::v6_last(1) : Addr::v4(10, 0, 0, 88);
        if (n % 2 == 0) h.ip(udp4_or_6(c, cp, kdc, 88, text("q" + std::to_string(n))));
        h.ip(udp4_or_6(kdc, 88, c, cp, text("a" + std::to_string(n))));
    }
    h.done();
    ASSERT_EQ(h.sink.conns.size(), static_cast<std::size_t>(kConns));
    for (int n = 0; n < kConns; ++n) {
        const auto& c = h.sink.conns[static_cast<std::size_t>(n)];
        ASSERT_EQ(c.key.client.addr, ip(client(n))) << n;
        ASSERT_EQ(c.key.server.addr, ip(server(n))) << n;
        EXPECT_EQ(c.key.client.port, port(n)) << n;
        EXPECT_EQ(c.key.server.port, 1433) << n;
        EXPECT_EQ(c.key.transport, Transport::Tcp) << n;
        EXPECT_EQ(c.bytes[0], "c" + std::to_string(n)) << n;
        EXPECT_EQ(c.bytes[1], "s" + std::to_string(n)) << n;
    }
    ASSERT_EQ(h.sink.datagrams.size(), static_cast<std::size_t>(kUdp + kUdp / 2));
    std::size_t i = 0;
    for (int n = 0; n < kUdp; ++n) {
        for (int m = n % 2 == 0 ? 0 : 1; m < 2; ++m, ++i) {
            const auto& d = h.sink.datagrams[i];
            SCOPED_TRACE(n);
            EXPECT_EQ(d.key.client.addr, ip(client(n)));
            EXPECT_EQ(d.key.server.addr,
                      ip(n % 3 == 2 ? Addr::v6_last(1) : Addr::v4(10, 0, 0, 88)));
            EXPECT_EQ(d.key.client.port, 50000 + n);
            EXPECT_EQ(d.key.server.port, 88);
            EXPECT_EQ(d.key.transport, Transport::Udp);
            EXPECT_EQ(d.dir, m == 0 ? Direction::ClientToServer : Direction::ServerToClient);
            EXPECT_EQ(d.payload, (m == 0 ? "q" : "a") + std::to_string(n));
        }
    }
}

TEST(Assembler, IdleTimeoutAndEviction) {
    AssemblerConfig cfg;
    cfg.max_connections = 2;
    cfg.idle_timeout_us = 60'000'000;
    Harness h(cfg);
    h.ip(tcp4(kC, 1, kS, 1433, 0, 0, SYN));
    h.ip(tcp4(kC, 2, kS, 1433, 0, 0, SYN));
    h.ip(tcp4(kC, 3, kS, 1433, 0, 0, SYN));  // table full: port 1 goes
    EXPECT_TRUE(h.sink.conns[0].closed);
    EXPECT_EQ(h.sink.conns[0].why, CloseReason::Timeout);
    EXPECT_FALSE(h.sink.conns[1].closed);
    EXPECT_EQ(h.a.stats().evictions, 1u);
    h.ip(tcp4(kC, 4, kS, 1433, 0, 0, SYN), 61'000'000);  // 61 s later: 2 and 3 time out
    EXPECT_TRUE(h.sink.conns[1].closed);
    EXPECT_TRUE(h.sink.conns[2].closed);
    EXPECT_EQ(h.a.stats().timeouts, 2u);
    EXPECT_LE(h.a.open_flows(), 2u);
}

TEST(Assembler, AdvanceTimeExpiresIdleConnectionsWithoutFrames) {
    AssemblerConfig cfg;
    cfg.idle_timeout_us = 60'000'000;
    Harness h(cfg);
    h.ip(tcp4(kC, 7, kS, 1433, 0, 0, SYN));
    h.a.advance_time(Timestamp{h.t + 30'000'000});
    EXPECT_FALSE(h.sink.conns[0].closed);
    h.a.advance_time(Timestamp{h.t - 5});  // behind the last frame: ignored
    EXPECT_FALSE(h.sink.conns[0].closed);
    h.a.advance_time(Timestamp{h.t + 61'000'000});
    EXPECT_TRUE(h.sink.conns[0].closed);
    EXPECT_EQ(h.sink.conns[0].why, CloseReason::Timeout);
}

TEST(Assembler, BoundedFlowTableUnderManyConnections) {
    AssemblerConfig cfg;
    cfg.max_connections = 100;
    Harness h(cfg);
    for (int i = 0; i < 5000; ++i) {
        const Addr c =
            Addr::v4(10, 1, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i));
        h.ip(tcp4(c, static_cast<std::uint16_t>(1024 + i), kS, 1433, 0, 0, SYN));
        h.ip(tcp4(c, static_cast<std::uint16_t>(1024 + i), kS, 1433, 1, 1, ACK, text("q")));
        EXPECT_LE(h.a.open_flows(), 100u);
    }
    h.done();
    EXPECT_EQ(h.sink.conns.size(), 5000u);
    for (const auto& c : h.sink.conns)
        EXPECT_EQ(c.bytes[0], "q");
}

// ---- flow filter
// ----------------------------------------------------------------------------------

// MS-TDS 2.2.6.5 PRELOGIN as sent by a client: header 12 01 <len> 00 00 01 00, VERSION token first.
Buf prelogin() {
    Buf b = {0x12, 0x01, 0x00, 0x2F, 0x00, 0x00, 0x01, 0x00,  // header, length 47
             0x00, 0x00, 0x1A, 0x00, 0x06,                    // VERSION at 26, 6 bytes
             0x01, 0x00, 0x20, 0x00, 0x01,                    // ENCRYPTION at 32, 1 byte
             0x02, 0x00, 0x21, 0x00, 0x01,                    // INSTOPT
             0x03, 0x00, 0x22, 0x00, 0x04,                    // THREADID
             0xFF,                                            // terminator
             0x08, 0x00, 0x07, 0xD7, 0x00, 0x00,              // version 8.0.2007
             0x02,                                            // ENCRYPT_NOT_SUP
             0x00,                                            // instance ""
             0x00, 0x00, 0x00, 0x00};
    b.resize(0x2F, 0);
    return b;
}

// RFC 8446 4.1.2 ClientHello with an RFC 7301 ALPN extension offering `alpn`.
Buf client_hello(const std::string& alpn) {
    Buf ext;
    be(ext, 16, 2);
    be(ext, alpn.size() + 3, 2);
    be(ext, alpn.size() + 1, 2);
    ext.push_back(static_cast<std::uint8_t>(alpn.size()));
    ext.insert(ext.end(), alpn.begin(), alpn.end());
    Buf body = {0x03, 0x03};
    body.resize(2 + 32, 0x11);  // random
    body.push_back(0);          // session id
    be(body, 2, 2);             // cipher suites
    be(body, 0x1301, 2);
    body.push_back(1);  // compression methods
    body.push_back(0);
    be(body, ext.size(), 2);
    body.insert(body.end(), ext.begin(), ext.end());
    Buf hs = {0x01};
    be(hs, body.size(), 3);
    hs.insert(hs.end(), body.begin(), body.end());
    Buf rec = {0x16, 0x03, 0x01};
    be(rec, hs.size(), 2);
    rec.insert(rec.end(), hs.begin(), hs.end());
    return rec;
}

TEST(FlowFilterHeuristic, RecognisesTdsStartsOnly) {
    const Buf p = prelogin();
    EXPECT_TRUE(looks_like_tds_client_start(Bytes(p.data(), p.size())));
    const Buf http = text("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_FALSE(looks_like_tds_client_start(Bytes(http.data(), http.size())));
    Buf bad_window = p;
    bad_window[7] = 1;
    EXPECT_FALSE(looks_like_tds_client_start(Bytes(bad_window.data(), bad_window.size())));
    Buf not_eom = p;
    not_eom[1] = 0x00;
    EXPECT_FALSE(looks_like_tds_client_start(Bytes(not_eom.data(), not_eom.size())));
    const Buf ch = client_hello("tds/8.0");
    EXPECT_TRUE(is_tls_client_hello_with_tds8_alpn(Bytes(ch.data(), ch.size())));
    const Buf h2 = client_hello("h2");
    EXPECT_FALSE(is_tls_client_hello_with_tds8_alpn(Bytes(h2.data(), h2.size())));
    for (std::size_t n = 0; n < ch.size(); ++n)  // every truncation is handled
        EXPECT_FALSE(is_tls_client_hello_with_tds8_alpn(Bytes(ch.data(), n)) && n < 60);
}

TEST(FlowFilterHeuristic, TdsOnOtherPortsIsFoundAndOthersDropped) {
    Harness h;  // default filter: TDS 1433 + heuristic, Kerberos 88
    h.ip(tcp4(kC, 40000, kS, 5000, 0, 0, SYN));
    h.ip(tcp4(kS, 5000, kC, 40000, 0, 1, SYN | ACK));
    h.ip(tcp4(kC, 40000, kS, 5000, 1, 1, ACK | PSH, prelogin()));
    h.ip(tcp4(kC, 40001, kS, 8080, 0, 0, SYN));
    h.ip(tcp4(kC, 40001, kS, 8080, 1, 1, ACK | PSH, text("GET / HTTP/1.1\r\n\r\n")));
    h.ip(tcp4(kC, 40002, kS, 9443, 0, 0, SYN));
    h.ip(tcp4(kC, 40002, kS, 9443, 1, 1, ACK | PSH, client_hello("tds/8.0")));
    h.ip(tcp4(kC, 40003, kS, 9444, 0, 0, SYN));
    h.ip(tcp4(kC, 40003, kS, 9444, 1, 1, ACK | PSH, client_hello("http/1.1")));
    h.ip(tcp4(kC, 40004, kS, 88, 0, 0, SYN));
    h.ip(ipv4(kC, kS, 17, concat(udp_header(40005, 88, 3), text("krb"))));
    h.ip(ipv4(kC, kS, 17, concat(udp_header(40006, 53, 3), text("dns"))));
    h.done();
    std::vector<std::uint16_t> ports;
    for (const auto& c : h.sink.conns)
        ports.push_back(c.key.server.port);
    EXPECT_EQ(ports, (std::vector<std::uint16_t>{5000, 9443, 88}));
    const Buf pl = prelogin();
    EXPECT_EQ(h.sink.conns[0].bytes[0], std::string(pl.begin(), pl.end()));
    ASSERT_EQ(h.sink.datagrams.size(), 1u);
    EXPECT_EQ(h.sink.datagrams[0].payload, "krb");
    EXPECT_EQ(h.sink.datagrams[0].key.server.port, 88);
}

TEST(FlowFilterHeuristic, ConfiguredPortsAndNoHeuristic) {
    AssemblerConfig cfg;
    cfg.filter.tds_ports = {14330};
    cfg.filter.tds_heuristic = false;
    Harness h(cfg);
    h.ip(tcp4(kC, 40000, kS, 5000, 1, 1, ACK | PSH, prelogin()));  // heuristic off: dropped
    h.ip(tcp4(kC, 40001, kS, 14330, 1, 1, ACK | PSH, text("anything")));
    h.ip(tcp4(kC, 40002, kS, 1433, 1, 1, ACK | PSH, prelogin()));  // 1433 not configured
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 1u);
    EXPECT_EQ(h.sink.conns[0].key.server.port, 14330);
}

// ---- IP layer
// -------------------------------------------------------------------------------------

TEST(IpLayer, Ipv6ExtensionHeadersAreSkipped) {
    // RFC 8200 4.3 hop-by-hop (8 bytes: next=60, len=0, PadN) then 4.6 destination options.
    Buf ext = {60, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0};
    const Buf seg = concat(tcp_header(40000, 1433, 1, 1, ACK | PSH), text("v6data"));
    const Buf p = ipv6(Addr::v6_last(1), Addr::v6_last(2), 0, ext, seg);
    IpPacket ip;
    ASSERT_EQ(parse_ip(Bytes(p.data(), p.size()), ip), FrameError::None);
    EXPECT_EQ(ip.protocol, 6);
    EXPECT_EQ(ip.payload.size(), seg.size());
    Harness h;
    h.ip(p);
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 1u);
    EXPECT_EQ(to_string(h.sink.conns[0].key.client), "[2001:db8::1]:40000");
    EXPECT_EQ(h.sink.conns[0].bytes[0], "v6data");
}

TEST(IpLayer, Ipv6FragmentsOfKerberosUdpAreReassembled) {
    std::string big(3000, 'k');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>('a' + i % 26);
    const Buf dgram = concat(udp_header(40000, 88, big.size()), text(big));
    Harness h;
    // RFC 8200 4.5 fragment header: next, reserved, offset<<3 | M, identification.
    const std::size_t cut = 1448;  // multiple of 8
    auto frag = [&](std::size_t off, std::size_t len, bool more) {
        Buf ext = {17, 0};
        be(ext, (off / 8) << 3 | (more ? 1 : 0), 2);
        be(ext, 0xABCD1234u, 4);
        return ipv6(Addr::v6_last(1), Addr::v6_last(2), 44, ext,
                    Buf(dgram.begin() + static_cast<std::ptrdiff_t>(off),
                        dgram.begin() + static_cast<std::ptrdiff_t>(off + len)));
    };
    h.ip(frag(2 * cut, dgram.size() - 2 * cut, false));  // last first
    h.ip(frag(0, cut, true));
    EXPECT_TRUE(h.sink.datagrams.empty());
    h.ip(frag(cut, cut, true));
    ASSERT_EQ(h.sink.datagrams.size(), 1u);
    EXPECT_EQ(h.sink.datagrams[0].payload, big);
    EXPECT_EQ(h.sink.datagrams[0].frame, 3u) << "the frame that completed the datagram";
    EXPECT_EQ(h.a.stats().defrag.reassembled, 1u);
}

TEST(IpLayer, FragmentLimitsDropDatagrams) {
    AssemblerConfig cfg;
    cfg.defrag.max_pending = 4;
    cfg.defrag.timeout_us = 10'000'000;
    Harness h(cfg);
    for (std::uint16_t id = 0; id < 100; ++id)  // first fragments only: never complete
        h.ip(ipv4(kC, kS, 17, concat(udp_header(1, 88, 16), Buf(16, 0)), id, 0x2000));
    EXPECT_EQ(h.a.stats().defrag.dropped, 96u);
    // Beyond 64 KiB: dropped, no crash.
    h.ip(ipv4(kC, kS, 17, Buf(64, 0), 500, static_cast<std::uint16_t>(0x2000 | 8190)));
    h.ip(ipv4(kC, kS, 17, Buf(64, 0), 500, 8190));
    EXPECT_TRUE(h.sink.datagrams.empty());
}

TEST(IpLayer, EthernetPaddingAndTsoZeroLength) {
    const Buf seg = tcp4(kC, 40000, kS, 1433, 1, 1, ACK | PSH, text("ab"));
    Buf padded = ether(seg);
    padded.resize(60, 0);  // minimum Ethernet frame: the padding is not payload
    Buf tso = seg;
    tso[2] = tso[3] = 0;  // total length 0, as written by TSO/LSO capture points
    Harness h;
    h.a.on_frame(dlt::Ethernet, Timestamp{1}, Bytes(padded.data(), padded.size()), 1);
    Buf tso2 = tcp4(kC, 40000, kS, 1433, 3, 1, ACK | PSH, text("cd"));
    tso2[2] = tso2[3] = 0;
    h.ip(tso2);
    h.done();
    ASSERT_EQ(h.sink.conns.size(), 1u);
    EXPECT_EQ(h.sink.conns[0].bytes[0], "abcd");
}

TEST(IpLayer, LinkLayersMplsPppoeAndUnknown) {
    const Buf ip = tcp4(kC, 40000, kS, 1433, 1, 1, ACK, text("z"));
    Bytes l3;
    // MPLS unicast, two labels, bottom-of-stack bit on the second (RFC 3032).
    Buf mpls = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x88, 0x47, 0, 1, 0, 64, 0, 2, 1, 64};
    mpls = concat(mpls, ip);
    EXPECT_EQ(strip_link(dlt::Ethernet, Bytes(mpls.data(), mpls.size()), l3), FrameError::None);
    EXPECT_EQ(l3.size(), ip.size());
    // PPPoE session (RFC 2516) carrying PPP protocol 0x0021 (IPv4).
    Buf pppoe = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x88, 0x64, 0x11, 0, 0, 1, 0, 0, 0x00, 0x21};
    pppoe = concat(pppoe, ip);
    EXPECT_EQ(strip_link(dlt::Ethernet, Bytes(pppoe.data(), pppoe.size()), l3), FrameError::None);
    EXPECT_EQ(l3.size(), ip.size());
    Buf arp = ether(Buf(28, 0), 0x0806);
    EXPECT_EQ(strip_link(dlt::Ethernet, Bytes(arp.data(), arp.size()), l3), FrameError::NotIp);
    EXPECT_EQ(strip_link(147, Bytes(ip.data(), ip.size()), l3), FrameError::UnsupportedLink);
    EXPECT_FALSE(is_supported_linktype(147));
    for (std::size_t n = 0; n < 14; ++n)
        EXPECT_NE(strip_link(dlt::Ethernet, Bytes(mpls.data(), n), l3), FrameError::None);
}

}  // namespace
}  // namespace hopscope::captures::testing
