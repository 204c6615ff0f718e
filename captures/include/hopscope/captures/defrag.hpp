// IPv4 / IPv6 fragment reassembly, bounded in every dimension.
//
// Limits: `max_datagram` bytes per datagram (a fragment reaching beyond it drops the datagram),
// `max_pending` datagrams in flight (the oldest is dropped to make room), and `timeout` of capture
// time (RFC 791 suggests 15 s; Linux uses 30 s). Overlapping fragments: the later copy wins.
// A fragment cut short by the snaplen makes its datagram unrecoverable; it is dropped.
#pragma once

#include <cstdint>
#include <vector>

#include "hopscope/captures/frame.hpp"
#include "hopscope/common/flow.hpp"

namespace hopscope::captures {

struct DefragLimits {
    std::size_t max_datagram = 65535;
    std::size_t max_pending = 256;
    std::int64_t timeout_us = 30'000'000;
};

struct DefragStats {
    std::uint64_t fragments = 0;
    std::uint64_t reassembled = 0;
    std::uint64_t dropped = 0;  ///< datagrams given up (timeout, over a limit, truncated piece)
};

class IpDefragmenter {
  public:
    explicit IpDefragmenter(DefragLimits limits = {}) : limits_(limits) {}

    /// Adds one fragment (`frag.fragment` must be true). When it completes its datagram, returns
    /// true and sets `datagram` to the upper-layer bytes, valid until the next call.
    bool add(const IpPacket& frag, Timestamp ts, Bytes& datagram);

    /// Drops datagrams older than the timeout.
    void expire(Timestamp now);

    [[nodiscard]] const DefragStats& stats() const { return stats_; }
    [[nodiscard]] std::size_t pending() const { return pending_.size(); }

  private:
    struct Pending {
        IpAddress src, dst;
        std::uint32_t id = 0;
        std::uint8_t protocol = 0;
        Timestamp first;
        std::uint32_t total = 0;  ///< known once the last fragment arrived (0 = unknown)
        bool have_last = false;
        std::vector<std::uint8_t> data;
        std::vector<std::pair<std::uint32_t, std::uint32_t>> ranges;  ///< [begin, end)
    };
    bool complete(Pending& p);

    DefragLimits limits_;
    DefragStats stats_;
    std::vector<Pending> pending_;
    std::vector<std::uint8_t> done_;
};

}  // namespace hopscope::captures
