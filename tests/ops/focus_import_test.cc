// The FOCUS importer's parts in-process: the CSV reader on RFC 4180 traps,
// decimal rounding half away from zero, FOCUS timestamps, the provider map,
// and row conversion (credits, NULLs, repeated rows, unmapped rows).
#include "ops/focus_import.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "ops/csv_reader.h"

namespace billing::ops {
namespace {

using Json = nlohmann::json;

std::vector<CsvRecord> ReadAll(const std::string& text) {
  std::istringstream in(text);
  CsvReader reader(in);
  std::vector<CsvRecord> out;
  CsvRecord r;
  for (;;) {
    auto got = reader.Next(&r);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    if (!got.ok() || !*got) break;
    out.push_back(r);
  }
  return out;
}

TEST(CsvReader, QuotedFieldsKeepCommasQuotesAndLineBreaks) {
  auto rows = ReadAll(
      "\xEF\xBB\xBF"
      "a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\n\n1,,\"\"\n");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][0], "a");  // byte order mark dropped
  EXPECT_EQ(rows[1][0], "x, y");
  EXPECT_EQ(rows[1][1], "say \"hi\"");
  EXPECT_EQ(rows[1][2], "two\nlines");
  EXPECT_EQ(rows[2][0], "1");
  EXPECT_FALSE(rows[2][1].has_value());  // unquoted empty: absent
  EXPECT_EQ(rows[2][2], "");             // quoted empty: present
}

TEST(CsvReader, LastRecordWithoutLineEndIsRead) {
  auto rows = ReadAll("h1,h2\nv1,v2");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1][1], "v2");
}

TEST(CsvReader, UnterminatedQuoteIsAnError) {
  std::istringstream in("h\n\"never closed\n");
  CsvReader reader(in);
  CsvRecord r;
  auto header = reader.Next(&r);
  ASSERT_TRUE(header.ok() && *header);  // records before the error still come through
  auto got = reader.Next(&r);
  EXPECT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kInvalidArgument);
}

TEST(FocusImport, DecimalsRoundHalfAwayFromZeroToNineDigits) {
  EXPECT_EQ(*ParseRoundedNanos("0.00001605990"), 16060);
  EXPECT_EQ(*ParseRoundedNanos("0.00000000050"), 1);  // exactly half: away from zero
  EXPECT_EQ(*ParseRoundedNanos("0.00000000049"), 0);
  EXPECT_EQ(*ParseRoundedNanos("-0.00000000050"), -1);
  EXPECT_EQ(*ParseRoundedNanos("-2.61370000000"), -2613700000);
  EXPECT_EQ(*ParseRoundedNanos("12"), 12000000000);
  EXPECT_EQ(*ParseRoundedNanos("1.5E-7"), 150);
  EXPECT_EQ(*ParseRoundedNanos("2e3"), 2000000000000);
  EXPECT_EQ(*ParseRoundedNanos("0.0000000000001"), 0);
  EXPECT_FALSE(ParseRoundedNanos("").ok());
  EXPECT_FALSE(ParseRoundedNanos("NULL").ok());
  EXPECT_FALSE(ParseRoundedNanos("1.2.3").ok());
  EXPECT_FALSE(ParseRoundedNanos("99999999999").ok());  // beyond int64 nano-units
}

// Reconcile reads the bill at 18 digits with the same parser: nothing a
// FOCUS row carries is rounded there, and an Int128 bound replaces int64's.
TEST(FocusImport, ScaledDecimalsKeepTheBillsOwnDigits) {
  EXPECT_EQ(ParseScaledDecimal("0.00001605990", 18).value(), Sum{16059900000000});
  EXPECT_EQ(ParseScaledDecimal("-1.5E-17", 18).value(), Sum{-15});
  EXPECT_EQ(ParseScaledDecimal("0.0000000000000000005", 18).value(), Sum{1});  // half: away
  EXPECT_EQ(ParseScaledDecimal("99999999999", 18).value(),
            Sum{99999999999} * Sum{1000000000} * Sum{1000000000});
  EXPECT_FALSE(ParseScaledDecimal("1e30", 18).ok());  // 48 digits: beyond an Int128
  EXPECT_FALSE(ParseScaledDecimal("1e", 18).ok());
  EXPECT_FALSE(ParseScaledDecimal(".", 18).ok());
}

TEST(FocusImport, TimestampsBecomeRfc3339Utc) {
  EXPECT_EQ(*NormalizeFocusTime("2024-09-18 22:00:00"), "2024-09-18T22:00:00Z");
  EXPECT_EQ(*NormalizeFocusTime("2024-09-18T22:00:00Z"), "2024-09-18T22:00:00Z");
  EXPECT_EQ(*NormalizeFocusTime("2024-09-18T22:00:00+00:00"), "2024-09-18T22:00:00Z");
  EXPECT_EQ(*NormalizeFocusTime("2024-09-01"), "2024-09-01T00:00:00Z");
  EXPECT_FALSE(NormalizeFocusTime("2024-09-18T22:00:00+02:00").ok());
  EXPECT_FALSE(NormalizeFocusTime("18/09/2024").ok());
}

TEST(FocusImport, ProviderMapLinesAndDefault) {
  auto map = ParseProviderMap(
      "# comment\n/subscriptions/abc = azure-1  # trailing\nAWS=aws-1\n\n* = other\n");
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->by_key.at("/subscriptions/abc"), "azure-1");
  EXPECT_EQ(map->by_key.at("AWS"), "aws-1");
  EXPECT_EQ(map->fallback, "other");
  EXPECT_FALSE(ParseProviderMap("no equals sign\n").ok());
}

TEST(FocusImport, RowsBecomeUsageOrCreditsWithStableIds) {
  std::string csv =
      "BilledCost,ServiceName,ChargePeriodStart,ChargePeriodEnd,ConsumedQuantity,ConsumedUnit,"
      "ProviderName,"
      "SubAccountId,ResourceId,SkuId,RegionId,BillingCurrency\n"
      "0.00001605990,ELB,2024-09-30 22:00:00,2024-09-30 "
      "23:00:00,0.0020074900,LCU-Hours,AWS,111,arn:1,SKU1,us-west-2,USD\n"
      "-0.14900000000,Azure ML,2024-09-03 00:00:00,2024-09-04 "
      "00:00:00,-1.0,Hours,Microsoft,/subscriptions/s,r,s,eastus,USD\n"
      "1.5,\"Svc, with comma\",2024-09-03 00:00:00,NULL,NULL,NULL,AWS,111,NULL,SKU2,NULL,USD\n"
      "1.5,\"Svc, with comma\",2024-09-03 00:00:00,NULL,NULL,NULL,AWS,111,NULL,SKU2,NULL,USD\n"
      "2,Unmapped,2024-09-03 00:00:00,NULL,1,Units,Nobody,999,r,s,x,USD\n";
  FocusImportOptions o;
  o.org_id = "acme";
  o.providers.by_key = {{"AWS", "aws-main"}, {"111", "aws-111"}};
  std::vector<Json> events;
  std::istringstream in(csv);
  auto report =
      ImportFocus(in, o, [&](const std::string& line) { events.push_back(Json::parse(line)); });
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rows, 5u);
  EXPECT_EQ(report->usage, 3u);
  EXPECT_EQ(report->credits, 1u);
  EXPECT_EQ(report->skipped, 1u);  // no mapping and no `*` line
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find("row 6"), std::string::npos) << report->problems[0];
  ASSERT_EQ(events.size(), 4u);

  const Json& u = events[0]["usage_recorded"];
  EXPECT_EQ(u["provider_id"], "aws-111");  // SubAccountId wins over ProviderName
  EXPECT_EQ(u["amount"], "0.000016060");
  EXPECT_EQ(u["quantity"], "0.002007490");
  EXPECT_EQ(u["usage_start"], "2024-09-30T22:00:00Z");
  EXPECT_EQ(u["currency"], "USD");
  EXPECT_EQ(events[0]["source"], "focus-import");

  const Json& c = events[1]["credit_applied"];
  EXPECT_EQ(c["month"], "2024-09");
  EXPECT_EQ(c["amount"], "0.149000000");
  EXPECT_EQ(c["description"], "Azure ML");
  EXPECT_FALSE(c.contains("cost_center_id"));

  const Json& n = events[2]["usage_recorded"];
  EXPECT_EQ(n["service"], "Svc, with comma");
  EXPECT_EQ(n["quantity"], "0");
  EXPECT_EQ(n["unit"], "(none)");
  EXPECT_EQ(n["resource_id"], "(none)");
  EXPECT_EQ(n["usage_end"], n["usage_start"]);

  // Identical rows are distinct charges: the second copy gets its own stable id.
  std::string id = events[2]["event_id"];
  EXPECT_EQ(id.rfind("focus:", 0), 0u);
  EXPECT_EQ(events[3]["event_id"], id + ":2");
  // Another org importing the same file gets other ids (event ids are global).
  o.org_id = "other-org";
  std::istringstream again(csv);
  std::vector<Json> others;
  ASSERT_TRUE(ImportFocus(again, o, [&](const std::string& line) {
                others.push_back(Json::parse(line));
              }).ok());
  EXPECT_NE(others[0]["event_id"], events[0]["event_id"]);
}

TEST(FocusImport, MissingRequiredColumnsAreRefused) {
  FocusImportOptions o;
  o.org_id = "acme";
  std::istringstream in("ServiceName,ChargePeriodStart\nx,2024-09-01 00:00:00\n");
  auto report = ImportFocus(in, o, [](const std::string&) {});
  EXPECT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("BilledCost"), std::string::npos);
}

}  // namespace
}  // namespace billing::ops
