#!/usr/bin/python3
"""The lab's checks of `hopscope proxy` (tools/lab/run, proxy mode and scenario 17).

    proxy_check.py expect EXPECT.json LABEL=EVENTS.jsonl ... [--skip-programs a,b]
        tests/e2e/check_events.py with one more role, PX (the proxy host, 10.77.0.9), for the
        logins of a capture that sees connections made to or by the proxy.
    proxy_check.py same [--scenario ID] [--proxy-view] LABEL=EVENTS.jsonl LABEL=EVENTS.jsonl
        the two streams hold the same events, one by one, time stamps and order aside (the
        comparison of live and analyze in check_events.py); with --proxy-view, also frame
        numbers, display filters and capture counters aside (as for 'proxy' below).
    proxy_check.py proxy EXPECT.json PROXY.jsonl TDS.jsonl [WIRE.jsonl] [--section proxy]
                   [--skip-programs a,b] [--decrypted]
        the proxy's events (PROXY) against:
          * TDS: `hopscope analyze` of the same bytes, i.e. the bridge capture cut down to the TCP
            port 1433 packets of the client legs (those that do not involve the proxy's address).
            The events must be the same one by one, but for what a proxy cannot have: time
            stamps, capture frame numbers (and the display filters made of them) and the
            capture counters of the summary. Client ports are compared: the proxy reports the
            real client's address and the upstream it connected to, which are the client leg's.
          * EXPECT: every expected login (client/server role pair, auth, outcome, anonymous,
            error), no other login that is not incomplete, a summary at the end. The findings
            are those of TDS (checked above), and with --section the EXPECT file's
            `<section>.expected_findings` too. With `proxy_only_findings` (rules only a proxy
            terminating TLS raises) and `analyze_only_findings` (those they stand in for), both
            are left out of the comparison and the proxy's rules are TDS's with the one set
            swapped for the other. --decrypted: the proxy terminated TLS (and TDS
            was decrypted with its key log): full and strict logins are expected as they are
            (check_events.py --decrypted).
          * WIRE (optional): `hopscope analyze` of the whole client side (port 88 too). The
            findings the proxy lacks or adds relative to it are printed as a note: the proxy
            forwards and decodes TDS only, so the rules that need the KDC's answers (HS012,
            HS020, HS023, ...) cannot fire from it.
Exit status 1 on any problem (one `FAIL:` line each).
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests',
                                'e2e'))
import check_events  # noqa: E402  (tests/e2e/check_events.py)

PX = '10.77.0.9'
check_events.ROLE_IP.setdefault('PX', PX)


def args_and_skip(argv):
    skip, rest = set(), []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == '--skip-programs':
            skip = {p for p in (args.pop(0) if args else '').split(',') if p}
        elif a == '--decrypted':
            check_events.DECRYPTED = True
        elif a == '--section':
            rest.append(('section', args.pop(0) if args else ''))
        else:
            rest.append(a)
    return skip, rest


def proxy_view(ev):
    """The event as a proxy can give it: without time stamps, capture frames, display filters
    made of frames, and the capture counters of the summary."""
    def strip(x, top=False):
        if isinstance(x, dict):
            out = {}
            for k, v in x.items():
                if k in ('ts', 'started', 'frame', 'frames', 'display_filter'):
                    continue
                if top and ev.get('event') == 'summary' and k == 'counters':
                    continue
                out[k] = strip(v)
            return out
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return json.dumps(strip(ev, True), sort_keys=True)


def differ(scenario, la, a, lb, b, view):
    ua = sorted(view(e) for e in a)
    ub = sorted(view(e) for e in b)
    if ua == ub:
        return []
    only_a = [e for e in ua if e not in ub]
    only_b = [e for e in ub if e not in ua]
    out = [f'scenario {scenario}: {la} and {lb} events differ ({len(a)} vs {len(b)} events; '
           f'{len(only_a)} only in {la}, {len(only_b)} only in {lb})']
    for label, only in ((la, only_a), (lb, only_b)):
        for e in only[:4]:
            out.append(f'scenario {scenario}: only in {label}: {e[:600]}')
    return out


def without_rules(events, drop):
    """The events without the findings of the rules `drop`, the summary's count adjusted."""
    if not drop:
        return events
    kept = [e for e in events if not (e.get('event') == 'finding' and e.get('rule') in drop)]
    gone = len(events) - len(kept)
    out = []
    for e in kept:
        if e.get('event') == 'summary' and isinstance(e.get('findings'), int):
            e = dict(e, findings=e['findings'] - gone)
        out.append(e)
    return out


def rules(events):
    return sorted({e['rule'] for e in events if e.get('event') == 'finding'})


def cmd_proxy(argv):
    skip, rest = args_and_skip(argv)
    section = None
    files = []
    for a in rest:
        if isinstance(a, tuple):
            section = a[1]
        else:
            files.append(a)
    if len(files) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    with open(files[0], encoding='utf-8') as f:
        expect = json.load(f)
    scenario = expect.get('scenario', files[0])
    px = check_events.load(files[1])
    tds = check_events.load(files[2]) if files[2] != '-' else None
    problems = []
    # logins and the summary against the expectations; findings: see below
    want = dict(expect.get(section, {}) if section else expect)
    want.setdefault('scenario', scenario)
    # Rules only a proxy terminating TLS can raise, and the ones of analyze's they stand in for
    # (scenario 25: HS062 for HS002): the comparison below leaves both out.
    px_only = set(want.get('proxy_only_findings', []))
    tds_only = set(want.get('analyze_only_findings', []))
    if tds is not None:
        want['expected_findings'] = sorted((set(rules(tds)) - tds_only) | px_only)
        want['expected_findings_decrypted'] = want['expected_findings']
    _, p = check_events.check(scenario, 'proxy', want, px, skip)
    problems += p
    if tds is not None:
        problems += differ(scenario, 'proxy', without_rules(px, px_only),
                           'analyze of the same bytes', without_rules(tds, tds_only), proxy_view)
    if len(files) == 4:
        wire = rules(check_events.load(files[3]))
        got = rules(px)
        lacks = [r for r in wire if r not in got and r not in tds_only]
        adds = [r for r in got if r not in wire and r not in px_only]
        if lacks or adds:
            print(f'   note: proxy findings {got}; analyze of the client side with port 88 '
                  f'{wire}' + (f'; the proxy lacks {lacks}' if lacks else '')
                  + (f', adds {adds}' if adds else '') + ' (it sees no KDC traffic)')
    for p in problems:
        print(f'   FAIL: {p}')
    return 1 if problems else 0


def cmd_same(argv):
    streams = {}
    view = None
    scenario = '?'
    args = list(argv)
    while args:
        spec = args.pop(0)
        if spec == '--proxy-view':
            view = proxy_view
        elif spec == '--scenario':
            scenario = args.pop(0) if args else '?'
        else:
            label, path = spec.split('=', 1)
            streams[label] = check_events.load(path)
    if len(streams) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    (la, a), (lb, b) = streams.items()
    problems = (differ(scenario, la, a, lb, b, view) if view
                else check_events.compare_events(scenario, streams))
    for p in problems:
        print(f'   FAIL: {p}')
    return 1 if problems else 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[1], argv[2:]
    if cmd == 'expect':
        return check_events.main([argv[0]] + rest)
    if cmd == 'same':
        return cmd_same(rest)
    if cmd == 'proxy':
        return cmd_proxy(rest)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
