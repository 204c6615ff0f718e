// When `analyze` starts itself again with glibc's huge-page tunable (tools/hopscope/
// huge_pages.hpp): only analyze, only once, never against the user's own settings or a tool
// that would lose the process, and the user's other tunables kept.
#include "huge_pages.hpp"

#include <gtest/gtest.h>

namespace {

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

}  // namespace
