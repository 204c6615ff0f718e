// When `analyze` starts itself again with glibc's huge-page tunable (tools/hopscope/
// huge_pages.hpp): only analyze, only once, never against the user's own settings or a tool
// that would lose the process, and the user's other tunables kept. With mimalloc: when it
// measures what a page fault costs, and what it decides from the measurement.
#include "huge_pages.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace {

using hopscope::cli::forced;
using hopscope::cli::free_huge_pages_go_to_host;
using hopscope::cli::huge_page_tunables;
using hopscope::cli::huge_pages_pay;
using hopscope::cli::HugePageEnv;
using hopscope::cli::input_bytes;
using hopscope::cli::kColdHugePageUs;
using hopscope::cli::kHugePageMinInput;
using hopscope::cli::measure_page_fault_cost;
using hopscope::cli::MimallocHugePageEnv;
using hopscope::cli::PageFaultCost;
using hopscope::cli::worth_measuring;

constexpr const char* kMadvise = "always [madvise] never\n";

HugePageEnv env(std::string_view command) {
    return {command, nullptr, nullptr, nullptr, kMadvise};
}

TEST(HugePages, AnalyzeStartsAgainWithTheTunable) {
    EXPECT_EQ(huge_page_tunables(env("analyze")), "glibc.malloc.hugetlb=1");
    HugePageEnv e = env("analyze");
    e.thp_enabled = "[always] madvise never\n";
    EXPECT_EQ(huge_page_tunables(e), "glibc.malloc.hugetlb=1");
}

TEST(HugePages, OtherCommandsDoNot) {
    for (const char* c : {"proxy", "live", "--help", "", "analyzer"})
        EXPECT_FALSE(huge_page_tunables(env(c))) << c;
}

TEST(HugePages, TheUsersTunablesAreKeptAndTheirChoiceWins) {
    HugePageEnv e = env("analyze");
    e.glibc_tunables = "glibc.malloc.tcache_count=100";
    EXPECT_EQ(huge_page_tunables(e), "glibc.malloc.tcache_count=100:glibc.malloc.hugetlb=1");
    e.glibc_tunables = "";
    EXPECT_EQ(huge_page_tunables(e), "glibc.malloc.hugetlb=1");
    // Set already: by the user (even to 0), or by the first start: no second restart.
    e.glibc_tunables = "glibc.malloc.hugetlb=0";
    EXPECT_FALSE(huge_page_tunables(e));
    e.glibc_tunables = "glibc.malloc.tcache_count=100:glibc.malloc.hugetlb=1";
    EXPECT_FALSE(huge_page_tunables(e));
}

TEST(HugePages, OptOutValgrindAndNoHugePagesStayAsTheyAre) {
    HugePageEnv e = env("analyze");
    e.opt_out = "1";
    EXPECT_FALSE(huge_page_tunables(e));
    e.opt_out = "";  // set but empty: not an opt-out
    EXPECT_TRUE(huge_page_tunables(e));
    e = env("analyze");
    e.ld_preload = "/usr/libexec/valgrind/vgpreload_core-amd64-linux.so";
    EXPECT_FALSE(huge_page_tunables(e));
    e.ld_preload = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    EXPECT_TRUE(huge_page_tunables(e));
    e = env("analyze");
    for (const char* thp : {"always madvise [never]\n", ""}) {
        e.thp_enabled = thp;
        EXPECT_FALSE(huge_page_tunables(e)) << thp;
    }
}

TEST(HugePages, NotWhenTheHostTakesFreeHugePagesBack) {
    HugePageEnv e = env("analyze");
    e.host_takes_free_huge_pages = true;
    EXPECT_FALSE(huge_page_tunables(e));
    e.host_takes_free_huge_pages = false;
    EXPECT_TRUE(huge_page_tunables(e));
}

// The balloon's feature string as this Firecracker VM's kernel shows it: bits 1 (statistics),
// 2 (deflate on OOM) and 5 (free page reporting) set.
constexpr const char* kReportingBalloon =
    "0110010100000000000000000000000010000000000000000000000000000000";

TEST(HugePages, FreePageReportingAtOrBelowTheHugePageOrderTakesThemBack) {
    const std::vector<std::string> balloon{kReportingBalloon};
    // x86-64: 4 KiB pages, 2 MiB huge pages (order 9).
    EXPECT_TRUE(free_huge_pages_go_to_host(balloon, "9\n", "2097152\n", 4096));
    EXPECT_TRUE(free_huge_pages_go_to_host(balloon, "5\n", "2097152\n", 4096));
    // Reported only in blocks larger than a huge page (the kernel's default order is 10 or the
    // pageblock order; this VM's command line asks for 11): a freed huge page may stay.
    EXPECT_FALSE(free_huge_pages_go_to_host(balloon, "10\n", "2097152\n", 4096));
    EXPECT_FALSE(free_huge_pages_go_to_host(balloon, "11\n", "2097152\n", 4096));
    // 64 KiB pages with 512 MiB huge pages (order 13).
    EXPECT_TRUE(free_huge_pages_go_to_host(balloon, "13", "536870912", 65536));
    EXPECT_FALSE(free_huge_pages_go_to_host(balloon, "14", "536870912", 65536));
}

TEST(HugePages, NoReportingBalloonOrUnreadableFilesKeepHugePages) {
    // No balloon, or one without bit 5 (statistics and deflate on OOM only).
    EXPECT_FALSE(free_huge_pages_go_to_host({}, "9", "2097152", 4096));
    EXPECT_FALSE(free_huge_pages_go_to_host({"0110000000"}, "9", "2097152", 4096));
    EXPECT_FALSE(free_huge_pages_go_to_host({"01100"}, "9", "2097152", 4096));  // too short
    // A second balloon device that reports is enough.
    EXPECT_TRUE(
        free_huge_pages_go_to_host({"0110000000", kReportingBalloon}, "9", "2097152", 4096));
    // Files missing or not numbers: nothing known, nothing changed.
    const std::vector<std::string> balloon{kReportingBalloon};
    EXPECT_FALSE(free_huge_pages_go_to_host(balloon, "", "2097152", 4096));
    EXPECT_FALSE(free_huge_pages_go_to_host(balloon, "9", "", 4096));
    EXPECT_FALSE(free_huge_pages_go_to_host(balloon, "nine", "2097152", 4096));
    EXPECT_FALSE(free_huge_pages_go_to_host(balloon, "99", "2097152", 4096));
    EXPECT_FALSE(free_huge_pages_go_to_host(balloon, "9", "2097152", 0));
}

MimallocHugePageEnv large_input() {
    MimallocHugePageEnv e;
    e.thp_enabled = kMadvise;
    e.input_bytes = kHugePageMinInput;
    return e;
}

TEST(MimallocHugePages, MeasuredOnlyForLargeInputWithTransparentHugePages) {
    EXPECT_TRUE(worth_measuring(large_input()));
    MimallocHugePageEnv e = large_input();
    e.input_bytes = kHugePageMinInput - 1;  // the repository's captures are all far below
    EXPECT_FALSE(worth_measuring(e));
    e.input_bytes = UINT64_MAX;  // standard input, a pipe
    EXPECT_TRUE(worth_measuring(e));
    e.thp_enabled = "[always] madvise never\n";
    EXPECT_TRUE(worth_measuring(e));
    for (const char* thp : {"always madvise [never]\n", ""}) {
        e.thp_enabled = thp;
        EXPECT_FALSE(worth_measuring(e)) << thp;
    }
}

TEST(MimallocHugePages, NotAgainstTheUsersSettingsNorUnderValgrind) {
    MimallocHugePageEnv e = large_input();
    e.opt_out = "1";
    EXPECT_FALSE(worth_measuring(e));
    e.opt_out = "";  // set but empty: not an opt-out
    EXPECT_TRUE(worth_measuring(e));
    // The user's own choice, either way: mimalloc reads it, and it stays as it is.
    for (const char* v : {"0", "1", ""}) {
        e = large_input();
        e.user_setting = v;
        EXPECT_FALSE(worth_measuring(e)) << v;
    }
    e = large_input();
    e.ld_preload = "/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so";
    EXPECT_FALSE(worth_measuring(e));
    e.ld_preload = "/usr/lib/x86_64-linux-gnu/libfaketime.so.1";
    EXPECT_TRUE(worth_measuring(e));
}

TEST(MimallocHugePages, ChosenWhenTheHugePageFaultsForLess) {
    // Measured: the VM with shadow page tables (4 KiB faults dear), the Firecracker VM (cold
    // huge pages dear, figures of its runs scaled to 2 MiB), a tie.
    EXPECT_TRUE(huge_pages_pay(PageFaultCost{5600, 3000}));
    EXPECT_TRUE(huge_pages_pay(PageFaultCost{5600, 120}));
    EXPECT_FALSE(huge_pages_pay(PageFaultCost{700, 5000}));
    EXPECT_FALSE(huge_pages_pay(PageFaultCost{300, 300}));
}

TEST(MimallocHugePages, AHugePageCountsColdWhereTheHostTakesThemBack) {
    // This VM's probe (balloon with free page reporting at order 9): 4 KiB pages 650-1 040 us
    // per 2 MiB, its huge page warm at 93-385 us; cold ones 4.4-4.9 ms. 4 KiB pages there.
    for (const double small : {650.0, 1040.0, kColdHugePageUs}) {
        EXPECT_TRUE(huge_pages_pay(PageFaultCost{small, 93}));
        EXPECT_FALSE(huge_pages_pay(PageFaultCost{small, 93, true})) << small;
    }
    // The VM with dear 4 KiB faults and the same balloon: 6.3-8.3 ms against 4.3-5.4 ms, huge
    // pages either way; a cold probe dearer than the floor counts as measured.
    EXPECT_TRUE(huge_pages_pay(PageFaultCost{6300, 120, true}));
    EXPECT_TRUE(huge_pages_pay(PageFaultCost{8300, 5400, true}));
    EXPECT_FALSE(huge_pages_pay(PageFaultCost{6300, 6400, true}));
    EXPECT_TRUE(huge_pages_pay(PageFaultCost{kColdHugePageUs + 1, 93, true}));
    // No huge page touched (the small pages at the floor or below): the floor decides.
    EXPECT_FALSE(huge_pages_pay(PageFaultCost{900, 0, true, false}));
    EXPECT_FALSE(huge_pages_pay(PageFaultCost{900, 0, false, false}));
}

TEST(MimallocHugePages, ForcedOnlyWithoutTheOptOutOrTheUsersOwnSetting) {
    MimallocHugePageEnv e = large_input();
    EXPECT_FALSE(forced(e));
    e.force = "";  // set but empty: not set
    EXPECT_FALSE(forced(e));
    e.force = "1";
    EXPECT_TRUE(forced(e));
    e.input_bytes = 0;  // whatever the size
    EXPECT_TRUE(forced(e));
    e.thp_enabled = "";  // and the kernel's answer is mimalloc's to take
    EXPECT_TRUE(forced(e));
    e = large_input();
    e.force = "1";
    e.opt_out = "1";  // the opt-out wins
    EXPECT_FALSE(forced(e));
    e.opt_out = nullptr;
    e.user_setting = "0";
    EXPECT_FALSE(forced(e));
    e.user_setting = nullptr;
    e.ld_preload = "/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so";
    EXPECT_FALSE(forced(e));
}

TEST(MimallocHugePages, MeasuresBothWaysWhereTheKernelHasThem) {
    EXPECT_FALSE(measure_page_fault_cost("always madvise [never]\n"));
    EXPECT_FALSE(measure_page_fault_cost(""));
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    const std::string thp((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (thp.find("[always]") == std::string::npos && thp.find("[madvise]") == std::string::npos)
        GTEST_SKIP() << "no transparent huge pages in this kernel: " << thp;
    {
        // The advice the measurement needs: when this process may not have it (a container's
        // seccomp policy, say), nothing can be measured.
        const std::size_t len = std::size_t{4} << 20;
        void* m = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(m, MAP_FAILED);
        const bool advised =
            ::madvise(m, len / 2, MADV_NOHUGEPAGE) == 0 &&
            ::madvise(static_cast<char*>(m) + len / 2, len / 2, MADV_HUGEPAGE) == 0;
        ::munmap(m, len);
        if (!advised) GTEST_SKIP() << "madvise(MADV_HUGEPAGE) refused here";
    }
    const auto cost = measure_page_fault_cost(thp);
    ASSERT_TRUE(cost);
    // 512 faults of 4 KiB take time on any machine; the huge page's single fault too (it is
    // cleared), though it may come out as 4 KiB pages when no huge page is free.
    EXPECT_GT(cost->small_pages_us, 0.0);
    EXPECT_GT(cost->huge_page_us, 0.0);
    EXPECT_LT(cost->small_pages_us, 10e6);
    EXPECT_TRUE(cost->huge_page_measured);
    std::printf("2 MiB as 4 KiB pages: %.0f us, as one huge page: %.0f us\n", cost->small_pages_us,
                cost->huge_page_us);
    // Small pages under the floor: the huge page is left untouched. (A floor of ten seconds:
    // 512 faults take less on any machine this runs on.)
    const auto floor = measure_page_fault_cost(thp, 10e6);
    ASSERT_TRUE(floor);
    EXPECT_GT(floor->small_pages_us, 0.0);
    EXPECT_FALSE(floor->huge_page_measured);
    EXPECT_EQ(floor->huge_page_us, 0.0);
}

TEST(MimallocHugePages, InputSizeCountsRegularFilesAndTakesPipesAsLarge) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("hopscope_huge_pages_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto a = dir / "a.pcap";
    const auto b = dir / "b.pcap";
    std::ofstream(a) << std::string(1000, 'x');
    std::ofstream(b) << std::string(24, 'y');
    EXPECT_EQ(input_bytes({a.string(), b.string()}), 1024u);
    EXPECT_EQ(input_bytes({}), 0u);
    EXPECT_EQ(input_bytes({(dir / "missing.pcap").string(), b.string()}), 24u);
    EXPECT_EQ(input_bytes({a.string(), "-"}), UINT64_MAX);
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    EXPECT_EQ(input_bytes({"/dev/fd/" + std::to_string(fds[0])}), UINT64_MAX);
    ::close(fds[0]);
    ::close(fds[1]);
    std::filesystem::remove_all(dir);
}

}  // namespace
