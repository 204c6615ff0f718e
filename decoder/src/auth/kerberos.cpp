#include "hopscope/auth/kerberos.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

#include "hopscope/auth/der.hpp"
#include "kerberos_der.hpp"

namespace hopscope::auth {

namespace krb_der {

DecodeResult missing(const Tlv& t, const char* what) {
    return make_error(Code::BadValue, t.offset, std::string("missing ") + what);
}

DecodeResult app_sequence(const Tlv& app, std::uint32_t n, Tlv& seq) {
    if (!app.is_application(n) || !app.constructed) {
        return make_error(Code::BadTag, app.offset, "unexpected application tag");
    }
    return der::explicit_inner(app, seq);
}

DecodeResult parse_principal(const Tlv& seq, PrincipalName& out) {
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        if (n == 0) {
            if (auto e = der::as_int32(v, out.name_type); !e.ok()) return e;
        } else if (n == 1) {
            // Joined on the stack, then copied once: no allocation for a name that fits the
            // short-string buffer ("krbtgt/LAB.TEST"), one for a longer one (appending grew the
            // string twice for "MSSQLSvc/host.domain:1433"). A longer name goes on in the string.
            out.text.clear();
            out.count = 0;
            out.first_len = 0;
            std::array<char, 256> buf;
            std::size_t len = 0;
            bool spilled = false;
            auto component = [&](const Tlv& s) -> DecodeResult {
                std::string_view str;
                if (auto e = der::as_string_view(s, str); !e.ok()) return e;
                if (out.count >= kMaxList) {
                    return make_error(Code::TooLarge, s.offset, "too many name components");
                }
                const std::size_t sep = out.count != 0 ? 1 : 0;
                if (!spilled && len + sep + str.size() <= buf.size()) {
                    if (sep != 0) buf[len++] = '/';
                    std::copy(str.begin(), str.end(),
                              buf.begin() + static_cast<std::ptrdiff_t>(len));
                    len += str.size();
                    if (out.count++ == 0) out.first_len = static_cast<std::uint32_t>(str.size());
                    return {};
                }
                if (!spilled) out.text.assign(buf.data(), len);
                spilled = true;
                out.add(str);
                return {};
            };
            if (auto e = walk_sequence_of(v, "name-string is not a SEQUENCE", component); !e.ok()) {
                return e;
            }
            if (!spilled) out.text.assign(buf.data(), len);
        } else {
            return make_error(Code::BadTag, v.offset, "unknown PrincipalName field");
        }
        return {};
    };
    if (auto e = walk_sequence(seq, seen, field); !e.ok()) return e;
    if (seen != 3) return missing(seq, "PrincipalName field");
    return {};
}

std::string flag_names(std::uint32_t v,
                       std::initializer_list<std::pair<std::uint32_t, const char*>> names) {
    return flag_names(v, std::span(names.begin(), names.size()));
}

std::string flag_names(std::uint32_t v,
                       std::span<const std::pair<std::uint32_t, const char*>> names) {
    std::string s;
    for (const auto& [bit, name] : names) {
        if ((v & bit) == 0) continue;
        if (!s.empty()) s += '|';
        s += name;
    }
    return s;
}

}  // namespace krb_der

namespace {

using Code = DecodeError::Code;
using der::Reader;
using der::TagClass;
using der::Tlv;
using namespace krb_der;

DecodeResult parse_enc_data(const Tlv& seq, EncryptedDataInfo& out) {
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 0:
                if (auto e = der::as_int32(v, out.etype); !e.ok()) return e;
                break;
            case 1:
                if (auto e = parse_optional(v, out.kvno, der::as_uint32); !e.ok()) return e;
                break;
            case 2: {
                Bytes c;
                if (auto e = der::as_octet_string(v, c); !e.ok()) return e;
                out.cipher_len = c.size();
                out.cipher = c;
                break;
            }
            default:
                return make_error(Code::BadTag, v.offset, "unknown EncryptedData field");
        }
        return {};
    };
    if (auto e = walk_sequence(seq, seen, field); !e.ok()) return e;
    if ((seen & 5) != 5) return missing(seq, "EncryptedData field");
    return {};
}

DecodeResult parse_string_field(const Tlv& v, std::string& out) {
    return der::as_string(v, out);
}

DecodeResult parse_ticket(const Tlv& app, TicketInfo& out) {
    Tlv seq;
    if (auto e = app_sequence(app, 1, seq); !e.ok()) return e;
    out.size = app.total();
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 0:
                if (auto e = der::as_int32(v, out.tkt_vno); !e.ok()) return e;
                break;
            case 1:
                if (auto e = parse_string_field(v, out.realm); !e.ok()) return e;
                break;
            case 2:
                if (auto e = parse_principal(v, out.sname); !e.ok()) return e;
                break;
            case 3:
                if (auto e = parse_enc_data(v, out.enc_part); !e.ok()) return e;
                break;
            default:
                return make_error(Code::BadTag, v.offset, "unknown Ticket field");
        }
        return {};
    };
    if (auto e = walk_sequence(seq, seen, field); !e.ok()) return e;
    if (seen != 15) return missing(app, "Ticket field");
    return {};
}

/// SEQUENCE OF Ticket (KDC-REQ-BODY additional-tickets, KRB-CRED tickets), at most kMaxList.
DecodeResult parse_tickets(const Tlv& t, const char* not_sequence, std::vector<TicketInfo>& out) {
    auto ticket = [&](const Tlv& item) -> DecodeResult {
        TicketInfo ti;
        if (auto e = parse_ticket(item, ti); !e.ok()) return e;
        if (out.size() >= kMaxList)
            return make_error(Code::TooLarge, item.offset, "too many tickets");
        out.push_back(std::move(ti));
        return {};
    };
    return walk_sequence_of(t, not_sequence, ticket);
}

DecodeResult check_pvno_type(const Tlv& pvno_v, const Tlv& type_v, std::int32_t want) {
    std::int32_t pvno = 0, type = 0;
    if (auto e = der::as_int32(pvno_v, pvno); !e.ok()) return e;
    if (pvno != 5) return make_error(Code::BadValue, pvno_v.offset, "pvno is not 5");
    if (auto e = der::as_int32(type_v, type); !e.ok()) return e;
    if (type != want) return make_error(Code::BadValue, type_v.offset, "msg-type mismatch");
    return {};
}

/// Walks a Kerberos message SEQUENCE that opens with pvno [first] and msg-type [first + 1]
/// (KDC-REQ, KDC-REP, AP-REQ, AP-REP, KRB-CRED, KRB-ERROR in RFC 4120 §5.4 to §5.9, and the
/// user-to-user TGT-REQUEST/REPLY): those two are checked here (pvno 5, msg-type `want`, pvno
/// first), every other field goes to `fn(n, inner)`.
template <typename Fn>
DecodeResult walk_message(const Tlv& seq, std::uint32_t first, std::int32_t want, unsigned& seen,
                          Fn&& fn) {
    Tlv pvno;
    return walk_sequence(seq, seen, [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        if (n == first) {
            pvno = v;
            return {};
        }
        if (n == first + 1) {
            if (!(seen & (1u << first))) return missing(v, "pvno");
            return check_pvno_type(pvno, v, want);
        }
        return fn(n, v);
    });
}

DecodeResult parse_ap_req(const Tlv& app, ApReq& out) {
    Tlv seq;
    if (auto e = app_sequence(app, 14, seq); !e.ok()) return e;
    out.size = app.total();
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 2: {
                std::size_t bits = 0;
                if (auto e = der::as_bit_string(v, out.ap_options, bits); !e.ok()) return e;
                break;
            }
            case 3:
                if (auto e = parse_ticket(v, out.ticket); !e.ok()) return e;
                break;
            case 4:
                if (auto e = parse_enc_data(v, out.authenticator); !e.ok()) return e;
                break;
            default:
                return make_error(Code::BadTag, v.offset, "unknown AP-REQ field");
        }
        return {};
    };
    if (auto e = walk_message(seq, 0, krb_msg::ApReq, seen, field); !e.ok()) return e;
    if (seen != 31) return missing(app, "AP-REQ field");
    return {};
}

DecodeResult parse_ap_rep(const Tlv& app, ApRep& out) {
    Tlv seq;
    if (auto e = app_sequence(app, 15, seq); !e.ok()) return e;
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 2:
                if (auto e = parse_enc_data(v, out.enc_part); !e.ok()) return e;
                break;
            default:
                return make_error(Code::BadTag, v.offset, "unknown AP-REP field");
        }
        return {};
    };
    if (auto e = walk_message(seq, 0, krb_msg::ApRep, seen, field); !e.ok()) return e;
    if (seen != 7) return missing(app, "AP-REP field");
    return {};
}

DecodeResult parse_padata(const Tlv& seq_of, bool decode_values, std::vector<PaData>& out,
                          bool tgs_ap_req = true);

/// Best-effort view of KRB-ERROR e-data: METHOD-DATA (SEQUENCE OF PA-DATA) or MS-KILE
/// KERB-ERROR-DATA ::= SEQUENCE { data-type [1] INTEGER, data-value [2] OCTET STRING OPTIONAL },
/// whose KERB_ERR_TYPE_EXTENDED (3) value is KERB-EXT-ERROR { status, reserved, flags } (LE).
void read_e_data(Bytes data, std::size_t base, unsigned depth, KrbError& out) {
    Reader r(data, base, depth, der::LengthRule::BerDefinite);
    Tlv seq;
    if (!r.next(seq).ok() || !r.at_end() || !seq.is_universal(der::tag::Sequence) ||
        !seq.constructed) {
        return;
    }
    Reader items;
    if (!Reader::enter(seq, items).ok()) return;
    Tlv first;
    if (!items.peek(first)) return;
    if (first.is_universal(der::tag::Sequence)) {
        std::vector<PaData> pas;
        if (!parse_padata(seq, false, pas).ok()) return;
        for (const auto& p : pas)
            out.e_data_padata.push_back(p.type);
        return;
    }
    std::optional<std::int32_t> type;
    Bytes value;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        if (n == 1) {
            std::int32_t t = 0;
            if (auto e = der::as_int32(v, t); !e.ok()) return e;
            type = t;
            return {};
        }
        if (n == 2) return der::as_octet_string(v, value);
        return make_error(Code::BadTag, v.offset, "unknown KERB-ERROR-DATA field");
    };
    unsigned seen = 0;
    if (!walk_sequence(seq, seen, field).ok()) return;  // neither form: nothing to report
    if (!type) return;
    out.e_data_type = type;
    if (*type == 3 && value.size() >= 4) out.ext_status = load_u32le(value.data());
}

DecodeResult parse_krb_error(const Tlv& app, KrbError& out) {
    Tlv seq;
    if (auto e = app_sequence(app, 30, seq); !e.ok()) return e;
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 2:
                if (auto e = parse_optional(v, out.ctime, der::as_kerberos_time); !e.ok()) return e;
                break;
            case 3:
                if (auto e = parse_optional(v, out.cusec, der::as_int32); !e.ok()) return e;
                break;
            case 4:
                if (auto e = der::as_kerberos_time(v, out.stime); !e.ok()) return e;
                break;
            case 5:
                if (auto e = der::as_int32(v, out.susec); !e.ok()) return e;
                break;
            case 6:
                if (auto e = der::as_int32(v, out.error_code); !e.ok()) return e;
                break;
            case 7:
                if (auto e = parse_optional(v, out.crealm, parse_string_field); !e.ok()) return e;
                break;
            case 8:
                if (auto e = parse_optional(v, out.cname, parse_principal); !e.ok()) return e;
                break;
            case 9:
                if (auto e = parse_string_field(v, out.realm); !e.ok()) return e;
                break;
            case 10:
                if (auto e = parse_optional(v, out.sname, parse_principal); !e.ok()) return e;
                break;
            case 11:
                if (auto e = parse_optional(v, out.e_text, parse_string_field); !e.ok()) return e;
                break;
            case 12: {
                Bytes d;
                if (auto e = der::as_octet_string(v, d); !e.ok()) return e;
                out.e_data_len = d.size();
                read_e_data(d, v.offset + v.header, v.depth + 1, out);
                break;
            }
            default:
                return make_error(Code::BadTag, v.offset, "unknown KRB-ERROR field");
        }
        return {};
    };
    if (auto e = walk_message(seq, 0, krb_msg::Error, seen, field); !e.ok()) return e;
    // Required: pvno, msg-type, stime, susec, error-code, realm (sname is omitted by some KDCs).
    constexpr unsigned kRequired =
        (1u << 0) | (1u << 1) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 9);
    if ((seen & kRequired) != kRequired) return missing(app, "KRB-ERROR field");
    return {};
}

// --- PA-DATA values -------------------------------------------------------------------------

DecodeResult parse_pa_for_user(Bytes value, std::size_t base, PaForUser& out) {
    Reader r(value, base, 1, der::LengthRule::BerDefinite);
    Tlv seq;
    if (auto e = r.next(seq); !e.ok()) return e;
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 0:
                if (auto e = parse_principal(v, out.user_name); !e.ok()) return e;
                break;
            case 1:
                if (auto e = parse_string_field(v, out.user_realm); !e.ok()) return e;
                break;
            case 2:
                break;  // cksum: keyed checksum, not kept
            case 3:
                if (auto e = parse_string_field(v, out.auth_package); !e.ok()) return e;
                break;
            default:
                return make_error(Code::BadTag, v.offset, "unknown PA-FOR-USER field");
        }
        return {};
    };
    if (auto e = walk_sequence(seq, seen, field); !e.ok()) return e;
    if ((seen & 3) != 3) return missing(seq, "PA-FOR-USER field");
    return {};
}

/// A PA-DATA value that is a SEQUENCE whose first field must be [0]: that field's inner TLV in
/// `first`; missing(`what`) when the SEQUENCE is empty or starts with another field.
DecodeResult pa_value_field0(Bytes value, std::size_t base, const char* what, Tlv& first) {
    Reader r(value, base, 1, der::LengthRule::BerDefinite);
    Tlv seq;
    if (auto e = r.next(seq); !e.ok()) return e;
    if (!seq.is_universal(der::tag::Sequence) || !seq.constructed) {
        return make_error(Code::BadTag, seq.offset, "expected SEQUENCE");
    }
    der::FieldReader f;
    if (auto e = der::FieldReader::enter(seq, f); !e.ok()) return e;
    if (f.at_end()) return missing(seq, what);
    Tlv wrapper;
    if (auto e = f.next(wrapper, first); !e.ok()) return e;
    if (wrapper.number != 0) return missing(seq, what);
    return {};
}

DecodeResult parse_s4u_x509_user(Bytes value, std::size_t base, PaS4uX509User& out) {
    Tlv user_id;
    if (auto e = pa_value_field0(value, base, "user-id", user_id); !e.ok()) return e;
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 0:
                break;  // nonce
            case 1:
                if (auto e = parse_optional(v, out.cname, parse_principal); !e.ok()) return e;
                break;
            case 2:
                if (auto e = parse_string_field(v, out.crealm); !e.ok()) return e;
                break;
            case 3:
                out.has_certificate = true;
                break;
            case 4: {
                std::uint32_t bits = 0;
                std::size_t count = 0;
                if (auto e = der::as_bit_string(v, bits, count); !e.ok()) return e;
                out.options = bits;
                break;
            }
            default:
                break;  // extensible
        }
        return {};
    };
    if (auto e = walk_sequence(user_id, seen, field); !e.ok()) return e;
    if ((seen & 4) == 0) return missing(user_id, "S4UUserID crealm");
    return {};
}

DecodeResult parse_pac_options(Bytes value, std::size_t base, std::uint32_t& out) {
    Tlv v;
    if (auto e = pa_value_field0(value, base, "PA-PAC-OPTIONS flags", v); !e.ok()) return e;
    std::size_t bits = 0;
    return der::as_bit_string(v, out, bits);
}

DecodeResult parse_pac_request(Bytes value, std::size_t base, bool& out) {
    Tlv v;
    if (auto e = pa_value_field0(value, base, "include-pac", v); !e.ok()) return e;
    return der::as_boolean(v, out);
}

/// `decode_values`: only in KDC requests are the PA values of interest decoded; `tgs_ap_req`:
/// PA-TGS-REQ's among them (KerberosParse::tgs_ap_req).
DecodeResult parse_padata(const Tlv& seq_of, bool decode_values, std::vector<PaData>& out,
                          bool tgs_ap_req) {
    out.reserve(4);  // a message has one to four: one allocation
    auto element = [&](const Tlv& item) -> DecodeResult {
        if (out.size() >= kMaxList) return make_error(Code::TooLarge, item.offset, "padata");
        PaData pa;
        Bytes value;
        std::size_t value_at = 0;
        unsigned seen = 0;
        auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
            // RFC 4120 §5.2.7: padata-type is [1], padata-value [2] ([0] is unused).
            if (n == 1) {
                if (auto e = der::as_int32(v, pa.type); !e.ok()) return e;
            } else if (n == 2) {
                if (auto e = der::as_octet_string(v, value); !e.ok()) return e;
                value_at = v.offset + v.header;
            } else {
                return make_error(Code::BadTag, v.offset, "unknown PA-DATA field");
            }
            return {};
        };
        if (auto e = walk_sequence(item, seen, field); !e.ok()) return e;
        if (seen != 6) return missing(item, "PA-DATA field");
        pa.length = value.size();
        if (decode_values) {
            switch (pa.type) {
                case pa_type::TgsReq: {
                    if (!tgs_ap_req) break;
                    Reader vr(value, value_at, item.depth + 1, item.rule);
                    Tlv app;
                    if (auto e = vr.next(app); !e.ok()) return e;
                    ApReq ap;
                    if (auto e = parse_ap_req(app, ap); !e.ok()) return e;
                    pa.tgs_ap_req = std::move(ap);
                    break;
                }
                case pa_type::ForUser: {
                    PaForUser u;
                    if (auto e = parse_pa_for_user(value, value_at, u); !e.ok()) return e;
                    pa.for_user = std::move(u);
                    break;
                }
                case pa_type::S4uX509User: {
                    PaS4uX509User u;
                    if (auto e = parse_s4u_x509_user(value, value_at, u); !e.ok()) return e;
                    pa.s4u_x509_user = std::move(u);
                    break;
                }
                case pa_type::PacOptions: {
                    std::uint32_t flags = 0;
                    if (auto e = parse_pac_options(value, value_at, flags); !e.ok()) return e;
                    pa.pac_options = flags;
                    break;
                }
                case pa_type::PacRequest: {
                    bool inc = false;
                    if (auto e = parse_pac_request(value, value_at, inc); !e.ok()) return e;
                    pa.include_pac = inc;
                    break;
                }
                default:
                    break;
            }
        }
        out.push_back(std::move(pa));
        return {};
    };
    return walk_sequence_of(seq_of, "padata is not a SEQUENCE OF", element);
}

DecodeResult parse_req_body(const Tlv& seq, KdcReq& out) {
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 0: {
                std::size_t bits = 0;
                if (auto e = der::as_bit_string(v, out.kdc_options, bits); !e.ok()) return e;
                break;
            }
            case 1:
                if (auto e = parse_optional(v, out.cname, parse_principal); !e.ok()) return e;
                break;
            case 2:
                if (auto e = parse_string_field(v, out.realm); !e.ok()) return e;
                break;
            case 3:
                if (auto e = parse_optional(v, out.sname, parse_principal); !e.ok()) return e;
                break;
            case 4:
                if (auto e = parse_optional(v, out.from, der::as_kerberos_time); !e.ok()) return e;
                break;
            case 5:
                if (auto e = der::as_kerberos_time(v, out.till); !e.ok()) return e;
                break;
            case 6:
                if (auto e = parse_optional(v, out.rtime, der::as_kerberos_time); !e.ok()) return e;
                break;
            case 7:
                if (auto e = der::as_uint32(v, out.nonce); !e.ok()) return e;
                break;
            case 8: {
                // One allocation of the list's size: each INTEGER takes 3 bytes or more, so a
                // third of the bytes bounds the count (the size exactly for the enctypes clients
                // send, all below 128). Exact because the pipeline keeps the list in its event,
                // moved there, for as long as the analyzer's window keeps the exchange.
                out.etypes.reserve(std::min(v.value.size() / 3, kMaxList));
                auto etype = [&](const Tlv& t) -> DecodeResult {
                    std::int32_t et = 0;
                    if (auto e = der::as_int32(t, et); !e.ok()) return e;
                    if (out.etypes.size() >= kMaxList) {
                        return make_error(Code::TooLarge, t.offset, "too many etypes");
                    }
                    out.etypes.push_back(et);
                    return {};
                };
                if (auto e = walk_sequence_of(v, "etype is not a SEQUENCE OF", etype); !e.ok())
                    return e;
                break;
            }
            case 9: {
                auto address = [&](const Tlv&) -> DecodeResult {
                    ++out.address_count;
                    return {};
                };
                if (auto e = der::for_each_element(v, address); !e.ok()) return e;
                break;
            }
            case 10:
                out.has_enc_authorization_data = true;
                break;
            case 11: {
                if (auto e = parse_tickets(v, "additional-tickets", out.additional_tickets);
                    !e.ok()) {
                    return e;
                }
                break;
            }
            default:
                return make_error(Code::BadTag, v.offset, "unknown KDC-REQ-BODY field");
        }
        return {};
    };
    if (auto e = walk_sequence(seq, seen, field); !e.ok()) return e;
    // Required: kdc-options, realm, till, nonce, etype (RFC 4120 §5.4.1).
    constexpr unsigned kRequired = (1u << 0) | (1u << 2) | (1u << 5) | (1u << 7) | (1u << 8);
    if ((seen & kRequired) != kRequired) return missing(seq, "KDC-REQ-BODY field");
    return {};
}

DecodeResult parse_kdc_req(const Tlv& app, KdcReq& out, const KerberosParse& what) {
    Tlv seq;
    if (auto e = app_sequence(app, app.number, seq); !e.ok()) return e;
    out.msg_type = static_cast<std::int32_t>(app.number);
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        // RFC 4120 §5.4.1: KDC-REQ fields start at [1].
        switch (n) {
            case 3:
                if (auto e = parse_padata(v, true, out.padata, what.tgs_ap_req); !e.ok()) return e;
                break;
            case 4:
                if (auto e = parse_req_body(v, out); !e.ok()) return e;
                break;
            default:
                return make_error(Code::BadTag, v.offset, "unknown KDC-REQ field");
        }
        return {};
    };
    if (auto e = walk_message(seq, 1, out.msg_type, seen, field); !e.ok()) return e;
    if ((seen & 0x16) != 0x16) return missing(app, "KDC-REQ field");
    return {};
}

DecodeResult parse_kdc_rep(const Tlv& app, KdcRep& out) {
    Tlv seq;
    if (auto e = app_sequence(app, app.number, seq); !e.ok()) return e;
    out.msg_type = static_cast<std::int32_t>(app.number);
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 2:
                if (auto e = parse_padata(v, false, out.padata); !e.ok()) return e;
                break;
            case 3:
                if (auto e = parse_string_field(v, out.crealm); !e.ok()) return e;
                break;
            case 4:
                if (auto e = parse_principal(v, out.cname); !e.ok()) return e;
                break;
            case 5:
                if (auto e = parse_ticket(v, out.ticket); !e.ok()) return e;
                break;
            case 6:
                if (auto e = parse_enc_data(v, out.enc_part); !e.ok()) return e;
                break;
            default:
                return make_error(Code::BadTag, v.offset, "unknown KDC-REP field");
        }
        return {};
    };
    if (auto e = walk_message(seq, 0, out.msg_type, seen, field); !e.ok()) return e;
    if ((seen & 0x7b) != 0x7b) return missing(app, "KDC-REP field");
    return {};
}

DecodeResult parse_krb_cred(const Tlv& app, KrbCred& out) {
    Tlv seq;
    if (auto e = app_sequence(app, 22, seq); !e.ok()) return e;
    unsigned seen = 0;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        switch (n) {
            case 2: {
                if (auto e = parse_tickets(v, "tickets is not a SEQUENCE OF", out.tickets); !e.ok())
                    return e;
                break;
            }
            case 3:
                if (auto e = parse_enc_data(v, out.enc_part); !e.ok()) return e;
                break;
            default:
                return make_error(Code::BadTag, v.offset, "unknown KRB-CRED field");
        }
        return {};
    };
    if (auto e = walk_message(seq, 0, krb_msg::Cred, seen, field); !e.ok()) return e;
    if (seen != 15) return missing(app, "KRB-CRED field");
    return {};
}

DecodeResult parse_tgt_msg(const Tlv& seq, std::int32_t want, KerberosMessage& out) {
    unsigned seen = 0;
    KrbTgtReq req;
    KrbTgtRep rep;
    auto field = [&](std::uint32_t n, const Tlv& v) -> DecodeResult {
        if (want == krb_msg::TgtReq && n == 2) {
            if (auto e = parse_optional(v, req.server_name, parse_principal); !e.ok()) return e;
        } else if (want == krb_msg::TgtReq && n == 3) {
            if (auto e = parse_optional(v, req.realm, parse_string_field); !e.ok()) return e;
        } else if (want == krb_msg::TgtRep && n == 2) {
            if (auto e = parse_ticket(v, rep.ticket); !e.ok()) return e;
        } else {
            return make_error(Code::BadTag, v.offset, "unknown TGT-REQ/REP field");
        }
        return {};
    };
    if (auto e = walk_message(seq, 0, want, seen, field); !e.ok()) return e;
    if ((seen & 3) != 3 || (want == krb_msg::TgtRep && !(seen & 4))) {
        return missing(seq, "TGT-REQ/REP field");
    }
    out.msg_type = want;
    if (want == krb_msg::TgtReq) {
        out.body = std::move(req);
    } else {
        out.body = std::move(rep);
    }
    return {};
}

/// One message body: `parse(app, m)` into a fresh value in `out.body` itself (not into one moved
/// there after: a KDC-REQ is 368 bytes of strings, vectors and optionals, moved and destroyed
/// for each of a busy KDC's messages). On failure `out.body` is a fresh message's again (an
/// empty KdcReq), nothing of what was read kept.
template <typename T, typename Parse>
DecodeResult parse_body(const Tlv& app, KerberosMessage& out, Parse parse) {
    if (auto e = parse(app, out.body.emplace<T>()); !e.ok()) {
        out.body.emplace<KdcReq>();
        return e;
    }
    return {};
}

DecodeResult parse_message_tlv(const Tlv& app, KerberosMessage& out,
                               const KerberosParse& what = {}) {
    if (app.cls != TagClass::Application || !app.constructed) {
        return make_error(Code::BadTag, app.offset, "not a Kerberos message");
    }
    out.msg_type = static_cast<std::int32_t>(app.number);
    switch (app.number) {
        case krb_msg::AsReq:
        case krb_msg::TgsReq:
            return parse_body<KdcReq>(
                app, out, [&what](const Tlv& a, KdcReq& q) { return parse_kdc_req(a, q, what); });
        case krb_msg::AsRep:
        case krb_msg::TgsRep:
            return parse_body<KdcRep>(app, out, parse_kdc_rep);
        case krb_msg::ApReq:
            return parse_body<ApReq>(app, out, parse_ap_req);
        case krb_msg::ApRep:
            return parse_body<ApRep>(app, out, parse_ap_rep);
        case krb_msg::Error:
            return parse_body<KrbError>(app, out, parse_krb_error);
        case krb_msg::Cred:
            return parse_body<KrbCred>(app, out, parse_krb_cred);
        default:
            return make_error(Code::Unsupported, app.offset, "unhandled Kerberos message");
    }
}

}  // namespace

const char* krb_msg_type_name(std::int32_t t) {
    switch (t) {
        case krb_msg::AsReq:
            return "AS-REQ";
        case krb_msg::AsRep:
            return "AS-REP";
        case krb_msg::TgsReq:
            return "TGS-REQ";
        case krb_msg::TgsRep:
            return "TGS-REP";
        case krb_msg::ApReq:
            return "AP-REQ";
        case krb_msg::ApRep:
            return "AP-REP";
        case krb_msg::Cred:
            return "KRB-CRED";
        case krb_msg::Error:
            return "KRB-ERROR";
        default:
            return "?";
    }
}

namespace {
/// KDCOptions names in bit order (most significant first, as kdc_options_to_string lists them).
constexpr std::pair<std::uint32_t, const char*> kKdcOptionNames[] = {
    {kdc_option::Forwardable, "forwardable"},
    {kdc_option::Forwarded, "forwarded"},
    {kdc_option::Proxiable, "proxiable"},
    {kdc_option::Proxy, "proxy"},
    {kdc_option::AllowPostdate, "allow-postdate"},
    {kdc_option::Postdated, "postdated"},
    {kdc_option::Renewable, "renewable"},
    {kdc_option::OptHardwareAuth, "opt-hardware-auth"},
    {kdc_option::CnameInAddlTkt, "cname-in-addl-tkt"},
    {kdc_option::Canonicalize, "canonicalize"},
    {kdc_option::RequestAnonymous, "request-anonymous"},
    {kdc_option::DisableTransitedCheck, "disable-transited-check"},
    {kdc_option::RenewableOk, "renewable-ok"},
    {kdc_option::EncTktInSkey, "enc-tkt-in-skey"},
    {kdc_option::Renew, "renew"},
    {kdc_option::Validate, "validate"},
};
}  // namespace

std::string kdc_options_to_string(std::uint32_t o) {
    return flag_names(o, kKdcOptionNames);
}

const char* kdc_option_name(std::uint32_t bit) {
    for (const auto& [b, name] : kKdcOptionNames)
        if (b == bit) return name;
    return nullptr;
}

std::string pac_options_to_string(std::uint32_t o) {
    using namespace pac_option;
    return flag_names(
        o, {{Claims, "claims"},
            {BranchAware, "branch-aware"},
            {ForwardToFullDc, "forward-to-full-dc"},
            {ResourceBasedConstrainedDelegation, "resource-based-constrained-delegation"}});
}

std::string ap_options_to_string(std::uint32_t o) {
    return flag_names(o, {{ap_option::UseSessionKey, "use-session-key"},
                          {ap_option::MutualRequired, "mutual-required"}});
}

const char* pa_type_name(std::int32_t t) {
    switch (t) {
        case 1:
            return "PA-TGS-REQ";
        case 2:
            return "PA-ENC-TIMESTAMP";
        case 3:
            return "PA-PW-SALT";
        case 11:
            return "PA-ETYPE-INFO";
        case 15:
            return "PA-PK-AS-REP-19";
        case 16:
            return "PA-PK-AS-REQ";
        case 17:
            return "PA-PK-AS-REP";
        case 19:
            return "PA-ETYPE-INFO2";
        case 128:
            return "PA-PAC-REQUEST";
        case 129:
            return "PA-FOR-USER";
        case 130:
            return "PA-S4U-X509-USER";
        case 133:
            return "PA-FX-COOKIE";
        case 136:
            return "PA-FX-FAST";
        case 137:
            return "PA-FX-ERROR";
        case 138:
            return "PA-ENCRYPTED-CHALLENGE";
        case 147:
            return "PA-OTP-REQUEST";
        case 149:
            return "PA-REQ-ENC-PA-REP";
        case 150:
            return "PA-AS-FRESHNESS";
        case 165:
            return "PA-SUPPORTED-ENCTYPES";
        case 167:
            return "PA-PAC-OPTIONS";
        default:
            return "?";
    }
}

const char* known_etype_name(std::int32_t e) {
    switch (e) {
        case 1:
            return "des-cbc-crc";
        case 3:
            return "des-cbc-md5";
        case 16:
            return "des3-cbc-sha1";
        case 17:
            return "aes128-cts-hmac-sha1-96";
        case 18:
            return "aes256-cts-hmac-sha1-96";
        case 19:
            return "aes128-cts-hmac-sha256-128";
        case 20:
            return "aes256-cts-hmac-sha384-192";
        case 23:
            return "rc4-hmac";
        case 24:
            return "rc4-hmac-exp";
        default:
            return nullptr;
    }
}

std::string etype_name(std::int32_t e) {
    if (const char* n = known_etype_name(e)) return n;
    return std::to_string(e);
}

std::string krb_error_name(std::int32_t c) {
    // RFC 4120 §7.5.9 (and MS-KILE for 60+ usage).
    static constexpr const char* kNames[] = {
        "KDC_ERR_NONE",
        "KDC_ERR_NAME_EXP",
        "KDC_ERR_SERVICE_EXP",
        "KDC_ERR_BAD_PVNO",
        "KDC_ERR_C_OLD_MAST_KVNO",
        "KDC_ERR_S_OLD_MAST_KVNO",
        "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        "KDC_ERR_PRINCIPAL_NOT_UNIQUE",
        "KDC_ERR_NULL_KEY",
        "KDC_ERR_CANNOT_POSTDATE",
        "KDC_ERR_NEVER_VALID",
        "KDC_ERR_POLICY",
        "KDC_ERR_BADOPTION",
        "KDC_ERR_ETYPE_NOSUPP",
        "KDC_ERR_SUMTYPE_NOSUPP",
        "KDC_ERR_PADATA_TYPE_NOSUPP",
        "KDC_ERR_TRTYPE_NOSUPP",
        "KDC_ERR_CLIENT_REVOKED",
        "KDC_ERR_SERVICE_REVOKED",
        "KDC_ERR_TGT_REVOKED",
        "KDC_ERR_CLIENT_NOTYET",
        "KDC_ERR_SERVICE_NOTYET",
        "KDC_ERR_KEY_EXPIRED",
        "KDC_ERR_PREAUTH_FAILED",
        "KDC_ERR_PREAUTH_REQUIRED",
        "KDC_ERR_SERVER_NOMATCH",
        "KDC_ERR_MUST_USE_USER2USER",
        "KDC_ERR_PATH_NOT_ACCEPTED",
        "KDC_ERR_SVC_UNAVAILABLE",
        nullptr,
        "KRB_AP_ERR_BAD_INTEGRITY",
        "KRB_AP_ERR_TKT_EXPIRED",
        "KRB_AP_ERR_TKT_NYV",
        "KRB_AP_ERR_REPEAT",
        "KRB_AP_ERR_NOT_US",
        "KRB_AP_ERR_BADMATCH",
        "KRB_AP_ERR_SKEW",
        "KRB_AP_ERR_BADADDR",
        "KRB_AP_ERR_BADVERSION",
        "KRB_AP_ERR_MSG_TYPE",
        "KRB_AP_ERR_MODIFIED",
        "KRB_AP_ERR_BADORDER",
        nullptr,
        "KRB_AP_ERR_BADKEYVER",
        "KRB_AP_ERR_NOKEY",
        "KRB_AP_ERR_MUT_FAIL",
        "KRB_AP_ERR_BADDIRECTION",
        "KRB_AP_ERR_METHOD",
        "KRB_AP_ERR_BADSEQ",
        "KRB_AP_ERR_INAPP_CKSUM",
        "KRB_AP_PATH_NOT_ACCEPTED",
        "KRB_ERR_RESPONSE_TOO_BIG",
        nullptr,
        nullptr,
        nullptr,
        nullptr,
        nullptr,
        nullptr,
        nullptr,
        "KRB_ERR_GENERIC",
        "KRB_ERR_FIELD_TOOLONG",
        "KDC_ERROR_CLIENT_NOT_TRUSTED",
        "KDC_ERROR_KDC_NOT_TRUSTED",
        "KDC_ERROR_INVALID_SIG",
        "KDC_ERR_KEY_TOO_WEAK",
        "KDC_ERR_CERTIFICATE_MISMATCH",
        "KRB_AP_ERR_NO_TGT",
        "KDC_ERR_WRONG_REALM",
        "KRB_AP_ERR_USER_TO_USER_REQUIRED",
        "KDC_ERR_CANT_VERIFY_CERTIFICATE",
        "KDC_ERR_INVALID_CERTIFICATE",
        "KDC_ERR_REVOKED_CERTIFICATE",
        "KDC_ERR_REVOCATION_STATUS_UNKNOWN",
        "KDC_ERR_REVOCATION_STATUS_UNAVAILABLE",
        "KDC_ERR_CLIENT_NAME_MISMATCH",
        "KDC_ERR_KDC_NAME_MISMATCH",
    };
    if (c >= 0 && static_cast<std::size_t>(c) < std::size(kNames) && kNames[c] != nullptr) {
        return kNames[c];
    }
    return "KRB_ERR_" + std::to_string(c);
}

PrincipalName PrincipalName::of(std::int32_t type,
                                std::initializer_list<std::string_view> components) {
    PrincipalName n;
    n.name_type = type;
    for (const std::string_view c : components)
        n.add(c);
    return n;
}

void PrincipalName::add(std::string_view component) {
    if (count == 0) {
        first_len = static_cast<std::uint32_t>(component.size());
    } else {
        text += '/';
    }
    text += component;
    ++count;
}

std::string PrincipalName::at(std::string_view realm) const {
    std::string s;
    s.reserve(text.size() + 1 + realm.size());
    s += text;
    s += '@';
    s += realm;
    return s;
}

const PaData* KdcReq::find_padata(std::int32_t type) const {
    for (const auto& p : padata)
        if (p.type == type) return &p;
    return nullptr;
}

bool looks_like_kerberos(Bytes data) {
    if (data.empty()) return false;
    switch (data[0]) {
        case 0x6a:
        case 0x6b:
        case 0x6c:
        case 0x6d:
        case 0x6e:
        case 0x6f:
        case 0x76:
        case 0x7e:
            return true;
        default:
            return false;
    }
}

DecodeResult parse_kerberos(Bytes data, KerberosMessage& out, KerberosParse what) {
    out = KerberosMessage{};
    Reader r(data, 0, 0, der::LengthRule::BerDefinite);
    Tlv app;
    if (auto e = r.next(app); !e.ok()) return e;
    if (!r.at_end()) {
        return make_error(Code::BadLength, r.offset(), "bytes after the Kerberos message");
    }
    return parse_message_tlv(app, out, what);
}

DecodeResult parse_krb5_token(Bytes data, Krb5GssToken& out) {
    out = Krb5GssToken{};
    Bytes body = data;
    std::size_t base = 0;
    if (!data.empty() && data[0] == 0x60) {
        GssInitialToken g;
        if (auto e = parse_gss_initial(data, g); !e.ok()) return e;
        if (!is_kerberos(g.mech.mech)) {
            return make_error(Code::BadValue, 0, "GSS token is not Kerberos");
        }
        out.gss_wrapped = true;
        out.mech = g.mech;
        body = g.inner;
        base = g.inner_offset;
    }
    if (body.size() >= 2 && !looks_like_kerberos(body)) {
        out.tok_id = load_u16be(body.data());
        body = body.subspan(2);
        base += 2;
    } else if (out.gss_wrapped) {
        return make_error(Code::BadValue, base, "no token id after the Kerberos OID");
    }
    Reader r(body, base, 0, der::LengthRule::BerDefinite);
    Tlv app;
    if (auto e = r.next(app); !e.ok()) return e;
    if (!r.at_end()) return make_error(Code::BadLength, r.offset(), "bytes after the message");
    if (out.tok_id == krb5_tok::TgtReq || out.tok_id == krb5_tok::TgtRep) {
        return parse_tgt_msg(
            app, *out.tok_id == krb5_tok::TgtReq ? krb_msg::TgtReq : krb_msg::TgtRep, out.message);
    }
    if (auto e = parse_message_tlv(app, out.message); !e.ok()) return e;
    if (out.tok_id) {
        const std::int32_t want = *out.tok_id == krb5_tok::ApReq   ? krb_msg::ApReq
                                  : *out.tok_id == krb5_tok::ApRep ? krb_msg::ApRep
                                  : *out.tok_id == krb5_tok::Error ? krb_msg::Error
                                                                   : -1;
        if (want != out.message.msg_type) {
            return make_error(Code::BadValue, base - 2, "token id does not match the message");
        }
    }
    return {};
}

DecodeResult KrbTcpFramer::feed(Bytes data, std::vector<std::vector<std::uint8_t>>& out) {
    return feed_each(data,
                     [&out](Bytes record) { out.emplace_back(record.begin(), record.end()); });
}

bool KrbTcpFramer::mark_ok(std::uint32_t mark) {
    if (mark & 0x80000000u) {
        state_ = make_error(Code::Desync, consumed_, "reserved bit set in record mark");
        return false;
    }
    if (mark > max_) {
        state_ = make_error(Code::TooLarge, consumed_, "Kerberos record over the cap");
        return false;
    }
    return true;
}

bool KrbTcpFramer::hold(Bytes& data) {
    if (buf_.size() < 4) {
        const std::size_t take = std::min<std::size_t>(4 - buf_.size(), data.size());
        buf_.insert(buf_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
        data = data.subspan(take);
        if (buf_.size() < 4) return true;
        if (!mark_ok(load_u32be(buf_.data()))) return false;
    }
    const std::size_t want = 4 + std::size_t{load_u32be(buf_.data())};
    const std::size_t take = std::min(want - buf_.size(), data.size());
    buf_.insert(buf_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
    data = data.subspan(take);
    return true;
}

std::string to_string(const KerberosMessage& m) {
    std::string s = krb_msg_type_name(m.msg_type);
    auto enc = [](const EncryptedDataInfo& e) {
        std::string r = etype_name(e.etype);
        if (e.kvno) r += " kvno=" + std::to_string(*e.kvno);
        return r + " cipher=" + std::to_string(e.cipher_len) + "B";
    };
    auto ticket = [&enc](const TicketInfo& t) {
        return t.sname.str() + "@" + t.realm + " (" + enc(t.enc_part) + ")";
    };
    if (const auto* q = std::get_if<KdcReq>(&m.body)) {
        s += " kdc-options=" + kdc_options_to_string(q->kdc_options);
        if (q->cname) s += " cname=" + q->cname->str();
        s += " realm=" + q->realm;
        if (q->sname) s += " sname=" + q->sname->str();
        s += " etypes=";
        for (std::size_t i = 0; i < q->etypes.size(); ++i) {
            if (i) s += ',';
            s += std::to_string(q->etypes[i]);
        }
        for (const auto& p : q->padata) {
            s += std::string(" pa=") + pa_type_name(p.type) + "(" + std::to_string(p.type) + ")";
            if (p.tgs_ap_req) s += "[ticket " + ticket(p.tgs_ap_req->ticket) + "]";
            if (p.for_user) {
                s += "[user " + p.for_user->user_name.str() + "@" + p.for_user->user_realm + "]";
            }
            if (p.s4u_x509_user) {
                // Piece by piece: gcc 12's -Wrestrict misfires on "literal" + (a ? b : "").
                s += "[user ";
                if (p.s4u_x509_user->cname) s += p.s4u_x509_user->cname->str();
                s += '@';
                s += p.s4u_x509_user->crealm;
                s += ']';
            }
            if (p.pac_options) {
                s += '[';
                s += pac_options_to_string(*p.pac_options);
                s += ']';
            }
            if (p.include_pac) s += *p.include_pac ? "[include-pac]" : "[no-pac]";
        }
        for (const auto& t : q->additional_tickets)
            s += " additional-ticket=" + ticket(t);
    } else if (const auto* p = std::get_if<KdcRep>(&m.body)) {
        s += " cname=" + p->cname.str() + "@" + p->crealm + " ticket=" + ticket(p->ticket) +
             " enc-part=" + enc(p->enc_part);
    } else if (const auto* a = std::get_if<ApReq>(&m.body)) {
        s += " ap-options=" + ap_options_to_string(a->ap_options) + " ticket=" + ticket(a->ticket) +
             " authenticator=" + enc(a->authenticator);
    } else if (const auto* r = std::get_if<ApRep>(&m.body)) {
        s += " enc-part=" + enc(r->enc_part);
    } else if (const auto* e = std::get_if<KrbError>(&m.body)) {
        s += " " + krb_error_name(e->error_code) + "(" + std::to_string(e->error_code) + ")";
        s += " realm=" + e->realm;
        if (e->sname) s += " sname=" + e->sname->str();
        if (e->cname) s += " cname=" + e->cname->str();
        if (e->crealm) s += " crealm=" + *e->crealm;
        s += " stime=" + e->stime;
        if (e->e_text) s += " e-text=" + *e->e_text;
        if (e->e_data_len) s += " e-data=" + std::to_string(e->e_data_len) + "B";
        for (std::int32_t t : e->e_data_padata) {
            s += std::string(" e-data-pa=") + pa_type_name(t) + "(" + std::to_string(t) + ")";
        }
        if (e->ext_status) {
            char buf[16];
            std::snprintf(buf, sizeof buf, "0x%08x", *e->ext_status);
            s += std::string(" ntstatus=") + buf;
        }
    } else if (const auto* c = std::get_if<KrbCred>(&m.body)) {
        for (const auto& t : c->tickets)
            s += " ticket=" + ticket(t);
    }
    return s;
}

}  // namespace hopscope::auth
