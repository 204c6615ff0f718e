// The capture subcommands: `hopscope analyze FILE...` and `hopscope live -i IFACE`.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace hopscope::cli {

/// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFindings = 1;  ///< --fail-on-findings and an error-severity finding
inline constexpr int kExitBadInput = 2;  ///< usage error, unreadable or damaged input

struct CaptureCommands {
    struct Common {
        std::vector<std::uint16_t> tds_ports;
        std::vector<std::uint16_t> kerberos_ports;
        bool no_heuristic = false;
        bool all_flows = false;
        bool flows_only = false;
        std::string json;
        bool quiet = false;
        bool verbose = false;
        bool fail_on_findings = false;
        std::vector<std::string> keytabs;  ///< Kerberos service keytabs (--keytab)
    };
    struct Analyze : Common {
        std::vector<std::string> files;
        bool no_progress = false;
        std::vector<std::string> tls_keylogs;  ///< NSS key log files (--tls-keylog)
        unsigned threads = 0;                  ///< --threads; 0 = as many as the cores
    } analyze;
    struct Live : Common {
        std::string interface;
        std::string filter;
        int snaplen = 262144;
        bool promiscuous = true;
        int buffer_size_mib = 128;  ///< kernel capture buffer (--buffer-size)
    } live;
    CLI::App* analyze_cmd = nullptr;
    CLI::App* live_cmd = nullptr;
};

/// Registers `analyze` and `live` on the application.
void add_capture_commands(CLI::App& app, CaptureCommands& c);

/// Runs the selected capture subcommand; returns its exit code, or -1 if neither was selected.
int run_capture_command(const CaptureCommands& c);

}  // namespace hopscope::cli
