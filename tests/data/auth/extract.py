#!/usr/bin/env python3
"""Extracts NTLM, Kerberos and GSS-API/SPNEGO tokens from tests/data/public captures with tshark,
together with the values tshark decodes from them, into the text fixtures next to this script.

tshark is only the reference here: the C++ tests read the fixtures and need no tshark. Run from
anywhere (tshark 4.0.x):  python3 tests/data/auth/extract.py

Fixture format (one record per message, records separated by a blank line):
    @ <capture file> <frame number> <kind>
    hex <the token bytes as tshark delimited them>
    <key> <value>            (repeated; values are tshark's, normalised as described below)
Kinds: ntlm (an NTLMSSP message), krb (a Kerberos message: bare DER, or over TCP with the 4-byte
record mark when `transport tcp`), gss (a GSS-API/SPNEGO security blob as carried by SMB, LDAP,
HTTP...). Principal names are their components joined with '/'; lists are comma-separated; flags
are 0x-prefixed hex; empty NTLM strings are written as the empty string (tshark shows "NULL").
Identical token bytes are kept once (PER_KIND can cap records per capture and message type; it is
set high so that every distinct message is checked).

With `--s4u PCAP` the S4U2Self / S4U2Proxy requests written by make_s4u.py (impacket's encoder)
go to s4u_krb_tshark.txt. With `--lab-more DIR SCENARIO...` the same goes to lab2_*.txt for the named scenarios. With `--lab DIR` the same is done for the lab captures in DIR (lab_*_tshark.txt), and the SSPI
blobs exactly as TDS carried them (LOGIN7 SSPI, SSPI message 0x11, SSPI token 0xED) are written
to lab_sspi.txt by lab_sspi.py.
"""
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PUBLIC = os.path.normpath(os.path.join(HERE, "..", "public"))
PER_KIND = 1000000


def hook(pairs):
    d, multi = {}, set()
    for k, v in pairs:
        if k in d:
            if k not in multi:
                d[k] = [d[k]]
                multi.add(k)
            d[k].append(v)
        else:
            d[k] = v
    return d


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def raws(v):
    """A _raw value is [hex, offset, len, mask, type]; repeated fields give a list of those."""
    if not v:
        return []
    return v if isinstance(v[0], list) else [v]


def first(d, key):
    v = d.get(key)
    if isinstance(v, list):
        return v[0] if v else None
    return v


def elements(d, key):
    return [x for x in as_list(d.get(key)) if isinstance(x, dict)]


def principal(el):
    if not isinstance(el, dict):
        return None
    for tree_key, name_key in (("kerberos.sname_string_tree", "kerberos.SNameString"),
                               ("kerberos.cname_string_tree", "kerberos.CNameString")):
        t = el.get(tree_key)
        if isinstance(t, dict):
            return "/".join(as_list(t.get(name_key)))
    return None


def ascii_raw(d, key):
    r = raws(d.get(key + "_raw"))
    return bytes.fromhex(r[0][0]).decode("latin-1") if r else None


def ticket_fields(t, prefix, out):
    out.append((prefix + "realm", first(t, "kerberos.realm")))
    out.append((prefix + "sname", principal(first(t, "kerberos.sname_element"))))
    enc = first(t, "kerberos.enc_part_element") or {}
    out.append((prefix + "etype", first(enc, "kerberos.etype")))
    if "kerberos.kvno" in enc:
        out.append((prefix + "kvno", first(enc, "kerberos.kvno")))


def padata_list(el):
    tree = el.get("kerberos.padata_tree")
    if not isinstance(tree, dict):
        return []
    return elements(tree, "kerberos.PA_DATA_element")


def ap_req_fields(a, prefix, out):
    out.append((prefix + "ap_options", "0x" + (first(a, "kerberos.ap_options") or "").replace(":", "")))
    t = first(a, "kerberos.ticket_element") or {}
    ticket_fields(t, prefix + "ticket.", out)
    auth = first(a, "kerberos.authenticator_element") or {}
    out.append((prefix + "authenticator.etype", first(auth, "kerberos.etype")))


def krb_fields(layer):
    out = []
    for key, el in layer.items():
        if not key.endswith("_element") or not isinstance(el, dict):
            continue
        mt = first(el, "kerberos.msg_type")
        if mt is None:
            continue
        out.append(("msg_type", mt))
        if key in ("kerberos.as_req_element", "kerberos.tgs_req_element"):
            pas = padata_list(el)
            out.append(("padata", ",".join(first(p, "kerberos.padata_type") for p in pas)))
            for p in pas:
                vt = first(first(p, "kerberos.padata_type_tree") or {}, "kerberos.padata_value_tree")
                vt = vt if isinstance(vt, dict) else {}
                pt = first(p, "kerberos.padata_type")
                if pt == "1":
                    ap = first(vt, "kerberos.ap_req_element")
                    if ap:
                        ap_req_fields(ap, "pa_tgs_req.", out)
                elif pt == "129":  # PA-FOR-USER (MS-SFU 2.2.1)
                    t = first(first(vt, "kerberos.name_element") or {}, "kerberos.name_string_tree")
                    out.append(("for_user.name", "/".join(as_list((t or {}).get("kerberos.KerberosString")))))
                    out.append(("for_user.realm", first(vt, "kerberos.realm")))
                elif pt == "167" and "kerberos.flags" in vt:  # PA-PAC-OPTIONS
                    out.append(("pac_options", "0x" + first(vt, "kerberos.flags").replace(":", "")))
            body = first(el, "kerberos.req_body_element") or {}
            out.append(("kdc_options", "0x" + (first(body, "kerberos.kdc_options") or "").replace(":", "")))
            if "kerberos.cname_element" in body:
                out.append(("cname", principal(first(body, "kerberos.cname_element"))))
            out.append(("realm", first(body, "kerberos.realm")))
            if "kerberos.sname_element" in body:
                out.append(("sname", principal(first(body, "kerberos.sname_element"))))
            et = first(body, "kerberos.kdc-req-body.etype_tree") or {}
            out.append(("etypes", ",".join(as_list(et.get("kerberos.ENCTYPE")))))
            at = first(body, "kerberos.additional_tickets_tree")
            if isinstance(at, dict):
                snames = [principal(first(t, "kerberos.sname_element"))
                          for t in elements(at, "kerberos.Ticket_element")]
                out.append(("additional_tickets", ",".join(snames)))
        elif key in ("kerberos.as_rep_element", "kerberos.tgs_rep_element"):
            out.append(("padata", ",".join(first(p, "kerberos.padata_type") for p in padata_list(el))))
            out.append(("crealm", first(el, "kerberos.crealm")))
            out.append(("cname", principal(first(el, "kerberos.cname_element"))))
            ticket_fields(first(el, "kerberos.ticket_element") or {}, "ticket.", out)
            enc = first(el, "kerberos.enc_part_element") or {}
            out.append(("enc_part.etype", first(enc, "kerberos.etype")))
        elif key == "kerberos.ap_req_element":
            ap_req_fields(el, "", out)
        elif key == "kerberos.ap_rep_element":
            enc = first(el, "kerberos.enc_part_element") or {}
            out.append(("enc_part.etype", first(enc, "kerberos.etype")))
        elif key == "kerberos.krb_error_element":
            out.append(("error_code", first(el, "kerberos.error_code")))
            for f in ("ctime", "stime"):
                if "kerberos." + f in el:
                    out.append((f, ascii_raw(el, "kerberos." + f)))
            if "kerberos.crealm" in el:
                out.append(("crealm", first(el, "kerberos.crealm")))
            if "kerberos.cname_element" in el:
                out.append(("cname", principal(first(el, "kerberos.cname_element"))))
            out.append(("realm", first(el, "kerberos.realm")))
            if "kerberos.sname_element" in el:
                out.append(("sname", principal(first(el, "kerberos.sname_element"))))
            if "kerberos.e_text" in el:
                out.append(("e_text", first(el, "kerberos.e_text")))
            ed = first(el, "kerberos.e_data_tree")
            if isinstance(ed, dict):
                if "kerberos.PA_DATA_element" in ed:  # METHOD-DATA (RFC 4120 5.9.1)
                    out.append(("e_data.padata", ",".join(
                        first(p, "kerberos.padata_type") for p in elements(ed, "kerberos.PA_DATA_element"))))
                elif "kerberos.padata_type" in ed:  # KERB-ERROR-DATA (MS-KILE 2.2.1)
                    out.append(("e_data.type", first(ed, "kerberos.padata_type")))
                    vt = first(first(ed, "kerberos.padata_type_tree") or {}, "kerberos.padata_value_tree")
                    if isinstance(vt, dict) and "kerberos.smb.nt_status" in vt:
                        out.append(("e_data.status", first(vt, "kerberos.smb.nt_status")))
        break
    return out


NTLM_AV = {
    "nb_computer_name": "nb_computer", "nb_domain_name": "nb_domain",
    "dns_computer_name": "dns_computer", "dns_domain_name": "dns_domain",
    "dns_tree_name": "dns_tree", "target_name": "target_name",
}


def ntlm_av(tree, prefix, out):
    """AV pairs as tshark shows them under an 'Attribute: ...' subtree."""
    for k, v in tree.items():
        if not k.startswith("Attribute") or not isinstance(v, dict):
            continue
        for vv in as_list(v):
            for fk, fv in vv.items():
                short = fk.rsplit(".", 1)[-1]
                if short in NTLM_AV:
                    out.append((prefix + NTLM_AV[short], fv))
                elif short == "flags":
                    out.append((prefix + "flags", fv))
                elif short == "channel_bindings":
                    zero = set(fv.replace(":", "")) <= {"0"}
                    out.append((prefix + "channel_bindings", "all-zero" if zero else "present"))


def ntlm_fields(n):
    out = []
    mt = int(first(n, "ntlmssp.messagetype"), 16)
    out.append(("messagetype", str(mt)))
    out.append(("flags", first(n, "ntlmssp.negotiateflags")))
    ver = first(n, "ntlmssp.version")
    if isinstance(ver, dict):
        out.append(("version", "%s.%s.%s/%s" % (ver.get("ntlmssp.version.major"),
                                                 ver.get("ntlmssp.version.minor"),
                                                 ver.get("ntlmssp.version.build_number"),
                                                 ver.get("ntlmssp.version.ntlm_current_revision"))))
    if mt == 1:
        for k, name in (("ntlmssp.negotiate.domain", "domain"),
                        ("ntlmssp.negotiate.callingworkstation", "workstation")):
            if k in n and first(n, k) != "NULL":
                out.append((name, first(n, k)))
    elif mt == 2:
        if "ntlmssp.challenge.target_name" in n:
            tn = first(n, "ntlmssp.challenge.target_name")
            out.append(("target_name", "" if tn == "NULL" else tn))
        ti = first(n, "ntlmssp.challenge.target_info")
        if isinstance(ti, dict):
            ntlm_av(ti, "ti.", out)
    elif mt == 3:
        for k, name in (("ntlmssp.auth.domain", "domain"), ("ntlmssp.auth.username", "user"),
                        ("ntlmssp.auth.hostname", "workstation")):
            v = first(n, k)
            out.append((name, "" if v in (None, "NULL") else v))
        for k, name in (("ntlmssp.auth.lmresponse_tree", "lm_len"),
                        ("ntlmssp.auth.ntresponse_tree", "nt_len")):
            t = first(n, k)
            out.append((name, first(t, "ntlmssp.blob.length") if isinstance(t, dict) else "0"))
        t = first(n, "ntlmssp.auth.ntresponse_tree")
        v2 = first(t, "ntlmssp.ntlmv2_response_tree") if isinstance(t, dict) else None
        if isinstance(v2, dict):
            out.append(("response", "ntlmv2"))
            ntlm_av(v2, "v2.", out)
        out.append(("mic", "1" if "ntlmssp.authenticate.mic" in n else "0"))
    return out


def gss_fields(g):
    out = []
    sp = first(g, "spnego")
    if not isinstance(sp, dict):
        return None
    oid = first(g, "gss-api.OID")
    out.append(("wrapped", "1" if oid else "0"))
    for key, el in sp.items():
        if key in ("spnego.negTokenInit_element", "spnego.negTokenInit2_element"):
            out.append(("spnego", "init"))
            mt = first(el, "spnego.mechTypes_tree") or {}
            out.append(("mech_types", ",".join(as_list(mt.get("spnego.MechType")))))
            out.append(("mech_token", "1" if "spnego.mechToken" in el else "0"))
            hints = first(el, "spnego.negHints_element")
            if isinstance(hints, dict) and "spnego.hintName" in hints:
                out.append(("hint_name", first(hints, "spnego.hintName")))
        elif key == "spnego.negTokenTarg_element":
            out.append(("spnego", "resp"))
            if "spnego.negResult" in el:
                out.append(("neg_state", first(el, "spnego.negResult")))
            if "spnego.supportedMech" in el:
                out.append(("supported_mech", first(el, "spnego.supportedMech")))
            out.append(("response_token", "1" if "spnego.responseToken" in el else "0"))
            out.append(("mic", "1" if "spnego.mechListMIC" in el else "0"))
    if len(out) <= 1:
        return None
    # What the inner mechanism token is, as tshark decoded it (first message found inside).
    nt, kb = [], []
    find_key(sp, "ntlmssp.messagetype", nt)
    find_key(sp, "kerberos.msg_type", kb)
    if nt:
        out.append(("inner", "ntlm:%d" % int(nt[0], 16)))
    elif kb:
        out.append(("inner", "krb:%s" % kb[0]))
    return out


def find_key(o, key, found):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == key:
                found.extend(as_list(v))
            elif not k.endswith("_raw"):
                find_key(v, key, found)
    elif isinstance(o, list):
        for x in o:
            find_key(x, key, found)


def find_all(o, want, found):
    """(key, subtree, raw) for every `want` layer that has a sibling `want_raw`."""
    if isinstance(o, dict):
        for k, v in o.items():
            if k == want and (k + "_raw") in o:
                for sub, raw in zip(as_list(v), raws(o[k + "_raw"])):
                    found.append((sub, raw[0]))
            if not k.endswith("_raw"):
                find_all(v, want, found)
    elif isinstance(o, list):
        for x in o:
            find_all(x, want, found)


def collect(files):
    recs = {"ntlm": [], "krb": [], "gss": []}
    seen = set()
    for path in files:
        name = os.path.basename(path)
        res = subprocess.run(["tshark", "-r", path, "-T", "json", "-x"], capture_output=True,
                             check=True)
        packets = json.loads(res.stdout, object_pairs_hook=hook)
        counts = {}
        for pk in packets:
            layers = pk["_source"]["layers"]
            frame = layers["frame"]["frame.number"]
            tcp = "tcp" in layers
            for kind, layer in (("ntlm", "ntlmssp"), ("krb", "kerberos"), ("gss", "gss-api")):
                found = []
                find_all(layers, layer, found)
                for sub, hexs in found:
                    if not isinstance(sub, dict) or hexs in seen:
                        continue
                    if kind == "ntlm":
                        fields = ntlm_fields(sub)
                    elif kind == "krb":
                        fields = krb_fields(sub)
                    else:
                        fields = gss_fields(sub)
                    if not fields:
                        continue
                    key = (kind, fields[0][1])
                    if counts.get(key, 0) >= PER_KIND:
                        continue
                    counts[key] = counts.get(key, 0) + 1
                    seen.add(hexs)
                    extra = []
                    if kind == "krb":
                        # Over TCP tshark's bytes start with the RFC 4120 §7.2.2 record mark.
                        b = bytes.fromhex(hexs)
                        is_tcp = tcp and len(b) >= 4 and int.from_bytes(b[:4], "big") == len(b) - 4
                        extra = [("transport", "tcp" if is_tcp else "raw")]
                    recs[kind].append((name, frame, hexs, extra + fields))
    return recs


def write(recs, prefix, source):
    for kind, rs in recs.items():
        with open(os.path.join(HERE, prefix + kind + "_tshark.txt"), "w") as f:
            f.write("# Generated by tests/data/auth/extract.py from %s; tshark %s\n"
                    % (source, tshark_version()))
            for name, frame, hexs, fields in rs:
                f.write("\n@ %s %s %s\nhex %s\n" % (name, frame, kind, hexs))
                for k, v in fields:
                    f.write("%s %s\n" % (k, "" if v is None else v))
        print(kind, len(rs), file=sys.stderr)


def tshark_version():
    out = subprocess.run(["tshark", "-v"], capture_output=True, text=True).stdout
    return out.split("\n")[0].split(" ")[2] if out else "?"


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--s4u":
        # S4U requests encoded by impacket's classes (make_s4u.py), decoded by tshark.
        recs = collect([sys.argv[2]])
        write({"krb": recs["krb"]}, "s4u_", "TGS-REQs built by make_s4u.py (impacket encoder)")
    elif len(sys.argv) >= 4 and sys.argv[1] == "--lab-more":
        # Later lab scenarios committed in captures/lab/ (e.g. 9b 13 15 16), kept apart so that
        # the first lab fixtures (and the frame numbers lab_sspi_test.cpp names) stay as they are.
        files = sorted(f for sc in sys.argv[3:]
                       for f in glob.glob(os.path.join(sys.argv[2], sc + "-*.pcap")))
        write(collect(files), "lab2_", "captures/lab scenarios " + " ".join(sys.argv[3:]))
        import lab_sspi
        lab_sspi.write(files, os.path.join(HERE, "lab2_sspi.txt"))
    elif len(sys.argv) == 3 and sys.argv[1] == "--lab":
        # Lab captures (tools/lab/run with LAB_SAVE=1, or lab-run/results/): real FreeTDS,
        # impacket and MIT Kerberos traffic; TLS scenarios (12*) carry no clear tokens.
        files = sorted(f for f in glob.glob(os.path.join(sys.argv[2], "*.pcap"))
                       if not os.path.basename(f).startswith("12"))
        write(collect(files), "lab_", "the lab captures (tools/lab/run scenarios 1-11)")
        import lab_sspi
        lab_sspi.write(files, os.path.join(HERE, "lab_sspi.txt"))
    else:
        files = sorted(glob.glob(os.path.join(PUBLIC, "*.pcap*")))
        write(collect(files), "", "tests/data/public (see MANIFEST.md there)")


if __name__ == "__main__":
    main()
