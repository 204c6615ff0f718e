// TDS token stream walker [MS-TDS 2.2.7 Packet Data Token Stream Definition].
//
// The stream is cut into small "units": one whole token for the length-delimited tokens and for
// COLMETADATA/ALTMETADATA/FEATUREEXTACK, and for rows the token byte, then each column value's
// length prefix. Value bytes are never buffered: once a value's length is known the parser only
// counts bytes off (`skip_`), so a 100 MB varchar(max) costs no memory. A unit that does not fit
// in the bytes at hand is kept in `buf_` (at most Limits::max_pending bytes) until more arrive.
#include "hopscope/tds/tokens.hpp"

#include <algorithm>
#include <map>

#include "hopscope/common/text.hpp"
#include "hopscope/tds/login7.hpp"
#include "hopscope/tds/wire_text.hpp"

namespace hopscope::tds {
namespace {

using Code = DecodeError::Code;

bool read_b_varbyte_hex(ByteReader& r, std::string& out) {
    std::uint8_t n = 0;
    Bytes b;
    if (!r.u8(n) || !r.bytes(n, b)) return false;
    out = to_hex(b);
    return true;
}

enum class Unit : std::uint8_t { Ok, More, Bad };

}  // namespace

struct TokenStreamParser::Impl {
    enum class Phase : std::uint8_t { Token, Value, PlpChunk, ValueEnd };

    TokenSink& sink;
    Limits limits;
    std::uint32_t version = 0x74000004;

    std::vector<std::uint8_t> buf;  ///< bytes of the incomplete unit (message offset `base`)
    std::size_t need = 0;           ///< retry the pending unit only once this many bytes are there
    std::uint64_t skip = 0;         ///< value bytes still to be counted off
    std::size_t base = 0;           ///< message offset of the working span's first byte
    bool discarding = false;        ///< a decode error: the rest of this message is dropped
    DecodeError error;

    // Current COLMETADATA (kept across messages) and ALTMETADATA by id.
    bool have_columns = false;
    std::vector<Column> columns;
    std::map<std::uint16_t, std::vector<Column>> alt_columns;
    bool column_encryption = false;
    std::uint8_t data_classification = 0;  ///< version from FEATUREEXTACK, 0 = not negotiated

    // The row / RETURNVALUE being walked.
    Phase phase = Phase::Token;
    std::uint8_t token = 0;
    std::size_t token_start = 0;
    const std::vector<Column>* walk = nullptr;
    std::vector<Column> rv_column;  ///< the one "column" of a RETURNVALUE
    ReturnValue rv;
    std::uint16_t alt_id = 0;
    std::vector<std::uint8_t> null_bitmap;
    std::size_t col = 0;
    std::uint64_t plp_total = 0;
    std::uint64_t plp_sum = 0;
    bool row_events = true;     ///< ROW/NBCROW reach sink.on_row and sink.on_token
    bool info_messages = true;  ///< INFO tokens reach sink.on_message

    Impl(TokenSink& s, Limits l) : sink(s), limits(l) {}

    void end_message() {
        buf.clear();
        buf.shrink_to_fit();
        need = 0;
        skip = 0;
        base = 0;
        discarding = false;
        phase = Phase::Token;
        walk = nullptr;
        null_bitmap.clear();
        col = 0;
    }

    Unit fail(Code code, std::size_t pos, std::string detail) {
        error = make_error(code, base + pos, std::move(detail));
        return Unit::Bad;
    }
    Unit more(std::size_t unit_bytes) {
        need = std::min(unit_bytes, limits.max_pending);
        return Unit::More;
    }
    void emit_token(std::uint8_t tok, std::size_t start, std::size_t end) {
        sink.on_token(tok, end - start);
    }

    // ---- length-delimited tokens ----

    Unit parse_login_ack(Bytes body, std::size_t pos) {
        ByteReader r(body);
        LoginAck a;
        std::uint8_t hi = 0, lo = 0;
        if (!r.u8(a.interface) || !r.u32be(a.tds_version) || !read_b_varchar(r, a.prog_name) ||
            !r.u8(a.major) || !r.u8(a.minor) || !r.u8(hi) || !r.u8(lo)) {
            return fail(Code::Truncated, pos, "LOGINACK: shorter than its fields");
        }
        a.build = static_cast<std::uint16_t>((hi << 8) | lo);
        // SQL Server 2000 pads ProgName with NUL characters ("Microsoft SQL Server\0\0").
        while (!a.prog_name.empty() && a.prog_name.back() == '\0')
            a.prog_name.pop_back();
        version = a.tds_version;
        sink.take_login_ack(std::move(a));
        return Unit::Ok;
    }

    Unit parse_message(std::uint8_t tok, Bytes body, std::size_t pos) {
        ByteReader r(body);
        ServerMessage m;
        m.is_error = tok == 0xAA;
        std::uint32_t number = 0;
        Bytes text, server, proc;  // UTF-16LE, converted only when the message is reported
        if (!r.u32le(number) || !r.u8(m.state) || !r.u8(m.severity) || !read_us_varchar(r, text) ||
            !read_b_varchar(r, server) || !read_b_varchar(r, proc)) {
            return fail(
                Code::Truncated, pos,
                m.is_error ? "ERROR: shorter than its fields" : "INFO: shorter than its fields");
        }
        m.number = static_cast<std::int32_t>(number);
        if (is_pre72(version) && r.remaining() == 2) {
            std::uint16_t line = 0;
            r.u16le(line);
            m.line = line;
        } else if (!r.u32le(m.line)) {
            // Some TDS 7.1 servers send a USHORT line number even after a 7.2 login; accept it.
            std::uint16_t line = 0;
            if (!r.u16le(line)) return fail(Code::Truncated, pos, "ERROR/INFO: no line number");
            m.line = line;
        }
        if (!m.is_error && !info_messages) return Unit::Ok;
        m.text = utf16le_to_utf8(text);
        m.server = utf16le_to_utf8(server);
        m.proc = utf16le_to_utf8(proc);
        sink.on_message(m);
        return Unit::Ok;
    }

    Unit parse_env_change(Bytes body, std::size_t pos) {
        ByteReader r(body);
        EnvChange e;
        if (!r.u8(e.type)) return fail(Code::Truncated, pos, "ENVCHANGE: empty");
        bool ok = true;
        switch (e.type) {
            case envchange::kDatabase:
            case envchange::kLanguage:
            case envchange::kCharset:
            case envchange::kPacketSize:
            case envchange::kUnicodeLcid:
            case envchange::kUnicodeComparisonFlags:
            case envchange::kMirroringPartner:
            case envchange::kUserInstanceName:
                ok = read_b_varchar(r, e.new_value) && read_b_varchar(r, e.old_value);
                break;
            case envchange::kCollation:
            case envchange::kBeginTransaction:
            case envchange::kCommitTransaction:
            case envchange::kRollbackTransaction:
            case envchange::kEnlistDtcTransaction:
            case envchange::kDefectTransaction:
            case envchange::kTransactionManagerAddress:
            case envchange::kTransactionEnded:
            case envchange::kResetConnectionAck:
                ok = read_b_varbyte_hex(r, e.new_value) && read_b_varbyte_hex(r, e.old_value);
                break;
            case envchange::kPromoteTransaction: {  // promote transaction: L_VARBYTE new value,
                                                    // 0x00 old value
                std::uint32_t n = 0;
                Bytes b;
                ok = r.u32le(n) && r.bytes(n, b);
                if (ok) e.new_value = to_hex(b);
                break;
            }
            case envchange::kRouting: {  // routing [MS-TDS 2.2.7.9]: USHORT length, protocol, port,
                                         // US_VARCHAR
                std::uint16_t n = 0;
                Bytes b;
                ok = r.u16le(n) && r.bytes(n, b);
                if (ok) {
                    ByteReader rr(b);
                    ok = rr.u8(e.routing_protocol) && rr.u16le(e.routing_port) &&
                         read_us_varchar(rr, e.routing_server) && rr.empty();
                    if (ok) e.new_value = e.routing_server + "," + std::to_string(e.routing_port);
                }
                std::uint16_t old_len = 0;
                ok = ok && r.u16le(old_len) && r.skip(old_len);
                break;
            }
            default:
                break;  // unknown type: reported with its type only, skipped by the length
        }
        if (!ok) return fail(Code::Truncated, pos, "ENVCHANGE: value runs past the token");
        sink.on_env_change(e);
        return Unit::Ok;
    }

    Unit parse_fed_auth_info(Bytes body, std::size_t pos) {
        ByteReader r(body);
        std::uint32_t count = 0;
        if (!r.u32le(count)) return fail(Code::Truncated, pos, "FEDAUTHINFO: no count");
        if (count > body.size() / 9) return fail(Code::BadLength, pos, "FEDAUTHINFO: bad count");
        FedAuthInfo info;
        for (std::uint32_t i = 0; i < count; ++i) {
            std::uint8_t id = 0;
            std::uint32_t len = 0, off = 0;
            if (!r.u8(id) || !r.u32le(len) || !r.u32le(off)) {
                return fail(Code::Truncated, pos, "FEDAUTHINFO: option list truncated");
            }
            // DataOffset is measured from CountOfInfoIDs, the start of the body [MS-TDS 2.2.7.12].
            auto data = r.sub(off, len);
            if (!data) return fail(Code::BadLength, pos, "FEDAUTHINFO: data outside the token");
            if (id == 0x01) info.sts_url = utf16le_to_utf8(data->data());
            if (id == 0x02) info.spn = utf16le_to_utf8(data->data());
        }
        sink.on_fed_auth_info(info);
        return Unit::Ok;
    }

    // ---- metadata ----

    /// UserType, Flags, TYPE_INFO, [TableName], ColName (COLMETADATA ColumnData) or, for
    /// ALTMETADATA, the same after Op/Operand.
    Unit read_column(ByteReader& r, Column& c, bool with_name) {
        const std::size_t start = r.position();
        if (is_pre72(version)) {
            std::uint16_t ut = 0;
            if (!r.u16le(ut)) return Unit::More;
            c.user_type = ut;
        } else if (!r.u32le(c.user_type)) {
            return Unit::More;
        }
        if (!r.u16le(c.flags)) return Unit::More;
        if ((c.flags & 0x0800) && !column_encryption) {
            return fail(Code::Unsupported, start,
                        "encrypted column but column encryption was not negotiated (or not seen)");
        }
        const DecodeResult st = parse_type_info(r, TypeContext::Metadata, c.info);
        if (st.status() == DecodeStatus::NeedMore) return Unit::More;
        if (!st.ok()) {
            error = st.error();
            error.offset += base;
            return Unit::Bad;
        }
        c.type = c.info.type;
        c.max_length = c.info.max_length;
        if (c.info.kind == ValueKind::LongLen) {  // TEXT/NTEXT/IMAGE: TableName
            if (is_pre72(version)) {
                if (!read_us_varchar(r, c.table_name)) return Unit::More;
            } else {
                std::uint8_t parts = 0;
                if (!r.u8(parts)) return Unit::More;
                for (std::uint8_t i = 0; i < parts; ++i) {
                    std::string part;
                    if (!read_us_varchar(r, part)) return Unit::More;
                    if (i) c.table_name += '.';
                    c.table_name += part;
                }
            }
        }
        if (c.flags & 0x0800) {
            // CryptoMetaData [MS-TDS 2.2.7.4]: Ordinal USHORT, UserType ULONG, BaseTypeInfo
            // TYPE_INFO, EncryptionAlgo BYTE, [AlgoName B_VARCHAR if EncryptionAlgo is 0],
            // EncryptionAlgoType BYTE, NormVersion BYTE. The column's own TYPE_INFO (varbinary)
            // frames the values; the base type is kept in `info` only for display.
            std::uint16_t ordinal = 0;
            std::uint32_t base_user_type = 0;
            std::uint8_t algo = 0, algo_type = 0, norm = 0;
            TypeInfo base_type;
            if (!r.u16le(ordinal) || !r.u32le(base_user_type)) return Unit::More;
            const DecodeResult bs = parse_type_info(r, TypeContext::Metadata, base_type);
            if (bs.status() == DecodeStatus::NeedMore) return Unit::More;
            if (!bs.ok()) {
                error = bs.error();
                error.offset += base;
                return Unit::Bad;
            }
            std::string algo_name;
            if (!r.u8(algo)) return Unit::More;
            if (algo == 0 && !read_b_varchar(r, algo_name)) return Unit::More;
            if (!r.u8(algo_type) || !r.u8(norm)) return Unit::More;
        }
        if (with_name && !read_b_varchar(r, c.name)) return Unit::More;
        return Unit::Ok;
    }

    // CekTable [MS-TDS 2.2.7.4]: EkValueCount USHORT, then per key DatabaseId, CekId, CekVersion
    // (ULONG each), CekMDVersion ULONGLONG, Count BYTE and Count EncryptionKeyValues
    // (EncryptedKey US_VARBYTE, KeyStoreName B_VARCHAR, KeyPath US_VARCHAR, AsymmetricAlgo
    // B_VARCHAR). Only walked over: the encrypted keys are key material and are never kept.
    Unit skip_cek_table(ByteReader& r) {
        std::uint16_t keys = 0;
        if (!r.u16le(keys)) return Unit::More;
        for (std::uint16_t k = 0; k < keys; ++k) {
            std::uint8_t values = 0;
            if (!r.skip(4 + 4 + 4 + 8) || !r.u8(values)) return Unit::More;
            for (std::uint8_t v = 0; v < values; ++v) {
                std::uint16_t key_len = 0;
                std::string ignored;
                if (!r.u16le(key_len) || !r.skip(key_len) || !read_b_varchar(r, ignored) ||
                    !read_us_varchar(r, ignored) || !read_b_varchar(r, ignored)) {
                    return Unit::More;
                }
            }
        }
        return Unit::Ok;
    }

    Unit parse_col_metadata(ByteReader& r, std::size_t start) {
        std::uint16_t count = 0;
        if (!r.u16le(count)) return more(3);
        if (count == 0xFFFF) {  // NoMetaData: rows keep using the current columns
            emit_token(0x81, start, r.position());
            return Unit::Ok;
        }
        if (column_encryption) {
            const Unit u = skip_cek_table(r);
            if (u == Unit::More) return more(r.position() - start + 1 + (r.size() - start) / 2);
        }
        std::vector<Column> cols;
        cols.reserve(std::min<std::size_t>(count, r.remaining() / 8 + 1));
        for (std::uint16_t i = 0; i < count; ++i) {
            Column c;
            const Unit u = read_column(r, c, true);
            if (u == Unit::More) return more(r.position() - start + 1 + (r.size() - start) / 2);
            if (u == Unit::Bad) return u;
            cols.push_back(std::move(c));
        }
        columns = std::move(cols);
        have_columns = true;
        plan_steps();
        sink.on_col_metadata(columns);
        emit_token(0x81, start, r.position());
        return Unit::Ok;
    }

    // ALTMETADATA 0x88 [MS-TDS 2.2.7.1]: Count, Id, ByCols, ColNum*, ComputeData*.
    Unit parse_alt_metadata(ByteReader& r, std::size_t start) {
        std::uint16_t count = 0, id = 0;
        std::uint8_t by_cols = 0;
        if (!r.u16le(count) || !r.u16le(id) || !r.u8(by_cols) ||
            !r.skip(std::size_t{by_cols} * 2)) {
            return more(r.position() - start + 1);
        }
        std::vector<Column> cols;
        cols.reserve(std::min<std::size_t>(count, r.remaining() / 8 + 1));
        for (std::uint16_t i = 0; i < count; ++i) {
            Column c;
            std::uint8_t op = 0;
            std::uint16_t operand = 0;
            if (!r.u8(op) || !r.u16le(operand)) return more(r.position() - start + 1);
            const Unit u = read_column(r, c, true);
            if (u == Unit::More) return more(r.position() - start + 1 + (r.size() - start) / 2);
            if (u == Unit::Bad) return u;
            cols.push_back(std::move(c));
        }
        if (alt_columns.size() >= 64 && !alt_columns.count(id)) alt_columns.clear();
        alt_columns[id] = std::move(cols);
        emit_token(0x88, start, r.position());
        return Unit::Ok;
    }

    Unit parse_feature_ext_ack(ByteReader& r, std::size_t start) {
        std::vector<FeatureAck> acks;
        for (;;) {
            FeatureAck a;
            if (!r.u8(a.feature_id)) return more(r.position() - start + 1);
            if (a.feature_id == 0xFF) break;
            if (!r.u32le(a.data_length)) return more(r.position() - start + 4);
            if (a.data_length > limits.max_pending) {
                return fail(Code::TooLarge, start, "FEATUREEXTACK: feature data over the limit");
            }
            if (!r.skip(a.data_length)) return more(r.position() - start + a.data_length);
            if (acks.size() >= 256) return fail(Code::TooLarge, start, "FEATUREEXTACK: too many");
            acks.push_back(a);
        }
        for (const auto& a : acks) {
            if (a.feature_id == 0x04 && a.data_length > 0) column_encryption = true;
        }
        // DATACLASSIFICATION ack data: version BYTE, enabled BYTE [MS-TDS 2.2.7.11].
        for (std::size_t i = 0, off = 0; i < acks.size(); ++i) {
            off += 5;
            if (acks[i].feature_id == 0x09 && acks[i].data_length >= 1) {
                ByteReader d(r.data().subspan(start + 1 + off));
                std::uint8_t ver = 0, enabled = 1;
                d.u8(ver);
                if (acks[i].data_length >= 2) d.u8(enabled);
                data_classification = enabled ? ver : 0;
            }
            off += acks[i].data_length;
        }
        sink.on_feature_ext_ack(acks);
        emit_token(0xAE, start, r.position());
        return Unit::Ok;
    }

    // DATACLASSIFICATION 0xA3 [MS-TDS 2.2.7.5]: SensitivityLabels and InformationTypes
    // (USHORT count of Name US_VARCHAR + Id US_VARCHAR), [SensitivityRank LONG] (version 2+),
    // then per column a USHORT count of {SensitivityLabelIndex USHORT, InformationTypeIndex
    // USHORT, [SensitivityRank LONG]}. No length prefix: the version comes from FEATUREEXTACK.
    Unit parse_data_classification(ByteReader& r, std::size_t start) {
        if (data_classification == 0) {
            return fail(Code::Unsupported, start,
                        "DATACLASSIFICATION without a negotiated version (FEATUREEXTACK not seen)");
        }
        const bool ranks = data_classification >= 2;
        auto grow = [&] { return more(r.position() - start + 1 + (r.size() - start) / 2); };
        for (int list = 0; list < 2; ++list) {
            std::uint16_t n = 0;
            if (!r.u16le(n)) return grow();
            for (std::uint16_t i = 0; i < n; ++i) {
                std::string ignored;
                if (!read_us_varchar(r, ignored) || !read_us_varchar(r, ignored)) return grow();
            }
        }
        if (ranks && !r.skip(4)) return grow();
        std::uint16_t cols = 0;
        if (!r.u16le(cols)) return grow();
        for (std::uint16_t c = 0; c < cols; ++c) {
            std::uint16_t props = 0;
            if (!r.u16le(props)) return grow();
            if (!r.skip(std::size_t{props} * (ranks ? 8 : 4))) return grow();
        }
        emit_token(0xA3, start, r.position());
        return Unit::Ok;
    }

    // ---- rows ----

    Unit begin_walk(ByteReader& r, std::size_t start, std::uint8_t tok,
                    const std::vector<Column>* cols) {
        token = tok;
        token_start = base + start;
        walk = cols;
        col = 0;
        null_bitmap.clear();
        if (tok == 0xD2) {
            const std::size_t n = (cols->size() + 7) / 8;
            Bytes bm;
            if (!r.bytes(n, bm)) return more(r.position() - start + n);
            null_bitmap.assign(bm.begin(), bm.end());
        }
        phase = Phase::Value;
        skip_nulls(r);
        return Unit::Ok;
    }

    bool column_is_null(std::size_t i) const {
        return !null_bitmap.empty() && (null_bitmap[i / 8] >> (i % 8)) & 1;
    }

    /// Moves past NBCROW null columns; ends the row when no column is left.
    void skip_nulls(ByteReader& r) {
        while (col < walk->size() && column_is_null(col))
            ++col;
        if (col >= walk->size()) end_walk(r);
    }

    void end_walk(ByteReader& r) {
        phase = Phase::Token;
        const std::size_t size = base + r.position() - token_start;
        if (token == 0xAC) {
            sink.on_return_value(rv);
        } else if (token == 0xD3) {
            sink.on_alt_row(alt_id);
        } else if (row_events) {
            sink.on_row();
        }
        if (row_events || (token != 0xD1 && token != 0xD2)) sink.on_token(token, size);
        walk = nullptr;
    }

    void value_done(ByteReader& r) {
        ++col;
        phase = Phase::Value;
        skip_nulls(r);
    }

    /// How the fast path below steps over the values of the current COLMETADATA, worked out
    /// once per COLMETADATA so that a row costs no per-value type dispatch or out-of-line length
    /// check. A step is `pre` bytes of fixed-length columns, then one value (Fixed: `arg`
    /// bytes; ByteLen, UShortLen: a length prefix checked as step_value checks it; Slow: left
    /// to step_value: TEXT, sql_variant, PLP) and covers columns [first, next).
    struct Step {
        enum class Op : std::uint8_t { Fixed, ByteLen, UShortLen, Slow };
        Op op = Op::Slow;
        std::uint32_t mask = 0;  ///< ByteLen: bit n set = length n (< 32) is valid
        std::uint32_t arg = 0;   ///< Fixed: size; ByteLen: lengths 32..arg valid; UShortLen: max
        std::uint32_t pre = 0;   ///< bytes of the fixed-length columns before the value
        std::uint16_t first = 0;
        std::uint16_t next = 0;
    };
    std::vector<Step> col_steps;  ///< one per column, pre = 0: NBCROW and rows resumed midway
    std::vector<Step> row_steps;  ///< ROW: runs of fixed-length columns folded into one step
    /// The most bytes a ROW's values can take (token byte not counted), or kStop when a column
    /// is Slow. A ROW with at least this many bytes after its token byte is walked without
    /// bounds checks (unchecked_row).
    std::size_t row_worst = 0;

    static constexpr std::size_t kStop = ~std::size_t{0};

    /// Bytes of the value (after s.pre) at `p`, or kStop: not wholly in [p, p + avail) or a
    /// length step_value would refuse (it then reports it).
    static std::size_t value_size(const Step& s, const std::uint8_t* p, std::size_t avail) {
        switch (s.op) {
            case Step::Op::Fixed:
                return s.arg <= avail ? s.arg : kStop;
            case Step::Op::ByteLen: {
                if (avail == 0) return kStop;
                const std::uint32_t len = *p;
                if (len < 32 ? ((s.mask >> len) & 1) == 0 : len > s.arg) return kStop;
                return len < avail ? std::size_t{1} + len : kStop;
            }
            case Step::Op::UShortLen: {
                if (avail < 2) return kStop;
                const std::uint32_t len = p[0] | (std::uint32_t{p[1]} << 8);
                if (len == 0xFFFF) return 2;
                if (len > s.arg) return kStop;
                return std::size_t{2} + len <= avail ? std::size_t{2} + len : kStop;
            }
            case Step::Op::Slow:
                break;
        }
        return kStop;
    }

    void plan_steps() {
        col_steps.clear();
        row_steps.clear();
        col_steps.reserve(columns.size());
        std::uint32_t pre = 0;
        std::uint16_t first = 0;
        for (std::size_t i = 0; i < columns.size(); ++i) {
            const TypeInfo& ti = columns[i].info;
            Step s;
            s.first = static_cast<std::uint16_t>(i);
            s.next = static_cast<std::uint16_t>(i + 1);
            switch (ti.kind) {
                case ValueKind::Fixed:
                    s.op = Step::Op::Fixed;
                    s.arg = ti.max_length;
                    break;
                case ValueKind::ByteLen:
                    // Exactly valid_bytelen_value: below 32 from the function itself; from 32 up
                    // only the "length <= maximum" types accept anything, and then up to it.
                    s.op = Step::Op::ByteLen;
                    for (std::uint32_t n = 0; n < 32; ++n) {
                        if (valid_bytelen_value(ti, n)) s.mask |= std::uint32_t{1} << n;
                    }
                    s.arg = valid_bytelen_value(ti, 32)
                                ? std::min<std::uint32_t>(ti.max_length, 255)
                                : 31;
                    break;
                case ValueKind::UShortLen:
                    s.op = Step::Op::UShortLen;
                    s.arg = ti.max_length;
                    break;
                default:
                    break;
            }
            col_steps.push_back(s);
            if (s.op == Step::Op::Fixed) {
                pre += s.arg;  // at most 65535 columns of at most 16 bytes: no overflow
                continue;
            }
            Step folded = s;
            folded.pre = pre;
            folded.first = first;
            row_steps.push_back(folded);
            pre = 0;
            first = s.next;
        }
        if (first < columns.size()) {  // trailing fixed-length columns
            Step tail;
            tail.op = Step::Op::Fixed;
            tail.pre = pre;
            tail.first = first;
            tail.next = static_cast<std::uint16_t>(columns.size());
            row_steps.push_back(tail);
        }
        row_worst = 0;
        for (const Step& st : row_steps) {
            std::size_t most = 0;
            switch (st.op) {
                case Step::Op::Fixed:
                    most = st.arg;
                    break;
                case Step::Op::ByteLen:
                    most = 1 + 255;
                    break;
                case Step::Op::UShortLen:
                    most = 2 + std::size_t{st.arg};
                    break;
                case Step::Op::Slow:
                    row_worst = kStop;
                    return;
            }
            row_worst += st.pre + most;  // at most 65535 columns of at most 65537 bytes
        }
    }

    /// A ROW's values from `q`, which has at least row_worst bytes after it: the same checks as
    /// value_size but no bounds checks. Returns the end of the row, or nullptr on a length
    /// step_value would refuse (the row is then walked again with the checks, which stop there).
    const std::uint8_t* unchecked_row(const std::uint8_t* q) const {
        for (const Step& s : row_steps) {
            q += s.pre;
            switch (s.op) {
                case Step::Op::Fixed:
                    q += s.arg;
                    break;
                case Step::Op::ByteLen: {
                    const std::uint32_t len = *q;
                    if (len < 32 ? ((s.mask >> len) & 1) == 0 : len > s.arg) return nullptr;
                    q += 1 + len;
                    break;
                }
                case Step::Op::UShortLen: {
                    const std::uint32_t len = q[0] | (std::uint32_t{q[1]} << 8);
                    if (len == 0xFFFF) {
                        q += 2;
                    } else if (len > s.arg) {
                        return nullptr;
                    } else {
                        q += 2 + len;
                    }
                    break;
                }
                case Step::Op::Slow:
                    return nullptr;
            }
        }
        return q;
    }

    /// Fast path for the values of a ROW/NBCROW that lie wholly in `r`: each value whose length
    /// passes step_value's checks is stepped over here, on raw pointers, without a round trip
    /// through the unit state machine per value. Anything else (a value cut by the end of the
    /// bytes, a bad length, TEXT, sql_variant, PLP, an ALTROW or RETURNVALUE) is left to
    /// step_value, which reports it exactly as before. A ROW or NBCROW that follows is begun
    /// here too, as step_token would begin it. With row events off (set_row_events) a row costs
    /// no virtual call: the rows are walked only to find where the next token starts.
    void walk_whole_values(ByteReader& r) {
        if (walk != &columns || col_steps.size() != columns.size()) return;
        const std::uint8_t* const begin = r.data().data();
        const std::uint8_t* const end = begin + r.size();
        const std::uint8_t* p = begin + r.position();
        const std::size_t ncols = col_steps.size();
        std::size_t c = col;
        bool moved = false;
        // Where the walk stopped: the position and column step_value goes on from.
        auto stop = [&] {
            if (moved) {
                r.seek(static_cast<std::size_t>(p - begin));
                need = 0;
            }
            col = c;
        };
        // The rest of a row begun elsewhere, or of an NBCROW: column by column.
        auto by_column = [&] {
            const bool nbc = token == 0xD2;
            while (c < ncols) {
                const std::size_t n =
                    value_size(col_steps[c], p, static_cast<std::size_t>(end - p));
                if (n == kStop) return false;
                p += n;
                moved = true;
                ++c;
                if (nbc) {
                    while (c < ncols && column_is_null(c))
                        ++c;
                }
            }
            return true;
        };
        if (!by_column()) return stop();
        for (;;) {
            // The row is complete.
            r.seek(static_cast<std::size_t>(p - begin));
            col = c;
            need = 0;
            end_walk(r);
            moved = false;
            // A run of ROW tokens: whole steps (fixed-length runs folded in), the parser's
            // state kept in locals and written back only where the run ends. A step that does
            // not fit is left whole to step_value, from its first column.
            while (p != end && *p == 0xD1) {
                if (static_cast<std::size_t>(end - p) > row_worst) {
                    if (const std::uint8_t* q = unchecked_row(p + 1)) {
                        if (row_events) {
                            sink.on_row();
                            sink.on_token(0xD1, static_cast<std::size_t>(q - p));
                        }
                        p = q;
                        moved = true;
                        continue;
                    }
                }
                const std::uint8_t* q = p + 1;
                for (const Step& s : row_steps) {
                    const std::size_t avail = static_cast<std::size_t>(end - q);
                    const std::size_t n =
                        avail < s.pre ? kStop : value_size(s, q + s.pre, avail - s.pre);
                    if (n == kStop) {
                        token = 0xD1;
                        token_start = base + static_cast<std::size_t>(p - begin);
                        walk = &columns;
                        phase = Phase::Value;
                        null_bitmap.clear();
                        r.seek(static_cast<std::size_t>(q - begin));
                        need = 0;
                        col = s.first;
                        return;
                    }
                    q += s.pre + n;
                }
                if (row_events) {
                    sink.on_row();
                    sink.on_token(0xD1, static_cast<std::size_t>(q - p));
                }
                p = q;
                moved = true;
            }
            if (moved) {
                r.seek(static_cast<std::size_t>(p - begin));
                need = 0;
                moved = false;
            }
            // An NBCROW: begin it as begin_walk does, then column by column.
            if (p == end || *p != 0xD2) return;
            const std::size_t bitmap = (ncols + 7) / 8;
            if (static_cast<std::size_t>(end - p) < 1 + bitmap) return;
            token = 0xD2;
            token_start = base + static_cast<std::size_t>(p - begin);
            ++p;
            moved = true;
            walk = &columns;
            phase = Phase::Value;
            c = 0;
            null_bitmap.assign(p, p + bitmap);
            p += bitmap;
            while (c < ncols && column_is_null(c))
                ++c;
            if (!by_column()) return stop();
        }
    }

    Unit step_value(ByteReader& r) {
        const std::size_t start = r.position();
        const TypeInfo& ti = (*walk)[col].info;
        switch (ti.kind) {
            case ValueKind::Fixed:
                skip = ti.max_length;
                break;
            case ValueKind::ByteLen: {
                std::uint8_t len = 0;
                if (!r.u8(len)) return more(1);
                if (!valid_bytelen_value(ti, len)) {
                    return fail(Code::BadLength, start,
                                std::string("value: impossible length for ") + type_name(ti.type));
                }
                skip = len;
                if (token == 0xAC) rv.is_null = len == 0;
                break;
            }
            case ValueKind::UShortLen: {
                std::uint16_t len = 0;
                if (!r.u16le(len)) return more(2);
                if (len == 0xFFFF) {
                    if (token == 0xAC) rv.is_null = true;
                    break;
                }
                if (len > ti.max_length) {
                    return fail(Code::BadLength, start, "value: longer than the column maximum");
                }
                skip = len;
                break;
            }
            case ValueKind::LongLen: {
                std::uint8_t ptr_len = 0;
                if (!r.u8(ptr_len)) return more(1);
                if (ptr_len == 0) {
                    if (token == 0xAC) rv.is_null = true;
                    break;
                }
                std::uint32_t len = 0;
                if (!r.skip(std::size_t{ptr_len} + 8) || !r.u32le(len)) {
                    return more(std::size_t{ptr_len} + 13);
                }
                if (len > 0x7FFFFFFF) return fail(Code::BadLength, start, "value: TEXT over 2 GB");
                skip = len;
                break;
            }
            case ValueKind::Variant: {
                bool null = false;
                const DecodeResult st = skip_value(r, ti, &null);
                if (st.status() == DecodeStatus::NeedMore) return more(4 + 8009);
                if (!st.ok()) return fail(st.error().code, start, st.error().detail);
                if (token == 0xAC) rv.is_null = null;
                break;
            }
            case ValueKind::Plp: {
                std::uint64_t total = 0;
                if (!r.u64le(total)) return more(8);
                if (total == 0xFFFFFFFFFFFFFFFFULL) {
                    if (token == 0xAC) rv.is_null = true;
                    break;
                }
                plp_total = total;
                plp_sum = 0;
                phase = Phase::PlpChunk;
                return Unit::Ok;
            }
        }
        phase = Phase::ValueEnd;
        return Unit::Ok;
    }

    Unit step_plp_chunk(ByteReader& r) {
        const std::size_t start = r.position();
        std::uint32_t chunk = 0;
        if (!r.u32le(chunk)) return more(4);
        const bool known = plp_total != 0xFFFFFFFFFFFFFFFEULL;
        if (chunk == 0) {
            if (known && plp_sum != plp_total) {
                return fail(Code::BadLength, start,
                            "PLP: chunks do not add up to the total length");
            }
            phase = Phase::ValueEnd;
            return Unit::Ok;
        }
        plp_sum += chunk;
        if (known && plp_sum > plp_total) {
            return fail(Code::BadLength, start, "PLP: chunks exceed the total length");
        }
        skip = chunk;
        return Unit::Ok;
    }

    // RETURNVALUE 0xAC [MS-TDS 2.2.7.19]: everything up to the value, then the value is walked.
    Unit begin_return_value(ByteReader& r, std::size_t start) {
        rv = ReturnValue{};
        Column c;
        bool ok = r.u16le(rv.ordinal) && read_b_varchar(r, rv.name) && r.u8(rv.status);
        if (!ok) return more(r.position() - start + 1);
        if (rv.status != 0x01 && rv.status != 0x02) {
            return fail(Code::BadValue, start, "RETURNVALUE: bad status");
        }
        const Unit u = read_column(r, c, false);
        if (u == Unit::More) return more(r.position() - start + 1);
        if (u == Unit::Bad) return u;
        rv.info = c.info;
        rv_column.assign(1, std::move(c));
        return begin_walk(r, start, 0xAC, &rv_column);
    }

    // ---- token dispatch ----

    Unit step_token(ByteReader& r) {
        const std::size_t start = r.position();
        std::uint8_t tok = 0;
        r.u8(tok);
        switch (tok) {
            case 0xAD:
            case 0xAA:
            case 0xAB:
            case 0xE3:
            case 0xED:  // USHORT length
            case 0xA4:
            case 0xA5:
            case 0xA9: {
                std::uint16_t len = 0;
                Bytes body;
                if (!r.u16le(len)) return more(3);
                if (!r.bytes(len, body)) return more(3 + std::size_t{len});
                Unit u = Unit::Ok;
                switch (tok) {
                    case 0xAD:
                        u = parse_login_ack(body, start);
                        break;
                    case 0xAA:
                    case 0xAB:
                        u = parse_message(tok, body, start);
                        break;
                    case 0xE3:
                        u = parse_env_change(body, start);
                        break;
                    case 0xED:
                        sink.on_sspi(body);
                        break;
                    default:
                        break;  // TABNAME, COLINFO, ORDER: skipped by length
                }
                if (u != Unit::Ok) return u;
                emit_token(tok, start, r.position());
                return Unit::Ok;
            }
            case 0xEE:
            case 0xE4: {  // DWORD length: FEDAUTHINFO, SESSIONSTATE
                std::uint32_t len = 0;
                Bytes body;
                if (!r.u32le(len)) return more(5);
                if (len > limits.max_pending) {
                    return fail(Code::TooLarge, start, "token longer than the pending limit");
                }
                if (!r.bytes(len, body)) return more(5 + std::size_t{len});
                if (tok == 0xEE) {
                    const Unit u = parse_fed_auth_info(body, start);
                    if (u != Unit::Ok) return u;
                }
                emit_token(tok, start, r.position());
                return Unit::Ok;
            }
            case 0xFD:
            case 0xFE:
            case 0xFF: {  // DONE, DONEPROC, DONEINPROC
                Done d;
                d.token = tok;
                const bool short_count = is_pre72(version);
                if (!r.u16le(d.status) || !r.u16le(d.cur_cmd)) return more(short_count ? 9 : 13);
                if (short_count) {
                    std::uint32_t n = 0;
                    if (!r.u32le(n)) return more(9);
                    d.row_count = n;
                } else if (!r.u64le(d.row_count)) {
                    return more(13);
                }
                sink.on_done(d);
                emit_token(tok, start, r.position());
                return Unit::Ok;
            }
            case 0x79: {  // RETURNSTATUS
                std::uint32_t v = 0;
                if (!r.u32le(v)) return more(5);
                sink.on_return_status(static_cast<std::int32_t>(v));
                emit_token(tok, start, r.position());
                return Unit::Ok;
            }
            case 0x78:  // OFFSET: Identifier USHORT, OffsetLen USHORT
                if (!r.skip(4)) return more(5);
                emit_token(tok, start, r.position());
                return Unit::Ok;
            case 0x81:
                return parse_col_metadata(r, start);
            case 0x88:
                return parse_alt_metadata(r, start);
            case 0xAE:
                return parse_feature_ext_ack(r, start);
            case 0xAC:
                return begin_return_value(r, start);
            case 0xA3:
                return parse_data_classification(r, start);
            case 0xD1:
            case 0xD2:
                if (!have_columns) {
                    return fail(Code::Unsupported, start,
                                "row without COLMETADATA (capture started mid-result?)");
                }
                return begin_walk(r, start, tok, &columns);
            case 0xD3: {
                if (!r.u16le(alt_id)) return more(3);
                auto it = alt_columns.find(alt_id);
                if (it == alt_columns.end()) {
                    return fail(Code::BadValue, start, "ALTROW for an unknown ALTMETADATA id");
                }
                return begin_walk(r, start, tok, &it->second);
            }
            default:
                return unknown_token(r, start, tok);
        }
    }

    // Unknown token byte: length class from bits 4-5 [MS-TDS 2.2.4.2.1].
    Unit unknown_token(ByteReader& r, std::size_t start, std::uint8_t tok) {
        char hex[8];
        static const char digits[] = "0123456789abcdef";
        hex[0] = '0';
        hex[1] = 'x';
        hex[2] = digits[tok >> 4];
        hex[3] = digits[tok & 0xF];
        hex[4] = 0;
        switch (tok & 0x30) {
            case 0x10:  // zero length
                emit_token(tok, start, r.position());
                return Unit::Ok;
            case 0x30: {  // fixed length: 1, 2, 4 or 8 bytes
                const std::size_t n = std::size_t{1} << ((tok >> 2) & 0x3);
                if (!r.skip(n)) return more(1 + n);
                emit_token(tok, start, r.position());
                return Unit::Ok;
            }
            case 0x20: {  // variable length: USHORT length
                std::uint16_t len = 0;
                if (!r.u16le(len)) return more(3);
                if (!r.skip(len)) return more(3 + std::size_t{len});
                emit_token(tok, start, r.position());
                return Unit::Ok;
            }
            default:
                return fail(Code::Unsupported, start,
                            std::string("unknown token ") + hex + " (variable-count: cannot skip)");
        }
    }

    Unit run(ByteReader& r) {
        for (;;) {
            if (skip > 0) {
                const std::size_t n =
                    static_cast<std::size_t>(std::min<std::uint64_t>(skip, r.remaining()));
                r.skip(n);
                skip -= n;
                if (skip > 0) return Unit::Ok;
                continue;
            }
            if (phase == Phase::ValueEnd) {
                value_done(r);
                continue;
            }
            if (phase == Phase::Value) {
                walk_whole_values(r);
                if (phase != Phase::Value) continue;  // the row ended
            }
            if (r.empty()) return Unit::Ok;
            const std::size_t start = r.position();
            Unit u = Unit::Ok;
            switch (phase) {
                case Phase::Token:
                    u = step_token(r);
                    break;
                case Phase::Value:
                    u = step_value(r);
                    break;
                case Phase::PlpChunk:
                    u = step_plp_chunk(r);
                    break;
                case Phase::ValueEnd:
                    break;
            }
            if (u == Unit::More) {
                r.seek(start);
                return Unit::Ok;
            }
            if (u == Unit::Bad) return u;
            need = 0;
        }
    }

    bool in_unit() const { return !buf.empty() || skip > 0 || phase != Phase::Token; }

    DecodeResult malformed(bool eom) {
        if (eom) {
            end_message();
        } else {
            end_message();
            discarding = true;
        }
        return error;
    }

    DecodeResult feed(Bytes in, bool eom) {
        if (discarding) {
            if (eom) end_message();
            return {};
        }
        Bytes work = in;
        if (!buf.empty()) {
            if (!eom && buf.size() + in.size() < need) {
                buf.insert(buf.end(), in.begin(), in.end());
                return DecodeResult::need_more();
            }
            buf.insert(buf.end(), in.begin(), in.end());
            work = Bytes(buf.data(), buf.size());
        }
        ByteReader r(work);
        if (run(r) == Unit::Bad) return malformed(eom);
        const Bytes rest = r.rest();
        if (eom) {
            if (!rest.empty() || skip > 0 || phase != Phase::Token) {
                error =
                    make_error(Code::Truncated, base + r.position(), "message ends inside a token");
                return malformed(true);
            }
            end_message();
            return {};
        }
        if (rest.size() > limits.max_pending) {
            error = make_error(Code::TooLarge, base + r.position(),
                               "incomplete token larger than the pending limit");
            return malformed(false);
        }
        base += r.position();
        if (rest.data() != buf.data() || rest.size() != buf.size()) {
            std::vector<std::uint8_t> keep(rest.begin(), rest.end());
            buf.swap(keep);
        }
        if (in_unit()) return DecodeResult::need_more();
        return {};
    }
};

const char* token_name(std::uint8_t token) {
    switch (token) {
        case 0x78:
            return "OFFSET";
        case 0x79:
            return "RETURNSTATUS";
        case 0x81:
            return "COLMETADATA";
        case 0x88:
            return "ALTMETADATA";
        case 0xA3:
            return "DATACLASSIFICATION";
        case 0xA4:
            return "TABNAME";
        case 0xA5:
            return "COLINFO";
        case 0xA9:
            return "ORDER";
        case 0xAA:
            return "ERROR";
        case 0xAB:
            return "INFO";
        case 0xAC:
            return "RETURNVALUE";
        case 0xAD:
            return "LOGINACK";
        case 0xAE:
            return "FEATUREEXTACK";
        case 0xD1:
            return "ROW";
        case 0xD2:
            return "NBCROW";
        case 0xD3:
            return "ALTROW";
        case 0xE3:
            return "ENVCHANGE";
        case 0xE4:
            return "SESSIONSTATE";
        case 0xED:
            return "SSPI";
        case 0xEE:
            return "FEDAUTHINFO";
        case 0xFD:
            return "DONE";
        case 0xFE:
            return "DONEPROC";
        case 0xFF:
            return "DONEINPROC";
        default:
            return "UNKNOWN";
    }
}

const char* env_change_name(std::uint8_t type) {
    switch (type) {
        case envchange::kDatabase:
            return "database";
        case envchange::kLanguage:
            return "language";
        case envchange::kCharset:
            return "charset";
        case envchange::kPacketSize:
            return "packet-size";
        case envchange::kUnicodeLcid:
            return "unicode-lcid";
        case envchange::kUnicodeComparisonFlags:
            return "unicode-comparison-flags";
        case envchange::kCollation:
            return "collation";
        case envchange::kBeginTransaction:
            return "begin-transaction";
        case envchange::kCommitTransaction:
            return "commit-transaction";
        case envchange::kRollbackTransaction:
            return "rollback-transaction";
        case envchange::kEnlistDtcTransaction:
            return "enlist-dtc-transaction";
        case envchange::kDefectTransaction:
            return "defect-transaction";
        case envchange::kMirroringPartner:
            return "mirroring-partner";
        case envchange::kPromoteTransaction:
            return "promote-transaction";
        case envchange::kTransactionManagerAddress:
            return "transaction-manager-address";
        case envchange::kTransactionEnded:
            return "transaction-ended";
        case envchange::kResetConnectionAck:
            return "reset-connection-ack";
        case envchange::kUserInstanceName:
            return "user-instance-name";
        case envchange::kRouting:
            return "routing";
        default:
            return "unknown";
    }
}

TokenStreamParser::TokenStreamParser(TokenSink& sink) : TokenStreamParser(sink, Limits{}) {}
TokenStreamParser::TokenStreamParser(TokenSink& sink, Limits limits)
    : impl_(std::make_unique<Impl>(sink, limits)) {}
TokenStreamParser::~TokenStreamParser() = default;

void TokenStreamParser::set_tds_version(std::uint32_t version) {
    impl_->version = version;
}

void TokenStreamParser::set_row_events(bool on) {
    impl_->row_events = on;
}

void TokenStreamParser::set_info_messages(bool on) {
    impl_->info_messages = on;
}

DecodeResult TokenStreamParser::feed(Bytes payload, bool end_of_message) {
    return impl_->feed(payload, end_of_message);
}

void TokenStreamParser::reset_message() {
    impl_->end_message();
}

}  // namespace hopscope::tds
