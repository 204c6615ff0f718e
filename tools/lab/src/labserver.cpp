// hopscope-labserver: a small SQL Server stand-in for the lab.
//
// It answers PRELOGIN (with or without TLS), accepts LOGIN7 with SQL logins or integrated security
// through real GSSAPI (MIT Kerberos, gss-ntlmssp), answers a tiny SQL subset and, as a middle
// server, runs linked-server queries against another lab server as the caller: with the caller's
// delegated Kerberos credential when there is one, otherwise with an anonymous NTLM login - which
// is what a real SQL Server does when delegation is broken. Every login is written as one JSON line
// to the events file; passwords and security tokens are never written anywhere (lengths only).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "conn.hpp"
#include "gss.hpp"
#include "hopscope/auth/kerberos.hpp"
#include "hopscope/auth/sspi.hpp"
#include "wire.hpp"

namespace hopscope::lab {
namespace {

struct Linked {
    std::string host, port;
};

struct Config {
    std::string listen_addr = "0.0.0.0", listen_port = "1433";
    std::string name = "SQLA";
    std::string encryption = "notsup";  // notsup | off | on
    std::string cert, key;
    std::string keylog_file;  // NSS key log of every TLS session (for hopscope and tshark)
    std::string logins_file, events_file, run_dir = ".";
    std::map<std::string, Linked> linked;  // upper-case name -> target
    bool sql2000 = false;
    bool interop_fixes = true;
    bool constrained = false;  // accept with an initiating credential: S4U2Proxy to linked servers
    // with --constrained: after an NTLM login, a ticket to this service in the caller's name
    // (S4U2Self), used for S4U2Proxy to linked servers (protocol transition)
    bool protocol_transition = false;
    // --extended-protection allowed: as SQL Server's "Allowed", a Windows login over TLS that
    // carries channel bindings must carry those of this connection's TLS session (otherwise
    // GSS_S_BAD_BINDINGS, answered with 18452); one without them is accepted. ("Required", which
    // refuses unbound logins too, is not offered.)
    bool extended_protection = false;
};

Config g_cfg;
std::map<std::string, std::string> g_logins;  // SQL logins: name -> password (lab-only table)
int g_conn_id = 0;

void log_line(const std::string& s) {
    std::fprintf(stderr, "[%s #%d] %s\n", g_cfg.name.c_str(), g_conn_id, s.c_str());
}

void emit(nlohmann::json ev) {
    ev["server"] = g_cfg.name;
    ev["conn"] = g_conn_id;
    if (g_cfg.events_file.empty()) return;
    // peer-controlled text (names, GSSAPI messages quoting ticket fields) may not be UTF-8
    const std::string line =
        ev.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (FILE* f = std::fopen(g_cfg.events_file.c_str(), "a")) {
        std::fwrite(line.data(), 1, line.size(), f);  // one write per line: atomic with O_APPEND
        std::fclose(f);
    }
}

std::string sql_name_from_principal(const std::string& p) {
    // alice@LAB.TEST -> LAB\alice (the NetBIOS-style name SQL Server shows); LAB\alice stays.
    const auto at = p.find('@');
    if (at == std::string::npos) return p;
    std::string realm = p.substr(at + 1);
    realm = realm.substr(0, realm.find('.'));
    return realm + "\\" + p.substr(0, at);
}

std::string trim(std::string s) {
    while (!s.empty() && (std::isspace(static_cast<unsigned char>(s.back())) || s.back() == ';'))
        s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
        ++i;
    return s.substr(i);
}

std::string upper(std::string s) {
    for (auto& c : s)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return s;
}

// ---------------------------------------------------------------- the linked-server client
struct LinkedResult {
    bool ok = false;
    std::string auth;  // kerberos | ntlm-anonymous
    std::vector<ServerMessage> errors;
    std::string failure;            // local reason (connect, GSS) when there is no remote message
    std::string s4u2proxy_failure;  // constrained delegation refused before the NTLM fallback
    std::vector<std::string> columns;
    std::vector<std::vector<std::string>> rows;
};

LinkedResult run_linked(const std::string& name, const Linked& target,
                        const std::string& deleg_ccache, gss_cred_id_t proxy,
                        const std::string& sql) {
    LinkedResult res;
    std::string why;
    // from the address this server listens on, as a separate host would (A also hosts SQLC)
    const int fd = tcp_connect(target.host, target.port, &why,
                               g_cfg.listen_addr == "0.0.0.0" ? "" : g_cfg.listen_addr);
    if (fd < 0) {
        res.failure = why;
        return res;
    }
    Conn c(fd);
    if (!c.send(pkt::Prelogin, build_prelogin_request(enc::NotSup)) || !c.read_message(&why)) {
        res.failure = "PRELOGIN to " + name + " failed: " + why;
        return res;
    }
    Login7Request lr;
    lr.host = g_cfg.name;
    lr.app = "Microsoft SQL Server";
    lr.server = target.host;
    std::unique_ptr<Initiator> krb;
    const std::string spn = "MSSQLSvc/" + target.host + ":" + target.port;
    if (!deleg_ccache.empty()) {
        res.auth = "kerberos";
        krb = std::make_unique<Initiator>();
        if (!krb->start(deleg_ccache, spn, &why) ||
            krb->step(nullptr, lr.sspi, &why) == GssState::Failed) {
            res.failure = "Kerberos to " + spn + " failed: " + why;
            return res;
        }
    } else if (proxy != GSS_C_NO_CREDENTIAL) {
        // constrained delegation: the KDC is asked for a ticket to B on the caller's behalf
        res.auth = "kerberos-s4u2proxy";
        krb = std::make_unique<Initiator>();
        if (!krb->start(proxy, spn, &why) ||
            krb->step(nullptr, lr.sspi, &why) == GssState::Failed) {
            // as Negotiate does on Windows: no Kerberos ticket, so NTLM - with no user to offer
            res.s4u2proxy_failure = why;
            krb.reset();
            res.auth = "ntlm-anonymous";
            lr.sspi = ntlm::build_anonymous_negotiate();
        }
    } else {
        res.auth = "ntlm-anonymous";
        lr.sspi = ntlm::build_anonymous_negotiate();
    }
    if (!c.send(pkt::Login7, build_login7(lr))) {
        res.failure = "LOGIN7 to " + name + " failed";
        return res;
    }
    for (int leg = 0; leg < 4; ++leg) {
        auto m = c.read_message(&why);
        if (!m) {
            res.failure = "login to " + name + ": " + why;
            return res;
        }
        auto reply = parse_reply(m->payload, &why);
        if (!reply) {
            res.failure = "login reply from " + name + ": " + why;
            return res;
        }
        if (!reply->errors.empty() || reply->done_error) {
            res.errors = reply->errors;
            return res;
        }
        if (reply->loginack) {
            if (krb && reply->sspi) {  // mutual authentication: check the AP-REP
                Buffer none;
                if (krb->step(&*reply->sspi, none, &why) == GssState::Failed) {
                    res.failure = "AP-REP from " + name + " rejected: " + why;
                    return res;
                }
            }
            break;
        }
        if (!reply->sspi) {
            res.failure = "login reply from " + name + " without SSPI or LOGINACK";
            return res;
        }
        Buffer next;
        if (krb) {
            if (krb->step(&*reply->sspi, next, &why) == GssState::Failed) {
                res.failure = "Kerberos continuation failed: " + why;
                return res;
            }
        } else {
            next = ntlm::build_anonymous_authenticate(g_cfg.name);
        }
        if (!c.send(pkt::Sspi, next)) {
            res.failure = "SSPI to " + name + " failed";
            return res;
        }
    }
    if (!c.send(pkt::SqlBatch, build_sql_batch(sql))) {
        res.failure = "query to " + name + " failed";
        return res;
    }
    auto m = c.read_message(&why);
    if (!m) {
        res.failure = "query to " + name + ": " + why;
        return res;
    }
    auto reply = parse_reply(m->payload, &why);
    if (!reply) {
        res.failure = "query reply from " + name + ": " + why;
        return res;
    }
    res.errors = reply->errors;
    res.columns = reply->columns;
    res.rows = reply->rows;
    res.ok = reply->errors.empty();
    return res;
}

// ---------------------------------------------------------------- one client session
class Session {
  public:
    Session(int fd, std::string peer, SSL_CTX* tls)
        : conn_(fd), peer_(std::move(peer)), tls_(tls) {}
    void run();

  private:
    bool login();
    bool sql_login(const Login7Info& li);
    bool integrated_login(const Login7Info& li);
    void linked_attempt(const std::string& name, const Linked& target, const std::string& inner,
                        gss_cred_id_t proxy, LinkedResult& r);
    void login_ok(const Login7Info& li, const Buffer* final_token);
    void login_failed(std::uint32_t number, const std::string& text, const Buffer* token);
    void batch(const std::string& sql);
    void linked_query(const std::string& name, const std::string& inner);

    Conn conn_;
    std::string peer_;
    SSL_CTX* tls_;
    bool old_tds_ = false;
    std::string user_;
    std::string deleg_ccache_;
    Acceptor acc_;  // lives as long as the session: it owns an S4U2Proxy credential
    nlohmann::json ev_;
};

void Session::run() {
    ev_ = {{"event", "login"}, {"peer", peer_}};
    if (login()) {
        std::string why;
        while (auto m = conn_.read_message(&why)) {
            if (m->type != pkt::SqlBatch) continue;  // attention, RPC: not used by the lab
            auto sql = parse_sql_batch(m->payload, old_tds_);
            if (!sql) break;
            batch(trim(*sql));
        }
    }
}

bool Session::login() {
    std::string why;
    std::string tls_mode = "none";
    if (g_cfg.encryption == "strict") {  // TDS 8.0: TLS before any TDS byte
        if (!tls_ || !conn_.tls_accept_direct(tls_, &why)) {
            log_line("TLS: " + why);
            ev_["outcome"] = "incomplete";
            ev_["incomplete_reason"] = "tls-failed";
            emit(ev_);
            return false;
        }
        conn_.tls_full();
        tls_mode = "strict";
        ev_["alpn"] = conn_.alpn();
    }
    auto pre = conn_.read_message(&why);
    if (!pre || pre->type != pkt::Prelogin) {
        log_line("no PRELOGIN: " + why);
        return false;
    }
    auto pi = parse_prelogin(pre->payload);
    const std::uint8_t client_enc = pi && pi->encryption ? *pi->encryption : enc::NotSup;
    std::uint8_t answer = enc::NotSup;
    if (tls_mode == "strict")
        answer = enc::On;  // already inside TLS; the value is not acted on in TDS 8.0
    else if (g_cfg.encryption == "off")
        answer = (client_enc == enc::On || client_enc == enc::Req) ? enc::On : enc::Off;
    else if (g_cfg.encryption == "on")
        answer = client_enc == enc::NotSup ? enc::Req : enc::On;
    ev_["client_encryption"] = client_enc;
    ev_["server_encryption"] = answer;
    conn_.send(pkt::Reply, build_prelogin_response(answer));
    if (tls_mode == "strict") {
        // nothing to negotiate
    } else if (client_enc != enc::NotSup && answer != enc::NotSup) {
        tls_mode = (answer == enc::Off && client_enc == enc::Off) ? "login-only" : "full";
        if (!tls_ || !conn_.tls_accept(tls_, &why)) {
            log_line("TLS: " + why);
            ev_["outcome"] = "incomplete";
            ev_["incomplete_reason"] = "tls-failed";
            emit(ev_);
            return false;
        }
        if (tls_mode == "full")
            conn_.tls_full();
        else
            conn_.tls_login_only();
    } else if (client_enc != enc::NotSup && answer == enc::NotSup &&
               (client_enc == enc::On || client_enc == enc::Req)) {
        tls_mode = "refused";
    }
    ev_["encryption"] = tls_mode;

    auto msg = conn_.read_message(&why);
    if (!msg || msg->type != pkt::Login7) {
        log_line("no LOGIN7: " +
                 (msg ? std::string("packet type ") + std::to_string(msg->type) : why));
        ev_["outcome"] = "incomplete";
        ev_["incomplete_reason"] = "no-login7";
        emit(ev_);
        return false;
    }
    SecretString password;
    auto li = parse_login7(msg->payload, &password, &why);
    if (!li) {
        log_line("bad LOGIN7: " + why);
        ev_["outcome"] = "incomplete";
        ev_["incomplete_reason"] = "bad-login7";
        emit(ev_);
        return false;
    }
    old_tds_ = li->old_tds();
    ev_["tds_version"] = li->tds_version;
    ev_["app"] = li->app;
    ev_["library"] = li->library;
    ev_["host"] = li->host;
    if (li->packet_size >= 512 && li->packet_size <= 32767) conn_.set_packet_size(li->packet_size);
    if (li->integrated && !li->sspi.empty()) {
        password.wipe();
        return integrated_login(*li);
    }
    // SQL authentication: the password exists only in `password` and is compared, never logged.
    ev_["auth"] = "sql";
    ev_["user"] = li->user;
    ev_["password_chars"] = li->password_chars;
    auto it = g_logins.find(li->user);
    const bool ok = it != g_logins.end() && password.equals(it->second);
    password.wipe();
    if (!ok) {
        if (g_cfg.sql2000 && li->user.empty()) {
            login_failed(18452,
                         "Login failed for user '(null)'. Reason: Not associated with a trusted "
                         "SQL Server connection.",
                         nullptr);
        } else {
            login_failed(18456, "Login failed for user '" + li->user + "'.", nullptr);
        }
        return false;
    }
    user_ = li->user;
    login_ok(*li, nullptr);
    return true;
}

// An NTLM AUTHENTICATE (raw or in SPNEGO) without channel bindings (absent or all zero).
bool unbound_ntlm_authenticate(const Buffer& token) {
    const auth::SspiInfo info = auth::classify_sspi(Bytes(token.data(), token.size()));
    if (!info.ntlm || info.ntlm->type != 3) return false;
    const auto& a = std::get<auth::NtlmAuthenticate>(info.ntlm->msg);
    return !a.v2_av_pairs || a.v2_av_pairs->channel_bindings != auth::ChannelBindings::Present;
}

bool Session::integrated_login(const Login7Info& li) {
    Acceptor& acc = acc_;
    Buffer token = li.sspi;
    const auto kind = gssframe::classify(token);
    std::string fixes;
    ev_["sspi_len"] = token.size();
    ev_["sspi_kind"] = kind == gssframe::Kind::RawNtlm   ? "ntlm"
                       : kind == gssframe::Kind::RawKrb5 ? "krb5"
                       : kind == gssframe::Kind::Spnego  ? "spnego"
                                                         : "unknown";
    // what the first token says; replaced by the mechanism GSSAPI reports once it knows it
    ev_["auth"] = kind == gssframe::Kind::RawNtlm   ? "ntlm"
                  : kind == gssframe::Kind::RawKrb5 ? "kerberos"
                                                    : "spnego";
    if (g_cfg.interop_fixes) {
        if (kind == gssframe::Kind::RawNtlm) fixes += ntlm::fix_negotiate(token);
        if (kind == gssframe::Kind::Spnego) {
            if (auto w = gssframe::rewrap_spnego_bare_apreq(token)) {
                token = std::move(*w);
                fixes += "re-wrapped SPNEGO(bare AP-REQ) as a krb5 token; ";
            }
        }
    }
    if (g_cfg.constrained && (kind == gssframe::Kind::RawKrb5 || kind == gssframe::Kind::Spnego)) {
        std::string why;
        if (!acc.use_initiating_credential(&why)) log_line("constrained delegation: " + why);
    }
    std::optional<ntlm::AuthenticateInfo> auth3;
    const Buffer bindings = g_cfg.extended_protection ? conn_.channel_binding() : Buffer{};
    for (int leg = 0; leg < 6; ++leg) {
        // gss-ntlmssp refuses an AUTHENTICATE without MsvAvChannelBindings once it is given
        // bindings ("Required"); MIT accepts an AP-REQ whose checksum has none ("Allowed").
        const bool bind = !bindings.empty() && !unbound_ntlm_authenticate(token);
        AcceptResult r = acc.step(token, bind ? &bindings : nullptr);
        if (!r.mech.empty()) ev_["auth"] = r.mech;
        if (!fixes.empty()) ev_["interop_fixes"] = fixes;
        if (r.state == GssState::Failed) {
            log_line("accept failed: " + r.error);
            ev_["gss_error"] = r.error;
            if (r.mech.empty() || ev_["auth"] == "spnego") {
                // GSSAPI names no mechanism for a failed SPNEGO leg: the token does
                const auto m = auth::classify_sspi(Bytes(token.data(), token.size())).mechanism;
                if (m == auth::SspiMechanism::Ntlm) ev_["auth"] = "ntlm";
                if (m == auth::SspiMechanism::Kerberos) ev_["auth"] = "kerberos";
            }
            if (r.bad_bindings) {
                // SQL Server's answer to SEC_E_BAD_BINDINGS (its error log: 17806, SSPI
                // handshake failed)
                ev_["bad_bindings"] = true;
                login_failed(18452,
                             "Login failed. The login is from an untrusted domain and cannot be "
                             "used with Windows authentication.",
                             r.output.empty() ? nullptr : &r.output);
            } else if (auth3) {
                const std::string who =
                    auth3->domain.empty() ? auth3->user : auth3->domain + "\\" + auth3->user;
                ev_["user"] = who;
                login_failed(18456, "Login failed for user '" + who + "'.",
                             r.output.empty() ? nullptr : &r.output);
            } else if (g_cfg.sql2000) {
                login_failed(18452,
                             "Login failed for user '(null)'. Reason: Not associated with a "
                             "trusted SQL Server connection.",
                             r.output.empty() ? nullptr : &r.output);
            } else {
                login_failed(18452,
                             "Login failed. The login is from an untrusted domain and cannot be "
                             "used with Windows authentication.",
                             r.output.empty() ? nullptr : &r.output);
            }
            return false;
        }
        if (r.state == GssState::Complete) {
            user_ = sql_name_from_principal(r.initiator);
            ev_["principal"] = r.initiator;
            ev_["user"] = user_;
            ev_["delegation"] = r.delegated ? "yes" : "no";
            if (g_cfg.protocol_transition && r.mech == "ntlm") {
                // DOMAIN\user -> user (the default realm's principal): S4U2Self for the caller
                const std::string who = r.initiator.substr(r.initiator.find('\\') + 1);
                std::string why;
                if (acc.impersonate(who, &why)) {
                    ev_["s4u2self"] = true;
                } else {
                    log_line("protocol transition: " + why);
                    ev_["s4u2self_failure"] = why;
                }
            }
            if (acc.proxy_credential() != GSS_C_NO_CREDENTIAL) ev_["s4u2proxy_credential"] = true;
            if (r.delegated) {
                const std::string cc = "FILE:" + g_cfg.run_dir + "/deleg-" + g_cfg.name + "-" +
                                       std::to_string(getpid()) + ".ccache";
                std::string why;
                if (acc.store_delegated(cc, &why))
                    deleg_ccache_ = cc;
                else
                    log_line("storing the delegated credential failed: " + why);
            }
            login_ok(li, r.output.empty() ? nullptr : &r.output);
            return true;
        }
        // continue: send the server token, read the client's next one (0x11)
        TokenWriter tw(old_tds_);
        tw.sspi(r.output);
        if (!conn_.send(pkt::Reply, tw.bytes())) return false;
        std::string why;
        auto m = conn_.read_message(&why);
        if (!m || m->type != pkt::Sspi) {
            log_line("client left during SSPI: " + why);
            ev_["outcome"] = "incomplete";
            ev_["incomplete_reason"] = "client-aborted";
            emit(ev_);
            return false;
        }
        token = std::move(m->payload);
        if (ntlm::message_type(token) == 3) {
            auth3 = ntlm::parse_authenticate(token);
            if (auth3) {
                ev_["ntlm_nt_len"] = auth3->nt_len;
                ev_["ntlm_lm_len"] = auth3->lm_len;
                ev_["ntlm_version"] = auth3->ntlm_version;
                ev_["workstation"] = auth3->workstation;
            }
            if (auth3 && auth3->anonymous) {
                // gss-ntlmssp cannot accept anonymous logins; SQL Server maps them to ANONYMOUS
                // LOGON.
                ev_["auth"] = "ntlm";
                ev_["anonymous"] = true;
                ev_["user"] = "NT AUTHORITY\\ANONYMOUS LOGON";
                if (g_cfg.sql2000)
                    login_failed(18452,
                                 "Login failed for user '(null)'. Reason: Not associated with a "
                                 "trusted SQL Server connection.",
                                 nullptr);
                else
                    login_failed(18456, "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.",
                                 nullptr);
                return false;
            }
            if (g_cfg.interop_fixes) {
                fixes += ntlm::fix_authenticate(token);
                fixes += ntlm::fix_nt_length(token);
            }
        }
    }
    login_failed(18452,
                 "Login failed. The login is from an untrusted domain and cannot be used with "
                 "Windows authentication.",
                 nullptr);
    return false;
}

void Session::login_ok(const Login7Info& li, const Buffer* final_token) {
    TokenWriter tw(old_tds_);
    if (final_token) tw.sspi(*final_token);
    tw.env_string(1, "master", "master");
    tw.info(5701, 2, 0, "Changed database context to 'master'.", g_cfg.name);
    tw.env_collation();
    tw.env_string(2, "us_english", "");
    tw.info(5703, 1, 0, "Changed language setting to us_english.", g_cfg.name);
    std::uint32_t v = li.tds_version;
    if (v == 0x71000000) v = kTds71;
    if (v == 0x08000000) v = kTds74;
    tw.loginack(v);
    tw.env_string(4, std::to_string(conn_.packet_size()), "4096");
    tw.done(kDoneFinal, 0, 0);
    conn_.send(pkt::Reply, tw.bytes());
    ev_["outcome"] = "success";
    ev_["error"] = 0;
    if (!ev_.contains("anonymous")) ev_["anonymous"] = false;
    emit(ev_);
    log_line("login ok: " + user_);
}

void Session::login_failed(std::uint32_t number, const std::string& text, const Buffer* token) {
    TokenWriter tw(old_tds_);
    if (token) {
        tw.sspi(*token);  // e.g. the KRB-ERROR that GSSAPI produced for a rejected AP-REQ
        ev_["failure_token_len"] = token->size();
        const auto info = auth::classify_sspi(*token);
        if (info.kerberos) {
            if (const auto* e = std::get_if<auth::KrbError>(&info.kerberos->body))
                ev_["kerberos_error"] = e->error_code;
        }
    }
    tw.error(number, 1, 14, text, g_cfg.name);
    tw.done(kDoneError, 0, 0);
    conn_.send(pkt::Reply, tw.bytes());
    ev_["outcome"] = "failure";
    ev_["error"] = number;
    ev_["message"] = text;
    if (!ev_.contains("anonymous")) ev_["anonymous"] = false;
    emit(ev_);
    log_line("login failed: " + std::to_string(number) + " " + text);
}

void Session::batch(const std::string& sql) {
    const std::string l = lower(sql);
    TokenWriter tw(old_tds_);
    auto rows_done = [&](std::size_t n) { tw.done(kDoneCount, 0xC1, n); };
    // linked-server forms: OPENQUERY(NAME, '...'), EXEC ('...') AT NAME, NAME.db.schema.object
    if (auto p = l.find("openquery("); p != std::string::npos) {
        const auto comma = l.find(',', p);
        const auto q1 = l.find('\'', comma == std::string::npos ? p : comma);
        const auto q2 = q1 == std::string::npos ? q1 : l.find('\'', q1 + 1);
        if (comma != std::string::npos && q2 != std::string::npos) {
            return linked_query(upper(trim(sql.substr(p + 10, comma - p - 10))),
                                sql.substr(q1 + 1, q2 - q1 - 1));
        }
    }
    if (l.rfind("exec", 0) == 0) {
        const auto q1 = l.find('\''), q2 = q1 == std::string::npos ? q1 : l.find('\'', q1 + 1);
        const auto at = l.rfind(" at ");
        if (q2 != std::string::npos && at != std::string::npos && at > q2)
            return linked_query(upper(trim(sql.substr(at + 4))), sql.substr(q1 + 1, q2 - q1 - 1));
    }
    for (const auto& [name, target] : g_cfg.linked) {
        // Appended, not " " + lower(name) + ".": gcc 12 -O3 warns falsely (-Wrestrict) there.
        std::string needle = " ";
        needle += lower(name);
        needle += '.';
        if (auto p = l.find(needle); p != std::string::npos && l.rfind("select", 0) == 0) {
            std::string inner = sql;
            inner.erase(p + 1, needle.size() - 1);
            return linked_query(name, inner);
        }
    }
    if (l == "select 1") {
        tw.result({""}, {{"1"}}, true);
        rows_done(1);
    } else if (l == "select suser_sname()" || l == "select system_user") {
        tw.result({""}, {{user_}});
        rows_done(1);
    } else if (l == "select @@servername") {
        tw.result({""}, {{g_cfg.name}});
        rows_done(1);
    } else if (l.find("sysdatabases") != std::string::npos ||
               l.find("sys.databases") != std::string::npos) {
        tw.result({"name"}, {{"master"}, {"tempdb"}, {"model"}, {"msdb"}});
        rows_done(4);
    } else if (l.rfind("set ", 0) == 0 || l.rfind("use ", 0) == 0 || l.empty()) {
        tw.done(kDoneFinal, 0, 0);
    } else {
        tw.error(50000, 1, 16, "hopscope-labserver does not implement this statement.", g_cfg.name);
        tw.done(kDoneError, 0, 0);
    }
    conn_.send(pkt::Reply, tw.bytes());
}

void Session::linked_attempt(const std::string& name, const Linked& target,
                             const std::string& inner, gss_cred_id_t proxy, LinkedResult& r) {
    r = run_linked(name, target, deleg_ccache_, proxy, inner);
    nlohmann::json ev{{"event", "linked"},
                      {"linked_server", name},
                      {"caller", user_},
                      {"auth", r.auth},
                      {"outcome", r.ok ? "success" : "failure"},
                      {"delegated_credential", !deleg_ccache_.empty()}};
    if (!r.failure.empty()) ev["failure"] = r.failure;
    if (!r.s4u2proxy_failure.empty()) ev["s4u2proxy_failure"] = r.s4u2proxy_failure;
    if (!r.errors.empty()) ev["remote_error"] = r.errors.front().number;
    emit(ev);
    if (!r.failure.empty()) log_line("linked server " + name + ": " + r.failure);
}

void Session::linked_query(const std::string& name, const std::string& inner) {
    TokenWriter tw(old_tds_);
    auto it = g_cfg.linked.find(name);
    if (it == g_cfg.linked.end()) {
        tw.error(7202, 2, 11,
                 "Could not find server '" + name +
                     "' in sys.servers. Verify that the correct server name was specified.",
                 g_cfg.name);
        tw.done(kDoneError, 0, 0);
        conn_.send(pkt::Reply, tw.bytes());
        return;
    }
    LinkedResult r;
    linked_attempt(name, it->second, inner, acc_.proxy_credential(), r);
    if (r.ok) {
        tw.result(r.columns, r.rows);
        tw.done(kDoneCount, 0xC1, r.rows.size());
    } else {
        for (const auto& e : r.errors)
            tw.error(e.number, e.state, e.cls, e.text, name);
        tw.error(7303, 1, 16,
                 "Cannot initialize the data source object of OLE DB provider \"MSOLEDBSQL\" for "
                 "linked server \"" +
                     name + "\".",
                 g_cfg.name);
        tw.done(kDoneError, 0, 0);
    }
    conn_.send(pkt::Reply, tw.bytes());
}

// ---------------------------------------------------------------- main
void usage() {
    std::fprintf(
        stderr,
        "usage: hopscope-labserver --listen ADDR:PORT --name NAME [--encryption "
        "notsup|off|on|strict]\n"
        "         [--tls-cert PEM --tls-key PEM [--tls-keylog FILE]] [--logins FILE] [--events "
        "FILE]\n"
        "         [--run-dir DIR]\n"
        "         [--linked NAME=HOST:PORT]... [--constrained [--protocol-transition]] "
        "[--sql2000]\n"
        "         [--no-interop-fixes] [--extended-protection off|allowed]\n"
        "Kerberos: KRB5_KTNAME selects the keytab; NTLM: NTLM_USER_FILE (gss-ntlmssp).\n"
        "The logins file has one 'name:password' line per SQL login.\n");
}

bool parse_args(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--listen") {
            const std::string v = val();
            const auto c = v.rfind(':');
            if (c == std::string::npos) return false;
            g_cfg.listen_addr = v.substr(0, c);
            g_cfg.listen_port = v.substr(c + 1);
        } else if (a == "--name") {
            g_cfg.name = val();
        } else if (a == "--encryption") {
            g_cfg.encryption = val();
            if (g_cfg.encryption != "notsup" && g_cfg.encryption != "off" &&
                g_cfg.encryption != "on" && g_cfg.encryption != "strict")
                return false;
        } else if (a == "--extended-protection") {
            const std::string v = val();
            if (v != "off" && v != "allowed") return false;
            g_cfg.extended_protection = v == "allowed";
        } else if (a == "--tls-cert") {
            g_cfg.cert = val();
        } else if (a == "--tls-key") {
            g_cfg.key = val();
        } else if (a == "--tls-keylog") {
            g_cfg.keylog_file = val();
        } else if (a == "--logins") {
            g_cfg.logins_file = val();
        } else if (a == "--events") {
            g_cfg.events_file = val();
        } else if (a == "--run-dir") {
            g_cfg.run_dir = val();
        } else if (a == "--linked") {
            const std::string v = val();
            const auto eq = v.find('='), c = v.rfind(':');
            if (eq == std::string::npos || c == std::string::npos || c < eq) return false;
            g_cfg.linked[upper(v.substr(0, eq))] =
                Linked{v.substr(eq + 1, c - eq - 1), v.substr(c + 1)};
        } else if (a == "--sql2000") {
            g_cfg.sql2000 = true;
        } else if (a == "--constrained") {
            g_cfg.constrained = true;
        } else if (a == "--protocol-transition") {
            g_cfg.constrained = g_cfg.protocol_transition = true;
        } else if (a == "--no-interop-fixes") {
            g_cfg.interop_fixes = false;
        } else {
            return false;
        }
    }
    return true;
}

int select_tds8_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned int inlen, void*) {
    static const unsigned char kTds8[] = {7, 't', 'd', 's', '/', '8', '.', '0'};
    unsigned char* sel = nullptr;
    if (SSL_select_next_proto(&sel, outlen, kTds8, sizeof kTds8, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

// Appends one key log line (OpenSSL gives it without the newline). Forked connection handlers
// share the file: one write() per line with O_APPEND keeps the lines whole.
void write_keylog_line(const SSL*, const char* line) {
    const int fd = open(g_cfg.keylog_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    std::string l(line);
    l += '\n';
    (void)!write(fd, l.data(), l.size());
    close(fd);
}

int serve() {
    if (!g_cfg.logins_file.empty()) {
        std::ifstream in(g_cfg.logins_file);
        std::string line;
        while (std::getline(in, line)) {
            const auto c = line.find(':');
            if (c != std::string::npos) g_logins[line.substr(0, c)] = line.substr(c + 1);
        }
    }
    SSL_CTX* tls = nullptr;
    if (g_cfg.encryption != "notsup") {
        tls = SSL_CTX_new(TLS_server_method());
        if (g_cfg.encryption == "strict") {
            SSL_CTX_set_min_proto_version(tls, TLS1_2_VERSION);
            SSL_CTX_set_alpn_select_cb(tls, select_tds8_alpn, nullptr);
        } else {
            SSL_CTX_set_max_proto_version(tls, TLS1_2_VERSION);  // as SQL Server in TDS 7.x
        }
        if (SSL_CTX_use_certificate_chain_file(tls, g_cfg.cert.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(tls, g_cfg.key.c_str(), SSL_FILETYPE_PEM) != 1) {
            std::fprintf(stderr, "cannot load --tls-cert/--tls-key\n");
            return 2;
        }
        if (!g_cfg.keylog_file.empty()) SSL_CTX_set_keylog_callback(tls, write_keylog_line);
    }
    const int ls = socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(g_cfg.listen_port)));
    if (inet_pton(AF_INET, g_cfg.listen_addr.c_str(), &sa.sin_addr) != 1 ||
        bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(ls, 16) != 0) {
        std::perror("listen");
        return 2;
    }
    std::signal(SIGCHLD, SIG_IGN);  // children are reaped automatically
    std::fprintf(stderr, "[%s] listening on %s:%s (encryption %s)\n", g_cfg.name.c_str(),
                 g_cfg.listen_addr.c_str(), g_cfg.listen_port.c_str(), g_cfg.encryption.c_str());
    for (int id = 1;; ++id) {
        sockaddr_in peer{};
        socklen_t pl = sizeof peer;
        const int fd = accept(ls, reinterpret_cast<sockaddr*>(&peer), &pl);
        if (fd < 0) {
            if (errno == EINTR) continue;
            std::perror("accept");
            return 1;
        }
        const pid_t pid = fork();
        if (pid == 0) {
            close(ls);
            g_conn_id = id;
            // a silent peer must not keep this process forever: 60 s per read or write
            const timeval limit{60, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
            char ip[INET_ADDRSTRLEN] = "";
            inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
            {
                Session s(fd, ip, tls);
                s.run();
            }
            if (tls) SSL_CTX_free(tls);
            _exit(0);
        }
        close(fd);
    }
}

}  // namespace
}  // namespace hopscope::lab

int main(int argc, char** argv) {
    if (!hopscope::lab::parse_args(argc, argv)) {
        hopscope::lab::usage();
        return 2;
    }
    return hopscope::lab::serve();
}
