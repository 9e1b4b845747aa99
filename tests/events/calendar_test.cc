// RFC 3339 times and months parse strictly and map to the right UTC month.
#include "events/calendar.h"

#include <gtest/gtest.h>

namespace billing {
namespace {

TEST(Calendar, ParsesUtcTimes) {
  auto t = ParseTimestamp("2026-10-03T12:00:00Z", "t");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->micros, 1791028800LL * 1'000'000);
  EXPECT_EQ(FormatMonth(MonthOf(*t)), "2026-10");
  auto frac = ParseTimestamp("2024-02-29T23:59:59.123456789Z", "t");
  ASSERT_TRUE(frac.ok());
  EXPECT_EQ(FormatTimestamp(*frac), "2024-02-29T23:59:59.123456Z");
}

TEST(Calendar, RejectsNonUtcAndMalformedTimes) {
  for (const char* bad : {"2026-10-03T12:00:00", "2026-10-03T12:00:00+02:00", "2026-10-03 12:00:00Z",
                          "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-10-03T24:00:00Z",
                          "2026-10-03T12:00:60Z", "2026-10-03T12:00:00.Z", "26-10-03T12:00:00Z", ""}) {
    auto r = ParseTimestamp(bad, "occurred_at");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
}

TEST(Calendar, MonthBoundariesAreUtc) {
  auto last = ParseTimestamp("2025-12-31T23:59:59Z", "t");
  auto first = ParseTimestamp("2026-01-01T00:00:00Z", "t");
  ASSERT_TRUE(last.ok() && first.ok());
  EXPECT_EQ(FormatMonth(MonthOf(*last)), "2025-12");
  EXPECT_EQ(FormatMonth(MonthOf(*first)), "2026-01");
  EXPECT_EQ(MonthStart(MonthOf(*first)), *first);
}

TEST(Calendar, ParsesMonths) {
  auto m = ParseMonth("2026-02", "month");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->year(), 2026);
  EXPECT_EQ(m->month(), 2);
  EXPECT_EQ(FormatMonth(m->next()), "2026-03");
  EXPECT_EQ(FormatMonth(Month{m->index - 2}), "2025-12");
  for (const char* bad : {"2026-2", "2026-00", "2026-13", "202602", "2026/02", "2026-02-01", ""}) {
    EXPECT_FALSE(ParseMonth(bad, "month").ok()) << bad;
  }
}

}  // namespace
}  // namespace billing
