#!/usr/bin/env python3
"""Whole Kerberos messages for fuzz_kerberos_enc, whose key source returns the cipher text as the
plaintext: real AP-REQs, an AS-REP and a TGS-REP from tests/fuzz/corpus/kerberos/ (lab captures)
with their cipher texts replaced by the decrypted lab plaintexts of tests/fuzz/corpus/kerberos_enc/
(tickets, authenticators, the KRB-CRED in the GSS checksum, EncKDCRepParts), so that
decrypt_ap_req and decrypt_kdc_rep get past the decryption. Standard library only. Usage:
  tests/fuzz/make_kerberos_enc_seeds.py  (writes tests/fuzz/corpus/kerberos_enc/*_msg_*)
"""
import os
import struct

corpus = os.path.join(os.path.dirname(__file__), "corpus")


def read(name):
    with open(os.path.join(corpus, name), "rb") as f:
        return f.read()


def parse(b):  # DER: [tag, children or bytes] per element (one-byte tags, as in Kerberos)
    out, off = [], 0
    while off < len(b):
        tag, n = b[off], b[off + 1]
        off += 2
        if n & 0x80:
            n, off = int.from_bytes(b[off:off + (n & 0x7F)], "big"), off + (n & 0x7F)
        v = b[off:off + n]
        out.append([tag, parse(v) if tag & 0x20 else v])
        off += n
    return out


def enc(nodes):
    r = b""
    for tag, v in nodes:
        c = enc(v) if isinstance(v, list) else v
        n = len(c)
        ln = bytes([n]) if n < 0x80 else bytes([0x80 | (n.bit_length() + 7) // 8]) + n.to_bytes(
            (n.bit_length() + 7) // 8, "big")
        r += bytes([tag]) + ln + c
    return r


def at(node, *tags):
    for t in tags:
        node = next(c for c in node[1] if c[0] == t)
    return node


def cipher(node, *tags):  # the OCTET STRING cipher of the EncryptedData at tags
    return at(node, *tags, 0x30, 0xA2, 0x04)


def ap_req(shell, ticket, auth, cred=None):
    m = parse(read(shell))[0]
    cipher(m, 0x30, 0xA3, 0x61, 0x30, 0xA3)[1] = read(ticket)
    a = read(auth)
    if cred:  # GSS checksum (RFC 4121 §4.1.1): Lgth, Bnd, Flags, DlgOpt, Dlgth, Deleg, exts
        au = parse(a)[0]
        ck = at(au, 0x30, 0xA3, 0x30, 0xA1, 0x04)
        dlen = struct.unpack("<H", ck[1][26:28])[0]
        kc = parse(ck[1][28:28 + dlen])[0]
        cipher(kc, 0x30, 0xA3)[1] = read(cred)
        deleg = enc([kc])
        ck[1] = ck[1][:26] + struct.pack("<H", len(deleg)) + deleg + ck[1][28 + dlen:]
        a = enc([au])
    cipher(m, 0x30, 0xA4)[1] = a
    return enc([m])


def kdc_rep(shell, part):
    m = parse(read(shell)[4:])[0]  # TCP framing: 4-byte length
    cipher(m, 0x30, 0xA6)[1] = read(part)
    return enc([m])


seeds = {
    "4_49_msg_ap_req_deleg": ap_req("kerberos/2f2838e0b13baf17", "kerberos_enc/4_49_ticket",
                                    "kerberos_enc/4_49_authenticator",
                                    "kerberos_enc/4_49_krb_cred"),
    "4_49_msg_ap_req_sealed_cred": ap_req("kerberos/2f2838e0b13baf17", "kerberos_enc/4_49_ticket",
                                          "kerberos_enc/4_49_authenticator"),
    "4_70_msg_ap_req": ap_req("kerberos/4d1a04b4d3390b5f", "kerberos_enc/4_70_ticket",
                              "kerberos_enc/4_70_authenticator"),
    "13_48_msg_ap_req_deleg": ap_req("kerberos/6b9776e08f35d52d", "kerberos_enc/13_48_ticket",
                                     "kerberos_enc/13_48_authenticator",
                                     "kerberos_enc/13_48_krb_cred"),
    "msg_ap_req_sealed": read("kerberos/5ed4d5b642df17b2"),
    "4_16_msg_as_rep": kdc_rep("kerberos/56e61c74496e600e", "kerberos_enc/4_16_as_rep"),
    "13_16_msg_tgs_rep": kdc_rep("kerberos/52178fda01cfe6bf", "kerberos_enc/13_16_as_rep"),
}
for name, data in seeds.items():
    with open(os.path.join(corpus, "kerberos_enc", name), "wb") as f:
        f.write(data)
