// The inline proxy: listeners, forwarding, and the tap that feeds the analysis thread.
//
//   client --> [listener] --> Connection: two pumps, client->upstream and upstream->client
//                                   |  (a copy of what each pump forwarded)
//                                   v
//                                  Tap --> analysis thread --> StreamSink (the pipeline),
//                                                              Recorder, tick once a second
//
// I/O threads each run their own io_context; a connection lives on one of them from accept to
// close, so its two pumps never race and the forwarding path takes no lock. Each thread accepts
// on a listening socket of its own per listener (SO_REUSEPORT: the kernel spreads connections);
// a thread serving two connections more than the least busy one hands a new one to it.
//
// Forwarding never waits for analysis (fail-open): the tap copies and queues; when the queue is
// full the copy is dropped and the decoder is told about the gap. What the decoder thinks never
// changes, delays or closes a connection.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hopscope/common/stream_events.hpp"
#include "hopscope/proxy/config.hpp"
#include "hopscope/proxy/tap.hpp"

namespace hopscope::proxy {

class Metrics;
class Recorder;
class TlsContexts;

/// What the analysis thread calls. Every pointer may be null; all calls come from that thread.
struct AnalysisHooks {
    StreamSink* sink = nullptr;
    Recorder* recorder = nullptr;
    bool record_upstream_leg = false;
    /// Once a second of wall-clock time (rules that wait for time to pass).
    std::function<void(Timestamp)> tick;
    /// After each batch of tap items, and at least four times a second (flush or reopen
    /// outputs).
    std::function<void()> after_batch;
    /// When the proxy stops, after the last item: end of input for the pipeline.
    std::function<void(Timestamp)> finish;
};

struct ProxyStats {
    std::uint64_t connections_open = 0;
    std::uint64_t connections_total = 0;
    std::uint64_t connections_refused = 0;
    std::uint64_t upstream_connect_failures = 0;
    std::uint64_t tapped_connections = 0;
    /// Connections each I/O thread serves now. The kernel spreads new connections over the
    /// threads' listening sockets; a thread that has two more than the least busy one hands a
    /// new connection to it (`handed_over` counts those).
    std::vector<std::uint64_t> connections_per_thread;
    std::uint64_t handed_over = 0;
    /// Times the analysis thread, at idle priority while its queue was short, went back to its
    /// niceness because the queue grew (ProxyOptions::analysis_idle).
    std::uint64_t analysis_raised = 0;
    TapStats tap;
};

class Proxy {
  public:
    Proxy(ProxyOptions options, AnalysisHooks hooks, Metrics* metrics = nullptr);
    ~Proxy();
    Proxy(const Proxy&) = delete;
    Proxy& operator=(const Proxy&) = delete;

    /// Resolves upstreams, binds every listener and starts the threads. False with `err` (which
    /// listener or upstream, and why) when any of it fails; nothing is left running then.
    bool start(std::string& err);
    /// The listeners' bound addresses, in route order (port 0 in the options = chosen here).
    [[nodiscard]] std::vector<Endpoint> listen_endpoints() const;
    /// Stops accepting; open connections go on.
    void stop_accepting();
    /// Waits until no connection is open or `grace` has passed, closes what is left, lets the
    /// analysis thread finish every queued item, calls hooks.finish, and joins all threads.
    void shutdown(std::chrono::milliseconds grace);
    [[nodiscard]] ProxyStats stats() const;
    /// With --tls-terminate, after start(): the certificate shown to clients and the rest.
    [[nodiscard]] const TlsContexts* tls() const;

    struct Impl;  ///< defined in proxy.cpp (connections reach it)

  private:
    std::unique_ptr<Impl> impl_;
};

/// The current time as the decoder's Timestamp (wall clock, microseconds).
Timestamp now();

/// An Asio endpoint as the decoder's Endpoint (IPv4-mapped IPv6 as IPv4).
Endpoint to_endpoint(const boost::asio::ip::tcp::endpoint& e);

/// Resolves the upstream of every explicit route that has no addresses yet (DNS or hosts file,
/// once). False with a message naming the upstream when a name does not resolve.
bool resolve_upstreams(ProxyOptions& options, std::string& err);

}  // namespace hopscope::proxy
