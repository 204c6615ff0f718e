// Prometheus metrics of the proxy, served as text on --metrics ADDR:PORT (GET /metrics).
//
// Counters are bumped from the I/O threads (relaxed atomics) and from the analysis thread
// (labelled counters, behind a mutex: they change once per login or finding, not per byte).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace hopscope::proxy {

class Metrics {
  public:
    // Connections.
    std::atomic<std::uint64_t> connections_open{0};     ///< gauge
    std::atomic<std::uint64_t> connections_total{0};    ///< accepted and forwarded
    std::atomic<std::uint64_t> connections_refused{0};  ///< over --max-connections
    std::atomic<std::uint64_t> upstream_connect_failures{0};
    std::atomic<std::uint64_t> bytes_client_to_server{0};
    std::atomic<std::uint64_t> bytes_server_to_client{0};
    // Analysis.
    std::atomic<std::uint64_t> decode_problems{0};
    std::atomic<std::uint64_t> tap_gaps{0};  ///< times the tap dropped bytes
    std::atomic<std::uint64_t> tap_gap_bytes{0};

    /// Labelled counters: hopscope_logins_total{auth="ntlm",outcome="failure"}.
    void count_login(const std::string& auth, const std::string& outcome);
    /// hopscope_findings_total{rule="HS010",severity="error"}.
    void count_finding(const std::string& rule, const std::string& severity);

    /// The Prometheus text exposition format (version 0.0.4), every metric with # HELP/# TYPE.
    [[nodiscard]] std::string render() const;

  private:
    mutable std::mutex mu_;
    std::map<std::pair<std::string, std::string>, std::uint64_t> logins_;
    std::map<std::pair<std::string, std::string>, std::uint64_t> findings_;
};

/// A minimal HTTP/1.1 server for GET /metrics on its own io_context thread(s) of the caller's.
/// Other paths get 404; bad requests 400; request size is capped; connections closed after each
/// answer.
class MetricsServer {
  public:
    /// Binds and starts accepting; throws boost::system::system_error when it cannot bind.
    MetricsServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& at,
                  const Metrics& metrics);
    ~MetricsServer();
    [[nodiscard]] boost::asio::ip::tcp::endpoint local_endpoint() const;
    void stop();

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace hopscope::proxy
