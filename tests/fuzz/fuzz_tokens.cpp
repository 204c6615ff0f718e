// Fuzz target: the TDS token stream walker. The input's first byte picks the TDS version and a
// chunking seed; the rest is one server message. It is parsed twice - whole, and cut into
// pseudo-random chunks - and both runs must report exactly the same tokens (chunking
// invariance), besides never crashing, hanging or reading out of bounds. A third run, chunked
// with row events off, must report the same minus the ROW and NBCROW tokens.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "hopscope/tds/tokens.hpp"

namespace {

using namespace hopscope;
using namespace hopscope::tds;

class LogSink : public TokenSink {
  public:
    std::string log;
    void on_login_ack(const LoginAck& a) override { add("A", a.prog_name); }
    void on_message(const ServerMessage& m) override { add("M", m.text + m.server + m.proc); }
    void on_env_change(const EnvChange& e) override { add("E", e.new_value + "|" + e.old_value); }
    void on_sspi(Bytes b) override { add("S", std::to_string(b.size())); }
    void on_done(const Done& d) override { add("D", std::to_string(d.row_count)); }
    void on_feature_ext_ack(const std::vector<FeatureAck>& a) override {
        add("F", std::to_string(a.size()));
    }
    void on_fed_auth_info(const FedAuthInfo& f) override { add("I", f.sts_url + f.spn); }
    void on_col_metadata(const std::vector<Column>& c) override {
        add("C", std::to_string(c.size()));
    }
    void on_row() override { add("R", ""); }
    void on_return_status(std::int32_t v) override { add("T", std::to_string(v)); }
    void on_return_value(const ReturnValue& r) override { add("V", r.name); }
    void on_alt_row(std::uint16_t id) override { add("L", std::to_string(id)); }
    void on_token(std::uint8_t t, std::size_t n) override {
        add("K", std::to_string(t) + ":" + std::to_string(n));
    }

  private:
    void add(const char* tag, const std::string& s) {
        if (log.size() > (1u << 20)) return;
        log += tag;
        log += s;
        log += '\n';
    }
};

struct Outcome {
    std::string log;
    bool malformed = false;
    DecodeError::Code code = DecodeError::Code::None;
};

Outcome run(std::uint32_t version, Bytes msg, std::uint32_t seed, bool chunked,
            bool row_events = true) {
    LogSink sink;
    TokenStreamParser p(sink);
    if (version) p.set_tds_version(version);
    p.set_row_events(row_events);
    Outcome o;
    std::size_t pos = 0;
    DecodeStatus st = DecodeStatus::Consumed;
    do {
        std::size_t n = msg.size() - pos;
        if (chunked) {
            seed = seed * 1103515245u + 12345u;
            const std::size_t want = 1 + (seed >> 16) % 64;
            if (want < n) n = want;
        }
        const bool eom = pos + n >= msg.size();
        const hopscope::DecodeResult res = p.feed(msg.subspan(pos, n), eom);
        st = res.status();
        if (st == DecodeStatus::Malformed) {
            o.malformed = true;
            o.code = res.error().code;
        }
        pos += n;
    } while (pos < msg.size());
    if (st == DecodeStatus::NeedMore) __builtin_trap();  // the last feed had EOM
    o.log = std::move(sink.log);
    return o;
}

/// The log without what row events add: "R" lines and the sizes of ROW (209) and NBCROW (210).
std::string without_rows(const std::string& log) {
    std::string out;
    std::size_t pos = 0;
    while (pos < log.size()) {
        std::size_t nl = log.find('\n', pos);
        if (nl == std::string::npos) nl = log.size() - 1;
        const std::string line = log.substr(pos, nl + 1 - pos);
        pos = nl + 1;
        if (line == "R\n" || line.rfind("K209:", 0) == 0 || line.rfind("K210:", 0) == 0) continue;
        out += line;
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    static const std::uint32_t versions[] = {0, 0x71000001, 0x72090002, 0x74000004};
    const std::uint32_t version = versions[data[0] & 3];
    const Bytes msg(data + 1, size - 1);
    const Outcome whole = run(version, msg, data[0], false);
    const Outcome parts = run(version, msg, data[0], true);
    if (whole.log != parts.log || whole.malformed != parts.malformed || whole.code != parts.code) {
        __builtin_trap();
    }
    // The log is capped at 1 MiB: compare only when the capped run was not cut short.
    const Outcome quiet = run(version, msg, data[0] ^ 0x5A, true, false);
    if (quiet.malformed != whole.malformed || quiet.code != whole.code) __builtin_trap();
    if (whole.log.size() <= (1u << 20) && quiet.log != without_rows(whole.log)) __builtin_trap();
    return 0;
}
