// Money parsing, formatting and rounding are exact: checked against values
// computed by hand, including the edges of int64 and of the minor units.
#include "events/money.h"

#include <gtest/gtest.h>

namespace billing {
namespace {

Nanos Parse(const char* text) {
  auto r = ParseDecimal(text, "amount");
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : -1;
}

TEST(Money, ParsesDecimalsIntoNanoUnits) {
  EXPECT_EQ(Parse("0"), 0);
  EXPECT_EQ(Parse("2.304"), 2'304'000'000);
  EXPECT_EQ(Parse("0.000016060"), 16'060);
  EXPECT_EQ(Parse("34.294151296"), 34'294'151'296);
  EXPECT_EQ(Parse("9223372036.854775807"), INT64_MAX);
}

TEST(Money, RejectsMalformedDecimals) {
  for (const char* bad : {"", "-1", "+1", "1e3", ".5", "1.", "1.2.3", " 1", "1 ", "0x10", "1,5",
                          "NaN", "1.0000000001", "9223372036.854775808", "99999999999999999999"}) {
    auto r = ParseDecimal(bad, "amount");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
      EXPECT_NE(r.status().message().find("amount"), std::string::npos);
    }
  }
}

TEST(Money, FormatsWithExactDigits) {
  EXPECT_EQ(FormatNanos(16'060), "0.000016060");
  EXPECT_EQ(FormatNanos(-1'000'000'000), "-1.000000000");
  EXPECT_EQ(FormatNanos(12'350'000'000, 2), "12.35");
  EXPECT_EQ(FormatNanos(0, 2), "0.00");
  EXPECT_EQ(FormatNanos(3657'000'000'000, 0), "3657");
  EXPECT_EQ(FormatNanos(-10'000'000, 2), "-0.01");
  EXPECT_EQ(FormatNanos(5'000'000, 3), "0.005");
}

TEST(Money, RoundsHalfAwayFromZero) {
  EXPECT_EQ(RoundHalfAwayFromZero(12'345'000'000, 2), 12'350'000'000);
  EXPECT_EQ(RoundHalfAwayFromZero(12'344'999'999, 2), 12'340'000'000);
  EXPECT_EQ(RoundHalfAwayFromZero(-12'345'000'000, 2), -12'350'000'000);
  EXPECT_EQ(RoundHalfAwayFromZero(-12'344'999'999, 2), -12'340'000'000);
  EXPECT_EQ(RoundHalfAwayFromZero(3656'500'000'000, 0), 3657'000'000'000);
  EXPECT_EQ(RoundHalfAwayFromZero(1'000'500'000, 3), 1'001'000'000);
  EXPECT_EQ(RoundHalfAwayFromZero(7, 9), 7);
}

TEST(Money, SumsNeverOverflow) {
  Sum total = 0;
  for (int i = 0; i < 1000; ++i) total += INT64_MAX;
  EXPECT_EQ(SumToString(total), "9223372036854775807000");
  EXPECT_EQ(FormatNanos(total, 9), "9223372036854.775807000");
}

TEST(Money, KnowsMinorUnits) {
  EXPECT_EQ(MinorUnitDigits("USD"), 2);
  EXPECT_EQ(MinorUnitDigits("EUR"), 2);
  EXPECT_EQ(MinorUnitDigits("JPY"), 0);
  EXPECT_EQ(MinorUnitDigits("BHD"), 3);
  EXPECT_EQ(MinorUnitDigits("KWD"), 3);
}

}  // namespace
}  // namespace billing
