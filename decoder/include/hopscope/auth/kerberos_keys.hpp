// Decrypting what a Kerberos login carries, given the service's keys (`hopscope --keytab`), to
// read the delegation facts that the clear bytes cannot show: the ticket's flags and client, the
// authenticator's GSS checksum (DELEG) and the forwarded TGT in its KRB-CRED (RFC 4120, RFC 4121
// §4.1.1); and the enc-part of a KDC reply when its key is known.
//
// The decoder does no cryptography of its own here and opens no file: a front-end implements
// KerberosKeys (captures::Keytab: MIT krb5 over a keytab file) and the decoder asks it to decrypt.
// Keys learned on the way (session keys, subkeys) stay in KeyBlocks; no result or error text
// carries key or plaintext bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hopscope/auth/kerberos.hpp"
#include "hopscope/auth/kerberos_enc.hpp"
#include "hopscope/common/byte_reader.hpp"

namespace hopscope::auth {

/// Key usage numbers (RFC 4120 §7.5.1).
namespace key_usage {
inline constexpr std::int32_t AsRepEncPart = 3;
inline constexpr std::int32_t Ticket = 2;
inline constexpr std::int32_t TgsReqAuthenticator = 7;
inline constexpr std::int32_t TgsRepEncPartSessionKey = 8;
inline constexpr std::int32_t TgsRepEncPartSubkey = 9;
inline constexpr std::int32_t ApReqAuthenticator = 11;
inline constexpr std::int32_t KrbCredEncPart = 14;
}  // namespace key_usage

/// A plaintext buffer, wiped when destroyed or reassigned.
class SecretBuffer {
  public:
    SecretBuffer() = default;
    SecretBuffer(const SecretBuffer&) = delete;
    SecretBuffer& operator=(const SecretBuffer&) = delete;
    ~SecretBuffer();

    /// Wipes the old contents and makes room for `n` bytes (for the decrypting implementation).
    std::uint8_t* reset(std::size_t n);
    /// Shrinks to the first `n` bytes (the plaintext length the decryption reported).
    void resize_down(std::size_t n);
    [[nodiscard]] Bytes bytes() const { return Bytes(b_.data(), n_); }

  private:
    std::vector<std::uint8_t> b_;
    std::size_t n_ = 0;
};

/// What a KerberosKeys decryption came to.
enum class KeyStatus : std::uint8_t {
    Ok,
    NoKey,        ///< no key for that principal and enctype
    OtherKvno,    ///< keys for that principal and enctype, but none with that kvno
    WrongKey,     ///< a key was tried and the integrity check failed (wrong key, damaged data)
    Unsupported,  ///< the crypto library does not know the enctype
};
const char* to_string(KeyStatus s);

/// Whose long-term key: a service (ticket) or a client (AS-REP) principal.
struct KeyName {
    const PrincipalName& name;
    std::string_view realm;
    std::optional<std::uint32_t> kvno;  ///< absent: any kvno (tried newest first)
    std::int32_t etype = 0;
};

/// Key material and decryption, implemented by a front-end (MIT krb5 over a keytab file).
/// Both calls write the plaintext to `plain` only on Ok.
class KerberosKeys {
  public:
    virtual ~KerberosKeys() = default;
    /// With the long-term key of `who`.
    virtual KeyStatus decrypt(const KeyName& who, std::int32_t usage, Bytes cipher,
                              SecretBuffer& plain) const = 0;
    /// With a key learned from a decrypted plaintext (a ticket's session key, a subkey).
    virtual KeyStatus decrypt(const KeyBlock& key, std::int32_t usage, Bytes cipher,
                              SecretBuffer& plain) const = 0;
};

/// Why a decryption step gave up, per login (never a crash, never key bytes).
struct KeytabProblem {
    enum class Kind : std::uint8_t {
        NoKey,        ///< the keytab has no key for the ticket's service, enctype (and kvno)
        WrongKey,     ///< the key did not decrypt it (stale keytab, another account's key)
        Unsupported,  ///< enctype unknown to the crypto library
        Malformed,    ///< the plaintext did not parse
    };
    Kind kind = Kind::NoKey;
    std::string step;    ///< "ticket", "authenticator", "krb-cred", "kdc-reply"
    std::string detail;  ///< e.g. "no key for MSSQLSvc/sqla.lab.test:1433@LAB.TEST kvno 3 etype 18"
};
const char* to_string(KeytabProblem::Kind k);
/// "keytab: <detail> (<step>)".
std::string to_string(const KeytabProblem& p);

/// What a decrypted ticket (EncTicketPart) says: flags, client, times, the PAC's delegation info.
/// For a ticket seen on port 88: the evidence ticket of an S4U2Proxy request (its additional
/// ticket), or the ticket a KDC reply carries.
struct TicketFacts {
    bool decrypted = false;
    /// How the key step went: NoKey when the keytab has no key for the ticket's service (nor
    /// another of that enctype and kvno that opens it).
    KeyStatus status = KeyStatus::NoKey;
    std::uint32_t flags = 0;
    std::string client;              ///< cname@crealm
    std::string authtime;            ///< KerberosTime "YYYYMMDDHHMMSSZ"
    std::int32_t session_etype = 0;  ///< enctype of the session key
    bool has_pac = false;
    std::optional<std::string> s4u2proxy_target;  ///< PAC S4U_DELEGATION_INFO
    std::vector<std::string> s4u_transited;
    std::optional<KeytabProblem> problem;
};

/// Decrypts `ticket` (usage 2) with the long-term key of its sname@realm, kvno and enctype, and
/// reads its EncTicketPart; `step` names the ticket in a problem ("evidence ticket", "reply
/// ticket"). `ticket.enc_part.cipher` must still view the parsed bytes. Never fails: a step
/// that cannot be done is `problem`. The session key is not kept.
TicketFacts decrypt_ticket(const TicketInfo& ticket, const KerberosKeys& keys,
                           const std::string& step);

/// The delegation facts of one AP-REQ, from its decrypted ticket, authenticator and KRB-CRED.
struct ApReqFacts {
    /// The ticket (EncTicketPart); its `problem` stays empty: a failed step is `problem` below.
    TicketFacts ticket;

    // Authenticator
    bool authenticator_decrypted = false;
    std::optional<std::int32_t> checksum_type;
    std::optional<std::uint32_t> gss_flags;  ///< the 0x8003 checksum's flags
    bool deleg = false;                      ///< GSS_C_DELEG_FLAG in them
    /// The checksum's Bnd (channel bindings hash) is not all zero: the client bound the login to
    /// its TLS channel (Extended Protection).
    bool channel_binding = false;
    std::optional<std::uint16_t> dlg_opt;

    // KRB-CRED in the checksum
    bool krb_cred = false;            ///< the checksum carried one
    bool krb_cred_decrypted = false;  ///< its EncKrbCredPart was read
    std::size_t krb_cred_tickets = 0;
    bool forwarded_tgt = false;                        ///< a ticket for krbtgt/REALM in it
    std::optional<std::uint32_t> forwarded_tgt_flags;  ///< its KrbCredInfo flags, when given
    std::string forwarded_tgt_client;                  ///< its pname@prealm, when given

    /// The first step that failed; the facts before it stay.
    std::optional<KeytabProblem> problem;

    [[nodiscard]] bool ok() const { return !problem; }
};

/// Decrypts the ticket (usage 2, the service key of ticket.sname@ticket.realm, kvno, enctype),
/// then the authenticator (usage 11, the ticket's session key), then the KRB-CRED of a 0x8003
/// checksum with DELEG (usage 14 with the session key, or with the authenticator's subkey; read
/// as is for enctype 0). `ap.ticket.enc_part.cipher` and `ap.authenticator.cipher` must still
/// view the parsed bytes. Never fails: a step that cannot be done is `problem`.
ApReqFacts decrypt_ap_req(const ApReq& ap, const KerberosKeys& keys);
/// The same for the AP-REQ in a TGS-REQ's PA-TGS-REQ (authenticator usage 7); `session` gets
/// the TGT's session key and `subkey` the authenticator's subkey, for decrypt_kdc_rep.
ApReqFacts decrypt_tgs_ap_req(const ApReq& ap, const KerberosKeys& keys, KeyBlock& session,
                              std::optional<KeyBlock>& subkey);

/// The facts of a KDC reply's enc-part (EncASRepPart / EncTGSRepPart).
struct KdcRepFacts {
    bool decrypted = false;
    std::uint32_t flags = 0;  ///< the new ticket's flags
    std::string server;       ///< sname@srealm
    std::string authtime;
    std::int32_t session_etype = 0;
    std::optional<KeytabProblem> problem;
};
/// AS-REP: with the client's long-term key (usage 3). TGS-REP: with `subkey` (usage 9) when
/// given, else `session` (usage 8), both from decrypt_tgs_ap_req on the request; without them
/// the problem says no key. A FAST-armored reply (PA-FX-FAST, RFC 6113; MIT clients armor their
/// TGS-REQs with the TGT) is not decrypted: problem Unsupported.
KdcRepFacts decrypt_kdc_rep(const KdcRep& rep, const KerberosKeys& keys,
                            const KeyBlock* session = nullptr, const KeyBlock* subkey = nullptr);

/// One-line renderings; names, flags, times, enctypes and problems only.
std::string to_string(const ApReqFacts& f);
std::string to_string(const KdcRepFacts& f);
std::string to_string(const TicketFacts& f);

}  // namespace hopscope::auth
