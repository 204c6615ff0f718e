// The `hopscope proxy` subcommand: the inline mode (see docs/proxy.md).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace hopscope::proxy {
struct ProxyOptions;
}

namespace hopscope::cli {

struct ProxyCommand {
    std::vector<std::string> listen;
    std::vector<std::string> upstream;
    bool transparent = false;
    bool tproxy = false;
    bool splice = false;
    std::vector<std::string> names;  ///< --name: other names clients may use for the proxy
    unsigned threads = 0;
    int analysis_nice = 10;
    bool no_analysis_idle = false;
    std::size_t max_connections = 10000;
    double connect_timeout_s = 5;
    double idle_timeout_s = 3600;
    double grace_s = 10;
    std::size_t buffer_size = 256 * 1024;
    std::size_t tap_queue_bytes = 64 * 1024 * 1024;
    std::string json;
    bool quiet = false;
    std::string log_file;
    std::string log_level = "info";
    std::uint64_t log_max_bytes = 0;
    unsigned log_keep = 5;
    std::string record;
    std::uint64_t record_max_bytes = 0;
    unsigned record_keep = 4;
    bool record_upstream_leg = false;
    std::string metrics;
    bool metrics_any_address = false;
    bool tls_terminate = false;
    std::string tls_cert;
    std::string tls_key;
    std::string upstream_ca;
    bool upstream_verify = false;
    std::string tls_keylog;
    std::vector<std::string> keytabs;  ///< Kerberos service keytabs (--keytab)
    CLI::App* cmd = nullptr;
};

void add_proxy_command(CLI::App& app, ProxyCommand& c);

/// The proxy's options from what the command line and the configuration file gave, checked
/// (proxy::validate and the pairing of --listen and --upstream): false with `err` saying what
/// is wrong. What run_proxy_command starts from.
bool proxy_options(const ProxyCommand& c, proxy::ProxyOptions& options, std::string& err);

/// Runs `proxy` when it was selected; its exit code, or -1 when it was not.
int run_proxy_command(const ProxyCommand& c);

}  // namespace hopscope::cli
