// A delivery as the outbox stores it, and the outbox's keys in the ledger's
// database (range `w`, ledger/FORMAT.md).
//
//   wd | be64 sequence | id16                        -> Delivery (JSON, below)
//   ws | status | be64 sequence | id16               -> (empty) listing by status
//   wq | endpoint key | be64 due ms | be64 seq | id16 -> (empty) an endpoint's
//                                                      pending deliveries, soonest first
//
// `id16` is 16 hex digits of SHA-256(kind, org, ref, endpoint URL); the
// delivery id is "<sequence>-<id16>": stable (the same on every retry and
// after a restart), unique (one event, one thing, one endpoint), and it leads
// back to its key. The range is not a read model: deliveries depend on the
// endpoints an operator configured when the event was accepted, so a rebuild
// of the read models (range `p`) neither deletes nor re-creates them.
//
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/status.h"
#include "ledger/format.h"
#include "projections/delivery_queue.h"

namespace billing::webhooks {

static_assert(ledger::format::kOutboxPrefix == 'w');
inline constexpr std::string_view kDeliveryPrefix = "wd";
inline constexpr std::string_view kStatusPrefix = "ws";
inline constexpr std::string_view kDuePrefix = "wq";

enum class DeliveryStatus : char { kPending = 'p', kDelivered = 'd', kFailed = 'f' };

// "pending", "delivered", "failed".
std::string_view StatusName(DeliveryStatus status);
std::optional<DeliveryStatus> ParseStatus(std::string_view name);

struct Delivery {
  std::string id;  // "<sequence>-<id16>"
  projections::DeliveryKind kind = projections::DeliveryKind::kInvoiceFinalized;
  std::string org_id;
  uint64_t sequence = 0;
  std::string ref;           // invoice id or alert id
  std::string endpoint_url;  // never its secret
  std::string endpoint_key;  // Endpoint::key
  DeliveryStatus status = DeliveryStatus::kPending;
  uint32_t attempts = 0;  // since it was last queued (a retry starts again at 0)
  std::optional<std::string> last_error;
  int64_t next_attempt_ms = 0;  // unix ms; meaningful while pending
  int64_t created_ms = 0;       // unix ms, when it was queued
  std::optional<int64_t> delivered_ms;
  std::string data;  // JSON text given at queue time; empty: rendered from ref
  std::string body;  // the exact bytes POSTed, fixed at the first send; empty before it
};

// "<sequence>-<16 hex>" for (kind, org, ref) sent to `endpoint_url`.
std::string DeliveryId(projections::DeliveryKind kind, std::string_view org, uint64_t sequence,
                       std::string_view ref, std::string_view endpoint_url);
// The sequence and id16 of a delivery id; nullopt when it is not one.
std::optional<std::pair<uint64_t, std::string>> SplitDeliveryId(std::string_view id);

std::string DeliveryKey(uint64_t sequence, std::string_view id16);
std::string DeliveryKeyOf(std::string_view id);  // "" for a malformed id
std::string StatusKey(DeliveryStatus status, uint64_t sequence, std::string_view id16);
std::string StatusPrefix(DeliveryStatus status);
std::string DuePrefix(std::string_view endpoint_key);
std::string DueKey(std::string_view endpoint_key, int64_t due_ms, uint64_t sequence,
                   std::string_view id16);
// The delivery id a status or due key names (its last 8 + 16 bytes).
std::string IdOfIndexKey(std::string_view key);
// The due time a due key holds.
int64_t DueMsOf(std::string_view due_key);

std::string EncodeDelivery(const Delivery& d);
// kCorruption for a value that is not a delivery.
Result<Delivery> DecodeDelivery(std::string_view value);

}  // namespace billing::webhooks
