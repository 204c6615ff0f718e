// JSON lines rendering of hopscope events. One object per line; every object has "schema"
// (kSchemaVersion), "event" and "ts" (RFC 3339, microseconds). Documented in docs/events.md.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "hopscope/analysis/analyzer.hpp"
#include "hopscope/analysis/events.hpp"
#include "hopscope/report/time.hpp"

namespace hopscope::report {

/// One event as a line of JSON (no newline), as nlohmann's compact dump of to_json() prints it.
std::string json_line(const analysis::LoginEvent& e);
std::string json_line(const analysis::KerberosEvent& e);
std::string json_line(const analysis::ServerErrorEvent& e);
std::string json_line(const analysis::Finding& e);

/// The same events as JSON values (parsed from json_line), for callers that inspect them.
nlohmann::ordered_json to_json(const analysis::LoginEvent& e);
nlohmann::ordered_json to_json(const analysis::KerberosEvent& e);
nlohmann::ordered_json to_json(const analysis::ServerErrorEvent& e);
nlohmann::ordered_json to_json(const analysis::Finding& e);
/// The end-of-run "summary" event: hop and chain aggregates, counters. summary_line() is its
/// line (without the newline), summary_json() the same parsed.
std::string summary_line(Timestamp ts, const analysis::Analyzer& a,
                         const nlohmann::ordered_json& counters);
nlohmann::ordered_json summary_json(Timestamp ts, const analysis::Analyzer& a,
                                    const nlohmann::ordered_json& counters);

/// Writes one JSON document per line to a stdio stream. By default each line is flushed (so
/// `tail -f` and pipes into jq see events as they happen); a file read only at the end can be
/// written without a system call per event.
class JsonLinesWriter {
  public:
    explicit JsonLinesWriter(std::FILE* out, bool flush_each_line = true)
        : out_(out), flush_each_line_(flush_each_line) {}
    void write(const nlohmann::ordered_json& j);
    /// The same lines as json_line() gives, built in a buffer kept from one event to the next.
    void write(const analysis::LoginEvent& e);
    void write(const analysis::KerberosEvent& e);
    void write(const analysis::ServerErrorEvent& e);
    void write(const analysis::Finding& f);
    void write_line(std::string line);
    /// The summary event's line (summary_line()), written in pieces as it is made.
    void write_summary(Timestamp ts, const analysis::Analyzer& a,
                       const nlohmann::ordered_json& counters);

  private:
    template <typename Event>
    void write_event(const Event& e);
    void put(std::string_view line);

    std::FILE* out_;
    bool flush_each_line_;
    std::string line_;  ///< where each event's line is built
};

}  // namespace hopscope::report
