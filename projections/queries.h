// Queries: the dashboard, usage history, drill-down and invoices, computed
// from an organization's structure and its aggregates.
//
// Every amount here is exact (Sum nano-units); totals are already rounded
// half away from zero to the currency's minor unit, and a month's total is
// the sum of its rounded invoice totals (SPEC). Rendering to JSON is the API's
// job. Pure functions of (OrgState, View): thread-safe over immutable inputs.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "projections/org_state.h"
#include "projections/store.h"

namespace billing::projections {

// The aggregate `bytes` holds. A value that is not one fails `view` as
// kCorruption (callers check view.status()) and reads as zero.
Agg ReadAgg(const View& view, std::string_view bytes);

// The org state stored with the read models (keys.h `ps`), which the same
// write batch keeps consistent with the aggregates; nullopt when none is
// stored. kCorruption when it cannot be decoded.
Result<std::optional<OrgState>> StoredOrg(const View& view, const std::string& org);

// Month ranges the API accepts (SPEC: N in 1..36 for the dashboard); usage
// history shares the bound so one request never walks years of months.
inline constexpr int kMonthsMax = 36;

struct MonthRange {
  Month end;  // inclusive
  int count;  // 1..kMonthsMax
};

struct DashboardMonth {
  Month month;
  Sum billed = 0;               // rounded to the minor unit
  std::optional<Sum> budget;    // budgets.h MonthBudget; nullopt: none in force
  std::optional<Sum> forecast;  // budgets.h Forecast of the scope; nullopt: a closed month
};

struct HistoryMonth {
  Month month;
  bool closed = false;
  Sum total = 0;                                             // rounded
  Sum usage = 0, support = 0, credits = 0, adjustments = 0;  // exact
};

struct Item {
  std::string id;
  std::string category;  // usage, support, credit, adjustment
  std::string label;
  Sum amount = 0;
  bool drillable = false;
};

struct MonthDetail {
  Month month;
  bool closed = false;
  Sum total = 0;  // rounded
  std::vector<Item> items;
};

struct Child {
  std::string id;
  std::string label;
  Sum amount = 0;
  std::optional<Sum> quantity;  // only where all postings share one unit
  std::optional<std::string> unit;
  bool drillable = false;
};

struct ItemDetail {
  std::string id;
  std::string label;
  Sum amount = 0;
  std::vector<Child> children;
};

struct InvoiceSummary {
  std::string invoice_id;
  std::optional<std::string> cost_center_id;  // nullopt: the organization invoice
  std::optional<std::string> billing_account;
  bool final = false;
  Sum total = 0;  // rounded
};

struct InvoiceLine {
  std::string category;
  std::string description;
  Sum amount = 0;
};

struct InvoiceList {
  Month month;
  InvoicingMode mode;
  std::vector<InvoiceSummary> invoices;
};

struct Invoice {
  InvoiceSummary summary;
  std::vector<InvoiceLine> lines;
};

// GET /v1/orgs/{org}: the organization's structure with names.
struct StructureProvider {
  std::string provider_id, name, kind;
};

struct StructureWorkspace {
  std::string workspace_id, name;
  std::vector<StructureProvider> providers;
};

struct StructureCostCenter {
  std::string cost_center_id, name;
  std::optional<std::string> billing_account;  // latest assigned; nullopt: none yet
  std::vector<StructureWorkspace> workspaces;
};

// Billed per month, oldest first; with a cost center, that cost center's own
// exact charges rounded (kNotFound if the org has no such cost center). Each
// month also carries the scope's budget and, while open, its forecast.
Result<std::vector<DashboardMonth>> Dashboard(const OrgState& org, const View& view,
                                              MonthRange range,
                                              const std::optional<std::string>& cost_center);
// Newest first.
std::vector<HistoryMonth> UsageHistory(const OrgState& org, const View& view, MonthRange range);
MonthDetail MonthItems(const OrgState& org, const View& view, Month month);
// The key path an item or drill-down id stands for: what follows the month in
// its aggregate key (keys.h: 'I' category label, or 'D' level path); nullopt
// when `id` is not one of our ids' encodings.
std::optional<std::string> DecodeItemId(std::string_view id);
// kNotFound for an id that names nothing in that month.
Result<ItemDetail> ItemChildren(const OrgState& org, const View& view, Month month,
                                const std::string& item_id);
InvoiceList Invoices(const OrgState& org, const View& view, Month month);
// The ids Invoices() lists for `month` when `buckets` (cost center ids, ""
// for the organization's own charges) are the invoice buckets holding its
// postings, in the same order: the live gate names a closing month's
// invoices before its group's postings can be read back.
std::vector<std::string> InvoiceIdsOf(const OrgState& org, Month month,
                                      const std::set<std::string>& buckets);
// kNotFound when the invoice does not exist (malformed id, no lines, wrong mode).
Result<Invoice> GetInvoice(const OrgState& org, const View& view, const std::string& invoice_id);
// Cost centers with their workspaces and providers, every list sorted by id.
// A provider sits under the workspace of its placement with the latest
// effective time (even one in the future), ledger order breaking ties.
std::vector<StructureCostCenter> Structure(const OrgState& org);

}  // namespace billing::projections
