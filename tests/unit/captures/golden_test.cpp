// Golden test: every public capture (tests/data/public, sources and licences in its MANIFEST.md)
// is read without error, and the TCP streams and UDP/88 datagrams handed on equal tshark's view
// of the same file. The reference values were extracted once with
// tools/captures-rewrite/make_expected.py (tshark "follow,tcp,raw" per stream and
// "udp.port == 88") into tests/data/captures/<capture>.expected: per connection the payload bytes
// and the missing ("gap") bytes of each direction must be equal.
#include <fstream>
#include <set>
#include <sstream>

#include "capture_test_util.hpp"

namespace hopscope::captures::testing {
namespace {

struct Expected {
    std::multiset<std::string> tcp;  // tcp_row()
    std::vector<std::string> udp;    // "frame src dst len" in file order
};

// "A B bytesA bytesB gapA gapB", endpoints in text order so that orientation does not matter.
std::string tcp_row(std::string a, std::string b, std::uint64_t na, std::uint64_t nb,
                    std::uint64_t ga, std::uint64_t gb) {
    if (b < a) {
        std::swap(a, b);
        std::swap(na, nb);
        std::swap(ga, gb);
    }
    return a + " " + b + " " + std::to_string(na) + " " + std::to_string(nb) + " " +
           std::to_string(ga) + " " + std::to_string(gb);
}

Expected load_expected(const std::string& capture) {
    Expected e;
    std::ifstream in(expected_dir() + "/" + capture + ".expected");
    EXPECT_TRUE(in.good()) << "missing " << capture << ".expected";
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream s(line);
        std::string kind;
        s >> kind;
        if (kind == "tcp") {
            std::string a, b;
            std::uint64_t na = 0, nb = 0, ga = 0, gb = 0;
            s >> a >> b >> na >> nb >> ga >> gb;
            e.tcp.insert(tcp_row(a, b, na, nb, ga, gb));
        } else if (kind == "udp") {
            e.udp.push_back(line.substr(4));
        }
    }
    return e;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, StreamsAndKerberosDatagramsMatchTshark) {
    const std::string name = GetParam();
    const Expected want = load_expected(name);

    RecordingSink sink;
    AssemblerStats stats;
    const ReadResult r = read_into(sink, {public_dir() + "/" + name}, accept_all_config(), &stats);
    ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
    EXPECT_GT(r.frames, 0u);
    EXPECT_EQ(sink.still_open(), 0u) << "finish() must close everything";

    std::multiset<std::string> got;
    for (const auto& c : sink.conns) {
        if (c.bytes[0].empty() && c.bytes[1].empty()) continue;  // tshark lists no payload either
        got.insert(tcp_row(to_string(c.key.client), to_string(c.key.server), c.bytes[0].size(),
                           c.bytes[1].size(), c.gaps[0], c.gaps[1]));
    }
    EXPECT_EQ(got, want.tcp);

    std::vector<std::string> udp;
    for (const auto& d : sink.datagrams) {
        if (d.key.client.port != 88 && d.key.server.port != 88) continue;
        const Endpoint& src = d.dir == Direction::ClientToServer ? d.key.client : d.key.server;
        const Endpoint& dst = d.dir == Direction::ClientToServer ? d.key.server : d.key.client;
        udp.push_back(std::to_string(d.frame) + " " + to_string(src) + " " + to_string(dst) + " " +
                      std::to_string(d.payload.size()));
    }
    EXPECT_EQ(udp, want.udp);
}

INSTANTIATE_TEST_SUITE_P(PublicCaptures, Golden, ::testing::ValuesIn(public_captures()),
                         capture_test_name);

// With the default filter (TDS on 1433 and by content, Kerberos on 88) only those flows are handed
// on. The TDS-looking content heuristic finds no TDS in the non-TDS captures (no false positives),
// and finds the real TDS 7 logins.
TEST(GoldenFilter, DefaultFilterKeepsOnlyTdsAndKerberos) {
    for (const auto& name : public_captures()) {
        RecordingSink sink;
        AssemblerConfig cfg;        // defaults
        cfg.filter.tds_ports = {};  // rely on the content heuristic alone for TDS
        const ReadResult r = read_into(sink, {public_dir() + "/" + name}, cfg);
        ASSERT_TRUE(r.ok()) << name;
        for (const auto& c : sink.conns) {
            const bool krb = c.key.server.port == 88;
            const bool tds_capture = name.rfind("tds7", 0) == 0 || name.rfind("SYNTHETIC", 0) == 0;
            EXPECT_TRUE(krb || (tds_capture && c.key.server.port == 1433))
                << name << ": unexpected flow " << to_string(c.key.client) << " -> "
                << to_string(c.key.server);
        }
    }
}

TEST(GoldenFilter, HeuristicFindsTdsLoginsOnTheirOwn) {
    for (const char* name : {"tds7_sqlauth_login_prelogin_loginack_arkime.pcap",
                             "SYNTHETIC_ntlm_multi_protocol_incl_tds7_sspi_arkime.pcap"}) {
        RecordingSink sink;
        AssemblerConfig cfg;
        cfg.filter.tds_ports = {};
        ASSERT_TRUE(read_into(sink, {public_dir() + "/" + name}, cfg).ok());
        int tds = 0;
        for (const auto& c : sink.conns) {
            if (c.key.server.port != 1433) continue;
            ++tds;
            ASSERT_FALSE(c.bytes[0].empty());
            const auto t = static_cast<std::uint8_t>(c.bytes[0][0]);
            EXPECT_TRUE(t == 0x12 || t == 0x10) << name;  // PRELOGIN or LOGIN7 first
        }
        EXPECT_GE(tds, 1) << name;
    }
}

// Midstream TDS (no SYN) on the TDS port: the client is the side not on 1433.
TEST(GoldenFilter, MidstreamClientIsTheSideOffTheServerPort) {
    RecordingSink sink;
    ASSERT_TRUE(read_into(sink, {public_dir() + "/tds_sqlbatch_rpc_responses_midstream_ndpi.pcap"},
                          AssemblerConfig{})
                    .ok());
    ASSERT_FALSE(sink.conns.empty());
    for (const auto& c : sink.conns) {
        EXPECT_EQ(c.key.server.port, 1433);
        EXPECT_FALSE(c.handshake);
    }
}

}  // namespace
}  // namespace hopscope::captures::testing
