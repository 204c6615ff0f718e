#include "hopscope/analysis/analyzer.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include "rule_support.hpp"

namespace hopscope::analysis {
namespace {

using detail::hop_key;
using detail::hop_of;
using detail::identity;
using detail::istarts_with;
using detail::looks_like_ip;
using detail::lower;
using detail::names_proxy;
using detail::spn_host;
using detail::spn_host_view;
using detail::start_of;
using detail::without_realm;

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

/// How far after a login a KDC exchange still counts as made before it: the sensors' clocks, or
/// the order in which one sensor saw two connections, may be off by that much.
constexpr std::int64_t kClockSlackUs = 2'000'000;
/// Stale sequence numbers are dropped from the indexes after this many logins or KDC exchanges.
constexpr std::uint64_t kSweepEvery = 4096;

/// `t` + `d` microseconds, saturated: timestamps come from captures and can be anything.
std::int64_t later(std::int64_t t, std::int64_t d) {
    std::int64_t r = 0;
    if (__builtin_add_overflow(t, d, &r))
        return d > 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    return r;
}

/// `out` passes `in` on: a TCP relay between the client and the server (a port forwarder, an
/// explicit proxy), not a middle server logging in on its own behalf. A linked server's LOGIN7
/// names the linked server and the middle server's host; a relayed LOGIN7 is the client's,
/// unchanged: the name the client typed, its host name and application.
bool relays(const LoginEvent& in, const LoginEvent& out) {
    return in.flow.server.addr == out.flow.client.addr && !in.server_name.empty() &&
           !in.host_name.empty() && in.server_name == out.server_name &&
           in.host_name == out.host_name && in.app_name == out.app_name;
}

}  // namespace

Analyzer::Analyzer(FindingSink& sink) : Analyzer(sink, Options{}) {}
Analyzer::Analyzer(FindingSink& sink, Options opts) : sink_(sink), opts_(opts) {}

const std::string& Analyzer::dedup_key(std::string_view rule, const std::string& key) const {
    // Built in one buffer kept between calls: a rule that fires on every login of a kind asks
    // for its key twice per login (reported(), then emit()), and a fresh string each time was a
    // few allocations per login.
    dedup_scratch_.assign(rule).append(1, '|').append(key);
    return dedup_scratch_;
}

bool Analyzer::reported(std::string_view rule, const std::string& key, Timestamp at) const {
    const auto mark = dedup_.find(dedup_key(rule, key));
    // emit()'s test for a repeat
    return mark != dedup_.end() && at.micros <= later(mark->second.last, opts_.dedup_window_us);
}

void Analyzer::emit(std::optional<Verdict> v) {
    if (!v) return;
    Finding& f = v->finding;
    // A verdict already reported stays quiet while its evidence keeps recurring within the
    // de-duplication window. Measured on the evidence's own time (not the clock), so that the
    // answer does not depend on when a late verdict runs.
    const std::int64_t at = f.ts.micros;
    const std::string& k = dedup_key(f.rule, v->key);
    auto mark = dedup_.find(k);
    const bool fresh = mark == dedup_.end();
    if (!fresh) {
        const bool repeat = at <= later(mark->second.last, opts_.dedup_window_us);
        if (at > mark->second.last) {
            // The same node, moved to its new time: no allocation.
            auto node = dedup_by_time_.extract({mark->second.last, mark->second.serial});
            if (node.empty()) {
                dedup_by_time_.emplace(std::pair{at, mark->second.serial}, &mark->first);
            } else {
                node.key().first = at;
                dedup_by_time_.insert(std::move(node));
            }
            mark->second.last = at;
        }
        if (repeat) return;
    } else {
        mark = dedup_.emplace(k, DedupMark{at, dedup_serial_++}).first;
        dedup_by_time_.emplace(std::pair{at, mark->second.serial}, &mark->first);
        wake_us_ = std::min(wake_us_, later(at, opts_.dedup_window_us + horizon_us() + 1));
        if (dedup_.size() > opts_.max_dedup_keys)
            drop_dedup(std::numeric_limits<std::int64_t>::min());
    }
    if (f.display_filter.empty()) f.display_filter = frames_filter(f.evidence);
    ++emitted_;
    sink_.on_finding(f);
}

namespace {
/// The host part of a name as typed (instance and port dropped, "tcp:" prefix removed); empty
/// when there is none or it is an address.
std::string_view host_part(std::string_view raw) {
    std::string_view name = raw.substr(0, detail::host_end(raw));  // drop instance / port
    if (istarts_with(name, "tcp:")) name.remove_prefix(4);
    if (looks_like_ip(name)) return {};
    return name;
}
/// What a name adds to its address's ranking: fully qualified names are the ones Kerberos needs.
int name_weight(std::string_view name) {
    return name.find('.') != std::string_view::npos ? 1000 : 1;
}
}  // namespace

void Analyzer::learn_names(const LoginEvent& l, bool relayed, bool learn) {
    const IpAddress& a = l.flow.server.addr;
    const std::string spn = spn_host(l.spn);
    // What a relayed login's client typed, which its other names must not repeat.
    const std::string typed = relayed ? lower(host_part(l.server_name)) : std::string();
    const std::string spn_lower = relayed ? lower(spn) : std::string();
    auto apply = [&](const std::string& name) {
        if (learn)
            learn_name(a, name);
        else
            unlearn_name(a, name);
    };
    if (!relayed) {
        if (!l.server_name.empty()) apply(l.server_name);
        if (!spn.empty()) apply(spn);
    }
    for (const auto& alias : l.server_aliases)
        if (!relayed || (lower(host_part(alias)) != typed && lower(alias) != spn_lower))
            apply(alias);
}

namespace {
/// The entry of `names` (Analyzer::HostNames) for `name` in any case (the entries are in lower
/// case), or end().
template <typename Names>
auto find_name(Names& names, std::string_view name) {
    return std::find_if(names.begin(), names.end(), [name](const auto& e) {
        return e.first.size() == name.size() && istarts_with(name, e.first);
    });
}
}  // namespace

void Analyzer::unlearn_name(const IpAddress& a, const std::string& raw) {
    const std::string_view name = host_part(raw);
    auto host = names_.find(a);
    if (name.empty() || host == names_.end()) return;
    auto entry = find_name(host->second, name);
    if (entry == host->second.end()) return;
    entry->second -= name_weight(name);
    if (entry->second <= 0) host->second.erase(entry);
    if (host->second.empty()) names_.erase(host);
}

void Analyzer::learn_name(const IpAddress& a, const std::string& raw) {
    const std::string_view name = host_part(raw);
    if (name.empty()) return;
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
    auto entry = find_name(host->second, name);
    if (entry == host->second.end()) {
        if (host->second.size() >= kMaxNamesPerHost) return;
        host->second.emplace_back(lower(name), 0);
        entry = std::prev(host->second.end());
    }
    // Fully qualified names are the ones Kerberos needs: rank them first.
    entry->second += name_weight(name);
}

void Analyzer::mark_middle(const IpAddress& a) {
    if (middle_servers_.size() < opts_.max_hosts) middle_servers_.insert(a);
}

std::string Analyzer::host_name(const IpAddress& a) const {
    auto it = names_.find(a);
    if (it == names_.end() || it->second.empty()) return to_string(a);
    // The heaviest; of equal weights the first in alphabetical order (as when they were kept
    // sorted by name).
    const auto* best = &it->second.front();
    for (const auto& e : it->second)
        if (e.second > best->second || (e.second == best->second && e.first < best->first))
            best = &e;
    return best->first;
}

Analyzer::Recent* Analyzer::recent(std::uint64_t seq) {
    if (seq < base_seq_ || seq - base_seq_ >= logins_kept()) return nullptr;
    return &logins_[seq - base_seq_ + logins_gone_];
}

const Analyzer::Recent* Analyzer::recent(std::uint64_t seq) const {
    if (seq < base_seq_ || seq - base_seq_ >= logins_kept()) return nullptr;
    return &logins_[seq - base_seq_ + logins_gone_];
}

template <typename F>
void Analyzer::each_kdc(const IpAddress& client, Timestamp before, F&& f) const {
    auto it = kdc_by_client_.find(client);
    if (it == kdc_by_client_.end()) return;
    const std::uint64_t first = kdc_first_kept();
    for (const std::uint64_t seq : it->second) {
        if (seq < first) continue;
        const KdcEntry& e = kdc_at(seq);
        if (e.ev.ts.micros > later(before.micros, kClockSlackUs)) continue;
        if (before.micros - e.ev.ts.micros > opts_.kerberos_window_us) continue;
        f(e);
    }
}

template <typename F>
void Analyzer::each_kdc_newest(const IpAddress& client, Timestamp before, F&& f) const {
    auto it = kdc_by_client_.find(client);
    if (it == kdc_by_client_.end()) return;
    const std::uint64_t first = kdc_first_kept();
    for (auto seq = it->second.rbegin(); seq != it->second.rend() && *seq >= first; ++seq) {
        const KdcEntry* e = &kdc_at(*seq);
        // none of this one and the older ones is in the window
        if (before.micros - e->latest_so_far > opts_.kerberos_window_us) return;
        if (e->ev.ts.micros > later(before.micros, kClockSlackUs)) continue;
        if (before.micros - e->ev.ts.micros > opts_.kerberos_window_us) continue;
        if (!f(*e)) return;
    }
}

Analyzer::KdcEntry::KdcEntry(KerberosEvent&& e)
    : ev(std::move(e)),
      service(lower(without_realm(ev.sname))),
      spn_host(lower(spn_host_view(ev.sname))),
      tgs_req(ev.request == "TGS-REQ"),
      tgs_rep(ev.reply == "TGS-REP"),
      as_rep(ev.reply == "AS-REP"),
      forwarded(ev.has_option(auth::kdc_option::Forwarded)) {
#if defined(__GLIBCXX__) && defined(__x86_64__)
    // One per kept KDC exchange, up to max_recent of them in the window.
    static_assert(sizeof(KdcEntry) <= 384, "a kept KDC exchange no longer fits 384 bytes");
#endif
}

std::vector<const KerberosEvent*> Analyzer::kdc_for(const IpAddress& client,
                                                    Timestamp before) const {
    std::vector<const KerberosEvent*> out;
    each_kdc(client, before, [&out](const KdcEntry& e) { out.push_back(&e.ev); });
    return out;
}

std::vector<const KerberosEvent*> Analyzer::kdc_before(const LoginEvent& l) const {
    return kdc_for(l.flow.client.addr, start_of(l));
}

std::string Analyzer::spn_for(const LoginEvent& l) const {
    if (!l.spn.empty()) return l.spn;
    // The client's TGS-REQ for an MSSQLSvc SPN of this server's name, just before the login.
    const std::string host = lower(host_name(l.flow.server.addr));
    // The latest one for this host; without, the oldest one for any host.
    const KerberosEvent* match = nullptr;
    const KerberosEvent* oldest = nullptr;
    each_kdc_newest(l.flow.client.addr, start_of(l), [&](const KdcEntry& e) {
        if (!e.tgs_req || e.spn_host.empty()) return true;
        if (e.spn_host == host) {
            match = &e.ev;
            return false;
        }
        oldest = &e.ev;
        return true;
    });
    if (!match) match = oldest;
    return match ? match->sname : std::string{};
}

Tristate Analyzer::delegation_requested(const LoginEvent& l) const {
    if (l.delegation != Tristate::Unknown) return l.delegation;
    if (!saw_kdc_) return Tristate::Unknown;
    const Timestamp at = start_of(l);
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
    bool any = false;  // no KDC exchange of this client at all: cannot tell
    bool forwarded = false;
    each_kdc_newest(l.flow.client.addr, at, [&](const KdcEntry& e) {
        any = true;
        forwarded = e.tgs_req && e.forwarded && e.ev.error_code == 0 && e.ev.ts > previous;
        // done once found, or once no older one can be later than the previous login
        return !forwarded && e.latest_so_far > previous.micros;
    });
    if (!any) return Tristate::Unknown;
    return forwarded ? Tristate::Yes : Tristate::No;
}

namespace {
/// A login whose outcome could not be seen (TLS for the whole connection): it is reported when
/// its connection ends, after the outbound logins it caused.
bool hidden_outcome(const LoginEvent& l) {
    return l.outcome == Outcome::Incomplete && l.auth == AuthKind::Unknown && !l.prelogin_only;
}
}  // namespace

bool Analyzer::better_inbound(std::uint64_t seq, std::uint64_t than) const {
    // The latest start wins; between equal starts, the later report.
    if (than == kNoLogin) return true;
    const Recent* a = recent(seq);
    const Recent* b = recent(than);
    if (b == nullptr) return a != nullptr;
    if (a == nullptr) return false;
    if (a->login.started.micros != b->login.started.micros)
        return a->login.started.micros > b->login.started.micros;
    return seq > than;
}

const Analyzer::Recent* Analyzer::find_inbound(const LoginEvent& out, bool* relayed) const {
    // A successful login to the outbound login's client, started before the outbound one started
    // (within the chaining window), on a connection still open at that time. It may have been
    // answered after that: a middle server may check the linked server before it answers.
    const Timestamp start = start_of(out);
    auto idx = inbound_.find(out.flow.client.addr);
    if (idx == inbound_.end()) return nullptr;
    std::uint64_t best = kNoLogin;
    auto consider = [&](std::uint64_t seq) {
        const Recent* r = recent(seq);
        if (r == nullptr) return;
        const LoginEvent& in = r->login;
        if (in.flow.client.addr == out.flow.server.addr) return;
        if (start_of(in) > start || start.micros - in.ts.micros > opts_.chain_window_us) return;
        if (r->closed.micros != 0 && start > r->closed) return;
        if (relays(in, out)) {
            if (relayed != nullptr) *relayed = true;
            return;
        }
        if (better_inbound(seq, best)) best = seq;
    };
    const Inbound& ib = idx->second;
    for (const std::uint64_t seq : ib.open)
        consider(seq);
    for (auto it = ib.closed.rbegin(); it != ib.closed.rend() && it->second >= start.micros; ++it)
        consider(it->first);
    return best == kNoLogin ? nullptr : recent(best);
}

namespace {
/// Whether a login with a hidden outcome (`in`, ending at `end`) was open when `out` started.
bool hidden_was_open(const LoginEvent& in, std::int64_t end, const LoginEvent& out,
                     Timestamp out_start) {
    return in.flow.client.addr != out.flow.server.addr && in.started <= out_start &&
           end >= out_start.micros && !relays(in, out);
}
std::int64_t hidden_end(const LoginEvent& in, Timestamp closed) {
    return closed.micros != 0 ? closed.micros : in.ts.micros;
}
}  // namespace

void Analyzer::index_inbound(std::uint64_t seq) {
    Recent& r = *recent(seq);
    if (r.login.outcome == Outcome::Success) {
        inbound_[r.login.flow.server.addr].open.push_back(seq);
    } else if (hidden_outcome(r.login)) {
        const std::int64_t end = hidden_end(r.login, r.closed);
        auto& q = inbound_[r.login.flow.server.addr].hidden;
        q.emplace_back(seq, q.empty() ? end : std::max(end, q.back().second));
        offer_hidden(seq, end);
    }
}

void Analyzer::inbound_closed(std::uint64_t seq) {
    Recent& r = *recent(seq);
    if (r.login.outcome == Outcome::Success) {
        auto idx = inbound_.find(r.login.flow.server.addr);
        if (idx == inbound_.end()) return;
        auto& open = idx->second.open;
        const auto it = std::find(open.begin(), open.end(), seq);
        if (it == open.end()) return;
        open.erase(it);
        auto& q = idx->second.closed;
        q.emplace_back(seq,
                       q.empty() ? r.closed.micros : std::max(r.closed.micros, q.back().second));
    } else if (hidden_outcome(r.login)) {
        // Its end is now its close: it may have been open when later outbound logins started.
        auto& q = inbound_[r.login.flow.server.addr].hidden;
        q.emplace_back(seq,
                       q.empty() ? r.closed.micros : std::max(r.closed.micros, q.back().second));
        offer_hidden(seq, r.closed.micros);
    }
}

void Analyzer::offer_hidden(std::uint64_t seq, std::int64_t end) {
    const LoginEvent& in = recent(seq)->login;
    // The outbound logins of its server that started while it was open and whose late link has
    // not run yet: a range of its logins by start time.
    for (const std::uint64_t s : started_between(in.flow.server.addr, in.started.micros, end)) {
        Recent* o = recent(s);
        if (hidden_was_open(in, end, o->login, start_of(o->login)) &&
            better_inbound(seq, o->hidden_in))
            o->hidden_in = seq;
    }
}

std::vector<std::uint64_t> Analyzer::started_between(const IpAddress& client, std::int64_t from,
                                                     std::int64_t to) const {
    std::vector<std::uint64_t> out;
    auto idx = by_client_start_.find(client);
    if (idx == by_client_start_.end() || to < from) return out;
    const auto& v = idx->second;
    for (auto it = std::lower_bound(v.begin(), v.end(), std::pair{from, std::uint64_t{0}});
         it != v.end() && it->first <= to; ++it)
        if (it->second >= link_next_ && recent(it->second) != nullptr) out.push_back(it->second);
    std::sort(out.begin(), out.end());  // report order
    return out;
}

void Analyzer::link_answered_late(std::uint64_t seq) {
    // A middle server may log in to the linked server while it is still answering the login that
    // caused it (checking the linked server first): its outbound logins were then reported
    // before this one and found no inbound login. They are logins of its server as a client
    // that started while this login was being answered.
    const Recent& in = *recent(seq);
    std::vector<std::uint64_t> found =
        started_between(in.login.flow.server.addr, start_of(in.login).micros, in.login.ts.micros);
    std::erase_if(found, [&](std::uint64_t s) {
        Recent* o = recent(s);
        if (relays(in.login, o->login)) {
            // Reported before the login it passes on: the names it gave its server were the
            // relay's.
            if (!o->relay) {
                learn_names(o->login, false, false);
                learn_names(o->login, true, true);
                o->relay = true;
            }
            return true;
        }
        return o->chained || o->login.flow.server.addr == in.login.flow.client.addr;
    });
    for (const std::uint64_t s : found) {  // in report order
        Recent& o = *recent(s);
        mark_middle(o.login.flow.client.addr);
        recent(seq)->chained = true;
        o.chained = true;
        on_chain(in, o);
    }
}

void Analyzer::enrich(LoginEvent& l) const {
    if (l.auth != AuthKind::Kerberos && l.auth != AuthKind::Unknown) return;
    if (l.auth == AuthKind::Unknown && !l.user.empty()) return;  // an encrypted SQL login
    const Timestamp at = start_of(l);
    if (l.spn.empty()) l.spn = spn_for(l);
    if (l.auth != AuthKind::Kerberos) return;
    if (l.delegation == Tristate::Unknown) l.delegation = delegation_requested(l);
    if (!l.user.empty()) return;
    // The KDC names the client in clear in its answer: the TGS-REP for this login's SPN to this
    // client (the latest before the login) carries cname and crealm. Without one, a host that
    // got a TGT for exactly one principal (AS-REP) in the window.
    const KerberosEvent* rep = nullptr;
    const std::string spn = lower(without_realm(l.spn));
    const std::string* principal = nullptr;  // of the AS-REPs: the one, or nullptr
    bool several = false;
    each_kdc_newest(l.flow.client.addr, at, [&](const KdcEntry& e) {
        const KerberosEvent& k = e.ev;
        if (k.client.empty() || k.error_code != 0) return true;
        if (e.tgs_rep && !spn.empty() && e.service == spn) {
            rep = &k;  // the latest: it wins over the AS-REPs
            return false;
        }
        if (e.as_rep) {
            if (principal != nullptr && *principal != k.client) several = true;
            principal = &k.client;
        }
        return true;
    });
    if (!rep && (principal == nullptr || several)) return;
    const std::string& p = rep ? rep->client : *principal;
    const auto at_sign = p.rfind('@');
    l.user = p.substr(0, at_sign);
    if (at_sign != std::string::npos) l.domain = p.substr(at_sign + 1);
    l.user_source = UserSource::KdcReply;
}

void Analyzer::add_login(const LoginEvent& login) {
    add_login(LoginEvent(login));
}

void Analyzer::add_login(LoginEvent&& login) {
#if defined(__GLIBCXX__) && defined(__x86_64__)
    static_assert(sizeof(Recent) == sizeof(LoginEvent) + 24, "the login window's entry grew");
#endif
    resume();
    const LoginEvent& l = login;  // until it is moved into the window below
    tick(l.ts);
    forget();  // the cap on logins: before `in` below is looked up
    bool relayed = false;
    const Recent* in = find_inbound(l, &relayed);
    learn_names(l, relayed, true);

    const HopKey key = hop_of(l);
    auto row = hops_.find(key);
    if (row == hops_.end() && hops_.size() < opts_.max_summary_rows)
        row = hops_.try_emplace(key).first;
    if (row != hops_.end()) {
        HopRow& h = row->second;
        h.user = identity(l);
        ++h.count;
    } else {
        ++summary_overflow_;
    }

    // Moved, not copied, into the window (a LoginEvent is a dozen strings), and once: built in
    // its place.
    logins_.emplace_back(std::move(login), relayed);
    Recent& r = logins_.back();
    const LoginEvent& in_window = r.login;
    const std::uint64_t seq = base_seq_ + logins_kept() - 1;
    // Logins with a hidden outcome already reported that were open when this one started: the
    // candidates of its late link so far (offer_hidden adds those reported later).
    if (!in) {
        if (auto idx = inbound_.find(in_window.flow.client.addr); idx != inbound_.end()) {
            const Timestamp start = start_of(in_window);
            const auto& q = idx->second.hidden;
            for (auto it = q.rbegin(); it != q.rend() && it->second >= start.micros; ++it) {
                const Recent* h = recent(it->first);
                if (h != nullptr &&
                    hidden_was_open(h->login, hidden_end(h->login, h->closed), in_window, start) &&
                    better_inbound(it->first, r.hidden_in))
                    r.hidden_in = it->first;
            }
        }
    }
    by_client_[in_window.flow.client.addr].push_back(seq);
    {
        auto& v = by_client_start_[in_window.flow.client.addr];
        const std::pair<std::int64_t, std::uint64_t> e{start_of(in_window).micros, seq};
        // Nearly always the latest start: appended without the binary search, whose probes
        // across a busy client's long list were cache misses (perf: a seventh of add_login).
        if (v.empty() || !(e < v.back()))
            v.push_back(e);
        else
            v.insert(std::upper_bound(v.begin(), v.end(), e), e);
    }
    index_inbound(seq);
    if (auto [it, added] = by_flow_.try_emplace(in_window.flow, seq); !added) {
        const std::uint64_t back = seq - it->second;
        if (back <= std::numeric_limits<std::uint32_t>::max())
            r.back_on_flow = static_cast<std::uint32_t>(back);
        it->second = seq;
    }
    if (++adds_since_sweep_ >= kSweepEvery) sweep();
    wake_us_ =
        std::min(wake_us_, later(in_window.ts.micros, opts_.chain_window_us));  // its late link
    if (in) {
        mark_middle(in_window.flow.client.addr);
        const_cast<Recent*>(in)->chained = true;
        r.chained = true;
    }
    per_login_rules(r);
    if (in) on_chain(*in, r);
    if (in_window.outcome == Outcome::Success) link_answered_late(seq);
}

void Analyzer::add_kerberos(const KerberosEvent& k) {
    add_kerberos(KerberosEvent(k));
}

void Analyzer::add_kerberos(KerberosEvent&& krb) {
    resume();
    tick(krb.ts);
    forget();  // the cap on KDC exchanges
    saw_kdc_ = true;
    auto& mine = kdc_by_client_[krb.flow.client.addr];
    const std::int64_t latest =
        mine.empty() ? krb.ts.micros : std::max(kdc_at(mine.back()).latest_so_far, krb.ts.micros);
    mine.push_back(kdc_first_seq_ + kdcs_.size());
    kdcs_.emplace_back(std::move(krb));
    kdcs_.back().latest_so_far = latest;
    const KerberosEvent& k = kdcs_.back().ev;
    wake_us_ = std::min(wake_us_, later(k.ts.micros, horizon_us() + 1));
    const KdcFacts facts{k, *this};
    for (const KdcRule rule : kdc_rules())
        emit(rule(facts));
    if (++adds_since_sweep_ >= kSweepEvery) sweep();
}

void Analyzer::add_server_error(const ServerErrorEvent& e) {
    resume();
    tick(e.ts);
    const ServerErrorFacts facts{e, *this};
    for (const ServerErrorRule rule : server_error_rules())
        emit(rule(facts));
}

const LoginEvent* Analyzer::login_on(const FlowKey& flow) const {
    auto it = by_flow_.find(flow);
    if (it == by_flow_.end()) return nullptr;
    const Recent* r = recent(it->second);
    return r != nullptr ? &r->login : nullptr;
}

const LoginEvent* Analyzer::failed_login_from(const IpAddress& client, Timestamp at) const {
    auto it = by_client_.find(client);
    if (it == by_client_.end()) return nullptr;
    for (auto seq = it->second.rbegin(); seq != it->second.rend(); ++seq) {
        const Recent* r = recent(*seq);
        if (r == nullptr || at.micros - r->login.ts.micros > opts_.chain_window_us) break;
        if (r->login.outcome != Outcome::Success && r->login.ts <= at) return &r->login;
    }
    return nullptr;
}

void Analyzer::connection_closed(const FlowKey& flow, Timestamp ts) {
    resume();
    tick(ts);
    auto it = by_flow_.find(flow);
    if (it == by_flow_.end()) return;
    const std::uint64_t latest = it->second;
    by_flow_.erase(it);  // a reused 4-tuple starts a new connection
    auto close = [&](std::uint64_t seq) {
        if (Recent* r = recent(seq); r && r->closed.micros == 0) {
            r->closed = ts;
            inbound_closed(seq);
        }
    };
    const Recent* r = recent(latest);
    if (r == nullptr) return;
    if (r->back_on_flow == 0) {  // its only login, as nearly always: no list to make
        close(latest);
        return;
    }
    // Several: gathered latest first along the chain, closed oldest first (the order they came in).
    std::vector<std::uint64_t> seqs;
    for (std::uint64_t seq = latest; r != nullptr; seq = r->prev_on_flow(seq), r = recent(seq))
        seqs.push_back(seq);
    for (auto s = seqs.rbegin(); s != seqs.rend(); ++s)
        close(*s);
}

void Analyzer::per_login_rules(const Recent& r) {
    const LoginFacts facts{r.login, *this, opts_.proxy,
                           r.chained || middle_servers_.count(r.login.flow.client.addr) != 0};
    for (const LoginRule rule : login_rules())
        emit(rule(facts));
}

void Analyzer::on_chain(const Recent& inbound, const Recent& outbound) {
    const LoginEvent& in = inbound.login;
    const LoginEvent& out = outbound.login;
    const std::string row_key = to_string(in.flow.client.addr) + ">" + to_string(in.flow.server) +
                                ">" + to_string(out.flow.server) + "/" + to_string(in.auth) + "/" +
                                to_string(out.auth) + "/" + to_string(out.outcome) +
                                (out.anonymous ? "/anon" : "") +
                                (out.prelogin_only ? "/no-login7" : "");
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
        c.second_prelogin_only = out.prelogin_only;
        c.user = identity(in);
        c.second_user = identity(out);
        ++c.count;
    } else {
        ++summary_overflow_;
    }

    const ChainFacts facts{in, out, *this};
    for (const ChainRule rule : chain_rules()) {
        std::optional<Verdict> v = rule(facts);
        if (!v) continue;
        emit(std::move(v));
        return;  // one verdict per chain
    }
}

void Analyzer::finish() {
    // End of input: the late verdicts still waiting for their window run now, in the order their
    // windows would have ended; what they no longer may see is only counted as forgotten.
    resume();
    finishing_ = true;
    settle(std::numeric_limits<std::int64_t>::max(), 0);
}

void Analyzer::resume() {
    if (!finishing_) return;
    finishing_ = false;
    logins_.drop_front(logins_gone_);
    logins_gone_ = 0;
    kdcs_.drop_front(kdc_gone_);
    kdc_first_seq_ += kdc_gone_;
    kdc_gone_ = 0;
    for (auto it = kdc_by_client_.begin(); it != kdc_by_client_.end();) {
        while (!it->second.empty() && it->second.front() < kdc_first_seq_)
            it->second.pop_front();
        it = it->second.empty() ? kdc_by_client_.erase(it) : std::next(it);
    }
}

void Analyzer::late_link(Recent& r) {
    // Logins whose outcome was hidden by TLS are reported when their connection ends, after the
    // outbound logins they caused: once an outbound login's chaining window has passed, link it
    // to such a login if one was open when it started.
    // A successful inbound login that qualifies was found when the login was reported; only one
    // with a hidden outcome can have come since (offered to it by offer_hidden).
    if (r.chained || r.hidden_in == kNoLogin) return;
    if (Recent* in = recent(r.hidden_in)) {
        mark_middle(r.login.flow.client.addr);
        in->chained = true;
        r.chained = true;
        on_chain(*in, r);
    }
}

void Analyzer::late_verdicts(const Recent& r) {
    // Two chaining windows after the login: whether its server has been seen acting as a middle
    // server, and whether any port-88 traffic has been seen, is known by then.
    const LateFacts facts{r.login, *this, r.chained,
                          middle_servers_.count(r.login.flow.server.addr) != 0, saw_kdc_};
    for (const LateRule rule : late_rules())
        emit(rule(facts));
}

void Analyzer::advance(Timestamp now) {
    resume();
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
    if (link_next_ < base_seq_ + logins_kept())
        at[0] =
            std::min(kNever - 1, later(recent(link_next_)->login.ts.micros, opts_.chain_window_us));
    if (verdict_next_ < link_next_)
        at[1] = std::min(kNever - 1,
                         later(recent(verdict_next_)->login.ts.micros, 2 * opts_.chain_window_us));
    if (logins_kept() != 0)
        at[2] =
            std::min(kNever - 1, later(logins_[logins_gone_].login.ts.micros, horizon_us() + 1));
    if (kdc_kept() != 0)
        at[3] = std::min(kNever - 1, later(kdcs_[kdc_gone_].ev.ts.micros, horizon_us() + 1));
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
    if (finishing_)
        ++logins_gone_;
    else
        logins_.pop_front();
    ++base_seq_;
}

void Analyzer::drop_kdc() {
    if (finishing_) {
        ++kdc_gone_;
        return;
    }
    // The oldest exchange is its client's oldest.
    auto mine = kdc_by_client_.find(kdcs_.front().ev.flow.client.addr);
    mine->second.pop_front();
    if (mine->second.empty()) kdc_by_client_.erase(mine);
    kdcs_.pop_front();
    ++kdc_first_seq_;
}

void Analyzer::forget() {
    // The caps on logins and KDC exchanges (those past their horizon went in settle()).
    while (logins_kept() > opts_.max_recent)
        drop_login(now_.micros);
    while (kdc_kept() > opts_.max_recent)
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
    s.recent_logins = logins_kept();
    s.kdc_exchanges = kdc_kept();
    for (const auto& [addr, seqs] : by_client_)
        s.index_entries += seqs.size();
    for (const auto& [addr, starts] : by_client_start_)
        s.index_entries += starts.size();
    for (const auto& [addr, ib] : inbound_)
        s.index_entries += ib.open.size() + ib.closed.size() + ib.hidden.size();
    s.index_entries += by_flow_.size();
    s.pending_logins = static_cast<std::size_t>(base_seq_ + logins_kept() - verdict_next_);
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
    drop_stale(by_client_);
    for (auto it = by_client_start_.begin(); it != by_client_start_.end();) {
        std::erase_if(it->second, [this](const auto& e) { return e.second < base_seq_; });
        it = it->second.empty() ? by_client_start_.erase(it) : std::next(it);
    }
    for (auto it = inbound_.begin(); it != inbound_.end();) {
        Inbound& ib = it->second;
        std::erase_if(ib.open, [this](std::uint64_t s) { return s < base_seq_; });
        for (auto* q : {&ib.closed, &ib.hidden})
            while (!q->empty() && q->front().first < base_seq_)
                q->pop_front();
        const bool empty = ib.open.empty() && ib.closed.empty() && ib.hidden.empty();
        it = empty ? inbound_.erase(it) : std::next(it);
    }
    // A connection whose latest login is forgotten has all of them forgotten.
    std::erase_if(by_flow_, [this](const auto& e) { return e.second < base_seq_; });
}

std::size_t Analyzer::HopKeyHash::operator()(const HopKey& k) const {
    const IpAddressHash ip;
    std::uint64_t h = ip(k.client) * 0x9E3779B97F4A7C15ULL;
    h ^= ip(k.server.addr) + 0xBF58476D1CE4E5B9ULL + (h << 6) + (h >> 2);
    const std::uint64_t rest = std::uint64_t{k.server.port} << 24 |
                               std::uint64_t{static_cast<std::uint8_t>(k.auth)} << 16 |
                               std::uint64_t{static_cast<std::uint8_t>(k.outcome)} << 8 |
                               std::uint64_t{k.anonymous};
    h = (h ^ rest) * 0x94D049BB133111EBULL;
    return static_cast<std::size_t>(h ^ (h >> 31));
}

std::vector<HopSummary> Analyzer::hop_summary() const {
    // In the order of the rows' keys as text (the order of this summary since it was kept in a
    // std::map of those strings).
    std::vector<std::pair<std::string, const std::pair<const HopKey, HopRow>*>> rows;
    rows.reserve(hops_.size());
    for (const auto& row : hops_)
        rows.emplace_back(hop_key(row.first), &row);
    std::sort(rows.begin(), rows.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<HopSummary> out;
    out.reserve(rows.size());
    for (const auto& [text, row] : rows)
        out.push_back(HopSummary{row->first, row->second.user, row->second.count});
    return out;
}

std::vector<ChainSummary> Analyzer::chain_summary() const {
    std::vector<ChainSummary> out;
    for (const auto& [k, v] : chains_)
        out.push_back(v);
    return out;
}

}  // namespace hopscope::analysis
