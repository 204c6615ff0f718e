#include "hopscope/report/json_events.hpp"

namespace hopscope::report {
namespace {

using nlohmann::ordered_json;
using namespace hopscope::analysis;

ordered_json header(const char* event, Timestamp ts) {
    ordered_json j;
    j["schema"] = kSchemaVersion;
    j["event"] = event;
    j["ts"] = to_rfc3339(ts);
    return j;
}

ordered_json error_json(const ServerError& e) {
    return ordered_json{{"number", e.number},
                        {"state", e.state},
                        {"severity", e.severity},
                        {"message", e.message},
                        {"server", e.server}};
}

// Wire text may hold invalid UTF-8 only if a decoder let it through; never let the writer throw.
std::string dump(const ordered_json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

ordered_json to_json(const LoginEvent& e) {
    ordered_json j = header("login", e.ts);
    j["started"] = to_rfc3339(e.started);
    j["client"] = to_string(e.flow.client);
    j["server"] = to_string(e.flow.server);
    j["auth"] = to_string(e.auth);
    j["auth_detail"] = e.auth_detail;
    j["outcome"] = to_string(e.outcome);
    j["user"] = e.user;
    j["domain"] = e.domain;
    j["workstation"] = e.workstation;
    j["spn"] = e.spn;
    j["anonymous"] = e.anonymous;
    j["encryption"] = to_string(e.encryption);
    j["encryption_downgraded"] = e.encryption_downgraded;
    j["tls_version"] = e.tls_version;
    j["sspi_visible"] = e.sspi_visible;
    j["delegation"] = to_string(e.delegation);
    j["server_name"] = e.server_name;
    j["server_aliases"] = e.server_aliases;
    j["host_name"] = e.host_name;
    j["app_name"] = e.app_name;
    j["library"] = e.library;
    j["tds_version"] = e.tds_version;
    if (e.ntlm_version) j["ntlm_version"] = e.ntlm_version;
    if (!e.kerberos_etype.empty()) j["kerberos_etype"] = e.kerberos_etype;
    if (e.kerberos_error) j["kerberos_error"] = e.kerberos_error;
    j["frames"] = ordered_json{{"first", e.first_frame}, {"last", e.last_frame}};
    if (e.error) j["error"] = error_json(*e.error);
    return j;
}

ordered_json to_json(const KerberosEvent& e) {
    ordered_json j = header("kerberos", e.ts);
    j["client"] = to_string(e.flow.client);
    j["kdc"] = to_string(e.flow.server);
    j["transport"] = e.flow.transport == Transport::Udp ? "udp" : "tcp";
    j["request"] = e.request;
    j["reply"] = e.reply;
    j["principal"] = e.client;
    j["sname"] = e.sname;
    j["realm"] = e.realm;
    j["kdc_options"] = e.kdc_options;
    j["etypes"] = e.etypes;
    j["padata"] = e.padata;
    if (!e.s4u_user.empty()) j["s4u_user"] = e.s4u_user;
    if (!e.additional_ticket_snames.empty()) j["additional_tickets"] = e.additional_ticket_snames;
    if (e.error_code)
        j["error"] =
            ordered_json{{"code", e.error_code}, {"name", e.error_name}, {"text", e.error_text}};
    j["frames"] = ordered_json{{"request", e.frame}, {"reply", e.reply_frame}};
    return j;
}

ordered_json to_json(const ServerErrorEvent& e) {
    ordered_json j = header("server_error", e.ts);
    j["client"] = to_string(e.flow.client);
    j["server"] = to_string(e.flow.server);
    j["error"] = error_json(e.error);
    j["statement"] = e.statement;
    j["frame"] = e.frame;
    return j;
}

ordered_json to_json(const Finding& f) {
    ordered_json j = header("finding", f.ts);
    j["rule"] = f.rule;
    j["name"] = f.name;
    j["severity"] = to_string(f.severity);
    j["summary"] = f.summary;
    j["hops"] = f.hops;
    ordered_json ev = ordered_json::array();
    for (const auto& e : f.evidence) {
        ordered_json x;
        x["client"] = to_string(e.flow.client);
        x["server"] = to_string(e.flow.server);
        if (e.frame) x["frame"] = e.frame;
        if (e.stream_offset) x["stream_offset"] = e.stream_offset;
        x["ts"] = to_rfc3339(e.ts);
        x["what"] = e.what;
        ev.push_back(std::move(x));
    }
    j["evidence"] = std::move(ev);
    j["display_filter"] = f.display_filter;
    j["remedy"] = f.remedy;
    if (!f.missing.empty()) j["missing"] = f.missing;
    return j;
}

ordered_json summary_json(Timestamp ts, const Analyzer& a, const ordered_json& counters) {
    ordered_json j = header("summary", ts);
    ordered_json hops = ordered_json::array();
    for (const auto& h : a.hop_summary()) {
        hops.push_back(ordered_json{{"client", to_string(h.client)},
                                    {"server", to_string(h.server)},
                                    {"server_name", a.host_name(h.server.addr)},
                                    {"auth", to_string(h.auth)},
                                    {"outcome", to_string(h.outcome)},
                                    {"anonymous", h.anonymous},
                                    {"user", h.user},
                                    {"count", h.count}});
    }
    ordered_json chains = ordered_json::array();
    for (const auto& c : a.chain_summary()) {
        chains.push_back(ordered_json{{"client", to_string(c.client)},
                                      {"middle", to_string(c.middle)},
                                      {"middle_name", a.host_name(c.middle.addr)},
                                      {"backend", to_string(c.backend)},
                                      {"backend_name", a.host_name(c.backend.addr)},
                                      {"first_auth", to_string(c.first_auth)},
                                      {"second_auth", to_string(c.second_auth)},
                                      {"second_outcome", to_string(c.second_outcome)},
                                      {"second_anonymous", c.second_anonymous},
                                      {"user", c.user},
                                      {"second_user", c.second_user},
                                      {"count", c.count}});
    }
    j["hops"] = std::move(hops);
    j["chains"] = std::move(chains);
    j["findings"] = a.findings_emitted();
    j["counters"] = counters;
    return j;
}

void JsonLinesWriter::write(const ordered_json& j) {
    std::string line = dump(j);
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fflush(out_);
}

}  // namespace hopscope::report
