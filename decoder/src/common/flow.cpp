#include "hopscope/common/flow.hpp"

#include <charconv>
#include <cstdio>
#include <cstring>

namespace hopscope {

IpAddress IpAddress::v4_from(std::uint32_t host_order) {
    IpAddress a;
    a.bytes[0] = static_cast<std::uint8_t>(host_order >> 24);
    a.bytes[1] = static_cast<std::uint8_t>(host_order >> 16);
    a.bytes[2] = static_cast<std::uint8_t>(host_order >> 8);
    a.bytes[3] = static_cast<std::uint8_t>(host_order);
    return a;
}

IpAddress IpAddress::v4_from_bytes(const std::uint8_t* p) {
    IpAddress a;
    for (int i = 0; i < 4; ++i)
        a.bytes[i] = p[i];
    return a;
}

IpAddress IpAddress::v6_from_bytes(const std::uint8_t* p) {
    IpAddress a;
    a.v6 = true;
    for (int i = 0; i < 16; ++i)
        a.bytes[i] = p[i];
    return a;
}

std::string to_string(const IpAddress& a) {
    std::string out;
    append_to(out, a);
    return out;
}

namespace {
/// A byte in decimal, without leading zeros.
char* write_octet(char* p, unsigned v) {
    if (v >= 100) {
        *p++ = static_cast<char>('0' + v / 100);
        v %= 100;
        *p++ = static_cast<char>('0' + v / 10);
    } else if (v >= 10) {
        *p++ = static_cast<char>('0' + v / 10);
    }
    *p++ = static_cast<char>('0' + v % 10);
    return p;
}
}  // namespace

char* write_text(char* out, const IpAddress& a) {
    char* p = out;
    if (!a.v6) {
        // By hand rather than snprintf or to_chars: every event names its endpoints (the
        // proxy's analysis thread spent a tenth of its time in printf's machinery, perf; and
        // callgrind counted ~600 instructions an endpoint on login-dense captures when each
        // byte went through to_chars into a std::string).
        for (int i = 0; i < 4; ++i) {
            if (i > 0) *p++ = '.';
            p = write_octet(p, a.bytes[i]);
        }
        return p;
    }
    // RFC 5952: lower-case hex, longest run (>= 2) of zero groups compressed to "::".
    unsigned g[8];
    for (int i = 0; i < 8; ++i)
        g[i] = (a.bytes[2 * i] << 8) | a.bytes[2 * i + 1];
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (g[i] != 0) {
            ++i;
            continue;
        }
        int j = i;
        while (j < 8 && g[j] == 0)
            ++j;
        if (j - i > best_len && j - i >= 2) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    for (int i = 0; i < 8; ++i) {
        if (i == best) {
            *p++ = ':';
            *p++ = ':';
            i += best_len - 1;
            continue;
        }
        if (p > out && p[-1] != ':') *p++ = ':';
        p = std::to_chars(p, p + 4, g[i], 16).ptr;  // a group: 4 hex digits at most
    }
    return p;
}

void append_to(std::string& out, const IpAddress& a) {
    char buf[kIpTextMax];
    out.append(buf, write_text(buf, a));
}

char* write_text(char* out, const Endpoint& e) {
    char* p = out;
    if (e.addr.v6) *p++ = '[';
    p = write_text(p, e.addr);
    if (e.addr.v6) *p++ = ']';
    *p++ = ':';
    return std::to_chars(p, p + 5, unsigned{e.port}).ptr;  // a port: 5 digits at most
}

std::string to_string(const Endpoint& e) {
    std::string out;
    out.reserve(e.addr.v6 ? 48 : 21);
    append_to(out, e);
    return out;
}

void append_to(std::string& out, const Endpoint& e) {
    char buf[kEndpointTextMax];
    out.append(buf, write_text(buf, e));
}

std::size_t FlowKeyHash::operator()(const FlowKey& k) const {
    // Word-wise multiply-xorshift over the fields: the pipeline looks a flow up for every
    // packet, and a byte-at-a-time hash over the 38 key bytes shows in its profile.
    std::uint64_t h = 0x9E3779B97F4A7C15ULL;
    auto mix = [&h](std::uint64_t v) {
        h = (h ^ v) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 29;
    };
    auto word = [](const std::uint8_t* p) {
        std::uint64_t v = 0;
        std::memcpy(&v, p, sizeof v);
        return v;
    };
    mix(word(k.client.addr.bytes.data()));
    mix(word(k.client.addr.bytes.data() + 8));
    mix(word(k.server.addr.bytes.data()));
    mix(word(k.server.addr.bytes.data() + 8));
    mix(std::uint64_t{k.client.port} | (std::uint64_t{k.server.port} << 16) |
        (std::uint64_t{static_cast<std::uint8_t>(k.transport)} << 32) |
        (std::uint64_t{k.client.addr.v6} << 40) | (std::uint64_t{k.server.addr.v6} << 41));
    h *= 0x94D049BB133111EBULL;
    return static_cast<std::size_t>(h ^ (h >> 31));
}

std::size_t IpAddressHash::operator()(const IpAddress& a) const {
    std::uint64_t lo = 0, hi = 0;
    std::memcpy(&lo, a.bytes.data(), sizeof lo);
    std::memcpy(&hi, a.bytes.data() + 8, sizeof hi);
    std::uint64_t h = (lo ^ 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL;
    h = ((h ^ (h >> 29)) ^ hi ^ std::uint64_t{a.v6}) * 0x94D049BB133111EBULL;
    return static_cast<std::size_t>(h ^ (h >> 31));
}

}  // namespace hopscope
