// Reconciliation: a cloud bill (FinOps FOCUS 1.0 export, or a similar cost
// CSV) against what the ledger holds, per (month, provider, service).
//
// Each bill row is placed as `ledgerctl import-focus` would make it an
// event (focus_import.h): its month is that of ChargePeriodStart (else
// BillingPeriodStart); a row whose BilledCost rounds to zero or more is usage
// of the provider the provider map gives it, under its ServiceName; a row
// that rounds below zero is a credit, which carries no provider in the
// ledger, so credits are compared per (month, service) with provider "".
//
// The ledger side is the org's postings by the rules that build the invoices
// (projections/export.h), attributed to the month the charge belongs to (a
// late charge posted as an adjustment into a later month still counts for
// its own month): usage of the providers the map names, and credits whose
// event came from a FOCUS import (event id `focus:`), since other credits
// (goodwill, contracts) and support charges are not on a cloud bill. Months
// compared: those of the bill's rows (charge and billing period starts), or
// only the one asked for.
//
// Rounding: the ledger keeps 9 decimals and the import rounds each row half
// away from zero, so a group agrees when |ledger − Σ BilledCost| is at most
// half a nano-unit (0.0000000005) per bill row in it. The bill is summed
// exactly (to kReconcileBillFractionDigits decimals).
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "events/calendar.h"
#include "events/money.h"
#include "events/status.h"
#include "ledger/ledger.h"
#include "ops/focus_import.h"

namespace billing::ops {

// Decimals the bill is summed to: FOCUS files carry up to 11 (the sample
// data) and tools printing doubles up to 17; 18 keeps any of them exact, and
// a sum of 10^20 units still fits Sum at this scale. Digits beyond it are
// rounded half away from zero (at most 0.5e-18 per row, far below the
// tolerance).
inline constexpr int kReconcileBillFractionDigits = 18;

// One (month, provider, service) of the bill or the ledger. Money in units of
// 10^-kReconcileBillFractionDigits.
struct ReconcileGroup {
  Month month;
  std::string provider_id;  // "" for credits
  std::string service;
  bool credit = false;
  uint64_t bill_rows = 0;
  uint64_t ledger_rows = 0;
  Sum billed = 0;     // Σ BilledCost, exact
  Sum ledger = 0;     // the ledger's postings (9 decimals, scaled)
  Sum tolerance = 0;  // half a nano-unit per bill row
  bool agrees() const;
};

struct ReconcileOptions {
  std::string org;
  ProviderMap providers;
  std::optional<Month> month;  // only this month
};

struct ReconcileReport {
  std::vector<ReconcileGroup> groups;  // by (month, provider, service); agreeing ones too
  uint64_t bill_rows = 0;              // data rows read
  uint64_t unplaced_rows = 0;          // rows that could not be placed (see problems)
  std::vector<std::string> problems;   // "row N: why", the first kFocusProblemsMax
  size_t differences() const;
};

// Reads the bill from `csv` and the org's postings from `ledger`.
// kInvalidArgument when the CSV is malformed or lacks BilledCost, ServiceName
// or a period start column; kNotFound for an unknown org; kUnavailable or
// kCorruption when the ledger cannot be read.
Result<ReconcileReport> Reconcile(std::istream& csv, const ledger::Ledger& ledger,
                                  const ReconcileOptions& options);

// An amount in bill units as a decimal with at least 9 decimals and no
// trailing zeros beyond them ("-0.000000001", "12.30000000001").
std::string FormatBillUnits(Sum value);

}  // namespace billing::ops
