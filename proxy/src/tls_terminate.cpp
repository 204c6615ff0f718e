#include "hopscope/proxy/tls_terminate.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>

#include "hopscope/tds/packet.hpp"
#include "hopscope/tds/prelogin.hpp"

namespace hopscope::proxy {

namespace {

/// Every error OpenSSL queued on this thread, one line, and the queue emptied.
std::string ssl_errors() {
    std::string out;
    char buf[256];
    while (const unsigned long e = ERR_get_error()) {
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? std::string("no detail from OpenSSL") : out;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

/// The ex_data slot of an SSL that points at its terminator (callbacks get only the SSL).
int ex_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

constexpr std::uint8_t kStatusEom = 0x01;
constexpr std::size_t kTdsHeader = 8;
constexpr std::size_t kTlsHeader = 5;
/// Largest TLS record body: 2^14 of plaintext plus what TLS 1.2 allows for expansion.
constexpr std::size_t kMaxRecordBody = (1u << 14) + 2048;

/// Size of the TDS packet at the front of `in`: 0 while incomplete, SIZE_MAX when its header
/// cannot be a packet's.
std::size_t packet_size(Bytes in) {
    if (in.size() < kTdsHeader) return 0;
    const std::size_t len = load_u16be(in.data() + 2);
    if (len < kTdsHeader || len > TlsTerminator::kMaxPacket) return SIZE_MAX;
    return in.size() < len ? 0 : len;
}

/// Size of the TLS record at the front of `in`: 0 while incomplete, SIZE_MAX when its header
/// is not a TLS record's (content type 20..24, major version 3).
std::size_t record_size(Bytes in) {
    if (in.size() >= 2 && (in[0] < 20 || in[0] > 24 || in[1] != 3)) return SIZE_MAX;
    if (in.size() < kTlsHeader) return 0;
    const std::size_t len = load_u16be(in.data() + 3);
    if (len > kMaxRecordBody) return SIZE_MAX;
    return in.size() < kTlsHeader + len ? 0 : kTlsHeader + len;
}

std::string hex_fingerprint(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1) return "";
    std::string out;
    static const char* digits = "0123456789ABCDEF";
    for (unsigned i = 0; i < n; ++i) {
        if (i) out += ':';
        out += digits[md[i] >> 4];
        out += digits[md[i] & 15];
    }
    return out;
}

/// A self-signed certificate for the upstreams' names (RSA 2048: every TDS client takes it).
bool make_self_signed(SSL_CTX* ctx, const std::vector<std::string>& names, std::string& err) {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    X509* cert = X509_new();
    bool ok = key && cert;
    if (ok) {
        std::array<unsigned char, 16> serial{};
        RAND_bytes(serial.data(), static_cast<int>(serial.size()));
        serial[0] &= 0x7f;  // positive
        BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
        ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
        BN_free(bn);
    }
    const std::string cn = names.empty() ? std::string("hopscope proxy") : names.front();
    if (ok) {
        X509_set_version(cert, 2);
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600);
        X509_set_pubkey(cert, key);
        X509_NAME* name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("hopscope proxy"), -1, -1,
                                   0);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
        X509_set_issuer_name(cert, name);
        std::string san;
        for (const auto& n : names) {
            if (!san.empty()) san += ',';
            san += (is_ip_literal(n) ? "IP:" : "DNS:") + n;
        }
        if (!san.empty()) {
            X509V3_CTX v3;
            X509V3_set_ctx_nodb(&v3);
            X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
            X509_EXTENSION* ext =
                X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
            ok = ext != nullptr && X509_add_ext(cert, ext, -1) == 1;
            X509_EXTENSION_free(ext);
        }
    }
    ok = ok && X509_sign(cert, key, EVP_sha256()) > 0 && SSL_CTX_use_certificate(ctx, cert) == 1 &&
         SSL_CTX_use_PrivateKey(ctx, key) == 1;
    if (!ok) err = "cannot make a self-signed certificate: " + ssl_errors();
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok;
}

/// The read side of a leg's TLS session. OpenSSL reads the records straight from the bytes being
/// fed (the caller's buffer); only what it leaves unread (a partial record) is copied, and read
/// first the next time. A memory BIO would copy every byte in, and zero the buffer it grows.
struct Source {
    std::vector<std::uint8_t> own;  ///< left over from earlier feeds
    std::size_t own_pos = 0;
    Bytes view;  ///< the current feed: valid until settle()
    [[nodiscard]] std::size_t pending() const { return own.size() - own_pos + view.size(); }
    std::size_t read(std::uint8_t* out, std::size_t len) {
        const std::size_t n = std::min(len, own.size() - own_pos);
        if (n > 0) std::memcpy(out, own.data() + own_pos, n);
        own_pos += n;
        if (own_pos == own.size()) {
            own.clear();
            own_pos = 0;
        }
        const std::size_t k = std::min(len - n, view.size());
        if (k > 0) std::memcpy(out + n, view.data(), k);
        view = view.subspan(k);
        return n + k;
    }
    /// Keeps what is unread of the current feed before its bytes go away.
    void settle() {
        if (view.empty()) return;
        if (own_pos > 0) {
            own.erase(own.begin(), own.begin() + static_cast<std::ptrdiff_t>(own_pos));
            own_pos = 0;
        }
        own.insert(own.end(), view.begin(), view.end());
        view = {};
    }
};

int source_read(BIO* b, char* out, int len) {
    BIO_clear_retry_flags(b);
    auto* src = static_cast<Source*>(BIO_get_data(b));
    const std::size_t n = src && len > 0 ? src->read(reinterpret_cast<std::uint8_t*>(out),
                                                     static_cast<std::size_t>(len))
                                         : 0;
    if (n == 0) {
        BIO_set_retry_read(b);  // "want more", not the end of the stream
        return -1;
    }
    return static_cast<int>(n);
}

int source_write(BIO*, const char*, int) {
    return -1;
}

long source_ctrl(BIO* b, int cmd, long, void*) {
    const auto* src = static_cast<const Source*>(BIO_get_data(b));
    switch (cmd) {
        case BIO_CTRL_PENDING:
            return src ? static_cast<long>(src->pending()) : 0;
        case BIO_CTRL_FLUSH:
            return 1;
        default:
            return 0;
    }
}

int source_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

/// A BIO type of this file's: its read, write and control functions (both kinds need no state of
/// their own beyond the data pointer, so create only marks them initialised).
BIO_METHOD* make_method(const char* name, int (*read)(BIO*, char*, int),
                        int (*write)(BIO*, const char*, int),
                        long (*ctrl)(BIO*, int, long, void*)) {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, name);
    BIO_meth_set_read(m, read);
    BIO_meth_set_write(m, write);
    BIO_meth_set_ctrl(m, ctrl);
    BIO_meth_set_create(m, source_create);
    return m;
}

BIO_METHOD* source_method() {
    static BIO_METHOD* method =
        make_method("hopscope TLS input", source_read, source_write, source_ctrl);
    return method;
}

/// Where a session's TLS output goes: straight into the connection's output queue (the bulk
/// path: records are written once, where they are sent from; a memory BIO wrote them into its
/// own growing buffer and they were copied out again), or kept aside (`staging`) while a TDS 7.x
/// handshake flight is made, to be cut into PRELOGIN packets.
struct Sink {
    std::vector<std::uint8_t>* direct = nullptr;
    std::vector<std::uint8_t> staged;
    bool staging = false;      ///< inside a TDS 7.x handshake step
    bool handshaking = false;  ///< inside a handshake step (what is written is not app data)
    bool pending = false;      ///< `direct` has bytes from `mark` on not yet shown to the observer
    bool pending_handshake = false;
    std::size_t mark = 0;
    void write(const std::uint8_t* p, std::size_t n) {
        if (staging || direct == nullptr) {
            staged.insert(staged.end(), p, p + n);
            return;
        }
        if (!pending) {
            mark = direct->size();
            pending = true;
            pending_handshake = handshaking;
        }
        direct->insert(direct->end(), p, p + n);
    }
};

int sink_write(BIO* b, const char* p, int len) {
    BIO_clear_retry_flags(b);
    auto* sink = static_cast<Sink*>(BIO_get_data(b));
    if (!sink || len < 0) return -1;
    sink->write(reinterpret_cast<const std::uint8_t*>(p), static_cast<std::size_t>(len));
    return len;
}

int sink_read(BIO*, char*, int) {
    return -1;
}

long sink_ctrl(BIO*, int cmd, long, void*) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

BIO_METHOD* sink_method() {
    static BIO_METHOD* method =
        make_method("hopscope TLS output", sink_read, sink_write, sink_ctrl);
    return method;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Contexts

struct TlsContexts::KeylogFile {
    int fd = -1;
    std::mutex mu;
    ~KeylogFile() {
        if (fd >= 0) ::close(fd);
    }
};

TlsContexts::~TlsContexts() {
    SSL_CTX_free(server_);
    SSL_CTX_free(client_);
}

void TlsContexts::write_keylog(const char* line) const {
    if (!keylog_) return;
    std::string text(line);
    text += '\n';
    std::lock_guard lock(keylog_->mu);
    // One write per line with O_APPEND: lines of several threads never interleave.
    const ssize_t n = ::write(keylog_->fd, text.data(), text.size());
    (void)n;
}

namespace {

void keylog_callback(const SSL* ssl, const char* line);
int servername_callback(SSL* ssl, int* alert, void* arg);
int alpn_callback(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                  const unsigned char* in, unsigned int inlen, void* arg);

}  // namespace

std::unique_ptr<TlsContexts> TlsContexts::make(const TlsOptions& o,
                                               const std::vector<std::string>& names,
                                               std::string& err) {
    std::unique_ptr<TlsContexts> c(new TlsContexts);
    ERR_clear_error();
    c->server_ = SSL_CTX_new(TLS_server_method());
    c->client_ = SSL_CTX_new(TLS_client_method());
    if (!c->server_ || !c->client_) {
        err = "OpenSSL: " + ssl_errors();
        return nullptr;
    }
    for (SSL_CTX* x : {c->server_, c->client_}) {
        SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
        // No renegotiation (a hostile peer's lever, and TDS never needs it); no session tickets:
        // a TLS 1.3 ticket after the tunnelled handshake would reach a TDS 7.x client that has
        // already gone back to reading TDS packets.
        SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
        SSL_CTX_set_keylog_callback(x, keylog_callback);
        SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    }
    SSL_CTX_set_num_tickets(c->server_, 0);
    SSL_CTX_set_tlsext_servername_callback(c->server_, servername_callback);
    SSL_CTX_set_alpn_select_cb(c->server_, alpn_callback, nullptr);

    if (o.cert_file.empty() != o.key_file.empty()) {
        err = "--tls-cert and --tls-key go together";
        return nullptr;
    }
    if (!o.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(c->server_, o.cert_file.c_str()) != 1) {
            err = "--tls-cert " + o.cert_file + ": " + ssl_errors();
            return nullptr;
        }
        if (SSL_CTX_use_PrivateKey_file(c->server_, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            err = "--tls-key " + o.key_file + ": " + ssl_errors();
            return nullptr;
        }
        if (SSL_CTX_check_private_key(c->server_) != 1) {
            err = "--tls-key " + o.key_file + " does not match --tls-cert " + o.cert_file;
            return nullptr;
        }
    } else {
        if (!make_self_signed(c->server_, names, err)) return nullptr;
        c->self_signed_ = true;
    }
    if (X509* cert = SSL_CTX_get0_certificate(c->server_)) {
        c->fingerprint_ = hex_fingerprint(cert);
        char buf[512];
        X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
        c->subject_ = buf;
    }

    c->verify_ = o.upstream_verify || !o.upstream_ca.empty();
    if (!o.upstream_ca.empty()) {
        if (SSL_CTX_load_verify_locations(c->client_, o.upstream_ca.c_str(), nullptr) != 1) {
            err = "--upstream-ca " + o.upstream_ca + ": " + ssl_errors();
            return nullptr;
        }
    } else if (c->verify_) {
        SSL_CTX_set_default_verify_paths(c->client_);
    }
    SSL_CTX_set_verify(c->client_, c->verify_ ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);

    if (!o.keylog_file.empty()) {
        auto k = std::make_unique<KeylogFile>();
        // Session secrets: readable by the owner only.
        k->fd = ::open(o.keylog_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (k->fd < 0) {
            err = "--tls-keylog " + o.keylog_file + ": " + std::strerror(errno);
            return nullptr;
        }
        c->keylog_ = std::move(k);
    }
    return c;
}

// ---------------------------------------------------------------------------------------------
// The terminator

const char* to_string(TlsTerminator::Mode m) {
    switch (m) {
        case TlsTerminator::Mode::Undecided:
            return "undecided";
        case TlsTerminator::Mode::Passthrough:
            return "pass-through";
        case TlsTerminator::Mode::LoginOnly:
            return "login-only";
        case TlsTerminator::Mode::Full:
            return "full";
        case TlsTerminator::Mode::Strict:
            return "strict";
    }
    return "?";
}

struct TlsTerminator::Impl {
    explicit Impl(TlsTerminator& owner) : t(owner) {}
    ~Impl() {
        SSL_free(legs[0].ssl);
        SSL_free(legs[1].ssl);
    }

    /// One TLS session: [0] the upstream leg (proxy = client), [1] the client leg (proxy =
    /// server). `in` holds what its peer sent that is not consumed yet.
    struct Leg {
        SSL* ssl = nullptr;
        BIO* rbio = nullptr;  ///< owned by ssl
        BIO* wbio = nullptr;  ///< owned by ssl
        bool started = false;
        bool done = false;  ///< handshake finished
        Source src;         ///< what rbio reads
        Sink sink;          ///< where wbio writes
        // What is not consumed yet: the caller's bytes themselves while a feeding call runs on
        // them (`ext`: the bulk of a connection is read in place, no copy), else `in`, which
        // keeps a remainder (a partial packet or record) between calls.
        std::vector<std::uint8_t> in;
        Bytes ext;
        bool use_ext = false;
        std::size_t pos = 0;
        [[nodiscard]] Bytes avail() const {
            return use_ext ? ext.subspan(pos) : Bytes(in.data() + pos, in.size() - pos);
        }
        [[nodiscard]] bool empty() const { return avail().empty(); }
        void take(Bytes b) {
            if (pos == in.size()) {
                in.clear();
                pos = 0;
                ext = b;
                use_ext = true;
                return;
            }
            if (pos > 0 && pos >= in.size() / 2) {
                in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(pos));
                pos = 0;
            }
            in.insert(in.end(), b.begin(), b.end());
        }
        /// After a feeding call: what is left of the caller's bytes is kept.
        void keep_rest() {
            if (!use_ext) return;
            const Bytes rest = ext.subspan(pos);
            in.assign(rest.begin(), rest.end());
            pos = 0;
            ext = {};
            use_ext = false;
        }
        void clear() {
            in.clear();
            ext = {};
            use_ext = false;
            pos = 0;
        }
        /// For this leg's peer, waiting for this leg's handshake: {encrypt?, bytes}.
        std::vector<std::pair<bool, std::vector<std::uint8_t>>> held;
        std::size_t held_bytes = 0;
    };

    TlsTerminator& t;
    Leg legs[2];
    Leg& up() { return legs[0]; }
    Leg& cl() { return legs[1]; }

    // PRELOGIN exchange
    std::vector<std::uint8_t> prelogin[2];  ///< payload of the client's [0] / server's [1]
    bool prelogin_done[2] = {false, false};
    // Client-leg offsets (what the analysis sees): consumed from the client, sent to it.
    std::uint64_t client_in = 0;
    std::uint64_t client_out = 0;
    // Login-only: the first TDS packet of the client's plaintext, then clear TDS.
    std::uint8_t walk_header[kTdsHeader]{};
    std::size_t walk_have = 0;
    std::size_t walk_left = 0;
    bool c2s_clear = false;
    bool s2c_clear = false;
    /// While a client-leg handshake step runs: what it sends the client, told to the observer
    /// after the client's bytes that caused it.
    bool hold_down = false;
    std::vector<std::vector<std::uint8_t>> held_down;
    std::string sni;
    bool hello_seen = false;  ///< the client's ClientHello was read (servername callback)
    bool tds8_alpn = false;
    static constexpr std::size_t kMaxRecordPlaintext = 1u << 14;  ///< TLS's largest record
    std::array<std::uint8_t, kMaxRecordPlaintext + 256> plain{};

    bool fail(std::string why) {
        if (t.error_.empty()) t.error_ = std::move(why);
        return false;
    }
    [[nodiscard]] bool failed() const { return !t.error_.empty(); }
    [[nodiscard]] bool wrapped() const {
        return t.mode_ == Mode::LoginOnly || t.mode_ == Mode::Full;
    }

    // -- output ----------------------------------------------------------------------------

    void emit_up(Bytes b) {
        if (b.empty()) return;
        observe_direct(0);  // records written before these bytes are seen first
        t.out_[0].insert(t.out_[0].end(), b.begin(), b.end());
        observe(0, b, true);
    }
    void emit_down(Bytes b, bool clear) {
        if (b.empty()) return;
        observe_direct(1);
        t.out_[1].insert(t.out_[1].end(), b.begin(), b.end());
        observe(1, b, clear);
    }
    void emit(int leg, Bytes b, bool clear) { leg == 0 ? emit_up(b) : emit_down(b, clear); }
    /// What emit() tells the observer, for bytes already in the output queue.
    void observe(int leg, Bytes b, bool clear) {
        if (leg == 0) {
            t.obs_.upstream_leg(Direction::ClientToServer, b);
            return;
        }
        if (hold_down)
            held_down.emplace_back(b.begin(), b.end());
        else
            t.obs_.client_leg(Direction::ServerToClient, b, clear);
        client_out += b.size();
    }

    /// Shows the observer the records a leg's TLS wrote straight into the output queue.
    void observe_direct(int leg) {
        Sink& sink = legs[leg].sink;
        if (!sink.pending) return;
        sink.pending = false;
        const auto& out = t.out_[leg == 0 ? 0 : 1];
        observe(leg, Bytes(out.data() + sink.mark, out.size() - sink.mark), sink.pending_handshake);
    }

    /// What a leg's TLS wrote: tunnelled in PRELOGIN packets during a TDS 7.x handshake (the
    /// flight is one message: end-of-message on its last packet), raw otherwise.
    void flush(int leg, bool handshake) {
        observe_direct(leg);
        Sink& sink = legs[leg].sink;
        if (sink.staged.empty()) return;
        std::vector<std::uint8_t> buf;
        buf.swap(sink.staged);
        if (!(handshake && wrapped())) {
            emit(leg, Bytes(buf), handshake);
            return;
        }
        constexpr std::size_t body = kWrapPacket - kTdsHeader;
        std::vector<std::uint8_t> pkts;
        pkts.reserve(buf.size() + (buf.size() / body + 1) * kTdsHeader);
        std::uint8_t packet_id = 1;
        for (std::size_t at = 0; at < buf.size(); at += body) {
            const std::size_t k = std::min(body, buf.size() - at);
            const std::size_t len = k + kTdsHeader;
            const std::uint8_t hdr[kTdsHeader] = {
                static_cast<std::uint8_t>(tds::PacketType::Prelogin),
                static_cast<std::uint8_t>(at + k == buf.size() ? kStatusEom : 0),
                static_cast<std::uint8_t>(len >> 8),
                static_cast<std::uint8_t>(len & 0xff),
                0,
                0,
                packet_id++,
                0};
            pkts.insert(pkts.end(), hdr, hdr + kTdsHeader);
            pkts.insert(pkts.end(), buf.begin() + static_cast<std::ptrdiff_t>(at),
                        buf.begin() + static_cast<std::ptrdiff_t>(at + k));
        }
        emit(leg, Bytes(pkts), true);
    }

    /// Application bytes for `leg`'s peer: encrypted with that leg's session, or clear (TDS
    /// after a login-only TLS). Held until the leg's handshake is done, in order.
    bool send(int leg, Bytes b, bool encrypt) {
        Leg& L = legs[leg];
        if (!L.done || !L.held.empty()) {
            if (L.held_bytes + b.size() > kMaxHeld)
                return fail(leg == 0 ? "the client sent more than 1 MiB before the upstream's "
                                       "TLS handshake finished"
                                     : "the upstream sent more than 1 MiB before the client's "
                                       "TLS handshake finished");
            L.held.emplace_back(encrypt, std::vector<std::uint8_t>(b.begin(), b.end()));
            L.held_bytes += b.size();
            return true;
        }
        return write_now(leg, b, encrypt);
    }

    bool write_now(int leg, Bytes b, bool encrypt) {
        if (!encrypt) {
            emit(leg, b, true);
            return true;
        }
        Leg& L = legs[leg];
        std::size_t at = 0;
        while (at < b.size()) {
            ERR_clear_error();
            const int n =
                SSL_write(L.ssl, b.data() + at,
                          static_cast<int>(std::min<std::size_t>(b.size() - at, 1 << 30)));
            if (n <= 0)
                return fail(std::string("TLS write to the ") + leg_name(leg) +
                            " failed: " + ssl_errors());
            at += static_cast<std::size_t>(n);
        }
        flush(leg, false);
        // Records of application data: opaque on the client leg.
        return true;
    }

    bool release_held(int leg) {
        Leg& L = legs[leg];
        auto held = std::move(L.held);
        L.held.clear();
        L.held_bytes = 0;
        for (auto& [encrypt, bytes] : held)
            if (!write_now(leg, Bytes(bytes), encrypt)) return false;
        return true;
    }

    static const char* leg_name(int leg) { return leg == 0 ? "upstream" : "client"; }

    // -- handshakes ------------------------------------------------------------------------

    bool new_session(int leg) {
        Leg& L = legs[leg];
        L.ssl = SSL_new(leg == 0 ? t.ctx_.client() : t.ctx_.server());
        L.rbio = BIO_new(source_method());
        L.wbio = BIO_new(sink_method());
        if (!L.ssl || !L.rbio || !L.wbio) {
            BIO_free(L.rbio);
            BIO_free(L.wbio);
            return fail("out of memory for a TLS session");
        }
        BIO_set_data(L.rbio, &L.src);
        L.sink.direct = &t.out_[leg == 0 ? 0 : 1];
        BIO_set_data(L.wbio, &L.sink);
        SSL_set_bio(L.ssl, L.rbio, L.wbio);
        // TLS 1.2 at most inside TDS 7.x, as SQL Server does: a TLS 1.3 client's Finished ends
        // its handshake, and clients (FreeTDS with GnuTLS) then send it raw, not in a PRELOGIN
        // packet. TDS 8.0 strict negotiates 1.3 as usual.
        if (wrapped()) SSL_set_max_proto_version(L.ssl, TLS1_2_VERSION);
        SSL_set_ex_data(L.ssl, ex_index(), this);
        L.started = true;
        return true;
    }

    bool start_client_leg() {
        if (!new_session(1)) return false;
        SSL_set_accept_state(cl().ssl);
        return true;
    }

    bool start_upstream_leg() {
        if (!new_session(0)) return false;
        SSL* s = up().ssl;
        SSL_set_connect_state(s);
        // Name the upstream as the client named the server (its SNI), else by the route's
        // host name; verify the certificate against that name, or against the address.
        const std::string name = !sni.empty() ? sni : t.upstream_name_;
        if (!name.empty() && !is_ip_literal(name)) SSL_set_tlsext_host_name(s, name.c_str());
        if (t.ctx_.verify_upstream() && !name.empty()) {
            X509_VERIFY_PARAM* p = SSL_get0_param(s);
            if (is_ip_literal(name))
                X509_VERIFY_PARAM_set1_ip_asc(p, name.c_str());
            else
                SSL_set1_host(s, name.c_str());
        }
        if (t.mode_ == Mode::Strict) {
            static const unsigned char alpn[] = {7, 't', 'd', 's', '/', '8', '.', '0'};
            SSL_set_alpn_protos(s, alpn, sizeof alpn);
        }
        return step(0);
    }

    /// One handshake step of a leg after new input; true while nothing failed.
    bool step(int leg) {
        Leg& L = legs[leg];
        ERR_clear_error();
        L.sink.staging = wrapped();  // a TDS 7.x flight is cut into PRELOGIN packets
        L.sink.handshaking = true;
        const int rc = SSL_do_handshake(L.ssl);
        L.sink.staging = L.sink.handshaking = false;
        const int e = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(L.ssl, rc);
        std::string why = e == SSL_ERROR_NONE || e == SSL_ERROR_WANT_READ ? "" : ssl_errors();
        flush(leg, true);  // an alert too
        // The client's hello has been read: the upstream leg can start, with its SNI.
        if (leg == 1 && !up().started && hello_seen && !start_upstream_leg()) return false;
        if (e == SSL_ERROR_WANT_READ) return true;
        if (e != SSL_ERROR_NONE) {
            if (leg == 0) {
                const long v = SSL_get_verify_result(L.ssl);
                if (v != X509_V_OK)
                    return fail(std::string("the upstream's certificate is not trusted: ") +
                                X509_verify_cert_error_string(v) +
                                " (--upstream-ca, --upstream-verify)");
            }
            return fail(std::string("TLS handshake with the ") + leg_name(leg) + " failed: " + why);
        }
        L.done = true;
        return release_held(leg);
    }

    // -- application data ------------------------------------------------------------------

    /// Reads what a leg's TLS decrypted and passes it to the other leg. The server's plaintext
    /// (full encryption) is gathered up to a full record's 16 KiB across the records at hand
    /// before it is encrypted for the client: a server writing one record per 4 KiB TDS packet
    /// then costs the client and the proxy a quarter of the records (what haproxy's buffer
    /// does too).
    bool drain_plaintext(int leg, std::uint64_t record_offset) {
        Leg& L = legs[leg];
        std::size_t gathered = 0;  // server plaintext in `plain` not yet sent to the client
        auto send_gathered = [&] {
            const Bytes p(plain.data(), gathered);
            gathered = 0;
            return p.empty() || send(1, p, true);
        };
        const bool gather = leg == 0 && t.mode_ != Mode::LoginOnly;
        for (;;) {
            ERR_clear_error();
            // Without gathering `gathered` stays 0.
            const std::size_t room = gather ? kMaxRecordPlaintext - gathered : plain.size();
            const int n = SSL_read(L.ssl, plain.data() + gathered, static_cast<int>(room));
            if (n > 0) {
                const Bytes p(plain.data() + gathered, static_cast<std::size_t>(n));
                if (leg == 1) {
                    t.obs_.plaintext(Direction::ClientToServer, p, record_offset);
                    const bool was_clear = c2s_clear;
                    if (t.mode_ == Mode::LoginOnly) walk_login_packet(p);
                    if (!send(0, p, !was_clear)) return false;
                } else if (t.mode_ == Mode::LoginOnly) {
                    // A server that speaks TLS after a login-only handshake (a TLS 1.3 ticket
                    // carries no data): nothing for the client, which has left TLS.
                } else {
                    // Nothing goes to the client before the gathered bytes: they start at
                    // client_out.
                    t.obs_.plaintext(Direction::ServerToClient, p, client_out);
                    gathered += p.size();
                    if (gathered == kMaxRecordPlaintext && !send_gathered()) return false;
                }
                continue;
            }
            if (!send_gathered()) return false;
            const int e = SSL_get_error(L.ssl, n);
            flush(leg, false);  // a key update or an alert the read produced
            if (e == SSL_ERROR_WANT_READ) return true;
            if (e == SSL_ERROR_ZERO_RETURN) {
                // close_notify: say the same on the other leg.
                Leg& other = legs[1 - leg];
                if (other.done) {
                    SSL_shutdown(other.ssl);
                    flush(1 - leg, false);
                }
                return true;
            }
            return fail(std::string("TLS from the ") + leg_name(leg) + ": " + ssl_errors());
        }
    }

    /// Login-only: TLS protects the first TDS packet the client sends; after it, clear TDS.
    void walk_login_packet(Bytes p) {
        std::size_t at = 0;
        while (at < p.size() && !c2s_clear) {
            if (walk_have < kTdsHeader) {
                const std::size_t k = std::min(kTdsHeader - walk_have, p.size() - at);
                std::memcpy(walk_header + walk_have, p.data() + at, k);
                walk_have += k;
                at += k;
                if (walk_have < kTdsHeader) return;
                const std::size_t len = load_u16be(walk_header + 2);
                walk_left = len > kTdsHeader ? len - kTdsHeader : 0;
            }
            const std::size_t k = std::min(walk_left, p.size() - at);
            walk_left -= k;
            at += k;
            if (walk_left == 0) c2s_clear = true;
        }
    }

    // -- input -----------------------------------------------------------------------------

    bool go_passthrough() {
        t.mode_ = Mode::Passthrough;
        // What each side sent that was not passed on yet goes on unchanged, in order.
        const Bytes c = cl().avail();
        if (!c.empty()) {
            t.obs_.client_leg(Direction::ClientToServer, c, true);
            client_in += c.size();
            emit_up(c);
        }
        emit_down(up().avail(), true);
        for (Leg& L : legs)
            L.clear();
        return true;
    }

    /// Consumes `n` bytes of the client's input, telling the observer what they were.
    void consume_client(std::size_t n, bool clear) {
        t.obs_.client_leg(Direction::ClientToServer, cl().avail().first(n), clear);
        client_in += n;
        cl().pos += n;
    }
    void consume_upstream(std::size_t n) { up().pos += n; }

    /// A whole PRELOGIN message of one side: its ENCRYPTION byte, or nullopt.
    std::optional<std::uint8_t> encryption_of(int side) {
        tds::Prelogin p;
        if (!tds::parse_prelogin(Bytes(prelogin[side]), p).ok()) return std::nullopt;
        return p.encryption;
    }

    /// One PRELOGIN packet of the clear exchange, passed on unchanged. False: not a packet.
    bool prelogin_packet(int side, Bytes in, std::size_t& n, bool& eom) {
        n = packet_size(in);
        if (n == SIZE_MAX || (n > 0 && prelogin[side].size() + n > 65536)) return false;
        if (n == 0) return true;
        prelogin[side].insert(prelogin[side].end(), in.begin() + kTdsHeader, in.begin() + n);
        eom = (in[1] & kStatusEom) != 0;
        return true;
    }

    /// The next handshake unit of a leg's peer: a PRELOGIN-wrapped packet (TDS 7.x) or a TLS
    /// record (8.0). Feeds its TLS bytes to the leg; n = 0 while incomplete.
    bool handshake_unit(int leg, Bytes in, std::size_t& n) {
        std::size_t skip = 0;
        if (wrapped()) {
            n = packet_size(in);
            // SQL Server wraps its flights in PRELOGIN packets; a server answering in
            // TABULAR_RESULT packets is taken as well.
            if (n == SIZE_MAX || (in[0] != static_cast<std::uint8_t>(tds::PacketType::Prelogin) &&
                                  (leg == 1 || in[0] != 0x04)))
                return fail(std::string("the ") + leg_name(leg) +
                            " sent something other than a PRELOGIN packet during the TLS "
                            "handshake");
            skip = kTdsHeader;
        } else {
            n = record_size(in);
            if (n == SIZE_MAX)
                return fail(std::string("the ") + leg_name(leg) +
                            " sent something other than TLS during the TLS handshake");
        }
        if (n == 0) return true;
        return feed_tls(leg, in.subspan(skip, n - skip));
    }

    /// Hands TLS bytes to a leg's session; they stay the caller's until settle().
    bool feed_tls(int leg, Bytes b) {
        Source& src = legs[leg].src;
        src.settle();  // an earlier feed of this call, not wholly read
        src.view = b;
        return true;
    }
    /// Before the fed bytes go away (the end of a feeding call): what is unread is copied.
    void settle() {
        for (Leg& L : legs)
            L.src.settle();
    }

    bool client_input() {
        Leg& L = cl();
        while (!L.empty() && !failed()) {
            const Bytes in = L.avail();
            if (t.mode_ == Mode::Passthrough) return go_passthrough();
            if (t.mode_ == Mode::Undecided) {
                if (prelogin_done[0]) {
                    // The handshake waits for the server's answer.
                    if (in.size() > kMaxHeld)
                        return fail(
                            "the client sent too much before the server answered its "
                            "PRELOGIN");
                    return true;
                }
                if (client_in == 0 && in[0] == 0x16) {  // TDS 8.0: TLS first
                    t.mode_ = Mode::Strict;
                    if (!start_client_leg()) return false;
                    continue;
                }
                std::size_t n = 0;
                bool eom = false;
                if (in[0] != static_cast<std::uint8_t>(tds::PacketType::Prelogin) ||
                    !prelogin_packet(0, in, n, eom))
                    return go_passthrough();  // not a PRELOGIN: nothing to terminate
                if (n == 0) return true;
                consume_client(n, true);  // the client leg first: the tap opens on it
                emit_up(in.first(n));
                if (eom) prelogin_done[0] = true;
                continue;
            }
            if (!L.done) {
                std::size_t n = 0;
                if (!handshake_unit(1, in, n)) return false;
                if (n == 0) return true;
                // The step first, with what it sends the client held back from the observer: the
                // session secret it may log (TLS 1.2: on the client's key exchange) then reaches
                // a recording before the client's bytes that need it, and those before the reply.
                hold_down = true;
                const bool stepped = step(1);
                hold_down = false;
                consume_client(n, true);
                for (auto& b : held_down)
                    t.obs_.client_leg(Direction::ServerToClient, Bytes(b), true);
                held_down.clear();
                if (!stepped) return false;
                continue;
            }
            if (t.mode_ == Mode::LoginOnly && c2s_clear) {
                // After the protected LOGIN7 packet: clear TDS, passed on as it is.
                consume_client(in.size(), true);
                return send(0, in, false);  // `in` stays valid: nothing is appended meanwhile
            }
            const std::size_t n = record_size(in);
            if (n == SIZE_MAX) return fail("the client sent something other than a TLS record");
            if (n == 0) return true;
            if (!feed_tls(1, in.first(n))) return false;
            const std::uint64_t at = client_in;
            consume_client(n, false);
            if (!drain_plaintext(1, at)) return false;
        }
        return !failed();
    }

    bool upstream_input() {
        Leg& L = up();
        while (!L.empty() && !failed()) {
            const Bytes in = L.avail();
            if (t.mode_ == Mode::Passthrough) return go_passthrough();
            if (t.mode_ == Mode::Undecided) {
                // A server that speaks before the client's PRELOGIN is complete: not TDS as the
                // terminator knows it.
                std::size_t n = 0;
                bool eom = false;
                if (!prelogin_done[0] || !prelogin_packet(1, in, n, eom)) return go_passthrough();
                if (n == 0) return true;
                emit_down(in.first(n), true);
                consume_upstream(n);
                if (!eom) continue;
                prelogin_done[1] = true;
                const auto c = encryption_of(0);
                const auto s = encryption_of(1);
                const auto neg =
                    c && s ? tds::negotiate_encryption(*c, *s) : tds::EncryptionNegotiation{};
                if (neg.peer_should_abort || (neg.mode != tds::EncryptionMode::LoginOnly &&
                                              neg.mode != tds::EncryptionMode::Full))
                    return go_passthrough();
                t.mode_ = neg.mode == tds::EncryptionMode::LoginOnly ? Mode::LoginOnly : Mode::Full;
                if (!start_client_leg()) return false;
                // The client's handshake may already be waiting.
                if (!client_input()) return false;
                continue;
            }
            if (!L.started) {
                if (in.size() > kMaxHeld)
                    return fail("the upstream sent too much before the TLS handshake began");
                return true;
            }
            if (!L.done) {
                std::size_t n = 0;
                if (!handshake_unit(0, in, n)) return false;
                if (n == 0) return true;
                consume_upstream(n);
                if (!step(0)) return false;
                continue;
            }
            if (t.mode_ == Mode::LoginOnly) {
                // After a login-only handshake the server answers in clear TDS. A TLS record
                // before its first clear byte (a TLS 1.3 ticket) is read and dropped.
                const std::size_t n = s2c_clear ? SIZE_MAX : record_size(in);
                if (n != SIZE_MAX) {
                    if (n == 0) return true;
                    if (!feed_tls(0, in.first(n))) return false;
                    consume_upstream(n);
                    if (!drain_plaintext(0, 0)) return false;
                    continue;
                }
                s2c_clear = true;
                consume_upstream(in.size());
                return send(1, in, false);
            }
            // Every complete record at hand at once, so that their plaintext is re-encrypted
            // for the client in full records (drain_plaintext).
            std::size_t n = 0;
            for (;;) {
                const std::size_t r = record_size(in.subspan(n));
                if (r == SIZE_MAX && n == 0)
                    return fail("the upstream sent something other than a TLS record");
                if (r == 0 || r == SIZE_MAX) break;  // a bad one fails on the next turn
                n += r;
            }
            if (n == 0) return true;
            if (!feed_tls(0, in.first(n))) return false;
            consume_upstream(n);
            if (!drain_plaintext(0, 0)) return false;
        }
        return !failed();
    }

    void on_secret(const char* line) {
        t.ctx_.write_keylog(line);
        t.obs_.secret(line);
    }
};

namespace {

TlsTerminator::Impl* impl_of(const SSL* ssl) {
    return static_cast<TlsTerminator::Impl*>(SSL_get_ex_data(ssl, ex_index()));
}

void keylog_callback(const SSL* ssl, const char* line) {
    if (auto* im = impl_of(ssl)) im->on_secret(line);
}

int servername_callback(SSL* ssl, int*, void*) {
    auto* im = impl_of(ssl);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (im) {
        // OpenSSL calls this for every ClientHello, with or without SNI.
        im->hello_seen = true;
        if (name) im->sni = name;
    }
    return SSL_TLSEXT_ERR_OK;
}

int alpn_callback(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                  const unsigned char* in, unsigned int inlen, void*) {
    // Select tds/8.0 when the client offers it (TDS 8.0 strict); otherwise no ALPN.
    for (unsigned i = 0; i < inlen;) {
        const unsigned len = in[i];
        if (i + 1 + len > inlen) break;
        if (len == 7 && std::memcmp(in + i + 1, "tds/8.0", 7) == 0) {
            *out = in + i + 1;
            *outlen = 7;
            if (auto* im = impl_of(ssl)) im->tds8_alpn = true;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

TlsTerminator::TlsTerminator(const TlsContexts& contexts, std::string upstream_name,
                             Observer& observer)
    : ctx_(contexts),
      upstream_name_(std::move(upstream_name)),
      obs_(observer),
      impl_(std::make_unique<Impl>(*this)) {}

TlsTerminator::~TlsTerminator() = default;

bool TlsTerminator::from_client(Bytes in) {
    if (!error_.empty()) return false;
    if (mode_ == Mode::Passthrough) {
        obs_.client_leg(Direction::ClientToServer, in, true);
        impl_->client_in += in.size();
        impl_->emit_up(in);
        return true;
    }
    impl_->cl().take(in);
    const bool ok = impl_->client_input();
    impl_->settle();
    impl_->cl().keep_rest();
    return ok;
}

bool TlsTerminator::from_upstream(Bytes in) {
    if (!error_.empty()) return false;
    obs_.upstream_leg(Direction::ServerToClient, in);
    if (mode_ == Mode::Passthrough) {
        impl_->emit_down(in, true);
        return true;
    }
    impl_->up().take(in);
    const bool ok = impl_->upstream_input();
    impl_->settle();
    impl_->up().keep_rest();
    return ok;
}

void TlsTerminator::client_closed() {
    // Bytes that never became a unit are passed on as they are (a truncated PRELOGIN).
    if (mode_ == Mode::Undecided && !impl_->prelogin_done[0]) impl_->go_passthrough();
}

void TlsTerminator::upstream_closed() {
    if (mode_ == Mode::Undecided) impl_->go_passthrough();
}

namespace {
std::string describe(SSL* s) {
    if (!s || !SSL_is_init_finished(s)) return "";
    return std::string(SSL_get_version(s)) + " " + SSL_get_cipher_name(s);
}
}  // namespace

std::string TlsTerminator::client_session() const {
    return describe(impl_->legs[1].ssl);
}
std::string TlsTerminator::upstream_session() const {
    return describe(impl_->legs[0].ssl);
}

std::size_t TlsTerminator::buffered() const {
    std::size_t n = out_[0].size() + out_[1].size();
    for (const auto& L : impl_->legs)
        n += L.avail().size() + L.held_bytes + L.sink.staged.size() +
             (L.rbio ? BIO_ctrl_pending(L.rbio) : 0);
    return n + impl_->prelogin[0].size() + impl_->prelogin[1].size();
}

}  // namespace hopscope::proxy
