// ledgerctl reconcile against a real ledger: the FOCUS sample imported with
// import-focus and ingested reconciles with nothing listed (exit 0); an event
// missing from the ledger, a row added to the CSV or a cost changed in it is
// reported as exactly its (month, provider, service) with exit 1; a change
// within the documented rounding (half a nano-unit per row) is not; bad
// arguments exit 2.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ops/csv_reader.h"
#include "ops/focus_import.h"
#include "tests/testing/files.h"
#include "tests/testing/ingest.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using Json = nlohmann::json;
using testing::Ran;
using testing::TempDir;

constexpr const char* kMap = "# FOCUS ProviderName -> our provider\nAWS = aws-main\nMicrosoft = azure-main\n* = other-main\n";

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

Ran Ledgerctl(std::vector<std::string> args) {
  args.insert(args.begin(), testing::BuildDir() + "/ledgerctl");
  return testing::RunToExit(std::move(args));
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

// The org, one cost center and workspace, and the three mapped providers.
std::string Setup() {
  std::string out =
      R"({"event_id":"org","org_id":"sunbird","occurred_at":"2024-01-01T00:00:00Z","organization_created":{"name":"SunBird","currency":"USD","billing_account":"SB-1"}})"
      "\n"
      R"({"event_id":"cc","org_id":"sunbird","occurred_at":"2024-01-01T00:00:00Z","cost_center_created":{"cost_center_id":"cc-cloud","name":"Cloud"}})"
      "\n"
      R"({"event_id":"ws","org_id":"sunbird","occurred_at":"2024-01-01T00:00:00Z","workspace_created":{"workspace_id":"ws-1","cost_center_id":"cc-cloud","name":"W"}})"
      "\n";
  for (const std::string p : {"aws-main", "azure-main", "other-main"}) {
    out += R"({"event_id":")" + p + R"(","org_id":"sunbird","occurred_at":"2024-01-01T00:00:00Z","provider_registered":{"provider_id":")" +
           p + R"(","workspace_id":"ws-1","name":")" + p + R"(","kind":"cloud"}})" "\n";
  }
  return out;
}

// The sample, its import as events, and a ledger holding them.
struct Imported {
  Imported() {
    WriteFile(tmp.sub("map"), kMap);
    csv = testing::ReadFile(testing::ExamplesDir() + "/focus/focus_sample.csv");
    Ran imported = Ledgerctl({"import-focus", Sample(), "--org", "sunbird", "--provider-map", tmp.sub("map")});
    EXPECT_EQ(imported.code, 0);
    events = Lines(imported.out);
    EXPECT_EQ(events.size(), 1000u);
  }
  std::string Sample() const { return testing::ExamplesDir() + "/focus/focus_sample.csv"; }
  // A ledger directory holding the setup and `which` events.
  std::string Ledger(const std::string& name, const std::vector<std::string>& which) const {
    testing::Ingested in = testing::IngestNdjson(tmp.sub(name), Setup() + Join(which));
    EXPECT_EQ(in.accepted, static_cast<int>(6 + which.size()));
    return tmp.sub(name);
  }
  Ran Reconcile(const std::string& dir, const std::string& csv_path, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"reconcile", dir, "--org", "sunbird", "--focus", csv_path, "--provider-map",
                                  tmp.sub("map")};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ledgerctl(args);
  }
  TempDir tmp;
  std::string csv;
  std::vector<std::string> events;
};

// The CSV's fields of data line `n` (1-based after the header).
std::vector<std::string> Fields(const std::string& csv, size_t n, std::vector<std::string>* header) {
  std::istringstream in(csv);
  ops::CsvReader reader(in);
  ops::CsvRecord record;
  std::vector<std::string> out;
  for (size_t i = 0; i <= n; ++i) {
    auto got = reader.Next(&record);
    EXPECT_TRUE(got.ok() && *got);
    if (i == 0) {
      for (const auto& f : record) header->push_back(f.value_or(""));
    }
  }
  for (const auto& f : record) out.push_back(f.value_or(""));
  return out;
}

size_t Column(const std::vector<std::string>& header, const std::string& name) {
  return static_cast<size_t>(std::find(header.begin(), header.end(), name) - header.begin());
}

// Line `n` of the CSV with its BilledCost replaced by `cost`.
std::string WithCost(const std::string& csv, size_t n, const std::string& cost, std::string* service) {
  std::vector<std::string> header;
  std::vector<std::string> fields = Fields(csv, n, &header);
  *service = fields[Column(header, "ServiceName")];
  std::vector<std::string> lines = Lines(csv);
  const std::string old = "," + fields[Column(header, "BilledCost")] + ",";
  size_t at = lines[n].find(old);
  EXPECT_NE(at, std::string::npos);
  lines[n].replace(at, old.size(), "," + cost + ",");
  return Join(lines);
}

TEST(Reconcile, ImportedSampleReconcilesWithNothingListed) {
  Imported s;
  std::string dir = s.Ledger("data", s.events);
  Ran ran = s.Reconcile(dir, s.Sample());
  EXPECT_EQ(ran.code, 0) << ran.out;
  EXPECT_TRUE(ran.out.empty()) << ran.out;
  Ran all = s.Reconcile(dir, s.Sample(), {"--all"});
  EXPECT_EQ(all.code, 0);
  std::vector<std::string> groups = Lines(all.out);
  EXPECT_GT(groups.size(), 10u);
  for (const std::string& g : groups) EXPECT_TRUE(Json::parse(g)["agrees"].get<bool>()) << g;
  // A month the bill does not cover compares nothing.
  EXPECT_EQ(s.Reconcile(dir, s.Sample(), {"--month", "2024-10"}).code, 0);
}

TEST(Reconcile, AnEventMissingFromTheLedgerIsReportedAsItsGroup) {
  Imported s;
  // The first usage event with a cost of at least a cent.
  size_t drop = 0;
  for (; drop < s.events.size(); ++drop) {
    Json e = Json::parse(s.events[drop]);
    if (e.contains("usage_recorded") && *ops::ParseRoundedNanos(e["usage_recorded"]["amount"].get<std::string>()) >=
                                            kNanosPerUnit / 100) {
      break;
    }
  }
  ASSERT_LT(drop, s.events.size());
  Json dropped = Json::parse(s.events[drop]);
  std::vector<std::string> kept = s.events;
  kept.erase(kept.begin() + static_cast<long>(drop));
  Ran ran = s.Reconcile(s.Ledger("data", kept), s.Sample());
  EXPECT_EQ(ran.code, 1);
  std::vector<std::string> lines = Lines(ran.out);
  ASSERT_EQ(lines.size(), 1u) << ran.out;
  Json g = Json::parse(lines[0]);
  const Json& usage = dropped["usage_recorded"];
  EXPECT_EQ(g["month"], usage["usage_start"].get<std::string>().substr(0, 7));
  EXPECT_EQ(g["provider_id"], usage["provider_id"]);
  EXPECT_EQ(g["service"], usage["service"]);
  EXPECT_EQ(g["ledger_rows"].get<int>() + 1, g["bill_rows"].get<int>());
  EXPECT_FALSE(g["agrees"].get<bool>());
}

TEST(Reconcile, ARowAddedToOrChangedInTheBillIsReportedAsItsGroup) {
  Imported s;
  std::string dir = s.Ledger("data", s.events);
  // Data line 1 is Amazon SQS at 0.00000080000 (AWS, 2024-09).
  std::string service;
  WriteFile(s.tmp.sub("changed.csv"), WithCost(s.csv, 1, "0.01000080000", &service));
  Ran changed = s.Reconcile(dir, s.tmp.sub("changed.csv"));
  EXPECT_EQ(changed.code, 1);
  std::vector<std::string> lines = Lines(changed.out);
  ASSERT_EQ(lines.size(), 1u) << changed.out;
  Json g = Json::parse(lines[0]);
  EXPECT_EQ(g["month"], "2024-09");
  EXPECT_EQ(g["provider_id"], "aws-main");
  EXPECT_EQ(g["service"], service);
  EXPECT_EQ(g["difference"], "-0.010000000");

  // The same row once more at the end of the file.
  std::vector<std::string> csv_lines = Lines(s.csv);
  csv_lines.push_back(csv_lines[1]);
  WriteFile(s.tmp.sub("added.csv"), Join(csv_lines));
  Ran added = s.Reconcile(dir, s.tmp.sub("added.csv"));
  EXPECT_EQ(added.code, 1);
  lines = Lines(added.out);
  ASSERT_EQ(lines.size(), 1u) << added.out;
  g = Json::parse(lines[0]);
  EXPECT_EQ(g["service"], service);
  EXPECT_EQ(g["provider_id"], "aws-main");
  EXPECT_EQ(g["difference"], "-0.000000800");
}

TEST(Reconcile, DifferencesWithinHalfANanoUnitPerRowAgree) {
  Imported s;
  std::string dir = s.Ledger("data", s.events);
  std::string service;
  // 0.00000080040 still rounds to 0.000000800: the ledger is 4e-10 off, within 5e-10.
  WriteFile(s.tmp.sub("within.csv"), WithCost(s.csv, 1, "0.00000080040", &service));
  Ran within = s.Reconcile(dir, s.tmp.sub("within.csv"));
  EXPECT_EQ(within.code, 0) << within.out;
  // The tolerance is per bill row of the group.
  Ran all = s.Reconcile(dir, s.Sample(), {"--all"});
  int rows = 0;
  for (const std::string& line : Lines(all.out)) {
    Json g = Json::parse(line);
    if (g["month"] == "2024-09" && g["provider_id"] == "aws-main" && g["service"] == service) rows = g["bill_rows"];
  }
  ASSERT_GT(rows, 1);
  // In 10^-11, the sample's finest digit: the other rows' own rounding can
  // take back at most half a nano-unit each, so rows x 1e-9 + 1e-9 is beyond
  // rows x 0.5e-9 whatever they hold.
  long off_units = 100L * rows + 100;
  char cost[32];
  std::snprintf(cost, sizeof cost, "0.%011ld", 80000L + off_units);
  WriteFile(s.tmp.sub("beyond.csv"), WithCost(s.csv, 1, cost, &service));
  Ran beyond = s.Reconcile(dir, s.tmp.sub("beyond.csv"));
  EXPECT_EQ(beyond.code, 1);
  ASSERT_EQ(Lines(beyond.out).size(), 1u) << beyond.out;
  Json g = Json::parse(Lines(beyond.out)[0]);
  EXPECT_EQ(g["service"], service);
  EXPECT_FALSE(g["agrees"].get<bool>());
}

TEST(Reconcile, BadArgumentsExitTwo) {
  Imported s;
  std::string dir = s.Ledger("data", {});
  EXPECT_EQ(s.Reconcile(dir, s.Sample(), {"--month", "2024-13"}).code, 2);
  EXPECT_EQ(s.Reconcile(dir, s.tmp.sub("no-such.csv")).code, 2);
  EXPECT_EQ(s.Reconcile(s.tmp.sub("no-ledger"), s.Sample()).code, 2);
  WriteFile(s.tmp.sub("bad.csv"), "Foo,Bar\n1,2\n");
  EXPECT_EQ(s.Reconcile(dir, s.tmp.sub("bad.csv")).code, 2);
  EXPECT_EQ(Ledgerctl({"reconcile", dir, "--org", "nobody", "--focus", s.Sample(), "--provider-map", s.tmp.sub("map")})
                .code,
            2);
}

}  // namespace
}  // namespace billing
