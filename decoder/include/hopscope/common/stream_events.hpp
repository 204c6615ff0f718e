// What every front-end (pcap reader, live capture, proxy) hands to the decoding pipeline.
//
// A front-end reassembles TCP (or takes bytes from its own sockets) and reports, per connection:
// open, in-order data per direction with its stream offset, gaps (bytes it knows are missing),
// and close. UDP datagrams (Kerberos on port 88) are reported whole.
#pragma once

#include <cstdint>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/flow.hpp"

namespace hopscope {

/// Where a piece of evidence came from: a frame number (pcap, 1-based like Wireshark) or a
/// stream offset (proxy), so every event can point back at its bytes.
struct Evidence {
    std::uint64_t frame = 0;          ///< 0 when not from a capture
    std::uint64_t stream_offset = 0;  ///< byte offset in that direction of the connection
};

enum class CloseReason : std::uint8_t { Fin, Rst, Timeout, EndOfInput };

class StreamSink {
  public:
    virtual ~StreamSink() = default;

    /// A new connection. `handshake_seen` is false when the capture starts mid-connection.
    virtual void on_open(const FlowKey& flow, Timestamp ts, bool handshake_seen) = 0;
    /// In-order bytes of one direction. `ev.stream_offset` is the offset of data[0].
    virtual void on_data(const FlowKey& flow, Direction dir, Timestamp ts, Bytes data,
                         Evidence ev) = 0;
    /// `length` bytes of one direction are missing (lost in the capture) before the next data.
    virtual void on_gap(const FlowKey& flow, Direction dir, Timestamp ts, std::uint64_t length) = 0;
    virtual void on_close(const FlowKey& flow, Timestamp ts, CloseReason why) = 0;
    /// One UDP datagram (payload only). `flow.client` is the sender of the first datagram.
    virtual void on_datagram(const FlowKey& flow, Direction dir, Timestamp ts, Bytes payload,
                             Evidence ev) = 0;
    /// A front-end that terminates TLS itself (the proxy with --tls-terminate): what the TLS
    /// application data of a TDS connection carried, in order. The clear bytes of the same
    /// connection (PRELOGIN, the handshake) come through on_data. Ignored by default.
    virtual void on_tls_plaintext(const FlowKey& /*flow*/, Direction /*dir*/, Timestamp /*ts*/,
                                  Bytes /*plaintext*/, Evidence /*ev*/) {}
};

}  // namespace hopscope
