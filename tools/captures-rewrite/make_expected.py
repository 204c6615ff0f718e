#!/usr/bin/env python3
"""Extracts the reference TCP streams and UDP/88 datagrams of each capture with tshark.

Writes tests/data/captures/<capture>.expected, used by tests/unit/captures/golden_test.cpp:

    tcp <endpoint A> <endpoint B> <payload bytes A->B> <payload bytes B->A>
    udp <frame> <source endpoint> <destination endpoint> <payload bytes>

`tcp` lines come from `tshark -q -z follow,tcp,raw,N` (the reassembled payload of each TCP
stream, each byte counted once; streams without payload are left out). `udp` lines list the UDP
datagrams with port 88 on either side (`-Y "udp.port == 88"`, IP reassembly on, so a fragmented
datagram is listed once, at the frame that completed it). Re-run after adding a capture:

    tools/captures-rewrite/make_expected.py tests/data/public/*.pcap* 

Only tshark needs this script; the tests read the .expected files.
"""
import os
import re
import subprocess
import sys

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "captures")


def tshark(*args):
    return subprocess.run(["tshark", *args], check=True, capture_output=True, text=True).stdout


def endpoint(s):
    # tshark prints "1.2.3.4:80" or "[::1]:80" after "Node N: "
    return s.strip()


def tcp_streams(path):
    ids = sorted({int(x) for x in tshark("-r", path, "-Y", "tcp", "-T", "fields", "-e",
                                          "tcp.stream").split() if x})
    rows = []
    for start in range(0, len(ids), 200):
        chunk = ids[start:start + 200]
        args = ["-r", path, "-q"]
        for i in chunk:
            args += ["-z", f"follow,tcp,raw,{i}"]
        out = tshark(*args)
        for block in out.split("=" * 67):
            m0 = re.search(r"^Node 0: (.*)$", block, re.M)
            m1 = re.search(r"^Node 1: (.*)$", block, re.M)
            if not m0 or not m1:
                continue
            n = [0, 0]
            for line in block.splitlines():
                if line.startswith(("Follow:", "Filter:", "Node ")) or not line.strip():
                    continue
                side = 1 if line.startswith("\t") else 0
                n[side] += len(line.strip()) // 2
            if n[0] or n[1]:
                rows.append(f"tcp {endpoint(m0.group(1))} {endpoint(m1.group(1))} {n[0]} {n[1]}")
    return rows


def udp88(path):
    out = tshark("-r", path, "-Y", "udp.port == 88", "-T", "fields", "-E", "separator=/t",
                 "-e", "frame.number", "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport",
                 "-e", "ip.dst", "-e", "ipv6.dst", "-e", "udp.dstport", "-e", "udp.length")
    rows = []
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < 8:
            continue
        src = f[1] or f"[{f[2]}]"
        dst = f[4] or f"[{f[5]}]"
        # the innermost header when tunnelled: take the last value of each field
        src, dst = src.split(",")[-1], dst.split(",")[-1]
        sport, dport = f[3].split(",")[-1], f[6].split(",")[-1]
        length = int(f[7].split(",")[-1]) - 8
        rows.append(f"udp {f[0]} {src}:{sport} {dst}:{dport} {length}")
    return rows


def main(paths):
    os.makedirs(OUT, exist_ok=True)
    version = tshark("--version").splitlines()[0]
    for p in paths:
        rows = tcp_streams(p) + udp88(p)
        name = os.path.basename(p) + ".expected"
        with open(os.path.join(OUT, name), "w") as f:
            f.write(f"# {os.path.basename(p)}: reference from {version} via "
                    "tools/captures-rewrite/make_expected.py\n")
            for r in rows:
                f.write(r + "\n")
        print(f"{name}: {len(rows)} rows")


if __name__ == "__main__":
    main(sys.argv[1:])
