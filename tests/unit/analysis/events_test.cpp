// The events' own types: Boxed<T>, the optional kept on the heap that LoginEvent::error is, keeps
// std::optional's meaning (empty by default, deep copies, assignment of a value and of nullopt).
#include "hopscope/analysis/events.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>

namespace {

using hopscope::analysis::Boxed;
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

}  // namespace
