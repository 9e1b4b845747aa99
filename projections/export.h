// Export: one organization's month, line by line, exactly as its invoices
// count it.
//
// A month's read models hold sums; finance and auditors also want the rows
// behind them. `ExportMonth` replays the org's records (through the ledger's
// org index, up to a sequence) into a Decider whose posting observer keeps
// every posting that lands in the month: usage, voids netting into their
// original's item (negative), late charges and voids as adjustments labelled
// with their original month, support, and credits (negative). Because the rows
// come from the very rules that build the invoices, the rows of one invoice
// summed per (category, label) are that invoice's exact lines, and all rows
// summed are the month's exact total before rounding.
//
// `RenderExport` writes rows as our own CSV, as FinOps FOCUS 1.0 CSV (the
// columns that apply, plus `x_` columns for ledger identity) or as NDJSON.
// Money is written with 9 decimals, exact. Pure functions over a read-only
// ledger: thread-safe, and safe on a ledger opened read-only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/ledger.h"
#include "projections/org_state.h"

namespace billing::projections {

struct ExportRow {
  std::string cost_center_id;  // the invoice bucket; "" for organization-level charges
  std::string invoice_id;      // {month}-org or {month}-{cost_center_id}
  std::optional<std::string> billing_account;  // nullopt: cost center without an account yet
  std::string billing_account_name;            // the org's or the cost center's name
  std::string category;                        // usage, support, credit, adjustment
  std::string label;                           // the month item / invoice line it adds to
  // What was charged: the payload of the charge (usage_recorded,
  // support_charged, credit_applied); for a reversal, the voided original's.
  std::string charge_kind;
  std::string description;  // support and credit: their description
  std::string service, provider_id, provider_name, provider_kind, resource_id, sku,
      region;                   // usage
  std::optional<Sum> quantity;  // usage: signed (negative for reversals)
  std::string unit;
  Sum amount = 0;                      // signed: credits and reversals are negative
  std::string usage_start, usage_end;  // usage: as recorded (RFC 3339)
  std::string event_id;  // the event that caused the posting (for a reversal: the void)
  uint64_t sequence = 0;
  std::string reverses_event_id;  // for a reversal: the voided event
};

struct MonthExport {
  std::string org_id;
  std::string org_name;
  std::string currency;
  Month month;
  InvoicingMode mode = InvoicingMode::kSingle;
  bool closed = false;
  std::vector<ExportRow> rows;  // in ledger order
};

// The postings landing in `month` of `org` as they stood right after ledger
// sequence `upto` (ledger::kSequenceMax: the head). kNotFound if the org has no records
// up to there; kCorruption if a stored record no longer decodes or is no
// longer accepted on replay; kUnavailable on a read error.
Result<MonthExport> ExportMonth(const ledger::Ledger& ledger, const std::string& org, Month month,
                                ledger::Sequence upto = ledger::kSequenceMax);

// Keeps only the rows of one invoice; returns how many remain.
size_t KeepInvoice(MonthExport* month_export, const std::string& invoice_id);

enum class ExportFormat { kCsv, kFocus, kNdjson };

// "csv", "focus" or "ndjson"; kInvalidArgument otherwise.
Result<ExportFormat> ParseExportFormat(std::string_view name);

// The rows as a file: CSV formats start with a header line (RFC 4180 quoting,
// CRLF-free: lines end in "\n"); NDJSON is one object per row, every value
// exact. CSV text cells that start with = + - @ TAB CR or ' are written
// quoted with a leading ' that is not part of the value, so no spreadsheet
// runs them as formulas; number columns (amounts, quantities, sequences)
// never get one. Times are exact (calendar.h FormatTimestamp).
std::string RenderExport(const MonthExport& month_export, ExportFormat format);

// The FOCUS ChargeCategory of one of our categories: usage -> Usage,
// support -> Purchase, credit -> Credit, adjustment -> Adjustment.
std::string_view FocusChargeCategory(std::string_view category);

}  // namespace billing::projections
