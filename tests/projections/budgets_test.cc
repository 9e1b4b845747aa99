// Budgets, forecasts and alerts: the forecast's arithmetic against hand-computed
// values (month lengths 28..31, usage ending mid-day, no usage, credits and
// adjustments, JPY and BHD rounding), the budget events' rejections and the
// dashboard's budget through the real ledger, and alerts on seeded random
// histories against a naive recomputation, after a rebuild and as of past
// sequences.
#include "projections/budgets.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "ledger/prepare.h"
#include "ops/generator.h"
#include "projections/billing.h"
#include "projections/decider.h"
#include "tests/testing/temp_dir.h"

namespace billing::projections {
namespace {

using Json = nlohmann::json;

Sum Units(const std::string& decimal) { return *ParseDecimal(decimal, "test"); }
Timestamp At(const std::string& rfc3339) { return *ParseTimestamp(rfc3339, "test"); }
Month M(const std::string& month) { return *ParseMonth(month, "test"); }

// The forecast of `usage` with `other` charges, formatted as the dashboard shows it.
std::string Forecast(const std::string& usage, Sum other, std::optional<std::string> observed,
                     const std::string& month, int digits) {
  ScopeFigures scope{Units(usage) + other, Units(usage)};
  std::optional<Timestamp> seen;
  if (observed) seen = At(*observed);
  return FormatNanos(projections::Forecast(scope, seen, M(month), digits), digits);
}

TEST(Forecast, ThirtyOneDayMonthScalesUsageByTheDaysReported) {
  // 40 × 31 / 9 = 137.777… (BHD, 3 digits).
  EXPECT_EQ(Forecast("40", 0, "2026-01-10T00:00:00Z", "2026-01", 3), "137.778");
}

TEST(Forecast, MonthLengthsOf28To31Days) {
  // 28 × 28 / 14, 29 × 29 / 14 (leap February), 10 × 30 / 3.5, 31 × 31 / 31.
  EXPECT_EQ(Forecast("28", 0, "2026-02-15T00:00:00Z", "2026-02", 2), "56.00");
  EXPECT_EQ(Forecast("29", 0, "2028-02-15T00:00:00Z", "2028-02", 2), "60.07");
  EXPECT_EQ(Forecast("10", 0, "2026-04-04T12:00:00Z", "2026-04", 2), "85.71");
  EXPECT_EQ(Forecast("31", 0, "2026-03-31T23:59:59.999999999Z", "2026-03", 2), "31.00");
}

TEST(Forecast, UsageEndingMidDayCountsTheHalfDay) {
  // 56.5 × 31 / 15.5 = 113 exactly.
  EXPECT_EQ(Forecast("56.5", 0, "2026-01-16T12:00:00Z", "2026-01", 3), "113.000");
  // Exact to the nano-unit: 1 × 31 / 3 = 10.333…, 2 × 31 / 3 = 20.666… (rounds up).
  EXPECT_EQ(Forecast("1", 0, "2026-01-04T00:00:00Z", "2026-01", 9), "10.333333333");
  EXPECT_EQ(Forecast("2", 0, "2026-01-04T00:00:00Z", "2026-01", 9), "20.666666667");
}

TEST(Forecast, ObservedIsHeldBetweenOneDayAndTheMonthsEnd) {
  // 4 × 31 / 1 (12 hours held at one day); usage past the month's end: × 1.
  EXPECT_EQ(Forecast("4", 0, "2026-03-01T12:00:00Z", "2026-03", 3), "124.000");
  EXPECT_EQ(Forecast("4", 0, "2026-03-01T00:00:00Z", "2026-03", 3), "124.000");
  EXPECT_EQ(Forecast("4", 0, "2026-04-20T00:00:00Z", "2026-03", 3), "4.000");
}

TEST(Forecast, NoUsageForecastsTheOtherCharges) {
  // Support 12, credit 2.0005: 9.9995 BHD is a tie, away from zero.
  EXPECT_EQ(Forecast("0", Units("12") - Units("2.0005"), std::nullopt, "2026-03", 3), "10.000");
  EXPECT_EQ(Forecast("0", 0, std::nullopt, "2026-02", 0), "0");
}

TEST(Forecast, CreditsAndLateAdjustmentsAreAddedNotScaled) {
  // 10 × 30 / 15 = 20; credit −3 and a late adjustment +2 added as they are.
  EXPECT_EQ(Forecast("10", Units("2") - Units("3"), "2026-06-16T00:00:00Z", "2026-06", 2), "19.00");
  // A late void's negative adjustment can take the forecast below zero.
  EXPECT_EQ(Forecast("0", -Units("0.005"), std::nullopt, "2026-06", 2), "-0.01");
  EXPECT_EQ(Forecast("0", -Units("0.0049"), std::nullopt, "2026-06", 2), "0.00");
}

TEST(Forecast, YenRoundsTiesAwayFromZero) {
  // 1001 × 31 / 2 = 15515.5 → 15516; 10001 × 31 / 2.5 = 124012.4 → 124012.
  EXPECT_EQ(Forecast("1001", 0, "2026-01-03T00:00:00Z", "2026-01", 0), "15516");
  EXPECT_EQ(Forecast("10001", 0, "2026-01-03T12:00:00Z", "2026-01", 0), "124012");
}

TEST(Forecast, HugeUsageStaysExact) {
  // 10^19 units (far above one event's int64) × 31 / 1: exact, no overflow.
  Sum usage = static_cast<Sum>(kNanosPerUnit) * 10'000'000'000 * 1'000'000'000;
  ScopeFigures scope{usage, usage};
  EXPECT_EQ(projections::Forecast(scope, At("2026-01-01T05:00:00Z"), M("2026-01"), 2), usage * 31);
  EXPECT_EQ(projections::Forecast(scope, std::nullopt, M("2026-01"), 2), usage);
}

// ---- Through the real ledger: rejections, dashboard budget, alerts. ----

class BudgetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BillingOptions o;
    o.dir = dir_.path();
    o.durability = ledger::Durability::kAsync;
    auto b = Billing::Open(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    billing_ = std::move(b).value();
    ASSERT_EQ(Post("organization_created",
                   {{"name", "O"}, {"currency", "USD"}, {"billing_account", "BA"}},
                   "2026-01-01T00:00:00Z"),
              "accepted");
    ASSERT_EQ(Post("cost_center_created", {{"cost_center_id", "cc-a"}, {"name", "A"}}), "accepted");
    ASSERT_EQ(Post("workspace_created",
                   {{"workspace_id", "ws-a"}, {"cost_center_id", "cc-a"}, {"name", "A"}}),
              "accepted");
    ASSERT_EQ(
        Post("provider_registered",
             {{"provider_id", "p1"}, {"workspace_id", "ws-a"}, {"name", "P"}, {"kind", "aws"}}),
        "accepted");
  }

  // Posts one event of org "o"; returns "accepted", "duplicate" or the code.
  std::string Post(const std::string& kind, const Json& payload,
                   const std::string& occurred_at = "2026-01-01T00:00:00Z") {
    Json e{{"event_id", "e" + std::to_string(++counter_)},
           {"org_id", "o"},
           {"occurred_at", occurred_at},
           {kind, payload}};
    return PostRaw(e.dump());
  }
  std::string PostRaw(const std::string& line) {
    ledger::AppendRequest req;
    req.entries.push_back(ledger::PrepareEntry(line, ledger::Source()));
    auto r = billing_->Submit(std::move(req));
    EXPECT_TRUE(r.status.ok());
    const ledger::Outcome& out = r.outcomes[0];
    if (out.kind == ledger::Outcome::Kind::kAccepted) return "accepted";
    if (out.kind == ledger::Outcome::Kind::kDuplicate) return "duplicate";
    return std::string(CodeName(out.code));
  }
  std::string Usage(const std::string& start, const std::string& end, const std::string& amount) {
    return Post("usage_recorded",
                {{"provider_id", "p1"},
                 {"service", "EC2"},
                 {"sku", "s"},
                 {"resource_id", "r"},
                 {"region", "x"},
                 {"quantity", "1"},
                 {"unit", "h"},
                 {"amount", amount},
                 {"usage_start", start},
                 {"usage_end", end}},
                end);
  }
  std::vector<std::string> AlertLines(std::optional<uint64_t> as_of = std::nullopt) {
    std::optional<ledger::Sequence> seq;
    if (as_of) seq = ledger::Sequence{*as_of};
    auto s = billing_->Snapshot("o", seq);
    EXPECT_TRUE(s.ok());
    std::vector<std::string> out;
    for (const Alert& a : Alerts(*s->org, *s->view, std::nullopt)) {
      out.push_back(std::to_string(a.sequence) + " " + a.budget_id + " " + FormatMonth(a.month) +
                    " " + std::string(AlertKindName(a.kind)) + " " + std::to_string(a.threshold) +
                    " " + FormatNanos(a.amount, 2));
    }
    return out;
  }
  uint64_t Head() const { return billing_->ledger().head().sequence.value; }

  billing::testing::TempDir dir_;
  std::unique_ptr<Billing> billing_;
  int counter_ = 0;
};

TEST_F(BudgetsTest, BudgetEventsAreValidated) {
  EXPECT_EQ(Post("budget_removed", {{"budget_id", "never"}}), "unknown_budget");
  EXPECT_EQ(Post("budget_set", {{"budget_id", "b"}, {"amount", "10"}, {"cost_center_id", "nope"}}),
            "unknown_cost_center");
  EXPECT_EQ(Post("budget_set", {{"budget_id", "b"}, {"amount", "0"}}), "invalid_argument");
  EXPECT_EQ(Post("budget_set", {{"budget_id", "b"}, {"amount", 10}}), "invalid_argument");
  for (const Json& bad : {Json::array(), Json{0}, Json{1001}, Json{50, 50}, Json{50.5}, Json{"50"},
                          Json{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, Json(50), Json{5000000000LL}}) {
    EXPECT_EQ(Post("budget_set", {{"budget_id", "b"}, {"amount", "1"}, {"thresholds", bad}}),
              "invalid_argument")
        << bad.dump();
  }
  EXPECT_EQ(Post("budget_set", {{"budget_id", "b"}, {"amount", "1"}, {"thresholds", {1, 1000}}}),
            "accepted");
  EXPECT_EQ(Post("budget_removed", {{"budget_id", "b"}}), "accepted");
  // Its latest change in ledger order is a removal now, whatever the dates.
  EXPECT_EQ(Post("budget_removed", {{"budget_id", "b"}}, "2020-01-01T00:00:00Z"), "unknown_budget");
  EXPECT_EQ(Post("budget_set", {{"budget_id", "b"}, {"amount", "2"}}), "accepted");
  EXPECT_EQ(Post("budget_removed", {{"budget_id", "b"}}, "2020-01-01T00:00:00Z"), "accepted");
}

TEST_F(BudgetsTest, DashboardSumsTheBudgetsInForceByDate) {
  ASSERT_EQ(Post("budget_set", {{"budget_id", "a"}, {"amount", "100.004"}}, "2026-02-10T00:00:00Z"),
            "accepted");
  ASSERT_EQ(Post("budget_set", {{"budget_id", "b"}, {"amount", "0.002"}}, "2026-01-31T23:00:00Z"),
            "accepted");
  ASSERT_EQ(Post("budget_set", {{"budget_id", "c"}, {"amount", "7"}, {"cost_center_id", "cc-a"}},
                 "2026-01-05T00:00:00Z"),
            "accepted");
  // Recorded later but dated earlier: replaces `a` in January only.
  ASSERT_EQ(Post("budget_set", {{"budget_id", "a"}, {"amount", "50"}}, "2026-01-05T00:00:00Z"),
            "accepted");
  ASSERT_EQ(Post("budget_removed", {{"budget_id", "b"}}, "2026-03-01T00:00:00Z"), "accepted");
  ASSERT_EQ(Post("budget_removed", {{"budget_id", "c"}}, "2026-03-31T23:59:59Z"), "accepted");
  ASSERT_EQ(Post("budget_removed", {{"budget_id", "a"}}, "2026-04-01T00:00:00Z"), "accepted");
  auto s = billing_->Snapshot("o", std::nullopt);
  ASSERT_TRUE(s.ok());
  auto org = Dashboard(*s->org, *s->view, {M("2026-04"), 5}, std::nullopt);
  auto cc = Dashboard(*s->org, *s->view, {M("2026-04"), 5}, std::string("cc-a"));
  ASSERT_TRUE(org.ok() && cc.ok());
  auto text = [](const std::optional<Sum>& v) { return v ? FormatNanos(*v, 2) : "null"; };
  std::vector<std::string> got, got_cc;
  for (const auto& r : *org) got.push_back(text(r.budget));
  for (const auto& r : *cc) got_cc.push_back(text(r.budget));
  // Dec: none. Jan: 50 + 0.002. Feb: 100.004 + 0.002 = 100.006 → 100.01. Mar: 100.004 → 100.00.
  // Apr: every organization budget removed, null (not zero).
  EXPECT_EQ(got, (std::vector<std::string>{"null", "50.00", "100.01", "100.00", "null"}));
  EXPECT_EQ(got_cc, (std::vector<std::string>{"null", "7.00", "7.00", "null", "null"}));
}

TEST_F(BudgetsTest, AlertsAreRaisedOnceAtTheirFirstSequenceAndNeverWithdrawn) {
  ASSERT_EQ(
      Post("budget_set", {{"budget_id", "b"}, {"amount", "100"}, {"thresholds", {100, 50, 200}}}),
      "accepted");
  ASSERT_EQ(Usage("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "10"), "accepted");
  const uint64_t first = Head();  // forecast 10 × 31 = 310 ≥ 100
  ASSERT_EQ(Usage("2026-01-02T00:00:00Z", "2026-01-20T00:00:00Z", "45"), "accepted");
  const uint64_t second = Head();  // 55 ≥ 50
  ASSERT_EQ(Post("event_voided", {{"voided_event_id", "e7"}, {"reason", "x"}}), "accepted");
  ASSERT_EQ(Usage("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "45"), "accepted");  // 55 again
  std::vector<std::string> want = {
      std::to_string(first) + " b 2026-01 forecast 100 310.00",
      std::to_string(second) + " b 2026-01 actual 50 55.00",
  };
  EXPECT_EQ(AlertLines(), want);
  EXPECT_EQ(AlertLines(first), std::vector<std::string>{want[0]});
  // A budget_set dated in January raises what January's charges already reach.
  ASSERT_EQ(Post("budget_set", {{"budget_id", "c"}, {"amount", "20"}, {"cost_center_id", "cc-a"}},
                 "2026-01-31T00:00:00Z"),
            "accepted");
  const uint64_t set = Head();
  auto lines = AlertLines();
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[2], std::to_string(set) + " c 2026-01 actual 50 55.00");
  // 55 × 31 / 19: observed stays at the voided usage's end, January 20.
  EXPECT_EQ(lines[5], std::to_string(set) + " c 2026-01 forecast 100 89.74");
  ASSERT_TRUE(billing_->Rebuild().ok());
  EXPECT_EQ(AlertLines(), lines);
}

TEST_F(BudgetsTest, ClosedMonthsRaiseNoForecastAlerts) {
  ASSERT_EQ(Usage("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "10"), "accepted");
  ASSERT_EQ(Post("billing_period_closed", {{"month", "2026-01"}}, "2026-02-01T00:00:00Z"),
            "accepted");
  ASSERT_EQ(Post("budget_set", {{"budget_id", "b"}, {"amount", "15"}}), "accepted");
  EXPECT_EQ(AlertLines(),
            std::vector<std::string>{std::to_string(Head()) + " b 2026-01 actual 50 10.00"});
}

// ---- Random histories against a naive recomputation. ----

// A budget change as the naive model keeps it.
struct NaiveBudget {
  uint64_t seq;
  int64_t effective_ns;
  bool removed;
  Sum amount;
  std::optional<std::string> cc;
  std::vector<int> thresholds;
};

int64_t NanosOf(Timestamp t) { return t.seconds() * 1'000'000'000 + t.nanos(); }
int64_t MonthStartNs(int month) { return NanosOf(MonthStart(Month{month})); }

Sum NaiveRound(Sum numerator, Sum denominator, int digits) {  // numerator/denominator, half away
  Sum unit = 1;
  for (int i = 0; i < 9 - digits; ++i) unit *= 10;
  Sum d = denominator * unit;
  Sum mag = numerator < 0 ? -numerator : numerator;
  Sum q = (2 * mag + d) / (2 * d);  // floor(mag/d + 1/2)
  return (numerator < 0 ? -q : q) * unit;
}

// The alerts of one org, recomputed from scratch after every record: the
// first sequence at which each (budget, month, kind, threshold) holds.
// `forecasts` receives the organization's forecast of each open month with
// postings, at the end.
std::map<std::string, uint64_t> NaiveAlerts(const ledger::Ledger& ledger, const std::string& org,
                                            int digits, std::map<int, Sum>* forecasts) {
  struct Row {
    int month;
    std::string bucket;
    bool usage;
    Sum amount;
    int64_t usage_end;
  };
  std::vector<Row> rows;
  Decider decider;  // only for its posting rows: which month, bucket and category
  decider.set_observer([&](const PostingRow& p) {
    rows.push_back({p.month.index, std::string(p.cost_center), p.category == '1', p.amount,
                    NanosOf(p.charge->usage_end)});
  });
  MemoryStore store;
  std::map<std::string, std::vector<NaiveBudget>> budgets;
  std::set<int> closed;
  std::map<std::string, uint64_t> first;
  EventLookup lookup = [&ledger](ledger::EventKey key) { return ledger.FindEvent(key); };
  Status scan = ledger.ScanOrg(
      org, ledger::Sequence{0}, ledger::kSequenceMax, 0, [&](const ledger::Record& record) {
        EXPECT_TRUE(decider.Redecide(record, lookup, store, store).ok());
        events::Envelope e;
        EXPECT_TRUE(ledger::DecodeEvent(record, &e).ok());
        const uint64_t seq = record.sequence();
        const int64_t at = NanosOf(*ParseTimestamp(e.occurred_at(), "t"));
        if (e.has_budget_set()) {
          std::vector<int> t;  // the SPEC's default unless the event names some
          for (int percent : e.budget_set().thresholds()) t.push_back(percent);
          if (t.empty()) t = std::vector<int>{50, 80, 100};
          std::optional<std::string> cc;
          if (e.budget_set().has_cost_center_id()) cc = e.budget_set().cost_center_id();
          budgets[e.budget_set().budget_id()].push_back(
              {seq, at, false, Units(e.budget_set().amount()), cc, t});
        } else if (e.has_budget_removed()) {
          budgets[e.budget_removed().budget_id()].push_back({seq, at, true, 0, {}, {}});
        } else if (e.has_billing_period_closed()) {
          closed.insert(ParseMonth(e.billing_period_closed().month(), "m")->index);
        }
        std::set<int> months;
        for (const Row& r : rows) months.insert(r.month);
        forecasts->clear();
        for (int m : months) {
          if (closed.count(m)) continue;
          Sum total = 0, usage = 0;
          std::optional<int64_t> observed;
          for (const Row& r : rows) {
            if (r.month != m) continue;
            total += r.amount;
            if (!r.usage) continue;
            usage += r.amount;
            observed = std::max(observed.value_or(INT64_MIN), r.usage_end);
          }
          const int64_t length = MonthStartNs(m + 1) - MonthStartNs(m);
          int64_t elapsed = observed ? *observed - MonthStartNs(m) : length;
          elapsed = std::clamp<int64_t>(elapsed, 86'400'000'000'000, length);
          (*forecasts)[m] = NaiveRound(usage * length + (total - usage) * elapsed, elapsed, digits);
        }
        for (int m : months) {
          for (const auto& [id, changes] : budgets) {
            const NaiveBudget* best = nullptr;
            for (const NaiveBudget& c : changes) {
              if (c.effective_ns < MonthStartNs(m + 1) &&
                  (best == nullptr || c.effective_ns >= best->effective_ns))
                best = &c;
            }
            if (best == nullptr || best->removed) continue;
            Sum total = 0, usage = 0;
            std::optional<int64_t> observed;
            for (const Row& r : rows) {
              if (r.month != m) continue;
              if (r.usage) observed = std::max(observed.value_or(INT64_MIN), r.usage_end);
              if (best->cc && r.bucket != *best->cc) continue;
              total += r.amount;
              if (r.usage) usage += r.amount;
            }
            const std::string mark = id + "/" + std::to_string(m) + "/";
            for (int t : best->thresholds) {
              if (total * 100 >= best->amount * t)
                first.try_emplace(mark + "A" + std::to_string(t), seq);
            }
            if (closed.count(m)) continue;
            const int64_t length = MonthStartNs(m + 1) - MonthStartNs(m);
            int64_t elapsed = observed ? *observed - MonthStartNs(m) : length;
            elapsed = std::clamp<int64_t>(elapsed, 86'400'000'000'000, length);
            Sum forecast = NaiveRound(usage * length + (total - usage) * elapsed, elapsed, digits);
            if (forecast >= best->amount) first.try_emplace(mark + "F100", seq);
          }
        }
        return true;
      });
  EXPECT_TRUE(scan.ok());
  return first;
}

std::map<std::string, uint64_t> ServiceAlerts(const OrgSnapshot& s) {
  std::map<std::string, uint64_t> out;
  for (const Alert& a : Alerts(*s.org, *s.view, std::nullopt)) {
    std::string mark = a.budget_id + "/" + std::to_string(a.month.index) + "/" +
                       static_cast<char>(a.kind) + std::to_string(a.threshold);
    EXPECT_TRUE(out.emplace(mark, a.sequence).second) << "raised twice: " << mark;
  }
  return out;
}

// The org's dashboards (whole org and each cost center) with budget and
// forecast, over the generated months, as text.
std::string DashboardText(const OrgSnapshot& s) {
  std::string out;
  std::vector<std::optional<std::string>> scopes{std::nullopt};
  for (const auto& [cc, info] : s.org->cost_centers) scopes.push_back(cc);
  auto text = [](const std::optional<Sum>& v) { return v ? SumToString(*v) : "null"; };
  for (const auto& scope : scopes) {
    auto rows = Dashboard(*s.org, *s.view, {s.org->LatestMonth(), 8}, scope);
    for (const DashboardMonth& r : *rows) {
      out += scope.value_or("org") + " " + FormatMonth(r.month) + " " + SumToString(r.billed) +
             " " + text(r.budget) + " " + text(r.forecast) + "\n";
    }
  }
  return out;
}

// Budget events for the generated orgs, at random places of the stream:
// organization and cost-center budgets of a few ids, set, replaced and
// removed with dates across the history (some removals of unknown ids).
std::vector<std::string> WithBudgets(std::vector<std::string> lines, std::mt19937_64& rng,
                                     const ops::GeneratorOptions& g) {
  std::map<std::string, std::vector<std::string>> ccs;  // org -> cost centers
  for (const std::string& line : lines) {
    Json e = Json::parse(line, nullptr, false);
    if (e.is_object() && e.contains("cost_center_created") && e["cost_center_created"].is_object())
      ccs[e.value("org_id", "")].push_back(e["cost_center_created"].value("cost_center_id", ""));
  }
  static const char* kAmounts[] = {"5", "50", "200", "1000", "5000", "20000", "0.001", "123.4567"};
  const int first_month = ParseMonth(g.start_month, "m")->index;
  int n = 0;
  for (const auto& [org, list] : ccs) {
    for (int k = 0; k < 40; ++k) {
      Json e{{"event_id", "budget-event-" + std::to_string(++n)}, {"org_id", org}};
      const int month = first_month + static_cast<int>(rng() % (g.months + 1));
      char at[32];
      std::snprintf(at, sizeof at, "%04d-%02d-%02dT%02d:00:00Z", month / 12, month % 12 + 1,
                    static_cast<int>(1 + rng() % 28), static_cast<int>(rng() % 24));
      e["occurred_at"] = at;
      const std::string id = "b" + std::to_string(rng() % 4);
      if (rng() % 5 == 0) {
        e["budget_removed"] = {{"budget_id", rng() % 8 == 0 ? std::string("nope") : id}};
      } else {
        Json b{{"budget_id", id}, {"amount", kAmounts[rng() % 8]}};
        if (rng() % 2 == 0 && !list.empty()) b["cost_center_id"] = list[rng() % list.size()];
        if (rng() % 2 == 0) {
          std::set<int> t;
          for (size_t i = 1 + rng() % 4; t.size() < i;) t.insert(1 + static_cast<int>(rng() % 300));
          b["thresholds"] = t;
        }
        e["budget_set"] = b;
      }
      const size_t at_line = rng() % (lines.size() + 1);
      lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(at_line), e.dump());
    }
  }
  return lines;
}

class BudgetProperty : public ::testing::TestWithParam<int> {};

TEST_P(BudgetProperty, AlertsEqualANaiveRecomputationAfterRebuildAndAsOf) {
  const uint64_t seed = 7000 + static_cast<uint64_t>(GetParam());
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  ops::GeneratorOptions g;
  g.seed = seed;
  g.orgs = 3;
  g.months = 4;
  g.usage_events = 600;
  g.resources_per_provider = 3;
  g.faults = true;
  std::mt19937_64 rng(seed);
  std::vector<std::string> lines = ops::GenerateLines(g);
  lines = WithBudgets(std::move(lines), rng, g);

  billing::testing::TempDir dir;
  BillingOptions o;
  o.dir = dir.path();
  o.durability = ledger::Durability::kAsync;
  o.rebuild_batch_events = 1 + static_cast<size_t>(GetParam()) * 7;
  auto billing = Billing::Open(o);
  ASSERT_TRUE(billing.ok());
  std::set<std::string> orgs;
  for (size_t i = 0; i < lines.size();) {
    const size_t n = std::min(lines.size() - i, static_cast<size_t>(1 + rng() % 100));
    ledger::AppendRequest req;
    for (size_t k = 0; k < n; ++k) {
      req.entries.push_back(ledger::PrepareEntry(lines[i + k], ledger::Source()));
      orgs.insert(req.entries.back().org_id);
    }
    ASSERT_TRUE((*billing)->Submit(std::move(req)).status.ok());
    i += n;
  }
  const uint64_t head = (*billing)->ledger().head().sequence.value;
  size_t alerts = 0;
  std::map<std::string, std::map<std::string, uint64_t>> live;
  std::map<std::string, std::string> dashboards;
  for (const std::string& org : orgs) {
    auto s = (*billing)->Snapshot(org, std::nullopt);
    if (!s.ok()) continue;  // an org that was never created
    std::map<int, Sum> forecasts;
    const auto naive = NaiveAlerts((*billing)->ledger(), org, s->org->minor_digits, &forecasts);
    live[org] = ServiceAlerts(*s);
    EXPECT_EQ(live[org], naive) << org;
    dashboards[org] = DashboardText(*s);
    for (const auto& [month, forecast] : forecasts) {
      auto row = Dashboard(*s->org, *s->view, {Month{month}, 1}, std::nullopt);
      ASSERT_TRUE(row.ok());
      EXPECT_EQ((*row)[0].forecast, std::optional<Sum>(forecast)) << org << " " << month;
    }
    EXPECT_FALSE(forecasts.empty()) << org;
    alerts += naive.size();
    for (uint64_t as_of : {head / 3, head / 2, head - 1}) {
      auto past = (*billing)->Snapshot(org, ledger::Sequence{as_of});
      if (!past.ok()) continue;
      std::map<std::string, uint64_t> want;
      for (const auto& [mark, seq] : naive) {
        if (seq <= as_of) want.emplace(mark, seq);
      }
      EXPECT_EQ(ServiceAlerts(*past), want) << org << " as_of " << as_of;
    }
  }
  std::printf("alerts %zu\n", alerts);
  EXPECT_GT(alerts, 10u) << "the history should raise alerts";
  ASSERT_TRUE((*billing)->Rebuild().ok());
  for (const auto& [org, want] : live) {
    auto s = (*billing)->Snapshot(org, std::nullopt);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(ServiceAlerts(*s), want) << org << " after rebuild";
    EXPECT_EQ(DashboardText(*s), dashboards[org]) << org << " after rebuild";
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, BudgetProperty, ::testing::Range(0, 4));

}  // namespace
}  // namespace billing::projections
