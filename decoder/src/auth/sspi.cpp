#include "hopscope/auth/sspi.hpp"

namespace hopscope::auth {
namespace {

using Code = DecodeError::Code;

bool starts_with_krb5_tok_id(Bytes b) {
    return b.size() >= 3 && b[1] == 0x00 && (b[0] >= 0x01 && b[0] <= 0x04) &&
           (looks_like_kerberos(b.subspan(2)) || b[2] == 0x30);
}

/// Decodes a mechanism token (from SPNEGO or the whole blob). `offset` locates it for errors.
void decode_mech_token(Bytes tok, std::size_t offset, SspiInfo& s) {
    s.has_inner_token = true;
    s.inner_token_len = tok.size();
    auto shift = [offset](const DecodeResult& r, std::size_t more = 0) {
        DecodeError e = r.error();
        e.offset += offset + more;
        return e;
    };
    if (looks_like_ntlm(tok)) {
        s.mechanism = SspiMechanism::Ntlm;
        NtlmMessage m;
        if (auto e = parse_ntlm(tok, m); !e.ok()) {
            s.decoded = shift(e);
            return;
        }
        s.ntlm = std::move(m);
        return;
    }
    if (tok.size() >= 8 && std::equal(tok.begin(), tok.begin() + 8, "NEGOEXTS")) {
        s.mechanism = SspiMechanism::NegoEx;  // MS-NEGOEX §2.2.6.1 message signature
        return;
    }
    if (looks_like_gss_initial(tok)) {
        GssInitialToken g;
        if (auto e = parse_gss_initial(tok, g); !e.ok()) {
            s.decoded = shift(e);
            return;
        }
        s.inner_mech_oid = g.mech;
        if (g.mech.mech == Mech::Ntlmssp) {
            // Only one level: a GSS-framed NTLMSSP message, never nested framings.
            s.mechanism = SspiMechanism::Ntlm;
            s.inner_gss_wrapped = true;
            NtlmMessage m;
            if (auto e = parse_ntlm(g.inner, m); !e.ok()) {
                s.decoded = shift(e, g.inner_offset);
                return;
            }
            s.ntlm = std::move(m);
            return;
        }
        if (!is_kerberos(g.mech.mech)) {
            if (g.mech.mech == Mech::NegoEx) s.mechanism = SspiMechanism::NegoEx;
            return;
        }
    }
    if (looks_like_gss_initial(tok) || looks_like_kerberos(tok) || starts_with_krb5_tok_id(tok)) {
        s.mechanism = SspiMechanism::Kerberos;
        Krb5GssToken k;
        if (auto e = parse_krb5_token(tok, k); !e.ok()) {
            s.decoded = shift(e);
            return;
        }
        s.inner_gss_wrapped = k.gss_wrapped;
        s.krb_tok_id = k.tok_id;
        s.kerberos = std::move(k.message);
        return;
    }
    s.decoded = make_error(Code::Unsupported, offset, "unrecognised mechanism token");
}

SspiMechanism from_oid(const Oid& o) {
    if (is_kerberos(o.mech)) return SspiMechanism::Kerberos;
    if (o.mech == Mech::Ntlmssp) return SspiMechanism::Ntlm;
    if (o.mech == Mech::NegoEx) return SspiMechanism::NegoEx;
    return SspiMechanism::Unknown;
}

}  // namespace

const char* to_string(SspiMechanism m) {
    switch (m) {
        case SspiMechanism::Ntlm:
            return "ntlm";
        case SspiMechanism::Kerberos:
            return "kerberos";
        case SspiMechanism::NegoEx:
            return "negoex";
        case SspiMechanism::Unknown:
            break;
    }
    return "unknown";
}

const char* to_string(SspiWrapper w) {
    switch (w) {
        case SspiWrapper::Raw:
            return "raw";
        case SspiWrapper::Gss:
            return "gss";
        case SspiWrapper::Spnego:
            return "spnego";
    }
    return "?";
}

SspiInfo classify_sspi(Bytes blob) {
    SspiInfo s;
    if (blob.empty()) {
        s.decoded = make_error(Code::Truncated, 0, "empty SSPI blob");
        return s;
    }
    if (looks_like_ntlm(blob)) {
        decode_mech_token(blob, 0, s);
        return s;
    }
    if (looks_like_spnego(blob)) {
        s.wrapper = SspiWrapper::Spnego;
        SpnegoToken t;
        if (auto e = parse_spnego(blob, t); !e.ok()) {
            s.decoded = std::move(e);
            return s;
        }
        s.spnego_kind = t.kind;
        s.spnego_gss_wrapped = t.gss_wrapped;
        if (t.kind == SpnegoToken::Kind::Init) {
            s.mechs_offered = t.init.mech_types;
            s.req_flags = t.init.req_flags;
            s.has_mech_list_mic = t.init.has_mech_list_mic;
            if (!t.init.mech_types.empty()) s.mechanism = from_oid(t.init.mech_types.front());
            if (t.init.has_mech_token) {
                decode_mech_token(t.init.mech_token, t.init.mech_token_offset, s);
            }
        } else {
            s.neg_state = t.resp.neg_state;
            s.supported_mech = t.resp.supported_mech;
            s.has_mech_list_mic = t.resp.has_mech_list_mic;
            if (t.resp.supported_mech) s.mechanism = from_oid(*t.resp.supported_mech);
            if (t.resp.has_response_token) {
                decode_mech_token(t.resp.response_token, t.resp.response_token_offset, s);
            }
        }
        return s;
    }
    if (looks_like_gss_initial(blob)) {
        s.wrapper = SspiWrapper::Gss;
        decode_mech_token(blob, 0, s);
        return s;
    }
    // Bare Kerberos message, or tok-id + message (a context token without the 0x60 framing).
    decode_mech_token(blob, 0, s);
    return s;
}

std::string to_string(const SspiInfo& s) {
    std::string out = std::string("sspi mechanism=") + to_string(s.mechanism) +
                      " wrapper=" + to_string(s.wrapper);
    if (s.spnego_kind) {
        out += *s.spnego_kind == SpnegoToken::Kind::Init ? " NegTokenInit" : " NegTokenResp";
    }
    if (!s.mechs_offered.empty()) {
        out += " offered=[";
        for (std::size_t i = 0; i < s.mechs_offered.size(); ++i) {
            if (i) out += ',';
            out += s.mechs_offered[i].name();
        }
        out += ']';
    }
    if (s.req_flags) out += " reqFlags=" + context_flags_to_string(*s.req_flags);
    if (s.neg_state) out += std::string(" negState=") + to_string(*s.neg_state);
    if (s.supported_mech) {
        out += " supportedMech=";
        out += s.supported_mech->name();
    }
    if (s.has_mech_list_mic) out += " mechListMIC=present";
    if (s.has_inner_token) out += " token=" + std::to_string(s.inner_token_len) + "B";
    if (s.inner_gss_wrapped) out += " inner-gss";
    if (s.ntlm) out += " | " + to_string(*s.ntlm);
    if (s.kerberos) out += " | " + to_string(*s.kerberos);
    if (!s.decoded.ok()) out += " error=" + s.decoded.error().detail;
    return out;
}

}  // namespace hopscope::auth
