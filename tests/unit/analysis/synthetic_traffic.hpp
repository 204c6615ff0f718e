// Synthetic facts for long-run tests of the analyzer: a simulated network of clients, plain SQL
// Servers, middle servers with linked servers behind them and a KDC, whose logins follow a
// per-hour shape over a simulated day. Facts come out in time order, second by second, so that a
// test can call Analyzer::tick between them. Deterministic (fixed seed).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <queue>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "hopscope/analysis/analyzer.hpp"
#include "kdc_option_bits.hpp"

namespace hopscope::analysis::synthetic {

constexpr std::int64_t kSec = 1'000'000;
constexpr std::int64_t kMs = 1'000;
constexpr std::int64_t kHour = 3600 * kSec;
constexpr std::int64_t kEpoch = 1'780'000'000LL * kSec;  ///< the simulated day starts here

/// Relative weight of each hour of the day: quiet nights, busy office hours. Hours 1 and 23 weigh
/// the same, so that the analyzer's load at the 2nd and the 24th hour compares.
constexpr std::array<int, 24> kHourWeights = {2, 2,  2,  2,  2, 3, 5, 8, 10, 10, 10, 10,
                                              9, 10, 10, 10, 9, 8, 6, 4, 3,  2,  2,  2};

/// What one simulated user action produces.
enum class Kind : std::uint8_t {
    NtlmSingle,          ///< NTLM login to a plain server
    KerberosSingle,      ///< TGS-REQ (sometimes an AS-REQ first), Kerberos login
    SqlAuth,             ///< SQL login without TLS (HS042)
    NtlmDoubleHopError,  ///< NTLM C->A, anonymous A->B refused, 18456 and 7303 relayed to C
    KerberosDoubleHop,   ///< forwarded TGT, Kerberos on both hops (HS050)
    HiddenDoubleHop,     ///< C->A hidden by TLS (reported at its close), Kerberos A->B: late link
    NtlmToMiddle,        ///< NTLM login to a middle server, no linked-server query (late HS030)
    SpnMissing,          ///< TGS-REQ for a short-name SPN refused (HS020), then NTLM
};
constexpr std::array<std::pair<Kind, int>, 8> kKindWeights = {{{Kind::NtlmSingle, 30},
                                                               {Kind::KerberosSingle, 25},
                                                               {Kind::SqlAuth, 10},
                                                               {Kind::NtlmDoubleHopError, 10},
                                                               {Kind::KerberosDoubleHop, 10},
                                                               {Kind::HiddenDoubleHop, 5},
                                                               {Kind::NtlmToMiddle, 5},
                                                               {Kind::SpnMissing, 5}}};

inline int logins_of(Kind k) {
    switch (k) {
        case Kind::NtlmDoubleHopError:
        case Kind::KerberosDoubleHop:
        case Kind::HiddenDoubleHop:
            return 2;
        default:
            return 1;
    }
}

struct Close {
    FlowKey flow;
    Timestamp at;
};
using Fact = std::variant<LoginEvent, KerberosEvent, ServerErrorEvent, Close>;

/// The network: address pools, fixed whatever the number of logins.
struct Network {
    static constexpr std::uint32_t kClients = 4000;
    static constexpr std::uint32_t kPlain = 20;  ///< plain SQL Servers
    static constexpr std::uint32_t kMiddle = 5;  ///< middle servers, each with one linked server
    static constexpr std::uint32_t kHidden = 3;  ///< middle servers reached only over full TLS
    static IpAddress client(std::uint32_t i) { return IpAddress::v4_from(0x0a010000u + i); }
    static IpAddress plain(std::uint32_t i) { return IpAddress::v4_from(0x0a020001u + i); }
    static IpAddress middle(std::uint32_t i) { return IpAddress::v4_from(0x0a030001u + i); }
    static IpAddress backend(std::uint32_t i) { return IpAddress::v4_from(0x0a040001u + i); }
    static IpAddress hidden(std::uint32_t i) { return IpAddress::v4_from(0x0a050001u + i); }
    static IpAddress hidden_backend(std::uint32_t i) { return IpAddress::v4_from(0x0a060001u + i); }
    static IpAddress kdc() { return IpAddress::v4_from(0x0a000001u); }
};

class Trace {
  public:
    /// `logins` logins over `hours` simulated hours shaped by kHourWeights.
    Trace(std::uint64_t logins, int hours = 24) : hours_(hours) {
        int total = 0;
        for (int h = 0; h < hours; ++h)
            total += kHourWeights[static_cast<std::size_t>(h % 24)];
        std::uint64_t given = 0;
        for (int h = 0; h < hours; ++h) {
            const std::uint64_t want =
                h + 1 == hours ? logins - given
                               : logins * static_cast<std::uint64_t>(kHourWeights[h % 24]) /
                                     static_cast<std::uint64_t>(total);
            per_hour_.push_back(want);
            given += want;
        }
    }

    [[nodiscard]] std::int64_t end() const { return kEpoch + hours_ * kHour; }
    [[nodiscard]] std::uint64_t logins() const { return logins_; }
    [[nodiscard]] std::uint64_t kdc_exchanges() const { return kdc_; }
    [[nodiscard]] std::uint64_t relayed_errors() const { return relayed_; }
    /// The most logins planned for one hour.
    [[nodiscard]] std::uint64_t peak_hour_logins() const {
        return *std::max_element(per_hour_.begin(), per_hour_.end());
    }

    /// Hands every fact with a time below `until` to `out`, in time order (facts of one instant
    /// in the order they were made). Call with increasing `until`.
    template <typename Out>
    void run_until(std::int64_t until, Out&& out) {
        // An action's facts start at most 200 ms before it: plan every action that starts
        // before `until` + 1 s first.
        plan_until(until + kSec);
        while (!queue_.empty() && queue_.top().at < until) {
            const std::size_t slot = queue_.top().slot;
            queue_.pop();
            out(slots_[slot]);
            free_.push_back(slot);
        }
    }

  private:
    /// A planned fact: the heap holds these small keys, the facts stay in their slots.
    struct Item {
        std::int64_t at;
        std::uint64_t order;
        std::size_t slot;
        bool operator>(const Item& o) const { return at != o.at ? at > o.at : order > o.order; }
    };

    void push(std::int64_t at, Fact f) {
        if (std::holds_alternative<LoginEvent>(f)) ++logins_;
        if (std::holds_alternative<KerberosEvent>(f)) ++kdc_;
        std::size_t slot = slots_.size();
        if (free_.empty()) {
            slots_.push_back(std::move(f));
        } else {
            slot = free_.back();
            free_.pop_back();
            slots_[slot] = std::move(f);
        }
        queue_.push(Item{at, order_++, slot});
    }

    void plan_until(std::int64_t until) {
        while (planned_ < until) {
            const int h = static_cast<int>((planned_ - kEpoch) / kHour);
            if (h >= hours_) return;
            if (h != hour_) start_hour(h);
            if (next_ >= kinds_.size()) {
                planned_ = kEpoch + (h + 1) * kHour;
                continue;
            }
            const std::int64_t at =
                kEpoch + h * kHour +
                static_cast<std::int64_t>(next_) * kHour / static_cast<std::int64_t>(kinds_.size());
            if (at >= until) return;
            make(kinds_[next_++], at);
            planned_ = at;
        }
    }

    void start_hour(int h) {
        hour_ = h;
        next_ = 0;
        kinds_.clear();
        std::uint64_t n = 0;
        int total = 0;
        for (const auto& [k, w] : kKindWeights)
            total += w;
        std::uniform_int_distribution<int> pick(0, total - 1);
        while (n < per_hour_[static_cast<std::size_t>(h)]) {
            int r = pick(rng_);
            Kind kind = Kind::NtlmSingle;
            for (const auto& [k, w] : kKindWeights) {
                if (r < w) {
                    kind = k;
                    break;
                }
                r -= w;
            }
            kinds_.push_back(kind);
            n += static_cast<std::uint64_t>(logins_of(kind));
        }
    }

    FlowKey next_flow(const IpAddress& client, const IpAddress& server, std::uint16_t port) {
        const std::uint16_t cport = static_cast<std::uint16_t>(49152 + (port_++ % 16000));
        return FlowKey{Endpoint{client, cport}, Endpoint{server, port}, Transport::Tcp};
    }

    static std::string plain_name(std::uint32_t i) {
        return "sql" + std::to_string(i) + ".corp.test";
    }
    static std::string middle_name(std::uint32_t i) {
        return "mid" + std::to_string(i) + ".corp.test";
    }
    static std::string backend_name(std::uint32_t i) {
        return "back" + std::to_string(i) + ".corp.test";
    }

    static LoginEvent login(const FlowKey& flow, std::int64_t started, std::int64_t ended,
                            AuthKind auth, Outcome outcome, const std::string& server_name) {
        LoginEvent l;
        l.flow = flow;
        l.started = Timestamp{started};
        l.ts = Timestamp{ended};
        l.auth = auth;
        l.outcome = outcome;
        l.server_name = server_name;
        l.encryption = EncryptionMode::LoginOnly;
        l.auth_detail = auth == AuthKind::Ntlm       ? "spnego/ntlmv2"
                        : auth == AuthKind::Kerberos ? "spnego/kerberos"
                                                     : "";
        if (auth == AuthKind::Ntlm) l.ntlm_version = 2;
        return l;
    }

    KerberosEvent kdc(const IpAddress& client, std::int64_t at, const std::string& principal,
                      const std::string& request, const std::string& sname,
                      std::vector<std::string> options, std::int32_t error = 0) {
        KerberosEvent k;
        k.ts = Timestamp{at};
        k.flow = next_flow(client, Network::kdc(), 88);
        k.request = request;
        k.reply = error ? "KRB-ERROR" : request == "AS-REQ" ? "AS-REP" : "TGS-REP";
        k.client = principal;
        k.sname = sname;
        k.realm = "CORP.TEST";
        k.kdc_options = test::kdc_option_bits(options);
        k.etypes = {18};  // aes256-cts-hmac-sha1-96
        k.error_code = error;
        return k;
    }

    void make(Kind kind, std::int64_t t) {
        const std::uint32_t ci = static_cast<std::uint32_t>(rng_() % Network::kClients);
        const IpAddress c = Network::client(ci);
        const std::string user = "user" + std::to_string(ci);
        const std::string principal = user + "@CORP.TEST";
        const std::uint32_t pi = ci % Network::kPlain;
        const std::uint32_t mi = ci % Network::kMiddle;
        switch (kind) {
            case Kind::NtlmSingle: {
                LoginEvent l = login(next_flow(c, Network::plain(pi), 1433), t, t + 50 * kMs,
                                     AuthKind::Ntlm, Outcome::Success, plain_name(pi));
                l.user = user;
                l.domain = "CORP";
                push(t + 50 * kMs, l);
                push(t + 30 * kSec, Close{l.flow, Timestamp{t + 30 * kSec}});
                break;
            }
            case Kind::KerberosSingle: {
                if (rng_() % 10 == 0)
                    push(t - 200 * kMs, kdc(c, t - 200 * kMs, principal, "AS-REQ",
                                            "krbtgt/CORP.TEST", {"forwardable"}));
                push(t - 100 * kMs, kdc(c, t - 100 * kMs, principal, "TGS-REQ",
                                        "MSSQLSvc/" + plain_name(pi) + ":1433", {"forwardable"}));
                LoginEvent l = login(next_flow(c, Network::plain(pi), 1433), t, t + 40 * kMs,
                                     AuthKind::Kerberos, Outcome::Success, plain_name(pi));
                l.domain = "CORP.TEST";
                l.kerberos_etype = 18;  // aes256-cts-hmac-sha1-96
                push(t + 40 * kMs, l);
                push(t + 60 * kSec, Close{l.flow, Timestamp{t + 60 * kSec}});
                break;
            }
            case Kind::SqlAuth: {
                LoginEvent l = login(next_flow(c, Network::plain(pi), 1433), t, t + 20 * kMs,
                                     AuthKind::Sql, Outcome::Success, plain_name(pi));
                l.user = "app" + std::to_string(ci % 7);
                l.encryption = EncryptionMode::None;
                push(t + 20 * kMs, l);
                push(t + 10 * kSec, Close{l.flow, Timestamp{t + 10 * kSec}});
                break;
            }
            case Kind::NtlmDoubleHopError: {
                LoginEvent in = login(next_flow(c, Network::middle(mi), 1433), t, t + 50 * kMs,
                                      AuthKind::Ntlm, Outcome::Success, middle_name(mi));
                in.user = user;
                in.domain = "CORP";
                push(t + 50 * kMs, in);
                LoginEvent out =
                    login(next_flow(Network::middle(mi), Network::backend(mi), 1433), t + 250 * kMs,
                          t + 300 * kMs, AuthKind::Ntlm, Outcome::Failure, backend_name(mi));
                out.anonymous = true;
                out.error = ServerError{
                    18456, 1, 14, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.", "BACK"};
                push(t + 300 * kMs, out);
                push(t + 400 * kMs, Close{out.flow, Timestamp{t + 400 * kMs}});
                // The middle server relays the linked server's 18456 and adds its own 7303, for a
                // statement that differs every time.
                const std::string statement = "select * from openquery(BACK, 'select " +
                                              std::to_string(relayed_) + " as n from orders')";
                for (const std::int32_t number : {18456, 7303}) {
                    ServerErrorEvent e;
                    e.ts = Timestamp{t + (number == 18456 ? 350 : 351) * kMs};
                    e.flow = in.flow;
                    e.error = ServerError{
                        number, 1, 16,
                        number == 18456
                            ? "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'."
                            : "Cannot initialize the data source object of OLE DB provider "
                              "\"MSOLEDBSQL\" for linked server \"BACK\".",
                        "MID"};
                    e.statement = statement;
                    push(e.ts.micros, e);
                }
                ++relayed_;
                push(t + 5 * kSec, Close{in.flow, Timestamp{t + 5 * kSec}});
                break;
            }
            case Kind::KerberosDoubleHop: {
                push(t - 150 * kMs, kdc(c, t - 150 * kMs, principal, "TGS-REQ", "krbtgt/CORP.TEST",
                                        {"forwardable", "forwarded"}));
                push(t - 100 * kMs, kdc(c, t - 100 * kMs, principal, "TGS-REQ",
                                        "MSSQLSvc/" + middle_name(mi) + ":1433", {"forwardable"}));
                LoginEvent in = login(next_flow(c, Network::middle(mi), 1433), t, t + 40 * kMs,
                                      AuthKind::Kerberos, Outcome::Success, middle_name(mi));
                in.domain = "CORP.TEST";
                push(t + 40 * kMs, in);
                push(t + 200 * kMs, kdc(Network::middle(mi), t + 200 * kMs, principal, "TGS-REQ",
                                        "MSSQLSvc/" + backend_name(mi) + ":1433", {"forwardable"}));
                LoginEvent out =
                    login(next_flow(Network::middle(mi), Network::backend(mi), 1433), t + 250 * kMs,
                          t + 300 * kMs, AuthKind::Kerberos, Outcome::Success, backend_name(mi));
                out.user = user;
                out.domain = "CORP.TEST";
                push(t + 300 * kMs, out);
                push(t + 1 * kSec, Close{out.flow, Timestamp{t + 1 * kSec}});
                push(t + 20 * kSec, Close{in.flow, Timestamp{t + 20 * kSec}});
                break;
            }
            case Kind::HiddenDoubleHop: {
                // The outbound login is seen first; the inbound one only when its connection ends.
                const std::uint32_t hi = ci % Network::kHidden;
                LoginEvent out =
                    login(next_flow(Network::hidden(hi), Network::hidden_backend(hi), 1433),
                          t + 200 * kMs, t + 250 * kMs, AuthKind::Kerberos, Outcome::Success,
                          "hback" + std::to_string(hi) + ".corp.test");
                out.user = user;
                out.domain = "CORP.TEST";
                push(t + 250 * kMs, out);
                push(t + 300 * kMs, Close{out.flow, Timestamp{t + 300 * kMs}});
                LoginEvent in = login(next_flow(c, Network::hidden(hi), 1433), t, t + 2 * kSec,
                                      AuthKind::Unknown, Outcome::Incomplete, "");
                in.auth_detail = "strict tls";
                in.encryption = EncryptionMode::Strict;
                push(t + 2 * kSec, in);
                push(t + 2 * kSec, Close{in.flow, Timestamp{t + 2 * kSec}});
                break;
            }
            case Kind::NtlmToMiddle: {
                LoginEvent l = login(next_flow(c, Network::middle(mi), 1433), t, t + 50 * kMs,
                                     AuthKind::Ntlm, Outcome::Success, middle_name(mi));
                l.user = user;
                l.domain = "CORP";
                push(t + 50 * kMs, l);
                push(t + 30 * kSec, Close{l.flow, Timestamp{t + 30 * kSec}});
                break;
            }
            case Kind::SpnMissing: {
                push(t - 100 * kMs,
                     kdc(c, t - 100 * kMs, principal, "TGS-REQ",
                         "MSSQLSvc/ws" + std::to_string(ci) + ":1433", {"forwardable"}, 7));
                LoginEvent l = login(next_flow(c, Network::plain(pi), 1433), t, t + 50 * kMs,
                                     AuthKind::Ntlm, Outcome::Success, plain_name(pi));
                l.user = user;
                l.domain = "CORP";
                push(t + 50 * kMs, l);
                push(t + 30 * kSec, Close{l.flow, Timestamp{t + 30 * kSec}});
                break;
            }
        }
    }

    int hours_;
    std::vector<std::uint64_t> per_hour_;
    std::mt19937_64 rng_{20261126};
    int hour_ = -1;
    std::vector<Kind> kinds_;
    std::size_t next_ = 0;
    std::int64_t planned_ = kEpoch;
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue_;
    std::vector<Fact> slots_;
    std::vector<std::size_t> free_;
    std::uint64_t order_ = 0;
    std::uint32_t port_ = 0;
    std::uint64_t logins_ = 0;
    std::uint64_t kdc_ = 0;
    std::uint64_t relayed_ = 0;
};

/// Feeds a fact to the analyzer as the pipeline does (a login is enriched before it is added).
inline void feed(Analyzer& a, const Fact& f) {
    if (const auto* l = std::get_if<LoginEvent>(&f)) {
        LoginEvent copy = *l;
        a.enrich(copy);
        a.add_login(copy);
    } else if (const auto* k = std::get_if<KerberosEvent>(&f)) {
        a.add_kerberos(*k);
    } else if (const auto* e = std::get_if<ServerErrorEvent>(&f)) {
        a.add_server_error(*e);
    } else if (const auto* c = std::get_if<Close>(&f)) {
        a.connection_closed(c->flow, c->at);
    }
}

}  // namespace hopscope::analysis::synthetic
