#include "wire.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "hopscope/auth/ntlm.hpp"
#include "hopscope/tds/login7.hpp"
#include "hopscope/tds/prelogin.hpp"

namespace hopscope::lab {

namespace {

void put8(Buffer& b, std::uint8_t v) {
    b.push_back(v);
}
void put16le(Buffer& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v));
    b.push_back(static_cast<std::uint8_t>(v >> 8));
}
void put16be(Buffer& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}
void put32le(Buffer& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put32be(Buffer& b, std::uint32_t v) {
    for (int i = 3; i >= 0; --i)
        b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put64le(Buffer& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
        b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void append(Buffer& b, const Buffer& x) {
    b.insert(b.end(), x.begin(), x.end());
}
void set16le(Buffer& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v);
    b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}
void set32le(Buffer& b, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}
void b_varchar(Buffer& b, std::string_view s) {
    const auto n = std::min<std::size_t>(s.size(), 255);
    put8(b, static_cast<std::uint8_t>(n));
    append(b, ucs2(s.substr(0, n)));
}
void us_varchar(Buffer& b, std::string_view s) {
    const auto n = std::min<std::size_t>(s.size(), 0xFFFF);
    put16le(b, static_cast<std::uint16_t>(n));
    append(b, ucs2(s.substr(0, n)));
}
bool read_b_varchar(ByteReader& r, std::string& out) {
    std::uint8_t n = 0;
    Bytes raw;
    if (!r.u8(n) || !r.bytes(std::size_t{n} * 2, raw)) return false;
    out = narrow(raw);
    return true;
}
bool read_us_varchar(ByteReader& r, std::string& out) {
    std::uint16_t n = 0;
    Bytes raw;
    if (!r.u16le(n) || !r.bytes(std::size_t{n} * 2, raw)) return false;
    out = narrow(raw);
    return true;
}
bool fail(std::string* why, const char* text) {
    if (why) *why = text;
    return false;
}

constexpr std::array<std::uint8_t, 5> kCollation{0x09, 0x04, 0xD0, 0x00,
                                                 0x34};  // Latin1_General_CI_AS
constexpr std::array<std::uint8_t, 9> kKrb5Oid{0x2a, 0x86, 0x48, 0x86, 0xf7,
                                               0x12, 0x01, 0x02, 0x02};
constexpr std::array<std::uint8_t, 9> kMsKrb5Oid{0x2a, 0x86, 0x48, 0x82, 0xf7,
                                                 0x12, 0x01, 0x02, 0x02};
constexpr std::array<std::uint8_t, 6> kSpnegoOid{0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
constexpr std::array<std::uint8_t, 8> kNtlmSig{'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};

bool equal(Bytes a, const auto& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

// ---------------------------------------------------------------- strings
Buffer ucs2(std::string_view ascii) {
    Buffer b;
    b.reserve(ascii.size() * 2);
    for (char c : ascii) {
        b.push_back(static_cast<std::uint8_t>(c));
        b.push_back(0);
    }
    return b;
}

std::string narrow(Bytes raw) {
    std::string s;
    s.reserve(raw.size() / 2);
    for (std::size_t i = 0; i + 1 < raw.size(); i += 2) {
        const unsigned cu = raw[i] | (raw[i + 1] << 8);
        s.push_back(cu < 0x80 ? static_cast<char>(cu) : '?');
    }
    return s;
}

std::string lower(std::string_view s) {
    std::string o(s);
    for (auto& c : o)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return o;
}

SecretString& SecretString::operator=(SecretString&& o) noexcept {
    wipe();
    s_ = std::move(o.s_);
    return *this;
}
void SecretString::wipe() {
    volatile char* p = s_.data();
    for (std::size_t i = 0; i < s_.size(); ++i)
        p[i] = 0;
    s_.clear();
}
bool SecretString::equals(std::string_view other) const {
    unsigned diff = static_cast<unsigned>(s_.size() ^ other.size());
    const std::size_t n = std::min(s_.size(), other.size());
    for (std::size_t i = 0; i < n; ++i)
        diff |= static_cast<unsigned>(static_cast<unsigned char>(s_[i]) ^
                                      static_cast<unsigned char>(other[i]));
    return diff == 0;
}

// ---------------------------------------------------------------- packets
Buffer frame_packets(std::uint8_t type, const Buffer& payload, std::size_t packet_size,
                     std::uint16_t spid) {
    packet_size = std::clamp<std::size_t>(packet_size, 512, 32767);
    const std::size_t chunk = packet_size - 8;
    Buffer out;
    std::uint8_t id = 1;
    std::size_t pos = 0;
    do {
        const std::size_t n = std::min(chunk, payload.size() - pos);
        const bool last = pos + n == payload.size();
        put8(out, type);
        put8(out, last ? 0x01 : 0x00);
        put16be(out, static_cast<std::uint16_t>(n + 8));
        put16be(out, spid);
        put8(out, id++);
        put8(out, 0);
        out.insert(out.end(), payload.begin() + static_cast<std::ptrdiff_t>(pos),
                   payload.begin() + static_cast<std::ptrdiff_t>(pos + n));
        pos += n;
    } while (pos < payload.size());
    return out;
}

// ---------------------------------------------------------------- PRELOGIN
std::optional<PreloginInfo> parse_prelogin(Bytes payload) {
    tds::Prelogin p;
    if (!tds::parse_prelogin(payload, p).ok()) return std::nullopt;
    PreloginInfo info;
    info.encryption = p.encryption;
    info.has_fedauth = p.fed_auth_required.has_value();
    return info;
}

Buffer build_prelogin_response(std::uint8_t encryption) {
    // VERSION 16.0.4218.0 (the server's product version), ENCRYPTION, INSTOPT (0 = OK), THREADID
    // (empty)
    Buffer b;
    const std::uint16_t base = 4 * 5 + 1;
    put8(b, 0x00), put16be(b, base), put16be(b, 6);
    put8(b, 0x01), put16be(b, base + 6), put16be(b, 1);
    put8(b, 0x02), put16be(b, base + 7), put16be(b, 1);
    put8(b, 0x03), put16be(b, base + 8), put16be(b, 0);
    put8(b, 0xFF);
    for (std::uint8_t v : {0x10, 0x00, 0x10, 0x7A, 0x00, 0x00})
        put8(b, v);
    put8(b, encryption);
    put8(b, 0x00);
    return b;
}

Buffer build_prelogin_request(std::uint8_t encryption) {
    const std::string inst = "MSSQLServer";
    Buffer b;
    const std::uint16_t base = 5 * 5 + 1;
    const auto ilen = static_cast<std::uint16_t>(inst.size() + 1);
    put8(b, 0x00), put16be(b, base), put16be(b, 6);
    put8(b, 0x01), put16be(b, base + 6), put16be(b, 1);
    put8(b, 0x02), put16be(b, base + 7), put16be(b, ilen);
    put8(b, 0x03), put16be(b, static_cast<std::uint16_t>(base + 7 + ilen)), put16be(b, 4);
    put8(b, 0x04), put16be(b, static_cast<std::uint16_t>(base + 11 + ilen)), put16be(b, 1);
    put8(b, 0xFF);
    for (std::uint8_t v : {0x10, 0x00, 0x10, 0x7A, 0x00, 0x00})
        put8(b, v);
    put8(b, encryption);
    b.insert(b.end(), inst.begin(), inst.end());
    put8(b, 0);
    put32be(b, 0x1234);
    put8(b, 0);
    return b;
}

// ---------------------------------------------------------------- LOGIN7
std::optional<Login7Info> parse_login7(Bytes payload, SecretString* password, std::string* why) {
    tds::Login7 l;
    Bytes sspi;
    if (const DecodeResult res = tds::parse_login7(payload, l, sspi); !res.ok()) {
        if (why) *why = res.error().detail.empty() ? "malformed LOGIN7" : res.error().detail;
        return std::nullopt;
    }
    Login7Info li;
    li.tds_version = l.tds_version;
    li.packet_size = l.packet_size;
    li.option_flags2 = l.option_flags2;
    li.integrated = l.integrated_security();
    li.host = l.host;
    li.user = l.user;
    li.app = l.app;
    li.server = l.server;
    li.library = l.library;
    li.database = l.db;
    li.sspi.assign(sspi.begin(), sspi.end());
    li.password_chars = l.password_length;
    if (password) {
        // The decoder never decodes the password; the server reads it from the offsets itself.
        // MS-TDS 2.2.6.4: every byte is nibble-swapped, then XOR 0xA5.
        auto raw = ByteReader(payload).sub(l.password.offset, std::size_t{l.password.length} * 2);
        if (!raw) {
            if (why) *why = "LOGIN7 password field points outside the message";
            return std::nullopt;
        }
        Buffer plain(raw->size());
        for (std::size_t i = 0; i < raw->size(); ++i) {
            const std::uint8_t x = raw->data()[i] ^ 0xA5;
            plain[i] = static_cast<std::uint8_t>(((x << 4) & 0xF0) | (x >> 4));
        }
        password->mut() = narrow(plain);
        std::fill(plain.begin(), plain.end(), 0);
    }
    return li;
}

Buffer build_login7(const Login7Request& q) {
    Buffer b(94, 0);
    set32le(b, 4, kTds74);
    set32le(b, 8, q.packet_size);
    set32le(b, 12, 0x10000000);  // client program version
    set32le(b, 16, 4242);        // client PID
    b[24] = 0xE0;                // fUseDB | fDatabase | fSetLang
    b[25] = 0x83;                // fLanguage | fODBC | fIntSecurity
    b[26] = 0x00;
    b[27] = 0x00;
    set32le(b, 32, 0x0409);
    Buffer var;
    auto add = [&](std::size_t at, const Buffer& data, std::size_t units) {
        set16le(b, at, static_cast<std::uint16_t>(94 + var.size()));
        set16le(b, at + 2, static_cast<std::uint16_t>(data.size() / units));
        append(var, data);
    };
    add(36, ucs2(q.host), 2);
    add(40, {}, 2);  // user: integrated security
    add(44, {}, 2);  // password: none
    add(48, ucs2(q.app), 2);
    add(52, ucs2(q.server), 2);
    add(56, {}, 1);  // no FeatureExt
    add(60, ucs2(q.library), 2);
    add(64, {}, 2);
    add(68, ucs2(q.database), 2);
    for (int i = 0; i < 6; ++i)
        b[72 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(0x02 + i);
    const std::size_t sspi_len = q.sspi.size();
    set16le(b, 78, static_cast<std::uint16_t>(94 + var.size()));
    set16le(b, 80, static_cast<std::uint16_t>(std::min<std::size_t>(sspi_len, 0xFFFF)));
    append(var, q.sspi);
    add(82, {}, 2);
    add(86, {}, 2);
    set32le(b, 90, sspi_len >= 0xFFFF ? static_cast<std::uint32_t>(sspi_len) : 0);
    append(b, var);
    set32le(b, 0, static_cast<std::uint32_t>(b.size()));
    return b;
}

// ---------------------------------------------------------------- tokens
void TokenWriter::error(std::uint32_t number, std::uint8_t state, std::uint8_t cls,
                        std::string_view msg, std::string_view server, bool is_info) {
    Buffer body;
    put32le(body, number);
    put8(body, state);
    put8(body, cls);
    us_varchar(body, msg);
    b_varchar(body, server);
    b_varchar(body, "");
    if (old_)
        put16le(body, 1);
    else
        put32le(body, 1);
    put8(b_, is_info ? 0xAB : 0xAA);
    put16le(b_, static_cast<std::uint16_t>(body.size()));
    append(b_, body);
}

void TokenWriter::loginack(std::uint32_t tds_version) {
    Buffer body;
    put8(body, 1);
    put32be(body, tds_version);
    b_varchar(body, "Microsoft SQL Server");
    for (std::uint8_t v : {0x10, 0x00, 0x10, 0x7A})
        put8(body, v);
    put8(b_, 0xAD);
    put16le(b_, static_cast<std::uint16_t>(body.size()));
    append(b_, body);
}

void TokenWriter::env_string(std::uint8_t type, std::string_view nv, std::string_view ov) {
    Buffer body;
    put8(body, type);
    b_varchar(body, nv);
    b_varchar(body, ov);
    put8(b_, 0xE3);
    put16le(b_, static_cast<std::uint16_t>(body.size()));
    append(b_, body);
}

void TokenWriter::env_collation() {
    put8(b_, 0xE3);
    put16le(b_, 1 + 1 + kCollation.size() + 1);
    put8(b_, 7);
    put8(b_, kCollation.size());
    b_.insert(b_.end(), kCollation.begin(), kCollation.end());
    put8(b_, 0);
}

void TokenWriter::sspi(const Buffer& token) {
    put8(b_, 0xED);
    put16le(b_, static_cast<std::uint16_t>(std::min<std::size_t>(token.size(), 0xFFFF)));
    b_.insert(
        b_.end(), token.begin(),
        token.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(token.size(), 0xFFFF)));
}

void TokenWriter::done(std::uint16_t status, std::uint16_t curcmd, std::uint64_t rows) {
    put8(b_, 0xFD);
    put16le(b_, status);
    put16le(b_, curcmd);
    if (old_)
        put32le(b_, static_cast<std::uint32_t>(rows));
    else
        put64le(b_, rows);
}

void TokenWriter::result(const std::vector<std::string>& columns,
                         const std::vector<std::vector<std::string>>& rows, bool int_col) {
    put8(b_, 0x81);
    put16le(b_, static_cast<std::uint16_t>(columns.size()));
    for (const auto& c : columns) {
        if (old_)
            put16le(b_, 0);
        else
            put32le(b_, 0);
        put16le(b_, 0x0001);  // nullable
        if (int_col) {
            put8(b_, 0x26);
            put8(b_, 4);
        } else {
            put8(b_, 0xE7);
            put16le(b_, 8000);
            b_.insert(b_.end(), kCollation.begin(), kCollation.end());
        }
        b_varchar(b_, c);
    }
    for (const auto& row : rows) {
        put8(b_, 0xD1);
        for (std::size_t i = 0; i < columns.size(); ++i) {
            const std::string v = i < row.size() ? row[i] : std::string();
            if (int_col) {
                put8(b_, 4);
                put32le(b_, static_cast<std::uint32_t>(std::strtol(v.c_str(), nullptr, 10)));
            } else {
                const auto u = ucs2(v.substr(0, 4000));
                put16le(b_, static_cast<std::uint16_t>(u.size()));
                append(b_, u);
            }
        }
    }
}

std::optional<ReplyInfo> parse_reply(Bytes payload, std::string* why) {
    ByteReader r(payload);
    ReplyInfo ri;
    std::vector<std::uint8_t> coltypes;
    while (!r.empty()) {
        std::uint8_t tok = 0;
        r.u8(tok);
        std::uint16_t len = 0;
        switch (tok) {
            case 0xAA:
            case 0xAB: {
                if (!r.u16le(len)) return fail(why, "truncated ERROR/INFO"), std::nullopt;
                auto body = r.sub(r.position(), len);
                if (!body || !r.skip(len))
                    return fail(why, "ERROR/INFO longer than the reply"), std::nullopt;
                ServerMessage m;
                if (!body->u32le(m.number) || !body->u8(m.state) || !body->u8(m.cls) ||
                    !read_us_varchar(*body, m.text) || !read_b_varchar(*body, m.server))
                    return fail(why, "malformed ERROR/INFO"), std::nullopt;
                if (tok == 0xAA) ri.errors.push_back(std::move(m));
                break;
            }
            case 0xAD:
            case 0xE3:
            case 0xA9:
            case 0xED: {
                Bytes body;
                if (!r.u16le(len) || !r.bytes(len, body))
                    return fail(why, "truncated token"), std::nullopt;
                if (tok == 0xAD) ri.loginack = true;
                if (tok == 0xED) ri.sspi = Buffer(body.begin(), body.end());
                break;
            }
            case 0xFD:
            case 0xFE:
            case 0xFF: {
                std::uint16_t status = 0, cmd = 0;
                std::uint64_t rows = 0;
                if (!r.u16le(status) || !r.u16le(cmd) || !r.u64le(rows))
                    return fail(why, "truncated DONE"), std::nullopt;
                if (status & kDoneError) ri.done_error = true;
                break;
            }
            case 0x79: {
                std::uint32_t v = 0;
                if (!r.u32le(v)) return fail(why, "truncated RETURNSTATUS"), std::nullopt;
                break;
            }
            case 0x81: {
                std::uint16_t n = 0;
                if (!r.u16le(n) || n > 64) return fail(why, "bad COLMETADATA"), std::nullopt;
                ri.columns.clear();
                coltypes.clear();
                for (std::uint16_t i = 0; i < n; ++i) {
                    std::uint32_t ut = 0;
                    std::uint16_t flags = 0;
                    std::uint8_t type = 0;
                    if (!r.u32le(ut) || !r.u16le(flags) || !r.u8(type))
                        return fail(why, "bad column"), std::nullopt;
                    if (type == 0xE7) {
                        if (!r.skip(2 + 5)) return fail(why, "bad NVARCHAR"), std::nullopt;
                    } else if (type == 0x26) {
                        if (!r.skip(1)) return fail(why, "bad INTN"), std::nullopt;
                    } else {
                        return fail(why, "column type not used by the lab"), std::nullopt;
                    }
                    std::string name;
                    if (!read_b_varchar(r, name)) return fail(why, "bad column name"), std::nullopt;
                    ri.columns.push_back(name);
                    coltypes.push_back(type);
                }
                break;
            }
            case 0xD1: {
                std::vector<std::string> row;
                for (auto t : coltypes) {
                    if (t == 0xE7) {
                        std::uint16_t n = 0;
                        Bytes v;
                        if (!r.u16le(n)) return fail(why, "truncated ROW"), std::nullopt;
                        if (n == 0xFFFF) {
                            row.emplace_back("NULL");
                            continue;
                        }
                        if (!r.bytes(n, v)) return fail(why, "truncated ROW"), std::nullopt;
                        row.push_back(narrow(v));
                    } else {
                        std::uint8_t n = 0;
                        Bytes v;
                        if (!r.u8(n) || n > 8 || !r.bytes(n, v))
                            return fail(why, "bad INTN value"), std::nullopt;
                        std::int64_t x = 0;
                        for (std::size_t i = 0; i < v.size(); ++i)
                            x |= static_cast<std::int64_t>(v[i]) << (8 * i);
                        row.push_back(n == 0 ? "NULL" : std::to_string(x));
                    }
                }
                ri.rows.push_back(std::move(row));
                break;
            }
            default:
                return fail(why, "token not used by the lab"), std::nullopt;
        }
    }
    return ri;
}

std::optional<std::string> parse_sql_batch(Bytes payload, bool old_tds) {
    ByteReader r(payload);
    if (!old_tds) {
        std::uint32_t total = 0;
        if (!r.u32le(total) || total < 4 || !r.seek(total)) return std::nullopt;
    }
    return narrow(r.rest());
}

Buffer build_sql_batch(std::string_view sql) {
    Buffer b;
    put32le(b, 22);
    put32le(b, 18);
    put16le(b, 2);  // transaction descriptor header
    put64le(b, 0);
    put32le(b, 1);
    append(b, ucs2(sql));
    return b;
}

// ---------------------------------------------------------------- NTLM
namespace ntlm {

std::uint32_t message_type(Bytes b) {
    if (b.size() < 12 || !std::equal(kNtlmSig.begin(), kNtlmSig.end(), b.begin())) return 0;
    return load_u32le(b.data() + 8);
}

std::optional<AuthenticateInfo> parse_authenticate(Bytes b) {
    auth::NtlmMessage m;
    if (!auth::parse_ntlm(b, m).ok() || m.type != 3) return std::nullopt;
    const auto& x = std::get<auth::NtlmAuthenticate>(m.msg);
    AuthenticateInfo a;
    a.domain = x.domain;
    a.user = x.user;
    a.workstation = x.workstation;
    a.lm_len = static_cast<std::uint16_t>(x.lm_response_len);
    a.nt_len = static_cast<std::uint16_t>(x.nt_response_len);
    a.flags = x.flags;
    a.anonymous = x.anonymous;
    a.ntlm_version = x.blob_past_nt_len || x.response_kind == auth::NtlmResponseKind::V2 ? 2
                     : x.response_kind == auth::NtlmResponseKind::V1                     ? 1
                                                                                         : 0;
    return a;
}

std::string fix_negotiate(Buffer& msg) {
    if (message_type(msg) != 1 || msg.size() < 16) return "";
    std::string what;
    if (msg.size() < 40) {
        msg.resize(40, 0);
        what += "padded NEGOTIATE to 40 bytes; ";
    }
    std::uint32_t flags = load_u32le(msg.data() + 12);
    if (!(flags & kRequestTarget)) {
        flags |= kRequestTarget;
        set32le(msg, 12, flags);
        what += "set REQUEST_TARGET; ";
    }
    return what;
}

std::string fix_authenticate(Buffer& msg) {
    if (message_type(msg) != 3 || msg.size() < 64) return "";
    std::uint32_t flags = load_u32le(msg.data() + 60);
    if (!(flags & kVersion)) return "";
    std::uint32_t min_off = 0xFFFFFFFF;
    for (std::size_t at : {12, 20, 28, 36, 44, 52}) {
        if (load_u16le(msg.data() + at) != 0)
            min_off = std::min(min_off, load_u32le(msg.data() + at + 4));
    }
    if (min_off >= 72) return "";
    set32le(msg, 60, flags & ~kVersion);
    return "cleared NEGOTIATE_VERSION (no Version field); ";
}

std::string fix_nt_length(Buffer& msg) {
    if (message_type(msg) != 3 || msg.size() < 64) return "";
    const std::uint16_t nt_len = load_u16le(msg.data() + 20);
    const std::uint32_t nt_off = load_u32le(msg.data() + 24);
    if (nt_len != 16 || nt_off > msg.size() || msg.size() - nt_off <= 16 + 28) return "";
    // only when the NT response is the last buffer: the bytes after it can be nothing but its blob
    for (std::size_t at : {12, 28, 36, 44, 52}) {
        if (load_u16le(msg.data() + at) != 0 && load_u32le(msg.data() + at + 4) > nt_off) return "";
    }
    // the NTLMv2 client challenge starts with RespType 1, HiRespType 1 [MS-NLMP 2.2.2.7]
    if (msg[nt_off + 16] != 0x01 || msg[nt_off + 17] != 0x01) return "";
    const auto full =
        static_cast<std::uint16_t>(std::min<std::size_t>(msg.size() - nt_off, 0xFFFF));
    set16le(msg, 20, full);
    set16le(msg, 22, full);
    return "NtChallengeResponse length 16 extended over the NTLMv2 blob; ";
}

Buffer build_anonymous_negotiate() {
    Buffer b(kNtlmSig.begin(), kNtlmSig.end());
    put32le(b, 1);
    put32le(b,
            kUnicode | kOem | kRequestTarget | kNtlm | kAlwaysSign | kEss | kVersion | k128 | k56);
    for (int i = 0; i < 2; ++i) {  // domain, workstation: empty
        put16le(b, 0), put16le(b, 0), put32le(b, 40);
    }
    for (std::uint8_t v : {10, 0, 0x63, 0x45, 0, 0, 0, 0x0F})
        put8(b, v);  // 10.0.17763, NTLM rev 15
    return b;
}

Buffer build_anonymous_authenticate(std::string_view workstation) {
    const Buffer ws = ucs2(workstation);
    const std::uint32_t base = 72;
    Buffer b(kNtlmSig.begin(), kNtlmSig.end());
    put32le(b, 3);
    const auto wsl = static_cast<std::uint16_t>(ws.size());
    auto fld = [&](std::uint16_t len, std::uint32_t off) {
        put16le(b, len), put16le(b, len), put32le(b, off);
    };
    fld(1, base + wsl);      // LmChallengeResponse: Z(1)
    fld(0, base + wsl + 1);  // NtChallengeResponse: empty
    fld(0, base);            // DomainName
    fld(0, base);            // UserName
    fld(wsl, base);          // Workstation
    fld(0, base + wsl + 1);  // EncryptedRandomSessionKey
    put32le(b, kUnicode | kRequestTarget | kNtlm | kAnonymous | kAlwaysSign | kEss | kTargetInfo |
                   kVersion | k128 | k56);
    for (std::uint8_t v : {10, 0, 0x63, 0x45, 0, 0, 0, 0x0F})
        put8(b, v);
    append(b, ws);
    put8(b, 0);
    return b;
}

}  // namespace ntlm

// ---------------------------------------------------------------- GSS framing
namespace gssframe {
namespace {
bool der(ByteReader& r, std::uint8_t& tag, ByteReader& content) {
    std::uint8_t l0 = 0;
    if (!r.u8(tag) || !r.u8(l0)) return false;
    std::size_t len = l0;
    if (l0 & 0x80) {
        const unsigned n = l0 & 0x7F;
        if (n == 0 || n > 4) return false;
        len = 0;
        for (unsigned i = 0; i < n; ++i) {
            std::uint8_t x = 0;
            if (!r.u8(x)) return false;
            len = (len << 8) | x;
        }
    }
    Bytes body;
    if (!r.bytes(len, body)) return false;
    content = ByteReader(body);
    return true;
}
void der_len(Buffer& b, std::size_t n) {
    if (n < 0x80) {
        put8(b, static_cast<std::uint8_t>(n));
    } else if (n < 0x100) {
        put8(b, 0x81), put8(b, static_cast<std::uint8_t>(n));
    } else if (n < 0x10000) {
        put8(b, 0x82), put16be(b, static_cast<std::uint16_t>(n));
    } else {
        put8(b, 0x83), put8(b, static_cast<std::uint8_t>(n >> 16)),
            put16be(b, static_cast<std::uint16_t>(n));
    }
}
std::optional<Bytes> initial_oid(Bytes token, ByteReader& inner) {
    ByteReader r(token);
    std::uint8_t tag = 0;
    ByteReader app;
    if (!der(r, tag, app) || tag != 0x60) return std::nullopt;
    ByteReader oid;
    if (!der(app, tag, oid) || tag != 0x06) return std::nullopt;
    inner = ByteReader(app.rest());
    return oid.data();
}
}  // namespace

Kind classify(Bytes token) {
    if (ntlm::message_type(token) != 0) return Kind::RawNtlm;
    ByteReader inner;
    auto oid = initial_oid(token, inner);
    if (!oid) return Kind::Unknown;
    if (equal(*oid, kSpnegoOid)) return Kind::Spnego;
    if (equal(*oid, kKrb5Oid) || equal(*oid, kMsKrb5Oid)) return Kind::RawKrb5;
    return Kind::Unknown;
}

std::optional<Buffer> rewrap_spnego_bare_apreq(Bytes token) {
    ByteReader inner;
    auto oid = initial_oid(token, inner);
    if (!oid || !equal(*oid, kSpnegoOid)) return std::nullopt;
    std::uint8_t tag = 0;
    ByteReader init, seq;
    if (!der(inner, tag, init) || tag != 0xA0) return std::nullopt;
    if (!der(init, tag, seq) || tag != 0x30) return std::nullopt;
    while (!seq.empty()) {
        ByteReader field;
        if (!der(seq, tag, field)) return std::nullopt;
        if (tag != 0xA2) continue;
        ByteReader octets;
        if (!der(field, tag, octets) || tag != 0x04) return std::nullopt;
        const Bytes mt = octets.data();
        if (mt.empty() || mt[0] != 0x6E) return std::nullopt;
        Buffer body;
        put8(body, 0x06);
        put8(body, kKrb5Oid.size());
        body.insert(body.end(), kKrb5Oid.begin(), kKrb5Oid.end());
        put8(body, 0x01), put8(body, 0x00);  // TOK_ID AP-REQ (RFC 4121 4.1)
        body.insert(body.end(), mt.begin(), mt.end());
        Buffer out;
        put8(out, 0x60);
        der_len(out, body.size());
        append(out, body);
        return out;
    }
    return std::nullopt;
}

}  // namespace gssframe

}  // namespace hopscope::lab
