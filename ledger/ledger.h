// The ledger: an append-only, hash-chained, durable log of accepted events on
// RocksDB, with the rejected messages and Kafka offsets kept beside it.
//
// Appends go through one writer thread that forms groups: every request that
// is waiting when the writer comes round is decided in arrival order and
// written in one RocksDB WriteBatch with one WAL sync (group commit), so an
// acknowledged event is on disk and concurrent appenders share the fsync.
// Within a group each event is, in order: a duplicate (same org_id and
// event_id, same content digest: acknowledged, not stored again), a conflict
// (same org and id, other content), refused by the Gate (stateful validation, owned by
// projections), or accepted with the next gap-free sequence, a recorded_at and a chained hash.
// Rejections are written to the rejected store, and Kafka offsets to the offset
// store, in the same WriteBatch as the events they belong to. Event ids are
// per organization: one org's ids never collide with, block or reveal another's.
//
// The rejected store is bounded: each rejection keeps at most
// kRejectedRawBytesMax bytes of its message and kRejectedMessageBytesMax of
// its reason, and each org (and the bucket of messages naming no valid org)
// keeps its newest Options::rejected_per_org_max rejections: a new one beyond
// that drops the org's oldest, counted by rejected_dropped() and logged, so
// that a flood of bad messages never blocks good ones.
//
// Reads (records, org history, offsets, rejected, verify) are thread-safe and
// see only committed data.
//
// A group whose write fails (a full disk, an I/O error) is refused whole with
// kUnavailable and leaves nothing behind; the writer resumes RocksDB at its
// next group, so appends work again as soon as the disk does. After a failed
// fsync RocksDB refuses to resume: appends stay refused, saying so, until the
// ledger is reopened (tests/ledger/storage_fault_test.cc), and
// Options::on_unrecoverable is called.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "events/event.h"
#include "events/status.h"
#include "ledger/ledger.pb.h"

namespace rocksdb {
class DB;
class Env;
class MergeOperator;
class WriteBatch;
}  // namespace rocksdb

namespace billing::ledger {

struct Sequence {
  uint64_t value = 0;
  auto operator<=>(const Sequence&) const = default;
};
// Past every sequence: "up to the head" for a read bounded by a sequence.
inline constexpr Sequence kSequenceMax{UINT64_MAX};

using Source = ::billing::ledger::v1::Source;
using Record = ::billing::ledger::v1::Record;
using RejectedRecord = ::billing::ledger::v1::Rejected;

// One message offered for append: parsed and stateless-valid (`event` set), or
// already refused by stateless validation (`rejection` set, kept as raw bytes).
struct Entry {
  std::string raw;                     // the bytes as received, kept if rejected
  std::optional<events::Event> event;  // set when stateless validation passed
  Status rejection;                    // set when it did not
  std::string event_id;                // best effort for rejected entries
  std::string org_id;                  // best effort for rejected entries
  Source source;
  // Re-drive of a stored rejected message: on acceptance (or duplicate) that
  // rejected record is removed; on another rejection it is updated in place.
  std::optional<uint64_t> redrive_of;
  // When set, the time recorded for this entry in place of the wall clock
  // (still never before the previous record's): a cluster's shard takes it
  // from the Kafka record, so that replaying the shard's partition anywhere
  // rebuilds the same records and hashes (docs/CLUSTER.md).
  std::optional<int64_t> recorded_at_micros;
};

struct KafkaOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t next_offset = 0;  // the next offset to consume
};

struct AppendRequest {
  std::vector<Entry> entries;
  std::vector<KafkaOffset> offsets;
};

struct Outcome {
  enum class Kind { kAccepted, kDuplicate, kRejected };
  Kind kind = Kind::kRejected;
  Sequence sequence;      // accepted or duplicate: the event's sequence
  Code code = Code::kOk;  // rejected: the SPEC code
  std::string message;    // rejected: why
  uint64_t rejected_id = 0;
};

struct AppendResult {
  Status status;                  // not ok: nothing of the request was written (e.g. kUnavailable)
  std::vector<Outcome> outcomes;  // one per entry, in order
  Sequence last_sequence;         // ledger head after the group
};

// An event already in the ledger.
struct StoredEvent {
  Sequence sequence;
  events::Envelope envelope;
};

// The idempotency key of an event (SPEC): an event id means something only
// within its org. Views: the strings must outlive the call.
struct EventKey {
  std::string_view org_id;
  std::string_view event_id;
};

// How much of a rejected message is kept. Enough for any real event (the
// largest valid one is a few KiB: every text field is at most
// events::kTextBytesMax); a multi-megabyte body is kept as a prefix that
// shows what it was, instead of multiplying the disk it costs.
inline constexpr size_t kRejectedRawBytesMax = 64 * 1024;
// How much of a rejection's reason is kept: reasons name a field and a short
// value; one quoting a hostile input at length is cut.
inline constexpr size_t kRejectedMessageBytesMax = 1024;
// Rejections kept per org (and for messages naming no valid org): enough for
// an integration's whole bad day to be re-driven, while one org's flood costs
// at most this many times kRejectedRawBytesMax (64 MiB) of disk.
inline constexpr size_t kRejectedPerOrgMax = 1000;
// Stored bytes (raw, reason and names) of one page of ListRejected: at most
// 16 full-size rejections, so a page stays a few MiB of JSON even when every
// raw needs escaping. A page always holds at least one rejection.
inline constexpr size_t kRejectedPageBytesMax = 1024 * 1024;

// One page of the rejected store; see Ledger::ListRejected.
struct RejectedQuery {
  uint64_t after_id = 0;                     // rejections with a larger id, oldest first
  size_t limit = 0;                          // at most this many (0: no count limit)
  size_t bytes_max = kRejectedPageBytesMax;  // stop once this many stored bytes are listed
  // Only this org's rejections (empty string: those naming no valid org);
  // nullopt: every rejection.
  std::optional<std::string> org;
};

struct RejectedPage {
  std::vector<RejectedRecord> records;
  // The after_id that continues the listing; nullopt when the page holds the last one.
  std::optional<uint64_t> next_after;
};

// The writer's view while it decides one group: writes of the Gate go into the
// group's WriteBatch, and lookups see the events accepted earlier in the group.
class Txn {
 public:
  virtual ~Txn() = default;
  virtual rocksdb::WriteBatch* batch() = 0;
  // The accepted event with this org and id, in the group or the ledger;
  // nullopt if none (an id of another org is none).
  virtual Result<std::optional<StoredEvent>> FindEvent(EventKey key) = 0;
};

// Stateful validation and derived state, implemented by the projections. Only
// the writer thread calls it, one group at a time.
class Gate {
 public:
  virtual ~Gate() = default;
  // Decides whether `event` becomes record `seq`. OK: accepted, and the Gate has
  // applied it to its state and added its derived writes to txn.batch(). Any
  // other status is the SPEC rejection, and the Gate must be unchanged.
  virtual Status Admit(const events::Event& event, Sequence seq, Txn& txn) = 0;
  // The group is decided: add any buffered writes to txn.batch() now.
  virtual void Seal(Txn& txn) = 0;
  // The group holding everything admitted since the last call is durable.
  virtual void Committed() = 0;
  // The group's write failed: forget everything admitted since the last commit.
  virtual void Aborted() = 0;
};

enum class Durability {
  kSync,   // fsync the WAL before acknowledging: the production setting
  kAsync,  // for benchmarks and replay scratch copies only
};

enum class OpenMode { kReadWrite, kReadOnly };

struct Options {
  std::string dir;
  Durability durability = Durability::kSync;
  // Read-only opens work on a directory a running ledgerd is writing and see
  // it as of the open.
  OpenMode mode = OpenMode::kReadWrite;
  // The projections' merge operator for their key range (RocksDB needs it at
  // open). Without one, records still read correctly but merged projection
  // keys cannot be read.
  std::shared_ptr<rocksdb::MergeOperator> merge_operator;
  // The RocksDB environment; nullptr for the default (the local file system).
  // Tests pass one that injects storage faults. Must outlive the ledger.
  rocksdb::Env* env = nullptr;
  // Called once, on the writer thread, when RocksDB says writes cannot
  // resume until the database is reopened (after a failed fsync). ledgerd
  // exits on it so that its supervisor restarts it: reopening replays the
  // WAL, which holds every acknowledged event.
  std::function<void(const Status&)> on_unrecoverable;
  // Rejections kept per org before the oldest is dropped; tests lower it.
  size_t rejected_per_org_max = kRejectedPerOrgMax;
};

struct Head {
  Sequence sequence;
  std::string hash;  // raw 32 bytes; the genesis hash when empty
};

struct VerifyReport {
  bool ok = true;
  uint64_t events = 0;
  Head head;
  Sequence first_bad;   // when !ok: the first sequence that does not verify
  std::string problem;  // when !ok: what is wrong there
};

class Ledger {
 public:
  // Opens or creates the ledger in options.dir, recovering head and counters.
  // kCorruption for a damaged or foreign directory, kUnavailable for I/O errors.
  // A read-write open upgrades a format-1 directory first (FORMAT.md), in
  // bounded batches with the format marker written last: an open that fails
  // or crashes part way leaves format 1, and the next open redoes it. A
  // read-only open of a format-1 directory reads it as it is.
  static Result<std::unique_ptr<Ledger>> Open(const Options& options);
  ~Ledger();  // stops the writer after draining queued requests

  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Installs the stateful validator; must happen before the first append.
  void SetGate(Gate* gate);

  // What AppendAsync does when kAppendQueueRequestsMax requests already wait.
  enum class WhenQueueFull {
    kWait,    // block the caller until there is room (the Kafka consumer, tools)
    kRefuse,  // call `done` at once with kOverloaded (an HTTP thread must never block)
  };
  // Queues a request; `done` runs on the writer thread once the group is
  // durable (or failed), or on the caller's thread when it is refused.
  void AppendAsync(AppendRequest request, std::function<void(AppendResult)> done,
                   WhenQueueFull when_full = WhenQueueFull::kWait);
  // Appends and waits for durability.
  AppendResult Append(AppendRequest request);

  Head head() const;

  // Visits records with sequence > after, in order, until `visit` returns false
  // or `limit` records were visited (0: no limit).
  Status Scan(Sequence after, size_t limit, const std::function<bool(const Record&)>& visit) const;
  // Same, restricted to one org's records (via the org index) up to `upto`.
  Status ScanOrg(const std::string& org, Sequence after, Sequence upto, size_t limit,
                 const std::function<bool(const Record&)>& visit) const;
  // The accepted event with this org and id; nullopt if none.
  Result<std::optional<StoredEvent>> FindEvent(EventKey key) const;

  // Walks the whole chain; see VerifyReport.
  Result<VerifyReport> Verify() const;

  // The next offset to consume for a partition, as stored with the events.
  Result<std::optional<int64_t>> KafkaNextOffset(const std::string& topic, int32_t partition) const;

  // One page of rejections, bounded by query.limit and query.bytes_max; an
  // org's page reads only that org's rejections (the `j` index).
  Result<RejectedPage> ListRejected(const RejectedQuery& query) const;
  // Every rejection after `after_id`, up to `limit` (0: all), without a byte
  // bound: for tests and tools that want the whole store.
  Result<std::vector<RejectedRecord>> ListRejected(uint64_t after_id, size_t limit) const;
  Result<std::optional<RejectedRecord>> GetRejected(uint64_t id) const;
  // Rejections dropped by the per-org quota since the open.
  uint64_t rejected_dropped() const;

  // The database, for the projections' own key range (format::kProjectionPrefix).
  rocksdb::DB* db() const;

 private:
  struct Impl;
  explicit Ledger(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Decodes a stored record's event.
Result<events::Envelope> DecodeEvent(const Record& record);
// The same into `out`, whose strings keep their capacity (replays reuse one
// envelope for every record). On failure `out` holds a partial decode.
Status DecodeEvent(const Record& record, events::Envelope* out);

// Requests waiting for the writer before AppendAsync blocks the caller: bounds
// memory and turns overload into backpressure on producers.
inline constexpr size_t kAppendQueueRequestsMax = 4096;
// Entries decided in one group: bounds one WriteBatch (~300 B an event, so a few MiB).
inline constexpr size_t kGroupEntriesMax = 16384;

}  // namespace billing::ledger
