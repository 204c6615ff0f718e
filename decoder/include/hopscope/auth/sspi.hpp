// Classifies an SSPI blob as carried by TDS (LOGIN7 ibSSPI, SSPI message 0x11, SSPI token 0xED):
// which mechanism, how it is wrapped, what was offered/chosen, and the decoded inner message.
//
// Forms handled (protocol.md §4.1, §5.3; lab.md §2):
//  - raw NTLMSSP (FreeTDS, impacket, tedious) and SPNEGO-wrapped NTLMSSP (Windows),
//  - a raw RFC 4121 token `60 .. 1.2.840.113554.1.2.2 01 00 AP-REQ` (FreeTDS Kerberos),
//  - SPNEGO NegTokenInit with MS-KRB5 OID around a BARE AP-REQ (impacket, no GSS framing),
//  - Windows SPNEGO NegTokenInit with a GSS-framed AP-REQ,
//  - server replies: NegTokenResp with supportedMech and an AP-REP / KRB-ERROR / NTLM CHALLENGE,
//    raw AP-REP `02 00` / KRB-ERROR `03 00` tokens, with or without the 0x60 wrapper.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/auth/gss.hpp"
#include "hopscope/auth/kerberos.hpp"
#include "hopscope/auth/ntlm.hpp"
#include "hopscope/auth/spnego.hpp"
#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::auth {

enum class SspiMechanism : std::uint8_t { Unknown, Ntlm, Kerberos, NegoEx };
enum class SspiWrapper : std::uint8_t {
    Raw,     ///< the mechanism message itself (NTLMSSP, bare Kerberos, or tok-id + Kerberos)
    Gss,     ///< RFC 2743 InitialContextToken with the mechanism OID
    Spnego,  ///< SPNEGO NegTokenInit / NegTokenResp (with or without the 0x60 wrapper)
};
const char* to_string(SspiMechanism m);
const char* to_string(SspiWrapper w);

struct SspiInfo {
    SspiMechanism mechanism = SspiMechanism::Unknown;
    SspiWrapper wrapper = SspiWrapper::Raw;

    // SPNEGO layer (wrapper == Spnego)
    std::optional<SpnegoToken::Kind> spnego_kind;
    bool spnego_gss_wrapped = false;
    std::vector<Oid> mechs_offered;          ///< NegTokenInit mechTypes, in preference order
    std::optional<std::uint32_t> req_flags;  ///< NegTokenInit reqFlags (rarely sent; deleg bit)
    std::optional<Oid> supported_mech;
    std::optional<NegState> neg_state;
    bool has_mech_list_mic = false;

    // Mechanism token
    bool has_inner_token = false;  ///< a mechToken / responseToken / raw token was present
    std::size_t inner_token_len = 0;
    bool inner_gss_wrapped = false;  ///< the Kerberos token carried its own 0x60 + OID framing
    std::optional<Oid> inner_mech_oid;
    std::optional<std::uint16_t> krb_tok_id;  ///< 01 00 / 02 00 / 03 00 / 04 00 ...
    std::optional<NtlmMessage> ntlm;
    std::optional<KerberosMessage> kerberos;

    /// How decoding went: ok, or Malformed with the first problem (outer framing or inner
    /// token; offsets from the start of the blob).
    DecodeResult decoded;
};

/// Never fails: problems are reported in `SspiInfo::decoded`, with what could be read kept.
SspiInfo classify_sspi(Bytes blob);

/// One-line rendering: names, options, lengths; never response, key or cipher bytes.
std::string to_string(const SspiInfo& s);

}  // namespace hopscope::auth
