// Opening TLS records with the secrets of a key log (keylog.hpp), for a passive observer.
//
//   * TLS 1.3 [RFC 8446]: handshake and application traffic secrets -> key and IV with
//     HKDF-Expand-Label (7.1, 7.3); nonce = IV xor sequence number; the inner content type ends the
//     plaintext (5.2). The handshake epoch ends with each side's Finished. KeyUpdate is refused
//     (the key log has only the first application secret).
//   * TLS 1.2 [RFC 5246]: key block = PRF(master secret, "key expansion", server random + client
//     random) (6.3); AEAD suites only: AES-GCM [RFC 5288] with the 8-byte explicit nonce, and
//     ChaCha20-Poly1305 [RFC 7905]. A direction is protected from its ChangeCipherSpec on.
//     Renegotiation is refused.
//
// The crypto is OpenSSL's libcrypto (HKDF, TLS1-PRF, AES-GCM, ChaCha20-Poly1305): computations on
// the buffers given, no I/O, no clock (docs/architecture.md, "TLS decryption"). Memory: one
// cipher context and one record of plaintext (<= 2^14 + 256 bytes) per direction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"
#include "hopscope/common/flow.hpp"
#include "hopscope/tls/keylog.hpp"
#include "hopscope/tls/tls.hpp"

namespace hopscope::tls {

enum class Aead : std::uint8_t { Aes128Gcm, Aes256Gcm, ChaCha20Poly1305 };
enum class Hash : std::uint8_t { Sha256, Sha384 };

struct CipherSuite {
    std::uint16_t id = 0;
    const char* name = "";
    Aead aead = Aead::Aes128Gcm;
    Hash hash = Hash::Sha256;
    bool tls13 = false;
};

/// The suites that can be decrypted, or nullptr.
const CipherSuite* find_cipher_suite(std::uint16_t id);
/// "0x1301 TLS_AES_128_GCM_SHA256" for a known suite, "0x002f" otherwise.
std::string cipher_suite_name(std::uint16_t id);

std::size_t key_length(Aead a);
std::size_t hash_length(Hash h);

/// HKDF-Expand-Label(secret, label, context, out.size()) [RFC 8446 7.1]; `label` without the
/// "tls13 " prefix. False if libcrypto refuses.
bool hkdf_expand_label(Hash h, Bytes secret, std::string_view label, Bytes context,
                       std::span<std::uint8_t> out);
/// The TLS 1.2 PRF P_hash(secret, label + seed) [RFC 5246 5].
bool tls12_prf(Hash h, Bytes secret, std::string_view label, Bytes seed,
               std::span<std::uint8_t> out);

/// The protection of one direction in one epoch: AEAD key, IV and sequence number.
class RecordDecrypter {
  public:
    RecordDecrypter();
    ~RecordDecrypter();
    RecordDecrypter(const RecordDecrypter&) = delete;
    RecordDecrypter& operator=(const RecordDecrypter&) = delete;

    /// TLS 1.3: key and IV from a traffic secret, sequence number 0.
    bool init_tls13(const CipherSuite& cs, Bytes traffic_secret);
    /// TLS 1.2: write key and fixed IV (4 bytes for GCM, 12 for ChaCha20), sequence number 0.
    bool init_tls12(const CipherSuite& cs, Bytes key, Bytes fixed_iv);

    /// Opens one whole record (5-byte header + body). On Consumed `plain` holds the content and
    /// `type` its content type (TLS 1.3: the inner type, padding removed) and the sequence number
    /// advances. Malformed when the record is too short or fails authentication.
    DecodeResult open(Bytes record, std::vector<std::uint8_t>& plain, std::uint8_t& type);

    [[nodiscard]] bool ready() const { return ready_; }
    [[nodiscard]] std::uint64_t sequence() const { return seq_; }

  private:
    bool setup(Aead aead, Bytes key, Bytes iv, bool tls13);

    struct Ctx;
    std::unique_ptr<Ctx> ctx_;
    bool ready_ = false;
    bool tls13_ = false;
    Aead aead_ = Aead::Aes128Gcm;
    std::uint8_t iv_[12] = {};
    std::uint64_t seq_ = 0;
};

/// What SessionDecrypter::open gives back for a record it opened.
struct OpenedRecord {
    std::uint8_t type = 0;  ///< content type of the plaintext (handshake, alert, application data)
    Bytes plaintext;        ///< valid until the next call on that direction
};

/// Follows one TLS session (both directions of a connection) and opens its protected records
/// with the secrets of a KeySource. Feed it the clear hellos and ChangeCipherSpecs, then ask for
/// every record whether it `protects` it; those go to `open`, the others stay clear.
///
/// Once a direction cannot be followed (no secrets, unsupported suite, a record that fails
/// authentication, a gap, KeyUpdate, renegotiation) it stops for good and `why_not` says why; its
/// later records are then left to the caller as opaque.
class SessionDecrypter {
  public:
    explicit SessionDecrypter(const KeySource& keys);
    ~SessionDecrypter();
    SessionDecrypter(const SessionDecrypter&) = delete;
    SessionDecrypter& operator=(const SessionDecrypter&) = delete;

    void client_hello(const ClientHello& ch);
    void server_hello(const ServerHello& sh);
    void change_cipher_spec(Direction dir);
    /// Bytes of `dir` are missing: that direction stops (its sequence number is lost).
    void gap(Direction dir);

    /// Whether a record of `content_type` sent in `dir` is to be opened here.
    [[nodiscard]] bool protects(Direction dir, std::uint8_t content_type) const;
    /// Opens a record for which `protects` was true. Malformed stops the direction.
    DecodeResult open(Direction dir, Bytes record, OpenedRecord& out);

    /// Why the session (some direction of it) is not or no longer decrypted; "" while it is.
    [[nodiscard]] const std::string& why_not() const { return why_not_; }
    /// At least one record was opened.
    [[nodiscard]] bool opened_any() const { return opened_any_; }
    /// The session's keys were found and set up (TLS 1.3 after the ServerHello, 1.2 after it too).
    [[nodiscard]] bool keyed() const { return keyed_; }

  private:
    struct Dir;
    void stop(Dir& d, std::string why);
    void handshake_bytes(Dir& d, Direction dir, Bytes b);
    bool switch_to_traffic(Dir& d, Direction dir);

    const KeySource& keys_;
    bool have_client_random_ = false;
    Random client_random_{};
    std::uint16_t version_ = 0;
    const CipherSuite* suite_ = nullptr;
    bool keyed_ = false;
    bool opened_any_ = false;
    std::string why_not_;
    std::unique_ptr<Dir> dirs_[2];
};

}  // namespace hopscope::tls
