// Topics: making sure a cluster's Kafka topics exist with the partition count
// the cluster was created with.
//
// The partition count of `G.shards` is the cluster's shard count S, fixed for
// its life (docs/CLUSTER.md): an instance started with another --shards would
// map orgs to other shards and fork their history, so EnsureTopic refuses it.
//
// librdkafka's mock cluster (2.0.2, `ledgerctl kafka-mock`, EmbeddedKafka)
// does not answer CreateTopics (it names no controller, so the request times
// out) and auto-creates any topic a client names in a Metadata request with 4
// partitions. Against it, topics must be created up front (`kafka-mock
// --partitions N --topic T`, EmbeddedKafka::CreateTopic); EnsureTopic then
// only checks them. It looks topics up with an all-topics Metadata request,
// which creates nothing. Thread-safe: each call uses its own client.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "events/status.h"

namespace billing::cluster {

// Topic-level configuration entries (name, value), as CreateTopics takes them.
using TopicConfigs = std::vector<std::pair<std::string, std::string>>;

// How long a cluster's startup waits for the brokers to create or describe a
// topic: long enough for a real cluster's controller under load, short
// enough that an operator with a wrong --kafka-brokers is told soon.
inline constexpr int kEnsureTopicTimeoutMsDefault = 15000;

// `G.shards` is the durable copy of every shard's ledger (docs/CLUSTER.md):
// kept forever, not compacted (keys repeat).
TopicConfigs ShardsTopicConfigs();
// `G.members` holds one live record per instance: compacted, so that a
// reader starting from the beginning reads little more than the table.
TopicConfigs MembersTopicConfigs();

// Creates `topic` with `partitions` partitions and `configs` unless it
// exists, then checks its partition count. Ok when the topic has exactly
// `partitions`; kInvalidArgument (naming both counts) when it has another
// count, or when `partitions` is not positive; kUnavailable when the brokers
// cannot be reached, refuse to create it, or do not answer within
// `timeout_ms` (on the mock: the topic was not created up front). Existing
// topics' configs are not compared (a mock ignores them anyway).
// kAtLeast: a topic with more partitions is fine too (the members' table
// uses partition 0 only, and a mock creates every topic with one count).
enum class PartitionCheck { kExact, kAtLeast };
Status EnsureTopic(const std::string& brokers, const std::string& topic, int partitions,
                   const TopicConfigs& configs, int timeout_ms,
                   PartitionCheck check = PartitionCheck::kExact);

}  // namespace billing::cluster
