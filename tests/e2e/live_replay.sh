#!/bin/bash
# `hopscope live` against `hopscope analyze` on the same packets: every lab capture is replayed
# with tcpreplay into a veth pair (one end in a network namespace of its own, where live listens
# with its defaults: block-wise delivery, the default kernel buffer), and a second time with
# `--buffer-size 1`. The capture is first cut to what live's default filter lets through (so
# that frame numbers agree), and that cut is what analyze reads. Checks, per capture and run:
# live's events equal analyze's (time stamps aside: check_events.py), both as the scenario
# expects; live read every packet it captured and dropped none. Needs root, tcpreplay and
# tcpdump; exits 77 (skipped) without.
#
#   live_replay.sh HOPSCOPE LAB_CAPTURES_DIR
set -u
hs=$1 lab=$2
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root"; exit 77; }
for t in ip tcpreplay tcpdump python3; do
    command -v "$t" >/dev/null || { echo "skipped: no $t"; exit 77; }
done
tag=hslr$$
ns=$tag tx=$tag-t rx=$tag-r
work=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    ip link del "$tx" 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns" || { echo "skipped: cannot make namespaces"; exit 77; }
ip link add "$tx" type veth peer name "$rx" netns "$ns"
sysctl -qw "net.ipv6.conf.$tx.disable_ipv6=1"
ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$rx.disable_ipv6=1"
# Some lab frames are larger than Ethernet's 1514 bytes (captured on a bridge with segmentation
# offload): a larger MTU lets tcpreplay send them as they are.
ip link set "$tx" mtu 65535
ip -n "$ns" link set "$rx" mtu 65535
ip link set "$tx" up
ip -n "$ns" link set "$rx" up
# What live captures by default (tools/hopscope/capture_commands.cpp).
filter='tcp or udp port 88 or (ip and ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)'

fail=0
runs=0
for cap in "$lab"/*.pcap; do
    name=$(basename "$cap" .pcap)
    exp=$lab/$name.expect.json
    [ -f "$exp" ] || continue
    tcpdump -r "$cap" -w "$work/cut.pcap" "$filter" 2>/dev/null
    "$hs" analyze --no-progress -q --json "$work/analyze.jsonl" "$work/cut.pcap" >/dev/null 2>&1
    for opts in "" "--buffer-size 1"; do
        # Removed first: the wait below must not find the previous run's "capturing on" before
        # the new process has truncated the file.
        rm -f "$work/live.err"
        # shellcheck disable=SC2086
        ip netns exec "$ns" "$hs" live -i "$rx" --json "$work/live.jsonl" $opts \
            >"$work/live.out" 2>"$work/live.err" &
        pid=$!
        for _ in $(seq 100); do grep -q 'capturing on' "$work/live.err" && break; sleep 0.1; done
        tcpreplay -q -i "$tx" --topspeed "$work/cut.pcap" >"$work/replay.log" 2>&1 ||
            { echo "FAIL: $name: tcpreplay: $(cat "$work/replay.log")"; fail=1; }
        sleep 0.5
        kill -INT "$pid"
        wait "$pid"
        rc=$?
        pid=""
        runs=$((runs + 1))
        what="$name (live ${opts:-with its defaults})"
        [ "$rc" -eq 0 ] || { echo "FAIL: $what: exit status $rc: $(cat "$work/live.err")"; fail=1; }
        line=$(grep 'captured .* packets on' "$work/live.out")
        sent=$(grep -c . <(tcpdump -r "$work/cut.pcap" 2>/dev/null))
        echo "$line" | grep -q "captured $sent packets on .*; dropped 0 by the kernel, 0 by the interface" ||
            { echo "FAIL: $what: sent $sent packets, live: $line"; fail=1; }
        if ! python3 "$here/check_events.py" "$exp" live="$work/live.jsonl" \
            analyze="$work/analyze.jsonl" >"$work/check.txt" 2>&1; then
            echo "FAIL: $what: live and analyze differ:"
            sed 's/^/  /' "$work/check.txt"
            fail=1
        fi
    done
done
[ "$runs" -gt 0 ] || { echo "FAIL: no lab capture with expectations in $lab"; exit 1; }
[ "$fail" -eq 0 ] && echo "ok: $runs live runs equal analyze on the same packets"
exit "$fail"
