// What the proxy saw, written as pcapng so that `hopscope analyze` and Wireshark open it.
//
// The proxy has no packets, only the byte streams of its sockets. The recorder turns them into
// synthetic TCP/IP packets with the real addresses and ports: a three-way handshake when a
// connection opens, data segments with consecutive sequence numbers, FIN or RST at the end. Each
// leg of a proxied connection is its own pcapng interface: the client leg (the client and the
// server it meant to reach, as the analysis reports the connection) and the upstream leg (the
// proxy's own address and the upstream).
//
// Single-threaded: the proxy calls it from its analysis thread only. Bounded: with `max_bytes`
// the file rotates (FILE -> FILE.1 -> ... FILE.<keep>), and connections go on in the new file
// without a handshake (the reader then starts them mid-stream).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/flow.hpp"

namespace hopscope::proxy {

enum class Leg : std::uint8_t { Client = 0, Upstream = 1 };

struct RecorderOptions {
    std::string path;             ///< FILE.pcapng
    std::uint64_t max_bytes = 0;  ///< rotate when the file would grow past this; 0 = never
    unsigned keep = 4;            ///< rotated files kept (FILE.1 newest ... FILE.<keep>)
    /// Written as the section header's comment (opt_comment) of every file: how the proxy saw
    /// the traffic, for `hopscope analyze` of the recording. Empty: none.
    std::string section_comment;
};

class Recorder {
  public:
    /// Opens (truncates) the file and writes the section header and both interfaces.
    /// nullptr with `err` set when the file cannot be written.
    static std::unique_ptr<Recorder> open(const RecorderOptions& options, std::string& err);
    virtual ~Recorder() = default;

    /// A new connection on a leg: SYN, SYN-ACK, ACK.
    virtual void open_connection(Leg leg, const FlowKey& flow, Timestamp ts) = 0;
    /// In-order bytes of one direction, cut into segments that fit a 64 KiB IP packet. Returns
    /// the (1-based) number in the current file of the frame that carries data[0].
    virtual std::uint64_t data(Leg leg, const FlowKey& flow, Direction dir, Timestamp ts,
                               Bytes data) = 0;
    /// `length` bytes of one direction were not seen by the recorder: the sequence numbers jump,
    /// so a reader sees the hole.
    virtual void gap(Leg leg, const FlowKey& flow, Direction dir, std::uint64_t length) = 0;
    /// End of the connection on a leg: FIN each way (reset = false) or an RST from `dir`'s sender.
    virtual void close_connection(Leg leg, const FlowKey& flow, Timestamp ts, bool reset,
                                  Direction from = Direction::ClientToServer) = 0;
    /// One TLS session secret (an NSS key log line, no newline) of a connection whose TLS the
    /// proxy terminates (`flow`: its client leg), as a pcapng Decryption Secrets Block:
    /// Wireshark, tshark and `hopscope analyze` then read the TDS inside that connection's TLS
    /// records. Written before the records it opens, and again at the top of each new file
    /// (rotation, reopen) while the connection is open.
    virtual void secret(const FlowKey& flow, Bytes line) = 0;
    /// Reopens the file (after logrotate moved it): new section header, connections go on.
    virtual bool reopen(std::string& err) = 0;
    virtual void flush() = 0;
    /// Write errors so far (disk full ...): recording stops, the proxy goes on.
    [[nodiscard]] virtual const std::string& error() const = 0;
    /// Frames written since open(), over all files.
    [[nodiscard]] virtual std::uint64_t frames_written() const = 0;
};

}  // namespace hopscope::proxy
