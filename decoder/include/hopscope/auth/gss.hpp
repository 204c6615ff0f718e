// GSS-API framing (RFC 2743 §3.1 InitialContextToken) and the mechanism OIDs seen in SSPI blobs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::auth {

enum class Mech : std::uint8_t {
    Unknown,
    Kerberos,     ///< 1.2.840.113554.1.2.2 (RFC 1964 / 4121)
    MsKerberos,   ///< 1.2.840.48018.1.2.2 (legacy Microsoft OID for the same protocol)
    KerberosU2U,  ///< 1.2.840.113554.1.2.2.3 (user-to-user)
    Ntlmssp,      ///< 1.3.6.1.4.1.311.2.2.10
    NegoEx,       ///< 1.3.6.1.4.1.311.2.2.30
    Spnego,       ///< 1.3.6.1.5.5.2
};

const char* to_string(Mech m);

/// An object identifier as seen on the wire: what it names, and its dotted form.
struct Oid {
    Mech mech = Mech::Unknown;
    /// The dotted form of one that names no known mechanism (empty if invalid); empty for a
    /// known one, whose dotted form is a constant (no string per OID: SPNEGO offers two to four
    /// of them in every login, all longer than the short-string buffer).
    std::string other;
    /// The dotted form, e.g. "1.2.840.113554.1.2.2"; empty if invalid.
    [[nodiscard]] std::string_view dotted() const;
    /// How the decoders' text shows it: the mechanism's name (to_string(Mech)), or the dotted
    /// form of one that names no known mechanism.
    [[nodiscard]] std::string_view name() const;
    bool operator==(const Oid&) const = default;
};

/// Builds an Oid from DER content octets (no tag/length); dotted is empty if invalid.
Oid make_oid(Bytes content);
/// True for both Kerberos OIDs (and user-to-user).
inline bool is_kerberos(Mech m) {
    return m == Mech::Kerberos || m == Mech::MsKerberos || m == Mech::KerberosU2U;
}

/// `60 len 06 oidlen OID innerToken` (RFC 2743 §3.1). `inner` views the bytes after the OID,
/// which are mechanism-defined (not necessarily a DER TLV).
struct GssInitialToken {
    Oid mech;
    Bytes inner{};
    std::size_t inner_offset = 0;  ///< offset of inner[0] in the parsed buffer
};

/// True if the buffer starts like an InitialContextToken (0x60).
inline bool looks_like_gss_initial(Bytes b) {
    return !b.empty() && b[0] == 0x60;
}

/// Parses the InitialContextToken framing. Bytes after the 0x60 TLV are an error (BadLength).
DecodeResult parse_gss_initial(Bytes data, GssInitialToken& out);

}  // namespace hopscope::auth
