// Which flows a capture hands on to the decoders, decided cheaply from the first packets.
//
// TDS: TCP flows with a configured server port (default 1433), and - when `tds_heuristic` is on -
// TCP flows on any port whose first client payload looks like the start of a TDS conversation:
// a PRELOGIN or LOGIN7 packet header, or a TLS ClientHello offering ALPN "tds/8.0" (TDS 8 strict
// encryption). Kerberos: TCP and UDP on the Kerberos ports (default 88). Everything else is
// dropped on its first packets, without buffering.
#pragma once

#include <cstdint>
#include <vector>

#include "hopscope/common/byte_reader.hpp"

namespace hopscope::captures {

enum class FlowClass : std::uint8_t {
    Undecided,  ///< TCP flow on an unknown port, waiting for its first client payload
    Tds,        ///< on a TDS port or recognised by content
    Kerberos,   ///< on a Kerberos port
    Other,      ///< handed on only because `accept_all` is set
    Dropped,    ///< not for us
};

const char* to_string(FlowClass c);

struct FlowFilter {
    std::vector<std::uint16_t> tds_ports{1433};
    std::vector<std::uint16_t> kerberos_ports{88};
    bool tds_heuristic = true;  ///< look for TDS on other TCP ports by content
    bool accept_all = false;    ///< hand on every TCP and UDP flow (tests, debugging)
};

/// The first client payload of a connection looks like a TDS PRELOGIN (0x12) or LOGIN7 (0x10)
/// packet: status EOM (0x01), length 8..32768 and consistent with the body, window 0
/// [MS-TDS 2.2.3.1], PRELOGIN starting with its VERSION option [MS-TDS 2.2.6.5].
[[nodiscard]] bool looks_like_tds_client_start(Bytes payload);

/// A TLS ClientHello (record type 22, handshake type 1) whose ALPN extension (RFC 7301) offers
/// "tds/8.0" [MS-TDS 2.2.3.1.1, TDS 8.0 strict encryption]. Reads only what was captured.
[[nodiscard]] bool is_tls_client_hello_with_tds8_alpn(Bytes payload);

}  // namespace hopscope::captures
