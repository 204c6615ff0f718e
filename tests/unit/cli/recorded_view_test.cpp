// The proxy's view of the traffic written into its recording's section header and read back by
// analyze (tools/hopscope/recorded_view.hpp): the text round-trips, damage is refused, and a
// real recording carries it where read_pcapng_secrets finds it.
#include "recorded_view.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "hopscope/captures/pcapng_secrets.hpp"
#include "hopscope/proxy/recorder.hpp"

namespace {

using hopscope::Endpoint;
using hopscope::IpAddress;
using hopscope::analysis::Analyzer;
using hopscope::cli::view_comment;
using hopscope::cli::view_from_comment;

Analyzer::ProxyView sample() {
    Analyzer::ProxyView v;
    v.active = true;
    v.terminates_tls = true;
    v.explicit_upstreams.push_back(Endpoint{IpAddress::v4_from(0x0a4d0003), 1433});
    std::uint8_t six[16] = {0x20, 0x01, 0x0d, 0xb8};
    six[15] = 7;
    v.explicit_upstreams.push_back(Endpoint{IpAddress::v6_from_bytes(six), 14330});
    v.proxy_names = {"sqlpx", "sqlpx.lab.test", "10.77.0.9"};
    return v;
}

TEST(RecordedView, TheTextRoundTrips) {
    const Analyzer::ProxyView v = sample();
    const std::string text = view_comment(v);
    EXPECT_EQ(text,
              "hopscope proxy view 1; tls-terminate=yes; explicit=10.77.0.3/1433,"
              "2001:db8::7/14330; names=sqlpx,sqlpx.lab.test,10.77.0.9");
    const auto back = view_from_comment(text);
    ASSERT_TRUE(back);
    EXPECT_TRUE(back->active);
    EXPECT_TRUE(back->terminates_tls);
    EXPECT_EQ(back->explicit_upstreams, v.explicit_upstreams);
    EXPECT_EQ(back->proxy_names, v.proxy_names);
    // a transparent proxy passing TLS through: nothing explicit, no names
    Analyzer::ProxyView plain;
    plain.active = true;
    const auto p = view_from_comment(view_comment(plain));
    ASSERT_TRUE(p);
    EXPECT_FALSE(p->terminates_tls);
    EXPECT_TRUE(p->explicit_upstreams.empty());
    EXPECT_TRUE(p->proxy_names.empty());
}

TEST(RecordedView, OtherTextAndDamageAreNotAView) {
    for (const char* bad :
         {"", "recorded by tcpdump", "hopscope proxy view 2; tls-terminate=yes",
          "hopscope proxy view 1; tls-terminate=maybe", "hopscope proxy view 1; explicit=10.77.0.3",
          "hopscope proxy view 1; "
          "explicit=nowhere/1433",
          "hopscope proxy view 1; explicit=10.77.0.3/99999",
          "hopscope proxy view 1; tls-terminate"})
        EXPECT_FALSE(view_from_comment(bad)) << bad;
    // A name that would not read back is left out of the text, not written broken.
    Analyzer::ProxyView v;
    v.proxy_names = {"good", "bad;name", "with space"};
    const auto back = view_from_comment(view_comment(v));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->proxy_names, std::vector<std::string>{"good"});
}

TEST(RecordedView, ARecordingCarriesItInItsSectionHeader) {
    const std::string path =
        ::testing::TempDir() + "hopscope-view-" + std::to_string(::getpid()) + ".pcapng";
    std::string err;
    hopscope::proxy::RecorderOptions o;
    o.path = path;
    o.section_comment = view_comment(sample());
    {
        auto rec = hopscope::proxy::Recorder::open(o, err);
        ASSERT_TRUE(rec) << err;
    }
    const auto s = hopscope::captures::read_pcapng_secrets(path);
    ASSERT_EQ(s.section_comments.size(), 1u);
    EXPECT_EQ(s.section_comments[0], o.section_comment);
    const auto v = view_from_comment(s.section_comments[0]);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->terminates_tls);
    // without one, the header has none
    o.section_comment.clear();
    {
        auto rec = hopscope::proxy::Recorder::open(o, err);
        ASSERT_TRUE(rec) << err;
    }
    EXPECT_TRUE(hopscope::captures::read_pcapng_secrets(path).section_comments.empty());
    std::remove(path.c_str());
}

}  // namespace
