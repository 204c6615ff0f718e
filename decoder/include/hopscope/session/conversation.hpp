// One TDS connection: a state machine that turns the two byte streams of a TCP connection into
// facts (PRELOGIN, TLS, LOGIN7, authentication blobs, server tokens, requests) and, once per login
// attempt, a LoginRecord.
//
// Feeding: feed(direction, time, bytes, evidence) in whatever chunks the network produced,
// gap(...) when the front-end knows bytes are missing, close(...) at the end. The facts do not
// depend on the chunking: each fact carries the time and frame of the chunk that completed its
// unit, and the stream offset where its TDS packet (or TLS record) starts.
//
// What is followed (MS-TDS 2.2.6.5, 3.2.5.3):
//   * clear TDS; the PRELOGIN ENCRYPTION bytes of both sides decide the mode;
//   * TLS handshake records tunnelled in PRELOGIN packets (recognised by content, both ways),
//     then raw TLS records. Login-only mode (both ENCRYPT_OFF): the first LOGIN7 packet is raw TLS,
//     then clear TDS resumes. Full mode: everything after the handshake is reported Encrypted.
//     TDS 8.0 strict: the stream starts with a TLS ClientHello; everything is Encrypted;
//   * with Options::tls_keys (a key log), those TLS records are opened (tls/decrypt.hpp) and the
//     TDS inside goes through the same decoding as clear TDS, in each of the three modes; a
//     front-end that terminates TLS itself hands the plaintext to feed_plaintext instead;
//   * MARS [MC-SMP]: SMP packets (0x53) are framed too; each session's DATA is its own TDS
//     stream (own message assembly and token parser; at most 16 sessions per direction, one
//     shared message budget);
//   * after garbage, a gap, or a capture that starts mid-connection, the framer resynchronises
//     and reports the bytes it skipped.
//
// Memory per connection: one partial packet per direction (<= 64 KiB), one buffered message per
// direction (<= Options::max_message; SQL batches and RPCs keep only a prefix, results stream
// through the token parser), one partial TLS record per direction, TLS hello reassembly; with
// decryption also one record of plaintext and one partial TDS packet of it per direction.
//
// Secrets: no fact and no LoginRecord holds a password. Authentication blobs (which may contain
// NTLM responses or Kerberos cipher text) are handed to on_auth_blob as opaque bytes for the
// authentication layer only; LoginRecord keeps their direction, source and length.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/common/auth_kind.hpp"
#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"
#include "hopscope/common/flow.hpp"
#include "hopscope/common/stream_events.hpp"
#include "hopscope/tds/login7.hpp"
#include "hopscope/tds/prelogin.hpp"
#include "hopscope/tds/requests.hpp"
#include "hopscope/tds/tokens.hpp"
#include "hopscope/tls/keylog.hpp"
#include "hopscope/tls/tls.hpp"

namespace hopscope::session {

/// Where a fact was seen. `ev.stream_offset` is the offset (in that direction) of the TDS packet
/// or TLS record the fact comes from; `ev.frame` and `ts` are those of the chunk that completed it.
struct FactContext {
    Direction dir = Direction::ClientToServer;
    Timestamp ts;
    Evidence ev;
};

/// Where an authentication blob came from.
enum class AuthBlobSource : std::uint8_t {
    Login7,      ///< LOGIN7 SSPI field (client's first token)
    SspiPacket,  ///< client SSPI message, packet type 0x11 (raw token as the whole payload)
    SspiToken,   ///< server SSPI token 0xED
};
const char* to_string(AuthBlobSource s);

struct AuthBlobInfo {
    Direction dir = Direction::ClientToServer;
    AuthBlobSource source = AuthBlobSource::Login7;
    std::size_t length = 0;
    Timestamp ts;
    Evidence ev;
};

enum class LoginOutcome : std::uint8_t { Success, Failure, Incomplete };
const char* to_string(LoginOutcome o);

/// One login attempt, reported once through on_login when its outcome is known (LOGINACK ->
/// Success; ERROR without LOGINACK at the end of the server's message -> Failure; close, gap or
/// encryption -> Incomplete).
struct LoginRecord {
    Timestamp started;
    Timestamp ended;
    Evidence first_evidence;  ///< the first unit of the attempt (PRELOGIN, LOGIN7, ...)
    Evidence last_evidence;   ///< the unit that decided the outcome
    Direction first_dir = Direction::ClientToServer;  ///< where first_evidence was seen
    Direction last_dir = Direction::ServerToClient;   ///< where last_evidence was seen

    LoginOutcome outcome = LoginOutcome::Incomplete;
    std::string outcome_detail;  ///< why Incomplete: "connection closed", "encrypted", ...

    // PRELOGIN and TLS.
    tds::EncryptionMode encryption = tds::EncryptionMode::Unknown;
    bool encryption_downgraded = false;
    std::optional<std::uint8_t> client_encryption;  ///< client PRELOGIN ENCRYPTION byte
    std::optional<std::uint8_t> server_encryption;
    /// Client and server PRELOGIN VERSION (the server's: its product version), as numbers:
    /// nothing reports them, and making their text was two strings of every login's work.
    std::optional<tds::PreloginVersion> client_driver_version;
    std::optional<tds::PreloginVersion> server_version;
    bool fed_auth_required = false;  ///< server PRELOGIN FEDAUTHREQUIRED
    std::uint16_t tls_version = 0;   ///< from the ServerHello, 0 if no TLS seen
    std::string tls_sni;
    std::vector<std::string> tls_alpn;
    /// TDS of this attempt was read inside TLS: records opened with the key log, or plaintext
    /// handed over by the front-end (Conversation::feed_plaintext).
    bool tls_decrypted = false;
    /// Keys were given but this attempt's TLS could not be opened: why (no key for the session,
    /// unsupported cipher suite, a record that failed authentication, ...). "" otherwise.
    std::string tls_not_decrypted;

    // LOGIN7 (no password: presence and length only).
    bool login7_seen = false;       ///< LOGIN7 decoded
    bool login7_encrypted = false;  ///< LOGIN7 travelled in TLS
    std::string user, host, app, server_name, database, library, language;
    std::uint32_t tds_version = 0;
    bool tds_version_big_endian = false;
    bool integrated_security = false;  ///< fIntSecurity
    bool password_present = false;
    std::size_t password_length = 0;
    bool change_password = false;
    std::optional<tds::FedAuthFeature> fed_auth;

    AuthKind auth = AuthKind::Unknown;
    std::string auth_detail;  ///< for Unknown: why ("LOGIN7 encrypted", "strict TLS", ...)
    std::vector<AuthBlobInfo> auth_blobs;  ///< ordered; bytes went to on_auth_blob

    // Server answer.
    std::optional<tds::LoginAck> login_ack;
    std::optional<tds::ServerMessage> error;  ///< the first ERROR of the attempt
    std::size_t error_count = 0;
    std::string routing_server;  ///< ENVCHANGE routing (type 20), "host:port"
    bool gap_seen = false;       ///< bytes were missing during the attempt
};

/// A one-line "key=value ..." rendering without secrets, for logs and tests.
std::string to_string(const LoginRecord& r);

/// What the conversation reports. Every method has an empty default.
class ConversationCallbacks {
  public:
    virtual ~ConversationCallbacks() = default;

    virtual void on_prelogin(const FactContext&, const tds::Prelogin&) {}
    virtual void on_encryption(const FactContext&, const tds::EncryptionNegotiation&) {}
    virtual void on_tls_client_hello(const FactContext&, const tls::ClientHello&) {}
    virtual void on_tls_server_hello(const FactContext&, const tls::ServerHello&) {}
    /// A protected TLS record of `length` bytes. `what`: "login7" (the first LOGIN7 packet in
    /// login-only mode), "handshake" (Finished etc.), "data".
    virtual void on_encrypted(const FactContext&, const char* /*what*/, std::size_t /*length*/) {}
    /// A protected TLS record opened with the key log: `what` as for on_encrypted, or "alert";
    /// `length` is the plaintext's. Its TDS content follows through the other callbacks.
    virtual void on_decrypted(const FactContext&, const char* /*what*/, std::size_t /*length*/) {}
    /// A clear TLS alert (before ChangeCipherSpec), e.g. 2/42 bad_certificate: why a TLS
    /// handshake failed. Level 1 warning, 2 fatal [RFC 5246 7.2].
    virtual void on_tls_alert(const FactContext&, std::uint8_t /*level*/,
                              std::uint8_t /*description*/) {}
    virtual void on_login7(const FactContext&, const tds::Login7&) {}
    /// An authentication blob, in order of appearance. The bytes are valid during the call only.
    virtual void on_auth_blob(const FactContext&, AuthBlobSource, Bytes /*blob*/) {}

    // Server token stream (forwarded from tds::TokenSink).
    virtual void on_login_ack(const FactContext&, const tds::LoginAck&) {}
    virtual void on_server_message(const FactContext&, const tds::ServerMessage&) {}
    virtual void on_env_change(const FactContext&, const tds::EnvChange&) {}
    virtual void on_done(const FactContext&, const tds::Done&) {}
    virtual void on_feature_ext_ack(const FactContext&, const std::vector<tds::FeatureAck>&) {}
    virtual void on_fed_auth_info(const FactContext&, const tds::FedAuthInfo&) {}
    virtual void on_col_metadata(const FactContext&, const std::vector<tds::Column>&) {}
    virtual void on_row(const FactContext&) {}
    virtual void on_return_status(const FactContext&, std::int32_t) {}
    virtual void on_token(const FactContext&, std::uint8_t /*token*/, std::size_t /*size*/) {}

    // Client requests.
    /// A request and how its parse ended (ok, or Malformed: `batch`/`rpc` hold what was read).
    virtual void on_sql_batch(const FactContext&, const tds::SqlBatch&, const DecodeResult&) {}
    virtual void on_rpc(const FactContext&, const tds::RpcRequest&, const DecodeResult&) {}
    virtual void on_attention(const FactContext&) {}
    /// A message that is only counted: bulk load, transaction manager, federated-auth token
    /// (length only: it is a credential), pre-TDS7 login, an ignored message, a LOGIN7
    /// continuation whose first packet was encrypted.
    virtual void on_other_message(const FactContext&, std::uint8_t /*packet_type*/,
                                  std::size_t /*length*/, const char* /*note*/) {}

    /// Something could not be decoded. `status` is Malformed (with `error`), NotTds, or
    /// Encrypted.
    virtual void on_problem(const FactContext&, DecodeStatus, const DecodeError&) {}
    /// The framer skipped `skipped` bytes (garbage, partial packet after a gap, late start).
    virtual void on_resync(const FactContext&, std::uint64_t /*skipped*/) {}
    virtual void on_gap(const FactContext&, std::uint64_t /*length*/) {}

    virtual void on_login(const LoginRecord&) {}
};

class Conversation {
  public:
    struct Options {
        std::size_t max_message = 1 << 20;      ///< largest buffered message (LOGIN7, SSPI, ...)
        std::size_t request_prefix = 64 << 10;  ///< bytes kept of a SQL batch / RPC message
        bool handshake_seen = true;             ///< false: the capture started mid-connection
        tds::RequestLimits request_limits{};
        /// ROW/NBCROW tokens reach on_row and on_token. Off for callbacks that ignore them: the
        /// rows of large result sets are then stepped over without a call per row.
        bool row_events = true;
        /// INFO tokens (not ERROR) reach on_server_message. Off for callbacks that ignore them:
        /// their texts are then not converted (TokenStreamParser::set_info_messages).
        bool info_messages = true;
        /// Secrets for opening the TLS inside TDS (a key log, or the front-end's own). Looked
        /// up when the ServerHello is seen; must outlive the conversation. nullptr: TLS stays
        /// opaque.
        const tls::KeySource* tls_keys = nullptr;
    };

    explicit Conversation(ConversationCallbacks& cb);
    Conversation(ConversationCallbacks& cb, Options options);
    ~Conversation();
    Conversation(const Conversation&) = delete;
    Conversation& operator=(const Conversation&) = delete;

    /// What the bytes show goes to the callbacks; malformed units and bytes that carry no TDS are
    /// reported through on_problem, and feeding continues.
    void feed(Direction dir, Timestamp ts, Bytes data, Evidence ev);
    /// For a front-end that terminates TLS itself: `plaintext` is what TLS application data
    /// records of `dir` carried, in order (a TDS byte stream), decoded exactly like records this
    /// conversation opened with a key log. The front-end feeds the clear bytes (PRELOGIN, the
    /// handshake) through feed() and not the protected records. `ev` is that of the records.
    void feed_plaintext(Direction dir, Timestamp ts, Bytes plaintext, Evidence ev);
    void gap(Direction dir, Timestamp ts, std::uint64_t length);
    /// End of the connection: flushes both directions and reports a pending login attempt.
    void close(Timestamp ts);

    [[nodiscard]] tds::EncryptionMode encryption() const;
    /// Bytes held by this conversation right now (buffers only), for the memory cap tests.
    [[nodiscard]] std::size_t buffered_bytes() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hopscope::session
