#!/usr/bin/env bash
# Regenerates the token-stream and request fixtures of this directory from the public captures.
# Needs tshark (used here as a reference only; the tests read the .bin files, never tshark).
# Each .bin file is one whole TDS message payload: the TCP payloads of the listed frames with the
# 8-byte TDS packet header removed, concatenated (every message used here is one packet, EOM set).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pub="$here/../public"

extract() {  # capture frame output
    tshark -r "$pub/$1" -Y "frame.number==$2" -T fields -e tcp.payload 2>/dev/null |
        /usr/bin/python3 -c 'import sys; d=bytes.fromhex(sys.stdin.read().strip()); sys.stdout.buffer.write(d[8:])' \
            >"$here/$3"
}

arkime=tds7_sqlauth_login_prelogin_loginack_arkime.pcap
extract $arkime 7 arkime_f7_login_response.bin
extract $arkime 8 arkime_f8_sql_batch.bin
extract $arkime 9 arkime_f9_result.bin

ndpi=tds_sqlbatch_rpc_responses_midstream_ndpi.pcap
for f in 1 5 9; do extract $ndpi $f ndpi_f${f}_sql_batch.bin; done
for f in 2 4 6 10 12 14 16 19 22 25; do extract $ndpi $f ndpi_f${f}_response.bin; done
for f in 3 7 8 11 13 15 18 21 24 33 34 35 36 37 38; do extract $ndpi $f ndpi_f${f}_rpc.bin; done

# Frames 31+32: one RPC message in two TDS packets (the first spans six TCP segments, so its
# reassembled bytes are used), with an nvarchar(max) PLP parameter.
{
    tshark -r "$pub/$ndpi" -Y "frame.number==31" -T fields -e tcp.reassembled.data 2>/dev/null
    tshark -r "$pub/$ndpi" -Y "frame.number==32" -T fields -e tcp.payload 2>/dev/null
} | /usr/bin/python3 -c 'import sys; a,b=sys.stdin.read().split(); sys.stdout.buffer.write(bytes.fromhex(a)[8:]+bytes.fromhex(b)[8:])' \
    >"$here/ndpi_f31_f32_rpc.bin"
