#!/usr/bin/env python3
"""Seeds for fuzz_proxy_config: the commented example docs/hopscope-proxy.toml and variants of it
(transparent, TPROXY, IPv6, TLS termination, every option, and files each refused for one
reason). Standard library only. Usage:
  tests/fuzz/make_proxy_config_seeds.py  (writes tests/fuzz/corpus/proxy_config/)
"""
import os

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "corpus", "proxy_config")
with open(os.path.join(here, "..", "..", "docs", "hopscope-proxy.toml")) as f:
    example = f.read()

seeds = {
    "example": example,
    "transparent": '[proxy]\nlisten = ["0.0.0.0:15433"]\ntransparent = true\n',
    "tproxy": '[proxy]\nlisten = ["0.0.0.0:15433"]\ntransparent = true\ntproxy = true\n'
              'splice = true\nthreads = 4\n',
    "ipv6": '[proxy]\nlisten = ["[::]:15433", "[fe80::1]:15434"]\n'
            'upstream = ["[2001:db8::1]:1433", "sqlb:1433"]\n',
    "tls-terminate": '[proxy]\nlisten = ["127.0.0.1:15433"]\nupstream = ["sqla:1433"]\n'
                     'tls-terminate = true\ntls-cert = "/etc/hopscope/sqla.pem"\n'
                     'tls-key = "/etc/hopscope/sqla.key"\nupstream-ca = "/etc/ssl/ca.pem"\n'
                     'upstream-verify = true\ntls-keylog = "/var/lib/hopscope/keys.log"\n',
    "every-option": '[proxy]\nlisten = ["10.0.0.9:15433", "10.0.0.9:15434"]\n'
                    'upstream = ["sqla.corp.example:1433", "sqlb.corp.example:1433"]\n'
                    'threads = 2\nmax-connections = 100\nconnect-timeout = 0.5\n'
                    'idle-timeout = 0\ngrace = 2.5\nbuffer-size = 4096\ntap-queue-bytes = 8192\n'
                    'name = ["proxy.corp.example", "sqlproxy"]\njson = "-"\nquiet = true\n'
                    'log-file = "/tmp/x.log"\nlog-level = "debug"\nlog-max-bytes = 1048576\n'
                    'log-keep = 3\nrecord = "/tmp/x.pcapng"\nrecord-max-bytes = 1000000\n'
                    'record-keep = 2\nrecord-upstream-leg = true\nmetrics = "127.0.0.1:9433"\n'
                    'metrics-any-address = false\nkeytab = ["/etc/sqla.keytab"]\n',
    "multiline-array": '[proxy]\nlisten = [\n  "127.0.0.1:1",\n  "127.0.0.1:2",\n]\n'
                       'upstream = [\'a:1\',\n \'b:2\']\n',
    "ini-style": '; comment\n[proxy]\nlisten=127.0.0.1:1 127.0.0.1:2\nupstream=a:1,b:2\n'
                 'transparent\n',
    "default-section": 'listen = ["127.0.0.1:1"]\n[default]\nversion = false\n[proxy]\n'
                       'upstream = ["a:1"]\n',
    "other-sections": '[analyze]\ntds-port = [1433, 14330]\n[live]\ninterface = "eth0"\n'
                      '[proxy]\nlisten = ["127.0.0.1:1"]\nupstream = ["a:1"]\n',
    "unknown-key": '[proxy]\nlisten = ["127.0.0.1:1"]\nupstream = ["a:1"]\nlisten-on = "x"\n',
    "pairing": '[proxy]\nlisten = ["127.0.0.1:1", "127.0.0.1:2"]\nupstream = ["a:1"]\n',
    "transparent-upstream": '[proxy]\nlisten = ["127.0.0.1:1"]\nupstream = ["a:1"]\n'
                            'transparent = true\n',
    "bad-host-port": '[proxy]\nlisten = ["[::1"]\nupstream = ["a:65536"]\n',
    "bad-numbers": '[proxy]\nlisten = ["127.0.0.1:1"]\nupstream = ["a:1"]\nthreads = -1\n'
                   'buffer-size = 1e9\nidle-timeout = inf\nconnect-timeout = nan\n',
    # Each time "nan": CLI11's range checks let it through; proxy_options refuses it.
    "nan-times": '[proxy]\nlisten = ["127.0.0.1:1"]\nupstream = ["a:1"]\nconnect-timeout = nan\n'
                 'idle-timeout = nan\ngrace = nan\n',
    "tls-without-terminate": '[proxy]\nlisten = ["127.0.0.1:1"]\nupstream = ["a:1"]\n'
                             'tls-cert = "c.pem"\n',
    "nested": '[proxy.proxy]\nlisten = ["x:1"]\n[[proxy]]\nupstream = ["a:1"]\n[proxy]\n'
              'proxy.listen = ["127.0.0.1:1"]\n',
    "quoting": '[proxy]\n"listen" = ["127.0.0.1:1"]\n\'upstream\' = """a:1"""\n'
               'json = \'/tmp/a "b"\' # comment\n',
}

os.makedirs(out_dir, exist_ok=True)
for name, text in seeds.items():
    with open(os.path.join(out_dir, name + ".toml"), "w") as f:
        f.write(text)
