// `hopscope proxy --config FILE` read as main() reads it (tools/hopscope/command_line.hpp), then
// turned into the proxy's options (proxy_options): a hostile file ends in a typed error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "command_line.hpp"
#include "hopscope/proxy/config.hpp"

namespace {

using hopscope::cli::CommandLine;
using hopscope::cli::parse_order;

/// A configuration file with `text`, removed at the end of the test.
struct ConfigFile {
    explicit ConfigFile(const std::string& text) {
        path =
            ::testing::TempDir() + "hopscope-proxy-config-" + std::to_string(::getpid()) + ".toml";
        std::ofstream(path, std::ios::binary) << text;
    }
    ~ConfigFile() { std::remove(path.c_str()); }
    ConfigFile(const ConfigFile&) = delete;
    ConfigFile& operator=(const ConfigFile&) = delete;
    std::string path;
};

/// Parses `proxy --config FILE` with `text` as the file; the proxy's options or their error.
struct Parsed {
    bool parse_error = false;
    bool ok = false;
    std::string err;
    hopscope::proxy::ProxyOptions options;
};
Parsed parse(const std::string& text) {
    ConfigFile f(text);
    CommandLine cli;
    Parsed r;
    try {
        cli.app.parse(parse_order({"proxy", "--config", f.path}));
    } catch (const CLI::ParseError&) {
        r.parse_error = true;
        return r;
    }
    r.ok = hopscope::cli::proxy_options(cli.proxy, r.options, r.err);
    return r;
}

TEST(ProxyConfig, TheCommentedExampleGivesTwoExplicitRoutes) {
    std::ifstream in(std::string(HOPSCOPE_TEST_DATA_DIR) + "/../../docs/hopscope-proxy.toml");
    ASSERT_TRUE(in);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const Parsed p = parse(text);
    ASSERT_FALSE(p.parse_error);
    ASSERT_TRUE(p.ok) << p.err;
    ASSERT_EQ(p.options.routes.size(), 2u);
    EXPECT_EQ(p.options.routes[1].upstream.str(), "sqlb.corp.example:1433");
    EXPECT_EQ(p.options.idle_timeout.count(), 3'600'000);
}

// CLI11's range checks let "nan" through; converting it to milliseconds was undefined
// behaviour (a float-to-integer conversion out of range). Found while writing
// fuzz_proxy_config, by reading the option checks; its seed nan-times.toml replays it.
TEST(ProxyConfig, ATimeThatIsNotANumberIsAnError) {
    int reached = 0;  // cases that CLI11 let through to proxy_options
    for (const char* key : {"connect-timeout", "idle-timeout", "grace"})
        for (const char* value : {"nan", "NaN", "-nan"}) {
            const Parsed p = parse(std::string("[proxy]\nlisten = [\"127.0.0.1:1\"]\n"
                                               "upstream = [\"127.0.0.1:2\"]\n") +
                                   key + " = " + value + "\n");
            if (p.parse_error) continue;  // refused by CLI11 itself: also a typed error
            ++reached;
            EXPECT_FALSE(p.ok) << key << " = " << value;
            EXPECT_NE(p.err.find(key), std::string::npos) << p.err;
        }
    EXPECT_GE(reached, 3);  // "nan" at least, for each of the three
}

TEST(ProxyConfig, HostileFilesEndInATypedError) {
    const char* const texts[] = {
        "[proxy]\n",                                                // no listener
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\n",                    // no upstream
        "[proxy]\nlisten = [\"[::1\"]\nupstream = [\"a:1\"]\n",     // bad IPv6
        "[proxy]\nlisten = [\"h:99999\"]\nupstream = [\"a:1\"]\n",  // port range
        "[proxy]\nlisten = [\"h:1\"]\nupstream = [\"a:1\"]\nthreads = -1\n",
        "[proxy]\nlisten = [\"h:1\"]\nupstream = [\"a:1\"]\nbuffer-size = 1e9\n",
        "[proxy]\nlisten = [\"h:1\"]\nupstream = [\"a:1\"]\nno-such-key = 1\n",
        "[proxy]\nlisten = [\"h:1\"\n",  // an array that never ends
        "[[]]\n[proxy.]\n[.]\n",
        "[proxy]\nlisten=[\"h:1\"]\nupstream=[\"a:1\"]\ntransparent=true\n",
    };
    for (const char* t : texts) {
        const Parsed p = parse(t);
        EXPECT_TRUE(p.parse_error || !p.ok) << t;
        if (!p.parse_error) {
            EXPECT_FALSE(p.err.empty()) << t;
        }
    }
}

}  // namespace
