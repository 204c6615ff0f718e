#include "run_pipeline.hpp"

#include <algorithm>

namespace hopscope::golden {

std::vector<std::string> Collected::rules() const {
    std::vector<std::string> r;
    for (const auto& f : findings)
        r.push_back(f.rule);
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    return r;
}

captures::ReadResult run_pipeline(const std::vector<std::string>& paths, Collected& out,
                                  const tls::KeySource* tls_keys,
                                  const auth::KerberosKeys* kerberos_keys) {
    pipeline::Pipeline::Options o;
    o.tls_keys = tls_keys;
    o.kerberos_keys = kerberos_keys;
    pipeline::Pipeline p(out, o);
    captures::StreamAssembler assembler(p);
    captures::ReadResult r = captures::read_captures(paths, assembler);
    p.finish(Timestamp{});
    return r;
}

}  // namespace hopscope::golden
