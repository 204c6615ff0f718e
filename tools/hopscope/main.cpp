// hopscope command line: one binary, one subcommand per mode. Each mode registers its subcommand
// and runs it; exit codes are 0 ok, 1 findings (with --fail-on-findings), 2 bad usage or input.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "command_line.hpp"
#include "huge_pages.hpp"

int main(int argc, char** argv) {
    hopscope::cli::restart_with_huge_pages(argv);  // `analyze` only; returns when not
    hopscope::cli::CommandLine cli;
    try {
        cli.app.parse(hopscope::cli::parse_order(std::vector<std::string>(argv + 1, argv + argc)));
    } catch (const CLI::Success& e) {
        return cli.app.exit(e);  // --help, --version
    } catch (const CLI::ParseError& e) {
        cli.app.exit(e);
        return hopscope::cli::kExitBadInput;
    }
    int rc = hopscope::cli::run_capture_command(cli.captures);
    if (rc >= 0) return rc;
    rc = hopscope::cli::run_proxy_command(cli.proxy);
    if (rc >= 0) return rc;
    std::fputs(cli.app.help().c_str(), stdout);
    return hopscope::cli::kExitOk;
}
