#include "hopscope/tls/tls.hpp"

#include <algorithm>
#include <cstdio>

namespace hopscope::tls {
namespace {

constexpr std::size_t kMaxListEntries = 256;

// HelloRetryRequest random [RFC 8446 4.1.3].
constexpr std::uint8_t kHrrRandom[32] = {
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C};

DecodeResult truncated(std::size_t off, const char* what) {
    return make_error(DecodeError::Code::Truncated, off, what);
}

// ServerNameList [RFC 6066 3]: list length, then {type, uint16 length, name}.
void read_sni(Bytes ext, std::string& out) {
    ByteReader r(ext);
    std::uint16_t list_len = 0;
    if (!r.u16be(list_len)) return;
    while (r.remaining() >= 3) {
        std::uint8_t type = 0;
        std::uint16_t len = 0;
        Bytes name;
        if (!r.u8(type) || !r.u16be(len) || !r.bytes(len, name)) return;
        if (type == 0) {
            out.assign(name.begin(), name.end());
            return;
        }
    }
}

// ProtocolNameList [RFC 7301 3.1]: uint16 list length, then {uint8 length, name}.
void read_alpn(Bytes ext, std::vector<std::string>& out) {
    ByteReader r(ext);
    std::uint16_t list_len = 0;
    if (!r.u16be(list_len)) return;
    while (!r.empty() && out.size() < kMaxListEntries) {
        std::uint8_t len = 0;
        Bytes name;
        if (!r.u8(len) || !r.bytes(len, name)) return;
        out.emplace_back(name.begin(), name.end());
    }
}

// Walks an extensions block, calling f(type, data) for each; false if it is cut.
template <typename F>
bool walk_extensions(ByteReader& r, F&& f) {
    if (r.empty()) return true;  // extensions are optional in TLS <= 1.2
    std::uint16_t total = 0;
    Bytes block;
    if (!r.u16be(total) || !r.bytes(total, block)) return false;
    ByteReader e(block);
    std::size_t n = 0;
    while (!e.empty()) {
        std::uint16_t type = 0;
        std::uint16_t len = 0;
        Bytes data;
        if (!e.u16be(type) || !e.u16be(len) || !e.bytes(len, data)) return false;
        if (++n > 1024) return false;
        f(type, data);
    }
    return true;
}

}  // namespace

std::string version_name(std::uint16_t v) {
    switch (v) {
        case 0x0300:
            return "SSL 3.0";
        case 0x0301:
            return "TLS 1.0";
        case 0x0302:
            return "TLS 1.1";
        case 0x0303:
            return "TLS 1.2";
        case 0x0304:
            return "TLS 1.3";
        default: {
            char buf[16];
            std::snprintf(buf, sizeof buf, "0x%04x", v);
            return buf;
        }
    }
}

const char* content_type_name(std::uint8_t t) {
    switch (t) {
        case content_type::kChangeCipherSpec:
            return "change_cipher_spec";
        case content_type::kAlert:
            return "alert";
        case content_type::kHandshake:
            return "handshake";
        case content_type::kApplicationData:
            return "application_data";
        default:
            return "unknown";
    }
}

bool looks_like_record(Bytes b) {
    return b.size() >= 2 && b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03;
}

DecodeResult parse_record_header(Bytes data, RecordHeader& out) {
    if (data.size() < kRecordHeaderSize) return DecodeResult::need_more();
    out.type = data[0];
    out.version = load_u16be(&data[1]);
    out.length = load_u16be(&data[3]);
    if (out.type < 0x14 || out.type > 0x17) {
        return make_error(DecodeError::Code::BadValue, 0, "unknown TLS content type");
    }
    if ((out.version >> 8) != 0x03) {
        return make_error(DecodeError::Code::BadValue, 1, "TLS record major version is not 3");
    }
    if (out.length > kMaxRecordBody) {
        return make_error(DecodeError::Code::BadLength, 3, "TLS record longer than 2^14+2048");
    }
    return {};
}

std::uint16_t ClientHello::max_version() const {
    std::uint16_t v = legacy_version;
    for (std::uint16_t s : supported_versions) {
        // Ignore GREASE values (0x?a?a) [RFC 8701].
        if ((s & 0x0F0F) == 0x0A0A) continue;
        v = std::max(v, s);
    }
    return v;
}

DecodeResult parse_client_hello(Bytes body, ClientHello& out) {
    out = ClientHello{};
    ByteReader r(body);
    std::uint8_t sid_len = 0;
    std::uint16_t cs_len = 0;
    std::uint8_t comp_len = 0;
    Bytes skip;
    Bytes random;
    if (!r.u16be(out.legacy_version) || !r.bytes(32, random)) {
        return truncated(r.position(), "ClientHello cut in version/random");
    }
    std::copy(random.begin(), random.end(), out.random.begin());
    if (!r.u8(sid_len) || !r.skip(sid_len)) {
        return truncated(r.position(), "ClientHello cut in session id");
    }
    if (!r.u16be(cs_len) || !r.bytes(cs_len, skip)) {
        return truncated(r.position(), "ClientHello cut in cipher suites");
    }
    out.cipher_suite_count = cs_len / 2;
    if (!r.u8(comp_len) || !r.skip(comp_len)) {
        return truncated(r.position(), "ClientHello cut in compression methods");
    }
    const bool ok = walk_extensions(r, [&](std::uint16_t type, Bytes data) {
        if (type == 0) {  // server_name
            read_sni(data, out.sni);
        } else if (type == 16) {  // application_layer_protocol_negotiation
            read_alpn(data, out.alpn);
        } else if (type == 43) {  // supported_versions: uint8 length, then uint16s
            ByteReader v(data);
            std::uint8_t n = 0;
            if (!v.u8(n)) return;
            std::uint16_t ver = 0;
            while (v.u16be(ver) && out.supported_versions.size() < kMaxListEntries) {
                out.supported_versions.push_back(ver);
            }
        }
    });
    if (!ok) return truncated(r.position(), "ClientHello extensions cut");
    return {};
}

DecodeResult parse_server_hello(Bytes body, ServerHello& out) {
    out = ServerHello{};
    ByteReader r(body);
    Bytes random;
    std::uint8_t sid_len = 0;
    std::uint8_t comp = 0;
    if (!r.u16be(out.legacy_version) || !r.bytes(32, random)) {
        return truncated(r.position(), "ServerHello cut in version/random");
    }
    std::copy(random.begin(), random.end(), out.random.begin());
    out.hello_retry_request = std::equal(random.begin(), random.end(), std::begin(kHrrRandom));
    if (!r.u8(sid_len) || !r.skip(sid_len) || !r.u16be(out.cipher_suite) || !r.u8(comp)) {
        return truncated(r.position(), "ServerHello cut");
    }
    const bool ok = walk_extensions(r, [&](std::uint16_t type, Bytes data) {
        if (type == 43 && data.size() == 2) {
            out.selected_version = load_u16be(data.data());
        } else if (type == 16) {
            std::vector<std::string> names;
            read_alpn(data, names);
            if (!names.empty()) out.alpn = names.front();
        }
    });
    if (!ok) return truncated(r.position(), "ServerHello extensions cut");
    return {};
}

HandshakeObserver::HandshakeObserver(ObserverSink& sink, std::size_t max_handshake)
    : sink_(sink), max_handshake_(max_handshake) {}

void HandshakeObserver::reset() {
    hs_header_.clear();
    hs_body_.clear();
    hs_len_ = 0;
    hs_seen_ = 0;
    hs_keep_ = false;
}

void HandshakeObserver::on_record(Bytes record) {
    RecordHeader h;
    const DecodeResult res = parse_record_header(record, h);
    if (res.status() == DecodeStatus::NeedMore) {
        sink_.on_error(
            make_error(DecodeError::Code::Truncated, 0, "TLS record shorter than its header"));
        return;
    }
    if (!res.ok()) {
        sink_.on_error(res.error());
        return;
    }
    if (record.size() != kRecordHeaderSize + h.length) {
        sink_.on_error(make_error(DecodeError::Code::BadLength, 3, "TLS record length mismatch"));
        return;
    }
    const Bytes body = record.subspan(kRecordHeaderSize);
    record_version_ = h.version;
    switch (h.type) {
        case content_type::kChangeCipherSpec:
            if (!tls13_) {
                cipher_active_ = true;
                reset();
            }
            sink_.on_change_cipher_spec();
            break;
        case content_type::kAlert:
            if (cipher_active_ || body.size() != 2) {
                sink_.on_encrypted_record(h.type, body.size());
            } else {
                sink_.on_alert(body[0], body[1]);
            }
            break;
        case content_type::kHandshake:
            if (cipher_active_) {
                sink_.on_encrypted_record(h.type, body.size());
            } else {
                handshake_bytes(body);
            }
            break;
        default:
            sink_.on_encrypted_record(h.type, body.size());
            break;
    }
}

void HandshakeObserver::handshake_bytes(Bytes body) {
    std::size_t i = 0;
    while (i < body.size()) {
        if (hs_header_.size() < 4) {
            if (hs_header_.empty()) hs_record_version_ = record_version_;
            hs_header_.push_back(body[i++]);
            if (hs_header_.size() == 4) {
                hs_len_ = (std::uint32_t{hs_header_[1]} << 16) |
                          (std::uint32_t{hs_header_[2]} << 8) | hs_header_[3];
                hs_seen_ = 0;
                const std::uint8_t t = hs_header_[0];
                hs_keep_ = (t == handshake_type::kClientHello || t == handshake_type::kServerHello);
                hs_body_.clear();
                if (hs_keep_ && hs_len_ > max_handshake_) {
                    sink_.on_error(make_error(DecodeError::Code::TooLarge, 0,
                                              "TLS hello larger than the limit"));
                    hs_keep_ = false;
                }
            } else {
                continue;
            }
        }
        const std::size_t take = std::min<std::size_t>(body.size() - i, hs_len_ - hs_seen_);
        if (hs_keep_) hs_body_.insert(hs_body_.end(), body.begin() + i, body.begin() + i + take);
        hs_seen_ += static_cast<std::uint32_t>(take);
        i += take;
        if (hs_seen_ == hs_len_) {
            const std::uint8_t t = hs_header_[0];
            if (t == handshake_type::kClientHello && hs_keep_) {
                ClientHello ch;
                if (const DecodeResult res = parse_client_hello(hs_body_, ch); res.ok()) {
                    ch.record_version = hs_record_version_;
                    sink_.on_client_hello(ch);
                } else {
                    sink_.on_error(res.error());
                }
            } else if (t == handshake_type::kServerHello && hs_keep_) {
                ServerHello sh;
                if (const DecodeResult res = parse_server_hello(hs_body_, sh); res.ok()) {
                    sh.record_version = hs_record_version_;
                    if (sh.version() == 0x0304) tls13_ = true;
                    sink_.on_server_hello(sh);
                } else {
                    sink_.on_error(res.error());
                }
            } else {
                sink_.on_handshake_message(t, hs_len_);
            }
            hs_header_.clear();
            hs_body_.clear();
            hs_keep_ = false;
        }
    }
}

}  // namespace hopscope::tls
