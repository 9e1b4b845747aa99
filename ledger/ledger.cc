#include "ledger/ledger.h"

#include <malloc.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "ledger/format.h"
#include "ledger/hash_chain.h"
#include "ledger/rocks_status.h"

namespace billing::ledger {

namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool HasPrefix(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::string_view(key.data(), prefix.size()) == prefix;
}

// After a failed write or flush RocksDB turns read-only, and on a full disk
// starts its own recovery, which waits until the free space exceeds an
// estimate of what compactions may need (on a small volume: never) and
// re-checks every 5 s; while it runs, DB::Resume() answers Busy. Every such
// error makes our writes fail, so the writer resumes at its next group
// instead: an append works again as soon as space returns. Compaction errors
// keep RocksDB's own recovery: they do not fail writes, so no write of ours
// would come along to resume them.
class ResumeAtNextWrite : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    if (reason != rocksdb::BackgroundErrorReason::kCompaction) *auto_recovery = false;
  }
};

// Gives memory that malloc keeps after a memtable flush back to the system.
// A flushed memtable (64 MiB, allocated in blocks by the writer thread and
// freed by a flush thread) and the compactions that follow leave free memory
// spread over glibc's per-thread arenas, which it keeps: under steady ingest
// the resident size grew by ~15 MiB a minute while the bytes in use stayed
// flat (glibc's malloc_stats; tests/bench/load_test.sh). Trimming after each
// flush, about every 100 k events, is cheap next to the flush itself and
// runs on RocksDB's flush thread.
class TrimAfterFlush : public rocksdb::EventListener {
 public:
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
  }
};

// RocksDB's info log (DIR/LOG, the previous one kept as DIR/LOG.old) through
// stdio. WARNING: RocksDB's own file logger writes through a
// WritableFileWriter that, in builds of the library with assertions on (as
// Debian ships it), aborts the process at the first log line after a failed
// flush of LOG: a full disk crashed ledgerd instead of giving 503s
// (tests/reliability/disk_full_test.cc). This logger ignores write errors;
// the log is for people, never needed for recovery.
class StdioLogger : public rocksdb::Logger {
 public:
  explicit StdioLogger(std::FILE* file) : file_(file) {}
  ~StdioLogger() override { std::fclose(file_); }
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    auto now = std::chrono::system_clock::now();
    std::time_t secs = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y/%m/%d-%H:%M:%S", &tm);
    long micros = static_cast<long>(
        std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
        1000000);
    va_list copy;
    va_copy(copy, ap);
    int n = std::vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    if (n < 0) return;
    std::string line(static_cast<size_t>(n) + 1, '\0');
    std::vsnprintf(line.data(), line.size(), format, ap);
    line.resize(static_cast<size_t>(n));
    if (line.empty() || line.back() != '\n') line.push_back('\n');
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(file_, "%s.%06ld %s", stamp, micros, line.c_str());
    std::fflush(file_);
  }

 private:
  std::mutex mu_;
  std::FILE* file_;
};

// The info logger of a read-write open, or nullptr (RocksDB's default) when
// LOG cannot be opened.
std::shared_ptr<rocksdb::Logger> OpenInfoLog(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path log = fs::path(dir) / "LOG";
  if (fs::exists(log, ec)) fs::rename(log, fs::path(dir) / "LOG.old", ec);
  std::FILE* file = std::fopen(log.c_str(), "a");
  if (file == nullptr) return nullptr;
  return std::make_shared<StdioLogger>(file);
}

// Installed when the caller brings no merge operator. RocksDB needs one to
// recover a WAL holding merge operands at all: without it a read-only open
// silently stops replaying at the first such batch and misses the records
// in it. This one recovers everything and refuses to compute merges, which
// only the projections' own operator can do.
class NoMergeOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice*, const rocksdb::Slice&, std::string*,
             rocksdb::Logger*) const override {
    return false;
  }
  const char* Name() const override { return "billing.NoMerge"; }
};

// Whether `s` is an id the SPEC allows: 1..max_bytes of [A-Za-z0-9._:-].
bool IsIdText(std::string_view s, size_t max_bytes) {
  if (s.empty() || s.size() > max_bytes) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
  });
}

// The quota bucket (and stored org_id) of a rejection: its org when it names
// a valid one, else "" (messages naming no org, or garbage). An invalid name
// cannot be an org, so it never gets a bucket, nor a scoped token's eyes.
std::string BucketOf(std::string_view org_id) {
  return IsIdText(org_id, events::kOrgIdBytesMax) ? std::string(org_id) : std::string();
}

// Brings a rejected record within the store's bounds (ledger.h); true if it
// changed. Records written by this build already are; the upgrade from
// format 1 applies it to the records written before there were bounds.
bool BoundRejected(RejectedRecord* rec) {
  bool changed = false;
  if (rec->raw_bytes() < rec->raw().size()) {
    rec->set_raw_bytes(rec->raw().size());
    changed = true;
  }
  if (rec->raw().size() > kRejectedRawBytesMax) {
    rec->mutable_raw()->resize(kRejectedRawBytesMax);
    rec->set_raw_truncated(true);
    changed = true;
  }
  auto bound = [&](std::string* field, std::string value) {
    if (*field != value) {
      *field = std::move(value);
      changed = true;
    }
  };
  bound(rec->mutable_message(),
        std::string(events::CutUtf8(rec->message(), kRejectedMessageBytesMax)));
  bound(rec->mutable_event_id(),
        std::string(events::CutUtf8(rec->event_id(), events::kEventIdBytesMax)));
  bound(rec->mutable_org_id(), BucketOf(rec->org_id()));
  return changed;
}

// The id and bucket of a `j` key.
std::pair<std::string, uint64_t> ParseRejectedOrgKey(const rocksdb::Slice& key) {
  std::string_view k(key.data(), key.size());
  return {std::string(k.substr(1, k.size() - 1 - 1 - 8)), format::GetBe64(k.substr(k.size() - 8))};
}

// Records, or rejected messages, rewritten per upgrade batch: bounds one
// WriteBatch to a few MiB whatever the size of the ledger.
constexpr size_t kUpgradeBatchKeysMax = 8192;
constexpr size_t kUpgradeBatchBytesMax = 4 * 1024 * 1024;

// Writes an upgrade batch once it is full (or `last`). Each is synced, so
// the format marker, written after the last one, can never be on disk
// without everything it vouches for.
Status FlushUpgradeBatch(rocksdb::DB* db, rocksdb::WriteBatch* batch, bool last) {
  if (batch->Count() == 0) return Status::Ok();
  if (!last && batch->Count() < kUpgradeBatchKeysMax &&
      batch->GetDataSize() < kUpgradeBatchBytesMax) {
    return Status::Ok();
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  Status s = FromRocks(db->Write(wo, batch), "upgrading the ledger");
  batch->Clear();
  return s;
}

// Format 1 -> 2, step 1: the event-id index keyed by (org, id). Every record
// gets its new key and loses its old one in the same batch, so at any crash
// each record has one of the two, and redoing the whole step is harmless.
Status RekeyEventIds(rocksdb::DB* db) {
  rocksdb::ReadOptions ro;
  std::string upper(1, format::kRecordPrefix + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  rocksdb::WriteBatch batch;
  Record record;
  events::Envelope envelope;
  for (it->Seek(format::RecordKey(0)); it->Valid(); it->Next()) {
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status(Code::kCorruption, "undecodable ledger record while upgrading the ledger");
    }
    if (Status decoded = DecodeEvent(record, &envelope); !decoded.ok()) return decoded;
    std::string value;
    format::PutBe64(&value, record.sequence());
    value += Digest(record.event());
    batch.Delete(format::EventIdKeyV1(envelope.event_id()));
    batch.Put(format::EventIdKey(envelope.org_id(), envelope.event_id()), value);
    if (Status s = FlushUpgradeBatch(db, &batch, false); !s.ok()) return s;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "upgrading the ledger");
  return FlushUpgradeBatch(db, &batch, true);
}

// Format 1 -> 2, step 2: the rejected store gets its bounds (ledger.h) and
// its per-org index `j`, and each org keeps its newest `per_org_max`.
// Bounding, indexing and trimming are idempotent, so a crash mid-way is
// redone from the start.
Status BoundRejections(rocksdb::DB* db, size_t per_org_max) {
  rocksdb::ReadOptions ro;
  std::string upper(1, format::kRejectedPrefix + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  rocksdb::WriteBatch batch;
  std::map<std::string, std::vector<uint64_t>> buckets;
  for (it->Seek(format::RejectedKey(0)); it->Valid(); it->Next()) {
    RejectedRecord rec;
    if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status(Code::kCorruption, "undecodable rejected record while upgrading the ledger");
    }
    if (BoundRejected(&rec)) batch.Put(it->key(), rec.SerializeAsString());
    batch.Put(format::RejectedOrgKey(rec.org_id(), rec.id()), rocksdb::Slice());
    buckets[rec.org_id()].push_back(rec.id());
    if (Status s = FlushUpgradeBatch(db, &batch, false); !s.ok()) return s;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "upgrading the ledger");
  for (const auto& [bucket, ids] : buckets) {
    for (size_t i = 0; i + per_org_max < ids.size(); ++i) {
      batch.Delete(format::RejectedKey(ids[i]));
      batch.Delete(format::RejectedOrgKey(bucket, ids[i]));
      if (Status s = FlushUpgradeBatch(db, &batch, false); !s.ok()) return s;
    }
  }
  return FlushUpgradeBatch(db, &batch, true);
}

// Format 1 -> 2 (FORMAT.md), with the marker written last.
Status UpgradeFromV1(rocksdb::DB* db, size_t per_org_max) {
  if (Status s = RekeyEventIds(db); !s.ok()) return s;
  if (Status s = BoundRejections(db, per_org_max); !s.ok()) return s;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db->Put(wo, format::kMetaFormat, format::kFormatVersion),
                   "upgrading the ledger");
}

}  // namespace

Status DecodeEvent(const Record& record, events::Envelope* out) {
  auto undecodable = [&] {
    return Status(Code::kCorruption,
                  "record " + std::to_string(record.sequence()) + " holds an undecodable event");
  };
  // Parsing clears a oneof by deleting its message, so every usage record
  // would allocate its payload and each of its strings anew. Keep the
  // payload, emptied, for the bytes to merge into: most records of a replay
  // are usage. Bytes without a payload would leave it set but empty, so an
  // empty one is parsed again from scratch.
  if (out->payload_case() != events::Payload::kUsageRecorded) {
    if (!out->ParseFromString(record.event())) return undecodable();
    return Status::Ok();
  }
  events::v1::UsageRecorded* payload = out->release_usage_recorded();
  payload->Clear();
  out->Clear();
  out->set_allocated_usage_recorded(payload);
  if (!out->MergeFromString(record.event())) return undecodable();
  if (out->payload_case() == events::Payload::kUsageRecorded &&
      out->usage_recorded().ByteSizeLong() == 0 && !out->ParseFromString(record.event())) {
    return undecodable();
  }
  return Status::Ok();
}

Result<events::Envelope> DecodeEvent(const Record& record) {
  events::Envelope envelope;
  Status decoded = DecodeEvent(record, &envelope);
  if (!decoded.ok()) return decoded;
  return envelope;
}

struct Ledger::Impl {
  // An entry's canonical bytes and content digest, computed by AppendAsync on
  // the appender's thread: every appender waits on the one writer, so work
  // that needs no ledger state is done before the queue, in parallel.
  struct Hashed {
    std::string bytes;
    std::string digest;
  };
  struct Pending {
    AppendRequest request;
    std::vector<Hashed> hashed;  // one per entry; empty strings for rejected entries
    std::function<void(AppendResult)> done;
  };
  // What the writer knows of an event accepted earlier in the current group.
  struct GroupEvent {
    Sequence sequence;
    std::string digest;
    const events::Envelope* envelope;
  };

  class GroupTxn : public Txn {
   public:
    GroupTxn(Impl* impl, rocksdb::WriteBatch* batch) : impl_(impl), batch_(batch) {}
    rocksdb::WriteBatch* batch() override { return batch_; }
    Result<std::optional<StoredEvent>> FindEvent(EventKey key) override {
      auto it = impl_->group_events.find(format::EventIdKey(key.org_id, key.event_id));
      if (it != impl_->group_events.end()) {
        return std::optional<StoredEvent>(StoredEvent{it->second.sequence, *it->second.envelope});
      }
      return impl_->FindCommitted(key);
    }

   private:
    Impl* impl_;
    rocksdb::WriteBatch* batch_;
  };

  Options options;
  std::unique_ptr<rocksdb::DB> db;
  Gate* gate = nullptr;

  mutable std::mutex head_mu;
  Head committed_head;  // guarded by head_mu

  // Writer-thread state.
  Head writer_head;
  uint64_t next_rejected_id = 1;
  int64_t last_recorded_at = 0;
  bool write_failed = false;
  std::string unresumable;  // why writes cannot resume, when RocksDB says so
  std::unordered_map<std::string, GroupEvent> group_events;  // by event-id index key
  // The ids of each bucket's stored rejections, oldest first: the `j` index
  // in memory, for the per-org quota. A group's changes go to
  // staged_buckets (copies of the buckets it touches) and replace the
  // committed ones only once its batch is written.
  std::map<std::string, std::deque<uint64_t>> buckets;
  std::map<std::string, std::deque<uint64_t>> staged_buckets;
  std::map<std::string, uint64_t> group_drops;       // per bucket, in the current group
  std::map<std::string, uint64_t> drops_since_open;  // per bucket, for the log's back-off
  std::atomic<uint64_t> dropped{0};

  // A read-only open of a format-1 directory (FORMAT.md): event ids are
  // looked up under their format-1 key too, and the rejected store has no
  // `j` index.
  bool legacy_format = false;

  std::mutex queue_mu;
  std::condition_variable queue_cv;
  std::condition_variable space_cv;
  std::deque<Pending> queue;
  bool stopping = false;
  std::thread writer;

  // The rejected store's buckets, from the `j` index.
  Status LoadBuckets() {
    rocksdb::ReadOptions ro;
    std::string upper(1, format::kRejectedOrgPrefix + 1);
    rocksdb::Slice upper_slice(upper);
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
    for (it->Seek(std::string(1, format::kRejectedOrgPrefix)); it->Valid(); it->Next()) {
      if (it->key().size() < 1 + 1 + 8)
        return Status(Code::kCorruption, "short rejected-by-org index key");
      auto [bucket, id] = ParseRejectedOrgKey(it->key());
      buckets[bucket].push_back(id);
    }
    return FromRocks(it->status(), "reading the rejected-by-org index");
  }

  Result<std::optional<StoredEvent>> FindCommitted(EventKey key) const {
    std::string value;
    rocksdb::Status s =
        db->Get(rocksdb::ReadOptions(), format::EventIdKey(key.org_id, key.event_id), &value);
    bool global_key = false;
    if (s.IsNotFound() && legacy_format) {
      // Format 1 keyed ids alone (one upgrade cut short may have rekeyed some
      // records and not others): the record found must also be of this org.
      s = db->Get(rocksdb::ReadOptions(), format::EventIdKeyV1(key.event_id), &value);
      global_key = true;
    }
    if (s.IsNotFound()) return std::optional<StoredEvent>();
    if (!s.ok()) return FromRocks(s, "reading the event-id index");
    if (value.size() < 8) return Status(Code::kCorruption, "short event-id index entry");
    Sequence seq{format::GetBe64(value)};
    std::string bytes;
    s = db->Get(rocksdb::ReadOptions(), format::RecordKey(seq.value), &bytes);
    // A record the index names but that is not there is damage; a read that
    // failed is only a read that failed.
    if (s.IsNotFound()) {
      return Status(Code::kCorruption,
                    "event-id index points at missing record " + std::to_string(seq.value));
    }
    if (!s.ok()) return FromRocks(s, "reading record " + std::to_string(seq.value));
    Record record;
    if (!record.ParseFromString(bytes)) return Status(Code::kCorruption, "undecodable record");
    auto envelope = DecodeEvent(record);
    if (!envelope.ok()) return envelope.status();
    if (global_key && envelope->org_id() != key.org_id) return std::optional<StoredEvent>();
    return std::optional<StoredEvent>(StoredEvent{seq, std::move(envelope).value()});
  }

  // The event-id index entries of a group's events, read with one MultiGet:
  // batched, sorted lookups share the work of finding each key's place in the
  // memtable and table files that a Get per event repeats.
  class IdLookups {
   public:
    // The stored value of an index key, or nullptr when it is not recorded.
    const std::string* Find(const std::string& key) const {
      auto it = std::lower_bound(ids_.begin(), ids_.end(), key);
      if (it == ids_.end() || *it != key) return nullptr;
      const auto& v = values_[static_cast<size_t>(it - ids_.begin())];
      return v ? &*v : nullptr;
    }

   private:
    friend struct Impl;
    std::vector<std::string> ids_;  // event-id index keys, sorted, distinct
    std::vector<std::optional<std::string>> values_;
  };

  Status LookUpIds(const std::vector<Pending>& group, IdLookups* out) const {
    for (const Pending& p : group) {
      for (const Entry& e : p.request.entries) {
        if (e.event) {
          out->ids_.push_back(
              format::EventIdKey(e.event->envelope.org_id(), e.event->envelope.event_id()));
        }
      }
    }
    std::sort(out->ids_.begin(), out->ids_.end());
    out->ids_.erase(std::unique(out->ids_.begin(), out->ids_.end()), out->ids_.end());
    const std::vector<std::string>& keys = out->ids_;
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db->MultiGet(rocksdb::ReadOptions(), db->DefaultColumnFamily(), keys.size(), slices.data(),
                 values.data(), statuses.data(), /*sorted_input=*/true);
    out->values_.resize(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].ok()) {
        out->values_[i] = values[i].ToString();
      } else if (!statuses[i].IsNotFound()) {
        return FromRocks(statuses[i], "reading the event-id index");
      }
    }
    return Status::Ok();
  }

  void WriterLoop() {
    for (;;) {
      std::vector<Pending> group;
      {
        std::unique_lock<std::mutex> lock(queue_mu);
        queue_cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and everything queued was written
        size_t entries = 0;
        while (!queue.empty() && (group.empty() || entries + queue.front().request.entries.size() <=
                                                       kGroupEntriesMax)) {
          entries += queue.front().request.entries.size();
          group.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      space_cv.notify_all();
      WriteGroup(group);
    }
  }

  // The group's copy of a bucket's ids, made at its first change in the group.
  std::deque<uint64_t>& StagedBucket(const std::string& bucket) {
    auto staged = staged_buckets.find(bucket);
    if (staged != staged_buckets.end()) return staged->second;
    auto committed = buckets.find(bucket);
    return staged_buckets
        .emplace(bucket, committed != buckets.end() ? committed->second : std::deque<uint64_t>())
        .first->second;
  }

  // A re-driven rejection leaves its bucket (it is accepted, or rejected
  // again, possibly naming another org): its stored record says which.
  Status ForgetRedriven(rocksdb::WriteBatch* batch, uint64_t id) {
    batch->Delete(format::RejectedKey(id));
    std::string value;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), format::RejectedKey(id), &value);
    if (s.IsNotFound()) return Status::Ok();  // dropped by the quota meanwhile
    if (!s.ok()) return FromRocks(s, "reading a re-driven rejected message");
    RejectedRecord stored;
    if (!stored.ParseFromString(value))
      return Status(Code::kCorruption, "undecodable rejected record");
    batch->Delete(format::RejectedOrgKey(stored.org_id(), id));
    std::deque<uint64_t>& ids = StagedBucket(stored.org_id());
    auto it = std::lower_bound(ids.begin(), ids.end(), id);
    if (it != ids.end() && *it == id) ids.erase(it);
    return Status::Ok();
  }

  // Stores a rejection, bounded (ledger.h), in its org's bucket, dropping the
  // bucket's oldest beyond the quota.
  Status Reject(rocksdb::WriteBatch* batch, const Entry& entry, Code code,
                const std::string& message, Outcome* outcome) {
    uint64_t id = entry.redrive_of ? *entry.redrive_of : next_rejected_id++;
    if (entry.redrive_of) {
      if (Status forgot = ForgetRedriven(batch, id); !forgot.ok()) return forgot;
    }
    RejectedRecord rec;
    rec.set_id(id);
    rec.set_raw(entry.raw.data(), std::min(entry.raw.size(), kRejectedRawBytesMax));
    rec.set_raw_truncated(entry.raw.size() > kRejectedRawBytesMax);
    rec.set_raw_bytes(entry.raw.size());
    *rec.mutable_source() = entry.source;
    rec.set_code(std::string(CodeName(code)));
    rec.set_message(message);
    rec.set_received_at_micros(entry.recorded_at_micros.value_or(NowMicros()));
    rec.set_org_id(entry.org_id);
    rec.set_event_id(entry.event_id);
    BoundRejected(&rec);
    batch->Put(format::RejectedKey(id), rec.SerializeAsString());
    batch->Put(format::RejectedOrgKey(rec.org_id(), id), rocksdb::Slice());
    std::deque<uint64_t>& ids = StagedBucket(rec.org_id());
    ids.insert(std::lower_bound(ids.begin(), ids.end(), id), id);
    while (ids.size() > std::max<size_t>(options.rejected_per_org_max, 1)) {
      batch->Delete(format::RejectedKey(ids.front()));
      batch->Delete(format::RejectedOrgKey(rec.org_id(), ids.front()));
      ids.pop_front();
      group_drops[rec.org_id()]++;
    }
    outcome->kind = Outcome::Kind::kRejected;
    outcome->code = code;
    outcome->message = rec.message();
    outcome->rejected_id = id;
    return Status::Ok();
  }

  // The group is written: its bucket changes become the committed ones, and
  // drops are counted and logged. A flood logs one line each time an org's
  // drops since the open pass a power of two, not one per drop.
  void CommitBuckets() {
    for (auto& [bucket, ids] : staged_buckets) {
      if (ids.empty()) {
        buckets.erase(bucket);
      } else {
        buckets[bucket] = std::move(ids);
      }
    }
    staged_buckets.clear();
    for (const auto& [bucket, n] : group_drops) {
      dropped += n;
      uint64_t& since_open = drops_since_open[bucket];
      uint64_t before = since_open;
      since_open += n;
      if (std::bit_width(before) != std::bit_width(since_open)) {
        std::fprintf(stderr,
                     "ledger: the rejected store of %s%s%s is full (%zu kept): dropped its oldest, "
                     "%llu since the start\n",
                     bucket.empty() ? "messages naming no valid org" : "org \"", bucket.c_str(),
                     bucket.empty() ? "" : "\"", std::max<size_t>(options.rejected_per_org_max, 1),
                     static_cast<unsigned long long>(since_open));
      }
    }
    group_drops.clear();
  }

  // One group's write in the making: the batch, the gate's view of it, the
  // group's ids as stored before it, and the index keys that go into the
  // batch after the records.
  struct GroupWrite {
    explicit GroupWrite(Impl* impl) : txn(impl, &batch) {}
    rocksdb::WriteBatch batch;
    GroupTxn txn;
    IdLookups known_ids;
    // Index keys go into the batch after the records, each kind in key order:
    // RocksDB inserts a batch in order, and with memtable_insert_hint_per_batch
    // a key next to the previous one costs a short step instead of a search
    // of the whole memtable from the top (interleaving the three kinds cost a
    // third of the ledger's write throughput).
    std::vector<std::pair<std::string, std::string>> id_index;
    std::vector<std::string> org_index;
  };

  // Decides the group's entries in order into one batch and writes it; on any
  // failure the whole group is refused and nothing of it stays.
  void WriteGroup(std::vector<Pending>& group) {
    if (write_failed) ResumeWrites();
    GroupWrite write(this);
    group_events.clear();
    const Head start_head = writer_head;
    const uint64_t start_rejected = next_rejected_id;
    std::vector<AppendResult> results(group.size());
    Status status = LookUpIds(group, &write.known_ids);
    for (size_t r = 0; status.ok() && r < group.size(); ++r) {
      status = DecideRequest(write, group[r], &results[r]);
    }
    if (status.ok()) status = CommitBatch(write, start_head);
    if (!status.ok()) {
      FailGroup(group, status, start_head, start_rejected);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(head_mu);
      committed_head = writer_head;
    }
    if (gate) gate->Committed();
    CommitBuckets();
    group_events.clear();
    for (size_t r = 0; r < group.size(); ++r) {
      results[r].last_sequence = writer_head.sequence;
      if (group[r].done) group[r].done(std::move(results[r]));
    }
  }

  // After a failed write RocksDB stays read-only until resumed, for example
  // once disk space returns.
  void ResumeWrites() {
    rocksdb::Status resumed = db->Resume();
    if (resumed.ok()) {
      write_failed = false;
    } else if (resumed.severity() >= rocksdb::Status::Severity::kFatalError) {
      // A failed fsync, say: the page cache can no longer be trusted, and
      // RocksDB refuses every write until the database is reopened, which
      // replays the WAL. Say so, rather than a bare I/O error, on every
      // refusal from now on.
      bool first = unresumable.empty();
      unresumable = "; RocksDB cannot resume from this error in-process: restart ledgerd (" +
                    resumed.ToString() + ")";
      if (first && options.on_unrecoverable) {
        options.on_unrecoverable(
            Status(Code::kUnavailable,
                   "the ledger cannot write until it is reopened: " + resumed.ToString()));
      }
    }
  }

  // Decides one request's entries, then stores its Kafka offsets in the same
  // batch. A non-ok status fails the whole group.
  Status DecideRequest(GroupWrite& write, Pending& pending, AppendResult* result) {
    AppendRequest& req = pending.request;
    result->outcomes.resize(req.entries.size());
    for (size_t i = 0; i < req.entries.size(); ++i) {
      Status decided = DecideEntry(write, req.entries[i], pending.hashed[i], &result->outcomes[i]);
      if (!decided.ok()) return decided;
    }
    for (const KafkaOffset& o : req.offsets) {
      std::string value;
      format::PutBe64(&value, static_cast<uint64_t>(o.next_offset));
      write.batch.Put(format::OffsetKey(o.topic, o.partition), value);
    }
    return Status::Ok();
  }

  // One entry: stored as a rejection, acknowledged as a duplicate, or
  // accepted with the next sequence. A non-ok status (a storage failure, a
  // corrupt index) fails the whole group; a refusal of the entry is an
  // outcome, not a status.
  Status DecideEntry(GroupWrite& write, Entry& entry, Hashed& hashed, Outcome* out) {
    if (!entry.event)
      return Reject(&write.batch, entry, entry.rejection.code(), entry.rejection.message(), out);
    const events::Envelope& env = entry.event->envelope;
    // Idempotency comes first: a known id is a duplicate or a conflict,
    // whatever the rest of the event says.
    std::string id_key = format::EventIdKey(env.org_id(), env.event_id());
    std::optional<std::pair<Sequence, std::string>> known;
    if (auto it = group_events.find(id_key); it != group_events.end()) {
      known.emplace(it->second.sequence, it->second.digest);
    } else if (const std::string* value = write.known_ids.Find(id_key)) {
      if (value->size() != 8 + format::kHashBytes) {
        return Status(Code::kCorruption, "bad event-id index entry for " + env.event_id());
      }
      known.emplace(Sequence{format::GetBe64(*value)}, value->substr(8));
    }
    if (known) {
      if (known->second != hashed.digest) {
        return Reject(&write.batch, entry, Code::kConflict,
                      "event_id " + env.event_id() + " is already recorded with different content",
                      out);
      }
      out->kind = Outcome::Kind::kDuplicate;
      out->sequence = known->first;
      return entry.redrive_of ? ForgetRedriven(&write.batch, *entry.redrive_of) : Status::Ok();
    }
    Sequence seq{writer_head.sequence.value + 1};
    Status admitted = gate ? gate->Admit(*entry.event, seq, write.txn) : Status::Ok();
    if (admitted.code() == Code::kUnavailable || admitted.code() == Code::kCorruption ||
        admitted.code() == Code::kInternal) {
      return admitted;
    }
    if (!admitted.ok())
      return Reject(&write.batch, entry, admitted.code(), admitted.message(), out);
    return Accept(write, entry, std::move(id_key), seq, hashed, out);
  }

  // Records an admitted event at `seq`, chained to the head, with its index
  // keys; the group's writer head moves on.
  Status Accept(GroupWrite& write, const Entry& entry, std::string id_key, Sequence seq,
                Hashed& hashed, Outcome* out) {
    const events::Envelope& env = entry.event->envelope;
    Record record;
    record.set_sequence(seq.value);
    last_recorded_at = std::max(last_recorded_at, entry.recorded_at_micros.value_or(NowMicros()));
    record.set_recorded_at_micros(last_recorded_at);
    record.set_prev_hash(writer_head.hash);
    record.set_hash(ChainHash(writer_head.hash, seq.value, last_recorded_at, hashed.bytes));
    record.set_event(std::move(hashed.bytes));
    *record.mutable_source() = entry.source;
    std::string index_value;
    format::PutBe64(&index_value, seq.value);
    index_value += hashed.digest;
    write.batch.Put(format::RecordKey(seq.value), record.SerializeAsString());
    write.id_index.emplace_back(id_key, std::move(index_value));
    write.org_index.push_back(format::OrgKey(env.org_id(), seq.value));
    if (entry.redrive_of) {
      if (Status s = ForgetRedriven(&write.batch, *entry.redrive_of); !s.ok()) return s;
    }
    writer_head = Head{seq, record.hash()};
    group_events[std::move(id_key)] = GroupEvent{seq, hashed.digest, &env};
    out->kind = Outcome::Kind::kAccepted;
    out->sequence = seq;
    return Status::Ok();
  }

  // Adds the index keys, the gate's writes and the new head to the batch and
  // writes it, synced unless the ledger was opened without durability.
  Status CommitBatch(GroupWrite& write, const Head& start_head) {
    std::sort(write.org_index.begin(), write.org_index.end());
    for (const std::string& key : write.org_index) write.batch.Put(key, rocksdb::Slice());
    std::sort(write.id_index.begin(), write.id_index.end());
    for (const auto& [key, value] : write.id_index) write.batch.Put(key, value);
    if (gate) gate->Seal(write.txn);
    if (write.batch.Count() == 0) return Status::Ok();
    if (writer_head.sequence != start_head.sequence) {
      std::string head_value;
      format::PutBe64(&head_value, writer_head.sequence.value);
      head_value += writer_head.hash;
      write.batch.Put(format::kMetaHead, head_value);
    }
    rocksdb::WriteOptions wo;
    // The WAL is synced before anyone is told "accepted": an acknowledged event
    // must survive power loss, not only a process crash.
    wo.sync = options.durability == Durability::kSync;
    // Records and org-index keys of a group are consecutive: let the
    // memtable remember where the last one went instead of searching again.
    wo.memtable_insert_hint_per_batch = true;
    rocksdb::Status s = db->Write(wo, &write.batch);
    if (s.ok()) return Status::Ok();
    write_failed = true;
    Status failed = FromRocks(s, "writing to the ledger");
    return Status(failed.code(), failed.message() + unresumable);
  }

  void FailGroup(std::vector<Pending>& group, const Status& status, const Head& start_head,
                 uint64_t start_rejected) {
    writer_head = start_head;
    next_rejected_id = start_rejected;
    group_events.clear();
    staged_buckets.clear();
    group_drops.clear();
    if (gate) gate->Aborted();
    for (Pending& p : group) {
      AppendResult res;
      res.status = status;
      res.last_sequence = start_head.sequence;
      if (p.done) p.done(std::move(res));
    }
  }
};

Ledger::Ledger(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Ledger::~Ledger() {
  if (impl_->writer.joinable()) {
    {
      std::lock_guard<std::mutex> lock(impl_->queue_mu);
      impl_->stopping = true;
    }
    impl_->queue_cv.notify_all();
    impl_->writer.join();
  }
  if (impl_->db) {
    // Closing flushes nothing we depend on (the WAL is the truth) but lets
    // RocksDB finish background work cleanly.
    impl_->db->Close().PermitUncheckedError();
  }
}

namespace {

// Refuses a path that is not a ledger before RocksDB would create one there
// (a read-write open) or fail obscurely (a read-only one).
Status CheckLedgerDirectory(const Options& options, bool read_only) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(options.dir, ec)) {
    if (!fs::is_directory(options.dir, ec)) {
      return Status(Code::kCorruption, options.dir + " exists and is not a directory");
    }
    bool empty = fs::is_empty(options.dir, ec);
    if (!empty && !fs::exists(fs::path(options.dir) / "CURRENT", ec)) {
      return Status(Code::kCorruption,
                    options.dir + " is not empty and is not a ledger (no RocksDB CURRENT file)");
    }
    if (empty && read_only) return Status(Code::kNotFound, options.dir + " holds no ledger");
  } else if (read_only) {
    return Status(Code::kNotFound, options.dir + " does not exist");
  }
  return Status::Ok();
}

rocksdb::Options DbOptions(const Options& options, bool read_only) {
  rocksdb::Options db_options;
  db_options.create_if_missing = !read_only;
  db_options.merge_operator =
      options.merge_operator ? options.merge_operator : std::make_shared<NoMergeOperator>();
  if (options.env != nullptr) db_options.env = options.env;
  db_options.listeners.push_back(std::make_shared<ResumeAtNextWrite>());
  db_options.listeners.push_back(std::make_shared<TrimAfterFlush>());
  // Read-write opens only: a read-only one (ledgerctl beside a running
  // ledgerd) must not rotate the writer's LOG.
  if (!read_only) db_options.info_log = OpenInfoLog(options.dir);
  // Point-in-time recovery: after a crash the WAL is replayed up to the first
  // torn or corrupt record, which can only be an unacknowledged tail.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  db_options.IncreaseParallelism(2);
  rocksdb::BlockBasedTableOptions table;
  // Bloom filters make the idempotency lookup of a new event_id (a miss) cheap.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Most idempotency lookups are misses on recent data; a whole-key bloom
  // filter on the memtable answers them without walking the skiplist.
  db_options.memtable_whole_key_filtering = true;
  db_options.memtable_prefix_bloom_size_ratio = 0.1;
  // No compression where data is young: every flush writes L0 and the first
  // compaction rewrites it into L1 soon after, and compressing both cost the
  // background threads a tenth of live ingest's CPU on a 2-core machine.
  // Older levels, where the bytes stay, keep RocksDB's default.
  db_options.compression_per_level.assign(static_cast<size_t>(db_options.num_levels),
                                          db_options.compression);
  db_options.compression_per_level[0] = rocksdb::kNoCompression;
  db_options.compression_per_level[1] = rocksdb::kNoCompression;
  return db_options;
}

// Checks the on-disk format: marks a new, empty database as a ledger (when
// writable), upgrades format 1 (or, read-only, reads it as it is: sets
// `*legacy_format`), and refuses any other database or format.
Status CheckFormat(rocksdb::DB* db, const Options& options, bool read_only, bool* legacy_format) {
  std::string format_value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), format::kMetaFormat, &format_value);
  if (s.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    if (it->Valid()) {
      return Status(Code::kCorruption, options.dir + " is a RocksDB database but not a ledger");
    }
    if (!read_only) {
      rocksdb::WriteOptions wo;
      wo.sync = true;
      s = db->Put(wo, format::kMetaFormat, format::kFormatVersion);
      if (!s.ok()) return FromRocks(s, "initialising ledger");
    }
  } else if (!s.ok()) {
    return FromRocks(s, "reading ledger format");
  } else if (format_value == format::kFormatVersion1) {
    if (read_only) {
      // Read-only opens cannot upgrade, and need not: they read format 1's
      // keys as they are (FindCommitted, ListRejected).
      *legacy_format = true;
    } else if (Status upgraded = UpgradeFromV1(db, options.rejected_per_org_max); !upgraded.ok()) {
      return Status(upgraded.code(), "upgrading " + options.dir + " from " +
                                         std::string(format::kFormatVersion1) +
                                         " (the next open resumes it): " + upgraded.message());
    }
  } else if (format_value != format::kFormatVersion) {
    return Status(Code::kCorruption, options.dir + " holds ledger format \"" + format_value +
                                         "\", this build reads \"" +
                                         std::string(format::kFormatVersion) + "\"");
  }
  return Status::Ok();
}

// Recovers the head and its time from the last record (genesis and 0 when
// there is none), and the next rejected id from the last rejected entry
// (unchanged when none). Times never go back across a restart: with given
// times (a shard's), a replay anywhere then records what the first run did.
Status RecoverHead(rocksdb::DB* db, Head* head, int64_t* recorded_at, uint64_t* next_rejected_id) {
  *head = Head{Sequence{0}, GenesisHash()};
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(format::RecordKey(std::numeric_limits<uint64_t>::max()));
  if (it->Valid() && !it->key().empty() && it->key()[0] == format::kRecordPrefix) {
    Record record;
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status(Code::kCorruption, "the last ledger record is undecodable");
    }
    *head = Head{Sequence{record.sequence()}, record.hash()};
    *recorded_at = record.recorded_at_micros();
  }
  it->SeekForPrev(format::RejectedKey(std::numeric_limits<uint64_t>::max()));
  if (it->Valid() && !it->key().empty() && it->key()[0] == format::kRejectedPrefix &&
      it->key().size() == 9) {
    *next_rejected_id = format::GetBe64(std::string_view(it->key().data() + 1, 8)) + 1;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "recovering ledger head");
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Ledger>> Ledger::Open(const Options& options) {
  bool read_only = options.mode == OpenMode::kReadOnly;
  RETURN_IF_ERROR(CheckLedgerDirectory(options, read_only));
  rocksdb::DB* raw = nullptr;
  rocksdb::Options db_options = DbOptions(options, read_only);
  rocksdb::Status s = read_only ? rocksdb::DB::OpenForReadOnly(db_options, options.dir, &raw)
                                : rocksdb::DB::Open(db_options, options.dir, &raw);
  if (!s.ok()) return FromRocks(s, "opening ledger in " + options.dir);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->db.reset(raw);
  RETURN_IF_ERROR(CheckFormat(raw, options, read_only, &impl->legacy_format));

  Head head;
  RETURN_IF_ERROR(RecoverHead(raw, &head, &impl->last_recorded_at, &impl->next_rejected_id));
  if (!read_only) RETURN_IF_ERROR(impl->LoadBuckets());
  impl->committed_head = head;
  impl->writer_head = head;
  if (!read_only) {
    Impl* p = impl.get();
    impl->writer = std::thread([p] { p->WriterLoop(); });
  }
  return std::unique_ptr<Ledger>(new Ledger(std::move(impl)));
}

void Ledger::SetGate(Gate* gate) { impl_->gate = gate; }

void Ledger::AppendAsync(AppendRequest request, std::function<void(AppendResult)> done,
                         WhenQueueFull when_full) {
  if (impl_->options.mode == OpenMode::kReadOnly) {
    AppendResult res;
    res.status = Status(Code::kUnavailable, "the ledger is open read-only");
    done(std::move(res));
    return;
  }
  std::vector<Impl::Hashed> hashed(request.entries.size());
  for (size_t i = 0; i < request.entries.size(); ++i) {
    if (!request.entries[i].event) continue;
    hashed[i].bytes = events::CanonicalBytes(request.entries[i].event->envelope);
    hashed[i].digest = Digest(hashed[i].bytes);
  }
  {
    std::unique_lock<std::mutex> lock(impl_->queue_mu);
    if (when_full == WhenQueueFull::kRefuse && impl_->queue.size() >= kAppendQueueRequestsMax) {
      lock.unlock();
      AppendResult res;
      res.status = Status(Code::kOverloaded, "the ledger's append queue is full; retry shortly");
      done(std::move(res));
      return;
    }
    impl_->space_cv.wait(lock, [&] { return impl_->queue.size() < kAppendQueueRequestsMax; });
    impl_->queue.push_back(Impl::Pending{std::move(request), std::move(hashed), std::move(done)});
  }
  impl_->queue_cv.notify_one();
}

AppendResult Ledger::Append(AppendRequest request) {
  std::promise<AppendResult> promise;
  auto future = promise.get_future();
  AppendAsync(std::move(request), [&promise](AppendResult r) { promise.set_value(std::move(r)); });
  return future.get();
}

Head Ledger::head() const {
  std::lock_guard<std::mutex> lock(impl_->head_mu);
  return impl_->committed_head;
}

Status Ledger::Scan(Sequence after, size_t limit,
                    const std::function<bool(const Record&)>& visit) const {
  rocksdb::ReadOptions ro;
  std::string upper(1, format::kRecordPrefix + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro));
  size_t n = 0;
  Record record;
  for (it->Seek(format::RecordKey(after.value + 1)); it->Valid(); it->Next()) {
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status(Code::kCorruption, "undecodable ledger record");
    }
    if (!visit(record)) break;
    if (limit != 0 && ++n >= limit) break;
  }
  return FromRocks(it->status(), "scanning the ledger");
}

Status Ledger::ScanOrg(const std::string& org, Sequence after, Sequence upto, size_t limit,
                       const std::function<bool(const Record&)>& visit) const {
  std::string prefix(1, format::kOrgPrefix);
  prefix += org;
  prefix.push_back('\0');
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  size_t n = 0;
  Record record;
  std::string bytes;
  for (it->Seek(format::OrgKey(org, after.value + 1)); it->Valid() && HasPrefix(it->key(), prefix);
       it->Next()) {
    uint64_t seq = format::GetBe64(std::string_view(it->key().data() + prefix.size(), 8));
    if (seq > upto.value) break;
    rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), format::RecordKey(seq), &bytes);
    if (!s.ok()) return FromRocks(s, "reading record " + std::to_string(seq) + " of org " + org);
    if (!record.ParseFromString(bytes)) return Status(Code::kCorruption, "undecodable record");
    if (!visit(record)) break;
    if (limit != 0 && ++n >= limit) break;
  }
  return FromRocks(it->status(), "scanning the org index");
}

Result<std::optional<StoredEvent>> Ledger::FindEvent(EventKey key) const {
  return impl_->FindCommitted(key);
}

Result<VerifyReport> Ledger::Verify() const {
  VerifyReport report;
  std::string prev = GenesisHash();
  uint64_t expected = 1;
  Status scan = Scan(Sequence{0}, 0, [&](const Record& r) {
    std::string problem;
    if (r.sequence() != expected) {
      problem = "expected sequence " + std::to_string(expected) + ", found " +
                std::to_string(r.sequence()) + " (a record is missing)";
    } else if (r.prev_hash() != prev) {
      problem = "prev_hash does not match the hash of record " + std::to_string(expected - 1);
    } else if (ChainHash(prev, r.sequence(), r.recorded_at_micros(), r.event()) != r.hash()) {
      problem = "hash does not match the record's content";
    }
    if (!problem.empty()) {
      report.ok = false;
      report.first_bad = Sequence{expected};
      report.problem = problem;
      return false;
    }
    prev = r.hash();
    report.events++;
    report.head = Head{Sequence{r.sequence()}, r.hash()};
    ++expected;
    return true;
  });
  if (!scan.ok()) {
    if (scan.code() != Code::kCorruption) return scan;
    report.ok = false;
    report.first_bad = Sequence{expected};
    report.problem = scan.message();
    return report;
  }
  if (report.ok) {
    if (report.head.hash.empty()) report.head.hash = GenesisHash();
    std::string head_value;
    rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), format::kMetaHead, &head_value);
    if (s.ok() && head_value.size() == 8 + format::kHashBytes) {
      uint64_t seq = format::GetBe64(head_value);
      if (seq != report.head.sequence.value || head_value.substr(8) != report.head.hash) {
        report.ok = false;
        report.first_bad = Sequence{report.head.sequence.value + 1};
        report.problem = "the ledger ends at " + std::to_string(report.head.sequence.value) +
                         " but its head says " + std::to_string(seq) +
                         " (records were removed from the tail)";
      }
    } else if (!s.IsNotFound() && !s.ok()) {
      return FromRocks(s, "reading the ledger head");
    }
  }
  return report;
}

Result<std::optional<int64_t>> Ledger::KafkaNextOffset(const std::string& topic,
                                                       int32_t partition) const {
  std::string value;
  rocksdb::Status s =
      impl_->db->Get(rocksdb::ReadOptions(), format::OffsetKey(topic, partition), &value);
  if (s.IsNotFound()) return std::optional<int64_t>();
  if (!s.ok()) return FromRocks(s, "reading a Kafka offset");
  if (value.size() != 8) return Status(Code::kCorruption, "bad Kafka offset entry");
  return std::optional<int64_t>(static_cast<int64_t>(format::GetBe64(value)));
}

Result<std::vector<RejectedRecord>> Ledger::ListRejected(uint64_t after_id, size_t limit) const {
  std::vector<RejectedRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(format::RejectedKey(after_id + 1));
       it->Valid() && !it->key().empty() && it->key()[0] == format::kRejectedPrefix; it->Next()) {
    RejectedRecord rec;
    if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status(Code::kCorruption, "undecodable rejected record");
    }
    out.push_back(std::move(rec));
    if (limit != 0 && out.size() >= limit) break;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing rejected messages");
  return out;
}

Result<RejectedPage> Ledger::ListRejected(const RejectedQuery& query) const {
  RejectedPage page;
  size_t bytes = 0;
  // Whether the page is full; checked before adding the next record, so
  // next_after is set only when there is one.
  auto full = [&] {
    return !page.records.empty() &&
           ((query.limit != 0 && page.records.size() >= query.limit) || bytes >= query.bytes_max);
  };
  auto add = [&](RejectedRecord rec) {
    bytes += rec.ByteSizeLong();
    page.records.push_back(std::move(rec));
  };
  // One snapshot, so that the org index and the records it names agree.
  rocksdb::ManagedSnapshot snapshot(impl_->db.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  const bool by_org = query.org && !impl_->legacy_format;
  std::string prefix =
      by_org ? format::RejectedOrgPrefix(*query.org) : std::string(1, format::kRejectedPrefix);
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro));
  it->Seek(by_org ? format::RejectedOrgKey(*query.org, query.after_id + 1)
                  : format::RejectedKey(query.after_id + 1));
  for (; it->Valid() && HasPrefix(it->key(), prefix); it->Next()) {
    RejectedRecord rec;
    if (by_org) {
      uint64_t id = format::GetBe64(std::string_view(it->key().data() + prefix.size(), 8));
      std::string value;
      rocksdb::Status s = impl_->db->Get(ro, format::RejectedKey(id), &value);
      if (!s.ok()) return FromRocks(s, "reading rejected message " + std::to_string(id));
      if (!rec.ParseFromString(value))
        return Status(Code::kCorruption, "undecodable rejected record");
    } else {
      if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return Status(Code::kCorruption, "undecodable rejected record");
      }
      // A read-only open of format 1 has no org index: filter (no service
      // lists rejections there; ledgerd's open upgrades first).
      if (query.org && rec.org_id() != *query.org) continue;
    }
    if (full()) {
      page.next_after = page.records.back().id();
      break;
    }
    add(std::move(rec));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing rejected messages");
  return page;
}

uint64_t Ledger::rejected_dropped() const { return impl_->dropped.load(); }

Result<std::optional<RejectedRecord>> Ledger::GetRejected(uint64_t id) const {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), format::RejectedKey(id), &value);
  if (s.IsNotFound()) return std::optional<RejectedRecord>();
  if (!s.ok()) return FromRocks(s, "reading a rejected message");
  RejectedRecord rec;
  if (!rec.ParseFromString(value)) return Status(Code::kCorruption, "undecodable rejected record");
  return std::optional<RejectedRecord>(std::move(rec));
}

rocksdb::DB* Ledger::db() const { return impl_->db.get(); }

}  // namespace billing::ledger
