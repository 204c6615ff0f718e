// Thin RAII wrappers over MIT libgssapi_krb5 for the lab server: an acceptor that takes whatever
// mechanism the client's token names (Kerberos, NTLM through gss-ntlmssp, SPNEGO) and an initiator
// for the linked-server hop with a delegated Kerberos credential. Tokens are passed through; only
// their lengths are ever logged.
#pragma once

#include <gssapi/gssapi.h>

#include <string>

#include "wire.hpp"

namespace hopscope::lab {

enum class GssState { Continue, Complete, Failed };

struct AcceptResult {
    GssState state = GssState::Failed;
    Buffer output;              ///< token for the client (may be a KRB-ERROR on failure)
    std::string mech;           ///< "kerberos", "ntlm" or the OID in dotted form
    std::string initiator;      ///< display name, trailing NULs removed
    bool delegated = false;     ///< a delegated (forwarded) credential came with the context
    std::string error;          ///< gss_display_status text on failure
    bool bad_bindings = false;  ///< GSS_S_BAD_BINDINGS: the client bound another channel
};

class Acceptor {
  public:
    Acceptor() = default;
    Acceptor(const Acceptor&) = delete;
    Acceptor& operator=(const Acceptor&) = delete;
    ~Acceptor();
    /// Accept with a credential that can also initiate (keytab + the service's own TGT from it),
    /// as a service set up for constrained delegation: then a client that did not delegate
    /// still leaves an S4U2Proxy credential (see proxy_credential()).
    bool use_initiating_credential(std::string* err);
    /// One leg. `bindings`: the channel binding data of the connection's TLS session
    /// (Conn::channel_binding()) that the client's must match, or null for none.
    AcceptResult step(const Buffer& token, const Buffer* bindings = nullptr);
    /// After Complete without delegation: the S4U2Proxy credential MIT derives from the client's
    /// (forwardable) service ticket, or the one impersonate() made; GSS_C_NO_CREDENTIAL without.
    /// Owned by the Acceptor.
    [[nodiscard]] gss_cred_id_t proxy_credential() const {
        return proxy_ != GSS_C_NO_CREDENTIAL ? proxy_ : impersonated_;
    }
    /// Protocol transition: with the service's own credential (keytab + its TGT), a ticket to
    /// itself in `user`'s name from the KDC (S4U2Self: gss_acquire_cred_impersonate_name), as
    /// the evidence for S4U2Proxy to linked servers. `user` without a realm: the default one.
    bool impersonate(const std::string& user, std::string* err);
    /// gss_store_cred_into the delegated credential as ccache `ccache` (e.g. "FILE:/x/deleg.cc").
    bool store_delegated(const std::string& ccache, std::string* err);

  private:
    gss_ctx_id_t ctx_ = GSS_C_NO_CONTEXT;
    gss_cred_id_t deleg_ = GSS_C_NO_CREDENTIAL;
    gss_cred_id_t cred_ = GSS_C_NO_CREDENTIAL;
    gss_cred_id_t proxy_ = GSS_C_NO_CREDENTIAL;
    gss_cred_id_t impersonated_ = GSS_C_NO_CREDENTIAL;
};

/// How an initiator frames its tokens.
enum class InitMech {
    Krb5,        ///< raw RFC 4121 tokens (what FreeTDS and our linked-server hop send)
    SpnegoKrb5,  ///< SPNEGO offering Kerberos only (a Windows client with a ticket)
    SpnegoNtlm,  ///< SPNEGO offering NTLM only, through gss-ntlmssp (a Windows client without)
};

struct InitiatorOptions {
    InitMech mech = InitMech::Krb5;
    std::string ccache;  ///< Kerberos: "FILE:..."; empty = KRB5CCNAME
    std::string user;    ///< NTLM: "DOMAIN\\user" (password from NTLM_USER_FILE)
    std::string host;    ///< target host, e.g. sqla.lab.test
    std::string port = "1433";
    bool delegate = false;         ///< GSS_C_DELEG_FLAG: always forward the TGT
    bool delegate_policy = false;  ///< GSS_C_DELEG_POLICY_FLAG: only if the KDC says ok-as-delegate
    /// Channel binding data of the TLS session the login travels in (Extended Protection), or
    /// empty: NTLM puts their hash in MsvAvChannelBindings, Kerberos in the GSS checksum.
    Buffer channel_bindings;
};

class Initiator {
  public:
    Initiator() = default;
    Initiator(const Initiator&) = delete;
    Initiator& operator=(const Initiator&) = delete;
    ~Initiator();
    /// Kerberos initiator from credential cache `ccache` towards principal `spn`.
    bool start(const std::string& ccache, const std::string& spn, std::string* err);
    /// Kerberos initiator with a credential borrowed from an Acceptor (S4U2Proxy).
    bool start(gss_cred_id_t borrowed, const std::string& spn, std::string* err);
    /// Any of the InitMech framings; the SPN is MSSQLSvc/<host>:<port>.
    bool start(const InitiatorOptions& o, std::string* err);
    GssState step(const Buffer* input, Buffer& output, std::string* err);
    /// After Complete: whether the context delegated a credential (GSS_C_DELEG_FLAG returned).
    [[nodiscard]] bool delegated() const { return (ret_flags_ & GSS_C_DELEG_FLAG) != 0; }

  private:
    gss_ctx_id_t ctx_ = GSS_C_NO_CONTEXT;
    gss_cred_id_t cred_ = GSS_C_NO_CREDENTIAL;
    gss_name_t target_ = GSS_C_NO_NAME;
    gss_OID mech_ = GSS_C_NO_OID;
    OM_uint32 req_flags_ = 0;
    OM_uint32 ret_flags_ = 0;
    bool borrowed_ = false;
    Buffer bindings_;
};

std::string gss_error(OM_uint32 major, OM_uint32 minor, gss_OID mech);

}  // namespace hopscope::lab
