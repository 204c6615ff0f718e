// LOGIN7 [MS-TDS 2.2.6.4]: the client's login record.
//
// Secrets: the password and the new password (change-password) are obfuscated, not encrypted, on
// the wire. They are never decoded: Login7 carries only their presence and length. The SSPI blob
// (an NTLM/SPNEGO/Kerberos token) is not part of Login7 either; parse_login7 hands it out as a
// separate view for the authentication layer.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::tds {

/// Known TDS versions as constants (the value LOGINACK shows, e.g. 0x74000004).
namespace tds_version {
inline constexpr std::uint32_t k70 = 0x70000000;
inline constexpr std::uint32_t k71 = 0x71000000;
inline constexpr std::uint32_t k71rev1 = 0x71000001;
inline constexpr std::uint32_t k72 = 0x72090002;
inline constexpr std::uint32_t k73A = 0x730A0003;
inline constexpr std::uint32_t k73B = 0x730B0003;
inline constexpr std::uint32_t k74 = 0x74000004;
inline constexpr std::uint32_t k80 = 0x08000000;
}  // namespace tds_version

[[nodiscard]] bool is_known_tds_version(std::uint32_t v);
/// TDS 7.0 and 7.1 (LOGINACK reports 0x07000000 / 0x07010000, LOGIN7 0x70000000 / 0x71000000 /
/// 0x71000001) use 4-byte DONE row counts, USHORT UserType and USHORT error line numbers, and
/// send no ALL_HEADERS.
[[nodiscard]] inline bool is_pre72(std::uint32_t v) {
    const std::uint32_t hi = v >> 24;
    return hi == 0x70 || hi == 0x71 || v == 0x07000000 || v == 0x07010000;
}
/// "7.0", "7.1", "7.1 rev1", "7.2", "7.3A", "7.3B", "7.4", "8.0"; "unknown (0x...)" otherwise.
std::string tds_version_name(std::uint32_t v);
/// The SQL Server generation that introduced it: "SQL Server 2000", ...; "" when unknown.
const char* tds_version_product(std::uint32_t v);

namespace login_flags {
// OptionFlags1 (offset 24)
inline constexpr std::uint8_t kByteOrder = 0x01;
inline constexpr std::uint8_t kChar = 0x02;
inline constexpr std::uint8_t kFloatMask = 0x0C;
inline constexpr std::uint8_t kDumpLoad = 0x10;
inline constexpr std::uint8_t kUseDb = 0x20;
inline constexpr std::uint8_t kDatabase = 0x40;
inline constexpr std::uint8_t kSetLang = 0x80;
// OptionFlags2 (offset 25)
inline constexpr std::uint8_t kLanguage = 0x01;
inline constexpr std::uint8_t kOdbc = 0x02;
inline constexpr std::uint8_t kTranBoundary = 0x04;
inline constexpr std::uint8_t kCacheConnect = 0x08;
inline constexpr std::uint8_t kUserTypeMask = 0x70;
inline constexpr std::uint8_t kIntSecurity = 0x80;
// TypeFlags (offset 26)
inline constexpr std::uint8_t kSqlTypeMask = 0x0F;
inline constexpr std::uint8_t kOleDb = 0x10;
inline constexpr std::uint8_t kReadOnlyIntent = 0x20;
// OptionFlags3 (offset 27)
inline constexpr std::uint8_t kChangePassword = 0x01;
inline constexpr std::uint8_t kSendYukonBinaryXml = 0x02;
inline constexpr std::uint8_t kUserInstance = 0x04;
inline constexpr std::uint8_t kUnknownCollationHandling = 0x08;
inline constexpr std::uint8_t kExtension = 0x10;
}  // namespace login_flags

/// FeatureExt ids [MS-TDS 2.2.6.4].
namespace feature {
inline constexpr std::uint8_t kSessionRecovery = 0x01;
inline constexpr std::uint8_t kFedAuth = 0x02;
inline constexpr std::uint8_t kColumnEncryption = 0x04;
inline constexpr std::uint8_t kGlobalTransactions = 0x05;
inline constexpr std::uint8_t kAzureSqlSupport = 0x08;
inline constexpr std::uint8_t kDataClassification = 0x09;
inline constexpr std::uint8_t kUtf8Support = 0x0A;
inline constexpr std::uint8_t kAzureSqlDnsCaching = 0x0B;
inline constexpr std::uint8_t kTerminator = 0xFF;
}  // namespace feature
const char* feature_name(std::uint8_t id);

/// One FeatureExt entry: id and length only (the data of most features is not needed).
struct FeatureExtEntry {
    std::uint8_t id = 0;
    std::uint32_t length = 0;
};

/// FEDAUTH FeatureData: byte 0 = bFedAuthLibrary << 1 | fFedAuthEcho.
struct FedAuthFeature {
    std::uint8_t library = 0;  ///< 0x01 SecurityToken, 0x02 ADAL/MSAL
    bool echo = false;
    std::optional<std::uint8_t> workflow;  ///< ADAL: 0x01 user/password, 0x02 integrated, ...
    std::uint32_t token_length = 0;        ///< SecurityToken: length only, never the token
    bool nonce_present = false;
};
const char* fed_auth_library_name(std::uint8_t lib);

/// An offset/length pair of the fixed part (length in characters, or bytes for SSPI).
struct OffsetLength {
    std::uint16_t offset = 0;
    std::uint16_t length = 0;
};

struct Login7 {
    // Fixed part.
    std::uint32_t length = 0;             ///< Length field (whole LOGIN7 as the client says)
    std::uint32_t tds_version = 0;        ///< normalised value, e.g. 0x74000004
    std::uint32_t tds_version_wire = 0;   ///< as read little-endian from the wire
    bool tds_version_big_endian = false;  ///< the client wrote it byte-swapped (impacket)
    std::uint32_t packet_size = 0;
    std::uint32_t client_prog_ver = 0;
    std::uint32_t client_pid = 0;
    std::uint32_t connection_id = 0;
    std::uint8_t option_flags1 = 0;
    std::uint8_t option_flags2 = 0;
    std::uint8_t type_flags = 0;
    std::uint8_t option_flags3 = 0;
    std::int32_t client_time_zone = 0;
    std::uint32_t client_lcid = 0;
    bool has_tds72_fields = false;  ///< ibChangePassword/cchChangePassword/cbSSPILong present

    OffsetLength host_name, user_name, password, app_name, server_name, extension, library_name,
        language, database, sspi, attach_db_file, change_password;
    std::uint32_t sspi_long = 0;              ///< cbSSPILong
    std::array<std::uint8_t, 6> client_id{};  ///< usually the client's MAC address

    // Variable part, decoded.
    std::string host, user, app, server, library, lang, db, attach_db;
    bool password_present = false;
    std::size_t password_length = 0;  ///< characters; the value itself is never decoded
    bool change_password_present = false;
    std::size_t change_password_length = 0;
    std::size_t sspi_length = 0;  ///< effective SSPI blob length in bytes

    // FeatureExt (fExtension).
    std::vector<FeatureExtEntry> features;
    std::optional<FedAuthFeature> fed_auth;

    [[nodiscard]] bool integrated_security() const {
        return (option_flags2 & login_flags::kIntSecurity) != 0;
    }
    [[nodiscard]] bool has_extension() const {
        return (option_flags3 & login_flags::kExtension) != 0;
    }
    /// "aa:bb:cc:dd:ee:ff"
    [[nodiscard]] std::string client_id_string() const;
};

/// Parses a whole LOGIN7 payload (all packets of the message, headers stripped). On Consumed,
/// `sspi` views the SSPI blob inside `payload` (empty if none). Lengths are checked against the
/// payload: a field pointing past it is Malformed (Truncated), never read.
/// SSPI length: cbSSPI, or cbSSPILong when cbSSPI is 0xFFFF and cbSSPILong is larger [MS-TDS
/// 2.2.6.4]. A blob that does not fit the payload is Malformed.
DecodeResult parse_login7(Bytes payload, Login7& out, Bytes& sspi);

/// The readable part of a Login7 as "key=value ..." text, for logs and tests. Contains no
/// password and no SSPI bytes (only their lengths).
std::string to_string(const Login7& l);

}  // namespace hopscope::tds
