// The typed events every output renders (console, JSON lines, proxy log). Schema: docs/events.md.
//
// Events hold facts that are safe to show: names, numbers, flags, lengths. They never hold a
// password, an NTLM/LM response, a MIC or any Kerberos cipher text; the decoders that build them
// only copy presence and length of such fields.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hopscope/auth/kerberos.hpp"
#include "hopscope/common/auth_kind.hpp"
#include "hopscope/common/boxed.hpp"
#include "hopscope/common/flow.hpp"
#include "hopscope/common/stream_events.hpp"
#include "hopscope/tds/prelogin.hpp"

namespace hopscope::analysis {

inline constexpr int kSchemaVersion = 2;

/// What PRELOGIN decided (hopscope/tds/prelogin.hpp); AuthKind is hopscope/common/auth_kind.hpp.
using tds::EncryptionMode;
enum class Outcome : std::uint8_t { Success, Failure, Incomplete };
enum class Severity : std::uint8_t { Info, Warning, Error };
/// Whether a Kerberos client asked to delegate (forwarded TGT); Unknown when not observable.
enum class Tristate : std::uint8_t { Unknown, No, Yes };
/// Where a login's `user` and `domain` came from: the LOGIN7 (SQL login), the NTLM
/// AUTHENTICATE, the KDC's reply to the client (Kerberos: the TGS-REP for the login's SPN, cname
/// and crealm in clear), or a decrypted ticket (keytab). None while `user` is empty.
enum class UserSource : std::uint8_t { None, Login7, Ntlm, KdcReply, Keytab };

const char* to_string(Outcome o);
const char* to_string(Severity s);
const char* to_string(Tristate t);
/// "" for None, else "login7", "ntlm", "kdc-reply", "keytab".
const char* to_string(UserSource u);

/// Where the bytes behind an event are: the front-end's Evidence of the message that carried
/// it, and the direction of the connection its stream offset counts in. A pcap gives both the
/// frame and the offset, the proxy only the offset.
struct Position {
    std::uint64_t frame = 0;  ///< capture frame (1-based, as Wireshark counts); 0: not a capture
    /// Offset of the first byte of the TDS message or packet (Kerberos: of the record) in
    /// `direction` of the connection; 0 is the first byte. Meaningless for UDP.
    std::uint64_t stream_offset = 0;
    Direction direction = Direction::ClientToServer;
};

inline Position position(const Evidence& ev, Direction dir) {
    return Position{ev.frame, ev.stream_offset, dir};
}

/// A pointer back to the bytes of a finding's evidence; `at.direction` is relative to `flow`.
struct EvidenceRef {
    FlowKey flow;
    Position at;
    Timestamp ts;
    std::string what;  ///< e.g. "NTLM AUTHENTICATE with empty user"
};

using hopscope::Boxed;

struct ServerError {
    std::int32_t number = 0;
    std::uint8_t state = 0;
    std::uint8_t severity = 0;
    std::string message;
    std::string server;  ///< ServerName field of the ERROR token
};

/// What the service's keytab showed of a Kerberos login's AP-REQ (`--keytab`): names, flags and
/// times only, never a key, a session key or the KRB-CRED beyond its flags and names.
struct KeytabFacts {
    Position ap_req_at;  ///< the message that carried the AP-REQ (frame, stream offset)
    bool ticket_decrypted = false;
    bool forwardable = false;     ///< ticket flag: the KDC lets this ticket be forwarded
    bool forwarded = false;       ///< ticket flag: the ticket was itself forwarded
    bool ok_as_delegate = false;  ///< ticket flag: the service is trusted for delegation
    std::string client;           ///< the ticket's cname@crealm
    std::string authtime;         ///< RFC 3339, e.g. "2026-11-26T15:00:05Z"
    std::string enctype;          ///< the session key's enctype name
    /// The PAC's S4U_DELEGATION_INFO (MS-PAC 2.9), present in a ticket the KDC issued through
    /// constrained delegation (S4U2Proxy): the service it was asked for, and the accounts that
    /// asked for it on the user's behalf (e.g. "svc_sqla@AD.LAB.TEST").
    std::string s4u2proxy_target;
    std::vector<std::string> transited_services;
    bool authenticator_decrypted = false;
    bool deleg = false;  ///< GSS_C_DELEG_FLAG in the authenticator's checksum
    /// The checksum's channel bindings are set (Extended Protection): the login is bound to the
    /// client's TLS channel.
    bool channel_bindings = false;
    bool krb_cred = false;       ///< the checksum carried a KRB-CRED
    bool forwarded_tgt = false;  ///< that KRB-CRED holds a TGT (krbtgt/REALM) that was read
    std::vector<std::string> forwarded_tgt_flags;  ///< its flag names, e.g. "forwarded"
    std::string forwarded_tgt_client;              ///< its pname@prealm, when given
    /// The step that failed, e.g. "keytab: no key for MSSQLSvc/... kvno 3 etype 18 (ticket)";
    /// what was read before it stays.
    std::string problem;

    /// The authenticator was read, so whether the client sent a forwarded TGT is a fact.
    [[nodiscard]] bool delegation_known() const { return authenticator_decrypted; }
};

/// A ticket seen on port 88 that the keytab opened (`--keytab`): the evidence ticket of an
/// S4U2Proxy request, or the ticket in a KDC reply. Names, flags and times only.
struct KdcTicketFacts {
    bool decrypted = false;
    bool forwardable = false;
    bool forwarded = false;
    bool ok_as_delegate = false;
    std::vector<std::string> flags;  ///< every flag name, e.g. "forwardable", "pre-authent"
    std::string client;              ///< the ticket's cname@crealm
    std::string authtime;            ///< RFC 3339
    std::string enctype;             ///< the session key's enctype name
    /// The PAC's S4U_DELEGATION_INFO (MS-PAC 2.9), as in KeytabFacts.
    std::string s4u2proxy_target;
    std::vector<std::string> transited_services;
    std::string problem;  ///< e.g. "keytab: no key for svc_sqla@AD.LAB.TEST kvno 2 etype 18 (...)"
};

/// One TDS login attempt (event "login").
///
/// Laid out for size: the analyzer keeps one per recent login (100 000 of them at most, in its
/// window with four fields of its own), and at 488 bytes that entry fits mimalloc's 512-byte size
/// class (704 bytes before: the flags and enums between the strings each padded to 8 bytes, the
/// rarely present server error and routing inline, the TLS and TDS versions and the ticket's
/// enctype as their names). Small fields sit in the padding after `flow` and after the two
/// Positions; the numbers are named when the event is written.
struct LoginEvent {
    Timestamp ts;       ///< when the outcome was known (or the connection ended)
    Timestamp started;  ///< PRELOGIN / LOGIN7 time
    FlowKey flow;
    AuthKind auth = AuthKind::Unknown;
    Outcome outcome = Outcome::Incomplete;
    UserSource user_source = UserSource::None;  ///< where `user` and `domain` came from
    bool anonymous = false;
    EncryptionMode encryption = EncryptionMode::Unknown;
    bool sspi_visible = false;  ///< the SSPI exchange (or part of it) was readable
    Position first_at;          ///< the first message of the attempt (PRELOGIN, LOGIN7, ...)
    Position last_at;           ///< the server's message that decided the outcome (or the end seen)
    Tristate delegation = Tristate::Unknown;  ///< client delegated its TGT (Kerberos only)
    /// The NTLM AUTHENTICATE binds the login to its TLS channel (MsvAvChannelBindings present
    /// and not all zero: Extended Protection).
    bool ntlm_channel_bindings = false;
    bool tls_decrypted = false;          ///< the login was read inside TLS (key log or terminated)
    bool encryption_downgraded = false;  ///< client asked for encryption, got less
    /// The client closed the connection after PRELOGIN without sending a LOGIN7 (auth `unknown`,
    /// auth_detail "no LOGIN7 sent"): it could not build its authentication, e.g. no Kerberos
    /// ticket for the server ("Cannot generate SSPI context").
    bool prelogin_only = false;
    std::uint8_t ntlm_version = 0;  ///< 1 or 2 when NTLM
    /// The TLS version as numbered on the wire (0x0303: "TLS 1.2", tls::version_name); 0: none.
    std::uint16_t tls_version = 0;
    std::int32_t kerberos_error = 0;  ///< KRB-ERROR code the server returned in SSPI (0 = none)
    /// LOGIN7 TDSVersion as on the wire (0x74000004: "7.4", tds::tds_version_name); 0: none.
    std::uint32_t tds_version = 0;
    /// The AP-REQ ticket's enctype (auth::etype_name: 23 is "rc4-hmac", which is flagged), when
    /// seen.
    std::optional<std::int32_t> kerberos_etype;
    std::string auth_detail;  ///< e.g. "ntlmv2", "spnego/kerberos", or why unknown
    std::string user;         ///< SQL login, NTLM user, or Kerberos client when known
    std::string domain;       ///< NTLM domain or Kerberos realm (the client's, when known)
    std::string workstation;  ///< NTLM workstation / LOGIN7 host name
    std::string spn;          ///< Kerberos SPN (AP-REQ sname or matched TGS-REQ) or NTLM target
    std::string server_name;  ///< LOGIN7 ServerName (what the client typed)
    /// Other names of the server seen on the wire: TLS SNI, the NTLM CHALLENGE's DNS computer
    /// name.
    std::vector<std::string> server_aliases;
    std::string host_name;  ///< LOGIN7 HostName
    std::string app_name;
    std::string library;
    /// ENVCHANGE routing (type 20) in the server's answer: "host:port" the client is sent to
    /// (rare: on the heap).
    Boxed<std::string> routing;
    Boxed<ServerError> error;
    /// Kerberos with a keytab (Pipeline::Options::kerberos_keys): the decrypted AP-REQ's facts.
    /// Shared, not inline: without a keytab it costs a pointer, not 232 bytes, in every login
    /// the analyzer remembers and every open connection.
    std::shared_ptr<const KeytabFacts> keytab;
};
#if defined(__GLIBCXX__) && defined(__x86_64__)
static_assert(sizeof(LoginEvent) <= 488, "the analyzer's window entry no longer fits 512 bytes");
#endif

/// A Kerberos message's type (auth::krb_msg), kept as its number and shown as its name
/// (auth::krb_msg_type_name): "AS-REQ", "TGS-REP", "KRB-ERROR"...; empty when none was seen.
/// Compares with names and converts to std::string_view as the std::string it replaced did. Why
/// not a string: the analyzer keeps every KDC exchange of its window, and the two names were 64
/// of a KerberosEvent's 488 bytes; at 432, the window's entry (KdcEntry, 512 bytes) fits
/// mimalloc's 512-byte size class instead of the 640-byte one.
class KrbMessageName {
  public:
    KrbMessageName() = default;
    /// From a name: "" is none; any text that names no message type is shown as "?".
    KrbMessageName(std::string_view name);  // NOLINT: converts, as the string it replaced
    KrbMessageName(const char* name) : KrbMessageName(std::string_view(name)) {}         // NOLINT
    KrbMessageName(const std::string& name) : KrbMessageName(std::string_view(name)) {}  // NOLINT
    /// A message's msg-type; one without a name is shown as "?" (as krb_msg_type_name does).
    static KrbMessageName of_type(std::int32_t msg_type);

    [[nodiscard]] bool empty() const { return code_ == 0; }
    [[nodiscard]] const char* c_str() const;
    [[nodiscard]] std::string_view view() const { return c_str(); }
    operator std::string_view() const { return c_str(); }  // NOLINT: as the string did
    friend bool operator==(const KrbMessageName& a, std::string_view b) { return a.view() == b; }

  private:
    static constexpr std::int8_t kUnnamed = -1;
    std::int8_t code_ = 0;  ///< 0: none; kUnnamed: "?"; else the msg-type (all below 128)
};

/// What few KDC exchanges have: the parts of an S4U request, a KRB-ERROR's text, and what a
/// keytab showed (KerberosEvent::extra()).
struct KerberosExtras {
    std::string s4u_user;  ///< PA-FOR-USER user, when present
    std::vector<std::string> additional_ticket_snames;
    std::string error_text;  ///< KRB-ERROR e-text, when present
    /// With a keytab: the S4U2Proxy request's evidence ticket (its first additional ticket),
    /// when the request has cname-in-addl-tkt; null without a keytab.
    std::shared_ptr<const KdcTicketFacts> evidence_ticket;
    /// With a keytab: the ticket of the AS-REP / TGS-REP, when the keytab holds its service's
    /// key (null when it has none).
    std::shared_ptr<const KdcTicketFacts> reply_ticket;
    /// With a keytab: the request or the reply is FAST-armored (PA-FX-FAST); what is inside the
    /// armor is not decrypted (the tickets above are outside it).
    bool fast_armored = false;
};

/// A KDC exchange on port 88 (event "kerberos"): one request and its answer when seen.
///
/// Laid out for size: the analyzer keeps every exchange of its window (100 000 at most) with 80
/// bytes of its own each, and with the event at 272 bytes (288 at most, asserted below) that
/// entry fits mimalloc's 384-byte size class (the event was 432 bytes before, the entry in the
/// 512-byte class: the S4U parts, the error's text and name, and the keytab's tickets inline, in
/// every exchange). The error's name follows from its code, so it is not kept; the rest of what
/// few exchanges have is on the heap, made when it is first set.
struct KerberosEvent {
    Timestamp ts;
    FlowKey flow;                 ///< client = the host asking the KDC
    Position request_at;          ///< the request, when seen (`request` not empty)
    Position reply_at;            ///< the answer, when seen (`reply` not empty)
    KrbMessageName request;       ///< "AS-REQ" / "TGS-REQ" / "" when only a reply was seen
    KrbMessageName reply;         ///< "AS-REP" / "TGS-REP" / "KRB-ERROR" / "" when none seen
    std::int32_t error_code = 0;  ///< KRB-ERROR error-code (0 = none)
    std::string client;           ///< cname@crealm when visible
    std::string sname;            ///< requested service principal, e.g. MSSQLSvc/sqla.lab.test:1433
    std::string realm;
    // Options, enctypes and PA-DATA types are kept as the numbers of the message, and named
    // only when the event is written (auth::kdc_option_name, etype_name, pa_type_name): a busy
    // KDC's exchanges fill the analyzer's window, and as names they were a dozen heap strings
    // each (half of them longer than the short-string buffer).
    std::uint32_t kdc_options = 0;     ///< KDCOptions bits (auth::kdc_option), e.g. Forwardable
    std::vector<std::int32_t> etypes;  ///< requested enctypes, in the request's order
    std::vector<std::int32_t> padata;  ///< padata types (auth::pa_type), in the message's order
    /// The rarely present parts, null when none of them was seen: read them through extra(),
    /// set them through extra_to_set().
    Boxed<KerberosExtras> extras;

    /// Whether the request had a KDCOptions bit (auth::kdc_option), e.g. CnameInAddlTkt.
    [[nodiscard]] bool has_option(std::uint32_t bit) const { return (kdc_options & bit) != 0; }
    [[nodiscard]] bool has_padata(std::int32_t type) const;
    /// The error's name (auth::krb_error_name), e.g. "KDC_ERR_S_PRINCIPAL_UNKNOWN"; "" when
    /// error_code is 0.
    [[nodiscard]] std::string error_name() const;
    /// The rarely present parts: `extras`, or an empty set when it is null.
    [[nodiscard]] const KerberosExtras& extra() const;
    /// `extras`, made first when it is null: to set one of them.
    KerberosExtras& extra_to_set();
};
#if defined(__GLIBCXX__) && defined(__x86_64__)
static_assert(sizeof(KerberosEvent) <= 288,
              "the analyzer's KDC window entry no longer fits 384 bytes");
#endif

/// A server ERROR token outside the login (event "server_error"): e.g. a linked-server login error
/// relayed by the middle server on an established session.
struct ServerErrorEvent {
    Timestamp ts;
    FlowKey flow;
    Position at;  ///< the server packet that carried the ERROR token
    ServerError error;
    std::string statement;  ///< the client's last SQL batch / RPC text before the error (capped)
};

/// A verdict (event "finding").
struct Finding {
    Timestamp ts;
    std::string rule;  ///< stable id, e.g. "HS010"
    std::string name;  ///< stable slug, e.g. "ntlm-first-hop"
    Severity severity = Severity::Warning;
    std::string summary;            ///< one line
    std::vector<std::string> hops;  ///< "C 10.77.0.2:50000 -> A 10.77.0.3:1433 (ntlm)" ...
    std::vector<EvidenceRef> evidence;
    /// A Wireshark display filter that shows the evidence; empty when it has no frame numbers
    /// (proxy).
    std::string display_filter;
    std::string remedy;   ///< what to do, with the real names filled in
    std::string missing;  ///< what evidence is missing and how to capture it (may be empty)
};

}  // namespace hopscope::analysis
