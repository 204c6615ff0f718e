import ssl, sys
def run(tls13, out):
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname=False; cctx.verify_mode=ssl.CERT_NONE
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain('c.pem','k.pem')
    if not tls13:
        cctx.maximum_version = ssl.TLSVersion.TLSv1_2
    cctx.set_alpn_protocols(['tds/8.0']); sctx.set_alpn_protocols(['tds/8.0'])
    ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = cctx.wrap_bio(ci, co, server_hostname='sqlb.lab.test'); s = sctx.wrap_bio(si, so, server_side=True)
    c2s=b''; s2c=b''
    for _ in range(6):
        for o in (c, s):
            try: o.do_handshake()
            except ssl.SSLWantReadError: pass
        d = co.read(); c2s += d; si.write(d)
        d = so.read(); s2c += d; ci.write(d)
    c.write(b'x'*100); d=co.read(); c2s+=d
    open(out+'.c2s','wb').write(c2s); open(out+'.s2c','wb').write(s2c)
    print(out, len(c2s), len(s2c), c.version(), c.cipher(), c.selected_alpn_protocol())
run(True, 'tls13'); run(False, 'tls12')
