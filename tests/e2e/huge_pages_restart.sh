#!/bin/sh
# A mimalloc build's `hopscope analyze` on a large capture measures what a page fault costs and,
# when a huge page faults in for less, starts itself once more with mimalloc's heap on huge pages
# (tools/hopscope/huge_pages.hpp). This checks, on a generated 70 MB login-dense capture, with
# one and two threads: the same JSON, console output, error messages and exit status with the
# measurement and restart as with HOPSCOPE_NO_HUGE_PAGES=1; at most one restart, and then with
# both mimalloc options set (MIMALLOC_VERBOSE=1 makes mimalloc print its options at each start);
# none with the opt-out, with a MIMALLOC_LARGE_OS_PAGES of the user's own, or on a small capture;
# from standard input the same events as from the file. Whether this machine restarts is the
# measurement's call: the script says which it saw.
#   huge_pages_restart.sh HOPSCOPE HOPSCOPE_GENCAP REPO_DIR
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
    echo "huge_pages_restart.sh: $hs does not run on mimalloc: nothing to check" >&2
    exit 1
}
"$gencap" --size 70M --profile logins --seed 3 --out "$tmp/big.pcap" 2>/dev/null ||
    { echo "huge_pages_restart.sh: hopscope-gencap failed" >&2; exit 1; }
# name, environment assignments (or -), capture, threads: runs analyze into $tmp/NAME.*, and
# again with MIMALLOC_VERBOSE=1 (its statistics at exit would differ) into $tmp/NAME.verbose
run() {
    name=$1 envs=$2 cap=$3 t=$4
    [ "$envs" = - ] && envs=
    # shellcheck disable=SC2086  # the assignments are words
    env $envs "$hs" analyze --no-progress --threads "$t" --json "$tmp/$name.jsonl" "$cap" \
        >"$tmp/$name.out" 2>"$tmp/$name.err"
    echo $? >"$tmp/$name.rc"
    # shellcheck disable=SC2086
    env MIMALLOC_VERBOSE=1 $envs "$hs" analyze --no-progress --threads "$t" --json /dev/null \
        "$cap" >/dev/null 2>"$tmp/$name.verbose"
}
starts() {  # the starts of run NAME: mimalloc prints a 'large_os_pages' line at each
    grep -c "option 'large_os_pages'" "$tmp/$1.verbose"
}
for t in 1 2; do
    run plain - "$tmp/big.pcap" "$t"
    run optout HOPSCOPE_NO_HUGE_PAGES=1 "$tmp/big.pcap" "$t"
    for part in jsonl out err rc; do
        cmp -s "$tmp/plain.$part" "$tmp/optout.$part" ||
            fail "--threads $t: $part differs with and without the huge-page restart"
    done
    grep -q '"event":"login"' "$tmp/plain.jsonl" || fail "--threads $t: no login in the output"
    [ "$(starts optout)" -eq 1 ] ||
        fail "--threads $t: HOPSCOPE_NO_HUGE_PAGES=1 started $(starts optout) times"
    case $(starts plain) in
    1) echo "--threads $t: no restart (this machine's huge pages fault in for no less)" ;;
    2)
        # The second start's options: huge pages, and each thread's first segment on them.
        sed -n "/option 'large_os_pages'/,\$p" "$tmp/plain.verbose" | tail -n +2 |
            sed -n "/option 'large_os_pages'/,\$p" >"$tmp/second"
        grep -q "option 'large_os_pages': 1" "$tmp/second" ||
            fail "--threads $t: restarted without large_os_pages"
        grep -q "option 'eager_commit_delay': 0" "$tmp/second" ||
            fail "--threads $t: restarted without eager_commit_delay 0"
        echo "--threads $t: restarted once with mimalloc's heap on huge pages" ;;
    *) fail "--threads $t: $(starts plain) starts" ;;
    esac
done
# From standard input (size unknown: measured as if large): the restart must not lose a byte of
# it, the same events as from the file.
"$hs" analyze --no-progress --threads 2 --json "$tmp/stdin.jsonl" - <"$tmp/big.pcap" \
    >"$tmp/stdin.out" 2>"$tmp/stdin.err"
echo $? >"$tmp/stdin.rc"
for part in jsonl out err rc; do
    cmp -s "$tmp/plain.$part" "$tmp/stdin.$part" ||
        fail "from standard input: $part differs from the file's"
done
run own MIMALLOC_LARGE_OS_PAGES=0 "$tmp/big.pcap" 1
[ "$(starts own)" -eq 1 ] || fail "a MIMALLOC_LARGE_OS_PAGES of the user's own was not kept"
cmp -s "$tmp/own.jsonl" "$tmp/plain.jsonl" || fail "MIMALLOC_LARGE_OS_PAGES=0: other events"
run small - "$repo/captures/lab/$(ls "$repo/captures/lab" | grep '\.pcap$' | head -1)" 1
[ "$(starts small)" -eq 1 ] || fail "a small capture was started again"
[ "$rc" -eq 0 ] && echo "huge-page restart: the same output, started at most once"
exit "$rc"
