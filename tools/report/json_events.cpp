#include "hopscope/report/json_events.hpp"

#include <array>
#include <charconv>
#include <cstring>

#include "hopscope/tds/login7.hpp"
#include "hopscope/tls/tls.hpp"

namespace hopscope::report {
namespace {

using nlohmann::ordered_json;
using namespace hopscope::analysis;

// Wire text may hold invalid UTF-8 only if a decoder let it through; never let the writer throw.
std::string dump(const ordered_json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// Writes the per-event objects straight into a string, exactly as dump() above would print
/// them (compact, keys in this order, nlohmann's escaping). Written by hand because building an
/// ordered_json per event and dumping it cost ~60 000 instructions an event (callgrind on the
/// benchmark capture: JSON was 13 % of `hopscope analyze --json`); this costs a few per byte.
/// A string that is not plain ASCII is handed to nlohmann, so that its UTF-8 checks and the
/// replacement of invalid sequences stay exactly nlohmann's.
/// A key of this file's events (or a literal value: Writer::word): a literal, checked when it
/// is compiled to need no escaping, so that writing it is one copy (the check per key at run
/// time was half the writer's work on login events).
class Key {
  public:
    constexpr Key() = default;
    // NOLINTNEXTLINE(google-explicit-constructor): keys are written as literals at every call
    consteval Key(const char* k) : v_(k) {
        for (const char c : v_)
            if (c < 0x20 || c == '"' || c == '\\' || static_cast<unsigned char>(c) >= 0x80)
                throw "a JSON key of hopscope's events needs no escaping";
    }
    [[nodiscard]] constexpr std::string_view view() const { return v_; }

  private:
    std::string_view v_;
};

class Writer {
  public:
    /// Writes into `into` (from its start). JsonLinesWriter keeps its own from one line to the
    /// next, so that an event costs no allocation and no clearing of a fresh buffer.
    explicit Writer(std::string& into) : buf_(into) {
        if (buf_.size() < 1024) buf_.resize(1024);
        data_ = buf_.data();
        cap_ = buf_.size();
    }
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    /// The text written: the event's line without its newline.
    std::string take() {
        buf_.resize(len_);
        return std::move(buf_);
    }
    /// The text written since the start or the last drain(), which then starts the buffer
    /// again (what is open stays open): a long line can leave in pieces. Valid until the next
    /// write.
    std::string_view drain() {
        const std::string_view v{data_, len_};
        len_ = 0;
        return v;
    }
    [[nodiscard]] std::size_t size() const { return len_; }
    /// The text written, then a newline: valid until the next write into the same buffer.
    std::string_view line() {
        put('\n');
        return {data_, len_};
    }
    [[gnu::always_inline]] Writer& open(Key key = {}) { return begin(key, '{'); }
    [[gnu::always_inline]] Writer& open_array(Key key = {}) { return begin(key, '['); }
    Writer& close() {
        put(closers_.back());
        closers_.pop_back();
        comma_ = true;
        return *this;
    }
    [[gnu::always_inline]] Writer& str(Key key, std::string_view v) {
        if (plain(v)) {  // the common case: nothing to escape, one copy
            quoted(field(key, v.size() + 2), v);
        } else {
            name(key);
            escaped(v);
        }
        return *this;
    }
    Writer& item(std::string_view v) { return str({}, v); }
    /// An address and port, written in place: two of them in every event (callgrind on
    /// login-dense traffic: ~600 instructions each when formatted into a string and then
    /// copied and checked as any text; its characters, digits, dots, colons, lower-case hex
    /// and brackets, need no escaping).
    Writer& endpoint(Key key, const Endpoint& e) {
        char* p = field(key, kEndpointTextMax + 2);
        *p = '"';
        char* end = write_text(p + 1, e);
        *end++ = '"';
        end_at(end);
        return *this;
    }
    [[gnu::always_inline]] Writer& num(Key key, std::int64_t v) { return digits(key, v); }
    [[gnu::always_inline]] Writer& unum(Key key, std::uint64_t v) { return digits(key, v); }
    [[gnu::always_inline]] Writer& boolean(Key key, bool v) {
        char* p = field(key, 5);
        if (v) {
            std::memcpy(p, "true", 4);
            end_at(p + 4);
        } else {
            std::memcpy(p, "false", 5);
        }
        return *this;
    }
    /// A value that is JSON text already (nlohmann's compact dump).
    Writer& raw(Key key, std::string_view json) {
        name(key);
        put(json);
        return *this;
    }
    Writer& strings(Key key, const std::vector<std::string>& v) {
        open_array(key);
        for (const std::string& x : v)
            item(x);
        return close();
    }
    /// KDCOptions bits as their names, in bit order (auth::kdc_options_to_string's).
    Writer& kdc_options(Key key, std::uint32_t bits) {
        open_array(key);
        for (std::uint32_t bit = 0x80000000u; bit != 0; bit >>= 1)
            if ((bits & bit) != 0)
                if (const char* n = auth::kdc_option_name(bit)) item(n);
        return close();
    }
    /// Enctypes as their names (auth::etype_name: the number for one without a name).
    Writer& etypes(Key key, const std::vector<std::int32_t>& v) {
        open_array(key);
        for (const std::int32_t e : v) {
            if (const char* n = auth::known_etype_name(e)) {
                item(n);
            } else {
                constexpr std::size_t kMost = 11;  // -2^31
                char* p = field({}, kMost + 2);
                *p++ = '"';
                p = std::to_chars(p, p + kMost, e).ptr;
                *p++ = '"';
                end_at(p);
            }
        }
        return close();
    }
    /// PA-DATA types as their names (auth::pa_type_name).
    Writer& padata(Key key, const std::vector<std::int32_t>& v) {
        open_array(key);
        for (const std::int32_t t : v)
            item(auth::pa_type_name(t));
        return close();
    }
    /// A time as RFC 3339 text, written in place.
    Writer& time(Key key, Timestamp ts) {
        char* p = field(key, kRfc3339Size + 2);
        *p = '"';
        write_rfc3339(ts, p + 1);
        p[kRfc3339Size + 1] = '"';
        return *this;
    }
    /// The start of every event: the event's name is a literal, checked when compiled.
    Writer& header(Key event, Timestamp ts) {
        open().num("schema", kSchemaVersion);
        return word("event", event).time("ts", ts);
    }
    /// A string value known when compiled to need no escaping (a Key's check).
    [[gnu::always_inline]] Writer& word(Key key, Key value) {
        quoted(field(key, value.view().size() + 2), value.view());
        return *this;
    }

  private:
    // The line is built in buf_, of which the first len_ bytes are written: a byte or a copy
    // costs a bounds check and a store, not a call into std::string (callgrind on a
    // login-dense capture: the writer was a fifth of `analyze --json`'s instructions when it
    // appended to a std::string a character or a piece at a time).
    // Its data and size held here too (set by the constructor and extend()): a byte written
    // through a char pointer may alias anything, so each piece reloads what it reads of the
    // writer, and through the string that was two loads more.
    std::string& buf_;
    char* data_ = nullptr;
    std::size_t cap_ = 0;
    std::size_t len_ = 0;
    std::string closers_;
    bool comma_ = false;

    // The writer's small steps are forced inline (GCC kept the steps of a field, extend() among
    // them, as calls: callgrind on 40 MB of login-dense traffic counted 77 M instructions in their
    // bodies, a field costing a few calls).
    /// Room for n more bytes: where they go.
    [[gnu::always_inline]] char* extend(std::size_t n) {
        if (len_ + n > cap_) grow(n);
        char* p = data_ + len_;
        len_ += n;
        return p;
    }
    /// Room for n more bytes past what is written, out of line (rare).
    [[gnu::noinline]] void grow(std::size_t n) {
        buf_.resize(std::max(cap_ * 2, len_ + n));
        data_ = buf_.data();
        cap_ = buf_.size();
    }
    /// The line ends at `end`, inside what the last extend() gave: the rest of it given back.
    void end_at(const char* end) { len_ = static_cast<std::size_t>(end - data_); }
    [[gnu::always_inline]] void put(char c) { *extend(1) = c; }
    [[gnu::always_inline]] void put(std::string_view v) {
        if (!v.empty()) std::memcpy(extend(v.size()), v.data(), v.size());
    }

    /// Bytes copied as they are into a JSON string: printable ASCII but the quote and the
    /// backslash. Everything else is escaped (controls) or left to nlohmann (non-ASCII).
    static constexpr std::array<bool, 256> kPlain = [] {
        std::array<bool, 256> t{};
        for (unsigned c = 0x20; c < 0x80; ++c)
            t[c] = c != '"' && c != '\\';
        return t;
    }();
    /// Eight bytes at a time (a few operations per word instead of a load and a test per byte:
    /// callgrind had the byte loop as the writer's largest item on login-dense captures). The
    /// last bytes are not tested one by one either (that was most of the test's cost: names and
    /// values are short): the last word is read again where it ends, overlapping the one before;
    /// a text of 4 to 7 bytes is its first and last four, one of 1 to 3 its first, middle and
    /// last byte, the rest of the word spaces (plain). Each test in bad() is exact for "any byte
    /// of the word": a borrow can only leave a byte that already matched.
    static bool plain(std::string_view v) {
        constexpr std::uint64_t kOnes = 0x0101010101010101u;
        constexpr std::uint64_t kHigh = 0x8080808080808080u;
        auto bad = [](std::uint64_t w) {
            const std::uint64_t quote = w ^ (kOnes * '"');
            const std::uint64_t backslash = w ^ (kOnes * '\\');
            return ((w & kHigh)                          // not ASCII
                    | ((w - kOnes * 0x20) & ~w & kHigh)  // a control
                    | ((quote - kOnes) & ~quote & kHigh) |
                    ((backslash - kOnes) & ~backslash & kHigh)) != 0;
        };
        const char* p = v.data();
        const std::size_t n = v.size();
        std::uint64_t w = 0;
        if (n >= 8) {
            const char* last = p + n - 8;
            for (; p < last; p += 8) {
                std::memcpy(&w, p, 8);
                if (bad(w)) return false;
            }
            std::memcpy(&w, last, 8);
            return !bad(w);
        }
        if (n >= 4) {
            std::uint32_t lo = 0;
            std::uint32_t hi = 0;
            std::memcpy(&lo, p, 4);
            std::memcpy(&hi, p + n - 4, 4);
            return !bad(std::uint64_t{hi} << 32 | lo);
        }
        if (n == 0) return true;
        w = (kOnes * ' ') << 24 | std::uint64_t{static_cast<unsigned char>(p[0])} |
            std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 |
            std::uint64_t{static_cast<unsigned char>(p[n - 1])} << 16;
        return !bad(w);
    }
    /// A number written in place (room for the longest, then the rest given back).
    template <typename T>
    Writer& digits(Key key, T v) {
        constexpr std::size_t kMost = 20;  // 2^64 - 1, or -2^63 with its sign
        char* p = field(key, kMost);
        end_at(std::to_chars(p, p + kMost, v).ptr);
        return *this;
    }

    [[gnu::always_inline]] Writer& begin(Key key, char c) {
        *field(key, 1) = c;
        closers_.push_back(c == '{' ? '}' : ']');
        comma_ = false;
        return *this;
    }
    /// The separator, then `"key":` when inside an object (keys need no escaping: Key).
    [[gnu::always_inline]] void name(Key k) { field(k, 0); }
    /// name(k), with room for `n` bytes of the value after it, in one step (a bounds check and
    /// the writer's state read once for a field, not once for its name and again for its value):
    /// where the value goes. Whatever of the `n` bytes is not used is given back by end_at().
    [[gnu::always_inline]] char* field(Key k, std::size_t n) {
        const std::string_view key = k.view();
        const bool comma = comma_;
        comma_ = true;
        const std::size_t head = (comma ? 1 : 0) + (key.empty() ? 0 : key.size() + 3);
        char* p = extend(head + n);
        if (comma) *p++ = ',';
        if (key.empty()) return p;
        *p++ = '"';
        std::memcpy(p, key.data(), key.size());
        p += key.size();
        *p++ = '"';
        *p++ = ':';
        return p;
    }
    /// `v` between quotes at `p`, as it is (room for it made): for text that needs no escaping.
    [[gnu::always_inline]] static void quoted(char* p, std::string_view v) {
        *p++ = '"';
        if (!v.empty()) std::memcpy(p, v.data(), v.size());
        p[v.size()] = '"';
    }
    /// A string with something to escape, or not ASCII (then nlohmann's).
    void escaped(std::string_view v) {
        static constexpr char kHex[] = "0123456789abcdef";
        const std::size_t start = len_;
        put('"');
        std::size_t run = 0;  // start of the bytes not yet copied
        for (std::size_t i = 0; i < v.size(); ++i) {
            const auto c = static_cast<unsigned char>(v[i]);
            if (c >= 0x80) {
                len_ = start;
                put(dump(ordered_json(std::string(v))));
                return;
            }
            if (kPlain[c]) continue;
            put(v.substr(run, i - run));
            run = i + 1;
            switch (c) {
                case '"':
                    put("\\\"");
                    break;
                case '\\':
                    put("\\\\");
                    break;
                case '\b':
                    put("\\b");
                    break;
                case '\f':
                    put("\\f");
                    break;
                case '\n':
                    put("\\n");
                    break;
                case '\r':
                    put("\\r");
                    break;
                case '\t':
                    put("\\t");
                    break;
                default: {
                    const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
                    put(std::string_view(u, sizeof u));
                }
            }
        }
        put(v.substr(run));
        put('"');
    }
};

void error_object(Writer& w, Key key, const ServerError& e) {
    w.open(key)
        .num("number", e.number)
        .unum("state", e.state)
        .unum("severity", e.severity)
        .str("message", e.message)
        .str("server", e.server)
        .close();
}

/// The one evidence shape of every event (docs/events.md, "Positions"): `frame` when from a
/// capture, `stream_offset` on TCP (0 is the first byte), `direction` relative to `flow`.
void position_object(Writer& w, Key key, const Position& p, const FlowKey& flow) {
    w.open(key);
    if (p.frame) w.unum("frame", p.frame);
    if (flow.transport == Transport::Tcp) w.unum("stream_offset", p.stream_offset);
    // Four of these in most events: the direction's name as a literal, without a check.
    w.word("direction", p.direction == Direction::ClientToServer
                            ? Key(to_string(Direction::ClientToServer))
                            : Key(to_string(Direction::ServerToClient)))
        .close();
}

/// The fields of a decrypted ticket: a login's `kerberos_ticket` (KeytabFacts) and a KDC
/// exchange's tickets (KdcTicketFacts); `flags`, when given, after ok_as_delegate.
template <typename Shown>
void ticket_fields(Writer& w, const Shown& t, const std::vector<std::string>* flags) {
    w.boolean("forwardable", t.forwardable)
        .boolean("forwarded", t.forwarded)
        .boolean("ok_as_delegate", t.ok_as_delegate);
    if (flags != nullptr) w.strings("flags", *flags);
    w.str("client", t.client).str("authtime", t.authtime).str("enctype", t.enctype);
    if (!t.s4u2proxy_target.empty() || !t.transited_services.empty())
        w.str("s4u2proxy_target", t.s4u2proxy_target)
            .strings("transited_services", t.transited_services);
}

/// What the keytab showed of a Kerberos login (docs/events.md, `kerberos_ticket`,
/// `delegation_proof`, `keytab_problem`): flags, names and times only.
void keytab_objects(Writer& w, const KeytabFacts& k, const FlowKey& flow) {
    if (k.ticket_decrypted) {
        w.open("kerberos_ticket");
        ticket_fields(w, k, nullptr);
        w.close();
    }
    if (k.delegation_known()) {
        w.open("delegation_proof")
            .boolean("deleg", k.deleg)
            .boolean("forwarded_tgt", k.forwarded_tgt);
        if (k.channel_bindings) w.boolean("channel_bindings", true);
        if (k.forwarded_tgt) {
            w.strings("forwarded_tgt_flags", k.forwarded_tgt_flags);
            if (!k.forwarded_tgt_client.empty())
                w.str("forwarded_tgt_client", k.forwarded_tgt_client);
        }
        position_object(w, "at", k.ap_req_at, flow);
        w.close();
    }
    if (!k.problem.empty()) w.str("keytab_problem", k.problem);
}

/// A ticket the keytab opened on port 88 (docs/events.md, `evidence_ticket`, `reply_ticket`).
void kdc_ticket_object(Writer& w, Key key, const KdcTicketFacts& t) {
    w.open(key).boolean("decrypted", t.decrypted);
    if (t.decrypted) ticket_fields(w, t, &t.flags);
    if (!t.problem.empty()) w.str("problem", t.problem);
    w.close();
}

void render(Writer& w, const LoginEvent& e) {
    w.header("login", e.ts)
        .time("started", e.started)
        .endpoint("client", e.flow.client)
        .endpoint("server", e.flow.server)
        .str("auth", to_string(e.auth))
        .str("auth_detail", e.auth_detail)
        .str("outcome", to_string(e.outcome))
        .str("user", e.user)
        .str("domain", e.domain)
        .str("user_source", to_string(e.user_source))
        .str("workstation", e.workstation)
        .str("spn", e.spn)
        .boolean("anonymous", e.anonymous)
        .str("encryption", to_string(e.encryption))
        .boolean("encryption_downgraded", e.encryption_downgraded)
        .str("tls_version", e.tls_version ? tls::version_name(e.tls_version) : std::string())
        .boolean("sspi_visible", e.sspi_visible)
        .str("delegation", to_string(e.delegation))
        .str("server_name", e.server_name)
        .strings("server_aliases", e.server_aliases)
        .str("host_name", e.host_name)
        .str("app_name", e.app_name)
        .str("library", e.library)
        .str("tds_version", e.tds_version ? tds::tds_version_name(e.tds_version) : std::string());
    if (e.ntlm_version) w.num("ntlm_version", e.ntlm_version);
    if (e.kerberos_etype) w.str("kerberos_etype", auth::etype_name(*e.kerberos_etype));
    if (e.kerberos_error) w.num("kerberos_error", e.kerberos_error);
    if (e.routing && !e.routing->empty()) w.str("routing", *e.routing);
    if (e.keytab) keytab_objects(w, *e.keytab, e.flow);
    position_object(w, "first_at", e.first_at, e.flow);
    position_object(w, "last_at", e.last_at, e.flow);
    if (e.error) error_object(w, "error", *e.error);
    w.close();
}

void render(Writer& w, const KerberosEvent& e) {
    w.header("kerberos", e.ts)
        .endpoint("client", e.flow.client)
        .endpoint("kdc", e.flow.server)
        .str("transport", e.flow.transport == Transport::Udp ? "udp" : "tcp")
        .str("request", e.request)
        .str("reply", e.reply)
        .str("principal", e.client)
        .str("sname", e.sname)
        .str("realm", e.realm)
        .kdc_options("kdc_options", e.kdc_options)
        .etypes("etypes", e.etypes)
        .padata("padata", e.padata);
    const KerberosExtras& x = e.extra();
    if (!x.s4u_user.empty()) w.str("s4u_user", x.s4u_user);
    if (!x.additional_ticket_snames.empty())
        w.strings("additional_tickets", x.additional_ticket_snames);
    if (e.error_code) {
        w.open("error")
            .num("code", e.error_code)
            .str("name", e.error_name())
            .str("text", x.error_text)
            .close();
    }
    if (x.evidence_ticket) kdc_ticket_object(w, "evidence_ticket", *x.evidence_ticket);
    if (x.reply_ticket) kdc_ticket_object(w, "reply_ticket", *x.reply_ticket);
    if (x.fast_armored) w.str("fast_armor", "not decrypted");
    if (!e.request.empty()) position_object(w, "request_at", e.request_at, e.flow);
    if (!e.reply.empty()) position_object(w, "reply_at", e.reply_at, e.flow);
    w.close();
}

void render(Writer& w, const ServerErrorEvent& e) {
    w.header("server_error", e.ts)
        .endpoint("client", e.flow.client)
        .endpoint("server", e.flow.server);
    error_object(w, "error", e.error);
    w.str("statement", e.statement);
    position_object(w, "at", e.at, e.flow);
    w.close();
}

void render(Writer& w, const Finding& f) {
    w.header("finding", f.ts)
        .str("rule", f.rule)
        .str("name", f.name)
        .str("severity", to_string(f.severity))
        .str("summary", f.summary)
        .strings("hops", f.hops)
        .open_array("evidence");
    for (const auto& e : f.evidence) {
        w.open().endpoint("client", e.flow.client).endpoint("server", e.flow.server);
        position_object(w, "at", e.at, e.flow);
        w.time("ts", e.ts).str("what", e.what).close();
    }
    w.close();
    if (!f.display_filter.empty()) w.str("display_filter", f.display_filter);
    w.str("remedy", f.remedy);
    if (!f.missing.empty()) w.str("missing", f.missing);
    w.close();
}

template <typename Event>
std::string line_of(const Event& e) {
    std::string buf;
    Writer w(buf);
    render(w, e);
    return w.take();
}

}  // namespace

std::string json_line(const LoginEvent& e) {
    return line_of(e);
}
std::string json_line(const KerberosEvent& e) {
    return line_of(e);
}
std::string json_line(const ServerErrorEvent& e) {
    return line_of(e);
}
std::string json_line(const Finding& f) {
    return line_of(f);
}

ordered_json to_json(const LoginEvent& e) {
    return ordered_json::parse(json_line(e));
}
ordered_json to_json(const KerberosEvent& e) {
    return ordered_json::parse(json_line(e));
}
ordered_json to_json(const ServerErrorEvent& e) {
    return ordered_json::parse(json_line(e));
}
ordered_json to_json(const Finding& f) {
    return ordered_json::parse(json_line(f));
}

namespace {

/// The summary event into `w`; `row_done()` after each row of the hops and chains (where the
/// line can leave in pieces).
template <typename RowDone>
void summary(Writer& w, Timestamp ts, const Analyzer& a, const ordered_json& counters,
             RowDone&& row_done) {
    // With the writer, not as an ordered_json: one row per client, server and authentication
    // seen, which on a login-dense capture is thousands of rows (nlohmann took 7 % of
    // `analyze --json`'s instructions on a 21 MB one, for this line alone).
    w.header("summary", ts).open_array("hops");
    for (const auto& h : a.hop_summary()) {
        w.open()
            .str("client", to_string(h.client))
            .str("server", to_string(h.server))
            .str("server_name", a.host_name(h.server.addr))
            .str("auth", to_string(h.auth))
            .str("outcome", to_string(h.outcome))
            .boolean("anonymous", h.anonymous)
            .str("user", h.user)
            .unum("count", h.count)
            .close();
        row_done();
    }
    w.close().open_array("chains");
    for (const auto& c : a.chain_summary()) {
        w.open()
            .str("client", to_string(c.client))
            .str("middle", to_string(c.middle))
            .str("middle_name", a.host_name(c.middle.addr))
            .str("backend", to_string(c.backend))
            .str("backend_name", a.host_name(c.backend.addr))
            .str("first_auth", to_string(c.first_auth))
            .str("second_auth", to_string(c.second_auth))
            .str("second_outcome", to_string(c.second_outcome))
            .boolean("second_anonymous", c.second_anonymous)
            .boolean("second_prelogin_only", c.second_prelogin_only)
            .str("user", c.user)
            .str("second_user", c.second_user)
            .unum("count", c.count)
            .close();
        row_done();
    }
    w.close().unum("findings", a.findings_emitted()).raw("counters", dump(counters)).close();
}

}  // namespace

std::string summary_line(Timestamp ts, const Analyzer& a, const ordered_json& counters) {
    std::string buf;
    Writer w(buf);
    summary(w, ts, a, counters, [] {});
    return w.take();
}

ordered_json summary_json(Timestamp ts, const Analyzer& a, const ordered_json& counters) {
    return ordered_json::parse(summary_line(ts, a, counters));
}

void JsonLinesWriter::write(const ordered_json& j) {
    write_line(dump(j));
}

void JsonLinesWriter::write_summary(Timestamp ts, const Analyzer& a, const ordered_json& counters) {
    // In pieces of about kPiece bytes: on a capture with many hosts the line is megabytes (11 MB
    // on 1 GB of the lab's captures repeated), and built whole it doubled its way through fresh
    // memory at the end of the run, when nothing else runs beside it.
    constexpr std::size_t kPiece = 64 << 10;
    Writer w(line_);
    summary(w, ts, a, counters, [this, &w] {
        if (w.size() < kPiece) return;
        const std::string_view piece = w.drain();
        std::fwrite(piece.data(), 1, piece.size(), out_);
    });
    put(w.line());
}

void JsonLinesWriter::write_line(std::string line) {
    line.push_back('\n');
    put(line);
}

template <typename Event>
void JsonLinesWriter::write_event(const Event& e) {
    Writer w(line_);
    render(w, e);
    put(w.line());
}
void JsonLinesWriter::write(const LoginEvent& e) {
    write_event(e);
}
void JsonLinesWriter::write(const KerberosEvent& e) {
    write_event(e);
}
void JsonLinesWriter::write(const ServerErrorEvent& e) {
    write_event(e);
}
void JsonLinesWriter::write(const Finding& f) {
    write_event(f);
}

void JsonLinesWriter::put(std::string_view line) {
    std::fwrite(line.data(), 1, line.size(), out_);
    if (flush_each_line_) std::fflush(out_);
}

}  // namespace hopscope::report
