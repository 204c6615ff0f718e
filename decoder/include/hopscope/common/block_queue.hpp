// A first-in first-out window of objects in fixed blocks: appended at the back, dropped at the
// front, read by index.
//
// Why not boost::container::deque (which the analyzer used for its windows of logins and KDC
// exchanges, for its block size): its operator[] works out the block of an index with a
// division by the block size taken at run time from the block's pointers, some 90 instructions
// an index (callgrind, login-dense traffic: 1.5 % of a run's instructions in the analyzer's
// lookups of its recent logins by sequence number). Here the block size is a power of two known
// when compiled: an index is a shift, a mask and two loads. Elements never move once made, so
// references stay valid until the element is dropped.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <new>
#include <utility>

namespace hopscope {

template <typename T, std::size_t kBlock>
class BlockQueue {
    static_assert(kBlock != 0 && (kBlock & (kBlock - 1)) == 0, "a power of two");

  public:
    BlockQueue() = default;
    BlockQueue(const BlockQueue&) = delete;
    BlockQueue& operator=(const BlockQueue&) = delete;
    ~BlockQueue() { clear(); }

    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] bool empty() const { return size_ == 0; }

    T& operator[](std::size_t i) { return *slot(head_ + i); }
    const T& operator[](std::size_t i) const { return *slot(head_ + i); }
    T& front() { return (*this)[0]; }
    const T& front() const { return (*this)[0]; }
    T& back() { return (*this)[size_ - 1]; }
    const T& back() const { return (*this)[size_ - 1]; }

    template <typename... Args>
    T& emplace_back(Args&&... args) {
        const std::size_t k = head_ + size_;
        if (k / kBlock == blocks_.size()) {
            // A block that the front gave back, if there is one: a window that walks on takes
            // no fresh memory. A new one is not zeroed (make_unique would clear the whole block,
            // which is written before it is read).
            blocks_.push_back(spare_ ? std::move(spare_) : std::make_unique_for_overwrite<Block>());
        }
        T* p = ::new (static_cast<void*>(raw(k))) T(std::forward<Args>(args)...);
        ++size_;
        return *p;
    }

    void pop_front() {
        slot(head_)->~T();
        --size_;
        if (++head_ == kBlock) {
            head_ = 0;
            spare_ = std::move(blocks_.front());
            blocks_.pop_front();
        }
        if (size_ == 0 && head_ != 0) {  // empty: start the block again from its first place
            head_ = 0;
        }
    }
    /// Drops the first n (at most size()).
    void drop_front(std::size_t n) {
        while (n-- > 0)
            pop_front();
    }
    void clear() {
        drop_front(size_);
        blocks_.clear();
        spare_.reset();
        head_ = 0;
    }

  private:
    struct Block {
        alignas(T) std::byte bytes[sizeof(T) * kBlock];
    };
    [[nodiscard]] std::byte* raw(std::size_t k) const {
        return blocks_[k / kBlock]->bytes + (k % kBlock) * sizeof(T);
    }
    [[nodiscard]] T* slot(std::size_t k) const {
        return std::launder(reinterpret_cast<T*>(raw(k)));
    }

    std::deque<std::unique_ptr<Block>> blocks_;  ///< the first holds the front at head_
    std::unique_ptr<Block> spare_;
    std::size_t head_ = 0;  ///< the front's place in the first block
    std::size_t size_ = 0;
};

}  // namespace hopscope
