// Cross-connection analysis: hosts, hops, chains C -> A -> B, and the delegation rules.
//
// The analyzer is fed facts (logins, KDC exchanges, server errors on established sessions,
// connection ends) in time order and reports Findings as soon as their evidence is complete, so
// `live` and `proxy` show a verdict when it happens and `analyze` gives the same verdicts at the
// end. It keeps only a bounded window of recent facts for correlation plus aggregated counters, so
// its memory does not grow with the size of a capture.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "hopscope/analysis/events.hpp"
#include "hopscope/analysis/rules.hpp"
#include "hopscope/common/block_queue.hpp"

namespace hopscope::analysis {

class FindingSink {
  public:
    virtual ~FindingSink() = default;
    virtual void on_finding(const Finding& f) = 0;
};

/// One row of the end-of-run hop summary: the logins of one HopKey.
struct HopSummary : HopKey {
    std::string user;  ///< last user seen on this row
    std::uint64_t count = 0;
};

/// A chain C -> A -> B seen at least once, aggregated.
struct ChainSummary {
    IpAddress client;  ///< C
    Endpoint middle;   ///< A (the server C logged in to)
    Endpoint backend;  ///< B
    AuthKind first_auth = AuthKind::Unknown;
    AuthKind second_auth = AuthKind::Unknown;
    Outcome second_outcome = Outcome::Incomplete;
    bool second_anonymous = false;
    bool second_prelogin_only = false;  ///< A closed after PRELOGIN, without a LOGIN7
    std::string user;                   ///< identity on the first hop
    std::string second_user;            ///< identity on the second hop
    std::uint64_t count = 0;
};

/// Correlates the facts and runs the rules of the catalogue (rules.hpp) on them.
class Analyzer : private Lookups {
  public:
    /// The inline proxy in front of some servers (rules.hpp).
    using ProxyView = analysis::ProxyView;

    struct Options {
        /// How long after a login to A an outbound login from A can still be caused by it (the
        /// inbound connection must also be open when the outbound login starts, if its end is
        /// known).
        std::int64_t chain_window_us = 10LL * 60 * 1'000'000;
        /// How far before a login the client's KDC exchanges are looked for.
        std::int64_t kerberos_window_us = 10LL * 60 * 1'000'000;
        /// How long a reported verdict keeps its repeats (same rule and key) quiet after its
        /// evidence last recurred: a repeat after a longer pause is reported again.
        std::int64_t dedup_window_us = 20LL * 60 * 1'000'000;
        /// Hard caps behind the time windows: de-duplication keys; rows of the hop summary and
        /// of the chain summary (each); addresses with learned names, and middle servers.
        std::size_t max_dedup_keys = 100'000;
        std::size_t max_summary_rows = 65'536;
        std::size_t max_hosts = 65'536;
        std::size_t max_recent = 100'000;  ///< cap on remembered logins / KDC exchanges
        ProxyView proxy;
    };

    explicit Analyzer(FindingSink& sink);
    Analyzer(FindingSink& sink, Options opts);

    void add_login(const LoginEvent& login);
    void add_login(LoginEvent&& login);
    /// Fills what a login event cannot show by itself from the KDC exchanges seen before it:
    /// the SPN (client's TGS-REQ for MSSQLSvc/<server>), whether the client obtained a
    /// forwarded TGT (Kerberos logins), and the Kerberos client principal when exactly one was
    /// seen from that host. Call before add_login and before rendering the event.
    void enrich(LoginEvent& login) const;
    void add_kerberos(const KerberosEvent& krb);
    /// The same, keeping `krb` without a copy.
    void add_kerberos(KerberosEvent&& krb);
    void add_server_error(const ServerErrorEvent& err);
    void connection_closed(const FlowKey& flow, Timestamp ts);
    /// Lets time pass without an event (the front-end calls it now and then; every event moves
    /// the same clock): the verdicts that wait for a window (an outbound login whose inbound
    /// login is reported late, a middle server seen later, missing evidence) run once their
    /// window has passed, and what has aged out of every window is forgotten. Cheap when nothing
    /// is due. The verdicts do not depend on how often it is called.
    void tick(Timestamp now) {
        if (now.micros >= wake_us_) advance(now);
    }
    /// End of input: the verdicts still waiting for their window run now.
    void finish();

    /// What the analyzer holds. Every figure is bounded by the time windows and the caps of
    /// Options, not by the length of the run.
    struct Stats {
        std::size_t recent_logins = 0;   ///< logins kept for correlation
        std::size_t kdc_exchanges = 0;   ///< KDC exchanges kept for correlation
        std::size_t index_entries = 0;   ///< entries of the per-host and per-flow login indexes
        std::size_t pending_logins = 0;  ///< logins whose late verdicts have not run yet
        std::size_t dedup_keys = 0;
        std::size_t named_hosts = 0;  ///< addresses with learned names
        std::size_t host_names = 0;   ///< names, over all addresses
        std::size_t middle_servers = 0;
        std::size_t hop_rows = 0;
        std::size_t chain_rows = 0;
        std::uint64_t summary_overflow = 0;  ///< logins and chains not counted: summary full
    };
    [[nodiscard]] Stats stats() const;

    [[nodiscard]] std::vector<HopSummary> hop_summary() const;
    [[nodiscard]] std::vector<ChainSummary> chain_summary() const;
    [[nodiscard]] std::uint64_t findings_emitted() const { return emitted_; }
    /// The best name learned for an address (LOGIN7 server names, SPN hosts; fully qualified
    /// names first), or its text form.
    [[nodiscard]] std::string host_name(const IpAddress& a) const override;

  private:
    static constexpr std::uint64_t kNoLogin = std::numeric_limits<std::uint64_t>::max();
    struct Recent {
        Recent(LoginEvent&& l, bool relays) : login(std::move(l)), relay(relays) {}
        LoginEvent login;
        Timestamp closed{};  ///< 0 when still open / unknown
        bool chained = false;
        /// It passes on a login of its client (relays() in analyzer.cpp): not a hop of a chain.
        bool relay = false;
        /// How many logins back the one before it on the same connection is (by_flow_); 0 for
        /// none. 32 bits, in what would be padding: the window keeps far fewer logins (the
        /// max_recent cap), so a login further back is forgotten anyway.
        std::uint32_t back_on_flow = 0;
        /// For an outbound login: the best inbound login with a hidden outcome (see
        /// Inbound::hidden) seen so far that was open when it started; its late link uses it.
        std::uint64_t hidden_in = kNoLogin;
        [[nodiscard]] std::uint64_t prev_on_flow(std::uint64_t seq) const {
            return back_on_flow == 0 ? kNoLogin : seq - back_on_flow;
        }
    };

    /// The inbound logins of one server that may start a chain, indexed so that finding the one
    /// an outbound login belongs to costs the connections open around its start, not every login
    /// of the chaining window (a middle server's busy inbound side made that quadratic).
    struct Inbound {
        /// Successful logins whose connection has not been seen closing, in report order.
        std::vector<std::uint64_t> open;
        /// Successful logins whose connection closed, in closing order, each with the latest
        /// closing time so far: scanning back from the newest stops once that is before the
        /// outbound login's start.
        std::deque<std::pair<std::uint64_t, std::int64_t>> closed;
        /// Logins with a hidden outcome (TLS all along, reported when their connection ends),
        /// with the latest end time so far, like `closed`.
        std::deque<std::pair<std::uint64_t, std::int64_t>> hidden;
    };
    void index_inbound(std::uint64_t seq);
    void inbound_closed(std::uint64_t seq);
    /// A login with a hidden outcome: offered to the outbound logins of its server that started
    /// while it was open and whose late link has not run yet.
    void offer_hidden(std::uint64_t seq, std::int64_t end);
    /// The logins of `client` that started in [from, to] and whose late link has not run, in
    /// report order.
    [[nodiscard]] std::vector<std::uint64_t> started_between(const IpAddress& client,
                                                             std::int64_t from,
                                                             std::int64_t to) const;
    [[nodiscard]] bool better_inbound(std::uint64_t seq, std::uint64_t than) const;
    /// A successful inbound login just reported: links the outbound logins of its server that
    /// started while it was being answered and were reported before it.
    void link_answered_late(std::uint64_t seq);

    void emit(std::optional<Verdict> v);
    void per_login_rules(const Recent& r);
    /// A chain C -> A -> B was found: its summary row and its verdict.
    void on_chain(const Recent& inbound, const Recent& outbound);
    /// The inbound login `outbound` belongs to; `relayed` (when given) is set when `outbound`
    /// passes on an inbound login of its client instead (see relays() in analyzer.cpp).
    const Recent* find_inbound(const LoginEvent& outbound, bool* relayed = nullptr) const;
    std::vector<const KerberosEvent*> kdc_for(const IpAddress& client, Timestamp before) const;
    /// A kept KDC exchange, with what the lookups of every Kerberos login compare worked out
    /// once (a busy client has hundreds of exchanges in the window, walked for each login).
    struct KdcEntry {
        explicit KdcEntry(KerberosEvent&& e);
        KerberosEvent ev;
        std::string service;   ///< the sname without its realm, in lower case
        std::string spn_host;  ///< the host of an MSSQLSvc sname, in lower case; else empty
        bool tgs_req = false;
        bool tgs_rep = false;
        bool as_rep = false;
        bool forwarded = false;  ///< KDC option "forwarded"
        /// The latest time of this exchange and of every one of its client's kept before it
        /// (arrival order is not time order: an unanswered request over UDP comes late).
        std::int64_t latest_so_far = 0;
    };
    /// Calls f(const KdcEntry&) for each KDC exchange kdc_for() gives, in the same order,
    /// without collecting them.
    template <typename F>
    void each_kdc(const IpAddress& client, Timestamp before, F&& f) const;
    /// The same exchanges in the reverse order (the latest kept first), while f returns true and
    /// an older one can still be in the window. Why: a client's exchanges in the window can be
    /// thousands (a busy application server), and most questions are about the latest ones.
    template <typename F>
    void each_kdc_newest(const IpAddress& client, Timestamp before, F&& f) const;
    // Lookups, for the rules.
    [[nodiscard]] std::string spn_for(const LoginEvent& l) const override;
    [[nodiscard]] std::vector<const KerberosEvent*> kdc_before(const LoginEvent& l) const override;
    [[nodiscard]] Tristate delegation_requested(const LoginEvent& l) const override;
    [[nodiscard]] const LoginEvent* login_on(const FlowKey& flow) const override;
    [[nodiscard]] const LoginEvent* failed_login_from(const IpAddress& client,
                                                      Timestamp at) const override;
    [[nodiscard]] bool reported(std::string_view rule, const std::string& key,
                                Timestamp at) const override;
    void learn_name(const IpAddress& a, const std::string& name);
    /// Takes back what learn_name(a, name) added.
    void unlearn_name(const IpAddress& a, const std::string& name);
    /// The names a login gives its server: LOGIN7 ServerName, aliases (TLS SNI, NTLM CHALLENGE
    /// names), the SPN's host. A relayed login's ServerName and SPN are what its client typed
    /// for the relay, not names of the server behind it: only its other aliases count.
    void learn_names(const LoginEvent& l, bool relayed, bool learn);
    void mark_middle(const IpAddress& a);
    void advance(Timestamp now);
    void settle(std::int64_t now, std::uint64_t through);
    void late_link(Recent& r);
    void late_verdicts(const Recent& r);
    [[nodiscard]] std::array<std::int64_t, 4> due() const;
    void drop_login(std::int64_t now);
    void drop_kdc();
    void forget();
    void drop_dedup(std::int64_t older_than);
    void rewake();
    [[nodiscard]] std::int64_t horizon_us() const;

    FindingSink& sink_;
    Options opts_;
    // Hash maps by address: looked up for every login, iterated only to prune and count.
    using SeqIndex = std::unordered_map<IpAddress, std::deque<std::uint64_t>, IpAddressHash>;
    Recent* recent(std::uint64_t seq);
    const Recent* recent(std::uint64_t seq) const;
    void sweep();

    // Recent logins, oldest first: logins_[i] has sequence number base_seq_ + i. The indexes
    // hold sequence numbers so that each correlation looks only at the logins of one host or
    // connection (a scan of every recent login per login made a large capture quadratic);
    // numbers below base_seq_ are stale and skipped, and dropped by sweep().
    // In blocks of 32 (BlockQueue): std::deque keeps an element over 256 bytes in a block of its
    // own (a Recent is 504 bytes), one heap allocation per login; 32 to a block make it one per
    // 32 logins, the blocks side by side as the window walks on.
    BlockQueue<Recent, 32> logins_;
    std::uint64_t base_seq_ = 0;
    /// finish() forgets what falls out of the windows as settle() always does (a late verdict
    /// must not see it), but by counting it here and in kdc_gone_ instead of destroying it:
    /// at the end of input everything left is forgotten, and destroying it object by object,
    /// cache miss after cache miss, was half of the analysis thread's time alone at the end of a
    /// two-thread run (perf, 200 MB login-dense: 13 of 27 ms), and `analyze` lets the analyzer
    /// go without destroying it. Any later call first destroys what is forgotten (resume()).
    bool finishing_ = false;
    std::size_t logins_gone_ = 0;  ///< the first logins_gone_ of logins_ are forgotten
    [[nodiscard]] std::size_t logins_kept() const { return logins_.size() - logins_gone_; }
    void resume();
    SeqIndex by_client_;  ///< logins by client address
    /// Logins by client address, each as (start time, sequence number) sorted by start: the
    /// logins a middle server started while one of its inbound logins was being answered are a
    /// range of it (link_answered_late, offer_hidden), however many logins it made before.
    /// Reports come nearly in start order, so an insertion lands near the end.
    std::unordered_map<IpAddress, std::vector<std::pair<std::int64_t, std::uint64_t>>,
                       IpAddressHash>
        by_client_start_;
    std::unordered_map<IpAddress, Inbound, IpAddressHash>
        inbound_;  ///< chain candidates by server address
    /// Logins by connection: the latest login's sequence number, each login naming the one
    /// before it on its connection (Recent::back_on_flow; the numbers fall along the chain, so
    /// the first one forgotten ends it). Not a list per connection: that was a heap allocation
    /// per login for the one login a connection nearly always has. Hashed: looked up for every
    /// login and every closed connection, and iterated only to prune and count; as a std::map its
    /// FlowKey comparisons (16-byte addresses, a memcmp each) were most of what the analysis
    /// spent on it.
    std::unordered_map<FlowKey, std::uint64_t, FlowKeyHash> by_flow_;
    /// The kept KDC exchanges, oldest first, in one window: kdcs_[i] has sequence number
    /// kdc_first_seq_ + i, and the first kdc_gone_ of them are forgotten (finish()), which the
    /// lookups skip: a chain linked late inside finish() looks at the middle server's exchanges
    /// (test Analyzer.FinishDoesNotLetALateChainSeeTheKdcExchangesItsWindowsForgot). One window
    /// with 16 exchanges to a block, not a std::deque per client: a KdcEntry is over 256 bytes,
    /// so std::deque kept each in a block of its own, a heap allocation and a free per exchange
    /// (callgrind, 20 MB login-dense: 1.5 % of the instructions in the deque's push_back alone).
    BlockQueue<KdcEntry, 16> kdcs_;
    std::uint64_t kdc_first_seq_ = 0;
    std::size_t kdc_gone_ = 0;
    [[nodiscard]] std::size_t kdc_kept() const { return kdcs_.size() - kdc_gone_; }
    [[nodiscard]] std::uint64_t kdc_first_kept() const { return kdc_first_seq_ + kdc_gone_; }
    [[nodiscard]] const KdcEntry& kdc_at(std::uint64_t seq) const {
        return kdcs_[static_cast<std::size_t>(seq - kdc_first_seq_)];
    }
    /// Each client's exchanges in the window, by sequence number, oldest first (those below
    /// kdc_first_kept() are forgotten: only while finishing).
    std::unordered_map<IpAddress, std::deque<std::uint64_t>, IpAddressHash> kdc_by_client_;
    std::uint64_t adds_since_sweep_ = 0;

    // The clock: the latest time of an event or a tick. Before wake_us_ a tick has nothing to do.
    Timestamp now_{};
    std::int64_t wake_us_ = std::numeric_limits<std::int64_t>::min();
    // The late verdicts of each login run in two steps, in the order of their deadlines: the
    // link to an inbound login reported after it (chain_window after the login), then the
    // verdicts on the login alone (twice that). Logins below these sequence numbers are done.
    std::uint64_t link_next_ = 0;
    std::uint64_t verdict_next_ = 0;

    // De-duplication: rule|key -> time of its latest evidence and a serial number, and the keys
    // by that time (oldest first) so that the old ones can be dropped.
    struct DedupMark {
        std::int64_t last = 0;
        std::uint64_t serial = 0;
    };
    /// By "rule|key". Hashed: a login-dense capture keeps ~10^5 keys that share long prefixes,
    /// which an ordered map compared level by level (memcmp was a tenth of the analysis).
    /// Nodes do not move, so dedup_by_time_ may point at the keys.
    std::unordered_map<std::string, DedupMark> dedup_;
    std::map<std::pair<std::int64_t, std::uint64_t>, const std::string*> dedup_by_time_;
    /// dedup_key()'s buffer.
    mutable std::string dedup_scratch_;
    const std::string& dedup_key(std::string_view rule, const std::string& key) const;
    std::uint64_t dedup_serial_ = 0;

    /// Names learned per address; hashed, like middle_servers_ (both looked up for every login,
    /// iterated only to count). An address's names (lower case) and their weights, at most 16,
    /// are searched in place (a std::map here cost four string compares and a node per name, for
    /// every login).
    using HostNames = std::vector<std::pair<std::string, std::int64_t>>;
    std::unordered_map<IpAddress, HostNames, IpAddressHash> names_;
    std::unordered_set<IpAddress, IpAddressHash>
        middle_servers_;  ///< hosts seen making outbound TDS logins
    /// The hop rows by HopKey: values, not the text detail::hop_key() writes of them, because
    /// every login looks its row up, and building, hashing and comparing that text per login was
    /// most of add_login's own time (perf, 200 MB login-dense, glibc build: add_login 3.7 % of
    /// the samples with the text key, 1.0 % and 1.1 % in this table's lookup with this one).
    /// Hashed (a std::map's string comparisons were 4 % of analyze on a login-dense capture);
    /// hop_summary() sorts the rows by their key's text. Not noexcept, so that each node keeps
    /// its hash (see FlowKeyHash).
    struct HopKeyHash {
        std::size_t operator()(const HopKey& k) const;
    };
    struct HopRow {
        std::string user;
        std::uint64_t count = 0;
    };
    std::unordered_map<HopKey, HopRow, HopKeyHash> hops_;
    std::map<std::string, ChainSummary> chains_;
    std::uint64_t summary_overflow_ = 0;
    std::uint64_t emitted_ = 0;
    bool saw_kdc_ = false;
};

}  // namespace hopscope::analysis
