#include "hopscope/analysis/events.hpp"

#include <algorithm>

namespace hopscope::analysis {

const char* to_string(Outcome o) {
    switch (o) {
        case Outcome::Success:
            return "success";
        case Outcome::Failure:
            return "failure";
        case Outcome::Incomplete:
            return "incomplete";
    }
    return "incomplete";
}

const char* to_string(Severity s) {
    switch (s) {
        case Severity::Info:
            return "info";
        case Severity::Warning:
            return "warning";
        case Severity::Error:
            return "error";
    }
    return "info";
}

const char* to_string(Tristate t) {
    switch (t) {
        case Tristate::Unknown:
            return "unknown";
        case Tristate::No:
            return "no";
        case Tristate::Yes:
            return "yes";
    }
    return "unknown";
}

const char* to_string(UserSource u) {
    switch (u) {
        case UserSource::None:
            return "";
        case UserSource::Login7:
            return "login7";
        case UserSource::Ntlm:
            return "ntlm";
        case UserSource::KdcReply:
            return "kdc-reply";
        case UserSource::Keytab:
            return "keytab";
    }
    return "";
}

bool KerberosEvent::has_padata(std::int32_t type) const {
    return std::find(padata.begin(), padata.end(), type) != padata.end();
}

}  // namespace hopscope::analysis
