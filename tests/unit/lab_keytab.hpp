// The lab's files (captures/lab/) and keytabs (<scenario>.keytab, lab-only keys) as the tests
// read them.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

#include "hopscope/captures/keytab.hpp"

namespace hopscope::testing {

inline std::string lab_file(const std::string& name) {
    return std::string(HOPSCOPE_CAPTURES_DIR) + "/lab/" + name;
}

/// The keytab of a lab scenario; a test failure (and nullptr) when it cannot be loaded.
inline std::unique_ptr<captures::Keytab> lab_keytab(const std::string& scenario) {
    std::string error;
    auto k = captures::Keytab::load(lab_file(scenario + ".keytab"), error);
    EXPECT_TRUE(k) << error;
    return k;
}

/// The AD scenarios' S4U2Proxy evidence tickets (alice's ticket to svc_sqla) and whether each
/// is forwardable: 18, 19, 23 and 24 yes (19 and 24 are refused for the delegation itself); 21
/// an S4U2Self ticket of an account without protocol transition and 22 a sensitive user's: no.
inline constexpr std::pair<const char*, bool> kEvidenceTicketForwardable[] = {
    {"18-constrained-delegation-allowed", true},
    {"19-constrained-delegation-not-in-list", true},
    {"21-protocol-transition-not-allowed", false},
    {"22-constrained-delegation-sensitive-user", false},
    {"23-rbcd-allowed", true},
    {"24-rbcd-not-allowed", true},
};

}  // namespace hopscope::testing
