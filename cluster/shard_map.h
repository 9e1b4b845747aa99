// Shards: how a cluster of ledgerd instances divides organizations.
//
// A cluster has a fixed number of shards, the partition count of its
// `G.shards` topic (docs/CLUSTER.md). An organization lives in exactly one
// shard for the life of the cluster, chosen by a hash of its org_id that no
// Kafka client's partitioner is involved in: producers with different
// partitioners write billing.events, and the router re-keys every message to
// its org's shard. Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace billing::cluster {

// The most shards a cluster may have: each owned shard is a RocksDB instance
// (its files, memtables and background work) in its owner's process, and a
// test machine hosts every instance of a cluster at once.
inline constexpr int kShardsMax = 256;
// Enough for a few machines to share the work (Kafka Streams' advice: more
// partitions than instances, since partitions cannot be added later without
// moving orgs), few enough that one machine can own them all.
inline constexpr int kShardsDefault = 16;

// The shard of `org_id` among `shards` (1..kShardsMax): the first 8 bytes of
// SHA-256(org_id), big-endian, modulo `shards`.
int ShardOf(std::string_view org_id, int shards);

// The topics of cluster `group`: the shards' log (one partition per shard) and
// the members' table (compacted, one record per instance).
std::string ShardsTopic(const std::string& group);
std::string MembersTopic(const std::string& group);

}  // namespace billing::cluster
