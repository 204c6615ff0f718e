// TDS, NTLM and SPNEGO byte handling for the lab's test server and its linked-server client.
//
// Encoders build what a SQL Server (or a linked-server provider) would put on the wire; the
// parsers read peer bytes through hopscope::ByteReader and never trust a length. Nothing here
// keeps or prints secret material: the SQL password is only handed out as a SecretString that
// wipes itself, and NTLM responses are reduced to their lengths.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hopscope/common/byte_reader.hpp"

namespace hopscope::lab {

using Buffer = std::vector<std::uint8_t>;

// ---------------------------------------------------------------- strings
Buffer ucs2(std::string_view ascii);
/// UCS-2LE to a narrow string (non-ASCII code units become '?'); the lab only uses ASCII names.
std::string narrow(Bytes ucs2le);
std::string lower(std::string_view s);

/// A string that is overwritten before its memory is released. Never printed.
class SecretString {
  public:
    SecretString() = default;
    SecretString(const SecretString&) = delete;
    SecretString& operator=(const SecretString&) = delete;
    SecretString(SecretString&& o) noexcept : s_(std::move(o.s_)) {}
    SecretString& operator=(SecretString&& o) noexcept;
    ~SecretString() { wipe(); }
    void wipe();
    std::string& mut() { return s_; }
    [[nodiscard]] std::size_t size() const { return s_.size(); }
    /// Constant-time-ish comparison with a stored password.
    [[nodiscard]] bool equals(std::string_view other) const;

  private:
    std::string s_;
};

// ---------------------------------------------------------------- TDS constants
namespace pkt {
inline constexpr std::uint8_t SqlBatch = 0x01;
inline constexpr std::uint8_t Reply = 0x04;
inline constexpr std::uint8_t Login7 = 0x10;
inline constexpr std::uint8_t Sspi = 0x11;
inline constexpr std::uint8_t Prelogin = 0x12;
}  // namespace pkt

namespace enc {
inline constexpr std::uint8_t Off = 0x00;
inline constexpr std::uint8_t On = 0x01;
inline constexpr std::uint8_t NotSup = 0x02;
inline constexpr std::uint8_t Req = 0x03;
}  // namespace enc

inline constexpr std::uint32_t kTds71 = 0x71000001;
inline constexpr std::uint32_t kTds72 = 0x72090002;
inline constexpr std::uint32_t kTds74 = 0x74000004;

/// Splits a message into TDS packets of at most `packet_size` bytes.
Buffer frame_packets(std::uint8_t type, const Buffer& payload, std::size_t packet_size,
                     std::uint16_t spid = 0);

// ---------------------------------------------------------------- PRELOGIN
struct PreloginInfo {
    std::optional<std::uint8_t> encryption;
    bool has_fedauth = false;
};
std::optional<PreloginInfo> parse_prelogin(Bytes payload);
/// Server answer: exactly VERSION, ENCRYPTION, INSTOPT, THREADID (some clients read a fixed
/// layout).
Buffer build_prelogin_response(std::uint8_t encryption);
/// Client request as a linked-server provider sends it.
Buffer build_prelogin_request(std::uint8_t encryption);

// ---------------------------------------------------------------- LOGIN7
struct Login7Info {
    std::uint32_t tds_version =
        0;  ///< normalised (0x74000004 etc.), also for byte-swapping clients
    std::uint32_t packet_size = 0;
    std::uint8_t option_flags2 = 0;
    bool integrated = false;
    std::string host, user, app, server, library, database;
    Buffer sspi;  ///< the client's first security token (not secret by itself)
    std::size_t password_chars = 0;
    [[nodiscard]] bool old_tds() const { return tds_version < kTds72; }
};
/// LOGIN7 through the project's parser (hopscope/tds/login7.hpp). The password is read from its
/// offsets and de-obfuscated into `password` only when the caller asks (SQL logins); it never
/// enters Login7Info.
std::optional<Login7Info> parse_login7(Bytes payload, SecretString* password, std::string* why);

struct Login7Request {
    std::string host, app, server, library = "OLEDB", database = "master";
    Buffer sspi;
    std::uint32_t packet_size = 4096;
};
/// An integrated-security LOGIN7 (TDS 7.4), the way a linked-server provider logs in.
Buffer build_login7(const Login7Request& r);

// ---------------------------------------------------------------- response tokens
class TokenWriter {
  public:
    explicit TokenWriter(bool old_tds) : old_(old_tds) {}
    void error(std::uint32_t number, std::uint8_t state, std::uint8_t cls, std::string_view msg,
               std::string_view server, bool info = false);
    void info(std::uint32_t number, std::uint8_t state, std::uint8_t cls, std::string_view msg,
              std::string_view server) {
        error(number, state, cls, msg, server, true);
    }
    void loginack(std::uint32_t tds_version);
    void env_string(std::uint8_t type, std::string_view new_value, std::string_view old_value);
    void env_collation();
    void sspi(const Buffer& token);
    void done(std::uint16_t status, std::uint16_t curcmd, std::uint64_t rows);
    /// A result set of NVARCHAR (or INT when `int_col`) columns.
    void result(const std::vector<std::string>& columns,
                const std::vector<std::vector<std::string>>& rows, bool int_col = false);
    Buffer& bytes() { return b_; }

  private:
    bool old_;
    Buffer b_;
};

inline constexpr std::uint16_t kDoneFinal = 0x0000;
inline constexpr std::uint16_t kDoneMore = 0x0001;
inline constexpr std::uint16_t kDoneError = 0x0002;
inline constexpr std::uint16_t kDoneCount = 0x0010;

/// What a linked-server client reads back from the remote server.
struct ServerMessage {
    std::uint32_t number = 0;
    std::uint8_t state = 0, cls = 0;
    std::string text, server;
};
struct ReplyInfo {
    bool loginack = false;
    bool done_error = false;
    std::optional<Buffer> sspi;
    std::vector<ServerMessage> errors;
    std::vector<std::string> columns;
    std::vector<std::vector<std::string>> rows;
};
/// Parses a reply stream as produced by TokenWriter (NVARCHAR/INT columns only).
std::optional<ReplyInfo> parse_reply(Bytes payload, std::string* why);

/// SQL batch text (skips ALL_HEADERS when TDS >= 7.2).
std::optional<std::string> parse_sql_batch(Bytes payload, bool old_tds);
Buffer build_sql_batch(std::string_view sql);

// ---------------------------------------------------------------- NTLM
namespace ntlm {
inline constexpr std::uint32_t kUnicode = 0x00000001;
inline constexpr std::uint32_t kOem = 0x00000002;
inline constexpr std::uint32_t kRequestTarget = 0x00000004;
inline constexpr std::uint32_t kNtlm = 0x00000200;
inline constexpr std::uint32_t kAnonymous = 0x00000800;
inline constexpr std::uint32_t kAlwaysSign = 0x00008000;
inline constexpr std::uint32_t kEss = 0x00080000;
inline constexpr std::uint32_t kTargetInfo = 0x00800000;
inline constexpr std::uint32_t kVersion = 0x02000000;
inline constexpr std::uint32_t k128 = 0x20000000;
inline constexpr std::uint32_t k56 = 0x80000000;

/// 0 when not an NTLMSSP message, else the MessageType (1, 2, 3).
std::uint32_t message_type(Bytes b);

struct AuthenticateInfo {
    std::string domain, user, workstation;
    std::uint16_t lm_len = 0, nt_len = 0;
    std::uint32_t flags = 0;
    int ntlm_version = 0;  ///< 1 or 2 from the NT response, 0 when there is none
    /// MS-NLMP 3.2.5.1.2: empty user name and empty NT response (LM empty or one zero byte),
    /// as the project's NTLM decoder judges it (the ANONYMOUS flag is not required).
    bool anonymous = false;
};
/// Reads an AUTHENTICATE with the project's NTLM decoder (hopscope/auth/ntlm.hpp).
std::optional<AuthenticateInfo> parse_authenticate(Bytes b);

/// Interop fixes applied to the server's own copy of a client token before gss-ntlmssp sees it.
/// Returns a description of what was changed ("" when nothing).
std::string fix_negotiate(Buffer& msg);
std::string fix_authenticate(Buffer& msg);
/// tedious writes NtChallengeResponseFields.Len = 16 and puts the NTLMv2 blob after it; the
/// length is extended over the blob when the NT response is the last buffer of the message.
std::string fix_nt_length(Buffer& msg);

Buffer build_anonymous_negotiate();
/// AUTHENTICATE with empty user/domain, LmChallengeResponse = one zero byte, empty NT response.
Buffer build_anonymous_authenticate(std::string_view workstation);
}  // namespace ntlm

// ---------------------------------------------------------------- SPNEGO / GSS framing
namespace gssframe {
enum class Kind { Unknown, RawNtlm, RawKrb5, Spnego };
Kind classify(Bytes token);
/// If `token` is SPNEGO NegTokenInit whose mechToken is a bare AP-REQ (0x6E), returns the
/// RFC 4121 InitialContextToken `60 .. 06 09 <krb5 OID> 01 00 <AP-REQ>` built around it.
std::optional<Buffer> rewrap_spnego_bare_apreq(Bytes token);
}  // namespace gssframe

}  // namespace hopscope::lab
