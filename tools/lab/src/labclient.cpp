// hopscope-labclient: a small TDS client that logs in the way Windows clients do - with SPNEGO
// around Kerberos (optionally delegating, optionally only where the KDC marks the service
// ok-as-delegate, like Windows' GSS_C_DELEG_POLICY_FLAG) or around NTLM - and runs one batch.
// No Linux SQL client sends SPNEGO, so the lab uses this one to put such logins on the wire.
//
//   hopscope-labclient --host sqla.lab.test --mech spnego-krb5 --delegate-policy --sql "select 1"
//
// With --encrypt the login and everything after it travel in TLS (PRELOGIN ENCRYPT_ON, the
// handshake wrapped in PRELOGIN packets, as SQL Server's drivers do it); with --channel-binding
// too, the login is bound to that TLS session (Extended Protection: NTLM MsvAvChannelBindings,
// the Kerberos GSS checksum), from its tls-unique (TLS 1.2) or tls-exporter (TLS 1.3) data.
// The server's certificate is not verified (a lab client).
//
// Output: result rows, one per line, tab-separated; server errors as
// "Msg <number>, Level <class>, State <state>, Server <name>: <text>". Exit 0 when the login and
// the batch succeeded, 1 otherwise. Nothing secret is printed (NTLM reads the password from
// NTLM_USER_FILE).
#include <openssl/ssl.h>

#include <cstdio>
#include <memory>
#include <string>

#include "conn.hpp"
#include "gss.hpp"
#include "wire.hpp"

namespace hopscope::lab {
namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: hopscope-labclient --host HOST [--port 1433]\n"
                 "         --mech krb5|spnego-krb5|spnego-ntlm [--user DOMAIN\\\\user]\n"
                 "         [--delegate | --delegate-policy] [--ccache FILE:...]\n"
                 "         [--encrypt [--channel-binding]] --sql TEXT\n");
}

void print_errors(const ReplyInfo& r) {
    for (const auto& e : r.errors)
        std::printf("Msg %u, Level %u, State %u, Server %s: %s\n", e.number, e.cls, e.state,
                    e.server.c_str(), e.text.c_str());
}

int run(int argc, char** argv) {
    InitiatorOptions o;
    std::string sql, mech;
    bool encrypt = false, bind = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--host") {
            o.host = val();
        } else if (a == "--port") {
            o.port = val();
        } else if (a == "--mech") {
            mech = val();
        } else if (a == "--user") {
            o.user = val();
        } else if (a == "--ccache") {
            o.ccache = val();
        } else if (a == "--delegate") {
            o.delegate = true;
        } else if (a == "--delegate-policy") {
            o.delegate_policy = true;
        } else if (a == "--encrypt") {
            encrypt = true;
        } else if (a == "--channel-binding") {
            bind = true;
        } else if (a == "--sql") {
            sql = val();
        } else {
            usage();
            return 2;
        }
    }
    if (mech == "krb5")
        o.mech = InitMech::Krb5;
    else if (mech == "spnego-krb5")
        o.mech = InitMech::SpnegoKrb5;
    else if (mech == "spnego-ntlm")
        o.mech = InitMech::SpnegoNtlm;
    else
        o.host.clear();
    if (o.host.empty() || sql.empty() || (o.mech == InitMech::SpnegoNtlm && o.user.empty()) ||
        (bind && !encrypt)) {
        usage();
        return 2;
    }

    std::string why;
    const int fd = tcp_connect(o.host, o.port, &why);
    if (fd < 0) {
        std::printf("connect failed: %s\n", why.c_str());
        return 1;
    }
    Conn c(fd);
    auto pre = c.send(pkt::Prelogin, build_prelogin_request(encrypt ? enc::On : enc::NotSup))
                   ? c.read_message(&why)
                   : std::nullopt;
    if (!pre) {
        std::printf("PRELOGIN failed: %s\n", why.c_str());
        return 1;
    }
    const std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> tls(
        encrypt ? SSL_CTX_new(TLS_client_method()) : nullptr, SSL_CTX_free);
    if (encrypt) {
        const auto info = parse_prelogin(pre->payload);
        if (!info || info->encryption != enc::On) {
            std::printf("the server does not encrypt the whole connection (ENCRYPT_ON)\n");
            return 1;
        }
        if (!tls || !c.tls_connect(tls.get(), &why)) {
            std::printf("TLS failed: %s\n", why.c_str());
            return 1;
        }
        c.tls_full();
        if (bind) o.channel_bindings = c.channel_binding();
    }
    Initiator gss;
    Login7Request lr;
    lr.host = "WS01";
    lr.app = "hopscope-labclient";
    lr.server = o.host;
    lr.library = "ODBC";
    if (!gss.start(o, &why) || gss.step(nullptr, lr.sspi, &why) == GssState::Failed) {
        std::printf("cannot create the security token: %s\n", why.c_str());
        return 1;
    }
    if (!c.send(pkt::Login7, build_login7(lr))) {
        std::printf("LOGIN7 failed\n");
        return 1;
    }
    for (int leg = 0;; ++leg) {
        auto m = c.read_message(&why);
        auto r = m ? parse_reply(m->payload, &why) : std::nullopt;
        if (!r) {
            std::printf("login failed: %s\n", why.c_str());
            return 1;
        }
        if (!r->errors.empty() || r->done_error) {
            print_errors(*r);
            return 1;
        }
        Buffer next;
        if (r->sspi && gss.step(&*r->sspi, next, &why) == GssState::Failed) {
            std::printf("server token rejected: %s\n", why.c_str());
            return 1;
        }
        if (r->loginack) break;
        if (!r->sspi || leg > 4 || !c.send(pkt::Sspi, next)) {
            std::printf("login did not complete\n");
            return 1;
        }
    }
    std::fprintf(stderr, "logged in (%s%s)\n", mech.c_str(), gss.delegated() ? ", delegated" : "");
    if (!c.send(pkt::SqlBatch, build_sql_batch(sql))) return 1;
    auto m = c.read_message(&why);
    auto r = m ? parse_reply(m->payload, &why) : std::nullopt;
    if (!r) {
        std::printf("query failed: %s\n", why.c_str());
        return 1;
    }
    for (const auto& row : r->rows) {
        std::string line;
        for (const auto& v : row)
            line += (line.empty() ? "" : "\t") + v;
        std::printf("%s\n", line.c_str());
    }
    print_errors(*r);
    return r->errors.empty() && !r->done_error ? 0 : 1;
}

}  // namespace
}  // namespace hopscope::lab

int main(int argc, char** argv) {
    return hopscope::lab::run(argc, argv);
}
