#include "hopscope/session/conversation.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include "hopscope/tds/packet.hpp"
#include "hopscope/tls/decrypt.hpp"
#include "tls_tunnel.hpp"

namespace hopscope::session {
namespace {

constexpr std::size_t kKeepCapacity = 64 * 1024;
constexpr std::size_t kMaxSmpSessions = 16;

}  // namespace

const char* to_string(AuthBlobSource s) {
    switch (s) {
        case AuthBlobSource::Login7:
            return "login7";
        case AuthBlobSource::SspiPacket:
            return "sspi-packet";
        case AuthBlobSource::SspiToken:
            return "sspi-token";
    }
    return "?";
}

const char* to_string(LoginOutcome o) {
    switch (o) {
        case LoginOutcome::Success:
            return "success";
        case LoginOutcome::Failure:
            return "failure";
        case LoginOutcome::Incomplete:
            return "incomplete";
    }
    return "?";
}

std::string to_string(const LoginRecord& r) {
    std::string s = std::string("outcome=") + to_string(r.outcome);
    if (!r.outcome_detail.empty()) s += "(" + r.outcome_detail + ")";
    s += std::string(" auth=") + to_string(r.auth);
    if (!r.auth_detail.empty()) s += "(" + r.auth_detail + ")";
    s += std::string(" encryption=") + tds::to_string(r.encryption);
    if (r.encryption_downgraded) s += "(downgraded)";
    if (r.client_encryption) s += " client_enc=" + tds::encryption_value_name(*r.client_encryption);
    if (r.server_encryption) s += " server_enc=" + tds::encryption_value_name(*r.server_encryption);
    if (r.tls_version) s += " tls=" + tls::version_name(r.tls_version);
    if (!r.tls_sni.empty()) s += " sni=" + r.tls_sni;
    for (const auto& a : r.tls_alpn)
        s += " alpn=" + a;
    if (r.login7_seen) {
        s += " tds=" + tds::tds_version_name(r.tds_version);
        if (r.tds_version_big_endian) s += "(big-endian)";
        s += " user=" + r.user + " host=" + r.host + " app=" + r.app + " server=" + r.server_name +
             " database=" + r.database + " library=" + r.library;
        s += std::string(" password=") + (r.password_present ? "present(" : "absent(") +
             std::to_string(r.password_length) + ")";
    }
    if (r.login7_encrypted) s += " login7=encrypted";
    if (r.tls_decrypted) s += " tls=decrypted";
    if (!r.tls_not_decrypted.empty()) s += " tls_not_decrypted=(" + r.tls_not_decrypted + ")";
    for (const auto& b : r.auth_blobs) {
        s += std::string(" blob=") + hopscope::to_string(b.dir) + "/" + to_string(b.source) + "/" +
             std::to_string(b.length);
    }
    if (r.login_ack) {
        s += " ack=" + r.login_ack->prog_name + " " + std::to_string(r.login_ack->major) + "." +
             std::to_string(r.login_ack->minor) + "." + std::to_string(r.login_ack->build);
    }
    if (r.error) {
        s += " error=" + std::to_string(r.error->number) + "/" + std::to_string(r.error->state) +
             "/" + std::to_string(r.error->severity) + " \"" + r.error->text + "\"";
    }
    if (!r.routing_server.empty()) s += " routing=" + r.routing_server;
    if (r.gap_seen) s += " gap";
    return s;
}

namespace {

/// The login attempt in progress on a connection: opened by its first fact (PRELOGIN, a TLS
/// hello, LOGIN7, an SSPI blob, ...), grown by the facts that follow, and ended once with its
/// outcome, when its record is handed to the callbacks.
class LoginAttempt {
  public:
    /// What the connection knows when an attempt ends, for saying how it authenticated.
    struct Situation {
        tds::EncryptionMode mode = tds::EncryptionMode::Unknown;
        bool client_prelogin_seen = false;
        const tls::SessionDecrypter* decrypter = nullptr;  ///< with a key log
    };

    /// The attempt in progress, opened by the fact at `c` if there is none.
    LoginRecord& begin(const FactContext& c, tds::EncryptionMode mode) {
        if (!rec_) {
            rec_ = std::make_unique<LoginRecord>();
            rec_->started = c.ts;
            rec_->first_evidence = c.ev;
            rec_->first_dir = c.dir;
            rec_->encryption = mode;
        }
        return *rec_;
    }

    /// The attempt in progress, or null.
    [[nodiscard]] LoginRecord* current() { return rec_.get(); }

    /// Ends the attempt in progress (if any) with `outcome` at the fact `c` and reports it.
    void finish(LoginOutcome outcome, const FactContext& c, std::string detail,
                const Situation& now, ConversationCallbacks& cb) {
        if (!rec_) return;
        LoginRecord& r = *rec_;
        r.outcome = outcome;
        r.outcome_detail = std::move(detail);
        r.ended = c.ts;
        r.last_evidence = c.ev;
        r.last_dir = c.dir;
        r.encryption = now.mode;
        describe_auth(r, now);
        cb.on_login(r);
        rec_.reset();
    }

  private:
    /// What TDS alone says about the authentication, and why when it cannot tell.
    static void describe_auth(LoginRecord& r, const Situation& now) {
        if (r.login7_seen && r.fed_auth) {
            r.auth = AuthKind::FedAuth;
        } else if (r.login7_seen && (r.integrated_security || !r.auth_blobs.empty())) {
            r.auth = AuthKind::Integrated;
            if (r.auth_blobs.empty()) r.auth_detail = "fIntSecurity set but no SSPI data";
        } else if (r.login7_seen && !r.user.empty()) {
            r.auth = AuthKind::Sql;
        } else if (r.login7_seen) {
            r.auth = AuthKind::Unknown;
            r.auth_detail = "LOGIN7 has neither a user name nor SSPI";
        } else if (!r.auth_blobs.empty()) {
            r.auth = AuthKind::Integrated;
            r.auth_detail = r.login7_encrypted ? "LOGIN7 encrypted; SSPI exchange seen"
                                               : "LOGIN7 not seen; SSPI exchange seen";
        } else if (r.login7_encrypted) {
            r.auth_detail = "LOGIN7 encrypted (login-only TLS)" + not_decrypted_note(r, now);
        } else if (now.mode == tds::EncryptionMode::Full) {
            r.auth_detail =
                "LOGIN7 encrypted (TLS for the whole connection)" + not_decrypted_note(r, now);
        } else if (now.mode == tds::EncryptionMode::Strict) {
            r.auth_detail = "strict TLS (TDS 8.0)" + not_decrypted_note(r, now);
        } else if (now.client_prelogin_seen) {
            r.auth_detail = "no LOGIN7 sent";
        } else {
            r.auth_detail = "capture started late (LOGIN7 not seen)";
        }
    }

    /// "; not decrypted: why" when a key log was given but did not open this TLS.
    static std::string not_decrypted_note(LoginRecord& r, const Situation& now) {
        if (!now.decrypter) return "";
        r.tls_not_decrypted = now.decrypter->why_not().empty()
                                  ? std::string("the LOGIN7 was not decrypted")
                                  : now.decrypter->why_not();
        return "; not decrypted: " + r.tls_not_decrypted;
    }

    /// On the heap while an attempt is open: a connection that has logged in and sits idle (most
    /// of a proxy's connections) holds a pointer, not the 800 bytes of an empty record.
    std::unique_ptr<LoginRecord> rec_;
};

}  // namespace

struct Conversation::Impl {
    enum class MsgKind : std::uint8_t { Buffered, Prefix, Tokens, Counted };

    struct Side;

    /// One TDS message stream: the connection itself, or one MARS session (SMP SID).
    struct Channel {
        bool in_msg = false;
        std::uint8_t msg_type = 0;
        MsgKind kind = MsgKind::Counted;
        std::uint64_t msg_offset = 0;
        std::vector<std::uint8_t> msg;
        std::size_t msg_len = 0;
        bool msg_overflow = false;
        bool msg_ignore = false;
        tds::TokenStreamParser* tokens = nullptr;  ///< server side only
        std::unique_ptr<tds::TokenStreamParser> own_tokens;
    };

    struct SmpSession;

    struct SmpAdapter : tds::FramerSink {
        Impl* impl = nullptr;
        Side* side = nullptr;
        SmpSession* session = nullptr;
        void on_unit(const tds::FramedUnit& u) override {
            if (u.kind == tds::FramedUnit::Kind::TdsPacket) {
                impl->packet(*side, session->ch, u, side->unit_offset);
            } else {
                impl->problem(impl->ctx(*side, side->unit_offset), DecodeError::Code::BadValue,
                              "TLS or SMP inside an SMP session");
            }
        }
        void on_skipped(std::uint64_t, std::uint64_t n) override {
            impl->cb.on_resync(impl->ctx(*side, side->unit_offset), n);
        }
        void on_framing_error(std::uint64_t, const DecodeError& e) override {
            impl->cb.on_problem(impl->ctx(*side, side->unit_offset), DecodeStatus::Malformed, e);
            impl->abort_message(session->ch);
        }
    };

    struct SmpSession {
        SmpSession(Impl* impl, Side* side, Direction d) : framer(sink, d, true) {
            sink.impl = impl;
            sink.side = side;
            sink.session = this;
        }
        Channel ch;
        SmpAdapter sink;
        tds::PacketFramer framer;
    };

    struct FramerAdapter : tds::FramerSink {
        Impl* impl = nullptr;
        Side* side = nullptr;
        void on_unit(const tds::FramedUnit& u) override { impl->on_unit(*side, u); }
        void on_skipped(std::uint64_t off, std::uint64_t n) override {
            impl->cb.on_resync(impl->ctx(*side, off), n);
        }
        void on_framing_error(std::uint64_t off, const DecodeError& e) override {
            impl->framing_error(*side, off, e);
        }
    };

    /// What the TLS inside the connection shows, and the TDS read inside it.
    struct TunnelAdapter : TlsTunnelSink {
        Impl* impl = nullptr;
        void on_client_hello(Direction d, std::uint64_t at, const tls::ClientHello& ch) override {
            impl->client_hello(impl->ctx(d, at), ch);
        }
        void on_server_hello(Direction d, std::uint64_t at, const tls::ServerHello& sh) override {
            impl->server_hello(impl->ctx(d, at), sh);
        }
        void on_strict(std::uint64_t at) override {
            impl->strict(impl->ctx(Direction::ClientToServer, at));
        }
        void on_encrypted(Direction d, std::uint64_t at, TlsPayload what,
                          std::size_t length) override {
            impl->encrypted(impl->ctx(d, at), what, length);
        }
        void on_decrypted(Direction d, std::uint64_t at, TlsPayload what,
                          std::size_t length) override {
            impl->cb.on_decrypted(impl->ctx(d, at), to_string(what), length);
        }
        void on_alert(Direction d, std::uint64_t at, std::uint8_t level,
                      std::uint8_t description) override {
            impl->cb.on_tls_alert(impl->ctx(d, at), level, description);
        }
        void on_error(Direction d, std::uint64_t at, const DecodeError& e) override {
            impl->cb.on_problem(impl->ctx(d, at), DecodeStatus::Malformed, e);
        }
        void on_plaintext() override {
            if (LoginRecord* login = impl->attempt.current()) login->tls_decrypted = true;
        }
        void on_tds_unit(Direction d, std::uint64_t at, const tds::FramedUnit& u) override {
            impl->unit_from_tls(impl->side(d), at, u);
        }
        void on_tds_skipped(Direction d, std::uint64_t at, std::uint64_t n) override {
            impl->cb.on_resync(impl->ctx(d, at), n);
        }
        void on_tds_framing_error(Direction d, std::uint64_t at, const DecodeError& e) override {
            impl->cb.on_problem(impl->ctx(d, at), DecodeStatus::Malformed, e);
            impl->abort_message(impl->side(d).main);
        }
        [[nodiscard]] bool login7_decoded() const override { return impl->login7_seen; }
    };

    struct TokenAdapter : tds::TokenSink {
        Impl* impl = nullptr;
        void take_login_ack(tds::LoginAck&& a) override { impl->login_ack(std::move(a)); }
        void on_message(const tds::ServerMessage& m) override { impl->server_message(m); }
        void on_env_change(const tds::EnvChange& e) override { impl->env_change(e); }
        void on_sspi(Bytes blob) override {
            impl->auth_blob(impl->token_ctx, AuthBlobSource::SspiToken, blob);
        }
        void on_done(const tds::Done& d) override { impl->cb.on_done(impl->token_ctx, d); }
        void on_feature_ext_ack(const std::vector<tds::FeatureAck>& f) override {
            impl->cb.on_feature_ext_ack(impl->token_ctx, f);
        }
        void on_fed_auth_info(const tds::FedAuthInfo& f) override {
            impl->cb.on_fed_auth_info(impl->token_ctx, f);
        }
        void on_col_metadata(const std::vector<tds::Column>& c) override {
            impl->cb.on_col_metadata(impl->token_ctx, c);
        }
        void on_row() override { impl->cb.on_row(impl->token_ctx); }
        void on_return_status(std::int32_t v) override {
            impl->cb.on_return_status(impl->token_ctx, v);
        }
        void on_token(std::uint8_t t, std::size_t n) override {
            impl->cb.on_token(impl->token_ctx, t, n);
        }
    };

    struct Side {
        Side(Impl* impl, Direction d, bool synced) : dir(d), framer(fsink, d, synced) {
            fsink.impl = impl;
            fsink.side = this;
        }
        Direction dir;
        FramerAdapter fsink;
        tds::PacketFramer framer;

        bool origin_set = false;
        std::uint64_t origin = 0;
        Timestamp ts;
        std::uint64_t frame = 0;
        std::uint64_t unit_offset = 0;  ///< framer offset of the unit being handled

        Channel main;                                              ///< TDS messages outside MARS
        std::map<std::uint16_t, std::unique_ptr<SmpSession>> smp;  ///< MARS sessions by SID

        bool any_unit = false;  ///< a TDS packet, TLS record or SMP packet was found
    };

    Impl(ConversationCallbacks& c, Options o)
        : cb(c),
          opt(o),
          c2s(this, Direction::ClientToServer, o.handshake_seen),
          s2c(this, Direction::ServerToClient, o.handshake_seen),
          tokens(tsink),
          tls(tunnel_sink, o.tls_keys) {
        tsink.impl = this;
        tunnel_sink.impl = this;
        tokens.set_row_events(o.row_events);
        tokens.set_info_messages(o.info_messages);
        s2c.main.tokens = &tokens;
    }

    ConversationCallbacks& cb;
    Options opt;
    Side c2s;
    Side s2c;
    TokenAdapter tsink;
    tds::TokenStreamParser tokens;
    FactContext token_ctx;
    TunnelAdapter tunnel_sink;
    TlsTunnel tls;  ///< the TLS inside the connection, and the encryption mode

    std::optional<std::uint8_t> client_enc;
    bool client_prelogin_seen = false;
    bool server_prelogin_seen = false;
    bool tds_seen = false;
    bool login7_seen = false;
    std::uint32_t tds_version = 0;
    LoginAttempt attempt;
    bool msg_saw_error = false;

    Side& side(Direction d) { return d == Direction::ClientToServer ? c2s : s2c; }

    FactContext ctx(const Side& s, std::uint64_t framer_offset) const {
        return FactContext{s.dir, s.ts, Evidence{s.frame, s.origin + framer_offset}};
    }
    FactContext ctx(Direction d, std::uint64_t framer_offset) {
        return ctx(side(d), framer_offset);
    }

    void problem(const FactContext& c, DecodeError::Code code, std::string detail,
                 std::size_t offset = 0) {
        cb.on_problem(c, DecodeStatus::Malformed, make_error(code, offset, std::move(detail)));
    }

    // ---- login attempt bookkeeping -------------------------------------------------------

    LoginRecord& begin_login(const FactContext& c) { return attempt.begin(c, tls.mode()); }

    void finish_login(LoginOutcome outcome, const FactContext& c, std::string detail) {
        attempt.finish(outcome, c, std::move(detail),
                       LoginAttempt::Situation{tls.mode(), client_prelogin_seen, tls.decrypter()},
                       cb);
    }

    void auth_blob(const FactContext& c, AuthBlobSource src, Bytes blob) {
        LoginRecord& r = begin_login(c);
        // An NTLM login has three blobs, Kerberos two (three with mutual authentication): room
        // for four at the first, one allocation instead of one per doubling (1.5 of a login's
        // ~30 allocations on login-dense traffic, heaptrack: docs/performance.md).
        if (r.auth_blobs.empty()) r.auth_blobs.reserve(4);
        r.auth_blobs.push_back(AuthBlobInfo{c.dir, src, blob.size(), c.ts, c.ev});
        cb.on_auth_blob(c, src, blob);
    }

    // ---- token sink ------------------------------------------------------------------------

    void login_ack(tds::LoginAck&& a) {
        // Moved into the record (its ProgName, "Microsoft SQL Server", is longer than a short
        // string: a copy was a heap allocation per login).
        auto& kept = begin_login(token_ctx).login_ack;
        kept = std::move(a);
        cb.on_login_ack(token_ctx, *kept);
    }

    void server_message(const tds::ServerMessage& m) {
        if (m.is_error) {
            msg_saw_error = true;
            if (LoginRecord* login = attempt.current()) {
                if (!login->error) login->error = m;
                ++login->error_count;
            }
        }
        cb.on_server_message(token_ctx, m);
    }

    void env_change(const tds::EnvChange& e) {
        LoginRecord* login = attempt.current();
        if (e.type == tds::envchange::kRouting && login) {
            login->routing_server = e.routing_server + ":" + std::to_string(e.routing_port);
        }
        cb.on_env_change(token_ctx, e);
    }

    // ---- what the TLS tunnel saw ---------------------------------------------------------

    void client_hello(const FactContext& c, const tls::ClientHello& ch) {
        LoginRecord& r = begin_login(c);
        r.tls_sni = ch.sni;
        r.tls_alpn = ch.alpn;
        cb.on_tls_client_hello(c, ch);
    }

    void server_hello(const FactContext& c, const tls::ServerHello& sh) {
        begin_login(c).tls_version = sh.version();
        cb.on_tls_server_hello(c, sh);
    }

    /// TDS 8.0 strict: the client's stream started with TLS, so the mode is not negotiated.
    void strict(const FactContext& c) {
        tds::EncryptionNegotiation n;
        n.mode = tls.mode();
        begin_login(c).encryption = n.mode;
        cb.on_encryption(c, n);
    }

    void encrypted(const FactContext& c, TlsPayload what, std::size_t length) {
        if (what == TlsPayload::Login7) begin_login(c).login7_encrypted = true;
        cb.on_encrypted(c, to_string(what), length);
    }

    /// A unit of the TDS stream inside TLS, placed at framer offset `at` (outside TLS).
    void unit_from_tls(Side& s, std::uint64_t at, const tds::FramedUnit& u) {
        s.unit_offset = at;
        s.any_unit = true;
        if (u.kind == tds::FramedUnit::Kind::TdsPacket) {
            packet(s, s.main, u, at);
        } else if (u.kind == tds::FramedUnit::Kind::Smp) {
            smp_packet(s, u, at);
        } else {
            problem(ctx(s, at), DecodeError::Code::BadValue, "TLS record inside decrypted TLS");
        }
    }

    // ---- framing ---------------------------------------------------------------------------

    void abort_message(Channel& ch) {
        if (ch.in_msg && ch.kind == MsgKind::Tokens && ch.tokens) ch.tokens->reset_message();
        ch.in_msg = false;
        ch.msg.clear();
        if (ch.msg.capacity() > kKeepCapacity) std::vector<std::uint8_t>().swap(ch.msg);
        ch.msg_len = 0;
    }

    void framing_error(Side& s, std::uint64_t off, const DecodeError& e) {
        cb.on_problem(ctx(s, off), DecodeStatus::Malformed, e);
        abort_message(s.main);
        tls.framing_lost(s.dir);
    }

    void on_unit(Side& s, const tds::FramedUnit& u) {
        s.unit_offset = u.offset;
        s.any_unit = true;
        if (u.kind == tds::FramedUnit::Kind::TlsRecord) {
            tls.raw_record(s.dir, u.offset, u.bytes, tds_seen || client_prelogin_seen);
        } else if (u.kind == tds::FramedUnit::Kind::Smp) {
            smp_packet(s, u, u.offset);
        } else {
            packet(s, s.main, u, u.offset);
        }
    }

    bool is_login7_continuation() const { return tls.login7_encrypted() && !login7_seen; }

    static std::size_t smp_buffered(const Side& s) {
        std::size_t n = 0;
        for (const auto& [sid, session] : s.smp)
            n += session->ch.msg.size();
        return n;
    }

    void smp_packet(Side& s, const tds::FramedUnit& u, std::uint64_t ev_off) {
        tds_seen = true;
        tds::SmpHeader h;
        if (!tds::parse_smp_header(u.bytes, h).ok()) return;  // checked by the framer
        auto it = s.smp.find(h.sid);
        if (it == s.smp.end()) {
            if (h.flags == tds::smp::kFin || h.flags == tds::smp::kAck) return;
            if (s.smp.size() >= kMaxSmpSessions) {
                problem(ctx(s, ev_off), DecodeError::Code::TooLarge,
                        "more than " + std::to_string(kMaxSmpSessions) + " MARS sessions");
                return;
            }
            auto session = std::make_unique<SmpSession>(this, &s, s.dir);
            if (s.dir == Direction::ServerToClient) {
                session->ch.own_tokens = std::make_unique<tds::TokenStreamParser>(tsink);
                session->ch.own_tokens->set_row_events(opt.row_events);
                session->ch.own_tokens->set_info_messages(opt.info_messages);
                if (tds::is_known_tds_version(tds_version)) {
                    session->ch.own_tokens->set_tds_version(tds_version);
                }
                session->ch.tokens = session->ch.own_tokens.get();
            }
            it = s.smp.emplace(h.sid, std::move(session)).first;
        }
        if (h.flags == tds::smp::kData) {
            it->second->framer.feed(u.payload());
        } else if (h.flags == tds::smp::kFin) {
            it->second->framer.finish();
            if (it->second->ch.in_msg) {
                problem(ctx(s, ev_off), DecodeError::Code::Truncated,
                        "MARS session closed inside a message");
            }
            s.smp.erase(it);
        }
    }

    void packet(Side& s, Channel& ch, const tds::FramedUnit& u, std::uint64_t ev_off) {
        const tds::PacketHeader& h = u.header;
        const Bytes payload = u.payload();
        const tds::PacketType type = tds::packet_type(h.type);
        tds_seen = true;
        if (&ch == &s.main && !ch.in_msg && tls.carries_tls(s.dir, type, payload)) {
            tls.tunnelled(s.dir, ev_off, payload);
            return;
        }
        if (type == tds::PacketType::Attention && s.dir == Direction::ClientToServer) {
            cb.on_attention(ctx(s, ev_off));
            return;
        }
        if (ch.in_msg && h.type != ch.msg_type) {
            problem(ctx(s, ch.msg_offset), DecodeError::Code::Truncated,
                    std::string("message of type ") + tds::packet_type_name(ch.msg_type) +
                        " cut short by a packet of type " + tds::packet_type_name(h.type));
            abort_message(ch);
        }
        if (!ch.in_msg) start_message(s, ch, h, ev_off, payload);
        if (h.eom() && ch.msg.empty() && in_place(s, ch, payload)) {
            // The whole message is this packet (PRELOGIN, LOGIN7, SSPI and most batches are):
            // it is read where it is instead of being copied into the channel's buffer first
            // (three buffers grown per login, one per direction's first message and one when
            // LOGIN7 outgrows PRELOGIN). What append_packet() would have noted, noted here.
            ch.msg_len += payload.size();
            if (h.ignore()) ch.msg_ignore = true;
            end_message(s, ch,
                        ch.kind == MsgKind::Prefix
                            ? payload.first(std::min(opt.request_prefix, payload.size()))
                            : payload);
            return;
        }
        append_packet(s, ch, h, payload, ev_off);
        if (h.eom()) end_message(s, ch, Bytes(ch.msg));
    }

    /// Whether a message held whole by one packet can be read in place: it is one append_packet()
    /// would keep (a buffered message within its limits, or a request's prefix).
    bool in_place(const Side& s, const Channel& ch, Bytes payload) const {
        if (ch.kind == MsgKind::Prefix) return true;
        return ch.kind == MsgKind::Buffered && !ch.msg_overflow &&
               !over_limit(s, ch, payload.size());
    }
    /// Whether `more` bytes would take a buffered message past its limit (MARS sessions share
    /// one budget per direction).
    bool over_limit(const Side& s, const Channel& ch, std::size_t more) const {
        return ch.msg.size() + more > opt.max_message ||
               (&ch != &s.main && smp_buffered(s) + more > opt.max_message);
    }

    void start_message(Side& s, Channel& ch, const tds::PacketHeader& h, std::uint64_t off,
                       Bytes first) {
        ch.in_msg = true;
        ch.msg_type = h.type;
        ch.msg_offset = off;
        ch.msg.clear();
        ch.msg_len = 0;
        ch.msg_overflow = false;
        ch.msg_ignore = false;
        ch.kind = MsgKind::Counted;
        if (s.dir == Direction::ClientToServer) {
            switch (tds::packet_type(h.type)) {
                case tds::PacketType::Prelogin:
                case tds::PacketType::Sspi:
                    ch.kind = MsgKind::Buffered;
                    break;
                case tds::PacketType::Login7:
                    ch.kind = is_login7_continuation() ? MsgKind::Counted : MsgKind::Buffered;
                    break;
                case tds::PacketType::SqlBatch:
                case tds::PacketType::Rpc:
                    ch.kind = MsgKind::Prefix;
                    break;
                default:
                    ch.kind = MsgKind::Counted;
                    break;
            }
        } else {
            // The answer to PRELOGIN is a 0x04 message in PRELOGIN format. Without the client's
            // PRELOGIN (capture started just after it) it is recognised by content: VERSION (0x00)
            // MUST be its first option, and 0x00 starts no token.
            const bool before_login =
                !server_prelogin_seen && !login7_seen && !tls.login7_encrypted();
            const bool prelogin_response =
                tds::packet_type(h.type) == tds::PacketType::Prelogin ||
                (before_login && (client_prelogin_seen || (!first.empty() && first[0] == 0x00)));
            ch.kind = (prelogin_response || tds::packet_type(h.type) == tds::PacketType::Sspi)
                          ? MsgKind::Buffered
                          : MsgKind::Tokens;
            msg_saw_error = false;
        }
    }

    void append_packet(Side& s, Channel& ch, const tds::PacketHeader& h, Bytes payload,
                       std::uint64_t off) {
        ch.msg_len += payload.size();
        if (h.ignore()) ch.msg_ignore = true;
        switch (ch.kind) {
            case MsgKind::Buffered:
                if (ch.msg_overflow) break;
                if (over_limit(s, ch, payload.size())) {
                    ch.msg_overflow = true;
                    problem(ctx(s, ch.msg_offset), DecodeError::Code::TooLarge,
                            std::string(tds::packet_type_name(ch.msg_type)) +
                                " message larger than the limit of " +
                                std::to_string(opt.max_message) + " bytes");
                    ch.msg.clear();
                    std::vector<std::uint8_t>().swap(ch.msg);
                    break;
                }
                ch.msg.insert(ch.msg.end(), payload.begin(), payload.end());
                break;
            case MsgKind::Prefix: {
                const std::size_t room =
                    opt.request_prefix > ch.msg.size() ? opt.request_prefix - ch.msg.size() : 0;
                const std::size_t n = std::min(room, payload.size());
                ch.msg.insert(ch.msg.end(), payload.begin(),
                              payload.begin() + static_cast<std::ptrdiff_t>(n));
                break;
            }
            case MsgKind::Tokens: {
                if (!ch.tokens) break;
                token_ctx = ctx(s, off);
                const DecodeResult res = ch.tokens->feed(payload, h.eom());
                if (res.status() == DecodeStatus::Malformed) {
                    cb.on_problem(token_ctx, DecodeStatus::Malformed, res.error());
                }
                break;
            }
            case MsgKind::Counted:
                break;
        }
    }

    /// `m`: the message's bytes (ch.msg, or the packet that holds all of it).
    void end_message(Side& s, Channel& ch, const Bytes m) {
        const FactContext c = ctx(s, ch.msg_offset);
        if (ch.msg_ignore) {
            cb.on_other_message(c, ch.msg_type, ch.msg_len, "ignored (status IGNORE)");
        } else if (ch.msg_overflow) {
            // reported when it happened
        } else if (s.dir == Direction::ClientToServer) {
            switch (tds::packet_type(ch.msg_type)) {
                case tds::PacketType::Prelogin:
                    client_prelogin(c, m);
                    break;
                case tds::PacketType::Login7:
                    if (ch.kind == MsgKind::Buffered) {
                        handle_login7(c, m);
                    } else {
                        cb.on_other_message(c, ch.msg_type, ch.msg_len,
                                            "LOGIN7 continuation; the first packet was encrypted");
                    }
                    break;
                case tds::PacketType::Sspi:
                    auth_blob(c, AuthBlobSource::SspiPacket, m);
                    break;
                case tds::PacketType::SqlBatch: {
                    tds::SqlBatch b;
                    const DecodeResult res =
                        tds::parse_sql_batch(m, tds_version, b, opt.request_limits);
                    if (ch.msg_len > m.size()) b.truncated = true;
                    infer_version(res, b.headers);
                    cb.on_sql_batch(c, b, res);
                    break;
                }
                case tds::PacketType::Rpc: {
                    tds::RpcRequest r;
                    const DecodeResult res = tds::parse_rpc(m, tds_version, r, opt.request_limits);
                    if (ch.msg_len > m.size()) r.truncated = true;
                    infer_version(res, r.headers);
                    cb.on_rpc(c, r, res);
                    break;
                }
                case tds::PacketType::FedAuthToken:
                    begin_login(c);
                    cb.on_other_message(c, ch.msg_type, ch.msg_len,
                                        "federated authentication token (length only)");
                    break;
                case tds::PacketType::PreTds7Login:
                    cb.on_other_message(c, ch.msg_type, ch.msg_len, "pre-TDS7 login (not decoded)");
                    break;
                default:
                    cb.on_other_message(c, ch.msg_type, ch.msg_len,
                                        tds::packet_type_name(ch.msg_type));
                    break;
            }
        } else if (tds::packet_type(ch.msg_type) == tds::PacketType::Sspi) {
            auth_blob(c, AuthBlobSource::SspiPacket, m);  // non-standard, see packet.cpp
        } else if (ch.kind == MsgKind::Buffered) {
            server_prelogin(c, m);
        } else {
            after_server_message(c);
        }
        ch.in_msg = false;
        ch.msg.clear();
        if (ch.msg.capacity() > kKeepCapacity) std::vector<std::uint8_t>().swap(ch.msg);
        ch.msg_len = 0;
    }

    // ---- messages --------------------------------------------------------------------------

    void client_prelogin(const FactContext& c, Bytes m) {
        tds::Prelogin pl;
        if (const DecodeResult res = tds::parse_prelogin(m, pl); !res.ok()) {
            cb.on_problem(c, DecodeStatus::Malformed, res.error());
            return;
        }
        client_prelogin_seen = true;
        client_enc = pl.encryption;
        LoginRecord& r = begin_login(c);
        r.client_encryption = pl.encryption;
        if (pl.version) r.client_driver_version = pl.version;
        cb.on_prelogin(c, pl);
    }

    void server_prelogin(const FactContext& c, Bytes m) {
        tds::Prelogin pl;
        if (const DecodeResult res = tds::parse_prelogin(m, pl); !res.ok()) {
            cb.on_problem(c, DecodeStatus::Malformed, res.error());
            return;
        }
        server_prelogin_seen = true;
        LoginRecord& r = begin_login(c);
        r.server_encryption = pl.encryption;
        if (pl.version) r.server_version = pl.version;
        r.fed_auth_required = pl.fed_auth_required.value_or(0) == 1;
        cb.on_prelogin(c, pl);
        if (client_enc && pl.encryption) {
            const tds::EncryptionNegotiation n =
                tds::negotiate_encryption(*client_enc, *pl.encryption);
            if (tls.negotiated(n.mode)) {
                r.encryption = n.mode;
                r.encryption_downgraded = n.downgraded;
                cb.on_encryption(c, n);
            }
        }
    }

    void set_token_version(std::uint32_t v) {
        tokens.set_tds_version(v);
        for (auto& [sid, session] : s2c.smp) {
            if (session->ch.tokens) session->ch.tokens->set_tds_version(v);
        }
    }

    /// A capture that started after the login does not say which TDS version is spoken. A
    /// request without ALL_HEADERS (mandatory from TDS 7.2 on) means 7.0/7.1, whose DONE tokens
    /// carry 4-byte row counts: tell the token parser, or every DONE would look truncated.
    void infer_version(const DecodeResult& parsed, const tds::AllHeaders& headers) {
        if (tds_version != 0 || !parsed.ok() || headers.present) return;
        tds_version = tds::tds_version::k71;
        set_token_version(tds_version);
    }

    void handle_login7(const FactContext& c, Bytes m) {
        tds::Login7 l;
        Bytes sspi;
        LoginRecord& r = begin_login(c);
        if (const DecodeResult res = tds::parse_login7(m, l, sspi); !res.ok()) {
            cb.on_problem(c, DecodeStatus::Malformed, res.error());
            return;
        }
        login7_seen = true;
        tds_version = l.tds_version;
        if (tds::is_known_tds_version(l.tds_version)) set_token_version(l.tds_version);
        r.login7_seen = true;
        r.user = l.user;
        r.host = l.host;
        r.app = l.app;
        r.server_name = l.server;
        r.database = l.db;
        r.library = l.library;
        r.language = l.lang;
        r.tds_version = l.tds_version;
        r.tds_version_big_endian = l.tds_version_big_endian;
        r.integrated_security = l.integrated_security();
        r.password_present = l.password_present;
        r.password_length = l.password_length;
        r.change_password = l.change_password_present;
        r.fed_auth = l.fed_auth;
        cb.on_login7(c, l);
        if (!sspi.empty()) auth_blob(c, AuthBlobSource::Login7, sspi);
    }

    void after_server_message(const FactContext& c) {
        LoginRecord* login = attempt.current();
        if (!login) return;
        if (login->login_ack) {
            finish_login(LoginOutcome::Success, c, "");
        } else if (msg_saw_error) {
            finish_login(LoginOutcome::Failure, c, "");
        }
        msg_saw_error = false;
    }

    // ---- entry points ----------------------------------------------------------------------

    /// The side a chunk arrives on, told the chunk's time and frame. The first chunk also fixes
    /// the stream offset of the framer's first byte, which places every fact of that side.
    Side& arriving(Direction d, Timestamp ts, const Evidence& ev) {
        Side& s = side(d);
        if (!s.origin_set) {
            s.origin_set = true;
            const std::uint64_t done = s.framer.offset();
            s.origin = ev.stream_offset >= done ? ev.stream_offset - done : 0;
        }
        s.ts = ts;
        s.frame = ev.frame;
        return s;
    }

    void feed(Direction d, Timestamp ts, Bytes data, Evidence ev) {
        arriving(d, ts, ev).framer.feed(data);
    }

    void feed_plaintext(Direction d, Timestamp ts, Bytes data, Evidence ev) {
        Side& s = arriving(d, ts, ev);
        // The records that carried the plaintext are the unit being handled.
        const std::uint64_t at = ev.stream_offset >= s.origin ? ev.stream_offset - s.origin : 0;
        s.unit_offset = at;
        tls.plaintext(d, at, data);
    }

    void gap(Direction d, Timestamp ts, std::uint64_t length) {
        Side& s = side(d);
        s.ts = ts;
        cb.on_gap(ctx(s, s.framer.offset()), length);
        if (s.main.in_msg) {
            problem(ctx(s, s.main.msg_offset), DecodeError::Code::Truncated,
                    std::string(tds::packet_type_name(s.main.msg_type)) + " message cut by a gap");
        }
        abort_message(s.main);
        s.smp.clear();  // MARS sessions cannot be followed across missing bytes
        tls.gap(d, s.unit_offset);
        s.framer.gap(length);
        if (LoginRecord* login = attempt.current()) login->gap_seen = true;
    }

    void close(Timestamp ts) {
        for (Side* s : {&c2s, &s2c}) {
            s->ts = ts;
            s->framer.finish();
            tls.finish(s->dir, s->unit_offset);
            if (!s->any_unit && s->framer.offset() > 0) {
                cb.on_problem(ctx(*s, 0), DecodeStatus::NotTds,
                              make_error(DecodeError::Code::Desync, 0,
                                         std::to_string(s->framer.offset()) +
                                             " bytes without a TDS packet or TLS record"));
            }
            if (s->main.in_msg) {
                problem(ctx(*s, s->main.msg_offset), DecodeError::Code::Truncated,
                        std::string(tds::packet_type_name(s->main.msg_type)) +
                            " message cut by the end of the connection");
                abort_message(s->main);
            }
            for (auto& [sid, session] : s->smp) {
                if (session->ch.in_msg) {
                    problem(ctx(*s, s->framer.offset()), DecodeError::Code::Truncated,
                            "MARS session " + std::to_string(sid) +
                                " cut by the end of the connection");
                }
            }
            s->smp.clear();
        }
        if (attempt.current()) {
            std::string why = "connection closed before the login finished";
            if (tls.mode() == tds::EncryptionMode::Full ||
                tls.mode() == tds::EncryptionMode::Strict) {
                why = "encrypted";
            }
            finish_login(LoginOutcome::Incomplete, ctx(s2c, s2c.framer.offset()), why);
        }
    }

    std::size_t buffered_bytes() const {
        std::size_t n = c2s.framer.buffered() + s2c.framer.buffered() + c2s.main.msg.size() +
                        s2c.main.msg.size() + tls.buffered_bytes();
        for (const Side* sd : {&c2s, &s2c}) {
            for (const auto& [sid, session] : sd->smp) {
                n += session->framer.buffered() + session->ch.msg.size();
            }
        }
        return n;
    }
};

Conversation::Conversation(ConversationCallbacks& cb) : Conversation(cb, Options{}) {}
Conversation::Conversation(ConversationCallbacks& cb, Options options)
    : impl_(std::make_unique<Impl>(cb, options)) {}
Conversation::~Conversation() = default;

void Conversation::feed(Direction dir, Timestamp ts, Bytes data, Evidence ev) {
    impl_->feed(dir, ts, data, ev);
}
void Conversation::feed_plaintext(Direction dir, Timestamp ts, Bytes plaintext, Evidence ev) {
    impl_->feed_plaintext(dir, ts, plaintext, ev);
}
void Conversation::gap(Direction dir, Timestamp ts, std::uint64_t length) {
    impl_->gap(dir, ts, length);
}
void Conversation::close(Timestamp ts) {
    impl_->close(ts);
}
tds::EncryptionMode Conversation::encryption() const {
    return impl_->tls.mode();
}
std::size_t Conversation::buffered_bytes() const {
    return impl_->buffered_bytes();
}

}  // namespace hopscope::session
