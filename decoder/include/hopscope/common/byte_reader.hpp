// Bounds-checked little/big-endian reader over a byte span.
//
// Every parser in the decoder reads hostile bytes through this class. No read ever goes past the
// span: each accessor returns false (and leaves the reader unchanged) when not enough bytes
// remain, so a truncated or lying length field becomes an ordinary "malformed" result, never UB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hopscope {

using Bytes = std::span<const std::uint8_t>;

class ByteReader {
  public:
    ByteReader() = default;
    explicit ByteReader(Bytes data) : data_(data) {}

    [[nodiscard]] std::size_t size() const { return data_.size(); }
    [[nodiscard]] std::size_t position() const { return pos_; }
    [[nodiscard]] std::size_t remaining() const { return data_.size() - pos_; }
    [[nodiscard]] bool empty() const { return pos_ >= data_.size(); }
    [[nodiscard]] Bytes data() const { return data_; }
    [[nodiscard]] Bytes rest() const { return data_.subspan(pos_); }

    /// Moves to an absolute offset; false (and no move) if it lies beyond the end.
    bool seek(std::size_t offset) {
        if (offset > data_.size()) return false;
        pos_ = offset;
        return true;
    }
    bool skip(std::size_t n) {
        if (n > remaining()) return false;
        pos_ += n;
        return true;
    }

    bool u8(std::uint8_t& out) {
        if (remaining() < 1) return false;
        out = data_[pos_++];
        return true;
    }
    bool u16le(std::uint16_t& out) { return read_le(out); }
    bool u32le(std::uint32_t& out) { return read_le(out); }
    bool u64le(std::uint64_t& out) { return read_le(out); }
    bool u16be(std::uint16_t& out) { return read_be(out); }
    bool u32be(std::uint32_t& out) { return read_be(out); }
    bool u64be(std::uint64_t& out) { return read_be(out); }

    /// Takes the next n bytes as a view (no copy).
    bool bytes(std::size_t n, Bytes& out) {
        if (n > remaining()) return false;
        out = data_.subspan(pos_, n);
        pos_ += n;
        return true;
    }

    /// A reader over [offset, offset+len) of the whole span, independent of the current position.
    [[nodiscard]] std::optional<ByteReader> sub(std::size_t offset, std::size_t len) const {
        if (offset > data_.size() || len > data_.size() - offset) return std::nullopt;
        return ByteReader(data_.subspan(offset, len));
    }

    /// Peeks at a byte relative to the current position without consuming it.
    [[nodiscard]] std::optional<std::uint8_t> peek(std::size_t ahead = 0) const {
        if (ahead >= remaining()) return std::nullopt;
        return data_[pos_ + ahead];
    }

  private:
    template <typename T>
    bool read_le(T& out) {
        if (remaining() < sizeof(T)) return false;
        T v = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i)
            v |= static_cast<T>(data_[pos_ + i]) << (8 * i);
        out = v;
        pos_ += sizeof(T);
        return true;
    }
    template <typename T>
    bool read_be(T& out) {
        if (remaining() < sizeof(T)) return false;
        T v = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i)
            v = static_cast<T>((v << 8) | data_[pos_ + i]);
        out = v;
        pos_ += sizeof(T);
        return true;
    }

    Bytes data_{};
    std::size_t pos_ = 0;
};

/// Loads without a reader, for fixed headers whose size was already checked by the caller.
inline std::uint16_t load_u16be(const std::uint8_t* p) {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint16_t load_u16le(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t load_u32le(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline std::uint32_t load_u32be(const std::uint8_t* p) {
    return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
           (static_cast<std::uint32_t>(p[2]) << 8) | static_cast<std::uint32_t>(p[3]);
}
inline std::uint64_t load_u64le(const std::uint8_t* p) {
    return static_cast<std::uint64_t>(load_u32le(p)) |
           (static_cast<std::uint64_t>(load_u32le(p + 4)) << 32);
}
inline std::uint64_t load_u64be(const std::uint8_t* p) {
    return (static_cast<std::uint64_t>(load_u32be(p)) << 32) |
           static_cast<std::uint64_t>(load_u32be(p + 4));
}

}  // namespace hopscope
