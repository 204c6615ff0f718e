// KDCOptions bits from their names, for the tests that write KDC exchanges by hand.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "hopscope/auth/kerberos.hpp"

namespace hopscope::analysis::test {

/// The bits of the named KDCOptions (auth::kdc_option_name's names); throws on a name that is
/// none, so that a misspelt option fails the test instead of being left out.
inline std::uint32_t kdc_option_bits(const std::vector<std::string>& names) {
    std::uint32_t bits = 0;
    for (const std::string& n : names) {
        std::uint32_t found = 0;
        for (std::uint32_t bit = 0x80000000u; bit != 0 && found == 0; bit >>= 1)
            if (const char* name = auth::kdc_option_name(bit); name && n == name) found = bit;
        if (found == 0) throw std::invalid_argument("no KDC option named " + n);
        bits |= found;
    }
    return bits;
}

}  // namespace hopscope::analysis::test
