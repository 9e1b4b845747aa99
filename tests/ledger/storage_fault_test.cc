// The ledger under storage faults injected by a RocksDB FileSystem wrapper:
// for every N, the Nth file write from some point on fails (a full disk) or
// the Nth sync fails once (an I/O error). Nothing that failed is ever
// acknowledged, the failure is kUnavailable, appends work again once the
// fault is gone (the writer resumes RocksDB at its next group), and after a
// reopen every acknowledged event is there exactly once with a verifying
// chain. An upgrade from format 1 killed at its Nth write, for every N, is
// finished by the next open.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ledger/format.h"
#include "ledger/ledger.h"
#include "tests/ledger/format_v1.h"
#include "tests/testing/entries.h"
#include "tests/testing/temp_dir.h"

namespace billing::ledger {
namespace {

using billing::testing::TempDir;
using rocksdb::FileOptions;
using rocksdb::FSWritableFile;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// Counts every write and sync to any file the database writes, and fails
// them from an armed point on: deterministic, so that "the Nth write" means
// the same operation in every run.
class FaultyFileSystem : public rocksdb::FileSystemWrapper {
 public:
  enum class Fault {
    kNone,
    kNoSpace,      // every append and sync from the Nth on, until Heal()
    kSyncIoError,  // the Nth sync (or the first after it) only
    kKill,         // SIGKILL to this process at the Nth append or sync: a crash there
  };

  explicit FaultyFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base)
      : FileSystemWrapper(base) {}
  static const char* kClassName() { return "FaultyFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // The `n`th operation from now (1: the next one) fails as `fault` says.
  void Arm(int n, Fault fault) {
    ops_ = 0;
    fail_at_ = n;
    fault_ = fault;
    injected_ = 0;
  }
  void Heal() { fault_ = Fault::kNone; }
  int injected() const { return injected_; }

  IOStatus NewWritableFile(const std::string& f, const FileOptions& o,
                           std::unique_ptr<FSWritableFile>* r, IODebugContext* d) override {
    IOStatus s = target()->NewWritableFile(f, o, r, d);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }
  IOStatus ReopenWritableFile(const std::string& f, const FileOptions& o,
                              std::unique_ptr<FSWritableFile>* r, IODebugContext* d) override {
    IOStatus s = target()->ReopenWritableFile(f, o, r, d);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }
  IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const FileOptions& o,
                             std::unique_ptr<FSWritableFile>* r, IODebugContext* d) override {
    IOStatus s = target()->ReuseWritableFile(f, old, o, r, d);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }

 private:
  enum class Op { kAppend, kSync };

  // OK, or the injected error for this operation.
  IOStatus Check(Op op) {
    Fault fault = fault_.load();
    if (fault == Fault::kNone) return IOStatus::OK();
    int n = ++ops_;
    if (n < fail_at_) return IOStatus::OK();
    if (fault == Fault::kKill) kill(getpid(), SIGKILL);
    if (fault == Fault::kNoSpace) {
      injected_++;
      return IOStatus::NoSpace("injected: no space left on device");
    }
    if (op == Op::kSync) {
      fault_ = Fault::kNone;  // once
      injected_++;
      return IOStatus::IOError("injected: fsync failed");
    }
    return IOStatus::OK();
  }

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<FSWritableFile>&& f, FaultyFileSystem* fs)
        : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* d) override {
      IOStatus s = fs_->Check(Op::kAppend);
      return s.ok() ? target()->Append(data, o, d) : s;
    }
    IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& v,
                    IODebugContext* d) override {
      IOStatus s = fs_->Check(Op::kAppend);
      return s.ok() ? target()->Append(data, o, v, d) : s;
    }
    IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                              IODebugContext* d) override {
      IOStatus s = fs_->Check(Op::kAppend);
      return s.ok() ? target()->PositionedAppend(data, offset, o, d) : s;
    }
    IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                              const rocksdb::DataVerificationInfo& v, IODebugContext* d) override {
      IOStatus s = fs_->Check(Op::kAppend);
      return s.ok() ? target()->PositionedAppend(data, offset, o, v, d) : s;
    }
    IOStatus Sync(const IOOptions& o, IODebugContext* d) override {
      IOStatus s = fs_->Check(Op::kSync);
      return s.ok() ? target()->Sync(o, d) : s;
    }
    IOStatus Fsync(const IOOptions& o, IODebugContext* d) override {
      IOStatus s = fs_->Check(Op::kSync);
      return s.ok() ? target()->Fsync(o, d) : s;
    }

   private:
    FaultyFileSystem* fs_;
  };

  std::atomic<Fault> fault_{Fault::kNone};
  std::atomic<int> ops_{0};
  std::atomic<int> fail_at_{0};
  std::atomic<int> injected_{0};
};

Entry Support(const std::string& id) {
  std::string json = R"({"event_id":")" + id +
                     R"(","org_id":"acme","occurred_at":"2026-01-08T12:56:36Z","support_charged":)"
                     R"({"month":"2026-01","amount":"1.5","description":"d"}})";
  return billing::testing::ValidEntry(json);
}

AppendResult AppendOne(Ledger& l, const std::string& id) {
  AppendRequest req;
  req.entries.push_back(Support(id));
  return l.Append(std::move(req));
}

struct Faulty {
  std::shared_ptr<FaultyFileSystem> fs =
      std::make_shared<FaultyFileSystem>(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
};

std::unique_ptr<Ledger> Open(const std::string& dir, rocksdb::Env* env,
                             std::function<void(const Status&)> on_unrecoverable = nullptr) {
  Options o;
  o.dir = dir;
  o.env = env;
  o.on_unrecoverable = std::move(on_unrecoverable);
  auto r = Ledger::Open(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// Reopens `dir` on the real file system and checks that exactly `acked`
// are in the ledger, each once, with a verifying chain.
void ExpectExactly(const std::string& dir, const std::map<std::string, uint64_t>& acked) {
  auto l = Open(dir, nullptr);
  ASSERT_NE(l, nullptr);
  auto report = l->Verify();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->events, acked.size());
  for (const auto& [id, seq] : acked) {
    auto found = l->FindEvent({.org_id = "acme", .event_id = id});
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    ASSERT_TRUE(found->has_value()) << id << " was acknowledged and is missing";
    EXPECT_EQ((*found)->sequence.value, seq) << id;
  }
}

constexpr int kWarmEvents = 3;
constexpr int kEventsPerRound = 8;
// Each append is an append and a sync of the WAL (plus, around a resume,
// the flush's files): N up to 16 puts the fault at every one of them.
constexpr int kFailAtMax = 16;

TEST(LedgerStorageFaults, AFullDiskIsUnavailableAcknowledgesNothingUnwrittenAndRecovers) {
  int rounds_with_a_fault = 0;
  for (int n = 1; n <= kFailAtMax; ++n) {
    SCOPED_TRACE("the disk fills at write " + std::to_string(n));
    TempDir tmp;
    Faulty faulty;
    std::atomic<int> unrecoverable{0};
    std::map<std::string, uint64_t> acked;
    {
      auto l = Open(tmp.path(), faulty.env.get(), [&](const Status&) { unrecoverable++; });
      ASSERT_NE(l, nullptr);
      for (int i = 0; i < kWarmEvents; ++i) {
        auto r = AppendOne(*l, "warm-" + std::to_string(i));
        ASSERT_TRUE(r.status.ok()) << r.status.ToString();
        acked["warm-" + std::to_string(i)] = r.outcomes[0].sequence.value;
      }
      faulty.fs->Arm(n, FaultyFileSystem::Fault::kNoSpace);
      bool failed = false;
      for (int i = 0; i < kEventsPerRound; ++i) {
        const std::string id = "e" + std::to_string(i);
        auto r = AppendOne(*l, id);
        if (!r.status.ok()) {
          EXPECT_EQ(r.status.code(), Code::kUnavailable) << r.status.ToString();
          EXPECT_TRUE(r.outcomes.empty());
          EXPECT_FALSE(failed) << "a second failure after the disk had space again";
          failed = true;
          // Still full: the next group fails too, and leaves nothing behind.
          auto again = AppendOne(*l, id);
          EXPECT_FALSE(again.status.ok());
          EXPECT_EQ(l->head().sequence.value, acked.size());
          // Space returns: the same event goes through as new, not as a
          // duplicate of a write that was never acknowledged.
          faulty.fs->Heal();
          r = AppendOne(*l, id);
          ASSERT_TRUE(r.status.ok()) << "no recovery after space returned: " << r.status.ToString();
        }
        ASSERT_EQ(r.outcomes.size(), 1u);
        EXPECT_EQ(r.outcomes[0].kind, Outcome::Kind::kAccepted) << id;
        EXPECT_EQ(r.outcomes[0].sequence.value, acked.size() + 1) << id;
        acked[id] = r.outcomes[0].sequence.value;
      }
      if (failed) rounds_with_a_fault++;
      faulty.fs->Heal();
      EXPECT_EQ(unrecoverable.load(), 0) << "a full disk must not need a restart";
    }
    ExpectExactly(tmp.path(), acked);
  }
  // Every append writes and syncs the WAL, so a fault at any of the first
  // writes must have hit an append.
  EXPECT_GE(rounds_with_a_fault, 2 * kEventsPerRound - 2);
}

// After a failed fsync the page cache cannot be trusted, and RocksDB refuses
// to resume (a fatal error): every later append is refused too, with a
// message that says to restart, until the ledger is reopened. The event whose
// sync failed may then be there (its bytes had reached the file; it was never
// acknowledged, so a client retrying it gets a duplicate); nothing else that
// was refused is, nothing acknowledged is missing, and appends work again.
TEST(LedgerStorageFaults, AFailedSyncIsNeverAcknowledgedAndAReopenRecovers) {
  int rounds_with_a_fault = 0;
  for (int n = 1; n <= kFailAtMax; ++n) {
    SCOPED_TRACE("sync fails at write " + std::to_string(n));
    TempDir tmp;
    Faulty faulty;
    std::atomic<int> unrecoverable{0};
    std::map<std::string, uint64_t> acked;
    std::vector<std::string> refused;
    {
      auto l = Open(tmp.path(), faulty.env.get(), [&](const Status&) { unrecoverable++; });
      ASSERT_NE(l, nullptr);
      faulty.fs->Arm(n, FaultyFileSystem::Fault::kSyncIoError);
      for (int i = 0; i < kEventsPerRound; ++i) {
        const std::string id = "e" + std::to_string(i);
        auto r = AppendOne(*l, id);
        if (r.status.ok()) {
          ASSERT_TRUE(refused.empty()) << id << " was accepted after a failed sync";
          ASSERT_EQ(r.outcomes[0].kind, Outcome::Kind::kAccepted) << id;
          acked[id] = r.outcomes[0].sequence.value;
          continue;
        }
        EXPECT_EQ(r.status.code(), Code::kUnavailable) << r.status.ToString();
        if (!refused.empty()) {
          EXPECT_NE(r.status.message().find("restart ledgerd"), std::string::npos)
              << r.status.message();
        }
        refused.push_back(id);
      }
      if (!refused.empty()) rounds_with_a_fault++;
      // Told once, as soon as a write finds RocksDB unable to resume: the
      // refusals after the first say "restart ledgerd".
      EXPECT_EQ(unrecoverable.load(), refused.size() > 1 ? 1 : 0);
    }
    auto l = Open(tmp.path(), nullptr);
    ASSERT_NE(l, nullptr);
    auto report = l->Verify();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->ok) << report->problem;
    for (const auto& [id, seq] : acked) {
      auto found = l->FindEvent({.org_id = "acme", .event_id = id});
      ASSERT_TRUE(found.ok() && found->has_value()) << id << " was acknowledged and is missing";
      EXPECT_EQ((*found)->sequence.value, seq) << id;
    }
    uint64_t extra = report->events - acked.size();
    EXPECT_LE(extra, 1u);
    for (size_t i = 0; i < refused.size(); ++i) {
      auto found = l->FindEvent({.org_id = "acme", .event_id = refused[i]});
      ASSERT_TRUE(found.ok());
      if (i == 0 && extra == 1) {
        EXPECT_TRUE(found->has_value()) << "the extra event is not the one whose sync failed";
      } else {
        EXPECT_FALSE(found->has_value()) << refused[i] << " was refused and is in the ledger";
      }
    }
    // Recovered: the refused events go in (or are known), and new ones too.
    for (const std::string& id : refused) {
      auto r = AppendOne(*l, id);
      ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    }
    auto r = AppendOne(*l, "after-reopen");
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.outcomes[0].sequence.value, kEventsPerRound + 1u);
  }
  EXPECT_GE(rounds_with_a_fault, kEventsPerRound - 1);
}

// Events of the upgrade test: two orgs, ids unique across both (format 1's rule).
std::string UpgradeOrg(int i) { return i % 2 == 0 ? "acme" : "kaiju-jp"; }
std::string UpgradeId(int i) { return "u" + std::to_string(i); }

// A format-1 directory with `events` records of two orgs.
void WriteFormat1Ledger(const std::string& dir, int events) {
  {
    Options o;
    o.dir = dir;
    o.durability = Durability::kAsync;
    auto l = Ledger::Open(o);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    AppendRequest req;
    for (int i = 0; i < events; ++i) {
      req.entries.push_back(billing::testing::ValidEntry(
          R"({"event_id":")" + UpgradeId(i) + R"(","org_id":")" + UpgradeOrg(i) +
          R"(","occurred_at":"2026-01-08T12:56:36Z","support_charged":{"month":"2026-01","amount":"1","description":"d"}})"));
    }
    ASSERT_TRUE((*l)->Append(std::move(req)).status.ok());
  }
  billing::ledger::testing::DowngradeToFormat1(dir);
}

// Every event is found under its own org only, at its sequence.
void ExpectEveryEventInItsOrg(const Ledger& l, int events) {
  for (int i = 0; i < events; ++i) {
    auto own = l.FindEvent({.org_id = UpgradeOrg(i), .event_id = UpgradeId(i)});
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    ASSERT_TRUE(own->has_value()) << UpgradeId(i) << " is missing";
    ASSERT_EQ((*own)->sequence.value, static_cast<uint64_t>(i) + 1);
    auto other = l.FindEvent({.org_id = UpgradeOrg(i + 1), .event_id = UpgradeId(i)});
    ASSERT_TRUE(other.ok());
    ASSERT_FALSE(other->has_value()) << UpgradeId(i) << " is found in another org";
  }
}

// SIGKILL at the Nth file write or sync of a read-write open of a format-1
// directory, for every N until one open runs to the end: what the crash
// leaves reads correctly read-only, and the next open finishes the upgrade.
TEST(LedgerStorageFaults, AnUpgradeKilledAtAnyWriteIsFinishedByTheNextOpen) {
  // Two upgrade batches and part of a third (8192 keys each, two per record).
  constexpr int kEvents = 10000;
  constexpr int kKillAtMax = 200;
  TempDir pristine;
  WriteFormat1Ledger(pristine.sub("d"), kEvents);
  int killed = 0;
  bool finished = false;
  for (int n = 1; n <= kKillAtMax && !finished; ++n) {
    SCOPED_TRACE("killed at write " + std::to_string(n));
    TempDir work;
    const std::string dir = work.sub("d");
    std::filesystem::copy(pristine.sub("d"), dir, std::filesystem::copy_options::recursive);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      Faulty faulty;
      faulty.fs->Arm(n, FaultyFileSystem::Fault::kKill);
      Options o;
      o.dir = dir;
      o.env = faulty.env.get();
      _exit(Ledger::Open(o).ok() ? 0 : 3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
      killed++;
    } else {
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the open failed: " << status;
      finished = true;
    }
    {
      Options ro;
      ro.dir = dir;
      ro.mode = OpenMode::kReadOnly;
      auto l = Ledger::Open(ro);
      ASSERT_TRUE(l.ok()) << l.status().ToString();
      ASSERT_NO_FATAL_FAILURE(ExpectEveryEventInItsOrg(**l, kEvents));
    }
    auto l = Open(dir, nullptr);
    ASSERT_NE(l, nullptr);
    std::string marker;
    ASSERT_TRUE(l->db()->Get(rocksdb::ReadOptions(), format::kMetaFormat, &marker).ok());
    EXPECT_EQ(marker, format::kFormatVersion);
    auto index = billing::ledger::testing::KeysWithPrefix(l->db(), format::kEventIdPrefix);
    EXPECT_EQ(index.size(), static_cast<size_t>(kEvents));
    for (const std::string& key : index)
      ASSERT_NE(key.find('\0'), std::string::npos) << "a format-1 key is left";
    ASSERT_NO_FATAL_FAILURE(ExpectEveryEventInItsOrg(*l, kEvents));
  }
  EXPECT_TRUE(finished) << "no open ran to the end within " << kKillAtMax << " writes";
  EXPECT_GE(killed, 4) << "the upgrade was not killed mid-way often enough to test anything";
}

}  // namespace
}  // namespace billing::ledger
