#include "ops/backup.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/utilities/backup_engine.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "ledger/hash_chain.h"
#include "ledger/rocks_status.h"
#include "projections/billing.h"

namespace billing::ops {

namespace {

using Json = nlohmann::json;
using ledger::FromRocks;

std::string Unhex(const std::string& hex) {
  std::string out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
  }
  return out;
}

}  // namespace

Result<BackupReport> Backup(const std::string& data_dir, const std::string& backup_dir) {
  rocksdb::BackupEngine* raw_engine = nullptr;
  rocksdb::BackupEngineOptions engine_options(backup_dir);
  engine_options.sync = true;  // a backup that reports success is on disk
  Status opened =
      FromRocks(rocksdb::BackupEngine::Open(engine_options, rocksdb::Env::Default(), &raw_engine),
                "opening backup directory " + backup_dir);
  if (!opened.ok()) return opened;
  std::unique_ptr<rocksdb::BackupEngine> engine(raw_engine);

  Status last;
  for (int attempt = 1; attempt <= kBackupAttemptsMax; ++attempt) {
    auto led = projections::OpenLedgerReadOnly(data_dir);
    if (!led.ok()) return led.status();
    ledger::Head head = (*led)->head();
    std::string metadata =
        Json{{"head_sequence", head.sequence.value}, {"head_hash", ledger::Hex(head.hash)}}.dump();
    rocksdb::CreateBackupOptions create;
    // The WAL is the truth for the newest batches and a read-only open
    // cannot flush: the WAL files are copied with the table files.
    create.flush_before_backup = false;
    rocksdb::BackupID id = 0;
    rocksdb::IOStatus s = engine->CreateNewBackupWithMetadata(create, (*led)->db(), metadata, &id);
    if (!s.ok()) {
      // Most likely the running service compacted away a file we were
      // copying: drop the partial backup and look again.
      last = FromRocks(s, "creating backup (attempt " + std::to_string(attempt) + ")");
      engine->GarbageCollect().PermitUncheckedError();
      continue;
    }
    Status verified =
        FromRocks(engine->VerifyBackup(id, /*verify_with_checksum=*/true), "verifying new backup");
    if (!verified.ok()) return Status(Code::kCorruption, verified.message());
    rocksdb::BackupInfo info;
    Status got = FromRocks(engine->GetBackupInfo(id, &info), "reading backup info");
    if (!got.ok()) return got;
    std::vector<rocksdb::BackupInfo> all;
    engine->GetBackupInfo(&all);
    BackupReport report;
    report.backup_id = id;
    report.head = head;
    report.size_bytes = info.size;
    report.backups = static_cast<uint32_t>(all.size());
    return report;
  }
  return last;
}

Result<RestoreReport> Restore(const std::string& backup_dir, const std::string& data_dir,
                              std::optional<uint32_t> backup_id) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(data_dir, ec) && !fs::is_empty(data_dir, ec)) {
    return Status(Code::kInvalidArgument,
                  data_dir + " is not empty; a restore never overwrites a directory");
  }
  if (!fs::exists(backup_dir, ec)) return Status(Code::kNotFound, backup_dir + " does not exist");
  rocksdb::BackupEngineReadOnly* raw_engine = nullptr;
  rocksdb::BackupEngineOptions engine_options(backup_dir);
  Status opened = FromRocks(
      rocksdb::BackupEngineReadOnly::Open(engine_options, rocksdb::Env::Default(), &raw_engine),
      "opening backup directory " + backup_dir);
  if (!opened.ok()) return opened;
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw_engine);
  std::vector<rocksdb::BackupInfo> all;
  engine->GetBackupInfo(&all);
  if (all.empty()) return Status(Code::kNotFound, backup_dir + " holds no backup");
  const rocksdb::BackupInfo* chosen = &all.back();
  if (backup_id) {
    chosen = nullptr;
    for (const auto& info : all) {
      if (info.backup_id == *backup_id) chosen = &info;
    }
    if (chosen == nullptr)
      return Status(Code::kNotFound,
                    "no backup " + std::to_string(*backup_id) + " in " + backup_dir);
  }
  RestoreReport report;
  report.backup_id = chosen->backup_id;
  Json meta = Json::parse(chosen->app_metadata, nullptr, /*allow_exceptions=*/false);
  if (meta.is_object() && meta["head_sequence"].is_number_unsigned() &&
      meta["head_hash"].is_string()) {
    report.recorded_head = ledger::Head{ledger::Sequence{meta["head_sequence"].get<uint64_t>()},
                                        Unhex(meta["head_hash"].get<std::string>())};
  }
  Status restored = FromRocks(engine->RestoreDBFromBackup(chosen->backup_id, data_dir, data_dir),
                              "restoring backup " + std::to_string(chosen->backup_id));
  if (!restored.ok()) return restored;
  auto led = projections::OpenLedgerReadOnly(data_dir);
  if (!led.ok()) return led.status();
  auto verify = (*led)->Verify();
  if (!verify.ok()) return verify.status();
  report.verify = *verify;
  return report;
}

}  // namespace billing::ops
