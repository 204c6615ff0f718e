// The events' own types: Boxed<T>, the optional kept on the heap that LoginEvent::error is, keeps
// std::optional's meaning (empty by default, deep copies, assignment of a value and of nullopt);
// KrbMessageName, a Kerberos message type kept as its number, reads as the name it replaced.
#include "hopscope/analysis/events.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>

namespace {

using hopscope::analysis::Boxed;
using hopscope::analysis::KerberosEvent;
using hopscope::analysis::KerberosExtras;
using hopscope::analysis::KrbMessageName;
using hopscope::analysis::LoginEvent;
using hopscope::analysis::ServerError;

TEST(Boxed, EmptyUntilGivenAValue) {
    Boxed<ServerError> b;
    EXPECT_FALSE(b.has_value());
    EXPECT_FALSE(b);
    b = ServerError{18456, 1, 14, "Login failed for user ''.", "SQLB"};
    ASSERT_TRUE(b);
    EXPECT_EQ(b->number, 18456);
    EXPECT_EQ((*b).server, "SQLB");
    b = ServerError{4060, 1, 11, "Cannot open database", "SQLA"};  // replaces, in place
    EXPECT_EQ(b->number, 4060);
    b = std::nullopt;
    EXPECT_FALSE(b.has_value());
    b = ServerError{1, 2, 3, "x", "y"};
    b.reset();
    EXPECT_FALSE(b);
}

TEST(Boxed, CopiesAreDeepAndMovesTakeTheValue) {
    LoginEvent a;
    a.error = ServerError{18456, 1, 14, "Login failed", "SQLB"};
    LoginEvent c = a;
    ASSERT_TRUE(c.error);
    c.error->message = "changed";
    EXPECT_EQ(a.error->message, "Login failed");  // not shared
    LoginEvent d;
    d = a;
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->number, 18456);
    d = LoginEvent{};  // an empty one assigned: empty again
    EXPECT_FALSE(d.error);
    LoginEvent m = std::move(a);
    ASSERT_TRUE(m.error);
    EXPECT_EQ(m.error->server, "SQLB");
    Boxed<ServerError> none = std::nullopt;
    Boxed<ServerError> copy = none;
    EXPECT_FALSE(copy);
}

TEST(KrbMessageName, ShowsTheNameOfTheMessageType) {
    namespace m = hopscope::auth::krb_msg;
    const std::pair<std::int32_t, const char*> names[] = {
        {m::AsReq, "AS-REQ"},   {m::AsRep, "AS-REP"},   {m::TgsReq, "TGS-REQ"},
        {m::TgsRep, "TGS-REP"}, {m::ApReq, "AP-REQ"},   {m::ApRep, "AP-REP"},
        {m::Cred, "KRB-CRED"},  {m::Error, "KRB-ERROR"}};
    for (const auto& [type, name] : names) {
        const KrbMessageName n = KrbMessageName::of_type(type);
        EXPECT_FALSE(n.empty()) << name;
        EXPECT_STREQ(n.c_str(), name);
        EXPECT_TRUE(n == name);
        EXPECT_EQ(std::string_view(n), name);
        EXPECT_EQ(std::string(n.view()), hopscope::auth::krb_msg_type_name(type));
        EXPECT_TRUE(KrbMessageName(std::string(name)) == n.view());  // the name read back
    }
    // A type without a name shows as krb_msg_type_name shows it, and is not empty.
    for (const std::int32_t t : {0, 1, m::TgtReq, m::TgtRep, 29, 127, 128, -5, 1'000'000}) {
        const KrbMessageName n = KrbMessageName::of_type(t);
        EXPECT_FALSE(n.empty()) << t;
        EXPECT_STREQ(n.c_str(), hopscope::auth::krb_msg_type_name(t)) << t;
        EXPECT_STREQ(n.c_str(), "?") << t;
    }
}

TEST(KrbMessageName, EmptyUntilSetAndComparedAsTheStringWas) {
    KerberosEvent k;
    EXPECT_TRUE(k.request.empty());
    EXPECT_STREQ(k.reply.c_str(), "");
    EXPECT_TRUE(k.reply == "");
    k.request = "TGS-REQ";
    k.reply = std::string("KRB-ERROR");
    EXPECT_TRUE(k.request == "TGS-REQ");
    EXPECT_FALSE(k.request == "AS-REQ");
    EXPECT_TRUE("KRB-ERROR" == k.reply);
    EXPECT_EQ(k.reply.view(), "KRB-ERROR");
    k.reply = "";
    EXPECT_TRUE(k.reply.empty());
    k.reply = "no such message";
    EXPECT_FALSE(k.reply.empty());
    EXPECT_STREQ(k.reply.c_str(), "?");
    EXPECT_EQ(sizeof(KrbMessageName), 1u);
}

TEST(KerberosEvent, RarePartsStayUnmadeUntilSet) {
    KerberosEvent k;
    EXPECT_FALSE(k.extras);
    // Read without being made: empty parts.
    const KerberosEvent& view = k;
    EXPECT_EQ(view.extra().s4u_user, "");
    EXPECT_TRUE(view.extra().additional_ticket_snames.empty());
    EXPECT_EQ(view.extra().error_text, "");
    EXPECT_FALSE(view.extra().evidence_ticket);
    EXPECT_FALSE(view.extra().reply_ticket);
    EXPECT_FALSE(view.extra().fast_armored);
    EXPECT_FALSE(k.extras) << "reading made them";
    k.extra_to_set().s4u_user = "alice@AD.LAB.TEST";
    ASSERT_TRUE(k.extras);
    k.extra_to_set().error_text = "why";
    EXPECT_EQ(k.extra().s4u_user, "alice@AD.LAB.TEST") << "setting a second part lost the first";
    EXPECT_EQ(k.extra().error_text, "why");
    // Copies are deep (the analyzer keeps its own copy of an event the writer also holds).
    KerberosEvent copy = k;
    copy.extra_to_set().s4u_user = "bob@AD.LAB.TEST";
    EXPECT_EQ(k.extra().s4u_user, "alice@AD.LAB.TEST");
    EXPECT_EQ(copy.extra().s4u_user, "bob@AD.LAB.TEST");
}

TEST(KerberosEvent, ErrorNameFollowsTheCode) {
    KerberosEvent k;
    EXPECT_EQ(k.error_name(), "");
    k.error_code = 7;
    EXPECT_EQ(k.error_name(), "KDC_ERR_S_PRINCIPAL_UNKNOWN");
    k.error_code = 13;
    EXPECT_EQ(k.error_name(), "KDC_ERR_BADOPTION");
    k.error_code = 37;
    EXPECT_EQ(k.error_name(), "KRB_AP_ERR_SKEW");
    k.error_code = 999;
    EXPECT_EQ(k.error_name(), "KRB_ERR_999");
    k.error_code = -5;
    EXPECT_EQ(k.error_name(), "KRB_ERR_-5");
}

}  // namespace
