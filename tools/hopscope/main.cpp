// hopscope command line: one binary, one subcommand per mode. Each mode registers its subcommand
// and runs it; exit codes are 0 ok, 1 findings (with --fail-on-findings), 2 bad usage or input.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "command_line.hpp"
#include "huge_pages.hpp"

#ifdef HOPSCOPE_MIMALLOC
#include <mimalloc.h>
#endif

namespace {

/// The memory allocator the process runs with, as --version tells it: mimalloc only when a
/// block from calloc() is in its heap (the build links it; this checks that it took the place of
/// the C library's malloc, e.g. not undone by the link order).
std::string allocator_line() {
#ifdef HOPSCOPE_MIMALLOC
    void* p = std::calloc(1, 64);  // (zeroed: the check reads no uninitialised byte)
    const bool ours = p != nullptr && mi_is_in_heap_region(p);
    std::free(p);
    if (ours) {
        const int v = mi_version();  // 209: 2.0.9
        return "memory allocator: mimalloc " + std::to_string(v / 100) + "." +
               std::to_string(v / 10 % 10) + "." + std::to_string(v % 10);
    }
#endif
#if defined(__SANITIZE_ADDRESS__)
    return "memory allocator: AddressSanitizer's (a sanitizer build)";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return "memory allocator: AddressSanitizer's (a sanitizer build)";
#endif
#endif
    return "memory allocator: the C library's malloc";
}

/// What --version says of the build beyond the version. (One expression of the same shape for
/// each build, so that the profile-guided build's profiles, taken from a build that is
/// link-time optimized but not profile-guided, fit this function.)
std::string build_lines() {
#if defined(HOPSCOPE_PROFILE_GUIDED) && defined(HOPSCOPE_LTO)
    return allocator_line() +
           "\noptimization: profile-guided (GCC profiles of analyze runs), link-time (-flto)";
#elif defined(HOPSCOPE_PROFILE_GUIDED)
    return allocator_line() + "\noptimization: profile-guided (GCC profiles of analyze runs)";
#elif defined(HOPSCOPE_LTO)
    return allocator_line() + "\noptimization: link-time (-flto)";
#else
    return allocator_line();
#endif
}

#ifdef HOPSCOPE_MIMALLOC
/// What the measurement saw, for the lines below: "2 MiB faulted in ... us as 4 KiB pages, ...".
std::string measured(const hopscope::cli::PageFaultCost& cost) {
    char line[256];
    if (cost.huge_page_measured) {
        std::snprintf(line, sizeof line,
                      "2 MiB faulted in %.0f us as 4 KiB pages, %.0f us as one huge page",
                      cost.small_pages_us, cost.huge_page_us);
    } else {
        std::snprintf(line, sizeof line,
                      "2 MiB faulted in %.0f us as 4 KiB pages, no huge page touched",
                      cost.small_pages_us);
    }
    std::string out = line;
    if (cost.host_takes_free_huge_pages) {
        std::snprintf(line, sizeof line,
                      "; counted at %.0f us at least: this machine's host takes free huge pages "
                      "back, so the heap's come cold",
                      hopscope::cli::kColdHugePageUs);
        out += line;
    }
    return out;
}

/// Runs the capture command with mimalloc's heap on transparent huge pages: the options set,
/// then the command on a new thread, whose heap takes its memory after that (huge_pages.hpp).
/// With mimalloc's verbose option on (MIMALLOC_VERBOSE=1), says so on standard error, as mimalloc
/// lists the options it started with.
int run_on_huge_pages(hopscope::cli::CommandLine& cli,
                      const hopscope::cli::HugePageChoice& choice) {
    mi_option_set(mi_option_large_os_pages, 1);
    if (std::getenv("MIMALLOC_EAGER_COMMIT_DELAY") == nullptr)  // a setting of the user's stays
        mi_option_set(mi_option_eager_commit_delay, 0);
    if (mi_option_is_enabled(mi_option_verbose)) {
        std::fprintf(stderr,
                     "hopscope: heap on transparent huge pages from here on (mimalloc options "
                     "'large_os_pages': %ld, 'eager_commit_delay': %ld; %s)\n",
                     mi_option_get(mi_option_large_os_pages),
                     mi_option_get(mi_option_eager_commit_delay),
                     choice.cost ? measured(*choice.cost).c_str() : "HOPSCOPE_HUGE_PAGES set");
    }
    int rc = hopscope::cli::kExitOk;
    std::thread run;
    try {
        run = std::thread([&] { rc = hopscope::cli::run_capture_command(cli.captures); });
    } catch (const std::system_error&) {  // no thread to be had: this one, on 4 KiB pages
        return hopscope::cli::run_capture_command(cli.captures);
    }
    run.join();
    return rc;
}
#endif

}  // namespace

int main(int argc, char** argv) {
#ifndef HOPSCOPE_MIMALLOC
    // With the C library's malloc, `analyze` starts itself again with its heap on transparent
    // huge pages where that pays (huge_pages.hpp); with mimalloc, after the parse below.
    hopscope::cli::restart_with_huge_pages(argv);  // `analyze` only; returns when not
#endif
    hopscope::cli::CommandLine cli(build_lines());
    try {
        cli.app.parse(hopscope::cli::parse_order(std::vector<std::string>(argv + 1, argv + argc)));
    } catch (const CLI::Success& e) {
        return cli.app.exit(e);  // --help, --version
    } catch (const CLI::ParseError& e) {
        cli.app.exit(e);
        return hopscope::cli::kExitBadInput;
    }
#ifdef HOPSCOPE_MIMALLOC
    // `analyze` of large captures runs with mimalloc's heap on transparent huge pages where a
    // measurement says that they pay here, on a thread of its own (huge_pages.hpp).
    if (cli.captures.analyze_cmd != nullptr && cli.captures.analyze_cmd->parsed()) {
        const auto choice = hopscope::cli::huge_pages_for_analyze(cli.captures.analyze.files);
        if (choice.huge) return run_on_huge_pages(cli, choice);
        if (choice.cost && mi_option_is_enabled(mi_option_verbose))
            std::fprintf(stderr, "hopscope: heap on 4 KiB pages (%s)\n",
                         measured(*choice.cost).c_str());
    }
#endif
    int rc = hopscope::cli::run_capture_command(cli.captures);
    if (rc >= 0) return rc;
    rc = hopscope::cli::run_proxy_command(cli.proxy);
    if (rc >= 0) return rc;
    std::fputs(cli.app.help().c_str(), stdout);
    return hopscope::cli::kExitOk;
}
