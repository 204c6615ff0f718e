#include "hopscope/analysis/events.hpp"

#include <algorithm>

namespace hopscope::analysis {

namespace {
/// Every msg-type auth::krb_msg_type_name names.
constexpr std::int32_t kNamedTypes[] = {
    auth::krb_msg::AsReq, auth::krb_msg::AsRep, auth::krb_msg::TgsReq, auth::krb_msg::TgsRep,
    auth::krb_msg::ApReq, auth::krb_msg::ApRep, auth::krb_msg::Cred,   auth::krb_msg::Error};
}  // namespace

KrbMessageName::KrbMessageName(std::string_view name) {
    if (name.empty()) return;
    code_ = kUnnamed;
    for (const std::int32_t t : kNamedTypes)
        if (name == auth::krb_msg_type_name(t)) code_ = static_cast<std::int8_t>(t);
}

KrbMessageName KrbMessageName::of_type(std::int32_t msg_type) {
    KrbMessageName n;
    n.code_ = kUnnamed;
    for (const std::int32_t t : kNamedTypes)
        if (msg_type == t) n.code_ = static_cast<std::int8_t>(t);
    return n;
}

const char* KrbMessageName::c_str() const {
    if (code_ == 0) return "";
    return code_ == kUnnamed ? "?" : auth::krb_msg_type_name(code_);
}

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

std::string KerberosEvent::error_name() const {
    return error_code == 0 ? std::string() : auth::krb_error_name(error_code);
}

const KerberosExtras& KerberosEvent::extra() const {
    static const KerberosExtras kNone;
    return extras ? *extras : kNone;
}

KerberosExtras& KerberosEvent::extra_to_set() {
    if (!extras) extras = KerberosExtras{};
    return *extras;
}

}  // namespace hopscope::analysis
