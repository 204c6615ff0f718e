#include "hopscope/auth/gss.hpp"

#include "hopscope/auth/der.hpp"

namespace hopscope::auth {

const char* to_string(Mech m) {
    switch (m) {
        case Mech::Kerberos:
            return "kerberos";
        case Mech::MsKerberos:
            return "ms-kerberos";
        case Mech::KerberosU2U:
            return "kerberos-u2u";
        case Mech::Ntlmssp:
            return "ntlmssp";
        case Mech::NegoEx:
            return "negoex";
        case Mech::Spnego:
            return "spnego";
        case Mech::Unknown:
            break;
    }
    return "unknown";
}

Oid make_oid(Bytes content) {
    Oid o;
    o.dotted = der::oid_to_dotted(content);
    // The OIDs of protocol.md §5.1 (RFC 4121 §1.1, RFC 4178 §3, MS-NLMP §1.9, MS-NEGOEX §1.9).
    if (o.dotted == "1.2.840.113554.1.2.2") {
        o.mech = Mech::Kerberos;
    } else if (o.dotted == "1.2.840.48018.1.2.2") {
        o.mech = Mech::MsKerberos;
    } else if (o.dotted == "1.2.840.113554.1.2.2.3") {
        o.mech = Mech::KerberosU2U;
    } else if (o.dotted == "1.3.6.1.4.1.311.2.2.10") {
        o.mech = Mech::Ntlmssp;
    } else if (o.dotted == "1.3.6.1.4.1.311.2.2.30") {
        o.mech = Mech::NegoEx;
    } else if (o.dotted == "1.3.6.1.5.5.2") {
        o.mech = Mech::Spnego;
    }
    return o;
}

DecodeResult parse_gss_initial(Bytes data, GssInitialToken& out) {
    der::Reader r(data, 0, 0, der::LengthRule::BerDefinite);
    der::Tlv app;
    if (auto e = r.expect(app, der::TagClass::Application, 0, true); !e.ok()) return e;
    if (!r.at_end()) {
        return make_error(DecodeError::Code::BadLength, r.offset(), "bytes after the GSS token");
    }
    der::Reader in;
    if (auto e = der::Reader::enter(app, in); !e.ok()) return e;
    der::Tlv oid;
    if (auto e = in.next(oid); !e.ok()) return e;
    Bytes content;
    if (auto e = der::as_oid(oid, content); !e.ok()) return e;
    out.mech = make_oid(content);
    out.inner_offset = oid.offset + oid.total();
    out.inner = data.subspan(out.inner_offset, app.offset + app.total() - out.inner_offset);
    return {};
}

}  // namespace hopscope::auth
