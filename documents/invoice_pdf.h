// The invoice as a PDF document, the form a customer's finance team receives
// (SPEC: `GET /v1/orgs/{org}/invoices/{invoice_id}.pdf`).
//
// Rendered in-process with cairo (PDF surface) and Pango (text layout, line
// wrapping, font fallback), from the invoice answer exactly as the JSON route
// gives it, so the document and the JSON can never disagree. It holds the
// organization's name and id, the invoice id, the billing account number (or
// "not assigned"), the billing period, the status (Draft or Final), every line
// with its category, description and amount, the total with its currency and,
// for a final invoice, the seal's document hash. Lines flow onto as many A4
// pages as they need, under a repeated table header; each page has a footer
// with its number.
//
// Amounts are the answer's exact decimal strings, never floats: line amounts
// keep every significant digit of their 9 (trailing zeros past the currency's
// minor unit dropped, so 12.500000000 EUR reads 12.50 and 0.000016060 reads
// 0.00001606), grouped in thousands.
//
// Thread-safe: each call owns its cairo surface and Pango layouts.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "events/status.h"

namespace billing::documents {

// Who the invoice is from: not part of the invoice answer, known to the
// caller (GET /v1/orgs/{org}: `org_id`, `name`).
struct InvoiceIssuer {
  std::string org_id;
  std::string org_name;
};

// Lines an invoice document renders: ten thousand lines are ~250 pages;
// beyond that a PDF is no longer a document anyone reads, and the CSV export
// is the way to see them. Invoices group lines per (category, label), so real
// ones hold tens to a few hundred.
inline constexpr size_t kInvoicePdfLinesMax = 10000;

// The PDF's bytes. kInvalidArgument when `invoice_answer` lacks a key the
// document shows or holds one of the wrong type, or has more than
// kInvoicePdfLinesMax lines; kInternal when cairo fails.
Result<std::string> RenderInvoicePdf(const nlohmann::ordered_json& invoice_answer,
                                     const InvoiceIssuer& issuer);

// A line or total amount as the document prints it: `-1234.500000000` with a
// 2-digit currency becomes `-1,234.50`. Exposed for tests.
std::string DisplayAmount(const std::string& decimal, int minor_digits);

}  // namespace billing::documents
