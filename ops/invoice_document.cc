#include "ops/invoice_document.h"

#include "documents/invoice_pdf.h"
#include "projections/answer_json.h"
#include "projections/billing.h"
#include "projections/seal.h"

namespace billing::ops {

Result<InvoiceDocument> MakeInvoiceDocument(const InvoiceDocumentRequest& request) {
  Status not_found(Code::kNotFound, "invoice " + request.invoice_id + " does not exist");
  if (request.invoice_id.size() < 9 || request.invoice_id[7] != '-') return not_found;
  auto month = ParseMonth(std::string_view(request.invoice_id).substr(0, 7), "invoice month");
  if (!month.ok()) return not_found;
  auto led = projections::OpenLedgerReadOnly(request.dir);
  if (!led.ok()) return led.status();
  // Only the month's invoice buckets and lines are kept: what GetInvoice reads.
  projections::MemoryStore store;
  const ledger::Sequence head = (*led)->head().sequence;
  auto org = projections::ReplayOrg(**led, request.org, head, &store,
                                    projections::ReplayScope{"BL", *month});
  if (!org.ok()) return org.status();
  auto invoice = projections::GetInvoice(*org, store, request.invoice_id);
  if (Status read = store.status(); !read.ok()) return read;
  if (!invoice.ok()) return invoice.status();
  // The seal is recomputed from the ledger, as `ledgerctl verify` does, not
  // read from the read models: the offline document vouches for the ledger.
  std::optional<projections::InvoiceSeal> seal;
  if (invoice->summary.final) {
    auto point = projections::FindClosePoint(**led, *org, *month);
    if (!point.ok()) return point.status();
    if (!*point)
      return Status(Code::kCorruption,
                    "invoice " + request.invoice_id + " is final but its month never closed");
    seal = projections::SealOf(*org, *invoice, **point);
  }
  InvoiceDocument doc;
  doc.answer = projections::WithSeal(projections::InvoiceJson(*invoice, *org), seal);
  auto pdf =
      documents::RenderInvoicePdf(doc.answer, documents::InvoiceIssuer{request.org, org->name});
  if (!pdf.ok()) return pdf.status();
  doc.pdf = std::move(pdf).value();
  return doc;
}

}  // namespace billing::ops
