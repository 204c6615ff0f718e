// The TLS inside one TDS connection [MS-TDS 2.2.6.5, 3.2.5.3, 3.3.5.4], for session::Conversation:
//   * the encryption mode: what both PRELOGINs negotiated (login-only, full), or TDS 8.0 strict
//     when the client's stream starts with a TLS handshake record;
//   * the handshake records tunnelled in PRELOGIN packets (a record may be split across
//     packets), then the raw records, and the clear handshake they show (hellos, alerts);
//   * which protected record carries what: in login-only mode the client's first raw record is
//     its first LOGIN7 packet;
//   * with a key log, the protected records opened (tls::SessionDecrypter) and the TDS stream
//     they carried framed again, each unit placed at the record that brought its first byte; a
//     front-end that terminates TLS itself hands that TDS stream over as plaintext instead.
//
// The tunnel knows nothing of login attempts or of the conversation's callbacks: what it sees
// goes to a TlsTunnelSink with the framer offset (outside TLS) of the unit it came from, and the
// conversation turns that into facts. The TDS units found inside TLS go back the same way, to be
// decoded exactly like clear TDS.
//
// Memory per direction: one partial tunnelled record, the hello being reassembled, and with
// decryption one partial TDS packet of plaintext and where its bytes came from (at most
// 256 records).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"
#include "hopscope/common/flow.hpp"
#include "hopscope/tds/packet.hpp"
#include "hopscope/tds/prelogin.hpp"
#include "hopscope/tls/decrypt.hpp"
#include "hopscope/tls/keylog.hpp"
#include "hopscope/tls/tls.hpp"

namespace hopscope::session {

/// What a protected TLS record carried, as far as the connection tells it apart.
enum class TlsPayload : std::uint8_t {
    Login7,     ///< login-only mode: the client's first LOGIN7 packet
    Handshake,  ///< Finished and the like (while opaque: any record but application data)
    Data,       ///< TDS
    Alert,      ///< an alert (told apart only once the record is opened)
};
/// "login7", "handshake", "data", "alert": the `what` of the conversation's on_encrypted and
/// on_decrypted.
const char* to_string(TlsPayload p);

/// What a TlsTunnel reports. `at` is the framer offset (outside TLS) of the TDS packet or TLS
/// record the report comes from.
class TlsTunnelSink {
  public:
    virtual ~TlsTunnelSink() = default;

    virtual void on_client_hello(Direction, std::uint64_t at, const tls::ClientHello&) = 0;
    virtual void on_server_hello(Direction, std::uint64_t at, const tls::ServerHello&) = 0;
    /// The client's stream started with TLS: TDS 8.0 strict (TlsTunnel::mode() says so already).
    virtual void on_strict(std::uint64_t at) = 0;
    /// A protected record left opaque (no keys, or they could not open it).
    virtual void on_encrypted(Direction, std::uint64_t at, TlsPayload, std::size_t length) = 0;
    /// A protected record opened with the keys; `length` is its plaintext's.
    virtual void on_decrypted(Direction, std::uint64_t at, TlsPayload, std::size_t length) = 0;
    /// An alert, clear or opened.
    virtual void on_alert(Direction, std::uint64_t at, std::uint8_t level,
                          std::uint8_t description) = 0;
    /// A record that breaks TLS or its tunnelling, or could not be opened; following goes on.
    virtual void on_error(Direction, std::uint64_t at, const DecodeError&) = 0;
    /// TDS from inside TLS is about to be decoded (the login attempt in progress is read inside
    /// TLS).
    virtual void on_plaintext() = 0;
    /// The TDS stream inside TLS, framed: as tds::FramerSink, at the record that carried the
    /// first byte of the unit.
    virtual void on_tds_unit(Direction, std::uint64_t at, const tds::FramedUnit&) = 0;
    virtual void on_tds_skipped(Direction, std::uint64_t at, std::uint64_t skipped) = 0;
    virtual void on_tds_framing_error(Direction, std::uint64_t at, const DecodeError&) = 0;
    /// Whether the client's LOGIN7 was decoded (clear or from inside TLS): in login-only mode
    /// only a record before it can be the LOGIN7.
    [[nodiscard]] virtual bool login7_decoded() const = 0;
};

/// Follows the TLS of one connection, both directions. Every entry point takes `at`, the framer
/// offset (outside TLS) of the unit being handled: what the tunnel reports comes from there,
/// unless a record it opened earlier brought it.
class TlsTunnel {
  public:
    /// `keys`: the secrets to open the protected records with, looked up when the ServerHello
    /// is seen; must outlive the tunnel. nullptr: the records stay opaque.
    TlsTunnel(TlsTunnelSink& sink, const tls::KeySource* keys);
    ~TlsTunnel();
    TlsTunnel(const TlsTunnel&) = delete;
    TlsTunnel& operator=(const TlsTunnel&) = delete;

    [[nodiscard]] tds::EncryptionMode mode() const { return mode_; }
    /// The mode both PRELOGINs negotiated. Ignored (false) in TDS 8.0 strict mode, where the
    /// PRELOGIN travels inside TLS and its ENCRYPTION is moot.
    bool negotiated(tds::EncryptionMode mode);
    /// Login-only mode: the client's first LOGIN7 packet travelled in a TLS record (opened or
    /// not), so the LOGIN7 packets that follow in the clear are its continuation.
    [[nodiscard]] bool login7_encrypted() const { return login7_encrypted_; }

    /// Whether a TDS packet that would start a message on the connection's main channel carries
    /// TLS records instead: a PRELOGIN packet, or a tabular result once the client's hello was
    /// seen, whose payload continues a record or looks like one (recognised by content,
    /// MS-TDS 3.2.5.3). Never for TDS read from inside TLS.
    [[nodiscard]] bool carries_tls(Direction d, tds::PacketType type, Bytes payload) const;
    /// The payload of a TDS packet for which carries_tls() was true.
    void tunnelled(Direction d, std::uint64_t at, Bytes payload);
    /// A whole TLS record found where a TDS packet would start. `tds_seen`: TDS came before it
    /// on the connection; if not, a client's handshake record means TDS 8.0 strict.
    void raw_record(Direction d, std::uint64_t at, Bytes record, bool tds_seen);
    /// The TDS stream that travelled inside TLS in `d`, handed over by a front-end that
    /// terminates TLS itself: decoded like the plaintext of records opened here.
    void plaintext(Direction d, std::uint64_t at, Bytes tds);

    /// The outer framing broke: a partial tunnelled record and a partial handshake message are
    /// forgotten.
    void framing_lost(Direction d);
    /// Bytes of `d` are missing: as framing_lost, and the keys of `d` stop (its record sequence
    /// number is lost); a partial TDS packet from inside TLS is reported as cut.
    void gap(Direction d, std::uint64_t at);
    /// End of the stream of `d`: a partial TDS packet from inside TLS is reported as cut.
    void finish(Direction d, std::uint64_t at);

    /// With keys: why they did not open (some direction of) the session. nullptr without keys.
    [[nodiscard]] const tls::SessionDecrypter* decrypter() const { return dec_.get(); }
    [[nodiscard]] std::size_t buffered_bytes() const;

  private:
    struct Side;

    /// The clear TLS of one direction.
    struct ObserverAdapter : tls::ObserverSink {
        TlsTunnel* tunnel = nullptr;
        Side* side = nullptr;
        void on_client_hello(const tls::ClientHello& ch) override;
        void on_server_hello(const tls::ServerHello& sh) override;
        void on_change_cipher_spec() override;
        void on_encrypted_record(std::uint8_t type, std::size_t length) override;
        void on_alert(std::uint8_t level, std::uint8_t description) override;
        void on_error(const DecodeError& e) override;
    };

    /// The TDS stream inside TLS of one direction.
    struct PlainAdapter : tds::FramerSink {
        TlsTunnel* tunnel = nullptr;
        Side* side = nullptr;
        void on_unit(const tds::FramedUnit& u) override;
        void on_skipped(std::uint64_t offset, std::uint64_t skipped) override;
        void on_framing_error(std::uint64_t offset, const DecodeError& e) override;
    };

    struct Side {
        Side(TlsTunnel* tunnel, Direction d);
        Direction dir;
        std::uint64_t at = 0;  ///< framer offset of the unit being handled
        ObserverAdapter osink;
        tls::HandshakeObserver observer;
        PlainAdapter psink;
        tds::PacketFramer plain;  ///< TDS inside TLS
        /// (plaintext offset, framer offset of the record that carried it), oldest first.
        /// A vector, not a deque: an empty std::deque allocates about 600 bytes, on every
        /// connection, TLS or not (+1.2 KiB per idle proxied connection, measured).
        std::vector<std::pair<std::uint64_t, std::uint64_t>> plain_marks;
        std::vector<std::uint8_t> pending;  ///< a tunnelled record split across TDS packets
        bool in_plaintext = false;          ///< units being framed come from inside TLS
        bool raw_record = false;            ///< the record being handled is not inside a TDS packet
        bool client_hello_seen = false;
    };

    /// The side of `d`, made on first use.
    Side& side(Direction d);
    /// The side of `d`, or null while nothing of TLS was seen in that direction.
    [[nodiscard]] const Side* find(Direction d) const {
        return sides_[d == Direction::ClientToServer ? 0 : 1].get();
    }

    void record(Side& s, Bytes rec);
    void opened(Side& s, std::uint64_t at, const tls::OpenedRecord& o);
    void client_hello(Side& s, const tls::ClientHello& ch);
    void server_hello(Side& s, const tls::ServerHello& sh);
    void encrypted_record(Side& s, std::uint8_t type, std::size_t length);
    void carried(Side& s, Bytes tds, std::uint64_t outer_at);
    [[nodiscard]] std::uint64_t outer_offset(const Side& s, std::uint64_t plain_offset) const;

    TlsTunnelSink& sink_;
    std::unique_ptr<tls::SessionDecrypter> dec_;  ///< with keys
    tds::EncryptionMode mode_ = tds::EncryptionMode::Unknown;
    bool login7_encrypted_ = false;
    /// [0] client to server, [1] server to client. Made when TLS first shows in a direction:
    /// most connections never carry any, or are long past their login, and a side holds about
    /// 270 bytes (per idle connection of the proxy: a tenth of what it keeps for it).
    std::unique_ptr<Side> sides_[2];
};

}  // namespace hopscope::session
