#!/bin/sh
# `hopscope analyze --threads 2` and `--threads 3` (the flows decoded by 2 or 3 threads, which
# take turns merging their analysis in order) write the same events, summary and console output
# as `--threads 1`, byte for byte, on every capture in the repository; with the lab's keytabs and
# TLS key logs too. So does `--threads 2` reading standard input (the analysis on a second
# thread beside the reading and decoding). A capture cut short (a damaged file) still gives
# equal output before its error, and the same exit status.
# With hopscope-gencap, also on generated captures (login-dense, and the lab's captures
# repeated) large enough that every thread hands over many batches of events.
#   analyze_threads_equal.sh HOPSCOPE REPO_DIR [HOPSCOPE_GENCAP]
set -u
hs=$1 repo=$2 gencap=${3:-}
. "$(dirname "$0")/each_capture.sh"  # tmp, rc, n, each_capture
run() {  # name, then analyze's arguments (the capture last)
    name=$1
    shift
    for t in 1 2 3; do
        "$hs" analyze --no-progress --threads "$t" --json "$tmp/$t.jsonl" "$@" >"$tmp/$t.out" 2>"$tmp/$t.err"
        echo $? >"$tmp/$t.rc"
    done
    compare "$name" 2 && compare "$name" 3
    n=$((n + 1))
}
stdin_run() {  # name, capture: --threads 2 on standard input against --threads 1 on the file
    "$hs" analyze --no-progress --threads 1 --json "$tmp/1.jsonl" "$2" >"$tmp/1.out" 2>"$tmp/1.err"
    echo $? >"$tmp/1.rc"
    "$hs" analyze --no-progress --threads 2 --json "$tmp/s.jsonl" - <"$2" >"$tmp/s.out" 2>"$tmp/s.err"
    echo $? >"$tmp/s.rc"
    compare "$1 from standard input" s
    n=$((n + 1))
}
compare() {  # name, the run compared with --threads 1
    for part in jsonl out err rc; do
        if ! cmp -s "$tmp/1.$part" "$tmp/$2.$part"; then
            echo "FAIL: $1: --threads 1 and $2 differ in $part"
            diff "$tmp/1.$part" "$tmp/$2.$part" | head -5
            rc=1
            return 1
        fi
    done
}
# Every capture, with its keytab and key log, and all of the lab's at once; then one cut short.
each_capture "$repo"
biggest=$(ls -S "$repo"/captures/lab/*.pcap | head -1)
head -c $(($(wc -c <"$biggest") * 2 / 3)) "$biggest" >"$tmp/cut.pcap"
run "a capture cut short" "$tmp/cut.pcap"
[ "$(cat "$tmp/1.rc")" = 2 ] || { echo "FAIL: the cut capture did not exit 2"; rc=1; }
# Every lab keytab at once on every lab capture: which key opens a ticket then depends on the
# tickets met before it (the keytab remembers), so the decoding must stay in capture order.
keytabs=$(for k in "$repo"/captures/lab/*.keytab; do printf -- '--keytab %s ' "$k"; done)
# shellcheck disable=SC2086 # one word per option and file
run "every lab capture with every lab keytab" $keytabs "$repo"/captures/lab/*.pcap
for f in "$repo"/captures/lab/4-double-hop-delegation.pcap "$repo"/captures/lab/13-spnego-delegation-policy.pcap; do
    stdin_run "$f" "$f"
done
if [ -n "$gencap" ]; then
    "$gencap" --size 6M --profile logins --out "$tmp/logins.pcap" 2>/dev/null
    run "a generated login-dense capture" "$tmp/logins.pcap"
    set -- "$repo"/captures/lab/*.pcap
    for f in "$@"; do set -- "$@" --replicate "$f"; shift; done
    "$gencap" --size 6M --out "$tmp/lab.pcap" "$@" 2>/dev/null
    run "the lab's captures repeated" "$tmp/lab.pcap"
    grep -q '"event":"login"' "$tmp/1.jsonl" || { echo "FAIL: no login in the generated capture"; rc=1; }
fi
[ "$n" -gt 50 ] || { echo "FAIL: only $n runs compared"; rc=1; }
[ "$rc" -eq 0 ] && echo "$n runs: --threads 1, 2 and 3 gave the same output"
exit "$rc"
