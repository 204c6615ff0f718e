#!/usr/bin/python3
"""Replays the TDS connections of a lab capture through a real `hopscope proxy`, byte for byte.

    proxy_replay.py HOPSCOPE CAPTURE.pcap WORKDIR

Every TDS connection of the capture (server port 1433) is played again over loopback, in the
capture's order: a client socket bound to the captured client's address and port (10.77.0.X is
played as a 127.x.0.X address of its own) connects to a proxy listener; the proxy connects to a stand-in server
listening on the captured server's address; each captured segment is sent by the side that sent
it and must arrive unchanged on the other side before the next one is sent; FIN and RST are
played as shutdown and reset. One proxy process carries every hop, as in a deployment where one
proxy sits in front of A and B, and writes its events (--json) and a recording (--record).

Checks, each printed as a FAIL line:
  * the bytes each side received are exactly the bytes the other side sent, FINs and resets
    included (the forwarding is byte-exact);
  * the proxy's logins, server errors and findings equal those of `hopscope analyze` on the same
    capture, time stamps, frame numbers and display filters aside (both without port 88: the
    proxy does not see the KDC);
  * `hopscope analyze` on the proxy's recording gives exactly the proxy's events, time stamps
    and frame numbers included;
  * no lab password appears in the proxy's events, console output or log.
Exit status 1 on any problem.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_events  # noqa: E402  (load, untimed)

TDS_PORT = 1433
PASSWORDS = ('Passw0rd', 'S3cret!')


# Every lab host gets its own loopback address 127.NET.0.X (10.77.0.X), and the proxy's
# listener for it 127.NET.200.X. NET differs from one run to the next, so that two runs at once
# (two build trees) do not take each other's addresses.
NET = 16 + os.getpid() % 200


def loop_addr(lab_ip):
    a = lab_ip.split('.')
    return '127.%d.%s.%s' % (NET, a[2], a[3])


def listen_addr(lab_ip):
    a = lab_ip.split('.')
    return '127.%d.200.%s' % (NET, a[3])


def read_pcap(path):
    """Yields (ts, src, sport, dst, dport, flags, seq, payload) for IPv4 TCP over Ethernet."""
    with open(path, 'rb') as f:
        data = f.read()
    magic = data[:4]
    if magic not in (b'\xd4\xc3\xb2\xa1', b'\xa1\xb2\xc3\xd4'):
        raise SystemExit(f'{path}: not a classic pcap file')
    e = '<' if magic == b'\xd4\xc3\xb2\xa1' else '>'
    linktype = struct.unpack(e + 'I', data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f'{path}: link type {linktype}, expected Ethernet')
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack(e + 'IIII', data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 14 + 20 or pkt[12:14] != b'\x08\x00':
            continue
        ip = pkt[14:]
        ihl = (ip[0] & 15) * 4
        total = struct.unpack('>H', ip[2:4])[0]
        if ip[9] != 6:
            continue
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack('>HHI', tcp[:8])
        doff = (tcp[12] >> 4) * 4
        yield (sec + usec / 1e6, src, sport, dst, dport, tcp[13], seq, bytes(tcp[doff:]))


def script(path):
    """The capture's TDS connections as an ordered list of steps."""
    steps, conns = [], {}
    for _ts, src, sport, dst, dport, flags, seq, payload in read_pcap(path):
        if TDS_PORT not in (sport, dport):
            continue
        key = (src, sport, dst, dport) if dport == TDS_PORT else (dst, dport, src, sport)
        d = 0 if dport == TDS_PORT else 1
        syn, fin, rst = flags & 2, flags & 1, flags & 4
        c = conns.get(key)
        if c is None:
            if not (syn and d == 0):
                continue  # started before the capture: not replayable
            c = conns[key] = {'id': len(conns), 'next': [None, None], 'fin': [False, False],
                              'rst': False}
            steps.append(('open', c['id'], key))
        if c['rst']:
            continue
        if syn:
            c['next'][d] = (seq + 1) & 0xffffffff
            continue
        if payload and c['next'][d] is not None:
            skip = (c['next'][d] - seq) & 0xffffffff
            if skip < len(payload):  # a retransmission may overlap what was sent
                payload = payload[skip:]
                steps.append(('data', c['id'], d, payload))
                c['next'][d] = (c['next'][d] + len(payload)) & 0xffffffff
        if rst:
            c['rst'] = True
            steps.append(('rst', c['id'], d))
        elif fin and not c['fin'][d]:
            c['fin'][d] = True
            steps.append(('fin', c['id'], d))
    return steps


def recv_exact(s, n, deadline=10.0):
    s.settimeout(deadline)
    out = b''
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def expect_end(s, reset_ok):
    """The peer's end of stream (b'') or, with reset_ok, a reset."""
    s.settimeout(10.0)
    try:
        rest = s.recv(65536)
        return rest == b''
    except ConnectionResetError:
        return reset_ok
    except socket.timeout:
        return False


def stand_in_servers(server_ips):
    """lab server ip -> a listening socket on its loopback twin."""
    servers = {}
    for lab_ip in server_ips:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((loop_addr(lab_ip), TDS_PORT))
        ls.listen(64)
        servers[lab_ip] = ls
    return servers


def replay(steps, servers, problems):
    sides = {}  # connection id -> [client socket, server socket]
    for step in steps:
        kind, cid = step[0], step[1]
        if kind == 'open':
            cip, cport, sip, _sport = step[2]
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            c.bind((loop_addr(cip), cport))
            c.connect((listen_addr(sip), TDS_PORT))
            servers[sip].settimeout(10.0)
            s, _ = servers[sip].accept()
            sides[cid] = [c, s]
            continue
        pair = sides.get(cid)
        if pair is None:
            continue
        d = step[2]
        frm, to = pair[d], pair[1 - d]
        if kind == 'data':
            frm.sendall(step[3])
            got = recv_exact(to, len(step[3]))
            if got != step[3]:
                problems.append(f'connection {cid}: {len(step[3])} bytes sent '
                                f'{"c2s" if d == 0 else "s2c"}, {len(got)} arrived'
                                + ('' if len(got) != len(step[3]) else ', and they differ'))
                return
        elif kind == 'fin':
            frm.shutdown(socket.SHUT_WR)
            if not expect_end(to, False):
                problems.append(f'connection {cid}: FIN {"c2s" if d == 0 else "s2c"} was not '
                                'passed on')
            time.sleep(0.02)  # let the proxy hand the close on before the next step
        elif kind == 'rst':
            frm.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            frm.close()
            if not expect_end(to, True):
                problems.append(f'connection {cid}: reset was not passed on')
            to.close()
            del sides[cid]
            time.sleep(0.02)
    for pair in sides.values():
        for s in pair:
            s.close()
    for ls in servers.values():
        ls.close()


def logins_counted(metrics):
    """The sum of hopscope_logins_total over its labels."""
    return sum(int(float(line.rsplit(' ', 1)[1])) for line in metrics.splitlines()
               if line.startswith('hopscope_logins_total{'))


def fetch_metrics(port):
    """GET /metrics from the proxy's Prometheus endpoint."""
    with socket.create_connection(('127.0.0.1', port), 5) as s:
        s.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
        data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    return body.decode() if head.startswith(b'HTTP/1.1 200') else ''


def comparable(events, keep_frames):
    """Login, KDC, server-error and finding events as strings, in a sorted list."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items()
                    if k not in ('ts', 'started', 'display_filter')
                    and (keep_frames or k not in ('frame', 'first_frame', 'last_frame',
                                                  'reply_frame'))}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    out = []
    for ev in events:
        if ev.get('event') == 'summary':
            continue
        out.append(json.dumps(ev if keep_frames else strip(ev), sort_keys=True))
    return sorted(out)


def diff(label_a, a, label_b, b, problems, scenario):
    if a == b:
        return
    only_a = [x for x in a if x not in b]
    only_b = [x for x in b if x not in a]
    problems.append(f'{scenario}: {label_a} and {label_b} differ ({len(a)} vs {len(b)} events)')
    for x in only_a[:3]:
        problems.append(f'  only in {label_a}: {x[:400]}')
    for x in only_b[:3]:
        problems.append(f'  only in {label_b}: {x[:400]}')


def main(argv):
    if len(argv) != 4:
        print(__doc__)
        return 2
    hs, pcap, work = argv[1], argv[2], argv[3]
    os.makedirs(work, exist_ok=True)
    scenario = os.path.basename(pcap)
    problems = []
    steps = script(pcap)
    server_ips = sorted({s[2][2] for s in steps if s[0] == 'open'})
    if not server_ips:
        print(f'FAIL: {scenario}: no TDS connection to replay')
        return 1
    events_path = os.path.join(work, 'proxy.jsonl')
    record_path = os.path.join(work, 'proxy.pcapng')
    log_path = os.path.join(work, 'proxy.log')
    out_path = os.path.join(work, 'proxy.out')
    for p in (events_path, record_path, log_path):
        if os.path.exists(p):
            os.unlink(p)
    # What analyze finds in the capture: the proxy's events are compared with it below, and
    # /metrics is awaited until it counts as many logins.
    analyze = subprocess.run([hs, 'analyze', '-q', '--kerberos-port', '9', '--json', '-', pcap],
                             capture_output=True, text=True)
    if analyze.returncode != 0:
        problems.append(f'{scenario}: analyze exited {analyze.returncode}: {analyze.stderr}')
    analyze_events = [json.loads(line) for line in analyze.stdout.splitlines() if line.strip()]
    expected_logins = sum(1 for e in analyze_events if e.get('event') == 'login')
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    metrics_port = probe.getsockname()[1]
    probe.close()
    cmd = [hs, 'proxy', '--threads', '2', '--json', events_path, '--record', record_path,
           '--log-file', log_path, '--log-level', 'debug', '--grace', '5',
           '--metrics', f'127.0.0.1:{metrics_port}']
    for ip in server_ips:
        cmd += ['--listen', f'{listen_addr(ip)}:{TDS_PORT}',
                '--upstream', f'{loop_addr(ip)}:{TDS_PORT}']
    servers = stand_in_servers(server_ips)
    with open(out_path, 'w') as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(400):  # every listener up (the log says so)?
            if proc.poll() is not None:
                break
            if os.path.exists(log_path) and \
                    open(log_path).read().count('listening on') == len(server_ips):
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            print(f'FAIL: {scenario}: the proxy exited ({proc.returncode}): '
                  + open(out_path).read()[-2000:])
            return 1
        replay(steps, servers, problems)
        # The proxy analyses at idle priority, behind the forwarding: on a busy machine (the
        # other tests of a parallel ctest) it can lag by more than any fixed pause. Wait until
        # /metrics counts every login analyze found, for 20 s at most (a shortfall then fails
        # below).
        deadline = time.time() + 20
        while True:
            metrics = fetch_metrics(metrics_port)
            if logins_counted(metrics) >= expected_logins or time.time() > deadline:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = 'killed'
    if rc != 0:
        problems.append(f'{scenario}: the proxy exited with {rc} after SIGTERM')

    with open(events_path) as f:
        raw = f.read()
    proxy_events = [json.loads(line.replace('127.%d.' % NET, '10.77.'))
                    for line in raw.splitlines() if line.strip()]
    if not proxy_events or proxy_events[-1].get('event') != 'summary':
        problems.append(f'{scenario}: the proxy\'s events do not end with a summary')
    diff('proxy', comparable(proxy_events, False), 'analyze', comparable(analyze_events, False),
         problems, scenario)
    # The comparison must be able to fail: one event less is a difference.
    a = comparable(analyze_events, False)
    if a:
        probe = []
        diff('proxy', comparable(proxy_events, False), 'analyze', a[1:], probe, scenario)
        if not probe:
            problems.append(f'{scenario}: the comparison did not notice a missing event')
    logins = sum(1 for e in proxy_events if e.get('event') == 'login')
    counted = logins_counted(metrics)
    if counted != logins:
        problems.append(f'{scenario}: /metrics counts {counted} logins, the events {logins}')
    tds_conns = sum(1 for s in steps if s[0] == 'open')
    if f'hopscope_proxy_connections_total {tds_conns}' not in metrics:
        problems.append(f'{scenario}: /metrics does not count {tds_conns} connections')
    if logins == 0:
        problems.append(f'{scenario}: the proxy reported no login')

    rec = subprocess.run([hs, 'analyze', '-q', '--json', '-', record_path],
                         capture_output=True, text=True)
    if rec.returncode != 0:
        problems.append(f'{scenario}: analyze of the recording exited {rec.returncode}: '
                        f'{rec.stderr}')
    rec_events = [json.loads(line) for line in rec.stdout.splitlines() if line.strip()]
    proxy_raw = [json.loads(line) for line in raw.splitlines() if line.strip()]
    diff('proxy', comparable(proxy_raw, True), 'recording', comparable(rec_events, True),
         problems, scenario)

    # A TLS scenario's key log (the lab server's) decrypts the proxy's recording as it does the
    # original capture: every login read, the same logins as analyze of the capture with it.
    keylog = pcap[:-len('.pcap')] + '.keylog'
    if os.path.exists(keylog):
        def logins_with_keys(path):
            # Like the proxy, without the capture's KDC traffic (port 9 is never used).
            r = subprocess.run([hs, 'analyze', '-q', '--kerberos-port', '9', '--json', '-',
                                '--tls-keylog', keylog, path], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f'{scenario}: analyze --tls-keylog {path} exited {r.returncode}: '
                                f'{r.stderr}')
            evs = [json.loads(line.replace('127.%d.' % NET, '10.77.'))
                   for line in r.stdout.splitlines() if line.strip()]
            return [e for e in evs if e.get('event') == 'login']
        from_rec = logins_with_keys(record_path)
        from_cap = logins_with_keys(pcap)
        unknown = [e for e in from_rec if e.get('auth') == 'unknown']
        if not from_rec or unknown:
            problems.append(f'{scenario}: the recording decrypted with the key log still has '
                            f'{len(unknown)} unknown logins of {len(from_rec)}')
        diff('recording+keylog', comparable(from_rec, False), 'capture+keylog',
             comparable(from_cap, False), problems, scenario)
        decrypted = len(from_rec) - len(unknown)
    else:
        decrypted = None

    for path in (events_path, out_path, log_path):
        text = open(path, errors='replace').read()
        for pw in PASSWORDS:
            if pw in text:
                problems.append(f'{scenario}: a lab password appears in {os.path.basename(path)}')
    for p in problems:
        print('FAIL: ' + p)
    if not problems:
        print(f'ok: {scenario}: {len(steps)} steps, {logins} logins, proxy = analyze = recording'
              + ('' if decrypted is None else
                 f'; {decrypted} logins read in the recording with the key log'))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
