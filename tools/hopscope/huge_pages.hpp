// Transparent huge pages for the heap of `analyze`, through glibc's start-up tunable.
#pragma once

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

/// The GLIBC_TUNABLES value to start `analyze` again with, or nothing when it should go on as
/// it is: another command, the tunable already set (by the user, or by the first start), the
/// opt-out variable set, a preloaded tool that would not follow the new start (valgrind), no
/// transparent huge pages in the kernel ("[never]", or the file unreadable), or a hypervisor
/// that takes free huge pages back (HugePageEnv::host_takes_free_huge_pages).
[[nodiscard]] std::optional<std::string> huge_page_tunables(const HugePageEnv& env);

/// Starts the process again as `argv` with glibc.malloc.hugetlb=1 when huge_page_tunables()
/// says so; returns when it does not, or when the new start fails (it then runs as it is).
void restart_with_huge_pages(char** argv);

}  // namespace hopscope::cli
