#include "proxy_command.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "backend.hpp"
#include "capture_commands.hpp"
#include "hopscope/proxy/config.hpp"
#include "hopscope/proxy/metrics.hpp"
#include "hopscope/proxy/proxy.hpp"
#include "hopscope/proxy/recorder.hpp"
#include "hopscope/proxy/tls_terminate.hpp"
#include "keytabs.hpp"
#include "recorded_view.hpp"

namespace hopscope::cli {
namespace {

using std::chrono::milliseconds;

milliseconds to_ms(double seconds) {
    return milliseconds(static_cast<std::int64_t>(seconds * 1000.0));
}

/// Operational logs: stderr, or a file (optionally rotated by size) that SIGHUP reopens, so
/// that logrotate can move it. The file sink sits inside a dist_sink, whose own lock makes the
/// swap safe while I/O threads log.
class LogSetup {
  public:
    bool init(const ProxyCommand& c, std::string& err) {
        const auto level = spdlog::level::from_str(c.log_level);
        if (level == spdlog::level::off && c.log_level != "off") {
            err = "--log-level: one of trace, debug, info, warn, error, critical, off";
            return false;
        }
        c_ = &c;
        dist_ = std::make_shared<spdlog::sinks::dist_sink_mt>();
        if (!open_sink(err)) return false;
        auto logger = std::make_shared<spdlog::logger>("hopscope", dist_);
        logger->set_level(level);
        logger->flush_on(spdlog::level::info);
        spdlog::set_default_logger(logger);
        return true;
    }
    void reopen() {
        if (!c_ || c_->log_file.empty()) return;
        std::string err;
        if (!open_sink(err)) spdlog::error("cannot reopen the log file: {}", err);
    }

  private:
    bool open_sink(std::string& err) {
        spdlog::sink_ptr sink;
        try {
            if (c_->log_file.empty())
                sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
            else if (c_->log_max_bytes > 0)
                sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
                    c_->log_file, c_->log_max_bytes, c_->log_keep);
            else
                sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(c_->log_file);
        } catch (const spdlog::spdlog_ex& e) {
            err = c_->log_file + ": " + e.what();
            return false;
        }
        // A sink added later does not inherit the logger's pattern: give each its own.
        sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
            "%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc));
        dist_->set_sinks({sink});
        return true;
    }
    const ProxyCommand* c_ = nullptr;
    std::shared_ptr<spdlog::sinks::dist_sink_mt> dist_;
};

bool build_options(const ProxyCommand& c, proxy::ProxyOptions& o, std::string& err) {
    // CLI11's range checks let "nan" through (every comparison with it is false), and a time
    // that is not a number has no milliseconds (converting it is undefined).
    for (const auto& [name, seconds] :
         {std::pair{"--connect-timeout", c.connect_timeout_s},
          std::pair{"--idle-timeout", c.idle_timeout_s}, std::pair{"--grace", c.grace_s}})
        if (!std::isfinite(seconds)) {
            err = std::string(name) + ": not a number of seconds";
            return false;
        }
    if (c.transparent) {
        if (!c.upstream.empty()) {
            err =
                "--transparent forwards each connection to its original destination: give "
                "no --upstream";
            return false;
        }
    } else if (c.upstream.size() != c.listen.size()) {
        err = "give one --upstream for each --listen (" + std::to_string(c.listen.size()) +
              " --listen, " + std::to_string(c.upstream.size()) + " --upstream), or --transparent";
        return false;
    }
    if (c.tproxy && !c.transparent) {
        err = "--tproxy goes with --transparent";
        return false;
    }
    for (std::size_t i = 0; i < c.listen.size(); ++i) {
        proxy::Route r;
        auto l = proxy::parse_host_port(c.listen[i], err);
        if (!l) {
            err = "--listen " + err;
            return false;
        }
        r.listen = *l;
        if (c.transparent) {
            r.mode = proxy::RouteMode::Transparent;
            r.tproxy = c.tproxy;
        } else {
            auto u = proxy::parse_host_port(c.upstream[i], err);
            if (!u) {
                err = "--upstream " + err;
                return false;
            }
            r.upstream = *u;
        }
        o.routes.push_back(r);
    }
    o.threads = c.threads;
    o.analysis_nice = c.analysis_nice;
    o.analysis_idle = !c.no_analysis_idle;
    o.max_connections = c.max_connections;
    o.connect_timeout = to_ms(c.connect_timeout_s);
    o.idle_timeout = to_ms(c.idle_timeout_s);
    o.buffer_size = c.buffer_size;
    o.tap_queue_bytes = c.tap_queue_bytes;
    o.splice = c.splice;
    o.tls.terminate = c.tls_terminate;
    o.tls.cert_file = c.tls_cert;
    o.tls.key_file = c.tls_key;
    o.tls.upstream_ca = c.upstream_ca;
    o.tls.upstream_verify = c.upstream_verify;
    o.tls.keylog_file = c.tls_keylog;
    err = proxy::validate(o);
    return err.empty();
}

/// What the analyzer needs to tell when the proxy itself is in the way (HS060): the explicit
/// routes' upstream addresses, and every name and address a client could use for this host.
analysis::Analyzer::ProxyView proxy_view(const proxy::ProxyOptions& o,
                                         const std::vector<std::string>& extra_names) {
    analysis::Analyzer::ProxyView v;
    v.active = true;
    std::set<std::string> names;
    auto add = [&names](std::string n) {
        for (auto& ch : n)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        while (!n.empty() && n.back() == '.')
            n.pop_back();
        if (!n.empty()) names.insert(n);
        if (const auto dot = n.find('.');
            dot != std::string::npos && !std::isdigit(static_cast<unsigned char>(n[0])))
            names.insert(n.substr(0, dot));  // the short name too
    };
    bool wildcard = false;
    for (const auto& r : o.routes) {
        if (r.mode != proxy::RouteMode::Explicit) continue;
        boost::system::error_code ec;
        for (const auto& s : r.upstream_addresses)  // resolved once, for the proxy too
            if (const auto a = boost::asio::ip::make_address(s, ec); !ec)
                v.explicit_upstreams.push_back(
                    proxy::to_endpoint(boost::asio::ip::tcp::endpoint(a, r.upstream.port)));
        const auto a = boost::asio::ip::make_address(r.listen.host, ec);
        if (!ec && a.is_unspecified())
            wildcard = true;
        else
            add(r.listen.host);
    }
    if (v.explicit_upstreams.empty()) return v;  // transparent only: clients use real names
    std::vector<std::string> addresses;
    if (wildcard) {
        ifaddrs* ifs = nullptr;
        if (getifaddrs(&ifs) == 0) {
            for (ifaddrs* i = ifs; i; i = i->ifa_next) {
                if (!i->ifa_addr) continue;
                const int fam = i->ifa_addr->sa_family;
                if (fam != AF_INET && fam != AF_INET6) continue;
                char buf[INET6_ADDRSTRLEN] = {};
                const void* src =
                    fam == AF_INET
                        ? static_cast<const void*>(
                              &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr)
                        : static_cast<const void*>(
                              &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr);
                if (inet_ntop(fam, src, buf, sizeof buf)) addresses.push_back(buf);
            }
            freeifaddrs(ifs);
        }
    }
    for (const auto& r : o.routes)
        if (r.mode == proxy::RouteMode::Explicit) addresses.push_back(r.listen.host);
    // The host's own name (and canonical name) reaches an explicit listener only when the
    // listener takes every address, or the name resolves to the listener's address.
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) {
        addrinfo hints{};
        hints.ai_flags = AI_CANONNAME;
        addrinfo* res = nullptr;
        if (getaddrinfo(host, nullptr, &hints, &res) == 0) {
            bool reaches = wildcard;
            for (addrinfo* r = res; r && !reaches; r = r->ai_next) {
                char buf[NI_MAXHOST] = {};
                if (getnameinfo(r->ai_addr, r->ai_addrlen, buf, sizeof buf, nullptr, 0,
                                NI_NUMERICHOST) == 0)
                    reaches = std::find(addresses.begin(), addresses.end(), buf) != addresses.end();
            }
            if (reaches) {
                add(host);
                if (res && res->ai_canonname) add(res->ai_canonname);
            }
            freeaddrinfo(res);
        }
    }
    for (const auto& a : addresses) {
        add(a);
        // The names the address resolves back to (DNS PTR or hosts file), as clients may use.
        addrinfo hints{};
        hints.ai_flags = AI_NUMERICHOST;
        addrinfo* res = nullptr;
        if (getaddrinfo(a.c_str(), nullptr, &hints, &res) != 0) continue;
        char name[NI_MAXHOST] = {};
        if (getnameinfo(res->ai_addr, res->ai_addrlen, name, sizeof name, nullptr, 0,
                        NI_NAMEREQD) == 0)
            add(name);
        freeaddrinfo(res);
    }
    for (const auto& n : extra_names)
        add(n);
    v.proxy_names.assign(names.begin(), names.end());
    return v;
}

/// The JSON destination: standard output ('-') or a file that SIGHUP reopens (append).
struct JsonOut {
    std::FILE* f = nullptr;
    bool owned = false;
    std::unique_ptr<char[]> buffer;  ///< the owned file's stdio buffer
    ~JsonOut() {
        if (owned && f) std::fclose(f);
    }
};

}  // namespace

void add_proxy_command(CLI::App& app, ProxyCommand& c) {
    c.cmd = app.add_subcommand(
        "proxy",
        "Run inline between a client and SQL Server (and between SQL Server and its linked "
        "server): forward every byte unchanged and report each login and broken delegation as "
        "it happens. Deployment and Kerberos: docs/proxy.md");
    CLI::App* p = c.cmd;
    // CLI11 2.1 reads a configuration file only through an option of the top-level app;
    // main() moves `--config FILE` given after `proxy` in front of it.
    app.allow_config_extras(CLI::config_extras_mode::error);  // a misspelt key is an error
    app.set_config("--config", "",
                   "read options from a TOML file (hopscope proxy --config FILE; see "
                   "docs/proxy.md)");
    p->footer(
        "Every option can also come from a TOML file: hopscope proxy --config FILE, with a "
        "[proxy] section of 'option = value' lines without the dashes, e.g. listen = "
        "[\"0.0.0.0:15433\"], "
        "upstream = [\"sqla.corp.example:1433\"], idle-timeout = 600. Options given on the "
        "command line override the file. Example: docs/hopscope-proxy.toml.\n"
        "Signals: SIGTERM/SIGINT stop accepting and let connections finish for --grace "
        "seconds; SIGHUP reopens the log, JSON and recording files.");
    p->add_option("-l,--listen", c.listen,
                  "ADDR:PORT to accept clients on ([::]:PORT for IPv6); repeat for several "
                  "listeners, each paired with the --upstream in the same position")
        ->required();
    p->add_option("-u,--upstream", c.upstream,
                  "HOST:PORT of the SQL Server the matching --listen forwards to (explicit "
                  "mode: clients connect to the proxy; integrated logins then ask for the "
                  "proxy's SPN, see docs/proxy.md)");
    p->add_flag(
        "--transparent", c.transparent,
        "forward each connection to the destination it had before an iptables/nftables "
        "REDIRECT or DNAT sent it to the proxy (SO_ORIGINAL_DST): clients keep the server's "
        "name, so Kerberos keeps working. No --upstream");
    p->add_flag("--tproxy", c.tproxy,
                "with --transparent: accept TPROXY'd connections (IP_TRANSPARENT; needs "
                "CAP_NET_ADMIN); the original destination is the connection's local address");
    p->add_option("--threads", c.threads, "I/O threads (default: one per core)")
        ->check(CLI::Range(0, 1024));
    p->add_option("--analysis-nice", c.analysis_nice,
                  "scheduling niceness the analysis thread adds to the proxy's (0-19): when the "
                  "cores are busy, forwarding comes first and the analysis catches up from its "
                  "queue (--tap-queue-bytes); 0 = as the I/O threads (default 10)")
        ->check(CLI::Range(0, 19));
    p->add_flag("--no-analysis-idle", c.no_analysis_idle,
                "keep the analysis thread at its niceness. By default it runs at idle priority "
                "(SCHED_IDLE) while its queue is short, so a waking I/O thread takes the core at "
                "once, and goes back to its niceness when the queue passes an eighth of "
                "--tap-queue-bytes; only where the proxy may leave idle priority (root, "
                "CAP_SYS_NICE or RLIMIT_NICE), else it keeps its niceness anyway");
    p->add_option("--max-connections", c.max_connections,
                  "connections open at once; more are refused (reset) and counted (default "
                  "10000)")
        ->check(CLI::PositiveNumber);
    p->add_option("--connect-timeout", c.connect_timeout_s,
                  "seconds to wait for the upstream to accept (default 5)")
        ->check(CLI::Range(0.001, 3600.0));
    p->add_option("--idle-timeout", c.idle_timeout_s,
                  "close a connection after this many seconds without a byte either way; 0 = "
                  "never (default 3600)")
        ->check(CLI::Range(0.0, 1e7));
    p->add_option("--grace", c.grace_s,
                  "on SIGTERM/SIGINT, seconds to let open connections finish before closing "
                  "them (default 10; a second signal stops at once)")
        ->check(CLI::Range(0.0, 86400.0));
    p->add_option("--buffer-size", c.buffer_size,
                  "bytes read at once per direction, and the most a direction holds when its "
                  "reader is slow; a direction holds one only while bytes flow (default 262144)")
        ->check(CLI::Range(4096, 16 << 20));
    p->add_option("--tap-queue-bytes", c.tap_queue_bytes,
                  "forwarded bytes waiting for the decoder, all connections together; past it "
                  "the decoder skips (a gap is reported) and forwarding goes on (default 64 MiB)")
        ->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 34));
    p->add_flag("--splice", c.splice,
                "forward connections that are not TDS with splice(2), without copying their "
                "bytes through the process (see docs/performance.md for when it pays)");
    p->add_option("--name", c.names,
                  "another name clients may use for this proxy host (a DNS alias); the host "
                  "name, its canonical name and the names of its addresses are known already. "
                  "A login through an explicit listener that names the proxy is reported "
                  "(HS060): its Kerberos ticket cannot be for the real server");
    p->add_option("--json", c.json,
                  "write events as JSON lines to PATH (appended; SIGHUP reopens it), or to "
                  "standard output with '-'; flushed after each batch of traffic the analysis "
                  "takes in (milliseconds apart under load)");
    p->add_flag("-q,--quiet", c.quiet, "print no logins or summary, only findings' JSON and logs");
    p->add_option("--log-file", c.log_file,
                  "operational log to PATH instead of standard error (SIGHUP reopens it)");
    p->add_option("--log-level", c.log_level,
                  "trace, debug (every connection), info (default), warn, error, off");
    p->add_option("--log-max-bytes", c.log_max_bytes,
                  "rotate the --log-file at this size, keeping --log-keep files (default: no "
                  "rotation by the proxy; use logrotate and SIGHUP)");
    p->add_option("--log-keep", c.log_keep, "rotated log files kept (default 5)");
    p->add_option("--record", c.record,
                  "write what the proxy decoded as pcapng (synthetic TCP/IP with the real "
                  "addresses) for hopscope analyze and Wireshark; SIGHUP reopens it. With "
                  "--tls-terminate it also holds the TLS secrets of the terminated connections, "
                  "so both read the TDS inside");
    p->add_option("--record-max-bytes", c.record_max_bytes,
                  "rotate the recording at this size (FILE.1 ... FILE.N; default: no limit)");
    p->add_option("--record-keep", c.record_keep, "rotated recordings kept (default 4)");
    p->add_flag("--record-upstream-leg", c.record_upstream_leg,
                "also record the proxy-to-upstream leg as a second interface (its bytes are "
                "the same as the client leg's unless TLS is terminated; analyze then sees each "
                "login twice)");
    p->add_flag("--tls-terminate", c.tls_terminate,
                "be the TLS server for clients and a TLS client to the upstream, to read the "
                "logins inside TLS (login-only, full and TDS 8.0 strict; each leg negotiates what "
                "its peer asked for). Breaks logins bound to the TLS channel (Extended "
                "Protection): those are reported (HS062). Without it TLS passes untouched and "
                "such logins are 'unknown'");
    p->add_option("--tls-cert", c.tls_cert,
                  "PEM certificate (chain) shown to clients (default: a self-signed one made at "
                  "start for the upstreams' names; its fingerprint is logged)");
    p->add_option("--tls-key", c.tls_key, "PEM private key of --tls-cert");
    p->add_option("--upstream-ca", c.upstream_ca,
                  "PEM CA bundle the upstream's certificate must chain to (turns on "
                  "--upstream-verify)");
    p->add_flag("--upstream-verify", c.upstream_verify,
                "verify the upstream's certificate and name (system CAs unless --upstream-ca); "
                "a connection that fails is closed and logged");
    p->add_option("--tls-keylog", c.tls_keylog,
                  "append the TLS secrets of both legs to PATH in the NSS key log format "
                  "(Wireshark, tshark, hopscope analyze --tls-keylog); mode 0600: a secret");
    p->add_option("--keytab", c.keytabs, kKeytabHelp)->type_name("KEYTAB");
    p->add_option("--metrics", c.metrics,
                  "serve Prometheus metrics on ADDR:PORT at /metrics (off by default)");
    p->add_flag("--metrics-any-address", c.metrics_any_address,
                "allow --metrics on an address other than loopback");
}

bool proxy_options(const ProxyCommand& c, proxy::ProxyOptions& options, std::string& err) {
    return build_options(c, options, err);
}

namespace {

/// The forwarding threads take and give back buffers of --buffer-size (256 KiB) and TLS record
/// batches of that size all the time. glibc gives memory above its trim threshold back to the
/// kernel as soon as it is free (the threshold follows the largest block freed, here about
/// twice a buffer), so the next buffer faulted its pages in again: with TLS terminated,
/// 130 000 page faults in 3 s and a third less throughput (docs/performance.md). Each thread's
/// heap now keeps up to 64 MiB free for what comes next, and blocks below 4 MiB come from it
/// rather than from mmap(2).
void keep_freed_memory() {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

}  // namespace

int run_proxy_command(const ProxyCommand& c) {
    if (!c.cmd || !c.cmd->parsed()) return -1;
    keep_freed_memory();
    LogSetup logs;
    std::string err;
    if (!logs.init(c, err)) {
        std::fprintf(stderr, "hopscope proxy: %s\n", err.c_str());
        return kExitBadInput;
    }
    proxy::ProxyOptions po;
    if (!build_options(c, po, err)) {
        std::fprintf(stderr, "hopscope proxy: %s\n", err.c_str());
        return kExitBadInput;
    }
    KeytabSet keytabs;
    if (!keytabs.load(c.keytabs, "hopscope proxy")) return kExitBadInput;

    // Outputs.
    JsonOut json;
    std::FILE* text = stdout;
    if (c.json == "-") {
        json.f = stdout;
        text = stderr;
    } else if (!c.json.empty()) {
        json.f = std::fopen(c.json.c_str(), "a");
        if (!json.f) {
            std::fprintf(stderr, "hopscope proxy: %s: cannot write the JSON output\n",
                         c.json.c_str());
            return kExitBadInput;
        }
        json.owned = true;
        // flushed after each batch of traffic anyway
        buffer_json_output(json.f, &json.buffer);
    }
    proxy::Metrics metrics;
    std::optional<boost::asio::ip::tcp::endpoint> metrics_at;
    if (!c.metrics.empty()) {
        auto hp = proxy::parse_host_port(c.metrics, err);
        boost::system::error_code ec;
        const auto addr =
            hp ? boost::asio::ip::make_address(hp->host, ec) : boost::asio::ip::address();
        if (!hp || ec) {
            std::fprintf(
                stderr, "hopscope proxy: --metrics %s\n",
                hp ? ("'" + c.metrics + "': the address must be numeric").c_str() : err.c_str());
            return kExitBadInput;
        }
        if (!addr.is_loopback() && !c.metrics_any_address) {
            std::fprintf(stderr,
                         "hopscope proxy: --metrics %s is not a loopback address; add "
                         "--metrics-any-address to serve metrics beyond this host\n",
                         c.metrics.c_str());
            return kExitBadInput;
        }
        metrics_at = boost::asio::ip::tcp::endpoint(addr, hp->port);
    }

    BackendOptions bo;
    bo.verbose = true;  // like live: every login as it happens
    bo.quiet = c.quiet;
    bo.json = json.f;
    bo.text = text;
    bo.proxy = true;
    // Events are flushed after each batch the analysis thread takes from the tap (a few
    // milliseconds apart under load) instead of after each line: one write for many logins.
    bo.json_flush_each = false;
    bo.kerberos_keys = keytabs.keys();
    if (!proxy::resolve_upstreams(po, err)) {
        std::fprintf(stderr, "hopscope proxy: %s\n", err.c_str());
        return kExitBadInput;
    }
    bo.proxy_view = proxy_view(po, c.names);
    bo.proxy_view.terminates_tls = po.tls.terminate;
    std::unique_ptr<proxy::Recorder> recorder;
    if (!c.record.empty()) {
        proxy::RecorderOptions ro;
        ro.path = c.record;
        ro.max_bytes = c.record_max_bytes;
        ro.keep = c.record_keep;
        // so that analyze of the recording applies this proxy's rules as it does
        ro.section_comment = view_comment(bo.proxy_view);
        recorder = proxy::Recorder::open(ro, err);
        if (!recorder) {
            std::fprintf(stderr, "hopscope proxy: --record %s\n", err.c_str());
            return kExitBadInput;
        }
    }
    if (!bo.proxy_view.explicit_upstreams.empty()) {
        std::string list;
        for (const auto& n : bo.proxy_view.proxy_names)
            list += (list.empty() ? "" : ", ") + n;
        spdlog::debug(
            "names of this proxy (a login naming one through an explicit listener is "
            "HS060): {}",
            list);
    }
    bo.login_hook = [&metrics](const analysis::LoginEvent& e) {
        metrics.count_login(hopscope::to_string(e.auth), analysis::to_string(e.outcome));
    };
    bo.finding_hook = [&metrics](const analysis::Finding& f) {
        metrics.count_finding(f.rule, analysis::to_string(f.severity));
    };
    auto backend = make_analysis_backend(bo);

    // SIGHUP asks the analysis thread (which owns the JSON stream and the recorder) to reopen.
    std::atomic<bool> reopen{false};
    proxy::AnalysisHooks hooks;
    hooks.sink = backend.get();
    hooks.recorder = recorder.get();
    hooks.record_upstream_leg = c.record_upstream_leg;
    hooks.after_batch = [&] {
        if (json.f) std::fflush(json.f);
        if (!reopen.exchange(false)) return;
        // The new file takes the old one's descriptor, so the stream the backend writes to stays
        // valid; when the path cannot be opened the events go on to the old file.
        if (json.owned) {
            std::FILE* fresh = std::fopen(c.json.c_str(), "a");
            if (fresh == nullptr || ::dup2(fileno(fresh), fileno(json.f)) < 0)
                spdlog::error(
                    "{}: cannot reopen the JSON output: {}; still writing to the "
                    "file it was",
                    c.json, std::strerror(errno));
            if (fresh != nullptr) std::fclose(fresh);
        }
        if (recorder) {
            std::string e;
            if (!recorder->reopen(e)) spdlog::error("--record: cannot reopen: {}", e);
        }
        if (recorder) recorder->flush();
    };
    hooks.tick = [&](Timestamp ts) { backend->tick(ts); };
    hooks.finish = [&](Timestamp ts) {
        backend->finish(ts, captures::AssemblerStats{});
        if (recorder) recorder->flush();
    };

    // Signals are taken by this thread alone (sigtimedwait); every thread started from here on
    // inherits the blocked mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    proxy::Proxy px(po, hooks, &metrics);
    if (!px.start(err)) {
        std::fprintf(stderr, "hopscope proxy: %s\n", err.c_str());
        return kExitBadInput;
    }
    boost::asio::io_context metrics_io;
    std::unique_ptr<proxy::MetricsServer> metrics_server;
    std::thread metrics_thread;
    if (metrics_at) {
        try {
            metrics_server =
                std::make_unique<proxy::MetricsServer>(metrics_io, *metrics_at, metrics);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "hopscope proxy: --metrics %s: %s\n", c.metrics.c_str(), e.what());
            px.shutdown(milliseconds(0));
            return kExitBadInput;
        }
        metrics_thread = std::thread([&metrics_io] { metrics_io.run(); });
    }
    const auto eps = px.listen_endpoints();
    for (std::size_t i = 0; i < eps.size(); ++i) {
        const auto& r = po.routes[i];
        spdlog::info("listening on {} -> {}", to_string(eps[i]),
                     r.mode == proxy::RouteMode::Transparent
                         ? std::string("original destination (transparent)")
                         : r.upstream.str());
    }
    if (metrics_server) spdlog::info("metrics on http://{}/metrics", c.metrics);
    if (const proxy::TlsContexts* tls = px.tls()) {
        spdlog::info("TLS terminated: clients see {} (SHA-256 {}); upstream certificates {}",
                     tls->subject(), tls->fingerprint(),
                     tls->verify_upstream() ? "verified" : "not verified (--upstream-verify)");
        if (tls->self_signed())
            spdlog::warn(
                "the certificate is self-signed, made at start: clients must trust it or "
                "connect with TrustServerCertificate=yes (FreeTDS: no 'ca file'); give "
                "--tls-cert/--tls-key for one they trust");
    }

    // Run until SIGINT/SIGTERM; then stop accepting and give open connections --grace.
    std::optional<std::chrono::steady_clock::time_point> stop_by;
    for (;;) {
        timespec wait{0, 100 * 1000 * 1000};
        const int sig = sigtimedwait(&sigs, nullptr, &wait);
        if (sig == SIGHUP) {
            logs.reopen();
            spdlog::info("SIGHUP: reopened the log; the JSON and recording files follow");
            reopen = true;
            continue;
        }
        if (sig == SIGINT || sig == SIGTERM) {
            if (stop_by) {
                spdlog::info("second signal: stopping now");
                break;
            }
            px.stop_accepting();
            stop_by = std::chrono::steady_clock::now() + to_ms(c.grace_s);
            const auto open = px.stats().connections_open;
            spdlog::info("stopping: no new connections; {} open, waiting up to {} s", open,
                         c.grace_s);
        }
        if (stop_by &&
            (px.stats().connections_open == 0 || std::chrono::steady_clock::now() >= *stop_by))
            break;
    }
    px.shutdown(milliseconds(0));
    if (metrics_server) metrics_server->stop();
    metrics_io.stop();
    if (metrics_thread.joinable()) metrics_thread.join();
    const proxy::ProxyStats st = px.stats();
    std::fprintf(text,
                 "proxied %llu connections (%llu decoded as TDS); refused %llu; upstream "
                 "connect failures %llu; decoder skipped %llu bytes in %llu chunks (tap queue "
                 "full)\n",
                 static_cast<unsigned long long>(st.connections_total),
                 static_cast<unsigned long long>(st.tapped_connections),
                 static_cast<unsigned long long>(st.connections_refused),
                 static_cast<unsigned long long>(st.upstream_connect_failures),
                 static_cast<unsigned long long>(st.tap.dropped_bytes),
                 static_cast<unsigned long long>(st.tap.dropped_chunks));
    if (st.analysis_raised > 0)
        std::fprintf(text,
                     "the analysis fell behind %llu time(s) and caught up at its niceness "
                     "(--analysis-nice; idle priority while it keeps up)\n",
                     static_cast<unsigned long long>(st.analysis_raised));
    if (recorder && !recorder->error().empty())
        std::fprintf(stderr, "hopscope proxy: --record: %s\n", recorder->error().c_str());
    std::fflush(text);
    return kExitOk;
}

}  // namespace hopscope::cli
