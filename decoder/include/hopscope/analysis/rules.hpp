// The rule catalogue: every finding hopscope reports (docs/events.md lists them), each with its
// stable id, slug, severity and one-line meaning, and the function that decides it from the facts
// the analyzer gathered. The analyzer keeps the windows, indexes and de-duplication and calls the
// rules of each occasion (a login, a KDC exchange, an error on an established session, a chain
// C -> A -> B, the late verdicts on a login) in turn; a rule only looks and judges.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hopscope/analysis/events.hpp"

namespace hopscope::analysis {

/// Kerberos error codes the rules name [RFC 4120 7.5.9].
namespace krb_error {
inline constexpr std::int32_t kSPrincipalUnknown = 7;  ///< KDC_ERR_S_PRINCIPAL_UNKNOWN
inline constexpr std::int32_t kBadOption = 13;         ///< KDC_ERR_BADOPTION
inline constexpr std::int32_t kBadIntegrity = 31;  ///< KRB_AP_ERR_BAD_INTEGRITY (MIT's "wrong key")
inline constexpr std::int32_t kSkew = 37;          ///< KRB_AP_ERR_SKEW
inline constexpr std::int32_t kModified = 41;      ///< KRB_AP_ERR_MODIFIED (Windows' "wrong key")
inline constexpr std::int32_t kBadKeyVersion = 44;  ///< KRB_AP_ERR_BADKEYVER
}  // namespace krb_error

/// SQL Server error numbers the rules name.
namespace sql_error {
inline constexpr std::int32_t kLoginFailed = 18456;  ///< "Login failed for user '...'"
/// "Login failed. The login is from an untrusted domain ..." / "... for user '(null)'".
inline constexpr std::int32_t kUntrustedLogin = 18452;
inline constexpr std::int32_t kCannotInitDataSource = 7303;  ///< linked server: provider init
inline constexpr std::int32_t kProviderError = 7399;         ///< linked server: provider error
inline constexpr std::int32_t kNoLoginMapping = 7416;        ///< linked server: access denied
}  // namespace sql_error

/// The service class of SQL Server's SPNs: "MSSQLSvc/host:port".
inline constexpr std::string_view kMssqlSvcPrefix = "MSSQLSvc/";

/// One entry of the catalogue.
struct RuleInfo {
    std::string_view id;    ///< stable id, e.g. "HS010"
    std::string_view name;  ///< stable slug, e.g. "ntlm-first-hop"
    Severity severity = Severity::Warning;
    std::string_view meaning;  ///< one line: when it fires (the "when" column of docs/events.md)
};

/// Every rule, by id.
std::span<const RuleInfo> rule_catalogue();
/// The catalogue entry of `id`, or nullptr.
const RuleInfo* find_rule(std::string_view id);

/// Client host, server, auth, outcome and anonymity of a login: a row of the analyzer's hop
/// summary, and (as text) what makes a verdict on a login the same verdict again.
struct HopKey {
    IpAddress client;
    Endpoint server;
    AuthKind auth = AuthKind::Unknown;
    Outcome outcome = Outcome::Incomplete;
    bool anonymous = false;
    bool operator==(const HopKey&) const = default;
};

/// A verdict and what makes it the same verdict again (the analyzer reports it once while its
/// evidence keeps recurring).
struct Verdict {
    Finding finding;
    std::string key;
};

/// The inline proxy in front of some servers, as its front-end describes it (analyze and live
/// leave it empty).
struct ProxyView {
    /// Upstreams reached through an explicit-mode listener (clients connect to the proxy's own
    /// address or name): the flow's server endpoint is the upstream.
    std::vector<Endpoint> explicit_upstreams;
    /// Names and addresses by which clients may reach the proxy host (listen addresses, host
    /// name, FQDN), lower-case.
    std::vector<std::string> proxy_names;
    bool active = false;  ///< the events come from the inline proxy
    /// The proxy terminates TLS (--tls-terminate): a login it read inside TLS went through two
    /// TLS sessions, the client's and the proxy's own to the server.
    bool terminates_tls = false;
};

/// What a rule may ask of the analyzer's indexes. Looked up only by the rules that need it.
class Lookups {
  public:
    virtual ~Lookups() = default;
    /// The best name learned for an address (its text form when none).
    [[nodiscard]] virtual std::string host_name(const IpAddress& a) const = 0;
    /// The SPN of the login: its ticket's, or the client's TGS-REQ for this server just before.
    [[nodiscard]] virtual std::string spn_for(const LoginEvent& l) const = 0;
    /// The KDC exchanges of the login's client within the Kerberos window before it started,
    /// oldest first.
    [[nodiscard]] virtual std::vector<const KerberosEvent*> kdc_before(
        const LoginEvent& l) const = 0;
    /// Whether the client obtained a forwarded TGT for this login.
    [[nodiscard]] virtual Tristate delegation_requested(const LoginEvent& l) const = 0;
    /// The latest login on a connection still open, or nullptr.
    [[nodiscard]] virtual const LoginEvent* login_on(const FlowKey& flow) const = 0;
    /// The latest login made by `client` that did not succeed, within the chaining window
    /// before `at`, or nullptr.
    [[nodiscard]] virtual const LoginEvent* failed_login_from(const IpAddress& client,
                                                              Timestamp at) const = 0;
    /// Whether the verdict of `rule` with `key` was reported and its evidence last seen within
    /// the de-duplication window before `at`: it would stay quiet. A rule that fires on every
    /// login of a kind asks first and then returns the bare verdict (rule, time and key: enough
    /// to keep the window open) instead of describing it again.
    [[nodiscard]] virtual bool reported(std::string_view rule, const std::string& key,
                                        Timestamp at) const = 0;
};

/// The facts of one login, as it is reported.
struct LoginFacts {
    const LoginEvent& login;
    const Lookups& look;
    const ProxyView& proxy;
    /// The login is a second hop (linked to an inbound login of its client), or its client was
    /// seen acting as a middle server.
    bool from_middle_server = false;
};

/// The facts of one login, two chaining windows after it.
struct LateFacts {
    const LoginEvent& login;
    const Lookups& look;
    bool chained = false;           ///< linked into a chain, either side
    bool server_is_middle = false;  ///< its server was seen logging in to linked servers
    bool saw_kdc = false;           ///< any port-88 traffic was seen
};

/// A KDC exchange.
struct KdcFacts {
    const KerberosEvent& krb;
    const Lookups& look;
};

/// An ERROR token on an established session.
struct ServerErrorFacts {
    const ServerErrorEvent& err;
    const Lookups& look;
};

/// A chain C -> A -> B.
struct ChainFacts {
    const LoginEvent& in;   ///< C's login to A
    const LoginEvent& out;  ///< A's login to B
    const Lookups& look;
};

using LoginRule = std::optional<Verdict> (*)(const LoginFacts&);
using LateRule = std::optional<Verdict> (*)(const LateFacts&);
using KdcRule = std::optional<Verdict> (*)(const KdcFacts&);
using ServerErrorRule = std::optional<Verdict> (*)(const ServerErrorFacts&);
using ChainRule = std::optional<Verdict> (*)(const ChainFacts&);

/// The rules of each occasion, in the order their verdicts are reported.
std::span<const LoginRule> login_rules();
std::span<const LateRule> late_rules();
std::span<const KdcRule> kdc_rules();
std::span<const ServerErrorRule> server_error_rules();
/// At most one of these fires on a chain.
std::span<const ChainRule> chain_rules();

/// Whether an SPN will not match a registered MSSQLSvc/<fqdn>:<port>: an MSSQLSvc SPN with an IP
/// address, a short name or no port. False for SPNs of other services.
bool spn_form_wrong(const std::string& spn);

}  // namespace hopscope::analysis
