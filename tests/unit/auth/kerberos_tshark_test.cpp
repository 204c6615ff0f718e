// Differential test: every Kerberos message of the public captures (port 88 over UDP and TCP, and
// inside SPNEGO/GSS-API in SMB, LDAP, DCE-RPC, HTTP), decoded by us and by tshark 4.0 (values
// extracted once by tests/data/auth/extract.py into krb_tshark.txt).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "fixtures.hpp"
#include "hopscope/auth/kerberos.hpp"

namespace hopscope::auth {
namespace {

using test::Fields;

std::string join(const std::vector<std::int32_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i)
        s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

void add_ticket(const TicketInfo& t, const std::string& p, Fields& f) {
    f.emplace_back(p + "realm", t.realm);
    f.emplace_back(p + "sname", t.sname.str());
    f.emplace_back(p + "etype", std::to_string(t.enc_part.etype));
    if (t.enc_part.kvno) f.emplace_back(p + "kvno", std::to_string(*t.enc_part.kvno));
}

void add_ap_req(const ApReq& a, const std::string& p, Fields& f) {
    f.emplace_back(p + "ap_options", test::hex32(a.ap_options));
    add_ticket(a.ticket, p + "ticket.", f);
    f.emplace_back(p + "authenticator.etype", std::to_string(a.authenticator.etype));
}

std::string padata_types(const std::vector<PaData>& pas) {
    std::vector<std::int32_t> t;
    for (const auto& p : pas)
        t.push_back(p.type);
    return join(t);
}

Fields ours(const KerberosMessage& m, bool tcp) {
    Fields f;
    f.emplace_back("transport", tcp ? "tcp" : "raw");
    f.emplace_back("msg_type", std::to_string(m.msg_type));
    if (const auto* q = std::get_if<KdcReq>(&m.body)) {
        f.emplace_back("padata", padata_types(q->padata));
        if (const auto* p = q->find_padata(pa_type::TgsReq); p && p->tgs_ap_req) {
            add_ap_req(*p->tgs_ap_req, "pa_tgs_req.", f);
        }
        if (const auto* p = q->find_padata(pa_type::ForUser); p && p->for_user) {
            f.emplace_back("for_user.name", p->for_user->user_name.str());
            f.emplace_back("for_user.realm", p->for_user->user_realm);
        }
        if (const auto* p = q->find_padata(pa_type::PacOptions); p && p->pac_options) {
            f.emplace_back("pac_options", test::hex32(*p->pac_options));
        }
        f.emplace_back("kdc_options", test::hex32(q->kdc_options));
        if (q->cname) f.emplace_back("cname", q->cname->str());
        f.emplace_back("realm", q->realm);
        if (q->sname) f.emplace_back("sname", q->sname->str());
        f.emplace_back("etypes", join(q->etypes));
        if (!q->additional_tickets.empty()) {
            std::string s;
            for (const auto& t : q->additional_tickets)
                s += (s.empty() ? "" : ",") + t.sname.str();
            f.emplace_back("additional_tickets", s);
        }
    } else if (const auto* r = std::get_if<KdcRep>(&m.body)) {
        f.emplace_back("padata", padata_types(r->padata));
        f.emplace_back("crealm", r->crealm);
        f.emplace_back("cname", r->cname.str());
        add_ticket(r->ticket, "ticket.", f);
        f.emplace_back("enc_part.etype", std::to_string(r->enc_part.etype));
    } else if (const auto* a = std::get_if<ApReq>(&m.body)) {
        add_ap_req(*a, "", f);
    } else if (const auto* p = std::get_if<ApRep>(&m.body)) {
        f.emplace_back("enc_part.etype", std::to_string(p->enc_part.etype));
    } else if (const auto* e = std::get_if<KrbError>(&m.body)) {
        f.emplace_back("error_code", std::to_string(e->error_code));
        if (e->ctime) f.emplace_back("ctime", *e->ctime);
        f.emplace_back("stime", e->stime);
        if (e->crealm) f.emplace_back("crealm", *e->crealm);
        if (e->cname) f.emplace_back("cname", e->cname->str());
        f.emplace_back("realm", e->realm);
        if (e->sname) f.emplace_back("sname", e->sname->str());
        if (e->e_text) f.emplace_back("e_text", *e->e_text);
        if (!e->e_data_padata.empty()) f.emplace_back("e_data.padata", join(e->e_data_padata));
        if (e->e_data_type) f.emplace_back("e_data.type", std::to_string(*e->e_data_type));
        if (e->ext_status) f.emplace_back("e_data.status", test::hex32(*e->ext_status));
    }
    return f;
}

TEST(KerberosTshark, EveryPublicMessageMatchesTshark) {
    auto recs = test::load_records("krb_tshark.txt");
    const auto lab = test::load_records("lab_krb_tshark.txt");  // tools/lab/run captures
    ASSERT_GE(lab.size(), 20u);
    recs.insert(recs.end(), lab.begin(), lab.end());
    const auto lab2 = test::load_records("lab2_krb_tshark.txt");  // captures/lab 9b 13 15 16
    ASSERT_FALSE(lab2.empty());
    recs.insert(recs.end(), lab2.begin(), lab2.end());
    // S4U2Self / S4U2Proxy requests encoded with impacket's classes (tests/data/auth/make_s4u.py).
    const auto s4u = test::load_records("s4u_krb_tshark.txt");
    ASSERT_EQ(s4u.size(), 2u);
    recs.insert(recs.end(), s4u.begin(), s4u.end());
    ASSERT_GE(recs.size(), 50u) << "fixture missing or truncated";
    std::map<std::int32_t, int> by_type;
    int tcp_records = 0;
    for (const auto& r : recs) {
        const bool tcp = r.get("transport") == "tcp";
        KerberosMessage m;
        if (tcp) {
            // Feed the TCP record in three uneven pieces: the framer must reassemble it.
            KrbTcpFramer framer;
            std::vector<std::vector<std::uint8_t>> records;
            const Bytes all(r.bytes);
            const std::size_t a = std::min<std::size_t>(3, all.size());
            const std::size_t b = a + (all.size() - a) / 2;
            ASSERT_TRUE(framer.feed(all.subspan(0, a), records).ok()) << r.where();
            ASSERT_TRUE(framer.feed(all.subspan(a, b - a), records).ok()) << r.where();
            EXPECT_TRUE(records.empty());
            ASSERT_TRUE(framer.feed(all.subspan(b), records).ok()) << r.where();
            ASSERT_EQ(records.size(), 1u) << r.where();
            EXPECT_EQ(framer.buffered(), 0u);
            const auto err = parse_kerberos(Bytes(records[0]), m);
            ASSERT_TRUE(err.ok()) << r.where() << ": " << err.error().detail << " at "
                                  << err.error().offset;
            ++tcp_records;
        } else {
            Krb5GssToken tok;
            const auto err = parse_krb5_token(Bytes(r.bytes), tok);
            ASSERT_TRUE(err.ok()) << r.where() << ": " << err.error().detail << " at "
                                  << err.error().offset;
            m = tok.message;
        }
        Fields mine = ours(m, tcp);
        // tshark 4.0 decodes KRB-ERROR e-data only in some cases (not MIT's METHOD-DATA with
        // PA-FX-FAST, not a KERB-ERROR-DATA without data-value); compare e-data where it did.
        const bool tshark_e_data =
            std::any_of(r.fields.begin(), r.fields.end(),
                        [](const auto& kv) { return kv.first.rfind("e_data.", 0) == 0; });
        if (!tshark_e_data) {
            std::erase_if(mine, [](const auto& kv) { return kv.first.rfind("e_data.", 0) == 0; });
        }
        EXPECT_TRUE(test::same_fields(r.fields, mine)) << r.where();
        ++by_type[m.msg_type];
    }
    for (std::int32_t t : {10, 11, 12, 13, 14, 15, 30})
        EXPECT_GT(by_type[t], 2) << "msg-type " << t;
    EXPECT_GT(tcp_records, 10);
}

}  // namespace
}  // namespace hopscope::auth
