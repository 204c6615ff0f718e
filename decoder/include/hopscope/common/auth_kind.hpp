// How a login authenticates: one enum for the session layer and the events.
#pragma once

#include <cstdint>

namespace hopscope {

/// TDS alone (session::LoginRecord) says Sql, FedAuth or Integrated (an SSPI login), or Unknown
/// (LOGIN7 not seen or encrypted). The pipeline refines Integrated into Ntlm or Kerberos from the
/// SSPI blobs, so an event (analysis::LoginEvent) carries Sql, Ntlm, Kerberos, FedAuth or Unknown.
enum class AuthKind : std::uint8_t { Unknown, Sql, Integrated, Ntlm, Kerberos, FedAuth };

/// "unknown", "sql", "integrated", "ntlm", "kerberos", "fedauth" (the event schema's names).
constexpr const char* to_string(AuthKind k) {
    switch (k) {
        case AuthKind::Unknown:
            return "unknown";
        case AuthKind::Sql:
            return "sql";
        case AuthKind::Integrated:
            return "integrated";
        case AuthKind::Ntlm:
            return "ntlm";
        case AuthKind::Kerberos:
            return "kerberos";
        case AuthKind::FedAuth:
            return "fedauth";
    }
    return "unknown";
}

}  // namespace hopscope
