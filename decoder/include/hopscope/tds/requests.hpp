// Client requests carried in TDS messages: SQL batch (packet type 0x01) [MS-TDS 2.2.6.7] and RPC
// (packet type 0x03) [MS-TDS 2.2.6.6], both preceded by ALL_HEADERS in TDS 7.2+ [MS-TDS 2.2.5.3].
//
// The payload handed in may be only a bounded prefix of a large message: what could be read is
// returned with `truncated` set, not an error. Parameter values are never kept, except the SQL
// text parameter of the well-known procedures that carry one (sp_executesql, sp_prepare, ...);
// SQL text has `PASSWORD = '...'` literals masked before it leaves the parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hopscope/common/byte_reader.hpp"
#include "hopscope/common/decode.hpp"
#include "hopscope/tds/types.hpp"

namespace hopscope::tds {

struct RequestLimits {
    std::size_t max_text_chars = 4096;  ///< SQL text kept (UTF-16 code units)
    std::size_t max_params = 256;       ///< parameters described per call
    std::size_t max_calls = 64;         ///< RPC calls described per message
    /// false: SQL text is left as it came, for a caller that converts it only when it needs it
    /// (the pipeline: when an error follows). A batch's text goes to SqlBatch::utf16 (a view into
    /// the payload) and SqlBatch::text stays empty; an RPC's statement goes to
    /// RpcCall::statement_raw and RpcCall::statement stays empty. Converting and masking every
    /// request was most of the proxy's analysis per exchange of a query load.
    bool convert_text = true;
};

/// ALL_HEADERS [MS-TDS 2.2.5.3]: TotalLength DWORD (includes itself), then headers.
struct AllHeaders {
    bool present = false;
    std::uint32_t total_length = 0;
    std::optional<std::uint64_t> transaction_descriptor;  ///< header type 2
    std::optional<std::uint32_t> outstanding_requests;    ///< header type 2
    bool query_notifications = false;                     ///< header type 1
    bool trace_activity = false;                          ///< header type 3
};

struct SqlBatch {
    AllHeaders headers;
    std::string text;  ///< UTF-8, at most max_text_chars UTF-16 units, passwords masked
    /// With RequestLimits::convert_text false: the UTF-16LE text behind `text` (the same
    /// units, not yet converted or masked), a view into the payload parsed. Empty otherwise.
    Bytes utf16;
    std::size_t text_chars = 0;  ///< UTF-16 units present in the payload
    bool truncated = false;      ///< text cut by the limit or by the end of the payload prefix
};

/// `tds_version`: from LOGIN7/LOGINACK; ALL_HEADERS is expected for 7.2+ (0x72... and later,
/// and 8.0). Pass 0 when unknown (capture started mid-connection): ALL_HEADERS is then detected
/// by its shape. Ok or Malformed (ALL_HEADERS impossible); a payload that ends early is ok with
/// `out.truncated`.
DecodeResult parse_sql_batch(Bytes payload, std::uint32_t tds_version, SqlBatch& out,
                             RequestLimits limits = {});

struct RpcParam {
    std::string name;               ///< "@name", empty for positional parameters
    std::uint8_t status_flags = 0;  ///< 0x01 by-ref (output), 0x02 default value, 0x08 encrypted
    TypeInfo type;
    bool is_null = false;
};

struct RpcCall {
    std::string proc_name;           ///< name, or the well-known name for a ProcID
    std::uint16_t proc_id = 0;       ///< non-zero when sent as 0xFFFF + ProcID (10 = sp_executesql)
    std::uint16_t option_flags = 0;  ///< 0x01 WithRecomp, 0x02 NoMetaData, 0x04 ReuseMetaData
    std::vector<RpcParam> params;    ///< at most max_params
    std::size_t param_count = 0;     ///< parameters seen (may exceed params.size())
    std::string statement;           ///< SQL text parameter of sp_executesql & co (masked)
    /// With RequestLimits::convert_text false: the bytes behind `statement` (UTF-16LE, or one
    /// byte per character when `statement_unicode` is false), not yet converted or masked.
    std::vector<std::uint8_t> statement_raw;
    bool statement_unicode = true;
    bool statement_truncated = false;
};

struct RpcRequest {
    AllHeaders headers;
    std::vector<RpcCall> calls;  ///< one per RPCReqBatch (batched RPCs separated by 0xFF/0x80)
    bool truncated = false;      ///< the payload ended before the message did
    /// Why the description stops early although the request is not malformed (code Unsupported:
    /// an encrypted or table-valued parameter that cannot be walked; `truncated` is set too).
    DecodeError stopped;
};

/// Ok or Malformed; `out` keeps the calls read before a failure. A payload that ends early (the
/// message is only a prefix) is ok with `out.truncated`.
DecodeResult parse_rpc(Bytes payload, std::uint32_t tds_version, RpcRequest& out,
                       RequestLimits limits = {});

/// Name of a well-known ProcID [MS-TDS 2.2.6.6] (1 sp_cursor ... 15 sp_unprepare), or "".
const char* well_known_proc_name(std::uint16_t id);

/// Masks the value of every `PASSWORD = '...'` (and `PASSWORD = N'...'`) in SQL text with "***".
std::string mask_sql_secrets(std::string text);

/// SqlBatch::text from SqlBatch::utf16, or RpcCall::statement from RpcCall::statement_raw:
/// converted to UTF-8 (from UTF-16LE, or from single bytes when `unicode` is false), passwords
/// masked.
std::string sql_text(Bytes raw, bool unicode = true);

}  // namespace hopscope::tds
