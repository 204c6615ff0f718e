#include "hopscope/tls/decrypt.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

namespace hopscope::tls {
namespace {

constexpr std::size_t kTagSize = 16;

constexpr CipherSuite kSuites[] = {
    {0x1301, "TLS_AES_128_GCM_SHA256", Aead::Aes128Gcm, Hash::Sha256, true},
    {0x1302, "TLS_AES_256_GCM_SHA384", Aead::Aes256Gcm, Hash::Sha384, true},
    {0x1303, "TLS_CHACHA20_POLY1305_SHA256", Aead::ChaCha20Poly1305, Hash::Sha256, true},
    {0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", Aead::Aes128Gcm, Hash::Sha256, false},
    {0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", Aead::Aes256Gcm, Hash::Sha384, false},
    {0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", Aead::Aes128Gcm, Hash::Sha256, false},
    {0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", Aead::Aes256Gcm, Hash::Sha384, false},
    {0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", Aead::Aes128Gcm, Hash::Sha256, false},
    {0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", Aead::Aes256Gcm, Hash::Sha384, false},
    {0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Aead::Aes128Gcm, Hash::Sha256, false},
    {0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", Aead::Aes256Gcm, Hash::Sha384, false},
    {0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", Aead::ChaCha20Poly1305, Hash::Sha256,
     false},
    {0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", Aead::ChaCha20Poly1305, Hash::Sha256,
     false},
    {0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", Aead::ChaCha20Poly1305, Hash::Sha256,
     false},
};

const char* digest_name(Hash h) {
    return h == Hash::Sha384 ? "SHA384" : "SHA256";
}

const EVP_CIPHER* cipher_of(Aead a) {
    switch (a) {
        case Aead::Aes128Gcm:
            return EVP_aes_128_gcm();
        case Aead::Aes256Gcm:
            return EVP_aes_256_gcm();
        case Aead::ChaCha20Poly1305:
            return EVP_chacha20_poly1305();
    }
    return nullptr;
}

bool kdf(const char* name, const OSSL_PARAM* params, std::span<std::uint8_t> out) {
    EVP_KDF* k = EVP_KDF_fetch(nullptr, name, nullptr);
    if (!k) return false;
    EVP_KDF_CTX* c = EVP_KDF_CTX_new(k);
    EVP_KDF_free(k);
    if (!c) return false;
    const bool ok = EVP_KDF_derive(c, out.data(), out.size(), params) > 0;
    EVP_KDF_CTX_free(c);
    return ok;
}

void wipe(void* p, std::size_t n) {
    volatile auto* v = static_cast<volatile std::uint8_t*>(p);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = 0;
}

}  // namespace

const CipherSuite* find_cipher_suite(std::uint16_t id) {
    for (const auto& s : kSuites)
        if (s.id == id) return &s;
    return nullptr;
}

std::string cipher_suite_name(std::uint16_t id) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%04x", id);
    const CipherSuite* s = find_cipher_suite(id);
    return s ? std::string(buf) + " " + s->name : std::string(buf);
}

std::size_t key_length(Aead a) {
    return a == Aead::Aes128Gcm ? 16 : 32;
}

std::size_t hash_length(Hash h) {
    return h == Hash::Sha384 ? 48 : 32;
}

bool hkdf_expand_label(Hash h, Bytes secret, std::string_view label, Bytes context,
                       std::span<std::uint8_t> out) {
    static constexpr std::string_view kPrefix = "tls13 ";
    if (out.size() > 0xFFFF || kPrefix.size() + label.size() > 255 || context.size() > 255) {
        return false;
    }
    std::vector<std::uint8_t> info;
    info.push_back(static_cast<std::uint8_t>(out.size() >> 8));
    info.push_back(static_cast<std::uint8_t>(out.size()));
    info.push_back(static_cast<std::uint8_t>(kPrefix.size() + label.size()));
    info.insert(info.end(), kPrefix.begin(), kPrefix.end());
    info.insert(info.end(), label.begin(), label.end());
    info.push_back(static_cast<std::uint8_t>(context.size()));
    info.insert(info.end(), context.begin(), context.end());
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest_name(h)),
                                         0),
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                          const_cast<std::uint8_t*>(secret.data()), secret.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
        OSSL_PARAM_construct_end()};
    return kdf("HKDF", params, out);
}

bool tls12_prf(Hash h, Bytes secret, std::string_view label, Bytes seed,
               std::span<std::uint8_t> out) {
    std::vector<std::uint8_t> s(label.begin(), label.end());
    s.insert(s.end(), seed.begin(), seed.end());
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest_name(h)),
                                         0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET,
                                          const_cast<std::uint8_t*>(secret.data()), secret.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, s.data(), s.size()),
        OSSL_PARAM_construct_end()};
    return kdf("TLS1-PRF", params, out);
}

// ---- RecordDecrypter ---------------------------------------------------------------------------

struct RecordDecrypter::Ctx {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    ~Ctx() { EVP_CIPHER_CTX_free(c); }
    Ctx() = default;
    Ctx(const Ctx&) = delete;
    Ctx& operator=(const Ctx&) = delete;
};

RecordDecrypter::RecordDecrypter() : ctx_(std::make_unique<Ctx>()) {}
RecordDecrypter::~RecordDecrypter() {
    wipe(iv_, sizeof iv_);
}

bool RecordDecrypter::setup(Aead aead, Bytes key, Bytes iv, bool tls13) {
    ready_ = false;
    seq_ = 0;
    tls13_ = tls13;
    aead_ = aead;
    if (!ctx_->c || key.size() != key_length(aead) || iv.size() > sizeof iv_) return false;
    std::memset(iv_, 0, sizeof iv_);
    std::copy(iv.begin(), iv.end(), iv_);
    ready_ = EVP_DecryptInit_ex(ctx_->c, cipher_of(aead), nullptr, nullptr, nullptr) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx_->c, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) == 1 &&
             EVP_DecryptInit_ex(ctx_->c, nullptr, nullptr, key.data(), nullptr) == 1;
    return ready_;
}

bool RecordDecrypter::init_tls12(const CipherSuite& cs, Bytes key, Bytes fixed_iv) {
    const std::size_t want_iv = cs.aead == Aead::ChaCha20Poly1305 ? 12 : 4;
    if (fixed_iv.size() != want_iv) {
        ready_ = false;
        return false;
    }
    return setup(cs.aead, key, fixed_iv, false);
}

bool RecordDecrypter::init_tls13(const CipherSuite& cs, Bytes traffic_secret) {
    std::array<std::uint8_t, 32> key{};
    std::array<std::uint8_t, 12> iv{};
    const std::size_t klen = key_length(cs.aead);
    const bool ok =
        traffic_secret.size() == hash_length(cs.hash) &&
        hkdf_expand_label(cs.hash, traffic_secret, "key", {}, std::span(key.data(), klen)) &&
        hkdf_expand_label(cs.hash, traffic_secret, "iv", {}, iv) &&
        setup(cs.aead, Bytes(key.data(), klen), iv, true);
    if (!ok) ready_ = false;
    wipe(key.data(), key.size());
    wipe(iv.data(), iv.size());
    return ok;
}

DecodeResult RecordDecrypter::open(Bytes record, std::vector<std::uint8_t>& plain,
                                   std::uint8_t& type) {
    if (!ready_) {
        return make_error(DecodeError::Code::Unsupported, 0, "no keys for this TLS record");
    }
    if (record.size() < kRecordHeaderSize) {
        return make_error(DecodeError::Code::Truncated, 0, "TLS record shorter than its header");
    }
    const Bytes body = record.subspan(kRecordHeaderSize);
    const bool explicit_nonce = !tls13_ && aead_ != Aead::ChaCha20Poly1305;
    const std::size_t overhead = kTagSize + (explicit_nonce ? 8 : 0);
    if (body.size() < overhead + (tls13_ ? 1 : 0)) {
        return make_error(DecodeError::Code::BadLength, kRecordHeaderSize,
                          "protected TLS record too short for its cipher");
    }
    std::uint8_t nonce[12];
    std::uint8_t seqbytes[8];
    for (int i = 0; i < 8; ++i)
        seqbytes[i] = static_cast<std::uint8_t>(seq_ >> (56 - 8 * i));
    if (explicit_nonce) {
        std::memcpy(nonce, iv_, 4);
        std::memcpy(nonce + 4, body.data(), 8);
    } else {
        std::memcpy(nonce, iv_, 12);
        for (int i = 0; i < 8; ++i)
            nonce[4 + i] ^= seqbytes[i];
    }
    const Bytes ct = body.subspan(explicit_nonce ? 8 : 0, body.size() - overhead);
    std::uint8_t tag[kTagSize];
    std::memcpy(tag, body.data() + body.size() - kTagSize, kTagSize);
    std::uint8_t aad[13];
    std::size_t aad_len = 0;
    if (tls13_) {
        std::memcpy(aad, record.data(), kRecordHeaderSize);
        aad_len = kRecordHeaderSize;
    } else {
        std::memcpy(aad, seqbytes, 8);
        aad[8] = record[0];
        aad[9] = record[1];
        aad[10] = record[2];
        aad[11] = static_cast<std::uint8_t>(ct.size() >> 8);
        aad[12] = static_cast<std::uint8_t>(ct.size());
        aad_len = 13;
    }
    plain.resize(ct.size() + 16);
    int outl = 0;
    int fin = 0;
    const bool ok =
        EVP_DecryptInit_ex(ctx_->c, nullptr, nullptr, nullptr, nonce) == 1 &&
        EVP_DecryptUpdate(ctx_->c, nullptr, &outl, aad, static_cast<int>(aad_len)) == 1 &&
        EVP_DecryptUpdate(ctx_->c, plain.data(), &outl, ct.data(), static_cast<int>(ct.size())) ==
            1 &&
        EVP_CIPHER_CTX_ctrl(ctx_->c, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag) == 1 &&
        EVP_DecryptFinal_ex(ctx_->c, plain.data() + outl, &fin) == 1;
    if (!ok) {
        plain.clear();
        return make_error(DecodeError::Code::BadValue, kRecordHeaderSize,
                          "TLS record failed authentication (wrong key, or the record or its "
                          "sequence number is not the one expected)");
    }
    plain.resize(static_cast<std::size_t>(outl + fin));
    ++seq_;
    if (!tls13_) {
        type = record[0];
        return {};
    }
    // TLSInnerPlaintext: content, content type, zero padding [RFC 8446 5.2].
    while (!plain.empty() && plain.back() == 0)
        plain.pop_back();
    if (plain.empty()) {
        return make_error(DecodeError::Code::BadValue, kRecordHeaderSize,
                          "TLS 1.3 record without an inner content type");
    }
    type = plain.back();
    plain.pop_back();
    return {};
}

// ---- SessionDecrypter --------------------------------------------------------------------------

struct SessionDecrypter::Dir {
    enum class State : std::uint8_t { Clear, Pending, Active, Stopped };
    State state = State::Clear;
    RecordDecrypter rec;
    std::vector<std::uint8_t> plain;
    Secret traffic;  ///< TLS 1.3: the application secret that follows Finished
    Secret key12;    ///< TLS 1.2: write key and IV, used from ChangeCipherSpec on
    Secret iv12;
    bool handshake_epoch = false;  ///< TLS 1.3: still under the handshake secret
    bool finished = false;         ///< this side's Finished seen
    // Handshake messages walked across records (type only; bodies are not kept).
    std::uint8_t hdr[4] = {};
    std::size_t hdr_have = 0;
    std::uint32_t remaining = 0;
};

SessionDecrypter::SessionDecrypter(const KeySource& keys) : keys_(keys) {
    dirs_[0] = std::make_unique<Dir>();
    dirs_[1] = std::make_unique<Dir>();
}
SessionDecrypter::~SessionDecrypter() = default;

void SessionDecrypter::stop(Dir& d, std::string why) {
    d.state = Dir::State::Stopped;
    d.traffic = Secret();
    d.key12 = Secret();
    d.iv12 = Secret();
    if (why_not_.empty()) why_not_ = std::move(why);
}

void SessionDecrypter::client_hello(const ClientHello& ch) {
    client_random_ = ch.random;
    have_client_random_ = true;
}

void SessionDecrypter::server_hello(const ServerHello& sh) {
    if (sh.hello_retry_request) return;  // the real ServerHello follows
    Dir& c = *dirs_[0];
    Dir& s = *dirs_[1];
    if (c.state != Dir::State::Clear || s.state != Dir::State::Clear) return;  // a second one
    auto stop_both = [&](const std::string& why) {
        stop(c, why);
        stop(s, why);
    };
    version_ = sh.version();
    if (!have_client_random_) return stop_both("ClientHello not seen (its random names the keys)");
    if (version_ != 0x0303 && version_ != 0x0304) {
        return stop_both(version_name(version_) + " is not decrypted (TLS 1.2 and 1.3 only)");
    }
    suite_ = find_cipher_suite(sh.cipher_suite);
    if (!suite_ || suite_->tls13 != (version_ == 0x0304)) {
        return stop_both("cipher suite " + cipher_suite_name(sh.cipher_suite) +
                         " is not decrypted (AEAD suites only)");
    }
    const SessionSecrets* sec = keys_.find(client_random_);
    if (version_ == 0x0304) {
        const char* missing = !sec                            ? "no secrets"
                              : sec->client_handshake.empty() ? "no CLIENT_HANDSHAKE_TRAFFIC_SECRET"
                              : sec->server_handshake.empty() ? "no SERVER_HANDSHAKE_TRAFFIC_SECRET"
                              : sec->client_traffic.empty()   ? "no CLIENT_TRAFFIC_SECRET_0"
                              : sec->server_traffic.empty()   ? "no SERVER_TRAFFIC_SECRET_0"
                                                              : nullptr;
        if (missing) return stop_both(std::string(missing) + " for this session in the key log");
        if (!c.rec.init_tls13(*suite_, sec->client_handshake.bytes()) ||
            !s.rec.init_tls13(*suite_, sec->server_handshake.bytes())) {
            return stop_both("the key log's TLS 1.3 secrets do not fit the cipher suite");
        }
        c.traffic = sec->client_traffic;
        s.traffic = sec->server_traffic;
        c.handshake_epoch = s.handshake_epoch = true;
        c.state = s.state = Dir::State::Active;
        keyed_ = true;
        return;
    }
    if (!sec || sec->master.empty()) {
        return stop_both("no CLIENT_RANDOM (master secret) for this session in the key log");
    }
    const std::size_t klen = key_length(suite_->aead);
    const std::size_t ivlen = suite_->aead == Aead::ChaCha20Poly1305 ? 12 : 4;
    std::array<std::uint8_t, 2 * 32 + 2 * 12> block{};
    std::array<std::uint8_t, 64> seed{};
    std::copy(sh.random.begin(), sh.random.end(), seed.begin());
    std::copy(client_random_.begin(), client_random_.end(), seed.begin() + 32);
    const std::span<std::uint8_t> kb(block.data(), 2 * klen + 2 * ivlen);
    if (!tls12_prf(suite_->hash, sec->master.bytes(), "key expansion", seed, kb)) {
        return stop_both("TLS 1.2 key derivation failed");
    }
    c.key12 = Secret(Bytes(kb.data(), klen));
    s.key12 = Secret(Bytes(kb.data() + klen, klen));
    c.iv12 = Secret(Bytes(kb.data() + 2 * klen, ivlen));
    s.iv12 = Secret(Bytes(kb.data() + 2 * klen + ivlen, ivlen));
    wipe(block.data(), block.size());
    c.state = s.state = Dir::State::Pending;
    keyed_ = true;
}

void SessionDecrypter::change_cipher_spec(Direction dir) {
    Dir& d = *dirs_[dir == Direction::ClientToServer ? 0 : 1];
    if (version_ != 0x0303) return;  // TLS 1.3: a compatibility record, nothing changes
    if (d.state == Dir::State::Pending) {
        if (!d.rec.init_tls12(*suite_, d.key12.bytes(), d.iv12.bytes())) {
            return stop(d, "TLS 1.2 cipher setup failed");
        }
        d.key12 = Secret();
        d.iv12 = Secret();
        d.state = Dir::State::Active;
    } else if (d.state == Dir::State::Active) {
        stop(d, "a second ChangeCipherSpec (renegotiation) is not decrypted");
    }
}

void SessionDecrypter::gap(Direction dir) {
    Dir& d = *dirs_[dir == Direction::ClientToServer ? 0 : 1];
    if (d.state == Dir::State::Active || d.state == Dir::State::Pending) {
        stop(d, "bytes missing from the capture inside the TLS session");
    }
}

bool SessionDecrypter::protects(Direction dir, std::uint8_t content_type) const {
    const Dir& d = *dirs_[dir == Direction::ClientToServer ? 0 : 1];
    if (d.state != Dir::State::Active) return false;
    if (version_ == 0x0304) return content_type == content_type::kApplicationData;
    return content_type != content_type::kChangeCipherSpec;
}

bool SessionDecrypter::switch_to_traffic(Dir& d, Direction) {
    d.handshake_epoch = false;
    const bool ok = d.rec.init_tls13(*suite_, d.traffic.bytes());
    d.traffic = Secret();
    if (!ok) stop(d, "the key log's TLS 1.3 application secret does not fit the cipher suite");
    return ok;
}

void SessionDecrypter::handshake_bytes(Dir& d, Direction dir, Bytes b) {
    std::size_t i = 0;
    while (i < b.size() && d.state == Dir::State::Active) {
        if (d.hdr_have < 4) {
            d.hdr[d.hdr_have++] = b[i++];
            if (d.hdr_have < 4) continue;
            d.remaining =
                (std::uint32_t{d.hdr[1]} << 16) | (std::uint32_t{d.hdr[2]} << 8) | d.hdr[3];
        }
        const std::size_t take = std::min<std::size_t>(b.size() - i, d.remaining);
        i += take;
        d.remaining -= static_cast<std::uint32_t>(take);
        if (d.remaining != 0) break;
        const std::uint8_t t = d.hdr[0];
        d.hdr_have = 0;
        if (version_ == 0x0304) {
            if (t == handshake_type::kFinished && d.handshake_epoch) {
                // Keys change at the next record (a record never spans the key change).
                d.finished = true;
            } else if (t == 24) {
                stop(d,
                     "TLS 1.3 KeyUpdate: not decrypted (the key log holds only the first "
                     "application traffic secrets)");
            }
        } else if (t == handshake_type::kFinished) {
            d.finished = true;
        } else if (d.finished && (t == 0 || t == handshake_type::kClientHello ||
                                  t == handshake_type::kServerHello)) {
            stop(d, "TLS renegotiation is not decrypted");
        }
    }
    (void)dir;
}

DecodeResult SessionDecrypter::open(Direction dir, Bytes record, OpenedRecord& out) {
    Dir& d = *dirs_[dir == Direction::ClientToServer ? 0 : 1];
    if (d.state != Dir::State::Active) {
        return make_error(DecodeError::Code::Unsupported, 0, "TLS record not decrypted");
    }
    std::uint8_t type = 0;
    if (DecodeResult res = d.rec.open(record, d.plain, type); !res.ok()) {
        stop(d, "a TLS record failed authentication (" + std::string(to_string(dir)) +
                    "; wrong key in the key log, or a damaged capture)");
        return res;
    }
    opened_any_ = true;
    out.type = type;
    out.plaintext = d.plain;
    if (type == content_type::kHandshake) {
        handshake_bytes(d, dir, d.plain);
        if (version_ == 0x0304 && d.finished && d.handshake_epoch &&
            d.state == Dir::State::Active) {
            switch_to_traffic(d, dir);
        }
    }
    return {};
}

}  // namespace hopscope::tls
