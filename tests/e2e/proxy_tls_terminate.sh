#!/bin/bash
# `hopscope proxy --tls-terminate` between FreeTDS's tsql and hopscope-labserver on loopback, for
# full encryption (the server says ENCRYPT_ON) and login-only encryption (both say OFF), with SQL
# authentication. Checks: the client's result is the same as without the proxy; the proxy reads
# the login inside TLS (auth sql, success, user sa, the encryption mode); its key log is mode 0600;
# its recording (--record, both legs) holds the TLS secrets, so that `hopscope analyze` of it
# alone gives the same login on each leg, and tshark (when installed) decrypts the LOGIN7 in it
# without a key log file; no password in any output. Then tedious (node) with encrypt: true, when
# tools/lab/node_modules has it, the same way (full encryption). Exits 77 (skipped) without tsql
# or openssl.
#
#   proxy_tls_terminate.sh HOPSCOPE LABSERVER
set -u
hs=$1 labserver=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)
for t in tsql openssl python3; do
    command -v "$t" >/dev/null || { echo "skipped: no $t"; exit 77; }
done
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
fail=0
check() {  # description, command...; its status is the command's
    if "${@:2}"; then
        echo "ok: $1"
    else
        echo "FAIL: $1"
        fail=1
        return 1
    fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1
printf 'sa:S3cret!\n' >"$work/logins"
chmod 600 "$work/logins"

# start DIR ENCRYPTION [proxy args...]: the lab server on $sp and the terminating proxy on $pp in
# front of it (fresh ports); the proxy's pid in $px once it listens
start() {
    local dir=$1 encryption=$2
    shift 2
    sp=$(free_port) pp=$(free_port)
    mkdir -p "$dir"
    "$labserver" --listen "127.0.0.1:$sp" --name SQLT --encryption "$encryption" \
        --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --logins "$work/logins" \
        --run-dir "$dir" >"$dir/server.log" 2>&1 &
    pids+=("$!")
    "$hs" proxy --listen "127.0.0.1:$pp" --upstream "127.0.0.1:$sp" --tls-terminate "$@" \
        --json "$dir/proxy.jsonl" --log-file "$dir/proxy.oplog" --grace 1 >"$dir/proxy.log" 2>&1 &
    px=$!
    pids+=("$px")
    for _ in $(seq 1 100); do
        grep -q "listening on" "$dir/proxy.oplog" 2>/dev/null && break
        sleep 0.05
    done
}

for mode in full login-only; do
    enc=on tds_enc=require
    [ "$mode" = login-only ] && enc=off tds_enc=request
    d=$work/$mode
    start "$d" "$enc" --tls-keylog "$d/proxy.keylog" --record "$d/rec.pcapng" --record-upstream-leg
    for via in direct proxy; do
        port=$sp
        [ "$via" = proxy ] && port=$pp
        printf '[global]\n    tds version = 7.4\n[t]\n    host = 127.0.0.1\n    port = %s\n    encryption = %s\n' \
            "$port" "$tds_enc" >"$d/freetds-$via.conf"
        printf 'select 1\ngo\nexit\n' | FREETDSCONF="$d/freetds-$via.conf" timeout 20 \
            tsql -S t -U sa -P 'S3cret!' >"$d/$via.out" 2>&1
    done
    kill -INT "$px"
    wait "$px" 2>/dev/null
    px_status=$?
    check "$mode: the proxy stopped cleanly on SIGINT (exit status $px_status)" test "$px_status" = 0
    check "$mode: the client's login and query through the proxy" grep -q '(1 row affected)' "$d/proxy.out"
    check "$mode: the same output as without the proxy" cmp -s "$d/direct.out" "$d/proxy.out"
    login='"auth":"sql","auth_detail":"","outcome":"success","user":"sa"'
    check "$mode: the proxy read the login inside TLS" grep -q "$login" "$d/proxy.jsonl"
    check "$mode: encryption $mode" grep -q "\"encryption\":\"$mode\"" "$d/proxy.jsonl"
    check "$mode: the key log is the owner's only" test "$(stat -c %a "$d/proxy.keylog")" = 600
    check "$mode: the key log has both legs' sessions" test "$(grep -c '^CLIENT_RANDOM ' "$d/proxy.keylog")" = 2
    "$hs" analyze -q --json "$d/analyze.jsonl" "$d/rec.pcapng" >"$d/analyze.log" 2>&1
    if ! check "$mode: analyze of the recording alone reads the login on both legs" \
        test "$(grep -c "$login" "$d/analyze.jsonl")" = 2; then
        # What explains it (no secret in any of it: checked below): the recording's size, what
        # analyze and the proxy said.
        echo "  recording: $(stat -c %s "$d/rec.pcapng" 2>/dev/null) bytes;" \
            "logins found: $(grep -c '"event":"login"' "$d/analyze.jsonl")"
        sed 's/^/  analyze: /' "$d/analyze.log" | tail -n 20
        sed 's/^/  proxy: /' "$d/proxy.log" "$d/proxy.oplog" | tail -n 40
    fi
    if command -v tshark >/dev/null; then
        tshark -r "$d/rec.pcapng" -d "tcp.port==$sp,tds" -x 2>/dev/null >"$d/tshark.txt"
        check "$mode: tshark decrypts both legs' LOGIN7 with the recording's own secrets" \
            test "$(grep -A1 '^Decrypted TLS' "$d/tshark.txt" | grep -c '^0000  10 01')" = 2
    fi
    if grep -a -l 'S3cret!' "$d/proxy.jsonl" "$d/proxy.log" "$d/proxy.oplog" "$d/analyze.jsonl" \
        "$d/analyze.log"; then
        echo "FAIL: $mode: a password in the output above"
        fail=1
    fi
done

# tedious, TDS 7.x with full encryption (encrypt: true), SQL authentication
if command -v node >/dev/null && [ -d "$repo/tools/lab/node_modules/tedious" ]; then
    d=$work/tedious
    start "$d" on
    for via in direct proxy; do
        port=$sp
        [ "$via" = proxy ] && port=$pp
        TEDIOUS_PORT=$port TEDIOUS_ENCRYPT=1 TEDIOUS_SQL_AUTH=1 timeout 30 node --no-warnings \
            "$repo/tools/lab/tedious_client.js" 127.0.0.1 - sa 'S3cret!' "select 1" >"$d/$via.out" 2>&1
    done
    kill -INT "$px"
    wait "$px" 2>/dev/null
    check "tedious: the login and query through the proxy" test "$(cat "$d/proxy.out")" = 1
    check "tedious: the same output as without the proxy" cmp -s "$d/direct.out" "$d/proxy.out"
    check "tedious: the proxy read the login inside TLS" \
        grep -q '"auth":"sql","auth_detail":"","outcome":"success","user":"sa"' "$d/proxy.jsonl"
    check "tedious: full encryption" grep -q '"encryption":"full"' "$d/proxy.jsonl"
    if grep -a -l 'S3cret!' "$d/proxy.jsonl" "$d/proxy.log" "$d/proxy.oplog"; then
        echo "FAIL: tedious: a password in the output above"
        fail=1
    fi
else
    echo "note: tedious not installed (tools/lab/node_modules): its TLS login not checked"
fi
exit $fail
