// The write side of the read models on their own: CombiningSink's adding up
// and flushing and PostingLog's replay (each against a MemoryStore fed the
// same postings one by one), and
// the Agg merge operator on a real RocksDB, where operands meet in memtables,
// flushes and compactions.
#include "projections/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "projections/agg.h"
#include "tests/testing/temp_dir.h"

namespace billing::projections {
namespace {

using billing::testing::TempDir;

// What a WriteBatch holds, in order.
struct Recorded : rocksdb::WriteBatch::Handler {
  std::vector<std::pair<std::string, std::string>> merges;
  std::map<std::string, std::string> puts;
  rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
    merges.emplace_back(key.ToString(), value.ToString());
    return rocksdb::Status::OK();
  }
  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    puts[key.ToString()] = value.ToString();
    return rocksdb::Status::OK();
  }
};

Agg Decoded(const std::string& bytes) {
  Agg agg;
  EXPECT_TRUE(DecodeAgg(bytes, &agg));
  return agg;
}

void ExpectSameAgg(const Agg& want, const Agg& got, const std::string& key) {
  EXPECT_EQ(want.amount, got.amount) << key;
  EXPECT_EQ(want.quantity, got.quantity) << key;
  EXPECT_EQ(want.unit_state, got.unit_state) << key;
  EXPECT_EQ(want.unit, got.unit) << key;
}

// Random postings over a few hundred keys, some of them longer than the
// sink's key blocks, flushed several times: every flush holds one operand per
// key in key order, and the operands add up to what the MemoryStore holds.
TEST(CombiningSinkTest, AddsUpEachKeyAndFlushesOneOperandPerKeyInOrder) {
  std::mt19937_64 rng(20261122);
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back("pa" + std::to_string(rng() % 100000));
  keys.push_back(std::string(3 << 20, 'x'));  // longer than a key block
  keys.push_back(std::string((1 << 20) - 1, 'y'));
  keys.push_back("");
  const char* units[] = {"GB", "vCPU-hours", ""};

  CombiningSink sink;
  MemoryStore want;
  std::map<std::string, Agg> flushed;  // operands of every flush, added up
  for (int flush = 0; flush < 5; ++flush) {
    for (int i = 0; i < 4000; ++i) {
      const std::string& key = keys[rng() % keys.size()];
      Sum amount = static_cast<Sum>(rng() % 2000000) - 1000000;
      std::string unit = units[rng() % 3];
      Agg delta =
          unit.empty() ? AmountAgg(amount) : UsageAgg(amount, static_cast<Sum>(rng() % 1000), unit);
      sink.Merge(key, delta);
      want.Merge(key, delta);
    }
    sink.Put("ps" + std::to_string(flush % 2), "state " + std::to_string(flush));
    want.Put("ps" + std::to_string(flush % 2), "state " + std::to_string(flush));
    rocksdb::WriteBatch batch;
    sink.FlushTo(&batch);
    EXPECT_EQ(sink.size(), 0u);
    Recorded recorded;
    ASSERT_TRUE(batch.Iterate(&recorded).ok());
    for (size_t i = 1; i < recorded.merges.size(); ++i) {
      ASSERT_LT(recorded.merges[i - 1].first, recorded.merges[i].first)
          << "merges out of order or repeated";
    }
    for (const auto& [key, value] : recorded.merges) flushed[key].Add(Decoded(value));
    for (const auto& [key, value] : recorded.puts) EXPECT_EQ(value, *want.Get(key));
  }
  size_t merged_keys = 0;
  want.Scan("", [&](std::string_view key, std::string_view value) {
    if (key.starts_with("ps")) return true;  // the puts
    ++merged_keys;
    auto it = flushed.find(std::string(key));
    if (it == flushed.end()) {
      ADD_FAILURE() << "a key is missing from the flushes";
    } else {
      ExpectSameAgg(Decoded(std::string(value)), it->second, std::string(key.substr(0, 16)));
    }
    return true;
  });
  EXPECT_EQ(merged_keys, flushed.size());
}

// A log replayed into a store leaves it exactly as the same writes made
// directly: merges added up, puts overwritten, in order, keys of any length.
TEST(PostingLogTest, ReplaysEveryWriteInOrder) {
  std::mt19937_64 rng(11);
  PostingLog log;
  MemoryStore direct;
  for (int i = 0; i < 5000; ++i) {
    std::string key = (i % 7 == 0)
                          ? "ps" + std::to_string(rng() % 5)
                          : "pa" + std::string(rng() % 300, 'k') + std::to_string(rng() % 50);
    if (key.starts_with("ps")) {
      std::string value = "state " + std::to_string(i);
      log.Put(key, value);
      direct.Put(key, value);
    } else {
      Agg delta = UsageAgg(static_cast<Sum>(rng() % 100000) - 50000, static_cast<Sum>(rng() % 10),
                           rng() % 2 ? "GB" : "GiB-month of standard storage");
      log.Merge(key, delta);
      direct.Merge(key, delta);
    }
  }
  MemoryStore replayed;
  EXPECT_GT(log.bytes(), 0u);
  log.ReplayInto(replayed);
  EXPECT_EQ(log.bytes(), 0u);
  ASSERT_EQ(replayed.size(), direct.size());
  direct.Scan("", [&](std::string_view key, std::string_view value) {
    EXPECT_EQ(replayed.Get(std::string(key)), std::string(value)) << key.substr(0, 20);
    return true;
  });
}

// Operands written in separate batches and flushed to separate table files,
// compacted, added to again and compacted again: the value read back is their
// sum at every stage, and an
// operand that is not an Agg makes the read fail instead of vanishing.
TEST(AggMergeOperatorTest, SumsOperandsAcrossMemtablesFlushesAndCompactions) {
  TempDir dir;
  rocksdb::Options options;
  options.create_if_missing = true;
  options.merge_operator = NewAggMergeOperator();
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir.path(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);

  std::mt19937_64 rng(7);
  std::map<std::string, Agg> want;
  auto read = [&](const std::string& key) {
    std::string value;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), key, &value);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return Decoded(value);
  };
  auto check_all = [&](const char* stage) {
    for (const auto& [key, agg] : want) ExpectSameAgg(agg, read(key), key + " " + stage);
  };
  for (int round = 0; round < 4; ++round) {
    rocksdb::WriteBatch batch;
    for (int i = 0; i < 200; ++i) {
      std::string key = "k" + std::to_string(rng() % 20);
      Agg delta = (rng() % 4 == 0)
                      ? UsageAgg(static_cast<Sum>(rng() % 1000), 3, round == 3 ? "TB" : "GB")
                      : AmountAgg(static_cast<Sum>(rng() % 1000000) - 500000);
      want[key].Add(delta);
      batch.Merge(key, EncodeAgg(delta));
    }
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
    check_all("in the memtable");
    ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
    check_all("after a flush");
    if (round == 1) {
      // Compacted to the last level, the sums become plain values, which
      // later operands then add to.
      ASSERT_TRUE(db->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr).ok());
      check_all("on a compacted value");
    }
  }
  ASSERT_TRUE(db->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr).ok());
  check_all("after a compaction");

  ASSERT_TRUE(db->Merge(rocksdb::WriteOptions(), "k1", "not an agg").ok());
  std::string value;
  EXPECT_FALSE(db->Get(rocksdb::ReadOptions(), "k1", &value).ok());
}

// Operands compacted above the level holding the key's value are merged
// with each other only (PartialMergeMulti); the value read back is still the
// sum of everything.
TEST(AggMergeOperatorTest, OperandsCompactedAboveTheValueAddUp) {
  TempDir dir;
  rocksdb::Options options;
  options.create_if_missing = true;
  options.disable_auto_compactions = true;
  options.merge_operator = NewAggMergeOperator();
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir.path(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  auto level_files = [&](int level) {
    std::vector<std::string> names;
    std::vector<rocksdb::LiveFileMetaData> files;
    db->GetLiveFilesMetaData(&files);
    for (const auto& f : files) {
      if (f.level == level) names.push_back(f.name);
    }
    return names;
  };

  Agg want = AmountAgg(1000);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "k", EncodeAgg(want)).ok());
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  ASSERT_TRUE(db->CompactFiles(rocksdb::CompactionOptions(), level_files(0), 3).ok());
  for (int file = 0; file < 3; ++file) {
    for (int i = 0; i < 4; ++i) {
      Agg delta = UsageAgg(file * 100 + i, 2, "GB");
      want.Add(delta);
      ASSERT_TRUE(db->Merge(rocksdb::WriteOptions(), "k", EncodeAgg(delta)).ok());
    }
    ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  }
  ASSERT_TRUE(db->CompactFiles(rocksdb::CompactionOptions(), level_files(0), 1).ok());
  ASSERT_EQ(level_files(0).size(), 0u);
  std::string value;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "k", &value).ok());
  ExpectSameAgg(want, Decoded(value), "k");
}

}  // namespace
}  // namespace billing::projections
