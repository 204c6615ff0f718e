// Kerberos V5 messages (RFC 4120 §5; MS-KILE; MS-SFU), their GSS-API framing (RFC 4121 §4.1)
// and the TCP record framing (RFC 4120 §7.2.2).
//
// Only what travels in the clear is kept: names, realms, options, enctypes, key version numbers,
// error codes and texts, PA-DATA types and the S4U fields. Cipher text (ticket and authenticator
// enc-parts, checksums, keys) is reported by length only and never copied; EncryptedDataInfo keeps
// a view of it for decryption with a keytab (auth/kerberos_keys.hpp) while the input lives.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "hopscope/auth/gss.hpp"
#include "hopscope/common/boxed.hpp"
#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::auth {

/// msg-type values (RFC 4120 §5.10 / §7.5.7).
namespace krb_msg {
inline constexpr std::int32_t AsReq = 10;
inline constexpr std::int32_t AsRep = 11;
inline constexpr std::int32_t TgsReq = 12;
inline constexpr std::int32_t TgsRep = 13;
inline constexpr std::int32_t ApReq = 14;
inline constexpr std::int32_t ApRep = 15;
inline constexpr std::int32_t TgtReq = 16;  ///< user-to-user KERB-TGT-REQUEST
inline constexpr std::int32_t TgtRep = 17;  ///< user-to-user KERB-TGT-REPLY
inline constexpr std::int32_t Cred = 22;
inline constexpr std::int32_t Error = 30;
}  // namespace krb_msg
/// "AS-REQ", "TGS-REP", "KRB-ERROR"...; "?" for others.
const char* krb_msg_type_name(std::int32_t msg_type);

/// KDCOptions (RFC 4120 §5.4.1, MS-SFU §2.2.3), BIT STRING order: bit 0 is 0x80000000.
namespace kdc_option {
inline constexpr std::uint32_t Forwardable = 0x40000000u;
inline constexpr std::uint32_t Forwarded = 0x20000000u;
inline constexpr std::uint32_t Proxiable = 0x10000000u;
inline constexpr std::uint32_t Proxy = 0x08000000u;
inline constexpr std::uint32_t AllowPostdate = 0x04000000u;
inline constexpr std::uint32_t Postdated = 0x02000000u;
inline constexpr std::uint32_t Renewable = 0x00800000u;
inline constexpr std::uint32_t OptHardwareAuth = 0x00100000u;
inline constexpr std::uint32_t CnameInAddlTkt = 0x00020000u;  ///< S4U2Proxy (MS-SFU §2.2.3)
inline constexpr std::uint32_t Canonicalize = 0x00010000u;
inline constexpr std::uint32_t RequestAnonymous = 0x00008000u;
inline constexpr std::uint32_t DisableTransitedCheck = 0x00000020u;
inline constexpr std::uint32_t RenewableOk = 0x00000010u;
inline constexpr std::uint32_t EncTktInSkey = 0x00000008u;
inline constexpr std::uint32_t Renew = 0x00000002u;
inline constexpr std::uint32_t Validate = 0x00000001u;
}  // namespace kdc_option
std::string kdc_options_to_string(std::uint32_t options);
/// The name of one KDCOptions bit ("forwardable", "cname-in-addl-tkt"...), nullptr for a bit
/// without one (kdc_options_to_string leaves those out).
const char* kdc_option_name(std::uint32_t bit);

/// APOptions (RFC 4120 §5.5.1).
namespace ap_option {
inline constexpr std::uint32_t UseSessionKey = 0x40000000u;
inline constexpr std::uint32_t MutualRequired = 0x20000000u;
}  // namespace ap_option
std::string ap_options_to_string(std::uint32_t options);

/// PA-DATA types (RFC 4120 §7.5.2, MS-KILE §2.2, MS-SFU §2.2).
namespace pa_type {
inline constexpr std::int32_t TgsReq = 1;
inline constexpr std::int32_t EncTimestamp = 2;
inline constexpr std::int32_t EtypeInfo2 = 19;
inline constexpr std::int32_t PacRequest = 128;
inline constexpr std::int32_t ForUser = 129;
inline constexpr std::int32_t S4uX509User = 130;
inline constexpr std::int32_t FxFast = 136;
inline constexpr std::int32_t PacOptions = 167;
}  // namespace pa_type
const char* pa_type_name(std::int32_t type);

/// PA-PAC-OPTIONS flags (MS-KILE §2.2.10), BIT STRING order.
namespace pac_option {
inline constexpr std::uint32_t Claims = 0x80000000u;
inline constexpr std::uint32_t BranchAware = 0x40000000u;
inline constexpr std::uint32_t ForwardToFullDc = 0x20000000u;
inline constexpr std::uint32_t ResourceBasedConstrainedDelegation = 0x10000000u;
}  // namespace pac_option
std::string pac_options_to_string(std::uint32_t options);

/// Encryption type name ("aes256-cts-hmac-sha1-96", "rc4-hmac"...) or the number.
std::string etype_name(std::int32_t etype);
/// The same name without a copy; nullptr for an enctype without one (etype_name gives the number).
const char* known_etype_name(std::int32_t etype);
/// Error code name ("KDC_ERR_S_PRINCIPAL_UNKNOWN"...) or "KRB_ERR_<n>".
std::string krb_error_name(std::int32_t code);

struct PrincipalName {
    std::int32_t name_type = 0;
    /// The name-string components joined with '/', e.g. "MSSQLSvc/sql2.corp.local:1433": the
    /// form every user of a name wants, kept as one string (at most one allocation, none for a
    /// name within the short-string buffer such as "krbtgt/LAB.TEST"; a vector of strings cost
    /// two or three per name, some 40 000 names on 40 MB of login-dense traffic).
    std::string text;
    std::uint32_t count = 0;      ///< how many components
    std::uint32_t first_len = 0;  ///< the first one's length (a component may hold a '/')

    /// A name made of `components` (what a parsed one holds for them).
    static PrincipalName of(std::int32_t type, std::initializer_list<std::string_view> components);
    /// Appends one more component.
    void add(std::string_view component);
    /// The first component ("krbtgt" for a TGS), empty for a name without any.
    [[nodiscard]] std::string_view first() const {
        return std::string_view(text).substr(0, first_len);
    }
    /// Components joined with '/', e.g. "MSSQLSvc/sql2.corp.local:1433".
    [[nodiscard]] const std::string& str() const { return text; }
    /// str() + "@" + realm, e.g. "alice@LAB.TEST", built in one allocation.
    [[nodiscard]] std::string at(std::string_view realm) const;
};

/// EncryptedData (RFC 4120 §5.2.9): everything but the cipher text.
struct EncryptedDataInfo {
    std::int32_t etype = 0;
    std::optional<std::uint32_t> kvno;
    std::size_t cipher_len = 0;
    /// The cipher text: a view into the parsed input, valid only while that buffer lives (for
    /// auth::decrypt_ap_req right after parsing). Never rendered, never copied into events.
    Bytes cipher{};
};

struct TicketInfo {
    std::int32_t tkt_vno = 0;
    std::string realm;
    PrincipalName sname;
    EncryptedDataInfo enc_part;
    std::size_t size = 0;  ///< encoded size of the Ticket
};

struct ApReq {
    std::uint32_t ap_options = 0;
    TicketInfo ticket;  ///< ticket.sname is the SPN the client asked for
    EncryptedDataInfo authenticator;
    std::size_t size = 0;  ///< encoded size of the AP-REQ
};

struct ApRep {
    EncryptedDataInfo enc_part;
};

struct KrbError {
    std::optional<std::string> ctime;  ///< KerberosTime "YYYYMMDDHHMMSSZ"
    std::optional<std::int32_t> cusec;
    std::string stime;
    std::int32_t susec = 0;
    std::int32_t error_code = 0;
    std::optional<std::string> crealm;
    std::optional<PrincipalName> cname;
    std::string realm;
    std::optional<PrincipalName> sname;  ///< MIT sends KRB-ERRORs without it
    std::optional<std::string> e_text;
    std::size_t e_data_len = 0;
    // e-data is an opaque OCTET STRING (RFC 4120 §5.9.1); when it holds one of the two usual
    // structures it is decoded below, otherwise these stay empty (never an error).
    std::vector<std::int32_t> e_data_padata;  ///< METHOD-DATA: PA-DATA types the KDC offers
    std::optional<std::int32_t> e_data_type;  ///< KERB-ERROR-DATA data-type (MS-KILE §2.2.1)
    /// KERB-EXT-ERROR status (MS-KILE §2.2.2, data-type 3): the NTSTATUS behind the code, e.g.
    /// 0xC00000BB STATUS_NOT_SUPPORTED with KDC_ERR_BADOPTION when delegation is refused.
    std::optional<std::uint32_t> ext_status;
};

/// PA-FOR-USER (MS-SFU §2.2.1): the user a service asks a ticket to itself for (S4U2Self).
struct PaForUser {
    PrincipalName user_name;
    std::string user_realm;
    std::string auth_package;
};

/// PA-S4U-X509-USER (MS-SFU §2.2.2): S4UUserID fields.
struct PaS4uX509User {
    std::optional<PrincipalName> cname;
    std::string crealm;
    bool has_certificate = false;
    std::optional<std::uint32_t> options;
};

struct PaData {
    std::int32_t type = 0;
    std::size_t length = 0;           ///< padata-value length
    std::optional<ApReq> tgs_ap_req;  ///< PA-TGS-REQ: the AP-REQ with the TGT/evidence ticket
    // The S4U ones are rare (a service asking for a ticket on a user's behalf): on the heap, so
    // that the one to four PA-DATA of every request are 248 bytes each instead of 464.
    Boxed<PaForUser> for_user;  ///< PA-FOR-USER
    Boxed<PaS4uX509User> s4u_x509_user;
    std::optional<std::uint32_t> pac_options;  ///< PA-PAC-OPTIONS flags
    std::optional<bool> include_pac;           ///< PA-PAC-REQUEST
};

/// AS-REQ / TGS-REQ (RFC 4120 §5.4.1).
struct KdcReq {
    std::int32_t msg_type = 0;
    std::vector<PaData> padata;
    std::uint32_t kdc_options = 0;
    std::optional<PrincipalName> cname;
    std::string realm;
    std::optional<PrincipalName> sname;
    std::optional<std::string> from;
    std::string till;
    std::optional<std::string> rtime;
    std::uint32_t nonce = 0;
    std::vector<std::int32_t> etypes;
    std::size_t address_count = 0;
    bool has_enc_authorization_data = false;
    std::vector<TicketInfo> additional_tickets;  ///< S4U2Proxy evidence, U2U TGT

    [[nodiscard]] const PaData* find_padata(std::int32_t type) const;
};

/// AS-REP / TGS-REP (RFC 4120 §5.4.2).
struct KdcRep {
    std::int32_t msg_type = 0;
    std::vector<PaData> padata;
    std::string crealm;
    PrincipalName cname;
    TicketInfo ticket;
    EncryptedDataInfo enc_part;
};

/// KRB-CRED (RFC 4120 §5.8.1).
struct KrbCred {
    std::vector<TicketInfo> tickets;
    EncryptedDataInfo enc_part;
};

/// User-to-user TGT request / reply (draft-ietf-cat-user2user, as used by Windows with the
/// 1.2.840.113554.1.2.2.3 mechanism; GSS token ids 04 00 / 04 01). Plain SEQUENCEs, no
/// application tag.
struct KrbTgtReq {
    std::optional<PrincipalName> server_name;
    std::optional<std::string> realm;
};
struct KrbTgtRep {
    TicketInfo ticket;
};

struct KerberosMessage {
    std::int32_t msg_type = 0;
    std::variant<KdcReq, KdcRep, ApReq, ApRep, KrbError, KrbCred, KrbTgtReq, KrbTgtRep> body;
};

/// What parse_kerberos decodes beyond the message's own fields.
struct KerberosParse {
    /// The AP-REQ in a TGS-REQ's PA-TGS-REQ (the TGT and its authenticator): decoded into
    /// PaData::tgs_ap_req, a malformed one making the whole message malformed. Without it the
    /// value is only checked to be an OCTET STRING (PaData::length says how long).
    bool tgs_ap_req = true;
};

/// Decodes one DER-encoded Kerberos message (tag 6a..7e). Over UDP (port 88) each datagram is
/// exactly one message (RFC 4120 §7.2.1): pass the payload here. Over TCP use KrbTcpFramer.
DecodeResult parse_kerberos(Bytes data, KerberosMessage& out, KerberosParse what = {});
/// True if the first byte is an application tag of a message handled by parse_kerberos.
bool looks_like_kerberos(Bytes data);

/// GSS-API token ids (RFC 4121 §4.1, RFC 1964 §1.1).
namespace krb5_tok {
inline constexpr std::uint16_t ApReq = 0x0100;
inline constexpr std::uint16_t ApRep = 0x0200;
inline constexpr std::uint16_t Error = 0x0300;
inline constexpr std::uint16_t TgtReq = 0x0400;  ///< user-to-user
inline constexpr std::uint16_t TgtRep = 0x0401;  ///< user-to-user
}  // namespace krb5_tok

/// A Kerberos mechanism token as carried in SSPI / SPNEGO.
struct Krb5GssToken {
    bool gss_wrapped = false;             ///< had 0x60 + mech OID
    Oid mech;                             ///< when wrapped
    std::optional<std::uint16_t> tok_id;  ///< 01 00 / 02 00 / 03 00, absent for a bare message
    KerberosMessage message;
};

/// Accepts `60 .. OID tok_id msg`, `tok_id msg` and a bare message (impacket's raw AP-REQ).
/// The token id must agree with the message type.
DecodeResult parse_krb5_token(Bytes data, Krb5GssToken& out);

/// Kerberos over TCP (RFC 4120 §7.2.2): 4-byte big-endian length, high bit reserved (must be 0).
/// Records may be split over segments or several may share one; only a partial record is kept.
class KrbTcpFramer {
  public:
    static constexpr std::size_t kDefaultMaxRecord = 1u << 20;
    explicit KrbTcpFramer(std::size_t max_record = kDefaultMaxRecord) : max_(max_record) {}

    /// Consumes `data`, appending each completed record (without its length prefix) to `out`.
    /// After an error the framer stays failed (Desync): later calls return the same error.
    DecodeResult feed(Bytes data, std::vector<std::vector<std::uint8_t>>& out);
    /// The same, calling `on_record(Bytes)` for each completed record, in order, as it completes
    /// (the records before an error included). A record that lies whole in `data` is handed on
    /// as a view into `data`, without a copy; one that spans calls, from the framer's buffer.
    /// Either view is valid during the call only.
    template <typename OnRecord>
    DecodeResult feed_each(Bytes data, OnRecord&& on_record) {
        if (!state_.ok()) return state_;
        while (!data.empty()) {
            if (buf_.empty() && data.size() >= 4) {
                const std::uint32_t mark = load_u32be(data.data());
                if (!mark_ok(mark)) {
                    buf_.assign(data.begin(), data.begin() + 4);  // held, as a split mark is
                    return state_;
                }
                if (data.size() - 4 >= mark) {
                    const Bytes record = data.subspan(4, mark);
                    data = data.subspan(4 + std::size_t{mark});
                    consumed_ += 4 + std::uint64_t{mark};
                    on_record(record);
                    continue;
                }
            }
            if (!hold(data)) return state_;
            if (buf_.size() >= 4 && buf_.size() == 4 + std::size_t{load_u32be(buf_.data())}) {
                on_record(Bytes(buf_).subspan(4));
                consumed_ += buf_.size();
                buf_.clear();
            }
        }
        return {};
    }
    /// Bytes of an incomplete record currently held.
    [[nodiscard]] std::size_t buffered() const { return buf_.size(); }
    [[nodiscard]] bool failed() const { return !state_.ok(); }

  private:
    /// A record mark is usable (not the reserved bit, not over the cap); else the framer fails.
    bool mark_ok(std::uint32_t mark);
    /// Moves the bytes of the record being assembled from `data` into buf_ (its mark first);
    /// false when its mark is not usable.
    bool hold(Bytes& data);

    std::size_t max_;
    std::vector<std::uint8_t> buf_;
    std::uint64_t consumed_ = 0;
    DecodeResult state_;  ///< ok until the stream breaks, then the error for good
};

/// One-line rendering; never cipher bytes.
std::string to_string(const KerberosMessage& m);

}  // namespace hopscope::auth
