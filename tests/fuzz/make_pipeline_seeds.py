#!/usr/bin/env python3
"""Rewrites lab captures (captures/lab/*.pcap: Ethernet, IPv4) into fuzz_pipeline's input format.

Each TCP/UDP payload becomes one record; flows are numbered by first appearance (TDS flows to
selectors 0-2, port-88 traffic to 3). Standard library only. Usage:
  tests/fuzz/make_pipeline_seeds.py captures/lab/*.pcap  (writes tests/fuzz/corpus/pipeline/)
"""
import os
import struct
import sys

out_dir = os.path.join(os.path.dirname(__file__), "corpus", "pipeline")


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl


def convert(path):
    flows = {}
    out = bytearray()
    for frame in packets(path):
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        proto = ip[9]
        total = struct.unpack(">H", ip[2:4])[0]
        l4 = ip[ihl:total]
        src, dst = ip[12:16], ip[16:20]
        if proto == 6 and len(l4) >= 20:
            sport, dport = struct.unpack(">HH", l4[:4])
            payload = l4[(l4[12] >> 4) * 4:]
            fin_rst = l4[13] & 0x05
        elif proto == 17 and len(l4) >= 8:
            sport, dport = struct.unpack(">HH", l4[:4])
            payload = l4[8:]
            fin_rst = 0
        else:
            continue
        key = tuple(sorted([(src, sport), (dst, dport)]))
        krb = 88 in (sport, dport)
        if key not in flows:
            tds_count = sum(1 for v in flows.values() if v[0] < 3)
            flows[key] = (3 if krb else min(tds_count, 2), (dst, dport))
        sel, server = flows[key]
        to_client = (src, sport) == server
        if not payload and not fin_rst:
            continue
        s = sel | (4 if to_client else 0) | (0x20 if proto == 17 else 0)
        if payload:
            for i in range(0, len(payload), 0xFFFF):
                chunk = payload[i:i + 0xFFFF]
                out += bytes([s]) + struct.pack(">H", len(chunk)) + chunk
        if fin_rst and not to_client:
            out += bytes([s | 0x10]) + b"\x00\x00"
    return bytes(out)


os.makedirs(out_dir, exist_ok=True)
for p in sys.argv[1:]:
    name = os.path.splitext(os.path.basename(p))[0]
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(convert(p))
