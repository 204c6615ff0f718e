#!/bin/sh
# `hopscope analyze --threads 2` (the analysis on a second thread) writes the same events, summary
# and console output as `--threads 1`, byte for byte, on every capture in the repository; with
# the lab's keytabs and TLS key logs too. A capture cut short (a damaged file) still gives equal
# output before its error, and the same exit status.
#   analyze_threads_equal.sh HOPSCOPE REPO_DIR
set -u
hs=$1 repo=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0 n=0
run() {  # name, then analyze's arguments
    name=$1
    shift
    for t in 1 2; do
        "$hs" analyze --no-progress --threads "$t" --json "$tmp/$t.jsonl" "$@" >"$tmp/$t.out" 2>"$tmp/$t.err"
        echo $? >"$tmp/$t.rc"
    done
    for part in jsonl out err rc; do
        if ! cmp -s "$tmp/1.$part" "$tmp/2.$part"; then
            echo "FAIL: $name: --threads 1 and 2 differ in $part"
            diff "$tmp/1.$part" "$tmp/2.$part" | head -5
            rc=1
        fi
    done
    n=$((n + 1))
}
for f in $(find "$repo/captures" "$repo/tests/data" -name '*.pcap' -o -name '*.pcapng' | sort); do
    run "$f" "$f"
    base=${f%.pcap}
    [ -f "$base.keytab" ] && run "$f with its keytab" --keytab "$base.keytab" "$f"
    [ -f "$base.keylog" ] && run "$f with its key log" --tls-keylog "$base.keylog" "$f"
done
# All of the lab's captures at once (merged in time order), and one cut short.
run "every lab capture together" "$repo"/captures/lab/*.pcap
biggest=$(ls -S "$repo"/captures/lab/*.pcap | head -1)
head -c $(($(wc -c <"$biggest") * 2 / 3)) "$biggest" >"$tmp/cut.pcap"
run "a capture cut short" "$tmp/cut.pcap"
[ "$(cat "$tmp/1.rc")" = 2 ] || { echo "FAIL: the cut capture did not exit 2"; rc=1; }
[ "$n" -gt 50 ] || { echo "FAIL: only $n runs compared"; rc=1; }
[ "$rc" -eq 0 ] && echo "$n runs: --threads 1 and --threads 2 gave the same output"
exit "$rc"
