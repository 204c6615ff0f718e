#!/bin/sh
# hopscope analyze on every committed lab capture (captures/lab/*.pcap), checked with
# check_events.py against the scenario's .expect.json: findings, logins, summary. The capture is
# read twice, from the file and from standard input, and the two event streams must agree. Then
# the checker must reject a mismatch (scenario 5's expectations against scenario 4's events).
#   analyze_lab_captures.sh HOPSCOPE CAPTURES_LAB_DIR
set -u
hs=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0 n=0
for pcap in "$dir"/*.pcap; do
    name=$(basename "$pcap" .pcap)
    exp=$dir/$name.expect.json
    if [ ! -f "$exp" ]; then
        echo "FAIL: $name has no expectations file"
        rc=1
        continue
    fi
    "$hs" analyze -q --json "$tmp/$name.file.jsonl" "$pcap" || { echo "FAIL: $name: analyze exited $?"; rc=1; }
    "$hs" analyze -q --json "$tmp/$name.stdin.jsonl" - <"$pcap" || { echo "FAIL: $name: analyze - exited $?"; rc=1; }
    $py "$here/check_events.py" "$exp" file="$tmp/$name.file.jsonl" stdin="$tmp/$name.stdin.jsonl" || rc=1
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: no capture in $dir"; rc=1; }
if $py "$here/check_events.py" "$dir/5-double-hop-ntlm-anonymous.expect.json" \
    analyze="$tmp/4-double-hop-delegation.file.jsonl" >"$tmp/neg.out"; then
    echo "FAIL: check_events.py accepted scenario 4's events for scenario 5"
    rc=1
elif ! grep -q "findings \['HS050'\], expected \['HS001', 'HS003', 'HS010'\]" "$tmp/neg.out"; then
    echo "FAIL: check_events.py did not name the findings that differ:"
    cat "$tmp/neg.out"
    rc=1
fi
# --frames-aside (the lab's live-vs-analyze comparison when a proxy forwards on the bridge): two
# streams whose only difference is a frame number shifted by one differ without it and agree with
# it; a difference beside the frame number is still one.
fsh=$tmp/4-double-hop-delegation.file.jsonl expsh=$dir/4-double-hop-delegation.expect.json
$py - "$fsh" "$tmp/shifted.jsonl" "$tmp/other.jsonl" <<'EOPY' || { echo "FAIL: could not shift a frame"; rc=1; }
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], encoding='utf-8') if l.strip()]
login = next(e for e in lines if e.get('event') == 'login' and 'first_at' in e)
login['first_at']['frame'] += 1
open(sys.argv[2], 'w').write(''.join(json.dumps(e) + '\n' for e in lines))
login['host_name'] = 'ELSEWHERE'
open(sys.argv[3], 'w').write(''.join(json.dumps(e) + '\n' for e in lines))
EOPY
if $py "$here/check_events.py" "$expsh" a="$fsh" b="$tmp/shifted.jsonl" >"$tmp/shift.out"; then
    echo "FAIL: check_events.py accepted a frame number shifted by one without --frames-aside"
    rc=1
elif ! grep -q "a and b events differ" "$tmp/shift.out"; then
    echo "FAIL: check_events.py did not say the events differ:"
    cat "$tmp/shift.out"
    rc=1
fi
if ! $py "$here/check_events.py" "$expsh" a="$fsh" b="$tmp/shifted.jsonl" --frames-aside >"$tmp/shift.out"; then
    echo "FAIL: check_events.py --frames-aside refused a frame number shifted by one:"
    cat "$tmp/shift.out"
    rc=1
fi
if $py "$here/check_events.py" "$expsh" a="$fsh" b="$tmp/other.jsonl" --frames-aside >/dev/null; then
    echo "FAIL: check_events.py --frames-aside accepted a login that differs beside its frame"
    rc=1
fi
[ "$rc" -eq 0 ] && echo "$n lab captures match their expectations"
exit "$rc"
