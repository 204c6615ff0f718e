#!/bin/sh
# Two builds of hopscope write the same events, summary, console output, error messages and
# exit status, byte for byte, on every capture in the repository (with the lab's keytabs and TLS
# key logs too), with one and with two threads; with hopscope-gencap, also on a generated
# login-dense capture and on the lab's captures repeated. tools/dev.sh test runs it on the
# sanitizer build (ASan's allocator, -O0) against the release build the README's first command
# makes (CMake Release, on mimalloc): what the allocator or the optimiser changes must not show.
#   builds_same_output.sh HOPSCOPE_A HOPSCOPE_B REPO_DIR [HOPSCOPE_GENCAP]
set -u
a=$1 b=$2 repo=$3 gencap=${4:-}
. "$(dirname "$0")/each_capture.sh"  # tmp, rc, n, each_capture
run() {  # name, then analyze's arguments (the capture last)
    name=$1
    shift
    for t in 1 2; do
        for side in a b; do
            eval "hs=\$$side"
            "$hs" analyze --no-progress --threads "$t" --json "$tmp/$side.jsonl" "$@" \
                >"$tmp/$side.out" 2>"$tmp/$side.err"
            echo $? >"$tmp/$side.rc"
        done
        for part in jsonl out err rc; do
            if ! cmp -s "$tmp/a.$part" "$tmp/b.$part"; then
                echo "FAIL: $name (--threads $t): the two builds differ in $part"
                diff "$tmp/a.$part" "$tmp/b.$part" | head -5
                rc=1
                break
            fi
        done
        n=$((n + 1))
    done
}
each_capture "$repo"
if [ -n "$gencap" ]; then
    "$gencap" --size 20M --profile logins --out "$tmp/logins.pcap" 2>/dev/null
    run "a generated login-dense capture" "$tmp/logins.pcap"
    grep -q '"event":"login"' "$tmp/a.jsonl" || { echo "FAIL: no login in the generated capture"; rc=1; }
    set -- "$repo"/captures/lab/*.pcap
    for f in "$@"; do set -- "$@" --replicate "$f"; shift; done
    "$gencap" --size 20M --out "$tmp/lab.pcap" "$@" 2>/dev/null
    run "the lab's captures repeated" "$tmp/lab.pcap"
fi
[ "$n" -gt 50 ] || { echo "FAIL: only $n runs compared"; rc=1; }
[ "$rc" -eq 0 ] && echo "$n runs: the two builds gave the same output"
exit "$rc"
