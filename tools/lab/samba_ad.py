#!/usr/bin/python3
"""The lab's Active Directory accounts, in a Samba AD DC provisioned by tools/lab/run.

Works on the DC's own database (sam.ldb, no LDAP, no running DC needed), through Samba's Python
modules (Debian's python3-samba: run it with /usr/bin/python3).

  samba_ad.py accounts SMB_CONF KEYTAB_DIR   < alice's password on stdin
      users alice (ordinary), svc_sqla and svc_sqlb (the SQL Server service accounts, random
      passwords, AES only: msDS-SupportedEncryptionTypes 24), the SPNs
      MSSQLSvc/sqla.ad.lab.test:1433 on svc_sqla and MSSQLSvc/sqlb.ad.lab.test:1433 on svc_sqlb,
      svc_sqla trusted for constrained delegation to MSSQLSvc/sqlb.ad.lab.test:1433
      (msDS-AllowedToDelegateTo, Kerberos only: no protocol transition); writes the services'
      keytabs KEYTAB_DIR/sqla.keytab (svc_sqla) and KEYTAB_DIR/sqlb.keytab (svc_sqlb)
  samba_ad.py export-all SMB_CONF KEYTAB
      every key of the domain (krbtgt, users, services) into KEYTAB, for the capture's readers

Scenarios change the accounts with samba-tool (delegation del-service, user sensitive, ...).
"""
import os
import secrets
import sys

from samba import enable_net_export_keytab
from samba.auth import system_session
from samba.net import Net
from samba.param import LoadParm
from samba.samdb import SamDB

DOMAIN_SPN = {
    "svc_sqla": "MSSQLSvc/sqla.ad.lab.test:1433",
    "svc_sqlb": "MSSQLSvc/sqlb.ad.lab.test:1433",
}
AES_ONLY = 0x18  # AES128 | AES256


def open_db(conf):
    lp = LoadParm()
    lp.load(conf)
    return lp, SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)


def dn_of(db, account):
    return db.search(base=db.domain_dn(), expression=f"(sAMAccountName={account})", attrs=[])[0].dn


def export(lp, keytab, principal=None):
    enable_net_export_keytab()
    Net(None, lp).export_keytab(keytab=keytab, principal=principal)


def accounts(conf, keytab_dir):
    password = sys.stdin.readline().rstrip("\n")
    lp, db = open_db(conf)
    db.newuser("alice", password)
    for account, spn in DOMAIN_SPN.items():
        db.newuser(account, secrets.token_urlsafe(24) + "Aa1-")
        db.modify_ldif(
            f"dn: {dn_of(db, account)}\nchangetype: modify\n"
            f"add: servicePrincipalName\nservicePrincipalName: {spn}\n-\n"
            f"replace: msDS-SupportedEncryptionTypes\nmsDS-SupportedEncryptionTypes: {AES_ONLY}\n"
        )
    db.modify_ldif(
        f"dn: {dn_of(db, 'svc_sqla')}\nchangetype: modify\n"
        f"add: msDS-AllowedToDelegateTo\nmsDS-AllowedToDelegateTo: {DOMAIN_SPN['svc_sqlb']}\n"
    )
    for host, account in (("sqla", "svc_sqla"), ("sqlb", "svc_sqlb")):
        path = os.path.join(keytab_dir, host + ".keytab")
        if os.path.exists(path):
            os.unlink(path)
        export(lp, path, account)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "accounts":
        accounts(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "export-all":
        lp, _ = open_db(sys.argv[2])
        if os.path.exists(sys.argv[3]):
            os.unlink(sys.argv[3])
        export(lp, sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
