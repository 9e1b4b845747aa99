// The invoice answer: `GET /v1/orgs/{org}/invoices/{invoice_id}` as JSON,
// built from the queries' Invoice, for the documents made from it (the PDF,
// the document hash) when they are made outside the HTTP service, e.g. by
// `ledgerctl invoice`.
//
// The SPEC fixes its keys so that the document hash is defined: exactly
// `invoice_id`, `cost_center_id`, `billing_account`, `status`, `total`,
// `currency`, `lines` (each `category`, `description`, `amount`) and `seal`
// (null for a draft). Lines keep the queries' order, which is the SPEC's:
// category (usage, support, credit, adjustment), then description by code
// point. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ledger/ledger.h"
#include "projections/org_state.h"
#include "projections/queries.h"

namespace billing::documents {

// What seals a final invoice: the sequence of its month's
// billing_period_closed and the chain hash at that sequence.
struct SealPoint {
  uint64_t sequence = 0;
  std::string ledger_hash;  // hex
};

// The answer; `seal` is null unless `seal_point` is given, and then holds
// the point and the document hash of the rest of the answer.
nlohmann::ordered_json InvoiceAnswer(const projections::OrgState& org,
                                     const projections::Invoice& invoice,
                                     const std::optional<SealPoint>& seal_point);

// The billing_period_closed of `org`'s `month` in the ledger: nullopt while
// the month is open. kUnavailable/kCorruption when the ledger cannot be read.
Result<std::optional<SealPoint>> FindSealPoint(const ledger::Ledger& ledger, const std::string& org,
                                               Month month);

}  // namespace billing::documents
