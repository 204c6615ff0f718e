#!/usr/bin/python3
"""Makes the derived lab captures (the `x` scenarios of README.md) from the recorded ones.

    derive.py [DIR]        (DIR: captures/lab, the default)

Each derived capture is made of the packets of lab captures, byte for byte, with only their
time stamps moved (and, for a connection taken from another scenario, its addresses): it shows a
timing or a client behaviour that the lab's own middle server does not produce, with real
clients' bytes. The keytab of the capture the packets come from decrypts them.

  4x  scenario 4's first double hop, A's Kerberos request for sqlb and its login to B moved into
      the time between C's LOGIN7 and A's LOGINACK to C: A checks the linked server before it
      answers C's login (the second session of scenario 4 is left out).
  6x  scenario 2's Kerberos logins without delegation from C to sqla, and, just after the first
      one, A opening a connection to B that it closes after PRELOGIN without a LOGIN7 (FreeTDS
      that has no Kerberos credential for B: scenario 8's connection to sqlx, moved from C to A
      and from sqlx to B): what "Cannot generate SSPI context" looks like on the wire.
"""
import os
import struct
import sys

A, B, C, SQLX = (bytes([10, 77, 0, n]) for n in (3, 4, 2, 6))


def read(path):
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:4] == b'\xd4\xc3\xb2\xa1', f'{path}: not a little-endian microsecond pcap'
    header, packets, off = data[:24], [], 24
    while off < len(data):
        sec, usec, incl, orig = struct.unpack_from('<IIII', data, off)
        packets.append([sec * 1_000_000 + usec, orig, bytearray(data[off + 16:off + 16 + incl])])
        off += 16 + incl
    return header, packets


def write(path, header, packets):
    packets = sorted(packets, key=lambda p: p[0])  # stable: same-time packets keep their order
    with open(path, 'wb') as f:
        f.write(header)
        for ts, orig, frame in packets:
            f.write(struct.pack('<IIII', ts // 1_000_000, ts % 1_000_000, len(frame), orig))
            f.write(frame)


def tcp_of(frame):
    """(src ip, src port, dst ip, dst port) of an Ethernet/IPv4/TCP frame, or None."""
    if len(frame) < 54 or frame[12:14] != b'\x08\x00' or frame[23] != 6:
        return None
    ihl = (frame[14] & 0x0F) * 4
    sport, dport = struct.unpack_from('>HH', frame, 14 + ihl)
    return bytes(frame[26:30]), sport, bytes(frame[30:34]), dport


def in_flow(frame, host, port):
    t = tcp_of(frame)
    return t is not None and ((t[0], t[1]) == (host, port) or (t[2], t[3]) == (host, port))


def checksum(data):
    if len(data) % 2:
        data += b'\x00'
    s = sum(struct.unpack(f'>{len(data) // 2}H', data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def readdress(frame, mapping, macs):
    """Replaces IPv4 addresses (and the MACs that go with them), fixes both checksums."""
    ip = 14
    ihl = (frame[ip] & 0x0F) * 4
    src, dst = bytes(frame[ip + 12:ip + 16]), bytes(frame[ip + 16:ip + 20])
    new_src, new_dst = mapping.get(src, src), mapping.get(dst, dst)
    frame[6:12], frame[0:6] = macs.get(new_src, frame[6:12]), macs.get(new_dst, frame[0:6])
    frame[ip + 12:ip + 16], frame[ip + 16:ip + 20] = new_src, new_dst
    frame[ip + 10:ip + 12] = b'\x00\x00'
    frame[ip + 10:ip + 12] = struct.pack('>H', checksum(bytes(frame[ip:ip + ihl])))
    total = struct.unpack_from('>H', frame, ip + 2)[0]
    seg = ip + ihl
    frame[seg + 16:seg + 18] = b'\x00\x00'
    pseudo = new_src + new_dst + struct.pack('>BBH', 0, 6, total - ihl)
    frame[seg + 16:seg + 18] = struct.pack('>H', checksum(pseudo + bytes(frame[seg:ip + total])))


def mac_of(packets, host):
    for _, _, frame in packets:
        t = tcp_of(frame)
        if t and t[0] == host:
            return bytes(frame[6:12])
    raise SystemExit(f'no packet from {host}')


def first_time(packets, pred):
    return next(p[0] for p in packets if pred(p[2]))


def derive_4x(d):
    header, pk = read(os.path.join(d, '4-double-hop-delegation.pcap'))
    # The first session: everything before C's second connection to sqla (port 36880).
    end = first_time(pk, lambda f: in_flow(f, C, 36880))
    pk = [p for p in pk if p[0] < end]
    moved = [p for p in pk if in_flow(p[2], A, 40618) or in_flow(p[2], A, 52950)]
    login7 = next(p[0] for p in pk if in_flow(p[2], C, 36868) and len(p[2]) > 500)
    delta = (login7 + 1500) - moved[0][0]  # A starts 1.5 ms after C's LOGIN7
    for p in moved:
        p[0] += delta
    loginack = next(p[0] for p in pk if in_flow(p[2], C, 36868) and tcp_of(p[2])[0] == A and
                    len(p[2]) > 200)
    assert max(p[0] for p in moved) < loginack, 'A must be done before it answers C'
    write(os.path.join(d, '4x-double-hop-delegation-checked-before-loginack.pcap'), header, pk)


def derive_6x(d):
    header, pk = read(os.path.join(d, '2-kerberos-single-hop.pcap'))
    _, pk8 = read(os.path.join(d, '8-spn-missing.pcap'))
    conn = [p for p in pk8 if in_flow(p[2], C, 49372)]  # FreeTDS to sqlx: PRELOGIN, FIN
    macs = {A: mac_of(pk, A), B: mac_of(pk8, SQLX)}
    for p in conn:
        readdress(p[2], {C: A, SQLX: B}, macs)
    # A's connection opens 0.2 ms after its LOGINACK to C's first login (port 41036).
    loginack = next(p[0] for p in pk if in_flow(p[2], C, 41036) and tcp_of(p[2])[0] == A and
                    len(p[2]) > 200)
    delta = loginack + 200 - conn[0][0]
    for p in conn:
        p[0] += delta
    write(os.path.join(d, '6x-double-hop-no-delegation-no-login7.pcap'), header, pk + conn)


if __name__ == '__main__':
    here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    derive_4x(here)
    derive_6x(here)
