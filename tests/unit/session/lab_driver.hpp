// Replays a capture through the capture front-end (hopscope_captures) into one Conversation per
// TCP connection on port 1433, recording each connection's facts and login records.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fact_recorder.hpp"
#include "hopscope/captures/capture_source.hpp"
#include "hopscope/captures/stream_assembler.hpp"

namespace hopscope::testing {

struct LabConnection {
    FlowKey flow;
    std::unique_ptr<FactRecorder> rec;
    std::unique_ptr<session::Conversation> conv;
    std::uint64_t offset[2] = {0, 0};
};

struct LabDriver : StreamSink {
    std::vector<std::unique_ptr<LabConnection>> all;  ///< in opening order
    std::map<FlowKey, LabConnection*> open;
    bool bytewise = false;
    std::uint16_t port = 1433;

    void on_open(const FlowKey& flow, Timestamp, bool handshake_seen) override {
        if (flow.server.port != port) return;
        auto c = std::make_unique<LabConnection>();
        c->flow = flow;
        c->rec = std::make_unique<FactRecorder>();
        session::Conversation::Options o;
        o.handshake_seen = handshake_seen;
        c->conv = std::make_unique<session::Conversation>(*c->rec, o);
        open[flow] = c.get();
        all.push_back(std::move(c));
    }
    void on_data(const FlowKey& flow, Direction dir, Timestamp ts, Bytes data,
                 Evidence ev) override {
        auto it = open.find(flow);
        if (it == open.end()) return;
        if (bytewise) {
            for (std::size_t i = 0; i < data.size(); ++i) {
                it->second->conv->feed(dir, ts, data.subspan(i, 1),
                                       Evidence{ev.frame, ev.stream_offset + i});
            }
        } else {
            it->second->conv->feed(dir, ts, data, ev);
        }
    }
    void on_gap(const FlowKey& flow, Direction dir, Timestamp ts, std::uint64_t len) override {
        auto it = open.find(flow);
        if (it != open.end()) it->second->conv->gap(dir, ts, len);
    }
    void on_close(const FlowKey& flow, Timestamp ts, CloseReason) override {
        auto it = open.find(flow);
        if (it == open.end()) return;
        it->second->conv->close(ts);
        open.erase(it);
    }
    void on_datagram(const FlowKey&, Direction, Timestamp, Bytes, Evidence) override {}
};

inline std::unique_ptr<LabDriver> replay_capture(const std::string& path, bool bytewise = false,
                                                 std::uint16_t port = 1433) {
    auto d = std::make_unique<LabDriver>();
    d->bytewise = bytewise;
    d->port = port;
    captures::AssemblerConfig config;
    config.filter.tds_ports = {port};
    captures::StreamAssembler assembler(*d, config);
    (void)captures::read_captures({path}, assembler);
    return d;
}

}  // namespace hopscope::testing
