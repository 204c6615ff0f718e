// Loader for the tshark-derived fixtures in tests/data/auth/*_tshark.txt (format described in
// tests/data/auth/extract.py) and small helpers shared by the auth tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hopscope::auth::test {

inline std::vector<std::uint8_t> unhex(std::string_view h) {
    std::vector<std::uint8_t> out;
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    int hi = -1;
    for (char c : h) {
        const int v = nib(c);
        if (v < 0) continue;  // spaces, colons
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<std::uint8_t>(hi * 16 + v));
            hi = -1;
        }
    }
    return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

struct Record {
    std::string file, frame, kind;
    std::vector<std::uint8_t> bytes;
    Fields fields;

    [[nodiscard]] std::string where() const { return file + " frame " + frame; }
    [[nodiscard]] std::string get(const std::string& key) const {
        for (const auto& [k, v] : fields)
            if (k == key) return v;
        return {};
    }
};

inline std::vector<Record> load_records(const std::string& name) {
    std::vector<Record> out;
    std::ifstream in(std::string(HOPSCOPE_TEST_DATA_DIR) + "/auth/" + name);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        if (line.rfind("@ ", 0) == 0) {
            Record r;
            const auto a = line.find(' ', 2), b = line.find(' ', a + 1);
            r.file = line.substr(2, a - 2);
            r.frame = line.substr(a + 1, b - a - 1);
            r.kind = line.substr(b + 1);
            out.push_back(std::move(r));
            continue;
        }
        if (out.empty()) continue;
        const auto sp = line.find(' ');
        std::string key = line.substr(0, sp);
        std::string value = sp == std::string::npos ? "" : line.substr(sp + 1);
        if (key == "hex") {
            out.back().bytes = unhex(value);
        } else {
            out.back().fields.emplace_back(std::move(key), std::move(value));
        }
    }
    return out;
}

/// Fields compared as a sorted multiset, with a readable diff on failure.
inline ::testing::AssertionResult same_fields(Fields expected, Fields actual) {
    std::sort(expected.begin(), expected.end());
    std::sort(actual.begin(), actual.end());
    if (expected == actual) return ::testing::AssertionSuccess();
    std::string msg = "\n  tshark:";
    for (const auto& [k, v] : expected)
        msg += "\n    " + k + " = " + v;
    msg += "\n  ours:";
    for (const auto& [k, v] : actual)
        msg += "\n    " + k + " = " + v;
    return ::testing::AssertionFailure() << msg;
}

using Buf = std::vector<std::uint8_t>;

/// DER TLV with a minimal definite length (X.690 §10.1), for hand-built vectors.
inline Buf tlv(std::uint8_t tag, const Buf& content) {
    Buf out{tag};
    const std::size_t n = content.size();
    if (n < 0x80) {
        out.push_back(static_cast<std::uint8_t>(n));
    } else if (n < 0x100) {
        out.insert(out.end(), {0x81, static_cast<std::uint8_t>(n)});
    } else {
        out.insert(out.end(),
                   {0x82, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)});
    }
    out.insert(out.end(), content.begin(), content.end());
    return out;
}

/// Concatenation.
inline Buf cat(std::initializer_list<Buf> parts) {
    Buf out;
    for (const auto& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

inline Buf str(std::string_view s) {
    return Buf(s.begin(), s.end());
}
inline Buf integer(std::uint8_t v) {
    return v < 0x80 ? tlv(0x02, {v}) : tlv(0x02, {0x00, v});
}
inline Buf gstring(std::string_view s) {
    return tlv(0x1b, str(s));
}
/// [n] EXPLICIT
inline Buf ctx(unsigned n, const Buf& inner) {
    return tlv(static_cast<std::uint8_t>(0xa0 + n), inner);
}
inline Buf seq(std::initializer_list<Buf> parts) {
    return tlv(0x30, cat(parts));
}

inline std::string hex32(std::uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

}  // namespace hopscope::auth::test
