// The proxy's pcapng recorder: what it writes is read back with hopscope's own capture reader
// (libpcap + StreamAssembler) and, when installed, checked by tshark.
#include "hopscope/proxy/recorder.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "../captures/capture_test_util.hpp"
#include "hopscope/captures/capture_source.hpp"
#include "hopscope/captures/pcapng_secrets.hpp"
#include "hopscope/captures/stream_assembler.hpp"

#ifdef HOPSCOPE_HAVE_REPORT
#include "hopscope/pipeline/pipeline.hpp"
#include "hopscope/report/json_events.hpp"
#endif

namespace hopscope::proxy {
namespace {

namespace fs = std::filesystem;
using captures::testing::RecordingSink;

// ---- helpers ------------------------------------------------------------------------------------

/// A directory of its own per test, removed afterwards.
class TempDir {
  public:
    TempDir() {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        path_ = fs::temp_directory_path() / ("hopscope_rec_" + std::to_string(::getpid()) + "_" +
                                             info->test_suite_name() + "_" + info->name());
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] std::string file(const std::string& name) const {
        return (path_ / name).string();
    }

  private:
    fs::path path_;
};

Endpoint v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint16_t port) {
    const std::uint8_t bytes[4] = {a, b, c, d};
    return Endpoint{IpAddress::v4_from_bytes(bytes), port};
}
Endpoint v6(std::uint16_t last, std::uint16_t port) {
    std::uint8_t bytes[16] = {0x20, 0x01, 0x0d, 0xb8};
    bytes[14] = static_cast<std::uint8_t>(last >> 8);
    bytes[15] = static_cast<std::uint8_t>(last);
    return Endpoint{IpAddress::v6_from_bytes(bytes), port};
}
FlowKey flow(Endpoint client, Endpoint server) {
    return FlowKey{client, server, Transport::Tcp};
}

std::string random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (char& c : s)
        c = static_cast<char>(rng());
    return s;
}
Bytes as_bytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// What the test wrote on one connection, to compare with what the reader gives back.
struct Expected {
    FlowKey key;
    std::string bytes[2];          ///< payload per direction, without the gaps
    std::uint64_t offset[2] = {};  ///< stream offset (payload + gaps) per direction
    std::uint64_t gaps[2] = {};
    std::map<std::uint64_t, std::uint64_t> frame_at[2];  ///< stream offset -> data()'s frame
    bool handshake = true;
    CloseReason why = CloseReason::EndOfInput;
};

/// Drives a Recorder and keeps the expectations.
class Writer {
  public:
    explicit Writer(Recorder& r) : r_(r) {}

    Expected& open(Leg leg, const FlowKey& k, std::int64_t t) {
        r_.open_connection(leg, k, Timestamp{t});
        Expected& e = conns_[{leg, k}];
        e.key = k;
        return e;
    }
    void data(Leg leg, const FlowKey& k, Direction d, std::int64_t t, const std::string& bytes) {
        Expected& e = conns_[{leg, k}];
        const int i = static_cast<int>(d);
        const std::uint64_t frame = r_.data(leg, k, d, Timestamp{t}, as_bytes(bytes));
        EXPECT_GT(frame, 0u);
        e.frame_at[i][e.offset[i]] = frame;
        e.bytes[i] += bytes;
        e.offset[i] += bytes.size();
    }
    void gap(Leg leg, const FlowKey& k, Direction d, std::uint64_t n) {
        Expected& e = conns_[{leg, k}];
        const int i = static_cast<int>(d);
        r_.gap(leg, k, d, n);
        e.gaps[i] += n;
        e.offset[i] += n;
    }
    void close(Leg leg, const FlowKey& k, std::int64_t t, bool reset,
               Direction from = Direction::ClientToServer) {
        r_.close_connection(leg, k, Timestamp{t}, reset, from);
        conns_[{leg, k}].why = reset ? CloseReason::Rst : CloseReason::Fin;
    }
    std::map<std::pair<Leg, FlowKey>, Expected>& conns() { return conns_; }

  private:
    Recorder& r_;
    std::map<std::pair<Leg, FlowKey>, Expected> conns_;
};

/// RecordingSink that also remembers the frame of every stream offset delivered.
class OffsetSink : public RecordingSink {
  public:
    void on_data(const FlowKey& f, Direction dir, Timestamp ts, Bytes data, Evidence ev) override {
        frame_at[{f, static_cast<int>(dir)}][ev.stream_offset] = ev.frame;
        RecordingSink::on_data(f, dir, ts, data, ev);
    }
    std::map<std::pair<FlowKey, int>, std::map<std::uint64_t, std::uint64_t>> frame_at;
};

/// Checks one connection as read back against what was written.
void expect_same(const Expected& e, const RecordingSink::Conn& got, const OffsetSink& sink) {
    SCOPED_TRACE(to_string(e.key.client) + " -> " + to_string(e.key.server));
    EXPECT_EQ(got.key, e.key) << "client and server sides";
    EXPECT_EQ(got.handshake, e.handshake);
    EXPECT_TRUE(got.closed);
    EXPECT_EQ(static_cast<int>(got.why), static_cast<int>(e.why));
    for (int d = 0; d < 2; ++d) {
        EXPECT_EQ(got.bytes[d].size(), e.bytes[d].size()) << "direction " << d;
        EXPECT_TRUE(got.bytes[d] == e.bytes[d]) << "direction " << d;
        EXPECT_EQ(got.gaps[d], e.gaps[d]) << "direction " << d;
        const auto it = sink.frame_at.find({e.key, d});
        for (const auto& [offset, frame] : e.frame_at[d]) {
            ASSERT_NE(it, sink.frame_at.end());
            const auto f = it->second.find(offset);
            ASSERT_NE(f, it->second.end()) << "nothing delivered at offset " << offset;
            EXPECT_EQ(f->second, frame) << "frame of offset " << offset << " direction " << d;
        }
    }
}

const RecordingSink::Conn* find_conn(const RecordingSink& sink, const FlowKey& k) {
    for (const auto& c : sink.conns)
        if (c.key == k) return &c;
    return nullptr;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- tshark -------------------------------------------------------------------------------------

bool have_tshark() {
    return std::system("tshark --version >/dev/null 2>&1") == 0;
}

/// Runs a shell command, returns its standard output (empty and a failure when it exits non-0).
std::string run(const std::string& cmd) {
    std::string out;
    std::FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) {
        ADD_FAILURE() << "cannot run " << cmd;
        return out;
    }
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    const int status = ::pclose(p);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd << "\n" << out;
    return out;
}

std::size_t count_lines(const std::string& s) {
    return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

const char* kTsharkOpts = " -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE";

/// tshark reads every frame of `path` as IP + TCP with good checksums, nothing malformed and no
/// expert error; returns how many frames it read.
std::size_t tshark_check(const std::string& path) {
    const std::string bad =
        run("tshark -n -r '" + path + "'" + kTsharkOpts +
            " -Y 'tcp.checksum.status != 1 || (ip && ip.checksum.status != 1) || !tcp || "
            "_ws.malformed || _ws.expert.severity >= error' -T fields -e frame.number");
    EXPECT_EQ(bad, "") << "frames tshark does not like in " << path;
    return count_lines(run("tshark -n -r '" + path + "' -T fields -e frame.number"));
}

// ---- tests --------------------------------------------------------------------------------------

const FlowKey kClientV4 = flow(v4(10, 1, 0, 2, 50123), v4(10, 1, 0, 3, 1433));
const FlowKey kUpstreamV4 = flow(v4(10, 1, 0, 9, 40001), v4(10, 1, 0, 4, 1433));
const FlowKey kClientV6 = flow(v6(0x12, 50124), v6(0x13, 1433));
const FlowKey kUpstreamV6 = flow(v6(0x19, 40002), v6(0x14, 1433));

/// Four connections on both legs, IPv4 and IPv6, data both ways incl. writes above 64 KiB, gaps
/// both ways, FIN and RST from either side.
void write_scenario(Writer& w) {
    std::int64_t t = 1'700'000'000'000'000;
    w.open(Leg::Client, kClientV4, t);
    w.open(Leg::Upstream, kUpstreamV4, t + 10);
    w.open(Leg::Client, kClientV6, t + 20);
    w.open(Leg::Upstream, kUpstreamV6, t + 30);
    const Direction c2s = Direction::ClientToServer;
    const Direction s2c = Direction::ServerToClient;
    std::uint32_t seed = 1;
    for (const auto& [leg, k] : {std::pair{Leg::Client, kClientV4},
                                 {Leg::Upstream, kUpstreamV4},
                                 {Leg::Client, kClientV6},
                                 {Leg::Upstream, kUpstreamV6}}) {
        w.data(leg, k, c2s, t += 100, random_bytes(17, seed++));
        w.data(leg, k, s2c, t += 100, random_bytes(300'000, seed++));  // 5 segments
        w.data(leg, k, c2s, t += 100, random_bytes(65'000, seed++));   // exactly one segment
        w.data(leg, k, c2s, t += 100, random_bytes(65'001, seed++));   // two
        w.data(leg, k, s2c, t += 100, random_bytes(1, seed++));
    }
    // Gaps, each followed by data of the same direction.
    w.gap(Leg::Client, kClientV4, c2s, 1000);
    w.data(Leg::Client, kClientV4, c2s, t += 100, random_bytes(500, seed++));
    w.gap(Leg::Upstream, kUpstreamV4, s2c, 123'456);
    w.data(Leg::Upstream, kUpstreamV4, c2s, t += 100, random_bytes(10, seed++));
    w.data(Leg::Upstream, kUpstreamV4, s2c, t += 100, random_bytes(70'000, seed++));
    w.gap(Leg::Client, kClientV6, s2c, 1);
    w.gap(Leg::Client, kClientV6, s2c, 2);
    w.data(Leg::Client, kClientV6, s2c, t += 100, random_bytes(3, seed++));
    w.data(Leg::Client, kClientV6, c2s, t += 100, random_bytes(4, seed++));

    w.close(Leg::Client, kClientV4, t += 100, false);
    w.close(Leg::Upstream, kUpstreamV4, t += 100, true, s2c);
    w.close(Leg::Client, kClientV6, t += 100, true, c2s);
    w.close(Leg::Upstream, kUpstreamV6, t += 100, false);
}

TEST(Recorder, StreamsReadBackExactlyWithFramesGapsAndCloses) {
    TempDir dir;
    const std::string path = dir.file("rec.pcapng");
    std::string err;
    auto rec = Recorder::open({path, 0, 4, {}}, err);
    ASSERT_NE(rec, nullptr) << err;
    Writer w(*rec);
    write_scenario(w);
    rec->flush();
    EXPECT_EQ(rec->error(), "");
    const std::uint64_t frames = rec->frames_written();
    rec.reset();

    OffsetSink sink;
    captures::AssemblerStats stats;
    const auto result =
        captures::testing::read_into(sink, {path}, captures::testing::accept_all_config(), &stats);
    ASSERT_TRUE(result.ok()) << result.errors[0].to_string();
    EXPECT_EQ(result.frames, frames);
    EXPECT_EQ(stats.bad_frames, 0u);
    EXPECT_EQ(stats.retransmitted_bytes, 0u);
    EXPECT_EQ(stats.connections, 4u);
    ASSERT_EQ(sink.conns.size(), 4u);
    EXPECT_EQ(sink.still_open(), 0u);
    for (const auto& [key, e] : w.conns()) {
        const auto* got = find_conn(sink, e.key);
        ASSERT_NE(got, nullptr) << to_string(e.key.client);
        expect_same(e, *got, sink);
    }
}

TEST(Recorder, TlsSecretsAreDecryptionSecretsBlocksThatAnalyzeReads) {
    TempDir dir;
    const std::string path = dir.file("sec.pcapng");
    std::string err;
    auto rec = Recorder::open({path, 0, 4, {}}, err);
    ASSERT_NE(rec, nullptr) << err;
    const std::string one = "CLIENT_RANDOM 0102 0304";  // lengths 23 and 24: both paddings
    const std::string two = "CLIENT_RANDOM 0a0b 0c0d0";
    rec->open_connection(Leg::Client, kClientV4, Timestamp{1'700'000'000'000'000});
    rec->secret(kClientV4, Bytes(reinterpret_cast<const std::uint8_t*>(one.data()), one.size()));
    const std::vector<std::uint8_t> payload(100, 0x17);
    rec->data(Leg::Client, kClientV4, Direction::ClientToServer, Timestamp{1'700'000'000'000'001},
              payload);
    rec->secret(kClientV4, Bytes(reinterpret_cast<const std::uint8_t*>(two.data()), two.size()));
    rec->close_connection(Leg::Client, kClientV4, Timestamp{1'700'000'000'000'002}, false);
    rec->flush();
    const std::uint64_t frames = rec->frames_written();
    rec.reset();
    const captures::PcapngSecrets s = captures::read_pcapng_secrets(path);
    EXPECT_EQ(s.blocks, 2u);
    EXPECT_EQ(s.keylog, one + "\n" + two + "\n");
    EXPECT_FALSE(s.truncated);
    // the packets around them still read as before (libpcap skips the blocks)
    OffsetSink sink;
    const auto result =
        captures::testing::read_into(sink, {path}, captures::testing::accept_all_config());
    ASSERT_TRUE(result.ok()) << result.errors[0].to_string();
    EXPECT_EQ(result.frames, frames);
    // a bound on what is kept, and files that are not pcapng
    EXPECT_TRUE(captures::read_pcapng_secrets(path, 30).truncated);
    EXPECT_EQ(captures::read_pcapng_secrets(path, 30).blocks, 1u);
    EXPECT_EQ(captures::read_pcapng_secrets(dir.file("missing.pcapng")).blocks, 0u);
    std::ofstream(dir.file("text.pcapng")) << "not a capture at all, but long enough";
    EXPECT_EQ(captures::read_pcapng_secrets(dir.file("text.pcapng")).blocks, 0u);
}

TEST(Recorder, FileLayoutTimestampsAndInterfaces) {
    TempDir dir;
    const std::string path = dir.file("rec.pcapng");
    std::string err;
    auto rec = Recorder::open({path, 0, 4, {}}, err);
    ASSERT_NE(rec, nullptr) << err;
    rec->open_connection(Leg::Client, kClientV4, Timestamp{1'700'000'000'123'456});
    EXPECT_EQ(rec->data(Leg::Client, kClientV4, Direction::ClientToServer,
                        Timestamp{1'700'000'001'000'001}, as_bytes("abc")),
              4u)
        << "after SYN, SYN-ACK, ACK";
    rec->open_connection(Leg::Upstream, kUpstreamV6, Timestamp{1'700'000'002'000'000});
    EXPECT_EQ(rec->data(Leg::Upstream, kUpstreamV6, Direction::ServerToClient,
                        Timestamp{1'700'000'003'000'000}, Bytes{}),
              0u)
        << "nothing to write";
    EXPECT_EQ(rec->frames_written(), 7u);
    rec.reset();

    const std::string bytes = slurp(path);
    ASSERT_GE(bytes.size(), 12u);
    EXPECT_EQ(bytes.substr(0, 4), std::string("\x0A\x0D\x0D\x0A", 4)) << "section header";
    EXPECT_EQ(bytes.substr(8, 4), std::string("\x4D\x3C\x2B\x1A", 4)) << "little-endian magic";
    EXPECT_EQ(bytes.size() % 4, 0u);

    const auto data = captures::testing::load_pcap(path);
    EXPECT_EQ(data.linktype, 1) << "Ethernet";
    ASSERT_EQ(data.records.size(), 7u);
    EXPECT_EQ(data.records[0].ts_us, 1'700'000'000'123'456);
    EXPECT_EQ(data.records[3].ts_us, 1'700'000'001'000'001);
    EXPECT_EQ(data.records[4].ts_us, 1'700'000'002'000'000);
    // IPv4 SYN: 14 + 20 + 24 (window scale option); data: 14 + 20 + 20 + 3; IPv6 SYN: 14 + 40 + 24.
    EXPECT_EQ(data.records[0].bytes.size(), 58u);
    EXPECT_EQ(data.records[3].bytes.size(), 57u);
    EXPECT_EQ(data.records[4].bytes.size(), 78u);
    EXPECT_EQ(data.records[0].bytes[14], 0x45);
    EXPECT_EQ(data.records[4].bytes[14], 0x60);
    for (const auto& r : data.records)
        EXPECT_EQ(r.wire_len, r.bytes.size());

    if (!have_tshark()) GTEST_SKIP() << "tshark not installed: interface names not checked";
    const std::string names =
        run("tshark -n -r '" + path + "' -T fields -e frame.interface_name -e frame.interface_id");
    EXPECT_EQ(names,
              "client leg\t0\nclient leg\t0\nclient leg\t0\nclient leg\t0\n"
              "upstream leg\t1\nupstream leg\t1\nupstream leg\t1\n");
}

TEST(Recorder, TimestampsBefore1970AreWrittenAsZero) {
    TempDir dir;
    const std::string path = dir.file("t.pcapng");
    std::string err;
    auto rec = Recorder::open({path, 0, 4, {}}, err);
    ASSERT_NE(rec, nullptr) << err;
    rec->data(Leg::Client, kClientV4, Direction::ClientToServer, Timestamp{-5}, as_bytes("a"));
    rec->data(Leg::Client, kClientV4, Direction::ClientToServer,
              Timestamp{std::numeric_limits<std::int64_t>::max()}, as_bytes("b"));
    rec.reset();
    const auto data = captures::testing::load_pcap(path);
    ASSERT_EQ(data.records.size(), 2u);
    EXPECT_EQ(data.records[0].ts_us, 0);
    EXPECT_EQ(data.records[1].ts_us, std::numeric_limits<std::int64_t>::max());
}

TEST(Recorder, TsharkFindsChecksumsAndSequenceNumbersRight) {
    if (!have_tshark()) GTEST_SKIP() << "tshark not installed";
    TempDir dir;
    std::string err;

    // Without gaps: not a single TCP analysis remark (retransmission, lost segment, window...).
    const std::string clean = dir.file("clean.pcapng");
    {
        auto rec = Recorder::open({clean, 0, 4, {}}, err);
        ASSERT_NE(rec, nullptr) << err;
        std::int64_t t = 1'700'000'000'000'000;
        std::uint32_t seed = 7;
        for (const auto& [leg, k] :
             {std::pair{Leg::Client, kClientV4}, {Leg::Upstream, kUpstreamV6}}) {
            rec->open_connection(leg, k, Timestamp{t += 10});
            for (int i = 0; i < 6; ++i) {
                const auto c = random_bytes(i * 40'000 + 1, seed++);
                const auto s = random_bytes(i * 70'000 + 3, seed++);
                rec->data(leg, k, Direction::ClientToServer, Timestamp{t += 10}, as_bytes(c));
                rec->data(leg, k, Direction::ServerToClient, Timestamp{t += 10}, as_bytes(s));
            }
            const auto bulk = random_bytes(3 << 20, seed++);
            rec->data(leg, k, Direction::ServerToClient, Timestamp{t += 10}, as_bytes(bulk));
            rec->close_connection(leg, k, Timestamp{t += 10}, leg == Leg::Upstream,
                                  Direction::ServerToClient);
        }
        EXPECT_EQ(rec->error(), "");
        const auto frames = rec->frames_written();
        rec.reset();
        EXPECT_EQ(tshark_check(clean), frames);
        const std::string remarks = run("tshark -n -r '" + clean + "'" + kTsharkOpts +
                                        " -Y 'tcp.analysis.flags' -T fields -e frame.number "
                                        "-e _ws.expert.message");
        EXPECT_EQ(remarks, "");
        // tshark's own reassembly of the client leg's connection: the same number of bytes.
        const std::string conv = run("tshark -n -r '" + clean + "' -q -z conv,tcp");
        EXPECT_NE(conv.find("10.1.0.2:50123"), std::string::npos) << conv;
        EXPECT_NE(conv.find("2001:db8::19"), std::string::npos) << conv;
    }

    // The full scenario (gaps, resets, IPv6): still well-formed with good checksums.
    const std::string path = dir.file("rec.pcapng");
    {
        auto rec = Recorder::open({path, 0, 4, {}}, err);
        ASSERT_NE(rec, nullptr) << err;
        Writer w(*rec);
        write_scenario(w);
        const auto frames = rec->frames_written();
        rec.reset();
        EXPECT_EQ(tshark_check(path), frames);
        // Wireshark sees the gaps where they are.
        const std::string lost = run("tshark -n -r '" + path + "'" + kTsharkOpts +
                                     " -Y 'tcp.analysis.lost_segment' -T fields -e frame.number");
        EXPECT_EQ(count_lines(lost), 3u) << lost;
    }
}

TEST(Recorder, EveryFileOfARotationHoldsTheSecretsOfTheOpenConnections) {
    TempDir dir;
    const std::string path = dir.file("sec.pcapng");
    std::string err;
    auto rec = Recorder::open({path, 60'000, 5, {}}, err);
    ASSERT_NE(rec, nullptr) << err;
    const std::string line = "CLIENT_RANDOM 00112233 44556677";
    std::int64_t t = 1'700'000'000'000'000;
    rec->open_connection(Leg::Client, kClientV4, Timestamp{t});
    rec->secret(kClientV4, Bytes(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()));
    const std::vector<std::uint8_t> chunk(20'000, 0x17);
    for (int i = 0; i < 6; ++i)  // 120 kB: two rotations at least
        rec->data(Leg::Client, kClientV4, Direction::ServerToClient, Timestamp{t += 1000}, chunk);
    rec->close_connection(Leg::Client, kClientV4, Timestamp{t += 1000}, false);
    // a later connection without TLS: the next file no longer carries the closed one's secret
    const FlowKey later{kClientV4.client, kClientV4.server, Transport::Tcp};
    rec->open_connection(Leg::Client, later, Timestamp{t += 1000});
    for (int i = 0; i < 4; ++i)
        rec->data(Leg::Client, later, Direction::ServerToClient, Timestamp{t += 1000}, chunk);
    rec->flush();
    EXPECT_EQ(rec->error(), "");
    rec.reset();
    int with = 0;
    for (const char* suffix : {".4", ".3", ".2", ".1"}) {
        if (!fs::exists(path + suffix)) continue;
        const auto s = captures::read_pcapng_secrets(path + suffix);
        if (s.blocks == 0) break;  // the files after the connection closed
        EXPECT_EQ(s.keylog, line + "\n") << suffix;
        ++with;
    }
    EXPECT_GE(with, 3);  // the first file and at least two rotations
    EXPECT_EQ(captures::read_pcapng_secrets(path).blocks, 0u);
}

TEST(Recorder, RotationKeepsFilesThatEachOpenAndContinueTheStreams) {
    TempDir dir;
    const std::string path = dir.file("rot.pcapng");
    std::string err;
    constexpr std::uint64_t kMax = 150'000;
    auto rec = Recorder::open({path, kMax, 3, {}}, err);
    ASSERT_NE(rec, nullptr) << err;
    std::int64_t t = 1'700'000'000'000'000;
    std::string all[2];
    rec->open_connection(Leg::Client, kClientV4, Timestamp{t});
    std::uint32_t seed = 99;
    for (int i = 0; i < 60; ++i) {
        const auto c = random_bytes(static_cast<std::size_t>(1000 + i * 1500), seed++);
        const auto s = random_bytes(static_cast<std::size_t>(20'000 + i * 700), seed++);
        rec->data(Leg::Client, kClientV4, Direction::ClientToServer, Timestamp{t += 1000},
                  as_bytes(c));
        rec->data(Leg::Client, kClientV4, Direction::ServerToClient, Timestamp{t += 1000},
                  as_bytes(s));
        all[0] += c;
        all[1] += s;
    }
    rec->close_connection(Leg::Client, kClientV4, Timestamp{t += 1000}, false);
    EXPECT_EQ(rec->error(), "");
    rec.reset();

    // FILE (newest), FILE.1 ... FILE.3 (oldest kept); no FILE.4.
    std::vector<std::string> files = {path + ".3", path + ".2", path + ".1", path};
    for (const auto& f : files) {
        ASSERT_TRUE(fs::exists(f)) << f;
        EXPECT_LE(fs::file_size(f), kMax) << f;
    }
    EXPECT_FALSE(fs::exists(path + ".4"));

    // Each file alone: a connection that starts mid-stream (no handshake in it) and goes on
    // exactly where the previous file stopped; the newest one ends with the FINs.
    std::string seen[2];
    for (std::size_t i = 0; i < files.size(); ++i) {
        SCOPED_TRACE(files[i]);
        RecordingSink sink;
        const auto result = captures::testing::read_into(sink, {files[i]});
        ASSERT_TRUE(result.ok()) << result.errors[0].to_string();
        ASSERT_EQ(sink.conns.size(), 1u);
        const auto& c = sink.conns[0];
        EXPECT_EQ(c.key, kClientV4);
        EXPECT_FALSE(c.handshake);
        EXPECT_EQ(c.gaps[0] + c.gaps[1], 0u);
        EXPECT_EQ(
            static_cast<int>(c.why),
            static_cast<int>(i + 1 == files.size() ? CloseReason::Fin : CloseReason::EndOfInput));
        EXPECT_FALSE(c.bytes[0].empty() && c.bytes[1].empty());
        for (int d = 0; d < 2; ++d) {
            if (!seen[d].empty()) {
                // The file's first bytes are the ones right after the previous file's.
                const auto at = all[d].find(seen[d]);
                ASSERT_NE(at, std::string::npos);
                const auto next = at + seen[d].size();
                EXPECT_TRUE(all[d].compare(next, c.bytes[d].size(), c.bytes[d]) == 0)
                    << "direction " << d << " does not continue";
            }
            seen[d] += c.bytes[d];
        }
    }
    // What was kept is the end of what was written.
    for (int d = 0; d < 2; ++d) {
        ASSERT_LE(seen[d].size(), all[d].size());
        EXPECT_TRUE(all[d].compare(all[d].size() - seen[d].size(), seen[d].size(), seen[d]) == 0);
    }
    if (have_tshark()) {
        for (const auto& f : files)
            EXPECT_GT(tshark_check(f), 0u) << f;
    }
}

TEST(Recorder, RotationWithoutKeptFilesAndAnOversizedPacket) {
    TempDir dir;
    const std::string path = dir.file("one.pcapng");
    std::string err;
    auto rec = Recorder::open({path, 1000, 0, {}}, err);
    ASSERT_NE(rec, nullptr) << err;
    rec->open_connection(Leg::Client, kClientV4, Timestamp{1});
    const auto big = random_bytes(5000, 3);
    // A packet larger than max_bytes still goes into a file (alone).
    EXPECT_EQ(
        rec->data(Leg::Client, kClientV4, Direction::ClientToServer, Timestamp{2}, as_bytes(big)),
        1u);
    rec->flush();
    EXPECT_EQ(rec->error(), "");
    rec.reset();
    EXPECT_FALSE(fs::exists(path + ".1"));
    RecordingSink sink;
    ASSERT_TRUE(captures::testing::read_into(sink, {path}).ok());
    ASSERT_EQ(sink.conns.size(), 1u);
    EXPECT_TRUE(sink.conns[0].bytes[0] == big);
}

TEST(Recorder, ReopenAfterTheFileWasMovedAndAppendsToAnExistingOne) {
    TempDir dir;
    const std::string path = dir.file("r.pcapng");
    std::string err;
    auto rec = Recorder::open({path, 0, 4, {}}, err);
    ASSERT_NE(rec, nullptr) << err;
    rec->open_connection(Leg::Client, kClientV4, Timestamp{1000});
    rec->data(Leg::Client, kClientV4, Direction::ClientToServer, Timestamp{2000},
              as_bytes("first"));
    rec->flush();
    fs::rename(path, path + ".moved");  // what logrotate does
    ASSERT_TRUE(rec->reopen(err)) << err;
    rec->data(Leg::Client, kClientV4, Direction::ServerToClient, Timestamp{3000},
              as_bytes("second"));
    rec->flush();
    // Reopening a file that is still there appends a new section to it.
    ASSERT_TRUE(rec->reopen(err)) << err;
    rec->data(Leg::Client, kClientV4, Direction::ClientToServer, Timestamp{4000},
              as_bytes("third"));
    rec->close_connection(Leg::Client, kClientV4, Timestamp{5000}, false);
    rec.reset();

    RecordingSink moved;
    ASSERT_TRUE(captures::testing::read_into(moved, {path + ".moved"}).ok());
    ASSERT_EQ(moved.conns.size(), 1u);
    EXPECT_TRUE(moved.conns[0].handshake);
    EXPECT_EQ(moved.conns[0].bytes[0], "first");

    RecordingSink sink;
    ASSERT_TRUE(captures::testing::read_into(sink, {path}).ok());
    ASSERT_EQ(sink.conns.size(), 1u);
    EXPECT_FALSE(sink.conns[0].handshake);
    EXPECT_EQ(sink.conns[0].bytes[0], "third");
    EXPECT_EQ(sink.conns[0].bytes[1], "second");
    EXPECT_EQ(static_cast<int>(sink.conns[0].why), static_cast<int>(CloseReason::Fin));
    if (have_tshark()) {
        EXPECT_EQ(tshark_check(path), 5u) << "two sections";
    }
}

TEST(Recorder, WriteErrorsStopTheRecordingWithoutThrowing) {
    std::string err;
    EXPECT_EQ(Recorder::open({"/nonexistent-dir/x.pcapng", 0, 4, {}}, err), nullptr);
    EXPECT_NE(err.find("/nonexistent-dir/x.pcapng"), std::string::npos) << err;

    if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
    auto rec = Recorder::open({"/dev/full", 0, 4, {}}, err);
    ASSERT_NE(rec, nullptr) << err;  // stdio buffers the header: the error comes later
    rec->open_connection(Leg::Client, kClientV4, Timestamp{1});
    const auto big = random_bytes(3 << 20, 5);  // more than the stdio buffer
    rec->data(Leg::Client, kClientV4, Direction::ClientToServer, Timestamp{2}, as_bytes(big));
    rec->flush();
    EXPECT_NE(rec->error(), "");
    EXPECT_NE(rec->error().find("/dev/full"), std::string::npos) << rec->error();
    const auto frames = rec->frames_written();
    // Everything after the error is a no-op.
    EXPECT_EQ(
        rec->data(Leg::Client, kClientV4, Direction::ServerToClient, Timestamp{3}, as_bytes("x")),
        0u);
    rec->gap(Leg::Client, kClientV4, Direction::ServerToClient, 10);
    rec->close_connection(Leg::Client, kClientV4, Timestamp{4}, true);
    rec->flush();
    EXPECT_EQ(rec->frames_written(), frames);
}

TEST(Recorder, ArbitraryInputNeverBreaksTheFile) {
    // Random operations with random flows (mixed address families, port 0, the same 4-tuple on
    // both legs), huge gaps, timestamps going backwards or negative, data without open, close
    // without open. The file must stay readable and well-formed.
    TempDir dir;
    const std::string path = dir.file("fuzz.pcapng");
    std::string err;
    auto rec = Recorder::open({path, 400'000, 2, {}}, err);
    ASSERT_NE(rec, nullptr) << err;
    std::mt19937_64 rng(12345);
    std::vector<FlowKey> flows;
    for (int i = 0; i < 8; ++i) {
        FlowKey k;
        k.client =
            (rng() & 1)
                ? v6(static_cast<std::uint16_t>(rng()), static_cast<std::uint16_t>(rng()))
                : v4(10, 0, 0, static_cast<std::uint8_t>(rng()), static_cast<std::uint16_t>(rng()));
        k.server =
            (rng() & 1) ? v6(static_cast<std::uint16_t>(rng()), 1433) : v4(10, 0, 1, 1, 1433);
        if (i == 0) k.client.addr.bytes.fill(0xFF);  // garbage beyond an IPv4 address
        flows.push_back(k);
    }
    for (int i = 0; i < 3000; ++i) {
        const FlowKey& k = flows[rng() % flows.size()];
        const auto leg = static_cast<Leg>(rng() % 2);
        const auto d = static_cast<Direction>(rng() % 2);
        const Timestamp ts{static_cast<std::int64_t>(rng())};
        switch (rng() % 6) {
            case 0:
                rec->open_connection(leg, k, ts);
                break;
            case 1:
            case 2: {
                const auto b = random_bytes(rng() % 3 == 0 ? rng() % 140'000 : rng() % 100,
                                            static_cast<std::uint32_t>(rng()));
                rec->data(leg, k, d, ts, as_bytes(b));
                break;
            }
            case 3:
                rec->gap(leg, k, d, rng() % 2 ? rng() : rng() % 5000);
                break;
            case 4:
                rec->close_connection(leg, k, ts, rng() % 2 != 0, d);
                break;
            default:
                if (rng() % 50 == 0) {
                    ASSERT_TRUE(rec->reopen(err)) << err;
                }
                break;
        }
    }
    EXPECT_EQ(rec->error(), "");
    rec.reset();
    for (const std::string& f : {path, path + ".1", path + ".2"}) {
        SCOPED_TRACE(f);
        ASSERT_TRUE(fs::exists(f));
        RecordingSink sink;
        captures::AssemblerStats stats;
        const auto r =
            captures::testing::read_into(sink, {f}, captures::testing::accept_all_config(), &stats);
        EXPECT_TRUE(r.ok());
        EXPECT_EQ(stats.bad_frames, 0u);
        if (have_tshark()) tshark_check(f);
    }
}

#ifdef HOPSCOPE_HAVE_REPORT

/// Collects the pipeline's events as JSON, without the frame numbers (they differ between the
/// original capture and the recording) and the display filters made of them.
struct JsonEvents : pipeline::EventSink {
    std::vector<std::string> logins;
    std::vector<std::string> others;

    static void strip_frames(nlohmann::ordered_json& j) {
        if (j.is_object()) {
            for (auto it = j.begin(); it != j.end();) {
                if (it.key().find("frame") != std::string::npos || it.key() == "display_filter") {
                    it = j.erase(it);
                } else {
                    strip_frames(it.value());
                    ++it;
                }
            }
        } else if (j.is_array()) {
            for (auto& v : j)
                strip_frames(v);
        }
    }
    template <typename E>
    static std::string text(const E& e) {
        auto j = report::to_json(e);
        strip_frames(j);
        return j.dump();
    }
    void on_login(const analysis::LoginEvent& e) override { logins.push_back(text(e)); }
    void on_kerberos(const analysis::KerberosEvent& e) override { others.push_back(text(e)); }
    void on_server_error(const analysis::ServerErrorEvent& e) override {
        others.push_back(text(e));
    }
    void on_finding(const analysis::Finding& e) override { others.push_back(text(e)); }
};

/// Hands the streams of a capture to a Pipeline and, as the proxy would, to the recorder.
/// Datagrams (Kerberos over UDP) are left out of both: the proxy only relays TCP.
class TeeSink : public StreamSink {
  public:
    TeeSink(StreamSink& reference, Recorder& rec) : ref_(reference), rec_(rec) {}
    void on_open(const FlowKey& f, Timestamp ts, bool handshake) override {
        ref_.on_open(f, ts, handshake);
        // Without a handshake in the capture, the recording starts mid-stream as well.
        if (handshake) rec_.open_connection(leg(f), f, ts);
    }
    void on_data(const FlowKey& f, Direction d, Timestamp ts, Bytes data, Evidence ev) override {
        ref_.on_data(f, d, ts, data, ev);
        EXPECT_GT(rec_.data(leg(f), f, d, ts, data), 0u);
    }
    void on_gap(const FlowKey& f, Direction d, Timestamp ts, std::uint64_t n) override {
        ref_.on_gap(f, d, ts, n);
        rec_.gap(leg(f), f, d, n);
    }
    void on_close(const FlowKey& f, Timestamp ts, CloseReason why) override {
        ref_.on_close(f, ts, why);
        if (why == CloseReason::Fin || why == CloseReason::Rst)
            rec_.close_connection(leg(f), f, ts, why == CloseReason::Rst);
        // Timeout and end of input: no packets; the reader of the recording decides the same.
    }
    void on_datagram(const FlowKey&, Direction, Timestamp, Bytes, Evidence) override {}

  private:
    StreamSink& ref_;
    Recorder& rec_;
    // Which leg does not matter to a reader; spread the connections over both.
    static Leg leg(const FlowKey& f) { return f.client.port % 2 ? Leg::Client : Leg::Upstream; }
};

TEST(Recorder, LabCapturesDecodeTheSameFromTheRecording) {
    TempDir dir;
    std::vector<std::string> labs;
    for (const auto& e : fs::directory_iterator(std::string(HOPSCOPE_CAPTURES_DIR) + "/lab"))
        if (e.path().extension() == ".pcap") labs.push_back(e.path().string());
    std::sort(labs.begin(), labs.end());
    ASSERT_GE(labs.size(), 10u);
    std::size_t logins = 0;
    for (const auto& lab : labs) {
        SCOPED_TRACE(lab);
        const std::string path = dir.file(fs::path(lab).stem().string() + ".pcapng");
        JsonEvents original;
        {
            std::string err;
            auto rec = Recorder::open({path, 0, 4, {}}, err);
            ASSERT_NE(rec, nullptr) << err;
            pipeline::Pipeline p(original);
            TeeSink tee(p, *rec);
            captures::StreamAssembler a(tee);
            ASSERT_TRUE(captures::read_captures({lab}, a).ok());
            p.finish(Timestamp{});
            EXPECT_EQ(rec->error(), "");
        }
        JsonEvents recorded;
        {
            pipeline::Pipeline p(recorded);
            captures::StreamAssembler a(p);
            const auto r = captures::read_captures({path}, a);
            ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
            p.finish(Timestamp{});
        }
        EXPECT_FALSE(original.logins.empty());
        logins += original.logins.size();
        EXPECT_EQ(recorded.logins, original.logins);
        EXPECT_EQ(recorded.others, original.others);
    }
    EXPECT_GE(logins, labs.size());
}

#endif  // HOPSCOPE_HAVE_REPORT

}  // namespace
}  // namespace hopscope::proxy
