// FlowSummary: the `--flows` backend (no decoding). Counts what the capture front-end hands on -
// TDS connections, Kerberos TCP connections and UDP datagrams, bytes and gaps per direction - and
// prints a summary (and JSON lines with --json). No payload byte is ever printed.
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "backend.hpp"
#include "hopscope/report/time.hpp"

namespace hopscope::cli {
namespace {

using report::to_rfc3339;

const char* close_reason(CloseReason r) {
    switch (r) {
        case CloseReason::Fin:
            return "fin";
        case CloseReason::Rst:
            return "rst";
        case CloseReason::Timeout:
            return "timeout";
        case CloseReason::EndOfInput:
            return "end-of-input";
    }
    return "?";
}

class FlowSummary final : public Backend {
  public:
    explicit FlowSummary(BackendOptions o) : o_(std::move(o)) {}

    void on_open(const FlowKey& flow, Timestamp ts, bool handshake_seen) override {
        Flow& f = flows_[flow];
        f = Flow{};
        f.first = ts;
        f.handshake = handshake_seen;
        f.kerberos = is_kerberos(flow);
        ++(f.kerberos ? totals_.krb_tcp : totals_.tds);
    }
    void on_data(const FlowKey& flow, Direction dir, Timestamp, Bytes data, Evidence ev) override {
        auto it = flows_.find(flow);
        if (it == flows_.end()) return;
        it->second.bytes[static_cast<int>(dir)] += data.size();
        if (it->second.first_frame == 0) it->second.first_frame = ev.frame;
        (it->second.kerberos ? totals_.krb_bytes : totals_.tds_bytes) += data.size();
    }
    void on_gap(const FlowKey& flow, Direction dir, Timestamp, std::uint64_t length) override {
        auto it = flows_.find(flow);
        if (it == flows_.end()) return;
        it->second.gaps[static_cast<int>(dir)] += length;
        ++totals_.gaps;
    }
    void on_close(const FlowKey& flow, Timestamp ts, CloseReason why) override {
        auto it = flows_.find(flow);
        if (it == flows_.end()) return;
        const Flow& f = it->second;
        if (o_.verbose && o_.text) {
            std::fprintf(o_.text, "%s %s %s -> %s  c2s %llu B  s2c %llu B%s  closed: %s\n",
                         to_rfc3339(ts).c_str(), f.kerberos ? "kerberos/tcp" : "tds",
                         to_string(flow.client).c_str(), to_string(flow.server).c_str(),
                         static_cast<unsigned long long>(f.bytes[0]),
                         static_cast<unsigned long long>(f.bytes[1]),
                         (f.gaps[0] || f.gaps[1]) ? "  (bytes missing)" : "", close_reason(why));
        }
        if (o_.json) {
            nlohmann::ordered_json j;
            j["event"] = "connection";
            j["ts"] = to_rfc3339(ts);
            j["first_seen"] = to_rfc3339(f.first);
            j["kind"] = f.kerberos ? "kerberos" : "tds";
            j["transport"] = "tcp";
            j["client"] = to_string(flow.client);
            j["server"] = to_string(flow.server);
            j["handshake_seen"] = f.handshake;
            j["first_frame"] = f.first_frame;
            j["bytes_c2s"] = f.bytes[0];
            j["bytes_s2c"] = f.bytes[1];
            j["missing_c2s"] = f.gaps[0];
            j["missing_s2c"] = f.gaps[1];
            j["close"] = close_reason(why);
            write_json(j);
        }
        flows_.erase(it);
    }
    void on_datagram(const FlowKey& flow, Direction, Timestamp, Bytes payload, Evidence) override {
        ++totals_.krb_udp;
        totals_.krb_bytes += payload.size();
        udp_flows_[flow] += 1;
    }

    void finish(Timestamp end, const captures::AssemblerStats& s) override {
        if (o_.text && !o_.quiet) {
            std::fprintf(o_.text,
                         "frames %llu  (not IP %llu, damaged %llu)\n"
                         "TDS connections        %llu  (%llu payload bytes)\n"
                         "Kerberos connections   %llu  TCP, %llu UDP datagrams in %zu flows "
                         "(%llu payload bytes)\n"
                         "gaps                   %llu  (%llu bytes missing from the capture)\n",
                         u(s.frames), u(s.not_ip), u(s.bad_frames), u(totals_.tds),
                         u(totals_.tds_bytes), u(totals_.krb_tcp), u(totals_.krb_udp),
                         udp_flows_.size(), u(totals_.krb_bytes), u(s.gaps), u(s.gap_bytes));
            if (s.timeouts || s.evictions)
                std::fprintf(o_.text,
                             "closed early           %llu idle, %llu evicted (table full)\n",
                             u(s.timeouts), u(s.evictions));
        }
        if (o_.json) {
            nlohmann::ordered_json j;
            j["event"] = "capture_summary";
            j["ts"] = to_rfc3339(end);
            j["frames"] = s.frames;
            j["not_ip"] = s.not_ip;
            j["damaged_frames"] = s.bad_frames;
            j["tds_connections"] = totals_.tds;
            j["tds_bytes"] = totals_.tds_bytes;
            j["kerberos_tcp_connections"] = totals_.krb_tcp;
            j["kerberos_udp_datagrams"] = totals_.krb_udp;
            j["kerberos_bytes"] = totals_.krb_bytes;
            j["gaps"] = s.gaps;
            j["gap_bytes"] = s.gap_bytes;
            j["retransmitted_bytes"] = s.retransmitted_bytes;
            j["ip_fragments"] = s.defrag.fragments;
            j["ip_reassembled"] = s.defrag.reassembled;
            write_json(j);
        }
    }
    [[nodiscard]] bool has_error_findings() const override { return false; }

  private:
    struct Flow {
        Timestamp first;
        bool handshake = false;
        bool kerberos = false;
        std::uint64_t first_frame = 0;
        std::uint64_t bytes[2] = {};
        std::uint64_t gaps[2] = {};
    };
    struct Totals {
        std::uint64_t tds = 0, krb_tcp = 0, krb_udp = 0, tds_bytes = 0, krb_bytes = 0, gaps = 0;
    };
    static unsigned long long u(std::uint64_t v) { return static_cast<unsigned long long>(v); }
    bool is_kerberos(const FlowKey& k) const {
        for (auto p : o_.kerberos_ports)
            if (k.server.port == p || k.client.port == p) return true;
        return k.transport == Transport::Udp;
    }
    void write_json(const nlohmann::ordered_json& j) {
        const std::string line = j.dump() + "\n";
        std::fputs(line.c_str(), o_.json);
        std::fflush(o_.json);
    }

    BackendOptions o_;
    std::map<FlowKey, Flow> flows_;
    std::map<FlowKey, std::uint64_t> udp_flows_;
    Totals totals_;
};

}  // namespace

std::unique_ptr<Backend> make_flow_summary_backend(const BackendOptions& options) {
    return std::make_unique<FlowSummary>(options);
}

}  // namespace hopscope::cli
