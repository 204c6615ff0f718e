#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/fuzz_{pcap,packet}.cpp from the public captures.

pcap/: small public captures (tests/data/public, sources and licences in its MANIFEST.md) whole,
plus cut-short copies. packet/: the frames of a few captures in fuzz_packet's input format
([link selector][u16 LE length][u8 time step][frame]...), one file per capture and link type.
Standard library only; reads classic little-endian pcap.
"""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
PUB = os.path.join(ROOT, "tests", "data", "public")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")

WHOLE = ["krb_error_preauth_padata_single_zeek.pcap", "krb_error52_response_too_big_ndpi.pcap",
         "krb_error60_optional_sname_zeek.pcap", "tds42_login_fisql_client_to_tdspsql_emulator.pcap",
         "tds7_sqlauth_login_prelogin_loginack_arkime.pcap", "ntlm_dcerpc_bind_zeek.pcapng",
         "krb_ap_err_skew_in_smb1_spnego_ndpi.pcap"]
FRAMES = ["tds7_sqlauth_login_prelogin_loginack_arkime.pcap", "krb_error52_response_too_big_ndpi.pcap",
          "krb_ap_err_skew_in_smb1_spnego_ndpi.pcap", "tds5_sybase_login_query_arkime.pcap"]


def frames(path):
    b = open(path, "rb").read()
    off = 24
    while off + 16 <= len(b):
        _, _, caplen, _ = struct.unpack_from("<IIII", b, off)
        yield b[off + 16: off + 16 + caplen]
        off += 16 + caplen


def main():
    os.makedirs(os.path.join(OUT, "pcap"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "packet"), exist_ok=True)
    for name in WHOLE:
        data = open(os.path.join(PUB, name), "rb").read()
        open(os.path.join(OUT, "pcap", name), "wb").write(data)
        open(os.path.join(OUT, "pcap", "cut_" + name), "wb").write(data[: len(data) * 2 // 3])
    for name in FRAMES:
        # selector 1 = Ethernet with accept-all; 0x81 = Ethernet with the default filter
        for sel in (1, 0x81):
            out = bytearray([sel])
            for f in frames(os.path.join(PUB, name)):
                out += struct.pack("<HB", len(f), 1) + f
            open(os.path.join(OUT, "packet", f"{sel:02x}_{name}.bin"), "wb").write(out)
        # the same frames without their Ethernet header, as raw IP (selector 6 = 101)
        out = bytearray([6])
        for f in frames(os.path.join(PUB, name)):
            if f[12:14] == b"\x08\x00":
                out += struct.pack("<HB", len(f) - 14, 1) + f[14:]
        open(os.path.join(OUT, "packet", f"raw_{name}.bin"), "wb").write(out)
    print("seeds written")


if __name__ == "__main__":
    main()
