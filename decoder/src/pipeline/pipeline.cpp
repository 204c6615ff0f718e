#include "hopscope/pipeline/pipeline.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "hopscope/auth/kerberos.hpp"
#include "hopscope/auth/kerberos_enc.hpp"
#include "hopscope/auth/ntlm.hpp"
#include "hopscope/auth/sspi.hpp"
#include "hopscope/session/conversation.hpp"
#include "hopscope/tds/login7.hpp"
#include "hopscope/tls/tls.hpp"

namespace hopscope::pipeline {
namespace {

/// FlowKey equality for the per-packet flow lookup: the same as FlowKey's defaulted ==, with the
/// 16-byte address compares as fixed-size memcmp calls the compiler inlines (the defaulted one
/// calls libc's memcmp for each address).
struct FlowKeyEq {
    static bool same(const IpAddress& a, const IpAddress& b) noexcept {
        return a.v6 == b.v6 && std::memcmp(a.bytes.data(), b.bytes.data(), 16) == 0;
    }
    bool operator()(const FlowKey& a, const FlowKey& b) const noexcept {
        return a.client.port == b.client.port && a.server.port == b.server.port &&
               a.transport == b.transport && same(a.client.addr, b.client.addr) &&
               same(a.server.addr, b.server.addr);
    }
};

using analysis::KerberosEvent;
using analysis::LoginEvent;
using analysis::Outcome;

constexpr std::size_t kMaxStatement = 512;
constexpr std::size_t kMaxPendingKdcRequests = 64;

Outcome map_outcome(session::LoginOutcome o) {
    switch (o) {
        case session::LoginOutcome::Success:
            return Outcome::Success;
        case session::LoginOutcome::Failure:
            return Outcome::Failure;
        case session::LoginOutcome::Incomplete:
            return Outcome::Incomplete;
    }
    return Outcome::Incomplete;
}

std::vector<std::string> split_names(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < s.size()) {
        std::size_t end = s.find('|', start);
        if (end == std::string::npos) end = s.size();
        if (end > start) out.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

std::string cap(std::string s) {
    while (!s.empty() &&
           (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
        s.pop_back();
    if (s.size() > kMaxStatement) {
        s.resize(kMaxStatement);
        s += "...";
    }
    return s;
}

/// What the SSPI blobs of one login attempt said, folded as they arrive. Holds names, lengths
/// and codes only: the blobs themselves are not kept.
struct AuthFold {
    bool any = false;
    bool decoded = false;
    bool kerberos = false;
    bool ntlm = false;
    bool negoex = false;
    std::string wrapper;
    std::string spn;
    std::string realm;
    std::optional<std::int32_t> etype;
    std::int32_t krb_error = 0;
    /// On the heap (NTLM logins only): every connection holds an AuthFold, and an empty optional
    /// of it took 488 bytes of each (a tenth of what the proxy keeps for an idle connection).
    std::unique_ptr<auth::NtlmAuthenticate> ntlm_auth;
    std::string server_dns_name;                          ///< NTLM CHALLENGE MsvAvDnsComputerName
    std::shared_ptr<const analysis::KeytabFacts> keytab;  ///< the first AP-REQ, decrypted
};

void fold(AuthFold& f, const auth::SspiInfo& info) {
    f.any = true;
    if (info.mechanism == auth::SspiMechanism::Unknown) return;
    f.decoded = true;
    if (f.wrapper.empty()) f.wrapper = auth::to_string(info.wrapper);
    switch (info.mechanism) {
        case auth::SspiMechanism::Kerberos:
            f.kerberos = true;
            break;
        case auth::SspiMechanism::Ntlm:
            f.ntlm = true;
            break;
        case auth::SspiMechanism::NegoEx:
            f.negoex = true;
            break;
        case auth::SspiMechanism::Unknown:
            break;
    }
    if (info.kerberos) {
        if (const auto* ap = std::get_if<auth::ApReq>(&info.kerberos->body)) {
            f.spn = ap->ticket.sname.str();
            f.realm = ap->ticket.realm;
            f.etype = ap->ticket.enc_part.etype;
        } else if (const auto* err = std::get_if<auth::KrbError>(&info.kerberos->body)) {
            f.krb_error = err->error_code;
            if (f.spn.empty() && err->sname) f.spn = err->sname->str();
        }
    }
    if (info.ntlm) {
        if (const auto* a = std::get_if<auth::NtlmAuthenticate>(&info.ntlm->msg))
            f.ntlm_auth = std::make_unique<auth::NtlmAuthenticate>(*a);
        if (const auto* ch = std::get_if<auth::NtlmChallenge>(&info.ntlm->msg))
            if (ch->target_info.dns_computer) f.server_dns_name = *ch->target_info.dns_computer;
    }
}

/// "20261126150005Z" -> "2026-11-26T15:00:05Z"; anything else as it is.
std::string kerberos_time_text(const std::string& t) {
    if (t.size() != 15 || t.back() != 'Z') return t;
    return t.substr(0, 4) + "-" + t.substr(4, 2) + "-" + t.substr(6, 2) + "T" + t.substr(8, 2) +
           ":" + t.substr(10, 2) + ":" + t.substr(12, 2) + "Z";
}

/// What an event shows of a decrypted ticket (a login's: KeytabFacts; a KDC exchange's:
/// KdcTicketFacts): its delegation flags, client, time, session enctype and PAC delegation info.
template <typename Shown>
void show_ticket(const auth::TicketFacts& d, Shown& k) {
    k.forwardable = (d.flags & auth::ticket_flag::Forwardable) != 0;
    k.forwarded = (d.flags & auth::ticket_flag::Forwarded) != 0;
    k.ok_as_delegate = (d.flags & auth::ticket_flag::OkAsDelegate) != 0;
    k.client = d.client;
    k.authtime = kerberos_time_text(d.authtime);
    k.enctype = auth::etype_name(d.session_etype);
    if (d.s4u2proxy_target) k.s4u2proxy_target = *d.s4u2proxy_target;
    k.transited_services = d.s4u_transited;
}

/// The facts a login event may show of a decrypted AP-REQ: flags, names, times and enctypes.
analysis::KeytabFacts keytab_facts(const auth::ApReqFacts& d, analysis::Position at) {
    analysis::KeytabFacts k;
    k.ap_req_at = at;
    k.ticket_decrypted = d.ticket.decrypted;
    if (d.ticket.decrypted) show_ticket(d.ticket, k);
    k.authenticator_decrypted = d.authenticator_decrypted;
    k.deleg = d.deleg;
    k.channel_bindings = d.channel_binding;
    k.krb_cred = d.krb_cred;
    k.forwarded_tgt = d.forwarded_tgt;
    if (d.forwarded_tgt_flags)
        k.forwarded_tgt_flags = split_names(auth::ticket_flags_to_string(*d.forwarded_tgt_flags));
    k.forwarded_tgt_client = d.forwarded_tgt_client;
    if (d.problem) k.problem = auth::to_string(*d.problem);
    return k;
}

/// The facts a kerberos event may show of a ticket decrypted on port 88.
std::shared_ptr<const analysis::KdcTicketFacts> kdc_ticket_facts(const auth::TicketFacts& d) {
    auto k = std::make_shared<analysis::KdcTicketFacts>();
    k->decrypted = d.decrypted;
    if (d.decrypted) {
        show_ticket(d, *k);
        k->flags = split_names(auth::ticket_flags_to_string(d.flags));
    }
    if (d.problem) k->problem = auth::to_string(*d.problem);
    return k;
}

bool fast_armored(const std::vector<auth::PaData>& padata) {
    return std::any_of(padata.begin(), padata.end(),
                       [](const auth::PaData& p) { return p.type == auth::pa_type::FxFast; });
}

}  // namespace

struct Pipeline::Impl : analysis::FindingSink {
    struct TdsFlow;
    /// A flow to or from the KDC: a TCP connection, or UDP datagrams between two ports. Kept in
    /// kdc_flows' node itself (one allocation per flow; a UDP exchange is a flow of its own).
    struct KdcFlow {
        explicit KdcFlow(const FlowKey& k) : key(k) {}
        FlowKey key;
        /// TCP only: the record framing of each direction. On the heap, made with the first
        /// bytes: most KDC flows of a busy capture are UDP exchanges (a flow each, until its
        /// answer), which never use it.
        struct Tcp {
            auth::KrbTcpFramer framers[2];
            /// Per direction: stream offset of the record the framer is assembling (or of the
            /// next one).
            std::uint64_t record_offset[2] = {0, 0};
        };
        std::unique_ptr<Tcp> tcp;
        /// Requests waiting for their answer, oldest first: usually none or one (a vector,
        /// which allocates nothing until a request comes, where a deque allocated two blocks for
        /// every flow).
        std::vector<KerberosEvent> pending;
        Timestamp last{};          ///< UDP: time of the latest datagram
        KdcFlow* older = nullptr;  ///< UDP: its neighbours in the list of UDP flows (udp_oldest)
        KdcFlow* newer = nullptr;
    };

    Impl(EventSink& s, Options o)
        : sink(s), options(std::move(o)), analyzer(*this, options.analyzer) {}

    void on_finding(const analysis::Finding& f) override { sink.on_finding(f); }

    bool is_kerberos(const FlowKey& k) const {
        auto& p = options.kerberos_ports;
        return std::find(p.begin(), p.end(), k.server.port) != p.end() ||
               std::find(p.begin(), p.end(), k.client.port) != p.end();
    }

    TdsFlow& tds(const FlowKey& k, bool handshake_seen);
    KdcFlow& kdc(const FlowKey& k);
    void kerberos_message(KdcFlow& f, Direction dir, Timestamp ts, Bytes msg, Evidence ev);
    void emit_kerberos(KerberosEvent ev);

    void advance(Timestamp ts);
    bool idle(const KdcFlow& f, Timestamp now) const;

    // The analysis side (analyzer and EventSink): each call is made now, or relayed
    // (Options::relay) with the pending clock tick and made later by replay(); apply() is the
    // one place that makes them.
    void analysis(AnalysisCall&& c) {
        if (options.relay == nullptr) {
            apply(c);
            return;
        }
        c.tick = std::exchange(pending_tick, std::nullopt);
        options.relay->relay(std::move(c));
    }
    /// A login, server error or KDC exchange: its kind follows from its type.
    template <typename Event>
    void event(Event&& e) {
        using E = std::decay_t<Event>;
        static_assert(!std::is_lvalue_reference_v<Event>, "an event is moved in");
        if (options.relay == nullptr) {
            // Made now: without the AnalysisCall, one move of the event fewer (a login event
            // is 700 bytes and two dozen strings, moved three times on its way to the window).
            made(e);
            return;
        }
        AnalysisCall c;
        c.kind = std::is_same_v<E, analysis::LoginEvent>         ? AnalysisCall::Kind::Login
                 : std::is_same_v<E, analysis::ServerErrorEvent> ? AnalysisCall::Kind::ServerError
                                                                 : AnalysisCall::Kind::Kerberos;
        static_assert(std::is_same_v<E, analysis::LoginEvent> ||
                      std::is_same_v<E, analysis::ServerErrorEvent> ||
                      std::is_same_v<E, KerberosEvent>);
        c.event = std::move(e);
        analysis(std::move(c));
    }
    void apply(AnalysisCall& c);
    /// apply()'s work for one event, which it may move from.
    void made(analysis::LoginEvent& l) {
        analyzer.enrich(l);
        sink.on_login(l);
        analyzer.add_login(std::move(l));
    }
    void made(const analysis::ServerErrorEvent& e) {
        sink.on_server_error(e);
        analyzer.add_server_error(e);
    }
    void made(KerberosEvent& k) {
        sink.on_kerberos(k);
        analyzer.add_kerberos(std::move(k));
    }
    void expire_udp_kdc(Timestamp now);

    EventSink& sink;
    Options options;
    analysis::Analyzer analyzer;
    Counters counters;
    std::unordered_map<FlowKey, std::unique_ptr<TdsFlow>, FlowKeyHash, FlowKeyEq> tds_flows;
    /// The flow of the previous tds() call: most packets belong to the same connection as the one
    /// before them (84 % in the generated benchmark capture), which then costs one key compare
    /// instead of a hash and a table lookup. Cleared when that flow is erased.
    FlowKey last_key{};
    TdsFlow* last_tds = nullptr;
    std::unordered_map<FlowKey, KdcFlow, FlowKeyHash, FlowKeyEq> kdc_flows;
    Timestamp clock{};  ///< the latest time of a stream event or a tick
    /// The UDP Kerberos flows, a list through their `older`/`newer` links from the least to the
    /// most recently used (no list node of its own per flow). UDP has no close: a flow is
    /// dropped once idle (a TCP one ends with its connection, which the front-end closes).
    KdcFlow* udp_oldest = nullptr;
    KdcFlow* udp_newest = nullptr;
    void udp_unlink(KdcFlow& f) {
        (f.older != nullptr ? f.older->newer : udp_oldest) = f.newer;
        (f.newer != nullptr ? f.newer->older : udp_newest) = f.older;
        f.older = f.newer = nullptr;
    }
    void udp_append(KdcFlow& f) {
        f.older = udp_newest;
        f.newer = nullptr;
        (udp_newest != nullptr ? udp_newest->newer : udp_oldest) = &f;
        udp_newest = &f;
    }
    std::optional<Timestamp> pending_tick;  ///< relay: a clock tick not yet relayed
};

struct Pipeline::Impl::TdsFlow : session::ConversationCallbacks {
    TdsFlow(Impl& p, const FlowKey& k, bool handshake_seen)
        : impl(p), key(k), conv(*this, make_options(handshake_seen, p.options.tls_keys)) {}

    static session::Conversation::Options make_options(bool handshake_seen,
                                                       const tls::KeySource* keys) {
        session::Conversation::Options o;
        o.handshake_seen = handshake_seen;
        o.tls_keys = keys;
        o.row_events = false;     // no rule looks at single rows
        o.info_messages = false;  // on_server_message takes errors only
        // A request's SQL text is converted only when an error follows it (last_statement).
        o.request_limits.convert_text = false;
        return o;
    }

    void on_auth_blob(const session::FactContext& ctx, session::AuthBlobSource,
                      Bytes blob) override {
        auth::SspiInfo info = auth::classify_sspi(blob);
        if (!info.decoded.ok()) ++impl.counters.decode_problems;
        fold(attempt, info);
        // With a keytab: decrypt the attempt's AP-REQ now, while `blob` (which its cipher texts
        // view) is alive.
        const auth::KerberosKeys* keys = impl.options.kerberos_keys;
        if (keys && !attempt.keytab && info.kerberos)
            if (const auto* ap = std::get_if<auth::ApReq>(&info.kerberos->body))
                attempt.keytab = std::make_shared<const analysis::KeytabFacts>(keytab_facts(
                    auth::decrypt_ap_req(*ap, *keys), analysis::position(ctx.ev, ctx.dir)));
    }

    // The client's last request is kept as it came and its text converted when an error needs
    // it (last_statement): most requests are followed by none. The copy reuses the buffer of
    // the request before.
    void on_sql_batch(const session::FactContext&, const tds::SqlBatch& b,
                      const DecodeResult&) override {
        request_raw.assign(b.utf16.begin(), b.utf16.end());
        request_unicode = true;
        request_proc.clear();
        request_pending = true;
    }

    void on_rpc(const session::FactContext&, const tds::RpcRequest& r,
                const DecodeResult&) override {
        if (r.calls.empty()) return;
        const auto& c = r.calls.front();
        request_raw.assign(c.statement_raw.begin(), c.statement_raw.end());
        request_unicode = c.statement_unicode;
        request_proc = "exec " + c.proc_name;
        request_pending = true;
    }

    /// The client's last SQL batch or RPC before now (capped, passwords masked); for an RPC
    /// without SQL text, "exec " and its procedure.
    const std::string& last_statement() {
        if (request_pending) {
            std::string text = tds::sql_text(request_raw, request_unicode);
            statement = cap(text.empty() && !request_proc.empty() ? request_proc : text);
            request_pending = false;
        }
        return statement;
    }

    void on_server_message(const session::FactContext& ctx, const tds::ServerMessage& m) override {
        if (!m.is_error || !logged_in) return;
        analysis::ServerErrorEvent e;
        e.ts = ctx.ts;
        e.flow = key;
        e.at = analysis::position(ctx.ev, ctx.dir);
        e.error = analysis::ServerError{m.number, m.state, m.severity, m.text, m.server};
        e.statement = last_statement();
        ++impl.counters.server_errors;
        impl.event(std::move(e));
    }

    void on_problem(const session::FactContext&, DecodeStatus s, const DecodeError&) override {
        if (s == DecodeStatus::Malformed) ++impl.counters.decode_problems;
    }
    void on_resync(const session::FactContext&, std::uint64_t) override { ++impl.counters.resyncs; }
    void on_gap(const session::FactContext&, std::uint64_t) override { ++impl.counters.gaps; }
    void on_encrypted(const session::FactContext&, const char*, std::size_t) override {
        ++impl.counters.encrypted_records;
    }
    void on_decrypted(const session::FactContext&, const char*, std::size_t) override {
        ++impl.counters.decrypted_records;
    }

    void on_login(const session::LoginRecord& r) override {
        LoginEvent l;
        l.ts = r.ended;
        l.started = r.started;
        l.flow = key;
        l.first_at = analysis::position(r.first_evidence, r.first_dir);
        l.last_at = analysis::position(r.last_evidence, r.last_dir);
        l.outcome = map_outcome(r.outcome);
        l.encryption = r.encryption;
        l.encryption_downgraded = r.encryption_downgraded;
        l.tls_version = r.tls_version;
        l.server_name = r.server_name;
        if (!r.tls_sni.empty()) l.server_aliases.push_back(r.tls_sni);
        if (!attempt.server_dns_name.empty()) l.server_aliases.push_back(attempt.server_dns_name);
        l.host_name = r.host;
        l.app_name = r.app;
        l.library = r.library;
        l.tds_version = r.tds_version;
        l.workstation = r.host;
        l.sspi_visible = attempt.decoded;
        if (!r.routing_server.empty()) l.routing = r.routing_server;

        switch (r.auth) {
            case AuthKind::Sql:
                l.auth = AuthKind::Sql;
                l.user = r.user;
                if (!l.user.empty()) l.user_source = analysis::UserSource::Login7;
                break;
            case AuthKind::FedAuth:
                l.auth = AuthKind::FedAuth;
                l.auth_detail = "fedauth";
                break;
            case AuthKind::Integrated:
            case AuthKind::Unknown:
            case AuthKind::Ntlm:      // not said by TDS alone
            case AuthKind::Kerberos:  // not said by TDS alone
                if (attempt.kerberos) {
                    l.auth = AuthKind::Kerberos;
                    l.auth_detail = attempt.wrapper + "/kerberos";
                } else if (attempt.ntlm) {
                    l.auth = AuthKind::Ntlm;
                    l.auth_detail = attempt.wrapper + "/ntlm";
                } else {
                    l.auth = AuthKind::Unknown;
                    l.auth_detail =
                        r.auth == AuthKind::Integrated
                            ? (attempt.negoex ? "negoex" : "integrated, SSPI not decodable")
                            : r.auth_detail;
                }
                break;
        }
        if (l.auth == AuthKind::Kerberos) {
            l.spn = attempt.spn;
            l.domain = attempt.realm;
            l.kerberos_etype = attempt.etype;
            l.kerberos_error = attempt.krb_error;
            l.keytab = std::move(attempt.keytab);
            // The decrypted ticket names its client: the definitive source of the user.
            if (l.keytab && !l.keytab->client.empty()) {
                const std::string& p = l.keytab->client;
                const auto at_sign = p.rfind('@');
                l.user = p.substr(0, at_sign);
                l.domain = at_sign == std::string::npos ? std::string() : p.substr(at_sign + 1);
                l.user_source = analysis::UserSource::Keytab;
            }
        }
        if (l.auth == AuthKind::Ntlm && attempt.ntlm_auth) {
            const auth::NtlmAuthenticate& a = *attempt.ntlm_auth;
            l.user = a.user;
            l.domain = a.domain;
            if (!l.user.empty()) l.user_source = analysis::UserSource::Ntlm;
            if (!a.workstation.empty()) l.workstation = a.workstation;
            l.anonymous = a.anonymous;
            l.ntlm_version = a.response_kind == auth::NtlmResponseKind::V1   ? 1
                             : a.response_kind == auth::NtlmResponseKind::V2 ? 2
                                                                             : 0;
            if (l.ntlm_version) l.auth_detail += "v" + std::to_string(l.ntlm_version);
            if (a.v2_av_pairs && a.v2_av_pairs->target_name) l.spn = *a.v2_av_pairs->target_name;
            l.ntlm_channel_bindings =
                a.v2_av_pairs && a.v2_av_pairs->channel_bindings == auth::ChannelBindings::Present;
        }
        l.tls_decrypted = r.tls_decrypted;
        // PRELOGIN and then nothing: no LOGIN7, no SSPI, no TLS handshake that could hide one.
        l.prelogin_only = l.auth == AuthKind::Unknown && r.client_encryption.has_value() &&
                          !r.login7_seen && !r.login7_encrypted && r.auth_blobs.empty() &&
                          r.tls_version == 0 && r.encryption != tds::EncryptionMode::Full &&
                          r.encryption != tds::EncryptionMode::Strict &&
                          l.outcome == Outcome::Incomplete;
        if (r.error)
            l.error = analysis::ServerError{r.error->number, r.error->state, r.error->severity,
                                            r.error->text, r.error->server};
        if (l.outcome == Outcome::Success) logged_in = true;
        attempt = AuthFold{};
        ++impl.counters.logins;
        impl.event(std::move(l));
    }

    Impl& impl;
    FlowKey key;
    session::Conversation conv;
    AuthFold attempt;
    std::string statement;
    /// The last request's text when it came after `statement`'s (see on_sql_batch): at most
    /// RequestLimits::max_text_chars units (8 KiB), all of which the masking needs to give the
    /// same 512 bytes as before (a masked literal pulls later text into them).
    std::vector<std::uint8_t> request_raw;
    bool request_unicode = true;
    std::string request_proc;  ///< "exec " and the RPC's procedure; empty for a SQL batch
    bool request_pending = false;
    bool logged_in = false;
};

/// A UDP Kerberos flow without a datagram for longer than options.kdc_udp_idle_us (timestamps
/// come from captures and can be anything: no overflow).
inline bool Pipeline::Impl::idle(const KdcFlow& f, Timestamp now) const {
    std::int64_t until = 0;
    return !__builtin_add_overflow(f.last.micros, options.kdc_udp_idle_us, &until) &&
           now.micros > until;
}

/// Moves the clock to `ts` (every stream event, and ticks): UDP Kerberos flows idle for longer
/// than options.kdc_udp_idle_us are dropped, and the analyzer runs what has fallen due. A
/// comparison or two when nothing is due.
inline void Pipeline::Impl::advance(Timestamp ts) {
    if (!(clock < ts)) return;
    clock = ts;
    if (udp_oldest != nullptr && idle(*udp_oldest, ts)) expire_udp_kdc(ts);
    if (options.relay)
        pending_tick = ts;
    else
        analyzer.tick(ts);
}

Pipeline::Impl::TdsFlow& Pipeline::Impl::tds(const FlowKey& k, bool handshake_seen) {
    if (last_tds != nullptr && FlowKeyEq{}(last_key, k)) return *last_tds;
    auto it = tds_flows.find(k);
    if (it == tds_flows.end()) {
        ++counters.tds_connections;
        auto flow = std::make_unique<TdsFlow>(*this, k, handshake_seen);
        it = tds_flows.emplace(k, std::move(flow)).first;
    }
    last_key = k;
    last_tds = it->second.get();
    return *last_tds;
}

Pipeline::Impl::KdcFlow& Pipeline::Impl::kdc(const FlowKey& k) {
    auto it = kdc_flows.find(k);
    if (it != kdc_flows.end()) return it->second;
    ++counters.kerberos_flows;
    KdcFlow& f = kdc_flows.try_emplace(k, k).first->second;
    if (k.transport == Transport::Udp) udp_append(f);
    return f;
}

void Pipeline::Impl::expire_udp_kdc(Timestamp now) {
    // Its unanswered requests are reported, as when a TCP connection to the KDC ends. Flows
    // that expire together do so in FlowKey order (like the front-end's closes): the order of
    // their events does not depend on how the flows were sharded (analyze --threads).
    std::vector<std::pair<FlowKey, std::vector<KerberosEvent>>> expired;
    while (udp_oldest != nullptr && idle(*udp_oldest, now)) {
        KdcFlow& f = *udp_oldest;
        udp_unlink(f);
        if (!f.pending.empty()) expired.emplace_back(f.key, std::move(f.pending));
        kdc_flows.erase(f.key);
    }
    std::sort(expired.begin(), expired.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (auto& [key, pending] : expired)
        for (auto& k : pending)
            emit_kerberos(std::move(k));
}

void Pipeline::Impl::emit_kerberos(KerberosEvent ev) {
    event(std::move(ev));
}

void Pipeline::Impl::kerberos_message(KdcFlow& f, Direction dir, Timestamp ts, Bytes msg,
                                      Evidence ev) {
    auth::KerberosMessage m;
    // Not the AP-REQ inside a TGS-REQ's PA-TGS-REQ: nothing here reads it (the TGT and the
    // authenticator, both encrypted; the event keeps the PA-DATA types), and decoding it was
    // about 3 % of the instructions on login-dense traffic (callgrind, 20 MB). A damaged one no
    // longer makes the exchange a decode problem: the exchange is reported.
    if (!auth::parse_kerberos(msg, m, auth::KerberosParse{.tgs_ap_req = false}).ok()) {
        ++counters.decode_problems;
        return;
    }
    ++counters.kerberos_messages;
    if (auto* req = std::get_if<auth::KdcReq>(&m.body)) {
        KerberosEvent k;
        k.ts = ts;
        k.flow = f.key;
        if (dir == Direction::ServerToClient) std::swap(k.flow.client, k.flow.server);
        k.request_at = analysis::position(ev, Direction::ClientToServer);
        k.request = analysis::KrbMessageName::of_type(req->msg_type);
        if (req->cname) k.client = req->cname->at(req->realm);
        if (req->sname) k.sname = std::move(req->sname->text);  // not read below
        k.realm = std::move(req->realm);                        // not read below
        k.kdc_options = req->kdc_options;
        k.etypes = std::move(req->etypes);  // not read below
        k.padata.reserve(req->padata.size());
        for (const auto& p : req->padata) {
            k.padata.push_back(p.type);
            if (p.for_user)
                k.extra_to_set().s4u_user = p.for_user->user_name.at(p.for_user->user_realm);
        }
        for (const auto& t : req->additional_tickets)
            k.extra_to_set().additional_ticket_snames.push_back(t.sname.str());
        // With a keytab: S4U2Proxy's evidence ticket (the user's ticket to the requester, in
        // its service key), outside any FAST armor. Decrypted now, while `msg` lives.
        if (const auth::KerberosKeys* keys = options.kerberos_keys) {
            if (fast_armored(req->padata)) k.extra_to_set().fast_armored = true;
            if ((req->kdc_options & auth::kdc_option::CnameInAddlTkt) != 0 &&
                !req->additional_tickets.empty())
                k.extra_to_set().evidence_ticket = kdc_ticket_facts(auth::decrypt_ticket(
                    req->additional_tickets.front(), *keys, "evidence ticket"));
        }
        // Bounded: a flow of requests that are never answered reports the oldest unanswered.
        if (f.pending.size() >= kMaxPendingKdcRequests) {
            emit_kerberos(std::move(f.pending.front()));
            f.pending.erase(f.pending.begin());
        }
        f.pending.push_back(std::move(k));
        return;
    }
    // An answer: pair it with the oldest open request of this flow.
    KerberosEvent k;
    if (!f.pending.empty()) {
        k = std::move(f.pending.front());
        f.pending.erase(f.pending.begin());
        // Its room goes back now, not when the flow ends: a TCP connection to the KDC can stay
        // open long after its exchanges (when UDP flows were kept for kdc_udp_idle_us after their
        // answer, the room of their requests held with them was 11 MB of the 106 MB heap peak on
        // 200 MB of login-dense traffic, heaptrack).
        if (f.pending.empty()) std::vector<KerberosEvent>().swap(f.pending);
    } else {
        k.ts = ts;
        k.flow = f.key;
        if (dir == Direction::ClientToServer) std::swap(k.flow.client, k.flow.server);
    }
    k.reply_at = analysis::position(ev, Direction::ServerToClient);
    k.reply = analysis::KrbMessageName::of_type(m.msg_type);
    if (const auto* rep = std::get_if<auth::KdcRep>(&m.body)) {
        if (k.client.empty()) k.client = rep->cname.at(rep->crealm);
        if (k.sname.empty()) k.sname = rep->ticket.sname.str();
        if (k.realm.empty()) k.realm = rep->ticket.realm;
        // With a keytab that holds the key of the ticket's service: its flags and PAC.
        if (const auth::KerberosKeys* keys = options.kerberos_keys) {
            if (fast_armored(rep->padata)) k.extra_to_set().fast_armored = true;
            const auth::TicketFacts t = auth::decrypt_ticket(rep->ticket, *keys, "reply ticket");
            if (t.status != auth::KeyStatus::NoKey)
                k.extra_to_set().reply_ticket = kdc_ticket_facts(t);
        }
    } else if (const auto* err = std::get_if<auth::KrbError>(&m.body)) {
        k.error_code = err->error_code;
        if (err->e_text) k.extra_to_set().error_text = *err->e_text;
        if (k.sname.empty() && err->sname) k.sname = err->sname->str();
        if (k.realm.empty()) k.realm = err->realm;
        if (k.client.empty() && err->cname)
            k.client = err->cname->at(err->crealm ? *err->crealm : err->realm);
    }
    emit_kerberos(std::move(k));
}

Pipeline::Pipeline(EventSink& sink) : Pipeline(sink, Options{}) {}
Pipeline::Pipeline(EventSink& sink, Options options)
    : impl_(std::make_unique<Impl>(sink, std::move(options))) {}
Pipeline::~Pipeline() = default;

void Pipeline::on_open(const FlowKey& flow, Timestamp ts, bool handshake_seen) {
    impl_->advance(ts);
    if (impl_->is_kerberos(flow))
        impl_->kdc(flow);
    else
        impl_->tds(flow, handshake_seen);
}

void Pipeline::on_data(const FlowKey& flow, Direction dir, Timestamp ts, Bytes data, Evidence ev) {
    impl_->advance(ts);
    if (impl_->is_kerberos(flow)) {
        auto& f = impl_->kdc(flow);
        if (!f.tcp) f.tcp = std::make_unique<Impl::KdcFlow::Tcp>();
        const int d = static_cast<int>(dir);
        auto& framer = f.tcp->framers[d];
        std::uint64_t& record_offset = f.tcp->record_offset[d];
        // Each record's evidence is the offset of its length prefix: where these bytes start
        // when no record is partly held, then one record after the other. A record within one
        // segment is read where it is (no copy).
        if (framer.buffered() == 0) record_offset = ev.stream_offset;
        const bool was_failed = framer.failed();
        const DecodeResult res = framer.feed_each(data, [&](Bytes record) {
            const Evidence at{ev.frame, record_offset};
            record_offset += 4 + record.size();
            impl_->kerberos_message(f, dir, ts, record, at);
        });
        if (!was_failed && !res.ok()) ++impl_->counters.decode_problems;
        return;
    }
    impl_->tds(flow, true).conv.feed(dir, ts, data, ev);
}

void Pipeline::on_tls_plaintext(const FlowKey& flow, Direction dir, Timestamp ts, Bytes plaintext,
                                Evidence ev) {
    impl_->advance(ts);
    if (impl_->is_kerberos(flow)) return;
    impl_->tds(flow, true).conv.feed_plaintext(dir, ts, plaintext, ev);
}

void Pipeline::on_gap(const FlowKey& flow, Direction dir, Timestamp ts, std::uint64_t length) {
    impl_->advance(ts);
    if (impl_->is_kerberos(flow)) return;  // the framer desyncs by itself on bad lengths
    impl_->tds(flow, true).conv.gap(dir, ts, length);
}

void Pipeline::on_close(const FlowKey& flow, Timestamp ts, CloseReason) {
    impl_->advance(ts);
    if (auto it = impl_->tds_flows.find(flow); it != impl_->tds_flows.end()) {
        it->second->conv.close(ts);
        if (impl_->last_tds == it->second.get()) impl_->last_tds = nullptr;
        impl_->tds_flows.erase(it);
        AnalysisCall c;
        c.kind = AnalysisCall::Kind::Closed;
        c.flow = flow;
        c.ts = ts;
        impl_->analysis(std::move(c));
        return;
    }
    if (auto it = impl_->kdc_flows.find(flow); it != impl_->kdc_flows.end()) {
        if (flow.transport == Transport::Udp) impl_->udp_unlink(it->second);
        for (auto& k : it->second.pending)
            impl_->emit_kerberos(std::move(k));
        impl_->kdc_flows.erase(it);
    }
}

void Pipeline::on_datagram(const FlowKey& flow, Direction dir, Timestamp ts, Bytes payload,
                           Evidence ev) {
    impl_->advance(ts);
    if (!impl_->is_kerberos(flow)) return;
    auto& f = impl_->kdc(flow);
    impl_->kerberos_message(f, dir, ts, payload, ev);
    if (flow.transport != Transport::Udp) return;
    // A UDP flow holds nothing but its unanswered requests: with none left (its answer came) it
    // goes now, not kdc_udp_idle_us later. Why: on a busy KDC nearly every flow is a UDP exchange
    // of its own (clients take a new port per request), and keeping the answered ones kept the
    // last minute's exchanges in the table (about 25 000 in the benchmark's login-dense traffic,
    // 3.6 MB of the heap at 200 MB), where each datagram's lookup was a cache miss or two. The
    // events are the same: a later datagram of that flow starts it again, as an answer without
    // a request did before.
    if (f.pending.empty()) {
        impl_->udp_unlink(f);
        impl_->kdc_flows.erase(flow);
        return;
    }
    // Still waiting: its idle time starts again (only expire_udp_kdc reads it, from advance()).
    f.last = ts;
    if (impl_->udp_newest != &f) {
        impl_->udp_unlink(f);
        impl_->udp_append(f);
    }
}

void Pipeline::tick(Timestamp now) {
    impl_->advance(now);
}

void Pipeline::finish(Timestamp ts) {
    // The flows whose close makes events or analysis calls (TDS connections, KDC flows with
    // requests still unanswered), closed in FlowKey order: a deterministic order of the last
    // events. The other KDC flows (TCP connections to the KDC with every request answered) are
    // dropped together, without a sort.
    std::vector<FlowKey> keys;
    keys.reserve(impl_->tds_flows.size());
    for (const auto& [k, v] : impl_->tds_flows)
        keys.push_back(k);
    for (const auto& [k, v] : impl_->kdc_flows)
        if (!v.pending.empty()) keys.push_back(k);
    if (!impl_->tds_flows.empty() || !impl_->kdc_flows.empty()) impl_->advance(ts);  // as on_close
    std::sort(keys.begin(), keys.end());
    for (const auto& k : keys)
        on_close(k, ts, CloseReason::EndOfInput);
    impl_->udp_oldest = impl_->udp_newest = nullptr;
    impl_->kdc_flows.clear();
    AnalysisCall c;
    c.kind = AnalysisCall::Kind::Finish;
    impl_->analysis(std::move(c));
}

void Pipeline::replay(AnalysisCall& c) {
    impl_->apply(c);
}

void Pipeline::Impl::apply(AnalysisCall& c) {
    if (c.tick) analyzer.tick(*c.tick);
    switch (c.kind) {
        case AnalysisCall::Kind::Tick:
            break;
        case AnalysisCall::Kind::Login:
            made(std::get<analysis::LoginEvent>(c.event));
            break;
        case AnalysisCall::Kind::ServerError:
            made(std::get<analysis::ServerErrorEvent>(c.event));
            break;
        case AnalysisCall::Kind::Kerberos:
            made(std::get<KerberosEvent>(c.event));
            break;
        case AnalysisCall::Kind::Closed:
            analyzer.connection_closed(c.flow, c.ts);
            break;
        case AnalysisCall::Kind::Finish:
            analyzer.finish();
            break;
    }
}

void Pipeline::flush_clock() {
    if (impl_->options.relay && impl_->pending_tick) impl_->analysis(AnalysisCall{});
}

const analysis::Analyzer& Pipeline::analyzer() const {
    return impl_->analyzer;
}
const Counters& Pipeline::counters() const {
    return impl_->counters;
}
void Pipeline::add_counters(const Counters& c) {
    impl_->counters += c;
}

Counters& Counters::operator+=(const Counters& o) {
    tds_connections += o.tds_connections;
    kerberos_flows += o.kerberos_flows;
    logins += o.logins;
    kerberos_messages += o.kerberos_messages;
    server_errors += o.server_errors;
    decode_problems += o.decode_problems;
    resyncs += o.resyncs;
    gaps += o.gaps;
    encrypted_records += o.encrypted_records;
    decrypted_records += o.decrypted_records;
    return *this;
}
std::size_t Pipeline::open_flows() const {
    return impl_->tds_flows.size() + impl_->kdc_flows.size();
}

}  // namespace hopscope::pipeline
