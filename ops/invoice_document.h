// `ledgerctl invoice`: one invoice of a ledger directory as its PDF document,
// offline, from the same queries and the same renderer the service uses.
//
// The ledger is opened read-only (no lock: safe beside a running ledgerd) and
// the organization replayed to the head, keeping only the invoice's month.
// A final invoice carries its seal: the sequence of its month's
// billing_period_closed, the chain hash there and the document hash of the
// answer, as the SPEC defines them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "events/status.h"

namespace billing::ops {

struct InvoiceDocumentRequest {
  std::string dir;
  std::string org;
  std::string invoice_id;
};

struct InvoiceDocument {
  nlohmann::ordered_json answer;  // as GET /v1/orgs/{org}/invoices/{invoice_id}, seal included
  std::string pdf;
};

// kNotFound for an unknown org or invoice; kUnavailable/kCorruption when the
// ledger cannot be read; kInternal when rendering fails.
Result<InvoiceDocument> MakeInvoiceDocument(const InvoiceDocumentRequest& request);

}  // namespace billing::ops
