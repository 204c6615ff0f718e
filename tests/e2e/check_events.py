#!/usr/bin/python3
"""Checks hopscope's JSON-lines events against a lab scenario's expectations.

    check_events.py EXPECT.json LABEL=EVENTS.jsonl [LABEL=EVENTS.jsonl ...] [--skip-programs a,b]
                    [--decrypted] [--frames-aside]

For every events file (e.g. live=... and analyze=...):
  * the set of finding rules must equal the scenario's `expected_findings`;
  * every expected login (client/server role pair) must appear with the same auth, outcome,
    anonymous flag and error number; under full or strict TLS the login is invisible by design and
    must be reported as auth "unknown", outcome "incomplete" (the mapping of
    tests/unit/golden/lab_golden_test.cpp); any other login that is not "incomplete" is unexpected;
  * the file must end with a `summary` event.
With --decrypted, the events come from a run that read inside TLS (a key log, or the proxy
terminating TLS): full and strict logins are expected as they are, and the findings are the
scenario's `expected_findings_decrypted` (those of its clear-text counterpart) where it has them.
With two or more files, their rule sets must also agree with each other, and so must their events
one by one, but for the time stamps (two capture sockets stamp the same packet a few microseconds
apart) and the order of the lines. With --frames-aside, capture frame numbers (and the display
filters made of them) are left out of that comparison too: for a bridge where several hosts
send at the same moment (a proxy forwarding what it receives, a middle server answering its
client while it acknowledges its linked server), two capture sockets may see those packets
interleaved in a different order. Prints one
line per problem naming the scenario and the events file, expected vs got; exit status 1 on any
problem.
"""
import json
import sys

# The lab's addresses (tools/lab/run): KDC .1, C .2, A (sqla) .3, B (sqlb) .4, sqlc .5, sqlx .6.
ROLE_IP = {'C': '10.77.0.2', 'A': '10.77.0.3', 'SQLA': '10.77.0.3', 'SQLB': '10.77.0.4',
           'SQLC': '10.77.0.5', 'SQLX': '10.77.0.6'}


def host(addr):
    """'10.77.0.2:40000' -> '10.77.0.2' ('[v6]:port' -> 'v6')."""
    h = addr.rsplit(':', 1)[0]
    return h[1:-1] if h.startswith('[') else h


def load(path):
    events = []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except ValueError as e:
                raise SystemExit(f'{path}:{n}: not JSON: {e}')
    return events


DECRYPTED = False  # --decrypted


def want_login(x):
    """The login hopscope must report for one expected login (golden test mapping)."""
    tls = x.get('encryption', x.get('tls', ''))
    hidden = tls in ('full', 'strict') and not DECRYPTED
    outcome = {'ok': 'success', 'failed': 'failure'}.get(x['outcome'], x['outcome'])
    return {
        'client': ROLE_IP[x['client']], 'server': ROLE_IP[x['server']],
        'auth': 'unknown' if hidden else x['auth'],
        'outcome': 'incomplete' if hidden else outcome,
        'anonymous': None if hidden else x.get('anonymous', False),
        'error': None if hidden else x.get('error', 0),
    }


def matches(w, ev):
    if host(ev.get('client', '')) != w['client'] or host(ev.get('server', '')) != w['server']:
        return False
    if ev.get('auth') != w['auth'] or ev.get('outcome') != w['outcome']:
        return False
    if w['anonymous'] is not None and ev.get('anonymous') != w['anonymous']:
        return False
    if w['error'] is not None:
        got = (ev.get('error') or {}).get('number', 0)
        if got != w['error']:
            return False
    return True


FRAMES_ASIDE = False  # --frames-aside


def untimed(ev):
    """The event without its time stamps ('ts', 'started', also inside evidence), as a string;
    with --frames-aside also without frame numbers and the display filters made of them."""
    aside = ('ts', 'started') + (('frame', 'frames', 'display_filter') if FRAMES_ASIDE else ())

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in aside}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return json.dumps(strip(ev), sort_keys=True)


def compare_events(scenario, streams):
    """Problems when the streams do not hold the same events (time stamps and order aside)."""
    problems = []
    (la, a), *rest = streams.items()
    ua = sorted(untimed(e) for e in a)
    for lb, b in rest:
        ub = sorted(untimed(e) for e in b)
        if ua == ub:
            continue
        only_a = [e for e in ua if e not in ub]
        only_b = [e for e in ub if e not in ua]
        problems.append(f'scenario {scenario}: {la} and {lb} events differ ({len(a)} vs {len(b)} '
                        f'events; {len(only_a)} only in {la}, {len(only_b)} only in {lb})')
        for label, only in ((la, only_a), (lb, only_b)):
            for e in only[:3]:
                problems.append(f'scenario {scenario}: only in {label}: {e[:400]}')
    return problems


def brief(ev):
    err = (ev.get('error') or {}).get('number')
    return (f"{ev.get('client')} -> {ev.get('server')} {ev.get('auth')} {ev.get('outcome')}"
            f"{' anonymous' if ev.get('anonymous') else ''}{f' error {err}' if err else ''}")


def check(scenario, label, expect, events, skip):
    problems = []
    where = f'scenario {scenario}, {label}'
    rules = sorted({e['rule'] for e in events if e.get('event') == 'finding'})
    want_rules = expect.get('expected_findings', [])
    if DECRYPTED:
        want_rules = expect.get('expected_findings_decrypted', want_rules)
    want_rules = sorted(set(want_rules))
    if rules != want_rules:
        problems.append(f'{where}: findings {rules}, expected {want_rules}')
    logins = [e for e in events if e.get('event') == 'login']
    used = [False] * len(logins)
    skipped = 0
    for x in expect.get('logins', []):
        if 'auth' not in x:
            continue  # a connection that never reached LOGIN7
        if x.get('program') in skip:
            skipped += 1
            continue
        w = want_login(x)
        for i, ev in enumerate(logins):
            if not used[i] and matches(w, ev):
                used[i] = True
                break
        else:
            problems.append(f"{where}: no login {x['client']}->{x['server']} {w['auth']} "
                            f"{w['outcome']} anonymous={w['anonymous']} error={w['error']}; got: "
                            + ('; '.join(brief(e) for e in logins) or 'no logins'))
    if not skipped:  # a skipped client's logins are there but not expected
        for i, ev in enumerate(logins):
            if not used[i] and ev.get('outcome') != 'incomplete':
                problems.append(f'{where}: unexpected login {brief(ev)}')
    if not events or events[-1].get('event') != 'summary':
        problems.append(f'{where}: no summary event at the end')
    return rules, problems


def main(argv):
    global DECRYPTED, FRAMES_ASIDE
    skip = set()
    files = []
    args = list(argv[1:])
    while args:
        a = args.pop(0)
        if a == '--decrypted':
            DECRYPTED = True
        elif a == '--frames-aside':
            FRAMES_ASIDE = True
        elif a == '--skip-programs':
            skip = {p for p in (args.pop(0) if args else '').split(',') if p}
        else:
            files.append(a)
    if len(files) < 2 or any('=' not in f for f in files[1:]):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(files[0], encoding='utf-8') as f:
        expect = json.load(f)
    scenario = expect.get('scenario', files[0])
    problems = []
    rule_sets = {}
    streams = {}
    for spec in files[1:]:
        label, path = spec.split('=', 1)
        streams[label] = load(path)
        rules, p = check(scenario, label, expect, streams[label], skip)
        rule_sets[label] = rules
        problems += p
    if len({tuple(r) for r in rule_sets.values()}) > 1:
        problems.append(f'scenario {scenario}: the event files disagree: '
                        + ', '.join(f'{k} {v}' for k, v in rule_sets.items()))
    if len(streams) > 1:
        problems += compare_events(scenario, streams)
    for p in problems:
        print(f'   FAIL: {p}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
