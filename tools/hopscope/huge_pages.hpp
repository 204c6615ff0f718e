// Transparent huge pages for the heap of `analyze`, through glibc's start-up tunable.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hopscope::cli {

/// What the process sees when it decides whether to start itself again with huge pages.
struct HugePageEnv {
    std::string_view command;      ///< argv[1]: the subcommand
    const char* glibc_tunables;    ///< GLIBC_TUNABLES, or null
    const char* ld_preload;        ///< LD_PRELOAD, or null (valgrind's tools preload theirs)
    const char* opt_out;           ///< HOPSCOPE_NO_HUGE_PAGES, or null
    std::string_view thp_enabled;  ///< /sys/kernel/mm/transparent_hugepage/enabled
};

/// The GLIBC_TUNABLES value to start `analyze` again with, or nothing when it should go on as
/// it is: another command, the tunable already set (by the user, or by the first start), the
/// opt-out variable set, a preloaded tool that would not follow the new start (valgrind), or no
/// transparent huge pages in the kernel ("[never]", or the file unreadable).
[[nodiscard]] std::optional<std::string> huge_page_tunables(const HugePageEnv& env);

/// Starts the process again as `argv` with glibc.malloc.hugetlb=1 when huge_page_tunables()
/// says so; returns when it does not, or when the new start fails (it then runs as it is).
void restart_with_huge_pages(char** argv);

}  // namespace hopscope::cli
