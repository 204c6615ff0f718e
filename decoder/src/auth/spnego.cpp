#include "hopscope/auth/spnego.hpp"

#include "hopscope/auth/der.hpp"

namespace hopscope::auth {
namespace {

using Code = DecodeError::Code;
using der::Reader;
using der::TagClass;
using der::Tlv;

/// mechListMIC (RFC 4178 §4.2.1, §4.2.2): only its presence and length are kept.
template <typename Token>
DecodeResult take_mic(const Tlv& v, Token& out) {
    Bytes mic;
    if (auto e = der::as_octet_string(v, mic); !e.ok()) return e;
    out.has_mech_list_mic = true;
    out.mech_list_mic_len = mic.size();
    return {};
}

DecodeResult parse_mech_list(const Tlv& seq, std::vector<Oid>& out) {
    if (!seq.is_universal(der::tag::Sequence) || !seq.constructed) {
        return make_error(Code::BadTag, seq.offset, "MechTypeList is not a SEQUENCE");
    }
    return der::for_each_element(seq, [&](const Tlv& t) -> DecodeResult {
        Bytes c;
        if (auto e = der::as_oid(t, c); !e.ok()) return e;
        if (out.size() >= 64) return make_error(Code::TooLarge, t.offset, "too many mechs");
        out.push_back(make_oid(c));
        return {};
    });
}

DecodeResult parse_init(const Tlv& seq, NegTokenInit& out) {
    return der::for_each_field(seq, [&](const Tlv& w, const Tlv& v) -> DecodeResult {
        switch (w.number) {
            case 0:
                if (auto e = parse_mech_list(v, out.mech_types); !e.ok()) return e;
                break;
            case 1: {
                std::uint32_t bits = 0;
                std::size_t n = 0;
                if (auto e = der::as_bit_string(v, bits, n); !e.ok()) return e;
                out.req_flags = bits;
                break;
            }
            case 2:
                if (auto e = der::as_octet_string(v, out.mech_token); !e.ok()) return e;
                out.has_mech_token = true;
                out.mech_token_offset = v.offset + v.header;
                break;
            case 3:
                if (v.is_universal(der::tag::Sequence) && v.constructed) {
                    // MS-SPNG 2.2.1 NegTokenInit2: negHints ::= SEQUENCE { hintName [0]
                    // GeneralString OPTIONAL, hintAddress [1] OCTET STRING OPTIONAL }.
                    out.is_init2 = true;
                    auto hint = [&](const Tlv& hw, const Tlv& hv) -> DecodeResult {
                        if (hw.number == 0) {
                            std::string s;
                            if (auto e = der::as_string(hv, s); !e.ok()) return e;
                            out.hint_name = std::move(s);
                        }
                        return {};
                    };
                    if (auto e = der::for_each_field(v, hint); !e.ok()) return e;
                } else {
                    if (auto e = take_mic(v, out); !e.ok()) return e;
                }
                break;
            case 4: {
                if (!out.is_init2) {
                    return make_error(Code::BadTag, w.offset, "[4] outside NegTokenInit2");
                }
                if (auto e = take_mic(v, out); !e.ok()) return e;
                break;
            }
            default:
                return make_error(Code::BadTag, w.offset, "unknown NegTokenInit field");
        }
        return {};
    });
}

DecodeResult parse_resp(const Tlv& seq, NegTokenResp& out) {
    return der::for_each_field(seq, [&](const Tlv& w, const Tlv& v) -> DecodeResult {
        switch (w.number) {
            case 0: {
                std::int64_t s = 0;
                if (auto e = der::as_enumerated(v, s); !e.ok()) return e;
                if (s < 0 || s > 3) return make_error(Code::BadValue, v.offset, "bad negState");
                out.neg_state = static_cast<NegState>(s);
                break;
            }
            case 1: {
                Bytes c;
                if (auto e = der::as_oid(v, c); !e.ok()) return e;
                out.supported_mech = make_oid(c);
                break;
            }
            case 2:
                if (auto e = der::as_octet_string(v, out.response_token); !e.ok()) return e;
                out.has_response_token = true;
                out.response_token_offset = v.offset + v.header;
                break;
            case 3: {
                if (auto e = take_mic(v, out); !e.ok()) return e;
                break;
            }
            default:
                return make_error(Code::BadTag, w.offset, "unknown NegTokenResp field");
        }
        return {};
    });
}

}  // namespace

const char* to_string(NegState s) {
    switch (s) {
        case NegState::AcceptCompleted:
            return "accept-completed";
        case NegState::AcceptIncomplete:
            return "accept-incomplete";
        case NegState::Reject:
            return "reject";
        case NegState::RequestMic:
            return "request-mic";
    }
    return "?";
}

std::string context_flags_to_string(std::uint32_t flags) {
    static constexpr struct {
        std::uint32_t bit;
        const char* name;
    } kNames[] = {{context_flag::Deleg, "deleg"},   {context_flag::Mutual, "mutual"},
                  {context_flag::Replay, "replay"}, {context_flag::Sequence, "sequence"},
                  {context_flag::Anon, "anon"},     {context_flag::Conf, "conf"},
                  {context_flag::Integ, "integ"}};
    std::string out;
    for (const auto& n : kNames) {
        if ((flags & n.bit) == 0) continue;
        if (!out.empty()) out += '|';
        out += n.name;
    }
    return out;
}

bool looks_like_spnego(Bytes b) {
    if (b.empty()) return false;
    if (b[0] == 0xa0 || b[0] == 0xa1) return true;
    if (b[0] != 0x60) return false;
    GssInitialToken g;
    return parse_gss_initial(b, g).ok() && g.mech.mech == Mech::Spnego;
}

DecodeResult parse_spnego(Bytes data, SpnegoToken& out) {
    out = SpnegoToken{};
    Bytes body = data;
    std::size_t base = 0;
    if (!data.empty() && data[0] == 0x60) {
        GssInitialToken g;
        if (auto e = parse_gss_initial(data, g); !e.ok()) return e;
        if (g.mech.mech != Mech::Spnego) {
            return make_error(Code::BadValue, 0, "GSS token is not SPNEGO");
        }
        out.gss_wrapped = true;
        body = g.inner;
        base = g.inner_offset;
    }
    Reader r(body, base, 0, der::LengthRule::BerDefinite);
    Tlv choice;
    if (auto e = r.next(choice); !e.ok()) return e;
    if (!r.at_end()) return make_error(Code::BadLength, r.offset(), "bytes after SPNEGO token");
    if (choice.cls != TagClass::Context || !choice.constructed || choice.number > 1) {
        return make_error(Code::BadTag, choice.offset, "not a NegotiationToken");
    }
    Tlv seq;
    if (auto e = der::explicit_inner(choice, seq); !e.ok()) return e;
    if (!seq.is_universal(der::tag::Sequence) || !seq.constructed) {
        return make_error(Code::BadTag, seq.offset, "NegotiationToken is not a SEQUENCE");
    }
    if (choice.number == 0) {
        out.kind = SpnegoToken::Kind::Init;
        return parse_init(seq, out.init);
    }
    out.kind = SpnegoToken::Kind::Resp;
    return parse_resp(seq, out.resp);
}

std::string to_string(const SpnegoToken& t) {
    std::string s = t.gss_wrapped ? "spnego(gss) " : "spnego ";
    if (t.kind == SpnegoToken::Kind::Init) {
        const auto& i = t.init;
        s += i.is_init2 ? "NegTokenInit2 mechTypes=[" : "NegTokenInit mechTypes=[";
        for (std::size_t k = 0; k < i.mech_types.size(); ++k) {
            if (k) s += ',';
            s += i.mech_types[k].name();
        }
        s += ']';
        if (i.req_flags) s += " reqFlags=" + context_flags_to_string(*i.req_flags);
        if (i.has_mech_token) s += " mechToken=" + std::to_string(i.mech_token.size()) + "B";
        if (i.hint_name) s += " hint=" + *i.hint_name;
        if (i.has_mech_list_mic) s += " mic=" + std::to_string(i.mech_list_mic_len) + "B";
    } else {
        const auto& r = t.resp;
        s += "NegTokenResp";
        if (r.neg_state) s += std::string(" negState=") + to_string(*r.neg_state);
        if (r.supported_mech) {
            s += " supportedMech=";
            s += r.supported_mech->name();
        }
        if (r.has_response_token) {
            s += " responseToken=" + std::to_string(r.response_token.size()) + "B";
        }
        if (r.has_mech_list_mic) s += " mic=" + std::to_string(r.mech_list_mic_len) + "B";
    }
    return s;
}

}  // namespace hopscope::auth
