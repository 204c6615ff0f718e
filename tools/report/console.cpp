#include "hopscope/report/console.hpp"

#include <string>

namespace hopscope::report {
namespace {

using namespace hopscope::analysis;

constexpr const char* kReset = "\x1b[0m";
constexpr const char* kBold = "\x1b[1m";
constexpr const char* kRed = "\x1b[31m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kCyan = "\x1b[36m";
constexpr const char* kDim = "\x1b[2m";

std::string server_label(const Analyzer& a, const Endpoint& e) {
    std::string name = a.host_name(e.addr);
    std::string ep = to_string(e);
    if (name == to_string(e.addr)) return ep;
    return name + " (" + ep + ")";
}

}  // namespace

void ConsoleRenderer::login(const LoginEvent& e, const Analyzer& a) {
    const char* oc = e.outcome == Outcome::Success   ? kGreen
                     : e.outcome == Outcome::Failure ? kRed
                                                     : kYellow;
    std::string who =
        e.anonymous ? "NT AUTHORITY\\ANONYMOUS LOGON"
        : e.domain.empty() || e.user.empty()
            ? e.user
            : (e.auth == AuthKind::Kerberos ? e.user + "@" + e.domain : e.domain + "\\" + e.user);
    std::fprintf(out_, "%s%s%s login %s -> %s %s%-8s%s %s%-10s%s %s", c(kDim),
                 to_rfc3339(e.ts).c_str(), c(kReset), to_string(e.flow.client).c_str(),
                 server_label(a, e.flow.server).c_str(), c(kBold), to_string(e.auth), c(kReset),
                 c(oc), to_string(e.outcome), c(kReset), who.c_str());
    if (!e.spn.empty()) std::fprintf(out_, " spn=%s", e.spn.c_str());
    std::fprintf(out_, " enc=%s", to_string(e.encryption));
    if (e.routing && !e.routing->empty()) std::fprintf(out_, " routing=%s", e.routing->c_str());
    if (e.keytab) {
        const KeytabFacts& k = *e.keytab;
        if (k.ticket_decrypted)
            std::fprintf(out_, " ticket=%s%s%s", k.forwardable ? "forwardable" : "not-forwardable",
                         k.forwarded ? ",forwarded" : "",
                         k.ok_as_delegate ? ",ok-as-delegate" : "");
        if (k.delegation_known())
            std::fprintf(out_, " deleg=%s forwarded-tgt=%s", k.deleg ? "yes" : "no",
                         k.forwarded_tgt ? "yes" : "no");
        if (!k.problem.empty()) std::fprintf(out_, " %s", k.problem.c_str());
    }
    if (e.error)
        std::fprintf(out_, " error=%d/%u \"%s\"", e.error->number, e.error->state,
                     e.error->message.c_str());
    std::fputc('\n', out_);
}

void ConsoleRenderer::kerberos(const KerberosEvent& e) {
    std::fprintf(out_, "%s%s%s kerberos %s -> %s %s %s", c(kDim), to_rfc3339(e.ts).c_str(),
                 c(kReset), to_string(e.flow.client.addr).c_str(), e.request.c_str(),
                 e.sname.c_str(), e.reply.c_str());
    if (e.error_code)
        std::fprintf(out_, " %s%s (%d)%s", c(kRed), e.error_name().c_str(), e.error_code,
                     c(kReset));
    auto ticket = [&](const char* what, const KdcTicketFacts& t) {
        if (t.decrypted)
            std::fprintf(out_, " %s=%s%s%s client=%s", what,
                         t.forwardable ? "forwardable" : "not-forwardable",
                         t.forwarded ? ",forwarded" : "", t.ok_as_delegate ? ",ok-as-delegate" : "",
                         t.client.c_str());
        if (!t.s4u2proxy_target.empty())
            std::fprintf(out_, " s4u2proxy-target=%s", t.s4u2proxy_target.c_str());
        if (!t.problem.empty()) std::fprintf(out_, " %s", t.problem.c_str());
    };
    if (e.extra().evidence_ticket) ticket("evidence-ticket", *e.extra().evidence_ticket);
    if (e.extra().reply_ticket) ticket("reply-ticket", *e.extra().reply_ticket);
    std::fputc('\n', out_);
}

void ConsoleRenderer::server_error(const ServerErrorEvent& e) {
    std::fprintf(out_, "%s%s%s error %s -> %s %s%d%s \"%s\"\n", c(kDim), to_rfc3339(e.ts).c_str(),
                 c(kReset), to_string(e.flow.client).c_str(), to_string(e.flow.server).c_str(),
                 c(kRed), e.error.number, c(kReset), e.error.message.c_str());
}

void ConsoleRenderer::finding(const Finding& f) {
    const char* col = f.severity == Severity::Error     ? kRed
                      : f.severity == Severity::Warning ? kYellow
                                                        : kCyan;
    std::fprintf(out_, "\n%s%s%-7s%s %s%s %s%s\n  %s\n", c(kBold), c(col), to_string(f.severity),
                 c(kReset), c(kBold), f.rule.c_str(), f.name.c_str(), c(kReset), f.summary.c_str());
    for (const auto& h : f.hops)
        std::fprintf(out_, "  hop:      %s\n", h.c_str());
    for (const auto& e : f.evidence) {
        std::fprintf(out_, "  evidence: %s", e.what.c_str());
        if (e.at.frame)
            std::fprintf(out_, " (frame %llu)", static_cast<unsigned long long>(e.at.frame));
        else if (e.flow.transport == Transport::Tcp)
            std::fprintf(out_, " (%s offset %llu)", to_string(e.at.direction),
                         static_cast<unsigned long long>(e.at.stream_offset));
        std::fputc('\n', out_);
    }
    if (!f.display_filter.empty())
        std::fprintf(out_, "  wireshark: %s\n", f.display_filter.c_str());
    std::fprintf(out_, "  %sfix:%s      %s\n", c(kGreen), c(kReset), f.remedy.c_str());
    if (!f.missing.empty())
        std::fprintf(out_, "  %smissing:%s  %s\n", c(kYellow), c(kReset), f.missing.c_str());
}

void ConsoleRenderer::summary(const Analyzer& a) {
    auto chains = a.chain_summary();
    auto hops = a.hop_summary();
    std::fprintf(out_, "\n%sChains (C -> A -> B)%s\n", c(kBold), c(kReset));
    if (chains.empty()) std::fprintf(out_, "  none seen\n");
    for (const auto& ch : chains) {
        const char* col = ch.second_anonymous || ch.second_outcome == Outcome::Failure ? kRed
                          : ch.second_outcome == Outcome::Success                      ? kGreen
                                                                                       : kYellow;
        // "alice@LAB.TEST (10.77.0.2) -> sqla (...) [kerberos] -> sqlb (...) [kerberos as
        // alice@LAB.TEST]": who started the chain, and as whom each hop logged in.
        const std::string who =
            ch.user.empty() ? to_string(ch.client) : ch.user + " (" + to_string(ch.client) + ")";
        std::string second = to_string(ch.second_auth);
        if (ch.second_prelogin_only) second += ", no LOGIN7";
        if (!ch.second_user.empty()) second += " as " + ch.second_user;
        if (ch.second_outcome != Outcome::Success) second += " FAILED";
        std::fprintf(out_, "  %s -> %s [%s] -> %s %s[%s]%s  x%llu\n", who.c_str(),
                     server_label(a, ch.middle).c_str(), to_string(ch.first_auth),
                     server_label(a, ch.backend).c_str(), c(col), second.c_str(), c(kReset),
                     static_cast<unsigned long long>(ch.count));
    }
    std::fprintf(out_, "\n%sLogins per hop%s\n", c(kBold), c(kReset));
    if (hops.empty()) std::fprintf(out_, "  no TDS logins seen\n");
    for (const auto& h : hops) {
        std::fprintf(out_, "  %-15s -> %-40s %-8s %-10s %s  x%llu\n", to_string(h.client).c_str(),
                     server_label(a, h.server).c_str(), to_string(h.auth), to_string(h.outcome),
                     h.user.c_str(), static_cast<unsigned long long>(h.count));
    }
    std::fprintf(out_, "\n%llu finding(s)\n",
                 static_cast<unsigned long long>(a.findings_emitted()));
}

}  // namespace hopscope::report
