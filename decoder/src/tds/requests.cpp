// SQL batch [MS-TDS 2.2.6.7] and RPC request [MS-TDS 2.2.6.6] parsing, with ALL_HEADERS
// [MS-TDS 2.2.5.3].
#include "hopscope/tds/requests.hpp"

#include <algorithm>
#include <cctype>

#include "hopscope/common/text.hpp"
#include "hopscope/tds/login7.hpp"
#include "hopscope/tds/wire_text.hpp"

namespace hopscope::tds {
namespace {

using Code = DecodeError::Code;

enum class HeadersResult { Ok, Absent, Truncated, Bad };

// ALL_HEADERS: TotalLength DWORD (includes itself), then {HeaderLength DWORD (includes itself),
// HeaderType USHORT, HeaderData}*, the header lengths adding up to TotalLength.
HeadersResult read_all_headers(ByteReader& r, AllHeaders& h, std::string& why) {
    const std::size_t start = r.position();
    std::uint32_t total = 0;
    if (!r.u32le(total)) {
        why = "ALL_HEADERS: no TotalLength";
        return HeadersResult::Truncated;
    }
    if (total < 4) {
        why = "ALL_HEADERS: TotalLength < 4";
        return HeadersResult::Bad;
    }
    h.total_length = total;
    std::size_t used = 4;
    while (used < total) {
        std::uint32_t len = 0;
        std::uint16_t type = 0;
        if (!r.u32le(len) || !r.u16le(type)) {
            why = "ALL_HEADERS: header truncated";
            return HeadersResult::Truncated;
        }
        if (len < 6 || len > total - used) {
            why = "ALL_HEADERS: header length inconsistent with TotalLength";
            return HeadersResult::Bad;
        }
        if (type < 1 || type > 3) {
            why = "ALL_HEADERS: unknown header type";
            return HeadersResult::Bad;
        }
        Bytes data;
        if (!r.bytes(len - 6, data)) {
            why = "ALL_HEADERS: header data truncated";
            return HeadersResult::Truncated;
        }
        ByteReader d(data);
        if (type == 1) {
            h.query_notifications = true;
        } else if (type == 2) {
            std::uint64_t td = 0;
            std::uint32_t outstanding = 0;
            if (!d.u64le(td) || !d.u32le(outstanding)) {
                why = "ALL_HEADERS: short transaction descriptor header";
                return HeadersResult::Bad;
            }
            h.transaction_descriptor = td;
            h.outstanding_requests = outstanding;
        } else {
            h.trace_activity = true;
        }
        used += len;
    }
    h.present = true;
    (void)start;
    return HeadersResult::Ok;
}

/// Reads ALL_HEADERS when the version says so; with version 0 (unknown), only when the bytes
/// have its shape (a plausible TotalLength whose headers add up exactly).
HeadersResult maybe_headers(ByteReader& r, std::uint32_t version, AllHeaders& h, std::string& why) {
    if (version != 0 && is_pre72(version)) return HeadersResult::Absent;
    if (version == 0) {
        ByteReader probe = r;
        AllHeaders tmp;
        std::string ignored;
        const auto res = read_all_headers(probe, tmp, ignored);
        if (res != HeadersResult::Ok || tmp.total_length > 1024) return HeadersResult::Absent;
    }
    return read_all_headers(r, h, why);
}

bool ieq_suffix(const std::string& s, const char* suffix) {
    const std::size_t n = std::char_traits<char>::length(suffix);
    if (s.size() < n) return false;
    for (std::size_t i = 0; i < n; ++i) {
        if (std::tolower(static_cast<unsigned char>(s[s.size() - n + i])) != suffix[i]) {
            return false;
        }
    }
    return true;
}

/// Index of the SQL text parameter of the procedures that carry one, or -1.
int statement_param(std::uint16_t id, const std::string& name) {
    switch (id) {
        case 10:
            return 0;  // sp_executesql @stmt
        case 2:
            return 1;  // sp_cursoropen @cursor OUT, @stmt
        case 11:       // sp_prepare @handle OUT, @params, @stmt
        case 13:       // sp_prepexec @handle OUT, @params, @stmt
        case 3:
            return 2;  // sp_cursorprepare @handle OUT, @params, @stmt
        case 5:
            return 3;  // sp_cursorprepexec @handle OUT, @cursor OUT, @params, @stmt
        default:
            break;
    }
    if (ieq_suffix(name, "sp_executesql")) return 0;
    if (ieq_suffix(name, "sp_cursoropen")) return 1;
    if (ieq_suffix(name, "sp_prepare") || ieq_suffix(name, "sp_prepexec") ||
        ieq_suffix(name, "sp_cursorprepare")) {
        return 2;
    }
    if (ieq_suffix(name, "sp_cursorprepexec")) return 3;
    return -1;
}

bool is_text_type(const TypeInfo& t) {
    switch (t.type) {
        case 0xE7:
        case 0xEF:
        case 0x63:  // NVARCHAR, NCHAR, NTEXT
        case 0xA7:
        case 0xAF:
        case 0x23:  // VARCHAR, CHAR, TEXT
            return true;
        default:
            return false;
    }
}

bool is_unicode(const TypeInfo& t) {
    return t.type == 0xE7 || t.type == 0xEF || t.type == 0x63;
}

/// Reads a character value (any framing), keeping at most `cap_bytes` bytes of it.
DecodeResult read_text_value(ByteReader& r, const TypeInfo& ti, std::size_t cap_bytes,
                             std::vector<std::uint8_t>& out, bool& cut) {
    auto take = [&](Bytes b) {
        const std::size_t room = cap_bytes > out.size() ? cap_bytes - out.size() : 0;
        const std::size_t n = std::min(room, b.size());
        out.insert(out.end(), b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
        if (n < b.size()) cut = true;
    };
    const std::size_t start = r.position();
    switch (ti.kind) {
        case ValueKind::UShortLen: {
            std::uint16_t len = 0;
            Bytes b;
            if (!r.u16le(len)) return DecodeResult::need_more();
            if (len == 0xFFFF) return {};
            if (len > ti.max_length) {
                return make_error(Code::BadLength, start, "value longer than its declared maximum");
            }
            if (!r.bytes(len, b)) {
                take(r.rest());
                return DecodeResult::need_more();
            }
            take(b);
            return {};
        }
        case ValueKind::LongLen: {
            std::uint8_t ptr = 0;
            std::uint32_t len = 0;
            Bytes b;
            if (!r.u8(ptr)) return DecodeResult::need_more();
            if (ptr == 0) return {};
            if (!r.skip(std::size_t{ptr} + 8) || !r.u32le(len)) return DecodeResult::need_more();
            if (!r.bytes(len, b)) {
                take(r.rest());
                return DecodeResult::need_more();
            }
            take(b);
            return {};
        }
        case ValueKind::Plp: {
            std::uint64_t total = 0;
            if (!r.u64le(total)) return DecodeResult::need_more();
            if (total == 0xFFFFFFFFFFFFFFFFULL) return {};
            for (;;) {
                std::uint32_t chunk = 0;
                Bytes b;
                if (!r.u32le(chunk)) return DecodeResult::need_more();
                if (chunk == 0) return {};
                if (!r.bytes(chunk, b)) {
                    take(r.rest());
                    return DecodeResult::need_more();
                }
                take(b);
            }
        }
        default:
            return skip_value(r, ti);
    }
}

// Table-valued parameter [MS-TDS 2.2.5.5.5 TVP_TYPE_INFO, 2.2.6.6]: TVPTYPE 0xF3, DbName,
// OwningSchema, TypeName (B_VARCHAR), TVP_COLMETADATA (Count USHORT or TVP_NULL_TOKEN 0xFFFF;
// per column UserType ULONG, Flags USHORT, TYPE_INFO, ColName B_VARCHAR), optional
// TVP_ORDER_UNIQUE (0x10) and TVP_COLUMN_ORDERING (0x11), TVP_END_TOKEN 0x00; then rows:
// {TVP_ROW_TOKEN 0x01, a value per column (none for columns flagged fDefault 0x0200)}*, 0x00.
DecodeResult skip_tvp(ByteReader& r, TypeInfo& ti, std::size_t& rows) {
    const std::size_t start = r.position();
    std::uint8_t t = 0;
    std::uint16_t count = 0;
    Bytes db, schema, name;
    if (!r.u8(t) || !read_b_varchar(r, db) || !read_b_varchar(r, schema) ||
        !read_b_varchar(r, name) || !r.u16le(count)) {
        return DecodeResult::need_more();
    }
    ti = TypeInfo{};
    ti.type = 0xF3;
    ti.udt_name = utf16le_to_utf8(db);
    for (Bytes part : {schema, name}) {
        if (!ti.udt_name.empty()) ti.udt_name += '.';
        ti.udt_name += utf16le_to_utf8(part);
    }
    if (count == 0xFFFF) count = 0;  // TVP_NULL_TOKEN
    if (count > 1024) {
        return make_error(Code::BadLength, start, "TVP: more than 1024 columns");
    }
    std::vector<TypeInfo> cols(count);
    std::vector<bool> defaulted(count);
    for (std::uint16_t i = 0; i < count; ++i) {
        std::uint32_t user_type = 0;
        std::uint16_t flags = 0;
        if (!r.u32le(user_type) || !r.u16le(flags)) return DecodeResult::need_more();
        const DecodeResult st = parse_type_info(r, TypeContext::Rpc, cols[i]);
        if (!st.ok()) return st;  // a nested TVP is Unsupported too
        Bytes col_name;
        if (!read_b_varchar(r, col_name)) return DecodeResult::need_more();
        defaulted[i] = (flags & 0x0200) != 0;
    }
    for (;;) {  // optional metadata tokens, then TVP_END_TOKEN
        std::uint8_t tok = 0;
        std::uint16_t n = 0;
        if (!r.u8(tok)) return DecodeResult::need_more();
        if (tok == 0x00) break;
        if (tok != 0x10 && tok != 0x11) {
            return make_error(Code::BadValue, r.position() - 1, "TVP: unknown metadata token");
        }
        if (!r.u16le(n) || !r.skip(std::size_t{n} * (tok == 0x10 ? 3 : 2))) {
            return DecodeResult::need_more();
        }
    }
    for (;;) {  // rows
        std::uint8_t tok = 0;
        if (!r.u8(tok)) return DecodeResult::need_more();
        if (tok == 0x00) return {};
        if (tok != 0x01) {
            return make_error(Code::BadValue, r.position() - 1, "TVP: expected a row or the end");
        }
        for (std::uint16_t i = 0; i < count; ++i) {
            if (defaulted[i]) continue;
            const DecodeResult st = skip_value(r, cols[i]);
            if (!st.ok()) return st;
        }
        ++rows;
    }
}

/// The optional ALL_HEADERS of a SQLBatch or RPC request into `out.headers`. False when the
/// request ends there: `out` is then marked truncated, or `res` is Malformed with the reason.
template <typename Request>
bool take_headers(ByteReader& r, std::uint32_t tds_version, Request& out, DecodeResult& res) {
    std::string why;
    switch (maybe_headers(r, tds_version, out.headers, why)) {
        case HeadersResult::Ok:
        case HeadersResult::Absent:
            break;
        case HeadersResult::Truncated:
            out.truncated = true;
            return false;
        case HeadersResult::Bad:
            res = make_error(Code::BadLength, 0, why);
            return false;
    }
    return true;
}

}  // namespace

const char* well_known_proc_name(std::uint16_t id) {
    switch (id) {
        case 1:
            return "sp_cursor";
        case 2:
            return "sp_cursoropen";
        case 3:
            return "sp_cursorprepare";
        case 4:
            return "sp_cursorexecute";
        case 5:
            return "sp_cursorprepexec";
        case 6:
            return "sp_cursorunprepare";
        case 7:
            return "sp_cursorfetch";
        case 8:
            return "sp_cursoroption";
        case 9:
            return "sp_cursorclose";
        case 10:
            return "sp_executesql";
        case 11:
            return "sp_prepare";
        case 12:
            return "sp_execute";
        case 13:
            return "sp_prepexec";
        case 14:
            return "sp_prepexecrpc";
        case 15:
            return "sp_unprepare";
        default:
            return "";
    }
}

namespace {

bool ident_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '@' || c == '#';
}

bool ends_with_secret_word(const std::string& word) {
    return ieq_suffix(word, "password") || ieq_suffix(word, "passwd") || ieq_suffix(word, "pwd") ||
           ieq_suffix(word, "secret");
}

bool is_positional_secret_proc(const std::string& word) {
    return ieq_suffix(word, "sp_addlogin") || ieq_suffix(word, "sp_password") ||
           ieq_suffix(word, "sp_setapprole") || ieq_suffix(word, "sp_addapprole") ||
           ieq_suffix(word, "sp_addlinkedsrvlogin") || ieq_suffix(word, "sp_approlepassword");
}

/// Replaces the quoted literal starting at `q` (the opening quote) by '***'; returns the index
/// after the replacement.
std::size_t mask_literal(std::string& s, std::size_t q) {
    std::size_t end = q + 1;
    while (end < s.size()) {
        if (s[end] == '\'') {
            if (end + 1 < s.size() && s[end + 1] == '\'') {
                end += 2;
                continue;
            }
            break;
        }
        ++end;
    }
    const std::size_t stop = std::min(end + 1, s.size());
    s.replace(q, stop - q, "'***'");
    return q + 5;
}

}  // namespace

std::string mask_sql_secrets(std::string s) {
    std::size_t i = 0;
    while (i < s.size()) {
        if (s[i] == '\'') {  // skip ordinary literals so their content is not taken for keywords
            std::size_t end = i + 1;
            while (end < s.size() &&
                   !(s[end] == '\'' && (end + 1 >= s.size() || s[end + 1] != '\''))) {
                end += s[end] == '\'' ? 2 : 1;
            }
            i = end + 1;
            continue;
        }
        if (!ident_char(s[i])) {
            ++i;
            continue;
        }
        std::size_t end = i;
        while (end < s.size() && ident_char(s[end]))
            ++end;
        const std::string word = s.substr(i, end - i);
        i = end;
        if (ends_with_secret_word(word)) {
            std::size_t j = i;
            while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j])))
                ++j;
            if (j >= s.size() || s[j] != '=') continue;
            ++j;
            while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j])))
                ++j;
            if (j < s.size() && (s[j] == 'N' || s[j] == 'n') && j + 1 < s.size() &&
                s[j + 1] == '\'')
                ++j;
            if (j < s.size() && s[j] == '\'') {
                i = mask_literal(s, j);
            } else if (j + 1 < s.size() && s[j] == '0' && (s[j + 1] == 'x' || s[j + 1] == 'X')) {
                std::size_t k = j + 2;  // PASSWORD = 0x... HASHED
                while (k < s.size() && std::isxdigit(static_cast<unsigned char>(s[k])))
                    ++k;
                s.replace(j, k - j, "0x***");
                i = j + 5;
            }
        } else if (is_positional_secret_proc(word)) {
            // Every literal up to the end of the statement may be a password.
            while (i < s.size() && s[i] != ';' && s[i] != '\n') {
                if (s[i] == '\'') {
                    i = mask_literal(s, i);
                } else {
                    ++i;
                }
            }
        }
    }
    return s;
}

DecodeResult parse_sql_batch(Bytes payload, std::uint32_t tds_version, SqlBatch& out,
                             RequestLimits limits) {
    out = SqlBatch{};
    ByteReader r(payload);
    DecodeResult res;
    if (!take_headers(r, tds_version, out, res)) return res;
    Bytes text = r.rest();
    out.text_chars = text.size() / 2;
    if (text.size() % 2) out.truncated = true;
    const std::size_t keep = std::min(out.text_chars, limits.max_text_chars);
    if (keep < out.text_chars) out.truncated = true;
    if (limits.convert_text) {
        out.text = sql_text(text.first(keep * 2));
    } else {
        out.utf16 = text.first(keep * 2);
    }
    return {};
}

std::string sql_text(Bytes raw, bool unicode) {
    return mask_sql_secrets(unicode ? utf16le_to_utf8(raw) : latin1_to_utf8(raw));
}

namespace {

/// NameLenProcID, then ProcName or a well-known ProcID, then OptionFlags. When the payload ends
/// inside them `out.truncated` is set, and a call whose name was read is kept in `out.calls`.
DecodeResult read_call_header(ByteReader& r, RpcCall& call, RpcRequest& out) {
    const std::size_t call_start = r.position();
    std::uint16_t name_len = 0;
    if (!r.u16le(name_len)) {
        out.truncated = true;
        return {};
    }
    if (name_len == 0xFFFF) {
        if (!r.u16le(call.proc_id)) {
            out.truncated = true;
            return {};
        }
        call.proc_name = well_known_proc_name(call.proc_id);
        if (call.proc_name.empty()) {
            return make_error(Code::BadValue, call_start, "RPC: unknown ProcID");
        }
    } else {
        if (name_len == 0 || name_len > 1046) {
            return make_error(Code::BadLength, call_start, "RPC: bad procedure name length");
        }
        Bytes name;
        if (!r.bytes(std::size_t{name_len} * 2, name)) {
            call.proc_name = utf16le_to_utf8(r.rest().first(r.remaining() & ~std::size_t{1}));
            out.calls.push_back(std::move(call));
            out.truncated = true;
            return {};
        }
        call.proc_name = utf16le_to_utf8(name);
    }
    if (!r.u16le(call.option_flags)) {
        out.calls.push_back(std::move(call));
        out.truncated = true;
    }
    return {};
}

/// Counts a parameter and describes it while the call has room.
void add_param(RpcCall& call, RpcParam&& p, const RequestLimits& limits) {
    ++call.param_count;
    if (call.params.size() < limits.max_params) call.params.push_back(std::move(p));
}

/// The value of parameter `p` (its TYPE_INFO read): skipped, or kept as the call's statement
/// when it is the SQL text parameter of sp_executesql & co.
DecodeResult read_param_value(ByteReader& r, RpcCall& call, RpcParam&& p, int stmt_index,
                              const RequestLimits& limits, RpcRequest& out) {
    DecodeResult vs;
    const bool is_stmt = static_cast<int>(call.param_count) == stmt_index && is_text_type(p.type);
    bool null = false;
    if (is_stmt) {
        std::vector<std::uint8_t> raw;
        bool cut = false;
        const std::size_t unit = is_unicode(p.type) ? 2 : 1;
        vs = read_text_value(r, p.type, limits.max_text_chars * unit, raw, cut);
        if (vs.status() == DecodeStatus::NeedMore) cut = true;
        if (raw.size() % unit) raw.pop_back();
        if (limits.convert_text) {
            call.statement = sql_text(raw, unit == 2);
        } else {
            call.statement_raw = std::move(raw);
            call.statement_unicode = unit == 2;
        }
        call.statement_truncated = cut;
    } else {
        vs = skip_value(r, p.type, &null);
    }
    p.is_null = null;
    add_param(call, std::move(p), limits);
    if (vs.status() == DecodeStatus::NeedMore) {
        out.truncated = true;
        return {};
    }
    return vs;
}

/// One parameter: name, status flags, TYPE_INFO, value. When it cannot be walked to its end
/// `out.truncated` is set (and `out.stopped` when the reason is a parameter of a kind that
/// cannot be walked); Malformed when its bytes break the protocol.
DecodeResult read_param(ByteReader& r, RpcCall& call, int stmt_index, const RequestLimits& limits,
                        RpcRequest& out) {
    RpcParam p;
    const std::size_t pstart = r.position();
    Bytes nb;
    if (!read_b_varchar(r, nb) || !r.u8(p.status_flags)) {
        out.truncated = true;
        return {};
    }
    p.name = utf16le_to_utf8(nb);
    if (p.status_flags & 0x08) {  // encrypted parameter (Always Encrypted)
        out.stopped = make_error(Code::Unsupported, pstart, "RPC: encrypted parameter");
        out.truncated = true;
        return {};
    }
    if (r.peek() == std::uint8_t{0xF3}) {  // table-valued parameter
        std::size_t rows = 0;
        const DecodeResult tv = skip_tvp(r, p.type, rows);
        add_param(call, std::move(p), limits);
        if (tv.ok()) return {};
        if (tv.status() == DecodeStatus::NeedMore || tv.error().code == Code::Unsupported) {
            if (tv.status() != DecodeStatus::NeedMore) out.stopped = tv.error();
            out.truncated = true;
            return {};
        }
        return tv;
    }
    const DecodeResult ts = parse_type_info(r, TypeContext::Rpc, p.type);
    if (ts.status() == DecodeStatus::NeedMore) {
        out.truncated = true;
        return {};
    }
    if (!ts.ok()) {
        if (ts.error().code != Code::Unsupported) return ts;
        add_param(call, std::move(p), limits);  // TVP: describe what came before it
        out.stopped = ts.error();
        out.truncated = true;
        return {};
    }
    return read_param_value(r, call, std::move(p), stmt_index, limits, out);
}

}  // namespace

DecodeResult parse_rpc(Bytes payload, std::uint32_t tds_version, RpcRequest& out,
                       RequestLimits limits) {
    out = RpcRequest{};
    ByteReader r(payload);
    DecodeResult res;
    if (!take_headers(r, tds_version, out, res)) return res;
    const bool pre72 = tds_version != 0 && is_pre72(tds_version);
    while (!r.empty()) {
        if (out.calls.size() >= limits.max_calls) {
            out.truncated = true;
            return {};
        }
        RpcCall call;
        res = read_call_header(r, call, out);
        if (!res.ok() || out.truncated) return res;
        const int stmt_index = statement_param(call.proc_id, call.proc_name);
        bool next_call = false;
        while (!r.empty()) {
            const std::uint8_t b = *r.peek();
            // BatchFlag 0xFF (0x80 before TDS 7.2) / NoExecFlag 0xFE end this call. A parameter
            // name is at most 128 characters, so 0xFF/0xFE cannot start a parameter.
            if (b == 0xFF || b == 0xFE || (pre72 && b == 0x80)) {
                r.skip(1);
                next_call = true;
                break;
            }
            res = read_param(r, call, stmt_index, limits, out);
            if (!res.ok()) {
                out.calls.push_back(std::move(call));
                return res;
            }
            if (out.truncated) break;
        }
        out.calls.push_back(std::move(call));
        if (out.truncated || !next_call) return {};
    }
    return {};
}

}  // namespace hopscope::tds
