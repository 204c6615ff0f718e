// The hopscope command line as main() parses it: the application with every subcommand, and
// the order CLI11 takes the arguments in. Shared with the tests and the fuzz target of the
// proxy's configuration file (tests/fuzz/fuzz_proxy_config.cpp).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "capture_commands.hpp"
#include "proxy_command.hpp"

namespace hopscope::cli {

struct CommandLine {
    /// `build` is printed by --version under the version line (e.g. the memory allocator).
    explicit CommandLine(const std::string& build = {});
    CommandLine(const CommandLine&) = delete;
    CommandLine& operator=(const CommandLine&) = delete;

    CLI::App app;
    CaptureCommands captures;
    ProxyCommand proxy;
};

/// The arguments after the program name, as CLI::App::parse(std::vector) takes them (reversed).
/// CLI11 2.1 reads a configuration file only through a top-level option, before the subcommand:
/// `hopscope proxy ... --config FILE` is taken as `hopscope --config FILE proxy ...`.
std::vector<std::string> parse_order(std::vector<std::string> args);

}  // namespace hopscope::cli
