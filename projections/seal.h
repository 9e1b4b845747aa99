// Seals: what makes a final invoice a document that can be checked (SPEC,
// "Sealed invoices and invoice documents").
//
// When a month closes, each of its invoices (now final) is sealed with the
// close's sequence, the chain hash at that sequence and the document hash of
// its answer (answer_json.h InvoiceJson, RFC 8785, SHA-256). A closed month's
// figures never change (later charges land in the next open month), so the
// seal is a pure function of the ledger; it is still STORED (keys.h, `pf`)
// when the month closes, so that `ledgerctl verify` can recompute it from a
// replay and catch a tampered seal or a tampered read-model figure.
//
// Pure functions over their inputs, thread-safe over immutable ones.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/ledger.h"
#include "projections/org_state.h"
#include "projections/queries.h"
#include "projections/store.h"

namespace billing::projections {

struct InvoiceSeal {
  ledger::Sequence sequence;  // the month's billing_period_closed
  std::string ledger_hash;    // hex chain hash at `sequence`
  std::string document_hash;  // hex SHA-256 of the canonical answer without its seal
  bool operator==(const InvoiceSeal&) const = default;
};

// One sealed invoice of a month.
struct SealedInvoice {
  std::string invoice_id;
  InvoiceSeal seal;
};

// Where a month closed: the close's sequence and the chain hash there.
struct ClosePoint {
  ledger::Sequence sequence;
  std::string ledger_hash;  // hex
};

// The close point of `org`'s `month`: nullopt while the month is open (as far
// as `org` knows). kUnavailable/kCorruption when the record cannot be read.
Result<std::optional<ClosePoint>> FindClosePoint(const ledger::Ledger& ledger, const OrgState& org,
                                                 Month month);

// The seal of `invoice` closed at `point`.
InvoiceSeal SealOf(const OrgState& org, const Invoice& invoice, const ClosePoint& point);

// The seals of every invoice of `month` (none for a month without invoices),
// read from `org` and `view`. The caller checks view.status().
std::vector<SealedInvoice> MonthSeals(const OrgState& org, const View& view, Month month,
                                      const ClosePoint& point);

// Writes `seals` of `org` to `sink` under keys::SealKey.
void PutSeals(const std::string& org, const std::vector<SealedInvoice>& seals, Sink& sink);

// The stored seal of an invoice; nullopt when none is stored. kCorruption for
// an undecodable one; a failed read is in view.status().
Result<std::optional<InvoiceSeal>> ReadSeal(const View& view, const std::string& org,
                                            const std::string& invoice_id);

// What `ledgerctl verify` found checking seals.
struct SealReport {
  bool ok = true;
  uint64_t seals = 0;  // seals recomputed from the ledger
  std::string org_id;  // when !ok: the invoice whose seal is wrong
  std::string invoice_id;
  std::string problem;
};

// Replays the whole ledger (keeping only the invoices' aggregates in memory),
// recomputes every seal, and compares it with the stored seal and with the
// invoice computed from the stored read models. The first difference, or a
// stored seal the ledger does not explain, makes the report not ok.
// kUnavailable/kCorruption when the ledger cannot be read or replayed.
Result<SealReport> VerifySeals(const ledger::Ledger& ledger);

}  // namespace billing::projections
