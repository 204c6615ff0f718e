// NTLM (MS-NLMP §2.2): NEGOTIATE, CHALLENGE and AUTHENTICATE messages.
//
// The structs below hold what a passive observer may show: names, flags, versions, AV pairs and
// the *lengths* of responses. They never hold LM/NT response bytes, the server challenge, the
// client challenge, the encrypted session key, the MIC value or channel-binding hashes.
//
// Real-client forms that are read, not rejected (see tests/unit/auth/ntlm_test.cpp):
//  - NEGOTIATE_VERSION set but no Version field (FreeTDS AUTHENTICATE: payload at offset 64),
//  - a 32-byte NEGOTIATE without Version (impacket),
//  - NtChallengeResponseFields.Len = 16 with the NTLMv2 blob running to the end of the message
//    (tedious).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::auth {

/// NegotiateFlags (MS-NLMP §2.2.2.5).
namespace ntlm_flag {
inline constexpr std::uint32_t Unicode = 0x00000001;
inline constexpr std::uint32_t Oem = 0x00000002;
inline constexpr std::uint32_t RequestTarget = 0x00000004;
inline constexpr std::uint32_t Sign = 0x00000010;
inline constexpr std::uint32_t Seal = 0x00000020;
inline constexpr std::uint32_t Datagram = 0x00000040;
inline constexpr std::uint32_t LmKey = 0x00000080;
inline constexpr std::uint32_t Ntlm = 0x00000200;
inline constexpr std::uint32_t Anonymous = 0x00000800;
inline constexpr std::uint32_t OemDomainSupplied = 0x00001000;
inline constexpr std::uint32_t OemWorkstationSupplied = 0x00002000;
inline constexpr std::uint32_t AlwaysSign = 0x00008000;
inline constexpr std::uint32_t TargetTypeDomain = 0x00010000;
inline constexpr std::uint32_t TargetTypeServer = 0x00020000;
inline constexpr std::uint32_t ExtendedSessionSecurity = 0x00080000;
inline constexpr std::uint32_t Identify = 0x00100000;
inline constexpr std::uint32_t RequestNonNtSessionKey = 0x00400000;
inline constexpr std::uint32_t TargetInfo = 0x00800000;
inline constexpr std::uint32_t Version = 0x02000000;
inline constexpr std::uint32_t N128 = 0x20000000;
inline constexpr std::uint32_t KeyExch = 0x40000000;
inline constexpr std::uint32_t N56 = 0x80000000;
}  // namespace ntlm_flag

/// Names of the set flags, e.g. {"UNICODE", "NTLM", ...}; unknown bits as "r0x00000008".
std::vector<std::string> ntlm_flag_names(std::uint32_t flags);
/// The same joined with '|'.
std::string ntlm_flags_to_string(std::uint32_t flags);

/// VERSION structure (MS-NLMP §2.2.2.10).
struct NtlmVersion {
    std::uint8_t major = 0;
    std::uint8_t minor = 0;
    std::uint16_t build = 0;
    std::uint8_t ntlm_revision = 0;
    bool operator==(const NtlmVersion&) const = default;
};

enum class ChannelBindings : std::uint8_t { Absent, AllZero, Present };
const char* to_string(ChannelBindings c);

/// AV_PAIR list (MS-NLMP §2.2.2.1). Text values are UTF-16LE on the wire, here UTF-8.
struct AvPairs {
    std::optional<std::string> nb_computer;   ///< MsvAvNbComputerName (1)
    std::optional<std::string> nb_domain;     ///< MsvAvNbDomainName (2)
    std::optional<std::string> dns_computer;  ///< MsvAvDnsComputerName (3)
    std::optional<std::string> dns_domain;    ///< MsvAvDnsDomainName (4)
    std::optional<std::string> dns_tree;      ///< MsvAvDnsTreeName (5)
    std::optional<std::uint32_t>
        flags;  ///< MsvAvFlags (6): 0x1 constrained, 0x2 MIC, 0x4 untrusted SPN
    std::optional<std::uint64_t> timestamp;  ///< MsvAvTimestamp (7), FILETIME
    bool single_host = false;                ///< MsvAvSingleHost (8) present
    std::optional<std::string> target_name;  ///< MsvAvTargetName (9): the SPN the client wanted
    ChannelBindings channel_bindings = ChannelBindings::Absent;  ///< MsvAvChannelBindings (10)
    std::size_t count = 0;                                       ///< pairs before MsvAvEOL
    bool terminated = false;                                     ///< MsvAvEOL seen
};

/// Parses an AV_PAIR list. Stops at MsvAvEOL; a pair running past the end is Truncated.
DecodeResult parse_av_pairs(Bytes data, std::size_t base, AvPairs& out);

struct NtlmNegotiate {
    std::uint32_t flags = 0;
    std::optional<std::string> domain;       ///< OEM (MS-NLMP §2.2.1.1)
    std::optional<std::string> workstation;  ///< OEM
    std::optional<NtlmVersion> version;
};

struct NtlmChallenge {
    std::uint32_t flags = 0;
    std::optional<std::string> target_name;
    bool has_target_info = false;
    AvPairs target_info;
    std::optional<NtlmVersion> version;
};

enum class NtlmResponseKind : std::uint8_t {
    None,   ///< NtChallengeResponse empty
    V1,     ///< 24 bytes (NTLMv1 / NTLM2 session response)
    V2,     ///< longer than 24: NTProofStr + NTLMv2_CLIENT_CHALLENGE blob
    Other,  ///< any other length (25..43 bytes: too short for NTLMv2)
};
const char* to_string(NtlmResponseKind k);

struct NtlmAuthenticate {
    std::uint32_t flags = 0;
    std::string domain;
    std::string user;
    std::string workstation;
    std::size_t lm_response_len = 0;
    std::size_t nt_response_len = 0;  ///< as written in NtChallengeResponseFields.Len
    std::size_t session_key_len = 0;  ///< EncryptedRandomSessionKey length (value never kept)
    std::optional<NtlmVersion> version;
    bool version_flag_without_field = false;  ///< NEGOTIATE_VERSION set, payload before 72
    bool mic_field_present = false;           ///< a 16-byte MIC slot precedes the payload (layout)
    NtlmResponseKind response_kind = NtlmResponseKind::None;
    bool anonymous = false;         ///< from the fields: no user, no NT response, LM empty or 00
    bool anonymous_flag = false;    ///< NTLMSSP_NEGOTIATE_ANONYMOUS set
    bool blob_past_nt_len = false;  ///< NTLMv2 blob found after a 16-byte NtChallengeResponse
    std::optional<std::uint64_t> v2_timestamp;  ///< NTLMv2 blob TimeStamp (FILETIME)
    std::optional<AvPairs> v2_av_pairs;         ///< AV pairs from the NTLMv2 blob
    /// Whether the NTLMv2 blob could be read (ok when it was, or there is none).
    DecodeResult v2_blob;
    /// MIC presence as the client declares it (MsvAvFlags 0x2 in the NTLMv2 blob).
    [[nodiscard]] bool mic_flagged() const {
        return v2_av_pairs && v2_av_pairs->flags && (*v2_av_pairs->flags & 0x2) != 0;
    }
};

struct NtlmMessage {
    std::uint32_t type = 0;  ///< 1, 2 or 3
    std::variant<NtlmNegotiate, NtlmChallenge, NtlmAuthenticate> msg;
};

inline constexpr std::uint8_t kNtlmSignature[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
/// True if the buffer starts with "NTLMSSP\0".
bool looks_like_ntlm(Bytes b);

/// Parses one NTLM message (the whole buffer is the message; offsets are relative to it).
DecodeResult parse_ntlm(Bytes data, NtlmMessage& out);

/// Multi-line-free, one-line rendering: names, flags, lengths. Never response/key bytes.
std::string to_string(const NtlmMessage& m);

}  // namespace hopscope::auth
