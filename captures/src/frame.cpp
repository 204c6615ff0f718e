#include "hopscope/captures/frame.hpp"

#include <cstring>

namespace hopscope::captures {
namespace {

constexpr std::uint16_t kEtherIpv4 = 0x0800;
constexpr std::uint16_t kEtherIpv6 = 0x86DD;
constexpr std::uint16_t kEtherVlan = 0x8100;
constexpr std::uint16_t kEtherQinQ = 0x88A8;
constexpr std::uint16_t kEtherQinQOld1 = 0x9100;
constexpr std::uint16_t kEtherQinQOld2 = 0x9200;
constexpr std::uint16_t kEtherMplsUc = 0x8847;
constexpr std::uint16_t kEtherMplsMc = 0x8848;
constexpr std::uint16_t kEtherPppoeSession = 0x8864;
constexpr int kMaxTags = 8;  // VLAN tags / MPLS labels we are willing to peel

FrameError by_version_nibble(Bytes rest, Bytes& l3) {
    if (rest.empty()) return FrameError::Truncated;
    const unsigned v = rest[0] >> 4;
    if (v != 4 && v != 6) return FrameError::NotIp;
    l3 = rest;
    return FrameError::None;
}

FrameError by_ppp_protocol(ByteReader r, Bytes& l3) {
    std::uint8_t first = 0;
    if (!r.u8(first)) return FrameError::Truncated;
    std::uint16_t proto = 0;
    if (first & 0x01) {
        proto = first;  // protocol field compression (RFC 1661 6.5): one odd byte
    } else {
        std::uint8_t second = 0;
        if (!r.u8(second)) return FrameError::Truncated;
        proto = static_cast<std::uint16_t>((first << 8) | second);
    }
    if (proto == 0x0021 || proto == 0x0057) return by_version_nibble(r.rest(), l3);
    return FrameError::NotIp;
}

// Dispatches on an Ethernet-style type field, peeling VLAN tags, MPLS labels and PPPoE.
FrameError by_ethertype(std::uint16_t type, ByteReader r, Bytes& l3) {
    for (int depth = 0; depth <= kMaxTags; ++depth) {
        switch (type) {
            case kEtherIpv4:
            case kEtherIpv6:
                return by_version_nibble(r.rest(), l3);
            case kEtherVlan:
            case kEtherQinQ:
            case kEtherQinQOld1:
            case kEtherQinQOld2:
                // 802.1Q tag: TCI (2) then the inner type (2).
                if (!r.skip(2) || !r.u16be(type)) return FrameError::Truncated;
                continue;
            case kEtherMplsUc:
            case kEtherMplsMc: {
                for (int i = 0; i < kMaxTags; ++i) {
                    std::uint32_t label = 0;
                    if (!r.u32be(label)) return FrameError::Truncated;
                    if (label & 0x100) return by_version_nibble(r.rest(), l3);  // bottom of stack
                }
                return FrameError::BadHeader;
            }
            case kEtherPppoeSession:
                // RFC 2516: ver/type, code, session id, length; then the PPP protocol.
                if (!r.skip(6)) return FrameError::Truncated;
                return by_ppp_protocol(r, l3);
            default:
                return FrameError::NotIp;
        }
    }
    return FrameError::BadHeader;
}

// Inline address setters: the out-of-line IpAddress factories return through memory byte by
// byte, which costs a store-forwarding stall per address on the per-packet path.
inline void set_v4(IpAddress& a, const std::uint8_t* p) {
    a.bytes = {};
    std::memcpy(a.bytes.data(), p, 4);
    a.v6 = false;
}
inline void set_v6(IpAddress& a, const std::uint8_t* p) {
    std::memcpy(a.bytes.data(), p, 16);
    a.v6 = true;
}

FrameError by_address_family(std::uint32_t af, Bytes rest, Bytes& l3) {
    // AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD),
    // 30 (macOS). Anything else is not IP.
    switch (af) {
        case 2:
        case 10:
        case 24:
        case 28:
        case 30:
            return by_version_nibble(rest, l3);
        default:
            return FrameError::NotIp;
    }
}

}  // namespace

const char* to_string(FrameError e) {
    switch (e) {
        case FrameError::None:
            return "ok";
        case FrameError::UnsupportedLink:
            return "unsupported link type";
        case FrameError::NotIp:
            return "not IP";
        case FrameError::Truncated:
            return "truncated header";
        case FrameError::BadHeader:
            return "bad header";
        case FrameError::NotTcpUdp:
            return "not TCP/UDP";
    }
    return "?";
}

bool is_supported_linktype(int linktype) {
    switch (linktype) {
        case dlt::Null:
        case dlt::Ethernet:
        case dlt::Ppp:
        case dlt::RawBsd:
        case dlt::RawOpenBsd:
        case dlt::PppSerial:
        case dlt::Raw101:
        case dlt::Loop:
        case dlt::LinuxSll:
        case dlt::Ipv4:
        case dlt::Ipv6:
        case dlt::LinuxSll2:
            return true;
        default:
            return false;
    }
}

const char* linktype_name(int linktype) {
    switch (linktype) {
        case dlt::Null:
            return "NULL";
        case dlt::Ethernet:
            return "EN10MB";
        case dlt::Ppp:
            return "PPP";
        case dlt::RawBsd:
        case dlt::RawOpenBsd:
        case dlt::Raw101:
            return "RAW";
        case dlt::PppSerial:
            return "PPP_SERIAL";
        case dlt::Loop:
            return "LOOP";
        case dlt::LinuxSll:
            return "LINUX_SLL";
        case dlt::Ipv4:
            return "IPV4";
        case dlt::Ipv6:
            return "IPV6";
        case dlt::LinuxSll2:
            return "LINUX_SLL2";
        default:
            return "unknown";
    }
}

FrameError strip_link(int linktype, Bytes frame, Bytes& l3) {
    ByteReader r(frame);
    switch (linktype) {
        case dlt::Ethernet: {
            std::uint16_t type = 0;
            if (!r.skip(12) || !r.u16be(type)) return FrameError::Truncated;
            if (type < 0x0600) return FrameError::NotIp;  // 802.3 length field: LLC/SNAP
            return by_ethertype(type, r, l3);
        }
        case dlt::LinuxSll: {
            // packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
            std::uint16_t proto = 0;
            if (!r.skip(14) || !r.u16be(proto)) return FrameError::Truncated;
            return by_ethertype(proto, r, l3);
        }
        case dlt::LinuxSll2: {
            // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
            std::uint16_t proto = 0;
            if (!r.u16be(proto) || !r.skip(18)) return FrameError::Truncated;
            return by_ethertype(proto, r, l3);
        }
        case dlt::RawBsd:
        case dlt::RawOpenBsd:
        case dlt::Raw101:
        case dlt::Ipv4:
        case dlt::Ipv6:
            return by_version_nibble(frame, l3);
        case dlt::Null: {
            // Host byte order of the machine that wrote the file: accept both.
            std::uint32_t af = 0;
            if (!r.u32le(af)) return FrameError::Truncated;
            if (af > 0xFFFF) af = load_u32be(frame.data());
            return by_address_family(af, r.rest(), l3);
        }
        case dlt::Loop: {
            std::uint32_t af = 0;
            if (!r.u32be(af)) return FrameError::Truncated;
            if (af > 0xFFFF) af = load_u32le(frame.data());
            return by_address_family(af, r.rest(), l3);
        }
        case dlt::Ppp:
        case dlt::PppSerial: {
            // Optional HDLC address/control 0xFF 0x03 (RFC 1662).
            if (frame.size() >= 2 && frame[0] == 0xFF && frame[1] == 0x03) r.skip(2);
            return by_ppp_protocol(r, l3);
        }
        default:
            return FrameError::UnsupportedLink;
    }
}

FrameError parse_ip(Bytes l3, IpPacket& out) {
    out = IpPacket{};
    if (l3.empty()) return FrameError::Truncated;
    const unsigned version = l3[0] >> 4;
    if (version == 4) {
        if (l3.size() < 20) return FrameError::Truncated;
        const std::size_t ihl = static_cast<std::size_t>(l3[0] & 0x0F) * 4;
        if (ihl < 20) return FrameError::BadHeader;
        if (l3.size() < ihl) return FrameError::Truncated;
        std::size_t total = load_u16be(&l3[2]);
        if (total == 0) total = l3.size();  // TSO/LSO: the NIC fills it in later
        if (total < ihl) return FrameError::BadHeader;
        const std::uint16_t frag = load_u16be(&l3[6]);
        out.more_fragments = (frag & 0x2000) != 0;
        out.frag_offset = static_cast<std::uint32_t>(frag & 0x1FFF) * 8;
        out.fragment = out.more_fragments || out.frag_offset != 0;
        out.frag_id = load_u16be(&l3[4]);
        out.protocol = l3[9];
        set_v4(out.src, &l3[12]);
        set_v4(out.dst, &l3[16]);
        out.wire_payload_len = static_cast<std::uint32_t>(total - ihl);
        const std::size_t end = total < l3.size() ? total : l3.size();  // drops Ethernet padding
        out.payload = l3.subspan(ihl, end - ihl);
        return FrameError::None;
    }
    if (version != 6) return FrameError::NotIp;
    if (l3.size() < 40) return FrameError::Truncated;
    std::size_t plen = load_u16be(&l3[4]);
    if (plen == 0) plen = l3.size() - 40;  // jumbogram or TSO: as captured
    set_v6(out.src, &l3[8]);
    set_v6(out.dst, &l3[24]);
    const std::size_t end = 40 + plen < l3.size() ? 40 + plen : l3.size();
    ByteReader r(l3.subspan(0, end));
    r.skip(40);
    std::uint8_t next = l3[6];
    std::size_t ext_len = 0;
    for (int hops = 0; hops < 16; ++hops) {
        switch (next) {
            case 0:    // hop-by-hop options
            case 43:   // routing
            case 60:   // destination options
            case 135:  // mobility
            {
                std::uint8_t nh = 0, len8 = 0;
                if (!r.u8(nh) || !r.u8(len8)) return FrameError::Truncated;
                const std::size_t len = (static_cast<std::size_t>(len8) + 1) * 8;
                if (!r.skip(len - 2)) return FrameError::Truncated;
                ext_len += len;
                next = nh;
                continue;
            }
            case 51: {  // AH (RFC 4302): length in 4-octet units minus 2
                std::uint8_t nh = 0, len4 = 0;
                if (!r.u8(nh) || !r.u8(len4)) return FrameError::Truncated;
                const std::size_t len = (static_cast<std::size_t>(len4) + 2) * 4;
                if (!r.skip(len - 2)) return FrameError::Truncated;
                ext_len += len;
                next = nh;
                continue;
            }
            case 44: {  // fragment: next(1) reserved(1) offset|flags(2) id(4)
                std::uint8_t nh = 0, reserved = 0;
                std::uint16_t off = 0;
                std::uint32_t id = 0;
                if (!r.u8(nh) || !r.u8(reserved) || !r.u16be(off) || !r.u32be(id))
                    return FrameError::Truncated;
                ext_len += 8;
                out.frag_offset = static_cast<std::uint32_t>(off & 0xFFF8);
                out.more_fragments = (off & 0x0001) != 0;
                out.fragment = out.more_fragments || out.frag_offset != 0;
                out.frag_id = id;
                // The fragmentable part (upper-layer header included) starts here; any
                // extension header after this one is part of it and is not skipped.
                out.protocol = nh;
                out.wire_payload_len =
                    plen >= ext_len ? static_cast<std::uint32_t>(plen - ext_len) : 0;
                out.payload = r.rest();
                return FrameError::None;
            }
            default:
                out.protocol = next;
                if (plen < ext_len) return FrameError::BadHeader;
                out.wire_payload_len = static_cast<std::uint32_t>(plen - ext_len);
                out.payload = r.rest();
                return FrameError::None;
        }
    }
    return FrameError::BadHeader;
}

FrameError parse_tcp(Bytes l4, std::uint32_t wire_len, TcpSegment& out) {
    if (l4.size() < 20) return FrameError::Truncated;
    out.sport = load_u16be(&l4[0]);
    out.dport = load_u16be(&l4[2]);
    out.seq = load_u32be(&l4[4]);
    out.ack = load_u32be(&l4[8]);
    const std::size_t doff = static_cast<std::size_t>(l4[12] >> 4) * 4;
    out.flags = l4[13];
    if (doff < 20) return FrameError::BadHeader;
    if (l4.size() < doff) return FrameError::Truncated;
    out.payload = l4.subspan(doff);
    out.wire_payload = wire_len > doff ? static_cast<std::uint32_t>(wire_len - doff) : 0;
    if (out.wire_payload < out.payload.size())
        out.wire_payload = static_cast<std::uint32_t>(out.payload.size());
    return FrameError::None;
}

FrameError parse_udp(Bytes l4, UdpDatagram& out) {
    if (l4.size() < 8) return FrameError::Truncated;
    out.sport = load_u16be(&l4[0]);
    out.dport = load_u16be(&l4[2]);
    std::size_t len = load_u16be(&l4[4]);
    out.truncated = false;
    if (len == 0) len = l4.size();  // jumbo / offload: as captured
    if (len < 8) return FrameError::BadHeader;
    if (len > l4.size()) {
        out.truncated = true;
        len = l4.size();
    }
    out.payload = l4.subspan(8, len - 8);
    return FrameError::None;
}

}  // namespace hopscope::captures
