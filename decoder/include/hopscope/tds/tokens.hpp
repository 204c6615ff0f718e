// The server's token stream (packet type 0x04 payloads, and RPC/bulk token streams) [MS-TDS 2.2.7].
//
// TokenStreamParser is fed the payload bytes of one direction's messages (TDS packet headers
// already stripped by the framing layer) in arbitrary chunks. It walks every token of TDS 7.0-7.4
// and 8.0 - including COLMETADATA/ROW/NBCROW with every data type, so an ERROR token after rows is
// never missed - and reports what it found to a TokenSink. COLMETADATA is kept across messages
// (one parser per connection direction).
//
// Memory: at most Limits::max_pending bytes of one incomplete token are buffered. Large values
// (PLP chunks, TEXT/IMAGE) are skipped as they stream by, not buffered.
//
// Values are never handed out: rows, RETURNVALUE and feature-ack data are walked over, only
// names, types, lengths and counts reach the sink. State kept across messages: the current
// COLMETADATA (COLMETADATA 0xFFFF "NoMetaData" keeps it), ALTMETADATA by id, the TDS version
// (LOGINACK), and what FEATUREEXTACK negotiated (Always Encrypted: CekTable and CryptoMetaData
// are then walked; DATACLASSIFICATION 0xA3 needs its negotiated version). Rows seen before any
// COLMETADATA (a capture that starts mid-result) cannot be walked: Malformed/Unsupported, and
// the next message is parsed normally. A capture that starts mid-connection does not see
// LOGINACK: call set_tds_version() with 7.1 when the client's requests show TDS 7.0/7.1 (no
// ALL_HEADERS), or DONE tokens (9 bytes there, 13 in 7.2+) are taken for truncated.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"
#include "hopscope/tds/types.hpp"

namespace hopscope::tds {

/// LOGINACK 0xAD. `tds_version` as on the wire (big-endian there), e.g. 0x74000004.
struct LoginAck {
    std::uint8_t interface = 0;
    std::uint32_t tds_version = 0;
    std::string prog_name;
    std::uint8_t major = 0, minor = 0;
    std::uint16_t build = 0;
};

/// ERROR 0xAA or INFO 0xAB.
struct ServerMessage {
    bool is_error = false;
    std::int32_t number = 0;
    std::uint8_t state = 0;
    std::uint8_t severity = 0;  ///< "Class"
    std::string text;
    std::string server;
    std::string proc;
    std::uint32_t line = 0;
};

/// ENVCHANGE types [MS-TDS 2.2.7.9].
namespace envchange {
inline constexpr std::uint8_t kDatabase = 1;
inline constexpr std::uint8_t kLanguage = 2;
inline constexpr std::uint8_t kCharset = 3;
inline constexpr std::uint8_t kPacketSize = 4;
inline constexpr std::uint8_t kUnicodeLcid = 5;
inline constexpr std::uint8_t kUnicodeComparisonFlags = 6;
inline constexpr std::uint8_t kCollation = 7;
inline constexpr std::uint8_t kBeginTransaction = 8;
inline constexpr std::uint8_t kCommitTransaction = 9;
inline constexpr std::uint8_t kRollbackTransaction = 10;
inline constexpr std::uint8_t kEnlistDtcTransaction = 11;
inline constexpr std::uint8_t kDefectTransaction = 12;
inline constexpr std::uint8_t kMirroringPartner = 13;
inline constexpr std::uint8_t kPromoteTransaction = 15;
inline constexpr std::uint8_t kTransactionManagerAddress = 16;
inline constexpr std::uint8_t kTransactionEnded = 17;
inline constexpr std::uint8_t kResetConnectionAck = 18;
inline constexpr std::uint8_t kUserInstanceName = 19;
inline constexpr std::uint8_t kRouting = 20;
}  // namespace envchange

/// ENVCHANGE 0xE3. Text values are UTF-8; binary values (collation, transaction ids) are hex.
struct EnvChange {
    std::uint8_t type = 0;
    std::string new_value;
    std::string old_value;
    // Routing (envchange::kRouting) only:
    std::uint8_t routing_protocol = 0;
    std::uint16_t routing_port = 0;
    std::string routing_server;
};

/// DONE 0xFD, DONEPROC 0xFE, DONEINPROC 0xFF.
struct Done {
    std::uint8_t token = 0xFD;
    std::uint16_t status = 0;
    std::uint16_t cur_cmd = 0;
    std::uint64_t row_count = 0;
    [[nodiscard]] bool more() const { return status & 0x0001; }
    [[nodiscard]] bool error() const { return status & 0x0002; }
    [[nodiscard]] bool attention() const { return status & 0x0020; }
};

struct FeatureAck {
    std::uint8_t feature_id = 0;
    std::uint32_t data_length = 0;
};

/// FEDAUTHINFO 0xEE.
struct FedAuthInfo {
    std::string sts_url;
    std::string spn;
};

/// One column of COLMETADATA (names and types only).
struct Column {
    std::uint8_t type = 0;  ///< TDS data type byte (e.g. 0xE7 NVARCHAR)
    std::uint32_t max_length = 0;
    std::string name;
    // Added detail (the three fields above stay as they are):
    std::uint32_t user_type = 0;
    std::uint16_t flags = 0;  ///< fNullable 0x0001, fIdentity 0x0010, fComputed 0x0020, ...
    std::string table_name;   ///< TEXT/NTEXT/IMAGE only: the parts joined with '.'
    TypeInfo info;            ///< the whole TYPE_INFO (precision, scale, collation, PLP, ...)
};

/// RETURNVALUE 0xAC: an output parameter or UDF result. The value itself is never kept.
struct ReturnValue {
    std::uint16_t ordinal = 0;
    std::string name;
    std::uint8_t status = 0;  ///< 0x01 output parameter, 0x02 UDF return value
    TypeInfo info;
    bool is_null = false;
};

class TokenSink {
  public:
    virtual ~TokenSink() = default;
    virtual void on_login_ack(const LoginAck&) {}
    /// What the parser calls for a LOGINACK: the sink may keep the token's strings (a session
    /// keeps the acknowledgement in its login record) instead of copying them. By default,
    /// on_login_ack().
    virtual void take_login_ack(LoginAck&& a) { on_login_ack(a); }
    virtual void on_message(const ServerMessage&) {}
    virtual void on_env_change(const EnvChange&) {}
    /// SSPI 0xED: the server's authentication blob (NTLM CHALLENGE, SPNEGO/Kerberos response).
    virtual void on_sspi(Bytes /*blob*/) {}
    virtual void on_done(const Done&) {}
    virtual void on_feature_ext_ack(const std::vector<FeatureAck>&) {}
    virtual void on_fed_auth_info(const FedAuthInfo&) {}
    virtual void on_col_metadata(const std::vector<Column>&) {}
    virtual void on_row() {}
    virtual void on_return_status(std::int32_t) {}
    /// RETURNVALUE 0xAC, after its value has been walked (NULL or not; never the value).
    virtual void on_return_value(const ReturnValue&) {}
    /// ALTROW 0xD3 (COMPUTE rows), with the ALTMETADATA id.
    virtual void on_alt_row(std::uint16_t /*id*/) {}
    /// Any token, after it was parsed (token byte and its total size in bytes, token byte
    /// included).
    virtual void on_token(std::uint8_t /*token*/, std::size_t /*size*/) {}
};

/// Name of a token byte ("LOGINACK", "ERROR", "ROW", ...) or "UNKNOWN".
const char* token_name(std::uint8_t token);

/// Name of an ENVCHANGE type ("database", "packet-size", "routing", ...) or "unknown".
const char* env_change_name(std::uint8_t type);

class TokenStreamParser {
  public:
    struct Limits {
        std::size_t max_pending = 1 << 20;  ///< largest incomplete token kept (bytes)
    };

    explicit TokenStreamParser(TokenSink& sink);
    TokenStreamParser(TokenSink& sink, Limits limits);
    ~TokenStreamParser();
    TokenStreamParser(const TokenStreamParser&) = delete;
    TokenStreamParser& operator=(const TokenStreamParser&) = delete;

    /// TDS version from LOGIN7/LOGINACK (0x70000000 ... 0x74000004, 0x08000000): 7.0/7.1 use
    /// 4-byte DONE row counts, 7.2+ 8-byte. Defaults to 7.4. LOGINACK updates it automatically.
    void set_tds_version(std::uint32_t version);

    /// Whether ROW and NBCROW tokens reach TokenSink::on_row and on_token (the default). A sink
    /// that ignores them turns this off: rows are still walked and checked (an ERROR or DONE can
    /// follow them), but cost no virtual call each. Other tokens are reported either way.
    void set_row_events(bool on);

    /// Whether INFO tokens (0xAB) reach TokenSink::on_message (the default). A sink that only
    /// wants the server's errors turns this off: an INFO token is still checked field by field
    /// (a short one is Malformed as before) and reported to on_token, but its texts are not
    /// converted from UTF-16 (the server sends one or two after every login, "Changed database
    /// context to 'master'.": a heap string each). ERROR tokens are reported either way.
    void set_info_messages(bool on);

    /// Feeds the next payload bytes. `end_of_message` is true for the payload of the packet with
    /// EOM set: a token left incomplete then is a decode error, and state resets for the next
    /// message (COLMETADATA excepted). Returns Consumed, NeedMore (token incomplete, more will
    /// come) or Malformed (with the error; the rest of this message is skipped, the next message
    /// is parsed normally). Malformed is returned once per message: the feeds that deliver the
    /// skipped rest of it return Consumed.
    DecodeResult feed(Bytes payload, bool end_of_message);

    /// Forget any partial token (after a gap or resync). COLMETADATA is kept.
    void reset_message();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hopscope::tds
