// When `analyze` starts itself again with glibc's huge-page tunable (tools/hopscope/
// huge_pages.hpp): only analyze, only once, never against the user's own settings or a tool
// that would lose the process, and the user's other tunables kept.
#include "huge_pages.hpp"

#include <gtest/gtest.h>

namespace {

using hopscope::cli::free_huge_pages_go_to_host;
using hopscope::cli::huge_page_tunables;
using hopscope::cli::HugePageEnv;

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

}  // namespace
