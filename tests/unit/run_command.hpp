// Runs a shell command from a test (tshark as a reference) and returns its standard output.
#pragma once

#include <array>
#include <cstdio>
#include <string>

namespace hopscope::testing {

/// The command's standard output; empty when it cannot be started.
inline std::string run_command(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return out;
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
        out.append(buf.data(), n);
    pclose(p);
    return out;
}

}  // namespace hopscope::testing
