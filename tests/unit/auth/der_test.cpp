// The strict DER reader on hand-built vectors (ITU-T X.690 sections cited per test).
#include "hopscope/auth/der.hpp"

#include <gtest/gtest.h>

#include <memory>

#include "fixtures.hpp"
#include "hopscope/auth/gss.hpp"
#include "hopscope/common/text.hpp"

namespace hopscope::auth::der {
namespace {

using test::Buf;
using Code = DecodeError::Code;

// Tlv values are views: keep every input alive for the whole test program.
DecodeResult read_one(const Buf& b, Tlv& t, LengthRule rule = LengthRule::Der) {
    static std::vector<std::unique_ptr<Buf>> keep;
    keep.push_back(std::make_unique<Buf>(b));
    Reader r(Bytes(*keep.back()), 0, 0, rule);
    return r.next(t);
}

TEST(Der, ReadsShortAndLongDefiniteLengths) {
    Tlv t;
    ASSERT_TRUE(read_one({0x04, 0x02, 0xaa, 0xbb}, t).ok());
    EXPECT_TRUE(t.is_universal(tag::OctetString));
    EXPECT_FALSE(t.constructed);
    EXPECT_EQ(t.value.size(), 2u);
    EXPECT_EQ(t.header, 2u);
    Buf long_form{0x30, 0x81, 0x80};
    long_form.resize(3 + 0x80, 0x00);
    ASSERT_TRUE(read_one(long_form, t).ok());
    EXPECT_TRUE(t.constructed);
    EXPECT_EQ(t.value.size(), 0x80u);
    EXPECT_EQ(t.header, 3u);
}

TEST(Der, RejectsIndefiniteLength) {
    // X.690 §10.1: DER uses the definite form only; 0x80 is BER's indefinite form.
    Tlv t;
    EXPECT_EQ(read_one({0x30, 0x80, 0x04, 0x00, 0x00, 0x00}, t).error().code, Code::BadLength);
    EXPECT_EQ(
        read_one({0x30, 0x80, 0x04, 0x00, 0x00, 0x00}, t, LengthRule::BerDefinite).error().code,
        Code::BadLength);
}

TEST(Der, NonMinimalLengthIsDerErrorButBerDefiniteReadsIt) {
    // X.690 §10.1 (DER: minimum number of octets) vs §8.1.3.5 (BER allows more).
    const Buf short_in_long{0x04, 0x81, 0x02, 0xaa, 0xbb};
    const Buf padded{0x06, 0x82, 0x00, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
    Tlv t;
    EXPECT_EQ(read_one(short_in_long, t).error().code, Code::BadLength);
    EXPECT_EQ(read_one(padded, t).error().code, Code::BadLength);
    ASSERT_TRUE(read_one(padded, t, LengthRule::BerDefinite).ok());
    EXPECT_EQ(oid_to_dotted(t.value), "1.3.6.1.5.5.2");
    ASSERT_TRUE(read_one(short_in_long, t, LengthRule::BerDefinite).ok());
    EXPECT_EQ(t.value.size(), 2u);
}

TEST(Der, RejectsLengthsOverFourOctetsAndTruncation) {
    Tlv t;
    EXPECT_EQ(read_one({0x04, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00}, t).error().code, Code::TooLarge);
    EXPECT_EQ(read_one({0x04, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00}, t).error().code,
              Code::Truncated);
    EXPECT_EQ(read_one({0x04, 0x05, 0x01, 0x02}, t).error().code, Code::Truncated);
    EXPECT_EQ(read_one({0x04}, t).error().code, Code::Truncated);
    EXPECT_EQ(read_one({}, t).error().code, Code::Truncated);
    EXPECT_EQ(read_one({0x04, 0x82, 0x01}, t).error().code, Code::Truncated);
}

TEST(Der, EveryShortAndTwoOctetLengthFormReadsAsX690Says) {
    // The reader takes the usual forms (short, 81 xx, 82 xx xx) inline and the rest out of line:
    // every length octet pair and triple those paths share, with the value complete, one byte
    // short, or with bytes after it, under both rules, against X.690 §8.1.3 / §10.1 read here.
    struct Want {
        bool ok = false;
        Code code{};
        std::size_t header = 0;
        std::size_t len = 0;
    };
    const auto expected = [](const Buf& b, LengthRule rule) {
        Want w;
        const std::size_t l0 = b[1];
        std::size_t header = 2;
        std::size_t len = l0;
        if (l0 == 0x80) return Want{false, Code::BadLength};
        if (l0 > 0x80) {
            const std::size_t n = l0 & 0x7f;
            if (n > 4) return Want{false, Code::TooLarge};
            if (b.size() < 2 + n) return Want{false, Code::Truncated};
            len = 0;
            for (std::size_t i = 0; i < n; ++i)
                len = len << 8 | b[2 + i];
            const bool minimal = len >= 0x80 && (n == 1 || (len >> (8 * (n - 1))) != 0);
            if (!minimal && rule == LengthRule::Der) return Want{false, Code::BadLength};
            header = 2 + n;
        }
        if (b.size() - header < len) return Want{false, Code::Truncated};
        w.ok = true;
        w.header = header;
        w.len = len;
        return w;
    };
    std::vector<Buf> inputs;
    for (unsigned l0 = 0; l0 <= 0x85; ++l0) {
        const std::vector<unsigned> seconds =
            l0 == 0x81 || l0 == 0x82 ? std::vector<unsigned>{0x00, 0x01, 0x7f, 0x80, 0x81, 0xff}
                                     : std::vector<unsigned>{0x00};
        for (const unsigned b2 : seconds) {
            for (const unsigned b3 : {0x00u, 0x05u, 0x80u}) {
                Buf head{0x04, static_cast<std::uint8_t>(l0)};
                if (l0 > 0x80) head.push_back(static_cast<std::uint8_t>(b2));
                if (l0 == 0x82) head.push_back(static_cast<std::uint8_t>(b3));
                Buf probe = head;
                probe.resize(head.size() + 0x10000 + 8, 0x00);
                const Want full = expected(probe, LengthRule::BerDefinite);
                const std::size_t len = full.ok ? full.len : 0;
                for (const long extra : {0L, -1L, 3L}) {
                    if (static_cast<long>(len) + extra < 0) continue;
                    Buf b = head;
                    b.resize(head.size() + static_cast<std::size_t>(static_cast<long>(len) + extra),
                             0x5a);
                    inputs.push_back(b);
                }
            }
        }
    }
    const auto start = [](const Buf& b) {
        std::string h;
        for (std::size_t i = 0; i < b.size() && i < 4; ++i)
            h += std::to_string(b[i]) + " ";
        return h + "(" + std::to_string(b.size()) + " bytes)";
    };
    std::size_t checked = 0;
    for (const Buf& b : inputs) {
        for (const LengthRule rule : {LengthRule::Der, LengthRule::BerDefinite}) {
            Tlv t;
            const Want w = expected(b, rule);
            const DecodeResult r = read_one(b, t, rule);
            ASSERT_EQ(r.ok(), w.ok) << start(b) << " rule " << int(rule);
            if (w.ok) {
                EXPECT_EQ(t.header, w.header) << start(b);
                EXPECT_EQ(t.value.size(), w.len) << start(b);
                EXPECT_EQ(t.total(), w.header + w.len);
                EXPECT_EQ(t.offset, 0u);
            } else {
                EXPECT_EQ(r.error().code, w.code) << start(b) << " " << int(rule);
            }
            ++checked;
        }
    }
    EXPECT_GT(checked, 1000u);
}

TEST(Der, FailedReadLeavesTheReaderWhereItWas) {
    const Buf b{0x04, 0x01, 0xaa, 0x04, 0x05, 0x00};
    Reader r{Bytes(b)};
    Tlv t;
    ASSERT_TRUE(r.next(t).ok());
    EXPECT_EQ(r.offset(), 3u);
    const DecodeResult e = r.next(t);
    EXPECT_EQ(e.error().code, Code::Truncated);
    EXPECT_EQ(e.error().offset, 3u) << "error offsets are absolute";
    EXPECT_EQ(r.offset(), 3u);
}

TEST(Der, MultiByteTagNumbers) {
    // X.690 §8.1.2.4: high tag number form, base 128, no leading 0x80, only for numbers >= 31.
    Tlv t;
    ASSERT_TRUE(read_one({0x9f, 0x1f, 0x01, 0x00}, t).ok());
    EXPECT_EQ(t.cls, TagClass::Context);
    EXPECT_EQ(t.number, 31u);
    ASSERT_TRUE(read_one({0x7f, 0x81, 0x00, 0x00}, t).ok());  // [APPLICATION 128], constructed
    EXPECT_EQ(t.cls, TagClass::Application);
    EXPECT_TRUE(t.constructed);
    EXPECT_EQ(t.number, 128u);
    EXPECT_EQ(read_one({0x1f, 0x1e, 0x00}, t).error().code, Code::BadTag) << "30 fits the low form";
    EXPECT_EQ(read_one({0x1f, 0x80, 0x01, 0x00}, t).error().code, Code::BadTag) << "leading 0x80";
    EXPECT_EQ(read_one({0x1f, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00}, t).error().code, Code::BadTag);
    EXPECT_EQ(read_one({0x1f, 0x81}, t).error().code, Code::Truncated);
}

TEST(Der, NestingLimit) {
    Buf b{0x04, 0x00};
    for (int i = 0; i < 40; ++i)
        b = test::tlv(0x30, b);
    Reader r{Bytes(b)};
    Tlv t;
    ASSERT_TRUE(r.next(t).ok());
    DecodeResult e;
    int depth = 0;
    while (t.constructed) {
        Reader child;
        e = Reader::enter(t, child);
        if (!e.ok()) break;
        ASSERT_TRUE(child.next(t).ok());
        ++depth;
    }
    EXPECT_EQ(e.error().code, Code::TooDeep);
    EXPECT_EQ(depth, static_cast<int>(kMaxDepth));
}

TEST(Der, Integers) {
    // X.690 §8.3: two's complement, minimal octets.
    auto val = [](const Buf& b, std::int64_t& v) {
        Tlv t;
        if (auto e = read_one(b, t); !e.ok()) return e;
        return as_integer(t, v);
    };
    std::int64_t v = 0;
    ASSERT_TRUE(val({0x02, 0x01, 0xff}, v).ok());
    EXPECT_EQ(v, -1);
    ASSERT_TRUE(val({0x02, 0x02, 0x00, 0x80}, v).ok());
    EXPECT_EQ(v, 128);
    ASSERT_TRUE(val({0x02, 0x02, 0xff, 0x7b}, v).ok());  // KRB etype -133
    EXPECT_EQ(v, -133);
    EXPECT_EQ(val({0x02, 0x02, 0x00, 0x7f}, v).error().code, Code::BadValue);
    EXPECT_EQ(val({0x02, 0x02, 0xff, 0x80}, v).error().code, Code::BadValue);
    EXPECT_EQ(val({0x02, 0x00}, v).error().code, Code::BadLength);
    EXPECT_EQ(val({0x02, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9}, v).error().code, Code::TooLarge);
    EXPECT_EQ(val({0x0a, 0x01, 0x01}, v).error().code, Code::BadTag) << "ENUMERATED is not INTEGER";

    Tlv t;
    ASSERT_TRUE(read_one({0x02, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff}, t).ok());
    std::uint32_t u = 0;
    ASSERT_TRUE(as_uint32(t, u).ok());
    EXPECT_EQ(u, 0xffffffffu);
    std::int32_t i = 0;
    EXPECT_EQ(as_int32(t, i).error().code, Code::BadValue);
    ASSERT_TRUE(read_one({0x0a, 0x01, 0x03}, t).ok());
    ASSERT_TRUE(as_enumerated(t, v).ok());
    EXPECT_EQ(v, 3);
}

TEST(Der, Int32AgreesWithIntegerOnEveryShortEncoding) {
    // as_int32 reads one to four minimal octets inline and leaves the rest to as_integer: the
    // two agree (value, error code) on every one- and two-octet content, three- and four-octet
    // contents around each sign and minimality edge, five octets, and other tags.
    std::vector<Buf> contents;
    for (unsigned a = 0; a < 256; ++a) {
        contents.push_back({static_cast<std::uint8_t>(a)});
        for (unsigned b = 0; b < 256; ++b)
            contents.push_back({static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b)});
    }
    for (const unsigned a : {0x00u, 0x01u, 0x7fu, 0x80u, 0xfeu, 0xffu})
        for (const unsigned b : {0x00u, 0x7fu, 0x80u, 0xffu}) {
            contents.push_back({static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b), 0x12});
            contents.push_back(
                {static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b), 0x34, 0x56});
            contents.push_back(
                {static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b), 0x34, 0x56, 0x78});
        }
    contents.push_back({});
    std::size_t checked = 0;
    for (const Buf& c : contents) {
        for (const std::uint8_t tag_byte :
             {std::uint8_t{0x02}, std::uint8_t{0x0a}, std::uint8_t{0x22}, std::uint8_t{0x82}}) {
            Buf b{tag_byte, static_cast<std::uint8_t>(c.size())};
            b.insert(b.end(), c.begin(), c.end());
            Tlv t;
            ASSERT_TRUE(read_one(b, t).ok());
            std::int64_t wide = 0;
            std::int32_t narrow = 0;
            const DecodeResult w = as_integer(t, wide);
            const DecodeResult n = as_int32(t, narrow);
            const bool fits = w.ok() && wide >= INT32_MIN && wide <= INT32_MAX;
            ASSERT_EQ(n.ok(), fits) << int(tag_byte) << " " << c.size() << " " << wide;
            if (fits) {
                EXPECT_EQ(narrow, wide);
            } else if (!w.ok()) {
                EXPECT_EQ(n.error().code, w.error().code);
            } else {
                EXPECT_EQ(n.error().code, Code::BadValue);
            }
            ++checked;
        }
    }
    EXPECT_GT(checked, 200000u);
}

TEST(Der, BitStringsUseMsbFirstFlagOrder) {
    // X.690 §8.6; KDCOptions 0x40810010 (forwardable, renewable, canonicalize, renewable-ok) from
    // a real AS-REQ (krb_ad_happycraft_ndpi.pcap frame 1).
    Tlv t;
    std::uint32_t bits = 0;
    std::size_t n = 0;
    ASSERT_TRUE(read_one({0x03, 0x05, 0x00, 0x40, 0x81, 0x00, 0x10}, t).ok());
    ASSERT_TRUE(as_bit_string(t, bits, n).ok());
    EXPECT_EQ(bits, 0x40810010u);
    EXPECT_EQ(n, 32u);
    ASSERT_TRUE(read_one({0x03, 0x02, 0x07, 0x80}, t).ok());  // one meaningful bit: bit 0
    ASSERT_TRUE(as_bit_string(t, bits, n).ok());
    EXPECT_EQ(bits, 0x80000000u);
    EXPECT_EQ(n, 1u);
    ASSERT_TRUE(read_one({0x03, 0x01, 0x01}, t).ok());
    EXPECT_EQ(as_bit_string(t, bits, n).error().code, Code::BadValue);
    ASSERT_TRUE(read_one({0x03, 0x02, 0x08, 0x00}, t).ok());
    EXPECT_EQ(as_bit_string(t, bits, n).error().code, Code::BadValue);
    ASSERT_TRUE(read_one({0x23, 0x00}, t).ok());  // constructed BIT STRING is BER-only
    EXPECT_EQ(as_bit_string(t, bits, n).error().code, Code::BadTag);
}

TEST(Der, StringsTimesBooleans) {
    Tlv t;
    std::string s;
    ASSERT_TRUE(read_one(test::gstring("LAB.TEST"), t).ok());
    ASSERT_TRUE(as_string(t, s).ok());
    EXPECT_EQ(s, "LAB.TEST");
    ASSERT_TRUE(read_one(test::tlv(0x04, test::str("x")), t).ok());
    EXPECT_EQ(as_string(t, s).error().code, Code::BadTag);
    // RFC 4120 §5.2.3: KerberosTime is GeneralizedTime "YYYYMMDDHHMMSSZ", no fractions.
    ASSERT_TRUE(read_one(test::tlv(0x18, test::str("20190205033848Z")), t).ok());
    ASSERT_TRUE(as_kerberos_time(t, s).ok());
    EXPECT_EQ(s, "20190205033848Z");
    ASSERT_TRUE(read_one(test::tlv(0x18, test::str("20190205033848.5Z")), t).ok());
    EXPECT_EQ(as_kerberos_time(t, s).error().code, Code::BadValue);
    ASSERT_TRUE(read_one(test::tlv(0x18, test::str("2019020503384xZ")), t).ok());
    EXPECT_EQ(as_kerberos_time(t, s).error().code, Code::BadValue);
    bool b = false;
    ASSERT_TRUE(read_one({0x01, 0x01, 0xff}, t).ok());
    ASSERT_TRUE(as_boolean(t, b).ok());
    EXPECT_TRUE(b);
    ASSERT_TRUE(read_one({0x01, 0x01, 0x01}, t).ok());  // X.690 §11.1: DER TRUE is FF
    EXPECT_EQ(as_boolean(t, b).error().code, Code::BadValue);
}

TEST(Der, ObjectIdentifiers) {
    // X.690 §8.19.5 example: { 2 100 3 } is 81 34 03.
    EXPECT_EQ(oid_to_dotted(Bytes(Buf{0x81, 0x34, 0x03})), "2.100.3");
    // protocol.md §5.1 / RFC 4121 §1.1, MS-NLMP, MS-NEGOEX, RFC 4178.
    const struct {
        Buf der;
        const char* dotted;
        Mech mech;
    } cases[] = {
        {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02},
         "1.2.840.113554.1.2.2",
         Mech::Kerberos},
        {{0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02},
         "1.2.840.48018.1.2.2",
         Mech::MsKerberos},
        {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x03},
         "1.2.840.113554.1.2.2.3",
         Mech::KerberosU2U},
        {{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a},
         "1.3.6.1.4.1.311.2.2.10",
         Mech::Ntlmssp},
        {{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x1e},
         "1.3.6.1.4.1.311.2.2.30",
         Mech::NegoEx},
        {{0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}, "1.3.6.1.5.5.2", Mech::Spnego},
        {{0x2b, 0x06, 0x01, 0x05, 0x05, 0x03}, "1.3.6.1.5.5.3", Mech::Unknown},
    };
    for (const auto& c : cases) {
        const Oid o = make_oid(Bytes(c.der));
        EXPECT_EQ(o.dotted(), c.dotted);
        EXPECT_EQ(oid_to_dotted(Bytes(c.der)), c.dotted);  // the known ones are matched as octets
        EXPECT_EQ(o.mech, c.mech) << c.dotted;
        EXPECT_EQ(o.name(), c.mech == Mech::Unknown ? c.dotted : to_string(c.mech)) << c.dotted;
    }
    EXPECT_EQ(oid_to_dotted(Bytes(Buf{})), "");
    EXPECT_EQ(oid_to_dotted(Bytes(Buf{0x2b, 0x86})), "") << "unterminated arc";
    EXPECT_EQ(oid_to_dotted(Bytes(Buf{0x2b, 0x80, 0x01})), "") << "non-minimal arc";
    Tlv t;
    Bytes c;
    ASSERT_TRUE(read_one({0x06, 0x02, 0x2b, 0x86}, t).ok());
    EXPECT_EQ(as_oid(t, c).error().code, Code::BadValue);
}

TEST(Der, ExplicitTagsWrapExactlyOneValue) {
    Tlv w, inner;
    ASSERT_TRUE(read_one(test::ctx(1, test::integer(5)), w).ok());
    ASSERT_TRUE(explicit_inner(w, inner).ok());
    EXPECT_TRUE(inner.is_universal(tag::Integer));
    ASSERT_TRUE(read_one(test::ctx(1, test::cat({test::integer(5), test::integer(6)})), w).ok());
    EXPECT_EQ(explicit_inner(w, inner).error().code, Code::BadLength);
    ASSERT_TRUE(read_one({0x81, 0x01, 0x05}, w).ok());  // primitive [1]: IMPLICIT, not EXPLICIT
    EXPECT_EQ(explicit_inner(w, inner).error().code, Code::BadTag);
}

TEST(Der, ExplicitInnerGivesWhatAReaderEnteringTheWrapperGives) {
    // explicit_inner() reads the usual wrapped element without a reader of its own: for every
    // form (short and long lengths, non-minimal ones under both rules, a multi-byte tag, trailing
    // bytes, nothing inside, a primitive wrapper, the nesting limit), at an offset not 0, its
    // answer must be the one of entering the wrapper with a reader, field for field.
    using test::ctx;
    using test::tlv;
    const std::vector<Buf> wrappers = {
        ctx(1, test::integer(5)),
        ctx(2, tlv(0x04, Buf(200, 0x11))),  // inner 81 C8
        ctx(3, tlv(0x04, Buf(300, 0x22))),  // inner 82 01 2C, wrapper 82 01 30
        ctx(0, test::seq({test::integer(1)})),
        Buf{0xa1, 0x04, 0x04, 0x81, 0x01, 0x07},  // non-minimal inner length
        Buf{0xa1, 0x05, 0x04, 0x82, 0x00, 0x01, 0x07},
        Buf{0xa1, 0x03, 0x1f, 0x81, 0x00},  // inner tag number 128
        ctx(1, test::cat({test::integer(5), test::integer(6)})),
        Buf{0xa1, 0x00},
        Buf{0xa1, 0x01, 0x04},
        Buf{0xa1, 0x03, 0x04, 0x05, 0x00},  // inner longer than the wrapper
        Buf{0x81, 0x01, 0x05},              // primitive
    };
    auto reference = [](const Tlv& w, Tlv& inner) -> DecodeResult {
        Reader r;
        if (auto e = Reader::enter(w, r); !e.ok()) return e;
        if (auto e = r.next(inner); !e.ok()) return e;
        if (!r.at_end()) return detail::trailing_bytes(r.offset());
        return {};
    };
    int checked = 0;
    for (const Buf& b : wrappers) {
        for (const LengthRule rule : {LengthRule::Der, LengthRule::BerDefinite}) {
            for (const unsigned depth : {0u, kMaxDepth - 1, kMaxDepth}) {
                const std::string what = to_hex(Bytes(b)) + " rule " +
                                         std::to_string(static_cast<int>(rule)) + " depth " +
                                         std::to_string(depth);
                Reader outer(Bytes(b), 100, depth, rule);
                Tlv w;
                ASSERT_TRUE(outer.next(w).ok()) << what;
                Tlv got, want;
                const DecodeResult g = explicit_inner(w, got);
                const DecodeResult x = reference(w, want);
                ASSERT_EQ(g.ok(), x.ok()) << what;
                ++checked;
                if (!x.ok()) {
                    EXPECT_EQ(g.error().code, x.error().code) << what;
                    EXPECT_EQ(g.error().offset, x.error().offset) << what;
                    EXPECT_EQ(g.error().detail, x.error().detail) << what;
                    continue;
                }
                EXPECT_EQ(got.cls, want.cls) << what;
                EXPECT_EQ(got.constructed, want.constructed) << what;
                EXPECT_EQ(got.number, want.number) << what;
                EXPECT_EQ(got.value.data(), want.value.data()) << what;
                EXPECT_EQ(got.value.size(), want.value.size()) << what;
                EXPECT_EQ(got.offset, want.offset) << what;
                EXPECT_EQ(got.header, want.header) << what;
                EXPECT_EQ(got.depth, want.depth) << what;
                EXPECT_EQ(got.rule, want.rule) << what;
            }
        }
    }
    EXPECT_EQ(checked, static_cast<int>(wrappers.size()) * 6);
    // And the fields themselves, for the usual case: [1] at 100 wrapping INTEGER 5.
    const Buf one = ctx(1, test::integer(5));
    Reader outer(Bytes(one), 100, 3, LengthRule::BerDefinite);
    Tlv w, inner;
    ASSERT_TRUE(outer.next(w).ok());
    ASSERT_TRUE(explicit_inner(w, inner).ok());
    EXPECT_EQ(inner.offset, 102u);
    EXPECT_EQ(inner.header, 2u);
    EXPECT_EQ(inner.depth, 4u);
    EXPECT_EQ(inner.rule, LengthRule::BerDefinite);
    EXPECT_EQ(inner.value.data(), one.data() + 4);
}

}  // namespace
}  // namespace hopscope::auth::der
