#!/usr/bin/env python3
"""Rewrites the TDS streams of lab captures (captures/lab/*.pcap: Ethernet, IPv4) into
fuzz_proxy_tap's input: what the proxy's pumps would have handed to the tap had the lab's
connections gone through `hopscope proxy`.

TDS connections (not port 88) take the target's connection slots by first appearance (slots 0
and 1 are the target's client flows to the middle server, slot 2 its flow to the back end; a
connection takes the first free slot); each TCP payload becomes one "bytes forwarded" record of
its slot and direction, the client's FIN or RST a close, and the analysis thread drains the
queue after every record. Three variants per capture: as it came (a 1 MiB queue, transparent);
with the explicit listeners' proxy view and a recording of both legs, the payloads cut into
reads of 1 to 1500 bytes; with a 6 KiB queue drained only every fourth record (drops, so gaps).
Standard library only. Usage:
  tests/fuzz/make_proxy_tap_seeds.py captures/lab/*.pcap  (writes tests/fuzz/corpus/proxy_tap/)
"""
import os
import struct
import sys

out_dir = os.path.join(os.path.dirname(__file__), "corpus", "proxy_tap")

DRAIN = 0x03          # slot 3, action 0
CLOSE_FIN, CLOSE_RST = 4 << 2, (4 << 2) | (1 << 5)


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


def segments(path):
    """(flow key, client, server, client side?, payload, fin_or_rst flags) of every TCP segment
    not on port 88."""
    servers = {}
    for frame in packets(path):
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        if ip[9] != 6:
            continue
        l4 = ip[ihl:total]
        if len(l4) < 20:
            continue
        src, dst = ip[12:16], ip[16:20]
        sport, dport = struct.unpack(">HH", l4[:4])
        if 88 in (sport, dport):
            continue
        key = tuple(sorted([(src, sport), (dst, dport)]))
        flags = l4[13]
        if key not in servers:
            if flags & 0x12 == 0x12:  # SYN-ACK first: the sender is the server
                servers[key] = (src, sport)
            else:
                servers[key] = (dst, dport)
        server = servers[key]
        client = key[0] if key[1] == server else key[1]
        to_client = (src, sport) == server
        yield key, client, server, not to_client, l4[(l4[12] >> 4) * 4:], flags & 0x05


def convert(path, config, cut, drain_every):
    out = bytearray([config])
    slot_of = {}
    free = [0, 1, 2]
    lcg = 12345
    records = 0
    tds_servers = set()
    for key, client, server, from_client, payload, fin_rst in segments(path):
        if key not in slot_of:
            if not payload:
                continue
            # A connection from a TDS server (the middle server to its linked server) takes the
            # slot of the target's back-end flow, a client's the others.
            want = [2] if client[0] in tds_servers else [0, 1]
            if not any(s in free for s in want):  # busy: its oldest connection ends first
                old = min((k for k in slot_of if slot_of[k][0] in want),
                          key=lambda k: slot_of[k][1])
                out += bytes([slot_of[old][0] | CLOSE_FIN, DRAIN])
                free.append(slot_of.pop(old)[0])
            slot = next(s for s in want if s in free)
            free.remove(slot)
            slot_of[key] = (slot, records)
            tds_servers.add(server[0])
        slot = slot_of[key][0]
        action = 0 if from_client else 1
        pos = 0
        while pos < len(payload):
            n = len(payload) - pos
            if cut:
                lcg = (lcg * 1103515245 + 12345) & 0x7FFFFFFF
                n = min(n, 1 + lcg % 1500)
            n = min(n, 0xFFFF)
            out += bytes([slot | action << 2]) + struct.pack(">H", n) + payload[pos:pos + n]
            pos += n
            records += 1
            if records % drain_every == 0:
                out.append(DRAIN)
        if fin_rst and from_client:
            out += bytes([slot | (CLOSE_RST if fin_rst & 0x04 else CLOSE_FIN), DRAIN])
            free.append(slot_of.pop(key)[0])
            free.sort()
    out.append(DRAIN)
    return bytes(out)


os.makedirs(out_dir, exist_ok=True)
for p in sys.argv[1:]:
    name = os.path.splitext(os.path.basename(p))[0]
    for suffix, config, cut, drain_every in (("", 0x00, False, 1),
                                             ("-explicit-recorded", 0x1A, True, 1),
                                             ("-small-queue", 0x01, False, 4)):
        data = convert(p, config, cut, drain_every)
        if len(data) > 2:
            with open(os.path.join(out_dir, name + suffix), "wb") as f:
                f.write(data)
