#!/bin/sh
# A mimalloc build's `hopscope analyze` on a large capture measures what a page fault costs and,
# when a huge page faults in for less (counted cold where the host takes free huge pages back),
# asks mimalloc for transparent huge pages and runs on a thread of its own
# (tools/hopscope/huge_pages.hpp); HOPSCOPE_HUGE_PAGES=1 takes them without measuring. This
# checks, on a generated 70 MB login-dense capture, with one and two threads: the same JSON,
# console output, error messages and exit status with the measurement's choice, with the huge
# pages forced and with HOPSCOPE_NO_HUGE_PAGES=1; one start of the process (MIMALLOC_VERBOSE=1
# makes mimalloc print its options at each start); with the huge pages (hopscope then says so
# under MIMALLOC_VERBOSE=1, with both options), fewer than half the opt-out run's page faults
# (counted by python3's getrusage of the child); the measurement's choice said, either way; no
# choice with the opt-out (also beside HOPSCOPE_HUGE_PAGES=1), with a MIMALLOC_LARGE_OS_PAGES of
# the user's own, or on a small capture; from standard input the same events as from the file.
# Which way the measurement goes is this machine's: the script says which it saw.
#   huge_pages.sh HOPSCOPE HOPSCOPE_GENCAP REPO_DIR
set -u
hs=$1 gencap=$2 repo=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
fail() {
    echo "FAIL: $*"
    rc=1
}
"$hs" --version | grep -q '^memory allocator: mimalloc ' || {
    echo "huge_pages.sh: $hs does not run on mimalloc: nothing to check" >&2
    exit 1
}
command -v python3 >/dev/null || { echo "huge_pages.sh: python3 is needed" >&2; exit 1; }
"$gencap" --size 70M --profile logins --seed 3 --out "$tmp/big.pcap" 2>/dev/null ||
    { echo "huge_pages.sh: hopscope-gencap failed" >&2; exit 1; }
# ERRFILE, then a command: the minor page faults of the command (its own and its children's)
# less those of `true` counted the same way (a python3 that forks instead of spawning counts its
# own copy-on-write faults there: 6 500 with one, 50 with Debian's), then its exit status; its
# standard error goes to ERRFILE.
faults() {
    python3 -c '
import resource, subprocess, sys
def run(cmd, err):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before, r.returncode
base, _ = run(["true"], subprocess.DEVNULL)
with open(sys.argv[1], "w") as err:
    n, rc = run(sys.argv[2:], err)
print(max(0, n - base), rc)' "$@"
}
# name, environment assignments (or -), capture, threads: runs analyze into $tmp/NAME.*, then
# again with MIMALLOC_VERBOSE=1 (its statistics at exit would differ), its standard error into
# $tmp/NAME.verbose and its page faults into $tmp/NAME.faults. The choice and the faults come
# from that one run: each run measures the machine anew, and where a huge page sometimes faults
# in cold and sometimes warm (a VM that hands free memory back to its host) two runs can choose
# differently.
run() {
    name=$1 envs=$2 cap=$3 t=$4
    [ "$envs" = - ] && envs=
    # shellcheck disable=SC2086  # the assignments are words
    env $envs "$hs" analyze --no-progress --threads "$t" --json "$tmp/$name.jsonl" "$cap" \
        >"$tmp/$name.out" 2>"$tmp/$name.err"
    echo $? >"$tmp/$name.rc"
    # shellcheck disable=SC2086
    faults "$tmp/$name.verbose" env MIMALLOC_VERBOSE=1 $envs "$hs" analyze --no-progress \
        --threads "$t" --json /dev/null "$cap" >"$tmp/$name.faults"
}
starts() {  # the starts of run NAME: mimalloc prints a 'large_os_pages' line at each
    grep -c "option 'large_os_pages'" "$tmp/$1.verbose"
}
chose() {  # run NAME put its heap on huge pages (hopscope's line under MIMALLOC_VERBOSE=1)
    grep -q '^hopscope: heap on transparent huge pages' "$tmp/$1.verbose"
}
thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)
# NAME, threads, the opt-out's faults: run NAME put its heap on huge pages with both options and
# fewer than half the faults. With 4 KiB pages every 4 KiB of the heap is a fault; on huge pages
# one per 2 MiB. Left on the main thread (whose first segment is on 4 KiB pages), or with
# mimalloc not following the options, the faults stay near the opt-out's.
on_huge_pages() {
    grep -q "'large_os_pages': 1, 'eager_commit_delay': 0;" "$tmp/$1.verbose" ||
        fail "--threads $2: $1: huge pages without both options: $(grep '^hopscope:' \
            "$tmp/$1.verbose")"
    read -r huge_faults _ <"$tmp/$1.faults"
    [ "$huge_faults" -lt $(($3 / 2)) ] ||
        fail "--threads $2: $1: $huge_faults page faults on huge pages, $3 without"
    echo "--threads $2: $1: heap on huge pages ($huge_faults page faults; $3 with" \
        "HOPSCOPE_NO_HUGE_PAGES=1)"
}
for t in 1 2; do
    run plain - "$tmp/big.pcap" "$t"
    run optout HOPSCOPE_NO_HUGE_PAGES=1 "$tmp/big.pcap" "$t"
    run forced HOPSCOPE_HUGE_PAGES=1 "$tmp/big.pcap" "$t"
    run both "HOPSCOPE_HUGE_PAGES=1 HOPSCOPE_NO_HUGE_PAGES=1" "$tmp/big.pcap" "$t"
    for name in optout forced both; do
        for part in jsonl out err rc; do
            cmp -s "$tmp/plain.$part" "$tmp/$name.$part" ||
                fail "--threads $t: $part differs between the measurement's choice and $name"
        done
    done
    grep -q '"event":"login"' "$tmp/plain.jsonl" || fail "--threads $t: no login in the output"
    for name in plain optout forced both; do
        [ "$(starts $name)" -eq 1 ] || fail "--threads $t: run $name started $(starts $name) times"
    done
    chose optout && fail "--threads $t: HOPSCOPE_NO_HUGE_PAGES=1 chose huge pages"
    chose both && fail "--threads $t: HOPSCOPE_NO_HUGE_PAGES=1 lost to HOPSCOPE_HUGE_PAGES=1"
    grep -q '^hopscope: heap on 4 KiB pages' "$tmp/optout.verbose" &&
        fail "--threads $t: HOPSCOPE_NO_HUGE_PAGES=1 measured"
    read -r optout_faults _ <"$tmp/optout.faults"
    if grep -q "HOPSCOPE_HUGE_PAGES set)" "$tmp/forced.verbose"; then
        on_huge_pages forced "$t" "$optout_faults"
    else
        fail "--threads $t: HOPSCOPE_HUGE_PAGES=1 did not take huge pages: $(grep '^hopscope:' \
            "$tmp/forced.verbose")"
    fi
    if chose plain; then
        on_huge_pages plain "$t" "$optout_faults"
    elif grep -q '^hopscope: heap on 4 KiB pages (2 MiB faulted in' "$tmp/plain.verbose"; then
        read -r plain_faults _ <"$tmp/plain.faults"
        echo "--threads $t: 4 KiB pages, $plain_faults page faults ($(sed -n \
            's/^hopscope: heap on 4 KiB pages (\(.*\))$/\1/p' "$tmp/plain.verbose"))"
    else
        case $thp in
            *"[always]"* | *"[madvise]"*)
                fail "--threads $t: the measurement's choice not said: $(grep '^hopscope:' \
                    "$tmp/plain.verbose")" ;;
            *) echo "--threads $t: no transparent huge pages in this kernel ($thp)" ;;
        esac
    fi
done
# From standard input (size unknown: measured as if large): the same events as from the file.
"$hs" analyze --no-progress --threads 2 --json "$tmp/stdin.jsonl" - <"$tmp/big.pcap" \
    >"$tmp/stdin.out" 2>"$tmp/stdin.err"
echo $? >"$tmp/stdin.rc"
for part in jsonl out err rc; do
    cmp -s "$tmp/plain.$part" "$tmp/stdin.$part" ||
        fail "from standard input: $part differs from the file's"
done
run own MIMALLOC_LARGE_OS_PAGES=0 "$tmp/big.pcap" 1
chose own && fail "a MIMALLOC_LARGE_OS_PAGES of the user's own was not kept"
grep -q "option 'large_os_pages': 0" "$tmp/own.verbose" || fail "MIMALLOC_LARGE_OS_PAGES=0 lost"
cmp -s "$tmp/own.jsonl" "$tmp/plain.jsonl" || fail "MIMALLOC_LARGE_OS_PAGES=0: other events"
for small in "$repo"/captures/lab/*.pcap; do break; done  # the first of them
run small - "$small" 1
chose small && fail "a small capture chose huge pages"
[ "$rc" -eq 0 ] && echo "huge pages: the same output, one start"
exit "$rc"
