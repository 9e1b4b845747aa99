// The budgets golden example (golden/budgets, a copy of ../shared/examples/budgets)
// through a real ledgerd over loopback: each line's outcome and sequence, then
// every expected answer (dashboards with budget and forecast, alerts, invoices
// with seals, structure), leaving out what its README leaves out: alert ids
// (checked stable instead), item ids and seal.ledger_hash (checked against the
// ledger stream instead).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/testing/files.h"
#include "tests/testing/golden_json.h"
#include "tests/testing/ledgerd.h"

namespace billing {
namespace {

using Json = nlohmann::json;
using testing::ExamplesDir;
using testing::Ledgerd;
using testing::ReadFile;

std::string BudgetsDir() { return ExamplesDir() + "/budgets"; }

// Drops what the example leaves open: ids, alert ids, ledger hashes, and the
// order of lists the SPEC does not fix (everything but month lists; alerts are
// checked for sequence order before).
Json Normalize(const Json& j) {
  return testing::NormalizeGolden(j, {"id", "alert_id", "ledger_hash"});
}

// Every alert answer: in sequence order, each with an alert_id that names it
// the same way in every answer (with or without `month`).
void CheckAlerts(const Json& answer, std::map<std::string, std::string>* ids) {
  uint64_t last = 0;
  for (const Json& a : answer["alerts"]) {
    EXPECT_GE(a["sequence"].get<uint64_t>(), last) << a.dump();
    last = a["sequence"];
    ASSERT_TRUE(a["alert_id"].is_string()) << a.dump();
    std::string identity = a["budget_id"].get<std::string>() + "/" + a["month"].get<std::string>() +
                           "/" + a["kind"].get<std::string>() + "/" + a["threshold"].dump();
    auto [it, added] = ids->emplace(a["alert_id"], identity);
    EXPECT_EQ(it->second, identity) << "one alert_id for two alerts";
  }
}

void CheckSealHash(const Json& invoice, Ledgerd& s) {
  if (!invoice.contains("seal") || !invoice["seal"].is_object()) return;
  uint64_t sequence = invoice["seal"]["sequence"];
  auto stream = s.Get("/v1/ledger/events?after=" + std::to_string(sequence - 1) + "&limit=1");
  ASSERT_EQ(stream.status, 200);
  EXPECT_EQ(invoice["seal"]["ledger_hash"],
            Json::parse(stream.body.substr(0, stream.body.find('\n')))["hash"]);
}

TEST(BudgetsGolden, ExampleGivesTheExpectedAnswers) {
  Ledgerd s;
  const std::string events = ReadFile(BudgetsDir() + "/events.ndjson");
  ASSERT_FALSE(events.empty()) << BudgetsDir();
  // One event a body, so each outcome is the line's own.
  Json outcomes = Json::parse(ReadFile(BudgetsDir() + "/expected/outcomes.json"));
  size_t line_start = 0;
  for (const Json& want : outcomes) {
    size_t end = events.find('\n', line_start);
    std::string line = events.substr(line_start, end - line_start);
    line_start = end + 1;
    auto post = s.Post("/v1/events", line, "application/json");
    ASSERT_EQ(post.status, 200) << post.body;
    Json got = Json::parse(post.body);
    if (want["status"] == "accepted") {
      EXPECT_EQ(got["accepted"], 1) << want.dump();
      EXPECT_EQ(got["last_sequence"], want["sequence"]) << want.dump();
    } else if (want["status"] == "duplicate") {
      EXPECT_EQ(got["duplicates"], 1) << want.dump();
    } else {
      ASSERT_EQ(got["rejected"].size(), 1u) << want.dump();
      EXPECT_EQ(got["rejected"][0]["code"], want["code"]) << want.dump();
    }
  }
  int files = 0;
  std::map<std::string, std::string> alert_ids;
  for (const auto& org : std::filesystem::directory_iterator(BudgetsDir() + "/expected")) {
    if (!org.is_directory()) continue;
    for (const auto& f : std::filesystem::directory_iterator(org.path())) {
      Json want = Json::parse(ReadFile(f.path().string()));
      std::string request = want["request"];
      std::string target = request.substr(request.find(' ') + 1);
      auto got = s.Get(target);
      ASSERT_EQ(got.status, 200) << request << " " << got.body;
      Json answer = Json::parse(got.body);
      if (answer.contains("alerts")) CheckAlerts(answer, &alert_ids);
      if (answer.contains("invoices")) {
        for (const Json& inv : answer["invoices"]) CheckSealHash(inv, s);
      }
      CheckSealHash(answer, s);
      EXPECT_EQ(Normalize(answer), Normalize(want["response"])) << request;
      ++files;
    }
  }
  EXPECT_GE(files, 20);
  EXPECT_EQ(alert_ids.size(), 9u);  // the README's table, each named once
}

TEST(BudgetsGolden, AlertsAsOfAndBadMonths) {
  Ledgerd s;
  ASSERT_EQ(s.Post("/v1/events", ReadFile(BudgetsDir() + "/events.ndjson"), "application/x-ndjson")
                .status,
            200);
  Json at11 = Json::parse(s.Get("/v1/orgs/noor.bh/alerts?as_of=11").body);
  ASSERT_EQ(at11["alerts"].size(), 1u) << at11.dump();
  EXPECT_EQ(at11["alerts"][0]["amount"], "137.778");
  Json all = Json::parse(s.Get("/v1/orgs/noor.bh/alerts").body);
  EXPECT_EQ(at11["alerts"][0]["alert_id"], all["alerts"][0]["alert_id"]);
  Json before = Json::parse(s.Get("/v1/orgs/noor.bh/alerts?as_of=10").body);
  EXPECT_EQ(before["alerts"], Json::array());
  EXPECT_EQ(s.Get("/v1/orgs/noor.bh/alerts?month=2026-13").status, 400);
  EXPECT_EQ(s.Get("/v1/orgs/nobody/alerts").status, 404);
  // The forecast of January before it closed (as_of 12): 113.000.
  Json dash = Json::parse(s.Get("/v1/orgs/noor.bh/dashboard?months=1&end=2026-01&as_of=12").body);
  EXPECT_EQ(dash["months"][0]["forecast"], "113.000") << dash.dump();
}

}  // namespace
}  // namespace billing
