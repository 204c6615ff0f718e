#include "hopscope/auth/kerberos_enc.hpp"

#include <openssl/crypto.h>

#include "hopscope/auth/der.hpp"
#include "hopscope/common/text.hpp"
#include "kerberos_der.hpp"

namespace hopscope::auth {
namespace {

using der::Reader;
using der::Tlv;
using namespace krb_der;

constexpr std::int32_t kAdIfRelevant = 1;
constexpr std::int32_t kAdWin2kPac = 128;
constexpr unsigned kMaxAdNesting = 4;
constexpr std::uint32_t kPacS4uDelegationInfo = 11;
constexpr std::size_t kMaxPacBuffers = 64;
constexpr std::size_t kMaxTransited = 64;

/// The outer [APPLICATION n] of a plaintext. Bytes after it are padding (des, rc4 enctypes).
DecodeResult open_plaintext(Bytes data, std::uint32_t n, Tlv& seq) {
    Reader r(data, 0, 0, der::LengthRule::BerDefinite);
    Tlv app;
    if (auto e = r.next(app); !e.ok()) return e;
    return app_sequence(app, n, seq);
}

/// A plaintext [APPLICATION app] SEQUENCE: `out` reset, then `field(n, inner)` for each field;
/// missing(`what`) unless every field of `required` (bit n for [n]) was there.
template <typename T, typename Fn>
DecodeResult parse_plaintext(Bytes data, std::uint32_t app, unsigned required, const char* what,
                             T& out, Fn&& field) {
    out = T{};
    Tlv seq;
    if (auto e = open_plaintext(data, app, seq); !e.ok()) return e;
    unsigned seen = 0;
    if (auto e = walk_sequence(seq, seen, field); !e.ok()) return e;
    if ((seen & required) != required) return missing(seq, what);
    return {};
}

/// EncryptionKey ::= SEQUENCE { keytype [0] Int32, keyvalue [1] OCTET STRING }
DecodeResult parse_key(const Tlv& seq, KeyBlock& out) {
    std::int32_t etype = 0;
    Bytes value;
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        if (n == 0) return der::as_int32(v, etype);
        if (n == 1) return der::as_octet_string(v, value);
        return make_error(Code::BadTag, v.offset, "unknown EncryptionKey field");
    };
    if (auto e = walk_sequence(seq, seen, field); !e.ok()) return e;
    if (seen != 3) return missing(seq, "EncryptionKey field");
    if (!out.assign(etype, value)) return make_error(Code::TooLarge, seq.offset, "key too long");
    return {};
}

DecodeResult parse_flags(const Tlv& v, std::uint32_t& out) {
    std::size_t bits = 0;
    return der::as_bit_string(v, out, bits);
}

DecodeResult count_elements(const Tlv& v, std::size_t& count) {
    return walk_sequence_of(v, "expected SEQUENCE OF", [&](const Tlv&) -> DecodeResult {
        ++count;
        return {};
    });
}

DecodeResult parse_authorization(const Tlv& seq_of, unsigned depth, AuthorizationInfo& out);

/// One AuthorizationData element's ad-data: nested AD-IF-RELEVANT, or the PAC. A PAC that does
/// not parse is left out (the ticket's other facts still count); a broken DER nesting is an error.
DecodeResult parse_ad_data(std::int32_t type, const Tlv& octets, Bytes data, unsigned depth,
                           AuthorizationInfo& out) {
    if (type == kAdIfRelevant) {
        if (depth >= kMaxAdNesting) return make_error(Code::TooDeep, octets.offset, "AD nesting");
        Reader r(data, octets.offset + octets.header, octets.depth + 1, octets.rule);
        Tlv inner;
        if (auto e = r.next(inner); !e.ok()) return e;
        return parse_authorization(inner, depth + 1, out);
    }
    if (type == kAdWin2kPac && !out.pac) {
        PacInfo pac;
        if (parse_pac(data, pac).ok()) out.pac = std::move(pac);
    }
    return {};
}

/// AuthorizationData ::= SEQUENCE OF SEQUENCE { ad-type [0] Int32, ad-data [1] OCTET STRING }
DecodeResult parse_authorization(const Tlv& seq_of, unsigned depth, AuthorizationInfo& out) {
    auto element = [&](const Tlv& item) -> DecodeResult {
        std::int32_t type = 0;
        Bytes data;
        Tlv octets;
        unsigned seen = 0;
        auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
            if (n == 0) return der::as_int32(v, type);
            if (n == 1) {
                octets = v;
                return der::as_octet_string(v, data);
            }
            return make_error(Code::BadTag, v.offset, "unknown AuthorizationData field");
        };
        if (auto e = walk_sequence(item, seen, field); !e.ok()) return e;
        if (seen != 3) return missing(item, "AuthorizationData field");
        if (out.ad_types.size() >= kMaxList) {
            return make_error(Code::TooLarge, item.offset, "too many authorization elements");
        }
        out.ad_types.push_back(type);
        return parse_ad_data(type, octets, data, depth, out);
    };
    return walk_sequence_of(seq_of, "AuthorizationData is not a SEQUENCE OF", element);
}

DecodeResult parse_time(const Tlv& v, std::string& out) {
    return der::as_kerberos_time(v, out);
}

// --- PAC (MS-PAC) ------------------------------------------------------------------------------

/// NDR reading (MS-RPCE §2.2.6 type serialisation version 1, little-endian): 4-byte alignment
/// counted from the start of the serialised buffer.
struct Ndr {
    ByteReader r;
    bool align4() { return r.skip((4 - r.position() % 4) % 4); }
    bool u32(std::uint32_t& v) { return align4() && r.u32le(v); }
};

struct NdrString {
    std::uint16_t length = 0;
    std::uint32_t pointer = 0;
};

bool ndr_unicode_string_header(Ndr& n, NdrString& s) {
    std::uint16_t max = 0;
    return n.align4() && n.r.u16le(s.length) && n.r.u16le(max) && n.r.u32le(s.pointer);
}

/// The deferred conformant varying array of an RPC_UNICODE_STRING.
bool ndr_unicode_string_body(Ndr& n, const NdrString& s, std::string& out) {
    if (s.pointer == 0) return true;
    std::uint32_t max = 0, offset = 0, actual = 0;
    if (!n.u32(max) || !n.u32(offset) || !n.u32(actual)) return false;
    if (offset != 0 || actual > max || actual * 2u < s.length) return false;
    Bytes chars;
    if (!n.r.bytes(static_cast<std::size_t>(actual) * 2, chars)) return false;
    out = utf16le_to_utf8(chars.subspan(0, s.length));
    return true;
}

/// S4U_DELEGATION_INFO (MS-PAC §2.9).
DecodeResult parse_s4u_delegation_info(Bytes data, std::size_t base, PacInfo& out) {
    auto bad = [&](const char* what) { return make_error(Code::BadValue, base, what); };
    // Common header (8 bytes: version 1, little-endian 0x10, length 8) and private header (8).
    if (data.size() < 16 || data[0] != 1 || data[1] != 0x10 || load_u16le(data.data() + 2) != 8) {
        return bad("S4U_DELEGATION_INFO: not an NDR type serialisation");
    }
    Ndr n{ByteReader(data.subspan(16))};
    std::uint32_t referent = 0, count = 0, list_pointer = 0;
    NdrString target;
    if (!n.u32(referent) || !ndr_unicode_string_header(n, target) || !n.u32(count) ||
        !n.u32(list_pointer)) {
        return bad("S4U_DELEGATION_INFO truncated");
    }
    std::string name;
    if (!ndr_unicode_string_body(n, target, name)) return bad("S4U2proxyTarget");
    out.s4u2proxy_target = std::move(name);
    if (list_pointer == 0) return {};
    std::uint32_t max = 0;
    if (!n.u32(max) || max != count || count > kMaxTransited) return bad("S4UTransitedServices");
    std::vector<NdrString> items(count);
    for (auto& s : items)
        if (!ndr_unicode_string_header(n, s)) return bad("S4UTransitedServices truncated");
    for (const auto& s : items) {
        std::string t;
        if (!ndr_unicode_string_body(n, s, t)) return bad("S4UTransitedServices entry");
        out.s4u_transited.push_back(std::move(t));
    }
    return {};
}

}  // namespace

KeyBlock::~KeyBlock() {
    OPENSSL_cleanse(b_.data(), b_.size());
}

bool KeyBlock::assign(std::int32_t etype, Bytes value) {
    OPENSSL_cleanse(b_.data(), b_.size());
    n_ = 0;
    etype_ = etype;
    if (value.size() > kMaxSize) return false;
    std::copy(value.begin(), value.end(), b_.begin());
    n_ = value.size();
    return true;
}

DecodeResult parse_pac(Bytes data, PacInfo& out) {
    out = PacInfo{};
    ByteReader r(data);
    std::uint32_t count = 0, version = 0;
    if (!r.u32le(count) || !r.u32le(version)) {
        return make_error(Code::Truncated, 0, "PACTYPE header");
    }
    if (version != 0) return make_error(Code::BadValue, 4, "PAC version is not 0");
    if (count > kMaxPacBuffers) return make_error(Code::TooLarge, 0, "too many PAC buffers");
    for (std::uint32_t i = 0; i < count; ++i) {
        const std::size_t at = r.position();
        std::uint32_t type = 0, size = 0;
        std::uint64_t offset = 0;
        if (!r.u32le(type) || !r.u32le(size) || !r.u64le(offset)) {
            return make_error(Code::Truncated, at, "PAC_INFO_BUFFER");
        }
        if (offset > data.size() || size > data.size() - offset) {
            return make_error(Code::BadLength, at, "PAC buffer outside the PAC");
        }
        out.buffer_types.push_back(type);
        if (type == kPacS4uDelegationInfo && !out.s4u2proxy_target) {
            const auto o = static_cast<std::size_t>(offset);
            if (auto e = parse_s4u_delegation_info(data.subspan(o, size), o, out); !e.ok()) {
                return e;
            }
        }
    }
    return {};
}

DecodeResult parse_enc_ticket_part(Bytes data, EncTicketPart& out) {
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 0:
                return parse_flags(v, out.flags);
            case 1:
                return parse_key(v, out.key);
            case 2:
                return der::as_string(v, out.crealm);
            case 3:
                return parse_principal(v, out.cname);
            case 4: {
                // TransitedEncoding ::= SEQUENCE { tr-type [0] Int32, contents [1] OCTET STRING }
                unsigned tseen = 0;
                auto tr = [&](std::uint32_t m, const Tlv& t) -> DecodeResult {
                    std::int32_t type = 0;
                    Bytes contents;
                    if (m == 0) return der::as_int32(t, type);
                    if (m != 1) return make_error(Code::BadTag, t.offset, "TransitedEncoding");
                    if (auto e = der::as_octet_string(t, contents); !e.ok()) return e;
                    out.transited_len = contents.size();
                    return {};
                };
                if (auto e = walk_sequence(v, tseen, tr); !e.ok()) return e;
                return tseen == 3 ? DecodeResult{} : missing(v, "TransitedEncoding field");
            }
            case 5:
                return parse_time(v, out.authtime);
            case 6:
                return parse_optional(v, out.starttime, parse_time);
            case 7:
                return parse_time(v, out.endtime);
            case 8:
                return parse_optional(v, out.renew_till, parse_time);
            case 9:
                return count_elements(v, out.address_count);
            case 10:
                return parse_authorization(v, 0, out.authorization);
            default:
                return make_error(Code::BadTag, v.offset, "unknown EncTicketPart field");
        }
    };
    // Required: flags, key, crealm, cname, transited, authtime, endtime.
    return parse_plaintext(data, 3, 0x3f | (1u << 7), "EncTicketPart field", out, field);
}

DecodeResult parse_gss_checksum(Bytes data, GssChecksum& out) {
    out = GssChecksum{};
    ByteReader r(data);
    std::uint32_t lgth = 0;
    Bytes bnd;
    if (!r.u32le(lgth) || !r.bytes(16, bnd) || !r.u32le(out.flags)) {
        return make_error(Code::Truncated, r.position(), "GSS checksum shorter than 24 bytes");
    }
    if (lgth != 16) return make_error(Code::BadValue, 0, "GSS checksum Lgth is not 16");
    out.channel_binding = std::any_of(bnd.begin(), bnd.end(), [](std::uint8_t b) { return b; });
    if (out.flags & gss_flag::Deleg) {
        std::uint16_t opt = 0, len = 0;
        if (!r.u16le(opt) || !r.u16le(len)) {
            return make_error(Code::Truncated, r.position(), "DELEG without DlgOpt/Dlgth");
        }
        out.dlg_opt = opt;
        if (!r.bytes(len, out.deleg)) {
            return make_error(Code::Truncated, r.position(), "Deleg longer than the checksum");
        }
    }
    out.extensions_len = r.remaining();
    return {};
}

DecodeResult parse_authenticator(Bytes data, Authenticator& out) {
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 0: {
                std::int32_t vno = 0;
                if (auto e = der::as_int32(v, vno); !e.ok()) return e;
                if (vno != 5) return make_error(Code::BadValue, v.offset, "authenticator-vno");
                return {};
            }
            case 1:
                return der::as_string(v, out.crealm);
            case 2:
                return parse_principal(v, out.cname);
            case 3: {
                // Checksum ::= SEQUENCE { cksumtype [0] Int32, checksum [1] OCTET STRING }
                Checksum c;
                Bytes value;
                unsigned cseen = 0;
                auto cf = [&](std::uint32_t m, const Tlv& t) -> DecodeResult {
                    if (m == 0) return der::as_int32(t, c.type);
                    if (m == 1) return der::as_octet_string(t, value);
                    return make_error(Code::BadTag, t.offset, "unknown Checksum field");
                };
                if (auto e = walk_sequence(v, cseen, cf); !e.ok()) return e;
                if (cseen != 3) return missing(v, "Checksum field");
                c.length = value.size();
                if (c.type == kGssChecksumType) {
                    GssChecksum g;
                    if (auto e = parse_gss_checksum(value, g); !e.ok()) {
                        DecodeError err = e.error();
                        err.offset += v.offset;
                        return err;
                    }
                    c.gss = g;
                }
                out.cksum = std::move(c);
                return {};
            }
            case 4:
                return der::as_int32(v, out.cusec);
            case 5:
                return parse_time(v, out.ctime);
            case 6:
                return parse_optional(v, out.subkey, parse_key);
            case 7:
                return parse_optional(v, out.seq_number, der::as_uint32);
            case 8:
                return parse_authorization(v, 0, out.authorization);
            default:
                return make_error(Code::BadTag, v.offset, "unknown Authenticator field");
        }
    };
    // Required: authenticator-vno, crealm, cname, cusec, ctime.
    return parse_plaintext(data, 2, 0x7 | (1u << 4) | (1u << 5), "Authenticator field", out, field);
}

DecodeResult parse_enc_krb_cred_part(Bytes data, EncKrbCredPart& out) {
    auto info = [&](const Tlv& item) -> DecodeResult {
        KrbCredInfo k;
        unsigned iseen = 0;
        auto f = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
            switch (n) {
                case 0:
                    return parse_key(v, k.key);
                case 1:
                    return parse_optional(v, k.prealm, der::as_string);
                case 2:
                    return parse_optional(v, k.pname, parse_principal);
                case 3:
                    return parse_optional(v, k.flags, parse_flags);
                case 4:
                    return parse_optional(v, k.authtime, parse_time);
                case 5:
                    return parse_optional(v, k.starttime, parse_time);
                case 6:
                    return parse_optional(v, k.endtime, parse_time);
                case 7:
                    return parse_optional(v, k.renew_till, parse_time);
                case 8:
                    return parse_optional(v, k.srealm, der::as_string);
                case 9:
                    return parse_optional(v, k.sname, parse_principal);
                case 10:
                    return {};  // caddr
                default:
                    return make_error(Code::BadTag, v.offset, "unknown KrbCredInfo field");
            }
        };
        if (auto e = walk_sequence(item, iseen, f); !e.ok()) return e;
        if (!(iseen & 1)) return missing(item, "KrbCredInfo key");
        if (out.ticket_info.size() >= kMaxList) {
            return make_error(Code::TooLarge, item.offset, "too many KrbCredInfo");
        }
        out.ticket_info.push_back(std::move(k));
        return {};
    };
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 0:
                return walk_sequence_of(v, "ticket-info is not a SEQUENCE OF", info);
            case 1:
                return parse_optional(v, out.nonce, der::as_uint32);
            case 2:
                return parse_optional(v, out.timestamp, parse_time);
            case 3:
            case 4:
            case 5:
                return {};  // usec, s-address, r-address
            default:
                return make_error(Code::BadTag, v.offset, "unknown EncKrbCredPart field");
        }
    };
    return parse_plaintext(data, 29, 1, "EncKrbCredPart ticket-info", out, field);
}

DecodeResult parse_enc_kdc_rep_part(Bytes data, EncKdcRepPart& out) {
    out = EncKdcRepPart{};
    Reader r(data, 0, 0, der::LengthRule::BerDefinite);
    Tlv app, seq;
    if (auto e = r.next(app); !e.ok()) return e;
    // EncASRepPart is [APPLICATION 25], EncTGSRepPart [APPLICATION 26]; both are accepted for
    // either reply (RFC 4120 §5.4.2 notes that implementations send 25 in TGS-REPs).
    const std::uint32_t tag = app.is_application(26) ? 26 : 25;
    if (auto e = app_sequence(app, tag, seq); !e.ok()) return e;
    out.tag = tag;
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 0:
                return parse_key(v, out.key);
            case 1:
                return walk_sequence_of(v, "last-req is not a SEQUENCE OF",
                                        [](const Tlv&) -> DecodeResult { return {}; });
            case 2:
                return der::as_uint32(v, out.nonce);
            case 3:
                return parse_optional(v, out.key_expiration, parse_time);
            case 4:
                return parse_flags(v, out.flags);
            case 5:
                return parse_time(v, out.authtime);
            case 6:
                return parse_optional(v, out.starttime, parse_time);
            case 7:
                return parse_time(v, out.endtime);
            case 8:
                return parse_optional(v, out.renew_till, parse_time);
            case 9:
                return der::as_string(v, out.srealm);
            case 10:
                return parse_principal(v, out.sname);
            case 11:
                return count_elements(v, out.address_count);
            case 12:
                // encrypted-pa-data [12] METHOD-DATA: the PA-DATA types only.
                return walk_sequence_of(v, "encrypted-pa-data", [&](const Tlv& pa) {
                    std::int32_t type = 0;
                    unsigned pseen = 0;
                    auto pf = [&](std::uint32_t m, const Tlv& t) -> DecodeResult {
                        if (m == 1) return der::as_int32(t, type);
                        if (m == 2) return {};
                        return make_error(Code::BadTag, t.offset, "unknown PA-DATA field");
                    };
                    if (auto e = walk_sequence(pa, pseen, pf); !e.ok()) return e;
                    if (out.encrypted_pa_data.size() >= kMaxList) {
                        return DecodeResult(make_error(Code::TooLarge, pa.offset, "PA-DATA"));
                    }
                    out.encrypted_pa_data.push_back(type);
                    return DecodeResult{};
                });
            default:
                return make_error(Code::BadTag, v.offset, "unknown EncKDCRepPart field");
        }
    };
    if (auto e = walk_sequence(seq, seen, field); !e.ok()) return e;
    // Required: key, last-req, nonce, flags, authtime, endtime, srealm, sname.
    constexpr unsigned kRequired = 0x7 | (1u << 4) | (1u << 5) | (1u << 7) | (1u << 9) | (1u << 10);
    if ((seen & kRequired) != kRequired) return missing(seq, "EncKDCRepPart field");
    return {};
}

std::string ticket_flags_to_string(std::uint32_t f) {
    using namespace ticket_flag;
    return flag_names(f, {{Forwardable, "forwardable"},
                          {Forwarded, "forwarded"},
                          {Proxiable, "proxiable"},
                          {Proxy, "proxy"},
                          {MayPostdate, "may-postdate"},
                          {Postdated, "postdated"},
                          {Invalid, "invalid"},
                          {Renewable, "renewable"},
                          {Initial, "initial"},
                          {PreAuthent, "pre-authent"},
                          {HwAuthent, "hw-authent"},
                          {TransitedPolicyChecked, "transited-policy-checked"},
                          {OkAsDelegate, "ok-as-delegate"},
                          {EncPaRep, "enc-pa-rep"},
                          {Anonymous, "anonymous"}});
}

std::string gss_flags_to_string(std::uint32_t f) {
    using namespace gss_flag;
    return flag_names(f, {{Deleg, "deleg"},
                          {Mutual, "mutual"},
                          {Replay, "replay"},
                          {Sequence, "sequence"},
                          {Conf, "conf"},
                          {Integ, "integ"},
                          {Anon, "anon"},
                          {DceStyle, "dce-style"},
                          {Identify, "identify"},
                          {ExtendedError, "extended-error"}});
}

namespace {

std::string principal(const PrincipalName& n, const std::string& realm) {
    return n.str() + "@" + realm;
}

std::string authorization(const AuthorizationInfo& a) {
    std::string s;
    if (!a.pac) return s;
    s += " pac=";
    for (std::size_t i = 0; i < a.pac->buffer_types.size(); ++i) {
        // Appended piece by piece: gcc 12's -Wrestrict misfires at -O3 on "literal" + string.
        if (i) s += ',';
        s += std::to_string(a.pac->buffer_types[i]);
    }
    if (a.pac->s4u2proxy_target) s += " s4u2proxy-target=" + *a.pac->s4u2proxy_target;
    for (const auto& t : a.pac->s4u_transited)
        s += " s4u-transited=" + t;
    return s;
}

}  // namespace

std::string to_string(const EncTicketPart& t) {
    return "EncTicketPart client=" + principal(t.cname, t.crealm) +
           " flags=" + ticket_flags_to_string(t.flags) + " authtime=" + t.authtime +
           " endtime=" + t.endtime + " session-key=" + etype_name(t.key.etype()) +
           authorization(t.authorization);
}

std::string to_string(const Authenticator& a) {
    std::string s = "Authenticator client=" + principal(a.cname, a.crealm) + " ctime=" + a.ctime;
    if (a.cksum) {
        s += " cksum=" + std::to_string(a.cksum->type);
        if (a.cksum->gss) {
            s += " gss-flags=" + gss_flags_to_string(a.cksum->gss->flags);
            if (a.cksum->gss->dlg_opt) s += " dlgopt=" + std::to_string(*a.cksum->gss->dlg_opt);
            if (!a.cksum->gss->deleg.empty()) {
                s += " deleg=" + std::to_string(a.cksum->gss->deleg.size()) + "B";
            }
        }
    }
    if (a.subkey) s += " subkey=" + etype_name(a.subkey->etype());
    return s + authorization(a.authorization);
}

std::string to_string(const EncKrbCredPart& c) {
    std::string s = "EncKrbCredPart";
    for (const auto& k : c.ticket_info) {
        s += " [";
        if (k.sname) s += k.sname->str() + "@" + k.srealm.value_or("");
        if (k.pname) s += " for " + k.pname->str() + "@" + k.prealm.value_or("");
        if (k.flags) s += " flags=" + ticket_flags_to_string(*k.flags);
        s += " key=" + etype_name(k.key.etype()) + "]";
    }
    return s;
}

std::string to_string(const EncKdcRepPart& r) {
    return std::string(r.tag == 26 ? "EncTGSRepPart" : "EncASRepPart") +
           " sname=" + principal(r.sname, r.srealm) + " flags=" + ticket_flags_to_string(r.flags) +
           " authtime=" + r.authtime + " endtime=" + r.endtime +
           " session-key=" + etype_name(r.key.etype());
}

}  // namespace hopscope::auth
