// Why: `analyze` keeps its windows (logins, KDC exchanges, de-duplication keys) in many small
// heap objects, a few hundred MB on a busy capture. Faulting that memory in 4 KiB at a time was
// a quarter of a login-dense run here (43 757 page faults for 200 MB; 3 500-4 300 with huge
// pages, the run a sixth to a fifth shorter: docs/performance.md). glibc gives its heap to
// transparent huge pages (madvise(MADV_HUGEPAGE) on what it takes from the kernel) only when the
// tunable glibc.malloc.hugetlb is set when the process starts, so `analyze` sets it and starts
// itself once more before it reads anything. The proxy and `live` do not: a huge-page fault may
// wait for the kernel to compact memory, and their forwarding and capture threads must not.
#include "huge_pages.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HOPSCOPE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define HOPSCOPE_SANITIZED 1
#endif
#endif

namespace hopscope::cli {

std::optional<std::string> huge_page_tunables(const HugePageEnv& env) {
    if (env.command != "analyze") return std::nullopt;
    if (env.opt_out != nullptr && *env.opt_out != '\0') return std::nullopt;
    const std::string_view tunables = env.glibc_tunables != nullptr ? env.glibc_tunables : "";
    if (tunables.find("glibc.malloc.hugetlb") != std::string_view::npos) return std::nullopt;
    if (env.ld_preload != nullptr &&
        std::string_view(env.ld_preload).find("vgpreload") != std::string_view::npos)
        return std::nullopt;
    if (env.thp_enabled.find("[always]") == std::string_view::npos &&
        env.thp_enabled.find("[madvise]") == std::string_view::npos)
        return std::nullopt;
    std::string out(tunables);
    if (!out.empty()) out += ':';
    out += "glibc.malloc.hugetlb=1";
    return out;
}

void restart_with_huge_pages(char** argv) {
#ifdef HOPSCOPE_SANITIZED
    (void)argv;  // the sanitizers' allocators do not read glibc's tunables
#else
    if (argv == nullptr || argv[0] == nullptr || argv[1] == nullptr) return;
    std::string thp;
    if (std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled"); f)
        thp.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    const char* before = std::getenv("GLIBC_TUNABLES");
    const auto tunables = huge_page_tunables(
        {argv[1], before, std::getenv("LD_PRELOAD"), std::getenv("HOPSCOPE_NO_HUGE_PAGES"), thp});
    if (!tunables) return;
    const std::optional<std::string> saved =
        before != nullptr ? std::optional<std::string>(before) : std::nullopt;
    if (::setenv("GLIBC_TUNABLES", tunables->c_str(), 1) != 0) return;
    ::execv("/proc/self/exe", argv);
    // Not started again (no /proc, say): go on as before, with the variable as it was.
    if (saved) {
        ::setenv("GLIBC_TUNABLES", saved->c_str(), 1);
    } else {
        ::unsetenv("GLIBC_TUNABLES");
    }
#endif
}

}  // namespace hopscope::cli
