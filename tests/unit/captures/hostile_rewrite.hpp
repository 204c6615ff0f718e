// Hostile rewrites of a clean Ethernet capture: each keeps the TCP byte streams and the UDP
// payloads of the original, but changes how they are carried (order, duplication, segment sizes,
// link layer, IP fragmentation). Frames are parsed here independently of the library under test.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "capture_test_util.hpp"

namespace hopscope::captures::testing {

struct Layout {
    bool ok = false;     ///< Ethernet + IPv4/IPv6 (no extension headers) parsed
    std::size_t l3 = 0;  ///< offset of the IP header
    std::uint16_t ethertype = 0;
    bool v6 = false;
    std::size_t ip_hlen = 0;
    std::size_t ip_end = 0;  ///< end of the IP packet within the captured bytes
    std::uint8_t proto = 0;
    bool fragmented = false;
    bool whole = false;  ///< captured in full (caplen covers the IP packet)
    // TCP
    std::size_t tcp = 0;      ///< offset of the TCP header
    std::size_t payload = 0;  ///< offset of the TCP payload
    std::size_t payload_len = 0;
    std::uint8_t flags = 0;
    std::uint32_t seq = 0;
    std::string dir_key;  ///< addresses + ports of the sender -> receiver
};

inline std::uint16_t be16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
inline void set16(std::uint8_t* p, std::size_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
inline void set32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

inline Layout layout(const Record& r) {
    Layout L;
    const auto& b = r.bytes;
    if (b.size() < 14) return L;
    std::size_t off = 12;
    std::uint16_t type = be16(&b[off]);
    while ((type == 0x8100 || type == 0x88a8) && off + 6 <= b.size()) {
        off += 4;
        type = be16(&b[off]);
    }
    L.ethertype = type;
    L.l3 = off + 2;
    const std::size_t n = b.size();
    if (type == 0x0800 && L.l3 + 20 <= n) {
        L.ip_hlen = (b[L.l3] & 0x0F) * 4u;
        std::size_t total = be16(&b[L.l3 + 2]);
        if (total == 0) total = n - L.l3;
        L.ip_end = std::min(n, L.l3 + total);
        L.whole = L.l3 + total <= n && r.wire_len <= n;
        L.proto = b[L.l3 + 9];
        L.fragmented = (be16(&b[L.l3 + 6]) & 0x3FFF) != 0;
        L.dir_key = std::string(reinterpret_cast<const char*>(&b[L.l3 + 12]), 8);
    } else if (type == 0x86DD && L.l3 + 40 <= n) {
        L.v6 = true;
        L.ip_hlen = 40;
        L.ip_end = std::min(n, L.l3 + 40 + be16(&b[L.l3 + 4]));
        L.whole = L.l3 + 40 + be16(&b[L.l3 + 4]) <= n && r.wire_len <= n;
        L.proto = b[L.l3 + 6];
        L.dir_key = std::string(reinterpret_cast<const char*>(&b[L.l3 + 8]), 32);
    } else {
        return L;
    }
    if (L.proto != 6 && L.proto != 17) {
        L.ok = true;
        return L;
    }
    const std::size_t l4 = L.l3 + L.ip_hlen;
    if (L.fragmented || l4 + 8 > L.ip_end) {
        L.ok = true;
        return L;
    }
    L.dir_key += std::string(reinterpret_cast<const char*>(&b[l4]), 4);
    if (L.proto == 6) {
        if (l4 + 20 > L.ip_end) return L;
        L.tcp = l4;
        L.seq = (std::uint32_t{b[l4 + 4]} << 24) | (b[l4 + 5] << 16) | (b[l4 + 6] << 8) | b[l4 + 7];
        L.flags = b[l4 + 13];
        L.payload = l4 + (b[l4 + 12] >> 4) * 4u;
        if (L.payload > L.ip_end) return L;
        L.payload_len = L.ip_end - L.payload;
    }
    L.ok = true;
    return L;
}

inline bool tcp_data(const Layout& L) {
    return L.ok && L.tcp != 0 && L.payload_len > 0;
}

/// Sets the IP length fields after the payload length changed (checksums are not verified).
inline void fix_ip_length(std::vector<std::uint8_t>& b, const Layout& L, std::size_t ip_total) {
    if (L.v6)
        set16(&b[L.l3 + 4], ip_total - 40);
    else
        set16(&b[L.l3 + 2], ip_total);
}

/// Reverses each run of consecutive data segments of one direction (never the first data segment
/// a direction shows, which fixes where a mid-stream capture starts). Returns runs reversed.
inline std::size_t reorder(PcapData& d) {
    std::set<std::string> seen;
    std::size_t runs = 0;
    std::size_t i = 0;
    while (i < d.records.size()) {
        const Layout L = layout(d.records[i]);
        if (!tcp_data(L) || !seen.count(L.dir_key)) {
            if (tcp_data(L)) seen.insert(L.dir_key);
            ++i;
            continue;
        }
        std::size_t j = i + 1;
        while (j < d.records.size()) {
            const Layout M = layout(d.records[j]);
            if (!tcp_data(M) || M.dir_key != L.dir_key) break;
            ++j;
        }
        if (j - i >= 2) {
            std::reverse(d.records.begin() + static_cast<std::ptrdiff_t>(i),
                         d.records.begin() + static_cast<std::ptrdiff_t>(j));
            ++runs;
        }
        i = j;
    }
    return runs;
}

/// Every TCP frame twice.
inline void duplicate(PcapData& d) {
    std::vector<Record> out;
    for (auto& r : d.records) {
        const Layout L = layout(r);
        out.push_back(r);
        if (L.ok && L.tcp != 0) out.push_back(r);
    }
    d.records = std::move(out);
}

/// Re-segments TCP data: pieces of `size` bytes starting every `stride` bytes (stride < size
/// gives overlapping segments). SYN stays on the first piece, FIN/RST/PSH on the last.
inline void resegment(PcapData& d, std::size_t size, std::size_t stride) {
    std::vector<Record> out;
    for (auto& r : d.records) {
        const Layout L = layout(r);
        if (!tcp_data(L) || !L.whole || L.payload_len <= size) {
            out.push_back(r);
            continue;
        }
        for (std::size_t at = 0; at < L.payload_len; at += stride) {
            const std::size_t n = std::min(size, L.payload_len - at);
            Record p;
            p.ts_us = r.ts_us;
            p.bytes.assign(r.bytes.begin(),
                           r.bytes.begin() + static_cast<std::ptrdiff_t>(L.payload));
            p.bytes.insert(p.bytes.end(),
                           r.bytes.begin() + static_cast<std::ptrdiff_t>(L.payload + at),
                           r.bytes.begin() + static_cast<std::ptrdiff_t>(L.payload + at + n));
            p.wire_len = static_cast<std::uint32_t>(p.bytes.size());
            const bool first = at == 0;
            const bool last = at + n >= L.payload_len;
            std::uint8_t flags = L.flags;
            if (!first) flags &= static_cast<std::uint8_t>(~0x02);
            if (!last) flags &= static_cast<std::uint8_t>(~(0x01 | 0x04 | 0x08));
            p.bytes[L.tcp + 13] = flags;
            set32(&p.bytes[L.tcp + 4],
                  L.seq + (first && (L.flags & 0x02) ? 0 : 0) + static_cast<std::uint32_t>(at));
            fix_ip_length(p.bytes, L, p.bytes.size() - L.l3);
            out.push_back(std::move(p));
            if (last) break;
        }
    }
    d.records = std::move(out);
}

/// Adds an 802.1Q tag to every frame, and an 802.1ad (QinQ) outer tag on every other one.
inline void vlan_tag(PcapData& d) {
    std::size_t n = 0;
    for (auto& r : d.records) {
        if (r.bytes.size() < 14) continue;
        std::vector<std::uint8_t> tag = {0x81, 0x00, 0x00, 0x2A};
        if (n++ % 2) tag = {0x88, 0xA8, 0x00, 0x07, 0x81, 0x00, 0x00, 0x2A};
        r.bytes.insert(r.bytes.begin() + 12, tag.begin(), tag.end());
        r.wire_len += static_cast<std::uint32_t>(tag.size());
    }
}

enum class Link { Sll, Sll2, Raw, NullLe, NullBe, Loop };

/// Replaces the Ethernet header (and its VLAN tags) by another link layer. Frames that are not
/// IP are left out for the link types that can only carry IP.
inline void relink(PcapData& d, Link link) {
    std::vector<Record> out;
    for (auto& r : d.records) {
        const Layout L = layout(r);
        if (L.l3 == 0 || L.l3 > r.bytes.size()) continue;
        const bool ip = L.ethertype == 0x0800 || L.ethertype == 0x86DD;
        std::vector<std::uint8_t> hdr;
        switch (link) {
            case Link::Sll:  // pkttype, ARPHRD_ETHER, addr len 6, src MAC + 2 pad, protocol
                hdr = {0, 0, 0, 1, 0, 6};
                hdr.insert(hdr.end(), r.bytes.begin() + 6, r.bytes.begin() + 12);
                hdr.insert(hdr.end(), {0, 0, static_cast<std::uint8_t>(L.ethertype >> 8),
                                       static_cast<std::uint8_t>(L.ethertype)});
                break;
            case Link::Sll2:  // protocol, reserved, ifindex, ARPHRD, pkttype, addr len, addr
                hdr = {static_cast<std::uint8_t>(L.ethertype >> 8),
                       static_cast<std::uint8_t>(L.ethertype),
                       0,
                       0,
                       0,
                       0,
                       0,
                       2,
                       0,
                       1,
                       0,
                       6};
                hdr.insert(hdr.end(), r.bytes.begin() + 6, r.bytes.begin() + 12);
                hdr.insert(hdr.end(), {0, 0});
                break;
            case Link::Raw:
                break;
            case Link::NullLe:
            case Link::NullBe:
            case Link::Loop: {
                const std::uint32_t af = L.ethertype == 0x86DD ? 30 : 2;
                const bool le = link == Link::NullLe;
                for (int i = 0; i < 4; ++i)
                    hdr.push_back(static_cast<std::uint8_t>(af >> (le ? 8 * i : 24 - 8 * i)));
                break;
            }
        }
        if (!ip && link != Link::Sll && link != Link::Sll2) continue;
        Record p;
        p.ts_us = r.ts_us;
        p.bytes = hdr;
        p.bytes.insert(p.bytes.end(), r.bytes.begin() + static_cast<std::ptrdiff_t>(L.l3),
                       r.bytes.end());
        p.wire_len =
            r.wire_len - static_cast<std::uint32_t>(L.l3) + static_cast<std::uint32_t>(hdr.size());
        out.push_back(std::move(p));
    }
    d.records = std::move(out);
    switch (link) {
        case Link::Sll:
            d.linktype = 113;
            break;
        case Link::Sll2:
            d.linktype = 276;
            break;
        case Link::Raw:
            d.linktype = 101;
            break;  // LINKTYPE_RAW
        case Link::NullLe:
        case Link::NullBe:
            d.linktype = 0;
            break;
        case Link::Loop:
            d.linktype = 108;
            break;
    }
}

/// Splits every IPv4 TCP/UDP packet with more than 16 bytes of IP payload into fragments of
/// `piece` bytes (a multiple of 8); every other datagram's fragments are sent last-first.
inline std::size_t fragment_v4(PcapData& d, std::size_t piece) {
    std::vector<Record> out;
    std::size_t datagrams = 0;
    for (auto& r : d.records) {
        const Layout L = layout(r);
        const std::size_t body = L.l3 + L.ip_hlen;
        if (!L.ok || L.v6 || L.fragmented || !L.whole || (L.proto != 6 && L.proto != 17) ||
            L.ip_end < body + 17) {
            out.push_back(r);
            continue;
        }
        std::vector<Record> frags;
        for (std::size_t at = body; at < L.ip_end; at += piece) {
            const std::size_t n = std::min(piece, L.ip_end - at);
            Record p;
            p.ts_us = r.ts_us;
            p.bytes.assign(r.bytes.begin(), r.bytes.begin() + static_cast<std::ptrdiff_t>(body));
            p.bytes.insert(p.bytes.end(), r.bytes.begin() + static_cast<std::ptrdiff_t>(at),
                           r.bytes.begin() + static_cast<std::ptrdiff_t>(at + n));
            p.wire_len = static_cast<std::uint32_t>(p.bytes.size());
            const bool more = at + n < L.ip_end;
            set16(&p.bytes[L.l3 + 6], ((at - body) / 8) | (more ? 0x2000 : 0));
            set16(&p.bytes[L.l3 + 2], p.bytes.size() - L.l3);
            frags.push_back(std::move(p));
        }
        if (datagrams++ % 2) std::reverse(frags.begin(), frags.end());
        for (auto& f : frags)
            out.push_back(std::move(f));
    }
    d.records = std::move(out);
    return datagrams;
}

/// IPv6 counterpart (RFC 8200 4.5): inserts a fragment header into every IPv6 TCP/UDP packet with
/// more than 16 bytes of payload and splits it into `piece`-byte fragments (a multiple of 8).
inline std::size_t fragment_v6(PcapData& d, std::size_t piece) {
    std::vector<Record> out;
    std::size_t datagrams = 0;
    std::uint32_t id = 0x10000;
    for (auto& r : d.records) {
        const Layout L = layout(r);
        const std::size_t body = L.l3 + 40;
        if (!L.ok || !L.v6 || !L.whole || (L.proto != 6 && L.proto != 17) || L.ip_end < body + 17) {
            out.push_back(r);
            continue;
        }
        ++id;
        std::vector<Record> frags;
        for (std::size_t at = body; at < L.ip_end; at += piece) {
            const std::size_t n = std::min(piece, L.ip_end - at);
            const bool more = at + n < L.ip_end;
            Record p;
            p.ts_us = r.ts_us;
            p.bytes.assign(r.bytes.begin(), r.bytes.begin() + static_cast<std::ptrdiff_t>(body));
            p.bytes[L.l3 + 6] = 44;  // next header: fragment
            const std::size_t off = at - body;
            const std::uint8_t fh[8] = {L.proto,
                                        0,
                                        static_cast<std::uint8_t>(off >> 8),
                                        static_cast<std::uint8_t>((off & 0xF8) | (more ? 1 : 0)),
                                        static_cast<std::uint8_t>(id >> 24),
                                        static_cast<std::uint8_t>(id >> 16),
                                        static_cast<std::uint8_t>(id >> 8),
                                        static_cast<std::uint8_t>(id)};
            p.bytes.insert(p.bytes.end(), fh, fh + 8);
            p.bytes.insert(p.bytes.end(), r.bytes.begin() + static_cast<std::ptrdiff_t>(at),
                           r.bytes.begin() + static_cast<std::ptrdiff_t>(at + n));
            set16(&p.bytes[L.l3 + 4], 8 + n);
            p.wire_len = static_cast<std::uint32_t>(p.bytes.size());
            frags.push_back(std::move(p));
        }
        if (datagrams++ % 2) std::reverse(frags.begin(), frags.end());
        for (auto& f : frags)
            out.push_back(std::move(f));
    }
    d.records = std::move(out);
    return datagrams;
}

}  // namespace hopscope::captures::testing
