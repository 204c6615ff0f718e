// Small helpers shared by the analyzer and the rules (decoder/src/analysis only): text, SPNs,
// how a login is named in a finding, and where its evidence is.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <utility>

#include "hopscope/analysis/rules.hpp"

namespace hopscope::analysis::detail {

/// ASCII lower case: what std::tolower does in the "C" locale hopscope runs in, without a call
/// per character (the analyzer lower-cases a few names of every login).
constexpr char lower_ascii(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string lower(std::string s) {
    for (char& c : s)
        c = lower_ascii(c);
    return s;
}
inline std::string lower(std::string_view s) {
    return lower(std::string(s));
}

/// Where a ServerName's host ends: at its instance ('\\') or port (','). (string_view's
/// find_first_of calls memchr on the set for each character.)
inline std::size_t host_end(std::string_view s) {
    const auto at = std::find_if(s.begin(), s.end(), [](char c) { return c == '\\' || c == ','; });
    return static_cast<std::size_t>(at - s.begin());
}

/// Whether `hay` contains `needle`, ASCII case ignored. Compares in place: the rules ask it of
/// every failed login's error text and every Kerberos login's ticket enctype, and lower-casing
/// copies of both was two allocations a question.
inline bool icontains(std::string_view hay, std::string_view needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                       [](char a, char b) { return lower_ascii(a) == lower_ascii(b); }) !=
               hay.end() ||
           needle.empty();
}

inline bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), s.begin(),
                      [](char a, char b) { return lower_ascii(a) == lower_ascii(b); });
}

/// A Windows-integrated login: NTLM, Kerberos, or an encrypted login that named no SQL user.
inline bool integrated(const LoginEvent& l) {
    return l.auth == AuthKind::Ntlm || l.auth == AuthKind::Kerberos ||
           (l.auth == AuthKind::Unknown && l.user.empty());
}

inline bool looks_like_ip(std::string_view host) {
    if (host.empty()) return false;
    if (host.find(':') != std::string_view::npos) return true;  // IPv6 literal
    return std::all_of(host.begin(), host.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
    });
}

/// A principal name without its realm: "MSSQLSvc/host:1433@REALM" -> "MSSQLSvc/host:1433".
inline std::string_view without_realm(std::string_view name) {
    return name.substr(0, name.find('@'));
}

/// "MSSQLSvc/host:port@REALM" -> host, a view into `spn` (empty when not an MSSQLSvc SPN).
inline std::string_view spn_host_view(std::string_view spn) {
    if (!istarts_with(spn, kMssqlSvcPrefix)) return {};
    const std::string_view rest = without_realm(spn.substr(kMssqlSvcPrefix.size()));
    if (!rest.empty() && rest.front() == '[') return rest.substr(1, rest.find(']') - 1);
    return rest.substr(0, rest.find(':'));
}

/// "MSSQLSvc/host:port@REALM" -> "host:port" (brackets of an IPv6 literal kept), a view into
/// `spn`; empty when not an MSSQLSvc SPN.
inline std::string_view spn_instance(std::string_view spn) {
    if (!istarts_with(spn, kMssqlSvcPrefix)) return {};
    return without_realm(spn.substr(kMssqlSvcPrefix.size()));
}

/// "MSSQLSvc/host:port@REALM" -> host (empty when not an MSSQLSvc SPN).
inline std::string spn_host(const std::string& spn) {
    return std::string(spn_host_view(spn));
}

/// How a login names its user in a finding.
inline std::string identity(const LoginEvent& l) {
    if (l.anonymous) return "NT AUTHORITY\\ANONYMOUS LOGON";
    if (l.user.empty()) return "";
    if (!l.domain.empty() && l.auth == AuthKind::Ntlm) return l.domain + "\\" + l.user;
    if (!l.domain.empty() && l.auth == AuthKind::Kerberos) return l.user + "@" + l.domain;
    return l.user;
}

/// The HopKey of a login.
inline HopKey hop_of(const LoginEvent& l) {
    return HopKey{l.flow.client.addr, l.flow.server, l.auth, l.outcome, l.anonymous};
}
/// A HopKey as text: the hop summary's order, and a verdict's key.
inline std::string hop_key(const HopKey& k) {
    std::string key;
    key.reserve(96);
    append_to(key, k.client);
    key += '>';
    append_to(key, k.server);
    key.append("/").append(to_string(k.auth)).append("/").append(to_string(k.outcome));
    if (k.anonymous) key += "/anon";
    return key;
}
inline std::string hop_key(const LoginEvent& l) {
    return hop_key(hop_of(l));
}

/// The time a login started (when it was reported, if its start is not known).
inline Timestamp start_of(const LoginEvent& l) {
    return l.started.micros ? l.started : l.ts;
}

/// The host a client typed into LOGIN7 ServerName ("tcp:host\\instance,port"), lower-case.
inline std::string named_host(const std::string& server_name) {
    std::string s = lower(server_name);
    if (s.rfind("tcp:", 0) == 0) s.erase(0, 4);
    return s.substr(0, host_end(s));
}

/// Whether `host` is one of the names by which clients reach the proxy.
inline bool names_proxy(const ProxyView& proxy, std::string_view host) {
    return !host.empty() && !proxy.proxy_names.empty() &&
           std::find(proxy.proxy_names.begin(), proxy.proxy_names.end(), lower(host)) !=
               proxy.proxy_names.end();
}

inline bool known(const Position& p) {
    return p.frame != 0 || p.stream_offset != 0;
}

/// A login is shown by the server's message that decided it (the first message of the attempt
/// when that is all there is).
inline EvidenceRef ref(const LoginEvent& l, std::string what) {
    return EvidenceRef{l.flow, known(l.last_at) || !known(l.first_at) ? l.last_at : l.first_at,
                       l.ts, std::move(what)};
}

/// A KDC exchange is shown by its answer, or by its request when no answer was seen.
inline EvidenceRef ref(const KerberosEvent& k, std::string what) {
    return EvidenceRef{k.flow, k.reply.empty() ? k.request_at : k.reply_at, k.ts, std::move(what)};
}

}  // namespace hopscope::analysis::detail
