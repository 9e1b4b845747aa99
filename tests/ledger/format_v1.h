// Turns a ledger directory written by this build into the `billing-ledger/1`
// layout that older builds wrote (ledger/FORMAT.md): the event-id index keyed
// by event_id alone, no rejected-by-org index, format marker 1. Upgrade tests
// start from it.
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <memory>
#include <string>

#include "ledger/format.h"

namespace billing::ledger::testing {

// The directory must hold no merge operands (a ledger written without the
// projections), and no ledger may have it open.
inline void DowngradeToFormat1(const std::string& dir) {
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(1, format::kEventIdPrefix));
       it->Valid() && it->key()[0] == format::kEventIdPrefix; it->Next()) {
    std::string key = it->key().ToString();
    size_t sep = key.find('\0');
    ASSERT_NE(sep, std::string::npos) << "not a format-2 event-id key";
    batch.Delete(key);
    batch.Put(format::EventIdKeyV1(key.substr(sep + 1)), it->value());
  }
  for (it->Seek(std::string(1, format::kRejectedOrgPrefix));
       it->Valid() && it->key()[0] == format::kRejectedOrgPrefix; it->Next()) {
    batch.Delete(it->key());
  }
  ASSERT_TRUE(it->status().ok());
  batch.Put(format::kMetaFormat, format::kFormatVersion1);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  ASSERT_TRUE(db->Write(wo, &batch).ok());
}

// Keys of one prefix byte, for checking what an upgrade left.
inline std::vector<std::string> KeysWithPrefix(rocksdb::DB* db, char prefix) {
  std::vector<std::string> keys;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(1, prefix)); it->Valid() && it->key()[0] == prefix; it->Next()) {
    keys.push_back(it->key().ToString());
  }
  return keys;
}

}  // namespace billing::ledger::testing
