#include "gss.hpp"

#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace hopscope::lab {

namespace {

constexpr unsigned char kNtlmOidBytes[] = {0x2b, 0x06, 0x01, 0x04, 0x01,
                                           0x82, 0x37, 0x02, 0x02, 0x0a};

bool oid_is(gss_OID oid, const void* bytes, std::size_t len) {
    return oid != GSS_C_NO_OID && oid->length == len && std::memcmp(oid->elements, bytes, len) == 0;
}

std::string mech_name(gss_OID oid) {
    if (oid == GSS_C_NO_OID) return "";
    if (oid_is(oid, gss_mech_krb5->elements, gss_mech_krb5->length)) return "kerberos";
    if (oid_is(oid, kNtlmOidBytes, sizeof kNtlmOidBytes)) return "ntlm";
    OM_uint32 minor = 0;
    gss_buffer_desc s = GSS_C_EMPTY_BUFFER;
    if (gss_oid_to_str(&minor, oid, &s) != GSS_S_COMPLETE) return "?";
    std::string out(static_cast<const char*>(s.value), s.length);
    gss_release_buffer(&minor, &s);
    while (!out.empty() && (out.back() == '\0' || out.back() == ' '))
        out.pop_back();
    return out;
}

void status_text(OM_uint32 code, int type, gss_OID mech, std::string& out) {
    OM_uint32 minor = 0, ctx = 0;
    do {
        gss_buffer_desc s = GSS_C_EMPTY_BUFFER;
        if (gss_display_status(&minor, code, type, mech, &ctx, &s) != GSS_S_COMPLETE) break;
        if (!out.empty()) out += "; ";
        out.append(static_cast<const char*>(s.value), s.length);
        gss_release_buffer(&minor, &s);
    } while (ctx != 0);
}

Buffer take(gss_buffer_desc& b) {
    Buffer out;
    if (b.length > 0) {
        const auto* p = static_cast<const std::uint8_t*>(b.value);
        out.assign(p, p + b.length);
    }
    OM_uint32 minor = 0;
    gss_release_buffer(&minor, &b);
    return out;
}

/// True when a delegated credential is MIT's S4U2Proxy ("impersonator") credential: stored in a
/// memory ccache it carries the "proxy_impersonator" configuration entry.
bool is_proxy(gss_cred_id_t cred) {
    const std::string name =
        "MEMORY:probe" + std::to_string(reinterpret_cast<std::uintptr_t>(cred));
    gss_key_value_element_desc el{"ccache", name.c_str()};
    gss_key_value_set_desc store{1, &el};
    OM_uint32 minor = 0;
    if (GSS_ERROR(gss_store_cred_into(&minor, cred, GSS_C_INITIATE, GSS_C_NO_OID, 1, 0, &store,
                                      nullptr, nullptr)))
        return false;
    krb5_context kc = nullptr;
    if (krb5_init_context(&kc) != 0) return false;
    bool proxy = false;
    krb5_ccache cc = nullptr;
    if (krb5_cc_resolve(kc, name.c_str(), &cc) == 0) {
        krb5_data d{};
        if (krb5_cc_get_config(kc, cc, nullptr, "proxy_impersonator", &d) == 0) {
            proxy = true;
            krb5_free_data_contents(kc, &d);
        }
        krb5_cc_destroy(kc, cc);
    }
    krb5_free_context(kc);
    return proxy;
}

}  // namespace

std::string gss_error(OM_uint32 major, OM_uint32 minor, gss_OID mech) {
    std::string out;
    status_text(major, GSS_C_GSS_CODE, GSS_C_NO_OID, out);
    if (minor != 0) {
        std::string m;
        status_text(minor, GSS_C_MECH_CODE, mech, m);
        out += " (minor " + std::to_string(minor) + ": " + m + ")";
    }
    return out;
}

Acceptor::~Acceptor() {
    OM_uint32 minor = 0;
    if (ctx_ != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx_, GSS_C_NO_BUFFER);
    if (deleg_ != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &deleg_);
    if (impersonated_ != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &impersonated_);
    if (cred_ != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &cred_);
}

bool Acceptor::impersonate(const std::string& user, std::string* err) {
    // the service's own credential; an NTLM login did not need it to be accepted
    if (cred_ == GSS_C_NO_CREDENTIAL && !use_initiating_credential(err)) return false;
    OM_uint32 minor = 0;
    gss_buffer_desc nb{user.size(), const_cast<char*>(user.data())};
    gss_name_t name = GSS_C_NO_NAME;
    OM_uint32 major = gss_import_name(&minor, &nb, GSS_C_NT_USER_NAME, &name);
    if (GSS_ERROR(major)) {
        if (err) *err = "import_name(" + user + "): " + gss_error(major, minor, gss_mech_krb5);
        return false;
    }
    gss_OID_set_desc mechs{1, const_cast<gss_OID>(gss_mech_krb5)};
    major = gss_acquire_cred_impersonate_name(&minor, cred_, name, GSS_C_INDEFINITE, &mechs,
                                              GSS_C_INITIATE, &impersonated_, nullptr, nullptr);
    gss_release_name(&minor, &name);
    if (GSS_ERROR(major)) {
        if (err) *err = "S4U2Self for " + user + ": " + gss_error(major, minor, gss_mech_krb5);
        return false;
    }
    return true;
}

bool Acceptor::use_initiating_credential(std::string* err) {
    const char* kt = std::getenv("KRB5_KTNAME");
    if (!kt) {
        if (err) *err = "KRB5_KTNAME is not set";
        return false;
    }
    // the service's own TGT comes from its keytab ("client_keytab") into a private memory ccache
    const std::string cc = "MEMORY:s4u" + std::to_string(reinterpret_cast<std::uintptr_t>(this));
    gss_key_value_element_desc els[] = {
        {"keytab", kt}, {"client_keytab", kt}, {"ccache", cc.c_str()}};
    gss_key_value_set_desc store{3, els};
    gss_OID_set_desc mechs{1, const_cast<gss_OID>(gss_mech_krb5)};
    OM_uint32 minor = 0;
    const OM_uint32 major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs,
                                                  GSS_C_BOTH, &store, &cred_, nullptr, nullptr);
    if (GSS_ERROR(major)) {
        if (err) *err = "acquire_cred_from(BOTH): " + gss_error(major, minor, gss_mech_krb5);
        return false;
    }
    return true;
}

namespace {
// RFC 2744 3.11: no addresses, the binding data as application data (RFC 5929 / 9266 usage).
gss_channel_bindings_struct bindings_of(const Buffer& data) {
    gss_channel_bindings_struct cb{};
    cb.initiator_addrtype = GSS_C_AF_UNSPEC;  // 0, as Windows hashes it; gss-ntlmssp wants 0
    cb.acceptor_addrtype = GSS_C_AF_UNSPEC;
    cb.application_data.length = data.size();
    cb.application_data.value = const_cast<std::uint8_t*>(data.data());
    return cb;
}
}  // namespace

AcceptResult Acceptor::step(const Buffer& token, const Buffer* bindings) {
    AcceptResult res;
    OM_uint32 minor = 0, flags = 0;
    gss_buffer_desc in{token.size(), const_cast<std::uint8_t*>(token.data())};
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    gss_cred_id_t deleg = GSS_C_NO_CREDENTIAL;
    gss_channel_bindings_struct cb{};
    if (bindings) cb = bindings_of(*bindings);
    const OM_uint32 major = gss_accept_sec_context(&minor, &ctx_, cred_, &in,
                                                   bindings ? &cb : GSS_C_NO_CHANNEL_BINDINGS, &src,
                                                   &mech, &out, &flags, nullptr, &deleg);
    res.output = take(out);
    res.mech = mech_name(mech);
    if (GSS_ERROR(major)) {
        res.state = GssState::Failed;
        // MIT answers a binding mismatch with GSS_S_BAD_BINDINGS; gss-ntlmssp (1.2) with
        // GSS_S_DEFECTIVE_TOKEN and EACCES, its last check of an AUTHENTICATE once the user's
        // response and the MIC have passed.
        std::string minor_text;
        if (bindings) status_text(minor, GSS_C_MECH_CODE, mech, minor_text);
        res.bad_bindings = GSS_ROUTINE_ERROR(major) == GSS_S_BAD_BINDINGS ||
                           (GSS_ROUTINE_ERROR(major) == GSS_S_DEFECTIVE_TOKEN &&
                            minor_text == std::strerror(EACCES));
        res.error = gss_error(major, minor, mech);
    } else if (major & GSS_S_CONTINUE_NEEDED) {
        res.state = GssState::Continue;
    } else {
        res.state = GssState::Complete;
        gss_buffer_desc name = GSS_C_EMPTY_BUFFER;
        OM_uint32 m2 = 0;
        if (src != GSS_C_NO_NAME && gss_display_name(&m2, src, &name, nullptr) == GSS_S_COMPLETE) {
            res.initiator.assign(static_cast<const char*>(name.value), name.length);
            gss_release_buffer(&m2, &name);
            while (!res.initiator.empty() && res.initiator.back() == '\0')
                res.initiator.pop_back();
        }
        res.delegated = (flags & GSS_C_DELEG_FLAG) != 0 && deleg != GSS_C_NO_CREDENTIAL;
        // With an initiating acceptor credential MIT also reports "delegated" for the S4U2Proxy
        // credential it derives itself; only a forwarded TGT is real delegation.
        if (deleg != GSS_C_NO_CREDENTIAL && cred_ != GSS_C_NO_CREDENTIAL && is_proxy(deleg)) {
            res.delegated = false;
            proxy_ = deleg;
        }
    }
    if (src != GSS_C_NO_NAME) gss_release_name(&minor, &src);
    if (deleg != GSS_C_NO_CREDENTIAL) {
        if (deleg_ != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &deleg_);
        deleg_ = deleg;
    }
    return res;
}

bool Acceptor::store_delegated(const std::string& ccache, std::string* err) {
    if (deleg_ == GSS_C_NO_CREDENTIAL) {
        if (err) *err = "no delegated credential";
        return false;
    }
    gss_key_value_element_desc el{"ccache", ccache.c_str()};
    gss_key_value_set_desc store{1, &el};
    OM_uint32 minor = 0;
    const OM_uint32 major = gss_store_cred_into(&minor, deleg_, GSS_C_INITIATE, GSS_C_NO_OID, 1, 1,
                                                &store, nullptr, nullptr);
    if (GSS_ERROR(major)) {
        if (err) *err = gss_error(major, minor, GSS_C_NO_OID);
        return false;
    }
    return true;
}

Initiator::~Initiator() {
    OM_uint32 minor = 0;
    if (ctx_ != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx_, GSS_C_NO_BUFFER);
    if (cred_ != GSS_C_NO_CREDENTIAL && !borrowed_) gss_release_cred(&minor, &cred_);
    if (target_ != GSS_C_NO_NAME) gss_release_name(&minor, &target_);
}

bool Initiator::start(const InitiatorOptions& o, std::string* err) {
    OM_uint32 minor = 0, major = 0;
    static gss_OID_desc spnego{6, const_cast<char*>("\x2b\x06\x01\x05\x05\x02")};
    static gss_OID_desc ntlm{sizeof kNtlmOidBytes, const_cast<unsigned char*>(kNtlmOidBytes)};
    req_flags_ = GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG |
                 GSS_C_CONF_FLAG;
    if (o.delegate) req_flags_ |= GSS_C_DELEG_FLAG;
    if (o.delegate_policy) req_flags_ |= GSS_C_DELEG_POLICY_FLAG;
    bindings_ = o.channel_bindings;
    mech_ = o.mech == InitMech::Krb5 ? const_cast<gss_OID>(gss_mech_krb5) : &spnego;
    gss_OID_set_desc mechs{1, mech_};
    gss_name_t me = GSS_C_NO_NAME;
    if (o.mech == InitMech::SpnegoNtlm) {
        gss_buffer_desc ub{o.user.size(), const_cast<char*>(o.user.data())};
        major = gss_import_name(&minor, &ub, GSS_C_NT_USER_NAME, &me);
        if (GSS_ERROR(major)) {
            if (err) *err = "import_name(user): " + gss_error(major, minor, GSS_C_NO_OID);
            return false;
        }
    }
    gss_key_value_element_desc el{"ccache", o.ccache.c_str()};
    gss_key_value_set_desc store{1, &el};
    major = gss_acquire_cred_from(&minor, me, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE,
                                  o.ccache.empty() ? nullptr : &store, &cred_, nullptr, nullptr);
    if (me != GSS_C_NO_NAME) gss_release_name(&minor, &me);
    if (GSS_ERROR(major)) {
        if (err) *err = "acquire_cred_from: " + gss_error(major, minor, mech_);
        return false;
    }
    if (o.mech != InitMech::Krb5) {  // SPNEGO: offer exactly one mechanism
        gss_OID_set_desc neg{
            1, o.mech == InitMech::SpnegoNtlm ? &ntlm : const_cast<gss_OID>(gss_mech_krb5)};
        major = gss_set_neg_mechs(&minor, cred_, &neg);
        if (GSS_ERROR(major)) {
            if (err) *err = "set_neg_mechs: " + gss_error(major, minor, mech_);
            return false;
        }
    }
    // Kerberos needs the exact SPN (with port); NTLM takes a host-based service name.
    const std::string name =
        o.mech == InitMech::SpnegoNtlm ? "MSSQLSvc@" + o.host : "MSSQLSvc/" + o.host + ":" + o.port;
    gss_buffer_desc nb{name.size(), const_cast<char*>(name.data())};
    major = gss_import_name(
        &minor, &nb,
        o.mech == InitMech::SpnegoNtlm ? GSS_C_NT_HOSTBASED_SERVICE : GSS_KRB5_NT_PRINCIPAL_NAME,
        &target_);
    if (GSS_ERROR(major)) {
        if (err) *err = "import_name(target): " + gss_error(major, minor, GSS_C_NO_OID);
        return false;
    }
    return true;
}

bool Initiator::start(gss_cred_id_t borrowed, const std::string& spn, std::string* err) {
    req_flags_ = GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG |
                 GSS_C_CONF_FLAG;
    mech_ = const_cast<gss_OID>(gss_mech_krb5);
    cred_ = borrowed;
    borrowed_ = true;
    OM_uint32 minor = 0;
    gss_buffer_desc nb{spn.size(), const_cast<char*>(spn.data())};
    const OM_uint32 major = gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &target_);
    if (GSS_ERROR(major)) {
        if (err) *err = "import_name: " + gss_error(major, minor, gss_mech_krb5);
        return false;
    }
    return true;
}

bool Initiator::start(const std::string& ccache, const std::string& spn, std::string* err) {
    req_flags_ = GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG |
                 GSS_C_CONF_FLAG;
    mech_ = const_cast<gss_OID>(gss_mech_krb5);
    OM_uint32 minor = 0;
    gss_key_value_element_desc el{"ccache", ccache.c_str()};
    gss_key_value_set_desc store{1, &el};
    gss_OID_set_desc mechs{1, const_cast<gss_OID>(gss_mech_krb5)};
    OM_uint32 major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs,
                                            GSS_C_INITIATE, &store, &cred_, nullptr, nullptr);
    if (GSS_ERROR(major)) {
        if (err) *err = "acquire_cred_from: " + gss_error(major, minor, gss_mech_krb5);
        return false;
    }
    gss_buffer_desc nb{spn.size(), const_cast<char*>(spn.data())};
    major = gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &target_);
    if (GSS_ERROR(major)) {
        if (err) *err = "import_name: " + gss_error(major, minor, gss_mech_krb5);
        return false;
    }
    return true;
}

GssState Initiator::step(const Buffer* input, Buffer& output, std::string* err) {
    OM_uint32 minor = 0;
    gss_buffer_desc in = GSS_C_EMPTY_BUFFER;
    if (input) in = gss_buffer_desc{input->size(), const_cast<std::uint8_t*>(input->data())};
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    gss_channel_bindings_struct cb{};
    if (!bindings_.empty()) cb = bindings_of(bindings_);
    const OM_uint32 major =
        gss_init_sec_context(&minor, cred_, &ctx_, target_, mech_, req_flags_, 0,
                             bindings_.empty() ? GSS_C_NO_CHANNEL_BINDINGS : &cb,
                             input ? &in : GSS_C_NO_BUFFER, nullptr, &out, &ret_flags_, nullptr);
    output = take(out);
    if (GSS_ERROR(major)) {
        if (err) *err = gss_error(major, minor, mech_);
        return GssState::Failed;
    }
    return (major & GSS_S_CONTINUE_NEEDED) ? GssState::Continue : GssState::Complete;
}

}  // namespace hopscope::lab
