// Billing rules on small hand-computed histories, through the real ledger on
// RocksDB: stateful rejections, attribution with moves, modes, closed periods
// and adjustments, voids, rounding, accounts, drill-down, as_of and rebuild;
// then the golden example of ../shared/examples in-process.
#include "projections/billing.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ledger/prepare.h"
#include "projections/keys.h"
#include "tests/testing/files.h"
#include "tests/testing/temp_dir.h"

namespace billing::projections {
namespace {

using billing::testing::TempDir;
using Json = nlohmann::json;

class BillingTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    billing_.reset();
    BillingOptions o;
    o.dir = dir_.path();
    o.durability = ledger::Durability::kAsync;  // crash safety is the ledger tests' business
    o.env = env_;
    auto b = Billing::Open(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    billing_ = std::move(b).value();
  }

  // Posts one event; returns its outcome code (kOk when accepted or duplicate).
  Code Post(const std::string& org, const std::string& kind, const Json& payload,
            const std::string& occurred_at = "2026-01-10T00:00:00Z", std::string id = "") {
    if (id.empty()) id = org + ":" + kind + ":" + std::to_string(++counter_);
    Json e{{"event_id", id}, {"org_id", org}, {"occurred_at", occurred_at}, {kind, payload}};
    ledger::AppendRequest req;
    req.entries.push_back(ledger::PrepareEntry(e.dump(), ledger::Source()));
    auto r = billing_->Submit(std::move(req));
    EXPECT_TRUE(r.status.ok());
    last_id_ = id;
    return r.outcomes[0].kind == ledger::Outcome::Kind::kRejected ? r.outcomes[0].code : Code::kOk;
  }

  void Org(const std::string& org = "o", const std::string& currency = "USD") {
    ASSERT_EQ(Post(org, "organization_created",
                   {{"name", "O"}, {"currency", currency}, {"billing_account", "BA"}},
                   "2025-11-01T00:00:00Z"),
              Code::kOk);
    for (const char* cc : {"cc-a", "cc-b"}) {
      ASSERT_EQ(Post(org, "cost_center_created", {{"cost_center_id", cc}, {"name", cc}},
                     "2025-11-01T00:00:00Z"),
                Code::kOk);
    }
    ASSERT_EQ(Post(org, "workspace_created",
                   {{"workspace_id", "ws-a"}, {"cost_center_id", "cc-a"}, {"name", "A"}},
                   "2025-11-01T00:00:00Z"),
              Code::kOk);
    ASSERT_EQ(Post(org, "workspace_created",
                   {{"workspace_id", "ws-b"}, {"cost_center_id", "cc-b"}, {"name", "B"}},
                   "2025-11-01T00:00:00Z"),
              Code::kOk);
    ASSERT_EQ(
        Post(org, "provider_registered",
             {{"provider_id", "p1"}, {"workspace_id", "ws-a"}, {"name", "Prov 1"}, {"kind", "aws"}},
             "2025-11-05T00:00:00Z"),
        Code::kOk);
  }

  Code Usage(const std::string& start, const std::string& amount,
             const std::string& service = "EC2", const std::string& unit = "Hrs",
             const std::string& resource = "r1", const std::string& org = "o") {
    return Post(org, "usage_recorded",
                {{"provider_id", "p1"},
                 {"service", service},
                 {"sku", "sku1"},
                 {"resource_id", resource},
                 {"region", "x"},
                 {"quantity", "2"},
                 {"unit", unit},
                 {"amount", amount},
                 {"usage_start", start},
                 {"usage_end", start}},
                start);
  }

  Code Support(const std::string& month, const std::string& amount) {
    return Post("o", "support_charged",
                {{"month", month}, {"amount", amount}, {"description", "Support"}});
  }

  OrgSnapshot Snap(std::optional<uint64_t> as_of = std::nullopt, const std::string& org = "o") {
    std::optional<ledger::Sequence> seq;
    if (as_of) seq = ledger::Sequence{*as_of};
    auto s = billing_->Snapshot(org, seq);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return *s;
  }

  std::map<std::string, std::string> Invoices(const std::string& month,
                                              std::optional<uint64_t> as_of = std::nullopt) {
    auto s = Snap(as_of);
    std::map<std::string, std::string> out;
    for (const auto& inv :
         projections::Invoices(*s.org, *s.view, *ParseMonth(month, "m")).invoices) {
      out[inv.invoice_id] = FormatNanos(inv.total, s.org->minor_digits) +
                            (inv.final ? " final" : " draft") + " " +
                            inv.billing_account.value_or("null");
    }
    return out;
  }

  std::map<std::string, std::string> Items(const std::string& month) {
    auto s = Snap();
    std::map<std::string, std::string> out;
    for (const auto& it : MonthItems(*s.org, *s.view, *ParseMonth(month, "m")).items) {
      out[it.category + "/" + it.label] = FormatNanos(it.amount);
    }
    return out;
  }

  std::string CostCenterBilled(const std::string& cc, const std::string& month) {
    auto s = Snap();
    auto rows = Dashboard(*s.org, *s.view, MonthRange{*ParseMonth(month, "m"), 1}, cc);
    EXPECT_TRUE(rows.ok());
    return FormatNanos((*rows)[0].billed, s.org->minor_digits);
  }

  TempDir dir_;
  std::unique_ptr<Billing> billing_;
  rocksdb::Env* env_ = nullptr;  // nullptr: the local file system
  int counter_ = 0;
  std::string last_id_;
};

TEST_F(BillingTest, StatefulRejectionsCarryTheSpecCodes) {
  EXPECT_EQ(Post("o", "cost_center_created", {{"cost_center_id", "c"}, {"name", "n"}}),
            Code::kUnknownOrg);
  Org();
  EXPECT_EQ(Post("o", "organization_created",
                 {{"name", "O"}, {"currency", "USD"}, {"billing_account", "B"}}),
            Code::kOrgExists);
  EXPECT_EQ(Post("o", "cost_center_created", {{"cost_center_id", "cc-a"}, {"name", "n"}}),
            Code::kAlreadyExists);
  EXPECT_EQ(Post("o", "workspace_created",
                 {{"workspace_id", "ws-a"}, {"cost_center_id", "cc-a"}, {"name", "n"}}),
            Code::kAlreadyExists);
  EXPECT_EQ(Post("o", "workspace_created",
                 {{"workspace_id", "w9"}, {"cost_center_id", "nope"}, {"name", "n"}}),
            Code::kUnknownCostCenter);
  EXPECT_EQ(Post("o", "provider_registered",
                 {{"provider_id", "p1"}, {"workspace_id", "ws-a"}, {"name", "n"}, {"kind", "aws"}}),
            Code::kAlreadyExists);
  EXPECT_EQ(Post("o", "provider_registered",
                 {{"provider_id", "p9"}, {"workspace_id", "nope"}, {"name", "n"}, {"kind", "aws"}}),
            Code::kUnknownWorkspace);
  EXPECT_EQ(Post("o", "provider_moved", {{"provider_id", "p9"}, {"workspace_id", "ws-a"}}),
            Code::kUnknownProvider);
  EXPECT_EQ(Post("o", "provider_moved", {{"provider_id", "p1"}, {"workspace_id", "nope"}}),
            Code::kUnknownWorkspace);
  EXPECT_EQ(
      Post("o", "billing_account_assigned", {{"cost_center_id", "nope"}, {"billing_account", "X"}}),
      Code::kUnknownCostCenter);
  EXPECT_EQ(Post("o", "support_charged",
                 {{"month", "2026-01"},
                  {"amount", "1"},
                  {"description", "d"},
                  {"cost_center_id", "nope"}}),
            Code::kUnknownCostCenter);
  EXPECT_EQ(Post("o", "credit_applied",
                 {{"month", "2026-01"},
                  {"amount", "1"},
                  {"description", "d"},
                  {"cost_center_id", "nope"}}),
            Code::kUnknownCostCenter);
  EXPECT_EQ(Post("o", "usage_recorded",
                 {{"provider_id", "p9"},
                  {"service", "s"},
                  {"sku", "k"},
                  {"resource_id", "r"},
                  {"region", "x"},
                  {"quantity", "1"},
                  {"unit", "u"},
                  {"amount", "1"},
                  {"usage_start", "2026-01-01T00:00:00Z"},
                  {"usage_end", "2026-01-01T00:00:00Z"}}),
            Code::kUnknownProvider);
  EXPECT_EQ(Post("o", "usage_recorded",
                 {{"provider_id", "p1"},
                  {"service", "s"},
                  {"sku", "k"},
                  {"resource_id", "r"},
                  {"region", "x"},
                  {"quantity", "1"},
                  {"unit", "u"},
                  {"amount", "1"},
                  {"usage_start", "2026-01-01T00:00:00Z"},
                  {"usage_end", "2026-01-01T00:00:00Z"},
                  {"currency", "EUR"}}),
            Code::kCurrencyMismatch);
  EXPECT_EQ(Post("o", "event_voided", {{"voided_event_id", "never"}, {"reason", "r"}}),
            Code::kUnknownEvent);
  EXPECT_EQ(
      Post("o", "event_voided", {{"voided_event_id", "o:cost_center_created:3"}, {"reason", "r"}}),
      Code::kNotVoidable);
  ASSERT_EQ(Usage("2026-01-02T00:00:00Z", "5"), Code::kOk);
  std::string charge = last_id_;
  ASSERT_EQ(Post("o", "event_voided", {{"voided_event_id", charge}, {"reason", "r"}}), Code::kOk);
  std::string void_id = last_id_;
  EXPECT_EQ(Post("o", "event_voided", {{"voided_event_id", charge}, {"reason", "r"}}),
            Code::kAlreadyVoided);
  EXPECT_EQ(Post("o", "event_voided", {{"voided_event_id", void_id}, {"reason", "r"}}),
            Code::kNotVoidable);
  ASSERT_EQ(Post("o", "billing_period_closed", {{"month", "2025-12"}}), Code::kOk);
  EXPECT_EQ(Post("o", "billing_period_closed", {{"month", "2025-12"}}), Code::kPeriodClosed);
  // Another org's event is unknown here.
  Org("q");
  EXPECT_EQ(Post("q", "event_voided", {{"voided_event_id", charge}, {"reason", "r"}}),
            Code::kUnknownEvent);
}

TEST_F(BillingTest, ChargesFollowTheProviderMoveEffectiveAtUsageStart) {
  Org();
  ASSERT_EQ(Usage("2026-01-10T00:00:00Z", "1"), Code::kOk);  // before the move: cc-a
  ASSERT_EQ(Post("o", "provider_moved", {{"provider_id", "p1"}, {"workspace_id", "ws-b"}},
                 "2026-01-15T12:00:00Z"),
            Code::kOk);
  ASSERT_EQ(Usage("2026-01-15T12:00:00Z", "10"), Code::kOk);   // at the move (inclusive): cc-b
  ASSERT_EQ(Usage("2026-01-14T00:00:00Z", "100"), Code::kOk);  // recorded later, used before: cc-a
  ASSERT_EQ(Usage("2025-11-01T00:00:00Z", "1000"),
            Code::kOk);  // before registration: first workspace
  EXPECT_EQ(CostCenterBilled("cc-a", "2026-01"), "101.00");
  EXPECT_EQ(CostCenterBilled("cc-b", "2026-01"), "10.00");
  EXPECT_EQ(CostCenterBilled("cc-a", "2025-11"), "1000.00");
  // A move recorded later never re-attributes charges already in the ledger.
  ASSERT_EQ(Post("o", "provider_moved", {{"provider_id", "p1"}, {"workspace_id", "ws-a"}},
                 "2026-01-01T00:00:00Z"),
            Code::kOk);
  EXPECT_EQ(CostCenterBilled("cc-b", "2026-01"), "10.00");
  ASSERT_EQ(Usage("2026-01-16T00:00:00Z", "7"),
            Code::kOk);  // latest placement at or before: ws-b (Jan 15)
  EXPECT_EQ(CostCenterBilled("cc-b", "2026-01"), "17.00");
}

TEST_F(BillingTest, ModeInEffectAtMonthEndDecidesTheInvoices) {
  Org();
  ASSERT_EQ(Usage("2026-01-10T00:00:00Z", "1.005"), Code::kOk);
  ASSERT_EQ(Post("o", "support_charged",
                 {{"month", "2026-01"}, {"amount", "2.004"}, {"description", "Support"}}),
            Code::kOk);
  EXPECT_EQ(Invoices("2026-01"),
            (std::map<std::string, std::string>{{"2026-01-org", "3.01 draft BA"}}));
  // Effective exactly when February starts: not before it, so January stays SINGLE.
  ASSERT_EQ(
      Post("o", "invoicing_mode_changed", {{"mode", "PER_COST_CENTER"}}, "2026-02-01T00:00:00Z"),
      Code::kOk);
  EXPECT_EQ(Invoices("2026-01").size(), 1u);
  ASSERT_EQ(
      Post("o", "invoicing_mode_changed", {{"mode", "PER_COST_CENTER"}}, "2026-01-31T23:59:59Z"),
      Code::kOk);
  // Each invoice rounds on its own: 1.005 -> 1.01 and 2.004 -> 2.00.
  EXPECT_EQ(Invoices("2026-01"),
            (std::map<std::string, std::string>{{"2026-01-cc-a", "1.01 draft null"},
                                                {"2026-01-org", "2.00 draft BA"}}));
  auto s = Snap();
  EXPECT_EQ(FormatNanos(MonthItems(*s.org, *s.view, *ParseMonth("2026-01", "m")).total, 2), "3.01");
  ASSERT_EQ(Post("o", "billing_account_assigned",
                 {{"cost_center_id", "cc-a"}, {"billing_account", "BA-A"}}),
            Code::kOk);
  EXPECT_EQ(Invoices("2026-01")["2026-01-cc-a"], "1.01 draft BA-A");
}

// Times are exact to the nanosecond in every decision: these three cases came
// out wrong when times were cut to the microsecond.
TEST_F(BillingTest, UsageEndingOneNanosecondBeforeItStartsIsRejected) {
  Org();
  auto usage = [&](const std::string& start, const std::string& end) {
    return Post("o", "usage_recorded",
                {{"provider_id", "p1"},
                 {"service", "EC2"},
                 {"sku", "k"},
                 {"resource_id", "r"},
                 {"region", "x"},
                 {"quantity", "1"},
                 {"unit", "Hrs"},
                 {"amount", "1"},
                 {"usage_start", start},
                 {"usage_end", end}},
                start);
  };
  EXPECT_EQ(usage("2026-01-10T00:00:00.000000001Z", "2026-01-10T00:00:00Z"),
            Code::kInvalidArgument);
  EXPECT_EQ(usage("2026-01-10T00:00:00.123456790Z", "2026-01-10T00:00:00.123456789Z"),
            Code::kInvalidArgument);
  EXPECT_EQ(usage("2026-01-10T00:00:00.123456789Z", "2026-01-10T00:00:00.123456789Z"), Code::kOk);
  EXPECT_EQ(usage("2026-01-10T00:00:00.1234567890Z", "2026-01-10T00:00:01Z"),
            Code::kInvalidArgument);
}

TEST_F(BillingTest, UsageOneNanosecondBeforeAMoveStaysInTheOldWorkspace) {
  Org();
  ASSERT_EQ(Post("o", "provider_moved", {{"provider_id", "p1"}, {"workspace_id", "ws-b"}},
                 "2026-01-15T12:00:00.000000500Z"),
            Code::kOk);
  // The placement's instant must survive the read model's encoding too.
  Reopen();
  ASSERT_EQ(Usage("2026-01-15T12:00:00.000000499Z", "1"), Code::kOk);   // before the move: cc-a
  ASSERT_EQ(Usage("2026-01-15T12:00:00.000000500Z", "10"), Code::kOk);  // at the move: cc-b
  EXPECT_EQ(CostCenterBilled("cc-a", "2026-01"), "1.00");
  EXPECT_EQ(CostCenterBilled("cc-b", "2026-01"), "10.00");
  ASSERT_TRUE(billing_->Rebuild().ok());
  EXPECT_EQ(CostCenterBilled("cc-a", "2026-01"), "1.00");
  EXPECT_EQ(CostCenterBilled("cc-b", "2026-01"), "10.00");
}

TEST_F(BillingTest, ModeChangesNanosecondsApartRecordedInReverseOrderFollowOccurredAt) {
  Org();
  ASSERT_EQ(Usage("2026-01-10T00:00:00Z", "1"), Code::kOk);
  ASSERT_EQ(Support("2026-01", "2"), Code::kOk);
  // Recorded first, but it takes effect later: PER_COST_CENTER is the mode
  // in effect when January ends.
  ASSERT_EQ(Post("o", "invoicing_mode_changed", {{"mode", "PER_COST_CENTER"}},
                 "2026-01-31T23:59:59.999999998Z"),
            Code::kOk);
  ASSERT_EQ(
      Post("o", "invoicing_mode_changed", {{"mode", "SINGLE"}}, "2026-01-31T23:59:59.999999997Z"),
      Code::kOk);
  const std::map<std::string, std::string> per_cost_center{{"2026-01-cc-a", "1.00 draft null"},
                                                           {"2026-01-org", "2.00 draft BA"}};
  EXPECT_EQ(Invoices("2026-01"), per_cost_center);
  Reopen();
  EXPECT_EQ(Invoices("2026-01"), per_cost_center);
  // Closing the month freezes the mode decided from those instants.
  ASSERT_EQ(Post("o", "billing_period_closed", {{"month", "2026-01"}}, "2026-02-02T00:00:00Z"),
            Code::kOk);
  EXPECT_EQ(Invoices("2026-01"),
            (std::map<std::string, std::string>{{"2026-01-cc-a", "1.00 final null"},
                                                {"2026-01-org", "2.00 final BA"}}));
}

TEST_F(BillingTest, ClosedMonthsNeverChangeAndLateChargesBecomeAdjustments) {
  Org();
  ASSERT_EQ(Usage("2025-12-10T00:00:00Z", "10"), Code::kOk);
  std::string december_charge = last_id_;
  ASSERT_EQ(Post("o", "billing_account_assigned",
                 {{"cost_center_id", "cc-a"}, {"billing_account", "OLD"}}),
            Code::kOk);
  ASSERT_EQ(
      Post("o", "invoicing_mode_changed", {{"mode", "PER_COST_CENTER"}}, "2025-12-01T00:00:00Z"),
      Code::kOk);
  ASSERT_EQ(Post("o", "billing_period_closed", {{"month", "2025-12"}}, "2026-01-05T00:00:00Z"),
            Code::kOk);
  ASSERT_EQ(Post("o", "billing_period_closed", {{"month", "2026-01"}}, "2026-02-05T00:00:00Z"),
            Code::kOk);
  auto before = Items("2025-12");
  ASSERT_EQ(Usage("2025-12-20T00:00:00Z", "3"), Code::kOk);  // late: lands in 2026-02
  ASSERT_EQ(Post("o", "event_voided", {{"voided_event_id", december_charge}, {"reason", "r"}}),
            Code::kOk);
  ASSERT_EQ(
      Post("o", "credit_applied", {{"month", "2025-12"}, {"amount", "1"}, {"description", "c"}}),
      Code::kOk);
  ASSERT_EQ(Post("o", "billing_account_assigned",
                 {{"cost_center_id", "cc-a"}, {"billing_account", "NEW"}}),
            Code::kOk);
  ASSERT_EQ(Post("o", "invoicing_mode_changed", {{"mode", "SINGLE"}}, "2025-12-15T00:00:00Z"),
            Code::kOk);
  EXPECT_EQ(Items("2025-12"), before);
  // The closed month keeps its mode and account.
  EXPECT_EQ(Invoices("2025-12"),
            (std::map<std::string, std::string>{{"2025-12-cc-a", "10.00 final OLD"}}));
  // All late postings for December form one adjustment item in February: 3 - 10 - 1.
  EXPECT_EQ(Items("2026-02"),
            (std::map<std::string, std::string>{{"adjustment/2025-12", "-8.000000000"}}));
  auto s = Snap();
  auto history = UsageHistory(*s.org, *s.view, MonthRange{*ParseMonth("2026-02", "m"), 3});
  EXPECT_EQ(FormatNanos(history[0].adjustments), "-8.000000000");
  EXPECT_FALSE(history[0].closed);
  EXPECT_TRUE(history[1].closed);
  // The latest month is the one holding the adjustment.
  EXPECT_EQ(FormatMonth(s.org->LatestMonth()), "2026-02");
}

// Fails every read of a table file while armed: a disk or a file going bad
// under a running ledgerd.
class FailingTableReads : public rocksdb::FileSystemWrapper {
 public:
  FailingTableReads() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  static const char* kClassName() { return "FailingTableReads"; }
  const char* Name() const override { return kClassName(); }
  void Arm(bool failing) { failing_ = failing; }
  int injected() const { return injected_; }

  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* d) override {
    rocksdb::IOStatus s = target()->NewRandomAccessFile(f, o, r, d);
    if (s.ok() && f.ends_with(".sst")) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }

 private:
  class File : public rocksdb::FSRandomAccessFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSRandomAccessFile>&& f, FailingTableReads* fs)
        : FSRandomAccessFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Read(uint64_t offset, size_t n, const rocksdb::IOOptions& o,
                           rocksdb::Slice* result, char* scratch,
                           rocksdb::IODebugContext* d) const override {
      if (fs_->failing_) {
        fs_->injected_++;
        return rocksdb::IOStatus::IOError("injected: read failed");
      }
      return target()->Read(offset, n, o, result, scratch, d);
    }
    rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t n, const rocksdb::IOOptions& o,
                                rocksdb::IODebugContext* d) override {
      if (fs_->failing_) {
        fs_->injected_++;
        for (size_t i = 0; i < n; ++i)
          reqs[i].status = rocksdb::IOStatus::IOError("injected: read failed");
        return rocksdb::IOStatus::IOError("injected: read failed");
      }
      return target()->MultiRead(reqs, n, o, d);
    }

   private:
    FailingTableReads* fs_;
  };

  std::atomic<bool> failing_{false};
  std::atomic<int> injected_{0};
};

// A read-model read that fails is an error value, never a crash and never a
// smaller bill: queries see it in the view's status() (the API answers 503),
// and a decision that needed it fails its group instead of deciding blind.
TEST_F(BillingTest, AFailedReadModelReadIsUnavailableNotAnAnswer) {
  Org();
  ASSERT_EQ(Usage("2026-01-10T00:00:00Z", "12.5"), Code::kOk);
  std::string charge = last_id_;
  ASSERT_EQ(Usage("2026-01-11T00:00:00Z", "2.25"), Code::kOk);
  auto fs = std::make_shared<FailingTableReads>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  env_ = env.get();
  Reopen();
  // The void and its postings into a table file of their own that nothing
  // has read yet (opening read the older one), so the reads below go to it.
  ASSERT_EQ(Post("o", "event_voided", {{"voided_event_id", charge}, {"reason", "r"}}), Code::kOk);
  ASSERT_TRUE(billing_->ledger().db()->Flush(rocksdb::FlushOptions()).ok());
  Month jan = *ParseMonth("2026-01", "m");

  fs->Arm(true);
  {
    OrgSnapshot s = Snap();
    auto history = UsageHistory(*s.org, *s.view, MonthRange{jan, 1});
    EXPECT_EQ(s.view->status().code(), Code::kUnavailable) << s.view->status().ToString();
  }
  // Voiding it again needs its voided marker, which is in a table file.
  Json again{{"event_id", "o:void-again"},
             {"org_id", "o"},
             {"occurred_at", "2026-01-12T00:00:00Z"},
             {"event_voided", {{"voided_event_id", charge}, {"reason", "r"}}}};
  ledger::AppendRequest req;
  req.entries.push_back(ledger::PrepareEntry(again.dump(), ledger::Source()));
  auto failed = billing_->Submit(std::move(req));
  EXPECT_EQ(failed.status.code(), Code::kUnavailable) << failed.status.ToString();
  EXPECT_GT(fs->injected(), 0);

  fs->Arm(false);
  {
    OrgSnapshot s = Snap();
    auto history = UsageHistory(*s.org, *s.view, MonthRange{jan, 1});
    ASSERT_TRUE(s.view->status().ok()) << s.view->status().ToString();
    ASSERT_EQ(history.size(), 1u);
    EXPECT_EQ(FormatNanos(history[0].total, 2), "2.25");
  }
  ledger::AppendRequest retry;
  retry.entries.push_back(ledger::PrepareEntry(again.dump(), ledger::Source()));
  auto decided = billing_->Submit(std::move(retry));
  ASSERT_TRUE(decided.status.ok()) << decided.status.ToString();
  EXPECT_EQ(decided.outcomes[0].code, Code::kAlreadyVoided);
  billing_.reset();  // before the file system it reads through
}

// Fails every write to a table file while armed: a rebuild's flush.
class FailingTableWrites : public rocksdb::FileSystemWrapper {
 public:
  FailingTableWrites() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  static const char* kClassName() { return "FailingTableWrites"; }
  const char* Name() const override { return kClassName(); }
  void Arm(bool failing) { failing_ = failing; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    if (failing_ && f.ends_with(".sst"))
      return rocksdb::IOStatus::IOError("injected: table write failed");
    return target()->NewWritableFile(f, o, r, d);
  }

 private:
  std::atomic<bool> failing_{false};
};

// A rebuild whose writes fail returns the failure (no hang, no half-built
// read models marked as built), leaves compactions running, and the next
// open rebuilds the same answers.
TEST_F(BillingTest, ARebuildThatCannotWriteFailsAndTheNextOpenRebuilds) {
  auto fs = std::make_shared<FailingTableWrites>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  env_ = env.get();
  Reopen();
  Org();
  ASSERT_EQ(Usage("2026-01-10T00:00:00Z", "4"), Code::kOk);
  ASSERT_EQ(Usage("2026-01-11T00:00:00Z", "1", "EC2", "GB", "r2"), Code::kOk);
  auto items = Items("2026-01");
  size_t write_buffer = billing_->ledger().db()->GetOptions().write_buffer_size;
  fs->Arm(true);
  Status rebuilt = billing_->Rebuild();
  EXPECT_EQ(rebuilt.code(), Code::kUnavailable) << rebuilt.ToString();
  EXPECT_FALSE(billing_->ledger().db()->GetOptions().disable_auto_compactions);
  EXPECT_EQ(billing_->ledger().db()->GetOptions().write_buffer_size, write_buffer);
  fs->Arm(false);
  Reopen();
  EXPECT_EQ(Items("2026-01"), items);
  billing_.reset();  // before the file system it writes through
}

// A value in the read models that is not an aggregate (only a bug or a hand
// edit could put one there) makes the answer fail as corrupt: no crash, and
// no bill computed as if that amount were zero.
TEST_F(BillingTest, AnUndecodableAggregateIsCorruptionNotAnAnswer) {
  Org();
  ASSERT_EQ(Usage("2026-01-10T00:00:00Z", "12.5"), Code::kOk);
  Month jan = *ParseMonth("2026-01", "m");
  ASSERT_TRUE(
      billing_->ledger()
          .db()
          ->Put(rocksdb::WriteOptions(), keys::CategoryKey("o", jan, keys::kUsage), "garbage")
          .ok());
  OrgSnapshot s = Snap();
  auto history = UsageHistory(*s.org, *s.view, MonthRange{jan, 1});
  EXPECT_EQ(s.view->status().code(), Code::kCorruption) << s.view->status().ToString();
}

TEST_F(BillingTest, VoidInAnOpenMonthNetsIntoTheOriginalItemAndPath) {
  Org();
  ASSERT_EQ(Usage("2026-01-10T00:00:00Z", "4"), Code::kOk);
  std::string charge = last_id_;
  ASSERT_EQ(Usage("2026-01-11T00:00:00Z", "1", "EC2", "GB", "r2"), Code::kOk);
  ASSERT_EQ(Post("o", "event_voided", {{"voided_event_id", charge}, {"reason", "r"}}), Code::kOk);
  EXPECT_EQ(Items("2026-01"), (std::map<std::string, std::string>{{"usage/EC2", "1.000000000"}}));
  auto s = Snap();
  Month jan = *ParseMonth("2026-01", "m");
  auto items = MonthItems(*s.org, *s.view, jan).items;
  ASSERT_EQ(items.size(), 1u);
  auto providers = ItemChildren(*s.org, *s.view, jan, items[0].id);
  ASSERT_TRUE(providers.ok());
  ASSERT_EQ(providers->children.size(), 1u);
  EXPECT_EQ(providers->children[0].label, "Prov 1");
  EXPECT_FALSE(providers->children[0].quantity.has_value());  // Hrs and GB do not add up
  auto resources = ItemChildren(*s.org, *s.view, jan, providers->children[0].id);
  ASSERT_TRUE(resources.ok());
  ASSERT_EQ(resources->children.size(), 2u);
  // The voided resource stays as a zero group with its quantity netted out.
  EXPECT_EQ(resources->children[0].label, "r1");
  EXPECT_EQ(FormatNanos(resources->children[0].amount), "0.000000000");
  EXPECT_EQ(FormatNanos(*resources->children[0].quantity), "0.000000000");
  auto skus = ItemChildren(*s.org, *s.view, jan, resources->children[1].id);
  ASSERT_TRUE(skus.ok());
  ASSERT_EQ(skus->children.size(), 1u);
  EXPECT_FALSE(skus->children[0].drillable);
  EXPECT_EQ(*skus->children[0].unit, "GB");
  EXPECT_FALSE(ItemChildren(*s.org, *s.view, jan, "bm9uc2Vuc2U").ok());
}

TEST_F(BillingTest, JapaneseYenRoundsToWholeUnits) {
  Org("jp", "JPY");
  ASSERT_EQ(Post("jp", "support_charged",
                 {{"month", "2026-01"}, {"amount", "2.5"}, {"description", "s"}}),
            Code::kOk);
  auto s = Snap(std::nullopt, "jp");
  auto rows = Dashboard(*s.org, *s.view, MonthRange{*ParseMonth("2026-01", "m"), 1}, std::nullopt);
  EXPECT_EQ(FormatNanos((*rows)[0].billed, 0), "3");
}

TEST_F(BillingTest, AsOfAnswersAsTheLedgerStoodAndRebuildChangesNothing) {
  Org();
  ASSERT_EQ(Usage("2026-01-10T00:00:00Z", "4"), Code::kOk);
  uint64_t seq = billing_->ledger().head().sequence.value;
  ASSERT_EQ(Usage("2026-01-11T00:00:00Z", "6"), Code::kOk);
  EXPECT_EQ(Invoices("2026-01", seq)["2026-01-org"], "4.00 draft BA");
  EXPECT_EQ(Invoices("2026-01")["2026-01-org"], "10.00 draft BA");
  EXPECT_FALSE(billing_->Snapshot("o", ledger::Sequence{0}).ok());
  auto items = Items("2026-01");
  size_t write_buffer = billing_->ledger().db()->GetOptions().write_buffer_size;
  ASSERT_TRUE(billing_->Rebuild().ok());
  EXPECT_EQ(Items("2026-01"), items);
  // The rebuild sets RocksDB up for a bulk load; the service's settings
  // must be back after it.
  EXPECT_FALSE(billing_->ledger().db()->GetOptions().disable_auto_compactions);
  EXPECT_EQ(billing_->ledger().db()->GetOptions().write_buffer_size, write_buffer);
  Reopen();
  EXPECT_EQ(Items("2026-01"), items);
  EXPECT_EQ(Invoices("2026-01")["2026-01-org"], "10.00 draft BA");
}

TEST_F(BillingTest, RejectedEventsCanBeRedrivenOnceTheStructureArrives) {
  Org();
  ASSERT_EQ(Post("o", "cost_center_created", {{"cost_center_id", "x"}, {"name", "n"}}), Code::kOk);
  ASSERT_EQ(Post("o", "support_charged",
                 {{"month", "2026-01"},
                  {"amount", "5"},
                  {"description", "d"},
                  {"cost_center_id", "late-cc"}}),
            Code::kUnknownCostCenter);
  auto rejected = billing_->ledger().ListRejected(0, 0);
  ASSERT_TRUE(rejected.ok());
  ASSERT_EQ(rejected->size(), 1u);
  auto again = billing_->Retry(rejected->front().id());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->outcomes[0].code, Code::kUnknownCostCenter);
  ASSERT_EQ(Post("o", "cost_center_created", {{"cost_center_id", "late-cc"}, {"name", "n"}}),
            Code::kOk);
  auto ok = billing_->Retry(rejected->front().id());
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->outcomes[0].kind, ledger::Outcome::Kind::kAccepted);
  EXPECT_TRUE(billing_->ledger().ListRejected(0, 0)->empty());
  EXPECT_EQ(CostCenterBilled("late-cc", "2026-01"), "5.00");
}

// An answer as of a past sequence replays the org but keeps in memory only
// the aggregates its route reads, and answers exactly as a full replay does.
TEST_F(BillingTest, AsOfReplayKeepsOnlyWhatTheAnswerReads) {
  Org();
  for (int i = 0; i < 30; ++i) {
    std::string day = std::to_string(10 + i % 15);
    ASSERT_EQ(Usage("2026-01-" + day + "T00:00:00Z", std::to_string(i + 1) + ".25",
                    "svc" + std::to_string(i % 3), "Hrs", "r" + std::to_string(i)),
              Code::kOk);
    ASSERT_EQ(Usage("2026-02-" + day + "T00:00:00Z", "0.5", "svc" + std::to_string(i % 4), "Hrs",
                    "q" + std::to_string(i)),
              Code::kOk);
  }
  uint64_t as_of = billing_->ledger().head().sequence.value;
  ASSERT_EQ(Usage("2026-02-20T00:00:00Z", "100"), Code::kOk);  // after as_of: must not show
  Month jan = *ParseMonth("2026-01", "m");
  Month feb = *ParseMonth("2026-02", "m");
  auto stored = [](const OrgSnapshot& s) {
    return dynamic_cast<const MemoryStore&>(*s.view).size();
  };

  OrgSnapshot full = Snap(as_of);
  auto dashboard = billing_->Snapshot("o", ledger::Sequence{as_of},
                                      ReplayScope{.kinds = "B", .month = std::nullopt});
  auto history = billing_->Snapshot("o", ledger::Sequence{as_of},
                                    ReplayScope{.kinds = "BC", .month = std::nullopt});
  auto items =
      billing_->Snapshot("o", ledger::Sequence{as_of}, ReplayScope{.kinds = "ID", .month = jan});
  ASSERT_TRUE(dashboard.ok() && history.ok() && items.ok());
  // The drill-down (4 levels of 30 resources a month) is most of a full replay.
  EXPECT_LT(stored(*dashboard) * 10, stored(full));
  EXPECT_LT(stored(*history) * 10, stored(full));
  EXPECT_LT(stored(*items) * 2, stored(full));

  MonthRange both{feb, 2};
  auto want_dash = Dashboard(*full.org, *full.view, both, std::nullopt);
  auto got_dash = Dashboard(*dashboard->org, *dashboard->view, both, std::nullopt);
  ASSERT_TRUE(want_dash.ok() && got_dash.ok());
  ASSERT_EQ(got_dash->size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ((*got_dash)[i].billed, (*want_dash)[i].billed);
  EXPECT_EQ(FormatNanos((*got_dash)[1].billed, 2), "15.00");  // February without the later 100

  auto want_history = UsageHistory(*full.org, *full.view, both);
  auto got_history = UsageHistory(*history->org, *history->view, both);
  ASSERT_EQ(got_history.size(), want_history.size());
  for (size_t i = 0; i < got_history.size(); ++i) {
    EXPECT_EQ(got_history[i].total, want_history[i].total);
    EXPECT_EQ(got_history[i].usage, want_history[i].usage);
  }

  MonthDetail jan_items = MonthItems(*full.org, *full.view, jan);
  ASSERT_FALSE(jan_items.items.empty());
  for (const Item& item : jan_items.items) {
    auto want = ItemChildren(*full.org, *full.view, jan, item.id);
    auto got = ItemChildren(*items->org, *items->view, jan, item.id);
    ASSERT_TRUE(want.ok() && got.ok()) << item.id;
    EXPECT_EQ(got->amount, want->amount);
    ASSERT_EQ(got->children.size(), want->children.size());
    for (size_t c = 0; c < got->children.size(); ++c) {
      EXPECT_EQ(got->children[c].id, want->children[c].id);
      EXPECT_EQ(got->children[c].amount, want->children[c].amount);
    }
  }
}

// The golden example, in-process: outcomes per line and the month totals.
TEST_F(BillingTest, GoldenExampleOutcomes) {
  const std::string dir = billing::testing::ExamplesDir();
  std::ifstream in(dir + "/events.ndjson");
  Json outcomes = Json::parse(std::ifstream(dir + "/expected/outcomes.json"));
  std::string line;
  size_t i = 0;
  while (std::getline(in, line)) {
    ledger::AppendRequest req;
    req.entries.push_back(ledger::PrepareEntry(line, ledger::Source()));
    auto r = billing_->Submit(std::move(req));
    const Json& want = outcomes[i++];
    const ledger::Outcome& got = r.outcomes[0];
    if (want["status"] == "accepted") {
      EXPECT_EQ(got.kind, ledger::Outcome::Kind::kAccepted) << line;
      EXPECT_EQ(got.sequence.value, want["sequence"].get<uint64_t>());
    } else if (want["status"] == "duplicate") {
      EXPECT_EQ(got.kind, ledger::Outcome::Kind::kDuplicate) << line;
    } else {
      EXPECT_EQ(CodeName(got.code), want["code"].get<std::string>()) << line;
    }
  }
  EXPECT_EQ(i, outcomes.size());
  auto s = Snap(std::nullopt, "acme");
  auto rows = Dashboard(*s.org, *s.view, MonthRange{s.org->LatestMonth(), 6}, std::nullopt);
  std::vector<std::string> billed;
  for (const auto& r : *rows) billed.push_back(FormatNanos(r.billed, 2));
  EXPECT_EQ(billed,
            (std::vector<std::string>{"0.00", "0.00", "34.29", "304.42", "108.58", "64.93"}));
}

}  // namespace
}  // namespace billing::projections
