// Addresses, connection identity, direction and time, as handed to the decoder by a front-end.
//
// The decoder never reads a clock or a socket: a pcap reader, a live capture and the proxy all
// describe what they saw with these types, which is what makes their events identical.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace hopscope {

/// Microseconds since the Unix epoch (UTC), as given by the front-end.
struct Timestamp {
    std::int64_t micros = 0;
    auto operator<=>(const Timestamp&) const = default;
};

/// An IPv4 or IPv6 address (IPv4 stored as ::ffff:a.b.c.d is NOT used; `v6` says which).
struct IpAddress {
    std::array<std::uint8_t, 16> bytes{};
    bool v6 = false;
    auto operator<=>(const IpAddress&) const = default;

    static IpAddress v4_from(std::uint32_t host_order);
    static IpAddress v4_from_bytes(const std::uint8_t* p);  ///< 4 bytes, network order
    static IpAddress v6_from_bytes(const std::uint8_t* p);  ///< 16 bytes
};

std::string to_string(const IpAddress& a);
/// to_string(a) appended to `out` (keys built of several parts, in one string).
void append_to(std::string& out, const IpAddress& a);
/// The most to_string(IpAddress) writes: eight groups of four hex digits and seven colons.
inline constexpr std::size_t kIpTextMax = 39;
/// to_string(a) written at `out`, which has room for kIpTextMax bytes: where it ends.
char* write_text(char* out, const IpAddress& a);

struct Endpoint {
    IpAddress addr;
    std::uint16_t port = 0;
    auto operator<=>(const Endpoint&) const = default;
};

/// "a.b.c.d:port" or "[v6]:port".
std::string to_string(const Endpoint& e);
void append_to(std::string& out, const Endpoint& e);
/// The most to_string(Endpoint) writes: the brackets, the colon and five digits more.
inline constexpr std::size_t kEndpointTextMax = kIpTextMax + 8;
/// to_string(e) written at `out`, which has room for kEndpointTextMax bytes: where it ends.
char* write_text(char* out, const Endpoint& e);

enum class Transport : std::uint8_t { Tcp = 6, Udp = 17 };

/// One connection (or UDP flow): `client` is the side that opened it when known (SYN seen,
/// or the side talking to the well-known port), `server` the other.
struct FlowKey {
    Endpoint client;
    Endpoint server;
    Transport transport = Transport::Tcp;
    auto operator<=>(const FlowKey&) const = default;
};

enum class Direction : std::uint8_t { ClientToServer = 0, ServerToClient = 1 };

inline Direction reverse(Direction d) {
    return d == Direction::ClientToServer ? Direction::ServerToClient : Direction::ClientToServer;
}
constexpr const char* to_string(Direction d) {
    return d == Direction::ClientToServer ? "c2s" : "s2c";
}

// The hashes of the unordered maps keyed by flows and addresses (the pipeline's connections,
// the analyzer's indexes) are deliberately not noexcept: libstdc++ then keeps each node's hash
// in the node, so that a lookup compares hashes before keys and walks a bucket without hashing
// its nodes again (callgrind, 20 MB of login-dense traffic, one thread: 484.0 M -> 479.3 M
// instructions; perf: the hop table's 16-byte address compares gone from the profile).
struct FlowKeyHash {
    std::size_t operator()(const FlowKey& k) const;
};
struct IpAddressHash {
    std::size_t operator()(const IpAddress& a) const;
};

}  // namespace hopscope
