// TLS record layer and the clear parts of the handshake [RFC 5246, RFC 8446], as seen by a
// passive observer: record types and versions, ClientHello (SNI, ALPN, supported_versions) and
// ServerHello (version, cipher suite, selected version, randoms). Pure: no crypto here; the
// decryption with a key log is in keylog.hpp and decrypt.hpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"

namespace hopscope::tls {

namespace content_type {
inline constexpr std::uint8_t kChangeCipherSpec = 0x14;
inline constexpr std::uint8_t kAlert = 0x15;
inline constexpr std::uint8_t kHandshake = 0x16;
inline constexpr std::uint8_t kApplicationData = 0x17;
}  // namespace content_type

namespace handshake_type {
inline constexpr std::uint8_t kClientHello = 1;
inline constexpr std::uint8_t kServerHello = 2;
inline constexpr std::uint8_t kCertificate = 11;
inline constexpr std::uint8_t kServerHelloDone = 14;
inline constexpr std::uint8_t kFinished = 20;
}  // namespace handshake_type

inline constexpr std::size_t kRecordHeaderSize = 5;
inline constexpr std::size_t kMaxRecordBody = 16384 + 2048;

/// "TLS 1.2", "SSL 3.0", ... or "0x...." for other values.
std::string version_name(std::uint16_t v);
const char* content_type_name(std::uint8_t t);

/// Whether bytes can start a TLS record: content type 0x14..0x17, then 0x03 (major version).
[[nodiscard]] bool looks_like_record(Bytes b);

struct RecordHeader {
    std::uint8_t type = 0;
    std::uint16_t version = 0;
    std::uint16_t length = 0;  ///< body length
};

/// NeedMore below 5 bytes; Malformed for an unknown content type, a major version other than 3
/// or a body longer than 2^14 + 2048.
DecodeResult parse_record_header(Bytes data, RecordHeader& out);

/// The 32-byte random of a hello. The client's names its session in a key log.
using Random = std::array<std::uint8_t, 32>;

struct ClientHello {
    std::uint16_t record_version = 0;  ///< version of the record that started it (0 if unknown)
    std::uint16_t legacy_version = 0;  ///< client_version field (0x0303 in TLS 1.3)
    Random random{};
    std::size_t cipher_suite_count = 0;
    std::string sni;                                ///< server_name host_name, "" if absent
    std::vector<std::string> alpn;                  ///< protocol names in offer order
    std::vector<std::uint16_t> supported_versions;  ///< TLS 1.3 extension, in offer order
    /// Highest version offered: max(supported_versions) if present, else legacy_version.
    [[nodiscard]] std::uint16_t max_version() const;
};

struct ServerHello {
    std::uint16_t record_version = 0;  ///< version of the record that started it (0 if unknown)
    std::uint16_t legacy_version = 0;
    Random random{};
    std::uint16_t cipher_suite = 0;
    std::optional<std::uint16_t> selected_version;  ///< supported_versions (TLS 1.3)
    std::string alpn;                               ///< selected protocol, "" if absent
    bool hello_retry_request = false;               ///< TLS 1.3 HRR (special random value)
    [[nodiscard]] std::uint16_t version() const {
        return selected_version ? *selected_version : legacy_version;
    }
};

/// Bodies of handshake messages (after the 4-byte handshake header).
DecodeResult parse_client_hello(Bytes body, ClientHello& out);
DecodeResult parse_server_hello(Bytes body, ServerHello& out);

/// What a HandshakeObserver reports for one direction.
class ObserverSink {
  public:
    virtual ~ObserverSink() = default;
    virtual void on_client_hello(const ClientHello&) {}
    virtual void on_server_hello(const ServerHello&) {}
    /// A clear handshake message other than the hellos (type and body length).
    virtual void on_handshake_message(std::uint8_t /*type*/, std::size_t /*length*/) {}
    virtual void on_change_cipher_spec() {}
    /// A clear alert (level, description).
    virtual void on_alert(std::uint8_t /*level*/, std::uint8_t /*description*/) {}
    /// A record whose body is protected: application data, or handshake/alert after
    /// ChangeCipherSpec. `type` is the record's content type.
    virtual void on_encrypted_record(std::uint8_t /*type*/, std::size_t /*length*/) {}
    /// A record or hello that breaks the protocol; following goes on with the next record.
    virtual void on_error(const DecodeError&) {}
};

/// Follows one direction's TLS records (whole records, header included) and reassembles clear
/// handshake messages across records. Memory: hello messages up to `max_handshake` bytes are
/// buffered; other handshake messages (certificates) are skipped as they stream by.
class HandshakeObserver {
  public:
    explicit HandshakeObserver(ObserverSink& sink, std::size_t max_handshake = 64 * 1024);

    /// One whole record (5-byte header + body). What it shows, problems included, goes to the
    /// sink.
    void on_record(Bytes record);
    /// After a gap: forget partial handshake messages; keep the "encrypted" state.
    void reset();

    [[nodiscard]] bool cipher_active() const { return cipher_active_; }
    /// The session is TLS 1.3 (a ServerHello or HelloRetryRequest said so): ChangeCipherSpec is
    /// then only the middlebox-compatibility record [RFC 8446 D.4] and changes nothing. Set by
    /// the observer itself when its direction carries that ServerHello, and by its owner for the
    /// client's direction.
    void set_tls13() { tls13_ = true; }

  private:
    void handshake_bytes(Bytes body);

    ObserverSink& sink_;
    std::size_t max_handshake_;
    bool cipher_active_ = false;  ///< ChangeCipherSpec seen in this direction (TLS <= 1.2)
    bool tls13_ = false;
    // Current handshake message being reassembled.
    std::vector<std::uint8_t> hs_header_;  ///< up to 4 bytes
    std::vector<std::uint8_t> hs_body_;
    std::uint32_t hs_len_ = 0;
    std::uint32_t hs_seen_ = 0;
    bool hs_keep_ = false;
    std::uint16_t record_version_ = 0;     ///< of the current record
    std::uint16_t hs_record_version_ = 0;  ///< of the record where the message started
};

}  // namespace hopscope::tls
