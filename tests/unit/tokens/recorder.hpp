// Test helpers: a TokenSink that records every callback as a line of text, and byte builders.
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "hopscope/common/text.hpp"
#include "hopscope/tds/tokens.hpp"

namespace hopscope::tds::test {

using Buf = std::vector<std::uint8_t>;

/// Records callbacks as readable lines, so that two runs can be compared as a whole.
class Recorder : public TokenSink {
  public:
    std::vector<std::string> log;
    std::vector<LoginAck> acks;
    std::vector<ServerMessage> messages;
    std::vector<EnvChange> envs;
    std::vector<Done> dones;
    std::vector<std::vector<Column>> metas;
    std::vector<ReturnValue> rvs;
    std::vector<Buf> sspi;
    std::vector<std::vector<FeatureAck>> feature_acks;
    std::vector<FedAuthInfo> fed_auth;
    std::vector<std::int32_t> statuses;
    std::vector<std::uint16_t> alt_rows;
    std::size_t rows = 0;
    std::vector<std::pair<std::uint8_t, std::size_t>> tokens;

    void on_login_ack(const LoginAck& a) override {
        acks.push_back(a);
        log.push_back("loginack " + std::to_string(a.tds_version) + " " + a.prog_name);
    }
    void on_message(const ServerMessage& m) override {
        messages.push_back(m);
        log.push_back((m.is_error ? "error " : "info ") + std::to_string(m.number) + " " + m.text);
    }
    void on_env_change(const EnvChange& e) override {
        envs.push_back(e);
        log.push_back("env " + std::to_string(e.type) + " " + e.new_value + "|" + e.old_value);
    }
    void on_sspi(Bytes blob) override {
        sspi.emplace_back(blob.begin(), blob.end());
        log.push_back("sspi " + std::to_string(blob.size()));
    }
    void on_done(const Done& d) override {
        dones.push_back(d);
        log.push_back("done " + std::to_string(d.token) + " " + std::to_string(d.status) + " " +
                      std::to_string(d.row_count));
    }
    void on_feature_ext_ack(const std::vector<FeatureAck>& a) override {
        feature_acks.push_back(a);
        log.push_back("featureextack " + std::to_string(a.size()));
    }
    void on_fed_auth_info(const FedAuthInfo& f) override {
        fed_auth.push_back(f);
        log.push_back("fedauthinfo " + f.sts_url + " " + f.spn);
    }
    void on_col_metadata(const std::vector<Column>& c) override {
        metas.push_back(c);
        std::string s = "colmetadata";
        for (const auto& col : c)
            s += " " + col.name + ":" + std::to_string(col.type);
        log.push_back(s);
    }
    void on_row() override {
        ++rows;
        log.push_back("row");
    }
    void on_return_status(std::int32_t v) override {
        statuses.push_back(v);
        log.push_back("returnstatus " + std::to_string(v));
    }
    void on_return_value(const ReturnValue& rv) override {
        rvs.push_back(rv);
        log.push_back("returnvalue " + rv.name + (rv.is_null ? " null" : ""));
    }
    void on_alt_row(std::uint16_t id) override {
        alt_rows.push_back(id);
        log.push_back("altrow " + std::to_string(id));
    }
    void on_token(std::uint8_t t, std::size_t size) override {
        tokens.emplace_back(t, size);
        log.push_back("token " + std::to_string(t) + " " + std::to_string(size));
    }
};

/// Little builder for spec byte vectors.
struct B {
    Buf b;
    B& u8(std::uint8_t v) {
        b.push_back(v);
        return *this;
    }
    B& u16(std::uint16_t v) { return u8(v & 0xFF).u8(v >> 8); }
    B& u32(std::uint32_t v) { return u16(v & 0xFFFF).u16(v >> 16); }
    B& u64(std::uint64_t v) { return u32(v & 0xFFFFFFFF).u32(v >> 32); }
    B& u32be(std::uint32_t v) {
        return u8(v >> 24).u8((v >> 16) & 0xFF).u8((v >> 8) & 0xFF).u8(v & 0xFF);
    }
    B& raw(const Buf& v) {
        b.insert(b.end(), v.begin(), v.end());
        return *this;
    }
    B& ucs2(const std::string& ascii) {
        for (char c : ascii)
            u16(static_cast<std::uint8_t>(c));
        return *this;
    }
    B& bvarchar(const std::string& ascii) { return u8(ascii.size()).ucs2(ascii); }
    B& usvarchar(const std::string& ascii) { return u16(ascii.size()).ucs2(ascii); }
    /// A USHORT-length token: token byte, length, body.
    B& token16(std::uint8_t tok, const Buf& body) { return u8(tok).u16(body.size()).raw(body); }
};

inline Buf hex(const std::string& s) {
    Buf out;
    std::string digits;
    for (char c : s)
        if (std::isxdigit(static_cast<unsigned char>(c))) digits += c;
    for (std::size_t i = 0; i + 1 < digits.size(); i += 2)
        out.push_back(static_cast<std::uint8_t>(std::stoul(digits.substr(i, 2), nullptr, 16)));
    return out;
}

inline Buf load(const std::string& name) {
    std::ifstream in(std::string(HOPSCOPE_TEST_DATA_DIR) + "/tokens/" + name, std::ios::binary);
    return Buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// TokenStreamParser as the tests drive it: feed() answers the status, and the error of the
/// last Malformed result stays readable as last_error().
class Parser : public TokenStreamParser {
  public:
    using TokenStreamParser::TokenStreamParser;
    DecodeStatus feed(Bytes payload, bool end_of_message) {
        const DecodeResult res = TokenStreamParser::feed(payload, end_of_message);
        if (res.status() == DecodeStatus::Malformed) error_ = res.error();
        return res.status();
    }
    [[nodiscard]] const DecodeError& last_error() const { return error_; }

  private:
    DecodeError error_;
};

/// Feeds a whole message at once.
inline DecodeStatus feed_all(Parser& p, const Buf& m) {
    return p.feed(Bytes(m.data(), m.size()), true);
}

/// Feeds a message in chunks of `n` bytes (the last one with EOM); returns the last status and
/// whether any chunk returned Malformed.
inline DecodeStatus feed_chunked(Parser& p, const Buf& m, std::size_t n,
                                 bool* saw_malformed = nullptr) {
    DecodeStatus last = DecodeStatus::Consumed;
    if (m.empty()) return p.feed(Bytes(), true);
    for (std::size_t i = 0; i < m.size(); i += n) {
        const std::size_t len = std::min(n, m.size() - i);
        last = p.feed(Bytes(m.data() + i, len), i + len >= m.size());
        if (last == DecodeStatus::Malformed && saw_malformed) *saw_malformed = true;
    }
    return last;
}

}  // namespace hopscope::tds::test
