// Fuzz target: `hopscope proxy --config FILE` with hostile files. The input is the file; it is
// read as main() reads it (tools/hopscope/command_line.cpp: every subcommand registered, the
// arguments `proxy --config FILE` in CLI11's order, CLI11's TOML reader, the options' checks),
// and when `proxy` was selected its options are built and validated as run_proxy_command does
// (proxy_options: --listen/--upstream pairs, HOST:PORT, sizes, times, TLS companions). Nothing
// is started. A bad file must end in a typed error: a CLI::ParseError (which main reports with
// exit status 2) or proxy_options' message; any other exception escapes and is a finding, as
// are a crash, a hang and undefined behaviour.
// Seeds: docs/hopscope-proxy.toml and variants of it (tests/fuzz/make_proxy_config_seeds.py).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "command_line.hpp"
#include "hopscope/proxy/config.hpp"

namespace {

/// The file the input is written to, one per process (fuzzing jobs run side by side), removed
/// at exit.
struct File {
    std::string path;
    File() {
        const char* dir = std::getenv("TMPDIR");
        path = std::string(dir && *dir ? dir : "/tmp") + "/hopscope-fuzz-proxy-config-" +
               std::to_string(::getpid()) + ".toml";
    }
    ~File() { std::remove(path.c_str()); }
    File(const File&) = delete;
    File& operator=(const File&) = delete;
};

const std::string& path() {
    static const File f;
    return f.path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::FILE* f = std::fopen(path().c_str(), "wb");
    if (!f) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);

    // The command line is built once (building its hundred options was most of the time of an
    // execution) and brought back to what a new one holds before each parse: no results, every
    // option's variable at its default.
    static hopscope::cli::CommandLine cli;
    cli.app.clear();
    CLI::App* const analyze = cli.captures.analyze_cmd;
    CLI::App* const live = cli.captures.live_cmd;
    CLI::App* const proxy = cli.proxy.cmd;
    cli.captures = hopscope::cli::CaptureCommands{};
    cli.captures.analyze_cmd = analyze;
    cli.captures.live_cmd = live;
    cli.proxy = hopscope::cli::ProxyCommand{};
    cli.proxy.cmd = proxy;
    try {
        cli.app.parse(hopscope::cli::parse_order({"proxy", "--config", path()}));
    } catch (const CLI::ParseError&) {
        return 0;  // what main() reports (exit status 2), or --help/--version from the file
    }
    if (!cli.proxy.cmd->parsed()) return 0;
    hopscope::proxy::ProxyOptions options;
    std::string err;
    if (!hopscope::cli::proxy_options(cli.proxy, options, err) && err.empty()) std::abort();
    if (err.empty() && !hopscope::proxy::validate(options).empty()) std::abort();
    return 0;
}
