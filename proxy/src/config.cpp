#include "hopscope/proxy/config.hpp"

#include <charconv>
#include <set>

namespace hopscope::proxy {

std::string HostPort::str() const {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<HostPort> parse_host_port(const std::string& text, std::string& err) {
    HostPort hp;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            err = "'" + text + "': expected [IPv6]:PORT";
            return std::nullopt;
        }
        hp.host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) {
            err = "'" + text + "': expected HOST:PORT";
            return std::nullopt;
        }
        hp.host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (hp.host.find(':') != std::string::npos) {
            err = "'" + text + "': write an IPv6 address in brackets, [addr]:PORT";
            return std::nullopt;
        }
    }
    if (hp.host.empty()) {
        err = "'" + text + "': the host is empty (0.0.0.0 or [::] listen on every address)";
        return std::nullopt;
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
        err = "'" + text + "': the port must be a number 0-65535";
        return std::nullopt;
    }
    hp.port = static_cast<std::uint16_t>(value);
    return hp;
}

std::string validate(const ProxyOptions& o) {
    if (o.routes.empty()) return "no listener: give --listen (with --upstream, or --transparent)";
    std::set<std::pair<std::string, std::uint16_t>> seen;
    for (const auto& r : o.routes) {
        if (r.mode == RouteMode::Explicit && r.upstream.host.empty())
            return "listener " + r.listen.str() + " has no upstream";
        if (r.mode == RouteMode::Explicit && r.upstream.port == 0)
            return "upstream " + r.upstream.str() + ": port 0";
        if (r.mode == RouteMode::Transparent && !r.upstream.host.empty())
            return "listener " + r.listen.str() +
                   " is transparent: it forwards to each connection's original destination and "
                   "takes no upstream";
        if (r.listen.port != 0 && !seen.insert({r.listen.host, r.listen.port}).second)
            return "listener " + r.listen.str() + " given twice";
    }
    if (o.threads > 1024) return "--threads: at most 1024";
    if (o.analysis_nice < 0 || o.analysis_nice > 19) return "--analysis-nice: 0 to 19";
    if (o.max_connections == 0) return "--max-connections must be at least 1";
    if (o.buffer_size < 4096 || o.buffer_size > (16u << 20))
        return "--buffer-size must be between 4096 and 16777216 bytes";
    if (o.tap_queue_bytes < o.buffer_size)
        return "--tap-queue-bytes must be at least --buffer-size";
    if (o.connect_timeout.count() <= 0) return "--connect-timeout must be positive";
    if (o.idle_timeout.count() < 0) return "--idle-timeout must not be negative";
    const TlsOptions& t = o.tls;
    if (!t.terminate) {
        if (!t.cert_file.empty() || !t.key_file.empty())
            return "--tls-cert/--tls-key need --tls-terminate";
        if (!t.upstream_ca.empty() || t.upstream_verify)
            return "--upstream-ca/--upstream-verify need --tls-terminate (without it the proxy "
                   "does not speak TLS to the upstream)";
        if (!t.keylog_file.empty())
            return "--tls-keylog needs --tls-terminate (without it the proxy holds no TLS "
                   "secrets; have the client write a key log and use analyze --tls-keylog)";
    }
    if (t.cert_file.empty() != t.key_file.empty()) return "--tls-cert and --tls-key go together";
    return {};
}

}  // namespace hopscope::proxy
