#include "hopscope/auth/gss.hpp"

#include <algorithm>
#include <array>

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

namespace {
/// The OIDs of protocol.md §5.1 (RFC 4121 §1.1, RFC 4178 §3, MS-NLMP §1.9, MS-NEGOEX §1.9) as
/// their DER content octets: every SPNEGO blob names two to four of them, and matching the
/// octets spares the dotted text being built and compared for each.
struct KnownOid {
    std::array<std::uint8_t, 10> der;
    std::size_t size;
    const char* dotted;
    Mech mech;
};
constexpr KnownOid kKnownOids[] = {
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02},
     9,
     "1.2.840.113554.1.2.2",
     Mech::Kerberos},
    {{0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02},
     9,
     "1.2.840.48018.1.2.2",
     Mech::MsKerberos},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x03},
     10,
     "1.2.840.113554.1.2.2.3",
     Mech::KerberosU2U},
    {{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a},
     10,
     "1.3.6.1.4.1.311.2.2.10",
     Mech::Ntlmssp},
    {{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x1e},
     10,
     "1.3.6.1.4.1.311.2.2.30",
     Mech::NegoEx},
    {{0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}, 6, "1.3.6.1.5.5.2", Mech::Spnego},
};
}  // namespace

Oid make_oid(Bytes content) {
    for (const KnownOid& k : kKnownOids)
        if (content.size() == k.size && std::equal(content.begin(), content.end(), k.der.begin()))
            return Oid{k.mech, {}};
    return Oid{Mech::Unknown, der::oid_to_dotted(content)};
}

std::string_view Oid::dotted() const {
    for (const KnownOid& k : kKnownOids)
        if (k.mech == mech) return k.dotted;
    return other;
}

std::string_view Oid::name() const {
    return mech == Mech::Unknown ? std::string_view(other) : std::string_view(to_string(mech));
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
