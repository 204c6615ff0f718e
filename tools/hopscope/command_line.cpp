#include "command_line.hpp"

#include <algorithm>
#include <cstddef>

namespace hopscope::cli {

CommandLine::CommandLine(const std::string& build)
    : app("hopscope - finds why a SQL Server login lost the user's identity on a double hop\n"
          "(C -> A -> linked server B): decodes TDS, SPNEGO/Kerberos/NTLM and Kerberos on port "
          "88,\nclassifies every login and flags broken delegation with the evidence and the "
          "fix.") {
    app.set_version_flag("--version", std::string("hopscope ") + HOPSCOPE_VERSION +
                                          (build.empty() ? "" : "\n" + build));
    app.require_subcommand(0, 1);
    app.footer(
        "Exit status: 0 ok, 1 error findings (with --fail-on-findings), 2 bad usage or input.");
    add_capture_commands(app, captures);
    add_proxy_command(app, proxy);
}

std::vector<std::string> parse_order(std::vector<std::string> args) {
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[0] != "proxy") break;
        if (args[i] == "--config" && i + 1 < args.size()) {
            const std::string file = args[i + 1];
            args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                       args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
            args.insert(args.begin(), {"--config", file});
            break;
        }
        if (args[i].rfind("--config=", 0) == 0) {
            const std::string opt = args[i];
            args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
            args.insert(args.begin(), opt);
            break;
        }
    }
    std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order
    return args;
}

}  // namespace hopscope::cli
