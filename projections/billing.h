// Billing: the service's core, tying the ledger to its read models.
//
// It owns the Ledger and installs the Decider as its Gate, so that every
// accepted event's postings are written in the same atomic, synced WriteBatch
// as the event itself: the read models are never behind the ledger and a
// crash cannot leave them half-applied. Queries read a consistent snapshot;
// `as_of` answers are recomputed by replaying one org's history (through the
// ledger's org index) into memory. If the stored read models are missing or of
// another version, Open rebuilds them from the ledger before returning.
//
// Thread-safe: ingest from any thread (group commit), queries in parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ledger/ledger.h"
#include "projections/delivery_queue.h"
#include "projections/org_state.h"
#include "projections/queries.h"
#include "projections/rebuild.h"
#include "projections/seal.h"
#include "projections/store.h"

namespace billing::projections {

struct BillingOptions {
  std::string dir;
  ledger::Durability durability = ledger::Durability::kSync;
  ledger::OpenMode mode = ledger::OpenMode::kReadWrite;
  // The RocksDB environment (ledger::Options::env): nullptr for the local
  // file system; tests pass one that injects storage faults.
  rocksdb::Env* env = nullptr;
  // ledger::Options::on_unrecoverable.
  std::function<void(const Status&)> on_unrecoverable;
  // Records per rebuild batch; tests make it tiny so that a small history
  // crosses many batch boundaries.
  size_t rebuild_batch_events = kRebuildBatchEvents;
};

// What an answer as of a past sequence reads, so that its replay keeps only
// that in memory: a replay has to decide the org's whole history, but keeping
// every posting would hold the drill-down tree of every month in RAM.
struct ReplayScope {
  std::string kinds;           // aggregate kinds kept (keys.h: C I B L D); empty: all
  std::optional<Month> month;  // set: only this month's aggregates
};

// A consistent read of one organization: its structure and aggregates as of
// the head (live) or a past sequence (replayed).
struct OrgSnapshot {
  std::shared_ptr<const OrgState> org;
  std::shared_ptr<const View> view;
};

class Billing {
 public:
  static Result<std::unique_ptr<Billing>> Open(const BillingOptions& options);
  ~Billing();

  // Appends, deciding each entry in order; see ledger::Ledger::AppendAsync.
  void SubmitAsync(ledger::AppendRequest request, std::function<void(ledger::AppendResult)> done,
                   ledger::Ledger::WhenQueueFull when_full = ledger::Ledger::WhenQueueFull::kWait);
  ledger::AppendResult Submit(ledger::AppendRequest request);
  // Runs a stored rejected message through validation again. kNotFound if no
  // such rejected message.
  Result<ledger::AppendResult> Retry(uint64_t rejected_id);

  // One org's state at the head, or right after sequence `as_of`; a past
  // sequence's view holds only what `scope` names.
  // kNotFound if the org does not exist there.
  // WARNING: a live snapshot pins a RocksDB snapshot; release it before the
  // Billing is destroyed.
  Result<OrgSnapshot> Snapshot(const std::string& org, std::optional<ledger::Sequence> as_of,
                               const ReplayScope& scope = {}) const;

  // Changes whenever an event of `org` is committed (starts at 0 when the
  // process starts): answers cached under one version stay exact until then.
  uint64_t OrgVersion(const std::string& org) const;

  // Deletes the read models and replays the whole ledger into them
  // (rebuild.h), then reloads the org states. Only while nothing else reads
  // or writes (Open calls it before returning; `ledgerctl replay` holds the
  // directory): it drops table files under any live snapshot.
  Status Rebuild();

  ledger::Ledger& ledger() const;

  // Installs the webhook outbox (delivery_queue.h) that the live write path
  // queues deliveries to: from then on each accepted billing_period_closed
  // queues an invoice_finalized delivery request per invoice of its month, in
  // its own group's WriteBatch. Call before the first append; `queue` must
  // outlive the Billing's writer (destroy the Billing first). nullptr: none.
  void SetDeliveryQueue(DeliveryQueue* queue);

  // The seal stored for a final invoice (seal.h); nullopt when none is. A
  // month's seals are stored before any query sees it closed, so a final
  // invoice without one means its sealing write failed and is being retried.
  // Valid for answers as of any sequence: a closed month never changes.
  // kUnavailable/kCorruption when it cannot be read.
  Result<std::optional<InvoiceSeal>> StoredSeal(const std::string& org,
                                                const std::string& invoice_id) const;

 private:
  class LiveGate;
  Billing() = default;
  Status LoadStates();
  std::unique_ptr<ledger::Ledger> ledger_;
  std::unique_ptr<LiveGate> gate_;
  size_t rebuild_batch_events_ = kRebuildBatchEvents;
};

// Opens the ledger in `dir` read-only (safe beside a running ledgerd) with the
// read models' merge operator, so their keys can be read too.
Result<std::unique_ptr<ledger::Ledger>> OpenLedgerReadOnly(const std::string& dir);

// Replays one org's records up to `upto` from `ledger` into `store`; returns
// its structure. kNotFound if the org has no records there. Used by as_of and
// by tests comparing incremental state with a replay.
Result<OrgState> ReplayOrg(const ledger::Ledger& ledger, const std::string& org,
                           ledger::Sequence upto, MemoryStore* store,
                           const ReplayScope& scope = {});

}  // namespace billing::projections
