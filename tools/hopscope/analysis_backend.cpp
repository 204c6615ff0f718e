// AnalysisBackend: the decoding pipeline behind `analyze` and `live`. Byte streams go through
// pipeline::Pipeline (TDS conversations, Kerberos, the analyzer); events come out as JSON lines
// (--json) and on the console: findings as soon as they are decided, logins and KDC exchanges
// with --verbose, and the chains/hops view at the end. With BackendOptions::analysis_thread,
// the analysis side (analyzer, JSON, console) runs on a thread of its own (AnalysisThread);
// with read_sharded, the flows are decoded by several threads, which merge their analysis in
// order, one at a time (ShardedRun).
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
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

/// `analyze --threads N` on files that can be read N times: the flows decoded in parallel.
///
/// N shards, each a thread with its own reader of the files, its own StreamAssembler that
/// follows only the flows hashing to its shard (AssemblerConfig::shard_index) and its own
/// Pipeline, which relays its analysis calls (a login, a KDC exchange, a closed connection...)
/// here instead of making them. The merge puts the shards' calls into the order one pipeline
/// would have made them in, and replays them on the backend's pipeline: there is one analyzer,
/// fed in one order, and the output is the same byte for byte.
///
/// The order: every shard reads every frame (its headers, to find the flow), so each knows the
/// frame number and time one reader would be at, and moves its pipeline's clock with every
/// frame, as one reader does (Backend::tick before each frame). A call is stamped with the frame
/// being read and the step of that frame it came from: Tick (the clock moves to the frame's
/// time; UDP KDC flows idle too long end), Expire (connections idle too long are closed),
/// Stream (the frame itself: its flow is one shard's), then after the last frame End (the
/// readers close what is open), Clock (the pending clock), Close (the pipelines end their KDC
/// flows). Calls of the same frame and step from several shards are flows ended together, which
/// the assembler and the pipeline always end in FlowKey order: they are merged by flow. A shard
/// hands its calls over in batches, and at least every kPositionEvery frames says how far it
/// has read, so that the merge never waits for calls that cannot come.
///
/// Who merges: the shards' threads themselves, one at a time (merge_mu_), each after handing a
/// batch over, for as long as what was handed over allows; the thread that called read() sleeps
/// until a shard is done, then merges on the core that shard left while the others finish.
/// Why not a thread of its own: that was one thread more than the cores (N shards + the merge
/// on N cores), woken by every hand-over; with two cores the three threads kept them about 80 %
/// busy (a shard waiting for the merge while the merge waited for the other shard), with
/// 130-900 voluntary context switches a run (200 MB-1 GB of login-dense traffic; now 6-15).
/// Only a shard that is not behind another merges: the merge cannot pass the shard that has
/// read the least, and when that one merged it fell further behind while the others' batches
/// piled up and then waited.
///
/// Equal to one reader except when a table overflows: each shard has the flow table and
/// out-of-order budget of a whole reader, so connections are evicted later than with one.
class ShardedRun {
  public:
    enum class Step : std::uint8_t { Tick, Expire, Stream, End, Clock, Close, Done };
    struct Position {
        std::uint64_t frame = 0;
        Step step = Step::Tick;
        auto operator<=>(const Position&) const = default;
    };
    static constexpr std::uint64_t kAfterLast = ~std::uint64_t{0};
    static constexpr Position kUntilClose{kAfterLast, Step::Close};
    static constexpr Position kAll{kAfterLast, Step::Done};

    ShardedRun(pipeline::Pipeline& main, const pipeline::Pipeline::Options& options,
               const std::vector<std::string>& files, const captures::AssemblerConfig& config,
               const captures::ReadOptions& read, unsigned shards)
        : main_(main), files_(files), cursors_(shards), seen_(shards) {
        for (unsigned i = 0; i < shards; ++i) {
            captures::AssemblerConfig c = config;
            c.shard_index = i;
            c.shard_count = shards;
            shards_.push_back(std::make_unique<Shard>(*this, options, c));
        }
        for (unsigned i = 0; i < shards; ++i) {
            captures::ReadOptions r;
            r.stop = read.stop;
            if (i == 0) {
                r.progress = read.progress;
                r.progress_every = read.progress_every;
            }
            shards_[i]->thread = std::thread(
                [this, i, r = std::move(r)]() mutable { work(*shards_[i], std::move(r)); });
        }
    }
    ~ShardedRun() {
        // Normally ended by finish(); otherwise the readers are let run to their end, what they
        // still relay taken and dropped.
        if (!finished_) {
            discard_.store(true);
            merge_until(kAll);
            join();
        }
    }
    ShardedRun(const ShardedRun&) = delete;
    ShardedRun& operator=(const ShardedRun&) = delete;

    /// Replays everything up to the pipelines' own closes, then says what was read.
    ShardedRead read() {
        {
            // Until a shard is done the shards merge (a wake-up of this thread per hand-over
            // would only cost); from then on this thread merges, on the core that shard left,
            // while the others finish their reading.
            std::unique_lock lock(mu_);
            read_over_.wait(lock, [this] {
                bool all_told = true;
                for (const auto& s : shards_) {
                    if (s->done) return true;
                    all_told = all_told && !(s->told < kUntilClose);
                }
                return all_told;
            });
        }
        merge_until(kUntilClose);
        ShardedRead r;
        r.result = shards_[0]->result;  // every shard read the same frames
        r.last = shards_[0]->assembler.last_timestamp();
        for (const auto& s : shards_)
            r.stats += s->assembler.stats();
        return r;
    }
    /// Replays the rest (the pipelines' closes) and adds the shards' counters to `main`.
    void finish() {
        merge_until(kAll);
        join();
        for (const auto& s : shards_)
            main_.add_counters(s->pipeline.counters());
        finished_ = true;
    }

  private:
    static constexpr std::size_t kBatch = 256;
    static constexpr std::size_t kMaxReady = 16;
    static constexpr std::uint64_t kPositionEvery = 4096;

    struct Stamped {
        // A constructor for emplace_back (clang 14 has no parenthesized aggregate init).
        Stamped(Position a, pipeline::AnalysisCall&& c) : at(a), call(std::move(c)) {}
        Position at;
        pipeline::AnalysisCall call;
    };
    class NoSink final : public pipeline::EventSink {};

    struct Shard final : pipeline::AnalysisRelay {
        Shard(ShardedRun& r, pipeline::Pipeline::Options o, const captures::AssemblerConfig& c)
            : run(r), pipeline(no_sink, with_relay(std::move(o), this)), assembler(pipeline, c) {}
        static pipeline::Pipeline::Options with_relay(pipeline::Pipeline::Options o,
                                                      pipeline::AnalysisRelay* r) {
            o.relay = r;
            return o;
        }
        void relay(pipeline::AnalysisCall&& c) override {
            if (c.kind == pipeline::AnalysisCall::Kind::Finish) return;  // the merge's own
            // A batch's storage is made once, whole (no regrowth moving big calls about), and
            // comes back from the merge as a spare, so that a shard that runs ahead does not
            // take fresh memory for each batch.
            if (filling.capacity() < kBatch) filling.reserve(kBatch);
            filling.emplace_back(at, std::move(c));  // one move of the call, not two
            if (filling.size() >= kBatch) run.hand_over(*this, false);
        }

        ShardedRun& run;
        NoSink no_sink;  // every call is relayed: nothing reaches it
        pipeline::Pipeline pipeline;
        captures::StreamAssembler assembler;
        Position at;                   ///< where this shard's reader is
        std::uint64_t told_frame = 0;  ///< the frame of the latest hand-over
        std::vector<Stamped> filling;  ///< this shard's thread's
        captures::ReadResult result;   ///< set when its reading is over
        std::thread thread;
        // Under mu_:
        std::deque<std::vector<Stamped>> ready;
        std::vector<std::vector<Stamped>> spare;
        Position told;  ///< no call before this is still to come, except those in `ready`
        bool done = false;
    };

    void work(Shard& s, captures::ReadOptions r) {
        r.before_frame = [this, &s](std::uint64_t frame, Timestamp ts) {
            s.at = {frame, Step::Tick};
            if (frame - s.told_frame >= kPositionEvery) hand_over(s, false);
            s.pipeline.tick(ts);
            s.at.step = Step::Expire;
            s.assembler.expire(ts);
            s.at.step = Step::Stream;
        };
        r.before_end = [&s] { s.at = {kAfterLast, Step::End}; };
        captures::ReadResult result = captures::read_captures(files_, s.assembler, r);
        s.result = std::move(result);
        s.at = {kAfterLast, Step::Clock};
        s.pipeline.flush_clock();
        s.at.step = Step::Close;
        s.pipeline.finish(s.assembler.last_timestamp());
        hand_over(s, true);
    }

    /// A shard's thread: what it relayed goes to the merge, with how far it has read, and then
    /// this thread merges what it can. While kMaxReady batches of it wait (bounded memory), it
    /// merges first, and waits only if the merge cannot take them yet.
    void hand_over(Shard& s, bool last) {
        std::unique_lock lock(mu_);
        if (!s.filling.empty()) {
            // Full: the merge waits for a shard behind this one. This one merges, again at each
            // hand-over of the others, until there is room (rather than sleep while the shard
            // behind decodes and merges too).
            while (s.ready.size() >= kMaxReady) {
                const std::uint64_t seen = handovers_;
                lock.unlock();
                merge_some();
                lock.lock();
                ++space_waiters_;
                space_.wait(lock, [this, &s, seen] {
                    return s.ready.size() < kMaxReady || handovers_ != seen;
                });
                --space_waiters_;
            }
            s.ready.push_back(std::move(s.filling));
            s.filling.clear();
            if (!s.spare.empty()) {
                s.filling = std::move(s.spare.back());
                s.spare.pop_back();
            }
        }
        s.told = s.at;
        s.done = last;
        ++handovers_;
        if (merge_waits_) work_.notify_one();
        if (space_waiters_ > 0) space_.notify_all();
        if (last || !(s.told < kUntilClose)) read_over_.notify_one();
        // The merge goes no further than the shard that has read the least: when that is this
        // one, merging now would only widen the gap (the others' batches pile up, then wait).
        bool behind = false;
        for (const auto& o : shards_)
            behind = behind || (!o->done && s.told < o->told);
        lock.unlock();
        s.told_frame = s.at.frame;
        if (!behind) merge_some();
    }

    /// A shard's thread: merges what has been handed over, up to the pipelines' closes, unless
    /// another thread is merging. That one then merges again when it is done: `pending_` says
    /// that something was handed over since its merge looked (set before trying for the turn,
    /// cleared before merging; the mutex fails a try only when another thread holds it).
    void merge_some() {
        pending_.store(true);
        if (!merge_mu_.try_lock()) return;
        do {
            pending_.store(false);
            std::uint64_t ignored = 0;
            merge_ready(kUntilClose, ignored);
            merge_mu_.unlock();
        } while (pending_.load() && merge_mu_.try_lock());
    }

    struct Cursor {
        std::vector<Stamped> batch;
        std::size_t next = 0;
        [[nodiscard]] bool has() const { return next < batch.size(); }
        [[nodiscard]] const Stamped& head() const { return batch[next]; }
    };

    static bool by_flow(Step s) { return s != Step::Stream && s != Step::Clock; }
    static const FlowKey& flow_of(const pipeline::AnalysisCall& c) {
        static const FlowKey none{};
        switch (c.event.index()) {
            case 1:
                return std::get<analysis::LoginEvent>(c.event).flow;
            case 2:
                return std::get<analysis::ServerErrorEvent>(c.event).flow;
            case 3:
                return std::get<analysis::KerberosEvent>(c.event).flow;
            default:
                return c.kind == pipeline::AnalysisCall::Kind::Closed ? c.flow : none;
        }
    }
    /// Whether shard a's next call comes before shard b's.
    bool before(std::size_t a, std::size_t b) const {
        const Stamped& x = cursors_[a].head();
        const Stamped& y = cursors_[b].head();
        if (x.at != y.at) return x.at < y.at;
        if (by_flow(x.at.step)) {
            const FlowKey& fx = flow_of(x.call);
            const FlowKey& fy = flow_of(y.call);
            if (fx != fy) return fx < fy;
        }
        return a < b;
    }

    /// Under merge_mu_: replays the shards' calls in order, up to `limit`, as far as what has
    /// been handed over allows. True once everything before `limit` is replayed; false when the
    /// next call could still be preceded by one not handed over yet, with `handovers` the count
    /// of hand-overs that saw (any later one may let the merge go on).
    bool merge_ready(Position limit, std::uint64_t& handovers) {
        const std::size_t n = cursors_.size();
        const bool replay = !discard_.load();
        for (;;) {
            for (;;) {
                std::size_t best = n;
                for (std::size_t k = 0; k < n; ++k)
                    if (cursors_[k].has() && (best == n || before(k, best))) best = k;
                if (best == n) break;
                const Position at = cursors_[best].head().at;
                if (!(at < limit)) break;
                bool certain = true;  // no shard can still send a call before it
                for (std::size_t k = 0; k < n && certain; ++k)
                    certain = cursors_[k].has() || at < seen_[k];
                if (!certain) break;
                Cursor& c = cursors_[best];
                if (replay) main_.replay(c.batch[c.next].call);
                ++c.next;
            }
            bool over = true;
            for (std::size_t k = 0; k < n && over; ++k)
                over = cursors_[k].has() ? !(cursors_[k].head().at < limit) : !(seen_[k] < limit);
            if (over) return true;
            std::lock_guard lock(mu_);
            handovers = handovers_;
            if (!take_handed_over()) return false;
        }
    }
    /// Under merge_mu_ and mu_: the next batch of each shard whose batch is replayed, and the
    /// shards' positions. True when anything changed.
    bool take_handed_over() {
        bool moved = false;
        for (std::size_t k = 0; k < cursors_.size(); ++k) {
            Cursor& c = cursors_[k];
            Shard& s = *shards_[k];
            if (c.has()) continue;
            if (!s.ready.empty()) {
                c.batch.clear();
                if (s.spare.size() < kMaxReady + 1) s.spare.push_back(std::move(c.batch));
                c.batch = std::move(s.ready.front());
                c.next = 0;
                s.ready.pop_front();
                space_.notify_all();
                moved = true;
            }
            // Only once nothing of it waits is its position a bound on what is to come.
            const Position told = !s.ready.empty() ? Position{} : s.done ? kAll : s.told;
            if (seen_[k] != told) {
                seen_[k] = told;
                moved = true;
            }
        }
        return moved;
    }

    /// The thread that called read(): replays up to `limit`, waiting for the shards as needed.
    void merge_until(Position limit) {
        for (;;) {
            std::uint64_t seen = 0;
            {
                std::lock_guard turn(merge_mu_);
                pending_.store(false);
                if (merge_ready(limit, seen)) return;
            }
            std::unique_lock lock(mu_);
            merge_waits_ = true;
            work_.wait(lock, [this, seen] { return handovers_ != seen; });
            merge_waits_ = false;
        }
    }
    void join() {
        for (auto& s : shards_)
            if (s->thread.joinable()) s->thread.join();
    }

    pipeline::Pipeline& main_;
    const std::vector<std::string>& files_;
    std::vector<std::unique_ptr<Shard>> shards_;
    /// Whose turn it is to merge; the merge's own state below is under it.
    std::mutex merge_mu_;
    std::vector<Cursor> cursors_;  ///< each shard's batch being replayed
    std::vector<Position> seen_;   ///< each shard's `told`, as last seen
    std::atomic<bool> pending_{false};
    std::atomic<bool> discard_{false};  ///< what is merged is dropped, not replayed
    // What the shards hand over, under mu_ (taken after merge_mu_ when both are).
    std::mutex mu_;
    std::condition_variable work_, space_, read_over_;
    std::uint64_t handovers_ = 0;
    bool merge_waits_ = false;    ///< merge_until() waits for a hand-over
    unsigned space_waiters_ = 0;  ///< shards waiting for room or a hand-over
    bool finished_ = false;
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
    ~AnalysisBackend() override { stop(); }
    void stop() override {
        if (thread_) thread_->stop();  // while what it writes to is still here
        // A sharded read that did not finish (nothing read): its threads end before the rest.
        sharded_.reset();
    }
    AnalysisBackend(const AnalysisBackend&) = delete;
    AnalysisBackend& operator=(const AnalysisBackend&) = delete;

    std::optional<ShardedRead> read_sharded(const std::vector<std::string>& files,
                                            const captures::AssemblerConfig& config,
                                            const captures::ReadOptions& options,
                                            unsigned shards) override {
        if (thread_) return std::nullopt;  // one way of using the cores at a time
        sharded_ = std::make_unique<ShardedRun>(pipeline_, make_options(o_, nullptr), files, config,
                                                options, shards);
        return sharded_->read();
    }

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
        if (sharded_) {
            sharded_->finish();
            sharded_.reset();
        }
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
            json_.write_summary(end, pipeline_.analyzer(), counters);
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
    std::unique_ptr<ShardedRun> sharded_;  ///< last: ends before what it replays into
};

}  // namespace

std::unique_ptr<Backend> make_analysis_backend(const BackendOptions& options) {
    return std::make_unique<AnalysisBackend>(options);
}

}  // namespace hopscope::cli
