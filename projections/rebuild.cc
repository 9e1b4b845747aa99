#include "projections/rebuild.h"

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ledger/format.h"
#include "ledger/rocks_status.h"
#include "projections/decider.h"
#include "projections/keys.h"
#include "projections/store.h"

namespace billing::projections {

namespace {

// Logged batches waiting for the rebuild's writer thread: two keep both
// cores busy. With the one being filled and the one being added up, at most
// four logs (~120 MiB) are alive.
constexpr size_t kRebuildQueueBatches = 2;
// Memtable size while rebuilding (RocksDB's default is 64 MiB): half as many
// L0 files (a 10 M-event history leaves 8, so no wait for their compaction)
// for up to twice this much memory during the rebuild.
constexpr size_t kRebuildWriteBufferBytes = size_t{128} << 20;
// How often a rebuild that left many L0 files checks the compaction it waits
// for (seconds at 10 M events): often enough to add little to it.
constexpr std::chrono::milliseconds kRebuildCompactionPoll{20};

// RocksDB set for a bulk load while the rebuild writes, as its own advice
// goes. Compactions paused: compacting meanwhile would merge each new table
// file into the same key range over and over (every batch spans every org's
// current month); resuming compacts once, in the background. Larger
// memtables (kRebuildWriteBufferBytes): half as many flushes and L0 files,
// and more operands of a key merged in memory.
class BulkLoad {
 public:
  explicit BulkLoad(rocksdb::DB* db) : db_(db), before_(db->GetOptions()) {
    set_ = db_->SetOptions({{"disable_auto_compactions", "true"},
                            {"write_buffer_size", std::to_string(kRebuildWriteBufferBytes)}})
               .ok();
  }
  ~BulkLoad() { (void)End(); }
  // Restores the options the database had; compactions start again.
  Status End() {
    if (!set_) return Status::Ok();
    rocksdb::Status s = db_->SetOptions(
        {{"disable_auto_compactions", before_.disable_auto_compactions ? "true" : "false"},
         {"write_buffer_size", std::to_string(before_.write_buffer_size)}});
    if (!s.ok()) return ledger::FromRocks(s, "restoring options after the rebuild");
    set_ = false;
    return Status::Ok();
  }

 private:
  rocksdb::DB* db_;
  const rocksdb::Options before_;
  bool set_ = false;
};

// Every flush of a rebuild is an L0 file. Past RocksDB's slowdown trigger the
// first appends after it would be throttled, or stopped, until compaction
// caught up; so a rebuild that left half as many waits for the compaction
// that resuming started to bring them down (a 10 M-event history leaves 8,
// under that; the compaction takes them all at once).
Status WaitForL0Compaction(rocksdb::DB* db) {
  const rocksdb::Options now = db->GetOptions();
  const uint64_t l0_limit = static_cast<uint64_t>(now.level0_slowdown_writes_trigger) / 2;
  uint64_t errors_before = 0;
  db->GetIntProperty("rocksdb.background-errors", &errors_before);
  while (!now.disable_auto_compactions) {
    std::string property;  // a string property, not an int one
    uint64_t l0_files = 0, background_errors = 0;
    if (!db->GetProperty("rocksdb.num-files-at-level0", &property)) break;
    std::from_chars(property.data(), property.data() + property.size(), l0_files);
    if (l0_files < l0_limit) break;
    if (db->GetIntProperty("rocksdb.background-errors", &background_errors) &&
        background_errors > errors_before) {
      return Status(Code::kUnavailable, "compacting read models failed; see the RocksDB LOG");
    }
    std::this_thread::sleep_for(kRebuildCompactionPoll);
  }
  return Status::Ok();
}

// Deletes the version marker and every read-model key, durably, before
// anything is rebuilt.
Status ClearReadModels(rocksdb::DB* db) {
  // The version marker goes first, so a rebuild cut short is redone at the next start.
  rocksdb::WriteBatch reset;
  reset.Delete(keys::kMetaVersion);
  std::string begin(1, ledger::format::kProjectionPrefix);
  std::string end(1, ledger::format::kProjectionPrefix + 1);
  reset.DeleteRange(begin, end);
  // Synced: dropping files below is in the MANIFEST at once, so the marker's
  // deletion must be durable first, or a power cut could leave a marker
  // vouching for read models with whole files missing.
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db->Write(wo, &reset);
  if (!s.ok()) return ledger::FromRocks(s, "clearing read models");
  // The range tombstone hides the old read models; dropping the table files
  // that hold nothing else spares the compactions of this rebuild reading
  // and discarding them. It ignores snapshots: hence RebuildReadModels'
  // precondition that nothing reads the read models meanwhile (rebuild.h).
  rocksdb::Slice begin_slice(begin), end_slice(end);
  s = rocksdb::DeleteFilesInRange(db, db->DefaultColumnFamily(), &begin_slice, &end_slice,
                                  /*include_end=*/false);
  if (!s.ok()) return ledger::FromRocks(s, "dropping old read models");
  return Status::Ok();
}

// Deciding (the caller's thread) overlaps with adding up, ordering, encoding
// and writing the postings (the writer thread this starts): the caller logs
// each batch's postings and hands the log over, and gets back an emptied
// one. The writes skip the WAL: until the version marker is written after a
// flush, a crash only means the rebuild runs again.
class PostingPipeline {
 public:
  explicit PostingPipeline(rocksdb::DB* db) : db_(db) {
    wo_.disableWAL = true;
    wo_.memtable_insert_hint_per_batch = true;
    writer_ = std::thread([this] { WriterLoop(); });
  }
  ~PostingPipeline() { (void)Finish(); }
  PostingPipeline(const PostingPipeline&) = delete;
  PostingPipeline& operator=(const PostingPipeline&) = delete;

  // Queues `*log` for writing (waiting while kRebuildQueueBatches are queued)
  // and leaves an empty log in its place. kUnavailable, `*log` untouched, once
  // a write has failed.
  Status HandOver(std::unique_ptr<PostingLog>* log) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() < kRebuildQueueBatches; });
    if (!write_status_.ok()) return ledger::FromRocks(write_status_, "writing read models");
    queue_.push_back(std::move(*log));
    cv_.notify_all();
    if (idle_.empty()) {
      *log = std::make_unique<PostingLog>();
    } else {
      *log = std::move(idle_.back());
      idle_.pop_back();
    }
    return Status::Ok();
  }

  // Waits until every log handed over is written (or skipped after a failed
  // write); the first write failure, as kUnavailable.
  Status Finish() {
    if (!writer_.joinable()) return written_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      producer_done_ = true;
    }
    cv_.notify_all();
    writer_.join();
    if (!write_status_.ok()) written_ = ledger::FromRocks(write_status_, "writing read models");
    return written_;
  }

 private:
  void WriterLoop() {
    CombiningSink sums;
    rocksdb::WriteBatch batch;  // cleared, not freed, between writes
    for (bool last = false, failed = false; !last;) {
      std::unique_ptr<PostingLog> log;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return producer_done_ || !queue_.empty(); });
        if (!queue_.empty()) {
          log = std::move(queue_.front());
          queue_.pop_front();
        }
        last = producer_done_ && queue_.empty();
        failed = !write_status_.ok();
      }
      if (!log) continue;
      cv_.notify_all();  // room in the queue
      if (!failed) log->ReplayInto(sums);
      {
        std::lock_guard<std::mutex> lock(mu_);
        idle_.push_back(std::move(log));
      }
      cv_.notify_all();      // a log to fill
      if (failed) continue;  // the deciding thread stops at its next hand-over
      batch.Clear();
      sums.FlushTo(&batch);
      rocksdb::Status ws = db_->Write(wo_, &batch);
      if (!ws.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (write_status_.ok()) write_status_ = ws;
      }
    }
  }

  rocksdb::DB* db_;
  rocksdb::WriteOptions wo_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<PostingLog>> queue_;  // at most kRebuildQueueBatches
  std::vector<std::unique_ptr<PostingLog>> idle_;  // replayed, ready to fill again
  bool producer_done_ = false;
  rocksdb::Status write_status_;  // the first failed write; guarded by mu_
  std::thread writer_;
  Status written_;  // Finish's answer, once the writer is joined
};

// Redecides every record of `ledger` in order, handing the postings and the
// changed org states to `pipeline` every `batch_events` records and at the
// end. The first failure: the scan's, the decider's or a hand-over's.
Status ReplayAll(const ledger::Ledger& ledger, size_t batch_events, const RocksView& empty_view,
                 PostingPipeline& pipeline) {
  Decider decider;
  decider.set_explain_index(ExplainIndex::kWrite);  // what the live gate writes too
  auto sink = std::make_unique<PostingLog>();
  EventLookup lookup = [&ledger](ledger::EventKey key) { return ledger.FindEvent(key); };
  Status failure;
  size_t in_batch = 0;
  auto hand_over = [&]() -> Status {
    decider.FlushFigures(*sink);
    for (const std::string& org : decider.TakeDirty()) {
      sink->Put(keys::StateKey(org), decider.Find(org)->ToProto().SerializeAsString());
    }
    in_batch = 0;
    return pipeline.HandOver(&sink);
  };
  Status scan = ledger.Scan(ledger::Sequence{0}, 0, [&](const ledger::Record& record) {
    failure = decider.Redecide(record, lookup, *sink, empty_view);
    if (!failure.ok()) return false;
    if (++in_batch >= batch_events) {
      failure = hand_over();
      if (!failure.ok()) return false;
    }
    return true;
  });
  if (!scan.ok()) return scan;
  if (!failure.ok()) return failure;
  return hand_over();
}

// Makes the rebuilt read models durable, lets compaction resume and marks
// them built.
Status MarkBuilt(rocksdb::DB* db, BulkLoad& bulk_load) {
  // The read models were written without the WAL: make them durable in
  // table files before declaring them built.
  rocksdb::Status s = db->Flush(rocksdb::FlushOptions());
  if (!s.ok()) return ledger::FromRocks(s, "flushing read models");
  if (Status ended = bulk_load.End(); !ended.ok()) return ended;
  if (Status compacted = WaitForL0Compaction(db); !compacted.ok()) return compacted;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db->Put(wo, keys::kMetaVersion, keys::kProjectionVersion);
  if (!s.ok()) return ledger::FromRocks(s, "marking read models built");
  return Status::Ok();
}

}  // namespace

Status RebuildReadModels(const ledger::Ledger& ledger, size_t batch_events) {
  rocksdb::DB* db = ledger.db();
  if (Status cleared = ClearReadModels(db); !cleared.ok()) return cleared;
  BulkLoad bulk_load(db);
  RocksView empty_view(db);  // voided markers of this rebuild are all still pending
  PostingPipeline pipeline(db);
  Status replayed = ReplayAll(ledger, std::max<size_t>(1, batch_events), empty_view, pipeline);
  Status written = pipeline.Finish();
  if (!replayed.ok()) return replayed;
  if (Status read = empty_view.status(); !read.ok()) return read;
  if (!written.ok()) return written;
  return MarkBuilt(db, bulk_load);
}

}  // namespace billing::projections
