#include "hopscope/tds/prelogin.hpp"

#include <algorithm>
#include <cstdio>

#include "hopscope/common/text.hpp"
#include "hopscope/tls/tls.hpp"

namespace hopscope::tds {
namespace {

DecodeError bad(DecodeError::Code c, std::size_t off, const char* what) {
    return make_error(c, off, what);
}

}  // namespace

std::string encryption_value_name(std::uint8_t v) {
    std::string base;
    switch (v & 0x7F) {
        case encrypt::kOff:
            base = "ENCRYPT_OFF";
            break;
        case encrypt::kOn:
            base = "ENCRYPT_ON";
            break;
        case encrypt::kNotSup:
            base = "ENCRYPT_NOT_SUP";
            break;
        case encrypt::kReq:
            base = "ENCRYPT_REQ";
            break;
        default: {
            char buf[8];
            std::snprintf(buf, sizeof buf, "0x%02x", v);
            return buf;
        }
    }
    if (v & encrypt::kClientCert) base += "|CLIENT_CERT";
    return base;
}

std::string PreloginVersion::to_string() const {
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(build);
}

bool looks_like_tls(Bytes payload) {
    return payload.size() >= 2 && payload[0] >= tls::content_type::kChangeCipherSpec &&
           payload[0] <= tls::content_type::kApplicationData && payload[1] == 0x03;
}

namespace {

/// The option table: entries up to the 0xFF terminator, at most PreloginOptions::kCapacity.
DecodeResult read_option_table(ByteReader& r, PreloginOptions& options) {
    for (;;) {
        std::uint8_t token = 0;
        if (!r.u8(token)) {
            return bad(DecodeError::Code::Truncated, r.position(),
                       "PRELOGIN option table not terminated by 0xFF");
        }
        if (token == prelogin_option::kTerminator) return {};
        PreloginOption opt;
        opt.token = token;
        if (!r.u16be(opt.offset) || !r.u16be(opt.length)) {
            return bad(DecodeError::Code::Truncated, r.position(), "PRELOGIN option entry cut");
        }
        if (!options.push_back(opt))
            return bad(DecodeError::Code::TooLarge, r.position(), "too many PRELOGIN options");
    }
}

/// A fixed-size option must have exactly its size.
DecodeResult expect_length(const PreloginOption& opt, std::size_t n, const char* what) {
    if (opt.length != n) return bad(DecodeError::Code::BadLength, opt.offset, what);
    return {};
}

/// The data `d` of one non-empty option, already checked to lie inside the payload.
DecodeResult read_option(const PreloginOption& opt, ByteReader d, Prelogin& out) {
    switch (opt.token) {
        case prelogin_option::kVersion: {
            if (auto r = expect_length(opt, 6, "PRELOGIN VERSION must be 6 bytes"); !r.ok())
                return r;
            PreloginVersion v;
            (void)d.u8(v.major);
            (void)d.u8(v.minor);
            (void)d.u16be(v.build);
            (void)d.u16be(v.sub_build);
            out.version = v;
            break;
        }
        case prelogin_option::kEncryption: {
            if (auto r = expect_length(opt, 1, "PRELOGIN ENCRYPTION must be 1 byte"); !r.ok())
                return r;
            std::uint8_t e = 0;
            (void)d.u8(e);
            out.encryption = e;
            break;
        }
        case prelogin_option::kInstOpt: {
            Bytes b = d.rest();
            std::size_t n = 0;
            while (n < b.size() && b[n] != 0)
                ++n;
            out.instance = latin1_to_utf8(b.first(n));
            break;
        }
        case prelogin_option::kThreadId: {
            if (auto r = expect_length(opt, 4, "PRELOGIN THREADID must be 4 bytes"); !r.ok())
                return r;
            std::uint32_t t = 0;
            (void)d.u32be(t);
            out.thread_id = t;
            break;
        }
        case prelogin_option::kMars: {
            if (auto r = expect_length(opt, 1, "PRELOGIN MARS must be 1 byte"); !r.ok()) return r;
            std::uint8_t m = 0;
            (void)d.u8(m);
            out.mars = m;
            break;
        }
        case prelogin_option::kTraceId: {
            // 16 + 16 + 4 (TDS 7.4); older revisions sent 16 + 16 + 4 too, anything else is
            // odd.
            if (auto r = expect_length(opt, 36, "PRELOGIN TRACEID must be 36 bytes"); !r.ok())
                return r;
            TraceId t;
            Bytes b;
            (void)d.bytes(16, b);
            std::copy(b.begin(), b.end(), t.connection_id.begin());
            (void)d.bytes(16, b);
            std::copy(b.begin(), b.end(), t.activity_id.begin());
            (void)d.u32le(t.activity_sequence);
            out.trace_id = t;
            break;
        }
        case prelogin_option::kFedAuthRequired: {
            if (auto r = expect_length(opt, 1, "PRELOGIN FEDAUTHREQUIRED must be 1 byte"); !r.ok())
                return r;
            std::uint8_t f = 0;
            (void)d.u8(f);
            out.fed_auth_required = f;
            break;
        }
        case prelogin_option::kNonceOpt: {
            if (auto r = expect_length(opt, 32, "PRELOGIN NONCEOPT must be 32 bytes"); !r.ok())
                return r;
            std::array<std::uint8_t, 32> n{};
            Bytes b;
            (void)d.bytes(32, b);
            std::copy(b.begin(), b.end(), n.begin());
            out.nonce = n;
            break;
        }
        default:
            break;  // unknown option: kept in the table, data ignored
    }
    return {};
}

}  // namespace

DecodeResult parse_prelogin(Bytes payload, Prelogin& out) {
    out.reset();
    ByteReader r(payload);
    if (auto res = read_option_table(r, out.options); !res.ok()) return res;
    const std::size_t table_end = r.position();
    for (const PreloginOption& opt : out.options) {
        auto sub = r.sub(opt.offset, opt.length);
        if (!sub) {
            return bad(DecodeError::Code::Truncated, opt.offset,
                       "PRELOGIN option data outside the payload");
        }
        if (opt.length > 0 && opt.offset < table_end) {
            return bad(DecodeError::Code::BadValue, opt.offset,
                       "PRELOGIN option data overlaps the option table");
        }
        if (opt.length == 0) continue;  // present but empty: nothing to read
        if (auto res = read_option(opt, *sub, out); !res.ok()) return res;
    }
    return {};
}

const char* to_string(EncryptionMode m) {
    switch (m) {
        case EncryptionMode::Unknown:
            return "unknown";
        case EncryptionMode::None:
            return "none";
        case EncryptionMode::LoginOnly:
            return "login-only";
        case EncryptionMode::Full:
            return "full";
        case EncryptionMode::Strict:
            return "strict";
    }
    return "?";
}

EncryptionNegotiation negotiate_encryption(std::uint8_t client, std::uint8_t server) {
    EncryptionNegotiation n;
    n.client_cert = (client & encrypt::kClientCert) != 0;
    const std::uint8_t c = client & 0x7F;
    const std::uint8_t s = server & 0x7F;
    if (c > encrypt::kReq || s > encrypt::kReq) return n;  // Unknown
    const bool c_wants_full = c == encrypt::kOn || c == encrypt::kReq;
    const bool s_wants_full = s == encrypt::kOn || s == encrypt::kReq;
    if (c == encrypt::kNotSup || s == encrypt::kNotSup) {
        n.mode = EncryptionMode::None;
        n.peer_should_abort =
            (c == encrypt::kNotSup && s_wants_full) || (s == encrypt::kNotSup && c_wants_full);
    } else if (c == encrypt::kOff && s == encrypt::kOff) {
        n.mode = EncryptionMode::LoginOnly;
    } else {
        n.mode = EncryptionMode::Full;
    }
    if (c_wants_full) {
        n.downgraded = n.mode == EncryptionMode::None || n.mode == EncryptionMode::LoginOnly;
    } else if (c == encrypt::kOff) {
        n.downgraded = n.mode == EncryptionMode::None;
    }
    return n;
}

}  // namespace hopscope::tds
