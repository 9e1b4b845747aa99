// Upgrading a `billing-ledger/1` directory (event ids global across orgs,
// rejections unbounded) to format 2, on real RocksDB: a read-only open reads
// it as it is, a read-write open rekeys the event-id index by org, bounds and
// indexes the rejected store, and writes the marker last.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "ledger/format.h"
#include "ledger/ledger.h"
#include "tests/ledger/format_v1.h"
#include "tests/testing/entries.h"
#include "tests/testing/temp_dir.h"

namespace billing::ledger {
namespace {

using billing::testing::TempDir;

Entry Usage(const std::string& id, const std::string& org, const std::string& amount = "1") {
  std::string json =
      R"({"event_id":")" + id + R"(","org_id":")" + org +
      R"(","occurred_at":"2026-01-08T12:56:36Z","usage_recorded":{"provider_id":"p","service":"S",)"
      R"("sku":"k","resource_id":"r","region":"x","quantity":"1","unit":"u","amount":")" +
      amount + R"(","usage_start":"2026-01-08T11:56:36Z","usage_end":"2026-01-08T12:56:36Z"}})";
  return billing::testing::ValidEntry(json);
}

Entry Bad(const std::string& org) {
  Entry e;
  e.raw = "{\"org_id\":\"" + org + "\"}";
  e.rejection = Status(Code::kInvalidArgument, "event_id is missing");
  e.org_id = org;
  return e;
}

Result<std::unique_ptr<Ledger>> OpenAt(const std::string& dir, OpenMode mode,
                                       size_t per_org_max = kRejectedPerOrgMax) {
  Options o;
  o.dir = dir;
  o.mode = mode;
  o.rejected_per_org_max = per_org_max;
  return Ledger::Open(o);
}

AppendResult AppendAll(Ledger& l, std::vector<Entry> entries) {
  AppendRequest req;
  req.entries = std::move(entries);
  return l.Append(std::move(req));
}

std::optional<uint64_t> SequenceOf(const Ledger& l, std::string_view org, std::string_view id) {
  auto found = l.FindEvent({.org_id = org, .event_id = id});
  EXPECT_TRUE(found.ok()) << found.status().ToString();
  if (!found.ok() || !found->has_value()) return std::nullopt;
  return (*found)->sequence.value;
}

// Format 1 as older builds left it: three events of two orgs, five small
// rejections of acme and one written before rejections were bounded.
void WriteFormat1(const std::string& dir) {
  {
    auto l = OpenAt(dir, OpenMode::kReadWrite);
    ASSERT_TRUE(l.ok());
    AppendAll(**l, {Usage("a1", "acme"), Usage("k1", "kaiju-jp"), Usage("a2", "acme")});
    for (int i = 0; i < 5; ++i) AppendAll(**l, {Bad("acme")});
  }
  billing::ledger::testing::DowngradeToFormat1(dir);
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir, &db).ok());
  RejectedRecord huge;
  huge.set_id(100);
  huge.set_raw(std::string(200 * 1024, '['));
  huge.set_code("invalid_argument");
  huge.set_message(std::string(5000, 'm'));
  huge.set_org_id("acme");
  ASSERT_TRUE(
      db->Put(rocksdb::WriteOptions(), format::RejectedKey(100), huge.SerializeAsString()).ok());
  delete db;
}

TEST(LedgerUpgrade, AReadOnlyOpenReadsAFormat1DirectoryAsItIs) {
  TempDir tmp;
  WriteFormat1(tmp.path());
  auto l = OpenAt(tmp.path(), OpenMode::kReadOnly);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(SequenceOf(**l, "acme", "a1"), 1u);
  EXPECT_EQ(SequenceOf(**l, "kaiju-jp", "k1"), 2u);
  // The format-1 key names one record; another org's lookup of it finds none.
  EXPECT_EQ(SequenceOf(**l, "kaiju-jp", "a1"), std::nullopt);
  auto v = (*l)->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->problem;
  auto page = (*l)->ListRejected(RejectedQuery{.after_id = 0, .limit = 0, .org = "acme"});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->records.size(), 6u);
  std::string marker;
  ASSERT_TRUE((*l)->db()->Get(rocksdb::ReadOptions(), format::kMetaFormat, &marker).ok());
  EXPECT_EQ(marker, format::kFormatVersion1) << "a read-only open must not upgrade";
}

TEST(LedgerUpgrade, AReadWriteOpenRekeysTheIndexByOrgAndBoundsTheRejectedStore) {
  TempDir tmp;
  WriteFormat1(tmp.path());
  auto l = OpenAt(tmp.path(), OpenMode::kReadWrite, /*per_org_max=*/3);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  rocksdb::DB* db = (*l)->db();
  std::string marker;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), format::kMetaFormat, &marker).ok());
  EXPECT_EQ(marker, format::kFormatVersion);
  std::vector<std::string> index =
      billing::ledger::testing::KeysWithPrefix(db, format::kEventIdPrefix);
  EXPECT_EQ(index, (std::vector<std::string>{format::EventIdKey("acme", "a1"),
                                             format::EventIdKey("acme", "a2"),
                                             format::EventIdKey("kaiju-jp", "k1")}));
  EXPECT_EQ(SequenceOf(**l, "acme", "a2"), 3u);
  EXPECT_EQ(SequenceOf(**l, "kaiju-jp", "a1"), std::nullopt);

  // The ids are now per org: kaiju-jp may use acme's, acme's own stay idempotent.
  auto r =
      AppendAll(**l, {Usage("a1", "kaiju-jp", "9"), Usage("a1", "acme"), Usage("a1", "acme", "5")});
  EXPECT_EQ(r.outcomes[0].kind, Outcome::Kind::kAccepted);
  EXPECT_EQ(r.outcomes[1].kind, Outcome::Kind::kDuplicate);
  EXPECT_EQ(r.outcomes[1].sequence.value, 1u);
  EXPECT_EQ(r.outcomes[2].code, Code::kConflict);

  // acme kept its newest three of six (ids 4, 5 and 100) before the conflict
  // above, which then dropped id 4; the old unbounded one is now a bounded prefix.
  auto page = (*l)->ListRejected(RejectedQuery{.after_id = 0, .limit = 0, .org = "acme"});
  ASSERT_TRUE(page.ok());
  std::vector<uint64_t> ids;
  for (const auto& rec : page->records) ids.push_back(rec.id());
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], 5u);
  EXPECT_EQ(ids[1], 100u);
  const RejectedRecord& huge = page->records[1];
  EXPECT_TRUE(huge.raw_truncated());
  EXPECT_EQ(huge.raw().size(), kRejectedRawBytesMax);
  EXPECT_EQ(huge.raw_bytes(), 200u * 1024);
  EXPECT_EQ(huge.message().size(), kRejectedMessageBytesMax);
  EXPECT_EQ(billing::ledger::testing::KeysWithPrefix(db, format::kRejectedOrgPrefix).size(), 3u);
}

TEST(LedgerUpgrade, AnUpgradedDirectoryReopensWithoutUpgradingAgain) {
  TempDir tmp;
  WriteFormat1(tmp.path());
  { ASSERT_TRUE(OpenAt(tmp.path(), OpenMode::kReadWrite).ok()); }
  auto l = OpenAt(tmp.path(), OpenMode::kReadWrite);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(SequenceOf(**l, "kaiju-jp", "k1"), 2u);
  auto v = (*l)->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->problem;
  EXPECT_EQ(v->events, 3u);
}

}  // namespace
}  // namespace billing::ledger
