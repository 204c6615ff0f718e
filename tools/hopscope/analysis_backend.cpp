// AnalysisBackend: the decoding pipeline behind `analyze` and `live`. Byte streams go through
// pipeline::Pipeline (TDS conversations, Kerberos, the analyzer); events come out as JSON lines
// (--json) and on the console: findings as soon as they are decided, logins and KDC exchanges
// with --verbose, and the chains/hops view at the end. With BackendOptions::analysis_thread,
// the analysis side (analyzer, JSON, console) runs on a thread of its own (AnalysisThread).
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "hopscope/pipeline/pipeline.hpp"
#include "hopscope/report/console.hpp"
#include "hopscope/report/json_events.hpp"

namespace hopscope::cli {
namespace {

/// `analyze --threads 2`: the pipeline relays its analysis calls (pipeline::AnalysisCall) here,
/// on the reading and decoding thread; this thread makes them, in batches and in order, so the
/// events, findings and console output are the same as with one thread. At most kMaxReady
/// batches wait: beyond that the decoding waits for the analysis (bounded memory).
class AnalysisThread final : public pipeline::AnalysisRelay {
  public:
    ~AnalysisThread() override { stop(); }
    void start(pipeline::Pipeline& p) {
        pipeline_ = &p;
        thread_ = std::thread([this] { run(); });
    }
    void relay(pipeline::AnalysisCall&& c) override {
        filling_.push_back(std::move(c));
        if (filling_.size() >= kBatch) hand_over();
    }
    /// Hands over what was relayed and waits until all of it has been made.
    void settle() {
        hand_over();
        std::unique_lock lock(mu_);
        idle_.wait(lock, [this] { return ready_.empty() && !busy_; });
    }
    /// Makes what was handed over, then ends the thread.
    void stop() {
        if (!thread_.joinable()) return;
        hand_over();
        {
            std::lock_guard lock(mu_);
            done_ = true;
        }
        work_.notify_one();
        thread_.join();
    }

  private:
    /// Calls per batch: a login's is about a kilobyte; a batch is handed over when full, and
    /// whenever the front-end settles (end of a read, end of input).
    static constexpr std::size_t kBatch = 256;
    static constexpr std::size_t kMaxReady = 16;

    void hand_over() {
        if (filling_.empty()) return;
        std::unique_lock lock(mu_);
        space_.wait(lock, [this] { return ready_.size() < kMaxReady; });
        ready_.push_back(std::move(filling_));
        filling_.clear();
        if (!spare_.empty()) {
            filling_ = std::move(spare_.back());  // its storage, cleared: no allocation
            spare_.pop_back();
        }
        work_.notify_one();
    }
    void run() {
        std::vector<pipeline::AnalysisCall> batch;
        for (;;) {
            {
                std::unique_lock lock(mu_);
                if (busy_) {
                    busy_ = false;
                    batch.clear();  // its storage, if kept, serves a later batch
                    if (spare_.size() < 2) spare_.push_back(std::exchange(batch, {}));
                    if (ready_.empty()) idle_.notify_all();
                }
                work_.wait(lock, [this] { return !ready_.empty() || done_; });
                if (ready_.empty()) return;
                batch = std::move(ready_.front());
                ready_.pop_front();
                busy_ = true;
                space_.notify_one();
            }
            for (auto& c : batch)
                pipeline_->replay(c);
        }
    }

    pipeline::Pipeline* pipeline_ = nullptr;
    std::vector<pipeline::AnalysisCall> filling_;  ///< the decoding thread's
    std::mutex mu_;
    std::condition_variable work_, space_, idle_;
    std::deque<std::vector<pipeline::AnalysisCall>> ready_;
    std::vector<std::vector<pipeline::AnalysisCall>> spare_;
    bool busy_ = false;  ///< a batch is being made
    bool done_ = false;
    std::thread thread_;
};

class AnalysisBackend final : public Backend, private pipeline::EventSink {
  public:
    explicit AnalysisBackend(BackendOptions o)
        : o_(std::move(o)),
          thread_(o_.analysis_thread ? std::make_unique<AnalysisThread>() : nullptr),
          pipeline_(*this, make_options(o_, thread_.get())),
          console_(o_.text ? o_.text : stdout, o_.text && isatty(fileno(o_.text)) != 0),
          json_(o_.json, o_.json_flush_each) {
        if (thread_) thread_->start(pipeline_);
    }
    ~AnalysisBackend() override {
        if (thread_) thread_->stop();  // while what it writes to is still here
    }
    AnalysisBackend(const AnalysisBackend&) = delete;
    AnalysisBackend& operator=(const AnalysisBackend&) = delete;

    void settle() override {
        if (!thread_) return;
        pipeline_.flush_clock();
        thread_->settle();
    }

    void on_open(const FlowKey& f, Timestamp ts, bool hs) override { pipeline_.on_open(f, ts, hs); }
    void on_data(const FlowKey& f, Direction d, Timestamp ts, Bytes b, Evidence ev) override {
        pipeline_.on_data(f, d, ts, b, ev);
    }
    void on_tls_plaintext(const FlowKey& f, Direction d, Timestamp ts, Bytes b,
                          Evidence ev) override {
        pipeline_.on_tls_plaintext(f, d, ts, b, ev);
    }
    void on_gap(const FlowKey& f, Direction d, Timestamp ts, std::uint64_t n) override {
        pipeline_.on_gap(f, d, ts, n);
    }
    void on_close(const FlowKey& f, Timestamp ts, CloseReason why) override {
        pipeline_.on_close(f, ts, why);
    }
    void on_datagram(const FlowKey& f, Direction d, Timestamp ts, Bytes b, Evidence ev) override {
        pipeline_.on_datagram(f, d, ts, b, ev);
    }
    void tick(Timestamp now) override { pipeline_.tick(now); }

    void finish(Timestamp end, const captures::AssemblerStats& s) override {
        pipeline_.finish(end);
        if (thread_) thread_->settle();  // the analyzer is read below
        const pipeline::Counters& c = pipeline_.counters();
        if (o_.text && !o_.quiet) {
            console_.summary(pipeline_.analyzer());
            if (o_.proxy)
                std::fprintf(o_.text,
                             "%llu TDS connections, %llu logins, %llu server errors; %llu gaps, "
                             "%llu decode problems\n",
                             u(c.tds_connections), u(c.logins), u(c.server_errors), u(c.gaps),
                             u(c.decode_problems));
            else
                std::fprintf(o_.text,
                             "%llu frames, %llu TDS connections, %llu logins, %llu KDC messages, "
                             "%llu server errors; %llu gaps (%llu bytes missing), %llu decode "
                             "problems\n",
                             u(s.frames), u(c.tds_connections), u(c.logins), u(c.kerberos_messages),
                             u(c.server_errors), u(s.gaps), u(s.gap_bytes), u(c.decode_problems));
            if (o_.tls_keys)
                std::fprintf(o_.text,
                             "TLS records: %llu decrypted with the key log, %llu left encrypted\n",
                             u(c.decrypted_records), u(c.encrypted_records));
        }
        if (o_.json) {
            nlohmann::ordered_json counters;
            counters["frames"] = s.frames;
            counters["damaged_frames"] = s.bad_frames;
            counters["tds_connections"] = c.tds_connections;
            counters["kerberos_flows"] = c.kerberos_flows;
            counters["logins"] = c.logins;
            counters["kerberos_messages"] = c.kerberos_messages;
            counters["server_errors"] = c.server_errors;
            counters["decode_problems"] = c.decode_problems;
            counters["resyncs"] = c.resyncs;
            counters["gaps"] = s.gaps;
            counters["gap_bytes"] = s.gap_bytes;
            counters["encrypted_records"] = c.encrypted_records;
            counters["decrypted_records"] = c.decrypted_records;
            counters["retransmitted_bytes"] = s.retransmitted_bytes;
            json_.write_line(report::summary_line(end, pipeline_.analyzer(), counters));
        }
    }

    [[nodiscard]] bool has_error_findings() const override { return error_findings_ > 0; }

  private:
    static pipeline::Pipeline::Options make_options(const BackendOptions& o,
                                                    pipeline::AnalysisRelay* relay) {
        pipeline::Pipeline::Options p;
        p.relay = relay;
        p.kerberos_ports = o.kerberos_ports;
        p.analyzer.proxy = o.proxy_view;
        p.tls_keys = o.tls_keys;
        p.kerberos_keys = o.kerberos_keys;
        return p;
    }
    static unsigned long long u(std::uint64_t v) { return static_cast<unsigned long long>(v); }
    bool text() const { return o_.text && !o_.quiet; }

    void on_login(const analysis::LoginEvent& e) override {
        if (o_.json) json_.write(e);
        if (text() && o_.verbose) console_.login(e, pipeline_.analyzer());
        if (o_.login_hook) o_.login_hook(e);
    }
    void on_kerberos(const analysis::KerberosEvent& e) override {
        if (o_.json) json_.write(e);
        if (text() && o_.verbose) console_.kerberos(e);
    }
    void on_server_error(const analysis::ServerErrorEvent& e) override {
        if (o_.json) json_.write(e);
        if (text() && o_.verbose) console_.server_error(e);
    }
    void on_finding(const analysis::Finding& f) override {
        if (f.severity == analysis::Severity::Error) ++error_findings_;
        if (o_.json) json_.write(f);
        if (text()) console_.finding(f);
        if (o_.finding_hook) o_.finding_hook(f);
    }

    BackendOptions o_;
    std::unique_ptr<AnalysisThread> thread_;  ///< before pipeline_: its relay
    pipeline::Pipeline pipeline_;
    report::ConsoleRenderer console_;
    report::JsonLinesWriter json_;
    std::uint64_t error_findings_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_analysis_backend(const BackendOptions& options) {
    return std::make_unique<AnalysisBackend>(options);
}

}  // namespace hopscope::cli
