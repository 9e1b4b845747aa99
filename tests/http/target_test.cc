// api::ParseTarget, the router's reading of a request target: segments are
// split before they are decoded, dot segments are refused even when encoded,
// and query strings decode '+' and escapes; checked on hand-written targets.
#include "http/target.h"

#include <gtest/gtest.h>

namespace billing::api {
namespace {

using Segments = std::vector<std::string>;

TEST(Target, SplitsThePathAndDecodesEachSegmentAfterwards) {
  auto t = ParseTarget("/v1/orgs/acme%2Fdashboard/dashboard");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->segments, (Segments{"v1", "orgs", "acme/dashboard", "dashboard"}));
  EXPECT_EQ(t->path, "/v1/orgs/acme%2Fdashboard/dashboard");
  EXPECT_TRUE(t->query.empty());
}

TEST(Target, ToleratesOneTrailingSlashAndKeepsTheRootAsOneEmptySegment) {
  EXPECT_EQ(ParseTarget("/healthz/")->segments, (Segments{"healthz"}));
  EXPECT_EQ(ParseTarget("/healthz//")->segments, (Segments{"healthz", ""}));
  EXPECT_EQ(ParseTarget("/")->segments, (Segments{""}));
}

TEST(Target, DecodesQueryPairsWithPlusAsSpaceAndTheLastRepeatWinning) {
  auto t = ParseTarget("/v1/orgs/acme/dashboard?months=3&end=2026-01&a+b=c%20d&flag&&months=4");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->path, "/v1/orgs/acme/dashboard");
  EXPECT_EQ(t->query.at("months"), "4");
  EXPECT_EQ(t->query.at("end"), "2026-01");
  EXPECT_EQ(t->query.at("a b"), "c d");
  EXPECT_EQ(t->query.at("flag"), "");
  EXPECT_EQ(t->query.size(), 4u);
}

TEST(Target, RefusesWhatCouldEscapeOrConfuseTheRouter) {
  for (const char* bad : {"/v1/orgs/../ledger/verify", "/v1/orgs/acme/%2e%2e/dashboard",
                          "/./healthz", "/v1/%2E/x", "/v1/orgs/acme/dashboard%", "/v1/%zz",
                          "/v1/%4", "v1/orgs", "", "?a=b", "/v1?a=%", "/v1?%g0=1"}) {
    auto t = ParseTarget(bad);
    EXPECT_FALSE(t.ok()) << bad;
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), Code::kInvalidArgument) << bad;
    }
  }
}

TEST(Target, KeepsDotsThatAreNotWholeSegments) {
  EXPECT_EQ(ParseTarget("/v1/orgs/a.b/invoices/2026-01-cc.1.csv")->segments,
            (Segments{"v1", "orgs", "a.b", "invoices", "2026-01-cc.1.csv"}));
  EXPECT_EQ(ParseTarget("/x/.../y")->segments, (Segments{"x", "...", "y"}));
}

TEST(Target, PercentDecodeNeedsTwoHexDigits) {
  EXPECT_EQ(PercentDecode("%41%6a+", false), "Aj+");
  EXPECT_EQ(PercentDecode("%41%6a+", true), "Aj ");
  EXPECT_EQ(PercentDecode("%00", false), std::string(1, '\0'));
  EXPECT_FALSE(PercentDecode("%4", false).has_value());
  EXPECT_FALSE(PercentDecode("%", true).has_value());
  EXPECT_FALSE(PercentDecode("%G1", true).has_value());
}

}  // namespace
}  // namespace billing::api
