// Capture files: damaged files, unreadable inputs, stdin, several files merged in time order,
// progress reporting; and a live capture on the loopback interface.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include "capture_test_util.hpp"

namespace hopscope::captures::testing {
namespace {

std::vector<std::uint8_t> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Record boundaries of a little-endian classic pcap (24-byte header, 16-byte record headers).
std::vector<std::size_t> record_ends(const std::vector<std::uint8_t>& b) {
    std::vector<std::size_t> ends;
    std::size_t off = 24;
    while (off + 16 <= b.size()) {
        const std::size_t caplen = load_u32le(&b[off + 8]);
        if (off + 16 + caplen > b.size()) break;
        off += 16 + caplen;
        ends.push_back(off);
    }
    return ends;
}

bool is_prefix(const std::string& a, const std::string& b) {
    return a.size() <= b.size() && b.compare(0, a.size(), a) == 0;
}

// Source: arkime tests/pcap/tds7.pcap (Apache-2.0), see tests/data/public/MANIFEST.md.
const char* kTds7 = "tds7_sqlauth_login_prelogin_loginack_arkime.pcap";

TEST(Reader, TruncatedPcapReportsFileAndOffsetAndKeepsEarlierData) {
    for (const char* name : {kTds7, "krb_ntlm_ldap_aduser_zeek.pcap"}) {
        const std::string path = public_dir() + "/" + name;
        const auto bytes = file_bytes(path);
        ASSERT_EQ(load_u32le(bytes.data()), 0xA1B2C3D4u) << "test expects a little-endian pcap";
        const auto ends = record_ends(bytes);
        ASSERT_EQ(ends.back(), bytes.size());
        RecordingSink clean;
        ASSERT_TRUE(read_into(clean, {path}).ok());

        for (std::size_t cut = 24; cut < bytes.size(); cut += 13) {
            const std::vector<std::uint8_t> prefix(
                bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
            TempFile f("trunc.pcap", prefix);
            RecordingSink sink;
            const ReadResult r = read_into(sink, {f.path()});
            const auto whole = std::upper_bound(ends.begin(), ends.end(), cut) - ends.begin();
            const std::size_t last_end = whole ? ends[static_cast<std::size_t>(whole) - 1] : 24;
            EXPECT_EQ(r.frames, static_cast<std::uint64_t>(whole)) << name << " cut " << cut;
            if (last_end == cut) {
                EXPECT_TRUE(r.ok()) << "a cut on a record boundary is a clean end";
            } else {
                ASSERT_EQ(r.errors.size(), 1u) << name << " cut " << cut;
                const CaptureError& e = r.errors[0];
                EXPECT_EQ(e.file, f.path());
                ASSERT_TRUE(e.offset.has_value());
                EXPECT_EQ(*e.offset, last_end) << "offset of the first unreadable record";
                EXPECT_EQ(e.frames_read, static_cast<std::uint64_t>(whole));
                const std::string text = e.to_string();
                EXPECT_NE(text.find(f.path()), std::string::npos) << text;
                EXPECT_NE(text.find("offset " + std::to_string(last_end)), std::string::npos)
                    << text;
                EXPECT_NE(text.find("truncated"), std::string::npos) << text;
            }
            // What was read is a prefix of the clean streams.
            for (std::size_t i = 0; i < sink.conns.size(); ++i) {
                const auto& c = sink.conns[i];
                const auto it = std::find_if(clean.conns.begin(), clean.conns.end(),
                                             [&](const auto& k) { return k.key == c.key; });
                ASSERT_NE(it, clean.conns.end());
                EXPECT_TRUE(is_prefix(c.bytes[0], it->bytes[0])) << cut;
                EXPECT_TRUE(is_prefix(c.bytes[1], it->bytes[1])) << cut;
            }
        }
    }
}

TEST(Reader, TruncatedPcapngReportsFileAndOffset) {
    // Source: zeek testing/btest/Traces/dce-rpc/dce_rpc_ntlm.pcapng (BSD-3-Clause).
    const std::string path = public_dir() + "/ntlm_dcerpc_bind_zeek.pcapng";
    const auto bytes = file_bytes(path);
    RecordingSink clean;
    const ReadResult full = read_into(clean, {path});
    ASSERT_TRUE(full.ok());
    std::uint64_t prev_frames = 0;
    int errors = 0;
    for (std::size_t cut = 100; cut < bytes.size(); cut += 97) {
        TempFile f("trunc.pcapng",
                   std::vector<std::uint8_t>(bytes.begin(),
                                             bytes.begin() + static_cast<std::ptrdiff_t>(cut)));
        RecordingSink sink;
        const ReadResult r = read_into(sink, {f.path()});
        EXPECT_GE(r.frames, prev_frames);
        EXPECT_LE(r.frames, full.frames);
        prev_frames = r.frames;
        if (!r.ok()) {
            ++errors;
            ASSERT_EQ(r.errors.size(), 1u);
            EXPECT_EQ(r.errors[0].file, f.path());
            EXPECT_TRUE(r.errors[0].offset.has_value());
            EXPECT_LE(*r.errors[0].offset, cut);
        }
    }
    EXPECT_GT(errors, 10);
}

TEST(Reader, UnreadableInputsGiveClearErrors) {
    ReadResult r;
    {
        RecordingSink sink;
        r = read_into(sink, {"/nonexistent/x.pcap"});
        ASSERT_EQ(r.errors.size(), 1u);
        EXPECT_NE(r.errors[0].to_string().find("/nonexistent/x.pcap: cannot open"),
                  std::string::npos)
            << r.errors[0].to_string();
    }
    {
        TempFile f("text.pcap", std::vector<std::uint8_t>(100, 'x'));
        RecordingSink sink;
        r = read_into(sink, {f.path()});
        ASSERT_EQ(r.errors.size(), 1u);
        EXPECT_NE(r.errors[0].to_string().find("not a readable pcap"), std::string::npos);
    }
    {
        PcapData d;
        d.linktype = 147;  // LINKTYPE_USER0
        d.records.push_back({1, {1, 2, 3}, 3});
        TempFile f("user0.pcap", pcap_bytes(d));
        RecordingSink sink;
        r = read_into(sink, {f.path()});
        ASSERT_EQ(r.errors.size(), 1u);
        EXPECT_NE(r.errors[0].to_string().find("unsupported link type 147"), std::string::npos)
            << r.errors[0].to_string();
    }
}

TEST(Reader, SeveralFilesMergeInTimeOrder) {
    const std::string path = public_dir() + "/krb_ntlm_ldap_aduser_zeek.pcap";
    PcapData d = load_pcap(path);
    for (std::size_t i = 1; i < d.records.size(); ++i)
        ASSERT_LT(d.records[i - 1].ts_us, d.records[i].ts_us) << "needs distinct timestamps";
    PcapData odd, even;
    odd.linktype = even.linktype = d.linktype;
    for (std::size_t i = 0; i < d.records.size(); ++i)
        (i % 2 ? odd : even).records.push_back(d.records[i]);
    TempFile a("odd.pcap", pcap_bytes(odd));
    TempFile b("even.pcap", pcap_bytes(even));
    RecordingSink whole, merged;
    ASSERT_TRUE(read_into(whole, {path}).ok());
    ASSERT_TRUE(read_into(merged, {a.path(), b.path()}).ok());
    ASSERT_EQ(whole.conns.size(), merged.conns.size());
    for (std::size_t i = 0; i < whole.conns.size(); ++i) {
        EXPECT_EQ(whole.conns[i].key, merged.conns[i].key);
        for (int dir = 0; dir < 2; ++dir) {
            EXPECT_EQ(whole.conns[i].bytes[dir], merged.conns[i].bytes[dir]);
            // Merged frame numbers are the positions in time order = the original numbers.
            EXPECT_EQ(whole.conns[i].frames[dir], merged.conns[i].frames[dir]);
        }
    }
}

TEST(Reader, ProgressReachesTheFileSize) {
    const std::string path = public_dir() + "/" + kTds7;
    RecordingSink sink;
    StreamAssembler a(sink, accept_all_config());
    std::vector<ReadProgress> seen;
    ReadOptions o;
    o.progress_every = 2;
    o.progress = [&](const ReadProgress& p) { seen.push_back(p); };
    ASSERT_TRUE(read_captures({path}, a, o).ok());
    ASSERT_GE(seen.size(), 3u);
    for (std::size_t i = 1; i < seen.size(); ++i)
        EXPECT_GE(seen[i].bytes_read, seen[i - 1].bytes_read);
    EXPECT_TRUE(seen.back().done);
    EXPECT_EQ(seen.back().bytes_total, std::filesystem::file_size(path));
    EXPECT_EQ(seen.back().bytes_read, seen.back().bytes_total);
    EXPECT_EQ(seen.back().file_bytes_read, seen.back().bytes_total);
    EXPECT_EQ(seen.back().file_bytes_total, seen.back().bytes_total);
    EXPECT_EQ(seen.back().frames, 13u);
}

TEST(Reader, StopFlagEndsReadingEarly) {
    const std::string path = public_dir() + "/ntlm_smb3_multichannel_zeek.pcap";
    RecordingSink sink;
    StreamAssembler a(sink, accept_all_config());
    std::atomic<bool> stop{false};
    ReadOptions o;
    o.stop = &stop;
    o.progress_every = 100;
    o.progress = [&](const ReadProgress&) { stop = true; };
    const ReadResult r = read_captures({path}, a, o);
    EXPECT_EQ(r.frames, 100u);
    EXPECT_EQ(sink.still_open(), 0u) << "finish() still runs";
}

TEST(Reader, StdinDash) {
    const std::string path = public_dir() + "/" + kTds7;
    ASSERT_NE(std::freopen(path.c_str(), "rb", stdin), nullptr);
    RecordingSink a, b;
    const ReadResult r = read_into(a, {"-"});
    ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
    ASSERT_TRUE(read_into(b, {path}).ok());
    EXPECT_EQ(r.frames, 13u);
    ASSERT_EQ(a.conns.size(), 1u);
    EXPECT_EQ(a.conns[0].bytes[0], b.conns[0].bytes[0]);
    EXPECT_EQ(a.conns[0].bytes[1], b.conns[0].bytes[1]);
}

// ---- live ---------------------------------------------------------------------------------------

TEST(Live, LoopbackTcpIsSeenAsAStream) {
    LiveCapture cap;
    std::string err;
    LiveOptions o;
    o.interface = "lo";
    // An unprivileged port chosen by the kernel, filtered after we know it.
    const int srv = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(srv, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t alen = sizeof addr;
    ASSERT_EQ(::getsockname(srv, reinterpret_cast<sockaddr*>(&addr), &alen), 0);
    ASSERT_EQ(::listen(srv, 1), 0);
    const std::uint16_t port = ntohs(addr.sin_port);
    o.filter = "tcp port " + std::to_string(port);
    if (!cap.open(o, err)) {
        ::close(srv);
        GTEST_SKIP() << "cannot capture on lo here: " << err;
    }
    EXPECT_EQ(cap.linktype(), 1) << "Linux loopback is Ethernet-framed";

    RecordingSink sink;
    AssemblerConfig cfg;
    cfg.filter.tds_ports = {port};
    StreamAssembler a(sink, cfg);
    std::thread runner([&] {
        std::string run_err;
        EXPECT_TRUE(cap.run(a, run_err)) << run_err;
    });
    const int cli = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(::connect(cli, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const int acc = ::accept(srv, nullptr, nullptr);
    ASSERT_GE(acc, 0);
    ASSERT_EQ(::send(cli, "ping-1433", 9, 0), 9);
    char buf[16];
    ASSERT_EQ(::recv(acc, buf, sizeof buf, 0), 9);
    ASSERT_EQ(::send(acc, "pong", 4, 0), 4);
    ASSERT_EQ(::recv(cli, buf, sizeof buf, 0), 4);
    ::close(cli);
    ::close(acc);
    ::close(srv);
    // Wait (bounded) until the FIN exchange has been captured, then stop.
    for (int i = 0; i < 200 && cap.stats().frames < 10; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cap.stop();
    runner.join();
    ASSERT_EQ(sink.conns.size(), 1u);
    const auto& c = sink.conns[0];
    EXPECT_TRUE(c.handshake);
    EXPECT_EQ(c.key.server.port, port);
    EXPECT_EQ(c.bytes[0], "ping-1433");
    EXPECT_EQ(c.bytes[1], "pong");
    EXPECT_TRUE(c.closed);
    const LiveStats st = cap.stats();
    EXPECT_GE(st.received, 10u);
    EXPECT_EQ(st.dropped, 0u);
}

}  // namespace
}  // namespace hopscope::captures::testing
