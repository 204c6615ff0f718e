#include "hopscope/proxy/tap.hpp"

#include <algorithm>

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
                    std::size_t size) {
    // The copy is made before taking the lock, so producers hold it only to link the item in.
    {
        std::lock_guard lock(mu_);
        if (stats_.queued_bytes + size > budget_ || closed_) {
            ++stats_.dropped_chunks;
            stats_.dropped_bytes += size;
            return false;
        }
        stats_.queued_bytes += size;  // reserved; the item follows
        stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.queued_bytes);
    }
    TapItem item;
    item.kind = TapItem::Kind::Data;
    item.connection = connection;
    item.flow = flow;
    item.dir = dir;
    item.ts = ts;
    item.offset = offset;
    item.gap_before = gap_before;
    item.bytes.assign(data, data + size);
    std::unique_lock lock(mu_);
    q_.push_back(std::move(item));
    notify_locked(lock);
    return true;
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
