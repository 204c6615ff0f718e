// Hand-built server tokens [MS-TDS 2.2.7] and TLS messages [RFC 5246 7.4, RFC 8446 4.1] for the
// synthetic conversations. Layouts as in the cited sections; values chosen for the tests.
#pragma once

#include <string>

#include "../tds/tds_builders.hpp"

namespace hopscope::testing {

inline Buf bvarchar(const std::string& s) {
    Buf b{static_cast<std::uint8_t>(s.size())};
    append(b, ucs2(s));
    return b;
}
inline Buf usvarchar(const std::string& s) {
    Buf b;
    put16le(b, static_cast<std::uint32_t>(s.size()));
    append(b, ucs2(s));
    return b;
}
inline Buf token(std::uint8_t t, const Buf& body) {  // USHORT-length tokens
    Buf b{t};
    put16le(b, static_cast<std::uint32_t>(body.size()));
    append(b, body);
    return b;
}

/// LOGINACK 0xAD [MS-TDS 2.2.7.14]: TDSVersion big-endian.
inline Buf loginack(const std::string& prog, std::uint32_t tds, std::uint8_t major,
                    std::uint8_t minor, std::uint16_t build) {
    Buf b{0x01};
    b.push_back(static_cast<std::uint8_t>(tds >> 24));
    b.push_back(static_cast<std::uint8_t>(tds >> 16));
    b.push_back(static_cast<std::uint8_t>(tds >> 8));
    b.push_back(static_cast<std::uint8_t>(tds));
    append(b, bvarchar(prog));
    b.push_back(major);
    b.push_back(minor);
    b.push_back(static_cast<std::uint8_t>(build >> 8));
    b.push_back(static_cast<std::uint8_t>(build));
    return token(0xAD, b);
}

/// ERROR 0xAA [MS-TDS 2.2.7.10] (TDS 7.2+: LineNumber is a LONG).
inline Buf error_token(std::int32_t number, std::uint8_t state, std::uint8_t cls,
                       const std::string& text, const std::string& server) {
    Buf b;
    put32le(b, static_cast<std::uint32_t>(number));
    b.push_back(state);
    b.push_back(cls);
    append(b, usvarchar(text));
    append(b, bvarchar(server));
    append(b, bvarchar(""));
    put32le(b, 1);
    return token(0xAA, b);
}

/// DONE 0xFD [MS-TDS 2.2.7.6], 8-byte row count (TDS 7.2+).
inline Buf done(std::uint16_t status, std::uint64_t rows = 0) {
    Buf b{0xFD};
    put16le(b, status);
    put16le(b, 0);
    put32le(b, static_cast<std::uint32_t>(rows));
    put32le(b, static_cast<std::uint32_t>(rows >> 32));
    return b;
}

inline Buf sspi_token(const Buf& blob) {
    return token(0xED, blob);
}

/// ENVCHANGE routing (type 20) [MS-TDS 2.2.7.9].
inline Buf routing(const std::string& host, std::uint16_t port) {
    Buf value{0x00};
    put16le(value, port);
    append(value, usvarchar(host));
    Buf b{20};
    put16le(b, static_cast<std::uint32_t>(value.size()));
    append(b, value);
    put16le(b, 0);
    return token(0xE3, b);
}

// ---- TLS -----------------------------------------------------------------------------------

inline Buf tls_record(std::uint8_t type, const Buf& body, std::uint16_t version = 0x0303) {
    Buf b{type, static_cast<std::uint8_t>(version >> 8), static_cast<std::uint8_t>(version)};
    put16be(b, static_cast<std::uint32_t>(body.size()));
    append(b, body);
    return b;
}
inline Buf handshake(std::uint8_t type, const Buf& body) {
    Buf b{type, static_cast<std::uint8_t>(body.size() >> 16),
          static_cast<std::uint8_t>(body.size() >> 8), static_cast<std::uint8_t>(body.size())};
    append(b, body);
    return b;
}
inline Buf ext(std::uint16_t type, const Buf& data) {
    Buf b;
    put16be(b, type);
    put16be(b, static_cast<std::uint32_t>(data.size()));
    append(b, data);
    return b;
}

inline Buf client_hello(const std::string& sni, const std::vector<std::string>& alpn, bool tls13) {
    Buf b{0x03, 0x03};
    append(b, Buf(32, 0x11));
    b.push_back(0);                         // session id
    append(b, from_hex("0004 c02f 1301"));  // cipher suites
    append(b, from_hex("01 00"));           // compression
    Buf exts;
    if (!sni.empty()) {
        Buf name{0x00};
        put16be(name, static_cast<std::uint32_t>(sni.size()));
        name.insert(name.end(), sni.begin(), sni.end());
        Buf list;
        put16be(list, static_cast<std::uint32_t>(name.size()));
        append(list, name);
        append(exts, ext(0x0000, list));
    }
    if (!alpn.empty()) {
        Buf names;
        for (const auto& a : alpn) {
            names.push_back(static_cast<std::uint8_t>(a.size()));
            names.insert(names.end(), a.begin(), a.end());
        }
        Buf list;
        put16be(list, static_cast<std::uint32_t>(names.size()));
        append(list, names);
        append(exts, ext(0x0010, list));
    }
    if (tls13) append(exts, ext(0x002b, from_hex("04 0304 0303")));
    put16be(b, static_cast<std::uint32_t>(exts.size()));
    append(b, exts);
    return handshake(1, b);
}

inline Buf server_hello(std::uint16_t cipher, bool tls13) {
    Buf b{0x03, 0x03};
    append(b, Buf(32, 0x22));
    b.push_back(0);
    put16be(b, cipher);
    b.push_back(0);
    Buf exts;
    if (tls13) append(exts, ext(0x002b, from_hex("0304")));
    put16be(b, static_cast<std::uint32_t>(exts.size()));
    append(b, exts);
    return handshake(2, b);
}

}  // namespace hopscope::testing
