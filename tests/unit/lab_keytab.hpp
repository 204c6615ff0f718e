// The lab's files (captures/lab/) and keytabs (<scenario>.keytab, lab-only keys) as the tests
// read them.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

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

}  // namespace hopscope::testing
