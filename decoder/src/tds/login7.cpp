#include "hopscope/tds/login7.hpp"

#include <algorithm>
#include <cstdio>

#include "hopscope/common/text.hpp"

namespace hopscope::tds {
namespace {

constexpr std::size_t kFixed71 = 86;  // fixed part of TDS 7.0/7.1 LOGIN7
constexpr std::size_t kFixed72 = 94;  // with ibChangePassword, cchChangePassword, cbSSPILong
constexpr std::size_t kMaxFeatures = 256;

std::uint32_t byteswap32(std::uint32_t v) {
    return ((v & 0xFF) << 24) | ((v & 0xFF00) << 8) | ((v >> 8) & 0xFF00) | (v >> 24);
}

bool read_ol(ByteReader& r, OffsetLength& ol) {
    return r.u16le(ol.offset) && r.u16le(ol.length);
}

// A UCS-2 field: `ol.length` characters at `ol.offset`.
DecodeResult read_text(const ByteReader& all, const OffsetLength& ol, const char* name,
                       std::string& out) {
    if (ol.length == 0) {
        out.clear();
        return {};
    }
    auto sub = all.sub(ol.offset, static_cast<std::size_t>(ol.length) * 2);
    if (!sub) {
        return make_error(DecodeError::Code::Truncated, ol.offset,
                          std::string("LOGIN7 ") + name + " lies outside the message");
    }
    out = utf16le_to_utf8(sub->data());
    return {};
}

DecodeResult check_range(const ByteReader& all, std::size_t off, std::size_t len,
                         const char* name) {
    if (len == 0 || all.sub(off, len)) return {};
    return make_error(DecodeError::Code::Truncated, off,
                      std::string("LOGIN7 ") + name + " lies outside the message");
}

DecodeResult parse_features(const ByteReader& all, std::size_t off, Login7& out) {
    auto sub = all.sub(off, all.size() - std::min(off, all.size()));
    if (!sub || off > all.size()) {
        return make_error(DecodeError::Code::Truncated, off, "LOGIN7 FeatureExt offset past end");
    }
    ByteReader r = *sub;
    for (;;) {
        std::uint8_t id = 0;
        if (!r.u8(id)) {
            return make_error(DecodeError::Code::Truncated, off + r.position(),
                              "LOGIN7 FeatureExt not terminated by 0xFF");
        }
        if (id == feature::kTerminator) return {};
        FeatureExtEntry e;
        e.id = id;
        Bytes data;
        if (!r.u32le(e.length) || !r.bytes(e.length, data)) {
            return make_error(DecodeError::Code::Truncated, off + r.position(),
                              std::string("LOGIN7 feature ") + feature_name(id) + " cut");
        }
        if (out.features.size() >= kMaxFeatures) {
            return make_error(DecodeError::Code::TooLarge, off + r.position(),
                              "too many LOGIN7 features");
        }
        out.features.push_back(e);
        if (id == feature::kFedAuth && !data.empty()) {
            FedAuthFeature f;
            f.library = static_cast<std::uint8_t>(data[0] >> 1);
            f.echo = (data[0] & 0x01) != 0;
            ByteReader d(data.subspan(1));
            if (f.library == 0x01) {  // SecurityToken: DWORD length + token [+ 32-byte nonce]
                std::uint32_t tl = 0;
                if (d.u32le(tl)) {
                    f.token_length = tl;
                    if (d.skip(tl) && d.remaining() >= 32) f.nonce_present = true;
                }
            } else if (f.library == 0x02) {  // ADAL/MSAL: workflow byte
                std::uint8_t w = 0;
                if (d.u8(w)) f.workflow = w;
            }
            out.fed_auth = f;
        }
    }
}

}  // namespace

bool is_known_tds_version(std::uint32_t v) {
    switch (v) {
        case tds_version::k70:
        case tds_version::k71:
        case tds_version::k71rev1:
        case tds_version::k72:
        case tds_version::k73A:
        case tds_version::k73B:
        case tds_version::k74:
        case tds_version::k80:
            return true;
        default:
            return false;
    }
}

std::string tds_version_name(std::uint32_t v) {
    switch (v) {
        case tds_version::k70:
            return "7.0";
        case tds_version::k71:
            return "7.1";
        case tds_version::k71rev1:
            return "7.1 rev1";
        case tds_version::k72:
            return "7.2";
        case tds_version::k73A:
            return "7.3A";
        case tds_version::k73B:
            return "7.3B";
        case tds_version::k74:
            return "7.4";
        case tds_version::k80:
            return "8.0";
        default: {
            char buf[32];
            std::snprintf(buf, sizeof buf, "unknown (0x%08x)", v);
            return buf;
        }
    }
}

const char* tds_version_product(std::uint32_t v) {
    switch (v) {
        case tds_version::k70:
            return "SQL Server 7.0";
        case tds_version::k71:
            return "SQL Server 2000";
        case tds_version::k71rev1:
            return "SQL Server 2000 SP1";
        case tds_version::k72:
            return "SQL Server 2005";
        case tds_version::k73A:
            return "SQL Server 2008";
        case tds_version::k73B:
            return "SQL Server 2008 R2";
        case tds_version::k74:
            return "SQL Server 2012";
        case tds_version::k80:
            return "SQL Server 2022";
        default:
            return "";
    }
}

const char* feature_name(std::uint8_t id) {
    switch (id) {
        case feature::kSessionRecovery:
            return "SESSIONRECOVERY";
        case feature::kFedAuth:
            return "FEDAUTH";
        case feature::kColumnEncryption:
            return "COLUMNENCRYPTION";
        case feature::kGlobalTransactions:
            return "GLOBALTRANSACTIONS";
        case feature::kAzureSqlSupport:
            return "AZURESQLSUPPORT";
        case feature::kDataClassification:
            return "DATACLASSIFICATION";
        case feature::kUtf8Support:
            return "UTF8_SUPPORT";
        case feature::kAzureSqlDnsCaching:
            return "AZURESQLDNSCACHING";
        case feature::kTerminator:
            return "TERMINATOR";
        default:
            return "unknown";
    }
}

const char* fed_auth_library_name(std::uint8_t lib) {
    switch (lib) {
        case 0x01:
            return "SecurityToken";
        case 0x02:
            return "ADAL";
        default:
            return "unknown";
    }
}

std::string Login7::client_id_string() const {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", client_id[0], client_id[1],
                  client_id[2], client_id[3], client_id[4], client_id[5]);
    return buf;
}

DecodeResult parse_login7(Bytes payload, Login7& out, Bytes& sspi) {
    out = Login7{};
    sspi = {};
    ByteReader r(payload);
    if (!r.u32le(out.length)) {
        return make_error(DecodeError::Code::Truncated, 0, "LOGIN7 shorter than its length field");
    }
    if (out.length < kFixed71) {
        return make_error(DecodeError::Code::BadLength, 0,
                          "LOGIN7 length " + std::to_string(out.length) + " < 86");
    }
    if (out.length > payload.size()) {
        return make_error(DecodeError::Code::Truncated, 0,
                          "LOGIN7 length " + std::to_string(out.length) + " exceeds the message (" +
                              std::to_string(payload.size()) + " bytes)");
    }
    // Everything is relative to the start and must lie inside Length.
    const ByteReader all(payload.first(out.length));
    r = ByteReader(payload.first(out.length));
    (void)r.skip(4);
    (void)r.u32le(out.tds_version_wire);
    out.tds_version = out.tds_version_wire;
    if (!is_known_tds_version(out.tds_version_wire) &&
        is_known_tds_version(byteswap32(out.tds_version_wire))) {
        out.tds_version = byteswap32(out.tds_version_wire);
        out.tds_version_big_endian = true;
    }
    std::uint32_t tz = 0;
    (void)r.u32le(out.packet_size);
    (void)r.u32le(out.client_prog_ver);
    (void)r.u32le(out.client_pid);
    (void)r.u32le(out.connection_id);
    (void)r.u8(out.option_flags1);
    (void)r.u8(out.option_flags2);
    (void)r.u8(out.type_flags);
    (void)r.u8(out.option_flags3);
    (void)r.u32le(tz);
    out.client_time_zone = static_cast<std::int32_t>(tz);
    (void)r.u32le(out.client_lcid);
    (void)read_ol(r, out.host_name);
    (void)read_ol(r, out.user_name);
    (void)read_ol(r, out.password);
    (void)read_ol(r, out.app_name);
    (void)read_ol(r, out.server_name);
    (void)read_ol(r, out.extension);
    (void)read_ol(r, out.library_name);
    (void)read_ol(r, out.language);
    (void)read_ol(r, out.database);
    Bytes mac;
    (void)r.bytes(6, mac);
    std::copy(mac.begin(), mac.end(), out.client_id.begin());
    (void)read_ol(r, out.sspi);
    (void)read_ol(r, out.attach_db_file);
    // The 7.2 fields exist when the variable part starts after them. ibHostName is the start of
    // the variable part [MS-TDS 2.2.6.4]; an empty LOGIN7 (ibHostName 0) falls back on Length.
    const std::size_t var_start = out.host_name.offset != 0 ? out.host_name.offset : out.length;
    if (var_start >= kFixed72 && out.length >= kFixed72) {
        out.has_tds72_fields = true;
        (void)read_ol(r, out.change_password);
        (void)r.u32le(out.sspi_long);
    }

    DecodeResult res;
    auto text = [&](const OffsetLength& ol, const char* name, std::string& to) {
        res = read_text(all, ol, name, to);
        return res.ok();
    };
    if (!text(out.host_name, "HostName", out.host) || !text(out.user_name, "UserName", out.user) ||
        !text(out.app_name, "AppName", out.app) ||
        !text(out.server_name, "ServerName", out.server) ||
        !text(out.library_name, "CltIntName", out.library) ||
        !text(out.language, "Language", out.lang) || !text(out.database, "Database", out.db) ||
        !text(out.attach_db_file, "AtchDBFile", out.attach_db)) {
        return res;
    }
    // Secrets: only check that they lie inside the message, never decode them.
    res = check_range(all, out.password.offset, std::size_t{out.password.length} * 2, "Password");
    if (!res.ok()) return res;
    res = check_range(all, out.change_password.offset, std::size_t{out.change_password.length} * 2,
                      "ChangePassword");
    if (!res.ok()) return res;
    out.password_present = out.password.length > 0;
    out.password_length = out.password.length;
    out.change_password_present = out.change_password.length > 0;
    out.change_password_length = out.change_password.length;

    std::size_t sspi_len = out.sspi.length;
    if (out.sspi.length == 0xFFFF && out.sspi_long > 0xFFFF) sspi_len = out.sspi_long;
    if (sspi_len > 0) {
        auto sub = all.sub(out.sspi.offset, sspi_len);
        if (!sub) {
            return make_error(DecodeError::Code::Truncated, out.sspi.offset,
                              "LOGIN7 SSPI blob (" + std::to_string(sspi_len) +
                                  " bytes) lies outside the message");
        }
        sspi = sub->data();
    }
    out.sspi_length = sspi_len;

    if (out.has_extension() && out.extension.length > 0) {
        // ibExtension points at a DWORD holding the offset of the FeatureExt block.
        auto p = all.sub(out.extension.offset, 4);
        std::uint32_t fe = 0;
        if (!p || out.extension.length < 4 || !p->u32le(fe)) {
            return make_error(DecodeError::Code::Truncated, out.extension.offset,
                              "LOGIN7 extension pointer lies outside the message");
        }
        if (auto r2 = parse_features(all, fe, out); !r2.ok()) return r2;
    }
    return {};
}

std::string to_string(const Login7& l) {
    std::string s;
    s += "tds=" + tds_version_name(l.tds_version);
    if (l.tds_version_big_endian) s += "(big-endian)";
    s += " host=" + l.host + " user=" + l.user + " app=" + l.app + " server=" + l.server +
         " library=" + l.library + " language=" + l.lang + " database=" + l.db;
    char buf[64];
    std::snprintf(buf, sizeof buf, " flags=%02x/%02x/%02x/%02x", l.option_flags1, l.option_flags2,
                  l.type_flags, l.option_flags3);
    s += buf;
    s += " client_id=" + l.client_id_string();
    s += " password=" + std::string(l.password_present ? "present" : "absent") + "(" +
         std::to_string(l.password_length) + " chars)";
    if (l.change_password_present) {
        s += " change_password=present(" + std::to_string(l.change_password_length) + " chars)";
    }
    s += " sspi=" + std::to_string(l.sspi_length) + "B";
    if (!l.attach_db.empty()) s += " attach_db=" + l.attach_db;
    for (const auto& f : l.features) {
        s += std::string(" feature=") + feature_name(f.id) + "(" + std::to_string(f.length) + ")";
    }
    if (l.fed_auth) {
        s += std::string(" fedauth=") + fed_auth_library_name(l.fed_auth->library) +
             (l.fed_auth->echo ? ",echo" : "");
        if (l.fed_auth->workflow) s += ",workflow=" + std::to_string(*l.fed_auth->workflow);
    }
    return s;
}

}  // namespace hopscope::tds
