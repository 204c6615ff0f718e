#!/usr/bin/python3
"""Extracts real TDS messages from the committed lab captures into hex fixtures for test_lab.

tshark is only the reference reader here (`-z follow,tcp,raw` gives each TCP stream's bytes per
direction); the TDS packets are then split and joined to messages (up to EOM) by this script.
Run from anywhere:  tools/lab/test/data/extract.py   (rewrites the *.hex files next to it)
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CAPS = os.path.join(HERE, '..', '..', '..', '..', 'captures', 'lab')


def streams(pcap):
    out = subprocess.run(['tshark', '-r', pcap, '-T', 'fields', '-e', 'tcp.stream', '-Y', 'tcp.port==1433'],
                         capture_output=True, text=True, check=True).stdout.split()
    for s in sorted(set(int(x) for x in out)):
        text = subprocess.run(['tshark', '-r', pcap, '-q', '-z', f'follow,tcp,raw,{s}'],
                              capture_output=True, text=True, check=True).stdout
        node0 = re.search(r'Node 0: ([\d.]+):(\d+)', text).groups()
        data = {0: b'', 1: b''}
        for line in text.splitlines():
            m = re.fullmatch(r'(\t?)([0-9a-f]+)', line)
            if m:
                data[1 if m.group(1) else 0] += bytes.fromhex(m.group(2))
        client_is_0 = node0[1] != '1433'
        c2s = data[0] if client_is_0 else data[1]
        s2c = data[1] if client_is_0 else data[0]
        client_ip = node0[0] if client_is_0 else None
        yield s, client_ip, messages(c2s), messages(s2c)


def messages(buf):
    """TDS messages of one direction; stops at the first non-TDS byte (TLS records)."""
    out, cur, typ, pos = [], b'', None, 0
    while pos + 8 <= len(buf):
        t, status, length = buf[pos], buf[pos + 1], int.from_bytes(buf[pos + 2:pos + 4], 'big')
        if t not in (0x01, 0x04, 0x10, 0x11, 0x12) or length < 8 or pos + length > len(buf):
            break
        if typ is None:
            typ = t
        cur += buf[pos + 8:pos + length]
        pos += length
        if status & 1:
            out.append((typ, cur))
            cur, typ = b'', None
    return out


def pick(pcap, client_ip, direction, ptype, index):
    found = []
    for _, cip, c2s, s2c in streams(os.path.join(CAPS, pcap)):
        if cip != client_ip:
            continue
        for t, payload in (c2s if direction == 'c2s' else s2c):
            if t == ptype:
                found.append(payload)
    return found[index]


FIXTURES = {
    # name: (capture, client ip, direction, packet type, n-th such message)
    'login7_freetds_ntlm': ('1-ntlm-single-hop.pcap', '10.77.0.2', 'c2s', 0x10, 0),
    'sspi_freetds_ntlmv2_authenticate': ('1-ntlm-single-hop.pcap', '10.77.0.2', 'c2s', 0x11, 0),
    'login7_impacket_ntlm': ('1-ntlm-single-hop.pcap', '10.77.0.2', 'c2s', 0x10, 3),
    'sspi_impacket_ntlmv2_authenticate': ('1-ntlm-single-hop.pcap', '10.77.0.2', 'c2s', 0x11, 3),
    'sspi_impacket_anonymous_authenticate': ('1-ntlm-single-hop.pcap', '10.77.0.2', 'c2s', 0x11, 4),
    'sspi_tedious_authenticate': ('1-ntlm-single-hop.pcap', '10.77.0.2', 'c2s', 0x11, 5),
    'login7_impacket_krb_spnego': ('2-kerberos-single-hop.pcap', '10.77.0.2', 'c2s', 0x10, 1),
    'login7_freetds_sql': ('3-sql-auth.pcap', '10.77.0.2', 'c2s', 0x10, 0),
    'reply_login_ok_sql': ('3-sql-auth.pcap', '10.77.0.2', 's2c', 0x04, 1),
    'login7_freetds_krb_deleg': ('4-double-hop-delegation.pcap', '10.77.0.2', 'c2s', 0x10, 0),
    'login7_a_to_b_krb': ('4-double-hop-delegation.pcap', '10.77.0.3', 'c2s', 0x10, 0),
    'sspi_a_to_b_anonymous_authenticate': ('5-double-hop-ntlm-anonymous.pcap', '10.77.0.3', 'c2s', 0x11, 0),
    'reply_b_anonymous_18456': ('5-double-hop-ntlm-anonymous.pcap', '10.77.0.3', 's2c', 0x04, 2),
    'reply_a_relayed_18456_7303': ('5-double-hop-ntlm-anonymous.pcap', '10.77.0.2', 's2c', 0x04, 3),
}

if __name__ == '__main__':
    for name, spec in FIXTURES.items():
        data = pick(*spec)
        with open(os.path.join(HERE, name + '.hex'), 'w') as f:
            f.write(f'# {spec[0]}: {spec[2]} TDS type 0x{spec[3]:02x} #{spec[4]} of {spec[1]}, payload without headers\n')
            for i in range(0, len(data), 32):
                f.write(data[i:i + 32].hex() + '\n')
        print(f'{name}: {len(data)} bytes', file=sys.stderr)
