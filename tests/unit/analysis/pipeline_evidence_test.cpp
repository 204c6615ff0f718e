// The evidence of events and findings when the front-end gives stream offsets only, as the inline
// proxy does (Evidence{frame 0, stream_offset}): a lab capture replayed with its frame numbers
// zeroed must point at the same bytes as the capture itself, each position naming the first byte
// of the TDS packet or Kerberos record that carried it. And the ENVCHANGE routing token of a
// login answer reaches the login event.
#include <gtest/gtest.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "../session/builders.hpp"
#include "hopscope/captures/capture_source.hpp"
#include "hopscope/captures/stream_assembler.hpp"
#include "hopscope/pipeline/pipeline.hpp"
#include "hopscope/report/json_events.hpp"

namespace hopscope::analysis {
namespace {

using testing::Buf;

struct Events : pipeline::EventSink {
    std::vector<LoginEvent> logins;
    std::vector<KerberosEvent> kerberos;
    std::vector<ServerErrorEvent> errors;
    std::vector<Finding> findings;
    void on_login(const LoginEvent& e) override { logins.push_back(e); }
    void on_kerberos(const KerberosEvent& e) override { kerberos.push_back(e); }
    void on_server_error(const ServerErrorEvent& e) override { errors.push_back(e); }
    void on_finding(const Finding& f) override { findings.push_back(f); }
    [[nodiscard]] const Finding* get(const std::string& rule) const {
        for (const auto& f : findings)
            if (f.rule == rule) return &f;
        return nullptr;
    }
};

/// Between the capture front-end and the pipeline: keeps every connection's bytes per direction
/// (to look at what a position points at) and, with `drop_frames`, hands on Evidence{0, offset}
/// as the proxy does.
struct Tap : StreamSink {
    struct Stream {
        bool started = false;
        std::uint64_t origin = 0;
        std::vector<std::uint8_t> bytes;  ///< from `origin` on; gaps filled with zeros
    };
    pipeline::Pipeline& next;
    bool drop_frames;
    std::map<FlowKey, std::array<Stream, 2>> streams;

    Tap(pipeline::Pipeline& p, bool drop) : next(p), drop_frames(drop) {}

    Evidence pass(Evidence ev) const { return drop_frames ? Evidence{0, ev.stream_offset} : ev; }
    void on_open(const FlowKey& flow, Timestamp ts, bool handshake_seen) override {
        next.on_open(flow, ts, handshake_seen);
    }
    void on_data(const FlowKey& flow, Direction dir, Timestamp ts, Bytes data,
                 Evidence ev) override {
        Stream& s = streams[flow][static_cast<int>(dir)];
        if (!s.started) {
            s.started = true;
            s.origin = ev.stream_offset;
        }
        s.bytes.resize(ev.stream_offset - s.origin);
        s.bytes.insert(s.bytes.end(), data.begin(), data.end());
        next.on_data(flow, dir, ts, data, pass(ev));
    }
    void on_gap(const FlowKey& flow, Direction dir, Timestamp ts, std::uint64_t length) override {
        next.on_gap(flow, dir, ts, length);
    }
    void on_close(const FlowKey& flow, Timestamp ts, CloseReason why) override {
        next.on_close(flow, ts, why);
    }
    void on_datagram(const FlowKey& flow, Direction dir, Timestamp ts, Bytes payload,
                     Evidence ev) override {
        next.on_datagram(flow, dir, ts, payload, pass(ev));
    }

    /// The byte at `p` of the connection `flow` (either way round: a KDC exchange's flow names the
    /// asking host as client), or -1 when the stream has no such byte.
    [[nodiscard]] int byte_at(const FlowKey& flow, const Position& p) const {
        Direction dir = p.direction;
        auto it = streams.find(flow);
        if (it == streams.end()) {
            it = streams.find(FlowKey{flow.server, flow.client, flow.transport});
            dir = reverse(dir);
        }
        if (it == streams.end()) return -1;
        const Stream& s = it->second[static_cast<int>(dir)];
        if (p.stream_offset < s.origin || p.stream_offset - s.origin >= s.bytes.size()) return -1;
        return s.bytes[p.stream_offset - s.origin];
    }
};

struct Run {
    Events events;
    std::unique_ptr<pipeline::Pipeline> pipeline;
    std::unique_ptr<Tap> tap;
};

std::unique_ptr<Run> replay(const std::string& name, bool drop_frames) {
    auto r = std::make_unique<Run>();
    r->pipeline = std::make_unique<pipeline::Pipeline>(r->events);
    r->tap = std::make_unique<Tap>(*r->pipeline, drop_frames);
    captures::StreamAssembler assembler(*r->tap);
    const auto read =
        captures::read_captures({std::string(HOPSCOPE_CAPTURES_DIR) + "/lab/" + name}, assembler);
    EXPECT_TRUE(read.ok()) << name;
    r->pipeline->finish(Timestamp{});
    return r;
}

void expect_same_offset(const Position& with_frames, const Position& offsets_only,
                        const std::string& what) {
    EXPECT_EQ(offsets_only.frame, 0u) << what;
    EXPECT_EQ(offsets_only.stream_offset, with_frames.stream_offset) << what;
    EXPECT_EQ(offsets_only.direction, with_frames.direction) << what;
}

bool is_tds_packet_type(int b) {
    return b == 0x12 || b == 0x10 || b == 0x11 || b == 0x04 || b == 0x16 /* TLS from byte 0 */;
}

TEST(PipelineEvidence, OffsetsAloneLocateEveryEventAndFinding) {
    // 5: NTLM double hop (logins, relayed errors, chain findings); 8: Kerberos over TCP with a
    // KRB-ERROR; 12c: login-only TLS with Kerberos and delegation.
    for (const char* name : {"5-double-hop-ntlm-anonymous.pcap", "8-spn-missing.pcap",
                             "12c-double-hop-delegation-tls-login-only.pcap"}) {
        SCOPED_TRACE(name);
        auto pcap = replay(name, false);
        auto proxy = replay(name, true);
        const Events& a = pcap->events;
        const Events& b = proxy->events;
        ASSERT_FALSE(a.logins.empty());
        ASSERT_EQ(a.logins.size(), b.logins.size());
        ASSERT_EQ(a.kerberos.size(), b.kerberos.size());
        ASSERT_EQ(a.errors.size(), b.errors.size());
        ASSERT_EQ(a.findings.size(), b.findings.size());

        for (std::size_t i = 0; i < a.logins.size(); ++i) {
            const LoginEvent& l = a.logins[i];
            EXPECT_NE(l.first_at.frame, 0u);
            EXPECT_NE(l.last_at.frame, 0u);
            expect_same_offset(l.first_at, b.logins[i].first_at, "login first");
            expect_same_offset(l.last_at, b.logins[i].last_at, "login last");
            EXPECT_TRUE(is_tds_packet_type(pcap->tap->byte_at(l.flow, l.first_at)))
                << to_string(l.flow.client) << " first at " << l.first_at.stream_offset;
            if (l.outcome != Outcome::Incomplete) {
                EXPECT_EQ(l.last_at.direction, Direction::ServerToClient);
                EXPECT_EQ(pcap->tap->byte_at(l.flow, l.last_at), 0x04)
                    << "the server's answer starts at " << l.last_at.stream_offset;
            }
        }
        for (std::size_t i = 0; i < a.errors.size(); ++i) {
            const ServerErrorEvent& e = a.errors[i];
            expect_same_offset(e.at, b.errors[i].at, "server error");
            EXPECT_EQ(e.at.direction, Direction::ServerToClient);
            EXPECT_EQ(pcap->tap->byte_at(e.flow, e.at), 0x04);
        }
        for (std::size_t i = 0; i < a.kerberos.size(); ++i) {
            const KerberosEvent& k = a.kerberos[i];
            ASSERT_EQ(k.flow.transport, Transport::Tcp);
            if (!k.request.empty()) {
                expect_same_offset(k.request_at, b.kerberos[i].request_at, "KDC request");
                // After the 4-byte record mark: [APPLICATION 10] AS-REQ or [12] TGS-REQ.
                Position tag = k.request_at;
                tag.stream_offset += 4;
                const int t = pcap->tap->byte_at(k.flow, tag);
                EXPECT_TRUE(t == 0x6a || t == 0x6c) << k.request.c_str() << " " << t;
                EXPECT_EQ(pcap->tap->byte_at(k.flow, k.request_at), 0) << "record mark";
            }
            if (!k.reply.empty()) {
                expect_same_offset(k.reply_at, b.kerberos[i].reply_at, "KDC reply");
                Position tag = k.reply_at;
                tag.stream_offset += 4;
                const int t = pcap->tap->byte_at(k.flow, tag);
                EXPECT_TRUE(t == 0x6b || t == 0x6d || t == 0x7e) << k.reply.c_str() << " " << t;
            }
        }
        for (std::size_t i = 0; i < a.findings.size(); ++i) {
            const Finding& f = a.findings[i];
            const Finding& g = b.findings[i];
            EXPECT_EQ(f.rule, g.rule);
            EXPECT_EQ(f.display_filter.rfind("frame.number in {", 0), 0u) << f.display_filter;
            EXPECT_EQ(g.display_filter, "") << "no frames, no Wireshark filter";
            ASSERT_EQ(f.evidence.size(), g.evidence.size());
            for (std::size_t j = 0; j < f.evidence.size(); ++j) {
                EXPECT_NE(f.evidence[j].at.frame, 0u);
                expect_same_offset(f.evidence[j].at, g.evidence[j].at, f.rule + " evidence");
                EXPECT_NE(pcap->tap->byte_at(f.evidence[j].flow, f.evidence[j].at), -1)
                    << f.rule << " evidence " << j << " points past the bytes";
            }
            // JSON: the position without a frame, the offset kept.
            const auto j = report::to_json(g);
            EXPECT_FALSE(j.contains("display_filter"));
            ASSERT_FALSE(j["evidence"].empty());
            EXPECT_FALSE(j["evidence"][0]["at"].contains("frame"));
            EXPECT_EQ(j["evidence"][0]["at"]["stream_offset"], g.evidence[0].at.stream_offset);
        }
    }
}

// ---- a hand-built login answered with ENVCHANGE routing -------------------------------------

Buf prelogin_msg(std::uint8_t type) {
    return testing::packet(type, 0x01,
                           testing::prelogin({{0x00, testing::from_hex("10000fa00000")},
                                              {0x01, {0x02}},  // ENCRYPT_NOT_SUP
                                              {0x04, {0x00}}}));
}

/// ENVCHANGE (0xE3) type 20, routing [MS-TDS 2.2.7.9], written out field by field.
Buf routing_envchange(const std::string& server, std::uint16_t port) {
    Buf value{0x00};  // Protocol: 0 = TCP
    testing::put16le(value, port);
    testing::put16le(value, static_cast<std::uint32_t>(server.size()));  // US_VARCHAR: chars
    testing::append(value, testing::ucs2(server));
    Buf body{20};                                                      // Type
    testing::put16le(body, static_cast<std::uint32_t>(value.size()));  // RoutingDataValueLength
    testing::append(body, value);
    testing::put16le(body, 0);  // OldValue: none
    Buf token{0xE3};
    testing::put16le(token, static_cast<std::uint32_t>(body.size()));
    testing::append(token, body);
    return token;
}

struct Synthetic {
    Events events;
    Buf c2s, s2c;
    std::size_t login7_at = 0, answer_at = 0;  ///< offsets of the messages in their direction
};

/// A SQL-auth login to 10.77.0.3:1433 whose LOGINACK carries a routing token, fed to a pipeline in
/// 5-byte chunks with stream offsets only; each direction's offsets start at `base`.
void play_routed_login(Synthetic& s, const pipeline::Pipeline::Options& options,
                       std::uint64_t base) {
    testing::Login7Spec spec;
    spec.user = "app";
    spec.password = "not-shown";
    spec.server = "sqlproxy";
    s.c2s = prelogin_msg(0x12);
    s.login7_at = s.c2s.size();
    testing::append(s.c2s, testing::packet(0x10, 0x01, testing::login7(spec)));
    s.s2c = prelogin_msg(0x04);
    s.answer_at = s.s2c.size();
    Buf answer = testing::loginack("Microsoft SQL Server", 0x74000004, 16, 0, 1000);
    testing::append(answer, routing_envchange("replica2.lab.test", 14333));
    testing::append(answer, testing::done(0));
    testing::append(s.s2c, testing::packet(0x04, 0x01, answer));

    pipeline::Pipeline p(s.events, options);
    const FlowKey flow{Endpoint{IpAddress::v4_from(0x0a4d0002), 50123},
                       Endpoint{IpAddress::v4_from(0x0a4d0003), 1433}, Transport::Tcp};
    p.on_open(flow, Timestamp{1000}, true);
    const auto feed = [&](Direction dir, const Buf& bytes, std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to; i += 5) {
            const std::size_t n = std::min<std::size_t>(5, to - i);
            p.on_data(flow, dir, Timestamp{static_cast<std::int64_t>(2000 + i)},
                      Bytes(bytes.data() + i, n), Evidence{0, base + i});
        }
    };
    feed(Direction::ClientToServer, s.c2s, 0, s.login7_at);
    feed(Direction::ServerToClient, s.s2c, 0, s.answer_at);
    feed(Direction::ClientToServer, s.c2s, s.login7_at, s.c2s.size());
    feed(Direction::ServerToClient, s.s2c, s.answer_at, s.s2c.size());
    p.on_close(flow, Timestamp{9000}, CloseReason::Fin);
    p.finish(Timestamp{9000});
}

TEST(PipelineEvidence, RoutingTokenAndOffsetsOfAHandBuiltLogin) {
    Synthetic s;
    play_routed_login(s, {}, 5000);
    ASSERT_EQ(s.events.logins.size(), 1u);
    const LoginEvent& l = s.events.logins[0];
    EXPECT_EQ(l.outcome, Outcome::Success);
    ASSERT_TRUE(l.routing);
    EXPECT_EQ(*l.routing, "replica2.lab.test:14333");
    EXPECT_EQ(l.first_at.frame, 0u);
    EXPECT_EQ(l.first_at.stream_offset, 5000u) << "the PRELOGIN";
    EXPECT_EQ(l.first_at.direction, Direction::ClientToServer);
    EXPECT_EQ(l.last_at.stream_offset, 5000u + s.answer_at) << "the LOGINACK message";
    EXPECT_EQ(l.last_at.direction, Direction::ServerToClient);
    EXPECT_EQ(s.events.get("HS061"), nullptr) << "not from the proxy";

    const auto j = report::to_json(l);
    EXPECT_EQ(j["routing"], "replica2.lab.test:14333");
    EXPECT_FALSE(j["first_at"].contains("frame"));
    EXPECT_EQ(j["first_at"]["stream_offset"], 5000);
    EXPECT_EQ(j["first_at"]["direction"], "c2s");
    EXPECT_EQ(j["last_at"]["stream_offset"], 5000 + s.answer_at);
    EXPECT_EQ(j["last_at"]["direction"], "s2c");
    EXPECT_EQ(j.dump().find("not-shown"), std::string::npos);
}

TEST(PipelineEvidence, RoutingAroundTheProxyIsFoundWithItsOffset) {
    pipeline::Pipeline::Options o;
    o.analyzer.proxy.active = true;
    o.analyzer.proxy.proxy_names = {"sqlproxy", "10.77.0.9"};
    Synthetic s;
    play_routed_login(s, o, 0);
    const Finding* f = s.events.get("HS061");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->summary.find("replica2.lab.test:14333"), std::string::npos) << f->summary;
    EXPECT_TRUE(f->display_filter.empty());
    ASSERT_EQ(f->evidence.size(), 1u);
    EXPECT_EQ(f->evidence[0].at.frame, 0u);
    EXPECT_EQ(f->evidence[0].at.stream_offset, s.answer_at);
    EXPECT_EQ(f->evidence[0].at.direction, Direction::ServerToClient);
    EXPECT_EQ(s.s2c[s.answer_at], 0x04);
}

}  // namespace
}  // namespace hopscope::analysis
