#!/bin/bash
# `hopscope proxy --transparent --tproxy` on a real TPROXY path: a client namespace, a router
# namespace with the TPROXY rule and the proxy, a server namespace with hopscope-labserver.
# FreeTDS's tsql logs in with SQL authentication to the server's own address (it never names the
# proxy); the proxy, reached through TPROXY only, forwards to that original destination and
# reports the login. Checks: the client's result, the login in the proxy's events (the real
# client and server addresses), a connection made straight to the proxy's port is refused, no
# password in any output. Needs root (namespaces, iptables TPROXY); exits 77 (skipped) without.
#
#   tproxy_path.sh HOPSCOPE LABSERVER
set -u
hs=$1 labserver=$2
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root"; exit 77; }
for t in ip iptables tsql python3 openssl; do
    command -v "$t" >/dev/null || { echo "skipped: no $t"; exit 77; }
done
tag=hstp$$
C=$tag-c R=$tag-r S=$tag-s
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    for n in $C $R $S; do ip netns del "$n" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
fail=0
check() {  # description, command...
    if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}

for n in $C $R $S; do ip netns add "$n" || { echo "skipped: cannot make namespaces"; exit 77; }; done
ip link add "${tag}c" netns "$C" type veth peer name "${tag}r0" netns "$R"
ip link add "${tag}r1" netns "$R" type veth peer name "${tag}s" netns "$S"
ip -n "$C" addr add 10.99.1.2/24 dev "${tag}c"
ip -n "$R" addr add 10.99.1.1/24 dev "${tag}r0"
ip -n "$R" addr add 10.99.2.1/24 dev "${tag}r1"
ip -n "$S" addr add 10.99.2.2/24 dev "${tag}s"
for n in $C $R $S; do ip -n "$n" link set lo up; done
ip -n "$C" link set "${tag}c" up
ip -n "$R" link set "${tag}r0" up
ip -n "$R" link set "${tag}r1" up
ip -n "$S" link set "${tag}s" up
ip -n "$C" route add default via 10.99.1.1
ip -n "$S" route add default via 10.99.2.1
ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
# TPROXY: SQL Server traffic crossing the router goes to the proxy's socket, unchanged.
if ! ip netns exec "$R" iptables -t mangle -A PREROUTING -p tcp -d 10.99.2.2 --dport 1433 \
    -j TPROXY --on-port 15433 --tproxy-mark 0x1/0x1 2>"$work/iptables.err"; then
    echo "skipped: no TPROXY target here: $(cat "$work/iptables.err")"
    exit 77
fi
ip -n "$R" rule add fwmark 1 lookup 100
ip -n "$R" route add local 0.0.0.0/0 dev lo table 100

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
    -days 2 -subj /CN=sqls >/dev/null 2>&1 || { echo "skipped: no openssl"; exit 77; }
printf 'sa:S3cret!\n' >"$work/logins"
chmod 600 "$work/logins"
ip netns exec "$S" env ASAN_OPTIONS=detect_leaks=0 "$labserver" --listen 10.99.2.2:1433 \
    --name SQLS --encryption notsup --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" \
    --logins "$work/logins" --run-dir "$work" \
    >"$work/server.log" 2>&1 &
pids+=($!)
ip netns exec "$R" "$hs" proxy --transparent --tproxy --listen 0.0.0.0:15433 \
    --json "$work/events.jsonl" >"$work/proxy.log" 2>&1 &
proxy=$!
pids+=($proxy)
for _ in $(seq 50); do
    ip netns exec "$R" ss -ltn | grep -q ':15433 ' &&
        ip netns exec "$S" ss -ltn | grep -q '10.99.2.2:1433 ' && break
    sleep 0.1
done

printf '[sqls]\n    host = 10.99.2.2\n    port = 1433\n    tds version = 7.4\n    encryption = off\n' \
    >"$work/freetds.conf"
printf 'select suser_sname()\ngo\nexit\n' |
    ip netns exec "$C" env FREETDSCONF="$work/freetds.conf" HOME="$work" timeout 30 \
        tsql -S sqls -U sa -P 'S3cret!' >"$work/tsql.out" 2>&1
check "tsql logged in through the TPROXY path" grep -q '^sa' "$work/tsql.out"

# Straight to the proxy's own port: no original destination to forward to, refused.
ip netns exec "$C" python3 -c "
import socket, sys
try:
    # The reset may come before the connect returns: refused all the same.
    s = socket.create_connection(('10.99.1.1', 15433), timeout=5)
    s.sendall(b'x'); data = s.recv(10)
except OSError:
    data = b''
sys.exit(0 if data == b'' else 1)" 2>/dev/null
check "a connection made straight to the proxy's port is refused" test $? -eq 0

kill -TERM "$proxy"
wait "$proxy"
check "the proxy exited cleanly" test $? -eq 0
check "the proxy reported the login with the real client and server" python3 -c "
import json, sys
logins = [e for e in map(json.loads, open('$work/events.jsonl')) if e.get('event') == 'login']
ok = any(e['client'].startswith('10.99.1.2:') and e['server'] == '10.99.2.2:1433'
         and e['auth'] == 'sql' and e['user'] == 'sa' and e['outcome'] == 'success' for e in logins)
sys.exit(0 if ok else 1)"
check "the proxy logged the refusal" grep -q 'refused: addressed to the proxy itself' "$work/proxy.log"
check "no password in the proxy's outputs" bash -c "! grep -q 'S3cret' '$work/events.jsonl' '$work/proxy.log'"
if [ $fail -ne 0 ]; then
    for f in tsql.out proxy.log server.log events.jsonl; do
        echo "--- $f"
        tail -20 "$work/$f"
    done
fi
exit $fail
