#include "ops/reconcile.h"

#include <map>
#include <set>
#include <tuple>

#include "ops/csv_reader.h"
#include "projections/billing.h"
#include "projections/export.h"

namespace billing::ops {

namespace {

// 10^(kReconcileBillFractionDigits - 9): bill units per ledger nano-unit.
constexpr Sum kBillUnitsPerNano = 1'000'000'000;
static_assert(kReconcileBillFractionDigits == 18, "kBillUnitsPerNano assumes 18 bill decimals");
// Half a nano-unit in bill units: what rounding one row to 9 decimals can move it.
constexpr Sum kRowTolerance = kBillUnitsPerNano / 2;
// The event id prefix of import-focus (focus_import.h).
constexpr std::string_view kFocusEventPrefix = "focus:";

using Key =
    std::tuple<int32_t, std::string, std::string, bool>;  // month, provider, service, credit

ReconcileGroup& GroupOf(std::map<Key, ReconcileGroup>* groups, Month month,
                        const std::string& provider, const std::string& service, bool credit) {
  ReconcileGroup& g = (*groups)[Key{month.index, provider, service, credit}];
  g.month = month;
  g.provider_id = provider;
  g.service = service;
  g.credit = credit;
  return g;
}

struct Bill {
  std::map<Key, ReconcileGroup> groups;
  std::set<int32_t> months;
};

// One bill row placed as import-focus would make it an event.
void PlaceRow(const FocusColumns& columns, const CsvRecord& row, const ReconcileOptions& options,
              Bill* bill, const std::function<void(const std::string&)>& unplaced) {
  auto cost_text = columns.Field(row, "BilledCost");
  if (!cost_text) return unplaced("BilledCost is NULL");
  auto rounded = ParseRoundedNanos(*cost_text);
  auto exact = ParseScaledDecimal(*cost_text, kReconcileBillFractionDigits);
  if (!rounded.ok() || !exact.ok()) return unplaced("BilledCost " + rounded.status().message());
  auto charge_start = columns.Field(row, "ChargePeriodStart");
  auto billing_start = columns.Field(row, "BillingPeriodStart");
  auto start = NormalizeFocusTime(charge_start ? *charge_start : billing_start.value_or(""));
  if (!start.ok()) return unplaced("no readable ChargePeriodStart or BillingPeriodStart");
  Month month = *ParseMonth(std::string_view(*start).substr(0, 7), "month");
  if (options.month && month != *options.month) return;
  if (billing_start) {
    if (auto b = NormalizeFocusTime(*billing_start); b.ok())
      bill->months.insert(ParseMonth(b->substr(0, 7), "month")->index);
  }
  bill->months.insert(month.index);
  std::string service = FocusText(columns.Field(row, "ServiceName"));
  bool credit = *rounded < 0;
  std::string provider;
  if (!credit) {
    auto mapped = FocusProvider(options.providers,
                                [&](std::string_view name) { return columns.Field(row, name); });
    if (!mapped)
      return unplaced("no provider mapping for SubAccountId, BillingAccountId or ProviderName");
    provider = *mapped;
  }
  ReconcileGroup& g = GroupOf(&bill->groups, month, provider, service, credit);
  g.bill_rows += 1;
  g.billed += *exact;
  g.tolerance += kRowTolerance;
}

// The months whose postings can hold charges of `month`: itself and, when it
// is closed, every month up to where a late charge of it would land now (the
// closed set only grows, so none landed later).
std::set<int32_t> PostingMonths(const projections::OrgState& org,
                                const std::set<int32_t>& bill_months) {
  std::set<int32_t> out;
  for (int32_t index : bill_months) {
    Month m{index};
    out.insert(index);
    if (org.IsClosed(m)) {
      for (int32_t k = index + 1; k <= org.EarliestOpenAfter(m).index; ++k) out.insert(k);
    }
  }
  return out;
}

// The org's postings of the compared kinds, by the month they belong to.
Status AddLedger(const ledger::Ledger& ledger, const ReconcileOptions& options,
                 const std::set<int32_t>& bill_months, std::map<Key, ReconcileGroup>* groups) {
  const ledger::Sequence head = ledger.head().sequence;
  projections::MemoryStore store;
  auto org = projections::ReplayOrg(ledger, options.org, head, &store,
                                    projections::ReplayScope{"C", Month{0}});
  if (!org.ok()) return org.status();
  std::set<std::string> mapped;
  for (const auto& [key, provider] : options.providers.by_key) mapped.insert(provider);
  if (options.providers.fallback) mapped.insert(*options.providers.fallback);
  for (int32_t index : PostingMonths(*org, bill_months)) {
    auto month_export = projections::ExportMonth(ledger, options.org, Month{index}, head);
    if (!month_export.ok()) return month_export.status();
    for (const projections::ExportRow& row : month_export->rows) {
      Month belongs{index};
      if (row.category == "adjustment") belongs = *ParseMonth(row.label, "adjustment label");
      if (!bill_months.count(belongs.index)) continue;
      const std::string& charge_id =
          row.reverses_event_id.empty() ? row.event_id : row.reverses_event_id;
      ReconcileGroup* g = nullptr;
      if (row.charge_kind == "usage_recorded" && mapped.count(row.provider_id)) {
        g = &GroupOf(groups, belongs, row.provider_id, row.service, false);
      } else if (row.charge_kind == "credit_applied" && charge_id.starts_with(kFocusEventPrefix)) {
        g = &GroupOf(groups, belongs, "", row.description, true);
      }
      if (g == nullptr) continue;
      g->ledger_rows += 1;
      g->ledger += static_cast<Sum>(row.amount) * kBillUnitsPerNano;
    }
  }
  return Status::Ok();
}

}  // namespace

bool ReconcileGroup::agrees() const {
  Sum diff = ledger - billed;
  return (diff < 0 ? -diff : diff) <= tolerance;
}

size_t ReconcileReport::differences() const {
  size_t n = 0;
  for (const ReconcileGroup& g : groups) n += g.agrees() ? 0 : 1;
  return n;
}

std::string FormatBillUnits(Sum value) {
  std::string sign = value < 0 ? "-" : "";
  std::string digits = SumToString(value < 0 ? -value : value);
  if (digits.size() <= static_cast<size_t>(kReconcileBillFractionDigits)) {
    digits.insert(0, static_cast<size_t>(kReconcileBillFractionDigits) + 1 - digits.size(), '0');
  }
  std::string whole = digits.substr(0, digits.size() - kReconcileBillFractionDigits);
  std::string fraction = digits.substr(digits.size() - kReconcileBillFractionDigits);
  while (fraction.size() > static_cast<size_t>(kNanoDigits) && fraction.back() == '0')
    fraction.pop_back();
  return sign + whole + "." + fraction;
}

Result<ReconcileReport> Reconcile(std::istream& csv, const ledger::Ledger& ledger,
                                  const ReconcileOptions& options) {
  CsvReader reader(csv);
  CsvRecord header, row;
  auto got = reader.Next(&header);
  if (!got.ok()) return got.status();
  if (!*got) return Status(Code::kInvalidArgument, "the CSV is empty (no header line)");
  FocusColumns columns(header);
  for (std::string_view required : {"BilledCost", "ServiceName"}) {
    if (!columns.IndexOf(required))
      return Status(Code::kInvalidArgument, "the CSV has no " + std::string(required) + " column");
  }
  if (!columns.IndexOf("ChargePeriodStart") && !columns.IndexOf("BillingPeriodStart")) {
    return Status(Code::kInvalidArgument,
                  "the CSV has neither ChargePeriodStart nor BillingPeriodStart");
  }
  ReconcileReport report;
  Bill bill;
  while (true) {
    got = reader.Next(&row);
    if (!got.ok()) return got.status();
    if (!*got) break;
    ++report.bill_rows;
    auto unplaced = [&](const std::string& why) {
      ++report.unplaced_rows;
      if (report.problems.size() < kFocusProblemsMax) {
        report.problems.push_back("row " + std::to_string(reader.record_number()) + ": " + why);
      }
    };
    if (row.size() != header.size()) {
      unplaced("has " + std::to_string(row.size()) + " fields, the header has " +
               std::to_string(header.size()));
      continue;
    }
    PlaceRow(columns, row, options, &bill, unplaced);
  }
  if (options.month) bill.months = {options.month->index};
  if (Status s = AddLedger(ledger, options, bill.months, &bill.groups); !s.ok()) return s;
  for (auto& [key, group] : bill.groups) report.groups.push_back(std::move(group));
  return report;
}

}  // namespace billing::ops
