// What the capture commands (analyze, live) feed: a StreamSink that also reports at the end.
//
// The CLI builds exactly one Backend through make_backend(): the decoding pipeline (a
// Conversation per TDS flow, the Kerberos decoder, the analyzer, JSON events and the console
// view), or with `flows_only` the FlowSummary that only counts connections and bytes per flow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/analysis/analyzer.hpp"
#include "hopscope/analysis/events.hpp"
#include "hopscope/auth/kerberos_keys.hpp"
#include "hopscope/captures/capture_source.hpp"
#include "hopscope/captures/stream_assembler.hpp"
#include "hopscope/common/stream_events.hpp"
#include "hopscope/tls/keylog.hpp"

namespace hopscope::cli {

/// stdio buffer of a JSON events file: a line is some 700 bytes, and stdio's default 4 KiB made
/// a write(2) every few events on login-dense traffic.
inline constexpr std::size_t kJsonFileBuffer = std::size_t{1} << 16;

/// Gives `f` (just opened, nothing written to it yet) a kJsonFileBuffer-byte stdio buffer:
/// `*own` when given, which must outlive the file, else one that lasts as long as the process
/// (standard output's). glibc's setvbuf() without a caller's buffer keeps the file system's
/// block size, 4 KiB, whatever size it is asked for.
inline void buffer_json_output(std::FILE* f, std::unique_ptr<char[]>* own) {
    char* buf = nullptr;
    if (own != nullptr) {
        *own = std::make_unique_for_overwrite<char[]>(kJsonFileBuffer);  // stdio writes first
        buf = own->get();
    } else {
        static char process_lifetime[kJsonFileBuffer];
        buf = process_lifetime;
    }
    std::setvbuf(f, buf, _IOFBF, kJsonFileBuffer);
}

struct BackendOptions {
    std::vector<std::uint16_t> tds_ports{1433};
    std::vector<std::uint16_t> kerberos_ports{88};
    bool verbose = false;       ///< one line per connection as it closes
    bool quiet = false;         ///< no summary on stdout (JSON and errors only)
    std::FILE* json = nullptr;  ///< JSON lines destination, or nullptr
    /// Flush the JSON stream after every event (live; pipes and terminals). Off when `analyze`
    /// writes to a regular file, which is read when the run is over: no system call per event.
    bool json_flush_each = true;
    std::FILE* text = stdout;  ///< human-readable output
    bool flows_only = false;   ///< list flows without decoding them (FlowSummary)
    bool proxy = false;        ///< fed by the inline proxy: no frames, summary without them
    /// The proxy's listeners and names, for the rules on the proxy itself (HS060, HS061).
    analysis::Analyzer::ProxyView proxy_view;
    /// Called for every login and finding after it was written (the proxy's metrics).
    std::function<void(const analysis::LoginEvent&)> login_hook;
    std::function<void(const analysis::Finding&)> finding_hook;
    /// Secrets for the TLS inside TDS (analyze --tls-keylog); must outlive the backend.
    const tls::KeySource* tls_keys = nullptr;
    /// Kerberos service keys (--keytab); must outlive the backend.
    const auth::KerberosKeys* kerberos_keys = nullptr;
    /// The analysis (analyzer, JSON, console) on a thread of its own beside the decoding
    /// (analyze --threads 2); the output is the same.
    bool analysis_thread = false;
};

/// What Backend::read_sharded read.
struct ShardedRead {
    captures::ReadResult result;     ///< as captures::read_captures gives it
    captures::AssemblerStats stats;  ///< over all shards
    Timestamp last{};                ///< the time of the latest frame
};

class Backend : public StreamSink {
  public:
    /// analyze --threads N (N >= 2) on files that can be read more than once: reads `files`
    /// N times at once, each reader following a shard of the flows, and feeds this backend the
    /// merged result, the same as one reader would have. Returns once everything read has
    /// been analysed, up to what finish() does; nullopt when this backend cannot (then read
    /// the files into it as usual). `options` gives progress (from one reader) and stop.
    virtual std::optional<ShardedRead> read_sharded(const std::vector<std::string>& /*files*/,
                                                    const captures::AssemblerConfig& /*config*/,
                                                    const captures::ReadOptions& /*options*/,
                                                    unsigned /*shards*/) {
        return std::nullopt;
    }
    /// Lets time pass (capture time now and then, and the wall clock while a live link is quiet):
    /// verdicts that wait for a window come out once it has passed. Stream events move the same
    /// clock; this one only adds the time in between. No-op for backends without timers.
    virtual void tick(Timestamp /*now*/) {}
    /// Returns once every event of what was fed so far has been written (a backend that
    /// analyses on another thread waits for it); no-op otherwise.
    virtual void settle() {}
    /// After the front-end has closed every flow: print the summary, write the JSON summary.
    virtual void finish(Timestamp end, const captures::AssemblerStats& capture) = 0;
    /// After finish(): ends the threads of the backend's own (waiting for what they still
    /// make); no-op for a backend without any.
    virtual void stop() {}
    /// True when a finding of severity "error" was reported (for --fail-on-findings).
    [[nodiscard]] virtual bool has_error_findings() const = 0;
};

std::unique_ptr<Backend> make_flow_summary_backend(const BackendOptions& options);
std::unique_ptr<Backend> make_analysis_backend(const BackendOptions& options);
inline std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
    return options.flows_only ? make_flow_summary_backend(options) : make_analysis_backend(options);
}

}  // namespace hopscope::cli
