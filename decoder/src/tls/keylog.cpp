#include "hopscope/tls/keylog.hpp"

#include <algorithm>

namespace hopscope::tls {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// Hex text into `out` (at most out.size() bytes); the byte count, or -1 if not hex or too long.
long parse_hex(std::string_view s, std::uint8_t* out, std::size_t cap) {
    if (s.size() % 2 != 0 || s.size() / 2 > cap) return -1;
    for (std::size_t i = 0; i < s.size(); i += 2) {
        const int hi = hex_value(s[i]);
        const int lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i / 2] = static_cast<std::uint8_t>((hi << 4) | lo);
    }
    return static_cast<long>(s.size() / 2);
}

void wipe(std::uint8_t* p, std::size_t n) {
    volatile std::uint8_t* v = p;
    for (std::size_t i = 0; i < n; ++i)
        v[i] = 0;
}

std::vector<std::string_view> fields(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size() && out.size() < 4) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
            ++i;
        if (i == line.size()) break;
        std::size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t')
            ++j;
        out.push_back(line.substr(i, j - i));
        i = j;
    }
    return out;
}

}  // namespace

Secret::Secret(Bytes b) : n_(std::min(b.size(), kMaxSize)) {
    std::copy(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n_), b_.begin());
}

Secret::~Secret() {
    wipe(b_.data(), b_.size());
}

bool Secret::operator==(const Secret& o) const {
    return n_ == o.n_ &&
           std::equal(b_.begin(), b_.begin() + static_cast<std::ptrdiff_t>(n_), o.b_.begin());
}

bool KeyLog::add_line(std::string_view line, std::string* why) {
    auto bad = [&](std::string m) {
        if (why) *why = std::move(m);
        return false;
    };
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ' ||
                             line.back() == '\t'))
        line.remove_suffix(1);
    const std::vector<std::string_view> f = fields(line);
    if (f.empty() || f[0].front() == '#') return true;
    const std::string_view label = f[0];
    Secret SessionSecrets::*slot = nullptr;
    bool tls12 = false;
    if (label == "CLIENT_RANDOM") {
        slot = &SessionSecrets::master;
        tls12 = true;
    } else if (label == "CLIENT_HANDSHAKE_TRAFFIC_SECRET") {
        slot = &SessionSecrets::client_handshake;
    } else if (label == "SERVER_HANDSHAKE_TRAFFIC_SECRET") {
        slot = &SessionSecrets::server_handshake;
    } else if (label == "CLIENT_TRAFFIC_SECRET_0") {
        slot = &SessionSecrets::client_traffic;
    } else if (label == "SERVER_TRAFFIC_SECRET_0") {
        slot = &SessionSecrets::server_traffic;
    }
    // The label is printable only if it looks like one (it could be a pasted secret).
    const bool label_ok = label.size() <= 40 && std::all_of(label.begin(), label.end(), [](char c) {
                              return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
                          });
    if (!slot) {
        if (!label_ok) return bad("not a key log line (no LABEL <client random> <secret>)");
        if (f.size() != 3) return bad(std::string(label) + ": expected 3 fields");
        ++skipped_;
        return true;
    }
    const std::string l(label);
    if (f.size() != 3) return bad(l + ": expected 3 fields (label, client random, secret)");
    Random random{};
    if (parse_hex(f[1], random.data(), random.size()) != 32) {
        return bad(l + ": the client random is not 64 hex digits");
    }
    std::array<std::uint8_t, Secret::kMaxSize> buf{};
    const long n = parse_hex(f[2], buf.data(), buf.size());
    const bool size_ok = tls12 ? n == 48 : (n == 32 || n == 48);
    if (!size_ok) {
        wipe(buf.data(), buf.size());
        return bad(l + (tls12 ? ": the master secret is not 96 hex digits"
                              : ": the secret is not 64 or 96 hex digits"));
    }
    Secret s(Bytes(buf.data(), static_cast<std::size_t>(n)));
    wipe(buf.data(), buf.size());
    Secret& dst = sessions_[random].*slot;
    if (!dst.empty() && !(dst == s)) {
        return bad(l + ": a different secret for this client random was logged before");
    }
    dst = s;
    return true;
}

std::vector<KeyLogError> KeyLog::add_text(std::string_view text) {
    std::vector<KeyLogError> errors;
    std::size_t line_no = 0;
    while (!text.empty()) {
        const std::size_t nl = text.find('\n');
        const std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        ++line_no;
        std::string why;
        if (!add_line(line, &why)) errors.push_back(KeyLogError{line_no, std::move(why)});
    }
    return errors;
}

const SessionSecrets* KeyLog::find(const Random& client_random) const {
    const auto it = sessions_.find(client_random);
    return it == sessions_.end() ? nullptr : &it->second;
}

}  // namespace hopscope::tls
