// Proves a storage read that fails while the ledger is replayed (the rebuild
// at open, an as_of answer) keeps its retryable code, kUnavailable, instead
// of being reported as a corrupt ledger: a table-file reader fails its Nth
// read once, for every N, and every outcome is the answer or kUnavailable.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "ledger/prepare.h"
#include "projections/billing.h"
#include "projections/keys.h"
#include "tests/testing/temp_dir.h"

namespace billing::projections {
namespace {

using billing::testing::TempDir;
using Json = nlohmann::json;

// More reads than any replay below makes: the sweep stops earlier, at the
// first N that the replay never reaches.
constexpr int kReadsSweptMax = 2000;

// Fails the Nth read of a table file after Arm(N), once: deterministic, so
// that N names the same read in every run.
class NthTableReadFails : public rocksdb::FileSystemWrapper {
 public:
  NthTableReadFails() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  static const char* kClassName() { return "NthTableReadFails"; }
  const char* Name() const override { return kClassName(); }
  void Arm(int n) {
    reads_ = 0;
    injected_ = 0;
    fail_at_ = n;
  }
  int injected() const { return injected_; }

  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* d) override {
    rocksdb::IOStatus s = target()->NewRandomAccessFile(f, o, r, d);
    if (s.ok() && f.ends_with(".sst")) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }

 private:
  bool FailThisRead() {
    if (fail_at_ == 0 || ++reads_ != fail_at_) return false;
    injected_++;
    return true;
  }

  class File : public rocksdb::FSRandomAccessFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSRandomAccessFile>&& f, NthTableReadFails* fs)
        : FSRandomAccessFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Read(uint64_t offset, size_t n, const rocksdb::IOOptions& o,
                           rocksdb::Slice* result, char* scratch,
                           rocksdb::IODebugContext* d) const override {
      if (fs_->FailThisRead()) return rocksdb::IOStatus::IOError("injected: read failed");
      return target()->Read(offset, n, o, result, scratch, d);
    }
    rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t n, const rocksdb::IOOptions& o,
                                rocksdb::IODebugContext* d) override {
      if (fs_->FailThisRead()) {
        for (size_t i = 0; i < n; ++i)
          reqs[i].status = rocksdb::IOStatus::IOError("injected: read failed");
        return rocksdb::IOStatus::IOError("injected: read failed");
      }
      return target()->MultiRead(reqs, n, o, d);
    }

   private:
    NthTableReadFails* fs_;
  };

  std::atomic<int> reads_{0};
  std::atomic<int> fail_at_{0};
  std::atomic<int> injected_{0};
};

class ReplayFault : public ::testing::Test {
 protected:
  ReplayFault() : env_(rocksdb::NewCompositeEnv(fs_)) {}

  Result<std::unique_ptr<Billing>> Open(const std::string& dir) {
    BillingOptions o;
    o.dir = dir;
    o.durability = ledger::Durability::kAsync;
    o.env = env_.get();
    return Billing::Open(o);
  }

  static void Post(Billing& b, const std::string& id, const std::string& kind, const Json& payload,
                   const std::string& occurred_at = "2026-01-10T00:00:00Z") {
    Json e{{"event_id", id}, {"org_id", "o"}, {"occurred_at", occurred_at}, {kind, payload}};
    ledger::AppendRequest req;
    req.entries.push_back(ledger::PrepareEntry(e.dump(), ledger::Source()));
    auto r = b.Submit(std::move(req));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    ASSERT_NE(r.outcomes[0].kind, ledger::Outcome::Kind::kRejected)
        << id << ": " << r.outcomes[0].message;
  }

  // An org with enough usage that its records, its event-id index and its
  // read models lie in different table blocks, then voids of early charges
  // (each void's replay looks its original up), all flushed to table files.
  void WriteHistory(const std::string& dir, bool drop_read_models) {
    auto opened = Open(dir);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Billing& b = **opened;
    Post(b, "org", "organization_created",
         {{"name", "O"}, {"currency", "USD"}, {"billing_account", "BA"}}, "2025-11-01T00:00:00Z");
    Post(b, "cc", "cost_center_created", {{"cost_center_id", "cc-a"}, {"name", "A"}},
         "2025-11-01T00:00:00Z");
    Post(b, "ws", "workspace_created",
         {{"workspace_id", "ws-a"}, {"cost_center_id", "cc-a"}, {"name", "A"}},
         "2025-11-01T00:00:00Z");
    Post(b, "prov", "provider_registered",
         {{"provider_id", "p1"}, {"workspace_id", "ws-a"}, {"name", "P"}, {"kind", "aws"}},
         "2025-11-01T00:00:00Z");
    for (int i = 0; i < 300; ++i) {
      Post(b, "u" + std::to_string(i), "usage_recorded",
           {{"provider_id", "p1"},
            {"service", "EC2"},
            {"sku", "sku-" + std::to_string(i % 7)},
            {"resource_id", "i-" + std::to_string(i)},
            {"region", "eu-west-1"},
            {"quantity", "1"},
            {"unit", "Hrs"},
            {"amount", "1.25"},
            {"usage_start", "2026-01-10T00:00:00Z"},
            {"usage_end", "2026-01-10T01:00:00Z"}});
    }
    for (int i = 0; i < 3; ++i) {
      Post(b, "v" + std::to_string(i), "event_voided",
           {{"voided_event_id", "u" + std::to_string(i)}, {"reason", "duplicate charge"}});
    }
    Post(b, "last", "support_charged",
         {{"month", "2026-01"}, {"amount", "5"}, {"description", "desk"}});
    rocksdb::DB* db = b.ledger().db();
    if (drop_read_models) {
      ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), keys::kMetaVersion).ok());
    }
    ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  }

  // What a failed run said: only kUnavailable may come out of a failed read.
  void ExpectRetryable(const Status& s, int n, int* in_replay) {
    if (s.ok()) return;
    EXPECT_EQ(s.code(), Code::kUnavailable) << "read " << n << " failing: " << s.ToString();
    if (s.message().find("replaying record") != std::string::npos) ++*in_replay;
  }

  std::shared_ptr<NthTableReadFails> fs_ = std::make_shared<NthTableReadFails>();
  std::unique_ptr<rocksdb::Env> env_;
  TempDir tmp_;
};

// ledgerd's start: read models missing, so the open rebuilds them from the
// ledger. A failed read is a reason to retry the start, not a corrupt ledger.
TEST_F(ReplayFault, AReadErrorDuringTheRebuildAtOpenIsUnavailableNotCorruption) {
  const std::string pristine = tmp_.sub("pristine");
  WriteHistory(pristine, /*drop_read_models=*/true);
  int in_replay = 0, n = 1;
  for (; n <= kReadsSweptMax; ++n) {
    const std::string dir = tmp_.sub("run-" + std::to_string(n));
    std::filesystem::copy(pristine, dir, std::filesystem::copy_options::recursive);
    fs_->Arm(n);
    auto opened = Open(dir);
    const bool reached = fs_->injected() > 0;
    ExpectRetryable(opened.status(), n, &in_replay);
    if (opened.ok()) opened->reset();  // closed before its directory goes
    fs_->Arm(0);
    std::filesystem::remove_all(dir);
    if (!reached) break;
  }
  EXPECT_LT(n, kReadsSweptMax) << "the rebuild made more reads than the sweep covers";
  EXPECT_GT(in_replay, 0) << "no failed read reached a replayed decision";
}

// An answer as of a past sequence replays the org's history: a failed read
// is kUnavailable (HTTP 503, retry), not kCorruption (500).
TEST_F(ReplayFault, AReadErrorDuringAnAsOfReplayIsUnavailableNotCorruption) {
  const std::string dir = tmp_.sub("data");
  WriteHistory(dir, /*drop_read_models=*/false);
  int in_replay = 0, n = 1;
  for (; n <= kReadsSweptMax; ++n) {
    auto opened = Open(dir);  // a fresh block cache: every block is read again
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    const uint64_t before_last = (*opened)->ledger().head().sequence.value - 1;
    fs_->Arm(n);
    auto snap = (*opened)->Snapshot("o", ledger::Sequence{before_last});
    const bool reached = fs_->injected() > 0;
    fs_->Arm(0);
    ExpectRetryable(snap.status(), n, &in_replay);
    if (!reached) {
      ASSERT_TRUE(snap.ok()) << snap.status().ToString();
      break;
    }
  }
  EXPECT_LT(n, kReadsSweptMax) << "the replay made more reads than the sweep covers";
  EXPECT_GT(in_replay, 0) << "no failed read reached a replayed decision";
}

}  // namespace
}  // namespace billing::projections
