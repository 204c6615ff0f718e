#include "recorded_view.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstdint>

namespace hopscope::cli {
namespace {

constexpr std::string_view kHead = "hopscope proxy view 1";

/// Splits `s` at `sep`, calling f(piece) for each non-empty piece (spaces around it trimmed).
template <typename F>
void each_piece(std::string_view s, char sep, F&& f) {
    while (!s.empty()) {
        const auto end = s.find(sep);
        std::string_view piece = s.substr(0, end);
        while (!piece.empty() && piece.front() == ' ')
            piece.remove_prefix(1);
        while (!piece.empty() && piece.back() == ' ')
            piece.remove_suffix(1);
        if (!piece.empty()) f(piece);
        if (end == std::string_view::npos) break;
        s.remove_prefix(end + 1);
    }
}

bool plain_name(std::string_view n) {
    return !n.empty() && n.find_first_of(";,= \t\r\n") == std::string_view::npos;
}

/// "ADDR/PORT" with an IPv4 or IPv6 address.
std::optional<Endpoint> endpoint_from(std::string_view s) {
    const auto slash = s.rfind('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 >= s.size()) return {};
    Endpoint e;
    const std::string_view port = s.substr(slash + 1);
    if (std::from_chars(port.data(), port.data() + port.size(), e.port).ec != std::errc{})
        return {};
    const std::string addr(s.substr(0, slash));
    std::uint8_t b[16];
    if (inet_pton(AF_INET, addr.c_str(), b) == 1) {
        e.addr = IpAddress::v4_from_bytes(b);
    } else if (inet_pton(AF_INET6, addr.c_str(), b) == 1) {
        e.addr = IpAddress::v6_from_bytes(b);
    } else {
        return {};
    }
    return e;
}

}  // namespace

std::string view_comment(const analysis::Analyzer::ProxyView& v) {
    std::string s(kHead);
    s += "; tls-terminate=";
    s += v.terminates_tls ? "yes" : "no";
    s += "; explicit=";
    bool first = true;
    for (const Endpoint& e : v.explicit_upstreams) {
        if (!first) s += ',';
        first = false;
        append_to(s, e.addr);
        s += '/';
        s += std::to_string(e.port);
    }
    s += "; names=";
    first = true;
    for (const std::string& n : v.proxy_names) {
        if (!plain_name(n)) continue;
        if (!first) s += ',';
        first = false;
        s += n;
    }
    return s;
}

std::optional<analysis::Analyzer::ProxyView> view_from_comment(std::string_view text) {
    if (text.substr(0, kHead.size()) != kHead) return {};
    analysis::Analyzer::ProxyView v;
    v.active = true;
    bool ok = true;
    each_piece(text.substr(kHead.size()), ';', [&](std::string_view field) {
        const auto eq = field.find('=');
        if (eq == std::string_view::npos) {
            ok = false;
            return;
        }
        const std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
        if (key == "tls-terminate") {
            if (value != "yes" && value != "no") ok = false;
            v.terminates_tls = value == "yes";
        } else if (key == "explicit") {
            each_piece(value, ',', [&](std::string_view e) {
                if (const auto ep = endpoint_from(e))
                    v.explicit_upstreams.push_back(*ep);
                else
                    ok = false;
            });
        } else if (key == "names") {
            each_piece(value, ',', [&](std::string_view n) { v.proxy_names.emplace_back(n); });
        }  // fields of later versions of the text are left alone
    });
    if (!ok) return {};
    return v;
}

}  // namespace hopscope::cli
