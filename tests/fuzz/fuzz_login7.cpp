// Fuzzes the LOGIN7 parser. A returned SSPI view must lie inside the input.
#include <cstdint>

#include "hopscope/tds/login7.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    hopscope::tds::Login7 l;
    hopscope::Bytes sspi;
    if (hopscope::tds::parse_login7(hopscope::Bytes(data, size), l, sspi).ok()) {
        if (!sspi.empty() && (sspi.data() < data || sspi.data() + sspi.size() > data + size)) {
            __builtin_trap();
        }
        (void)hopscope::tds::to_string(l);
        (void)hopscope::tds::tds_version_name(l.tds_version);
    }
    return 0;
}
