// hopscope command line: one binary, one subcommand per mode. Each mode registers its subcommand
// and runs it; exit codes are 0 ok, 1 findings (with --fail-on-findings), 2 bad usage or input.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "capture_commands.hpp"
#include "proxy_command.hpp"

int main(int argc, char** argv) {
    CLI::App app{
        "hopscope - finds why a SQL Server login lost the user's identity on a double hop\n"
        "(C -> A -> linked server B): decodes TDS, SPNEGO/Kerberos/NTLM and Kerberos on port 88,\n"
        "classifies every login and flags broken delegation with the evidence and the fix."};
    app.set_version_flag("--version", std::string("hopscope ") + HOPSCOPE_VERSION);
    app.require_subcommand(0, 1);
    app.footer(
        "Exit status: 0 ok, 1 error findings (with --fail-on-findings), 2 bad usage or input.");

    hopscope::cli::CaptureCommands captures;
    hopscope::cli::add_capture_commands(app, captures);
    hopscope::cli::ProxyCommand proxy;
    hopscope::cli::add_proxy_command(app, proxy);

    // CLI11 2.1 reads a configuration file only through a top-level option, before the
    // subcommand: `hopscope proxy ... --config FILE` is taken as `hopscope --config FILE proxy
    // ...`.
    std::vector<std::string> args(argv + 1, argv + argc);
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[0] != "proxy") break;
        if (args[i] == "--config" && i + 1 < args.size()) {
            const std::string file = args[i + 1];
            args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                       args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
            args.insert(args.begin(), {"--config", file});
            break;
        }
        if (args[i].rfind("--config=", 0) == 0) {
            const std::string opt = args[i];
            args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
            args.insert(args.begin(), opt);
            break;
        }
    }
    std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order

    try {
        app.parse(args);
    } catch (const CLI::Success& e) {
        return app.exit(e);  // --help, --version
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return hopscope::cli::kExitBadInput;
    }
    int rc = hopscope::cli::run_capture_command(captures);
    if (rc >= 0) return rc;
    rc = hopscope::cli::run_proxy_command(proxy);
    if (rc >= 0) return rc;
    std::fputs(app.help().c_str(), stdout);
    return hopscope::cli::kExitOk;
}
