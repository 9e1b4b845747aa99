// Conservation proofs: the checks an auditor runs on one month to see that
// every figure the API shows adds up, and that the stored read models are
// what the ledger gives (SPEC, "Structure, explanations and proofs").
//
// A proof reads the month's figures through the same queries as the answers
// (queries.h), so it proves what clients see, not a second computation:
//   invoices_sum_to_total      the rounded invoice totals add up to the month's
//                              `total` and to the dashboard's `billed`
//   categories_sum_to_items    usage + support + credits + adjustments = the
//                              items' sum, exactly
//   children_sum_to_parent     every drillable node = the exact sum of its
//                              children, at every level
//   lines_regroup_items        the invoices' lines, regrouped by (category,
//                              label) across invoices, equal the items exactly
//   cost_centers_partition_org each cost center's exact charges plus the charges
//                              without one = the month's exact sum
//   replay_matches_store       replaying the org's ledger up to the answer's
//                              sequence gives every stored figure of the month
//                              (each aggregate, the status, the mode and the
//                              invoices)
//
// What `expected` and `actual` hold, per check (money: 9 decimals, except
// invoice totals, in the currency's minor unit):
//   invoices_sum_to_total      expected: the sum of the rounded invoice
//                              totals; actual: the month's total when total
//                              and billed both equal it, else
//                              "total T, billed B"
//   categories_sum_to_items    expected: the items' sum; actual: the four
//                              categories' sum
//   children_sum_to_parent     while all add up, expected: the sum of every
//                              drillable node, actual: the sum of their
//                              children; else the first node that does not
//                              (depth first, in the API's order), as
//                              "node ID (LABEL): AMOUNT" with the node's
//                              amount (expected) and its children's sum (actual)
//   lines_regroup_items        while all agree, expected: the items' sum,
//                              actual: the lines' sum; else the first
//                              (category, label) that differs, as
//                              "CATEGORY LABEL: AMOUNT" (the item's, or
//                              "absent"; the lines' sum, or "absent")
//   cost_centers_partition_org expected: the four categories' sum; actual: the
//                              sum of every cost center's and the
//                              organization's own charges
//   replay_matches_store       while all agree, the month's exact sum (the four
//                              categories) by the replay (expected) and by the
//                              store (actual); else the first figure that
//                              differs, as "NAME: VALUE" (the replay's, the
//                              store's; "absent" when one has none)
//
// Pure functions over immutable inputs: thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ledger/ledger.h"
#include "projections/org_state.h"
#include "projections/store.h"

namespace billing::projections {

struct ProofCheck {
  std::string check;  // one of the names above
  bool ok = false;
  std::string expected;
  std::string actual;
};

struct MonthProof {
  Month month;
  bool ok = false;                 // every check holds
  std::vector<ProofCheck> checks;  // the six, in the order above
};

// What a proof reads: the figures the answers read (the stored read models at
// the head, or a replay for a past sequence) and a replay of the org's ledger
// up to the same sequence.
struct ProofInputs {
  const OrgState* org = nullptr;  // the answers' structure
  const View* view = nullptr;     // the answers' aggregates
  const OrgState* replayed_org = nullptr;
  const View* replayed = nullptr;  // ReplayOrg's store, this month at least
};

// Proves `month` from `inputs`. The caller checks both views' status(): a
// failed read makes the proof meaningless (a figure silently missing).
MonthProof ProveMonth(const ProofInputs& inputs, Month month);

// The proof of `org`'s `month` at the head, or right after `as_of`: at the
// head, the stored read models at one RocksDB snapshot (their org state and
// the ledger head written in the same batch, so the replay stops exactly
// where they stand); for a past sequence, the answers' own replay (which then
// matches itself: it is what every `as_of` answer shows). kNotFound when the
// org does not exist there; kUnavailable/kCorruption when a read fails.
Result<MonthProof> ProveMonthOf(const ledger::Ledger& ledger, const std::string& org, Month month,
                                std::optional<ledger::Sequence> as_of);

}  // namespace billing::projections
