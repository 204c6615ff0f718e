// The encrypted parts of Kerberos messages, once decrypted (RFC 4120 §5.3, §5.4.2, §5.5.1,
// §5.8.1; RFC 4121 §4.1.1 for the GSS-API checksum; MS-PAC for the PAC): EncTicketPart,
// Authenticator, EncKDCRepPart, EncKrbCredPart. Decryption itself is auth/kerberos_keys.hpp.
//
// These plaintexts hold keys (the ticket's session key, an authenticator subkey, the keys of
// forwarded tickets). A key is kept only as a KeyBlock: wiped when destroyed, no text form, and no
// to_string() here renders it (tests check that no rendering contains key bytes).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/auth/kerberos.hpp"
#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::auth {

/// TicketFlags (RFC 4120 §5.3, RFC 6806 §11, RFC 8062), BIT STRING order: bit 0 is 0x80000000.
namespace ticket_flag {
inline constexpr std::uint32_t Forwardable = 0x40000000u;
inline constexpr std::uint32_t Forwarded = 0x20000000u;
inline constexpr std::uint32_t Proxiable = 0x10000000u;
inline constexpr std::uint32_t Proxy = 0x08000000u;
inline constexpr std::uint32_t MayPostdate = 0x04000000u;
inline constexpr std::uint32_t Postdated = 0x02000000u;
inline constexpr std::uint32_t Invalid = 0x01000000u;
inline constexpr std::uint32_t Renewable = 0x00800000u;
inline constexpr std::uint32_t Initial = 0x00400000u;
inline constexpr std::uint32_t PreAuthent = 0x00200000u;
inline constexpr std::uint32_t HwAuthent = 0x00100000u;
inline constexpr std::uint32_t TransitedPolicyChecked = 0x00080000u;
inline constexpr std::uint32_t OkAsDelegate = 0x00040000u;
inline constexpr std::uint32_t EncPaRep = 0x00010000u;
inline constexpr std::uint32_t Anonymous = 0x00008000u;
}  // namespace ticket_flag
/// "forwardable|forwarded|..." for a TicketFlags value.
std::string ticket_flags_to_string(std::uint32_t flags);

/// Flags of the GSS-API checksum (RFC 4121 §4.1.1.1; MS-KILE §3.2.5.2 for the last three).
namespace gss_flag {
inline constexpr std::uint32_t Deleg = 0x1;
inline constexpr std::uint32_t Mutual = 0x2;
inline constexpr std::uint32_t Replay = 0x4;
inline constexpr std::uint32_t Sequence = 0x8;
inline constexpr std::uint32_t Conf = 0x10;
inline constexpr std::uint32_t Integ = 0x20;
inline constexpr std::uint32_t Anon = 0x40;
inline constexpr std::uint32_t DceStyle = 0x1000;
inline constexpr std::uint32_t Identify = 0x2000;
inline constexpr std::uint32_t ExtendedError = 0x4000;
}  // namespace gss_flag
std::string gss_flags_to_string(std::uint32_t flags);

/// The checksum type of the GSS-API authenticator checksum (RFC 4121 §4.1.1).
inline constexpr std::int32_t kGssChecksumType = 0x8003;

/// An encryption key from a decrypted plaintext. Wiped when destroyed; deliberately without any
/// text form. bytes() is for the KerberosKeys implementation that decrypts with it, nothing else.
class KeyBlock {
  public:
    static constexpr std::size_t kMaxSize = 64;
    KeyBlock() = default;
    KeyBlock(const KeyBlock&) = default;
    KeyBlock& operator=(const KeyBlock&) = default;
    ~KeyBlock();

    /// False (and nothing kept) when `value` is larger than kMaxSize.
    bool assign(std::int32_t etype, Bytes value);
    [[nodiscard]] std::int32_t etype() const { return etype_; }
    [[nodiscard]] Bytes bytes() const { return Bytes(b_.data(), n_); }
    [[nodiscard]] bool empty() const { return n_ == 0; }

  private:
    std::array<std::uint8_t, kMaxSize> b_{};
    std::size_t n_ = 0;
    std::int32_t etype_ = 0;
};

/// AuthorizationData as far as delegation needs it: the PAC (AD-WIN2K-PAC, 128, inside
/// AD-IF-RELEVANT) and, when the PAC has one, its S4U_DELEGATION_INFO.
struct PacInfo {
    std::vector<std::uint32_t> buffer_types;  ///< PAC_INFO_BUFFER ulType, in order
    /// S4U_DELEGATION_INFO (MS-PAC §2.9): the target of S4U2Proxy and the services the
    /// evidence ticket went through.
    std::optional<std::string> s4u2proxy_target;
    std::vector<std::string> s4u_transited;
};
struct AuthorizationInfo {
    std::vector<std::int32_t> ad_types;  ///< every ad-type seen, outer and inside AD-IF-RELEVANT
    std::optional<PacInfo> pac;
};

/// EncTicketPart (RFC 4120 §5.3).
struct EncTicketPart {
    std::uint32_t flags = 0;
    KeyBlock key;  ///< the session key (never rendered)
    std::string crealm;
    PrincipalName cname;
    std::size_t transited_len = 0;  ///< TransitedEncoding contents length (0: no realm crossed)
    std::string authtime;           ///< KerberosTime "YYYYMMDDHHMMSSZ"
    std::optional<std::string> starttime;
    std::string endtime;
    std::optional<std::string> renew_till;
    std::size_t address_count = 0;
    AuthorizationInfo authorization;
};

/// The GSS-API checksum of a Kerberos AP-REQ authenticator (RFC 4121 §4.1.1, type 0x8003).
struct GssChecksum {
    std::uint32_t flags = 0;
    bool channel_binding = false;  ///< Bnd not all zero
    std::optional<std::uint16_t> dlg_opt;
    /// The KRB-CRED carried with DELEG: a view into the plaintext it was parsed from.
    Bytes deleg{};
    std::size_t extensions_len = 0;
};

struct Checksum {
    std::int32_t type = 0;
    std::size_t length = 0;
    std::optional<GssChecksum> gss;  ///< type 0x8003, when it parsed
};

/// Authenticator (RFC 4120 §5.5.1).
struct Authenticator {
    std::string crealm;
    PrincipalName cname;
    std::optional<Checksum> cksum;
    std::int32_t cusec = 0;
    std::string ctime;
    std::optional<KeyBlock> subkey;  ///< never rendered
    std::optional<std::uint32_t> seq_number;
    AuthorizationInfo authorization;
};

/// KrbCredInfo (RFC 4120 §5.8.1): what a KRB-CRED says about one of its tickets.
struct KrbCredInfo {
    KeyBlock key;  ///< that ticket's session key (never rendered)
    std::optional<std::string> prealm;
    std::optional<PrincipalName> pname;
    std::optional<std::uint32_t> flags;
    std::optional<std::string> authtime, starttime, endtime, renew_till;
    std::optional<std::string> srealm;
    std::optional<PrincipalName> sname;
};

/// EncKrbCredPart (RFC 4120 §5.8.1).
struct EncKrbCredPart {
    std::vector<KrbCredInfo> ticket_info;
    std::optional<std::uint32_t> nonce;
    std::optional<std::string> timestamp;
};

/// EncASRepPart / EncTGSRepPart (RFC 4120 §5.4.2).
struct EncKdcRepPart {
    std::uint32_t tag = 0;  ///< 25 (AS) or 26 (TGS); some KDCs write 25 for both
    KeyBlock key;           ///< the new session key (never rendered)
    std::uint32_t nonce = 0;
    std::optional<std::string> key_expiration;
    std::uint32_t flags = 0;
    std::string authtime;
    std::optional<std::string> starttime;
    std::string endtime;
    std::optional<std::string> renew_till;
    std::string srealm;
    PrincipalName sname;
    std::size_t address_count = 0;
    std::vector<std::int32_t> encrypted_pa_data;  ///< PA-DATA types (RFC 6806)
};

// Parsers of the plaintexts (after decryption; no confounder or padding: krb5_c_decrypt removes
// them). Bytes after the outer TLV are allowed: some enctypes (des, rc4) pad the plaintext.
DecodeResult parse_enc_ticket_part(Bytes data, EncTicketPart& out);
DecodeResult parse_authenticator(Bytes data, Authenticator& out);
DecodeResult parse_enc_krb_cred_part(Bytes data, EncKrbCredPart& out);
DecodeResult parse_enc_kdc_rep_part(Bytes data, EncKdcRepPart& out);
/// The checksum value of type 0x8003 (little-endian fields, not DER).
DecodeResult parse_gss_checksum(Bytes data, GssChecksum& out);
/// A PAC (MS-PAC §2.3): the buffer list and S4U_DELEGATION_INFO when present.
DecodeResult parse_pac(Bytes data, PacInfo& out);

/// One-line renderings: names, flags, times, enctypes; never a key.
std::string to_string(const EncTicketPart& t);
std::string to_string(const Authenticator& a);
std::string to_string(const EncKrbCredPart& c);
std::string to_string(const EncKdcRepPart& r);

}  // namespace hopscope::auth
