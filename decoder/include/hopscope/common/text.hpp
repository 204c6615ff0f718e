// Text helpers shared by every parser: UCS-2/UTF-16LE and single-byte strings to UTF-8, hex.
#pragma once

#include <cstddef>
#include <string>

#include "hopscope/common/byte_reader.hpp"

namespace hopscope {

/// UTF-16LE to UTF-8. Unpaired surrogates become U+FFFD; an odd trailing byte is dropped.
/// Never fails: wire text is evidence, so it is shown as faithfully as possible.
std::string utf16le_to_utf8(Bytes data);

/// Single-byte (OEM/ASCII) text to UTF-8: bytes >= 0x80 are taken as Latin-1, control bytes other
/// than tab/newline are kept (escaping is the job of the output layer).
std::string latin1_to_utf8(Bytes data);

/// Lower-case hex of the bytes, for non-secret identifiers only (OIDs, GUIDs, nonces are fine;
/// responses, keys and passwords must never be passed here).
std::string to_hex(Bytes data);

}  // namespace hopscope
