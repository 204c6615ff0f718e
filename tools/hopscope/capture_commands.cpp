#include "capture_commands.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>

#include "backend.hpp"
#include "hopscope/captures/capture_source.hpp"
#include "hopscope/captures/pcapng_secrets.hpp"
#include "keytabs.hpp"
#include "progress.hpp"
#include "recorded_view.hpp"

namespace hopscope::cli {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<captures::LiveCapture*> g_live{nullptr};

extern "C" void on_interrupt(int) {
    g_stop.store(true);
    if (captures::LiveCapture* live = g_live.load()) live->stop();  // pcap_breakloop: signal-safe
}

void install_interrupt_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocking capture read returns and sees the stop flag
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

void add_common(CLI::App* cmd, CaptureCommands::Common& c) {
    cmd->add_option("--tds-port", c.tds_ports,
                    "TCP port of a SQL Server to decode as TDS; repeat for several (default "
                    "1433). TDS logins on other ports are still found by content unless "
                    "--no-heuristic")
        ->check(CLI::Range(1, 65535));
    cmd->add_option("--kerberos-port", c.kerberos_ports,
                    "TCP and UDP port of a KDC; repeat for several (default 88)")
        ->check(CLI::Range(1, 65535));
    cmd->add_flag("--no-heuristic", c.no_heuristic,
                  "do not look for TDS (PRELOGIN/LOGIN7 or a TLS ClientHello with ALPN tds/8.0) "
                  "on ports other than the --tds-port ones");
    cmd->add_flag("--all-flows", c.all_flows,
                  "hand every TCP connection and UDP flow to the decoders (debugging; slow)");
    cmd->add_option("--json", c.json,
                    "write events as JSON lines to PATH, or to standard output with '-' (the "
                    "summary then goes to standard error)");
    cmd->add_flag("-q,--quiet", c.quiet, "print no summary, only errors (and --json output)");
    cmd->add_flag("-v,--verbose", c.verbose,
                  "also print every login, KDC exchange and server error as it is decoded");
    cmd->add_option("--keytab", c.keytabs, kKeytabHelp)
        ->type_name("KEYTAB")
        ->allow_extra_args(false);  // one file per --keytab: the captures follow
    cmd->add_flag("--flows", c.flows_only,
                  "only list the TDS and Kerberos connections found (bytes, gaps), without "
                  "decoding them");
    cmd->add_flag("--fail-on-findings", c.fail_on_findings,
                  "exit with status 1 when a finding of severity 'error' was reported");
}

captures::AssemblerConfig assembler_config(const CaptureCommands::Common& c) {
    captures::AssemblerConfig cfg;
    if (!c.tds_ports.empty()) cfg.filter.tds_ports = c.tds_ports;
    if (!c.kerberos_ports.empty()) cfg.filter.kerberos_ports = c.kerberos_ports;
    cfg.filter.tds_heuristic = !c.no_heuristic;
    cfg.filter.accept_all = c.all_flows;
    return cfg;
}

/// Opens the JSON destination and the text stream; false (message printed) when it cannot.
struct Outputs {
    std::FILE* json = nullptr;
    std::FILE* text = stdout;
    bool owns_json = false;
    bool json_is_file = false;            ///< a regular file (not a pipe, terminal or device)
    std::unique_ptr<char[]> json_buffer;  ///< the owned file's stdio buffer
    ~Outputs() {
        if (owns_json && json) std::fclose(json);
    }
};

bool open_outputs(const CaptureCommands::Common& c, Outputs& out) {
    if (c.json.empty()) return true;
    if (c.json == "-") {
        out.json = stdout;
        out.text = stderr;
        if (isatty(fileno(stdout)) == 0) buffer_json_output(stdout, nullptr);
        return true;
    }
    out.json = std::fopen(c.json.c_str(), "w");
    if (out.json == nullptr) {
        std::fprintf(stderr, "hopscope: %s: cannot write the JSON output\n", c.json.c_str());
        return false;
    }
    out.owns_json = true;
    buffer_json_output(out.json, &out.json_buffer);
    struct stat sb {};
    out.json_is_file = fstat(fileno(out.json), &sb) == 0 && S_ISREG(sb.st_mode);
    return true;
}

BackendOptions backend_options(const CaptureCommands::Common& c, const Outputs& out) {
    BackendOptions b;
    if (!c.tds_ports.empty()) b.tds_ports = c.tds_ports;
    if (!c.kerberos_ports.empty()) b.kerberos_ports = c.kerberos_ports;
    b.verbose = c.verbose;
    b.flows_only = c.flows_only;
    b.quiet = c.quiet;
    b.json = out.json;
    b.text = out.text;
    return b;
}

/// Reads every --tls-keylog file into `log`; false (each bad line named as FILE:LINE, never
/// with its secret) when a file cannot be read or has bad lines.
bool load_keylogs(const std::vector<std::string>& files, tls::KeyLog& log) {
    bool ok = true;
    for (const auto& path : files) {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "hopscope: %s: cannot read the TLS key log\n", path.c_str());
            ok = false;
            continue;
        }
        const std::string text((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        const std::size_t before = log.sessions();
        const auto errors = log.add_text(text);
        constexpr std::size_t kShown = 10;
        for (std::size_t i = 0; i < errors.size() && i < kShown; ++i) {
            std::fprintf(stderr, "hopscope: %s:%zu: %s\n", path.c_str(), errors[i].line,
                         errors[i].message.c_str());
        }
        if (errors.size() > kShown) {
            std::fprintf(stderr, "hopscope: %s: %zu more bad lines\n", path.c_str(),
                         errors.size() - kShown);
        }
        if (!errors.empty()) ok = false;
        if (errors.empty() && log.sessions() == before) {
            std::fprintf(stderr,
                         "hopscope: %s: no TLS 1.2 or 1.3 session secrets in this key log\n",
                         path.c_str());
        }
    }
    return ok;
}

/// What pcapng captures carry besides packets: adds the TLS secrets embedded in them
/// (Decryption Secrets Blocks, as `hopscope proxy --record` and `editcap --inject-secrets`
/// write them) to `log`, true when any were found; and sets `view` from the first section
/// header that says how a `hopscope proxy` saw the traffic it recorded.
bool load_embedded(const std::vector<std::string>& files, tls::KeyLog& log, bool quiet,
                   std::optional<analysis::Analyzer::ProxyView>* view = nullptr) {
    bool any = false;
    for (const auto& path : files) {
        if (path == "-") continue;  // standard input is read once, by the packet reader
        const captures::PcapngSecrets s = captures::read_pcapng_secrets(path);
        // A recording of `hopscope proxy` says how the proxy saw the traffic (the first one
        // found serves for all files: a proxy's rotated files all say the same).
        for (const auto& comment : s.section_comments) {
            if (view == nullptr || view->has_value()) break;
            *view = view_from_comment(comment);
            if (*view && !quiet)
                std::fprintf(stderr,
                             "hopscope: %s: recorded by hopscope proxy%s; its proxy rules apply\n",
                             path.c_str(), (*view)->terminates_tls ? " terminating TLS" : "");
        }
        if (s.blocks == 0) continue;
        const std::size_t before = log.sessions();
        const auto errors = log.add_text(s.keylog);
        any = true;
        if (!quiet)
            std::fprintf(stderr,
                         "hopscope: %s: %zu TLS secret%s embedded in the capture (%zu "
                         "session%s)%s\n",
                         path.c_str(), s.blocks, s.blocks == 1 ? "" : "s", log.sessions() - before,
                         log.sessions() - before == 1 ? "" : "s",
                         s.truncated ? "; more than 64 MiB of them, the rest left out" : "");
        if (!errors.empty())
            std::fprintf(stderr, "hopscope: %s: %zu embedded key log line%s not understood\n",
                         path.c_str(), errors.size(), errors.size() == 1 ? "" : "s");
    }
    return any;
}

/// Whether every capture can be opened once per thread (regular files: not standard input, not
/// a pipe).
bool rereadable(const std::vector<std::string>& files) {
    for (const auto& f : files) {
        struct stat st {};
        if (f == "-" || ::stat(f.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    }
    return true;
}

/// Where run_analyze leaves its backend at the end (reachable, so that leak checkers do not
/// count it as lost).
Backend* g_finished_backend = nullptr;

/// Ends the use of `backend` without destroying it, once all it had to write is written.
/// Destroying it frees the analyzer's windows object by object (10^5 logins and KDC exchanges
/// on a busy capture, each with its heap strings: 5 % of a login-dense `analyze` by perf, all
/// of it cache misses on memory no one reads again) just before the process exits and the
/// kernel takes all of it back at once. Its analysis thread, if any, is stopped first, so
/// that nothing runs while the process ends. Output files are closed by their owners as
/// before (the backend writes through them, it does not own them).
void let_go(std::unique_ptr<Backend> backend) {
    backend->stop();
    g_finished_backend = backend.release();
}

int run_analyze(const CaptureCommands::Analyze& a) {
    tls::KeyLog keylog;
    if (!load_keylogs(a.tls_keylogs, keylog)) return kExitBadInput;
    KeytabSet keytabs;
    if (!keytabs.load(a.keytabs, "hopscope")) return kExitBadInput;
    std::optional<analysis::Analyzer::ProxyView> recorded;
    const bool embedded = load_embedded(a.files, keylog, a.quiet, &recorded);
    Outputs out;
    if (!open_outputs(a, out)) return kExitBadInput;
    BackendOptions bo = backend_options(a, out);
    // Each event goes out as it is found when someone may be waiting for it: on a terminal, or
    // when the packets arrive while they are read (standard input, a pipe from tcpdump). From
    // capture files into a pipe or a device the events go out in 64 KiB writes: a write(2) per
    // event was a sixth of a login-dense run (101 602 of them for 200 MB).
    bo.json_flush_each = out.json != nullptr && !out.json_is_file &&
                         (isatty(fileno(out.json)) != 0 || !rereadable(a.files));
    if (!a.tls_keylogs.empty() || embedded) bo.tls_keys = &keylog;
    bo.kerberos_keys = keytabs.keys();
    if (recorded) bo.proxy_view = *recorded;
    const unsigned threads =
        a.threads != 0 ? a.threads : std::max(1u, std::thread::hardware_concurrency());
    // N >= 2: N threads each read the captures and decode their share of the flows, and take
    // turns feeding their events to the analysis in capture order (Backend::read_sharded), when
    // the files can be read once per thread. Otherwise the reading and decoding run on one thread
    // and the analysis on another. Not with keytabs: a keytab remembers which key opened a
    // service's tickets and searches less for a name no key opened (captures::Keytab), so what
    // a ticket gives depends on the tickets before it, which the shards meet in another order.
    const bool shard = threads >= 2 && !a.flows_only && a.keytabs.empty() && rereadable(a.files);
    bo.analysis_thread = threads >= 2 && !shard;
    auto backend = make_backend(bo);
    const captures::AssemblerConfig config = assembler_config(a);
    captures::StreamAssembler assembler(*backend, config);
    ProgressBar bar(stderr, !a.no_progress && !a.quiet && isatty(STDERR_FILENO) != 0);
    captures::ReadOptions ro;
    ro.progress = [&bar](const captures::ReadProgress& p) { bar.update(p); };
    ro.stop = &g_stop;
    // The clock moves with every frame, before it (what read_sharded does too).
    ro.before_frame = [&backend](std::uint64_t, Timestamp t) { backend->tick(t); };
    install_interrupt_handler();
    std::optional<ShardedRead> sharded;
    if (shard) sharded = backend->read_sharded(a.files, config, ro, threads);
    captures::ReadResult r;
    captures::AssemblerStats stats;
    Timestamp end;
    if (sharded) {
        r = std::move(sharded->result);
        stats = sharded->stats;
        end = sharded->last;
    } else {
        r = captures::read_captures(a.files, assembler, ro);
        stats = assembler.stats();
        end = assembler.last_timestamp();
    }
    backend->settle();  // the events of what was read come before the messages below
    bar.clear();
    std::fflush(out.text);
    for (const auto& e : r.errors)
        std::fprintf(stderr, "hopscope: %s\n", e.to_string().c_str());
    // A summary is worth printing when something was read (a damaged file keeps what preceded
    // the damage); not when every file failed to open.
    if (r.frames > 0 || r.ok()) backend->finish(end, stats);
    const bool error_findings = backend->has_error_findings();
    let_go(std::move(backend));
    if (g_stop.load())
        std::fprintf(stderr, "hopscope: interrupted; the summary covers what was read\n");
    if (!r.ok()) return kExitBadInput;
    if (a.fail_on_findings && error_findings) return kExitFindings;
    return kExitOk;
}

int run_live(const CaptureCommands::Live& l) {
    KeytabSet keytabs;
    if (!keytabs.load(l.keytabs, "hopscope")) return kExitBadInput;
    Outputs out;
    if (!open_outputs(l, out)) return kExitBadInput;
    captures::LiveOptions lo;
    lo.interface = l.interface;
    lo.snaplen = l.snaplen;
    lo.promiscuous = l.promiscuous;
    lo.buffer_bytes = l.buffer_size_mib << 20;
    lo.filter = l.filter;
    if (lo.filter.empty()) {
        // Everything the assembler may want: TCP (TDS on any port, Kerberos), UDP Kerberos, and
        // IP fragments (later fragments carry no ports).
        std::string krb;
        for (auto p :
             (l.kerberos_ports.empty() ? std::vector<std::uint16_t>{88} : l.kerberos_ports))
            krb += (krb.empty() ? "" : " or ") + std::string("udp port ") + std::to_string(p);
        lo.filter =
            "tcp or " + krb + " or (ip and ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)";
    }
    BackendOptions bo = backend_options(l, out);
    bo.verbose = true;  // live shows every login and KDC exchange as it happens
    bo.kerberos_keys = keytabs.keys();
    auto backend = make_backend(bo);
    lo.on_time = [&backend](Timestamp t) { backend->tick(t); };
    // Packet loss is told as it happens (whatever --quiet says): every second in which the
    // kernel or the interface dropped packets gets one line on standard error.
    lo.on_drops = [&l](const captures::LiveStats& now, const captures::LiveStats& before) {
        const std::uint64_t k = now.dropped - before.dropped;
        const std::uint64_t i =
            now.if_dropped >= before.if_dropped ? now.if_dropped - before.if_dropped : 0;
        const std::uint64_t r =
            now.received >= before.received ? now.received - before.received : 0;
        std::fprintf(stderr,
                     "hopscope: %s: dropped %llu of %llu packets in the last second (%llu by "
                     "the kernel, %llu by the interface; %llu in all); a larger --buffer-size "
                     "may help\n",
                     l.interface.c_str(), static_cast<unsigned long long>(k + i),
                     static_cast<unsigned long long>(r + i), static_cast<unsigned long long>(k),
                     static_cast<unsigned long long>(i),
                     static_cast<unsigned long long>(now.dropped + now.if_dropped));
    };
    captures::LiveCapture cap;
    std::string err;
    if (!cap.open(lo, err)) {
        std::fprintf(stderr, "hopscope: %s\n", err.c_str());
        return kExitBadInput;
    }
    captures::StreamAssembler assembler(*backend, assembler_config(l));
    if (!l.quiet)
        std::fprintf(stderr,
                     "hopscope: capturing on %s (filter: %s; kernel buffer %d MiB); Ctrl-C to "
                     "stop\n",
                     l.interface.c_str(), lo.filter.c_str(), l.buffer_size_mib);
    g_live.store(&cap);
    install_interrupt_handler();
    const bool ok = cap.run(assembler, err);
    g_live.store(nullptr);
    backend->finish(assembler.last_timestamp(), assembler.stats());
    const captures::LiveStats st = cap.stats();
    std::fprintf(out.text,
                 "captured %llu packets on %s; dropped %llu by the kernel, %llu by the "
                 "interface",
                 static_cast<unsigned long long>(st.received), l.interface.c_str(),
                 static_cast<unsigned long long>(st.dropped),
                 static_cast<unsigned long long>(st.if_dropped));
    if (st.drop_reports > 0)
        std::fprintf(out.text, " (reported as they happened, %llu time%s)",
                     static_cast<unsigned long long>(st.drop_reports),
                     st.drop_reports == 1 ? "" : "s");
    std::fprintf(out.text, "\n");
    if (!ok) {
        std::fprintf(stderr, "hopscope: %s\n", err.c_str());
        return kExitBadInput;
    }
    if (l.fail_on_findings && backend->has_error_findings()) return kExitFindings;
    return kExitOk;
}

}  // namespace

void add_capture_commands(CLI::App& app, CaptureCommands& c) {
    c.analyze_cmd = app.add_subcommand(
        "analyze",
        "Read capture files (pcap or pcapng; '-' = standard input), merged in time order, and "
        "report the SQL Server logins and Kerberos traffic in them");
    c.analyze_cmd
        ->add_option("FILE", c.analyze.files,
                     "capture files to read. A recording of hopscope proxy --record says how "
                     "the proxy saw the traffic (terminating TLS, explicit upstreams, its names): "
                     "its rules about the proxy itself (HS060-HS062) then apply as in the proxy")
        ->required();
    add_common(c.analyze_cmd, c.analyze);
    c.analyze_cmd->add_flag("--no-progress", c.analyze.no_progress,
                            "do not draw the progress bar (drawn only when stderr is a terminal)");
    c.analyze_cmd
        ->add_option(
            "--tls-keylog", c.analyze.tls_keylogs,
            "TLS secrets in the NSS key log format (SSLKEYLOGFILE; node --tls-keylog; OpenSSL's "
            "keylog callback): decrypt the TLS 1.2/1.3 inside TDS (login-only, full and strict "
            "encryption; AES-GCM and ChaCha20-Poly1305 suites) and classify those logins as if "
            "clear. Repeat for several files. A login whose keys are missing stays 'unknown' with "
            "that reason. A bad line stops the run (exit 2), named by file and line, never "
            "printed. "
            "Secrets embedded in a pcapng capture (Decryption Secrets Blocks: hopscope proxy "
            "--record with --tls-terminate, editcap --inject-secrets) are used without this")
        ->type_name("KEYLOG")
        ->allow_extra_args(false);  // one file per --tls-keylog: the captures follow
    c.analyze_cmd
        ->add_option("--threads", c.analyze.threads,
                     "decoding threads (default, or 0: as many as the cores). With 2 or more, each "
                     "reads the captures and decodes its share of the connections (split by "
                     "their addresses and ports), and they take turns running the analysis "
                     "(correlation, rules, JSON and console output) on their events in capture "
                     "order: the output is the same as with 1. From standard input or a pipe, and "
                     "with --keytab, one thread reads and decodes and one more analyses")
        ->type_name("N")
        ->check(CLI::Range(0u, 1024u));
    c.analyze_cmd->footer(
        "Memory: hopscope --version names the allocator. Built with mimalloc (the default "
        "where libmimalloc-dev is installed), analyze of 64 MiB of captures or more (or of "
        "standard input) first measures what a page fault costs here, 2 MiB touched as 4 KiB "
        "pages and as one transparent huge page (a few ms), and when the huge page is the "
        "cheaper puts mimalloc's heap on huge pages (its options large_os_pages=1 and "
        "eager_commit_delay=0, set in the process; MIMALLOC_VERBOSE=1 shows them and the "
        "measurement). In a virtual machine whose free huge pages go back to the host (a "
        "virtio balloon with free page reporting at the huge page's order or below) a huge "
        "page counts as 4 ms at least: the heap's come cold there. HOPSCOPE_HUGE_PAGES=1 "
        "takes huge pages without measuring, HOPSCOPE_NO_HUGE_PAGES=1 (which wins) never, "
        "and a MIMALLOC_LARGE_OS_PAGES or "
        "MIMALLOC_EAGER_COMMIT_DELAY of your own is kept as it is. Built with the C "
        "library's malloc, analyze starts itself once more with "
        "GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (its heap on transparent huge pages: fewer page "
        "faults on busy captures), except in a virtual machine whose free huge pages go back "
        "to the host (a virtio balloon with free page reporting at the huge page's order or "
        "below: there each new huge page costs the host's faults); HOPSCOPE_NO_HUGE_PAGES=1 "
        "keeps the first start, and a glibc.malloc.hugetlb of your own is kept as it is.\n"
        "JSON (--json): written in 64 KiB blocks, each event at once only to a terminal or when "
        "reading standard input.");

    c.live_cmd = app.add_subcommand(
        "live",
        "Capture on a network interface: print every login, KDC exchange and finding as it "
        "happens; on Ctrl-C the chains, hops and packet drop counters (needs root or "
        "CAP_NET_RAW)");
    c.live_cmd->add_option("-i,--interface", c.live.interface, "interface to capture on, e.g. eth0")
        ->required();
    c.live_cmd->add_option("-f,--filter", c.live.filter,
                           "BPF capture filter (default: all TCP, UDP on the Kerberos ports and "
                           "IP fragments)");
    c.live_cmd->add_option("--snaplen", c.live.snaplen, "bytes to keep per packet (default 262144)")
        ->check(CLI::Range(64, 262144));
    c.live_cmd->add_flag("--promiscuous,!--no-promiscuous", c.live.promiscuous,
                         "promiscuous mode, to see other hosts' traffic on a SPAN port or bridge "
                         "(default, as tcpdump); --no-promiscuous sees only this host's");
    c.live_cmd
        ->add_option("--buffer-size", c.live.buffer_size_mib,
                     "kernel capture buffer in MiB, as tcpdump's -B in KiB (default 128: a "
                     "second of a login-dense link at a million packets a second, more than "
                     "live decodes). Packets are handed over in blocks, when a block is full or "
                     "100 ms after its first packet; drops are reported on standard error as "
                     "they happen: raise this when they are")
        ->type_name("MIB")
        ->check(CLI::Range(1, 2047));
    add_common(c.live_cmd, c.live);
}

int run_capture_command(const CaptureCommands& c) {
    if (c.analyze_cmd && c.analyze_cmd->parsed()) return run_analyze(c.analyze);
    if (c.live_cmd && c.live_cmd->parsed()) return run_live(c.live);
    return -1;
}

}  // namespace hopscope::cli
