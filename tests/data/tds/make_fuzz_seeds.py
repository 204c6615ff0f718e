#!/usr/bin/env python3
"""Writes the seed corpora of the TDS/TLS/conversation fuzz targets from the fixtures here.

    python3 tests/data/tds/make_fuzz_seeds.py     (from the repository root)

Seeds: the real TCP payloads of the two SQL Server captures (*.segments), the real OpenSSL
handshakes (tls/), the MS-TDS 4.1 PRELOGIN sample, and hand-built LOGIN7s (MS-TDS 2.2.6.4 layout)
with SSPI, FeatureExt/FEDAUTH and a big-endian TDSVersion.
"""
import os
import shutil
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '..', 'fuzz', 'corpus')


def segments(name):
    out = []
    for line in open(os.path.join(HERE, name)):
        frame, ts, stream, d, hexs = line.split()
        out.append((int(stream), d, bytes.fromhex(hexs)))
    return out


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def ucs2(s):
    return s.encode('utf-16-le')


def login7(version=0x74000004, flags2=0x03, user='sa', sspi=b'', fext=b''):
    fixed = 94
    var = b''
    hdr = b''

    def field(data, count):
        nonlocal var, hdr
        hdr += struct.pack('<HH', fixed + len(var), count)
        var += data
    field(ucs2('WS01'), 4)
    field(ucs2(user), len(user))
    field(bytes(((b << 4 | b >> 4) & 0xFF) ^ 0xA5 for b in ucs2('pw')), 2)
    field(ucs2('app'), 3)
    field(ucs2('sql1'), 4)
    if fext:
        hdr += struct.pack('<HH', fixed + len(var), 4)
        ptr = len(var)
        var += b'\0\0\0\0'
    else:
        hdr += struct.pack('<HH', 0, 0)
    field(ucs2('ODBC'), 4)
    field(b'', 0)
    field(b'', 0)
    hdr += bytes.fromhex('000c294c8492')
    field(sspi, len(sspi))
    field(b'', 0)
    field(b'', 0)
    hdr += struct.pack('<I', 0)
    flags3 = 0
    if fext:
        off = fixed + len(var)
        var = var[:ptr] + struct.pack('<I', off) + var[ptr + 4:] + fext + b'\xff'
        flags3 = 0x10
    body = struct.pack('<IIIIIIBBBBiI', fixed + len(var), version, 4096, 0x07000000, 1234, 0,
                       0xE0, flags2, 0, flags3, -120, 0x409)
    return body + hdr + var


def main():
    streams = {}
    for fx in ('tds7_sqlauth_login_prelogin_loginack_arkime.segments',
               'tds_sqlbatch_rpc_responses_midstream_ndpi.segments'):
        segs = segments(fx)
        tag = fx.split('_')[0] + fx.split('_')[1]
        for stream, d, data in segs:
            streams.setdefault((tag, stream, d), b'')
            streams[(tag, stream, d)] += data
        # conversation seeds: [ctl][len BE16][bytes] per segment
        by_stream = {}
        for stream, d, data in segs:
            ctl = 0 if d == 'c2s' else 1
            by_stream.setdefault(stream, b'')
            by_stream[stream] += bytes([ctl]) + struct.pack('>H', len(data)) + data
        for stream, blob in by_stream.items():
            write('conversation', '%s_%d' % (tag, stream), blob)
            write('conversation', '%s_%d_bytewise' % (tag, stream),
                  bytes([blob[0] | 0x84]) + blob[1:])
        for stream, d, data in segs:
            if data[0] == 0x12 or (data[0] == 0x04 and b'\xff' in data[8:40] and stream == 0
                                   and fx.startswith('tds7') and len(data) < 60):
                write('prelogin', '%s_%d_%s' % (tag, stream, d), data[8:])
            if data[0] == 0x10:
                write('login7', '%s_%d' % (tag, stream), data[8:])
    for (tag, stream, d), data in streams.items():
        # mode byte: bit0 direction, bit1 synced, rest chunk size
        mode = (1 if d == 's2c' else 0) | 2 | (3 << 2)
        write('tds_packet', '%s_%d_%s' % (tag, stream, d), bytes([mode]) + data)
        write('tds_packet', '%s_%d_%s_late' % (tag, stream, d), bytes([mode & ~2]) + data[5:])
    # MS-TDS 4.1 PRELOGIN sample (header stripped)
    write('prelogin', 'mstds_4_1', bytes.fromhex(
        '00001A000601002000010200210001030022000404002600'
        '01FF090000000000010 0B80D000001'.replace(' ', '')))
    write('login7', 'sspi_raw_krb5', login7(flags2=0x83, user='',
                                            sspi=bytes.fromhex('6082001006092a864886f712010202'
                                                               '01006e0a0102030405060708090a')))
    write('login7', 'be_version_ntlm', login7(version=0x01000071, flags2=0x83, user='',
                                              sspi=b'NTLMSSP\x00\x01\x00\x00\x00\x07\x82\x08\xa2'))
    write('login7', 'fedauth', login7(user='', fext=bytes.fromhex('020200000005020a0100000001')))
    for name in ('tls13.c2s', 'tls13.s2c', 'tls12.c2s', 'tls12.s2c'):
        data = open(os.path.join(HERE, 'tls', name), 'rb').read()
        write('tls', name.replace('.', '_'), data)
        write('tds_packet', 'tls_' + name.replace('.', '_'), bytes([2 | (1 if 's2c' in name else 0)]) + data)
    # MARS: MC-SMP 4.3 sample (DATA SID 5 with a SQL batch) between a SYN and a FIN.
    data = bytes.fromhex('5308050060000000010000000400000001010050000001001600000012000000'
                         '0200000000000000000001000000530045005400200051005500' +
                         '4f00540045004400' + '5f00490044004500' + '4e00540049004600' +
                         '4900450052002000' + '4f0046004600')
    syn = bytes.fromhex('53010500100000000000000004000000')
    fin = bytes.fromhex('53040500100000000200000004000000')
    write('conversation', 'mars_mc_smp_4_3',
          b''.join(b'\x00' + struct.pack('>H', len(x)) + x for x in (syn, data, fin)))
    c = open(os.path.join(HERE, 'tls', 'tls13.c2s'), 'rb').read()
    s = open(os.path.join(HERE, 'tls', 'tls13.s2c'), 'rb').read()
    write('conversation', 'strict_tls13', b'\x00' + struct.pack('>H', len(c)) + c +
          b'\x01' + struct.pack('>H', len(s)) + s)

    # The frozen lab captures (lab/), one seed per TDS connection; needs tshark.
    if shutil.which('tshark'):
        for name in ('1-ntlm-single-hop', '2-kerberos-single-hop', '12a-ntlm-tls-login-only'):
            out = subprocess.run(['tshark', '-r', os.path.join(HERE, 'lab', name + '.pcap'),
                                  '-Y', 'tcp.port==1433 && tcp.len>0', '-T', 'fields',
                                  '-e', 'tcp.stream', '-e', 'tcp.srcport', '-e', 'tcp.payload'],
                                 capture_output=True, text=True, check=True).stdout
            conns = {}
            for line in out.splitlines():
                stream, port, hexs = line.split('\t')
                data = bytes.fromhex(hexs)
                ctl = 1 if port == '1433' else 0
                conns.setdefault(stream, b'')
                conns[stream] += bytes([ctl]) + struct.pack('>H', len(data)) + data
            for stream, blob in sorted(conns.items())[:2]:
                write('conversation', 'lab_%s_%s' % (name.split('-')[0], stream), blob)


if __name__ == '__main__':
    main()
