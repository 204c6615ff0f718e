// Hostile rewrites of the public captures (tests/data/public, see its MANIFEST.md) must give the
// same TCP streams, gaps and UDP payloads as the clean originals. The rewritten captures are built
// in memory by hostile_rewrite.hpp and written to a temporary file, so nothing large is committed.
#include <filesystem>

#include "capture_test_util.hpp"
#include "hostile_rewrite.hpp"

namespace hopscope::captures::testing {
namespace {

struct Summary {
    std::map<std::string, std::string> streams;  // "client>server#n c2s" -> bytes
    std::map<std::string, std::uint64_t> gaps;
    std::multiset<std::string> datagrams;
    std::size_t connections = 0;
};

Summary summarize(const RecordingSink& s) {
    Summary out;
    std::map<std::string, int> seen;
    for (const auto& c : s.conns) {
        if (c.bytes[0].empty() && c.bytes[1].empty()) continue;
        std::string k = to_string(c.key.client) + ">" + to_string(c.key.server);
        k += "#" + std::to_string(seen[k]++);
        out.streams[k + " c2s"] = c.bytes[0];
        out.streams[k + " s2c"] = c.bytes[1];
        out.gaps[k + " c2s"] = c.gaps[0];
        out.gaps[k + " s2c"] = c.gaps[1];
        ++out.connections;
    }
    for (const auto& d : s.datagrams)
        out.datagrams.insert(to_string(d.key.client) + ">" + to_string(d.key.server) + " " +
                             to_string(d.dir) + " " + d.payload);
    return out;
}

Summary read_file(const std::string& path) {
    RecordingSink sink;
    const ReadResult r = read_into(sink, {path});
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.errors.front().to_string());
    EXPECT_EQ(sink.still_open(), 0u);
    return summarize(sink);
}

Summary read_data(const PcapData& d, const std::string& tag) {
    TempFile f(tag + ".pcap", pcap_bytes(d));
    return read_file(f.path());
}

std::vector<std::string> small_captures() {
    std::vector<std::string> out;
    for (const auto& n : public_captures())
        if (std::filesystem::file_size(public_dir() + "/" + n) <= 150 * 1024) out.push_back(n);
    return out;
}

void expect_same(const Summary& want, const Summary& got, const std::string& what) {
    EXPECT_EQ(want.connections, got.connections) << what;
    EXPECT_EQ(want.gaps, got.gaps) << what;
    EXPECT_EQ(want.datagrams.size(), got.datagrams.size()) << what;
    EXPECT_TRUE(want.datagrams == got.datagrams) << what << ": UDP payloads differ";
    EXPECT_EQ(want.streams.size(), got.streams.size()) << what;
    for (const auto& [k, v] : want.streams) {
        auto it = got.streams.find(k);
        if (it == got.streams.end()) {
            ADD_FAILURE() << what << ": missing stream " << k;
            continue;
        }
        EXPECT_TRUE(it->second == v) << what << ": stream " << k << " differs (" << v.size()
                                     << " vs " << it->second.size() << " bytes)";
    }
}

template <typename Rewrite>
void check_rewrite(const std::string& tag, Rewrite rewrite) {
    const auto names = small_captures();
    ASSERT_GT(names.size(), 20u);
    for (const auto& name : names) {
        const std::string path = public_dir() + "/" + name;
        const Summary clean = read_file(path);
        PcapData d = load_pcap(path);
        rewrite(d);
        expect_same(clean, read_data(d, tag), tag + " " + name);
    }
}

TEST(Hostile, ReorderedSegments) {
    std::size_t runs = 0;
    check_rewrite("reorder", [&](PcapData& d) { runs += reorder(d); });
    EXPECT_GT(runs, 10u) << "the rewrite must actually reorder something";
}

TEST(Hostile, DuplicatedSegments) {
    check_rewrite("dup", [](PcapData& d) { duplicate(d); });
}

TEST(Hostile, OneByteSegments) {
    check_rewrite("split1", [](PcapData& d) { resegment(d, 1, 1); });
}

TEST(Hostile, OverlappingSegments) {
    // 7-byte segments every 4 bytes: each byte arrives once or twice, in overlapping copies.
    check_rewrite("overlap", [](PcapData& d) { resegment(d, 7, 4); });
}

TEST(Hostile, OverlappingSegmentsOutOfOrder) {
    std::size_t runs = 0;
    check_rewrite("overlap-reorder", [&](PcapData& d) {
        resegment(d, 9, 5);
        runs += reorder(d);
    });
    EXPECT_GT(runs, 1000u);
}

TEST(Hostile, VlanAndQinQTags) {
    check_rewrite("vlan", [](PcapData& d) { vlan_tag(d); });
}

TEST(Hostile, LinuxCookedV1) {
    check_rewrite("sll", [](PcapData& d) { relink(d, Link::Sll); });
}

TEST(Hostile, LinuxCookedV2) {
    check_rewrite("sll2", [](PcapData& d) { relink(d, Link::Sll2); });
}

TEST(Hostile, RawIp) {
    check_rewrite("raw", [](PcapData& d) { relink(d, Link::Raw); });
}

TEST(Hostile, BsdLoopbackBothByteOrders) {
    check_rewrite("null-le", [](PcapData& d) { relink(d, Link::NullLe); });
    check_rewrite("null-be", [](PcapData& d) { relink(d, Link::NullBe); });
    check_rewrite("loop", [](PcapData& d) { relink(d, Link::Loop); });
}

TEST(Hostile, Ipv4Fragments) {
    std::size_t n = 0;
    check_rewrite("frag", [&](PcapData& d) { n += fragment_v4(d, 24); });
    EXPECT_GT(n, 1000u);
}

TEST(Hostile, Ipv6Fragments) {
    std::size_t n = 0;
    check_rewrite("frag6", [&](PcapData& d) { n += fragment_v6(d, 64); });
    EXPECT_GT(n, 50u) << "two public captures carry IPv6 TCP";
}

TEST(Hostile, Ipv4FragmentsOfTinyPieces) {
    check_rewrite("frag8", [](PcapData& d) { fragment_v4(d, 8); });
}

}  // namespace
}  // namespace hopscope::captures::testing
