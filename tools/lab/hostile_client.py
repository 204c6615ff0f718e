#!/usr/bin/python3
"""Lab robustness client: connects N times to a lab server and sends hostile bytes - random
garbage, or a PRELOGIN followed by a real message (from tools/lab/test/data/*.hex, taken from the
lab captures) with random bytes changed or cut short, as LOGIN7, SSPI or SQL batch packets.

usage: hostile_client.py HOST COUNT FIXTURE.hex...      (seeded: the same run every time)
"""
import random
import socket
import struct
import sys

random.seed(7)
host, count = sys.argv[1], int(sys.argv[2])
base = [bytes.fromhex(''.join(x.strip() for x in open(f) if not x.startswith('#'))) for f in sys.argv[3:]]


def pkt(t, payload):
    return struct.pack('>BBHHBB', t, 1, len(payload) + 8, 0, 1, 0) + payload


# a FreeTDS PRELOGIN (encryption NOT_SUP)
pre = bytes.fromhex('000015000601001b000102001c000103001d0000ff1000107a00000200')
sent = 0
for i in range(count):
    try:
        s = socket.create_connection((host, 1433), timeout=3)
    except OSError as e:
        print(f'connect {i} failed: {e}')
        sys.exit(1)
    try:
        mode = i % 4
        if mode == 0:
            s.sendall(bytes(random.randrange(256) for _ in range(random.randint(1, 300))))
        else:
            s.sendall(pkt(0x12, pre))
            s.recv(4096)
            b = bytearray(random.choice(base))
            for _ in range(random.randint(1, 8)):
                b[random.randrange(len(b))] = random.randrange(256)
            if mode == 2:
                b = b[:random.randint(0, len(b))]
            s.sendall(pkt(random.choice([0x10, 0x10, 0x11, 0x01]), bytes(b)))
            try:
                s.recv(4096)
            except OSError:
                pass
        sent += 1
    except OSError:
        pass
    finally:
        s.close()
print('sent', sent)
