#include "projections/store.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace billing::projections {

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
  auto it = map_.find(key);
  if (it == map_.end()) {
    map_.emplace(std::string(key), std::string(value));
  } else {
    it->second.assign(value);
  }
}

std::optional<std::string> MemoryStore::Get(const std::string& key) const {
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

void MemoryStore::Scan(std::string_view prefix,
                       const std::function<bool(std::string_view, std::string_view)>& visit) const {
  for (auto it = map_.lower_bound(prefix); it != map_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    if (!visit(it->first, it->second)) break;
  }
}

void CombiningSink::Merge(std::string_view key, const Agg& delta) {
  auto it = merges_.find(key);
  if (it == merges_.end()) it = merges_.emplace(std::string(key), Agg()).first;
  it->second.Add(delta);
}

void CombiningSink::Put(std::string_view key, std::string_view value) {
  auto it = puts_.find(key);
  if (it == puts_.end()) {
    puts_.emplace(std::string(key), std::string(value));
  } else {
    it->second.assign(value);
  }
}

void CombiningSink::FlushTo(rocksdb::WriteBatch* batch) {
  // Key order lets the memtable insert each key next to the previous one
  // (WriteOptions::memtable_insert_hint_per_batch) instead of searching.
  std::vector<const std::pair<const std::string, Agg>*> sorted;
  sorted.reserve(merges_.size());
  for (const auto& entry : merges_) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* entry : sorted) batch->Merge(entry->first, EncodeAgg(entry->second));
  for (const auto& [key, value] : puts_) batch->Put(key, value);
  Clear();
}

void CombiningSink::Clear() {
  merges_.clear();
  puts_.clear();
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
    Fail(Status(s.IsCorruption() ? Code::kCorruption : Code::kUnavailable,
                "reading the read models: " + s.ToString()));
    return std::nullopt;
  }
  return value;
}

void RocksView::Scan(std::string_view prefix,
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
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
    if (!visit(std::string_view(it->key().data(), it->key().size()),
               std::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  if (!it->status().ok()) {
    Fail(Status(it->status().IsCorruption() ? Code::kCorruption : Code::kUnavailable,
                "scanning the read models: " + it->status().ToString()));
  }
}

Status RocksView::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void RocksView::Fail(Status status) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (error_.ok()) error_ = std::move(status);
}

}  // namespace billing::projections
