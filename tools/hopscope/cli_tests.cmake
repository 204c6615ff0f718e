# End-to-end checks of the hopscope command line (exit codes, messages naming the file), run by
# ctest. Included from tools/CMakeLists.txt when tests are built.
enable_testing()  # the top level enables testing only after adding tools/
set(_pub ${PROJECT_SOURCE_DIR}/tests/data/public)
set(_cli $<TARGET_FILE:hopscope>)
function(hopscope_cli_test name script)
    add_test(NAME cli_${name} COMMAND sh -c "${script}")
    set_tests_properties(cli_${name} PROPERTIES LABELS cli)
endfunction()

hopscope_cli_test(help
    "out=$(${_cli} --help) && echo \"$out\" | grep -q analyze && echo \"$out\" | grep -q live")
hopscope_cli_test(analyze_summary
    "out=$(${_cli} analyze --flows --no-progress ${_pub}/tds7_sqlauth_login_prelogin_loginack_arkime.pcap ${_pub}/krb_error52_response_too_big_ndpi.pcap) && echo \"$out\" | grep -q 'TDS connections  *1 ' && echo \"$out\" | grep -q '2 UDP datagrams'")
hopscope_cli_test(analyze_json_stdout
    "${_cli} analyze --flows -q --json - ${_pub}/tds7_sqlauth_login_prelogin_loginack_arkime.pcap | grep -q '\"event\":\"capture_summary\"'")
hopscope_cli_test(analyze_missing_file_exits_2
    "out=$(${_cli} analyze /nonexistent/x.pcap 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q '/nonexistent/x.pcap: cannot open'")
hopscope_cli_test(analyze_truncated_exits_2_with_offset
    "t=$(mktemp) && head -c 1500 ${_pub}/tds7_sqlauth_login_prelogin_loginack_arkime.pcap > $t && out=$(${_cli} analyze --flows $t 2>&1); rc=$?; rm -f $t; [ $rc -eq 2 ] && echo \"$out\" | grep -q 'byte offset 1244' && echo \"$out\" | grep -q 'TDS connections  *1 '")
hopscope_cli_test(usage_error_exits_2
    "${_cli} analyze >/dev/null 2>&1; [ $? -eq 2 ]")
hopscope_cli_test(analyze_stdin_pipe
    "out=$(cat ${_pub}/krb_error52_response_too_big_ndpi.pcap | ${_cli} analyze --flows -) && echo \"$out\" | grep -q '2 UDP datagrams'")
hopscope_cli_test(live_bad_interface_exits_2
    "out=$(${_cli} live -i no-such-if0 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q 'interface no-such-if0'")
# --buffer-size: MiB, 1 to 2047; anything else is a usage error naming the option, before any
# capture is opened.
hopscope_cli_test(live_bad_buffer_size_exits_2
    "for v in 0 2048 -1 lots; do out=$(${_cli} live -i no-such-if0 --buffer-size $v 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q -- '--buffer-size' && ! echo \"$out\" | grep -q 'interface no-such-if0' || exit 1; done")
hopscope_cli_test(live_help_buffer_size
    "${_cli} live --help | grep -q -- '--buffer-size MIB'")

# --tls-keylog: the lab's full-TLS NTLM login is read; a bad key log line stops the run (exit 2)
# named by file and line, without the secret.
set(_lab ${PROJECT_SOURCE_DIR}/captures/lab)
hopscope_cli_test(analyze_tls_keylog_decrypts
    "out=$(${_cli} analyze -q --json - --tls-keylog ${_lab}/12b-ntlm-tls-full.keylog ${_lab}/12b-ntlm-tls-full.pcap) && echo \"$out\" | grep -q '\"auth\":\"ntlm\"' && ! echo \"$out\" | grep -q '\"auth\":\"unknown\"' && echo \"$out\" | grep -q '\"decrypted_records\":[1-9]'")
hopscope_cli_test(analyze_tls_keylog_bad_line_exits_2
    "t=$(mktemp) && printf 'CLIENT_RANDOM %s 0badc0ffee5ec7e7\\n' $(printf 'a%.0s' $(seq 64)) > $t && out=$(${_cli} analyze --tls-keylog $t ${_lab}/12b-ntlm-tls-full.pcap 2>&1); rc=$?; rm -f $t; [ $rc -eq 2 ] && echo \"$out\" | grep -q \"$t:1: CLIENT_RANDOM\" && ! echo \"$out\" | grep -q 0badc0ffee")

# The proxy: options from the documented example file, the command line overriding it.
hopscope_cli_test(proxy_example_config
    "t=$(mktemp -d) && timeout -s TERM 3 ${_cli} proxy --config ${PROJECT_SOURCE_DIR}/docs/hopscope-proxy.toml --listen 127.0.0.1:0 --upstream 127.0.0.1:9 --json $t/e.jsonl --log-file $t/log >$t/out 2>&1; grep -q 'listening on 127.0.0.1:[0-9]* -> 127.0.0.1:9' $t/log && grep -q '\"event\":\"summary\"' $t/e.jsonl && grep -q 'proxied 0 connections' $t/out; rc=$?; rm -rf $t; exit $rc")
hopscope_cli_test(proxy_bad_config_exits_2
    "t=$(mktemp) && printf '[proxy]\\nlisten = [\"127.0.0.1:0\"]\\nupstreem = [\"x:1\"]\\n' > $t && out=$(${_cli} proxy --config $t 2>&1); rc=$?; rm -f $t; [ $rc -eq 2 ] && echo \"$out\" | grep -q upstreem")
hopscope_cli_test(proxy_unpaired_listen_exits_2
    "out=$(${_cli} proxy --listen 127.0.0.1:0 --listen 127.0.0.1:0 --upstream a:1 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q 'one --upstream for each --listen'")
hopscope_cli_test(proxy_bad_endpoint_exits_2
    "out=$(${_cli} proxy --listen fd00::1:1433 --upstream a:1 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q 'brackets'")
hopscope_cli_test(proxy_metrics_not_loopback_exits_2
    "out=$(${_cli} proxy --listen 127.0.0.1:0 --upstream a:1 --metrics 0.0.0.0:9433 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q 'metrics-any-address'")
hopscope_cli_test(proxy_sighup_reopens_files
    "t=$(mktemp -d) && { ${_cli} proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:9 --json $t/e.jsonl --log-file $t/log >$t/out 2>&1 & pid=$!; } && sleep 1 && mv $t/e.jsonl $t/e.1 && mv $t/log $t/log.1 && kill -HUP $pid && sleep 1 && kill -TERM $pid && wait $pid; grep -q 'SIGHUP' $t/log && grep -q '\"event\":\"summary\"' $t/e.jsonl && ! grep -q summary $t/e.1; rc=$?; rm -rf $t; exit $rc")

# --keytab: the lab's double hop without delegation is proved from the decrypted AP-REQ (HS014,
# delegation_proof in the login event); a missing or invalid keytab stops the run (exit 2) naming
# the file; no key of the keytab (klist -K shows them) is in the JSON or the console output.
hopscope_cli_test(analyze_keytab_proves_no_delegation
    "out=$(${_cli} analyze -q --json - --keytab ${_lab}/6-double-hop-no-delegation.keytab ${_lab}/6-double-hop-no-delegation.pcap) && echo \"$out\" | grep -q '\"delegation_proof\":{\"deleg\":false,\"forwarded_tgt\":false' && echo \"$out\" | grep -q '\"user_source\":\"keytab\"' && echo \"$out\" | grep -q '\"rule\":\"HS014\"'")
hopscope_cli_test(analyze_keytab_missing_exits_2
    "out=$(${_cli} analyze --keytab /nonexistent/x.keytab ${_lab}/6-double-hop-no-delegation.pcap 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q -- '--keytab /nonexistent/x.keytab'")
hopscope_cli_test(analyze_keytab_invalid_exits_2
    "out=$(${_cli} analyze --keytab ${_lab}/6-double-hop-no-delegation.expect.json ${_lab}/6-double-hop-no-delegation.pcap 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q -- '--keytab .*6-double-hop-no-delegation.expect.json'")
hopscope_cli_test(live_keytab_missing_exits_2
    "out=$(${_cli} live -i lo --keytab /nonexistent/x.keytab 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q -- '--keytab /nonexistent/x.keytab'")
# A JSON path that cannot be reopened (its directory gone): logged, the events go on to the file
# it was, the proxy stops cleanly.
hopscope_cli_test(proxy_sighup_failed_reopen_keeps_writing
    "t=$(mktemp -d) && mkdir $t/d && { ${_cli} proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:9 --json $t/d/e.jsonl --log-file $t/log >$t/out 2>&1 & pid=$!; } && sleep 1 && exec 3<$t/d/e.jsonl && rm -rf $t/d && kill -HUP $pid && sleep 1 && kill -TERM $pid && wait $pid && grep -q 'cannot reopen the JSON output' $t/log && grep -q '\"event\":\"summary\"' /proc/self/fd/3; rc=$?; exec 3<&-; rm -rf $t; exit $rc")
hopscope_cli_test(proxy_keytab_missing_exits_2
    "out=$(${_cli} proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:9 --keytab /nonexistent/x.keytab 2>&1); rc=$?; [ $rc -eq 2 ] && echo \"$out\" | grep -q -- '--keytab /nonexistent/x.keytab'")
hopscope_cli_test(analyze_keytab_prints_no_key
    "command -v klist >/dev/null || exit 0; kt=${_lab}/4-double-hop-delegation.keytab; out=$(${_cli} analyze -v --json - --keytab $kt ${_lab}/4-double-hop-delegation.pcap 2>&1) && echo \"$out\" | grep -q kerberos_ticket && echo \"$out\" | grep -q ' ticket=forwardable' && keys=$(klist -k -K $kt | sed -n 's/.*(0x\\([0-9a-f]*\\)).*/\\1/p' | cut -c1-16) && [ -n \"$keys\" ] || exit 1; for k in $keys; do echo \"$out\" | grep -qi $k && exit 1; done; exit 0")
