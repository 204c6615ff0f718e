// The tap: what the forwarding threads hand to the one analysis thread.
//
// The analyzer needs one view of every connection (a chain C -> A -> B spans two connections,
// often on different I/O threads), and the decoder is single-threaded by design. So each I/O
// thread copies what it forwarded into one bounded queue, and a single analysis thread drains it
// in batches and feeds the pipeline. Producers never wait: past the byte budget a data chunk is
// dropped, the connection's direction remembers how much, and the next chunk that fits carries
// the gap, which the decoder resynchronises over. Control items (open, close) are never dropped;
// there are at most two per connection.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "hopscope/common/flow.hpp"
#include "hopscope/common/stream_events.hpp"

namespace hopscope::proxy {

struct TapItem {
    enum class Kind : std::uint8_t { Open, Data, Close };
    Kind kind = Kind::Data;
    std::uint64_t connection = 0;  ///< the proxy's connection number (logs, recorder)
    FlowKey flow;                  ///< client = the real client, server = the upstream
    Endpoint proxy_local;          ///< Open: the proxy's address on the upstream leg
    Direction dir = Direction::ClientToServer;
    Timestamp ts;
    std::uint64_t offset = 0;      ///< Data: stream offset of bytes[0] in `dir`
    std::uint64_t gap_before = 0;  ///< Data: bytes of `dir` dropped just before this chunk
    CloseReason why = CloseReason::Fin;
    std::vector<std::uint8_t> bytes;
};

struct TapStats {
    std::uint64_t queued_bytes = 0;  ///< now
    std::uint64_t peak_bytes = 0;
    std::uint64_t dropped_chunks = 0;
    std::uint64_t dropped_bytes = 0;
};

class Tap {
  public:
    explicit Tap(std::size_t budget_bytes) : budget_(budget_bytes) {}

    /// Producer side (any thread). False when the chunk did not fit: the caller adds its length
    /// to the direction's pending gap and passes the total with the next chunk.
    bool push_data(std::uint64_t connection, const FlowKey& flow, Direction dir, Timestamp ts,
                   std::uint64_t offset, std::uint64_t gap_before, const std::uint8_t* data,
                   std::size_t size);
    void push_control(TapItem item);

    /// Consumer side: moves every queued item into `out` (cleared first), waiting up to `wait`
    /// for the first one. With `nap`, the consumer has just had work and expects more: it waits
    /// the whole `wait` to take a batch, and producers wake it early only when the queue holds
    /// a quarter of its budget. That spares a wake-up (a system call and a context switch on a
    /// busy machine) per forwarded chunk. Returns false once close() was called and the queue
    /// is empty.
    template <typename Duration>
    bool drain(std::vector<TapItem>& out, Duration wait, bool nap = false) {
        out.clear();
        std::unique_lock lock(mu_);
        if (q_.empty() && !closed_) {
            mode_ = nap ? Mode::Napping : Mode::Sleeping;
            cv_.wait_for(lock, wait, [&] {
                return closed_ || (nap ? stats_.queued_bytes >= wake_bytes() : !q_.empty());
            });
            mode_ = Mode::Awake;
        }
        if (q_.empty()) return !closed_;
        std::uint64_t bytes = 0;
        for (auto& item : q_) {
            bytes += item.bytes.size();
            out.push_back(std::move(item));
        }
        q_.clear();
        // Producers reserve before they link an item in, so a reservation may still be pending.
        stats_.queued_bytes -= std::min(bytes, stats_.queued_bytes);
        return true;
    }

    /// No more items will come: wakes the consumer; drain() returns false once empty.
    void close();
    [[nodiscard]] TapStats stats() const;

  private:
    void notify_locked(std::unique_lock<std::mutex>& lock);

    const std::size_t budget_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<TapItem> q_;
    enum class Mode : std::uint8_t { Awake, Napping, Sleeping };
    [[nodiscard]] std::uint64_t wake_bytes() const { return budget_ / 4; }
    Mode mode_ = Mode::Awake;
    bool closed_ = false;
    TapStats stats_;
};

}  // namespace hopscope::proxy
