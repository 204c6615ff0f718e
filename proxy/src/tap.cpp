#include "hopscope/proxy/tap.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "hopscope/captures/flow_filter.hpp"
#include "hopscope/proxy/recorder.hpp"

namespace hopscope::proxy {

void Tap::notify_locked(std::unique_lock<std::mutex>& lock) {
    // Only a consumer that is asleep needs the (system-call) wake-up; a busy one finds the item
    // on its next drain, a napping one when its nap ends or the queue fills up.
    const bool wake =
        mode_ == Mode::Sleeping || (mode_ == Mode::Napping && queued() >= wake_bytes());
    lock.unlock();
    if (wake) cv_.notify_one();
}

bool Tap::push_data(std::uint64_t connection, const FlowKey& flow, Direction dir, Timestamp ts,
                    std::uint64_t offset, std::uint64_t gap_before, const std::uint8_t* data,
                    std::size_t size, Block* block, TapItem::Role role) {
    const std::size_t charge = block != nullptr ? block->pool->charge(size) : size;
    const std::uint64_t before = queued_.fetch_add(charge, std::memory_order_relaxed);
    if (before + charge > budget_ || closed_.load(std::memory_order_relaxed)) {
        queued_.fetch_sub(charge, std::memory_order_relaxed);
        dropped_chunks_.fetch_add(1, std::memory_order_relaxed);
        dropped_bytes_.fetch_add(size, std::memory_order_relaxed);
        return false;
    }
    // Reserved; the item follows.
    if (block != nullptr && !block->pool->copies())
        shared_chunks_.fetch_add(1, std::memory_order_relaxed);
    for (std::uint64_t peak = peak_.load(std::memory_order_relaxed);
         before + charge > peak &&
         !peak_.compare_exchange_weak(peak, before + charge, std::memory_order_relaxed);) {
    }
    // The copy (small chunks) is made outside the lock, so producers hold it only to link the
    // item in.
    TapItem item;
    item.kind = TapItem::Kind::Data;
    item.role = role;
    item.connection = connection;
    item.flow = flow;
    item.dir = dir;
    item.ts = ts;
    item.offset = offset;
    item.gap_before = gap_before;
    item.bytes = block != nullptr ? TapBytes(block, data, size) : TapBytes(data, size);
    std::unique_lock lock(mu_);
    q_.push_back(std::move(item));
    linked_ += charge;
    notify_locked(lock);
    return true;
}

BlockPool::~BlockPool() {
    for (Block* b : free_) {
        b->~Block();
        ::operator delete (b, std::align_val_t{Block::kHeader});
    }
}

Block* BlockPool::get() {
    {
        std::lock_guard lock(mu_);
        if (!free_.empty()) {
            Block* b = free_.back();
            free_.pop_back();
            b->refs.store(1, std::memory_order_relaxed);
            return b;
        }
    }
    void* mem = ::operator new (Block::kHeader + size_, std::align_val_t{Block::kHeader});
    Block* b = new (mem) Block;
    b->pool = this;
    return b;
}

void BlockPool::put(Block* b) {
    {
        std::lock_guard lock(mu_);
        if (free_.size() < keep_) {
            free_.push_back(b);
            return;
        }
    }
    b->~Block();
    ::operator delete (b, std::align_val_t{Block::kHeader});
}

void Tap::push_control(TapItem item) {
    std::unique_lock lock(mu_);
    if (closed_) return;
    q_.push_back(std::move(item));
    notify_locked(lock);
}

void Tap::close() {
    {
        std::lock_guard lock(mu_);
        closed_ = true;
    }
    cv_.notify_all();
}

TapStats Tap::stats() const {
    TapStats s;
    s.queued_bytes = queued();
    s.peak_bytes = peak_.load(std::memory_order_relaxed);
    s.dropped_chunks = dropped_chunks_.load(std::memory_order_relaxed);
    s.dropped_bytes = dropped_bytes_.load(std::memory_order_relaxed);
    s.shared_chunks = shared_chunks_.load(std::memory_order_relaxed);
    return s;
}

void TapWriter::connected(const FlowKey& flow, const Endpoint& proxy_local, bool terminated) {
    flow_ = flow;
    proxy_local_ = proxy_local;
    terminated_ = terminated;
}

TapWriter::Result TapWriter::data(Direction dir, Timestamp ts, const std::uint8_t* data,
                                  std::size_t n, std::uint64_t offset, Block* block,
                                  TapItem::Role role) {
    Result r;
    if (state_ == State::Off || closed_) return r;
    if (state_ == State::Undecided) {
        if (dir == Direction::ServerToClient) {
            state_ = State::Off;
            r.not_tds = true;
            return r;
        }
        const std::size_t before = head_len_;
        const std::size_t take = std::min(n, sizeof head_ - head_len_);
        if (take > 0) std::memcpy(head_ + head_len_, data, take);
        head_len_ += take;
        if (head_len_ < 8) return r;  // a TDS packet header is 8 bytes
        const Bytes first = before == 0 ? Bytes(data, n) : Bytes(head_, head_len_);
        if (!captures::looks_like_tds_client_start(first) &&
            !captures::is_tls_client_hello_with_tds8_alpn(first)) {
            state_ = State::Off;
            r.not_tds = true;
            return r;
        }
        state_ = State::On;
        r.opened = true;
        TapItem open;
        open.kind = TapItem::Kind::Open;
        open.connection = id_;
        open.flow = flow_;
        open.proxy_local = proxy_local_;
        open.ts = ts;
        open.terminated = terminated_;
        tap_.push_control(std::move(open));
        if (before > 0) push(dir, ts, head_, before, 0, nullptr, TapItem::Role::Wire, r);
    }
    push(dir, ts, data, n, offset, block, role, r);
    return r;
}

void TapWriter::push(Direction dir, Timestamp ts, const std::uint8_t* data, std::size_t n,
                     std::uint64_t offset, Block* block, TapItem::Role role, Result& r) {
    const int d = static_cast<int>(dir);
    std::uint64_t& gap = gap_[role == TapItem::Role::Upstream ? 1 : 0][d];
    if (tap_.push_data(id_, flow_, dir, ts, offset, gap, data, n, block, role)) {
        gap = 0;
        return;
    }
    if (gap == 0) r.gap_started = true;
    r.dropped_bytes += n;
    gap += n;
}

void TapWriter::secret(Timestamp ts, std::string_view line) {
    if (state_ != State::On || closed_) return;
    TapItem item;
    item.kind = TapItem::Kind::Secret;
    item.connection = id_;
    item.flow = flow_;
    item.ts = ts;
    item.bytes = TapBytes(reinterpret_cast<const std::uint8_t*>(line.data()), line.size());
    tap_.push_control(std::move(item));
}

void TapWriter::close(Timestamp ts, CloseReason why, const std::uint64_t wire_end[2],
                      const std::uint64_t upstream_end[2]) {
    if (closed_) return;
    closed_ = true;
    if (state_ != State::On) return;
    // Bytes the decoder (or, terminated, the upstream leg's recording) missed at the very end:
    // say so before the close.
    for (int d = 0; d < 2; ++d)
        for (const auto role : {TapItem::Role::Wire, TapItem::Role::Upstream}) {
            const bool up = role == TapItem::Role::Upstream;
            std::uint64_t& missed = gap_[up ? 1 : 0][d];
            if (missed == 0) continue;
            TapItem gap;
            gap.kind = TapItem::Kind::Data;
            gap.role = role;
            gap.connection = id_;
            gap.flow = flow_;
            gap.dir = d == 0 ? Direction::ClientToServer : Direction::ServerToClient;
            gap.ts = ts;
            gap.offset = up ? upstream_end[d] : wire_end[d];
            gap.gap_before = missed;
            missed = 0;
            tap_.push_control(std::move(gap));
        }
    TapItem item;
    item.kind = TapItem::Kind::Close;
    item.connection = id_;
    item.flow = flow_;
    item.ts = ts;
    item.why = why;
    tap_.push_control(std::move(item));
}

void TapDispatcher::close_for_decoder(const FlowKey& flow, std::uint64_t connection, Timestamp ts,
                                      CloseReason why) {
    if (Recorder* rec = recorder_) {
        const bool reset = why == CloseReason::Rst;
        rec->close_connection(Leg::Client, flow, ts, reset);
        const auto it = tapped_.find(connection);
        if (record_upstream_leg_ && it != tapped_.end())
            rec->close_connection(Leg::Upstream, it->second.upstream_leg, ts, reset);
    }
    tapped_.erase(connection);
    if (sink_) sink_->on_close(flow, ts, why);
}

void TapDispatcher::dispatch(TapItem& item) {
    StreamSink* sink = sink_;
    Recorder* rec = recorder_;
    if (item.kind != TapItem::Kind::Open) {
        const auto it = owner_.find(item.flow);
        if (it == owner_.end() || it->second != item.connection) return;  // superseded
        if (item.kind == TapItem::Kind::Close) {
            owner_.erase(it);
            close_for_decoder(item.flow, item.connection, item.ts, item.why);
            return;
        }
    } else if (auto it = owner_.find(item.flow); it != owner_.end()) {
        close_for_decoder(item.flow, it->second, item.ts, CloseReason::Fin);
        owner_.erase(it);
    }
    switch (item.kind) {
        case TapItem::Kind::Open: {
            owner_[item.flow] = item.connection;
            Tapped& t = tapped_[item.connection];
            t.upstream_leg = FlowKey{item.proxy_local, item.flow.server, Transport::Tcp};
            t.terminated = item.terminated;
            if (rec) {
                rec->open_connection(Leg::Client, item.flow, item.ts);
                if (record_upstream_leg_)
                    rec->open_connection(Leg::Upstream, t.upstream_leg, item.ts);
            }
            if (sink) sink->on_open(item.flow, item.ts, true);
            return;
        }
        case TapItem::Kind::Secret:
            if (rec) rec->secret(item.flow, item.bytes.view());
            return;
        case TapItem::Kind::Data:
            break;
        case TapItem::Kind::Close:  // handled above
            return;
    }
    const auto it = tapped_.find(item.connection);
    if (it == tapped_.end()) return;
    Tapped& t = it->second;
    const int d = static_cast<int>(item.dir);
    // A pass-through connection's upstream leg carries the client leg's bytes; a terminated
    // one's has its own (Role::Upstream).
    const bool mirror = record_upstream_leg_ && !t.terminated;
    Evidence ev;
    ev.stream_offset = item.offset;
    if (item.gap_before > 0) {
        if (rec) {
            const Leg leg = item.role == TapItem::Role::Upstream ? Leg::Upstream : Leg::Client;
            if (leg == Leg::Client || record_upstream_leg_)
                rec->gap(leg, leg == Leg::Client ? item.flow : t.upstream_leg, item.dir,
                         item.gap_before);
            if (mirror) rec->gap(Leg::Upstream, t.upstream_leg, item.dir, item.gap_before);
        }
        if (sink && item.role != TapItem::Role::Upstream)
            sink->on_gap(item.flow, item.dir, item.ts, item.gap_before);
    }
    if (item.bytes.empty()) return;  // only a gap (at the end of a connection)
    const Bytes bytes = item.bytes.view();
    switch (item.role) {
        case TapItem::Role::Wire:
            if (rec) {
                ev.frame = rec->data(Leg::Client, item.flow, item.dir, item.ts, bytes);
                if (mirror) rec->data(Leg::Upstream, t.upstream_leg, item.dir, item.ts, bytes);
            }
            if (sink) sink->on_data(item.flow, item.dir, item.ts, bytes, ev);
            return;
        case TapItem::Role::Opaque:
            if (rec)
                t.last_opaque_frame[d] =
                    rec->data(Leg::Client, item.flow, item.dir, item.ts, bytes);
            return;
        case TapItem::Role::Plain:
            ev.frame = t.last_opaque_frame[d];
            if (sink) sink->on_tls_plaintext(item.flow, item.dir, item.ts, bytes, ev);
            return;
        case TapItem::Role::Upstream:
            if (rec && record_upstream_leg_)
                rec->data(Leg::Upstream, t.upstream_leg, item.dir, item.ts, bytes);
            return;
    }
}

}  // namespace hopscope::proxy
