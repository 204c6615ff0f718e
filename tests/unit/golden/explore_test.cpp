#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "run_pipeline.hpp"

namespace hopscope::golden {
namespace {

// Prints every event of the captures named in HOPSCOPE_EXPLORE (colon-separated); skipped
// otherwise. A development aid, not an assertion.
TEST(Explore, PrintEvents) {
    const char* env = std::getenv("HOPSCOPE_EXPLORE");
    if (!env) GTEST_SKIP() << "set HOPSCOPE_EXPLORE=file.pcap[:file2]";
    std::vector<std::string> paths;
    std::string s = env;
    for (std::size_t start = 0; start <= s.size();) {
        std::size_t end = s.find(':', start);
        if (end == std::string::npos) end = s.size();
        paths.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    Collected c;
    auto r = run_pipeline(paths, c);
    for (const auto& e : r.errors)
        std::printf("read error: %s\n", e.message.c_str());
    for (const auto& j : c.json)
        std::printf("%s\n", j.c_str());
}

}  // namespace
}  // namespace hopscope::golden
