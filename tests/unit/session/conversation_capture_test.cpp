// Conversation over real SQL Server traffic (tests/data/tds/*.segments, extracted with tshark from
// tests/data/public; expected values from the matching *.tshark.txt):
//   tds7_sqlauth_login_prelogin_loginack_arkime.pcap - arkime tests/pcap/tds7.pcap, Apache-2.0
//   tds_sqlbatch_rpc_responses_midstream_ndpi.pcap  - nDPI tests/cfgs/default/pcap/mssql_tds.pcap,
//                                                     LGPL-3.0
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "fact_recorder.hpp"

namespace hopscope::session {
namespace {

using testing::FactRecorder;

const char* kLogin = "tds/tds7_sqlauth_login_prelogin_loginack_arkime.segments";
const char* kMidstream = "tds/tds_sqlbatch_rpc_responses_midstream_ndpi.segments";

std::vector<std::string> run(const char* fixture, int stream, bool bytewise, bool frames,
                             bool handshake_seen) {
    FactRecorder rec;
    rec.with_frames = frames;
    Conversation::Options o;
    o.handshake_seen = handshake_seen;
    Conversation conv(rec, o);
    testing::replay(conv, testing::load_segments(testing::data_path(fixture)), stream, bytewise);
    return rec.facts;
}

bool has(const std::vector<std::string>& facts, const std::string& needle) {
    return std::any_of(facts.begin(), facts.end(),
                       [&](const std::string& f) { return f.find(needle) != std::string::npos; });
}

// Options::info_messages off (the pipeline's way): the login's two INFO messages are not
// reported, everything else is, the login the same.
TEST(ConversationCapture, InfoMessagesOffLeavesThemOut) {
    FactRecorder all;
    FactRecorder errors_only;
    Conversation::Options o;
    o.info_messages = false;
    Conversation with(all);
    Conversation without(errors_only, o);
    const auto segments = testing::load_segments(testing::data_path(kLogin));
    testing::replay(with, segments, 0, false);
    testing::replay(without, segments, 0, false);
    std::vector<std::string> expected;
    for (const auto& f : all.facts)
        if (f.find(" info ") == std::string::npos) expected.push_back(f);
    EXPECT_EQ(all.facts.size(), expected.size() + 2) << "the capture has two INFO messages";
    EXPECT_EQ(errors_only.facts, expected);
    ASSERT_EQ(errors_only.logins.size(), 1u);
    EXPECT_EQ(errors_only.logins[0].outcome, LoginOutcome::Success);
}

TEST(ConversationCapture, Sql2000SqlAuthLoginMatchesTshark) {
    FactRecorder rec;
    Conversation conv(rec);
    testing::replay(conv, testing::load_segments(testing::data_path(kLogin)), 0, false);
    const auto& f = rec.facts;
    for (const auto& x : f)
        SCOPED_TRACE(x);
    // Frame 4/5: PRELOGIN exchange; frame 6: LOGIN7; frame 7: login response; 8/9 batch.
    EXPECT_TRUE(has(f,
                    "c2s@0 f=4 t=1164995541721283 prelogin version=8.0.341 "
                    "encryption=ENCRYPT_OFF instance=MSSQLServer thread=3624075264"));
    EXPECT_TRUE(has(f,
                    "s2c@0 f=5 t=1164995541722085 prelogin version=8.0.2039 "
                    "encryption=ENCRYPT_NOT_SUP instance="));
    EXPECT_TRUE(has(f, "s2c@0 f=5 t=1164995541722085 encryption mode=none downgraded"));
    EXPECT_TRUE(has(f,
                    "c2s@52 f=6 t=1164995541722759 login7 tds=7.1 rev1 host=LIV-VXP-007 "
                    "user=testuser app=Microsoft Data Access Components server=217.77.3.25 "
                    "library=ODBC"));
    EXPECT_TRUE(has(f,
                    "s2c@37 f=7 t=1164995541723704 info 5701 2 0 \"Changed database context "
                    "to 'master'.\" server=JB-MSAD-01"));
    EXPECT_TRUE(has(f, "info 5703 1 0 \"Changed language setting to us_english.\""));
    EXPECT_TRUE(has(f, "loginack Microsoft SQL Server 8.0.2039 tds=71000001"));
    EXPECT_TRUE(has(f,
                    "c2s@286 f=8 t=1164995541728636 sql_batch \"select name from "
                    "master.dbo.syscharsets where id = convert(tinyint, databasepropertyex ( "
                    "db_name() , 'sqlcharset'))\""));
    EXPECT_TRUE(has(f, "s2c@422 f=9 t=1164995541730533 colmetadata name"));
    EXPECT_FALSE(has(f, "problem")) << "the real login decodes without any problem";
    EXPECT_FALSE(has(f, "resync"));

    ASSERT_EQ(rec.logins.size(), 1u);
    const LoginRecord& r = rec.logins[0];
    EXPECT_EQ(r.outcome, LoginOutcome::Success);
    EXPECT_EQ(r.auth, AuthKind::Sql);
    EXPECT_EQ(r.encryption, tds::EncryptionMode::None);
    EXPECT_TRUE(r.encryption_downgraded);
    EXPECT_EQ(r.client_encryption, tds::encrypt::kOff);
    EXPECT_EQ(r.server_encryption, tds::encrypt::kNotSup);
    ASSERT_TRUE(r.server_version.has_value());
    EXPECT_EQ(r.server_version->to_string(), "8.0.2039");
    EXPECT_EQ(r.user, "testuser");
    EXPECT_EQ(r.host, "LIV-VXP-007");
    EXPECT_EQ(r.app, "Microsoft Data Access Components");
    EXPECT_EQ(r.server_name, "217.77.3.25");
    EXPECT_EQ(r.library, "ODBC");
    EXPECT_EQ(r.tds_version, 0x71000001u);
    EXPECT_TRUE(r.password_present);
    EXPECT_EQ(r.password_length, 4u);
    ASSERT_TRUE(r.login_ack);
    EXPECT_EQ(r.login_ack->prog_name, "Microsoft SQL Server");
    EXPECT_EQ(r.login_ack->build, 2039);
    EXPECT_FALSE(r.error);
    EXPECT_EQ(r.first_evidence.frame, 4u);
    EXPECT_EQ(r.last_evidence.frame, 7u);
    EXPECT_EQ(r.started.micros, 1164995541721283);
    EXPECT_EQ(r.ended.micros, 1164995541723704);
}

TEST(ConversationCapture, PasswordOfTheRealLoginIsNowhere) {
    // tshark decodes the obfuscated password field of frame 6 as "host". Neither the clear text
    // nor the obfuscated bytes may appear in any fact.
    FactRecorder rec;
    Conversation conv(rec);
    testing::replay(conv, testing::load_segments(testing::data_path(kLogin)), 0, false);
    for (const auto& f : rec.facts) {
        // "host" only occurs as part of field names; the value never follows "password".
        EXPECT_EQ(f.find("password=host"), std::string::npos) << f;
        EXPECT_EQ(f.find("23a553a592a5e2a5"), std::string::npos) << f;  // obfuscated bytes
    }
    ASSERT_EQ(rec.logins.size(), 1u);
    const std::string s = to_string(rec.logins[0]);
    EXPECT_NE(s.find("password=present(4)"), std::string::npos) << s;
}

TEST(ConversationCapture, MidstreamBatchesAndRpcs) {
    // nDPI capture: connections that start mid-session (no SYN, no login). tshark: stream 0 =
    // SQL batch " set transaction isolation level  read committed  set implicit_transactions off "
    // then RPC sp_prepexec (ProcID 13); stream 2 = RPC p_GetBogusData; stream 3 = RPC
    // sp_executesql; stream 5 = one RPC p_SaveExample in 7 TCP segments (8339 bytes).
    auto f0 = run(kMidstream, 0, false, true, false);
    EXPECT_TRUE(has(f0,
                    "c2s@0 f=1 t=1240877917888015 sql_batch \" set transaction isolation "
                    "level  read committed  set implicit_transactions off \""));
    EXPECT_TRUE(has(f0, "c2s@190 f=3 t=1240877917918653 rpc sp_prepexec("));
    EXPECT_TRUE(has(f0, "s2c@0 f=2 t=1240877917888358 done 253"));
    EXPECT_FALSE(has(f0, "login ")) << "no login attempt is invented for a mid-session capture";
    EXPECT_FALSE(has(f0, "resync"));
    EXPECT_TRUE(has(run(kMidstream, 2, false, true, false), "rpc p_GetBogusData("));
    EXPECT_TRUE(has(run(kMidstream, 3, false, true, false), "rpc sp_executesql("));
    const auto f5 = run(kMidstream, 5, false, true, false);
    EXPECT_TRUE(has(f5, "c2s@0 f=32 t=1259762474884730 rpc p_SaveExample(2)"));
    EXPECT_FALSE(has(f5, "resync"));
}

TEST(ConversationCapture, MidstreamTds71DoneTokensAreNotTruncated) {
    // Frame 6 (tshark: "Malformed") is a 9-byte DONE of a TDS 7.0/7.1 connection: its batches
    // carry no ALL_HEADERS, so the row counts are 4 bytes. Every stream must decode cleanly.
    int streams_with_facts = 0;
    for (int stream = 0; stream < 12; ++stream) {
        const auto f = run(kMidstream, stream, false, true, false);
        if (!f.empty()) ++streams_with_facts;
        for (const auto& fact : f)
            EXPECT_EQ(fact.find("problem"), std::string::npos) << fact;
    }
    EXPECT_GE(streams_with_facts, 6);
}

TEST(ConversationCapture, LateStartMidPacketResyncs) {
    // Drop the first 7 bytes of stream 4's client side: the batch packet (190 bytes) is lost,
    // the framer skips 183 bytes and picks up the RPC at offset 190 (183 after the cut).
    auto segs = testing::load_segments(testing::data_path(kMidstream));
    std::vector<testing::Segment> cut;
    for (auto s : segs) {
        if (s.stream != 4) continue;
        if (s.frame == 9) s.bytes.erase(s.bytes.begin(), s.bytes.begin() + 7);
        cut.push_back(s);
    }
    for (bool bytewise : {false, true}) {
        FactRecorder rec;
        Conversation::Options o;
        o.handshake_seen = false;
        Conversation conv(rec, o);
        testing::replay(conv, cut, 4, bytewise);
        EXPECT_TRUE(has(rec.facts, "c2s@0 f=11 t=1259762400747372 resync skipped=183"));
        EXPECT_TRUE(has(rec.facts, "c2s@183 f=11 t=1259762400747372 rpc sp_prepexec("));
        EXPECT_FALSE(has(rec.facts, "sql_batch"));
    }
}

TEST(ConversationCapture, ChunkingInvariance) {
    // Every fixture, every connection: one byte at a time gives exactly the facts of whole
    // segments (with frames and times), and the facts of the stream fed whole (offsets only).
    for (const char* fixture : {kLogin, kMidstream}) {
        const auto segs = testing::load_segments(testing::data_path(fixture));
        std::set<int> streams;
        for (const auto& s : segs)
            streams.insert(s.stream);
        for (int st : streams) {
            for (bool hs : {true, false}) {
                SCOPED_TRACE(std::string(fixture) + " stream " + std::to_string(st));
                const auto whole = run(fixture, st, false, true, hs);
                const auto bytes = run(fixture, st, true, true, hs);
                EXPECT_FALSE(whole.empty());
                EXPECT_EQ(whole, bytes);
                // Concatenate consecutive same-direction segments into single chunks.
                std::vector<testing::Segment> merged;
                for (const auto& s : segs) {
                    if (s.stream != st) continue;
                    if (!merged.empty() && merged.back().dir == s.dir) {
                        testing::append(merged.back().bytes, s.bytes);
                    } else {
                        merged.push_back(s);
                    }
                }
                FactRecorder rec;
                rec.with_frames = false;
                Conversation::Options o;
                o.handshake_seen = hs;
                Conversation conv(rec, o);
                testing::replay(conv, merged, st, false);
                EXPECT_EQ(rec.facts, run(fixture, st, true, false, hs));
            }
        }
    }
}

}  // namespace
}  // namespace hopscope::session
