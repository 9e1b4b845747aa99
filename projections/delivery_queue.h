// The webhook outbox as the ledger's live write path sees it (SPEC,
// "Webhooks").
//
// Every alert and every invoice that becomes final queues one delivery per
// matching endpoint, written in the same atomic WriteBatch as the event that
// caused it, so a crash can neither lose nor invent one. The projections own
// that moment (Billing's live Gate decides and seals each group), the webhooks
// module owns endpoints, storage and sending (webhooks/outbox.h implements this
// interface); this header is the seam between the two, so that the arrow points
// from webhooks to projections and not back.
//
// Only the live path queues: rebuilds, replays and `as_of` answers decide the
// same events again but never call a DeliveryQueue, since deliveries depend on
// operator configuration and happened once.
#pragma once

#include <string>
#include <string_view>

#include "ledger/ledger.h"

namespace rocksdb {
class WriteBatch;
}

namespace billing::projections {

enum class DeliveryKind { kBudgetAlert, kInvoiceFinalized };

// The SPEC's name of a kind: "budget_alert", "invoice_finalized".
constexpr std::string_view DeliveryKindName(DeliveryKind kind) {
  return kind == DeliveryKind::kBudgetAlert ? "budget_alert" : "invoice_finalized";
}

// What caused a delivery. (kind, org, sequence, ref) names it; each matching
// endpoint gets one delivery of it.
struct DeliveryRequest {
  DeliveryKind kind = DeliveryKind::kInvoiceFinalized;
  std::string org;
  ledger::Sequence sequence;  // the event that caused it
  // What it is about: the invoice id (invoice_finalized), the alert id (budget_alert).
  std::string ref;
  // The delivery's `data` as JSON text, when it is known at queue time (an
  // alert); empty: rendered from `ref` at the first send (an invoice, whose
  // seal is written just after the close's group: a closed month never
  // changes, so the rendering is the same whenever it happens).
  std::string data;
};

class DeliveryQueue {
 public:
  virtual ~DeliveryQueue() = default;
  // On the ledger's writer thread, while the group holding `request.sequence`
  // is sealed: adds one pending delivery per matching endpoint to `batch`
  // (none when no endpoint takes the kind for the org). Never fails; it only
  // adds bounded writes to the batch.
  virtual void Enqueue(const DeliveryRequest& request, rocksdb::WriteBatch& batch) = 0;
  // The group of every Enqueue since the last Committed/Aborted is durable:
  // its deliveries may be sent.
  virtual void Committed() = 0;
  // That group's write failed: its deliveries do not exist.
  virtual void Aborted() = 0;
};

}  // namespace billing::projections
