// Every rule: its catalogue entry next to the function that decides it. Remedies are built by the
// helpers of `remedy` below, so that the same advice reads the same wherever it is given.
#include "hopscope/analysis/rules.hpp"

#include <array>
#include <set>
#include <utility>

#include "rule_support.hpp"

namespace hopscope::analysis {
namespace {

using namespace detail;  // NOLINT(google-build-using-namespace): this file's own helpers

/// A finding of rule `r`, stamped with the time of its evidence.
Finding finding(const RuleInfo& r, Timestamp ts) {
    Finding f;
    f.ts = ts;
    f.rule = std::string(r.id);
    f.name = std::string(r.name);
    f.severity = r.severity;
    return f;
}

/// The verdict of `r` with `key` when it was reported within the de-duplication window: a rule
/// returns it bare instead of describing the finding again, which the analyzer would drop.
std::optional<Verdict> repeated(const Lookups& look, const RuleInfo& r, Timestamp ts,
                                std::string& key) {
    if (!look.reported(r.id, key, ts)) return std::nullopt;
    return Verdict{finding(r, ts), std::move(key)};
}

std::string port_text(std::uint16_t port) {
    return std::to_string(port);
}

/// "role client -> server:port (auth, identity, outcome error)" for the hops of a finding.
std::string describe(const Lookups& look, const LoginEvent& l, const char* role) {
    std::string s = std::string(role) + " " + look.host_name(l.flow.client.addr) + " -> " +
                    look.host_name(l.flow.server.addr) + ":" + port_text(l.flow.server.port) +
                    " (" + to_string(l.auth) + (l.prelogin_only ? ", no LOGIN7" : "");
    std::string id = identity(l);
    if (!id.empty()) s += ", " + id;
    s += ", " + std::string(to_string(l.outcome));
    if (l.error) s += " " + std::to_string(l.error->number);
    return s + ")";
}

/// Client host and server: what makes a verdict on a client's use of a server the same again.
std::string client_server_key(const FlowKey& flow) {
    std::string key;
    key.reserve(64);
    append_to(key, flow.client.addr);
    key += '>';
    append_to(key, flow.server);
    return key;
}

bool anonymous_text(const std::string& s) {
    return icontains(s, "ANONYMOUS LOGON");
}
bool null_text(const std::string& s) {
    return icontains(s, "'(null)'");
}

/// The server could not use the client's Kerberos ticket: wrong key, old key, or clock skew.
bool ticket_rejected(std::int32_t krb) {
    return krb == krb_error::kBadIntegrity || krb == krb_error::kSkew ||
           krb == krb_error::kModified || krb == krb_error::kBadKeyVersion;
}

/// How a rejected ticket's error is named (31 BAD_INTEGRITY is MIT's word for Windows' 41
/// MODIFIED: the ticket was encrypted with another key; 44: the service has another key version).
const char* wrong_key_name(std::int32_t krb) {
    switch (krb) {
        case krb_error::kBadKeyVersion:
            return "KRB_AP_ERR_BADKEYVER";
        case krb_error::kBadIntegrity:
            return "KRB_AP_ERR_BAD_INTEGRITY";
        default:
            return "KRB_AP_ERR_MODIFIED";
    }
}

bool login_failed_text(const ServerError& e) {
    return e.number == sql_error::kLoginFailed || e.number == sql_error::kUntrustedLogin ||
           icontains(e.message, "login failed");
}

/// The second hop did not carry the user: anonymous, refused, an error naming ANONYMOUS, or
/// abandoned after PRELOGIN (no credential to send).
bool second_hop_failed(const LoginEvent& out) {
    return out.anonymous || out.outcome == Outcome::Failure || out.prelogin_only ||
           (out.error && anonymous_text(out.error->message));
}

/// C, A and B of a chain: what makes a verdict on it the same again.
std::string chain_key(const ChainFacts& c) {
    return to_string(c.in.flow.client.addr) + ">" + to_string(c.in.flow.server) + ">" +
           to_string(c.out.flow.server);
}

/// A chain finding shows both hops and both logins.
Finding chain_finding(const RuleInfo& r, const ChainFacts& c) {
    Finding f = finding(r, c.out.ts);
    f.hops = {describe(c.look, c.in, "C->A"), describe(c.look, c.out, "A->B")};
    f.evidence = {ref(c.in, "C's login to A"), ref(c.out, "A's login to B")};
    return f;
}

std::string or_nobody(const std::string& who) {
    return who.empty() ? std::string("nobody") : who;
}

/// "alice@LAB.TEST -> sqla -> sqlb as alice@LAB.TEST": who went where, and as whom the last hop
/// logged in when that is visible (C's host when its user is not).
std::string chain_path(const ChainFacts& c) {
    const std::string who =
        identity(c.in).empty() ? c.look.host_name(c.in.flow.client.addr) : identity(c.in);
    std::string s = who + " -> " + c.look.host_name(c.in.flow.server.addr) + " -> " +
                    c.look.host_name(c.out.flow.server.addr);
    if (c.out.prelogin_only) return s + " without a login";
    return identity(c.out).empty() ? s : s + " as " + identity(c.out);
}

/// " (frame N)", or " (stream offset N)" without frames: where the message the keytab read is.
std::string where(const Position& p) {
    return p.frame ? " (frame " + std::to_string(p.frame) + ")"
                   : " (stream offset " + std::to_string(p.stream_offset) + ")";
}

/// A ticket seen on port 88 if the keytab opened it, else nullptr.
const KdcTicketFacts* read_ticket(const std::shared_ptr<const KdcTicketFacts>& t) {
    return t && t->decrypted ? t.get() : nullptr;
}

/// The evidence ticket of an S4U2Proxy request as the keytab opened it, or nullptr.
const KdcTicketFacts* evidence_read(const KerberosEvent& k) {
    return read_ticket(k.extra().evidence_ticket);
}

/// The S4U2Proxy request that carried the evidence ticket the keytab read.
EvidenceRef evidence_ticket_ref(const KerberosEvent& k, const KdcTicketFacts& t) {
    return EvidenceRef{k.flow, k.request_at, k.ts,
                       "S4U2Proxy evidence ticket for " + t.client + ": " +
                           (t.forwardable ? "forwardable" : "not forwardable") + " (keytab)"};
}

// ---- remedies -------------------------------------------------------------------------------
namespace remedy {

constexpr const char* kAccountPlaceholder = "<SQL Server service account>";

/// A domain or realm to put in a command, or a placeholder when unknown.
std::string realm_or_placeholder(const std::string& realm) {
    return realm.empty() ? std::string("DOMAIN") : realm;
}

/// The host part of an SPN to register: the name itself when fully qualified, otherwise a
/// placeholder that says so (an SPN on a short name or an address does not match what clients
/// that resolve the FQDN ask for).
std::string spn_host_for(const std::string& name) {
    if (name.find('.') != std::string::npos && !looks_like_ip(name)) return name;
    return "<FQDN of " + name + ">";
}

/// "MSSQLSvc/host:port", as named.
std::string mssql_spn(const std::string& host, std::uint16_t port) {
    return std::string(kMssqlSvcPrefix) + host + ":" + port_text(port);
}

/// "MSSQLSvc/<fqdn>:port" for a server known by `host`: the SPN that should be registered.
std::string spn_to_register(const std::string& host, std::uint16_t port) {
    return mssql_spn(spn_host_for(host), port);
}

/// The command that registers `spn` on the SQL Server service account of `realm`.
std::string register_spn(const std::string& spn, const std::string& realm) {
    return "setspn -S " + spn + " " + realm_or_placeholder(realm) + "\\" + kAccountPlaceholder;
}

std::string register_spn(const std::string& host, std::uint16_t port, const std::string& realm) {
    return register_spn(spn_to_register(host, port), realm);
}

/// Why a KDC refuses to forward a TGT.
constexpr const char* kSensitiveOrNotForwardable =
    "the account is 'sensitive and cannot be delegated' or its TGT is not forwardable";

/// The first half of the advice for a user whose TGT may not be forwarded.
std::string clear_sensitive(const std::string& who) {
    return "Clear 'Account is sensitive and cannot be delegated' for " + who +
           " (and remove it from Protected Users)";
}

std::string sync_clocks() {
    return "Synchronise the clocks of client, server and domain controllers (w32tm /resync; check "
           "the NTP source).";
}

/// The SPN was found on the wrong account (or the service's key changed).
std::string move_spn(const std::string& spn) {
    return "Find the account that owns the SPN (setspn -Q " +
           (spn.empty() ? std::string("MSSQLSvc/<host>:<port>") : spn) +
           "), remove it there (setspn -D) and register it on the SQL Server service account "
           "(setspn -S); re-export keytabs after a password change.";
}

std::string connect_by_fqdn() {
    return "Connect with the server's fully qualified DNS name and TCP port (SPN "
           "MSSQLSvc/<fqdn>:1433), not an IP address, alias or short name.";
}

/// The middle server's account as AD commands name it: the requester of its S4U2Proxy request
/// (the KDC's cname), else the server of the evidence ticket when the KDC named it by its
/// account (AD canonicalizes), else a placeholder for the account of that ticket's SPN.
std::string s4u_account(const KerberosEvent& s4u) {
    const std::string evidence = s4u.extra().additional_ticket_snames.empty()
                                     ? std::string()
                                     : s4u.extra().additional_ticket_snames[0];
    for (const std::string& p : {s4u.client, evidence}) {
        const std::string name = p.substr(0, p.find('@'));
        if (!name.empty() && name.find('/') == std::string::npos) return name;
    }
    return "<service account of " +
           (evidence.empty() ? std::string("the middle server") : evidence) + ">";
}

/// "Set-ADUser svc" or, for a computer account ("SQLA$"), "Set-ADComputer SQLA"; `verb` Get/Set.
std::string ad_object(const std::string& verb, const std::string& account) {
    if (!account.empty() && account.back() == '$')
        return verb + "-ADComputer " + account.substr(0, account.size() - 1);
    return verb + "-ADUser " + account;
}

/// Why AD refuses an S4U2Proxy request of `account` for `target`, as far as the wire shows it
/// (`forwardable`: what the keytab shows that proves the user's ticket forwardable, e.g.
/// "alice's ticket to the middle server is forwardable"; empty when not known).
std::string s4u2proxy_refusal_cause(const std::string& account, const std::string& target,
                                    const std::string& user, const std::string& forwardable = {}) {
    return target + " is not in " + account +
           "'s msDS-AllowedToDelegateTo and the back-end's account does not allow " + account +
           " (resource-based constrained delegation)" +
           (!forwardable.empty() ? " (the keytab shows " + forwardable + ")"
                                 : ", or " + user +
                                       "'s ticket to the middle server was not forwardable (a "
                                       "sensitive user, Protected Users)");
}

/// Why AD refuses an S4U2Proxy request whose evidence ticket the keytab showed not forwardable
/// (`at`: the request): classic constrained delegation takes only a forwardable one.
std::string evidence_not_forwardable(const std::string& account, const std::string& user,
                                     const Position& at) {
    return "the keytab shows the evidence ticket for " + user + " (its ticket to " + account +
           ") was not forwardable" + where(at) + ", and constrained delegation (" + account +
           "'s msDS-AllowedToDelegateTo) takes only a forwardable one: " + account +
           " may not use protocol transition (when it got that ticket by S4U2Self), or " + user +
           " is marked sensitive or is in Protected Users";
}

/// The fix for a non-forwardable evidence ticket: protocol transition for the middle server's
/// account, or the user no longer sensitive.
std::string allow_evidence_ticket(const std::string& account, const std::string& user) {
    const std::string name =
        !account.empty() && account.back() == '$' ? account.substr(0, account.size() - 1) : account;
    return "If " + account +
           " got the user's ticket by S4U2Self (the user's login to it was not Kerberos), let it "
           "use protocol transition: Set-ADAccountControl " +
           name +
           " -TrustedToAuthForDelegation $true ('Use any authentication protocol'). Otherwise " +
           clear_sensitive(user) +
           " and make sure the client's TGT is forwardable; or use a login mapping on the linked "
           "server.";
}

/// The fix for a refused S4U2Proxy request: constrained delegation on the middle server's
/// account, or resource-based on the back-end's; then the user.
std::string allow_constrained_delegation(const std::string& account, const std::string& target,
                                         const std::string& user, bool user_delegable = false) {
    const std::string host = spn_host(target);
    const std::string short_host = host.substr(0, host.find('.'));
    return "Allow " + account + " to delegate to " + target + ": " + ad_object("Set", account) +
           " -Add @{'msDS-AllowedToDelegateTo'='" + target +
           "'} ('Trust this user for delegation to specified services only'), or resource-based "
           "on the back-end's account: Set-ADUser <account of " +
           target + "> -PrincipalsAllowedToDelegateToAccount (" + ad_object("Get", account) + ")" +
           (short_host.empty() ? std::string()
                               : " (Set-ADComputer " + short_host +
                                     " when its SQL Server runs as the computer account)") +
           (user_delegable ? std::string(".")
                           : ". If " + account + " may already delegate there, " +
                                 clear_sensitive(user) + ".");
}

}  // namespace remedy

// ---- HS001 ----------------------------------------------------------------------------------
constexpr RuleInfo kAnonymousLogon{
    "HS001", "anonymous-logon", Severity::Error,
    "a login as NT AUTHORITY\\ANONYMOUS LOGON (NTLM fields or the error text)"};

std::optional<Verdict> anonymous_logon(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    if (!l.anonymous && !(l.error && anonymous_text(l.error->message))) return std::nullopt;
    const std::string client = x.look.host_name(l.flow.client.addr);
    Finding f = finding(kAnonymousLogon, l.ts);
    f.summary = client + " logged in to " + x.look.host_name(l.flow.server.addr) +
                " as NT AUTHORITY\\ANONYMOUS LOGON" +
                (l.error ? " and was refused (" + std::to_string(l.error->number) + ")" : "");
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, l.anonymous ? "NTLM AUTHENTICATE with empty user and responses"
                                            : "ERROR naming ANONYMOUS LOGON"));
    if (x.from_middle_server) {
        f.remedy =
            "An anonymous Windows login is what a middle server sends when it holds the "
            "caller's identity only as an NTLM or non-delegable token. Fix the hop into " +
            client +
            ": Kerberos with delegation (SPNs registered, service account trusted for "
            "delegation, user not marked sensitive).";
    } else {
        f.remedy = "The client sent no identity (empty user and responses). If " + client +
                   " is itself a SQL Server running a linked-server query, the hop into it "
                   "lost the caller's identity: capture that hop too. Otherwise check the "
                   "client's credentials.";
    }
    return Verdict{std::move(f), hop_key(l)};
}

/// HS062's case: a login read by a proxy terminating TLS that is bound to its TLS channel, or a
/// Kerberos login refused the way Extended Protection refuses one bound to another channel.
struct BindingCase {
    bool ntlm_bound = false;  ///< MsvAvChannelBindings in the NTLM AUTHENTICATE
    bool kerberos_bound =
        false;  ///< bindings in the GSS checksum (authenticator read with a keytab)
    bool refused_as_ep = false;  ///< a Kerberos login refused with 18452, no ticket error
    [[nodiscard]] bool applies() const { return ntlm_bound || kerberos_bound || refused_as_ep; }
};

BindingCase binding_case(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    BindingCase c;
    if (!x.proxy.active || !x.proxy.terminates_tls || !l.tls_decrypted) return c;
    c.ntlm_bound = l.ntlm_channel_bindings;
    // The server's side: SQL Server answers a login whose channel binding does not match with
    // 18452 ("untrusted domain": AcceptSecurityContext failed, SEC_E_BAD_BINDINGS in its log).
    // For NTLM the client's bindings are in clear; Kerberos carries them inside the encrypted
    // authenticator, so the refusal is what the wire shows.
    c.refused_as_ep = l.outcome == Outcome::Failure && l.auth == AuthKind::Kerberos && l.error &&
                      l.error->number == sql_error::kUntrustedLogin &&
                      !ticket_rejected(l.kerberos_error);
    // With the server's keytab the authenticator is read: its GSS checksum's bindings are a fact.
    c.kerberos_bound = l.auth == AuthKind::Kerberos && l.keytab &&
                       l.keytab->authenticator_decrypted && l.keytab->channel_bindings;
    return c;
}

// ---- HS002 ----------------------------------------------------------------------------------
constexpr RuleInfo kNullLogin{"HS002", "null-login-18452", Severity::Error,
                              "error 18452 or '(null)' (SQL Server 2000 wording)"};

std::optional<Verdict> null_login(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    // A rejected Kerberos ticket also ends in 18452: HS021/HS022 name that cause; a login bound
    // to its TLS channel and refused through a proxy terminating TLS: HS062.
    if (!l.error || ticket_rejected(l.kerberos_error)) return std::nullopt;
    if (l.outcome == Outcome::Failure && binding_case(x).applies()) return std::nullopt;
    if (l.error->number != sql_error::kUntrustedLogin && !null_text(l.error->message))
        return std::nullopt;
    Finding f = finding(kNullLogin, l.ts);
    f.summary = x.look.host_name(l.flow.server.addr) +
                " refused a Windows login with no usable identity ('(null)', " +
                std::to_string(l.error->number) + "): " + l.error->message;
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, "ERROR 18452 / '(null)'"));
    f.remedy =
        "SQL Server 2000-style symptom of a lost identity on a double hop, or a SQL "
        "login against a Windows-only server. For a linked server: use Kerberos with "
        "delegation on the first hop.";
    return Verdict{std::move(f), hop_key(l)};
}

// ---- HS003 ----------------------------------------------------------------------------------
constexpr RuleInfo kRelayedLoginError{
    "HS003", "linked-server-login-error-relayed", Severity::Error,
    "a login error (18456/18452/7399/7303/7416) on an established session: raised by a linked "
    "server, passed on by the middle server"};

std::optional<Verdict> relayed_login_error(const ServerErrorFacts& x) {
    const ServerErrorEvent& e = x.err;
    const ServerError& err = e.error;
    const bool login_error = login_failed_text(err) || err.number == sql_error::kProviderError ||
                             err.number == sql_error::kCannotInitDataSource ||
                             err.number == sql_error::kNoLoginMapping;
    if (!login_error) return std::nullopt;
    // The login on the same connection tells how C authenticated to A; the failed outbound
    // login from A, if this input has A's segment too, shows the second hop.
    const LoginEvent* first = x.look.login_on(e.flow);
    const LoginEvent* second = x.look.failed_login_from(e.flow.server.addr, e.ts);
    Finding f = finding(kRelayedLoginError, e.ts);
    const std::string middle = x.look.host_name(e.flow.server.addr);
    f.summary = "Middle server " + middle + " passed on a login error raised by a linked server (" +
                std::to_string(err.number) + ": " + err.message + ")";
    if (!e.statement.empty()) f.summary += " while running: " + e.statement;
    f.evidence.push_back(EvidenceRef{
        e.flow, e.at, e.ts, "ERROR " + std::to_string(err.number) + " on an established session"});
    if (first) {
        f.hops.push_back(describe(x.look, *first, "C->A"));
        f.evidence.push_back(ref(*first, "C's login to A"));
    }
    if (second) {
        f.hops.push_back(describe(x.look, *second, "A->B"));
        f.evidence.push_back(ref(*second, "A's failed login to the linked server"));
    }
    const bool anon = anonymous_text(err.message) || (second && second->anonymous);
    if (anon) {
        f.summary += "; the linked server saw NT AUTHORITY\\ANONYMOUS LOGON: " + middle +
                     " could not pass the caller's Windows identity on";
    } else if (null_text(err.message) || err.number == sql_error::kUntrustedLogin) {
        f.summary += "; the linked server got no usable Windows identity ('(null)', 18452)";
    }
    if (first && first->auth == AuthKind::Ntlm) {
        f.remedy = "The client reached " + middle +
                   " with NTLM, which cannot be delegated. Make the first hop use Kerberos: "
                   "register the SPN (" +
                   remedy::register_spn(middle, e.flow.server.port, first->domain) +
                   "), connect with the fully qualified name, and trust the service account for "
                   "delegation to the linked server.";
    } else {
        f.remedy = "Follow the identity hop by hop: C must log in to " + middle +
                   " with Kerberos and a delegable ticket, " + middle +
                   "'s service account must be trusted for delegation (or constrained to the "
                   "linked server's MSSQLSvc SPN), the user must not be 'sensitive and cannot be "
                   "delegated', and both SQL Servers need their MSSQLSvc SPNs.";
    }
    if (!second)
        f.missing = "The connection from " + middle +
                    " to the linked server is not in this input; capture on " + middle +
                    " (TDS and port 88) to see which hop lost the identity.";
    // One verdict per failing statement: SQL Server sends the linked server's 18456 and its own
    // 7303/7399 for the same attempt.
    return Verdict{std::move(f),
                   to_string(e.flow.client) + ">" + to_string(e.flow.server) + "#" + e.statement};
}

// ---- constrained delegation: the middle server's own KDC traffic ------------------------------
/// The middle server's granted S4U2Proxy request for the ticket of its login to B (the last one
/// before it, for that login's SPN when known), or nullptr.
const KerberosEvent* granted_s4u2proxy(const ChainFacts& c) {
    const KerberosEvent* s4u = nullptr;
    for (const auto* k : c.look.kdc_before(c.out))
        if (k->has_option(auth::kdc_option::CnameInAddlTkt) && k->error_code == 0 &&
            k->reply == "TGS-REP" && (c.out.spn.empty() || lower(k->sname) == lower(c.out.spn)))
            s4u = k;
    return s4u;
}

/// The middle server's S4U2Self request before its login to B (PA-FOR-USER or
/// PA-S4U-X509-USER: a ticket to itself in the user's name, protocol transition), or nullptr.
const KerberosEvent* s4u2self(const ChainFacts& c) {
    const KerberosEvent* self = nullptr;
    for (const auto* k : c.look.kdc_before(c.out))
        if (k->has_padata(auth::pa_type::ForUser) || k->has_padata(auth::pa_type::S4uX509User))
            self = k;
    return self;
}

/// The middle server's refused S4U2Proxy request (constrained delegation) before its login to B,
/// or nullptr.
const KerberosEvent* refused_s4u2proxy(const ChainFacts& c) {
    const KerberosEvent* s4u = nullptr;
    for (const auto* k : c.look.kdc_before(c.out))
        if (k->has_option(auth::kdc_option::CnameInAddlTkt) && k->error_code != 0) s4u = k;
    return s4u;
}

/// A second hop that reached B as the user through constrained delegation: Kerberos, not
/// failed, with the middle server's granted S4U2Proxy request before it.
bool constrained_hop_worked(const ChainFacts& c) {
    return c.out.auth == AuthKind::Kerberos && !second_hop_failed(c.out) &&
           granted_s4u2proxy(c) != nullptr;
}

/// An NTLM first hop whose second hop reached B with Kerberos while none of the middle server's
/// port-88 traffic is in the input (the proxy, a capture without it): protocol transition, as
/// far as can be told.
bool transition_unseen(const ChainFacts& c) {
    return c.in.auth == AuthKind::Ntlm && c.out.auth == AuthKind::Kerberos &&
           !second_hop_failed(c.out) && c.look.kdc_before(c.out).empty();
}

// ---- HS010 ----------------------------------------------------------------------------------
constexpr RuleInfo kNtlmFirstHop{"HS010", "ntlm-first-hop", Severity::Error,
                                 "chain C→A→B whose first hop used NTLM"};

std::optional<Verdict> ntlm_first_hop(const ChainFacts& c) {
    // With protocol transition an NTLM first hop can be delegated (HS050).
    if (c.in.auth != AuthKind::Ntlm || !integrated(c.out) || constrained_hop_worked(c) ||
        transition_unseen(c))
        return std::nullopt;
    const std::string a = c.look.host_name(c.in.flow.server.addr);
    const std::string b = c.look.host_name(c.out.flow.server.addr);
    Finding f = chain_finding(kNtlmFirstHop, c);
    f.summary = "Double hop with NTLM on the first hop: " + identity(c.in) + " reached " + a +
                " with NTLM, which cannot be delegated, so " + a + " reached " + b + " as " +
                or_nobody(identity(c.out));
    f.remedy = "Make the client use Kerberos to " + a + ": register its SPN (" +
               remedy::register_spn(a, c.in.flow.server.port, c.in.domain) +
               "), connect with that fully qualified name, and trust the service account for "
               "delegation to " +
               remedy::mssql_spn(b, c.out.flow.server.port) + ".";
    // The middle server tried protocol transition (S4U2Self) and its S4U2Proxy was refused.
    const KerberosEvent* self = s4u2self(c);
    const KerberosEvent* refused = refused_s4u2proxy(c);
    if (self != nullptr && refused != nullptr) {
        const std::string account = remedy::s4u_account(*refused);
        f.summary +=
            "; " + a + " tried protocol transition (S4U2Self for " +
            (self->extra().s4u_user.empty() ? std::string("the user") : self->extra().s4u_user) +
            "), but its S4U2Proxy request to " + refused->sname + " was refused (" +
            refused->error_name() + "): ";
        // With the keytab, the S4U2Self ticket given as evidence shows which check failed.
        const KdcTicketFacts* ev = evidence_read(*refused);
        if (!ev) {
            f.summary += "an S4U2Self ticket is forwardable only when " + account +
                         " may use any authentication protocol";
        } else if (!ev->forwardable) {
            f.summary += "the keytab shows the S4U2Self ticket for " + ev->client +
                         " it gave as evidence was not forwardable" + where(refused->request_at) +
                         ": " + account +
                         " may not use any authentication protocol (or the user is sensitive)";
        } else {
            f.summary += remedy::s4u2proxy_refusal_cause(account, refused->sname, ev->client,
                                                         "the S4U2Self ticket for " + ev->client +
                                                             " it gave as evidence is forwardable" +
                                                             where(refused->request_at));
        }
        f.evidence.push_back(ref(*self, "TGS-REQ PA-FOR-USER (S4U2Self)"));
        f.evidence.push_back(
            ref(*refused, "TGS-REQ cname-in-addl-tkt (S4U2Proxy) -> " + refused->error_name()));
        if (ev) f.evidence.push_back(evidence_ticket_ref(*refused, *ev));
        f.remedy += " Or let " + account + " use protocol transition: Set-ADAccountControl " +
                    (account.back() == '$' ? account.substr(0, account.size() - 1) : account) +
                    " -TrustedToAuthForDelegation $true ('Use any authentication protocol'), "
                    "with " +
                    refused->sname + " in its msDS-AllowedToDelegateTo.";
    }
    std::set<std::string> unknown;  // each SPN named once, however often the client asked
    for (const auto* k : c.look.kdc_before(c.in))
        if (k->error_code == krb_error::kSPrincipalUnknown && !spn_host(k->sname).empty()) {
            if (unknown.insert(lower(k->sname)).second)
                f.summary += " (the KDC did not know " + k->sname + ")";
            f.evidence.push_back(ref(*k, "KDC_ERR_S_PRINCIPAL_UNKNOWN"));
        }
    return Verdict{std::move(f), chain_key(c)};
}

// ---- HS011 ----------------------------------------------------------------------------------
constexpr RuleInfo kKerberosWithoutDelegation{
    "HS011", "kerberos-without-delegation", Severity::Error,
    "chain with Kerberos on the first hop but no usable delegated credential (client did not "
    "ask, KDC refused, or not visible)"};

/// Why the middle server of a chain held no delegable credential of the user, as the KDC
/// traffic of both hops shows it, with the fix for that cause (HS011, HS013).
struct DelegationCause {
    std::string why;
    std::string remedy;
    std::string missing;
    std::vector<EvidenceRef> evidence;
};

/// The remedy when A held the user's forwarded TGT and still did not reach B as the user.
std::string use_forwarded_tgt(const std::string& a, const std::string& b_spn) {
    return "Look at " + a +
           ": its SQL Server must run under the account that owns the SPN the ticket was for; "
           "that account must be trusted for delegation (unconstrained, or with constrained "
           "delegation to " +
           b_spn +
           ", which uses S4U2Proxy instead of the forwarded TGT); and the linked server's login "
           "mapping must use the login's own credentials ('Be made using the login's current "
           "security context'), not a fixed or no login.";
}

/// What the keytab proves of the first hop's delegated credential, when it read the
/// authenticator of C's AP-REQ to A: whether a forwarded TGT was in it and, when not, why the
/// ticket shows it was not (HS011, HS013, HS014, HS015).
std::optional<DelegationCause> keytab_cause(const ChainFacts& c) {
    if (!c.in.keytab || !c.in.keytab->delegation_known()) return std::nullopt;
    const KeytabFacts& k = *c.in.keytab;
    const std::string a = c.look.host_name(c.in.flow.server.addr);
    const std::string b_spn =
        remedy::spn_to_register(c.look.host_name(c.out.flow.server.addr), c.out.flow.server.port);
    const std::string who = c.in.user.empty() ? std::string("the user") : identity(c.in);
    DelegationCause cause;
    if (k.forwarded_tgt) {
        cause.why =
            "the keytab shows that " + a + " received a forwarded TGT" +
            (k.forwarded_tgt_client.empty() ? std::string() : " for " + k.forwarded_tgt_client) +
            where(k.ap_req_at) + ", yet it did not use it";
        cause.evidence.push_back(EvidenceRef{c.in.flow, k.ap_req_at, c.in.ts,
                                             "AP-REQ with DELEG and a forwarded TGT (keytab)"});
        cause.remedy = use_forwarded_tgt(a, b_spn);
        return cause;
    }
    cause.why = "the keytab shows the ticket to " + a + " carried no forwarded TGT" +
                where(k.ap_req_at) + ": ";
    std::string what = "AP-REQ without a forwarded TGT (keytab): ";
    if (k.ticket_decrypted && !k.forwardable) {
        cause.why += "the ticket is not forwardable, so the KDC would not let " + who +
                     "'s credential be delegated (" + remedy::kSensitiveOrNotForwardable +
                     ", or a KDC policy)";
        what += "ticket not forwardable";
        cause.remedy = remedy::clear_sensitive(who) +
                       "; make sure the client's TGT is forwardable (MIT: kinit -f, "
                       "'forwardable = true'), or use a login mapping on the linked server.";
    } else if (!k.deleg) {
        cause.why += "the client did not request delegation (no DELEG in its authenticator)";
        if (k.ticket_decrypted && !k.ok_as_delegate)
            cause.why +=
                "; the ticket is not ok-as-delegate, and Windows (SSPI) clients "
                "delegate only to services trusted for delegation";
        what += k.ticket_decrypted ? "forwardable ticket, no DELEG" : "no DELEG";
        cause.remedy = "Trust " + a +
                       "'s service account for delegation (unconstrained, or constrained to " +
                       b_spn +
                       "); Windows clients then delegate automatically (ok-as-delegate). For "
                       "MIT/FreeTDS clients enable delegation ('enable gssapi delegation = yes', "
                       "kinit -f).";
    } else {
        cause.why +=
            "the client set DELEG but sent no TGT with it (its own TGT is not "
            "forwardable)";
        what += "DELEG without a TGT";
        cause.remedy =
            "Get the client a forwardable TGT (MIT: kinit -f, 'forwardable = true'; "
            "Windows: " +
            remedy::clear_sensitive(who) + ").";
    }
    cause.evidence.push_back(EvidenceRef{c.in.flow, k.ap_req_at, c.in.ts, std::move(what)});
    return cause;
}

DelegationCause delegation_cause(const ChainFacts& c) {
    const LoginEvent& in = c.in;
    const LoginEvent& out = c.out;
    const std::string a = c.look.host_name(in.flow.server.addr);
    const std::string b = c.look.host_name(out.flow.server.addr);
    DelegationCause cause;
    const KerberosEvent* refused = nullptr;
    for (const auto* k : c.look.kdc_before(in))
        if (k->has_option(auth::kdc_option::Forwarded) && k->error_code != 0) refused = k;
    // The middle server's own KDC traffic: a refused S4U2Proxy request (constrained
    // delegation) names the cause even when the client rightly sent no forwarded TGT.
    const KerberosEvent* s4u = refused_s4u2proxy(c);
    const Tristate deleg = c.look.delegation_requested(in);
    std::optional<DelegationCause> proof = s4u && !refused ? std::nullopt : keytab_cause(c);
    if (proof) {
        cause = std::move(*proof);
    } else if (s4u && !refused) {
        const std::string account = remedy::s4u_account(*s4u);
        const std::string who = in.user.empty() ? std::string("the user") : identity(in);
        cause.why = a + "'s constrained delegation (S4U2Proxy) to " + s4u->sname +
                    " was refused (" + s4u->error_name() + "): ";
        cause.evidence.push_back(ref(*s4u, "TGS-REQ cname-in-addl-tkt -> " + s4u->error_name()));
        // The evidence ticket (the user's ticket to A) must be forwardable: the keytab shows
        // its flags; without it, a client that did not even ask for a forwardable ticket to A
        // (MIT clients ask whenever their TGT is forwardable) had none to give.
        const KerberosEvent* unasked = nullptr;
        for (const auto* k : c.look.kdc_before(in))
            if (k->request == "TGS-REQ" && !k->has_option(auth::kdc_option::Forwardable) &&
                lower(k->sname) == lower(c.look.spn_for(in)))
                unasked = k;
        // The S4U2Proxy request's own evidence ticket, when the keytab opened it, is the fact;
        // else C's ticket to A as the keytab read it from C's AP-REQ.
        const KdcTicketFacts* ev = evidence_read(*s4u);
        const bool keytab_read = ev || (in.keytab && in.keytab->ticket_decrypted);
        const bool forwardable = ev ? ev->forwardable : keytab_read && in.keytab->forwardable;
        const std::string shown =
            ev ? " (keytab: the S4U2Proxy request's evidence ticket" + where(s4u->request_at) + ")"
               : (keytab_read ? " (keytab" + where(in.keytab->ap_req_at) + ")" : std::string());
        if (ev) cause.evidence.push_back(evidence_ticket_ref(*s4u, *ev));
        if ((keytab_read && !forwardable) || (!keytab_read && unasked)) {
            cause.why +=
                who + "'s ticket to " + a + " is not forwardable" +
                (keytab_read ? shown
                             : std::string(" (the client did not ask for a forwardable one: its "
                                           "TGT is not forwardable)")) +
                ", as for a user marked 'sensitive and cannot be delegated' or in Protected "
                "Users, and the KDC does not accept it as evidence for S4U2Proxy";
            if (!keytab_read)
                cause.evidence.push_back(
                    ref(*unasked, "TGS-REQ for " + unasked->sname + " without forwardable"));
            cause.remedy =
                remedy::clear_sensitive(who) + ", or use a login mapping on the linked server.";
        } else {
            cause.why += remedy::s4u2proxy_refusal_cause(
                account, s4u->sname, who,
                !keytab_read ? std::string()
                : ev ? "the evidence ticket for " + who + " is forwardable" + where(s4u->request_at)
                     : who + "'s ticket to the middle server is forwardable");
            cause.remedy =
                remedy::allow_constrained_delegation(account, s4u->sname, who, ev != nullptr);
        }
    } else if (refused) {
        cause.why = "the KDC refused to forward the user's TGT (" + refused->error_name() +
                    "): " + remedy::kSensitiveOrNotForwardable;
        cause.evidence.push_back(ref(*refused, "TGS-REQ forwarded -> " + refused->error_name()));
        cause.remedy =
            remedy::clear_sensitive(in.user.empty() ? std::string("the user") : identity(in)) +
            ", or use a login mapping on the linked server.";
    } else if (deleg == Tristate::No) {
        cause.why = "the client did not ask for a forwarded TGT, so the ticket it sent to " + a +
                    " carried no delegable credential";
        cause.remedy = "Trust " + a +
                       "'s service account for delegation (unconstrained, or "
                       "constrained to " +
                       remedy::spn_to_register(b, out.flow.server.port) +
                       "); Windows clients then delegate automatically (ok-as-delegate). For "
                       "MIT/FreeTDS clients enable delegation ('enable gssapi delegation = yes', "
                       "kinit -f).";
    } else if (deleg == Tristate::Yes) {
        cause.why = "the client obtained a forwarded TGT, yet " + a + " did not use it";
        cause.remedy = "Check that " + a +
                       " runs under the account that owns its SPN and that "
                       "the account is trusted for delegation to " +
                       remedy::spn_to_register(b, out.flow.server.port) + ".";
    } else {
        cause.why = "whether the client delegated cannot be seen without its port-88 traffic";
        cause.remedy = "Check delegation settings of " + a + "'s service account and the user.";
        cause.missing = "No Kerberos (port 88) traffic from " +
                        c.look.host_name(in.flow.client.addr) +
                        " was captured: capture on the client's segment including port 88 to see "
                        "whether it asked for a forwarded TGT.";
    }
    return cause;
}

/// A chain finding that explains the missing delegation: its cause, evidence and fix.
Finding delegation_finding(const RuleInfo& r, const ChainFacts& c, const std::string& what) {
    DelegationCause cause = delegation_cause(c);
    Finding f = chain_finding(r, c);
    f.summary = what + ": " + chain_path(c) + ", because " + cause.why;
    f.evidence.insert(f.evidence.end(), cause.evidence.begin(), cause.evidence.end());
    f.remedy = std::move(cause.remedy);
    f.missing = std::move(cause.missing);
    return f;
}

std::optional<Verdict> kerberos_without_delegation(const ChainFacts& c) {
    // A second hop that worked, or did not use NTLM, is no sign of a lost identity.
    if (c.in.auth != AuthKind::Kerberos ||
        (!second_hop_failed(c.out) && c.out.auth != AuthKind::Ntlm))
        return std::nullopt;
    return Verdict{delegation_finding(kKerberosWithoutDelegation, c,
                                      "Double hop with Kerberos but no delegation"),
                   chain_key(c)};
}

// ---- HS013 ----------------------------------------------------------------------------------
constexpr RuleInfo kNoCredentialForLinkedServer{
    "HS013", "no-credential-for-linked-server", Severity::Error,
    "chain with Kerberos on the first hop whose middle server closed its connection to the "
    "linked server after PRELOGIN, without a LOGIN7: it could not build a credential for it "
    "('Cannot generate SSPI context')"};

std::optional<Verdict> no_credential_for_linked_server(const ChainFacts& c) {
    if (c.in.auth != AuthKind::Kerberos || !c.out.prelogin_only) return std::nullopt;
    const std::string a = c.look.host_name(c.in.flow.server.addr);
    const std::string b = c.look.host_name(c.out.flow.server.addr);
    Finding f = delegation_finding(kNoCredentialForLinkedServer, c,
                                   a + " could not build a credential for " + b +
                                       " ('Cannot generate SSPI context': it "
                                       "closed its connection to " +
                                       b + " after PRELOGIN without sending a LOGIN7)");
    f.evidence[1].what = "A's connection to B: PRELOGIN, then closed without a LOGIN7";
    return Verdict{std::move(f), chain_key(c)};
}

// ---- HS014 ----------------------------------------------------------------------------------
constexpr RuleInfo kNoDelegatedTgt{
    "HS014", "no-delegated-tgt", Severity::Error,
    "with --keytab: chain whose first hop's decrypted Kerberos authenticator carries no forwarded "
    "TGT and whose second hop failed, was anonymous or used NTLM; the ticket's flags name why"};

std::optional<Verdict> no_delegated_tgt(const ChainFacts& c) {
    if (c.in.auth != AuthKind::Kerberos || !c.in.keytab || !c.in.keytab->delegation_known() ||
        c.in.keytab->forwarded_tgt || refused_s4u2proxy(c) ||
        (!second_hop_failed(c.out) && c.out.auth != AuthKind::Ntlm))
        return std::nullopt;
    return Verdict{delegation_finding(kNoDelegatedTgt, c, "The client sent no delegated TGT"),
                   chain_key(c)};
}

// ---- HS015 ----------------------------------------------------------------------------------
constexpr RuleInfo kForwardedTgtUnused{
    "HS015", "forwarded-tgt-unused", Severity::Error,
    "with --keytab: the middle server received the user's forwarded TGT (decrypted KRB-CRED) but "
    "its login to the linked server failed, was anonymous or used NTLM"};

std::optional<Verdict> forwarded_tgt_unused(const ChainFacts& c) {
    if (c.in.auth != AuthKind::Kerberos || !c.in.keytab || !c.in.keytab->forwarded_tgt ||
        (!second_hop_failed(c.out) && c.out.auth != AuthKind::Ntlm))
        return std::nullopt;
    const std::string a = c.look.host_name(c.in.flow.server.addr);
    return Verdict{delegation_finding(kForwardedTgtUnused, c,
                                      a + " held a delegable credential and did not use it"),
                   chain_key(c)};
}

// ---- HS012 ----------------------------------------------------------------------------------
constexpr RuleInfo kForwardedTgtRefused{
    "HS012", "forwarded-tgt-refused", Severity::Error,
    "TGS-REQ forwarded answered with KDC_ERR_BADOPTION (sensitive user / non-forwardable TGT)"};

/// The client principal of a KDC exchange, or its host's name.
std::string kdc_client(const KdcFacts& x) {
    return x.krb.client.empty() ? x.look.host_name(x.krb.flow.client.addr) : x.krb.client;
}

/// A KDC error is shown by the exchange that drew it.
Finding kdc_error_finding(const RuleInfo& r, const KerberosEvent& k) {
    Finding f = finding(r, k.ts);
    f.evidence.push_back(ref(k, std::string(k.request.view()) + " -> " + k.error_name()));
    return f;
}

std::optional<Verdict> forwarded_tgt_refused(const KdcFacts& x) {
    const KerberosEvent& k = x.krb;
    // A refused S4U2Proxy request that also asks for a forwardable ticket is HS023's.
    if (k.error_code != krb_error::kBadOption || !k.has_option(auth::kdc_option::Forwarded) ||
        k.has_option(auth::kdc_option::CnameInAddlTkt))
        return std::nullopt;
    const std::string client = kdc_client(x);
    Finding f = kdc_error_finding(kForwardedTgtRefused, k);
    f.summary = "The KDC refused to forward " + client +
                "'s TGT (KDC_ERR_BADOPTION): " + remedy::kSensitiveOrNotForwardable;
    f.remedy = remedy::clear_sensitive(client) + " if it must reach linked servers.";
    return Verdict{std::move(f), client};
}

// ---- HS020 ----------------------------------------------------------------------------------
constexpr RuleInfo kSpnMissing{"HS020", "spn-missing", Severity::Error,
                               "KDC_ERR_S_PRINCIPAL_UNKNOWN for an MSSQLSvc/… SPN"};

std::optional<Verdict> spn_missing(const KdcFacts& x) {
    const KerberosEvent& k = x.krb;
    if (k.error_code != krb_error::kSPrincipalUnknown || spn_host(k.sname).empty())
        return std::nullopt;
    Finding f = kdc_error_finding(kSpnMissing, k);
    f.summary = "SPN " + k.sname + " is not registered (KDC_ERR_S_PRINCIPAL_UNKNOWN for " +
                kdc_client(x) + "): the client cannot use Kerberos to that SQL Server";
    f.remedy = remedy::register_spn(k.sname.substr(0, k.sname.find('@')), k.realm);
    return Verdict{std::move(f), k.sname};
}

// ---- HS021 ----------------------------------------------------------------------------------
constexpr RuleInfo kSpnWrongAccount{
    "HS021", "spn-wrong-account", Severity::Error,
    "the server could not decrypt the ticket: KRB_AP_ERR_MODIFIED (41, Windows), "
    "KRB_AP_ERR_BAD_INTEGRITY (31, MIT) or KRB_AP_ERR_BADKEYVER (44) in its SSPI reply, or "
    "KRB_AP_ERR_MODIFIED from the KDC: the ticket was encrypted with another account's key or an "
    "older one"};

std::optional<Verdict> spn_wrong_account(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    if (!ticket_rejected(l.kerberos_error) || l.kerberos_error == krb_error::kSkew)
        return std::nullopt;
    const std::string spn = x.look.spn_for(l);
    Finding f = finding(kSpnWrongAccount, l.ts);
    f.summary =
        x.look.host_name(l.flow.server.addr) + " could not decrypt the Kerberos ticket for " +
        (spn.empty() ? std::string("its SPN") : spn) + " (" + wrong_key_name(l.kerberos_error) +
        "): the SPN belongs to another account, or the service's key changed since its "
        "keytab was made";
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(
        ref(l, "KRB-ERROR " + std::to_string(l.kerberos_error) + " in the SSPI reply"));
    f.remedy = remedy::move_spn(spn);
    return Verdict{std::move(f), hop_key(l) + "#k" + std::to_string(l.kerberos_error)};
}

std::optional<Verdict> spn_wrong_account(const KdcFacts& x) {
    const KerberosEvent& k = x.krb;
    if (k.error_code != krb_error::kModified) return std::nullopt;
    Finding f = kdc_error_finding(kSpnWrongAccount, k);
    f.summary = "KRB_AP_ERR_MODIFIED for " + k.sname +
                ": the ticket was encrypted for another account's key";
    f.remedy = remedy::move_spn(k.sname);
    return Verdict{std::move(f), k.sname};
}

// ---- HS022 ----------------------------------------------------------------------------------
constexpr RuleInfo kClockSkew{"HS022", "clock-skew", Severity::Error,
                              "KRB_AP_ERR_SKEW, in the server's SSPI reply or from the KDC"};

std::optional<Verdict> clock_skew(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    if (l.kerberos_error != krb_error::kSkew) return std::nullopt;
    Finding f = finding(kClockSkew, l.ts);
    f.summary = x.look.host_name(l.flow.server.addr) +
                " rejected the Kerberos ticket: KRB_AP_ERR_SKEW (clocks more than 5 minutes "
                "apart)";
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(
        ref(l, "KRB-ERROR " + std::to_string(l.kerberos_error) + " in the SSPI reply"));
    f.remedy = remedy::sync_clocks();
    return Verdict{std::move(f), hop_key(l) + "#k" + std::to_string(l.kerberos_error)};
}

std::optional<Verdict> clock_skew(const KdcFacts& x) {
    const KerberosEvent& k = x.krb;
    if (k.error_code != krb_error::kSkew) return std::nullopt;
    const std::string client = kdc_client(x);
    Finding f = kdc_error_finding(kClockSkew, k);
    f.summary = "KRB_AP_ERR_SKEW for " + client + ": clocks differ by more than 5 minutes";
    f.remedy = remedy::sync_clocks();
    return Verdict{std::move(f), client};
}

// ---- HS023 ----------------------------------------------------------------------------------
constexpr RuleInfo kConstrainedDelegationRefused{"HS023", "constrained-delegation-refused",
                                                 Severity::Error,
                                                 "S4U2Proxy (cname-in-addl-tkt) refused"};

std::optional<Verdict> constrained_delegation_refused(const KdcFacts& x) {
    const KerberosEvent& k = x.krb;
    if (k.error_code != krb_error::kBadOption || !k.has_option(auth::kdc_option::CnameInAddlTkt))
        return std::nullopt;
    const std::string client = kdc_client(x);
    const std::string account = remedy::s4u_account(k);
    Finding f = kdc_error_finding(kConstrainedDelegationRefused, k);
    f.summary = "Constrained delegation (S4U2Proxy) to " + k.sname + " was refused for " + client +
                " (KDC_ERR_BADOPTION): ";
    // With the keytab the evidence ticket's flags say which of AD's checks failed.
    const KdcTicketFacts* ev = evidence_read(k);
    const std::string user = ev && !ev->client.empty() ? ev->client : std::string("the user");
    if (ev && !ev->forwardable) {
        f.summary += remedy::evidence_not_forwardable(account, user, k.request_at);
        f.remedy = remedy::allow_evidence_ticket(account, user);
    } else {
        f.summary += remedy::s4u2proxy_refusal_cause(
            account, k.sname, user,
            ev ? "the evidence ticket for " + user + " is forwardable" + where(k.request_at)
               : std::string());
        f.remedy = remedy::allow_constrained_delegation(account, k.sname, user, ev != nullptr);
    }
    if (ev) f.evidence.push_back(evidence_ticket_ref(k, *ev));
    return Verdict{std::move(f), k.sname + "#" + client};
}

// ---- HS024 ----------------------------------------------------------------------------------
constexpr RuleInfo kSpnForm{"HS024", "spn-form", Severity::Warning,
                            "SPN with an IP address, a short name or no port"};

std::optional<Verdict> spn_form(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    if (l.auth != AuthKind::Kerberos || !spn_form_wrong(l.spn)) return std::nullopt;
    Finding f = finding(kSpnForm, l.ts);
    f.summary = "SPN " + l.spn + " will not match a registered MSSQLSvc/<fqdn>:<port> SPN";
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, "SPN requested by the client"));
    f.remedy = remedy::connect_by_fqdn();
    return Verdict{std::move(f), l.spn};
}

std::optional<Verdict> spn_form(const KdcFacts& x) {
    const KerberosEvent& k = x.krb;
    if (k.error_code != 0 || !spn_form_wrong(k.sname)) return std::nullopt;
    Finding f = finding(kSpnForm, k.ts);
    f.summary = "Client " + x.look.host_name(k.flow.client.addr) + " asked for SPN " + k.sname +
                ", which will not match MSSQLSvc/<fqdn>:<port>";
    f.evidence.push_back(ref(k, "TGS-REQ sname"));
    f.remedy = remedy::connect_by_fqdn();
    return Verdict{std::move(f), k.sname};
}

// ---- HS030 ----------------------------------------------------------------------------------
constexpr RuleInfo kNtlmToMiddleServer{"HS030", "ntlm-to-middle-server", Severity::Warning,
                                       "NTLM login to a host that also logs in to linked servers"};

std::optional<Verdict> ntlm_to_middle_server(const LateFacts& x) {
    const LoginEvent& l = x.login;
    if (l.auth != AuthKind::Ntlm || x.chained || !x.server_is_middle) return std::nullopt;
    Finding f = finding(kNtlmToMiddleServer, l.ts);
    const std::string a = x.look.host_name(l.flow.server.addr);
    f.summary = identity(l) + " logged in with NTLM to " + a +
                ", which also logs in to linked servers: a linked-server query on this "
                "session would reach them as ANONYMOUS LOGON";
    f.hops.push_back(describe(x.look, l, "C->A"));
    f.evidence.push_back(ref(l, "NTLM login to a middle server"));
    f.remedy = "Register " + remedy::spn_to_register(a, l.flow.server.port) +
               " on its service account and connect by fully qualified name so Kerberos "
               "is used.";
    return Verdict{std::move(f), client_server_key(l.flow)};
}

// ---- HS040 ----------------------------------------------------------------------------------
constexpr RuleInfo kNtlmV1{"HS040", "ntlmv1", Severity::Warning, "NTLMv1 in use"};

std::optional<Verdict> ntlmv1(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    if (l.auth != AuthKind::Ntlm || l.ntlm_version != 1) return std::nullopt;
    std::string key = client_server_key(l.flow);
    if (auto bare = repeated(x.look, kNtlmV1, l.ts, key)) return bare;
    Finding f = finding(kNtlmV1, l.ts);
    f.summary = x.look.host_name(l.flow.client.addr) + " used NTLMv1 to " +
                x.look.host_name(l.flow.server.addr);
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, "NTLM AUTHENTICATE with a 24-byte NT response"));
    f.remedy =
        "NTLMv1 is crackable: set 'Network security: LAN Manager authentication "
        "level' to 'Send NTLMv2 response only. Refuse LM & NTLM'.";
    return Verdict{std::move(f), std::move(key)};
}

// ---- HS041 ----------------------------------------------------------------------------------
constexpr RuleInfo kKerberosRc4{"HS041", "kerberos-rc4", Severity::Warning,
                                "RC4-HMAC Kerberos ticket"};

std::optional<Verdict> kerberos_rc4(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    if (!l.kerberos_etype) return std::nullopt;
    // An enctype without a name is written as its number, which never names RC4.
    const char* named = auth::known_etype_name(*l.kerberos_etype);
    if (named == nullptr || !icontains(named, "rc4")) return std::nullopt;
    const std::string etype = named;
    std::string key = to_string(l.flow.server);
    if (auto bare = repeated(x.look, kKerberosRc4, l.ts, key)) return bare;
    Finding f = finding(kKerberosRc4, l.ts);
    f.summary = "Kerberos ticket for " + x.look.host_name(l.flow.server.addr) + " uses RC4-HMAC";
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, "AP-REQ ticket enctype " + etype));
    f.remedy =
        "Enable AES on the service account (msDS-SupportedEncryptionTypes) and reset "
        "its password so AES keys exist.";
    return Verdict{std::move(f), std::move(key)};
}

// ---- HS042 ----------------------------------------------------------------------------------
constexpr RuleInfo kSqlAuthUnencrypted{"HS042", "sql-auth-unencrypted", Severity::Warning,
                                       "SQL authentication without TLS"};

std::optional<Verdict> sql_auth_unencrypted(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    if (l.auth != AuthKind::Sql || l.encryption != EncryptionMode::None) return std::nullopt;
    std::string key = client_server_key(l.flow);
    if (auto bare = repeated(x.look, kSqlAuthUnencrypted, l.ts, key)) return bare;
    Finding f = finding(kSqlAuthUnencrypted, l.ts);
    f.summary = "SQL login '" + l.user + "' to " + x.look.host_name(l.flow.server.addr) +
                " crossed the network without TLS: its password is only obfuscated";
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, "clear LOGIN7 with SQL authentication"));
    f.remedy =
        "Require encryption (client Encrypt=true / server Force Encryption) or use "
        "Windows authentication.";
    return Verdict{std::move(f), std::move(key)};
}

// ---- HS043 ----------------------------------------------------------------------------------
constexpr RuleInfo kEncryptionDowngraded{"HS043", "encryption-downgraded", Severity::Warning,
                                         "the client asked for encryption and got less"};

std::optional<Verdict> encryption_downgraded(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    if (!l.encryption_downgraded) return std::nullopt;
    std::string key = client_server_key(l.flow);
    if (auto bare = repeated(x.look, kEncryptionDowngraded, l.ts, key)) return bare;
    Finding f = finding(kEncryptionDowngraded, l.ts);
    f.summary = "The client asked " + x.look.host_name(l.flow.server.addr) +
                " for encryption and got " + to_string(l.encryption);
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, "PRELOGIN ENCRYPTION request vs answer"));
    f.remedy =
        "Install a certificate on the server and enable encryption; make clients "
        "require it (Encrypt=true) so a downgrade fails instead of passing.";
    return Verdict{std::move(f), std::move(key)};
}

// ---- HS050 ----------------------------------------------------------------------------------
constexpr RuleInfo kHealthyDoubleHop{
    "HS050", "healthy-double-hop", Severity::Info,
    "Kerberos on both hops, the back-end saw the user (with the user's forwarded TGT, or "
    "through constrained delegation: the middle server's S4U2Proxy request granted)"};

std::optional<Verdict> healthy_double_hop(const ChainFacts& c) {
    const LoginEvent& in = c.in;
    const LoginEvent& out = c.out;
    if (out.auth != AuthKind::Kerberos || second_hop_failed(out)) return std::nullopt;
    // Constrained delegation: A asked the KDC for its ticket to B in the user's name, with the
    // user's ticket to A as evidence (no forwarded TGT needed), or, after an NTLM (any) first
    // hop, with the ticket to itself it got in the user's name (S4U2Self: protocol transition).
    const KerberosEvent* s4u = in.delegation == Tristate::Yes ? nullptr : granted_s4u2proxy(c);
    const KerberosEvent* self = s4u != nullptr ? s4u2self(c) : nullptr;
    const bool transition = self != nullptr && self->error_code == 0 && self->ts <= s4u->ts;
    const bool unseen = transition_unseen(c);
    if (in.auth != AuthKind::Kerberos && in.auth != AuthKind::Unknown && !transition && !unseen)
        return std::nullopt;
    const std::string a = c.look.host_name(in.flow.server.addr);
    const std::string b = c.look.host_name(out.flow.server.addr);
    Finding f = chain_finding(kHealthyDoubleHop, c);
    if (s4u != nullptr && (in.auth == AuthKind::Kerberos || transition)) {
        f.summary = "Healthy double hop through constrained delegation: " + chain_path(c) +
                    (in.auth == AuthKind::Kerberos ? std::string(", Kerberos on both hops; ")
                                                   : ", " + std::string(to_string(in.auth)) +
                                                         " to " + a + ", then Kerberos; ") +
                    a + " got its ticket to " + s4u->sname + " in the user's name from the KDC (" +
                    (transition ? std::string("S4U2Self, then S4U2Proxy: protocol transition")
                                : std::string("S4U2Proxy")) +
                    "), without a forwarded TGT";
        if (transition) f.evidence.push_back(ref(*self, "TGS-REQ PA-FOR-USER (S4U2Self)"));
        f.evidence.push_back(ref(*s4u, "TGS-REQ cname-in-addl-tkt (S4U2Proxy) -> TGS-REP"));
        // With B's keytab the ticket itself says so: the KDC wrote who asked for it into its PAC,
        // read from A's login to B or, when that is not readable, from the KDC's reply to A.
        const KdcTicketFacts* granted = read_ticket(s4u->extra().reply_ticket);
        if ((!out.keytab || out.keytab->transited_services.empty()) && granted &&
            !granted->s4u2proxy_target.empty()) {
            std::string by;
            for (const auto& t : granted->transited_services)
                by += (by.empty() ? "" : ", ") + t;
            f.summary += "; the keytab shows the ticket the KDC issued" + where(s4u->reply_at) +
                         " for " + or_nobody(granted->client) + " names " +
                         granted->s4u2proxy_target + " as its S4U2Proxy target" +
                         (by.empty() ? std::string() : ", requested by " + by) +
                         " (PAC S4U_DELEGATION_INFO)";
            f.evidence.push_back(EvidenceRef{s4u->flow, s4u->reply_at, s4u->ts,
                                             "TGS-REP ticket with S4U_DELEGATION_INFO (keytab)"});
        } else if (out.keytab && !out.keytab->transited_services.empty()) {
            std::string by;
            for (const auto& t : out.keytab->transited_services)
                by += (by.empty() ? "" : ", ") + t;
            f.summary += "; the keytab shows " + b + "'s ticket for " +
                         or_nobody(out.keytab->client) + " was issued through " + by +
                         " (PAC S4U_DELEGATION_INFO" +
                         (out.keytab->s4u2proxy_target.empty()
                              ? std::string()
                              : ", target " + out.keytab->s4u2proxy_target) +
                         ")";
        }
    } else if (unseen) {
        f.summary = "Healthy double hop: " + chain_path(c) + ", " + to_string(in.auth) + " to " +
                    a + ", then Kerberos to " + b +
                    ": the middle server must have used protocol transition (S4U2Self, then "
                    "S4U2Proxy)";
        f.missing =
            "The middle server's port-88 traffic (its S4U2Self and S4U2Proxy requests) "
            "is not in this input: capture port 88 on " +
            a + " to see them.";
    } else if (in.auth == AuthKind::Kerberos) {
        f.summary = "Healthy double hop: " + chain_path(c) + ", Kerberos on both hops";
    } else {
        // The first hop is hidden (TLS): the second hop shows a delegated Kerberos login.
        f.summary = a + " reached " + b + " with Kerberos" +
                    (identity(out).empty() ? std::string() : " as " + identity(out)) +
                    " on behalf of a client of " + a + " whose own login is not visible (" +
                    (in.auth_detail.empty() ? std::string("encrypted login") : in.auth_detail) +
                    ")";
        f.missing =
            "The first hop's authentication is encrypted; the client's port-88 traffic "
            "(TGS-REQ for MSSQLSvc/" +
            a + ", forwarded TGT) shows how it authenticated.";
    }
    f.remedy = "Nothing to do.";
    return Verdict{std::move(f), chain_key(c)};
}

// ---- HS060 ----------------------------------------------------------------------------------
constexpr RuleInfo kProxyInTheWay{
    "HS060", "proxy-in-the-way", Severity::Error,
    "a login through an explicit-mode listener of the proxy in which the client asked for the "
    "proxy instead of the server (details below)"};

std::optional<Verdict> proxy_in_the_way(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    const ProxyView& proxy = x.proxy;
    const auto is_proxy = [&proxy](const std::string& host) { return names_proxy(proxy, host); };
    const bool through_explicit =
        std::find(proxy.explicit_upstreams.begin(), proxy.explicit_upstreams.end(),
                  l.flow.server) != proxy.explicit_upstreams.end();
    if (!through_explicit || !integrated(l)) return std::nullopt;
    // What shows that the client asked for the proxy rather than the server: the SPN of its
    // ticket (or the NTLM target), its TGS-REQ for an MSSQLSvc SPN of a proxy name, or, with
    // NTLM, the server name it typed.
    const KerberosEvent* kdc = nullptr;
    for (const auto* k : x.look.kdc_before(l))
        if (k->request == "TGS-REQ" && is_proxy(spn_host(k->sname))) kdc = k;
    const bool spn_names_proxy = is_proxy(spn_host(l.spn));
    const bool ntlm_names_proxy = l.auth == AuthKind::Ntlm && is_proxy(named_host(l.server_name));
    // A Kerberos login that worked with the proxy's SPN (registered on the server's account)
    // is left alone.
    const bool kerberos_worked = l.auth == AuthKind::Kerberos && l.kerberos_error == 0 &&
                                 l.outcome == Outcome::Success &&
                                 (kdc == nullptr || kdc->error_code == 0);
    if ((!spn_names_proxy && kdc == nullptr && !ntlm_names_proxy) || kerberos_worked)
        return std::nullopt;
    const std::string server = x.look.host_name(l.flow.server.addr);
    const std::string spn = spn_names_proxy ? l.spn : kdc ? kdc->sname : std::string();
    Finding f = finding(kProxyInTheWay, l.ts);
    f.summary = "The proxy itself is the cause: " + x.look.host_name(l.flow.client.addr) +
                " reached " + server + " through the proxy's explicit listener but " +
                (spn.empty() ? "named the proxy ('" + l.server_name + "')"
                             : "asked for the proxy's SPN " + spn) +
                ", not " + server + "'s";
    if (kdc && kdc->error_code == krb_error::kSPrincipalUnknown)
        f.summary +=
            ": the KDC does not know that SPN (KDC_ERR_S_PRINCIPAL_UNKNOWN), so "
            "Kerberos fails or falls back to NTLM, which breaks delegation";
    else if (l.auth == AuthKind::Ntlm)
        f.summary += ", so it used NTLM, which cannot be delegated";
    else
        f.summary += ": a ticket for the proxy's name is no use to " + server +
                     ", so Kerberos fails and delegation with it";
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, "login through the explicit listener"));
    if (kdc)
        f.evidence.push_back(
            ref(*kdc, "TGS-REQ for " + kdc->sname +
                          (kdc->error_code == 0 ? std::string() : " -> " + kdc->error_name())));
    f.remedy =
        "Deploy the proxy transparently (iptables REDIRECT or TPROXY, 'hopscope "
        "proxy --transparent'), or alias " +
        server + "'s name to the proxy in DNS or hosts files, so clients keep asking for " +
        remedy::spn_to_register(server, l.flow.server.port) + "; see docs/proxy.md.";
    return Verdict{std::move(f), client_server_key(l.flow)};
}

// ---- HS061 ----------------------------------------------------------------------------------
constexpr RuleInfo kRoutingAroundProxy{
    "HS061", "routing-around-proxy", Severity::Warning,
    "only from proxy: a login answered with an ENVCHANGE routing token to a host:port that is not "
    "the proxy: the client reconnects there directly, around the proxy"};

std::optional<Verdict> routing_around_proxy(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    if (!x.proxy.active || !l.routing || l.routing->empty()) return std::nullopt;
    const std::string& to = *l.routing;
    if (names_proxy(x.proxy, to.substr(0, to.rfind(':')))) return std::nullopt;
    Finding f = finding(kRoutingAroundProxy, l.ts);
    f.summary = x.look.host_name(l.flow.server.addr) + " routed " +
                x.look.host_name(l.flow.client.addr) + " to " + to +
                " (ENVCHANGE routing): the client will reconnect to " + to +
                " directly, around the proxy, which will not see that login";
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, "login answer with ENVCHANGE routing to " + to));
    f.remedy = "Put " + to +
               " behind the proxy as well (another listener or upstream), or change the "
               "redirection so clients stay on the proxied endpoint: the availability "
               "group's read-only routing URLs, or the gateway's connection policy (Proxy "
               "instead of Redirect).";
    return Verdict{std::move(f), to_string(l.flow.server) + ">" + to};
}

// ---- HS062 ----------------------------------------------------------------------------------
constexpr RuleInfo kChannelBindingIntercepted{
    "HS062", "channel-binding-intercepted", Severity::Warning,
    "only from proxy --tls-terminate: a Windows login bound to its TLS channel (Extended "
    "Protection) read by terminating TLS: the server sees the proxy's channel, not the client's "
    "(an NTLM login with channel bindings, or with --keytab a Kerberos login whose authenticator "
    "carries them; error when the login failed), or a Kerberos login refused with 18452 as "
    "Extended Protection refuses one (its bindings are inside the encrypted authenticator)"};

std::optional<Verdict> channel_binding_intercepted(const LoginFacts& x) {
    const LoginEvent& l = x.login;
    const BindingCase bc = binding_case(x);
    if (!bc.applies()) return std::nullopt;
    const bool failed = l.outcome == Outcome::Failure;
    const bool kerberos_bound = bc.kerberos_bound;
    const std::string server = x.look.host_name(l.flow.server.addr);
    const std::string client = x.look.host_name(l.flow.client.addr);
    Finding f = finding(kChannelBindingIntercepted, l.ts);
    if (failed) f.severity = Severity::Error;
    f.hops.push_back(describe(x.look, l, "hop"));
    if (l.ntlm_channel_bindings || kerberos_bound) {
        f.summary = "The proxy terminating TLS is in the way of this login: " + client +
                    " bound its " +
                    (kerberos_bound ? std::string("Kerberos login to its TLS channel (channel "
                                                  "bindings in the authenticator's GSS checksum, "
                                                  "read with the keytab; Extended Protection)")
                                    : std::string("NTLM login to its TLS channel (channel "
                                                  "bindings, Extended Protection)")) +
                    ", but " + server + " sees the proxy's TLS session, whose binding differs" +
                    (failed ? std::string(": a server that enforces Extended Protection "
                                          "refuses it, as it did here")
                            : std::string(": it passed only because " + server +
                                          " does not enforce Extended Protection"));
        f.evidence.push_back(ref(l, kerberos_bound
                                        ? "AP-REQ whose authenticator carries channel bindings"
                                        : "NTLM AUTHENTICATE with channel bindings"));
    } else {
        f.summary = "The proxy terminating TLS is probably in the way of this login: " + server +
                    " refused " + client +
                    "'s Kerberos login with 18452, as a server enforcing Extended Protection "
                    "refuses a login bound to another TLS channel (the client's bindings are "
                    "inside its encrypted authenticator, and " +
                    server + " sees the proxy's TLS session)";
        f.evidence.push_back(ref(l, "ERROR 18452 to a Kerberos login read by terminating TLS"));
    }
    f.remedy =
        "Let this server's connections pass through without --tls-terminate (a second "
        "listener or proxy without it), and read its logins offline with a key log of "
        "the client or the server ('hopscope analyze --tls-keylog FILE'); interception "
        "cannot keep a channel binding valid.";
    if (!l.ntlm_channel_bindings && !kerberos_bound)
        f.remedy += " To confirm: " + server +
                    "'s error log shows 'SSPI handshake failed' (17806) with "
                    "SEC_E_BAD_BINDINGS for this login, and the login passes without the "
                    "proxy or with Extended Protection set to Off or Allowed.";
    // once per client, server and mechanism: an NTLM and a Kerberos login are two findings
    return Verdict{std::move(f), client_server_key(l.flow) + '|' + to_string(l.auth)};
}

// ---- HS090 ----------------------------------------------------------------------------------
constexpr RuleInfo kMissingEvidence{
    "HS090", "missing-evidence", Severity::Info,
    "the authentication is not visible (encrypted, no port-88 traffic): what to capture"};

/// On a chain: the second hop lost the identity, the first is hidden.
std::optional<Verdict> missing_evidence(const ChainFacts& c) {
    const LoginEvent& in = c.in;
    if (in.auth != AuthKind::Unknown || !second_hop_failed(c.out)) return std::nullopt;
    const std::string a = c.look.host_name(in.flow.server.addr);
    const std::string b = c.look.host_name(c.out.flow.server.addr);
    Finding f = chain_finding(kMissingEvidence, c);
    f.summary = "The identity was lost between " + a + " and " + b +
                ", but how the client authenticated to " + a + " is not visible (" +
                (in.auth_detail.empty() ? std::string("encrypted login") : in.auth_detail) + ")";
    f.missing = "Capture port 88 on the client's segment (the TGS-REQ for MSSQLSvc/" + a +
                " shows whether Kerberos was used and delegation requested), or the TLS key log of "
                "the client or of " +
                a + " for 'hopscope analyze --tls-keylog FILE'.";
    f.remedy = "See the anonymous-logon finding for " + b + ".";
    return Verdict{std::move(f), chain_key(c)};
}

/// On a login alone, when no port-88 traffic has been seen by two windows after it.
std::optional<Verdict> missing_evidence(const LateFacts& x) {
    const LoginEvent& l = x.login;
    if (l.auth != AuthKind::Unknown || x.saw_kdc || !integrated(l) || x.chained)
        return std::nullopt;
    Finding f = finding(kMissingEvidence, l.ts);
    f.summary = "The authentication of logins to " + x.look.host_name(l.flow.server.addr) +
                " is not visible (" +
                (l.auth_detail.empty() ? std::string("encrypted") : l.auth_detail) + ")";
    f.hops.push_back(describe(x.look, l, "hop"));
    f.evidence.push_back(ref(l, "login without visible authentication"));
    f.missing =
        "Capture port 88 as well (the client's TGS-REQ names the SPN and shows "
        "delegation), or decrypt the logins with a TLS key log of the client or the server "
        "('hopscope analyze --tls-keylog FILE').";
    f.remedy = "None until the evidence is there.";
    return Verdict{std::move(f), to_string(l.flow.server)};
}

// ---- the catalogue and the order of each occasion -------------------------------------------
constexpr std::array kCatalogue{
    kAnonymousLogon,
    kNullLogin,
    kRelayedLoginError,
    kNtlmFirstHop,
    kKerberosWithoutDelegation,
    kForwardedTgtRefused,
    kNoCredentialForLinkedServer,
    kNoDelegatedTgt,
    kForwardedTgtUnused,
    kSpnMissing,
    kSpnWrongAccount,
    kClockSkew,
    kConstrainedDelegationRefused,
    kSpnForm,
    kNtlmToMiddleServer,
    kNtlmV1,
    kKerberosRc4,
    kSqlAuthUnencrypted,
    kEncryptionDowngraded,
    kHealthyDoubleHop,
    kProxyInTheWay,
    kRoutingAroundProxy,
    kChannelBindingIntercepted,
    kMissingEvidence,
};

constexpr std::array<LoginRule, 12> kLoginRules{
    anonymous_logon, null_login,       spn_wrong_account,    clock_skew,
    ntlmv1,          kerberos_rc4,     sql_auth_unencrypted, encryption_downgraded,
    spn_form,        proxy_in_the_way, routing_around_proxy, channel_binding_intercepted,
};
constexpr std::array<LateRule, 2> kLateRules{ntlm_to_middle_server, missing_evidence};
// A KDC exchange draws at most one of these: an answer without error can only have a wrong SPN
// form, an error names one cause.
constexpr std::array<KdcRule, 6> kKdcRules{
    spn_form,   spn_missing,      constrained_delegation_refused, forwarded_tgt_refused,
    clock_skew, spn_wrong_account};
constexpr std::array<ServerErrorRule, 1> kServerErrorRules{relayed_login_error};
// A keytab's proof (HS014, HS015) names a chain before the verdicts that infer it from port 88.
constexpr std::array<ChainRule, 7> kChainRules{
    ntlm_first_hop,   healthy_double_hop,   no_credential_for_linked_server,
    no_delegated_tgt, forwarded_tgt_unused, kerberos_without_delegation,
    missing_evidence};

}  // namespace

std::span<const RuleInfo> rule_catalogue() {
    return kCatalogue;
}

const RuleInfo* find_rule(std::string_view id) {
    for (const auto& r : kCatalogue)
        if (r.id == id) return &r;
    return nullptr;
}

std::span<const LoginRule> login_rules() {
    return kLoginRules;
}
std::span<const LateRule> late_rules() {
    return kLateRules;
}
std::span<const KdcRule> kdc_rules() {
    return kKdcRules;
}
std::span<const ServerErrorRule> server_error_rules() {
    return kServerErrorRules;
}
std::span<const ChainRule> chain_rules() {
    return kChainRules;
}

bool spn_form_wrong(const std::string& spn) {
    // Views into `spn`: asked for every Kerberos login and KDC exchange.
    const std::string_view host = spn_host_view(spn);
    if (host.empty()) return false;
    const std::string_view instance = spn_instance(spn);  // "host:port", "[v6]:port", "[v6]"
    const bool no_port = instance.find(':') == std::string::npos || instance.back() == ']';
    return looks_like_ip(host) || host.find('.') == std::string::npos || no_port;
}

}  // namespace hopscope::analysis
