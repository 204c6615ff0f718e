// The decoding pipeline shared by every front-end: per-connection byte streams in (StreamSink),
// typed events and findings out (EventSink).
//
// TDS connections get a session::Conversation; their authentication blobs are classified by
// auth::classify_sspi and folded into one analysis::LoginEvent per login attempt. Flows on a
// Kerberos port are framed (TCP length prefix, or one message per UDP datagram), decoded, and
// each request is paired with its answer into an analysis::KerberosEvent. ERROR tokens on an
// established session become ServerErrorEvents carrying the statement that drew them. Everything
// goes through the analyzer, whose findings come out as they are decided.
//
// Pure like the rest of the decoder: no clock, no I/O; time comes from the front-end. The
// analysis side (analyzer and EventSink) can be handed to the front-end as values
// (Options::relay, AnalysisCall) and made later with replay(), on a thread of the front-end's
// choosing: the decoding and the analysis then overlap (analyze --threads).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include "hopscope/analysis/analyzer.hpp"
#include "hopscope/analysis/events.hpp"
#include "hopscope/auth/kerberos_keys.hpp"
#include "hopscope/common/stream_events.hpp"
#include "hopscope/tls/keylog.hpp"

namespace hopscope::pipeline {

class EventSink {
  public:
    virtual ~EventSink() = default;
    virtual void on_login(const analysis::LoginEvent&) {}
    virtual void on_kerberos(const analysis::KerberosEvent&) {}
    virtual void on_server_error(const analysis::ServerErrorEvent&) {}
    virtual void on_finding(const analysis::Finding&) {}
};

/// One call of the pipeline's analysis side as a value: what the analyzer and the EventSink are
/// given for a login, a server error, a KDC exchange, a connection's end, the clock or the end
/// of input. Made by replay(), in the order relayed: the events and findings are then the same,
/// byte for byte, as without a relay. Clock ticks that no other call separates are relayed as
/// one (the analyzer's verdicts do not depend on how often its clock is moved).
struct AnalysisCall {
    enum class Kind : std::uint8_t { Tick, Login, ServerError, Kerberos, Closed, Finish };
    Kind kind = Kind::Tick;
    std::optional<Timestamp> tick;  ///< the clock moves here first
    Timestamp ts{};                 ///< Closed: when
    FlowKey flow{};                 ///< Closed: which connection
    std::variant<std::monostate, analysis::LoginEvent, analysis::ServerErrorEvent,
                 analysis::KerberosEvent>
        event;
};

/// Takes the analysis calls of a pipeline that has Options::relay set, in order.
class AnalysisRelay {
  public:
    virtual ~AnalysisRelay() = default;
    virtual void relay(AnalysisCall&& call) = 0;
};

struct Counters {
    std::uint64_t tds_connections = 0;
    std::uint64_t kerberos_flows = 0;
    std::uint64_t logins = 0;
    std::uint64_t kerberos_messages = 0;
    std::uint64_t server_errors = 0;
    std::uint64_t decode_problems = 0;  ///< malformed units (TDS, SSPI, Kerberos)
    std::uint64_t resyncs = 0;
    std::uint64_t gaps = 0;
    std::uint64_t encrypted_records = 0;  ///< TLS records left opaque
    std::uint64_t decrypted_records = 0;  ///< TLS records opened with the key log
    Counters& operator+=(const Counters& o);
};

class Pipeline final : public StreamSink {
  public:
    struct Options {
        std::vector<std::uint16_t> kerberos_ports{88};
        analysis::Analyzer::Options analyzer{};
        /// A UDP Kerberos flow without a datagram for this long is dropped and its unanswered
        /// requests reported (a TCP one ends when the front-end closes its connection).
        std::int64_t kdc_udp_idle_us = 60'000'000;
        /// Secrets for the TLS inside TDS (session::Conversation::Options::tls_keys); must
        /// outlive the pipeline. nullptr: TLS stays opaque.
        const tls::KeySource* tls_keys = nullptr;
        /// Service keys for the Kerberos AP-REQs of TDS logins (a keytab, `--keytab`): each
        /// ticket, authenticator and forwarded TGT is decrypted and its facts go into the login
        /// event (LoginEvent::keytab). Must outlive the pipeline and be safe to call from its
        /// thread. nullptr: tickets stay opaque.
        const auth::KerberosKeys* kerberos_keys = nullptr;
        /// Set: the analysis calls go to the relay instead of being made (see AnalysisCall);
        /// the front-end makes them with replay(). The relay must outlive the pipeline.
        AnalysisRelay* relay = nullptr;
    };

    explicit Pipeline(EventSink& sink);
    Pipeline(EventSink& sink, Options options);
    ~Pipeline() override;
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    void on_open(const FlowKey& flow, Timestamp ts, bool handshake_seen) override;
    void on_data(const FlowKey& flow, Direction dir, Timestamp ts, Bytes data,
                 Evidence ev) override;
    void on_gap(const FlowKey& flow, Direction dir, Timestamp ts, std::uint64_t length) override;
    void on_close(const FlowKey& flow, Timestamp ts, CloseReason why) override;
    void on_datagram(const FlowKey& flow, Direction dir, Timestamp ts, Bytes payload,
                     Evidence ev) override;
    /// A front-end that terminates TLS itself: the plaintext of the TLS application data of a
    /// TDS connection (session::Conversation::feed_plaintext). The clear bytes of the same
    /// connection (PRELOGIN, handshake) still come through on_data.
    void on_tls_plaintext(const FlowKey& flow, Direction dir, Timestamp ts, Bytes plaintext,
                          Evidence ev) override;

    /// Lets time pass without a stream event: the front-end calls it now and then (live on a
    /// quiet link with the wall clock, the proxy once a second). The timestamps of the stream
    /// events move the same clock, so verdicts that wait for a window (Analyzer::tick) come out
    /// once it has passed, and what has aged out is forgotten, however often tick is called.
    void tick(Timestamp now);
    /// End of input: closes every open connection (pending logins become incomplete), reports
    /// unanswered KDC requests, and runs the analyzer's end-of-run rules.
    void finish(Timestamp ts);

    /// With a relay: makes one relayed call (the analyzer, the EventSink). Touches nothing the
    /// decoding side uses, so it may run on another thread than the StreamSink calls, one
    /// call at a time and in the order relayed.
    void replay(AnalysisCall& call);
    /// With a relay: relays a pending clock tick (one not yet carried by another call), so
    /// that replaying what was relayed brings the analysis up to the decoding's clock.
    void flush_clock();

    /// With a relay, read these once every relayed call has been replayed.
    [[nodiscard]] const analysis::Analyzer& analyzer() const;
    [[nodiscard]] const Counters& counters() const;
    /// A front-end that decodes on several pipelines (one per shard of the flows) and replays
    /// their relayed calls on this one adds their counters here.
    void add_counters(const Counters& c);
    /// TDS connections and Kerberos flows held now.
    [[nodiscard]] std::size_t open_flows() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hopscope::pipeline
