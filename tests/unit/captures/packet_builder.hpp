// Builds IPv4/IPv6 TCP and UDP packets byte by byte for the unit tests (RFC 791, RFC 8200,
// RFC 9293 and RFC 768 header layouts). Checksums are left zero: the reader does not verify them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hopscope::captures::testing {

using Buf = std::vector<std::uint8_t>;

inline void be(Buf& b, std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
        b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

struct Addr {
    bool v6 = false;
    std::uint8_t bytes[16] = {};
    static Addr v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
        Addr x;
        x.bytes[0] = a;
        x.bytes[1] = b;
        x.bytes[2] = c;
        x.bytes[3] = d;
        return x;
    }
    static Addr v6_last(std::uint8_t last) {  // 2001:db8::<last>
        Addr x;
        x.v6 = true;
        x.bytes[0] = 0x20;
        x.bytes[1] = 0x01;
        x.bytes[2] = 0x0d;
        x.bytes[3] = 0xb8;
        x.bytes[15] = last;
        return x;
    }
};

inline Buf tcp_header(std::uint16_t sport, std::uint16_t dport, std::uint32_t seq,
                      std::uint32_t ack, std::uint8_t flags) {
    Buf t;
    be(t, sport, 2);
    be(t, dport, 2);
    be(t, seq, 4);
    be(t, ack, 4);
    t.push_back(5 << 4);  // data offset 5 words
    t.push_back(flags);
    be(t, 65535, 2);  // window
    be(t, 0, 4);      // checksum, urgent pointer
    return t;
}

inline Buf udp_header(std::uint16_t sport, std::uint16_t dport, std::size_t payload) {
    Buf u;
    be(u, sport, 2);
    be(u, dport, 2);
    be(u, 8 + payload, 2);
    be(u, 0, 2);
    return u;
}

/// IPv4 header (IHL 5) + body. `frag` is the flags/offset word (MF = 0x2000, offset in 8-byte
/// units).
inline Buf ipv4(const Addr& s, const Addr& d, std::uint8_t proto, const Buf& body,
                std::uint16_t id = 1, std::uint16_t frag = 0x4000, std::size_t total_override = 0) {
    Buf p;
    p.push_back(0x45);
    p.push_back(0);
    be(p, total_override ? total_override : 20 + body.size(), 2);
    be(p, id, 2);
    be(p, frag, 2);
    p.push_back(64);
    p.push_back(proto);
    be(p, 0, 2);
    p.insert(p.end(), s.bytes, s.bytes + 4);
    p.insert(p.end(), d.bytes, d.bytes + 4);
    p.insert(p.end(), body.begin(), body.end());
    return p;
}

/// IPv6 header + `ext` (already encoded extension headers) + body.
inline Buf ipv6(const Addr& s, const Addr& d, std::uint8_t next, const Buf& ext, const Buf& body) {
    Buf p;
    be(p, 0x60000000, 4);
    be(p, ext.size() + body.size(), 2);
    p.push_back(next);
    p.push_back(64);
    p.insert(p.end(), s.bytes, s.bytes + 16);
    p.insert(p.end(), d.bytes, d.bytes + 16);
    p.insert(p.end(), ext.begin(), ext.end());
    p.insert(p.end(), body.begin(), body.end());
    return p;
}

inline Buf ether(const Buf& l3, std::uint16_t type = 0x0800) {
    Buf f = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    be(f, type, 2);
    f.insert(f.end(), l3.begin(), l3.end());
    return f;
}

inline Buf concat(Buf a, const Buf& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

inline Buf text(const std::string& s) {
    return Buf(s.begin(), s.end());
}

/// A TCP/IPv4 packet as an IP datagram.
inline Buf tcp4(const Addr& s, std::uint16_t sp, const Addr& d, std::uint16_t dp, std::uint32_t seq,
                std::uint32_t ack, std::uint8_t flags, const Buf& payload = {}) {
    return ipv4(s, d, 6, concat(tcp_header(sp, dp, seq, ack, flags), payload));
}

/// A TCP packet as an IPv4 or IPv6 datagram, as the addresses are.
inline Buf tcp4_or_6(const Addr& s, std::uint16_t sp, const Addr& d, std::uint16_t dp,
                     std::uint32_t seq, std::uint32_t ack, std::uint8_t flags,
                     const Buf& payload = {}) {
    const Buf seg = concat(tcp_header(sp, dp, seq, ack, flags), payload);
    return s.v6 ? ipv6(s, d, 6, {}, seg) : ipv4(s, d, 6, seg);
}

/// A UDP datagram over IPv4 or IPv6, as the addresses are.
inline Buf udp4_or_6(const Addr& s, std::uint16_t sp, const Addr& d, std::uint16_t dp,
                     const Buf& payload) {
    const Buf dg = concat(udp_header(sp, dp, payload.size()), payload);
    return s.v6 ? ipv6(s, d, 17, {}, dg) : ipv4(s, d, 17, dg);
}

}  // namespace hopscope::captures::testing
