#include "hopscope/auth/ntlm.hpp"

#include <algorithm>
#include <cstdio>

#include "hopscope/common/text.hpp"

namespace hopscope::auth {
namespace {

using Code = DecodeError::Code;

constexpr std::size_t kMaxAvPairs = 256;

/// A "Fields" triple (Len, MaxLen, BufferOffset), MS-NLMP §2.2.1.
struct Fields {
    std::uint16_t len = 0;
    std::uint16_t max_len = 0;
    std::uint32_t offset = 0;
};

bool read_fields(ByteReader& r, Fields& f) {
    return r.u16le(f.len) && r.u16le(f.max_len) && r.u32le(f.offset);
}

/// The bytes a Fields triple points at; an empty field never fails.
DecodeResult field_bytes(const ByteReader& whole, const Fields& f, std::size_t at, Bytes& out) {
    out = {};
    if (f.len == 0) return {};
    auto sub = whole.sub(f.offset, f.len);
    if (!sub) return make_error(Code::Truncated, at, "NTLM field points past the message");
    out = sub->data();
    return {};
}

// Names are shown without the C-string terminators some senders include (as tshark does).
std::string trim_nuls(std::string s) {
    while (!s.empty() && s.back() == '\0')
        s.pop_back();
    return s;
}

std::string text(Bytes b, bool unicode) {
    return trim_nuls(unicode ? utf16le_to_utf8(b) : latin1_to_utf8(b));
}

std::string av_text(Bytes b) {
    return trim_nuls(utf16le_to_utf8(b));
}

/// Smallest offset of a non-empty payload field: where the fixed header must end.
std::size_t data_start(std::initializer_list<Fields> fields, std::size_t msg_size) {
    std::size_t start = msg_size;
    for (const auto& f : fields) {
        if (f.len > 0) start = std::min<std::size_t>(start, f.offset);
    }
    return start;
}

bool read_version(ByteReader r, std::size_t at, NtlmVersion& v) {
    if (!r.seek(at)) return false;
    std::uint8_t reserved[3];
    return r.u8(v.major) && r.u8(v.minor) && r.u16le(v.build) && r.u8(reserved[0]) &&
           r.u8(reserved[1]) && r.u8(reserved[2]) && r.u8(v.ntlm_revision);
}

DecodeResult parse_negotiate(ByteReader r, NtlmNegotiate& out) {
    const ByteReader whole = r;
    if (!r.seek(12) || !r.u32le(out.flags)) {
        return make_error(Code::Truncated, 12, "NEGOTIATE shorter than 16 bytes");
    }
    if (r.remaining() < 16) return {};  // MS-NLMP §2.2.1.1: older senders stop after the flags
    Fields dom, ws;
    read_fields(r, dom);
    read_fields(r, ws);
    Bytes b;
    if (auto e = field_bytes(whole, dom, 16, b); !e.ok()) return e;
    if (dom.len) out.domain = text(b, false);
    if (auto e = field_bytes(whole, ws, 24, b); !e.ok()) return e;
    if (ws.len) out.workstation = text(b, false);
    const std::size_t start = data_start({dom, ws}, whole.size());
    NtlmVersion v;
    if ((out.flags & ntlm_flag::Version) && start >= 40 && read_version(whole, 32, v)) {
        out.version = v;
    }
    return {};
}

DecodeResult parse_challenge(ByteReader r, NtlmChallenge& out) {
    const ByteReader whole = r;
    Fields target;
    if (!r.seek(12) || !read_fields(r, target) || !r.u32le(out.flags) || !r.skip(8)) {
        return make_error(Code::Truncated, 12, "CHALLENGE shorter than 32 bytes");
    }
    const bool unicode = (out.flags & ntlm_flag::Unicode) != 0;
    Bytes b;
    if (auto e = field_bytes(whole, target, 12, b); !e.ok()) return e;
    if (target.len) out.target_name = text(b, unicode);
    Fields info;
    if (!r.skip(8) || !read_fields(r, info)) return {};  // no TargetInfo (pre-NTLMv2 servers)
    if (auto e = field_bytes(whole, info, 40, b); !e.ok()) return e;
    if (info.len) {
        out.has_target_info = true;
        if (auto e = parse_av_pairs(b, info.offset, out.target_info); !e.ok()) return e;
    }
    const std::size_t start = data_start({target, info}, whole.size());
    NtlmVersion v;
    if ((out.flags & ntlm_flag::Version) && start >= 56 && read_version(whole, 48, v)) {
        out.version = v;
    }
    return {};
}

// NTLMv2_CLIENT_CHALLENGE (MS-NLMP §2.2.2.7): RespType(1)=1 HiRespType(1)=1 Reserved1(2)
// Reserved2(4) TimeStamp(8) ChallengeFromClient(8) Reserved3(4) AvPairs.
DecodeResult parse_v2_blob(Bytes blob, std::size_t base, NtlmAuthenticate& out) {
    ByteReader r(blob);
    std::uint8_t resp = 0, hi = 0;
    std::uint64_t ts = 0;
    if (!r.u8(resp) || !r.u8(hi) || !r.skip(6) || !r.u64le(ts) || !r.skip(8 + 4)) {
        return make_error(Code::Truncated, base, "NTLMv2 blob too short");
    }
    if (resp != 1 || hi != 1) return make_error(Code::BadValue, base, "NTLMv2 blob version");
    out.v2_timestamp = ts;
    AvPairs av;
    if (auto e = parse_av_pairs(r.rest(), base + 28, av); !e.ok()) return e;
    out.v2_av_pairs = std::move(av);
    return {};
}

DecodeResult parse_authenticate(ByteReader r, NtlmAuthenticate& out) {
    const ByteReader whole = r;
    Fields lm, nt, dom, user, ws, key;
    if (!r.seek(12) || !read_fields(r, lm) || !read_fields(r, nt) || !read_fields(r, dom) ||
        !read_fields(r, user) || !read_fields(r, ws) || !read_fields(r, key) ||
        !r.u32le(out.flags)) {
        return make_error(Code::Truncated, 12, "AUTHENTICATE shorter than 64 bytes");
    }
    const bool unicode = (out.flags & ntlm_flag::Unicode) != 0;
    Bytes b, lm_bytes, nt_bytes;
    if (auto e = field_bytes(whole, lm, 12, lm_bytes); !e.ok()) return e;
    if (auto e = field_bytes(whole, nt, 20, nt_bytes); !e.ok()) return e;
    if (auto e = field_bytes(whole, dom, 28, b); !e.ok()) return e;
    out.domain = text(b, unicode);
    if (auto e = field_bytes(whole, user, 36, b); !e.ok()) return e;
    out.user = text(b, unicode);
    if (auto e = field_bytes(whole, ws, 44, b); !e.ok()) return e;
    out.workstation = text(b, unicode);
    if (auto e = field_bytes(whole, key, 52, b); !e.ok()) return e;
    out.lm_response_len = lm.len;
    out.nt_response_len = nt.len;
    out.session_key_len = key.len;
    out.anonymous_flag = (out.flags & ntlm_flag::Anonymous) != 0;

    // Header layout: Version (8) and MIC (16) exist only if the payload starts late enough.
    const std::size_t start = data_start({lm, nt, dom, user, ws, key}, whole.size());
    if (out.flags & ntlm_flag::Version) {
        NtlmVersion v;
        if (start >= 72 && read_version(whole, 64, v)) {
            out.version = v;
        } else {
            out.version_flag_without_field = true;
        }
    }
    out.mic_field_present = start >= 88 && out.version.has_value();

    // MS-NLMP §3.2.5.1.2 / §3.3: anonymous = no user, no NT response, LM empty or a single zero.
    const bool lm_empty = lm.len == 0 || (lm.len == 1 && lm_bytes[0] == 0);
    out.anonymous = out.user.empty() && nt.len == 0 && lm_empty;

    if (nt.len == 0) {
        out.response_kind = NtlmResponseKind::None;
    } else if (nt.len == 24) {
        out.response_kind = NtlmResponseKind::V1;
    } else if (nt.len >= 16 + 28) {
        // NTProofStr(16) + NTLMv2_CLIENT_CHALLENGE (28 fixed bytes + AV pairs). A blob that does
        // not decode is kept as an error beside the message: user, domain and host stay readable.
        out.response_kind = NtlmResponseKind::V2;
        out.v2_blob = parse_v2_blob(nt_bytes.subspan(16), nt.offset + 16, out);
    } else if (nt.len == 16 && whole.size() - nt.offset >= 16 + 28 &&
               whole.data()[nt.offset + 16] == 1 && whole.data()[nt.offset + 17] == 1) {
        // tedious: Len covers only NTProofStr; the blob follows up to the end of the message.
        out.response_kind = NtlmResponseKind::V2;
        out.blob_past_nt_len = true;
        const std::size_t at = nt.offset + 16;
        out.v2_blob = parse_v2_blob(whole.data().subspan(at), at, out);
    } else {
        out.response_kind = NtlmResponseKind::Other;
    }
    return {};
}

}  // namespace

std::vector<std::string> ntlm_flag_names(std::uint32_t flags) {
    static constexpr struct {
        std::uint32_t bit;
        const char* name;
    } kNames[] = {
        {ntlm_flag::Unicode, "UNICODE"},
        {ntlm_flag::Oem, "OEM"},
        {ntlm_flag::RequestTarget, "REQUEST_TARGET"},
        {ntlm_flag::Sign, "SIGN"},
        {ntlm_flag::Seal, "SEAL"},
        {ntlm_flag::Datagram, "DATAGRAM"},
        {ntlm_flag::LmKey, "LM_KEY"},
        {ntlm_flag::Ntlm, "NTLM"},
        {ntlm_flag::Anonymous, "ANONYMOUS"},
        {ntlm_flag::OemDomainSupplied, "OEM_DOMAIN_SUPPLIED"},
        {ntlm_flag::OemWorkstationSupplied, "OEM_WORKSTATION_SUPPLIED"},
        {ntlm_flag::AlwaysSign, "ALWAYS_SIGN"},
        {ntlm_flag::TargetTypeDomain, "TARGET_TYPE_DOMAIN"},
        {ntlm_flag::TargetTypeServer, "TARGET_TYPE_SERVER"},
        {ntlm_flag::ExtendedSessionSecurity, "EXTENDED_SESSIONSECURITY"},
        {ntlm_flag::Identify, "IDENTIFY"},
        {ntlm_flag::RequestNonNtSessionKey, "REQUEST_NON_NT_SESSION_KEY"},
        {ntlm_flag::TargetInfo, "TARGET_INFO"},
        {ntlm_flag::Version, "VERSION"},
        {ntlm_flag::N128, "128"},
        {ntlm_flag::KeyExch, "KEY_EXCH"},
        {ntlm_flag::N56, "56"},
    };
    std::vector<std::string> out;
    std::uint32_t known = 0;
    for (const auto& n : kNames) {
        known |= n.bit;
        if (flags & n.bit) out.emplace_back(n.name);
    }
    for (int i = 0; i < 32; ++i) {
        const std::uint32_t bit = 1u << i;
        if ((flags & bit) && !(known & bit)) {
            char buf[16];
            std::snprintf(buf, sizeof buf, "r0x%08x", bit);
            out.emplace_back(buf);
        }
    }
    return out;
}

std::string ntlm_flags_to_string(std::uint32_t flags) {
    std::string s;
    for (const auto& n : ntlm_flag_names(flags)) {
        if (!s.empty()) s += '|';
        s += n;
    }
    return s;
}

const char* to_string(ChannelBindings c) {
    switch (c) {
        case ChannelBindings::Absent:
            return "absent";
        case ChannelBindings::AllZero:
            return "all-zero";
        case ChannelBindings::Present:
            return "present";
    }
    return "?";
}

const char* to_string(NtlmResponseKind k) {
    switch (k) {
        case NtlmResponseKind::None:
            return "none";
        case NtlmResponseKind::V1:
            return "ntlmv1";
        case NtlmResponseKind::V2:
            return "ntlmv2";
        case NtlmResponseKind::Other:
            return "other";
    }
    return "?";
}

DecodeResult parse_av_pairs(Bytes data, std::size_t base, AvPairs& out) {
    out = AvPairs{};
    ByteReader r(data);
    while (!r.empty()) {
        const std::size_t at = base + r.position();
        std::uint16_t id = 0, len = 0;
        Bytes v;
        if (!r.u16le(id) || !r.u16le(len)) return make_error(Code::Truncated, at, "AV_PAIR header");
        if (!r.bytes(len, v)) return make_error(Code::Truncated, at, "AV_PAIR value");
        if (id == 0) {
            out.terminated = true;
            return {};
        }
        if (++out.count > kMaxAvPairs) return make_error(Code::TooLarge, at, "too many AV pairs");
        switch (id) {
            case 1:
                out.nb_computer = av_text(v);
                break;
            case 2:
                out.nb_domain = av_text(v);
                break;
            case 3:
                out.dns_computer = av_text(v);
                break;
            case 4:
                out.dns_domain = av_text(v);
                break;
            case 5:
                out.dns_tree = av_text(v);
                break;
            case 6:
                if (v.size() != 4) return make_error(Code::BadLength, at, "MsvAvFlags length");
                out.flags = load_u32le(v.data());
                break;
            case 7: {
                if (v.size() != 8) return make_error(Code::BadLength, at, "MsvAvTimestamp length");
                ByteReader t(v);
                std::uint64_t ft = 0;
                t.u64le(ft);
                out.timestamp = ft;
                break;
            }
            case 8:
                out.single_host = true;
                break;
            case 9:
                out.target_name = av_text(v);
                break;
            case 10:
                out.channel_bindings =
                    std::all_of(v.begin(), v.end(), [](std::uint8_t x) { return x == 0; })
                        ? ChannelBindings::AllZero
                        : ChannelBindings::Present;
                break;
            default:
                break;  // unknown AvIds are skipped (MS-NLMP §2.2.2.1)
        }
    }
    return {};  // no MsvAvEOL: tolerated, reported by `terminated`
}

bool looks_like_ntlm(Bytes b) {
    return b.size() >= 8 && std::equal(b.begin(), b.begin() + 8, std::begin(kNtlmSignature));
}

DecodeResult parse_ntlm(Bytes data, NtlmMessage& out) {
    out = NtlmMessage{};
    if (!looks_like_ntlm(data)) return make_error(Code::BadValue, 0, "no NTLMSSP signature");
    ByteReader r(data);
    r.skip(8);
    if (!r.u32le(out.type)) return make_error(Code::Truncated, 8, "no MessageType");
    switch (out.type) {
        case 1: {
            NtlmNegotiate m;
            if (auto e = parse_negotiate(ByteReader(data), m); !e.ok()) return e;
            out.msg = std::move(m);
            return {};
        }
        case 2: {
            NtlmChallenge m;
            if (auto e = parse_challenge(ByteReader(data), m); !e.ok()) return e;
            out.msg = std::move(m);
            return {};
        }
        case 3: {
            NtlmAuthenticate m;
            if (auto e = parse_authenticate(ByteReader(data), m); !e.ok()) return e;
            out.msg = std::move(m);
            return {};
        }
        default:
            return make_error(Code::BadValue, 8, "unknown NTLM MessageType");
    }
}

namespace {

std::string render(const NtlmVersion& v) {
    return std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.build) +
           "/" + std::to_string(v.ntlm_revision);
}

std::string render(const AvPairs& a) {
    std::string s = "{";
    auto add = [&s](const char* k, const std::string& v) {
        if (s.size() > 1) s += ' ';
        s += k;
        s += '=';
        s += v;
    };
    if (a.nb_computer) add("nb_computer", *a.nb_computer);
    if (a.nb_domain) add("nb_domain", *a.nb_domain);
    if (a.dns_computer) add("dns_computer", *a.dns_computer);
    if (a.dns_domain) add("dns_domain", *a.dns_domain);
    if (a.dns_tree) add("dns_tree", *a.dns_tree);
    if (a.flags) add("flags", std::to_string(*a.flags));
    if (a.timestamp) add("timestamp", std::to_string(*a.timestamp));
    if (a.single_host) add("single_host", "yes");
    if (a.target_name) add("target_name", *a.target_name);
    add("channel_bindings", to_string(a.channel_bindings));
    return s + "}";
}

}  // namespace

std::string to_string(const NtlmMessage& m) {
    std::string s;
    if (const auto* n = std::get_if<NtlmNegotiate>(&m.msg)) {
        s = "NTLM NEGOTIATE flags=" + ntlm_flags_to_string(n->flags);
        if (n->domain) s += " domain=" + *n->domain;
        if (n->workstation) s += " workstation=" + *n->workstation;
        if (n->version) s += " version=" + render(*n->version);
    } else if (const auto* c = std::get_if<NtlmChallenge>(&m.msg)) {
        s = "NTLM CHALLENGE flags=" + ntlm_flags_to_string(c->flags);
        if (c->target_name) s += " target=" + *c->target_name;
        if (c->has_target_info) s += " target_info=" + render(c->target_info);
        if (c->version) s += " version=" + render(*c->version);
    } else if (const auto* a = std::get_if<NtlmAuthenticate>(&m.msg)) {
        s = "NTLM AUTHENTICATE flags=" + ntlm_flags_to_string(a->flags);
        s += " domain=" + a->domain + " user=" + a->user + " workstation=" + a->workstation;
        s += " lm_len=" + std::to_string(a->lm_response_len);
        s += " nt_len=" + std::to_string(a->nt_response_len);
        s += " session_key_len=" + std::to_string(a->session_key_len);
        s += std::string(" response=") + to_string(a->response_kind);
        if (a->anonymous) s += " ANONYMOUS";
        if (a->anonymous_flag) s += " anonymous_flag";
        if (a->version) s += " version=" + render(*a->version);
        if (a->version_flag_without_field) s += " version_flag_without_field";
        s += a->mic_field_present ? " mic=present" : " mic=absent";
        if (a->blob_past_nt_len) s += " blob_past_nt_len";
        if (a->v2_timestamp) s += " v2_timestamp=" + std::to_string(*a->v2_timestamp);
        if (a->v2_av_pairs) s += " v2_av=" + render(*a->v2_av_pairs);
        if (!a->v2_blob.ok()) s += " v2_blob_error=" + a->v2_blob.error().detail;
    }
    return s;
}

}  // namespace hopscope::auth
