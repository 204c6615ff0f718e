// TDS packet header and the per-direction framer [MS-TDS 2.2.3.1].
//
// A TDS byte stream (one direction of a connection) is a sequence of packets: an 8-byte header
// (Type, Status, Length BE, SPID BE, PacketID, Window) followed by Length-8 payload bytes. When the
// connection is protected by TLS the same direction may instead carry raw TLS records (after the
// handshake that was tunnelled in PRELOGIN packets, or from the first byte in TDS 8.0 strict mode).
// TDS packet types (0x01..0x12) and TLS content types (0x14..0x17) do not overlap, so the first
// byte of each unit says which of the two follows.
//
// PacketFramer splits one direction into such units: whole TDS packets (at most 65535 bytes, the
// largest value the 16-bit Length can hold), whole TLS records (at most 5 + 18432 bytes), whole
// MARS SMP packets (first byte 0x53, at most 16 + 65535 bytes; their DATA payload is a TDS stream
// of its own, framed again by the session layer), and
// runs of bytes it had to skip to find its way back after garbage, a gap or a capture that started
// mid-connection. It never buffers more than one unit plus one look-ahead header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"
#include "hopscope/common/flow.hpp"

namespace hopscope::tds {

/// Packet types [MS-TDS 2.2.3.1.1].
enum class PacketType : std::uint8_t {
    SqlBatch = 0x01,
    PreTds7Login = 0x02,
    Rpc = 0x03,
    TabularResult = 0x04,
    Attention = 0x06,
    BulkLoad = 0x07,
    FedAuthToken = 0x08,
    TransactionManager = 0x0E,
    Login7 = 0x10,
    Sspi = 0x11,
    Prelogin = 0x12,
};

/// The packet type a header's Type byte names (any byte converts; unknown ones match no
/// enumerator).
[[nodiscard]] constexpr PacketType packet_type(std::uint8_t type) {
    return static_cast<PacketType>(type);
}

/// Human name of a packet type byte ("SQL batch", "LOGIN7", ...); "unknown" otherwise.
const char* packet_type_name(std::uint8_t type);
[[nodiscard]] bool is_known_packet_type(std::uint8_t type);
/// Whether `type` may be sent in direction `dir` (0x04 server to client; 0x12 both ways, because
/// the server tunnels its TLS handshake in PRELOGIN packets; 0x11 both ways, tolerated from the
/// server; everything else client to server).
[[nodiscard]] bool packet_type_valid_for(std::uint8_t type, Direction dir);

/// Status bits [MS-TDS 2.2.3.1.2].
namespace status {
inline constexpr std::uint8_t kEndOfMessage = 0x01;
inline constexpr std::uint8_t kIgnore = 0x02;
inline constexpr std::uint8_t kEventNotification = 0x04;
inline constexpr std::uint8_t kResetConnection = 0x08;
inline constexpr std::uint8_t kResetConnectionSkipTran = 0x10;
inline constexpr std::uint8_t kKnownBits = 0x1F;
}  // namespace status

inline constexpr std::size_t kHeaderSize = 8;
inline constexpr std::size_t kMaxPacketSize = 65535;

struct PacketHeader {
    std::uint8_t type = 0;
    std::uint8_t status = 0;
    std::uint16_t length = 0;  ///< whole packet, header included (big-endian on the wire)
    std::uint16_t spid = 0;
    std::uint8_t packet_id = 0;
    std::uint8_t window = 0;

    [[nodiscard]] bool eom() const { return (status & status::kEndOfMessage) != 0; }
    [[nodiscard]] bool ignore() const { return (status & status::kIgnore) != 0; }
    [[nodiscard]] std::size_t payload_length() const {
        return length >= kHeaderSize ? length - kHeaderSize : 0;
    }
};

/// Reads the 8-byte header. NeedMore when fewer than 8 bytes are given; Malformed (BadLength)
/// when Length < 8. Any Length in 8..65535 is accepted: the negotiated packet size is a rule for
/// peers, not something a tracer may rely on.
DecodeResult parse_header(Bytes data, PacketHeader& out);

/// A header a real peer could have sent in direction `dir`: known type valid for that direction,
/// only known status bits, IGNORE only together with EOM, Length >= 8, Window 0.
[[nodiscard]] bool plausible_header(const PacketHeader& h, Direction dir);

/// MARS session multiplexing (SMP) header [MC-SMP 2.2.1]: SMID 0x53, FLAGS, SID (LE), LENGTH (LE,
/// header included), SEQNUM (LE), WNDW (LE). DATA packets carry the TDS byte stream of session SID.
namespace smp {
inline constexpr std::uint8_t kSmid = 0x53;
inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::uint8_t kSyn = 0x01;
inline constexpr std::uint8_t kAck = 0x02;
inline constexpr std::uint8_t kFin = 0x04;
inline constexpr std::uint8_t kData = 0x08;
inline constexpr std::size_t kMaxLength = kHeaderSize + 65535;
}  // namespace smp

struct SmpHeader {
    std::uint8_t flags = 0;
    std::uint16_t sid = 0;
    std::uint32_t length = 0;
    std::uint32_t seqnum = 0;
    std::uint32_t window = 0;
};

/// Reads a 16-byte SMP header. NeedMore below 16 bytes; Malformed (BadValue) unless it is
/// plausible: SMID 0x53, exactly one known flag, LENGTH 16 for SYN/ACK/FIN and 17..16+65535 for
/// DATA.
DecodeResult parse_smp_header(Bytes data, SmpHeader& out);

/// One unit found by the framer.
struct FramedUnit {
    enum class Kind : std::uint8_t { TdsPacket, TlsRecord, Smp };
    Kind kind = Kind::TdsPacket;
    PacketHeader header;       ///< TdsPacket only
    Bytes bytes;               ///< the whole unit (header included); valid during the callback
    std::uint64_t offset = 0;  ///< offset of bytes[0] in this direction (gaps counted)

    [[nodiscard]] Bytes payload() const {
        if (kind == Kind::TdsPacket) return bytes.subspan(kHeaderSize);
        if (kind == Kind::Smp) return bytes.subspan(smp::kHeaderSize);
        return bytes;
    }
};

class FramerSink {
  public:
    virtual ~FramerSink() = default;
    virtual void on_unit(const FramedUnit& unit) = 0;
    /// `skipped` bytes starting at `offset` were not part of any unit the framer could find.
    virtual void on_skipped(std::uint64_t offset, std::uint64_t skipped) = 0;
    /// The unit starting at `offset` broke the framing; the framer now searches for the next one.
    virtual void on_framing_error(std::uint64_t offset, const DecodeError& err) = 0;
};

/// Splits one direction of a connection into TDS packets and TLS records, re-synchronising after
/// garbage or gaps. The output depends only on the byte sequence and the calls to gap()/finish(),
/// never on how the bytes were chunked.
class PacketFramer {
  public:
    /// `synced` = the first byte fed is known to start a unit (the TCP handshake was seen).
    PacketFramer(FramerSink& sink, Direction dir, bool synced);

    void feed(Bytes data);
    /// `length` bytes are missing: the partial unit is dropped and the framer re-synchronises.
    void gap(std::uint64_t length);
    /// End of the stream: a candidate unit that ends exactly at the end of the data is accepted;
    /// remaining bytes are reported as skipped.
    void finish();

    [[nodiscard]] std::uint64_t offset() const { return offset_ + buf_.size(); }
    [[nodiscard]] bool synced() const { return synced_; }
    [[nodiscard]] std::size_t buffered() const { return buf_.size(); }

  private:
    enum class Candidate : std::uint8_t { No, Yes, Strong };
    Candidate candidate_at(std::size_t pos, std::size_t& unit_len) const;
    void process(bool at_end);
    std::size_t emit_synced(std::size_t pos);
    /// One unit at the start of `in` (stream offset `offset`): its length once it is whole, 0
    /// when more bytes are needed, kLost when the framing broke there.
    std::size_t emit_at(Bytes in, std::uint64_t offset);
    void drop_front(std::size_t n);

    FramerSink& sink_;
    Direction dir_;
    bool synced_;
    std::vector<std::uint8_t> buf_;  ///< unconsumed bytes
    std::uint64_t offset_ = 0;       ///< stream offset of buf_[0]
    std::uint64_t skipped_ = 0;      ///< bytes skipped in the current search
    std::uint64_t skip_start_ = 0;
};

}  // namespace hopscope::tds
