// TDS framing [MS-TDS 2.2.3.1]: packets, TLS records, resynchronisation. Real bytes come from
// tests/data/tds/*.segments (TCP payloads extracted with tshark, see the README there).
#include "hopscope/tds/packet.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tds_builders.hpp"

namespace hopscope::tds {
namespace {

using testing::Buf;

struct Recorder : FramerSink {
    std::vector<std::string> log;
    std::vector<PacketHeader> headers;
    void on_unit(const FramedUnit& u) override {
        if (u.kind == FramedUnit::Kind::TdsPacket) {
            headers.push_back(u.header);
            log.push_back(
                "tds@" + std::to_string(u.offset) + " type=" + std::to_string(u.header.type) +
                " len=" + std::to_string(u.bytes.size()) + (u.header.eom() ? " eom" : ""));
        } else {
            log.push_back("tls@" + std::to_string(u.offset) +
                          " len=" + std::to_string(u.bytes.size()));
        }
    }
    void on_skipped(std::uint64_t off, std::uint64_t n) override {
        log.push_back("skip@" + std::to_string(off) + " n=" + std::to_string(n));
    }
    void on_framing_error(std::uint64_t off, const DecodeError& e) override {
        log.push_back("error@" + std::to_string(off) + " " + to_string(e.code));
    }
};

Buf stream_of(const std::string& fixture, int stream, Direction dir) {
    Buf all;
    for (const auto& s : testing::load_segments(testing::data_path("tds/" + fixture))) {
        if (s.stream == stream && s.dir == dir) testing::append(all, s.bytes);
    }
    return all;
}

std::vector<std::string> frame(const Buf& b, bool synced, bool byte_at_a_time) {
    Recorder r;
    PacketFramer f(r, Direction::ClientToServer, synced);
    if (byte_at_a_time) {
        for (auto x : b)
            f.feed(Bytes(&x, 1));
    } else {
        f.feed(b);
    }
    f.finish();
    return r.log;
}

TEST(PacketHeader, ParsesBigEndianLengthAndStatus) {
    // First 8 bytes of frame 4 of tds7_sqlauth_login_prelogin_loginack_arkime.pcap (PRELOGIN):
    // tshark: Type 18, Status 0x01, Length 52, Channel 0, Packet Number 0, Window 0.
    const Buf b = testing::from_hex("1201003400000000");
    PacketHeader h;
    ASSERT_TRUE(parse_header(b, h).ok());
    EXPECT_EQ(h.type, 0x12);
    EXPECT_TRUE(h.eom());
    EXPECT_EQ(h.length, 52);
    EXPECT_EQ(h.packet_id, 0);
    EXPECT_TRUE(plausible_header(h, Direction::ClientToServer));
    EXPECT_TRUE(plausible_header(h, Direction::ServerToClient)) << "TLS-in-PRELOGIN from server";
    h.type = 0x04;
    EXPECT_FALSE(plausible_header(h, Direction::ClientToServer));
}

TEST(PacketHeader, LengthBelowHeaderIsATypedError) {
    const Buf b = testing::from_hex("0401000700000100");
    PacketHeader h;
    const DecodeResult r = parse_header(b, h);
    EXPECT_EQ(r.status(), DecodeStatus::Malformed);
    EXPECT_EQ(r.error().code, DecodeError::Code::BadLength);
    EXPECT_EQ(parse_header(Bytes(b.data(), 7), h).status(), DecodeStatus::NeedMore);
}

TEST(PacketFramer, SplitsTheRealLoginStream) {
    // Client side of the arkime SQL-auth login: PRELOGIN (52), LOGIN7 (234), SQL batch (238).
    const Buf c2s = stream_of("tds7_sqlauth_login_prelogin_loginack_arkime.segments", 0,
                              Direction::ClientToServer);
    const auto log = frame(c2s, true, false);
    const std::vector<std::string> want{"tds@0 type=18 len=52 eom", "tds@52 type=16 len=234 eom",
                                        "tds@286 type=1 len=238 eom"};
    EXPECT_EQ(log, want);
    EXPECT_EQ(frame(c2s, true, true), want) << "chunking must not change the units";
}

TEST(PacketFramer, AcceptsAnyLengthUpTo65535AndMultiPacketMessages) {
    Buf big(65535 - 8, 0x41);
    Buf b = testing::packet(0x01, 0x00, big, 1);
    testing::append(b, testing::packet(0x01, 0x01, Buf(3, 0x42), 2));
    const auto log = frame(b, true, false);
    ASSERT_EQ(log.size(), 2u);
    EXPECT_EQ(log[0], "tds@0 type=1 len=65535");
    EXPECT_EQ(log[1], "tds@65535 type=1 len=11 eom");
}

TEST(PacketFramer, ResyncsWhenTheCaptureStartsMidPacket) {
    // ndpi mid-session capture, connection 4 (client port 5555): SQL batch (190 bytes), then
    // RPCs of 253, 233, 61, 109, 45, 103 bytes. Cut the first 5 bytes: the framer must skip the
    // rest of the batch (185 bytes) and find the RPC at offset 190.
    Buf c2s = stream_of("tds_sqlbatch_rpc_responses_midstream_ndpi.segments", 4,
                        Direction::ClientToServer);
    ASSERT_EQ(c2s.size(), 190u + 253 + 233 + 61 + 109 + 45 + 103);
    Buf cut(c2s.begin() + 5, c2s.end());
    for (bool bytewise : {false, true}) {
        const auto log = frame(cut, false, bytewise);
        ASSERT_GE(log.size(), 2u);
        EXPECT_EQ(log[0], "skip@0 n=185");
        EXPECT_EQ(log[1], "tds@185 type=3 len=253 eom");
        EXPECT_EQ(log.back(), "tds@" + std::to_string(cut.size() - 103) + " type=3 len=103 eom");
        EXPECT_EQ(log.size(), 7u);
    }
}

TEST(PacketFramer, GarbageBetweenPacketsIsSkippedAndReported) {
    Buf b = testing::packet(0x01, 0x01, testing::ucs2("select 1"));
    const std::size_t first = b.size();
    testing::append(b, Buf{0xde, 0xad, 0xbe, 0xef, 0x00, 0x99});
    testing::append(b, testing::packet(0x01, 0x01, testing::ucs2("select 2")));
    const auto log = frame(b, true, false);
    ASSERT_EQ(log.size(), 4u);
    EXPECT_EQ(log[1], "error@" + std::to_string(first) + " desync");
    EXPECT_EQ(log[2], "skip@" + std::to_string(first) + " n=6");
    EXPECT_EQ(log, frame(b, true, true));
}

TEST(PacketFramer, GapDropsThePartialPacketAndResyncs) {
    Recorder r;
    PacketFramer f(r, Direction::ClientToServer, true);
    const Buf p1 = testing::packet(0x01, 0x01, testing::ucs2("select 1"));
    f.feed(Bytes(p1.data(), 10));
    f.gap(100);
    const Buf p2 = testing::packet(0x03, 0x01, Buf(20, 0));
    f.feed(p2);
    f.finish();
    ASSERT_EQ(r.log.size(), 2u);
    EXPECT_EQ(r.log[0], "skip@0 n=10");
    EXPECT_EQ(r.log[1], "tds@110 type=3 len=28 eom");
}

TEST(PacketFramer, SeparatesTlsRecordsFromTdsPackets) {
    // A raw TLS application-data record (login-only mode: the encrypted first LOGIN7 packet),
    // then a clear SSPI packet.
    Buf b = testing::from_hex("1703030010");
    testing::append(b, Buf(16, 0x55));
    testing::append(b, testing::packet(0x11, 0x01, Buf(4, 1)));
    const auto log = frame(b, true, false);
    const std::vector<std::string> want{"tls@0 len=21", "tds@21 type=17 len=12 eom"};
    EXPECT_EQ(log, want);
}

TEST(PacketFramer, TruncatedStreamEndIsReported) {
    const Buf p = testing::packet(0x01, 0x01, Buf(30, 0));
    const auto log = frame(Buf(p.begin(), p.begin() + 20), true, false);
    const std::vector<std::string> want{"error@0 truncated", "skip@0 n=20"};
    EXPECT_EQ(log, want);
}

TEST(PacketFramer, MarsSmpPacketsAreUnits) {
    // MC-SMP 2.2.1 / 4.3: SYN (16 bytes), then DATA SID 5 LENGTH 0x60 carrying a TDS packet.
    Buf b = testing::from_hex("53 01 05 00 10 00 00 00 00 00 00 00 04 00 00 00");
    Buf data = testing::from_hex("53 08 05 00 60 00 00 00 01 00 00 00 04 00 00 00");
    testing::append(data, testing::packet(0x01, 0x01, Buf(72, 0)));
    testing::append(b, data);
    const std::vector<std::string> want{"smp@0 len=16", "smp@16 len=96"};
    struct SmpLog : Recorder {
        void on_unit(const FramedUnit& u) override {
            if (u.kind == FramedUnit::Kind::Smp) {
                log.push_back("smp@" + std::to_string(u.offset) +
                              " len=" + std::to_string(u.bytes.size()));
            } else {
                Recorder::on_unit(u);
            }
        }
    };
    for (bool synced : {true, false}) {
        SmpLog r;
        PacketFramer f(r, Direction::ClientToServer, synced);
        f.feed(b);
        f.finish();
        EXPECT_EQ(r.log, want);
    }
    SmpHeader h;
    ASSERT_TRUE(parse_smp_header(data, h).ok());
    EXPECT_EQ(h.flags, smp::kData);
    EXPECT_EQ(h.sid, 5);
    EXPECT_EQ(h.length, 0x60u);
    EXPECT_EQ(h.window, 4u);
    data[4] = 0x0F;  // LENGTH below the header
    EXPECT_EQ(parse_smp_header(data, h).error().code, DecodeError::Code::BadValue);
    data[4] = 0x60;
    data[1] = 0x09;  // two flags
    EXPECT_FALSE(parse_smp_header(data, h).ok());
    EXPECT_EQ(parse_smp_header(Bytes(data.data(), 15), h).status(), DecodeStatus::NeedMore);
}

}  // namespace
}  // namespace hopscope::tds
