// The tap path without sockets: TapWriter (one connection's copies, TDS or not, drops and gaps,
// the end) -> Tap -> TapDispatcher (flows owned by their newest connection) -> a StreamSink.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "hopscope/proxy/tap.hpp"

namespace {

using namespace hopscope;
using namespace hopscope::proxy;

/// A PRELOGIN packet header and the start of its option list (VERSION at offset 6).
std::vector<std::uint8_t> prelogin(std::size_t size) {
    std::vector<std::uint8_t> p(size, 0xff);
    const std::uint8_t head[] = {0x12, 0x01, 0x00, static_cast<std::uint8_t>(size),
                                 0,    0,    0x01, 0x00,
                                 0x00, 0x00, 0x06, 0x00};
    std::copy(std::begin(head), std::end(head), p.begin());
    return p;
}

FlowKey flow(std::uint16_t port = 50000) {
    return {{IpAddress::v4_from(0x0a000001), port},
            {IpAddress::v4_from(0x0a000002), 1433},
            Transport::Tcp};
}

struct Recorded final : StreamSink {
    std::vector<std::string> calls;
    void on_open(const FlowKey& f, Timestamp, bool) override {
        calls.push_back("open " + std::to_string(f.client.port));
    }
    void on_data(const FlowKey& f, Direction d, Timestamp, Bytes data, Evidence ev) override {
        calls.push_back("data " + std::to_string(f.client.port) + " " +
                        std::to_string(static_cast<int>(d)) + " @" +
                        std::to_string(ev.stream_offset) + " " + std::to_string(data.size()));
    }
    void on_gap(const FlowKey& f, Direction d, Timestamp, std::uint64_t n) override {
        calls.push_back("gap " + std::to_string(f.client.port) + " " +
                        std::to_string(static_cast<int>(d)) + " " + std::to_string(n));
    }
    void on_close(const FlowKey& f, Timestamp, CloseReason why) override {
        calls.push_back("close " + std::to_string(f.client.port) + " " +
                        std::to_string(static_cast<int>(why)));
    }
    void on_datagram(const FlowKey&, Direction, Timestamp, Bytes, Evidence) override {
        calls.push_back("datagram");
    }
};

void dispatch_all(Tap& tap, TapDispatcher& d) {
    std::vector<TapItem> batch;
    tap.drain(batch, std::chrono::milliseconds(0));
    for (auto& item : batch)
        d.dispatch(item);
}

constexpr std::uint64_t kNoOffsets[2] = {0, 0};

TEST(TapWriter, GathersTheFirstClientBytesUntilItCanTellTds) {
    Tap tap(1 << 20);
    Recorded sink;
    TapDispatcher d(&sink, nullptr, false);
    TapWriter w(tap, 1);
    w.connected(flow(), {}, false);
    const auto p = prelogin(40);
    EXPECT_FALSE(w.data(Direction::ClientToServer, Timestamp{1}, p.data(), 3, 0).opened);
    EXPECT_EQ(w.state(), TapWriter::State::Undecided);
    const auto r = w.data(Direction::ClientToServer, Timestamp{2}, p.data() + 3, 37, 3);
    EXPECT_TRUE(r.opened);
    EXPECT_EQ(w.state(), TapWriter::State::On);
    w.data(Direction::ServerToClient, Timestamp{3}, p.data(), 10, 0);
    const std::uint64_t end[2] = {40, 10};
    w.close(Timestamp{4}, CloseReason::Fin, end, kNoOffsets);
    dispatch_all(tap, d);
    EXPECT_EQ(sink.calls,
              (std::vector<std::string>{"open 50000", "data 50000 0 @0 3", "data 50000 0 @3 37",
                                        "data 50000 1 @0 10", "close 50000 0"}));
    EXPECT_EQ(d.open_connections(), 0u);
}

TEST(TapWriter, AServerThatSpeaksFirstOrOtherBytesAreNotTds) {
    Tap tap(1 << 20);
    const auto p = prelogin(40);
    TapWriter a(tap, 1);
    EXPECT_TRUE(a.data(Direction::ServerToClient, Timestamp{1}, p.data(), 40, 0).not_tds);
    EXPECT_EQ(a.state(), TapWriter::State::Off);
    const std::uint8_t http[] = "GET / HTTP/1.1\r\n";
    TapWriter b(tap, 2);
    EXPECT_TRUE(b.data(Direction::ClientToServer, Timestamp{1}, http, 16, 0).not_tds);
    a.close(Timestamp{2}, CloseReason::Fin, kNoOffsets, kNoOffsets);
    b.close(Timestamp{2}, CloseReason::Fin, kNoOffsets, kNoOffsets);
    std::vector<TapItem> batch;
    tap.drain(batch, std::chrono::milliseconds(0));
    EXPECT_TRUE(batch.empty());
}

TEST(TapWriter, WhatTheQueueCannotTakeIsAGapBeforeTheNextChunkAndAtTheEnd) {
    Tap tap(4096);
    Recorded sink;
    TapDispatcher d(&sink, nullptr, false);
    TapWriter w(tap, 1);
    w.connected(flow(), {}, false);
    const auto p = prelogin(200);
    std::vector<std::uint8_t> big(4000, 0);
    EXPECT_TRUE(w.data(Direction::ClientToServer, Timestamp{1}, p.data(), 200, 0).opened);
    EXPECT_EQ(w.data(Direction::ServerToClient, Timestamp{2}, big.data(), 3000, 0).dropped_bytes,
              0u);
    const auto r1 = w.data(Direction::ServerToClient, Timestamp{3}, big.data(), 1000, 3000);
    EXPECT_TRUE(r1.gap_started);
    EXPECT_EQ(r1.dropped_bytes, 1000u);
    const auto r2 = w.data(Direction::ServerToClient, Timestamp{4}, big.data(), 1000, 4000);
    EXPECT_FALSE(r2.gap_started);  // the same gap goes on
    EXPECT_EQ(r2.dropped_bytes, 1000u);
    dispatch_all(tap, d);
    w.data(Direction::ServerToClient, Timestamp{5}, big.data(), 100, 5000);
    EXPECT_EQ(w.data(Direction::ClientToServer, Timestamp{6}, big.data(), 4000, 200).dropped_bytes,
              4000u);
    const std::uint64_t end[2] = {4200, 5100};
    w.close(Timestamp{7}, CloseReason::Rst, end, kNoOffsets);
    dispatch_all(tap, d);
    EXPECT_EQ(sink.calls,
              (std::vector<std::string>{"open 50000", "data 50000 0 @0 200", "data 50000 1 @0 3000",
                                        "gap 50000 1 2000", "data 50000 1 @5000 100",
                                        "gap 50000 0 4000", "close 50000 1"}));
    EXPECT_EQ(tap.stats().queued_bytes, 0u);
}

TEST(TapDispatcher, ANewConnectionOnTheSameFlowClosesTheOlderOneWhoseLateItemsAreDropped) {
    Tap tap(1 << 20);
    Recorded sink;
    TapDispatcher d(&sink, nullptr, false);
    const auto p = prelogin(40);
    TapWriter older(tap, 1);
    TapWriter newer(tap, 2);
    older.connected(flow(), {}, false);
    newer.connected(flow(), {}, false);
    older.data(Direction::ClientToServer, Timestamp{1}, p.data(), 40, 0);
    newer.data(Direction::ClientToServer, Timestamp{2}, p.data(), 40, 0);
    older.data(Direction::ServerToClient, Timestamp{3}, p.data(), 20, 0);  // late
    older.close(Timestamp{4}, CloseReason::Fin, kNoOffsets, kNoOffsets);
    newer.close(Timestamp{5}, CloseReason::Timeout, kNoOffsets, kNoOffsets);
    dispatch_all(tap, d);
    EXPECT_EQ(sink.calls,
              (std::vector<std::string>{"open 50000", "data 50000 0 @0 40", "close 50000 0",
                                        "open 50000", "data 50000 0 @0 40", "close 50000 2"}));
    EXPECT_EQ(d.open_connections(), 0u);
}

}  // namespace

namespace {

TEST(CopyArena, PacksSmallCopiesIntoBlocksThatGoBackWhenTheLastCopyIsDone) {
    BlockPool pool(4096, 4, true);
    Tap tap(1 << 20);
    std::vector<std::vector<std::uint8_t>> sent;
    std::set<Block*> used;
    {
        CopyArena arena(pool);
        EXPECT_TRUE(arena.fits(1024));
        EXPECT_FALSE(arena.fits(1025));
        const Block* first = nullptr;
        for (int i = 0; i < 10; ++i) {  // 10 x 1000 bytes: three blocks of 4096 (16-byte steps)
            std::vector<std::uint8_t> chunk(1000, static_cast<std::uint8_t>(i + 1));
            const std::uint8_t* at = nullptr;
            Block* b = arena.copy(chunk.data(), chunk.size(), at);
            if (i == 0) first = b;
            used.insert(b);
            EXPECT_EQ(b == first, i < 4) << "chunk " << i;
            EXPECT_EQ(reinterpret_cast<std::uintptr_t>(at) % 16, 0u);
            EXPECT_GE(at, b->data());
            EXPECT_LE(at + chunk.size(), b->data() + pool.size());
            ASSERT_TRUE(tap.push_data(1, flow(), Direction::ClientToServer, Timestamp{}, 1000u * i,
                                      0, at, chunk.size(), b));
            sent.push_back(chunk);
        }
    }  // the arena lets go of its block; the queued items still hold theirs
    const TapStats st = tap.stats();
    EXPECT_EQ(st.queued_bytes, 10000u) << "each copy costs its own size";
    EXPECT_EQ(st.shared_chunks, 0u) << "copies, not forwarding buffers";
    std::vector<TapItem> batch;
    ASSERT_TRUE(tap.drain(batch, std::chrono::milliseconds(0)));
    ASSERT_EQ(batch.size(), sent.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const Bytes v = batch[i].bytes.view();
        EXPECT_TRUE(std::equal(v.begin(), v.end(), sent[i].begin(), sent[i].end())) << i;
        EXPECT_EQ(batch[i].bytes.charge(), 1000u);
    }
    ASSERT_EQ(used.size(), 3u);
    // Nothing holds the three blocks once the items are gone: they are back in the pool, and
    // handed out again before any new one.
    batch.clear();
    std::vector<Block*> again;
    for (int i = 0; i < 3; ++i) {
        again.push_back(pool.get());
        EXPECT_EQ(again.back()->refs.load(), 1u);
        EXPECT_EQ(used.count(again.back()), 1u) << "a new block, not one of the arena's";
    }
    for (Block* b : again)
        BlockPool::unref(b);
}

}  // namespace
