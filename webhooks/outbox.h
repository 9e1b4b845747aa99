// The webhook outbox: durable deliveries and the threads that send them
// (SPEC, "Webhooks").
//
// Deliveries are queued by the ledger's live write path (Enqueue, through
// projections/delivery_queue.h) in the same WriteBatch as the event that
// caused them, under the outbox's own key range (delivery.h), so a crash can
// neither lose nor invent one. Each endpoint has one thread that sends its
// due deliveries one at a time, soonest first, read from that endpoint's due
// index on disk: a slow or dead endpoint holds only its own thread, never
// another endpoint's deliveries and never the ledger's writer. An attempt is
// a signed POST (signature.h) with deadlines (sender.h); a 2xx delivers it,
// anything else is retried with exponential backoff and jitter until
// attempts_max attempts, after which it is `failed` until an admin retries it.
// Every state change is stored, so a restart resumes where it stopped; a
// delivery sent but not yet marked when the process dies is sent again
// (at least once: receivers de-duplicate by delivery id). A delivery's body
// is fixed at its first send and stored: every retry sends the same bytes.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "metrics/metrics.h"
#include "projections/billing.h"
#include "projections/delivery_queue.h"
#include "webhooks/delivery.h"
#include "webhooks/endpoints.h"
#include "webhooks/sender.h"

namespace billing::webhooks {

// Attempts before a delivery is `failed`: with the backoff below, 12 attempts
// span about 2.5 hours, long enough to ride out a receiver's deploy or a short
// outage; longer ones need an admin's retry anyway.
inline constexpr uint32_t kAttemptsMax = 12;
// The wait after the first failed attempt; it doubles after each (with
// jitter: a random point in the upper half), so that many ledgers' retries
// neither hammer a recovering receiver nor arrive in lockstep.
inline constexpr std::chrono::milliseconds kBackoffBase{5000};
// The longest wait between two attempts.
inline constexpr std::chrono::milliseconds kBackoffMax{3600 * 1000};
// Resolving, connecting and the TLS handshake of one attempt.
inline constexpr std::chrono::milliseconds kConnectTimeout{5000};
// Sending the request and reading the answer's head: a receiver should
// acknowledge and process later; one that takes longer is counted as failed.
inline constexpr std::chrono::milliseconds kResponseTimeout{10000};
// How soon a delivery whose data cannot be rendered yet is tried again (an
// invoice whose seal's write failed and is being retried): not an attempt.
inline constexpr std::chrono::milliseconds kRenderRetryDelay{1000};
// How long a delivery whose org or invoice is not found is tried again (not
// counted as attempts) before it fails: its state is published just after
// the delivery is written; past this it is a bug, not a race.
inline constexpr std::chrono::milliseconds kRenderWaitMax{60 * 1000};
// How soon a worker reads the outbox again after a storage error.
inline constexpr std::chrono::milliseconds kStorageRetryDelay{1000};
// Deliveries listed per page (`limit` may ask for fewer).
inline constexpr size_t kListPageMax = 1000;
// Index entries one listing page reads at most (a scoped token's page skips
// other orgs' deliveries): bounds the page's work; `next_after` continues.
inline constexpr size_t kListScanMax = 20 * kListPageMax;
// The stored `last_error`: a network error or a status, not a receiver's essay.
inline constexpr size_t kLastErrorBytesMax = 512;

struct OutboxOptions {
  std::vector<Endpoint> endpoints;
  uint32_t attempts_max = kAttemptsMax;
  std::chrono::milliseconds backoff_base = kBackoffBase;
  std::chrono::milliseconds backoff_max = kBackoffMax;
  Timeouts timeouts{kConnectTimeout, kResponseTimeout};
};

struct DeliveryQuery {
  std::optional<DeliveryStatus> status;  // nullopt: every status
  std::string after;                     // a delivery id: list those after it
  size_t limit = kListPageMax;
  std::optional<std::string> org;  // only this org's (a scoped token); nullopt: all
};

struct DeliveryPage {
  std::vector<Delivery> deliveries;       // in queue order (sequence, then id)
  std::optional<std::string> next_after;  // pass as `after` for the next page; nullopt: the last
};

class Outbox : public projections::DeliveryQueue {
 public:
  // Reads the stored outbox (its counts) and marks `failed` the pending
  // deliveries of endpoints the options no longer name (an admin's retry
  // sends them once the endpoint is back). kUnavailable/kCorruption when the
  // store cannot be read or written. `billing` and `metrics` must outlive it.
  static Result<std::unique_ptr<Outbox>> Open(projections::Billing& billing, api::Metrics& metrics,
                                              OutboxOptions options);
  ~Outbox() override;  // Stop()

  // Starts one delivery thread per endpoint.
  void Start();
  // Stops and joins the threads; an attempt in flight is abandoned (its
  // delivery stays pending and is sent again later). Idempotent.
  void Stop();

  void Enqueue(const projections::DeliveryRequest& request, rocksdb::WriteBatch& batch) override;
  void Committed() override;
  void Aborted() override;

  // One page of deliveries. kUnavailable when the store cannot be read.
  Result<DeliveryPage> List(const DeliveryQuery& query) const;
  // Queues a failed delivery again, its attempts counted from 0, due now.
  // kNotFound for an unknown id (or one of an org outside `org`); kConflict
  // when it is not failed, or its endpoint is no longer configured.
  Result<Delivery> Retry(const std::string& id, const std::optional<std::string>& org);

  size_t endpoints() const { return options_.endpoints.size(); }

 private:
  struct Worker;
  Outbox(projections::Billing& billing, api::Metrics& metrics, OutboxOptions options);
  Status LoadCounts();
  Status FailOrphans();
  void Run(Worker& worker);
  void Attempt(Worker& worker, const std::string& due_key);
  // The body of `d`, rendered now; kUnavailable while its data is not ready.
  Result<std::string> Render(const Delivery& d) const;
  // Stores `d` (changed from status `was` and due key `due_key`) in one write.
  Status Store(const Delivery& d, DeliveryStatus was, const std::string& due_key, bool sync);
  std::chrono::milliseconds Backoff(uint32_t attempts);
  Result<std::optional<Delivery>> Load(const std::string& id) const;
  void Wake(size_t endpoint);

  projections::Billing& billing_;
  api::Metrics& metrics_;
  const OutboxOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stopping_{false};
  // Held while a delivery's stored state changes, so that a retry and the
  // endpoint's thread never both rewrite one delivery.
  std::mutex state_mu_;
  std::mutex random_mu_;
  std::mt19937_64 random_;  // guarded by random_mu_; backoff jitter
  // Writer thread only: what Enqueue added to the group being written.
  uint64_t uncommitted_ = 0;
  std::vector<bool> woken_;
  // How many deliveries are in each status (metrics).
  std::atomic<int64_t> pending_{0}, delivered_{0}, failed_{0};
};

}  // namespace billing::webhooks
