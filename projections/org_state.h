// An organization's structure and calendar, as known at a point of the ledger:
// cost centers, workspaces, providers with their effective-dated placements,
// invoicing-mode changes and closed months.
//
// Attribution questions are answered "by the structure known when the charge
// is recorded": every placement and close carries the ledger sequence that
// made it, and the queries take the sequence of the charge, so re-deciding an
// old event (for a void) sees exactly what was known then.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "events/calendar.h"
#include "events/event.h"
#include "ledger/ledger.h"
#include "projections/state.pb.h"

namespace billing::projections {

using events::InvoicingMode;

struct Placement {
  Timestamp effective;
  uint64_t sequence = 0;
  std::string workspace_id;
};

struct ProviderInfo {
  std::string name;
  std::string kind;
  std::vector<Placement> placements;  // ledger order; [0] is the registration
};

struct CostCenterInfo {
  std::string name;
  std::optional<std::string> billing_account;
};

struct ModeChange {
  Timestamp effective;
  uint64_t sequence = 0;
  InvoicingMode mode = InvoicingMode::kSingle;
};

struct ClosedMonth {
  uint64_t sequence = 0;
  InvoicingMode mode = InvoicingMode::kSingle;
  std::map<std::string, std::string> cost_center_accounts;  // assigned ones only
};

// One budget_set or budget_removed, as the org's budget history keeps it.
struct BudgetChange {
  enum class Kind : uint8_t { kSet, kRemoved };
  std::string budget_id;
  Timestamp effective;  // occurred_at: in force from its month on
  uint64_t sequence = 0;
  Kind kind = Kind::kSet;
  // A set's terms; empty for a removal.
  Nanos amount = 0;
  std::optional<std::string> cost_center;  // nullopt: the whole organization
  std::vector<int32_t> thresholds;         // percents, as sent (the default filled in)
};

struct OrgState {
  std::string org_id;
  std::string name;
  std::string currency;
  std::string billing_account;
  int minor_digits = 2;
  Month created_month;
  std::map<std::string, CostCenterInfo> cost_centers;
  std::map<std::string, std::string> workspaces;       // workspace -> owning cost center
  std::map<std::string, std::string> workspace_names;  // workspace -> its name (GET /v1/orgs/{org})
  std::map<std::string, ProviderInfo> providers;
  std::vector<ModeChange> modes;          // ledger order
  std::map<int32_t, ClosedMonth> closed;  // by Month::index
  std::optional<Month> latest_charge_month;
  std::vector<BudgetChange> budgets;  // ledger order
  // Months any posting landed in (by Month::index): the months a new budget
  // can alert for, so a budget dated years back looks at those only.
  std::set<int32_t> charged_months;

  // The cost center owning the workspace `provider` was in at `at`, using
  // placements recorded before `known_before`. kUnknownProvider for a
  // provider this org does not have; kCorruption when the state names a
  // workspace it does not hold (a damaged stored state). Never throws: it
  // runs on the ledger's writer thread.
  Result<std::string> CostCenterOf(const std::string& provider, Timestamp at,
                                   ledger::Sequence known_before) const;
  // Whether `month` was closed by an event before sequence `known_before`.
  bool IsClosed(Month month, ledger::Sequence known_before = ledger::kSequenceMax) const;
  // The first month after `month` that is open as of `known_before`.
  Month EarliestOpenAfter(Month month, ledger::Sequence known_before = ledger::kSequenceMax) const;
  // Invoicing mode of `month`: frozen at its close, else the latest change
  // effective before the next month starts (ties in ledger order); as known
  // from the events before `known_before` (the explain index's answers as of
  // a past sequence read the head's state).
  InvoicingMode ModeOf(Month month, ledger::Sequence known_before = ledger::kSequenceMax) const;
  // Billing account of a cost center's invoice for `month`; nullopt if none assigned.
  std::optional<std::string> AccountOf(const std::string& cost_center, Month month) const;
  // The budgets in force in `month`, by id: for each id the latest change
  // effective before the next month starts (ledger order breaking ties),
  // unless that is a removal. Not frozen by a close (SPEC).
  std::map<std::string, const BudgetChange*> BudgetsOf(Month month) const;
  // Whether `budget_id` exists now: its latest change in ledger order is a set.
  bool BudgetExists(const std::string& budget_id) const;
  // The last month of "latest" lists: latest month with a charge, else creation month.
  Month LatestMonth() const { return latest_charge_month.value_or(created_month); }

  v1::OrgState ToProto() const;
  static OrgState FromProto(const v1::OrgState& proto);
};

}  // namespace billing::projections
