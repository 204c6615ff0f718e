// Records every Conversation fact as one line of text, so tests can compare whole runs (chunking
// invariance) and look for secrets in everything the conversation reports.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "../tds/tds_builders.hpp"
#include "hopscope/common/text.hpp"
#include "hopscope/session/conversation.hpp"

namespace hopscope::testing {

struct FactRecorder : session::ConversationCallbacks {
    bool with_frames = true;  ///< include frame and time (false: stream offsets only)
    std::vector<std::string> facts;
    std::vector<session::LoginRecord> logins;
    std::vector<std::pair<session::AuthBlobSource, Buf>> blobs;
    std::vector<std::uint64_t> blob_frames;  ///< frame of each blob

    std::string where(const session::FactContext& c) const {
        std::string s = std::string(to_string(c.dir)) + "@" + std::to_string(c.ev.stream_offset);
        if (with_frames) {
            s += " f=" + std::to_string(c.ev.frame) + " t=" + std::to_string(c.ts.micros);
        }
        return s;
    }
    void add(const session::FactContext& c, const std::string& what) {
        facts.push_back(where(c) + " " + what);
    }

    void on_prelogin(const session::FactContext& c, const tds::Prelogin& p) override {
        std::string s = "prelogin";
        if (p.version) s += " version=" + p.version->to_string();
        if (p.encryption) s += " encryption=" + tds::encryption_value_name(*p.encryption);
        if (p.instance) s += " instance=" + *p.instance;
        if (p.thread_id) s += " thread=" + std::to_string(*p.thread_id);
        add(c, s);
    }
    void on_encryption(const session::FactContext& c,
                       const tds::EncryptionNegotiation& n) override {
        add(c, std::string("encryption mode=") + tds::to_string(n.mode) +
                   (n.downgraded ? " downgraded" : ""));
    }
    void on_tls_client_hello(const session::FactContext& c, const tls::ClientHello& h) override {
        std::string s = "client_hello sni=" + h.sni + " max=" + tls::version_name(h.max_version());
        for (const auto& a : h.alpn)
            s += " alpn=" + a;
        add(c, s);
    }
    void on_tls_server_hello(const session::FactContext& c, const tls::ServerHello& h) override {
        char cs[8];
        std::snprintf(cs, sizeof cs, "%04x", h.cipher_suite);
        add(c, "server_hello version=" + tls::version_name(h.version()) + " cipher=" + cs);
    }
    void on_encrypted(const session::FactContext& c, const char* what, std::size_t n) override {
        add(c, std::string("encrypted ") + what + " " + std::to_string(n));
    }
    void on_tls_alert(const session::FactContext& c, std::uint8_t level,
                      std::uint8_t desc) override {
        add(c, "tls_alert " + std::to_string(level) + "/" + std::to_string(desc));
    }
    void on_login7(const session::FactContext& c, const tds::Login7& l) override {
        add(c, "login7 " + tds::to_string(l));
    }
    void on_auth_blob(const session::FactContext& c, session::AuthBlobSource src,
                      Bytes b) override {
        blobs.emplace_back(src, Buf(b.begin(), b.end()));
        blob_frames.push_back(c.ev.frame);
        add(c,
            std::string("auth_blob ") + session::to_string(src) + " " + std::to_string(b.size()));
    }
    void on_login_ack(const session::FactContext& c, const tds::LoginAck& a) override {
        char v[16];
        std::snprintf(v, sizeof v, "%08x", a.tds_version);
        add(c, "loginack " + a.prog_name + " " + std::to_string(a.major) + "." +
                   std::to_string(a.minor) + "." + std::to_string(a.build) + " tds=" + v);
    }
    void on_server_message(const session::FactContext& c, const tds::ServerMessage& m) override {
        add(c, std::string(m.is_error ? "error " : "info ") + std::to_string(m.number) + " " +
                   std::to_string(m.state) + " " + std::to_string(m.severity) + " \"" + m.text +
                   "\" server=" + m.server);
    }
    void on_env_change(const session::FactContext& c, const tds::EnvChange& e) override {
        add(c, "envchange " + std::to_string(e.type) + " " + e.new_value + " <- " + e.old_value);
    }
    void on_done(const session::FactContext& c, const tds::Done& d) override {
        add(c, "done " + std::to_string(d.token) + " status=" + std::to_string(d.status) +
                   " rows=" + std::to_string(d.row_count));
    }
    void on_col_metadata(const session::FactContext& c,
                         const std::vector<tds::Column>& cols) override {
        std::string s = "colmetadata";
        for (const auto& col : cols)
            s += " " + col.name;
        add(c, s);
    }
    void on_row(const session::FactContext& c) override { add(c, "row"); }
    void on_return_status(const session::FactContext& c, std::int32_t v) override {
        add(c, "return_status " + std::to_string(v));
    }
    void on_sql_batch(const session::FactContext& c, const tds::SqlBatch& b,
                      const DecodeResult& res) override {
        add(c, "sql_batch \"" + b.text + "\"" + (b.truncated ? " truncated" : "") +
                   (res.status() == DecodeStatus::Malformed ? " malformed" : ""));
    }
    void on_rpc(const session::FactContext& c, const tds::RpcRequest& r,
                const DecodeResult& res) override {
        std::string s = "rpc";
        for (const auto& call : r.calls) {
            s += " " + call.proc_name + "(" + std::to_string(call.param_count) + ")";
        }
        if (r.truncated) s += " truncated";
        if (res.status() == DecodeStatus::Malformed) s += " malformed";
        add(c, s);
    }
    void on_attention(const session::FactContext& c) override { add(c, "attention"); }
    void on_other_message(const session::FactContext& c, std::uint8_t type, std::size_t len,
                          const char* note) override {
        add(c, "other " + std::to_string(type) + " " + std::to_string(len) + " " + note);
    }
    void on_problem(const session::FactContext& c, DecodeStatus st, const DecodeError& e) override {
        add(c, std::string("problem ") + to_string(st) + " " + to_string(e.code) + " " + e.detail);
    }
    void on_resync(const session::FactContext& c, std::uint64_t n) override {
        add(c, "resync skipped=" + std::to_string(n));
    }
    void on_gap(const session::FactContext& c, std::uint64_t n) override {
        add(c, "gap " + std::to_string(n));
    }
    void on_login(const session::LoginRecord& r) override {
        logins.push_back(r);
        facts.push_back("login " + session::to_string(r));
    }
};

/// Feeds fixture segments of one TCP stream into a conversation: whole segments, or one byte at a
/// time (each byte with its segment's frame, time and stream offset).
inline void replay(session::Conversation& conv, const std::vector<Segment>& segs, int stream,
                   bool bytewise) {
    std::uint64_t off[2] = {0, 0};
    std::int64_t last_ts = 0;
    for (const auto& s : segs) {
        if (s.stream != stream) continue;
        auto& o = off[static_cast<int>(s.dir)];
        if (bytewise) {
            for (std::size_t i = 0; i < s.bytes.size(); ++i) {
                conv.feed(s.dir, Timestamp{s.ts_us}, Bytes(&s.bytes[i], 1),
                          Evidence{s.frame, o + i});
            }
        } else {
            conv.feed(s.dir, Timestamp{s.ts_us}, s.bytes, Evidence{s.frame, o});
        }
        o += s.bytes.size();
        last_ts = s.ts_us;
    }
    conv.close(Timestamp{last_ts});
}

}  // namespace hopscope::testing
