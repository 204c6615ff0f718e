#!/usr/bin/python3
"""Builds S4U2Self and S4U2Proxy TGS-REQs the way impacket's getST.py does (same impacket ASN.1
classes and field choices, MS-SFU 3.1.5.1.1 / 3.1.5.2.1), offline: fixed nonce/time, dummy
cipher and checksum bytes, no KDC. Writes them as UDP datagrams to port 88 into a pcap (text2pcap)
so that extract.py can record what tshark decodes from them:

    /usr/bin/python3 tests/data/auth/make_s4u.py OUT.pcap
    python3 tests/data/auth/extract.py --s4u OUT.pcap
"""
import subprocess
import sys

from impacket.krb5 import constants
from impacket.krb5.asn1 import (AP_REQ, PA_FOR_USER_ENC, PA_PAC_OPTIONS, TGS_REQ,
                                Ticket as TicketAsn1, seq_set, seq_set_iter)
from impacket.krb5.types import Principal, Ticket
from pyasn1.codec.der import encoder
from pyasn1.type.univ import noValue

REALM = "LAB.TEST"
TILL = "20370913024805Z"


def ticket(spn, kvno):
    t = TicketAsn1()
    t["tkt-vno"] = 5
    t["realm"] = REALM
    seq_set(t, "sname", Principal(spn, type=constants.PrincipalNameType.NT_SRV_INST.value)
            .components_to_asn1)
    t["enc-part"] = noValue
    t["enc-part"]["etype"] = 18
    t["enc-part"]["kvno"] = kvno
    t["enc-part"]["cipher"] = b"\x5c" * 300
    tk = Ticket()  # impacket's own Ticket type, as getST.py handles tickets
    tk.from_asn1(t)
    return tk


def pa_tgs_req():
    ap = AP_REQ()
    ap["pvno"] = 5
    ap["msg-type"] = int(constants.ApplicationTagNumbers.AP_REQ.value)
    ap["ap-options"] = constants.encodeFlags([])
    seq_set(ap, "ticket", ticket("krbtgt/" + REALM, 2).to_asn1)
    ap["authenticator"] = noValue
    ap["authenticator"]["etype"] = 18
    ap["authenticator"]["cipher"] = b"\x6d" * 120
    return encoder.encode(ap)


def tgs_req(second_pa_type, second_pa_value, opts, sname, sname_type, etypes, extra_ticket=None):
    req = TGS_REQ()
    req["pvno"] = 5
    req["msg-type"] = int(constants.ApplicationTagNumbers.TGS_REQ.value)
    req["padata"] = noValue
    req["padata"][0] = noValue
    req["padata"][0]["padata-type"] = int(constants.PreAuthenticationDataTypes.PA_TGS_REQ.value)
    req["padata"][0]["padata-value"] = pa_tgs_req()
    req["padata"][1] = noValue
    req["padata"][1]["padata-type"] = second_pa_type
    req["padata"][1]["padata-value"] = second_pa_value
    body = seq_set(req, "req-body")
    body["kdc-options"] = constants.encodeFlags(opts)
    seq_set(body, "sname", Principal(sname, type=sname_type).components_to_asn1)
    body["realm"] = REALM
    if extra_ticket is not None:
        seq_set_iter(body, "additional-tickets", (extra_ticket,))
    body["till"] = TILL
    body["nonce"] = 0x1234567
    seq_set_iter(body, "etype", etypes)
    return encoder.encode(req)


def s4u2self():
    pa = PA_FOR_USER_ENC()
    seq_set(pa, "userName", Principal("alice", type=constants.PrincipalNameType.NT_PRINCIPAL.value)
            .components_to_asn1)
    pa["userRealm"] = REALM
    pa["cksum"] = noValue
    pa["cksum"]["cksumtype"] = int(constants.ChecksumTypes.hmac_md5.value)
    pa["cksum"]["checksum"] = b"\x3a" * 16
    pa["auth-package"] = "Kerberos"
    K = constants.KDCOptions
    return tgs_req(int(constants.PreAuthenticationDataTypes.PA_FOR_USER.value), encoder.encode(pa),
                   [K.forwardable.value, K.renewable.value, K.canonicalize.value], "sqla$",
                   constants.PrincipalNameType.NT_UNKNOWN.value, (18, 23))


def s4u2proxy():
    po = PA_PAC_OPTIONS()
    po["flags"] = constants.encodeFlags(
        (constants.PAPacOptions.resource_based_constrained_delegation.value,))
    K = constants.KDCOptions
    return tgs_req(constants.PreAuthenticationDataTypes.PA_PAC_OPTIONS.value, encoder.encode(po),
                   [K.cname_in_addl_tkt.value, K.canonicalize.value, K.forwardable.value,
                    K.renewable.value],
                   "MSSQLSvc/sqlb.lab.test:1433", constants.PrincipalNameType.NT_SRV_INST.value,
                   (23, 16, 3, 18), ticket("MSSQLSvc/sqla.lab.test:1433", 2).to_asn1(TicketAsn1()))


def main():
    out = sys.argv[1]
    dump = ""
    for msg in (s4u2self(), s4u2proxy()):
        dump += "".join("%06x %s\n" % (i, " ".join("%02x" % b for b in msg[i:i + 16]))
                        for i in range(0, len(msg), 16))
    subprocess.run(["text2pcap", "-q", "-u", "40000,88", "-", out], input=dump.encode(),
                   check=True)


if __name__ == "__main__":
    main()
