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
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hopscope/common/flow.hpp"
#include "hopscope/common/stream_events.hpp"

namespace hopscope::proxy {

class BlockPool;
class Recorder;

/// A forwarding buffer that an I/O thread and the analysis thread can hold at once: the I/O
/// thread writes its bytes to the other side while the analysis thread decodes them, so large
/// chunks reach the tap without a copy (copying each chunk into a fresh allocation freed on
/// another thread cost the forwarding thread a fifth of its time in memmove and page faults,
/// by perf, on large result sets). Hand-written because the pool is per size and the count is
/// the only shared state: no library type gives both without an allocation per chunk.
struct Block {
    std::atomic<std::uint32_t> refs{1};
    BlockPool* pool = nullptr;
    std::uint8_t* data() { return reinterpret_cast<std::uint8_t*>(this) + kHeader; }
    static constexpr std::size_t kHeader = 64;  ///< keeps data() cache-line aligned
};
static_assert(sizeof(Block) <= Block::kHeader);

/// Blocks of one size, shared by every thread: a block whose last reference goes away comes
/// back here. Keeps at most `keep` free blocks; the rest are freed.
class BlockPool {
  public:
    /// `copies`: the blocks hold many small copies each (CopyArena), and an item costs the
    /// queue's budget its own size rather than the whole block.
    BlockPool(std::size_t size, std::size_t keep, bool copies = false)
        : size_(size), keep_(keep), copies_(copies) {}
    ~BlockPool();
    BlockPool(const BlockPool&) = delete;
    BlockPool& operator=(const BlockPool&) = delete;

    /// A block with one reference.
    Block* get();
    [[nodiscard]] std::size_t size() const { return size_; }
    /// What an item of `n` bytes held in one of these blocks costs the tap's budget.
    [[nodiscard]] std::size_t charge(std::size_t n) const { return copies_ ? n : size_; }
    [[nodiscard]] bool copies() const { return copies_; }
    static void ref(Block* b) { b->refs.fetch_add(1, std::memory_order_relaxed); }
    /// Drops one reference; the last one returns the block to its pool.
    static void unref(Block* b) {
        if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) b->pool->put(b);
    }

  private:
    void put(Block* b);
    const std::size_t size_;
    const std::size_t keep_;
    const bool copies_;
    std::mutex mu_;
    std::vector<Block*> free_;
};

/// One I/O thread's copies of small forwarded chunks, packed one after another into blocks of a
/// `copies` pool; each item holds a reference on its block, and a block goes back to the pool
/// when the arena has moved on and the analysis is done with every copy in it. A copy in its own
/// heap allocation was allocated on the I/O thread and freed on the analysis thread: both took
/// glibc's lock of the I/O thread's arena for every chunk, and the analysis thread, at idle
/// priority, could hold it while an I/O thread waited (the added latency's p99). Here the two
/// threads meet at the pool's lock once per block. Hand-written: a bump allocator over
/// reference-counted blocks is a few lines, and no library gives cross-thread release by count.
class CopyArena {
  public:
    explicit CopyArena(BlockPool& pool) : pool_(pool) {}
    ~CopyArena() {
        if (cur_ != nullptr) BlockPool::unref(cur_);
    }
    CopyArena(const CopyArena&) = delete;
    CopyArena& operator=(const CopyArena&) = delete;
    /// Whether a chunk of `n` bytes is copied here (else into a heap allocation of its own).
    [[nodiscard]] bool fits(std::size_t n) const { return n <= pool_.size() / 4; }
    /// Copies [data, data + n) (fits(n)); returns the block holding the copy, which starts at
    /// `out`. The caller takes its own reference (TapBytes does).
    Block* copy(const std::uint8_t* data, std::size_t n, const std::uint8_t*& out) {
        if (cur_ == nullptr || used_ + n > pool_.size()) {
            if (cur_ != nullptr) BlockPool::unref(cur_);
            cur_ = pool_.get();
            used_ = 0;
        }
        std::uint8_t* at = cur_->data() + used_;
        std::memcpy(at, data, n);
        used_ = std::min(pool_.size(), (used_ + n + 15) & ~std::size_t{15});
        out = at;
        return cur_;
    }

  private:
    BlockPool& pool_;
    Block* cur_ = nullptr;  ///< one reference held while the arena fills it
    std::size_t used_ = 0;
};

/// The bytes of a data item: a small chunk copied into the item, or a large one still in the
/// forwarding block it was read into (one reference held).
class TapBytes {
  public:
    TapBytes() = default;
    TapBytes(const std::uint8_t* data, std::size_t size) : copy_(data, data + size) {}
    /// Takes one more reference on `block`, which holds [data, data + size).
    TapBytes(Block* block, const std::uint8_t* data, std::size_t size)
        : block_(block), data_(data), size_(size) {
        BlockPool::ref(block);
    }
    TapBytes(TapBytes&& o) noexcept
        : copy_(std::move(o.copy_)),
          block_(std::exchange(o.block_, nullptr)),
          data_(o.data_),
          size_(std::exchange(o.size_, 0)) {}
    TapBytes& operator=(TapBytes&& o) noexcept {
        if (this != &o) {
            reset();
            copy_ = std::move(o.copy_);
            block_ = std::exchange(o.block_, nullptr);
            data_ = o.data_;
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    TapBytes(const TapBytes&) = delete;
    TapBytes& operator=(const TapBytes&) = delete;
    ~TapBytes() { reset(); }

    [[nodiscard]] Bytes view() const {
        return block_ != nullptr ? Bytes(data_, size_) : Bytes(copy_);
    }
    [[nodiscard]] std::size_t size() const { return block_ != nullptr ? size_ : copy_.size(); }
    [[nodiscard]] bool empty() const { return size() == 0; }
    /// What the item costs the queue's budget: a block counts whole.
    [[nodiscard]] std::size_t charge() const {
        return block_ != nullptr ? block_->pool->charge(size_) : copy_.size();
    }

  private:
    void reset() {
        if (block_ != nullptr) BlockPool::unref(block_);
        block_ = nullptr;
        size_ = 0;
        copy_.clear();
    }
    std::vector<std::uint8_t> copy_;
    Block* block_ = nullptr;
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

struct TapItem {
    /// Secret: one NSS key log line of a terminated connection (`bytes`), for the recording.
    enum class Kind : std::uint8_t { Open, Data, Close, Secret };
    /// What a Data item's bytes are. A pass-through connection has only Wire items; a connection
    /// whose TLS the proxy terminates has all four.
    enum class Role : std::uint8_t {
        Wire,      ///< client-leg bytes a decoder reads as they are (TDS, the TLS handshake)
        Opaque,    ///< client-leg TLS records of application data (recorded, not decoded)
        Plain,     ///< what those records carried (decoded, not recorded)
        Upstream,  ///< upstream-leg bytes of a terminated connection (recorded only)
    };
    Kind kind = Kind::Data;
    Role role = Role::Wire;
    bool terminated = false;       ///< Open: the proxy terminates this connection's TLS
    std::uint64_t connection = 0;  ///< the proxy's connection number (logs, recorder)
    FlowKey flow;                  ///< client = the real client, server = the upstream
    Endpoint proxy_local;          ///< Open: the proxy's address on the upstream leg
    Direction dir = Direction::ClientToServer;
    Timestamp ts;
    std::uint64_t offset = 0;      ///< Data: stream offset of bytes[0] in `dir`
    std::uint64_t gap_before = 0;  ///< Data: bytes of `dir` dropped just before this chunk
    CloseReason why = CloseReason::Fin;
    TapBytes bytes;
};

struct TapStats {
    std::uint64_t queued_bytes = 0;  ///< now
    std::uint64_t peak_bytes = 0;
    std::uint64_t dropped_chunks = 0;
    std::uint64_t dropped_bytes = 0;
    std::uint64_t shared_chunks = 0;  ///< queued without a copy (see Block)
};

class Tap {
  public:
    explicit Tap(std::size_t budget_bytes) : budget_(budget_bytes) {}

    /// Producer side (any thread). False when the chunk did not fit: the caller adds its length
    /// to the direction's pending gap and passes the total with the next chunk.
    /// With a `block` (holding `data`), the item shares it instead of copying; it costs the
    /// budget the whole block.
    bool push_data(std::uint64_t connection, const FlowKey& flow, Direction dir, Timestamp ts,
                   std::uint64_t offset, std::uint64_t gap_before, const std::uint8_t* data,
                   std::size_t size, Block* block = nullptr,
                   TapItem::Role role = TapItem::Role::Wire);
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
        drained_ = 0;
        std::uint64_t charged = 0;
        {
            std::unique_lock lock(mu_);
            if (q_.empty() && !closed_) {
                mode_ = nap ? Mode::Napping : Mode::Sleeping;
                cv_.wait_for(lock, wait, [&] {
                    return closed_ || (nap ? queued() >= wake_bytes() : !q_.empty());
                });
                mode_ = Mode::Awake;
            }
            if (q_.empty()) return !closed_;
            // The whole batch changes hands in O(1): producers wait on this lock only as long
            // as a swap takes (moving the items one by one under it made forwarding threads
            // queue behind the analysis thread, which runs at a lower priority). `out`'s old
            // storage, cleared, becomes the queue's, so neither side allocates in steady state.
            out.swap(q_);
            charged = std::exchange(linked_, 0);
        }
        queued_.fetch_sub(charged, std::memory_order_relaxed);
        drained_ = charged;
        return true;
    }
    /// Consumer side: what the last drain() took, in budget bytes (0 after an empty one): how
    /// far behind the consumer was.
    [[nodiscard]] std::uint64_t drained_bytes() const { return drained_; }

    /// No more items will come: wakes the consumer; drain() returns false once empty.
    void close();
    [[nodiscard]] TapStats stats() const;

  private:
    void notify_locked(std::unique_lock<std::mutex>& lock);

    [[nodiscard]] std::uint64_t queued() const { return queued_.load(std::memory_order_relaxed); }

    const std::size_t budget_;
    mutable std::mutex mu_;  ///< q_, linked_, mode_; closed_ is set under it
    std::condition_variable cv_;
    std::vector<TapItem> q_;
    std::uint64_t linked_ = 0;   ///< budget charged by the items in q_
    std::uint64_t drained_ = 0;  ///< the consumer's own: what its last drain() took
    enum class Mode : std::uint8_t { Awake, Napping, Sleeping };
    [[nodiscard]] std::uint64_t wake_bytes() const { return budget_ / 4; }
    Mode mode_ = Mode::Awake;
    /// Read without the lock by producers (push_data), set under it by close().
    std::atomic<bool> closed_{false};
    // The budget is reserved without the lock (a producer that finds the queue full drops its
    // chunk having taken no lock at all), and the counters are kept the same way.
    std::atomic<std::uint64_t> queued_{0};  ///< reserved: linked or about to be
    std::atomic<std::uint64_t> peak_{0};
    std::atomic<std::uint64_t> dropped_chunks_{0};
    std::atomic<std::uint64_t> dropped_bytes_{0};
    std::atomic<std::uint64_t> shared_chunks_{0};
};

/// The producer side of one connection's tap, on the connection's I/O thread: whether the
/// connection is TDS (decided on its first client bytes), the Open item once it is, a copy of
/// what each direction forwarded, the bytes the queue could not take (carried as the gap of the
/// next chunk that fits), and at the end the bytes still missing and the Close. It owns no
/// socket, so the proxy's connections and the tap's fuzz target (tests/fuzz/fuzz_proxy_tap.cpp)
/// drive the same code.
class TapWriter {
  public:
    enum class State : std::uint8_t { Undecided, On, Off };
    /// What one call did, for the caller's counters and log.
    struct Result {
        bool opened = false;              ///< found to be TDS: the Open item was queued
        bool not_tds = false;             ///< found not to be TDS: no copies from now on
        std::uint64_t dropped_bytes = 0;  ///< bytes the queue could not take (now a gap)
        bool gap_started = false;         ///< the first bytes missing since the last chunk that fit
    };

    TapWriter(Tap& tap, std::uint64_t connection) : tap_(tap), id_(connection) {}

    /// Once the upstream is connected, before any data: the flow every item carries (client:
    /// the real client; server: the upstream), the proxy's address on the upstream leg, and
    /// whether the proxy terminates the connection's TLS (for the Open item).
    void connected(const FlowKey& flow, const Endpoint& proxy_local, bool terminated);
    [[nodiscard]] State state() const { return state_; }

    /// A copy of `n` bytes at `offset` of `dir` (of the role's stream). With a `block` holding
    /// `data` the item shares it instead of copying. Until the connection is decided, client
    /// bytes are gathered (a TDS packet header is 8 bytes) and the first server bytes mean it
    /// is not TDS.
    Result data(Direction dir, Timestamp ts, const std::uint8_t* data, std::size_t n,
                std::uint64_t offset, Block* block = nullptr,
                TapItem::Role role = TapItem::Role::Wire);
    /// One NSS key log line of a terminated connection, for the recording (only once tapped).
    void secret(Timestamp ts, std::string_view line);
    /// The connection ended: per direction and leg, the bytes still missing at its end (a gap
    /// item at `wire_end` / `upstream_end`, the offsets where the streams stopped), then the
    /// Close. Nothing when the connection was never tapped; nothing more after it.
    void close(Timestamp ts, CloseReason why, const std::uint64_t wire_end[2],
               const std::uint64_t upstream_end[2]);

  private:
    void push(Direction dir, Timestamp ts, const std::uint8_t* data, std::size_t n,
              std::uint64_t offset, Block* block, TapItem::Role role, Result& r);

    Tap& tap_;
    const std::uint64_t id_;
    FlowKey flow_;
    Endpoint proxy_local_;
    bool terminated_ = false;
    bool closed_ = false;
    State state_ = State::Undecided;
    std::uint8_t head_[16]{};
    std::size_t head_len_ = 0;
    /// Bytes not queued since the last chunk that was: [client leg (decoded), upstream leg][dir]
    std::uint64_t gap_[2][2] = {{0, 0}, {0, 0}};
};

/// The consumer side, on the analysis thread: hands each drained item to the decoder (a
/// StreamSink: the pipeline) and the recording. A flow (client address and port, upstream)
/// belongs to its newest connection: a client may reuse its port as soon as its previous
/// connection is closed, and the two connections may live on different I/O threads, so the new
/// one's Open can reach the queue before the old one's Close. The newer connection wins; the
/// older one is closed for the decoder at that point and its late items are dropped.
class TapDispatcher {
  public:
    /// Both may be null.
    TapDispatcher(StreamSink* sink, Recorder* recorder, bool record_upstream_leg)
        : sink_(sink), recorder_(recorder), record_upstream_leg_(record_upstream_leg) {}
    void dispatch(TapItem& item);
    /// Tapped connections open now.
    [[nodiscard]] std::size_t open_connections() const { return tapped_.size(); }

  private:
    struct Tapped {
        FlowKey upstream_leg;
        bool terminated = false;
        std::uint64_t last_opaque_frame[2] = {0, 0};  ///< recording frame of the last record
    };
    void close_for_decoder(const FlowKey& flow, std::uint64_t connection, Timestamp ts,
                           CloseReason why);

    StreamSink* sink_;
    Recorder* recorder_;
    bool record_upstream_leg_;
    std::unordered_map<std::uint64_t, Tapped> tapped_;
    /// Which connection a flow belongs to now.
    std::unordered_map<FlowKey, std::uint64_t, FlowKeyHash> owner_;
};

}  // namespace hopscope::proxy
