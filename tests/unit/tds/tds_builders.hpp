// Test helpers: build TDS packets, PRELOGIN and LOGIN7 payloads byte by byte following the layouts
// of MS-TDS 2.2.3.1 (header), 2.2.6.5 (PRELOGIN) and 2.2.6.4 (LOGIN7), and load the TCP payload
// fixtures of tests/data/tds/ (see the README there for how they were extracted).
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "hopscope/common/flow.hpp"

namespace hopscope::testing {

using Buf = std::vector<std::uint8_t>;

inline Buf from_hex(const std::string& hex) {
    Buf out;
    int hi = -1;
    for (char c : hex) {
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
            hi = -1;
        }
    }
    return out;
}

inline void append(Buf& b, const Buf& x) {
    b.insert(b.end(), x.begin(), x.end());
}
inline void put16le(Buf& b, std::uint32_t v) {
    b.push_back(static_cast<std::uint8_t>(v));
    b.push_back(static_cast<std::uint8_t>(v >> 8));
}
inline void put16be(Buf& b, std::uint32_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}
inline void put32le(Buf& b, std::uint32_t v) {
    put16le(b, v & 0xFFFF);
    put16le(b, v >> 16);
}
inline Buf ucs2(const std::string& ascii) {
    Buf b;
    for (char c : ascii)
        put16le(b, static_cast<std::uint8_t>(c));
    return b;
}

/// One TDS packet: 8-byte header (Length big-endian) + payload.
inline Buf packet(std::uint8_t type, std::uint8_t status, const Buf& payload,
                  std::uint8_t packet_id = 1, std::uint16_t spid = 0) {
    Buf b{type, status};
    put16be(b, static_cast<std::uint32_t>(payload.size() + 8));
    put16be(b, spid);
    b.push_back(packet_id);
    b.push_back(0);
    append(b, payload);
    return b;
}

/// Splits a message payload into packets of at most `max_payload` bytes, EOM on the last.
inline Buf message(std::uint8_t type, const Buf& payload, std::size_t max_payload = 4088) {
    Buf out;
    std::size_t off = 0;
    std::uint8_t id = 1;
    do {
        const std::size_t n = std::min(max_payload, payload.size() - off);
        Buf part(payload.begin() + static_cast<std::ptrdiff_t>(off),
                 payload.begin() + static_cast<std::ptrdiff_t>(off + n));
        off += n;
        append(out, packet(type, off == payload.size() ? 0x01 : 0x00, part, id++));
    } while (off < payload.size());
    return out;
}

/// PRELOGIN payload from (token, data) pairs, offsets/lengths big-endian [MS-TDS 2.2.6.5].
inline Buf prelogin(const std::vector<std::pair<std::uint8_t, Buf>>& opts) {
    Buf table, data;
    const std::size_t base = opts.size() * 5 + 1;
    for (const auto& [tok, d] : opts) {
        table.push_back(tok);
        put16be(table, static_cast<std::uint32_t>(base + data.size()));
        put16be(table, static_cast<std::uint32_t>(d.size()));
        append(data, d);
    }
    table.push_back(0xFF);
    append(table, data);
    return table;
}

struct Login7Spec {
    std::uint32_t tds_version_wire = 0x74000004;  // written little-endian as given
    std::uint8_t flags1 = 0xE0, flags2 = 0x03, type_flags = 0, flags3 = 0;
    std::string host = "WS01", user, password, app = "app", server = "sql1", library = "ODBC",
                language, database, attach_db, change_password;
    Buf sspi;
    bool sspi_long = false;  // write cbSSPI = 0xFFFF and the real length in cbSSPILong
    Buf feature_ext;         // FeatureExt block without terminator; sets fExtension
    Buf client_id{0x00, 0x0c, 0x29, 0x4c, 0x84, 0x92};
};

/// LOGIN7 payload with the 94-byte fixed part of TDS 7.2+ [MS-TDS 2.2.6.4]. Passwords are
/// obfuscated as the protocol does (nibble swap, XOR 0xA5) so tests can look for leaks.
inline Buf login7(const Login7Spec& s) {
    auto obfuscate = [](const std::string& pw) {
        Buf b = ucs2(pw);
        for (auto& x : b)
            x = static_cast<std::uint8_t>(((x << 4) | (x >> 4)) ^ 0xA5);
        return b;
    };
    Buf var;
    const std::size_t fixed = 94;
    auto field = [&](Buf& hdr, const Buf& bytes, std::size_t count) {
        put16le(hdr, static_cast<std::uint32_t>(fixed + var.size()));
        put16le(hdr, static_cast<std::uint32_t>(count));
        append(var, bytes);
    };
    Buf h;  // offsets 36..
    field(h, ucs2(s.host), s.host.size());
    field(h, ucs2(s.user), s.user.size());
    field(h, obfuscate(s.password), s.password.size());
    field(h, ucs2(s.app), s.app.size());
    field(h, ucs2(s.server), s.server.size());
    // ibExtension: points at a DWORD with the FeatureExt offset (patched below).
    std::size_t ext_ptr_pos = 0;
    if (!s.feature_ext.empty()) {
        put16le(h, static_cast<std::uint32_t>(fixed + var.size()));
        put16le(h, 4);
        ext_ptr_pos = var.size();
        put32le(var, 0);
    } else {
        put16le(h, 0);
        put16le(h, 0);
    }
    field(h, ucs2(s.library), s.library.size());
    field(h, ucs2(s.language), s.language.size());
    field(h, ucs2(s.database), s.database.size());
    append(h, s.client_id);
    const std::size_t sspi_off = fixed + var.size();
    put16le(h, static_cast<std::uint32_t>(sspi_off));
    put16le(h, s.sspi_long ? 0xFFFF : static_cast<std::uint32_t>(s.sspi.size()));
    append(var, s.sspi);
    field(h, ucs2(s.attach_db), s.attach_db.size());
    field(h, obfuscate(s.change_password), s.change_password.size());
    put32le(h, s.sspi_long ? static_cast<std::uint32_t>(s.sspi.size()) : 0);
    if (!s.feature_ext.empty()) {
        const std::uint32_t fe = static_cast<std::uint32_t>(fixed + var.size());
        for (int i = 0; i < 4; ++i)
            var[ext_ptr_pos + i] = static_cast<std::uint8_t>(fe >> (8 * i));
        append(var, s.feature_ext);
        var.push_back(0xFF);
    }
    Buf p;
    put32le(p, static_cast<std::uint32_t>(fixed + var.size()));
    put32le(p, s.tds_version_wire);
    put32le(p, 4096);        // PacketSize
    put32le(p, 0x07000000);  // ClientProgVer
    put32le(p, 1234);        // ClientPID
    put32le(p, 0);           // ConnectionID
    p.push_back(s.flags1);
    p.push_back(s.flags2);
    p.push_back(s.type_flags);
    p.push_back(static_cast<std::uint8_t>(s.flags3 | (s.feature_ext.empty() ? 0 : 0x10)));
    put32le(p, 0xFFFFFF88);  // ClientTimeZone -120
    put32le(p, 0x0409);      // ClientLCID
    append(p, h);
    append(p, var);
    return p;
}

/// One TCP payload segment of a fixture (tests/data/tds/*.segments).
struct Segment {
    std::uint64_t frame = 0;
    std::int64_t ts_us = 0;
    int stream = 0;
    Direction dir = Direction::ClientToServer;
    Buf bytes;
};

inline std::vector<Segment> load_segments(const std::string& path) {
    std::vector<Segment> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ls(line);
        Segment s;
        std::string dir, hex;
        ls >> s.frame >> s.ts_us >> s.stream >> dir >> hex;
        s.dir = dir == "c2s" ? Direction::ClientToServer : Direction::ServerToClient;
        s.bytes = from_hex(hex);
        out.push_back(std::move(s));
    }
    return out;
}

inline std::string data_path(const std::string& rel) {
    return std::string(HOPSCOPE_TEST_DATA_DIR) + "/" + rel;
}

}  // namespace hopscope::testing
