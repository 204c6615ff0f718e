// Frame decoding: link layer -> IPv4/IPv6 -> TCP/UDP headers, over hostile bytes.
//
// Every function reads through bounds checks and reports a FrameError instead of failing; none
// allocates or copies. The spans handed out point into the caller's frame buffer.
#pragma once

#include <cstdint>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/flow.hpp"

namespace hopscope::captures {

enum class FrameError : std::uint8_t {
    None = 0,
    UnsupportedLink,  ///< link type we do not decode
    NotIp,            ///< ARP, LLDP, ... : not an error, just not for us
    Truncated,        ///< a header is cut short (snaplen or damage)
    BadHeader,        ///< a header field is impossible (IHL < 5, data offset < 5, ...)
    NotTcpUdp,        ///< ICMP, SCTP, ... after the IP header
};

const char* to_string(FrameError e);

/// Link types (libpcap DLT_* values as returned by pcap_datalink()).
namespace dlt {
inline constexpr int Null = 0;         ///< BSD loopback: 4-byte AF in the writer's byte order
inline constexpr int Ethernet = 1;     ///< with 802.1Q / 802.1ad / QinQ tags, MPLS, PPPoE
inline constexpr int Ppp = 9;          ///< PPP (HDLC-like framing optional)
inline constexpr int RawBsd = 12;      ///< DLT_RAW on most platforms (LINKTYPE_RAW 101 maps here)
inline constexpr int RawOpenBsd = 14;  ///< DLT_RAW on OpenBSD
inline constexpr int PppSerial = 50;   ///< PPP in HDLC framing
inline constexpr int Raw101 = 101;     ///< LINKTYPE_RAW as seen when a file is read raw
inline constexpr int Loop = 108;       ///< OpenBSD loopback: 4-byte AF, network byte order
inline constexpr int LinuxSll = 113;   ///< Linux cooked v1
inline constexpr int Ipv4 = 228;
inline constexpr int Ipv6 = 229;
inline constexpr int LinuxSll2 = 276;  ///< Linux cooked v2
}  // namespace dlt

[[nodiscard]] bool is_supported_linktype(int linktype);
/// Short name for messages ("EN10MB", "LINUX_SLL2", ...), or "unknown".
[[nodiscard]] const char* linktype_name(int linktype);

/// Strips the link header: `l3` is set to the IP header onwards (version nibble is 4 or 6).
FrameError strip_link(int linktype, Bytes frame, Bytes& l3);

/// An IP header, with IPv6 extension headers skipped.
struct IpPacket {
    IpAddress src;
    IpAddress dst;
    std::uint8_t protocol = 0;  ///< upper-layer protocol (6 TCP, 17 UDP, ...)
    Bytes payload;              ///< upper-layer bytes actually captured (Ethernet padding removed)
    std::uint32_t wire_payload_len = 0;  ///< payload length per the IP header (>= payload.size())
    // Fragmentation (IPv4 flags/offset, IPv6 fragment header).
    bool fragment = false;  ///< true when this is one piece of a fragmented datagram
    bool more_fragments = false;
    std::uint32_t frag_offset = 0;  ///< bytes
    std::uint32_t frag_id = 0;
};

/// Parses an IPv4 or IPv6 header. An IPv4 total length of 0 (TSO/LSO captures) means "as captured".
FrameError parse_ip(Bytes l3, IpPacket& out);

namespace tcp_flag {
inline constexpr std::uint8_t Fin = 0x01;
inline constexpr std::uint8_t Syn = 0x02;
inline constexpr std::uint8_t Rst = 0x04;
inline constexpr std::uint8_t Psh = 0x08;
inline constexpr std::uint8_t Ack = 0x10;
}  // namespace tcp_flag

struct TcpSegment {
    std::uint16_t sport = 0;
    std::uint16_t dport = 0;
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint8_t flags = 0;
    Bytes payload;  ///< captured payload
    std::uint32_t wire_payload =
        0;  ///< payload length on the wire (> captured when snaplen cut it)
};

/// `wire_len` is the upper-layer length from the IP header (the TCP header included).
FrameError parse_tcp(Bytes l4, std::uint32_t wire_len, TcpSegment& out);

struct UdpDatagram {
    std::uint16_t sport = 0;
    std::uint16_t dport = 0;
    Bytes payload;
    bool truncated = false;  ///< the UDP length says more than was captured
};

FrameError parse_udp(Bytes l4, UdpDatagram& out);

}  // namespace hopscope::captures
