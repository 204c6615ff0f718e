// PRELOGIN request and response [MS-TDS 2.2.6.5] and the encryption they negotiate.
//
// Payload = option table (token BYTE, offset USHORT BE, length USHORT BE) ended by 0xFF, then
// the option data; offsets are relative to the start of the payload.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::tds {

namespace prelogin_option {
inline constexpr std::uint8_t kVersion = 0x00;
inline constexpr std::uint8_t kEncryption = 0x01;
inline constexpr std::uint8_t kInstOpt = 0x02;
inline constexpr std::uint8_t kThreadId = 0x03;
inline constexpr std::uint8_t kMars = 0x04;
inline constexpr std::uint8_t kTraceId = 0x05;
inline constexpr std::uint8_t kFedAuthRequired = 0x06;
inline constexpr std::uint8_t kNonceOpt = 0x07;
inline constexpr std::uint8_t kTerminator = 0xFF;
}  // namespace prelogin_option

/// ENCRYPTION option values; ENCRYPT_CLIENT_CERT (0x80) is OR-ed onto the base value.
namespace encrypt {
inline constexpr std::uint8_t kOff = 0x00;
inline constexpr std::uint8_t kOn = 0x01;
inline constexpr std::uint8_t kNotSup = 0x02;
inline constexpr std::uint8_t kReq = 0x03;
inline constexpr std::uint8_t kClientCert = 0x80;
}  // namespace encrypt

/// "ENCRYPT_OFF", "ENCRYPT_ON|CLIENT_CERT", ... ("0x..", for values outside the protocol).
std::string encryption_value_name(std::uint8_t v);

struct PreloginOption {
    std::uint8_t token = 0;
    std::uint16_t offset = 0;
    std::uint16_t length = 0;
};

struct PreloginVersion {
    std::uint8_t major = 0;
    std::uint8_t minor = 0;
    std::uint16_t build = 0;                      ///< big-endian on the wire
    std::uint16_t sub_build = 0;                  ///< big-endian on the wire
    [[nodiscard]] std::string to_string() const;  ///< "8.0.2039"
};

struct TraceId {
    std::array<std::uint8_t, 16> connection_id{};
    std::array<std::uint8_t, 16> activity_id{};
    std::uint32_t activity_sequence = 0;  ///< little-endian on the wire
};

/// The option table, in wire order, terminator excluded: at most kCapacity entries, held inline.
/// Why not a std::vector: every login parses two PRELOGINs (the client's and the server's), and
/// their tables were two of a login's ~28 heap allocations on a login-dense capture
/// (docs/performance.md); no table of the protocol comes near the bound.
class PreloginOptions {
  public:
    /// A payload holds at most 65 527 bytes at 5 per entry, but no well-formed table needs more
    /// than a handful; more are refused as TooLarge, which also bounds the work on hostile input.
    static constexpr std::size_t kCapacity = 64;
    [[nodiscard]] std::size_t size() const { return n_; }
    [[nodiscard]] bool empty() const { return n_ == 0; }
    [[nodiscard]] bool full() const { return n_ == kCapacity; }
    const PreloginOption& operator[](std::size_t i) const { return items_[i]; }
    [[nodiscard]] const PreloginOption* begin() const { return items_.data(); }
    [[nodiscard]] const PreloginOption* end() const { return items_.data() + n_; }
    void clear() { n_ = 0; }
    /// Appends; false (and nothing added) when full.
    bool push_back(const PreloginOption& o) {
        if (full()) return false;
        items_[n_++] = o;
        return true;
    }

  private:
    std::array<PreloginOption, kCapacity> items_{};
    std::size_t n_ = 0;
};

/// Everything a PRELOGIN carries. A client sends its driver version in VERSION, a server its
/// product version. Unknown options are kept in `options` and otherwise ignored.
struct Prelogin {
    PreloginOptions options;  ///< in wire order, terminator excluded
    std::optional<PreloginVersion> version;
    std::optional<std::uint8_t> encryption;
    std::optional<std::string> instance;  ///< INSTOPT, NUL-terminated MBCS (server: "" = OK)
    std::optional<std::uint32_t> thread_id;
    std::optional<std::uint8_t> mars;
    std::optional<TraceId> trace_id;
    std::optional<std::uint8_t> fed_auth_required;
    std::optional<std::array<std::uint8_t, 32>> nonce;  ///< NONCEOPT (a public nonce)

    /// Back to a default-constructed Prelogin's state (a new field is reset here too). Not
    /// `*this = Prelogin{}`, which zeroes the table's whole capacity twice (the temporary, then
    /// its copy): two `rep stos` were 38 % of parse_prelogin's own time (perf, login-dense).
    void reset() {
        options.clear();
        version.reset();
        encryption.reset();
        instance.reset();
        thread_id.reset();
        mars.reset();
        trace_id.reset();
        fed_auth_required.reset();
        nonce.reset();
    }
};

/// Parses a PRELOGIN payload (packet header stripped). Malformed when the table is not ended by
/// 0xFF, an option points outside the payload, or a fixed-size option has the wrong length
/// (zero-length options are accepted and ignored: SQL Server 2000 answers THREADID with length 0).
DecodeResult parse_prelogin(Bytes payload, Prelogin& out);

/// Whether a PRELOGIN-type payload is a TLS record instead (TDS 7.x tunnels the TLS handshake in
/// PRELOGIN packets): content type 0x14..0x17, then 0x03.
[[nodiscard]] bool looks_like_tls(Bytes payload);

/// What the connection is protected by, decided from both PRELOGIN ENCRYPTION bytes.
enum class EncryptionMode : std::uint8_t {
    Unknown,    ///< not decided (PRELOGIN missing or values outside the protocol)
    None,       ///< no TLS at all: everything in clear
    LoginOnly,  ///< both sides ENCRYPT_OFF: only the first LOGIN7 packet travels in TLS
    Full,       ///< TLS for the whole connection after the tunnelled handshake
    Strict,     ///< TDS 8.0: TLS from the first byte, PRELOGIN inside it
};
const char* to_string(EncryptionMode m);

struct EncryptionNegotiation {
    EncryptionMode mode = EncryptionMode::Unknown;
    /// The result protects less than the client asked for: the client sent ON or REQ (wants the
    /// whole connection encrypted) and the result is None or LoginOnly, or the client sent OFF
    /// (wants at least the login protected) and the result is None. A client that sent NOT_SUP
    /// is never downgraded.
    bool downgraded = false;
    /// A conforming peer ends the connection after this exchange: one side requires encryption
    /// (ON/REQ) and the other does not support it (NOT_SUP) [MS-TDS 2.2.6.5 table].
    bool peer_should_abort = false;
    bool client_cert = false;  ///< ENCRYPT_CLIENT_CERT set by the client
};

/// MS-TDS 2.2.6.5: either side NOT_SUP -> no TLS; both OFF -> login only; otherwise (any ON/REQ)
/// -> full. The client-certificate bit is ignored for the decision.
EncryptionNegotiation negotiate_encryption(std::uint8_t client, std::uint8_t server);

}  // namespace hopscope::tds
