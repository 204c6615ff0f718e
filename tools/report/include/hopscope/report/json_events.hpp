// JSON lines rendering of hopscope events. One object per line; every object has "schema"
// (kSchemaVersion), "event" and "ts" (RFC 3339, microseconds). Documented in docs/events.md.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "hopscope/analysis/analyzer.hpp"
#include "hopscope/analysis/events.hpp"

namespace hopscope::report {

nlohmann::ordered_json to_json(const analysis::LoginEvent& e);
nlohmann::ordered_json to_json(const analysis::KerberosEvent& e);
nlohmann::ordered_json to_json(const analysis::ServerErrorEvent& e);
nlohmann::ordered_json to_json(const analysis::Finding& e);
/// The end-of-run "summary" event: hop and chain aggregates, counters.
nlohmann::ordered_json summary_json(Timestamp ts, const analysis::Analyzer& a,
                                    const nlohmann::ordered_json& counters);

/// Writes one JSON document per line to a stdio stream and flushes each line (so `tail -f` and
/// pipes into jq see events as they happen).
class JsonLinesWriter {
  public:
    explicit JsonLinesWriter(std::FILE* out) : out_(out) {}
    void write(const nlohmann::ordered_json& j);

  private:
    std::FILE* out_;
};

}  // namespace hopscope::report
