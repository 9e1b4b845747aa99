// Proves the one RocksDB -> Status mapping gives each kind of storage error
// the code that says what a caller should do: retry (kUnavailable) for I/O
// trouble, never for damage (kCorruption) or for our own misuse (kInternal).
#include "ledger/rocks_status.h"

#include <gtest/gtest.h>

namespace billing::ledger {
namespace {

using rocksdb::Status;

TEST(RocksStatus, OkStaysOk) {
  EXPECT_TRUE(FromRocks(Status::OK(), "reading").ok());
  EXPECT_EQ(RocksCode(Status::OK()), Code::kOk);
}

TEST(RocksStatus, DiskAndSchedulingTroubleIsRetryable) {
  for (const Status& s : {Status::IOError("read failed"), Status::NoSpace("disk full"),
                          Status::PathNotFound("a table file vanished"), Status::Busy("resuming"),
                          Status::TimedOut("lock"), Status::TryAgain("later"),
                          Status::Incomplete("not in cache"), Status::Aborted(Status::kMemoryLimit),
                          Status::ShutdownInProgress("closing"), Status::CompactionTooLarge()}) {
    EXPECT_EQ(RocksCode(s), Code::kUnavailable) << s.ToString();
  }
}

TEST(RocksStatus, DamagedBytesAreCorruptionNotRetryable) {
  EXPECT_EQ(RocksCode(Status::Corruption("block checksum mismatch")), Code::kCorruption);
}

TEST(RocksStatus, AMissingKeyIsNotFound) {
  EXPECT_EQ(RocksCode(Status::NotFound("no backup 7")), Code::kNotFound);
}

TEST(RocksStatus, MisuseIsInternalNotRetryable) {
  for (const Status& s :
       {Status::InvalidArgument("bad option"), Status::NotSupported("no such feature"),
        Status::MergeInProgress(), Status::Expired(), Status::ColumnFamilyDropped()}) {
    EXPECT_EQ(RocksCode(s), Code::kInternal) << s.ToString();
  }
}

TEST(RocksStatus, TheMessageSaysWhatWeWereDoingAndWhatRocksDbSaid) {
  billing::Status s =
      FromRocks(Status::NoSpace("no space left on device"), "writing to the ledger");
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(s.message(),
            "writing to the ledger: IO error: No space left on device: no space left on device");
}

}  // namespace
}  // namespace billing::ledger
