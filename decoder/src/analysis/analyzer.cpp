#include "hopscope/analysis/analyzer.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

namespace hopscope::analysis {
namespace {

std::string lower(std::string s) {
    for (char& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool icontains(const std::string& hay, const std::string& needle) {
    return lower(hay).find(lower(needle)) != std::string::npos;
}

bool integrated(const LoginEvent& l) {
    return l.auth == AuthKind::Ntlm || l.auth == AuthKind::Kerberos ||
           (l.auth == AuthKind::Unknown && l.user.empty());
}

bool looks_like_ip(const std::string& host) {
    if (host.empty()) return false;
    if (host.find(':') != std::string::npos) return true;  // IPv6 literal
    return std::all_of(host.begin(), host.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
    });
}

/// "MSSQLSvc/host:port@REALM" -> host (empty when not an MSSQLSvc SPN).
std::string spn_host(const std::string& spn) {
    if (lower(spn).rfind("mssqlsvc/", 0) != 0) return {};
    std::string rest = spn.substr(9);
    rest = rest.substr(0, rest.find('@'));
    if (!rest.empty() && rest.front() == '[') return rest.substr(1, rest.find(']') - 1);
    return rest.substr(0, rest.find(':'));
}

bool login_failed_text(const ServerError& e) {
    return e.number == 18456 || e.number == 18452 || icontains(e.message, "login failed");
}

bool anonymous_text(const std::string& s) {
    return icontains(s, "ANONYMOUS LOGON");
}
bool null_text(const std::string& s) {
    return icontains(s, "'(null)'");
}

/// The frames of the evidence as a Wireshark filter; empty when the evidence has no frame numbers
/// (the proxy's: its stream offsets point at the bytes instead).
std::string frames_filter(const std::vector<EvidenceRef>& ev) {
    std::set<std::uint64_t> frames;
    for (const auto& e : ev)
        if (e.at.frame) frames.insert(e.at.frame);
    if (frames.empty()) return {};
    std::string out = "frame.number in {";
    bool first = true;
    for (auto n : frames) {
        if (!first) out += ", ";
        out += std::to_string(n);
        first = false;
    }
    return out + "}";
}

bool known(const Position& p) {
    return p.frame != 0 || p.stream_offset != 0;
}

/// A login is shown by the server's message that decided it (the first message of the attempt
/// when that is all there is).
EvidenceRef ref(const LoginEvent& l, std::string what) {
    return EvidenceRef{l.flow, known(l.last_at) || !known(l.first_at) ? l.last_at : l.first_at,
                       l.ts, std::move(what)};
}

/// A KDC exchange is shown by its answer, or by its request when no answer was seen.
EvidenceRef ref(const KerberosEvent& k, std::string what) {
    return EvidenceRef{k.flow, k.reply.empty() ? k.request_at : k.reply_at, k.ts, std::move(what)};
}

std::string identity(const LoginEvent& l) {
    if (l.anonymous) return "NT AUTHORITY\\ANONYMOUS LOGON";
    if (l.user.empty()) return "";
    if (!l.domain.empty() && l.auth == AuthKind::Ntlm) return l.domain + "\\" + l.user;
    if (!l.domain.empty() && l.auth == AuthKind::Kerberos) return l.user + "@" + l.domain;
    return l.user;
}

std::string key_of(const LoginEvent& l) {
    return to_string(l.flow.client.addr) + ">" + to_string(l.flow.server) + "/" +
           to_string(l.auth) + "/" + to_string(l.outcome) + (l.anonymous ? "/anon" : "");
}

constexpr const char* kAccountPlaceholder = "<SQL Server service account>";

/// The host part of an SPN to register: the name itself when fully qualified, otherwise a
/// placeholder that says so (an SPN on a short name or an address does not match what clients
/// that resolve the FQDN ask for).
std::string spn_host_for(const std::string& name) {
    if (name.find('.') != std::string::npos && !looks_like_ip(name)) return name;
    return "<FQDN of " + name + ">";
}

/// Whether `host` is one of the names by which clients reach the proxy.
bool names_proxy(const Analyzer::ProxyView& proxy, const std::string& host) {
    return !host.empty() && std::find(proxy.proxy_names.begin(), proxy.proxy_names.end(),
                                      lower(host)) != proxy.proxy_names.end();
}

/// `t` + `d` microseconds, saturated: timestamps come from captures and can be anything.
std::int64_t later(std::int64_t t, std::int64_t d) {
    std::int64_t r = 0;
    if (__builtin_add_overflow(t, d, &r))
        return d > 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    return r;
}

/// The host a client typed into LOGIN7 ServerName ("tcp:host\\instance,port"), lower-case.
std::string named_host(const std::string& server_name) {
    std::string s = lower(server_name);
    if (s.rfind("tcp:", 0) == 0) s.erase(0, 4);
    return s.substr(0, s.find_first_of("\\,"));
}

}  // namespace

Analyzer::Analyzer(FindingSink& sink) : Analyzer(sink, Options{}) {}
Analyzer::Analyzer(FindingSink& sink, Options opts) : sink_(sink), opts_(opts) {}

void Analyzer::emit(Finding f, const std::string& dedup_key) {
    // A verdict already reported stays quiet while its evidence keeps recurring within the
    // de-duplication window. Measured on the evidence's own time (not the clock), so that the
    // answer does not depend on when a late verdict runs.
    const std::int64_t at = f.ts.micros;
    auto [mark, fresh] = dedup_.try_emplace(f.rule + "|" + dedup_key);
    if (!fresh) {
        const bool repeat = at <= later(mark->second.last, opts_.dedup_window_us);
        if (at > mark->second.last) {
            dedup_by_time_.erase({mark->second.last, mark->second.serial});
            mark->second.last = at;
            dedup_by_time_.emplace(std::pair{at, mark->second.serial}, &mark->first);
        }
        if (repeat) return;
    } else {
        mark->second = DedupMark{at, dedup_serial_++};
        dedup_by_time_.emplace(std::pair{at, mark->second.serial}, &mark->first);
        wake_us_ = std::min(wake_us_, later(at, opts_.dedup_window_us + horizon_us() + 1));
        if (dedup_.size() > opts_.max_dedup_keys)
            drop_dedup(std::numeric_limits<std::int64_t>::min());
    }
    if (f.display_filter.empty()) f.display_filter = frames_filter(f.evidence);
    ++emitted_;
    sink_.on_finding(f);
}

void Analyzer::learn_name(const IpAddress& a, const std::string& raw) {
    std::string name = raw.substr(0, raw.find_first_of("\\,"));  // drop instance / port
    if (lower(name).rfind("tcp:", 0) == 0) name.erase(0, 4);
    if (name.empty() || looks_like_ip(name)) return;
    // The proxy's names, typed by clients of an explicit listener, are not the upstream's.
    if (names_proxy(opts_.proxy, name)) return;
    // Bounded: new addresses once max_hosts have names, and new names of an address once it
    // has a handful, are not learned (names come from LOGIN7: whatever the clients typed).
    constexpr std::size_t kMaxNamesPerHost = 16;
    auto host = names_.find(a);
    if (host == names_.end()) {
        if (names_.size() >= opts_.max_hosts) return;
        host = names_.try_emplace(a).first;
    }
    auto entry = host->second.find(lower(name));
    if (entry == host->second.end()) {
        if (host->second.size() >= kMaxNamesPerHost) return;
        entry = host->second.try_emplace(lower(name), 0).first;
    }
    // Fully qualified names are the ones Kerberos needs: rank them first.
    entry->second += name.find('.') != std::string::npos ? 1000 : 1;
}

void Analyzer::mark_middle(const IpAddress& a) {
    if (middle_servers_.size() < opts_.max_hosts) middle_servers_.insert(a);
}

std::string Analyzer::host_name(const IpAddress& a) const {
    auto it = names_.find(a);
    if (it == names_.end() || it->second.empty()) return to_string(a);
    return std::max_element(it->second.begin(), it->second.end(),
                            [](const auto& x, const auto& y) { return x.second < y.second; })
        ->first;
}

std::string Analyzer::describe(const LoginEvent& l, const char* role) const {
    std::string s = std::string(role) + " " + host_name(l.flow.client.addr) + " -> " +
                    host_name(l.flow.server.addr) + ":" + std::to_string(l.flow.server.port) +
                    " (" + to_string(l.auth);
    std::string id = identity(l);
    if (!id.empty()) s += ", " + id;
    s += ", " + std::string(to_string(l.outcome));
    if (l.error) s += " " + std::to_string(l.error->number);
    return s + ")";
}

Analyzer::Recent* Analyzer::recent(std::uint64_t seq) {
    if (seq < base_seq_ || seq - base_seq_ >= logins_.size()) return nullptr;
    return &logins_[seq - base_seq_];
}

const Analyzer::Recent* Analyzer::recent(std::uint64_t seq) const {
    if (seq < base_seq_ || seq - base_seq_ >= logins_.size()) return nullptr;
    return &logins_[seq - base_seq_];
}

std::vector<const KerberosEvent*> Analyzer::kdc_for(const IpAddress& client,
                                                    Timestamp before) const {
    std::vector<const KerberosEvent*> out;
    auto it = kdc_.find(client);
    if (it == kdc_.end()) return out;
    for (const auto& k : it->second) {
        if (k.ts.micros > before.micros + 2'000'000) continue;  // small slack for clock order
        if (before.micros - k.ts.micros > opts_.kerberos_window_us) continue;
        out.push_back(&k);
    }
    return out;
}

std::string Analyzer::spn_for(const LoginEvent& l) const {
    if (!l.spn.empty()) return l.spn;
    // The client's TGS-REQ for an MSSQLSvc SPN of this server's name, just before the login.
    std::string host = host_name(l.flow.server.addr);
    const KerberosEvent* best = nullptr;
    for (const auto* k : kdc_for(l.flow.client.addr, l.started.micros ? l.started : l.ts)) {
        if (k->request != "TGS-REQ" || spn_host(k->sname).empty()) continue;
        if (lower(spn_host(k->sname)) == lower(host) || best == nullptr) best = k;
    }
    return best ? best->sname : std::string{};
}

Tristate Analyzer::delegation_requested(const LoginEvent& l) const {
    if (l.delegation != Tristate::Unknown) return l.delegation;
    if (!saw_kdc_) return Tristate::Unknown;
    const Timestamp at = l.started.micros ? l.started : l.ts;
    auto ks = kdc_for(l.flow.client.addr, at);
    if (ks.empty()) return Tristate::Unknown;
    // A client fetches a forwarded TGT for each context it delegates on, between its PRELOGIN
    // and its LOGIN7: a request made before this client's previous login was answered belonged
    // to that login, not to this one.
    Timestamp previous{};
    if (auto it = by_client_.find(l.flow.client.addr); it != by_client_.end()) {
        for (auto seq = it->second.rbegin(); seq != it->second.rend(); ++seq) {
            const Recent* r = recent(*seq);
            if (r == nullptr) break;  // older ones are gone too
            if (r->login.ts < at) {
                previous = r->login.ts;  // newest first: the latest login done before this one
                break;
            }
        }
    }
    for (const auto* k : ks)
        if (k->request == "TGS-REQ" && k->has_option("forwarded") && k->error_code == 0 &&
            k->ts > previous)
            return Tristate::Yes;
    return Tristate::No;
}

const Analyzer::Recent* Analyzer::find_inbound(const LoginEvent& out, bool allow_unseen) const {
    const Recent* best = nullptr;
    const Timestamp start = out.started.micros ? out.started : out.ts;
    auto idx = by_server_.find(out.flow.client.addr);
    if (idx == by_server_.end()) return nullptr;
    for (auto seq = idx->second.rbegin(); seq != idx->second.rend(); ++seq) {
        const Recent* rp = recent(*seq);
        if (rp == nullptr) break;
        const Recent& r = *rp;
        const LoginEvent& in = r.login;
        // Newest first, in the order logins were reported: once past the chaining window only
        // logins whose outcome was hidden (reported at their close, so later) can still match.
        if (!allow_unseen && start.micros - in.ts.micros > opts_.chain_window_us) break;
        if (in.flow.client.addr == out.flow.server.addr) continue;
        if (in.outcome == Outcome::Success) {
            if (in.ts > start) continue;
            if (r.closed.micros != 0 ? start > r.closed
                                     : start.micros - in.ts.micros > opts_.chain_window_us)
                continue;
        } else if (allow_unseen && in.outcome == Outcome::Incomplete &&
                   in.auth == AuthKind::Unknown) {
            // A login whose outcome could not be seen (TLS for the whole connection): it is
            // reported when its connection ends, after the outbound logins it caused. It counts
            // when its connection was open at the time.
            if (in.started > start) continue;
            if (r.closed.micros != 0 && start > r.closed) continue;
            if (r.closed.micros == 0 && in.ts < start) continue;
        } else {
            continue;
        }
        if (best == nullptr || in.started > best->login.started) best = &r;
    }
    return best;
}

void Analyzer::enrich(LoginEvent& l) const {
    if (l.auth != AuthKind::Kerberos && l.auth != AuthKind::Unknown) return;
    if (l.auth == AuthKind::Unknown && !l.user.empty()) return;  // an encrypted SQL login
    const Timestamp at = l.started.micros ? l.started : l.ts;
    if (l.spn.empty()) l.spn = spn_for(l);
    if (l.auth != AuthKind::Kerberos) return;
    if (l.delegation == Tristate::Unknown) l.delegation = delegation_requested(l);
    if (l.user.empty()) {
        std::set<std::string> principals;
        for (const auto* k : kdc_for(l.flow.client.addr, at))
            if (k->request == "AS-REQ" && !k->client.empty()) principals.insert(k->client);
        if (principals.size() == 1) {
            const std::string& p = *principals.begin();
            l.user = p.substr(0, p.find('@'));
            if (l.domain.empty() && p.find('@') != std::string::npos)
                l.domain = p.substr(p.find('@') + 1);
        }
    }
}

void Analyzer::add_login(const LoginEvent& l) {
    tick(l.ts);
    forget();  // the cap on logins: before `in` below is looked up
    if (!l.server_name.empty()) learn_name(l.flow.server.addr, l.server_name);
    for (const auto& alias : l.server_aliases)
        learn_name(l.flow.server.addr, alias);
    if (std::string h = spn_host(l.spn); !h.empty()) learn_name(l.flow.server.addr, h);

    auto row = hops_.find(key_of(l));
    if (row == hops_.end() && hops_.size() < opts_.max_summary_rows)
        row = hops_.try_emplace(key_of(l)).first;
    if (row != hops_.end()) {
        HopSummary& h = row->second;
        h.client = l.flow.client.addr;
        h.server = l.flow.server;
        h.auth = l.auth;
        h.outcome = l.outcome;
        h.anonymous = l.anonymous;
        h.user = identity(l);
        ++h.count;
    } else {
        ++summary_overflow_;
    }

    const Recent* in = find_inbound(l, false);
    logins_.push_back(Recent{l, {}, false});
    Recent& r = logins_.back();
    const std::uint64_t seq = base_seq_ + logins_.size() - 1;
    by_server_[l.flow.server.addr].push_back(seq);
    by_client_[l.flow.client.addr].push_back(seq);
    by_flow_[l.flow].push_back(seq);
    if (++adds_since_sweep_ >= 4096) sweep();
    wake_us_ = std::min(wake_us_, later(l.ts.micros, opts_.chain_window_us));  // its late link
    if (in) {
        mark_middle(l.flow.client.addr);
        const_cast<Recent*>(in)->chained = true;
        r.chained = true;
    }
    per_login_rules(r);
    if (in) chain_rules(*in, r);
}

void Analyzer::add_kerberos(const KerberosEvent& k) {
    tick(k.ts);
    forget();  // the cap on KDC exchanges
    saw_kdc_ = true;
    auto& mine = kdc_[k.flow.client.addr];
    mine.push_back(k);
    kdc_order_.emplace_back(k.flow.client.addr, k.ts.micros);
    wake_us_ = std::min(wake_us_, later(k.ts.micros, horizon_us() + 1));
    kdc_rules(mine.back());
    if (++adds_since_sweep_ >= 4096) sweep();
}

void Analyzer::add_server_error(const ServerErrorEvent& e) {
    tick(e.ts);
    const ServerError& err = e.error;
    const bool login_error =
        login_failed_text(err) || err.number == 7399 || err.number == 7303 || err.number == 7416;
    if (!login_error) return;

    Finding f;
    f.ts = e.ts;
    f.rule = "HS003";
    f.name = "linked-server-login-error-relayed";
    f.severity = Severity::Error;
    const std::string middle = host_name(e.flow.server.addr);
    f.summary = "Middle server " + middle + " passed on a login error raised by a linked server (" +
                std::to_string(err.number) + ": " + err.message + ")";
    if (!e.statement.empty()) f.summary += " while running: " + e.statement;
    f.evidence.push_back(EvidenceRef{
        e.flow, e.at, e.ts, "ERROR " + std::to_string(err.number) + " on an established session"});
    // The login on the same connection tells how C authenticated to A.
    const LoginEvent* first = nullptr;
    if (auto it = by_flow_.find(e.flow); it != by_flow_.end())
        for (auto seq : it->second)
            if (const Recent* r = recent(seq)) first = &r->login;
    if (first) {
        f.hops.push_back(describe(*first, "C->A"));
        f.evidence.push_back(ref(*first, "C's login to A"));
    }
    // The failed outbound login from A, if this capture has A's segment too.
    const LoginEvent* second = nullptr;
    if (auto it = by_client_.find(e.flow.server.addr); it != by_client_.end()) {
        for (auto seq = it->second.rbegin(); seq != it->second.rend() && !second; ++seq) {
            const Recent* r = recent(*seq);
            if (r == nullptr || e.ts.micros - r->login.ts.micros > opts_.chain_window_us) break;
            if (r->login.outcome != Outcome::Success && r->login.ts <= e.ts) second = &r->login;
        }
    }
    if (second) {
        f.hops.push_back(describe(*second, "A->B"));
        f.evidence.push_back(ref(*second, "A's failed login to the linked server"));
    }
    const bool anon = anonymous_text(err.message) || (second && second->anonymous);
    if (anon) {
        f.summary += "; the linked server saw NT AUTHORITY\\ANONYMOUS LOGON: " + middle +
                     " could not pass the caller's Windows identity on";
    } else if (null_text(err.message) || err.number == 18452) {
        f.summary += "; the linked server got no usable Windows identity ('(null)', 18452)";
    }
    if (first && first->auth == AuthKind::Ntlm) {
        f.remedy = "The client reached " + middle +
                   " with NTLM, which cannot be delegated. Make the first hop use Kerberos: "
                   "register the SPN (setspn -S MSSQLSvc/" +
                   spn_host_for(middle) + ":" + std::to_string(e.flow.server.port) + " " +
                   (first->domain.empty() ? std::string("DOMAIN") : first->domain) + "\\" +
                   kAccountPlaceholder +
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
    emit(std::move(f),
         to_string(e.flow.client) + ">" + to_string(e.flow.server) + "#" + e.statement);
}

void Analyzer::connection_closed(const FlowKey& flow, Timestamp ts) {
    tick(ts);
    auto it = by_flow_.find(flow);
    if (it == by_flow_.end()) return;
    for (auto seq : it->second)
        if (Recent* r = recent(seq); r && r->closed.micros == 0) r->closed = ts;
    by_flow_.erase(it);  // a reused 4-tuple starts a new connection
}

void Analyzer::per_login_rules(const Recent& r) {
    const LoginEvent& l = r.login;
    const std::string key = key_of(l);
    const std::string server = host_name(l.flow.server.addr);

    const bool anon = l.anonymous || (l.error && anonymous_text(l.error->message));
    if (anon) {
        Finding f;
        f.ts = l.ts;
        f.rule = "HS001";
        f.name = "anonymous-logon";
        f.severity = Severity::Error;
        f.summary = host_name(l.flow.client.addr) + " logged in to " + server +
                    " as NT AUTHORITY\\ANONYMOUS LOGON" +
                    (l.error ? " and was refused (" + std::to_string(l.error->number) + ")" : "");
        f.hops.push_back(describe(l, "hop"));
        f.evidence.push_back(ref(l, l.anonymous ? "NTLM AUTHENTICATE with empty user and responses"
                                                : "ERROR naming ANONYMOUS LOGON"));
        if (r.chained || middle_servers_.count(l.flow.client.addr)) {
            f.remedy =
                "An anonymous Windows login is what a middle server sends when it holds the "
                "caller's identity only as an NTLM or non-delegable token. Fix the hop into " +
                host_name(l.flow.client.addr) +
                ": Kerberos with delegation (SPNs registered, service account trusted for "
                "delegation, user not marked sensitive).";
        } else {
            f.remedy = "The client sent no identity (empty user and responses). If " +
                       host_name(l.flow.client.addr) +
                       " is itself a SQL Server running a linked-server query, the hop into it "
                       "lost the caller's identity: capture that hop too. Otherwise check the "
                       "client's credentials.";
        }
        emit(std::move(f), key);
    }
    // 31 BAD_INTEGRITY (MIT) / 41 MODIFIED (Windows): the ticket was encrypted with another
    // key; 44 BADKEYVER: the service has another key version; 37 SKEW.
    const bool specific_krb = l.kerberos_error == 31 || l.kerberos_error == 37 ||
                              l.kerberos_error == 41 || l.kerberos_error == 44;
    if (l.error && !specific_krb && (l.error->number == 18452 || null_text(l.error->message))) {
        Finding f;
        f.ts = l.ts;
        f.rule = "HS002";
        f.name = "null-login-18452";
        f.severity = Severity::Error;
        f.summary = server + " refused a Windows login with no usable identity ('(null)', " +
                    std::to_string(l.error->number) + "): " + l.error->message;
        f.hops.push_back(describe(l, "hop"));
        f.evidence.push_back(ref(l, "ERROR 18452 / '(null)'"));
        f.remedy =
            "SQL Server 2000-style symptom of a lost identity on a double hop, or a SQL "
            "login against a Windows-only server. For a linked server: use Kerberos with "
            "delegation on the first hop.";
        emit(std::move(f), key);
    }
    if (specific_krb) {
        Finding f;
        f.ts = l.ts;
        const bool skew = l.kerberos_error == 37;
        f.rule = skew ? "HS022" : "HS021";
        f.name = skew ? "clock-skew" : "spn-wrong-account";
        f.severity = Severity::Error;
        std::string spn = spn_for(l);
        f.summary = skew
                        ? server +
                              " rejected the Kerberos ticket: KRB_AP_ERR_SKEW (clocks more "
                              "than 5 minutes apart)"
                        : server + " could not decrypt the Kerberos ticket for " +
                              (spn.empty() ? std::string("its SPN") : spn) + " (" +
                              (l.kerberos_error == 44   ? "KRB_AP_ERR_BADKEYVER"
                               : l.kerberos_error == 31 ? "KRB_AP_ERR_BAD_INTEGRITY"
                                                        : "KRB_AP_ERR_MODIFIED") +
                              "): the SPN belongs to another account, or the service's key changed "
                              "since its keytab was made";
        f.hops.push_back(describe(l, "hop"));
        f.evidence.push_back(
            ref(l, skew ? "KRB-ERROR 37 in the SSPI reply" : "KRB-ERROR 41 in the SSPI reply"));
        f.remedy = skew ? "Synchronise the clocks of client, server and domain controllers (w32tm "
                          "/resync; check the NTP source)."
                        : "Find the account that owns the SPN (setspn -Q " +
                              (spn.empty() ? std::string("MSSQLSvc/<host>:<port>") : spn) +
                              "), remove it there (setspn -D) and register it on the SQL Server "
                              "service account (setspn -S); re-export keytabs after a password "
                              "change.";
        emit(std::move(f), key + "#k" + std::to_string(l.kerberos_error));
    }
    if (l.auth == AuthKind::Ntlm && l.ntlm_version == 1) {
        Finding f;
        f.ts = l.ts;
        f.rule = "HS040";
        f.name = "ntlmv1";
        f.severity = Severity::Warning;
        f.summary = host_name(l.flow.client.addr) + " used NTLMv1 to " + server;
        f.hops.push_back(describe(l, "hop"));
        f.evidence.push_back(ref(l, "NTLM AUTHENTICATE with a 24-byte NT response"));
        f.remedy =
            "NTLMv1 is crackable: set 'Network security: LAN Manager authentication "
            "level' to 'Send NTLMv2 response only. Refuse LM & NTLM'.";
        emit(std::move(f), to_string(l.flow.client.addr) + ">" + to_string(l.flow.server));
    }
    if (icontains(l.kerberos_etype, "rc4")) {
        Finding f;
        f.ts = l.ts;
        f.rule = "HS041";
        f.name = "kerberos-rc4";
        f.severity = Severity::Warning;
        f.summary = "Kerberos ticket for " + server + " uses RC4-HMAC";
        f.hops.push_back(describe(l, "hop"));
        f.evidence.push_back(ref(l, "AP-REQ ticket enctype " + l.kerberos_etype));
        f.remedy =
            "Enable AES on the service account (msDS-SupportedEncryptionTypes) and reset "
            "its password so AES keys exist.";
        emit(std::move(f), to_string(l.flow.server));
    }
    if (l.auth == AuthKind::Sql && l.encryption == EncryptionMode::None) {
        Finding f;
        f.ts = l.ts;
        f.rule = "HS042";
        f.name = "sql-auth-unencrypted";
        f.severity = Severity::Warning;
        f.summary = "SQL login '" + l.user + "' to " + server +
                    " crossed the network without TLS: its password is only obfuscated";
        f.hops.push_back(describe(l, "hop"));
        f.evidence.push_back(ref(l, "clear LOGIN7 with SQL authentication"));
        f.remedy =
            "Require encryption (client Encrypt=true / server Force Encryption) or use "
            "Windows authentication.";
        emit(std::move(f), to_string(l.flow.client.addr) + ">" + to_string(l.flow.server));
    }
    if (l.encryption_downgraded) {
        Finding f;
        f.ts = l.ts;
        f.rule = "HS043";
        f.name = "encryption-downgraded";
        f.severity = Severity::Warning;
        f.summary =
            "The client asked " + server + " for encryption and got " + to_string(l.encryption);
        f.hops.push_back(describe(l, "hop"));
        f.evidence.push_back(ref(l, "PRELOGIN ENCRYPTION request vs answer"));
        f.remedy =
            "Install a certificate on the server and enable encryption; make clients "
            "require it (Encrypt=true) so a downgrade fails instead of passing.";
        emit(std::move(f), to_string(l.flow.client.addr) + ">" + to_string(l.flow.server));
    }
    std::string spn = l.auth == AuthKind::Kerberos ? l.spn : std::string();
    if (!spn.empty()) {
        std::string host = spn_host(spn);
        std::string rest = spn.substr(std::min(spn.size(), std::size_t{9}));
        rest = rest.substr(0, rest.find('@'));
        const bool no_port = rest.find(':') == std::string::npos || rest.back() == ']';
        if (!host.empty() &&
            (looks_like_ip(host) || host.find('.') == std::string::npos || no_port)) {
            Finding f;
            f.ts = l.ts;
            f.rule = "HS024";
            f.name = "spn-form";
            f.severity = Severity::Warning;
            f.summary = "SPN " + spn + " will not match a registered MSSQLSvc/<fqdn>:<port> SPN";
            f.hops.push_back(describe(l, "hop"));
            f.evidence.push_back(ref(l, "SPN requested by the client"));
            f.remedy =
                "Connect with the server's fully qualified DNS name and TCP port (SPN "
                "MSSQLSvc/<fqdn>:1433), not an IP address, alias or short name.";
            emit(std::move(f), spn);
        }
    }
    proxy_rules(l);
}

void Analyzer::proxy_rules(const LoginEvent& l) {
    const ProxyView& proxy = opts_.proxy;
    const auto is_proxy = [&proxy](const std::string& host) { return names_proxy(proxy, host); };
    const std::string server = host_name(l.flow.server.addr);
    const bool through_explicit =
        std::find(proxy.explicit_upstreams.begin(), proxy.explicit_upstreams.end(),
                  l.flow.server) != proxy.explicit_upstreams.end();
    if (through_explicit && (l.auth == AuthKind::Kerberos || l.auth == AuthKind::Ntlm ||
                             (l.auth == AuthKind::Unknown && l.user.empty()))) {
        // What shows that the client asked for the proxy rather than the server: the SPN of its
        // ticket (or the NTLM target), its TGS-REQ for an MSSQLSvc SPN of a proxy name, or, with
        // NTLM, the server name it typed.
        const KerberosEvent* kdc = nullptr;
        for (const auto* k : kdc_for(l.flow.client.addr, l.started.micros ? l.started : l.ts))
            if (k->request == "TGS-REQ" && is_proxy(spn_host(k->sname))) kdc = k;
        const bool spn_names_proxy = is_proxy(spn_host(l.spn));
        const bool ntlm_names_proxy =
            l.auth == AuthKind::Ntlm && is_proxy(named_host(l.server_name));
        // A Kerberos login that worked with the proxy's SPN (registered on the server's account)
        // is left alone.
        const bool kerberos_worked = l.auth == AuthKind::Kerberos && l.kerberos_error == 0 &&
                                     l.outcome == Outcome::Success &&
                                     (kdc == nullptr || kdc->error_code == 0);
        if ((spn_names_proxy || kdc != nullptr || ntlm_names_proxy) && !kerberos_worked) {
            const std::string spn = spn_names_proxy ? l.spn : kdc ? kdc->sname : std::string();
            Finding f;
            f.ts = l.ts;
            f.rule = "HS060";
            f.name = "proxy-in-the-way";
            f.severity = Severity::Error;
            f.summary = "The proxy itself is the cause: " + host_name(l.flow.client.addr) +
                        " reached " + server + " through the proxy's explicit listener but " +
                        (spn.empty() ? "named the proxy ('" + l.server_name + "')"
                                     : "asked for the proxy's SPN " + spn) +
                        ", not " + server + "'s";
            if (kdc && kdc->error_code == 7)
                f.summary +=
                    ": the KDC does not know that SPN (KDC_ERR_S_PRINCIPAL_UNKNOWN), so "
                    "Kerberos fails or falls back to NTLM, which breaks delegation";
            else if (l.auth == AuthKind::Ntlm)
                f.summary += ", so it used NTLM, which cannot be delegated";
            else
                f.summary += ": a ticket for the proxy's name is no use to " + server +
                             ", so Kerberos fails and delegation with it";
            f.hops.push_back(describe(l, "hop"));
            f.evidence.push_back(ref(l, "login through the explicit listener"));
            if (kdc)
                f.evidence.push_back(
                    ref(*kdc,
                        "TGS-REQ for " + kdc->sname +
                            (kdc->error_name.empty() ? std::string() : " -> " + kdc->error_name)));
            f.remedy =
                "Deploy the proxy transparently (iptables REDIRECT or TPROXY, 'hopscope "
                "proxy --transparent'), or alias " +
                server +
                "'s name to the proxy in DNS or hosts files, so clients keep asking for "
                "MSSQLSvc/" +
                spn_host_for(server) + ":" + std::to_string(l.flow.server.port) +
                "; see docs/proxy.md.";
            emit(std::move(f), to_string(l.flow.client.addr) + ">" + to_string(l.flow.server));
        }
    }
    if (proxy.active && !l.routing.empty() &&
        !is_proxy(l.routing.substr(0, l.routing.rfind(':')))) {
        Finding f;
        f.ts = l.ts;
        f.rule = "HS061";
        f.name = "routing-around-proxy";
        f.severity = Severity::Warning;
        f.summary = server + " routed " + host_name(l.flow.client.addr) + " to " + l.routing +
                    " (ENVCHANGE routing): the client will reconnect to " + l.routing +
                    " directly, around the proxy, which will not see that login";
        f.hops.push_back(describe(l, "hop"));
        f.evidence.push_back(ref(l, "login answer with ENVCHANGE routing to " + l.routing));
        f.remedy = "Put " + l.routing +
                   " behind the proxy as well (another listener or upstream), or change the "
                   "redirection so clients stay on the proxied endpoint: the availability "
                   "group's read-only routing URLs, or the gateway's connection policy (Proxy "
                   "instead of Redirect).";
        emit(std::move(f), to_string(l.flow.server) + ">" + l.routing);
    }
}

void Analyzer::chain_rules(const Recent& inbound, const Recent& outbound) {
    const LoginEvent& in = inbound.login;
    const LoginEvent& out = outbound.login;
    const std::string a = host_name(in.flow.server.addr);
    const std::string b = host_name(out.flow.server.addr);

    const std::string row_key = to_string(in.flow.client.addr) + ">" + to_string(in.flow.server) +
                                ">" + to_string(out.flow.server) + "/" + to_string(in.auth) + "/" +
                                to_string(out.auth) + "/" + to_string(out.outcome) +
                                (out.anonymous ? "/anon" : "");
    auto row = chains_.find(row_key);
    if (row == chains_.end() && chains_.size() < opts_.max_summary_rows)
        row = chains_.try_emplace(row_key).first;
    if (row != chains_.end()) {
        ChainSummary& c = row->second;
        c.client = in.flow.client.addr;
        c.middle = in.flow.server;
        c.backend = out.flow.server;
        c.first_auth = in.auth;
        c.second_auth = out.auth;
        c.second_outcome = out.outcome;
        c.second_anonymous = out.anonymous;
        c.user = identity(in);
        c.second_user = identity(out);
        ++c.count;
    } else {
        ++summary_overflow_;
    }

    const bool second_failed = out.anonymous || out.outcome == Outcome::Failure ||
                               (out.error && anonymous_text(out.error->message));
    const std::string dedup = to_string(in.flow.client.addr) + ">" + to_string(in.flow.server) +
                              ">" + to_string(out.flow.server);
    Finding f;
    f.ts = out.ts;
    f.hops = {describe(in, "C->A"), describe(out, "A->B")};
    f.evidence = {ref(in, "C's login to A"), ref(out, "A's login to B")};
    const std::string realm = !in.domain.empty() ? in.domain : std::string("DOMAIN");

    if (in.auth == AuthKind::Ntlm && integrated(out)) {
        f.rule = "HS010";
        f.name = "ntlm-first-hop";
        f.severity = Severity::Error;
        f.summary = "Double hop with NTLM on the first hop: " + identity(in) + " reached " + a +
                    " with NTLM, which cannot be delegated, so " + a + " reached " + b + " as " +
                    (identity(out).empty() ? std::string("nobody") : identity(out));
        f.remedy = "Make the client use Kerberos to " + a +
                   ": register its SPN (setspn -S MSSQLSvc/" + spn_host_for(a) + ":" +
                   std::to_string(in.flow.server.port) + " " + realm + "\\" + kAccountPlaceholder +
                   "), connect with that fully qualified name, and trust the service account for "
                   "delegation to MSSQLSvc/" +
                   b + ":" + std::to_string(out.flow.server.port) + ".";
        for (const auto* k : kdc_for(in.flow.client.addr, in.started.micros ? in.started : in.ts))
            if (k->error_code == 7 && !spn_host(k->sname).empty()) {
                f.summary += " (the KDC did not know " + k->sname + ")";
                f.evidence.push_back(ref(*k, "KDC_ERR_S_PRINCIPAL_UNKNOWN"));
            }
        emit(std::move(f), dedup);
        return;
    }
    if (in.auth == AuthKind::Kerberos) {
        if (!second_failed && out.auth == AuthKind::Kerberos) {
            f.rule = "HS050";
            f.name = "healthy-double-hop";
            f.severity = Severity::Info;
            const std::string who =
                identity(in).empty() ? host_name(in.flow.client.addr) : identity(in);
            f.summary =
                "Healthy double hop: " + who + " -> " + a + " -> " + b +
                " with Kerberos on both hops" +
                (out.user.empty() ? std::string() : " (" + b + " saw " + identity(out) + ")");
            f.remedy = "Nothing to do.";
            emit(std::move(f), dedup);
            return;
        }
        if (!second_failed && out.auth != AuthKind::Ntlm) return;
        f.rule = "HS011";
        f.name = "kerberos-without-delegation";
        f.severity = Severity::Error;
        std::string why;
        const KerberosEvent* refused = nullptr;
        for (const auto* k : kdc_for(in.flow.client.addr, in.started.micros ? in.started : in.ts))
            if (k->has_option("forwarded") && k->error_code != 0) refused = k;
        // The middle server's own KDC traffic: a refused S4U2Proxy request (constrained
        // delegation) names the cause even when the client rightly sent no forwarded TGT.
        const KerberosEvent* s4u = nullptr;
        for (const auto* k :
             kdc_for(out.flow.client.addr, out.started.micros ? out.started : out.ts))
            if (k->has_option("cname-in-addl-tkt") && k->error_code != 0) s4u = k;
        Tristate deleg = delegation_requested(in);
        if (s4u && !refused) {
            why = a + "'s constrained delegation (S4U2Proxy) to " + s4u->sname + " was refused (" +
                  s4u->error_name + ")";
            f.evidence.push_back(ref(*s4u, "TGS-REQ cname-in-addl-tkt -> " + s4u->error_name));
            f.remedy = "Allow " + a + "'s service account to delegate to " + s4u->sname +
                       " (msDS-AllowedToDelegateTo, 'Trust this user for delegation to specified "
                       "services only'), or configure resource-based constrained delegation on "
                       "the back-end's account; check the user is not sensitive.";
        } else if (refused) {
            why = "the KDC refused to forward the user's TGT (" + refused->error_name +
                  "): the account is 'sensitive and cannot be delegated' or its TGT is not "
                  "forwardable";
            f.evidence.push_back(ref(*refused, "TGS-REQ forwarded -> " + refused->error_name));
            f.remedy = "Clear 'Account is sensitive and cannot be delegated' for " +
                       (in.user.empty() ? std::string("the user") : identity(in)) +
                       " (and remove it from Protected Users), or use a login mapping on the "
                       "linked server.";
        } else if (deleg == Tristate::No) {
            why = "the client did not ask for a forwarded TGT, so the ticket it sent to " + a +
                  " carried no delegable credential";
            f.remedy = "Trust " + a +
                       "'s service account for delegation (unconstrained, or "
                       "constrained to MSSQLSvc/" +
                       b + ":" + std::to_string(out.flow.server.port) +
                       "); Windows clients then delegate automatically (ok-as-delegate). For "
                       "MIT/FreeTDS clients enable delegation ('enable gssapi delegation = yes', "
                       "kinit -f).";
        } else if (deleg == Tristate::Yes) {
            why = "the client obtained a forwarded TGT, yet " + a + " did not use it";
            f.remedy = "Check that " + a +
                       " runs under the account that owns its SPN and that "
                       "the account is trusted for delegation to MSSQLSvc/" +
                       b + ":" + std::to_string(out.flow.server.port) + ".";
        } else {
            why = "whether the client delegated cannot be seen without its port-88 traffic";
            f.remedy = "Check delegation settings of " + a + "'s service account and the user.";
            f.missing = "No Kerberos (port 88) traffic from " + host_name(in.flow.client.addr) +
                        " was captured: capture on the client's segment including port 88 to see "
                        "whether it asked for a forwarded TGT.";
        }
        f.summary = "Double hop with Kerberos but no delegation: " + a + " reached " + b + " as " +
                    (identity(out).empty() ? std::string("nobody") : identity(out)) + " because " +
                    why;
        emit(std::move(f), dedup);
        return;
    }
    if (in.auth == AuthKind::Unknown && !second_failed && out.auth == AuthKind::Kerberos) {
        f.rule = "HS050";
        f.name = "healthy-double-hop";
        f.severity = Severity::Info;
        f.summary = a + " reached " + b + " with Kerberos on behalf of a client of " + a +
                    " whose own login is not visible (" +
                    (in.auth_detail.empty() ? std::string("encrypted login") : in.auth_detail) +
                    ")";
        f.missing =
            "The first hop's authentication is encrypted; the client's port-88 traffic "
            "(TGS-REQ for MSSQLSvc/" +
            a + ", forwarded TGT) shows how it authenticated.";
        f.remedy = "Nothing to do.";
        emit(std::move(f), dedup);
        return;
    }
    if (in.auth == AuthKind::Unknown && second_failed) {
        f.rule = "HS090";
        f.name = "missing-evidence";
        f.severity = Severity::Info;
        f.summary = "The identity was lost between " + a + " and " + b +
                    ", but how the client authenticated to " + a + " is not visible (" +
                    (in.auth_detail.empty() ? std::string("encrypted login") : in.auth_detail) +
                    ")";
        f.missing = "Capture port 88 on the client's segment (the TGS-REQ for MSSQLSvc/" + a +
                    " shows whether Kerberos was used and delegation requested), or run "
                    "'hopscope proxy' with TLS termination in front of " +
                    a + ".";
        f.remedy = "See the anonymous-logon finding for " + b + ".";
        emit(std::move(f), dedup);
    }
}

void Analyzer::kdc_rules(const KerberosEvent& k) {
    if (k.error_code == 0) {
        if (std::string h = spn_host(k.sname); !h.empty()) {
            std::string rest = k.sname.substr(9);
            rest = rest.substr(0, rest.find('@'));
            if (looks_like_ip(h) || h.find('.') == std::string::npos ||
                rest.find(':') == std::string::npos) {
                Finding f;
                f.ts = k.ts;
                f.rule = "HS024";
                f.name = "spn-form";
                f.severity = Severity::Warning;
                f.summary = "Client " + host_name(k.flow.client.addr) + " asked for SPN " +
                            k.sname + ", which will not match MSSQLSvc/<fqdn>:<port>";
                f.evidence.push_back(ref(k, "TGS-REQ sname"));
                f.remedy = "Connect with the server's fully qualified DNS name and TCP port.";
                emit(std::move(f), k.sname);
            }
        }
        return;
    }
    Finding f;
    f.ts = k.ts;
    f.severity = Severity::Error;
    f.evidence.push_back(ref(k, k.request + " -> " + k.error_name));
    const std::string client = k.client.empty() ? host_name(k.flow.client.addr) : k.client;
    if (k.error_code == 7 && !spn_host(k.sname).empty()) {
        f.rule = "HS020";
        f.name = "spn-missing";
        f.summary = "SPN " + k.sname + " is not registered (KDC_ERR_S_PRINCIPAL_UNKNOWN for " +
                    client + "): the client cannot use Kerberos to that SQL Server";
        f.remedy = "setspn -S " + k.sname.substr(0, k.sname.find('@')) + " " +
                   (k.realm.empty() ? std::string("DOMAIN") : k.realm) + "\\" + kAccountPlaceholder;
        emit(std::move(f), k.sname);
    } else if (k.error_code == 13 && k.has_option("cname-in-addl-tkt")) {
        f.rule = "HS023";
        f.name = "constrained-delegation-refused";
        f.summary = "Constrained delegation (S4U2Proxy) to " + k.sname + " was refused for " +
                    client + " (KDC_ERR_BADOPTION)";
        f.remedy = "Add " + k.sname +
                   " to msDS-AllowedToDelegateTo of the middle server's service account (or "
                   "configure resource-based constrained delegation on the back-end's account), "
                   "and check the user is not sensitive.";
        emit(std::move(f), k.sname + "#" + client);
    } else if (k.error_code == 13 && k.has_option("forwarded")) {
        f.rule = "HS012";
        f.name = "forwarded-tgt-refused";
        f.summary = "The KDC refused to forward " + client +
                    "'s TGT (KDC_ERR_BADOPTION): the account is 'sensitive and cannot be "
                    "delegated' or its TGT is not forwardable";
        f.remedy = "Clear 'Account is sensitive and cannot be delegated' for " + client +
                   " (and remove it from Protected Users) if it must reach linked servers.";
        emit(std::move(f), client);
    } else if (k.error_code == 37) {
        f.rule = "HS022";
        f.name = "clock-skew";
        f.summary = "KRB_AP_ERR_SKEW for " + client + ": clocks differ by more than 5 minutes";
        f.remedy = "Synchronise client, server and KDC clocks (w32tm /resync).";
        emit(std::move(f), client);
    } else if (k.error_code == 41) {
        f.rule = "HS021";
        f.name = "spn-wrong-account";
        f.summary = "KRB_AP_ERR_MODIFIED for " + k.sname +
                    ": the ticket was encrypted for another account's key";
        f.remedy = "setspn -Q " + k.sname +
                   " to find duplicates; keep the SPN only on the "
                   "service account.";
        emit(std::move(f), k.sname);
    }
}

void Analyzer::finish() {
    // End of input: the late verdicts still waiting for their window run now, in the order their
    // windows would have ended.
    settle(std::numeric_limits<std::int64_t>::max(), 0);
}

void Analyzer::late_link(Recent& r) {
    // Logins whose outcome was hidden by TLS are reported when their connection ends, after the
    // outbound logins they caused: once an outbound login's chaining window has passed, link it
    // to such a login if one was open when it started.
    if (r.chained) return;
    if (const Recent* in = find_inbound(r.login, true)) {
        mark_middle(r.login.flow.client.addr);
        const_cast<Recent*>(in)->chained = true;
        r.chained = true;
        chain_rules(*in, r);
    }
}

void Analyzer::late_verdicts(const Recent& r) {
    // Two chaining windows after the login: whether its server has been seen acting as a middle
    // server, and whether any port-88 traffic has been seen, is known by then.
    const LoginEvent& l = r.login;
    if (l.auth == AuthKind::Ntlm && !r.chained && middle_servers_.count(l.flow.server.addr)) {
        Finding f;
        f.ts = l.ts;
        f.rule = "HS030";
        f.name = "ntlm-to-middle-server";
        f.severity = Severity::Warning;
        const std::string a = host_name(l.flow.server.addr);
        f.summary = identity(l) + " logged in with NTLM to " + a +
                    ", which also logs in to linked servers: a linked-server query on this "
                    "session would reach them as ANONYMOUS LOGON";
        f.hops.push_back(describe(l, "C->A"));
        f.evidence.push_back(ref(l, "NTLM login to a middle server"));
        f.remedy = "Register MSSQLSvc/" + spn_host_for(a) + ":" +
                   std::to_string(l.flow.server.port) +
                   " on its service account and connect by fully qualified name so Kerberos "
                   "is used.";
        emit(std::move(f), to_string(l.flow.client.addr) + ">" + to_string(l.flow.server));
    }
    if (l.auth == AuthKind::Unknown && !saw_kdc_ && integrated(l) && !r.chained) {
        Finding f;
        f.ts = l.ts;
        f.rule = "HS090";
        f.name = "missing-evidence";
        f.severity = Severity::Info;
        f.summary = "The authentication of logins to " + host_name(l.flow.server.addr) +
                    " is not visible (" +
                    (l.auth_detail.empty() ? std::string("encrypted") : l.auth_detail) + ")";
        f.hops.push_back(describe(l, "hop"));
        f.evidence.push_back(ref(l, "login without visible authentication"));
        f.missing =
            "Capture port 88 as well (the client's TGS-REQ names the SPN and shows "
            "delegation), or use 'hopscope proxy' with TLS termination.";
        f.remedy = "None until the evidence is there.";
        emit(std::move(f), to_string(l.flow.server));
    }
}

void Analyzer::advance(Timestamp now) {
    if (now_ < now) now_ = now;
    settle(now_.micros, 0);
    forget();
    rewake();
}

std::int64_t Analyzer::horizon_us() const {
    // How long logins and KDC exchanges are kept: the late verdicts of a login run two chaining
    // windows after it, and a KDC exchange is looked for up to a Kerberos window before a login.
    return 2 * std::max(opts_.chain_window_us, opts_.kerberos_window_us);
}

std::array<std::int64_t, 4> Analyzer::due() const {
    // When the next step of each kind falls due: a late link, late verdicts, forgetting the
    // oldest login, forgetting the oldest KDC exchange. kNever only when there is none, so that
    // finish() runs every step, whatever the timestamps.
    constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
    std::array<std::int64_t, 4> at{kNever, kNever, kNever, kNever};
    if (link_next_ < base_seq_ + logins_.size())
        at[0] =
            std::min(kNever - 1, later(recent(link_next_)->login.ts.micros, opts_.chain_window_us));
    if (verdict_next_ < link_next_)
        at[1] = std::min(kNever - 1,
                         later(recent(verdict_next_)->login.ts.micros, 2 * opts_.chain_window_us));
    if (!logins_.empty())
        at[2] = std::min(kNever - 1, later(logins_.front().login.ts.micros, horizon_us() + 1));
    if (!kdc_order_.empty())
        at[3] = std::min(kNever - 1, later(kdc_order_.front().second, horizon_us() + 1));
    return at;
}

void Analyzer::settle(std::int64_t now, std::uint64_t through) {
    // What happens at a time of its own, in the order of those times: the two late steps of each
    // login, and forgetting a login or a KDC exchange past its horizon (so a late verdict sees the
    // same logins and exchanges however often tick is called). The late steps of the logins below
    // `through` run whatever the time: those logins are about to be forgotten (cap).
    for (;;) {
        const std::array<std::int64_t, 4> at = due();
        if (verdict_next_ < through) {
            if (at[0] <= at[1])
                late_link(*recent(link_next_++));
            else
                late_verdicts(*recent(verdict_next_++));
            continue;
        }
        const auto first = std::min_element(at.begin(), at.end());  // ties: in that order
        if (*first > now || *first == std::numeric_limits<std::int64_t>::max()) return;
        switch (first - at.begin()) {
            case 0:
                late_link(*recent(link_next_++));
                break;
            case 1:
                late_verdicts(*recent(verdict_next_++));
                break;
            case 2:
                drop_login(now);
                break;
            default:
                drop_kdc();
                break;
        }
    }
}

void Analyzer::drop_login(std::int64_t now) {
    // Its late verdicts run first (only the cap takes a login before they are due).
    if (verdict_next_ <= base_seq_) settle(now, base_seq_ + 1);
    logins_.pop_front();
    ++base_seq_;
}

void Analyzer::drop_kdc() {
    auto mine = kdc_.find(kdc_order_.front().first);
    mine->second.pop_front();
    if (mine->second.empty()) kdc_.erase(mine);
    kdc_order_.pop_front();
}

void Analyzer::forget() {
    // The caps on logins and KDC exchanges (those past their horizon went in settle()).
    while (logins_.size() > opts_.max_recent)
        drop_login(now_.micros);
    while (kdc_order_.size() > opts_.max_recent)
        drop_kdc();
    // A de-duplication key is quiet one window after its latest evidence; it is kept a horizon
    // longer, as evidence (KDC exchanges, late verdicts) reaches emit() up to that much behind the
    // clock.
    drop_dedup(later(now_.micros, -opts_.dedup_window_us - horizon_us()));
}

void Analyzer::drop_dedup(std::int64_t older_than) {
    while (!dedup_by_time_.empty() && (dedup_by_time_.begin()->first.first < older_than ||
                                       dedup_.size() > opts_.max_dedup_keys)) {
        const auto oldest = dedup_by_time_.begin();
        dedup_.erase(dedup_.find(*oldest->second));
        dedup_by_time_.erase(oldest);
    }
}

void Analyzer::rewake() {
    // The earliest time at which tick() has something to do.
    const std::array<std::int64_t, 4> at = due();
    std::int64_t wake = *std::min_element(at.begin(), at.end());
    if (!dedup_by_time_.empty())
        wake = std::min(wake, later(dedup_by_time_.begin()->first.first,
                                    opts_.dedup_window_us + horizon_us() + 1));
    wake_us_ = wake;
}

Analyzer::Stats Analyzer::stats() const {
    Stats s;
    s.recent_logins = logins_.size();
    for (const auto& [addr, q] : kdc_)
        s.kdc_exchanges += q.size();
    for (const auto* idx : {&by_server_, &by_client_})
        for (const auto& [addr, seqs] : *idx)
            s.index_entries += seqs.size();
    for (const auto& [flow, seqs] : by_flow_)
        s.index_entries += seqs.size();
    s.pending_logins = static_cast<std::size_t>(base_seq_ + logins_.size() - verdict_next_);
    s.dedup_keys = dedup_.size();
    s.named_hosts = names_.size();
    for (const auto& [addr, names] : names_)
        s.host_names += names.size();
    s.middle_servers = middle_servers_.size();
    s.hop_rows = hops_.size();
    s.chain_rows = chains_.size();
    s.summary_overflow = summary_overflow_;
    return s;
}

void Analyzer::sweep() {
    adds_since_sweep_ = 0;
    auto drop_stale = [this](SeqIndex& idx) {
        for (auto it = idx.begin(); it != idx.end();) {
            while (!it->second.empty() && it->second.front() < base_seq_)
                it->second.pop_front();
            it = it->second.empty() ? idx.erase(it) : std::next(it);
        }
    };
    drop_stale(by_server_);
    drop_stale(by_client_);
    for (auto it = by_flow_.begin(); it != by_flow_.end();) {
        auto& v = it->second;
        v.erase(
            std::remove_if(v.begin(), v.end(), [this](std::uint64_t s) { return s < base_seq_; }),
            v.end());
        it = v.empty() ? by_flow_.erase(it) : std::next(it);
    }
}

std::vector<HopSummary> Analyzer::hop_summary() const {
    std::vector<HopSummary> out;
    for (const auto& [k, v] : hops_)
        out.push_back(v);
    return out;
}

std::vector<ChainSummary> Analyzer::chain_summary() const {
    std::vector<ChainSummary> out;
    for (const auto& [k, v] : chains_)
        out.push_back(v);
    return out;
}

}  // namespace hopscope::analysis
