// KafkaConsumer: ingestion from a Kafka topic with exactly-once effect.
//
// One consumer thread, a member of a consumer group, reads the topic and
// turns each message into a ledger entry (ledger::PrepareEntry: a
// message that does not parse or validate becomes an entry carrying its
// rejection, so a bad message never stops its partition). Entries are
// appended in batches, and each batch carries, for every partition it
// touched, the next offset to read; the ledger writes those offsets in the
// same atomic, synced WriteBatch as the events. The ledger, not Kafka, is
// therefore the truth about what was consumed: on assignment the consumer
// seeks every partition to the offset stored in the ledger (the beginning
// when none is), and on revocation it finishes the batch in hand before it
// lets the partitions go. A crash at any instant neither loses nor repeats a
// message: what was written carries its offsets, what was not is read again.
// Offsets are also committed to Kafka after durable batches (at most once a
// second), for lag monitoring by Kafka's own tools only. With the embedded
// broker, whose log starts empty with every process, a restart reads that new
// log from its beginning: offsets stored by an earlier run are not used.
//
// An append that fails (storage trouble) advances nothing: the consumer
// drops what it read since the last durable batch, seeks back to the stored
// offsets and tries again after a backoff. Per-organization order holds
// because the message key is org_id (one partition per org) and a batch
// keeps each partition's order.
//
// Metrics (api::Metrics): ledger_kafka_consumed_total, _appended_total,
// _duplicates_total, _rejected_total, _batches_total, _append_failures_total,
// _commit_failures_total, _dlq_failures_total, _errors_total,
// _offset_jumps_total{partition}, and the gauge ledger_kafka_lag{partition}:
// high watermark minus the stored next offset, refreshed after every batch
// and every second. Also the service-wide ledger_events_*_total counters.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "events/status.h"
#include "metrics/metrics.h"
#include "projections/billing.h"

namespace billing::api {

// Messages appended as one ledger batch at most: large enough that one
// synced write carries many events, small enough that a batch is decided
// in a few milliseconds and a rebalance never waits long for it.
inline constexpr size_t kKafkaBatchEventsMax = 1000;
// How long a batch may wait for more messages while the broker keeps
// sending: bounds the delay a busy stream adds before an event is visible.
inline constexpr int kKafkaBatchLingerMs = 50;
// The group's session timeout: how long the group waits for a silent
// member (a killed ledgerd) before giving its partitions to others. A
// restarted ledgerd waits about this long before consuming again; brokers
// refuse less than their group.min.session.timeout.ms, 6 s by default.
inline constexpr int kKafkaSessionTimeoutMsDefault = 10000;

// A cluster instance's shards (docs/CLUSTER.md): partition N of the shards
// topic is shard N, a ledger of its own. The consumer applies each partition
// to its shard's Billing, one partition per batch, and records each message
// at its Kafka timestamp, so that whoever replays the partition builds the
// same ledger. Called on the consumer thread; must not throw.
class ShardHost {
 public:
  virtual ~ShardHost() = default;
  // The Billing of `shard`, opened or created: the consumer was just assigned
  // it and reads on from the offset stored there. An error is retried with a
  // backoff (the shard stays unserved meanwhile).
  virtual Result<projections::Billing*> Acquire(int shard) = 0;
  // The shard has applied its partition up to the end seen at assignment: its
  // answers are now as fresh as the log, and it may serve.
  virtual void CaughtUp(int shard) = 0;
  // A batch of `shard` is durable: each message's ingest token (its
  // kIngestTokenHeader, empty when none) with its outcome, in order.
  virtual void Applied(int shard, const std::vector<std::string>& tokens,
                       const ledger::AppendResult& result) = 0;
  // The shard was revoked or lost: it must stop serving at once (another
  // instance may already be writing it). Its Billing stays open, a warm copy.
  virtual void Release(int shard) = 0;
  // The consumer has written its last batch of `shard` (after Release, on a
  // revocation) and reads it no more: another writer may take the copy.
  virtual void Detached(int shard) { (void)shard; }
  // Sends a batch of `shard` to its Billing (the one Acquire gave). A host
  // may refuse it (`done` with a non-ok status, nothing written): a standby
  // host does once the shard is owned here.
  virtual void Submit(int shard, projections::Billing& billing, ledger::AppendRequest request,
                      std::function<void(ledger::AppendResult)> done) {
    (void)shard;
    billing.SubmitAsync(std::move(request), std::move(done));
  }
  // Standby mode (KafkaOptions::standby): the shards to keep warm now,
  // ascending. Asked every kStandbyRefreshMs; must be cheap.
  virtual std::vector<int32_t> StandbyShards() { return {}; }
};

// How often a standby consumer asks its host which shards to keep warm: how
// soon a standby follows a rebalance (the members' table it comes from is
// refreshed about as often).
inline constexpr int kStandbyRefreshMs = 250;

// The Kafka header by which an HTTP ingest recognises its own messages when
// the shard's consumer applies them (cluster mode).
inline constexpr const char* kIngestTokenHeader = "ledger-ingest";
// With it, the name of the token that posted the event (empty: no access
// control), recorded as the event's source principal.
inline constexpr const char* kIngestPrincipalHeader = "ledger-principal";
// With it, a re-drive (POST /v1/ledger/rejected/{id}/retry): the decimal id
// of the rejected message in the shard's rejected store. The consumer looks
// it up once everything before it in the partition is applied, so every copy
// of the shard finds the same record and judges its stored bytes again.
inline constexpr const char* kRedriveHeader = "ledger-redrive";
// With it, the rejection's original source (a serialized ledger::Source):
// what the stored bytes are judged with should the rejection be gone by then.
inline constexpr const char* kRedriveSourceHeader = "ledger-redrive-source";

// Where the consumer sends a batch: Billing::SubmitAsync unless replaced.
using SubmitFn =
    std::function<void(ledger::AppendRequest, std::function<void(ledger::AppendResult)>)>;

struct KafkaOptions {
  std::string brokers;    // bootstrap.servers; ignored when embedded
  bool embedded = false;  // start an EmbeddedKafka and consume from it
  std::string topic = "billing.events";
  std::string group = "billing-ledger";
  // When not empty, every rejected message is also published there (raw
  // bytes, key org_id, headers with the code and the source offset).
  std::string dlq_topic;
  int session_timeout_ms = kKafkaSessionTimeoutMsDefault;
  // Cluster mode only: a standby reader (docs/CLUSTER.md, "Standby
  // replicas"). It joins no group and commits nothing: it reads the
  // partitions ShardHost::StandbyShards names and applies them to the host's
  // copies exactly as an owner would, so that a move to this instance only
  // replays the tail. It counts into ledger_standby_* metrics, not the
  // ingest counters.
  bool standby = false;
  // Tests only: replaces Billing::SubmitAsync, e.g. to fail every Nth append.
  SubmitFn submit;
};

// Counters since Start, for tests and logs (the same as the metrics).
struct KafkaStats {
  uint64_t consumed = 0;    // messages read and put in a batch
  uint64_t appended = 0;    // accepted into the ledger
  uint64_t duplicates = 0;  // already in the ledger (event_id and content)
  uint64_t rejected = 0;    // kept in the rejected store
  uint64_t batches = 0;     // durable appends
  uint64_t append_failures = 0;
  int assigned_partitions = 0;
};

class KafkaConsumer {
 public:
  // Joins the group and starts the consumer thread (and, with `embedded`,
  // the embedded broker with the topic first). Brokers are reached lazily,
  // so unreachable brokers are logged and retried, not an error here;
  // kInvalidArgument for a configuration librdkafka refuses. `billing` and
  // `metrics` must outlive the consumer.
  static Result<std::unique_ptr<KafkaConsumer>> Start(const KafkaOptions& options,
                                                      projections::Billing& billing,
                                                      Metrics& metrics);
  // The same for a cluster instance: `options.topic` is the shards topic,
  // and `shards` (which must outlive the consumer) holds their Billings.
  static Result<std::unique_ptr<KafkaConsumer>> Start(const KafkaOptions& options,
                                                      ShardHost& shards, Metrics& metrics);
  ~KafkaConsumer();  // Stop()

  KafkaConsumer(const KafkaConsumer&) = delete;
  KafkaConsumer& operator=(const KafkaConsumer&) = delete;

  // With the embedded broker: its HOST:PORT; otherwise the brokers given.
  std::string bootstrap() const;

  // Finishes the batch in flight and the one in hand, leaves the group and
  // joins the thread. Idempotent; thread-safe.
  void Stop();

  KafkaStats stats() const;

 private:
  struct Impl;
  explicit KafkaConsumer(std::unique_ptr<Impl> impl);
  static Result<std::unique_ptr<KafkaConsumer>> Launch(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace billing::api
