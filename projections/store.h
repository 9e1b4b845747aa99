// Stores: where the read models write postings and read answers from.
//
// The same decision and query code runs against RocksDB (the live service,
// where writes join the ledger's WriteBatch) and against memory (answers
// `as_of` a past sequence, tests). `Sink` takes writes, `View` serves reads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "events/status.h"
#include "projections/agg.h"

namespace rocksdb {
class DB;
class Snapshot;
class WriteBatch;
}  // namespace rocksdb

namespace billing::projections {

// The views passed in are valid only during the call: a sink that keeps a
// key or value copies it (callers build keys in reused buffers).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void Merge(std::string_view key, const Agg& delta) = 0;
  virtual void Put(std::string_view key, std::string_view value) = 0;
  // Adds the explain-index entry of the event recorded as `sequence` to the
  // aggregate whose entries start with `index_prefix` (keys.h ExplainPrefix),
  // in ledger order (index_block.h). This default puts a block of that one
  // entry; CombiningSink gathers a write's entries of one aggregate.
  virtual void Index(std::string_view index_prefix, uint64_t sequence,
                     std::string_view contribution);
};

// Reads report storage errors the way RocksDB's iterators do: a failed read
// looks like a missing key or an early end, and status() keeps the first
// failure. Code that reads a view checks status() before trusting what it
// computed: an answer with a key silently missing would drop money from a bill.
class View {
 public:
  virtual ~View() = default;
  virtual std::optional<std::string> Get(const std::string& key) const = 0;
  // Visits keys starting with `prefix` in order until `visit` returns false.
  virtual void Scan(
      std::string_view prefix,
      const std::function<bool(std::string_view key, std::string_view value)>& visit) const = 0;
  // The same from the first key >= `from` on (a page after a key is one
  // seek). This default scans the prefix from its start and skips.
  virtual void ScanFrom(
      std::string_view prefix, std::string_view from,
      const std::function<bool(std::string_view key, std::string_view value)>& visit) const;
  // OK, or the first read that failed (kUnavailable, kCorruption).
  Status status() const;
  // Records a failure found while reading, by the view or by code reading a
  // value it cannot decode; status() then reports the first one.
  void Fail(Status status) const;

 private:
  mutable std::mutex mu_;  // a view may serve several readers
  mutable Status error_;   // guarded by mu_
};

// Everything in one ordered map; merges are applied at once.
class MemoryStore : public Sink, public View {
 public:
  void Merge(std::string_view key, const Agg& delta) override;
  void Put(std::string_view key, std::string_view value) override;
  std::optional<std::string> Get(const std::string& key) const override;
  void Scan(std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override;
  void ScanFrom(
      std::string_view prefix, std::string_view from,
      const std::function<bool(std::string_view, std::string_view)>& visit) const override;
  size_t size() const { return map_.size(); }

 private:
  std::map<std::string, std::string, std::less<>> map_;
};

// Buffers writes, adding up deltas to the same key, and hands them to a
// WriteBatch as one merge operand per key. A month's postings share few keys,
// so this turns millions of merges into thousands. Explain-index entries of
// one aggregate go into one block per write (index_block.h), split every
// kIndexBlockEntriesMax entries.
class CombiningSink : public Sink {
 public:
  CombiningSink();
  ~CombiningSink() override;
  CombiningSink(const CombiningSink&) = delete;
  CombiningSink& operator=(const CombiningSink&) = delete;

  void Merge(std::string_view key, const Agg& delta) override;
  void Put(std::string_view key, std::string_view value) override;
  void Index(std::string_view index_prefix, uint64_t sequence,
             std::string_view contribution) override;
  size_t size() const;
  // Visits every buffered key (merged or put; of the index blocks only those
  // already full, the others get their keys at the flush) that starts with
  // `prefix`, in
  // no particular order: what the group being written touched that a View of
  // the database cannot see yet.
  void VisitKeys(std::string_view prefix,
                 const std::function<void(std::string_view key)>& visit) const;
  // Moves everything into `batch`, in key order, and empties the buffer.
  void FlushTo(rocksdb::WriteBatch* batch);
  void Clear();

 private:
  struct Buffer;  // store.cc: keeps the hash map's templates out of this header
  std::unique_ptr<Buffer> buffer_;
};

// Records writes, in order, in one buffer, to be applied elsewhere: a
// rebuild's deciding thread logs its postings and its writing thread adds
// them up, so the two cores share the work.
class PostingLog : public Sink {
 public:
  void Merge(std::string_view key, const Agg& delta) override;
  void Put(std::string_view key, std::string_view value) override;
  void Index(std::string_view index_prefix, uint64_t sequence,
             std::string_view contribution) override;
  // Applies every write, in order, to `sink`, then empties the log.
  void ReplayInto(Sink& sink);
  size_t bytes() const { return log_.size(); }

 private:
  void Append(char kind, std::string_view key);
  std::string log_;  // per write: kind, key size, key, value size, value
};

// Reads RocksDB at one snapshot, so a multi-key answer is consistent.
class RocksView : public View {
 public:
  explicit RocksView(rocksdb::DB* db);
  ~RocksView() override;
  RocksView(const RocksView&) = delete;
  RocksView& operator=(const RocksView&) = delete;
  std::optional<std::string> Get(const std::string& key) const override;
  void Scan(std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override;
  void ScanFrom(
      std::string_view prefix, std::string_view from,
      const std::function<bool(std::string_view, std::string_view)>& visit) const override;

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
};

}  // namespace billing::projections
