#include "hopscope/proxy/tap.hpp"

#include <algorithm>
#include <new>

namespace hopscope::proxy {

void Tap::notify_locked(std::unique_lock<std::mutex>& lock) {
    // Only a consumer that is asleep needs the (system-call) wake-up; a busy one finds the item
    // on its next drain, a napping one when its nap ends or the queue fills up.
    const bool wake =
        mode_ == Mode::Sleeping || (mode_ == Mode::Napping && stats_.queued_bytes >= wake_bytes());
    lock.unlock();
    if (wake) cv_.notify_one();
}

bool Tap::push_data(std::uint64_t connection, const FlowKey& flow, Direction dir, Timestamp ts,
                    std::uint64_t offset, std::uint64_t gap_before, const std::uint8_t* data,
                    std::size_t size, Block* block, TapItem::Role role) {
    const std::size_t charge = block != nullptr ? block->pool->size() : size;
    {
        std::lock_guard lock(mu_);
        if (stats_.queued_bytes + charge > budget_ || closed_) {
            ++stats_.dropped_chunks;
            stats_.dropped_bytes += size;
            return false;
        }
        stats_.queued_bytes += charge;  // reserved; the item follows
        if (block != nullptr) ++stats_.shared_chunks;
        stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.queued_bytes);
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
    std::lock_guard lock(mu_);
    return stats_;
}

}  // namespace hopscope::proxy
