#include "ledger/rocks_status.h"

#include <string>

namespace billing::ledger {

Code RocksCode(const rocksdb::Status& s) {
  switch (s.code()) {
    case rocksdb::Status::kOk:
      return Code::kOk;
    case rocksdb::Status::kNotFound:
      return Code::kNotFound;
    case rocksdb::Status::kCorruption:
      return Code::kCorruption;
    // The disk, the file system or RocksDB's own scheduling: the same call may
    // work later (space freed, the sector remapped, a flush finished).
    case rocksdb::Status::kIOError:
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kTryAgain:
    case rocksdb::Status::kIncomplete:
    case rocksdb::Status::kAborted:
    case rocksdb::Status::kShutdownInProgress:
    case rocksdb::Status::kCompactionTooLarge:
      return Code::kUnavailable;
    // How we called RocksDB, or what the directory holds, is wrong: a retry
    // makes the same mistake.
    case rocksdb::Status::kInvalidArgument:
    case rocksdb::Status::kNotSupported:
    case rocksdb::Status::kMergeInProgress:
    case rocksdb::Status::kExpired:
    case rocksdb::Status::kColumnFamilyDropped:
    default:
      return Code::kInternal;
  }
}

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  return Status(RocksCode(s), std::string(what) + ": " + s.ToString());
}

}  // namespace billing::ledger
