#include "hopscope/captures/keytab.hpp"

#include <krb5.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <unordered_map>

namespace hopscope::captures {
namespace {

struct Entry {
    auth::PrincipalName principal;  ///< its components, as a parsed name holds them
    std::string realm;
    std::uint32_t kvno = 0;
    auth::KeyBlock key;

    [[nodiscard]] std::string name() const { return principal.at(realm); }
};

std::string text(const krb5_data& d) {
    return d.length ? std::string(d.data, d.length) : std::string();
}

bool iequal(const std::string& a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

/// Same principal: exactly, or ignoring case (Windows names are case-insensitive). The same
/// number of components, the same first one and the same text joined with '/': the same
/// components (for names of more than two, unless a component holds a '/').
bool same_principal(const Entry& e, const auth::KeyName& who) {
    const auth::PrincipalName& n = who.name;
    return e.principal.count == n.count && e.principal.first_len == n.first_len &&
           iequal(e.principal.text, n.text) && iequal(e.realm, who.realm);
}

bool same_kvno(std::uint32_t entry, std::uint32_t wanted) {
    return entry == wanted || (entry < 256 && (wanted & 0xffu) == entry);
}

}  // namespace

struct Keytab::Impl {
    /// What the search of the keytab for a principal it does not name found (Keytab::decrypt).
    struct Alias {
        std::int64_t entry = -1;        ///< the entry whose key opened its last ticket, or -1
        std::uint64_t failures = 0;     ///< tickets of it that key did not open since
        std::uint64_t next_search = 0;  ///< search every key at this many failures
    };
    krb5_context ctx = nullptr;
    std::vector<Entry> entries;
    /// A krb5 context is not for concurrent use; decryption is rare (once per login) and short.
    mutable std::mutex mu;
    /// Per lower-case "name@realm etype kvno" (bounded: forgotten at kMaxAliases).
    mutable std::unordered_map<std::string, Alias> aliases;
    static constexpr std::size_t kMaxAliases = 1 << 16;
    mutable std::uint64_t decryptions = 0;  ///< krb5_c_decrypt calls (tests)

    Alias& alias(const auth::KeyName& who) const {
        std::string k = who.name.at(who.realm);
        (k += ' ') += std::to_string(who.etype);
        k += who.kvno ? ' ' + std::to_string(*who.kvno) : std::string(" any");
        for (char& ch : k)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (aliases.size() >= kMaxAliases && aliases.find(k) == aliases.end()) aliases.clear();
        return aliases[k];
    }

    ~Impl() {
        if (ctx) krb5_free_context(ctx);
    }

    std::string message(krb5_error_code code) const {
        const char* m = krb5_get_error_message(ctx, code);
        std::string s = m ? m : ("krb5 error " + std::to_string(code));
        krb5_free_error_message(ctx, m);
        return s;
    }

    /// krb5_c_decrypt with one key: Ok, WrongKey (integrity) or Unsupported.
    auth::KeyStatus run(const auth::KeyBlock& key, std::int32_t usage, Bytes cipher,
                        auth::SecretBuffer& plain) const {
        if (!krb5_c_valid_enctype(key.etype())) return auth::KeyStatus::Unsupported;
        ++decryptions;
        auth::SecretBuffer out;
        krb5_keyblock kb{};
        kb.enctype = key.etype();
        kb.length = static_cast<unsigned int>(key.bytes().size());
        // krb5 takes a non-const pointer but does not write through it.
        kb.contents = const_cast<krb5_octet*>(key.bytes().data());
        krb5_enc_data in{};
        in.enctype = key.etype();
        in.ciphertext.length = static_cast<unsigned int>(cipher.size());
        in.ciphertext.data = const_cast<char*>(reinterpret_cast<const char*>(cipher.data()));
        krb5_data result{};
        result.length = static_cast<unsigned int>(cipher.size());
        result.data = reinterpret_cast<char*>(out.reset(cipher.size()));
        const krb5_error_code code =
            krb5_c_decrypt(ctx, &kb, static_cast<krb5_keyusage>(usage), nullptr, &in, &result);
        if (code == KRB5_BAD_ENCTYPE) return auth::KeyStatus::Unsupported;
        if (code != 0) return auth::KeyStatus::WrongKey;
        out.resize_down(result.length);
        const Bytes b = out.bytes();
        std::copy(b.begin(), b.end(), plain.reset(b.size()));
        return auth::KeyStatus::Ok;
    }
};

Keytab::Keytab(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Keytab::~Keytab() = default;

std::unique_ptr<Keytab> Keytab::load(const std::string& path, std::string& error) {
    auto impl = std::make_unique<Impl>();
    if (const krb5_error_code code = krb5_init_secure_context(&impl->ctx); code != 0) {
        impl->ctx = nullptr;
        error = path + ": cannot start krb5 (error " + std::to_string(code) + ")";
        return nullptr;
    }
    const std::string name = path.find(':') == std::string::npos ? "FILE:" + path : path;
    krb5_keytab kt = nullptr;
    if (const krb5_error_code code = krb5_kt_resolve(impl->ctx, name.c_str(), &kt); code != 0) {
        error = path + ": " + impl->message(code);
        return nullptr;
    }
    krb5_kt_cursor cursor{};
    krb5_error_code code = krb5_kt_start_seq_get(impl->ctx, kt, &cursor);
    if (code == 0) {
        krb5_keytab_entry e{};
        while ((code = krb5_kt_next_entry(impl->ctx, kt, &e, &cursor)) == 0) {
            Entry entry;
            entry.realm = text(e.principal->realm);
            for (krb5_int32 i = 0; i < e.principal->length; ++i)
                entry.principal.add(text(e.principal->data[i]));
            entry.kvno = e.vno;
            const bool fits = entry.key.assign(e.key.enctype, Bytes(e.key.contents, e.key.length));
            krb5_free_keytab_entry_contents(impl->ctx, &e);
            if (fits) impl->entries.push_back(std::move(entry));
        }
        krb5_kt_end_seq_get(impl->ctx, kt, &cursor);
        if (code == KRB5_KT_END) code = 0;
    }
    krb5_kt_close(impl->ctx, kt);
    if (code != 0) {
        error = path + ": " + impl->message(code);
        return nullptr;
    }
    if (impl->entries.empty()) {
        error = path + ": no keys in the keytab";
        return nullptr;
    }
    // Newest kvno first, so that a ticket without a kvno meets the current key first.
    std::stable_sort(impl->entries.begin(), impl->entries.end(),
                     [](const Entry& a, const Entry& b) { return a.kvno > b.kvno; });
    return std::unique_ptr<Keytab>(new Keytab(std::move(impl)));
}

auth::KeyStatus Keytab::decrypt(const auth::KeyName& who, std::int32_t usage, Bytes cipher,
                                auth::SecretBuffer& plain) const {
    std::lock_guard lock(impl_->mu);
    bool principal_known = false, principal_tried = false;
    auto kvno_ok = [&](const Entry& e) { return !who.kvno || same_kvno(e.kvno, *who.kvno); };
    for (const Entry& e : impl_->entries) {
        if (e.key.etype() != who.etype || !same_principal(e, who)) continue;
        principal_known = true;
        if (!kvno_ok(e)) continue;
        principal_tried = true;
        const auth::KeyStatus s = impl_->run(e.key, usage, cipher, plain);
        if (s != auth::KeyStatus::WrongKey) return s;
    }
    if (principal_tried) return auth::KeyStatus::WrongKey;
    if (principal_known) return auth::KeyStatus::OtherKvno;
    // No entry for that principal: the same key may be under the account's other names (a
    // ticket names the SPN, a keytab often the account). Trying every key of the enctype costs
    // one decryption per key, for every ticket of a service the keytab does not hold (on port 88
    // every reply ticket to another service): 0.35 s -> 17.5 s on 40 MB of replicated lab
    // captures with a 660-key keytab added. So the key that opened a ticket of that name,
    // enctype and kvno is tried first next time, and the tickets it does not open search every
    // key only at the 1st, 2nd, 4th, 8th... such ticket since the last success: a name no key
    // opens costs a logarithmic number of searches, and a damaged or forged ticket cannot hide
    // a name for good.
    Impl::Alias& memo = impl_->alias(who);
    if (memo.entry >= 0 && impl_->run(impl_->entries[static_cast<std::size_t>(memo.entry)].key,
                                      usage, cipher, plain) == auth::KeyStatus::Ok)
        return auth::KeyStatus::Ok;
    ++memo.failures;
    if (memo.failures < memo.next_search) return auth::KeyStatus::NoKey;
    memo.next_search = memo.failures * 2;
    for (std::size_t i = 0; i < impl_->entries.size(); ++i) {
        const Entry& e = impl_->entries[i];
        if (e.key.etype() != who.etype || !kvno_ok(e) || static_cast<std::int64_t>(i) == memo.entry)
            continue;
        if (impl_->run(e.key, usage, cipher, plain) == auth::KeyStatus::Ok) {
            memo = Impl::Alias{static_cast<std::int64_t>(i), 0, 0};
            return auth::KeyStatus::Ok;
        }
    }
    return auth::KeyStatus::NoKey;
}

std::uint64_t Keytab::decryptions() const {
    std::lock_guard lock(impl_->mu);
    return impl_->decryptions;
}

auth::KeyStatus Keytab::decrypt(const auth::KeyBlock& key, std::int32_t usage, Bytes cipher,
                                auth::SecretBuffer& plain) const {
    std::lock_guard lock(impl_->mu);
    return impl_->run(key, usage, cipher, plain);
}

std::size_t Keytab::size() const {
    return impl_->entries.size();
}

std::vector<std::string> Keytab::describe() const {
    std::vector<std::string> out;
    for (const Entry& e : impl_->entries) {
        out.push_back(e.name() + " kvno " + std::to_string(e.kvno) + " etype " +
                      std::to_string(e.key.etype()));
    }
    return out;
}

}  // namespace hopscope::captures
