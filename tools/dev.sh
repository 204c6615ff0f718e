#!/usr/bin/env bash
# hopscope developer entry point: installs what the project needs from Debian's packages, builds,
# and runs the demo or the tests.
#
#   tools/dev.sh demo    set up, build, and analyze a bundled capture (DEMO_CAPTURE=... for another)
#   tools/dev.sh release set up and build the optimized hopscope ($BUILD_ROOT/release/tools/hopscope:
#                        Release, mimalloc, profile-guided, link-time; tools/release-build)
#   tools/dev.sh test    set up, build with -Werror + ASan/UBSan, run every test and a fuzz smoke run
#   tools/dev.sh fuzz [SECONDS [TARGET...]]  fuzzing campaign: every target (or the TARGETs named,
#                        e.g. pipeline proxy_tap) for SECONDS of CPU time (default 600), two at a time
#   tools/dev.sh coverage  line coverage (clang-14) of the fuzz corpora and of the unit tests
#   tools/dev.sh deps    only install the packages
#
# Environment: JOBS (parallel build jobs, default: nproc), FUZZ_SECONDS (per fuzz target, default 20),
# BUILD_ROOT (default: ./build).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
JOBS=${JOBS:-$(nproc)}
BUILD_ROOT=${BUILD_ROOT:-$here/build}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

# Build and test dependencies (Debian 12 package names).
BUILD_PKGS=(build-essential cmake ninja-build pkg-config libpcap-dev libboost-dev libssl-dev
            libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev
            libkrb5-dev libmimalloc-dev)
FUZZ_PKGS=(clang-14 libclang-rt-14-dev)
# llvm-profdata-14 and llvm-cov-14 (only recommended by clang-14) for tools/dev.sh coverage.
COV_PKGS=(llvm-14)
# Real peers used by the tests: tshark only as a reference in generators, never by the product.
# samba, samba-ad-dc, samba-ad-provision, winbind: the Samba AD DC of the lab's Active Directory
# scenarios (constrained delegation; tools/lab/run skips them without it). mmdebstrap: builds,
# on first use, the chroot with Samba 4.22 from bookworm-backports of the resource-based
# constrained delegation scenarios (/var/cache/hopscope-lab/samba-bpo; skipped when it cannot)
LAB_PKGS=(krb5-kdc krb5-admin-server krb5-user gss-ntlmssp freetds-bin python3-impacket
          python3-gssapi tcpdump tcpreplay iproute2 iptables libnss-wrapper faketime openssl nodejs
          samba samba-ad-dc samba-ad-provision winbind mmdebstrap)
# The benchmark (tools/bench/analyze-vs-tshark): /usr/bin/time for peak RSS, tshark to compare.
BENCH_PKGS=(time tshark)

install_pkgs() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "need root to install packages: ${missing[*]}" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    while command -v fuser >/dev/null && fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1; do sleep 2; done
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

run_lab() {  # every lab scenario (real KDC, clients and servers in network namespaces)
    if [ "$(id -u)" -ne 0 ]; then
        echo "== lab scenarios: skipped (network namespaces need root)"
        return 0
    fi
    echo "== lab scenarios (tools/lab/run all)"
    LAB_DIR="$BUILD_ROOT/lab-run" LABSERVER="$BUILD_ROOT/asan/tools/lab/hopscope-labserver" \
        "$here/tools/lab/run" all
}

configure_targets() {  # dir, targets (space-separated; empty: everything), extra cmake args...
    local dir=$1 targets=$2
    shift 2
    cmake -S "$here" -B "$dir" -G Ninja "$@" >/dev/null
    # shellcheck disable=SC2086 # one word per target
    cmake --build "$dir" -j "$JOBS" ${targets:+--target $targets}
}
configure_build() {  # dir, extra cmake args...
    local dir=$1
    shift
    configure_targets "$dir" "" "$@"
}

# Per fuzz target: executions per second below which the smoke run fails, dictionaries and
# libFuzzer options, from tests/fuzz/targets (see docs/testing.md for the measurements).
fuzz_field() {  # target, field number (2 floor, 3 dicts, 4- options)
    awk -v t="$1" -v f="$2" '$1 == t { if (f == 4) { $1 = $2 = $3 = ""; print } else print $f }' \
        "$here/tests/fuzz/targets"
}
fuzz_args() {  # target, dictionary file to write: prints the target's libFuzzer arguments
    local t=$1 dict=$2 d
    : >"$dict"
    for d in $(fuzz_field "$t" 3 | tr , ' '); do
        [ "$d" = - ] || cat "$here/tests/fuzz/dict/$d.dict" >>"$dict"
    done
    [ -s "$dict" ] && printf -- '-dict=%s ' "$dict"
    fuzz_field "$t" 4
}
fuzz_build() {  # [only-targets [TARGET...]]: only the fuzz targets (those named, or all)
    local flags=(-DCMAKE_BUILD_TYPE=Debug -DHOPSCOPE_FUZZ=ON -DHOPSCOPE_WERROR=ON
                 -DHOPSCOPE_TESTS=ON -DHOPSCOPE_TOOLS=ON -DHOPSCOPE_BENCH=ON)
    local targets=""
    if [ "${1:-}" = only-targets ]; then
        shift
        targets=$(if [ $# -gt 0 ]; then printf 'fuzz_%s\n' "$@"; else
            ls "$here"/tests/fuzz/fuzz_*.cpp | sed 's|.*/||; s|\.cpp$||'; fi | tr '\n' ' ')
    fi
    CXX=clang++-14 CC=clang-14 configure_targets "$BUILD_ROOT/fuzz" "$targets" "${flags[@]}"
}
fuzz_execs() { sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -n 1; }

cmd=${1:-}
case "$cmd" in
deps)
    install_pkgs "${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}" "${COV_PKGS[@]}" "${LAB_PKGS[@]}" \
        "${BENCH_PKGS[@]}"
    ;;
release)
    install_pkgs "${BUILD_PKGS[@]}"
    JOBS=$JOBS "$here/tools/release-build" "$BUILD_ROOT/release" -DHOPSCOPE_TESTS=OFF
    echo "== $BUILD_ROOT/release/tools/hopscope"
    "$BUILD_ROOT/release/tools/hopscope" --version
    ;;
demo)
    install_pkgs "${BUILD_PKGS[@]}"
    # The optimized build (tools/release-build: Release, mimalloc, profile-guided, link-time).
    JOBS=$JOBS "$here/tools/release-build" "$BUILD_ROOT/release" -DHOPSCOPE_TESTS=OFF
    bin="$BUILD_ROOT/release/tools/hopscope"
    # The classic broken double hop, recorded in the lab: C logs in to SQL Server A with NTLM, a
    # linked-server query on A reaches B as NT AUTHORITY\ANONYMOUS LOGON, B refuses with 18456.
    demo_capture=${DEMO_CAPTURE:-captures/lab/5-double-hop-ntlm-anonymous.pcap}
    echo "== $bin analyze $demo_capture"
    "$bin" analyze "$demo_capture"
    ;;
test)
    install_pkgs "${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}" "${LAB_PKGS[@]}" time
    # The lab's tedious client comes from the npm registry: Debian's nodejs has no npm of its own
    # (NodeSource's has; installing Debian's npm over it would conflict).
    command -v npm >/dev/null || install_pkgs npm
    echo "== build: gcc, -Werror, ASan+UBSan"
    configure_build "$BUILD_ROOT/asan" -DCMAKE_BUILD_TYPE=Debug -DHOPSCOPE_WERROR=ON \
        -DHOPSCOPE_SANITIZE=ON -DHOPSCOPE_BENCH=ON
    echo "== unit, golden and fuzz-replay tests"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$BUILD_ROOT/asan" --output-on-failure -j "$JOBS" |
        tee "$BUILD_ROOT/ctest.log"
    ctest_passed=$(sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' \
        "$BUILD_ROOT/ctest.log" | tail -n 1)
    echo "== generated capture: hopscope finds exactly what the generator wrote, the same with --threads 2 (ASan build)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$here/tools/bench/analyze-vs-tshark" --quick --no-tshark --no-build \
        --bin-dir "$BUILD_ROOT/asan" | grep -E '^check |^hopscope'
    echo "== build: release (tools/release-build: Release, mimalloc, profile-guided, link-time, -Werror; what the README's first command builds); the same output as the sanitizer build"
    JOBS=$JOBS "$here/tools/release-build" "$BUILD_ROOT/release" -DHOPSCOPE_TESTS=OFF \
        -DHOPSCOPE_BENCH=ON -DHOPSCOPE_WERROR=ON
    "$BUILD_ROOT/release/tools/hopscope" --version | tee "$BUILD_ROOT/release-version.log"
    grep -q '^memory allocator: mimalloc ' "$BUILD_ROOT/release-version.log" || {
        echo "the release build does not run on mimalloc" >&2
        exit 1
    }
    grep -q '^optimization: profile-guided' "$BUILD_ROOT/release-version.log" || {
        echo "the release build is not profile-guided" >&2
        exit 1
    }
    grep -q '^optimization: .*link-time' "$BUILD_ROOT/release-version.log" || {
        echo "the release build is not link-time optimized" >&2
        exit 1
    }
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$here/tests/e2e/builds_same_output.sh" "$BUILD_ROOT/asan/tools/hopscope" \
        "$BUILD_ROOT/release/tools/hopscope" "$here" "$BUILD_ROOT/release/tools/bench/hopscope-gencap"
    "$here/tests/e2e/huge_pages.sh" "$BUILD_ROOT/release/tools/hopscope" \
        "$BUILD_ROOT/release/tools/bench/hopscope-gencap" "$here"
    echo "== build: gcc, ThreadSanitizer (hopscope alone); analyze --threads 1, 2 and 3 the same under it"
    # The threads of analyze --threads take turns merging their events (ShardedRun): a race there
    # is a TSan report, which fails the comparison (its exit status and standard error differ
    # from one thread's). -Wno-tsan: Boost.Asio's headers (the proxy, linked in) use
    # std::atomic_thread_fence, which GCC warns TSan cannot see; analyze does not run them.
    configure_targets "$BUILD_ROOT/tsan" hopscope -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DHOPSCOPE_MIMALLOC=OFF -DHOPSCOPE_TESTS=OFF -DHOPSCOPE_WERROR=ON \
        "-DCMAKE_CXX_FLAGS=-fsanitize=thread -Wno-tsan" \
        -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread
    TSAN_OPTIONS=halt_on_error=1:exitcode=66 "$here/tests/e2e/analyze_threads_equal.sh" \
        "$BUILD_ROOT/tsan/tools/hopscope" "$here" "$BUILD_ROOT/release/tools/bench/hopscope-gencap"
    "$here/tools/bench/analyze-vs-tshark" --quick --no-tshark --no-build \
        --bin-dir "$BUILD_ROOT/release" | grep -E '^check |^hopscope'
    echo "== build: clang-14, -Werror, libFuzzer instrumentation (everything; fuzz targets run below)"
    fuzz_build
    echo "== fuzz smoke: ${FUZZ_SECONDS}s per target (options and floors: tests/fuzz/targets)"
    fuzz_ran=0
    for f in "$BUILD_ROOT"/fuzz/tests/fuzz_*; do
        [ -x "$f" ] || continue
        name=$(basename "$f")
        short=${name#fuzz_}
        floor=$(fuzz_field "$short" 2)
        if [ -z "$floor" ]; then
            echo "fuzz target $name has no line in tests/fuzz/targets" >&2
            exit 1
        fi
        work=$(mktemp -d)
        cp -r "$here/tests/fuzz/corpus/$short/." "$work/" 2>/dev/null || true
        # shellcheck disable=SC2046 # the options are words
        "$f" $(fuzz_args "$short" "$work.dict") -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
            -timeout=10 -print_final_stats=1 "$work" >"$work.log" 2>&1 || {
            tail -n 60 "$work.log"
            echo "fuzz target $name failed" >&2
            exit 1
        }
        execs=$(fuzz_execs "$work.log")
        if [ "${execs:-0}" -lt $((floor * FUZZ_SECONDS)) ]; then
            tail -n 20 "$work.log"
            echo "fuzz target $name: ${execs:-0} executions in ${FUZZ_SECONDS}s, below the floor" \
                "of $floor/s (tests/fuzz/targets)" >&2
            exit 1
        fi
        echo "  $name: $execs executions (floor $((floor * FUZZ_SECONDS))), $(ls "$work" | wc -l) corpus files, ok"
        rm -rf "$work" "$work.log" "$work.dict"
        fuzz_ran=$((fuzz_ran + 1))
    done
    echo "== fuzz smoke: $fuzz_ran targets ok"
    run_lab | tee "$BUILD_ROOT/lab.log"
    lab_ran=$(sed -n 's/^== \([0-9]*\)\/[0-9]* scenarios passed.*/\1/p' "$BUILD_ROOT/lab.log" |
        tail -n 1)
    lab_ran=${lab_ran:-0}
    # Everything above stops at the first failure (set -e), so reaching here means none failed.
    echo "ctest ${ctest_passed:-0}, fuzz targets $fuzz_ran, lab scenarios $lab_ran"
    echo "total: $((${ctest_passed:-0} + fuzz_ran + lab_ran)) passed, 0 failed"
    ;;
fuzz)
    # A campaign: every target for SECONDS of CPU time, two at a time, from the committed corpus
    # plus what earlier campaigns kept ($BUILD_ROOT/fuzz-campaign/<target>); new inputs are
    # minimised into tests/fuzz/corpus/<target>/ (-merge=1 -use_counters=0: only inputs that
    # reach new edges; counting hit-count buckets too, a 75 s campaign kept 4.7k files, 7.8 MB,
    # instead of 1.3k, 1.9 MB); crashes are kept as $BUILD_ROOT/fuzz-campaign/crashes/<target>-
    # crash-... reproducers. With TARGETs after SECONDS only those are built and run, in that
    # order. The budget is CPU time, not wall time, so that other work on the machine makes a
    # campaign longer, not smaller: each fuzzer's user + system time is read from /proc every
    # second and at SECONDS it gets SIGUSR1, libFuzzer's graceful stop (final statistics, exit
    # 0); a fuzzer starved of CPU stops anyway after 4 x SECONDS of wall time.
    install_pkgs "${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}"
    seconds=${2:-600}
    shift $(($# < 2 ? $# : 2))
    for t in "$@"; do
        if [ ! -f "$here/tests/fuzz/fuzz_$t.cpp" ] || [ -z "$(fuzz_field "$t" 2)" ]; then
            echo "no fuzz target $t (tests/fuzz/fuzz_$t.cpp and its line in tests/fuzz/targets)" >&2
            exit 2
        fi
    done
    fuzz_build only-targets "$@"
    camp="$BUILD_ROOT/fuzz-campaign"
    mkdir -p "$camp/crashes"
    echo "== fuzz campaign: ${seconds} CPU seconds per target, two at a time (logs: $camp/<target>.log)"
    hz=$(getconf CLK_TCK)
    run_one() {  # target
        local t=$1 f="$BUILD_ROOT/fuzz/tests/fuzz_$1" rc=0 pid ticks=0 now stopped=0 start
        mkdir -p "$camp/$t"
        start=$(date +%s)
        # shellcheck disable=SC2046
        "$f" $(fuzz_args "$t" "$camp/$t.dict") -max_total_time=$((seconds * 4)) -rss_limit_mb=2048 \
            -timeout=10 -print_final_stats=1 -artifact_prefix="$camp/crashes/$t-" \
            "$camp/$t" "$here/tests/fuzz/corpus/$t" >"$camp/$t.log" 2>&1 &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            # fields 14 and 15 of /proc/PID/stat: user and system time of all its threads, in ticks
            now=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) && ticks=$now
            if [ "$stopped" = 0 ] && [ "$ticks" -ge $((seconds * hz)) ]; then
                kill -USR1 "$pid" 2>/dev/null || true
                stopped=1
            fi
            sleep 1
        done
        wait "$pid" || rc=$?
        echo "$rc" >"$camp/$t.rc"
        echo "$((ticks / hz)) $(($(date +%s) - start))" >"$camp/$t.time"
    }
    targets=("$@")
    if [ ${#targets[@]} -eq 0 ]; then
        for f in "$BUILD_ROOT"/fuzz/tests/fuzz_*; do
            [ -x "$f" ] && targets+=("$(basename "$f" | sed 's/^fuzz_//')")
        done
    fi
    running=0
    for t in "${targets[@]}"; do
        if [ "$running" -ge 2 ]; then
            wait -n || true
            running=$((running - 1))
        fi
        run_one "$t" &
        running=$((running + 1))
    done
    wait || true
    echo "== minimising new inputs into tests/fuzz/corpus/ (-merge=1 -use_counters=0)"
    crashes=0
    printf '  %-14s %12s %8s %8s %8s %s\n' target executions "CPU s" "wall s" "exec/CPUs" \
        "new corpus files / result"
    for t in "${targets[@]}"; do
        before=$(ls "$here/tests/fuzz/corpus/$t" 2>/dev/null | wc -l)
        mkdir -p "$here/tests/fuzz/corpus/$t"
        # shellcheck disable=SC2046
        "$BUILD_ROOT/fuzz/tests/fuzz_$t" -merge=1 -use_counters=0 -rss_limit_mb=2048 -timeout=10 \
            "$here/tests/fuzz/corpus/$t" "$camp/$t" >"$camp/$t.merge.log" 2>&1 ||
            echo "  $t: merge failed, see $camp/$t.merge.log"
        after=$(ls "$here/tests/fuzz/corpus/$t" | wc -l)
        execs=$(fuzz_execs "$camp/$t.log")
        result="+$((after - before))"
        if [ "$(cat "$camp/$t.rc")" != 0 ]; then
            crashes=$((crashes + 1))
            repro=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$camp/$t.log" | tail -n 1)
            result="$result, FAILED: $(grep -m1 -E 'ERROR|runtime error|Timeout|out-of-memory' \
                "$camp/$t.log" || echo "exit $(cat "$camp/$t.rc")"); reproducer: ${repro:-see $camp/$t.log}"
        fi
        read -r cpu wall <"$camp/$t.time"
        printf '  %-14s %12s %8s %8s %8s %s\n' "$t" "${execs:-?}" "$cpu" "$wall" \
            "$((${execs:-0} / (cpu > 0 ? cpu : 1)))" "$result"
    done
    echo "== fuzz campaign: ${#targets[@]} targets, $crashes failed"
    [ "$crashes" -eq 0 ]
    ;;
coverage)
    # Clang source-based coverage: one clang-14 build with -fprofile-instr-generate
    # -fcoverage-mapping and no sanitizers ($BUILD_ROOT/coverage; without HOPSCOPE_FUZZ each fuzz
    # target is linked with the replay driver, tests/fuzz/replay_main.cpp, which feeds every file
    # of a directory to the same LLVMFuzzerTestOneInput). Every tests/fuzz/corpus/<target>/ is
    # replayed through its target, then, separately, the unit tests (ctest -L unit); profiles are
    # merged per set, and $BUILD_ROOT/coverage/report/ gets, for "corpora", "unit" and "all"
    # (both), an HTML report (html-<set>/index.html), the llvm-cov report (summary-<set>.txt) and
    # its JSON summary (summary-<set>.json). Every binary built is an -object of every report, so
    # that code no run reached counts as missed instead of being left out.
    install_pkgs "${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}" "${COV_PKGS[@]}"
    cov="$BUILD_ROOT/coverage"
    echo "== build: clang-14, source-based coverage ($cov)"
    CXX=clang++-14 CC=clang-14 configure_build "$cov" -DCMAKE_BUILD_TYPE=Debug \
        -DHOPSCOPE_WERROR=ON -DHOPSCOPE_TESTS=ON -DHOPSCOPE_TOOLS=ON \
        "-DCMAKE_CXX_FLAGS=-fprofile-instr-generate -fcoverage-mapping" \
        -DCMAKE_EXE_LINKER_FLAGS=-fprofile-instr-generate
    out="$cov/report"
    rm -rf "$out"
    mkdir -p "$out/raw/corpora" "$out/raw/unit"
    echo "== corpora: every tests/fuzz/corpus/<target>/ through its target"
    for f in "$cov"/tests/fuzz_*; do
        [ -x "$f" ] || continue
        t=$(basename "$f" | sed 's/^fuzz_//')
        LLVM_PROFILE_FILE="$out/raw/corpora/$t-%p.profraw" "$f" "$here/tests/fuzz/corpus/$t" |
            sed 's/^/  /'
    done
    echo "== unit tests (ctest -L unit; the log: $out/unit.log)"
    # %4m: each test binary's processes merge into 4 files instead of one file per test case.
    LLVM_PROFILE_FILE="$out/raw/unit/%4m.profraw" ctest --test-dir "$cov" -L unit -j "$JOBS" \
        >"$out/unit.log" 2>&1 || {
        tail -n 30 "$out/unit.log"
        echo "unit tests failed in the coverage build (a failing test still counts its lines)"
    }
    grep -E 'tests passed|tests failed' "$out/unit.log" | tail -n 1 | sed 's/^/  /'
    llvm-profdata-14 merge -sparse "$out"/raw/corpora/*.profraw -o "$out/corpora.profdata"
    llvm-profdata-14 merge -sparse "$out"/raw/unit/*.profraw -o "$out/unit.profdata"
    llvm-profdata-14 merge -sparse "$out/corpora.profdata" "$out/unit.profdata" \
        -o "$out/all.profdata"
    objs=()
    while IFS= read -r f; do
        [ ${#objs[@]} -eq 0 ] && objs=("$f") || objs+=(-object "$f")
    done < <(find "$cov" -path "$cov/report" -prune -o -path '*/CMakeFiles' -prune -o -type f \
        -executable -print | sort | while IFS= read -r f; do
        head -c 4 "$f" | grep -q ELF && echo "$f"
    done)
    # The project's sources only: no system headers, no test code.
    ignore='^/usr/|/tests/|/_deps/'
    printf '  %-8s %-14s %s\n' set directory "lines (llvm-cov report, TOTAL)"
    for set in corpora unit all; do
        llvm-cov-14 show "${objs[@]}" -instr-profile="$out/$set.profdata" -format=html \
            -ignore-filename-regex="$ignore" -show-line-counts-or-regions \
            -output-dir="$out/html-$set" "$here"
        llvm-cov-14 report "${objs[@]}" -instr-profile="$out/$set.profdata" \
            -ignore-filename-regex="$ignore" "$here" >"$out/summary-$set.txt"
        llvm-cov-14 export "${objs[@]}" -instr-profile="$out/$set.profdata" -format=text \
            -summary-only -ignore-filename-regex="$ignore" "$here" >"$out/summary-$set.json"
        for dir in decoder/src captures/src decoder captures proxy; do
            # TOTAL: regions, missed, cover, functions, missed, executed, lines, missed, cover, ...
            # (llvm-cov's "functions have mismatched data" warning, about inline accessors in
            # headers compiled differently across binaries, was printed above already)
            llvm-cov-14 report "${objs[@]}" -instr-profile="$out/$set.profdata" \
                -ignore-filename-regex="$ignore" "$here/$dir" 2>/dev/null |
                awk -v s="$set" -v d="$dir" '$1 == "TOTAL" {
                    printf "  %-8s %-14s %s (%d of %d)\n", s, d, $10, $8 - $9, $8 }'
        done
    done | tee "$out/lines.txt"
    echo "== coverage reports: $out/html-{corpora,unit,all}/index.html, summary-*.txt, lines.txt"
    ;;
*)
    sed -n '2,14p' "$0"
    exit 2
    ;;
esac
