#include "projections/store.h"

#include <absl/container/flat_hash_map.h>
#include <absl/strings/string_view.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "ledger/format.h"
#include "ledger/rocks_status.h"
#include "projections/index_block.h"

namespace billing::projections {

namespace {

// The key of a block of `index_prefix`'s entries ending at `last_sequence`.
void BlockKey(std::string* out, std::string_view index_prefix, uint64_t last_sequence) {
  out->assign(index_prefix);
  ledger::format::PutBe64(out, last_sequence);
}

}  // namespace

void Sink::Index(std::string_view index_prefix, uint64_t sequence, std::string_view contribution) {
  std::string key, block;
  BlockKey(&key, index_prefix, sequence);
  AppendBlockEntry(&block, 0, sequence, contribution);
  Put(key, block);
}

void MemoryStore::Merge(std::string_view key, const Agg& delta) {
  auto it = map_.find(key);
  Agg sum;
  if (it == map_.end()) {
    it = map_.emplace(std::string(key), std::string()).first;
  } else {
    LEDGER_CHECK(DecodeAgg(it->second, &sum), "memory store holds a non-Agg value");
  }
  sum.Add(delta);
  it->second = EncodeAgg(sum);
}

void MemoryStore::Put(std::string_view key, std::string_view value) {
  map_.insert_or_assign(std::string(key), std::string(value));
}

std::optional<std::string> MemoryStore::Get(const std::string& key) const {
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

void MemoryStore::Scan(std::string_view prefix,
                       const std::function<bool(std::string_view, std::string_view)>& visit) const {
  ScanFrom(prefix, prefix, visit);
}

void MemoryStore::ScanFrom(
    std::string_view prefix, std::string_view from,
    const std::function<bool(std::string_view, std::string_view)>& visit) const {
  for (auto it = map_.lower_bound(std::max(prefix, from)); it != map_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    if (!visit(it->first, it->second)) break;
  }
}

namespace {

// Holds keys back to back in large blocks: a rebuild adds a new key for most
// usage events (each resource's drill-down nodes), and giving each its own
// allocation made malloc a fifth of the rebuild's time.
class KeyArena {
 public:
  absl::string_view Add(std::string_view key) {
    if (key.size() > kBlockBytes) {
      // Longer than a block: a block of its own, kept out of the reuse cycle.
      oversized_.push_back(std::make_unique_for_overwrite<char[]>(key.size()));
      std::copy(key.begin(), key.end(), oversized_.back().get());
      return absl::string_view(oversized_.back().get(), key.size());
    }
    if (current_ == blocks_.size() || key.size() > kBlockBytes - used_) {
      if (current_ < blocks_.size()) ++current_;
      if (current_ == blocks_.size())
        blocks_.push_back(std::make_unique_for_overwrite<char[]>(kBlockBytes));
      used_ = 0;
    }
    char* at = blocks_[current_].get() + used_;
    std::copy(key.begin(), key.end(), at);
    used_ += key.size();
    return absl::string_view(at, key.size());
  }
  // Forgets every key, keeping the blocks for the next batch.
  void Clear() {
    current_ = 0;
    used_ = 0;
    oversized_.clear();
  }

 private:
  // Large enough that one block holds thousands of keys; a batch's keys fill
  // a few, kept from batch to batch.
  static constexpr size_t kBlockBytes = size_t{1} << 20;
  std::vector<std::unique_ptr<char[]>> blocks_;
  std::vector<std::unique_ptr<char[]>> oversized_;
  size_t current_ = 0;  // the block being filled; blocks_.size() before the first
  size_t used_ = 0;     // bytes used in blocks_[current_]
};

}  // namespace

// The explain-index entries of one aggregate gathered so far.
struct OpenBlock {
  uint64_t last_sequence = 0;
  size_t entries = 0;
  std::string bytes;
};

// An open-addressing map keyed by views into the arena: a merge into a key
// already buffered (most of them) allocates nothing and touches one slot.
// Keyed by absl::string_view, not std::string_view: this Debian build keeps
// them distinct, and only absl's own gets absl's string hash (std::hash was
// the map's largest cost).
struct CombiningSink::Buffer {
  absl::flat_hash_map<absl::string_view, Agg> merges;
  absl::flat_hash_map<absl::string_view, std::string> puts;
  absl::flat_hash_map<absl::string_view, OpenBlock> blocks;  // by index prefix
  KeyArena keys;
  std::string block_key;  // reused
  // Puts a full or final block under its key and empties it.
  void Close(absl::string_view index_prefix, OpenBlock& block) {
    BlockKey(&block_key, std::string_view(index_prefix.data(), index_prefix.size()),
             block.last_sequence);
    absl::string_view key(block_key.data(), block_key.size());
    auto it = puts.lazy_emplace(
        key, [&](const auto& construct) { construct(keys.Add(block_key), std::string()); });
    it->second.swap(block.bytes);
    block.bytes.clear();
    block.entries = 0;
  }
};

CombiningSink::CombiningSink() : buffer_(std::make_unique<Buffer>()) {}

CombiningSink::~CombiningSink() = default;

size_t CombiningSink::size() const { return buffer_->merges.size() + buffer_->puts.size(); }

void CombiningSink::Merge(std::string_view key_view, const Agg& delta) {
  absl::string_view key(key_view.data(), key_view.size());
  // One hash and probe; the key is copied into the arena only when new.
  auto it = buffer_->merges.lazy_emplace(
      key, [&](const auto& construct) { construct(buffer_->keys.Add(key_view), Agg()); });
  it->second.Add(delta);
}

void CombiningSink::Put(std::string_view key_view, std::string_view value) {
  absl::string_view key(key_view.data(), key_view.size());
  auto it = buffer_->puts.lazy_emplace(
      key, [&](const auto& construct) { construct(buffer_->keys.Add(key_view), std::string()); });
  it->second.assign(value);
}

void CombiningSink::Index(std::string_view index_prefix, uint64_t sequence,
                          std::string_view contribution) {
  absl::string_view key(index_prefix.data(), index_prefix.size());
  auto it = buffer_->blocks.lazy_emplace(
      key, [&](const auto& construct) { construct(buffer_->keys.Add(index_prefix), OpenBlock()); });
  OpenBlock& block = it->second;
  LEDGER_CHECK(block.entries == 0 || sequence >= block.last_sequence,
               "explain-index entries must arrive in ledger order");
  AppendBlockEntry(&block.bytes, block.entries == 0 ? 0 : block.last_sequence, sequence,
                   contribution);
  block.last_sequence = sequence;
  if (++block.entries == kIndexBlockEntriesMax) buffer_->Close(it->first, block);
}

void CombiningSink::VisitKeys(std::string_view prefix,
                              const std::function<void(std::string_view)>& visit) const {
  const absl::string_view want(prefix.data(), prefix.size());
  auto starts = [&](absl::string_view key) { return key.substr(0, want.size()) == want; };
  for (const auto& entry : buffer_->merges) {
    if (starts(entry.first)) visit(std::string_view(entry.first.data(), entry.first.size()));
  }
  for (const auto& entry : buffer_->puts) {
    if (starts(entry.first)) visit(std::string_view(entry.first.data(), entry.first.size()));
  }
}

void CombiningSink::FlushTo(rocksdb::WriteBatch* batch) {
  for (auto& [index_prefix, block] : buffer_->blocks) {
    if (block.entries != 0) buffer_->Close(index_prefix, block);
  }
  // Key order lets the memtable insert each key next to the previous one
  // (WriteOptions::memtable_insert_hint_per_batch) instead of searching.
  std::vector<const std::pair<const absl::string_view, Agg>*> sorted;
  sorted.reserve(buffer_->merges.size());
  for (const auto& entry : buffer_->merges) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  std::string value;
  for (const auto* entry : sorted) {
    value.clear();
    EncodeAgg(entry->second, &value);
    batch->Merge(rocksdb::Slice(entry->first.data(), entry->first.size()), value);
  }
  // Puts in key order too: the explain index makes them most of a batch's
  // new keys, and inserting them in hash order cost the memtable a search
  // each (it was three times the rebuild's time before they were sorted).
  std::vector<const std::pair<const absl::string_view, std::string>*> sorted_puts;
  sorted_puts.reserve(buffer_->puts.size());
  for (const auto& entry : buffer_->puts) sorted_puts.push_back(&entry);
  std::sort(sorted_puts.begin(), sorted_puts.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* entry : sorted_puts) {
    batch->Put(rocksdb::Slice(entry->first.data(), entry->first.size()), entry->second);
  }
  Clear();
}

void CombiningSink::Clear() {
  // absl frees a large table on clear(); the next batch is about as large,
  // so size it at once rather than through every doubling again.
  size_t merges = buffer_->merges.size();
  buffer_->merges.clear();
  buffer_->merges.reserve(merges);
  buffer_->puts.clear();
  buffer_->blocks.clear();
  buffer_->keys.Clear();
}

namespace {

constexpr char kLoggedMerge = 'M';
constexpr char kLoggedPut = 'P';
constexpr char kLoggedIndex = 'X';  // value: be64 sequence, then the contribution

void PutSize(std::string* out, size_t size) {
  uint32_t n = static_cast<uint32_t>(size);
  out->append(reinterpret_cast<const char*>(&n), sizeof n);
}

std::string_view TakeSized(std::string_view log, size_t* at) {
  uint32_t n = 0;
  std::memcpy(&n, log.data() + *at, sizeof n);
  std::string_view part = log.substr(*at + sizeof n, n);
  *at += sizeof n + n;
  return part;
}

}  // namespace

void PostingLog::Append(char kind, std::string_view key) {
  log_.push_back(kind);
  PutSize(&log_, key.size());
  log_ += key;
}

void PostingLog::Merge(std::string_view key, const Agg& delta) {
  Append(kLoggedMerge, key);
  size_t size_at = log_.size();
  PutSize(&log_, 0);
  EncodeAgg(delta, &log_);
  uint32_t n = static_cast<uint32_t>(log_.size() - size_at - sizeof n);
  std::memcpy(log_.data() + size_at, &n, sizeof n);
}

void PostingLog::Put(std::string_view key, std::string_view value) {
  Append(kLoggedPut, key);
  PutSize(&log_, value.size());
  log_ += value;
}

void PostingLog::Index(std::string_view index_prefix, uint64_t sequence,
                       std::string_view contribution) {
  Append(kLoggedIndex, index_prefix);
  PutSize(&log_, sizeof sequence + contribution.size());
  ledger::format::PutBe64(&log_, sequence);
  log_ += contribution;
}

void PostingLog::ReplayInto(Sink& sink) {
  std::string_view log(log_);
  Agg delta;
  for (size_t at = 0; at < log.size();) {
    char kind = log[at++];
    std::string_view key = TakeSized(log, &at);
    std::string_view value = TakeSized(log, &at);
    if (kind == kLoggedPut) {
      sink.Put(key, value);
    } else if (kind == kLoggedIndex) {
      sink.Index(key, ledger::format::GetBe64(value), value.substr(sizeof(uint64_t)));
    } else {
      LEDGER_CHECK(DecodeAgg(value, &delta), "a posting log holds a non-Agg value");
      sink.Merge(key, delta);
    }
  }
  log_.clear();
}

RocksView::RocksView(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {}

RocksView::~RocksView() { db_->ReleaseSnapshot(snapshot_); }

std::optional<std::string> RocksView::Get(const std::string& key) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  std::string value;
  rocksdb::Status s = db_->Get(ro, key, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) {
    Fail(ledger::FromRocks(s, "reading the read models"));
    return std::nullopt;
  }
  return value;
}

void RocksView::Scan(std::string_view prefix,
                     const std::function<bool(std::string_view, std::string_view)>& visit) const {
  ScanFrom(prefix, prefix, visit);
}

void RocksView::ScanFrom(
    std::string_view prefix, std::string_view from,
    const std::function<bool(std::string_view, std::string_view)>& visit) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  // The smallest key above every key with this prefix: drop trailing 0xff
  // bytes, then increment the last one.
  std::string upper(prefix);
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  rocksdb::Slice upper_slice;
  if (!upper.empty()) {
    upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
    upper_slice = rocksdb::Slice(upper);
    ro.iterate_upper_bound = &upper_slice;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  const std::string_view start = std::max(prefix, from);
  for (it->Seek(rocksdb::Slice(start.data(), start.size())); it->Valid(); it->Next()) {
    if (!visit(std::string_view(it->key().data(), it->key().size()),
               std::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  if (!it->status().ok()) {
    Fail(ledger::FromRocks(it->status(), "scanning the read models"));
  }
}

void View::ScanFrom(std::string_view prefix, std::string_view from,
                    const std::function<bool(std::string_view, std::string_view)>& visit) const {
  Scan(prefix, [&](std::string_view key, std::string_view value) {
    return key < from || visit(key, value);
  });
}

Status View::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void View::Fail(Status status) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (error_.ok()) error_ = std::move(status);
}

}  // namespace billing::projections
