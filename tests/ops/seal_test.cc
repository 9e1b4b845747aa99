// Stored invoice seals against the real binaries: seals missing after a
// crash between a close and its separate sealing write are restored by the
// next start with the same bytes, and a rebuild (`ledgerctl replay`) writes
// the seal keys byte for byte as they were written live.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "projections/agg.h"
#include "projections/keys.h"
#include "tests/testing/files.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using Json = nlohmann::json;
using testing::Ledgerd;
using testing::TempDir;

// The golden example closes 2025-11 and 2025-12 of acme and of kaiju-jp.
void LoadGolden(const Ledgerd& server) {
  auto r = server.Post("/v1/events", testing::ReadFile(testing::ExamplesDir() + "/events.ndjson"),
                       "application/x-ndjson");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(Json::parse(r.body)["last_sequence"], 57);
}

// The stopped directory through raw RocksDB (with the read models' merge
// operator, which its WAL needs).
std::unique_ptr<rocksdb::DB> OpenRaw(const std::string& dir) {
  rocksdb::Options o;
  o.merge_operator = projections::NewAggMergeOperator();
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, dir, &db);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return std::unique_ptr<rocksdb::DB>(db);
}

// Every stored seal key (keys.h `pf`) with its value, as bytes.
std::map<std::string, std::string> SealKeys(const std::string& dir) {
  std::map<std::string, std::string> out;
  auto db = OpenRaw(dir);
  if (!db) return out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(projections::keys::kSealPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    out[it->key().ToString()] = it->value().ToString();
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return out;
}

Json Invoice(const Ledgerd& server, const std::string& org, const std::string& invoice_id) {
  auto r = server.Get("/v1/orgs/" + org + "/invoices/" + invoice_id);
  EXPECT_EQ(r.status, 200) << invoice_id << ": " << r.body;
  return r.status == 200 ? Json::parse(r.body) : Json();
}

// A crash after a close is durable but before its seals are: the close and
// the seals are two synced writes (projections/billing.cc), so the seals of
// a closed month can be missing at the next start, which must store them
// again before answering, with the bytes the live write would have stored.
TEST(Seals, SealsMissingAfterACloseAreRestoredAtTheNextStart) {
  TempDir tmp;
  const std::string dir = tmp.sub("data");
  Json before;
  {
    Ledgerd server({.data_dir = dir});
    ASSERT_TRUE(server.started());
    LoadGolden(server);
    before = Invoice(server, "acme", "2025-12-org");
    ASSERT_TRUE(before["seal"].is_object()) << before.dump();
    ASSERT_EQ(server.Stop(), 0);
  }
  const std::map<std::string, std::string> written = SealKeys(dir);
  {
    // Every seal of acme's 2025-12, as if the sealing write never happened.
    auto db = OpenRaw(dir);
    ASSERT_TRUE(db);
    const std::string month_seals = projections::keys::SealPrefix("acme") + "2025-12-";
    size_t deleted = 0;
    for (const auto& [key, value] : written) {
      if (!key.starts_with(month_seals)) continue;
      rocksdb::WriteOptions wo;
      wo.sync = true;
      ASSERT_TRUE(db->Delete(wo, key).ok());
      ++deleted;
    }
    ASSERT_GT(deleted, 0u) << "acme's 2025-12 has sealed invoices";
  }
  ASSERT_LT(SealKeys(dir).size(), written.size());

  Ledgerd restarted({.data_dir = dir});
  ASSERT_TRUE(restarted.started());
  EXPECT_EQ(Invoice(restarted, "acme", "2025-12-org"), before);
  ASSERT_EQ(restarted.Stop(), 0);
  EXPECT_EQ(SealKeys(dir), written);
}

// Seals are a pure function of the ledger: rebuilding the read models from
// it (which deletes them all) stores the same seal keys with the same bytes.
TEST(Seals, ARebuildStoresTheSealKeysByteForByteAsWrittenLive) {
  TempDir tmp;
  const std::string dir = tmp.sub("data");
  {
    Ledgerd server({.data_dir = dir});
    ASSERT_TRUE(server.started());
    LoadGolden(server);
    ASSERT_EQ(server.Stop(), 0);
  }
  const std::map<std::string, std::string> live = SealKeys(dir);
  ASSERT_GE(live.size(), 4u) << "two closed months of two orgs";
  testing::Ran replay = testing::RunToExit({testing::LedgerctlPath(), "replay", dir});
  ASSERT_EQ(replay.code, 0) << replay.out;
  EXPECT_EQ(SealKeys(dir), live);
}

}  // namespace
}  // namespace billing
