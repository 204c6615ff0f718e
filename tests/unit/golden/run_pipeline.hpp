// Runs a capture through the whole offline pipeline (captures -> Pipeline -> Analyzer) and
// collects the events, for the golden tests.
#pragma once

#include <string>
#include <vector>

#include "hopscope/analysis/events.hpp"
#include "hopscope/captures/capture_source.hpp"
#include "hopscope/captures/stream_assembler.hpp"
#include "hopscope/pipeline/pipeline.hpp"
#include "hopscope/report/json_events.hpp"

namespace hopscope::golden {

struct Collected : pipeline::EventSink {
    std::vector<analysis::LoginEvent> logins;
    std::vector<analysis::KerberosEvent> kerberos;
    std::vector<analysis::ServerErrorEvent> errors;
    std::vector<analysis::Finding> findings;
    std::vector<std::string> json;  ///< every event as its JSON line, in order

    void on_login(const analysis::LoginEvent& e) override {
        logins.push_back(e);
        json.push_back(report::to_json(e).dump());
    }
    void on_kerberos(const analysis::KerberosEvent& e) override {
        kerberos.push_back(e);
        json.push_back(report::to_json(e).dump());
    }
    void on_server_error(const analysis::ServerErrorEvent& e) override {
        errors.push_back(e);
        json.push_back(report::to_json(e).dump());
    }
    void on_finding(const analysis::Finding& f) override {
        findings.push_back(f);
        json.push_back(report::to_json(f).dump());
    }
    [[nodiscard]] std::vector<std::string> rules() const;
};

/// Reads `paths` (merged in time order) through a fresh pipeline into `out`.
/// Returns the read result (errors name the file and offset).
/// With `tls_keys`, the TLS inside TDS is decrypted with those secrets; with `kerberos_keys` (a
/// keytab), the Kerberos AP-REQs of the logins.
captures::ReadResult run_pipeline(const std::vector<std::string>& paths, Collected& out,
                                  const tls::KeySource* tls_keys = nullptr,
                                  const auth::KerberosKeys* kerberos_keys = nullptr);

}  // namespace hopscope::golden
