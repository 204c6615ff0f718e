// SPNEGO (RFC 4178 §4.2, MS-SPNG §2.2.1): NegTokenInit, Microsoft's NegTokenInit2 (negHints) and
// NegTokenResp, with or without the GSS InitialContextToken wrapper.
//
// mechToken / responseToken are returned as views into the input so that the caller can decode the
// inner mechanism token; they are never rendered. mechListMIC is reported by presence and length.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/auth/gss.hpp"
#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::auth {

/// RFC 4178 §4.2.2 negState.
enum class NegState : std::uint8_t {
    AcceptCompleted = 0,
    AcceptIncomplete = 1,
    Reject = 2,
    RequestMic = 3,
};
const char* to_string(NegState s);

/// ContextFlags bits (RFC 4178 §4.2.1), in BIT STRING order: bit 0 is the MSB (0x80000000).
namespace context_flag {
inline constexpr std::uint32_t Deleg = 0x80000000u;
inline constexpr std::uint32_t Mutual = 0x40000000u;
inline constexpr std::uint32_t Replay = 0x20000000u;
inline constexpr std::uint32_t Sequence = 0x10000000u;
inline constexpr std::uint32_t Anon = 0x08000000u;
inline constexpr std::uint32_t Conf = 0x04000000u;
inline constexpr std::uint32_t Integ = 0x02000000u;
}  // namespace context_flag
/// "deleg|mutual|..." for a ContextFlags value.
std::string context_flags_to_string(std::uint32_t flags);

struct NegTokenInit {
    std::vector<Oid> mech_types;  ///< in the client's order of preference
    std::optional<std::uint32_t> req_flags;
    bool has_mech_token = false;
    Bytes mech_token{};  ///< view into the input (not for output)
    std::size_t mech_token_offset = 0;
    bool is_init2 = false;  ///< MS NegTokenInit2 (negHints present)
    std::optional<std::string>
        hint_name;  ///< negHints.hintName (e.g. "not_defined_in_RFC4178@please_ignore")
    bool has_mech_list_mic = false;
    std::size_t mech_list_mic_len = 0;
};

struct NegTokenResp {
    std::optional<NegState> neg_state;
    std::optional<Oid> supported_mech;
    bool has_response_token = false;
    Bytes response_token{};  ///< view into the input (not for output)
    std::size_t response_token_offset = 0;
    bool has_mech_list_mic = false;
    std::size_t mech_list_mic_len = 0;
};

struct SpnegoToken {
    enum class Kind : std::uint8_t { Init, Resp };
    Kind kind = Kind::Init;
    bool gss_wrapped = false;  ///< had the 0x60 + SPNEGO OID InitialContextToken framing
    NegTokenInit init;         ///< valid when kind == Init
    NegTokenResp resp;         ///< valid when kind == Resp
};

/// True if `b` starts like a SPNEGO token: 0x60 with the SPNEGO OID, or a bare a0 / a1.
bool looks_like_spnego(Bytes b);

/// Parses a NegotiationToken (RFC 4178 §4.2), wrapped (0x60 + 1.3.6.1.5.5.2) or bare.
DecodeResult parse_spnego(Bytes data, SpnegoToken& out);

/// One-line rendering (lengths only for tokens and MIC).
std::string to_string(const SpnegoToken& t);

}  // namespace hopscope::auth
