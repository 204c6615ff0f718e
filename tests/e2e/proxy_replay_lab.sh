#!/bin/sh
# Every committed lab capture replayed through `hopscope proxy` (proxy_replay.py): byte-exact
# forwarding, the proxy's events equal analyze's, the recording's equal the proxy's, no secret
# in any output. No root needed (loopback addresses 127.N.x.y).
#   proxy_replay_lab.sh HOPSCOPE CAPTURES_LAB_DIR
set -u
hs=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0 n=0
for pcap in "$dir"/*.pcap; do
    name=$(basename "$pcap" .pcap)
    /usr/bin/python3 "$here/proxy_replay.py" "$hs" "$pcap" "$tmp/$name" || rc=1
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: no capture in $dir"; rc=1; }
exit $rc
