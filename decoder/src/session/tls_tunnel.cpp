#include "tls_tunnel.hpp"

#include <string>

namespace hopscope::session {
namespace {

/// Opened records remembered per direction to place the TDS packets of their plaintext.
constexpr std::size_t kMaxPlainMarks = 256;

}  // namespace

const char* to_string(TlsPayload p) {
    switch (p) {
        case TlsPayload::Login7:
            return "login7";
        case TlsPayload::Handshake:
            return "handshake";
        case TlsPayload::Data:
            return "data";
        case TlsPayload::Alert:
            return "alert";
    }
    return "?";
}

// ---- adapters ------------------------------------------------------------------------------

void TlsTunnel::ObserverAdapter::on_client_hello(const tls::ClientHello& ch) {
    tunnel->client_hello(*side, ch);
}
void TlsTunnel::ObserverAdapter::on_server_hello(const tls::ServerHello& sh) {
    tunnel->server_hello(*side, sh);
}
void TlsTunnel::ObserverAdapter::on_change_cipher_spec() {
    if (tunnel->dec_) tunnel->dec_->change_cipher_spec(side->dir);
}
void TlsTunnel::ObserverAdapter::on_encrypted_record(std::uint8_t type, std::size_t length) {
    tunnel->encrypted_record(*side, type, length);
}
void TlsTunnel::ObserverAdapter::on_alert(std::uint8_t level, std::uint8_t description) {
    tunnel->sink_.on_alert(side->dir, side->at, level, description);
}
void TlsTunnel::ObserverAdapter::on_error(const DecodeError& e) {
    tunnel->sink_.on_error(side->dir, side->at, e);
}

void TlsTunnel::PlainAdapter::on_unit(const tds::FramedUnit& u) {
    // This unit is now the one being handled: what it leads to (a MARS session's packets, ...)
    // is placed at its record too.
    side->at = tunnel->outer_offset(*side, u.offset);
    tunnel->sink_.on_tds_unit(side->dir, side->at, u);
}
void TlsTunnel::PlainAdapter::on_skipped(std::uint64_t offset, std::uint64_t skipped) {
    tunnel->sink_.on_tds_skipped(side->dir, tunnel->outer_offset(*side, offset), skipped);
}
void TlsTunnel::PlainAdapter::on_framing_error(std::uint64_t offset, const DecodeError& e) {
    tunnel->sink_.on_tds_framing_error(side->dir, tunnel->outer_offset(*side, offset), e);
}

TlsTunnel::Side::Side(TlsTunnel* tunnel, Direction d)
    : dir(d), observer(osink), plain(psink, d, true) {
    osink.tunnel = tunnel;
    osink.side = this;
    psink.tunnel = tunnel;
    psink.side = this;
}

// ---- the tunnel ----------------------------------------------------------------------------

TlsTunnel::TlsTunnel(TlsTunnelSink& sink, const tls::KeySource* keys) : sink_(sink) {
    if (keys) dec_ = std::make_unique<tls::SessionDecrypter>(*keys);
}

TlsTunnel::~TlsTunnel() = default;

TlsTunnel::Side& TlsTunnel::side(Direction d) {
    auto& s = sides_[d == Direction::ClientToServer ? 0 : 1];
    if (!s) s = std::make_unique<Side>(this, d);
    return *s;
}

bool TlsTunnel::negotiated(tds::EncryptionMode mode) {
    if (mode_ == tds::EncryptionMode::Strict) return false;
    mode_ = mode;
    return true;
}

bool TlsTunnel::carries_tls(Direction d, tds::PacketType type, Bytes payload) const {
    const Side* s = find(d);
    if (s && s->in_plaintext) return false;
    // The server's handshake records answer in tabular result packets once the client's
    // hello was seen.
    const Side* client = find(Direction::ClientToServer);
    if (type != tds::PacketType::Prelogin &&
        !(type == tds::PacketType::TabularResult && client && client->client_hello_seen)) {
        return false;
    }
    return (s && !s->pending.empty()) || tds::looks_like_tls(payload);
}

void TlsTunnel::tunnelled(Direction d, std::uint64_t at, Bytes payload) {
    Side& s = side(d);
    s.at = at;
    s.pending.insert(s.pending.end(), payload.begin(), payload.end());
    std::size_t pos = 0;  // records consumed so far; erased once at the end
    while (s.pending.size() - pos >= tls::kRecordHeaderSize) {
        const Bytes rest = Bytes(s.pending).subspan(pos);
        tls::RecordHeader h;
        if (const DecodeResult res = tls::parse_record_header(rest, h); !res.ok()) {
            sink_.on_error(d, at, res.error());
            s.pending.clear();
            return;
        }
        const std::size_t need = tls::kRecordHeaderSize + h.length;
        if (rest.size() < need) break;
        record(s, rest.first(need));
        pos += need;
    }
    s.pending.erase(s.pending.begin(), s.pending.begin() + static_cast<std::ptrdiff_t>(pos));
}

void TlsTunnel::raw_record(Direction d, std::uint64_t at, Bytes record_bytes, bool tds_seen) {
    Side& s = side(d);
    s.at = at;
    if (!s.pending.empty()) {
        sink_.on_error(d, at,
                       make_error(DecodeError::Code::Desync, 0,
                                  "raw TLS record while a tunnelled record was incomplete"));
        s.pending.clear();
    }
    if (d == Direction::ClientToServer && !tds_seen && mode_ == tds::EncryptionMode::Unknown &&
        record_bytes[0] == tls::content_type::kHandshake) {
        // TDS 8.0 strict: TLS from the first byte [MS-TDS 3.3.5.4].
        mode_ = tds::EncryptionMode::Strict;
        sink_.on_strict(at);
    }
    s.raw_record = true;
    record(s, record_bytes);
    s.raw_record = false;
}

void TlsTunnel::plaintext(Direction d, std::uint64_t at, Bytes tds) {
    Side& s = side(d);
    s.at = at;
    carried(s, tds, at);
}

void TlsTunnel::framing_lost(Direction d) {
    if (!find(d)) return;  // nothing of TLS held
    Side& s = side(d);
    s.pending.clear();
    s.observer.reset();
}

void TlsTunnel::gap(Direction d, std::uint64_t at) {
    framing_lost(d);
    if (dec_) dec_->gap(d);
    finish(d, at);
}

void TlsTunnel::finish(Direction d, std::uint64_t at) {
    if (!find(d)) return;  // no TDS from inside TLS to end
    Side& s = side(d);
    s.at = at;
    s.plain.finish();
}

std::size_t TlsTunnel::buffered_bytes() const {
    std::size_t n = 0;
    for (const auto& s : sides_)
        if (s) n += s->pending.size() + s->plain.buffered();
    return n;
}

// ---- records -------------------------------------------------------------------------------

void TlsTunnel::record(Side& s, Bytes rec) {
    if (dec_ && !rec.empty() && dec_->protects(s.dir, rec[0])) {
        const std::uint64_t at = s.at;
        tls::OpenedRecord o;
        const DecodeResult res = dec_->open(s.dir, rec, o);
        if (res.ok()) {
            opened(s, at, o);
            return;
        }
        sink_.on_error(s.dir, at, res.error());
        // and from here on the record is shown as encrypted, as without keys
    }
    s.observer.on_record(rec);
}

void TlsTunnel::opened(Side& s, std::uint64_t at, const tls::OpenedRecord& o) {
    switch (o.type) {
        case tls::content_type::kApplicationData: {
            const bool login7 = s.dir == Direction::ClientToServer &&
                                mode_ == tds::EncryptionMode::LoginOnly && !sink_.login7_decoded();
            sink_.on_decrypted(s.dir, at, login7 ? TlsPayload::Login7 : TlsPayload::Data,
                               o.plaintext.size());
            carried(s, o.plaintext, at);
            break;
        }
        case tls::content_type::kHandshake:
            sink_.on_decrypted(s.dir, at, TlsPayload::Handshake, o.plaintext.size());
            break;
        case tls::content_type::kAlert:
            sink_.on_decrypted(s.dir, at, TlsPayload::Alert, o.plaintext.size());
            if (o.plaintext.size() == 2) sink_.on_alert(s.dir, at, o.plaintext[0], o.plaintext[1]);
            break;
        default:
            sink_.on_error(
                s.dir, at,
                make_error(DecodeError::Code::BadValue, 0,
                           "decrypted TLS record of content type " + std::to_string(o.type)));
            break;
    }
}

void TlsTunnel::client_hello(Side& s, const tls::ClientHello& ch) {
    s.client_hello_seen = true;
    if (dec_) dec_->client_hello(ch);
    sink_.on_client_hello(s.dir, s.at, ch);
}

void TlsTunnel::server_hello(Side& s, const tls::ServerHello& sh) {
    if (dec_) dec_->server_hello(sh);
    if (sh.version() == 0x0304) {
        // the client's compatibility CCS changes nothing
        side(Direction::ClientToServer).observer.set_tls13();
        side(Direction::ServerToClient).observer.set_tls13();
    }
    sink_.on_server_hello(s.dir, s.at, sh);
}

void TlsTunnel::encrypted_record(Side& s, std::uint8_t type, std::size_t length) {
    TlsPayload what = TlsPayload::Data;
    if (type != tls::content_type::kApplicationData) {
        what = TlsPayload::Handshake;
    } else if (s.dir == Direction::ClientToServer && mode_ == tds::EncryptionMode::LoginOnly &&
               s.raw_record && !sink_.login7_decoded() && !login7_encrypted_) {
        // (a TLS 1.3 Finished is application data too, but it travels in a PRELOGIN packet)
        what = TlsPayload::Login7;
        login7_encrypted_ = true;
    }
    sink_.on_encrypted(s.dir, s.at, what, length);
}

// ---- the TDS stream inside TLS ---------------------------------------------------------------

/// TDS bytes that travelled inside TLS in direction s, carried by the record (or chunk) at
/// framer offset `outer_at`.
void TlsTunnel::carried(Side& s, Bytes tds, std::uint64_t outer_at) {
    sink_.on_plaintext();
    if (tds.empty()) return;
    s.plain_marks.emplace_back(s.plain.offset(), outer_at);
    if (s.plain_marks.size() > kMaxPlainMarks) s.plain_marks.erase(s.plain_marks.begin());
    s.in_plaintext = true;
    s.plain.feed(tds);
    s.in_plaintext = false;
    // Marks before the unit now being assembled are no longer needed.
    const std::uint64_t keep_from = s.plain.offset() - s.plain.buffered();
    std::size_t drop = 0;
    while (drop + 1 < s.plain_marks.size() && s.plain_marks[drop + 1].first <= keep_from)
        ++drop;
    s.plain_marks.erase(s.plain_marks.begin(),
                        s.plain_marks.begin() + static_cast<std::ptrdiff_t>(drop));
}

/// Framer offset (outside TLS) of the record that carried plaintext offset `plain_offset`; the
/// unit being handled when no record remembered placed it.
std::uint64_t TlsTunnel::outer_offset(const Side& s, std::uint64_t plain_offset) const {
    std::uint64_t at = s.at;
    for (const auto& [plain_off, outer] : s.plain_marks) {
        if (plain_off > plain_offset) break;
        at = outer;
    }
    return at;
}

}  // namespace hopscope::session
