// The human view: one line per login or KDC error as it happens (verbose/live), findings with
// their evidence and remedy, and an end-of-run view of hops and chains C -> A -> B.
#pragma once

#include <cstdio>

#include "hopscope/analysis/analyzer.hpp"
#include "hopscope/analysis/events.hpp"
#include "hopscope/report/time.hpp"

namespace hopscope::report {

class ConsoleRenderer {
  public:
    /// `color`: ANSI colours (use when `out` is a terminal).
    ConsoleRenderer(std::FILE* out, bool color) : out_(out), color_(color) {}

    void login(const analysis::LoginEvent& e, const analysis::Analyzer& a);
    void kerberos(const analysis::KerberosEvent& e);
    void server_error(const analysis::ServerErrorEvent& e);
    void finding(const analysis::Finding& f);
    /// Chains, hops and the count of findings, at the end of a run.
    void summary(const analysis::Analyzer& a);

  private:
    const char* c(const char* code) const { return color_ ? code : ""; }
    std::FILE* out_;
    bool color_;
};

}  // namespace hopscope::report
