#include "hopscope/auth/kerberos_keys.hpp"

#include <openssl/crypto.h>

#include <algorithm>

namespace hopscope::auth {
namespace {

using Kind = KeytabProblem::Kind;

std::string key_name(const KeyName& who) {
    std::string s = who.name.str() + "@" + std::string(who.realm);
    if (who.kvno) s += " kvno " + std::to_string(*who.kvno);
    return s + " etype " + std::to_string(who.etype);
}

/// The problem for a failed decryption of `what` (a key name, or "the session key").
KeytabProblem key_problem(KeyStatus s, const std::string& step, const std::string& what) {
    switch (s) {
        case KeyStatus::NoKey:
            return {Kind::NoKey, step, "no key for " + what};
        case KeyStatus::OtherKvno:
            return {Kind::NoKey, step,
                    "no key for " + what + " (the keytab has this key with another kvno)"};
        case KeyStatus::Unsupported:
            return {Kind::Unsupported, step, "enctype not supported: " + what};
        case KeyStatus::WrongKey:
        case KeyStatus::Ok:
            break;
    }
    return {Kind::WrongKey, step, "decrypt failed (wrong key?) with " + what};
}

KeytabProblem malformed(const std::string& step, const char* what, const DecodeResult& r) {
    return {Kind::Malformed, step,
            std::string("malformed ") + what + ": " + r.error().detail + " at offset " +
                std::to_string(r.error().offset)};
}

/// Parses a decrypted plaintext with `parse`; false, with the problem set, when it does not.
template <typename T>
bool parse_step(Bytes plain, DecodeResult (*parse)(Bytes, T&), T& out, const char* step,
                const char* what, std::optional<KeytabProblem>& problem) {
    if (auto r = parse(plain, out); !r.ok()) {
        problem = malformed(step, what, r);
        return false;
    }
    return true;
}

bool is_tgt(const PrincipalName& n) {
    return n.count != 0 && n.first() == "krbtgt";
}

/// Decrypts with a learned key; `fallback` (if any) is tried when `key` fails its check.
KeyStatus decrypt_learned(const KerberosKeys& keys, const KeyBlock& key, const KeyBlock* fallback,
                          std::int32_t usage, Bytes cipher, SecretBuffer& plain) {
    KeyStatus s = keys.decrypt(key, usage, cipher, plain);
    if (s == KeyStatus::WrongKey && fallback) s = keys.decrypt(*fallback, usage, cipher, plain);
    return s;
}

/// The KRB-CRED of a GSS checksum with DELEG: which tickets, and what its enc-part says.
void read_krb_cred(Bytes deleg, const KerberosKeys& keys, const KeyBlock& session,
                   const std::optional<KeyBlock>& subkey, ApReqFacts& f) {
    f.krb_cred = true;
    KerberosMessage m;
    if (auto r = parse_kerberos(deleg, m); !r.ok()) {
        f.problem = malformed("krb-cred", "KRB-CRED", r);
        return;
    }
    const auto* cred = std::get_if<KrbCred>(&m.body);
    if (!cred) {
        f.problem = KeytabProblem{Kind::Malformed, "krb-cred",
                                  std::string("the delegation field holds a ") +
                                      krb_msg_type_name(m.msg_type) + ", not a KRB-CRED"};
        return;
    }
    f.krb_cred_tickets = cred->tickets.size();
    std::size_t tgt_index = cred->tickets.size();
    for (std::size_t i = 0; i < cred->tickets.size() && tgt_index == cred->tickets.size(); ++i)
        if (is_tgt(cred->tickets[i].sname)) tgt_index = i;
    f.forwarded_tgt = tgt_index < cred->tickets.size();

    SecretBuffer plain;
    Bytes clear = cred->enc_part.cipher;  // enctype 0: EncKrbCredPart in clear (RFC 4120 §5.8.1)
    if (cred->enc_part.etype != 0) {
        const KeyStatus s =
            decrypt_learned(keys, session, subkey ? &*subkey : nullptr, key_usage::KrbCredEncPart,
                            cred->enc_part.cipher, plain);
        if (s != KeyStatus::Ok) {
            f.problem = key_problem(s, "krb-cred", "the session key");
            return;
        }
        clear = plain.bytes();
    }
    EncKrbCredPart part;
    if (!parse_step(clear, parse_enc_krb_cred_part, part, "krb-cred", "EncKrbCredPart", f.problem))
        return;
    f.krb_cred_decrypted = true;
    if (!f.forwarded_tgt) return;
    // KrbCredInfo i describes ticket i; a KrbCredInfo naming krbtgt/ is taken if the order differs.
    const KrbCredInfo* info =
        tgt_index < part.ticket_info.size() ? &part.ticket_info[tgt_index] : nullptr;
    if (!info || (info->sname && !is_tgt(*info->sname))) {
        info = nullptr;
        for (const auto& k : part.ticket_info)
            if (k.sname && is_tgt(*k.sname)) info = &k;
    }
    if (!info) return;
    f.forwarded_tgt_flags = info->flags;
    if (info->pname) f.forwarded_tgt_client = info->pname->str() + "@" + info->prealm.value_or("");
}

/// A ticket with its service's long-term key; `session` gets its session key when it opened.
TicketFacts read_ticket(const TicketInfo& t, const KerberosKeys& keys, const std::string& step,
                        KeyBlock* session) {
    TicketFacts f;
    const KeyName who{t.sname, t.realm, t.enc_part.kvno, t.enc_part.etype};
    SecretBuffer plain;
    f.status = keys.decrypt(who, key_usage::Ticket, t.enc_part.cipher, plain);
    if (f.status != KeyStatus::Ok) {
        f.problem = key_problem(f.status, step, key_name(who));
        return f;
    }
    EncTicketPart ticket;
    if (!parse_step(plain.bytes(), parse_enc_ticket_part, ticket, step.c_str(), "EncTicketPart",
                    f.problem)) {
        return f;
    }
    f.decrypted = true;
    f.flags = ticket.flags;
    f.client = ticket.cname.str() + "@" + ticket.crealm;
    f.authtime = ticket.authtime;
    f.session_etype = ticket.key.etype();
    if (const auto& pac = ticket.authorization.pac) {
        f.has_pac = true;
        f.s4u2proxy_target = pac->s4u2proxy_target;
        f.s4u_transited = pac->s4u_transited;
    }
    if (session) *session = ticket.key;
    return f;
}

ApReqFacts decrypt(const ApReq& ap, const KerberosKeys& keys, std::int32_t authenticator_usage,
                   KeyBlock& session, std::optional<KeyBlock>& subkey) {
    ApReqFacts f;
    // 1. The ticket, with the service's long-term key.
    f.ticket = read_ticket(ap.ticket, keys, "ticket", &session);
    if (!f.ticket.decrypted) {
        f.problem = std::exchange(f.ticket.problem, std::nullopt);
        return f;
    }
    SecretBuffer plain;

    // 2. The authenticator, with the ticket's session key.
    if (const KeyStatus s =
            keys.decrypt(session, authenticator_usage, ap.authenticator.cipher, plain);
        s != KeyStatus::Ok) {
        f.problem = key_problem(s, "authenticator", "the ticket's session key");
        return f;
    }
    Authenticator auth;
    if (!parse_step(plain.bytes(), parse_authenticator, auth, "authenticator", "Authenticator",
                    f.problem)) {
        return f;
    }
    f.authenticator_decrypted = true;
    subkey = auth.subkey;
    if (!auth.cksum) return f;
    f.checksum_type = auth.cksum->type;
    if (!auth.cksum->gss) return f;
    const GssChecksum& g = *auth.cksum->gss;
    f.gss_flags = g.flags;
    f.deleg = (g.flags & gss_flag::Deleg) != 0;
    f.channel_binding = g.channel_binding;
    f.dlg_opt = g.dlg_opt;

    // 3. The KRB-CRED carried with DELEG (its view is into `plain`, still alive here).
    if (f.deleg && !g.deleg.empty()) read_krb_cred(g.deleg, keys, session, subkey, f);
    return f;
}

std::string problem_suffix(const std::optional<KeytabProblem>& p) {
    if (!p) return {};
    std::string s = " ";  // not " " + string: gcc 12's -Wrestrict misfires on it at -O3
    s += to_string(*p);
    return s;
}

}  // namespace

SecretBuffer::~SecretBuffer() {
    OPENSSL_cleanse(b_.data(), b_.size());
}

std::uint8_t* SecretBuffer::reset(std::size_t n) {
    OPENSSL_cleanse(b_.data(), b_.size());
    if (n > b_.size()) {
        std::vector<std::uint8_t> bigger(n);
        b_.swap(bigger);
        OPENSSL_cleanse(bigger.data(), bigger.size());
    }
    n_ = n;
    return b_.data();
}

void SecretBuffer::resize_down(std::size_t n) {
    n_ = std::min(n, n_);
}

const char* to_string(KeyStatus s) {
    switch (s) {
        case KeyStatus::Ok:
            return "ok";
        case KeyStatus::NoKey:
            return "no key";
        case KeyStatus::OtherKvno:
            return "other kvno";
        case KeyStatus::WrongKey:
            return "wrong key";
        case KeyStatus::Unsupported:
            return "unsupported enctype";
    }
    return "?";
}

const char* to_string(KeytabProblem::Kind k) {
    switch (k) {
        case Kind::NoKey:
            return "no-key";
        case Kind::WrongKey:
            return "wrong-key";
        case Kind::Unsupported:
            return "unsupported";
        case Kind::Malformed:
            return "malformed";
    }
    return "?";
}

std::string to_string(const KeytabProblem& p) {
    return "keytab: " + p.detail + " (" + p.step + ")";
}

TicketFacts decrypt_ticket(const TicketInfo& ticket, const KerberosKeys& keys,
                           const std::string& step) {
    return read_ticket(ticket, keys, step, nullptr);
}

ApReqFacts decrypt_ap_req(const ApReq& ap, const KerberosKeys& keys) {
    KeyBlock session;
    std::optional<KeyBlock> subkey;
    return decrypt(ap, keys, key_usage::ApReqAuthenticator, session, subkey);
}

ApReqFacts decrypt_tgs_ap_req(const ApReq& ap, const KerberosKeys& keys, KeyBlock& session,
                              std::optional<KeyBlock>& subkey) {
    return decrypt(ap, keys, key_usage::TgsReqAuthenticator, session, subkey);
}

KdcRepFacts decrypt_kdc_rep(const KdcRep& rep, const KerberosKeys& keys, const KeyBlock* session,
                            const KeyBlock* subkey) {
    KdcRepFacts f;
    const bool fast = std::any_of(rep.padata.begin(), rep.padata.end(),
                                  [](const PaData& p) { return p.type == pa_type::FxFast; });
    if (fast) {
        f.problem = KeytabProblem{Kind::Unsupported, "kdc-reply",
                                  "FAST-armored reply (RFC 6113): its enc-part is under a "
                                  "strengthened reply key, not decrypted"};
        return f;
    }
    SecretBuffer plain;
    KeyStatus s = KeyStatus::NoKey;
    std::string what;
    if (rep.msg_type == krb_msg::AsRep) {
        const KeyName who{rep.cname, rep.crealm, rep.enc_part.kvno, rep.enc_part.etype};
        what = key_name(who);
        s = keys.decrypt(who, key_usage::AsRepEncPart, rep.enc_part.cipher, plain);
    } else if (subkey || session) {
        // RFC 4120 §5.4.2: usage 9 with the authenticator's subkey, else 8 with the session key;
        // the other pairings are tried too (the integrity check picks the right one).
        what = "the TGS-REQ's session key or subkey";
        const std::pair<const KeyBlock*, std::int32_t> tries[] = {
            {subkey, key_usage::TgsRepEncPartSubkey},
            {session, key_usage::TgsRepEncPartSessionKey},
            {subkey, key_usage::TgsRepEncPartSessionKey},
            {session, key_usage::TgsRepEncPartSubkey}};
        s = KeyStatus::WrongKey;
        for (const auto& [k, usage] : tries) {
            if (!k || s == KeyStatus::Ok) continue;
            s = keys.decrypt(*k, usage, rep.enc_part.cipher, plain);
        }
    } else {
        what = "the session key of the TGS-REQ (its TGT was not decrypted)";
    }
    if (s != KeyStatus::Ok) {
        f.problem = key_problem(s, "kdc-reply", what);
        return f;
    }
    EncKdcRepPart part;
    if (!parse_step(plain.bytes(), parse_enc_kdc_rep_part, part, "kdc-reply", "EncKDCRepPart",
                    f.problem)) {
        return f;
    }
    f.decrypted = true;
    f.flags = part.flags;
    f.server = part.sname.str() + "@" + part.srealm;
    f.authtime = part.authtime;
    f.session_etype = part.key.etype();
    return f;
}

namespace {
/// "ticket client=... flags=... authtime=... session-key=..." of a decrypted ticket.
std::string ticket_text(const TicketFacts& f, bool transited) {
    std::string s = "ticket client=" + f.client + " flags=" + ticket_flags_to_string(f.flags) +
                    " authtime=" + f.authtime + " session-key=" + etype_name(f.session_etype);
    if (f.has_pac) s += " pac";
    if (f.s4u2proxy_target) s += " s4u2proxy-target=" + *f.s4u2proxy_target;
    if (transited)
        for (const auto& t : f.s4u_transited)
            s += " transited=" + t;
    return s;
}
}  // namespace

std::string to_string(const ApReqFacts& f) {
    std::string s;
    if (f.ticket.decrypted) s += ticket_text(f.ticket, false);
    if (f.authenticator_decrypted) {
        s += " authenticator";
        if (f.checksum_type) s += " cksum=" + std::to_string(*f.checksum_type);
        if (f.gss_flags) s += " gss-flags=" + gss_flags_to_string(*f.gss_flags);
    }
    if (f.krb_cred) {
        s += " krb-cred tickets=" + std::to_string(f.krb_cred_tickets);
        if (f.forwarded_tgt) s += " forwarded-tgt";
        if (f.forwarded_tgt_flags) s += " flags=" + ticket_flags_to_string(*f.forwarded_tgt_flags);
        if (!f.forwarded_tgt_client.empty()) s += " client=" + f.forwarded_tgt_client;
    }
    s += problem_suffix(f.problem);
    if (!s.empty() && s[0] == ' ') s.erase(0, 1);
    return s;
}

std::string to_string(const TicketFacts& f) {
    std::string s;
    if (f.decrypted) s = ticket_text(f, true);
    s += problem_suffix(f.problem);
    if (!s.empty() && s[0] == ' ') s.erase(0, 1);
    return s;
}

std::string to_string(const KdcRepFacts& f) {
    std::string s;
    if (f.decrypted) {
        s = "kdc-reply server=" + f.server + " flags=" + ticket_flags_to_string(f.flags) +
            " authtime=" + f.authtime + " session-key=" + etype_name(f.session_etype);
    }
    s += problem_suffix(f.problem);
    if (!s.empty() && s[0] == ' ') s.erase(0, 1);
    return s;
}

}  // namespace hopscope::auth
