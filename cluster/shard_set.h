// ShardSet: the shards one cluster instance holds, and HTTP ingest through
// the shards' log.
//
// Each shard is a Billing of its own in DATA/shard-N (docs/CLUSTER.md). The
// shards consumer (api::KafkaConsumer in cluster mode) acquires a shard when
// the group assigns its partition, applies the partition to it, and tells the
// set when it has caught up; only then does the shard serve. A revoked shard
// stops serving at once but stays open, a warm copy for its next assignment.
//
// Standby replicas (docs/CLUSTER.md): a second, group-less consumer keeps the
// shards SetStandby names warm through standby_host(), never serving them.
// A shard's copy has one writer at a time: the standby gives it up before
// the owner's consumer reads its stored offset (Acquire waits for the
// standby's batch in flight), and takes it only after the owner's consumer
// has written its last batch (Detached).
//
// Ingest never writes a shard directly: the events are produced to the
// shard's partition (idempotent producer, acks=all), and each is answered
// with its outcome once this instance's consumer has applied it. The log is
// therefore the truth, and a shard rebuilt elsewhere from it holds the same
// events. An event not applied here in time (the shard moved, the broker is
// away) is answered kUnavailable, and the client's retry is a duplicate at
// worst.
//
// Metrics: ledger_cluster_ingest_refused_total{reason}, events answered
// kUnavailable by reason (not_served, pending_limit, not_applied_in_time).
//
// Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kafka/kafka_consumer.h"
#include "ledger/ledger.h"
#include "metrics/metrics.h"
#include "projections/billing.h"
#include "service/ledgers.h"

namespace billing::cluster {

// How long an ingest waits for its events to be applied: past it the answer
// is 503 and the client retries (duplicates are harmless). Long enough for a
// loaded shard's batch; short enough that a client never hangs on a shard
// that moved.
inline constexpr int kIngestWaitMsDefault = 10000;
// Events waiting for their outcome at once, over all requests: bounds the
// memory of clients that post faster than the shards apply. Past it ingest
// answers 503 with Retry-After.
inline constexpr size_t kIngestPendingEventsMax = 200000;

struct ShardSetOptions {
  std::string data_dir;  // shard N lives in data_dir/shard-N
  int shards = 0;
  std::string brokers;
  std::string shards_topic;
  std::string instance_id;  // names this instance's ingest tokens
  ledger::Durability durability = ledger::Durability::kSync;
  std::function<void(const Status&)> on_unrecoverable;
  int ingest_wait_ms = kIngestWaitMsDefault;
  // Events waiting for their outcome at once, over all requests; past it
  // ingest is kUnavailable. Settable so that a test can reach it cheaply.
  size_t pending_events_max = kIngestPendingEventsMax;
};

// One shard as /v1/cluster shows it.
struct ShardStatus {
  int shard = 0;
  bool owned = false;    // assigned to this instance by the group
  bool serving = false;  // owned and caught up
  bool standby = false;  // kept warm by the standby reader, not owned
  uint64_t sequence = 0;
  std::string hash_hex;
  int64_t next_offset = -1;  // the next offset of its partition to apply; -1: none yet
};

// One event of an ingest: its bytes as received and its org (best effort:
// empty when unreadable, and the shard's consumer rejects it precisely).
struct IngestEvent {
  std::string raw;
  std::string org_id;
  // A re-drive of this rejection of the shard (api::kRedriveHeader), with
  // the rejection's source serialized (api::kRedriveSourceHeader).
  struct Redrive {
    uint64_t id = 0;
    std::string source;
  };
  std::optional<Redrive> redrive;
};
using IngestDone = std::function<void(Result<std::vector<ledger::Outcome>>)>;

class ShardSet final : public api::ShardHost, public api::Ledgers {
 public:
  static Result<std::unique_ptr<ShardSet>> Create(const ShardSetOptions& options,
                                                  api::Metrics& metrics);
  ~ShardSet() override;  // fails what still waits, flushes the producer
  ShardSet(const ShardSet&) = delete;
  ShardSet& operator=(const ShardSet&) = delete;

  // The shard's Billing while this instance serves it; nullptr otherwise.
  projections::Billing* Serving(int shard) const;

  // api::Ledgers, for the Service: the shards served here.
  projections::Billing* ForOrg(std::string_view org) const override;
  projections::Billing* ForShard(int shard) const override { return Serving(shard); }
  int shards() const override;
  std::vector<ShardStatus> Describe() const;

  // Produces `events` to `shard`'s partition and calls `done` once (on
  // another thread) with one outcome per event, in order, after this
  // instance has applied them; kUnavailable when the shard is not served
  // here, too much waits already, or they were not applied in time.
  // `principal` names the token that posted them (empty without access
  // control), recorded as their source like one ledgerd's HTTP ingest.
  void Ingest(int shard, std::vector<IngestEvent> events, const std::string& principal,
              IngestDone done);
  // Fails every open ingest (kUnavailable) and delivers what is queued to
  // the broker; from then on every Ingest is refused. Call it before the HTTP
  // server whose answers the callbacks send is destroyed. Idempotent.
  void Stop();

  // api::ShardHost, for the shards consumer.
  Result<projections::Billing*> Acquire(int shard) override;
  void CaughtUp(int shard) override;
  void Applied(int shard, const std::vector<std::string>& tokens,
               const ledger::AppendResult& result) override;
  void Release(int shard) override;
  void Detached(int shard) override;

  // The shards this instance should keep warm (StandbyFor over the members'
  // table); those it owns are left to the owner's consumer.
  void SetStandby(std::vector<int> shards);
  // The host of the standby consumer (api::KafkaOptions::standby).
  api::ShardHost& standby_host();

 private:
  struct Impl;
  explicit ShardSet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace billing::cluster
