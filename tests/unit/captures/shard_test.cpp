// Flow sharding (AssemblerConfig::shard_index, analyze --threads): every public capture read by
// three sharded assemblers gives, all shards together, exactly the connections, bytes, gaps,
// closes and datagrams of one assembler, each flow in one shard only, and their figures add up
// to one assembler's. And connections closed together are closed in FlowKey order, whatever the
// order they were last used in.
#include <set>
#include <tuple>

#include "capture_test_util.hpp"
#include "hopscope/captures/stream_assembler.hpp"
#include "packet_builder.hpp"

namespace hopscope::captures::testing {
namespace {

constexpr unsigned kShards = 3;

using ConnRow = std::tuple<FlowKey, bool, bool, int, std::string, std::string, std::uint64_t,
                           std::uint64_t, std::vector<std::uint64_t>, std::vector<std::uint64_t>>;
using DatagramRow = std::tuple<std::uint64_t, FlowKey, int, std::string>;

void add_rows(const RecordingSink& s, std::multiset<ConnRow>& conns,
              std::multiset<DatagramRow>& datagrams) {
    for (const auto& c : s.conns)
        conns.emplace(c.key, c.handshake, c.closed, static_cast<int>(c.why), c.bytes[0], c.bytes[1],
                      c.gaps[0], c.gaps[1], c.frames[0], c.frames[1]);
    for (const auto& d : s.datagrams)
        datagrams.emplace(d.frame, d.key, static_cast<int>(d.dir), d.payload);
}

std::vector<std::uint64_t> figures(const AssemblerStats& s) {
    return {s.frames,
            s.not_ip,
            s.bad_frames,
            s.other_l4,
            s.tcp_segments,
            s.udp_datagrams,
            s.dropped_packets,
            s.connections,
            s.udp_flows,
            s.retransmitted_bytes,
            s.out_of_order_segments,
            s.gaps,
            s.gap_bytes,
            s.timeouts,
            s.evictions,
            s.defrag.fragments,
            s.defrag.reassembled,
            s.defrag.dropped};
}

class Sharded : public ::testing::TestWithParam<std::string> {};

TEST_P(Sharded, ShardsTogetherAreOneAssembler) {
    const std::string path = public_dir() + "/" + GetParam();
    RecordingSink one;
    StreamAssembler whole(one, accept_all_config());
    ASSERT_TRUE(read_captures({path}, whole).ok());
    std::multiset<ConnRow> want_conns, got_conns;
    std::multiset<DatagramRow> want_datagrams, got_datagrams;
    add_rows(one, want_conns, want_datagrams);

    AssemblerStats sum;
    std::set<FlowKey> seen;
    unsigned shards_used = 0;
    for (unsigned i = 0; i < kShards; ++i) {
        RecordingSink part;
        AssemblerConfig cfg = accept_all_config();
        cfg.shard_index = i;
        cfg.shard_count = kShards;
        StreamAssembler shard(part, cfg);
        const ReadResult r = read_captures({path}, shard);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(shard.last_timestamp(), whole.last_timestamp());
        sum += shard.stats();
        add_rows(part, got_conns, got_datagrams);
        std::set<FlowKey> mine;
        for (const auto& c : part.conns)
            mine.insert(c.key);
        for (const auto& d : part.datagrams)
            mine.insert(d.key);
        for (const auto& k : mine)
            EXPECT_TRUE(seen.insert(k).second) << "a flow in two shards: " << to_string(k.client);
        shards_used += mine.empty() ? 0 : 1;
    }
    EXPECT_EQ(got_conns, want_conns);
    EXPECT_EQ(got_datagrams, want_datagrams);
    EXPECT_EQ(figures(sum), figures(whole.stats()));
    if (seen.size() >= 8) {
        EXPECT_GE(shards_used, 2u) << "every flow in one shard";
    }
}

INSTANTIATE_TEST_SUITE_P(PublicCaptures, Sharded, ::testing::ValuesIn(public_captures()),
                         capture_test_name);

/// Records the order of the closes.
class CloseOrder : public StreamSink {
  public:
    void on_open(const FlowKey&, Timestamp, bool) override {}
    void on_data(const FlowKey&, Direction, Timestamp, Bytes, Evidence) override {}
    void on_gap(const FlowKey&, Direction, Timestamp, std::uint64_t) override {}
    void on_close(const FlowKey& f, Timestamp, CloseReason why) override {
        closed.emplace_back(f, why);
    }
    void on_datagram(const FlowKey&, Direction, Timestamp, Bytes, Evidence) override {}
    std::vector<std::pair<FlowKey, CloseReason>> closed;
};

/// The closes of connections opened by `packets` (sent in order, a microsecond apart) and then
/// ended all at once: at the end of input, or by the idle timeout.
std::vector<std::pair<FlowKey, CloseReason>> closed_together(const std::vector<Buf>& packets,
                                                             bool by_timeout) {
    CloseOrder sink;
    AssemblerConfig cfg;
    cfg.idle_timeout_us = 10'000'000;
    StreamAssembler a(sink, cfg);
    std::uint64_t frame = 0;
    std::int64_t t = 1'000'000;
    for (const Buf& p : packets)
        a.on_ip(Timestamp{++t}, Bytes(p.data(), p.size()), ++frame);
    if (by_timeout) {
        a.expire(Timestamp{t + 20'000'000});
    } else {
        a.finish(Timestamp{t});
    }
    return sink.closed;
}

TEST(ShardedCloses, TogetherInFlowKeyOrderNotInOrderOfUse) {
    // Five connections to port 1433, opened in one order of client ports and used again in
    // another: neither is FlowKey order, reversed or not.
    const std::uint16_t ports[] = {50005, 50001, 50004, 50002, 50003};
    const Addr c = Addr::v4(10, 0, 0, 1);
    const Addr s = Addr::v4(10, 0, 0, 2);
    constexpr std::uint8_t kSyn = 0x02, kAck = 0x10;
    std::vector<Buf> packets;
    for (const auto p : ports)
        packets.push_back(tcp4(c, p, s, 1433, 1000, 0, kSyn));
    for (int i = 4; i >= 0; --i)
        packets.push_back(tcp4(c, ports[i], s, 1433, 1001, 0, kAck));
    for (const bool by_timeout : {false, true}) {
        const auto closed = closed_together(packets, by_timeout);
        ASSERT_EQ(closed.size(), 5u) << by_timeout;
        for (std::size_t i = 1; i < closed.size(); ++i)
            EXPECT_LT(closed[i - 1].first, closed[i].first) << by_timeout;
        for (const auto& [f, why] : closed)
            EXPECT_EQ(why, by_timeout ? CloseReason::Timeout : CloseReason::EndOfInput);
    }
}

TEST(ShardedCloses, InFlowKeyOrderOnEveryFieldOfTheKey) {
    // Connections that differ in each field FlowKey orders by (client address bytes, then its
    // IPv6 flag, client port, server address, its flag, server port), opened in an order that is
    // none of them: the closes come in FlowKey order. Ports that differ in their high byte only
    // or low byte only, and IPv4 and IPv6 addresses of the same 16 bytes (10.0.0.1 and a00:1::).
    auto v6_of = [](const Addr& a) {
        Addr x = a;
        x.v6 = true;
        return x;
    };
    const Addr c1 = Addr::v4(10, 0, 0, 1), c2 = Addr::v4(9, 200, 0, 1), s1 = Addr::v4(10, 0, 0, 2),
               s2 = Addr::v4(10, 0, 0, 3);
    struct Conn {
        Addr c;
        std::uint16_t cp;
        Addr s;
        std::uint16_t sp;
    };
    const Conn conns[] = {
        {c1, 50001, s1, 1433},
        {c1, 50001, s2, 88},
        {c1, 511, s1, 1433},
        {c1, 768, s1, 88},
        {c2, 60000, s1, 1433},
        {c1, 50001, s1, 88},
        {v6_of(c1), 50001, v6_of(s1), 1433},
        {Addr::v6_last(1), 50001, Addr::v6_last(2), 1433},
        {c1, 50002, s1, 1433},
        {v6_of(c1), 511, v6_of(s2), 88},
    };
    constexpr std::uint8_t kSyn = 0x02;
    std::vector<Buf> syns;
    for (const Conn& k : conns)
        syns.push_back(k.c.v6 ? ipv6(k.c, k.s, 6, {}, tcp_header(k.cp, k.sp, 1000, 0, kSyn))
                              : tcp4(k.c, k.cp, k.s, k.sp, 1000, 0, kSyn));
    for (const bool by_timeout : {false, true}) {
        const auto closed = closed_together(syns, by_timeout);
        ASSERT_EQ(closed.size(), std::size(conns)) << by_timeout;
        for (std::size_t i = 1; i < closed.size(); ++i)
            EXPECT_LT(closed[i - 1].first, closed[i].first)
                << by_timeout << " " << to_string(closed[i - 1].first.client) << " "
                << to_string(closed[i].first.client);
    }
}

}  // namespace
}  // namespace hopscope::captures::testing
