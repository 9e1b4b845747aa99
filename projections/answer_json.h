// The JSON of answers that both ledgerd (the HTTP API) and ledgerctl (offline)
// print (mode names: events::InvoicingModeName), built here once so that the two can never disagree
// on a key, a null or an escape: an auditor compares them byte for byte.
//
// Every function is pure and thread-safe. Strings go through nlohmann::json,
// so quotes, backslashes and control characters in messages are escaped.
#pragma once

#include <nlohmann/json.hpp>

#include "ledger/ledger.h"
#include "projections/budgets.h"
#include "projections/org_state.h"
#include "projections/proof.h"
#include "projections/queries.h"
#include "projections/seal.h"

namespace billing::projections {

using AnswerJson = nlohmann::ordered_json;

// `GET /v1/ledger/verify` and `ledgerctl verify`: {"ok", "events",
// "head_sequence", "head_hash"} and, where the chain breaks,
// "first_bad_sequence" and "problem".
AnswerJson VerifyJson(const ledger::VerifyReport& report);
// `ledgerctl verify`: the above with "seals" (how many were recomputed) and,
// where the chain holds but a seal differs, "ok": false, "org_id",
// "invoice_id" and "problem".
AnswerJson VerifyJson(const ledger::VerifyReport& report, const SealReport& seals);

// One entry of an invoice list (and the head of an invoice): {"invoice_id",
// "cost_center_id" (null: the organization's), "billing_account" (null: not
// assigned), "status" ("draft"/"final"), "total" (the currency's minor unit),
// "currency"}.
AnswerJson InvoiceSummaryJson(const InvoiceSummary& invoice, const OrgState& org);

// `GET /v1/orgs/{org}/invoices/{invoice_id}` without its seal, the one
// builder of it (the service, the PDF, the seal's document hash): exactly
// the summary's keys and "lines" ({"category", "description", "amount"} in
// the queries' order: category, then description by code point).
AnswerJson InvoiceJson(const Invoice& invoice, const OrgState& org);

// One alert as `GET /v1/orgs/{org}/alerts` lists it (and a budget_alert
// webhook carries it): {"alert_id", "budget_id", "cost_center_id" (null: an
// organization budget), "month", "kind" ("actual"/"forecast"), "threshold",
// "budget", "amount" (the currency's minor unit), "sequence"}.
AnswerJson AlertJson(const Alert& alert, const OrgState& org);

// `answer` (an invoice or a list entry) with "seal" last: the seal's
// {"sequence", "ledger_hash", "document_hash"}, or null for a draft.
AnswerJson WithSeal(AnswerJson answer, const std::optional<InvoiceSeal>& seal);

// `GET /v1/orgs/{org}/usage-history/{month}/proof` and `ledgerctl prove`:
// {"month", "ok", "checks": [{"check", "ok", "expected", "actual"}]}, the
// checks in the proof's order (proof.h says what each string holds).
AnswerJson ProofJson(const MonthProof& proof);

}  // namespace billing::projections
