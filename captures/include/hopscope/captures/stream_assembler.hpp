// Frames in, StreamSink events out: link/IP decoding, IP defragmentation, flow demultiplexing
// (FlowFilter), TCP reassembly per direction and UDP datagrams. Memory is bounded whatever the
// input.
//
// Conventions (see docs/captures.md):
// - Evidence.frame is the caller's frame number (1-based): for one file it is Wireshark's
//   frame.number; for several files merged by time it is the position in the merged order (what
//   Wireshark shows on the output of `mergecap -w out.pcap FILE...`).
// - Overlapping or retransmitted TCP bytes: the FIRST copy wins; bytes already handed on are never
//   handed on again, and a buffered out-of-order segment is never overwritten.
// - Missing bytes are reported with on_gap: when the peer acknowledges data that was never seen,
//   when the out-of-order buffer of a direction exceeds its cap, when a frame was cut by the
//   snaplen, and on close.
// - Client side: the SYN sender; without a SYN, the side not on a configured server port; for the
//   content heuristic, the sender of the recognised first payload; otherwise the higher port.
// - UDP: only on_datagram is called (no open/close); `flow.client` is the first sender.
#pragma once

#include <cstdint>
#include <memory>

#include "hopscope/captures/defrag.hpp"
#include "hopscope/captures/flow_filter.hpp"
#include "hopscope/common/stream_events.hpp"

namespace hopscope::captures {

struct AssemblerConfig {
    FlowFilter filter;
    std::size_t max_connections = 65536;  ///< flow table entries; the least recently used go first
    std::int64_t idle_timeout_us = 600'000'000;  ///< capture time without a packet -> Timeout
    std::size_t max_buffered_per_direction = 4u << 20;  ///< out-of-order bytes before a gap
    std::size_t max_segments_per_direction = 16384;     ///< out-of-order segments before a gap
    std::size_t max_buffered_total = 256u << 20;        ///< out-of-order bytes over all connections
    DefragLimits defrag;
    /// Flow sharding (analyze --threads): every assembler reads every frame, but follows only the
    /// TCP connections and UDP flows whose key hashes to `shard_index` of `shard_count`; the
    /// others are skipped before the flow table. Figures about frames (frames, not_ip, bad IP/TCP/
    /// UDP headers, other_l4, tcp_segments, udp_datagrams, IP defragmentation) are counted by
    /// shard 0 alone, the others by the shard that owns the flow: the shards' stats add up to
    /// one assembler's. IP fragments are reassembled by every shard (the owner is known once the
    /// ports are).
    unsigned shard_index = 0;
    unsigned shard_count = 1;
};

struct AssemblerStats {
    std::uint64_t frames = 0;
    std::uint64_t not_ip = 0;      ///< ARP, LLDP, ... (not errors)
    std::uint64_t bad_frames = 0;  ///< truncated or impossible headers
    std::uint64_t other_l4 = 0;    ///< ICMP and other protocols
    std::uint64_t tcp_segments = 0;
    std::uint64_t udp_datagrams = 0;
    std::uint64_t dropped_packets = 0;  ///< TCP/UDP packets of flows that were not handed on
    std::uint64_t connections = 0;      ///< TCP connections handed on (on_open calls)
    std::uint64_t udp_flows = 0;
    std::uint64_t retransmitted_bytes = 0;
    std::uint64_t out_of_order_segments = 0;
    std::uint64_t gaps = 0;
    std::uint64_t gap_bytes = 0;
    std::uint64_t timeouts = 0;   ///< connections closed by the idle timeout
    std::uint64_t evictions = 0;  ///< connections closed because the table was full
    DefragStats defrag;
    /// Adds another shard's figures (AssemblerConfig::shard_index).
    AssemblerStats& operator+=(const AssemblerStats& o);
};

class StreamAssembler {
  public:
    explicit StreamAssembler(StreamSink& sink, AssemblerConfig config = {});
    ~StreamAssembler();
    StreamAssembler(const StreamAssembler&) = delete;
    StreamAssembler& operator=(const StreamAssembler&) = delete;

    /// One captured frame of the given link type (a libpcap DLT value).
    void on_frame(int linktype, Timestamp ts, Bytes frame, std::uint64_t frame_no);
    /// One IP packet (for front-ends without a link layer).
    void on_ip(Timestamp ts, Bytes l3, std::uint64_t frame_no);
    /// Lets time pass without a frame (live capture on a quiet link): idle connections time out.
    void advance_time(Timestamp now);
    /// What on_frame does first with a frame of time `ts`: closes the connections idle for
    /// longer than the timeout (once per second of capture time). Called before on_frame with the
    /// same `ts`, it lets a front-end tell these closes from the frame's own events; on_frame
    /// then does not repeat it.
    void expire(Timestamp ts);
    /// Closes every open connection (CloseReason::EndOfInput), flushing buffered data with gaps.
    /// Connections closed together (here and by the idle timeout) are closed in FlowKey order,
    /// which does not depend on how the flows were sharded.
    void finish(Timestamp ts);

    [[nodiscard]] AssemblerStats stats() const;
    /// Timestamp of the latest frame seen (0 before any).
    [[nodiscard]] Timestamp last_timestamp() const;
    [[nodiscard]] std::size_t open_flows() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hopscope::captures
