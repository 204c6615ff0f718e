#include "hopscope/common/decode.hpp"

namespace hopscope {

const char* to_string(DecodeStatus s) {
    switch (s) {
        case DecodeStatus::Consumed:
            return "consumed";
        case DecodeStatus::NeedMore:
            return "need-more";
        case DecodeStatus::Encrypted:
            return "encrypted";
        case DecodeStatus::NotTds:
            return "not-tds";
        case DecodeStatus::Malformed:
            return "malformed";
    }
    return "?";
}

const char* to_string(DecodeError::Code c) {
    using C = DecodeError::Code;
    switch (c) {
        case C::None:
            return "none";
        case C::Truncated:
            return "truncated";
        case C::BadLength:
            return "bad-length";
        case C::BadValue:
            return "bad-value";
        case C::BadTag:
            return "bad-tag";
        case C::TooDeep:
            return "too-deep";
        case C::TooLarge:
            return "too-large";
        case C::Unsupported:
            return "unsupported";
        case C::Desync:
            return "desync";
    }
    return "?";
}

}  // namespace hopscope
