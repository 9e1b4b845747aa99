// Backup and restore of a ledger data directory with RocksDB's own
// BackupEngine (rocksdb/utilities/backup_engine.h).
//
// A backup directory holds any number of backups; table files unchanged
// between them are stored once, so a daily backup costs only what changed.
// `Backup` opens the data directory read-only, which takes no lock: it works
// beside a running ledgerd and captures the ledger as of that open (records,
// indexes, rejected messages, Kafka offsets and read models, all from the same
// point, since every group commit is one atomic batch). The live service may
// compact away a table file while it is being copied; the backup is then
// retried from a fresh read-only open, up to kBackupAttemptsMax times. Each
// new backup is checked against its checksums before it is reported, and
// records the ledger head it holds.
//
// `Restore` writes a backup into a new data directory, then opens it
// read-only and walks the hash chain, so a restore reports whether the copy
// verifies and which head it holds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "events/status.h"
#include "ledger/ledger.h"

namespace billing::ops {

// Attempts before Backup gives up while a live service keeps deleting files
// under it: compactions are seconds apart, so a few tries always find a
// quiet moment unless something is wrong.
inline constexpr int kBackupAttemptsMax = 5;

struct BackupReport {
  uint32_t backup_id = 0;
  ledger::Head head;        // the ledger head the backup holds
  uint64_t size_bytes = 0;  // of this backup's files, shared ones included
  uint32_t backups = 0;     // backups now in the directory
};

// Adds a backup of the ledger in `data_dir` to `backup_dir` (created when
// missing). kNotFound if data_dir holds no ledger; kUnavailable on I/O errors;
// kCorruption if the new backup does not match its checksums.
Result<BackupReport> Backup(const std::string& data_dir, const std::string& backup_dir);

struct RestoreReport {
  uint32_t backup_id = 0;
  ledger::Head recorded_head;   // what the backup said it holds
  ledger::VerifyReport verify;  // of the restored copy
};

// Restores backup `backup_id` (nullopt: the latest) from `backup_dir` into
// `data_dir`, which must not exist or be empty (kInvalidArgument otherwise:
// a restore never overwrites a ledger). kNotFound if there is no such backup.
Result<RestoreReport> Restore(const std::string& backup_dir, const std::string& data_dir,
                              std::optional<uint32_t> backup_id);

}  // namespace billing::ops
