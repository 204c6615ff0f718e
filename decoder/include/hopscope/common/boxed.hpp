// Boxed<T>: std::optional's interface with the value on the heap, for a member a struct has
// rarely (a pointer's size instead of the value's in every instance).
#pragma once

#include <memory>
#include <optional>
#include <utility>

namespace hopscope {

/// std::optional's interface (what its users take of it) with the value on the heap: a pointer's
/// size, not the value's, in a struct that has the value rarely. Copies copy the value.
template <typename T>
class Boxed {
  public:
    Boxed() = default;
    Boxed(std::nullopt_t) {}  // NOLINT: converts, as std::optional does
    Boxed(T v) : p_(std::make_unique<T>(std::move(v))) {}  // NOLINT: converts, as std::optional
    Boxed(const Boxed& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
    Boxed(Boxed&&) noexcept = default;
    Boxed& operator=(const Boxed& o) {
        if (this != &o) p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
        return *this;
    }
    Boxed& operator=(Boxed&&) noexcept = default;
    Boxed& operator=(std::nullopt_t) {
        p_.reset();
        return *this;
    }
    Boxed& operator=(T v) {
        if (p_) {
            *p_ = std::move(v);
        } else {
            p_ = std::make_unique<T>(std::move(v));
        }
        return *this;
    }
    ~Boxed() = default;

    [[nodiscard]] bool has_value() const { return p_ != nullptr; }
    explicit operator bool() const { return p_ != nullptr; }
    T& operator*() { return *p_; }
    const T& operator*() const { return *p_; }
    T* operator->() { return p_.get(); }
    const T* operator->() const { return p_.get(); }
    void reset() { p_.reset(); }

  private:
    std::unique_ptr<T> p_;
};

}  // namespace hopscope
