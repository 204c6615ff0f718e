#include "hopscope/common/byte_reader.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "hopscope/common/flow.hpp"
#include "hopscope/common/text.hpp"

namespace hopscope {
namespace {

TEST(ByteReader, ReadsBothByteOrdersAndStopsAtEnd) {
    const std::vector<std::uint8_t> b{0x12, 0x34, 0x56, 0x78, 0x9a};
    ByteReader r{Bytes(b)};
    std::uint16_t be = 0, le = 0;
    ASSERT_TRUE(r.u16be(be));
    ASSERT_TRUE(r.u16le(le));
    EXPECT_EQ(be, 0x1234);
    EXPECT_EQ(le, 0x7856);
    std::uint32_t v = 0;
    EXPECT_FALSE(r.u32le(v));  // only one byte left
    EXPECT_EQ(r.position(), 4u) << "a failed read must not move the reader";
    std::uint8_t last = 0;
    ASSERT_TRUE(r.u8(last));
    EXPECT_EQ(last, 0x9a);
    EXPECT_TRUE(r.empty());
    EXPECT_FALSE(r.u8(last));
}

TEST(ByteReader, SubRejectsRangesPastTheEnd) {
    const std::vector<std::uint8_t> b(10, 0);
    ByteReader r{Bytes(b)};
    EXPECT_TRUE(r.sub(0, 10).has_value());
    EXPECT_TRUE(r.sub(10, 0).has_value());
    EXPECT_FALSE(r.sub(11, 0).has_value());
    EXPECT_FALSE(r.sub(5, 6).has_value());
    EXPECT_FALSE(r.sub(SIZE_MAX, 2).has_value()) << "offset+len overflow must be caught";
    EXPECT_FALSE(r.skip(11));
    EXPECT_FALSE(r.seek(11));
}

TEST(Text, Utf16ToUtf8HandlesSurrogatesAndOddBytes) {
    // "Aé€" + U+1F600 (surrogate pair) + a lone high surrogate + odd byte
    const std::vector<std::uint8_t> b{0x41, 0x00, 0xe9, 0x00, 0xac, 0x20, 0x3d,
                                      0xd8, 0x00, 0xde, 0x3d, 0xd8, 0x7f};
    EXPECT_EQ(utf16le_to_utf8(Bytes(b)), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbd");
}

TEST(Text, Utf16ToUtf8AsciiAndItsEdges) {
    // All ASCII (the fast path), with a NUL kept as the old per-character loop kept it.
    const std::vector<std::uint8_t> a{'s', 0, 'q', 0, 'l', 0, 0x7f, 0, 0, 0, 'x', 0, 'y'};
    EXPECT_EQ(utf16le_to_utf8(Bytes(a)), std::string("sql\x7f\0x", 6));
    EXPECT_EQ(utf16le_to_utf8(Bytes()), "");
    // A unit above 0x7f at the end, and a unit whose high byte alone is set (U+0141 'Ł' and
    // U+0041 with a high byte: 0x0141 is not 'A'): both leave the fast path.
    const std::vector<std::uint8_t> b{'a', 0, 'b', 0, 0x80, 0x00};
    EXPECT_EQ(utf16le_to_utf8(Bytes(b)), "ab\xc2\x80");
    const std::vector<std::uint8_t> c{'a', 0, 0x41, 0x01};
    EXPECT_EQ(utf16le_to_utf8(Bytes(c)), "a\xc5\x81");
}

TEST(Text, Utf16ToUtf8FourUnitsAtATimeSeeEveryNonAsciiUnit) {
    // The fast path checks four units at once: a non-ASCII unit in any of the four lanes, at
    // any position of strings of every length around the word size, with a bit set in either
    // byte, must come out as its UTF-8, the ASCII around it unchanged (0x7f and NUL included).
    auto utf8_of = [](std::uint32_t u) {  // BMP, not a surrogate
        std::string o;
        if (u < 0x80) {
            o += static_cast<char>(u);
        } else if (u < 0x800) {
            o += static_cast<char>(0xC0 | (u >> 6));
            o += static_cast<char>(0x80 | (u & 0x3F));
        } else {
            o += static_cast<char>(0xE0 | (u >> 12));
            o += static_cast<char>(0x80 | ((u >> 6) & 0x3F));
            o += static_cast<char>(0x80 | (u & 0x3F));
        }
        return o;
    };
    const std::uint32_t ascii[] = {'a', 0x7f, 0, 'Z', '1'};
    const std::uint32_t other[] = {0x80, 0xFF, 0x100, 0x141, 0x4E2D, 0x8000, 0x7F00};
    for (std::size_t len = 0; len <= 19; ++len) {
        for (std::size_t at = 0; at <= len; ++at) {  // at == len: all ASCII
            for (const std::uint32_t bad : other) {
                std::vector<std::uint8_t> in;
                std::string want;
                for (std::size_t i = 0; i < len; ++i) {
                    const std::uint32_t u = i == at ? bad : ascii[i % std::size(ascii)];
                    in.push_back(static_cast<std::uint8_t>(u & 0xFF));
                    in.push_back(static_cast<std::uint8_t>(u >> 8));
                    want += utf8_of(u);
                }
                EXPECT_EQ(utf16le_to_utf8(Bytes(in)), want) << len << " " << at << " " << bad;
            }
        }
    }
}

TEST(Flow, FormatsAddressesAndTimes) {
    EXPECT_EQ(to_string(Endpoint{IpAddress::v4_from(0x0a4d0003), 1433}), "10.77.0.3:1433");
    std::uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    EXPECT_EQ(to_string(Endpoint{IpAddress::v6_from_bytes(v6), 88}), "[2001:db8::1]:88");
    EXPECT_EQ(to_string(Endpoint{IpAddress::v4_from(0), 0}), "0.0.0.0:0");
    EXPECT_EQ(to_string(Endpoint{IpAddress::v4_from(0xffffffff), 65535}), "255.255.255.255:65535");
    std::uint8_t all[16];
    for (int i = 0; i < 16; ++i)
        all[i] = static_cast<std::uint8_t>(i == 15 ? 0 : 0xab);
    EXPECT_EQ(to_string(Endpoint{IpAddress::v6_from_bytes(all), 1}),
              "[abab:abab:abab:abab:abab:abab:abab:ab00]:1");
    std::uint8_t zero[16] = {};
    EXPECT_EQ(to_string(IpAddress::v6_from_bytes(zero)), "::");
    // Each width of a byte, and a run of zeros inside and at the end.
    EXPECT_EQ(to_string(IpAddress::v4_from(0x640a09c7)), "100.10.9.199");
    std::uint8_t mid[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ(to_string(IpAddress::v6_from_bytes(mid)), "fe80::a:0:0:0");
    // The longest text fills the buffer write_text is given, no more.
    std::uint8_t ff[16];
    for (auto& b : ff)
        b = 0xff;
    const Endpoint longest{IpAddress::v6_from_bytes(ff), 65535};
    char buf[kEndpointTextMax + 1];
    buf[kEndpointTextMax] = '!';
    const char* end = write_text(buf, longest);
    EXPECT_EQ(std::string(static_cast<const char*>(buf), end),
              "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    EXPECT_EQ(static_cast<std::size_t>(end - buf), kEndpointTextMax);
    EXPECT_EQ(buf[kEndpointTextMax], '!');
    EXPECT_EQ(to_string(longest.addr).size(), kIpTextMax);
}

}  // namespace
}  // namespace hopscope
