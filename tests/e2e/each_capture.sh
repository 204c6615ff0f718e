# Sourced by the e2e scripts that compare two runs of `hopscope analyze`. Sets tmp (a directory
# removed at exit), rc=0 (set it to 1 on a failure) and n=0 (the runs compared), and defines
# each_capture, which calls the script's run() (a name, then analyze's arguments with the
# capture last) on every capture in the repository, again with its keytab and with its TLS key
# log where it has one, and on all of the lab's captures at once (merged in time order).
#   each_capture REPO_DIR
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0 n=0
each_capture() {
    for f in $(find "$1/captures" "$1/tests/data" -name '*.pcap' -o -name '*.pcapng' | sort); do
        run "$f" "$f"
        base=${f%.pcap}
        [ -f "$base.keytab" ] && run "$f with its keytab" --keytab "$base.keytab" "$f"
        [ -f "$base.keylog" ] && run "$f with its key log" --tls-keylog "$base.keylog" "$f"
    done
    run "every lab capture together" "$1"/captures/lab/*.pcap
}
