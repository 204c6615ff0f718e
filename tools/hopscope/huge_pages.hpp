// Transparent huge pages for the heap of `analyze`: through glibc's start-up tunable, or, in a
// mimalloc build, through mimalloc's options where a measurement says they pay.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hopscope::cli {

/// What the process sees when it decides whether to start itself again with huge pages.
struct HugePageEnv {
    std::string_view command;      ///< argv[1]: the subcommand
    const char* glibc_tunables;    ///< GLIBC_TUNABLES, or null
    const char* ld_preload;        ///< LD_PRELOAD, or null (valgrind's tools preload theirs)
    const char* opt_out;           ///< HOPSCOPE_NO_HUGE_PAGES, or null
    std::string_view thp_enabled;  ///< /sys/kernel/mm/transparent_hugepage/enabled
    /// The hypervisor takes back every free huge page (free_huge_pages_go_to_host()).
    bool host_takes_free_huge_pages = false;
};

/// Whether this machine is a virtual machine that hands its free memory back to the hypervisor
/// in blocks as small as a huge page: a virtio balloon device offering free page reporting
/// (VIRTIO_BALLOON_F_REPORTING, feature bit 5; `balloon_features` holds each device's feature
/// string from /sys/bus/virtio/drivers/virtio_balloon/virtio*/features, one character per bit) and
/// the kernel's page_reporting_order (/sys/module/page_reporting/parameters/page_reporting_order)
/// at most the order of a huge page (hpage_pmd_size, /sys/kernel/mm/transparent_hugepage/, over the
/// base page size). Then each huge page a process frees goes back to the host, and the next one it
/// is given costs the host's faults as the kernel clears it.
[[nodiscard]] bool free_huge_pages_go_to_host(const std::vector<std::string>& balloon_features,
                                              std::string_view reporting_order,
                                              std::string_view hpage_pmd_size, long page_size);

/// free_huge_pages_go_to_host() for this machine, from /sys (no balloon, or a file unreadable:
/// false).
[[nodiscard]] bool host_takes_free_huge_pages();

/// The GLIBC_TUNABLES value to start `analyze` again with, or nothing when it should go on as
/// it is: another command, the tunable already set (by the user, or by the first start), the
/// opt-out variable set, a preloaded tool that would not follow the new start (valgrind), no
/// transparent huge pages in the kernel ("[never]", or the file unreadable), or a hypervisor
/// that takes free huge pages back (HugePageEnv::host_takes_free_huge_pages).
[[nodiscard]] std::optional<std::string> huge_page_tunables(const HugePageEnv& env);

/// Starts the process again as `argv` with glibc.malloc.hugetlb=1 when huge_page_tunables()
/// says so; returns when it does not, or when the new start fails (it then runs as it is).
void restart_with_huge_pages(char** argv);

/// What faulting in fresh memory costs on this machine, measured once: the same amount (one huge
/// page, 2 MiB on x86-64) touched page by page as 4 KiB pages and as one transparent huge page.
struct PageFaultCost {
    double small_pages_us = 0;  ///< every 4 KiB page its own fault (from a sample, scaled)
    double huge_page_us = 0;    ///< one fault for the whole huge page (the kernel clears it)
    /// The hypervisor takes back every free huge page (free_huge_pages_go_to_host()): the huge
    /// page measured may have come warm, the heap's later ones come cold (kColdHugePageUs).
    bool host_takes_free_huge_pages = false;
    /// False when the small pages cost no more than the floor (measure_page_fault_cost()): the
    /// huge page was not touched, huge_page_us is 0.
    bool huge_page_measured = true;
};

/// What one huge page is counted at where the host takes free huge pages back, when the probe's
/// came for less: a cold one, whose fault waits for the host's. Measured on two such VMs (2 MiB
/// touched after 12 s idle): 2.8-3.3 ms on one (128 MiB in 181-210 ms), 4.4-4.9 ms on the other,
/// whose probe saw a warm huge page in 93-385 us (docs/performance.md, "Huge pages, measured").
inline constexpr double kColdHugePageUs = 4000;

/// Measures PageFaultCost in a private mapping given back at once (the 4 KiB pages' cost from 64
/// of them, scaled; 5 ms in all on the virtual machine where faults were dearest). Nothing when the
/// kernel has no transparent huge pages (`thp_enabled` without "[always]" or "[madvise]") or when
/// the memory cannot be had.
/// `huge_page_floor_us`: what a huge page will count at least (kColdHugePageUs where the host
/// takes free huge pages back, else below 0); when the small pages cost no more than that, the
/// huge page is not touched (huge_page_measured false): the small pages decide alone.
[[nodiscard]] std::optional<PageFaultCost> measure_page_fault_cost(std::string_view thp_enabled,
                                                                   double huge_page_floor_us = -1);

/// What `analyze` in a mimalloc build sees when it decides whether to measure (and then maybe
/// ask mimalloc for huge pages).
struct MimallocHugePageEnv {
    const char* opt_out = nullptr;       ///< HOPSCOPE_NO_HUGE_PAGES, or null
    const char* force = nullptr;         ///< HOPSCOPE_HUGE_PAGES, or null
    const char* user_setting = nullptr;  ///< MIMALLOC_LARGE_OS_PAGES, or null
    const char* ld_preload = nullptr;    ///< LD_PRELOAD, or null (valgrind's tools preload theirs)
    std::string_view thp_enabled;        ///< /sys/kernel/mm/transparent_hugepage/enabled
    /// The captures' total size; UINT64_MAX when one of them is not a regular file (standard
    /// input, a pipe) and may be long.
    std::uint64_t input_bytes = 0;
};

/// Captures smaller than this are read without the measurement: their heap is a few MB at most,
/// and the measurement would cost more than it can save.
inline constexpr std::uint64_t kHugePageMinInput = std::uint64_t{64} << 20;

/// Whether to measure: large enough input, transparent huge pages in the kernel, no opt-out, no
/// MIMALLOC_LARGE_OS_PAGES of the user's own (mimalloc reads that itself and it stays the
/// user's choice), and no preloaded tool that replaces the allocator's memory (valgrind).
[[nodiscard]] bool worth_measuring(const MimallocHugePageEnv& env);

/// HOPSCOPE_HUGE_PAGES set (and not empty) without HOPSCOPE_NO_HUGE_PAGES, nor a
/// MIMALLOC_LARGE_OS_PAGES of the user's own, nor valgrind: huge pages without the measurement,
/// whatever the input's size (where the kernel has no transparent huge pages, mimalloc's
/// madvise is refused and the heap stays on 4 KiB pages).
[[nodiscard]] bool forced(const MimallocHugePageEnv& env);

/// Whether huge pages pay for the heap here: the huge page's fault costs less than the 4 KiB
/// pages' faults for the same memory, the huge page counted at kColdHugePageUs at least where
/// the host takes free huge pages back.
[[nodiscard]] bool huge_pages_pay(const PageFaultCost& cost);

/// What the heap of `analyze` runs on, and why.
struct HugePageChoice {
    bool huge = false;  ///< mimalloc's heap on transparent huge pages
    /// The measurement, when one was made; huge pages without one: HOPSCOPE_HUGE_PAGES (forced()).
    std::optional<PageFaultCost> cost;
};

/// The total size of `files` for MimallocHugePageEnv::input_bytes ("-" or anything but a regular
/// file: UINT64_MAX; a file that is not there counts nothing).
[[nodiscard]] std::uint64_t input_bytes(const std::vector<std::string>& files);

/// For `analyze FILE...` in a mimalloc build: huge pages when forced(), else when
/// worth_measuring() and then huge_pages_pay() say so.
[[nodiscard]] HugePageChoice huge_pages_for_analyze(const std::vector<std::string>& files);

/// What main() does with huge_pages_for_analyze()'s answer in a mimalloc build (the one file
/// linked with mimalloc): when it says yes, mimalloc is asked for transparent huge pages on the
/// memory it takes from then on (mi_option_large_os_pages) and to put each thread's first segment
/// on them too (mi_option_eager_commit_delay 0, unless MIMALLOC_EAGER_COMMIT_DELAY is set), and
/// the command runs on a thread started after that. Why a new thread: the main thread's heap took
/// its first segment before main() on 4 KiB pages, and the analyzer's windows would fill it first
/// (9 000 page faults left in a one-thread run on 200 MB of login-dense traffic when run on the
/// main thread, under 700 on a new one). Why not a new start of the process with
/// MIMALLOC_LARGE_OS_PAGES=1 in its environment (the way until 2026-12-07): the second start
/// loads the executable and its 26 libraries again (16-20 ms of CPU and ~380 page faults on the
/// VM this was measured on: 200 MB of the result-set mix 0.10-0.17 s -> 0.09-0.10 s; the longer
/// runs within that VM's noise; docs/performance.md, "Huge pages, measured").

}  // namespace hopscope::cli
