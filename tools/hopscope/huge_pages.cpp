// Why: `analyze` keeps its windows (logins, KDC exchanges, de-duplication keys) in many small
// heap objects, a few hundred MB on a busy capture. Faulting that memory in 4 KiB at a time was
// a quarter of a login-dense run here (43 757 page faults for 200 MB; 3 500-4 300 with huge
// pages, the run a sixth to a fifth shorter: docs/performance.md). glibc gives its heap to
// transparent huge pages (madvise(MADV_HUGEPAGE) on what it takes from the kernel) only when the
// tunable glibc.malloc.hugetlb is set when the process starts, so `analyze` sets it and starts
// itself once more before it reads anything. The proxy and `live` do not: a huge-page fault may
// wait for the kernel to compact memory, and their forwarding and capture threads must not.
//
// Not in a virtual machine whose free memory goes back to its host in huge-page-sized blocks
// (virtio-balloon free page reporting at order 9 or less, as on the Firecracker VMs this was
// measured on): every huge page the kernel hands out there was given back to the host when it
// was last freed, and clearing it costs the host's faults. Measured on such a VM
// (page_reporting_order 9), the 200 MB login-dense capture, one thread, alternating runs, also
// with 6 s between runs for the reporting to happen: with huge pages 1.01-1.15 s (0.20-0.33 s
// of system time), with 4 KiB pages 0.86-0.91 s (0.05-0.07 s); 1 GB of it 4.46-4.60 s against
// 4.25-4.26 s; two threads 0.57-0.63 s against 0.56-0.74 s (docs/performance.md).
#include "huge_pages.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HOPSCOPE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define HOPSCOPE_SANITIZED 1
#endif
#endif

namespace hopscope::cli {

namespace {

[[maybe_unused]] std::string read_text(const std::filesystem::path& p) {
    std::ifstream f(p);
    if (!f) return {};
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/// The number at the start of `s` (after blanks), or -1.
long long leading_number(std::string_view s) {
    const std::size_t start = s.find_first_not_of(" \t");
    if (start == std::string_view::npos) return -1;
    long long v = -1;
    if (std::from_chars(s.data() + start, s.data() + s.size(), v).ec != std::errc{}) return -1;
    return v >= 0 ? v : -1;
}

bool thp_available(std::string_view thp_enabled) {
    return thp_enabled.find("[always]") != std::string_view::npos ||
           thp_enabled.find("[madvise]") != std::string_view::npos;
}

/// An environment variable set and not empty (HOPSCOPE_NO_HUGE_PAGES, HOPSCOPE_HUGE_PAGES).
bool set_not_empty(const char* value) {
    return value != nullptr && *value != '\0';
}

/// A valgrind tool is preloaded: it would not follow a new start of the process.
bool under_valgrind(const char* ld_preload) {
    return ld_preload != nullptr &&
           std::string_view(ld_preload).find("vgpreload") != std::string_view::npos;
}

/// The heap's pages are hopscope's to choose: no opt-out, no MIMALLOC_LARGE_OS_PAGES of the
/// user's own, no valgrind (worth_measuring() and forced() both start from this).
bool ours_to_choose(const MimallocHugePageEnv& env) {
    return !set_not_empty(env.opt_out) && env.user_setting == nullptr &&
           !under_valgrind(env.ld_preload);
}

/// Starts the process again as `argv` with each of `vars` (name, value) set; when the new start
/// fails (no /proc, say), puts the variables back as they were and returns.
[[maybe_unused]] void exec_self_with(char** argv,
                                     const std::vector<std::pair<const char*, std::string>>& vars) {
    std::vector<std::optional<std::string>> before;
    const auto restore = [&] {
        for (std::size_t i = 0; i < before.size(); ++i) {
            if (before[i]) {
                ::setenv(vars[i].first, before[i]->c_str(), 1);
            } else {
                ::unsetenv(vars[i].first);
            }
        }
    };
    for (const auto& [name, value] : vars) {
        const char* was = std::getenv(name);
        before.push_back(was != nullptr ? std::optional<std::string>(was) : std::nullopt);
        if (::setenv(name, value.c_str(), 1) != 0) {
            restore();
            return;
        }
    }
    ::execv("/proc/self/exe", argv);
    restore();
}

}  // namespace

bool free_huge_pages_go_to_host(const std::vector<std::string>& balloon_features,
                                std::string_view reporting_order, std::string_view hpage_pmd_size,
                                long page_size) {
    constexpr std::size_t kReportingBit = 5;  // VIRTIO_BALLOON_F_REPORTING
    bool reporting = false;
    for (const std::string& f : balloon_features)
        reporting = reporting || (f.size() > kReportingBit && f[kReportingBit] == '1');
    if (!reporting) return false;
    const long long order = leading_number(reporting_order);
    const long long huge = leading_number(hpage_pmd_size);
    if (order < 0 || order > 62 || huge <= 0 || page_size <= 0) return false;
    return (1LL << order) <= huge / page_size;  // blocks of 2^order pages, a huge page or less
}

bool host_takes_free_huge_pages() {
    std::vector<std::string> features;
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/sys/bus/virtio/drivers/virtio_balloon", ec), end;
         !ec && it != end; it.increment(ec)) {
        if (it->path().filename().string().rfind("virtio", 0) == 0)
            features.push_back(read_text(it->path() / "features"));
    }
    return free_huge_pages_go_to_host(
        features, read_text("/sys/module/page_reporting/parameters/page_reporting_order"),
        read_text("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"), sysconf(_SC_PAGESIZE));
}

std::optional<std::string> huge_page_tunables(const HugePageEnv& env) {
    if (env.command != "analyze") return std::nullopt;
    if (env.host_takes_free_huge_pages) return std::nullopt;
    if (set_not_empty(env.opt_out)) return std::nullopt;
    const std::string_view tunables = env.glibc_tunables != nullptr ? env.glibc_tunables : "";
    if (tunables.find("glibc.malloc.hugetlb") != std::string_view::npos) return std::nullopt;
    if (under_valgrind(env.ld_preload)) return std::nullopt;
    if (!thp_available(env.thp_enabled)) return std::nullopt;
    std::string out(tunables);
    if (!out.empty()) out += ':';
    out += "glibc.malloc.hugetlb=1";
    return out;
}

void restart_with_huge_pages(char** argv) {
#ifdef HOPSCOPE_SANITIZED
    (void)argv;  // the sanitizers' allocators do not read glibc's tunables
#else
    if (argv == nullptr || argv[0] == nullptr || argv[1] == nullptr) return;
    const std::string thp = read_text("/sys/kernel/mm/transparent_hugepage/enabled");
    const char* before = std::getenv("GLIBC_TUNABLES");
    HugePageEnv env{argv[1], before, std::getenv("LD_PRELOAD"),
                    std::getenv("HOPSCOPE_NO_HUGE_PAGES"), thp};
    if (env.command == "analyze") env.host_takes_free_huge_pages = host_takes_free_huge_pages();
    const auto tunables = huge_page_tunables(env);
    if (tunables) exec_self_with(argv, {{"GLIBC_TUNABLES", *tunables}});
#endif
}

// Why a measurement and not a rule: what a fault costs depends on the machine far more than on
// the program. On one virtual machine (its kernel paravirtualized: pvm_* in its profiles), each
// first touch of a 4 KiB page cost 11 us (128 MiB: 360 ms), a huge page, cold on the host, 3 ms
// (128 MiB: 190 ms), and `analyze` of 200 MB of login-dense traffic ran a sixth to a quarter
// faster on huge pages; on a Firecracker VM that hands every freed huge page back to its host, 4
// KiB faults were cheap and each huge page cost the host's faults, and the same run was a fifth
// slower on them (docs/performance.md, "Huge pages, measured"). The same 2 MiB touched both ways
// tells which machine this is.
std::optional<PageFaultCost> measure_page_fault_cost(std::string_view thp_enabled,
                                                     double huge_page_floor_us) {
    if (!thp_available(thp_enabled)) return std::nullopt;
    const long page = sysconf(_SC_PAGESIZE);
    const long long huge =
        leading_number(read_text("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"));
    if (page <= 0 || huge <= page || huge > (1LL << 30) || huge % page != 0) return std::nullopt;
    const auto huge_bytes = static_cast<std::size_t>(huge);
    // Three huge pages' worth: two aligned ones fit in it wherever the kernel puts it.
    const std::size_t len = 3 * huge_bytes;
    void* m = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return std::nullopt;
    const auto at = reinterpret_cast<std::uintptr_t>(m);
    char* small = static_cast<char*>(m) + (huge_bytes - at % huge_bytes) % huge_bytes;
    char* big = small + huge_bytes;
    std::optional<PageFaultCost> cost;
    if (::madvise(small, huge_bytes, MADV_NOHUGEPAGE) == 0 &&
        ::madvise(big, huge_bytes, MADV_HUGEPAGE) == 0) {
        const auto page_bytes = static_cast<std::size_t>(page);
        // Touches [p, p + bytes) page by page; the time taken.
        const auto touch = [&](char* p, std::size_t bytes) {
            volatile char* v = p;  // every write happens, in order
            const auto t0 = std::chrono::steady_clock::now();
            for (std::size_t off = 0; off < bytes; off += page_bytes)
                v[off] = 1;
            return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count();
        };
        // The small pages' cost from a sample of them, scaled: each is a fault of its own, so
        // 64 tell what 512 cost, in an eighth of the time (0.8 ms instead of 6 ms where they
        // are dear). The huge page is one fault, touched whole.
        const std::size_t sample = std::min<std::size_t>(huge_bytes, 64 * page_bytes);
        const double small_us = touch(small, sample) * static_cast<double>(huge_bytes / sample);
        cost = PageFaultCost{small_us, 0};
        // Where a huge page counts at the floor whatever it measures, small pages cheaper than
        // the floor decide alone: no huge page is touched (up to 5 ms where it comes cold).
        if (small_us > huge_page_floor_us) {
            cost->huge_page_us = touch(big, huge_bytes);
        } else {
            cost->huge_page_measured = false;
        }
    }
    ::munmap(m, len);
    return cost;
}

bool worth_measuring(const MimallocHugePageEnv& env) {
    if (!ours_to_choose(env)) return false;
    if (!thp_available(env.thp_enabled)) return false;
    return env.input_bytes >= kHugePageMinInput;
}

bool forced(const MimallocHugePageEnv& env) {
    return set_not_empty(env.force) && ours_to_choose(env);
}

// Why a cold huge page where the host takes free ones back: the probe's huge page is often one
// the kernel has just had back from a process (or from the probe's own last run), still backed
// by the host; the heap's next dozens are not. On such a VM (4 KiB faults 650-1 040 us per 2 MiB,
// the probe's huge page 93-385 us warm, 5.4 ms cold), after 10 s idle, the huge pages the probe
// chose against 4 KiB pages: 200 MB of login-dense traffic 0.51-0.53 s against 0.39-0.40 s
// with one thread, 0.34-0.35 against 0.28-0.29 s with two; 1 GB 2.18-2.32 against 1.92-2.32 s
// and 1.45-1.52 against 1.37-1.41 s. Where 4 KiB faults are dear (6.3-8.3 ms per 2 MiB on a VM
// with the same balloon), huge pages stay the choice (docs/performance.md).
bool huge_pages_pay(const PageFaultCost& cost) {
    if (!cost.huge_page_measured && !cost.host_takes_free_huge_pages) return false;
    const double huge = cost.host_takes_free_huge_pages
                            ? std::max(cost.huge_page_us, kColdHugePageUs)
                            : cost.huge_page_us;
    return huge < cost.small_pages_us;
}

std::uint64_t input_bytes(const std::vector<std::string>& files) {
    std::uint64_t total = 0;
    for (const std::string& f : files) {
        struct stat st {};
        if (f == "-" || ::stat(f.c_str(), &st) != 0) {
            if (f == "-") return UINT64_MAX;
            continue;  // not there: analyze says so, with nothing to read
        }
        if (!S_ISREG(st.st_mode)) return UINT64_MAX;
        total += static_cast<std::uint64_t>(st.st_size);
    }
    return total;
}

HugePageChoice huge_pages_for_analyze(const std::vector<std::string>& files) {
    const std::string thp = read_text("/sys/kernel/mm/transparent_hugepage/enabled");
    MimallocHugePageEnv env;
    env.opt_out = std::getenv("HOPSCOPE_NO_HUGE_PAGES");
    env.force = std::getenv("HOPSCOPE_HUGE_PAGES");
    env.user_setting = std::getenv("MIMALLOC_LARGE_OS_PAGES");
    env.ld_preload = std::getenv("LD_PRELOAD");
    env.thp_enabled = thp;
    HugePageChoice choice;
    if (forced(env)) {
        choice.huge = true;
        return choice;
    }
    env.input_bytes = input_bytes(files);
    if (!worth_measuring(env)) return choice;
    const bool host_takes = host_takes_free_huge_pages();
    choice.cost = measure_page_fault_cost(thp, host_takes ? kColdHugePageUs : -1);
    if (!choice.cost) return choice;
    choice.cost->host_takes_free_huge_pages = host_takes;
    choice.huge = huge_pages_pay(*choice.cost);
    return choice;
}

}  // namespace hopscope::cli
