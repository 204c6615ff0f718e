#include "hopscope/tds/packet.hpp"

#include <algorithm>

#include "hopscope/tls/tls.hpp"

namespace hopscope::tds {
namespace {

// TLS record layer [RFC 8446 5.1, RFC 5246 6.2]: ContentType, ProtocolVersion, uint16 length.
constexpr std::size_t kTlsHeader = tls::kRecordHeaderSize;
constexpr std::size_t kTlsMaxBody = tls::kMaxRecordBody;

bool is_tls_content_type(std::uint8_t b) {
    return b >= tls::content_type::kChangeCipherSpec && b <= tls::content_type::kApplicationData;
}

// Feed in slices so that one huge chunk never makes the buffer larger than a slice plus a unit.
constexpr std::size_t kSlice = 64 * 1024;

constexpr std::size_t kLost = static_cast<std::size_t>(-1);

}  // namespace

const char* packet_type_name(std::uint8_t type) {
    switch (packet_type(type)) {
        case PacketType::SqlBatch:
            return "SQL batch";
        case PacketType::PreTds7Login:
            return "pre-TDS7 login";
        case PacketType::Rpc:
            return "RPC";
        case PacketType::TabularResult:
            return "tabular result";
        case PacketType::Attention:
            return "attention";
        case PacketType::BulkLoad:
            return "bulk load";
        case PacketType::FedAuthToken:
            return "federated authentication token";
        case PacketType::TransactionManager:
            return "transaction manager request";
        case PacketType::Login7:
            return "LOGIN7";
        case PacketType::Sspi:
            return "SSPI";
        case PacketType::Prelogin:
            return "PRELOGIN";
        default:
            return "unknown";
    }
}

bool is_known_packet_type(std::uint8_t type) {
    switch (packet_type(type)) {
        case PacketType::SqlBatch:
        case PacketType::PreTds7Login:
        case PacketType::Rpc:
        case PacketType::TabularResult:
        case PacketType::Attention:
        case PacketType::BulkLoad:
        case PacketType::FedAuthToken:
        case PacketType::TransactionManager:
        case PacketType::Login7:
        case PacketType::Sspi:
        case PacketType::Prelogin:
            return true;
        default:
            return false;
    }
}

bool packet_type_valid_for(std::uint8_t type, Direction dir) {
    if (!is_known_packet_type(type)) return false;
    const PacketType t = packet_type(type);
    if (t == PacketType::Prelogin) return true;
    // 0x11 from the server is not in MS-TDS (servers answer SSPI with the 0xED token), but some
    // generated traffic has it; it is accepted so such streams stay in sync.
    if (dir == Direction::ServerToClient) {
        return t == PacketType::TabularResult || t == PacketType::Sspi;
    }
    return t != PacketType::TabularResult;
}

DecodeResult parse_header(Bytes data, PacketHeader& out) {
    if (data.size() < kHeaderSize) return DecodeResult::need_more();
    out.type = data[0];
    out.status = data[1];
    out.length = load_u16be(&data[2]);
    out.spid = load_u16be(&data[4]);
    out.packet_id = data[6];
    out.window = data[7];
    if (out.length < kHeaderSize) {
        return make_error(DecodeError::Code::BadLength, 2,
                          "TDS packet length " + std::to_string(out.length) + " < 8");
    }
    return {};
}

bool plausible_header(const PacketHeader& h, Direction dir) {
    if (!packet_type_valid_for(h.type, dir)) return false;
    if ((h.status & ~status::kKnownBits) != 0) return false;
    if (h.ignore() && !h.eom()) return false;
    if (h.length < kHeaderSize || h.window != 0) return false;
    // Attention is a bare header [MS-TDS 2.2.1.7].
    if (packet_type(h.type) == PacketType::Attention && h.length != kHeaderSize) return false;
    return true;
}

DecodeResult parse_smp_header(Bytes data, SmpHeader& out) {
    if (data.size() < smp::kHeaderSize) return DecodeResult::need_more();
    const DecodeError implausible =
        make_error(DecodeError::Code::BadValue, 0, "implausible SMP header");
    if (data[0] != smp::kSmid) return implausible;
    out.flags = data[1];
    out.sid = load_u16le(&data[2]);
    out.length = load_u32le(&data[4]);
    out.seqnum = load_u32le(&data[8]);
    out.window = load_u32le(&data[12]);
    switch (out.flags) {
        case smp::kSyn:
        case smp::kAck:
        case smp::kFin:
            if (out.length == smp::kHeaderSize) return {};
            return implausible;
        case smp::kData:
            if (out.length > smp::kHeaderSize && out.length <= smp::kMaxLength) return {};
            return implausible;
        default:
            return implausible;
    }
}

PacketFramer::PacketFramer(FramerSink& sink, Direction dir, bool synced)
    : sink_(sink), dir_(dir), synced_(synced) {}

void PacketFramer::feed(Bytes data) {
    // Fast path, for the bulk of a session (result sets): in step with the stream and nothing
    // buffered, whole units go to the sink straight from the caller's bytes; only a unit cut by
    // the end of the chunk is copied. Copying every byte into buf_ first cost a copy of the
    // whole stream (a sixth of the proxy's CPU time on large result sets, by perf).
    while (synced_ && buf_.empty() && !data.empty()) {
        const std::size_t n = emit_at(data, offset_);
        if (n == 0 || n == kLost) break;  // a partial unit, or a search from here: buffered below
        data = data.subspan(n);
        offset_ += n;
    }
    while (!data.empty()) {
        const std::size_t n = std::min(data.size(), kSlice);
        buf_.insert(buf_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
        data = data.subspan(n);
        process(false);
    }
}

void PacketFramer::gap(std::uint64_t length) {
    const std::uint64_t dropped = skipped_ + buf_.size();
    const std::uint64_t start = synced_ ? offset_ : skip_start_;
    if (dropped > 0) sink_.on_skipped(start, dropped);
    offset_ += buf_.size() + length;
    buf_.clear();
    synced_ = false;
    skipped_ = 0;
    skip_start_ = offset_;
}

void PacketFramer::finish() {
    process(true);
    if (synced_ && !buf_.empty()) {
        sink_.on_framing_error(
            offset_, make_error(DecodeError::Code::Truncated, 0, "stream ended inside a unit"));
    }
    if (!buf_.empty() || skipped_ > 0) {
        const std::uint64_t start = synced_ ? offset_ : skip_start_;
        sink_.on_skipped(start, skipped_ + buf_.size());
        offset_ += buf_.size();
        buf_.clear();
        skipped_ = 0;
        skip_start_ = offset_;
    }
}

void PacketFramer::drop_front(std::size_t n) {
    if (n == 0) return;
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
    offset_ += n;
}

// Whether a unit can start at buf_[pos]: No, Yes (needs the next unit to line up) or Strong (a
// TDS header so specific that it is accepted on its own). unit_len = 0 means "not enough bytes".
PacketFramer::Candidate PacketFramer::candidate_at(std::size_t pos, std::size_t& unit_len) const {
    unit_len = 0;
    const std::size_t avail = buf_.size() - pos;
    if (avail == 0) return Candidate::Yes;  // caller checks unit_len == 0 -> need more
    const std::uint8_t b0 = buf_[pos];
    if (is_tls_content_type(b0)) {
        if (avail >= 2 && buf_[pos + 1] != 0x03) return Candidate::No;
        if (avail >= 3 && buf_[pos + 2] > 0x04) return Candidate::No;
        if (avail < kTlsHeader) return Candidate::Yes;
        const std::size_t len = load_u16be(&buf_[pos + 3]);
        if (len == 0 || len > kTlsMaxBody) return Candidate::No;
        unit_len = kTlsHeader + len;
        return Candidate::Yes;
    }
    if (b0 == smp::kSmid) {
        if (avail < smp::kHeaderSize) return Candidate::Yes;
        SmpHeader sh;
        if (!parse_smp_header(Bytes(&buf_[pos], smp::kHeaderSize), sh).ok()) return Candidate::No;
        unit_len = sh.length;
        return Candidate::Yes;
    }
    if (!packet_type_valid_for(b0, dir_)) return Candidate::No;
    if (avail < kHeaderSize) return Candidate::Yes;
    PacketHeader h;
    if (!parse_header(Bytes(&buf_[pos], kHeaderSize), h).ok() || !plausible_header(h, dir_)) {
        return Candidate::No;
    }
    unit_len = h.length;
    // A whole one-packet message (EOM, PacketID 1, or 0 from some clients): with the other checks
    // this is specific enough to trust without looking at the next header.
    return (h.eom() && h.packet_id <= 1) ? Candidate::Strong : Candidate::Yes;
}

// Handles the unit at buf_[pos] while synced. Returns its length when it was emitted, 0 when more
// bytes are needed, and kLost when the framing broke there (the framer then searches).
std::size_t PacketFramer::emit_synced(std::size_t pos) {
    return emit_at(Bytes(buf_).subspan(pos), offset_ + pos);
}

std::size_t PacketFramer::emit_at(Bytes in, std::uint64_t offset) {
    const std::size_t avail = in.size();
    const std::uint8_t b0 = in[0];
    FramedUnit u;
    u.offset = offset;
    auto lose = [&](const DecodeError& e) {
        synced_ = false;
        skip_start_ = u.offset;
        skipped_ = 0;
        sink_.on_framing_error(u.offset, e);
        return kLost;
    };
    std::size_t len = 0;
    if (is_tls_content_type(b0)) {
        if (avail < kTlsHeader) return 0;
        const std::size_t body = load_u16be(&in[3]);
        if (in[1] != 0x03 || in[2] > 0x04 || body == 0 || body > kTlsMaxBody) {
            return lose(
                make_error(DecodeError::Code::BadValue, 0, "implausible TLS record header"));
        }
        len = kTlsHeader + body;
        u.kind = FramedUnit::Kind::TlsRecord;
    } else if (b0 == smp::kSmid) {
        if (avail < smp::kHeaderSize) return 0;
        SmpHeader sh;
        const DecodeResult r = parse_smp_header(Bytes(in.data(), smp::kHeaderSize), sh);
        if (!r.ok()) return lose(r.error());
        len = sh.length;
        u.kind = FramedUnit::Kind::Smp;
    } else {
        // Decided on the first byte alone, so the error does not depend on how many bytes
        // have arrived.
        if (!packet_type_valid_for(b0, dir_)) {
            return lose(make_error(DecodeError::Code::Desync, 0,
                                   "byte " + std::to_string(b0) + " starts no TDS packet"));
        }
        if (avail < kHeaderSize) return 0;
        const DecodeResult r = parse_header(Bytes(in.data(), kHeaderSize), u.header);
        if (!r.ok()) return lose(r.error());
        if (!plausible_header(u.header, dir_)) {
            return lose(make_error(DecodeError::Code::Desync, 0, "implausible TDS header"));
        }
        len = u.header.length;
    }
    if (avail < len) return 0;
    u.bytes = Bytes(in.data(), len);
    sink_.on_unit(u);
    return len;
}

void PacketFramer::process(bool at_end) {
    // `head`: bytes of buf_ already consumed (units emitted or bytes skipped); erased in one go at
    // the end, so many small units in a big buffer cost linear time.
    std::size_t head = 0;
    for (;;) {
        if (head >= buf_.size()) break;
        if (synced_) {
            const std::size_t n = emit_synced(head);
            if (n == 0) break;
            if (n != kLost) head += n;
            continue;
        }
        // Searching: look for a unit start at buf_[head].
        std::size_t ulen = 0;
        const Candidate c = candidate_at(head, ulen);
        bool accept = false;
        bool reject = false;
        if (c == Candidate::No) {
            reject = true;
        } else if (ulen == 0) {
            // Not enough bytes to read the header.
            if (!at_end) break;
            reject = true;
        } else if (c == Candidate::Strong) {
            accept = true;
        } else {
            const std::size_t avail = buf_.size() - head;
            if (avail < ulen) {
                if (!at_end) break;
                reject = true;
            } else if (avail == ulen) {
                if (!at_end) break;
                accept = true;  // the last unit of the stream
            } else {
                std::size_t next_len = 0;
                const Candidate n = candidate_at(head + ulen, next_len);
                if (n == Candidate::No) {
                    reject = true;
                } else if (next_len == 0) {
                    if (!at_end) break;
                    reject = true;
                } else {
                    accept = true;
                }
            }
        }
        if (reject) {
            ++head;
            ++skipped_;
            continue;
        }
        if (accept) {
            if (skipped_ > 0) sink_.on_skipped(skip_start_, skipped_);
            skipped_ = 0;
            synced_ = true;
        }
    }
    drop_front(head);
    if (!synced_ && skipped_ == 0) skip_start_ = offset_;
}

}  // namespace hopscope::tds
