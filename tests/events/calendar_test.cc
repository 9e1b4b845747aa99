// RFC 3339 times and months parse strictly, exact to the nanosecond, and map
// to the right UTC month over the whole 0000..9999 range.
#include "events/calendar.h"

#include <gtest/gtest.h>

namespace billing {
namespace {

Timestamp T(const char* text) {
  auto t = ParseTimestamp(text, "t");
  EXPECT_TRUE(t.ok()) << text << ": " << t.status().ToString();
  return t.ok() ? *t : Timestamp();
}

TEST(Calendar, ParsesUtcTimes) {
  Timestamp t = T("2026-10-03T12:00:00Z");
  EXPECT_EQ(t.seconds(), 1791028800LL);
  EXPECT_EQ(t.nanos(), 0);
  EXPECT_EQ(FormatMonth(MonthOf(t)), "2026-10");
  Timestamp frac = T("2024-02-29T23:59:59.123456789Z");
  EXPECT_EQ(frac.nanos(), 123456789);
  EXPECT_EQ(FormatTimestamp(frac), "2024-02-29T23:59:59.123456789Z");
  EXPECT_EQ(T("2024-02-29T23:59:59.5Z").nanos(), 500'000'000);
}

TEST(Calendar, InstantsANanosecondApartAreDistinctAndOrdered) {
  EXPECT_LT(T("2026-01-15T12:00:00.000000499Z"), T("2026-01-15T12:00:00.000000500Z"));
  EXPECT_LT(T("2026-01-31T23:59:59.999999997Z"), T("2026-01-31T23:59:59.999999998Z"));
  EXPECT_LT(T("2026-01-01T00:00:00.999999999Z"), T("2026-01-01T00:00:01Z"));
  EXPECT_EQ(T("2026-01-01T00:00:00.1Z"), T("2026-01-01T00:00:00.100000000Z"));
  // Before the epoch, seconds floor: the later instant still compares greater.
  EXPECT_LT(T("1969-12-31T23:59:59.000000001Z"), T("1969-12-31T23:59:59.000000002Z"));
  EXPECT_LT(T("1969-12-31T23:59:59.999999999Z"), T("1970-01-01T00:00:00Z"));
}

TEST(Calendar, FormatRoundTripsExactlyAndKeepsMicrosecondText) {
  for (const char* text : {"2026-10-03T12:00:00.000000001Z", "0000-01-01T00:00:00.999999999Z",
                           "9999-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59.000000500Z",
                           "2026-10-03T12:00:00.123456000Z"}) {
    Timestamp t = T(text);
    EXPECT_EQ(T(FormatTimestamp(t).c_str()), t) << text;
  }
  EXPECT_EQ(FormatTimestamp(T("2026-10-03T12:00:00.000000001Z")), "2026-10-03T12:00:00.000000001Z");
  // Whole microseconds print as they always have (recorded_at in answers).
  EXPECT_EQ(FormatTimestamp(T("2026-10-03T12:00:00Z")), "2026-10-03T12:00:00.000000Z");
  EXPECT_EQ(FormatTimestamp(T("2026-10-03T12:00:00.123456000Z")), "2026-10-03T12:00:00.123456Z");
  EXPECT_EQ(FormatTimestamp(Timestamp::FromMicros(1'791'028'800'000'001)),
            "2026-10-03T12:00:00.000001Z");
  EXPECT_EQ(FormatTimestamp(Timestamp::FromMicros(-1)), "1969-12-31T23:59:59.999999Z");
}

TEST(Calendar, MoreThanNineFractionDigitsAreRefused) {
  auto r = ParseTimestamp("2026-10-03T12:00:00.1234567890Z", "occurred_at");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("occurred_at"), std::string::npos) << r.status().message();
  EXPECT_FALSE(ParseTimestamp("2026-10-03T12:00:00.0000000000Z", "t").ok());
  EXPECT_TRUE(ParseTimestamp("2026-10-03T12:00:00.000000000Z", "t").ok());
}

TEST(Calendar, RejectsNonUtcAndMalformedTimes) {
  for (const char* bad :
       {"2026-10-03T12:00:00", "2026-10-03T12:00:00+02:00", "2026-10-03 12:00:00Z",
        "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-10-03T24:00:00Z",
        "2026-10-03T12:00:60Z", "2026-10-03T12:00:00.Z", "26-10-03T12:00:00Z",
        "2026-10-03T12:00:00.1x2Z", "2026-10-03T12:00:00.-1Z", ""}) {
    auto r = ParseTimestamp(bad, "occurred_at");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
}

TEST(Calendar, YearsZeroToNineThousandNineHundredNinetyNineAreExact) {
  Timestamp first = T("0000-01-01T00:00:00Z");
  Timestamp last = T("9999-12-31T23:59:59.999999999Z");
  EXPECT_LT(first, last);
  EXPECT_EQ(MonthOf(first), kMonthFirst);
  EXPECT_EQ(MonthOf(last), kMonthLast);
  EXPECT_EQ(FormatMonth(MonthOf(first)), "0000-01");
  EXPECT_EQ(FormatMonth(MonthOf(last)), "9999-12");
  EXPECT_EQ(MonthStart(kMonthFirst), first);
  EXPECT_EQ(FormatTimestamp(first), "0000-01-01T00:00:00.000000Z");
  // 0000 is a leap year in the proleptic Gregorian calendar.
  EXPECT_EQ(FormatMonth(MonthOf(T("0000-02-29T12:00:00Z"))), "0000-02");
  EXPECT_FALSE(ParseTimestamp("0000-02-30T00:00:00Z", "t").ok());
}

TEST(Calendar, MonthBoundariesAreUtcToTheNanosecond) {
  Timestamp last = T("2025-12-31T23:59:59.999999999Z");
  Timestamp first = T("2026-01-01T00:00:00Z");
  EXPECT_EQ(FormatMonth(MonthOf(last)), "2025-12");
  EXPECT_EQ(FormatMonth(MonthOf(first)), "2026-01");
  EXPECT_EQ(MonthStart(MonthOf(first)), first);
  EXPECT_LT(last, MonthStart(MonthOf(first)));
  // Before the epoch the floor still lands in the right month.
  EXPECT_EQ(FormatMonth(MonthOf(T("1969-12-31T23:59:59.999999999Z"))), "1969-12");
  EXPECT_EQ(FormatMonth(MonthOf(T("1970-01-01T00:00:00.000000001Z"))), "1970-01");
  EXPECT_EQ(FormatMonth(MonthOf(T("2024-02-29T23:59:59.999999999Z"))), "2024-02");
  EXPECT_EQ(FormatMonth(MonthOf(T("2024-03-01T00:00:00.000000001Z"))), "2024-03");
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

TEST(Calendar, AMonthRangeReachingBeforeYearZeroIsRefused) {
  auto first = FirstMonthOfRange(*ParseMonth("0000-01", "end"), 1, "end");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(FormatMonth(*first), "0000-01");
  auto twelve = FirstMonthOfRange(*ParseMonth("0000-12", "end"), 12, "end");
  ASSERT_TRUE(twelve.ok());
  EXPECT_EQ(FormatMonth(*twelve), "0000-01");
  EXPECT_EQ(FormatMonth(*FirstMonthOfRange(*ParseMonth("2026-02", "end"), 3, "end")), "2025-12");
  for (auto [end, count] : {std::pair{"0000-01", 2}, {"0000-12", 13}, {"0002-06", 36}}) {
    auto r = FirstMonthOfRange(*ParseMonth(end, "end"), count, "end");
    ASSERT_FALSE(r.ok()) << end << " " << count;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("0000-01"), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(Month{-1}.valid());
  EXPECT_TRUE(kMonthFirst.valid());
  EXPECT_TRUE(kMonthLast.valid());
  EXPECT_FALSE(kMonthLast.next().valid());
}

}  // namespace
}  // namespace billing
