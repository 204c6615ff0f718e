// hopscope command line: one binary, one subcommand per mode.
#include <CLI/CLI.hpp>
#include <cstdio>

int main(int argc, char** argv) {
    CLI::App app{
        "hopscope - finds why a SQL Server login lost the user's identity on a double hop\n"
        "(C -> A -> linked server B): decodes TDS, SPNEGO/Kerberos/NTLM and Kerberos on port 88,\n"
        "classifies every login and flags broken delegation with the evidence and the fix."};
    app.set_version_flag("--version", std::string("hopscope ") + HOPSCOPE_VERSION);
    app.require_subcommand(0, 1);
    CLI11_PARSE(app, argc, argv);
    if (app.get_subcommands().empty()) {
        std::fputs(app.help().c_str(), stdout);
    }
    return 0;
}
