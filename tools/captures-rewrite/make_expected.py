#!/usr/bin/env python3
"""Extracts the reference TCP streams and UDP/88 datagrams of each capture with tshark.

Writes tests/data/captures/<capture>.expected, used by tests/unit/captures/golden_test.cpp:

    tcp <endpoint A> <endpoint B> <payload bytes A->B> <payload bytes B->A> <gap A->B> <gap B->A>
    udp <frame> <source endpoint> <destination endpoint> <payload bytes>

`tcp` lines come from `tshark -q -z follow,tcp,raw,N` (the reassembled payload of each TCP
stream, each byte counted once; streams without payload are left out). tshark marks bytes that
are missing from the capture with a "[N bytes missing in capture file]" line: those lines are not
payload, their N are summed into the gap columns. libpcap (unlike tshark's own reader) cuts a
record longer than the file header's snapshot length down to it; for such frames the cut bytes are
moved from the payload to the gap columns, which is what a libpcap reader can deliver. `udp` lines list the UDP
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


MISSING = re.compile(rb"^\[(\d+) bytes missing in capture file\]\x00?$")


def file_snaplen(path):
    out = subprocess.run(["capinfos", "-l", path], check=True, capture_output=True,
                         text=True).stdout
    m = re.search(r"file hdr: (\d+) bytes", out)
    return int(m.group(1)) if m else 0


def clamped(path):
    """Per (stream, source endpoint): payload bytes libpcap drops from frames over the file's
    snaplen, and bytes missing from frames cut short at capture time (tshark's follow neither
    shows nor marks those; a reader sees them as lost)."""
    snap = file_snaplen(path) or 1 << 30
    cut, lost = {}, {}
    out = tshark("-r", path, "-Y", f"tcp and (frame.cap_len > {snap} or frame.len > frame.cap_len)",
                 "-T", "fields", "-E", "separator=/t", "-e", "tcp.stream", "-e", "ip.src", "-e",
                 "ipv6.src", "-e", "tcp.srcport", "-e", "frame.cap_len", "-e", "frame.len")
    for line in out.splitlines():
        f = line.split("\t")
        src = (f[1] or f"[{f[2]}]") + ":" + f[3]
        key = (int(f[0]), src)
        caplen, wirelen = int(f[4]), int(f[5])
        cut[key] = cut.get(key, 0) + max(0, caplen - snap)
        lost[key] = lost.get(key, 0) + wirelen - min(caplen, snap)
    return cut, lost


def tcp_streams(path):
    cut, lost = clamped(path)
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
            stream = int(re.search(r"^Filter: tcp.stream eq (\d+)$", block, re.M).group(1))
            n = [0, 0]
            gap = [0, 0]
            for line in block.splitlines():
                if line.startswith(("Follow:", "Filter:", "Node ")) or not line.strip():
                    continue
                side = 1 if line.startswith("\t") else 0
                raw = bytes.fromhex(line.strip())
                m = MISSING.match(raw)
                if m:
                    gap[side] += int(m.group(1))
                else:
                    n[side] += len(raw)
            ends = [endpoint(m0.group(1)), endpoint(m1.group(1))]
            for side in (0, 1):
                c = cut.get((stream, ends[side]), 0)
                n[side] -= c
                gap[side] += lost.get((stream, ends[side]), 0)
            if n[0] or n[1]:
                rows.append(f"tcp {ends[0]} {ends[1]} {n[0]} {n[1]} {gap[0]} {gap[1]}")
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
