// Router: the stateless stage that moves every event from billing.events to
// its org's shard (docs/CLUSTER.md, "Why producers with different
// partitioners cannot split an org").
//
// One thread, a member of the consumer group `group + ".router"`, reads the
// input topic, extracts each message's org_id (nothing else is judged here;
// a message without a readable org goes to shard 0, whose owner rejects it
// with its precise error) and produces the unchanged key, value and headers,
// plus a header `ledger-origin: topic/partition/offset`, to partition
// ShardOf(org, shards) of the shards topic. The producer is idempotent
// (acks=all), and the record's timestamp is left to librdkafka, so it is the
// produce time (the shard's ledger takes recorded_at from it).
//
// At least once: messages are forwarded in batches; a batch's input offsets
// are committed to Kafka (synchronously) only after the broker acknowledged
// every message of the batch. A failed delivery commits nothing: the router
// seeks back to the batch's first offsets and forwards the batch again after
// a backoff. A router killed between forwarding and committing forwards the
// same messages again from the next owner of the input partition. Copies are
// exact re-sends, which the shard's ledger drops by (org_id, event_id). Each
// input partition is forwarded in order, so an org's events keep their order
// (the first copy of each event is in input order).
//
// The shards topic must exist with `shards` partitions (EnsureTopic first);
// a missing partition fails deliveries, which are retried.
//
// Metrics: ledger_router_forwarded_total (acknowledged by the broker),
// ledger_router_failures_total{kind="delivery"|"commit"|"consume"}.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "events/status.h"
#include "metrics/metrics.h"

namespace billing::cluster {

// The router's group session timeout (see api::kKafkaSessionTimeoutMsDefault):
// a killed router's input partitions move after this long.
inline constexpr int kRouterSessionTimeoutMsDefault = 10000;

struct RouterOptions {
  std::string brokers;  // bootstrap.servers
  std::string input_topic = "billing.events";
  std::string group;         // the cluster's group G; the router's consumer group is G.router
  std::string shards_topic;  // usually ShardsTopic(group)
  int shards = 0;            // 1..kShardsMax: the shards topic's partition count
  int session_timeout_ms = kRouterSessionTimeoutMsDefault;
};

// Counters since Start (the same as the metrics), for tests and logs.
struct RouterStats {
  uint64_t forwarded = 0;          // acknowledged by the broker
  uint64_t delivery_failures = 0;  // messages the broker did not acknowledge
  uint64_t commits = 0;            // batches whose input offsets were committed
  uint64_t commit_failures = 0;    // commits refused (the batch is forwarded again later)
  uint64_t rewinds = 0;            // batches forwarded again after a failure
  uint64_t unrouted = 0;           // messages without a readable org_id (sent to shard 0)
};

class Router {
 public:
  // Validates the options, creates the clients and starts the thread.
  // kInvalidArgument for empty names, shards outside 1..kShardsMax, or a
  // configuration librdkafka refuses. Brokers are reached lazily:
  // unreachable brokers are logged and retried. `metrics` must outlive the
  // router.
  static Result<std::unique_ptr<Router>> Start(const RouterOptions& options, api::Metrics& metrics);
  ~Router();  // Stop()

  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Finishes the batch in hand (forwarded and committed, or dropped
  // uncommitted if the broker does not acknowledge it in time), leaves the
  // group and joins the thread. Idempotent; thread-safe.
  void Stop();

  RouterStats stats() const;

 private:
  struct Impl;
  explicit Router(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace billing::cluster
