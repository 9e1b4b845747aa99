// Members: the cluster's table of live instances, on the compacted topic
// MembersTopic(group) (docs/CLUSTER.md, "Membership, routing").
//
// Each instance publishes one record keyed by its instance id (JSON: its
// advertised URL, the shards it owns, serves and stands by for, each owned
// shard's head, and a heartbeat time) and re-sends it every heartbeat; every
// instance reads the whole topic (partition 0, from the beginning, without a
// consumer group) and keeps the latest record per key. A record whose
// heartbeat is older than the expiry is a dead instance and is left out of
// the table; a tombstone (a null value, sent by Stop) removes it at once.
// Heartbeats are wall-clock milliseconds (system_clock): records cross
// processes and machines, so instances' clocks must agree to well within the
// expiry (NTP does).
//
// Records are hostile input (anyone who can write the topic): a record over
// the size limits, not JSON of the expected shape, or whose instance_id is
// not its key is ignored and counted.
//
// Records go to partition 0 explicitly, so a members topic auto-created with
// several partitions still works; EnsureTopic(…, 1, MembersTopicConfigs())
// creates it properly on a real cluster.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/status.h"

namespace billing::cluster {

// How often an instance re-sends its record: often enough that a dead
// instance leaves the table within seconds, rarely enough that a cluster's
// records are a trickle for the broker and every reader.
inline constexpr int kMembersHeartbeatMsDefault = 1000;
// How old a heartbeat may be before its instance counts as gone: three
// missed heartbeats (a GC pause, a slow broker) plus a margin for clock skew
// between machines.
inline constexpr int kMembersExpiryMsDefault = 3 * kMembersHeartbeatMsDefault + 1000;

// Limits on a record read from the topic.
// An instance id: a host name and a suffix fit easily.
inline constexpr size_t kInstanceIdBytesMax = 128;
// An advertised URL.
inline constexpr size_t kMemberUrlBytesMax = 2048;
// A whole record's JSON: 256 shards listed three times and 256 heads of
// ~150 bytes are ~40 KiB; four times that is not a table record.
inline constexpr size_t kMemberRecordBytesMax = 160 * 1024;
// Members kept at most: far more than kShardsMax instances could use, small
// enough that a flood of keys cannot exhaust memory; new keys beyond it are
// ignored (counted).
inline constexpr size_t kMembersMax = 1024;

// Where a shard's ledger stands on its owner.
struct ShardHead {
  int shard = 0;
  uint64_t sequence = 0;
  std::string hash_hex;
  int64_t next_offset = 0;  // next offset of the shard's partition to apply
};

struct MemberRecord {
  std::string instance_id;
  std::string url;           // advertised base URL, e.g. http://10.0.0.5:8080
  std::vector<int> owned;    // assigned by the group (restoring or serving)
  std::vector<int> serving;  // owned and caught up: answers reads for them
  std::vector<int> standby;  // kept warm, never serving
  std::vector<ShardHead> heads;
  int64_t heartbeat_ms = 0;  // wall clock (ms since the epoch) when sent
};

struct MembersOptions {
  std::string brokers;
  std::string group;        // the topic is MembersTopic(group)
  std::string instance_id;  // this instance's key (1..kInstanceIdBytesMax bytes)
  int heartbeat_ms = kMembersHeartbeatMsDefault;
  int expiry_ms = kMembersExpiryMsDefault;  // must exceed heartbeat_ms
};

// Counters since Start, for tests and logs.
struct MembersStats {
  uint64_t records_read = 0;   // records and tombstones applied to the table
  uint64_t ignored = 0;        // records refused as malformed or over a limit
  uint64_t sent = 0;           // records and tombstones acknowledged by the broker
  uint64_t send_failures = 0;  // not acknowledged (the next heartbeat re-sends)
};

class Members {
 public:
  // Creates the clients and starts the reader and heartbeat threads; nothing
  // is published until Publish. kInvalidArgument for empty brokers or group,
  // an instance id that is empty or too long, heartbeat_ms < 1, expiry_ms <=
  // heartbeat_ms, or a configuration librdkafka refuses. Brokers are reached
  // lazily.
  static Result<std::unique_ptr<Members>> Start(const MembersOptions& options);
  ~Members();  // Stop()

  Members(const Members&) = delete;
  Members& operator=(const Members&) = delete;

  // Replaces this instance's record (its instance_id is set to the
  // options'; its heartbeat is stamped on each send); sent now and re-sent
  // every heartbeat until Stop. Thread-safe.
  void Publish(MemberRecord self);

  // The live members (heartbeat within the expiry), sorted by instance_id.
  // This instance is included, from what it publishes, once Publish was
  // called. Thread-safe; cheap (a lock and a copy), for every request.
  std::vector<MemberRecord> Table() const;

  // The live member that lists `shard` in `serving`; if several do (a move
  // in progress), the one with the newest heartbeat. Thread-safe; cheap.
  std::optional<MemberRecord> OwnerOf(int shard) const;

  // Stops heartbeats, publishes a tombstone for this instance (waiting a
  // bounded time for it) so that the others drop it at once, and stops
  // reading. Idempotent; thread-safe.
  void Stop();

  MembersStats stats() const;

 private:
  struct Impl;
  explicit Members(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Standby replicas (docs/CLUSTER.md): the shards `self` keeps warm. For each
// shard some member of `table` (sorted by instance_id, as Table gives it)
// lists as owned (the newest heartbeat's, if several do), its standbys are
// the `replicas` members after the owner in that order, wrapping around,
// never the owner itself. A shard nobody owns right now has none. The same
// table gives every instance the same answer, so no one coordinates it.
// --standby-replicas at most: each replica is a full copy of another
// instance's shards on this one's disk and a reader of their partitions;
// beyond a few, copies cost more than the moves they speed up.
inline constexpr int kStandbyReplicasMax = 8;
std::vector<int> StandbyFor(const std::vector<MemberRecord>& table, std::string_view self,
                            int replicas, int shards);

// A record's JSON as published (exposed for tests and `GET /v1/cluster`).
std::string MemberRecordJson(const MemberRecord& record);
// Reads a published record; kInvalidArgument if it is not one (over a
// limit, malformed, a shard outside 0..kShardsMax-1). Never throws.
Result<MemberRecord> ParseMemberRecord(std::string_view json);

}  // namespace billing::cluster
