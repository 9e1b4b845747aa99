// FOCUS import: turns a FinOps FOCUS 1.0 export (or a similar cloud cost CSV)
// into the SPEC's events, as NDJSON ready to POST or `ledgerctl produce`.
//
// Each CSV row becomes one event:
//  - BilledCost rounded to 9 decimals, half away from zero (FOCUS files carry
//    up to 11; the ledger keeps 9, so each row moves by at most 0.5e-9);
//  - a row whose rounded cost is >= 0 is a `usage_recorded` of the mapped
//    provider: service = ServiceName, sku = SkuId, resource_id = ResourceId,
//    region = RegionId (else RegionName), quantity = ConsumedQuantity rounded
//    the same way (NULL or negative: "0"), unit = ConsumedUnit (else
//    PricingUnit), usage_start/end = ChargePeriodStart/End (else the billing
//    period), currency = BillingCurrency; missing text becomes "(none)";
//  - a row whose rounded cost is < 0 (refunds, credits, corrections) cannot be
//    usage (SPEC: usage amounts are >= 0) and becomes a `credit_applied` of the
//    month of its ChargePeriodStart, amount = -cost, description = ServiceName
//    (so credits group per service like usage does), to `credit_cost_center`
//    when set, else to the organization.
// Event ids are `focus:` + the first 32 hex digits of SHA-256 over the org id
// and the row's parsed fields (column name and value), with `:N` appended to
// the Nth identical copy of a row in one file: the same file imported twice
// gives the same ids, so the second import is only duplicates. Rows that
// cannot become a valid event (no provider mapping, bad dates or numbers,
// fields the SPEC refuses) are skipped and reported, never guessed.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/money.h"
#include "events/status.h"
#include "ops/csv_reader.h"

namespace billing::ops {

// Which of our providers a FOCUS row belongs to. Text format, one mapping a
// line, `#` starts a comment:
//     <key> = <provider_id>
// where key is a SubAccountId, a BillingAccountId or a ProviderName (looked
// up in that order), or `*` for every row nothing else matches.
struct ProviderMap {
  std::map<std::string, std::string> by_key;
  std::optional<std::string> fallback;  // the `*` line
};

// kInvalidArgument naming the line when a line is not `key = provider_id`.
Result<ProviderMap> ParseProviderMap(std::string_view text);

struct FocusImportOptions {
  std::string org_id;
  ProviderMap providers;
  std::optional<std::string> credit_cost_center;
  std::string source = "focus-import";  // the events' `source`
};

struct FocusImportReport {
  uint64_t rows = 0;     // data rows read (header excluded)
  uint64_t usage = 0;    // usage_recorded events written
  uint64_t credits = 0;  // credit_applied events written
  uint64_t skipped = 0;
  std::vector<std::string> problems;  // "row N: why", the first kFocusProblemsMax
};

// Problems listed in a report; the count goes on past it.
inline constexpr size_t kFocusProblemsMax = 100;

// Reads the CSV from `in` and calls `emit` with one compact JSON event per
// converted row, in file order. kInvalidArgument when the CSV is malformed or
// lacks BilledCost, ServiceName or a charge/billing period start column;
// row-level problems only count as skipped.
Result<FocusImportReport> ImportFocus(
    std::istream& in, const FocusImportOptions& options,
    const std::function<void(const std::string& event_json)>& emit);

// How import-focus reads a row, shared with reconciliation (reconcile.h) so
// that both place a row the same way.
//
// A header's columns, looked up by name without regard to case or spaces
// around it. A row's field is nullopt when its column is missing or the
// value is empty or the bare word NULL, else the value trimmed.
class FocusColumns {
 public:
  explicit FocusColumns(const CsvRecord& header);
  std::optional<size_t> IndexOf(std::string_view name) const;
  std::optional<std::string> Field(const CsvRecord& row, std::string_view name) const;

 private:
  std::map<std::string, size_t, std::less<>> by_lower_name_;
};

// A text field as the events carry it: control characters as spaces,
// trimmed, and "(none)" when nothing is left.
std::string FocusText(const std::optional<std::string>& field);

// The provider of a row: its SubAccountId, BillingAccountId or ProviderName
// in the map (tried in that order), else the `*` line; nullopt when none.
std::optional<std::string> FocusProvider(
    const ProviderMap& map,
    const std::function<std::optional<std::string>(std::string_view)>& field);

// A decimal with any number of fractional digits, an optional sign and an
// optional exponent (`-1.5E-7`), as a count of 10^-scale units rounded half
// away from zero: exports carry more digits than the ledger keeps, so import
// rounds at 9 digits while reconcile keeps the bill's own 18.
// kInvalidArgument when malformed or beyond what a Sum holds.
Result<Sum> ParseScaledDecimal(std::string_view text, int scale);

// ParseScaledDecimal at the ledger's 9 digits, within int64 nano-units.
Result<int64_t> ParseRoundedNanos(std::string_view text);

// `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS[.f][Z|+00:00]` or `YYYY-MM-DD`
// (all UTC) as the SPEC's RFC 3339 `...Z`. kInvalidArgument otherwise.
Result<std::string> NormalizeFocusTime(std::string_view text);

}  // namespace billing::ops
