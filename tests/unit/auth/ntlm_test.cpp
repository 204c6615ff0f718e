// NTLM on hand-built messages (MS-NLMP §2.2.1.1-2.2.1.3, §2.2.2.1, §2.2.2.7, §2.2.2.10) for each
// real-client form, and the rule that responses/keys/MIC never reach rendered output.
#include "hopscope/auth/ntlm.hpp"

#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "hopscope/auth/sspi.hpp"
#include "hopscope/common/text.hpp"

namespace hopscope::auth {
namespace {

using test::Buf;
using Code = DecodeError::Code;

void put16(Buf& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v);
    b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}
void put32(Buf& b, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
Buf utf16(std::string_view s) {
    Buf out;
    for (char c : s)
        out.insert(out.end(), {static_cast<std::uint8_t>(c), 0});
    return out;
}
Buf av(std::uint16_t id, const Buf& v) {
    Buf out(4);
    put16(out, 0, id);
    put16(out, 2, static_cast<std::uint16_t>(v.size()));
    out.insert(out.end(), v.begin(), v.end());
    return out;
}

/// Builds an AUTHENTICATE (MS-NLMP §2.2.1.3): header of `header` bytes (64: no Version,
/// 72: Version, 88: Version + MIC), then payload fields in order.
struct AuthBuilder {
    std::uint32_t flags = ntlm_flag::Unicode | ntlm_flag::Ntlm;
    std::size_t header = 64;
    Buf lm, nt, domain, user, ws, key;
    std::uint16_t nt_len_override = 0;

    Buf build() const {
        Buf m(header, 0);
        const char sig[] = "NTLMSSP";
        std::copy(sig, sig + 8, m.begin());
        put32(m, 8, 3);
        const Buf* fields[] = {&lm, &nt, &domain, &user, &ws, &key};
        for (int i = 0; i < 6; ++i) {
            const std::size_t at = 12 + 8 * i;
            std::uint16_t len = static_cast<std::uint16_t>(fields[i]->size());
            if (i == 1 && nt_len_override) len = nt_len_override;
            put16(m, at, len);
            put16(m, at + 2, len);
            put32(m, at + 4, static_cast<std::uint32_t>(m.size()));
            m.insert(m.end(), fields[i]->begin(), fields[i]->end());
        }
        put32(m, 60, flags);
        if (header >= 72) {
            const std::uint8_t v[8] = {10, 0, 0x63, 0x45, 0, 0, 0, 15};  // 10.0.17763 rev 15
            std::copy(v, v + 8, m.begin() + 64);
        }
        if (header >= 88) std::fill(m.begin() + 72, m.begin() + 88, 0x5a);  // MIC
        return m;
    }
};

/// NTLMv2 response (MS-NLMP §2.2.2.8): NTProofStr(16) + NTLMv2_CLIENT_CHALLENGE (§2.2.2.7).
Buf ntlmv2_response(const Buf& av_pairs) {
    Buf r(16, 0xc3);  // NTProofStr
    Buf blob{0x01, 0x01, 0, 0, 0, 0, 0, 0};
    const Buf ts{0x00, 0x80, 0x3e, 0xd5, 0xde, 0xb1, 0x9d, 0x01};  // FILETIME 0x019db1ded53e8000
    blob.insert(blob.end(), ts.begin(), ts.end());
    blob.insert(blob.end(), 8, 0x77);  // ChallengeFromClient
    blob.insert(blob.end(), 4, 0);
    blob.insert(blob.end(), av_pairs.begin(), av_pairs.end());
    r.insert(r.end(), blob.begin(), blob.end());
    return r;
}

std::string auth_user(const NtlmMessage& m) {
    const auto* a = std::get_if<NtlmAuthenticate>(&m.msg);
    return a ? a->user : "<not an AUTHENTICATE>";
}

NtlmAuthenticate parse_auth(const Buf& m) {
    NtlmMessage msg;
    const auto e = parse_ntlm(Bytes(m), msg);
    EXPECT_TRUE(e.ok()) << e.error().detail;
    EXPECT_EQ(msg.type, 3u);
    if (!std::holds_alternative<NtlmAuthenticate>(msg.msg)) return {};
    return std::get<NtlmAuthenticate>(msg.msg);
}

TEST(Ntlm, ImpacketStyleNegotiateWithoutVersion) {
    // MS-NLMP §2.2.1.1: 32 bytes = signature, type, flags, DomainNameFields, WorkstationFields.
    Buf m(32, 0);
    std::copy(kNtlmSignature, kNtlmSignature + 8, m.begin());
    put32(m, 8, 1);
    put32(m, 12, 0xa0880205);
    NtlmMessage msg;
    ASSERT_TRUE(parse_ntlm(Bytes(m), msg).ok());
    const auto& n = std::get<NtlmNegotiate>(msg.msg);
    EXPECT_EQ(n.flags, 0xa0880205u);
    EXPECT_FALSE(n.version);
    EXPECT_FALSE(n.domain);
    EXPECT_EQ(ntlm_flags_to_string(n.flags),
              "UNICODE|REQUEST_TARGET|NTLM|EXTENDED_SESSIONSECURITY|TARGET_INFO|128|56");
}

TEST(Ntlm, FlagNamesIncludeUnknownBits) {
    const auto names = ntlm_flag_names(ntlm_flag::Anonymous | 0x00000008u);
    ASSERT_EQ(names.size(), 2u);
    EXPECT_EQ(names[0], "ANONYMOUS");
    EXPECT_EQ(names[1], "r0x00000008");
}

TEST(Ntlm, VersionFlagWithoutVersionFieldIsRead) {
    // FreeTDS: NEGOTIATE_VERSION set, payload at 64 (no Version, no MIC).
    AuthBuilder b;
    b.flags |= ntlm_flag::Version;
    b.lm.assign(24, 0x11);
    b.nt = ntlmv2_response(test::cat({av(1, utf16("SQLA")), Buf{0, 0, 0, 0}}));
    b.domain = utf16("LAB");
    b.user = utf16("alice");
    b.ws = utf16("vm");
    const auto a = parse_auth(b.build());
    EXPECT_FALSE(a.version);
    EXPECT_TRUE(a.version_flag_without_field);
    EXPECT_FALSE(a.mic_field_present);
    EXPECT_EQ(a.user, "alice");
    EXPECT_EQ(a.domain, "LAB");
    EXPECT_EQ(a.workstation, "vm");
    EXPECT_EQ(a.response_kind, NtlmResponseKind::V2);
    ASSERT_TRUE(a.v2_av_pairs);
    EXPECT_EQ(a.v2_av_pairs->nb_computer, "SQLA");
    EXPECT_EQ(a.v2_timestamp, 0x019db1ded53e8000u);
}

TEST(Ntlm, VersionAndMicLayout) {
    // Windows: Version at 64, MIC at 72, payload at 88; MsvAvFlags 0x2 declares the MIC,
    // MsvAvTargetName carries the SPN, MsvAvChannelBindings all zero = no channel binding.
    AuthBuilder b;
    b.flags |= ntlm_flag::Version;
    b.header = 88;
    b.nt =
        ntlmv2_response(test::cat({av(6, {2, 0, 0, 0}), av(9, utf16("MSSQLSvc/sqlb.lab.test:1433")),
                                   av(10, Buf(16, 0)), av(0, {})}));
    b.user = utf16("alice");
    b.key.assign(16, 0x99);
    const auto a = parse_auth(b.build());
    ASSERT_TRUE(a.version);
    EXPECT_EQ(a.version->major, 10);
    EXPECT_EQ(a.version->build, 17763);
    EXPECT_EQ(a.version->ntlm_revision, 15);
    EXPECT_TRUE(a.mic_field_present);
    EXPECT_TRUE(a.mic_flagged());
    EXPECT_EQ(a.session_key_len, 16u);
    ASSERT_TRUE(a.v2_av_pairs);
    EXPECT_EQ(a.v2_av_pairs->target_name, "MSSQLSvc/sqlb.lab.test:1433");
    EXPECT_EQ(a.v2_av_pairs->channel_bindings, ChannelBindings::AllZero);
    EXPECT_TRUE(a.v2_av_pairs->terminated);

    b.nt = ntlmv2_response(test::cat({av(10, Buf(16, 0xab)), av(0, {})}));
    EXPECT_EQ(parse_auth(b.build()).v2_av_pairs->channel_bindings, ChannelBindings::Present);
}

TEST(Ntlm, TediousShortNtLenWithBlobToTheEnd) {
    AuthBuilder b;
    b.lm.assign(24, 0);
    b.user = utf16("alice");
    b.nt = ntlmv2_response(test::cat({av(3, utf16("vm")), av(0, {})}));
    b.nt_len_override = 16;
    // The blob must run to the end of the message: put the NT response last.
    Buf m = b.build();
    // AuthBuilder wrote fields in order lm, nt, ...: move nt to the end by rebuilding by hand.
    AuthBuilder c = b;
    c.nt.clear();
    c.nt_len_override = 0;
    m = c.build();
    const std::uint32_t nt_off = static_cast<std::uint32_t>(m.size());
    m.insert(m.end(), b.nt.begin(), b.nt.end());
    put16(m, 20, 16);
    put16(m, 22, 16);
    put32(m, 24, nt_off);
    const auto a = parse_auth(m);
    EXPECT_EQ(a.nt_response_len, 16u);
    EXPECT_TRUE(a.blob_past_nt_len);
    EXPECT_EQ(a.response_kind, NtlmResponseKind::V2);
    ASSERT_TRUE(a.v2_av_pairs);
    EXPECT_EQ(a.v2_av_pairs->dns_computer, "vm");
}

TEST(Ntlm, UnreadableV2BlobKeepsTheNames) {
    AuthBuilder b;
    b.user = utf16("alice");
    b.nt = ntlmv2_response(Buf{});
    b.nt[16] = 0x02;  // RespType must be 1 (MS-NLMP §2.2.2.7)
    const auto a = parse_auth(b.build());
    EXPECT_EQ(a.user, "alice");
    EXPECT_EQ(a.response_kind, NtlmResponseKind::V2);
    EXPECT_EQ(a.v2_blob.error().code, Code::BadValue);
    EXPECT_FALSE(a.v2_av_pairs);

    b.nt.assign(30, 0x42);  // longer than NTLMv1, too short for NTLMv2
    const auto o = parse_auth(b.build());
    EXPECT_EQ(o.response_kind, NtlmResponseKind::Other);
    EXPECT_TRUE(o.v2_blob.ok());
}

TEST(Ntlm, GssFramedNtlmIsOneLevelOnly) {
    const Buf oid{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};
    AuthBuilder b;
    b.user = utf16("alice");
    const SspiInfo one = classify_sspi(Bytes(test::tlv(0x60, test::cat({oid, b.build()}))));
    EXPECT_TRUE(one.decoded.ok());
    EXPECT_EQ(one.wrapper, SspiWrapper::Gss);
    EXPECT_TRUE(one.inner_gss_wrapped);
    ASSERT_TRUE(one.ntlm);
    EXPECT_EQ(auth_user(*one.ntlm), "alice");
    // Deeply nested framings must neither recurse nor be accepted.
    Buf nested = b.build();
    for (int i = 0; i < 2000; ++i)
        nested = test::tlv(0x60, test::cat({oid, nested}));
    const SspiInfo deep = classify_sspi(Bytes(nested));
    EXPECT_EQ(deep.mechanism, SspiMechanism::Ntlm);
    EXPECT_FALSE(deep.decoded.ok());
}

TEST(Ntlm, OemStringsWithoutUnicodeFlag) {
    // MS-NLMP §2.2.1.3: without NTLMSSP_NEGOTIATE_UNICODE the names are OEM (8-bit) strings.
    AuthBuilder b;
    b.flags = ntlm_flag::Oem | ntlm_flag::Ntlm;
    b.domain = test::str("LAB");
    b.user = {'j', 0xfc, 'r', 'g'};  // "jürg" in Latin-1
    b.ws = test::str("WS01");
    b.lm.assign(24, 0x21);
    b.nt.assign(24, 0x22);
    const auto a = parse_auth(b.build());
    EXPECT_EQ(a.domain, "LAB");
    EXPECT_EQ(a.user, "j\xc3\xbcrg");
    EXPECT_EQ(a.workstation, "WS01");
    EXPECT_EQ(a.response_kind, NtlmResponseKind::V1);
}

TEST(Ntlm, AnonymousFromTheFields) {
    // MS-NLMP §3.3.2: anonymous = empty user, empty NT response, LM empty or Z(1).
    AuthBuilder b;
    b.lm = {0x00};
    b.domain = utf16("LAB");
    auto a = parse_auth(b.build());
    EXPECT_TRUE(a.anonymous);
    EXPECT_FALSE(a.anonymous_flag);
    EXPECT_EQ(a.response_kind, NtlmResponseKind::None);

    b.lm.clear();
    b.flags |= ntlm_flag::Anonymous;
    a = parse_auth(b.build());
    EXPECT_TRUE(a.anonymous);
    EXPECT_TRUE(a.anonymous_flag);

    b.lm = {0x01};  // not Z(1)
    EXPECT_FALSE(parse_auth(b.build()).anonymous);
    b.lm.clear();
    b.user = utf16("bob");
    EXPECT_FALSE(parse_auth(b.build()).anonymous);
}

TEST(Ntlm, ChallengeTargetInfo) {
    // MS-NLMP §2.2.1.2: TargetName @12, flags @20, ServerChallenge @24, TargetInfo @40,
    // Version @48, payload @56.
    Buf m(56, 0);
    std::copy(kNtlmSignature, kNtlmSignature + 8, m.begin());
    put32(m, 8, 2);
    const Buf name = utf16("LAB");
    const Buf info =
        test::cat({av(2, utf16("LAB")), av(1, utf16("SQLA")), av(4, utf16("lab.test")),
                   av(3, utf16("sqla.lab.test")), av(7, {1, 2, 3, 4, 5, 6, 7, 8}), av(0, {})});
    put16(m, 12, static_cast<std::uint16_t>(name.size()));
    put16(m, 14, static_cast<std::uint16_t>(name.size()));
    put32(m, 16, 56);
    put32(m, 20, ntlm_flag::Unicode | ntlm_flag::TargetInfo | ntlm_flag::Version);
    put16(m, 40, static_cast<std::uint16_t>(info.size()));
    put16(m, 42, static_cast<std::uint16_t>(info.size()));
    put32(m, 44, static_cast<std::uint32_t>(56 + name.size()));
    m[48] = 6;
    m[49] = 2;
    m[55] = 15;
    m.insert(m.end(), name.begin(), name.end());
    m.insert(m.end(), info.begin(), info.end());
    NtlmMessage msg;
    ASSERT_TRUE(parse_ntlm(Bytes(m), msg).ok());
    const auto& c = std::get<NtlmChallenge>(msg.msg);
    EXPECT_EQ(c.target_name, "LAB");
    ASSERT_TRUE(c.has_target_info);
    EXPECT_EQ(c.target_info.nb_domain, "LAB");
    EXPECT_EQ(c.target_info.nb_computer, "SQLA");
    EXPECT_EQ(c.target_info.dns_domain, "lab.test");
    EXPECT_EQ(c.target_info.dns_computer, "sqla.lab.test");
    EXPECT_EQ(c.target_info.timestamp, 0x0807060504030201u);
    EXPECT_EQ(c.target_info.count, 5u);
    ASSERT_TRUE(c.version);
    EXPECT_EQ(c.version->major, 6);
    EXPECT_EQ(c.version->minor, 2);

    put16(m, 40, static_cast<std::uint16_t>(info.size() + 1));  // TargetInfo past the end
    EXPECT_EQ(parse_ntlm(Bytes(m), msg).error().code, Code::Truncated);
}

TEST(Ntlm, MalformedMessagesAreTypedErrors) {
    NtlmMessage msg;
    EXPECT_EQ(parse_ntlm(Bytes(test::str("NTLMSSX")), msg).error().code, Code::BadValue);
    Buf m(12, 0);
    std::copy(kNtlmSignature, kNtlmSignature + 8, m.begin());
    put32(m, 8, 9);
    EXPECT_EQ(parse_ntlm(Bytes(m), msg).error().code, Code::BadValue);
    put32(m, 8, 3);
    EXPECT_EQ(parse_ntlm(Bytes(m), msg).error().code, Code::Truncated);
    put32(m, 8, 2);
    EXPECT_EQ(parse_ntlm(Bytes(m), msg).error().code, Code::Truncated);
    AuthBuilder b;
    b.user = utf16("alice");
    Buf a = b.build();
    put16(a, 36, 200);  // UserName runs past the end
    EXPECT_EQ(parse_ntlm(Bytes(a), msg).error().code, Code::Truncated);
    put16(a, 36, 10);
    put32(a, 40, 0xfffffff0u);  // offset + length overflow
    EXPECT_EQ(parse_ntlm(Bytes(a), msg).error().code, Code::Truncated);

    AvPairs av_out;
    const Buf bad_av{0x06, 0x00, 0x03, 0x00, 0x01, 0x02, 0x03};  // MsvAvFlags must be 4 bytes
    EXPECT_EQ(parse_av_pairs(Bytes(bad_av), 0, av_out).error().code, Code::BadLength);
    const Buf short_av{0x01, 0x00, 0x08, 0x00, 0x41};
    EXPECT_EQ(parse_av_pairs(Bytes(short_av), 0, av_out).error().code, Code::Truncated);
}

/// True if any `window`-byte run of `secret` appears in `text`, raw or as hex.
bool leaks(const std::string& text, const Buf& secret, std::size_t window = 8) {
    if (secret.size() < window) window = secret.size();
    for (std::size_t i = 0; i + window <= secret.size(); ++i) {
        const Bytes w = Bytes(secret).subspan(i, window);
        if (text.find(std::string(w.begin(), w.end())) != std::string::npos) return true;
        if (text.find(to_hex(w)) != std::string::npos) return true;
    }
    return false;
}

TEST(Ntlm, NoSecretBytesInRenderedOutput) {
    // Real AUTHENTICATE messages: FreeTDS NTLMv2 and tedious from the lab, and a Windows one with
    // a MIC and an encrypted session key from the public captures.
    std::vector<Buf> msgs;
    for (const auto& r : test::load_records("lab_sspi.txt")) {
        if (r.get("origin") == "sspi-message") msgs.push_back(r.bytes);
    }
    for (const auto& r : test::load_records("ntlm_tshark.txt")) {
        if (r.get("messagetype") == "3" && r.get("mic") == "1") msgs.push_back(r.bytes);
    }
    ASSERT_GE(msgs.size(), 6u);
    int checked = 0;
    for (const auto& m : msgs) {
        NtlmMessage msg;
        ASSERT_TRUE(parse_ntlm(Bytes(m), msg).ok());
        const auto& a = std::get<NtlmAuthenticate>(msg.msg);
        const std::string out = to_string(msg) + to_string(classify_sspi(Bytes(m)));
        // The secret regions, located from the header (MS-NLMP §2.2.1.3).
        for (std::size_t field : {12u, 20u, 52u}) {  // LM, NT, EncryptedRandomSessionKey
            const std::uint16_t len = load_u16le(&m[field]);
            const std::uint32_t off = load_u32le(&m[field + 4]);
            if (len < 8 || off + len > m.size()) continue;
            const Buf secret(m.begin() + off, m.begin() + off + std::min<std::size_t>(len, 24));
            if (std::all_of(secret.begin(), secret.end(), [](auto x) { return x == 0; })) continue;
            EXPECT_FALSE(leaks(out, secret)) << "field @" << field << " leaked: " << out;
            ++checked;
        }
        if (a.mic_field_present) {
            EXPECT_FALSE(leaks(out, Buf(m.begin() + 72, m.begin() + 88))) << "MIC leaked";
            ++checked;
        }
    }
    EXPECT_GE(checked, 10);
    // The check itself works: rendering the hex of a response would be caught.
    const Buf probe{1, 2, 3, 4, 5, 6, 7, 8, 9};
    EXPECT_TRUE(leaks("x" + to_hex(Bytes(probe)) + "y", probe));
}

}  // namespace
}  // namespace hopscope::auth
