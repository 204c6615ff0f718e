// What the proxy is told to do, parsed and checked before a socket is opened.
//
// A route is one listener and where its connections go: a fixed upstream (explicit mode, the
// clients name the proxy) or, transparent, the address each redirected connection was meant for
// (iptables/nftables REDIRECT or DNAT: SO_ORIGINAL_DST; TPROXY: the accepted socket's own
// address). The proxy never connects anywhere else: not to an address a client names in its
// bytes, not back to one of its own listeners.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/common/flow.hpp"

namespace hopscope::proxy {

/// "host:port", "a.b.c.d:port" or "[v6]:port" as the user wrote it; `host` without brackets.
struct HostPort {
    std::string host;
    std::uint16_t port = 0;
    [[nodiscard]] std::string str() const;
};

/// Parses HOST:PORT ([v6]:port for IPv6 literals). Port 1..65535. nullopt and `err` on failure.
std::optional<HostPort> parse_host_port(const std::string& text, std::string& err);

enum class RouteMode : std::uint8_t {
    Explicit,     ///< clients connect to the listener; every connection goes to `upstream`
    Transparent,  ///< redirected connections go to their original destination
};

struct Route {
    HostPort listen;
    RouteMode mode = RouteMode::Explicit;
    HostPort upstream;  ///< Explicit only
    /// Explicit: the upstream's addresses (numeric), resolved once by resolve_upstreams() or
    /// by Proxy::start(), so that the proxy connects where the analysis thinks it does.
    std::vector<std::string> upstream_addresses;
    /// Transparent only: set IP_TRANSPARENT on the listener so that TPROXY'd connections are
    /// accepted; the original destination is then the accepted socket's local address.
    bool tproxy = false;
};

/// --tls-terminate and its companions (tls_terminate.hpp).
struct TlsOptions {
    bool terminate = false;
    std::string cert_file;         ///< PEM certificate (chain) shown to clients; empty: self-signed
    std::string key_file;          ///< PEM private key of cert_file
    std::string upstream_ca;       ///< PEM bundle the upstream's certificate must chain to
    bool upstream_verify = false;  ///< verify the upstream (always on with upstream_ca)
    std::string keylog_file;       ///< NSS key log of both legs' sessions (Wireshark, tshark)
};

struct ProxyOptions {
    std::vector<Route> routes;
    unsigned threads = 0;  ///< I/O threads; 0 = one per core
    /// Niceness the analysis thread adds to the process's (0-19): when the cores are busy the
    /// forwarding comes first and the analysis catches up from the tap's queue.
    int analysis_nice = 10;
    /// While the tap's queue is short, the analysis thread runs at idle priority (SCHED_IDLE) so
    /// that a waking I/O thread takes its core at once; past an eighth of tap_queue_bytes it
    /// goes back to its niceness to catch up. Only where the process may leave SCHED_IDLE (root,
    /// CAP_SYS_NICE, RLIMIT_NICE): elsewhere the thread keeps its niceness.
    bool analysis_idle = true;
    std::size_t max_connections = 10000;
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};  ///< 0 = none
    /// Bytes read at once per direction, and so the most a direction holds while its reader is
    /// slow (backpressure: nothing more is read until this much has been written). A direction
    /// holds a buffer only while bytes flow. 256 KiB: fewer system calls per byte on bulk data
    /// than 64 KiB (iperf3 through the proxy 0.89-0.93 of haproxy with 64 KiB, 1.16-1.26 with
    /// 256 KiB; TDS result sets 0.85-0.95 -> 0.98-1.04; docs/performance.md).
    std::size_t buffer_size = 256 * 1024;
    /// Bytes of forwarded data waiting for the analysis thread, over all connections; past it
    /// the tap drops and reports a gap for that connection (forwarding does not wait).
    std::size_t tap_queue_bytes = 64 * 1024 * 1024;
    /// Forward connections that are not decoded with splice(2) (kernel to kernel, no copy into
    /// the process) instead of read/write through a buffer.
    bool splice = false;
    TlsOptions tls;
};

/// Checks a complete set of options: at least one route, unique listen addresses, explicit
/// routes with an upstream, transparent ones without, sane sizes. Empty string when valid.
std::string validate(const ProxyOptions& options);

}  // namespace hopscope::proxy
