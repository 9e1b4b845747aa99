// Conservation proofs against the real binaries: the golden example proves
// every month, and one aggregate overwritten through raw RocksDB while
// ledgerd is stopped fails exactly the checks that read it, the same way in
// `ledgerctl prove` (exit 1) and in GET .../usage-history/{month}/proof.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "events/calendar.h"
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
using testing::Ran;
using testing::TempDir;

const std::vector<std::string> kCheckNames = {
    "invoices_sum_to_total", "categories_sum_to_items",    "children_sum_to_parent",
    "lines_regroup_items",   "cost_centers_partition_org", "replay_matches_store"};

Ran Prove(const std::string& dir, const std::string& org, const std::string& month,
          std::vector<std::string> more = {}) {
  std::vector<std::string> args = {
      testing::LedgerctlPath(), "prove", dir, "--org", org, "--month", month};
  args.insert(args.end(), more.begin(), more.end());
  return testing::RunToExit(std::move(args));
}

// The names of the checks that failed, after checking the answer's shape.
std::set<std::string> FailedChecks(const Json& proof) {
  std::set<std::string> failed;
  std::vector<std::string> names;
  for (const Json& c : proof.at("checks")) {
    names.push_back(c.at("check"));
    EXPECT_TRUE(c.at("expected").is_string() && c.at("actual").is_string()) << c.dump();
    if (!c.at("ok").get<bool>()) failed.insert(c.at("check").get<std::string>());
  }
  EXPECT_EQ(names, kCheckNames) << proof.dump();
  EXPECT_EQ(proof.at("ok").get<bool>(), failed.empty()) << proof.dump();
  return failed;
}

const Json* CheckNamed(const Json& proof, const std::string& name) {
  for (const Json& c : proof.at("checks")) {
    if (c.at("check") == name) return &c;
  }
  return nullptr;
}

// The golden example in a ledgerd on `dir`.
void LoadGolden(const std::string& dir) {
  Ledgerd server({.data_dir = dir});
  ASSERT_TRUE(server.started());
  auto r = server.Post("/v1/events", testing::ReadFile(testing::ExamplesDir() + "/events.ndjson"),
                       "application/x-ndjson");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(Json::parse(r.body)["last_sequence"], 57);
  ASSERT_EQ(server.Stop(), 0);
}

// Overwrites the first stored aggregate of `org`'s `month` whose key goes on
// with `kind` (keys.h) by one with `extra` nano-units more, as an attacker or
// a bad disk with access to the directory would; the key, for messages.
std::string OverwriteAggregate(const std::string& dir, const std::string& org,
                               const std::string& month, const std::string& kind, Sum extra) {
  rocksdb::Options o;
  o.merge_operator = projections::NewAggMergeOperator();
  rocksdb::DB* raw = nullptr;
  EXPECT_TRUE(rocksdb::DB::Open(o, dir, &raw).ok());
  if (raw == nullptr) return "";
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string prefix = projections::keys::MonthPrefix(org, *ParseMonth(month, "month")) + kind;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  it->Seek(prefix);
  EXPECT_TRUE(it->Valid() && it->key().starts_with(prefix)) << "no aggregate " << kind;
  if (!it->Valid() || !it->key().starts_with(prefix)) return "";
  std::string key = it->key().ToString();
  projections::Agg agg;
  EXPECT_TRUE(projections::DecodeAgg(it->value().ToString(), &agg));
  it.reset();
  agg.amount += extra;
  EXPECT_TRUE(db->Put(rocksdb::WriteOptions(), key, projections::EncodeAgg(agg)).ok());
  return key;
}

TEST(Proof, EveryMonthOfTheGoldenExampleProves) {
  TempDir tmp;
  const std::string dir = tmp.sub("data");
  LoadGolden(dir);
  Ledgerd server({.data_dir = dir});
  for (const std::string org : {"acme", "kaiju-jp"}) {
    for (const std::string month : {"2025-10", "2025-11", "2025-12", "2026-01", "2026-02"}) {
      Ran ran = Prove(dir, org, month);
      EXPECT_EQ(ran.code, 0) << org << " " << month << ": " << ran.out;
      auto r = server.Get("/v1/orgs/" + org + "/usage-history/" + month + "/proof");
      ASSERT_EQ(r.status, 200) << r.body;
      Json answer = Json::parse(r.body);
      EXPECT_TRUE(FailedChecks(answer).empty()) << answer.dump();
      EXPECT_EQ(answer["month"], month);
      if (ran.code == 0) {
        EXPECT_EQ(Json::parse(ran.out), answer) << org << " " << month;
      }
    }
  }
  // As of a past sequence, like the other month routes: the first 30 events.
  auto past = server.Get("/v1/orgs/acme/usage-history/2025-12/proof?as_of=30");
  ASSERT_EQ(past.status, 200) << past.body;
  Ran offline = Prove(dir, "acme", "2025-12", {"--as-of", "30"});
  ASSERT_EQ(offline.code, 0) << offline.out;
  EXPECT_EQ(Json::parse(offline.out), Json::parse(past.body));
  EXPECT_NE(Json::parse(past.body),
            Json::parse(server.Get("/v1/orgs/acme/usage-history/2025-12/proof").body))
      << "as_of=30 must prove the month as it stood then";
}

TEST(Proof, UnknownOrgIsNotFoundAndBadArgumentsExitTwo) {
  TempDir tmp;
  const std::string dir = tmp.sub("data");
  LoadGolden(dir);
  Ledgerd server({.data_dir = dir});
  EXPECT_EQ(server.Get("/v1/orgs/nobody/usage-history/2026-01/proof").status, 404);
  EXPECT_EQ(server.Get("/v1/orgs/acme/usage-history/2026-13/proof").status, 400);
  EXPECT_EQ(server.Get("/v1/orgs/acme/usage-history/2026-01/proof?as_of=x").status, 400);
  // Before the org was created: it does not exist there.
  EXPECT_EQ(server.Get("/v1/orgs/kaiju-jp/usage-history/2026-01/proof?as_of=1").status, 404);
  EXPECT_EQ(Prove(dir, "nobody", "2026-01").code, 2);
  EXPECT_EQ(Prove(dir, "acme", "2026-1").code, 2);
  EXPECT_EQ(Prove(dir, "acme", "2026-01", {"--as-of", "-1"}).code, 2);
  EXPECT_EQ(Prove(tmp.sub("missing"), "acme", "2026-01").code, 2);
}

// One usage item overwritten: its category, drill-down children and invoice
// lines still hold what the ledger posted, and so do the invoice buckets.
// So the checks that compare the item with those fail, the ones that never
// read items (invoice totals, the cost-center partition) hold, and the
// replay names the item.
TEST(Proof, AnOverwrittenItemFailsExactlyTheChecksThatReadIt) {
  TempDir tmp;
  const std::string dir = tmp.sub("data");
  LoadGolden(dir);
  std::string key = OverwriteAggregate(dir, "acme", "2026-01", "I1", 1'000'000'000);
  ASSERT_FALSE(key.empty());
  const std::set<std::string> want = {"categories_sum_to_items", "children_sum_to_parent",
                                      "lines_regroup_items", "replay_matches_store"};

  Ran ran = Prove(dir, "acme", "2026-01");
  EXPECT_EQ(ran.code, 1) << ran.out;
  Json offline = Json::parse(ran.out);
  EXPECT_EQ(FailedChecks(offline), want) << offline.dump();
  const Json* replay = CheckNamed(offline, "replay_matches_store");
  ASSERT_NE(replay, nullptr);
  EXPECT_EQ((*replay)["expected"].get<std::string>().rfind("item usage ", 0), 0u) << *replay;
  EXPECT_EQ((*replay)["actual"].get<std::string>().rfind("item usage ", 0), 0u) << *replay;
  const Json* children = CheckNamed(offline, "children_sum_to_parent");
  EXPECT_EQ((*children)["actual"].get<std::string>().rfind("node ", 0), 0u) << *children;

  Ledgerd server({.data_dir = dir});
  ASSERT_TRUE(server.started());
  auto r = server.Get("/v1/orgs/acme/usage-history/2026-01/proof");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body), offline);
  // The other months were not touched.
  auto other = server.Get("/v1/orgs/acme/usage-history/2025-12/proof");
  EXPECT_TRUE(FailedChecks(Json::parse(other.body)).empty()) << other.body;
}

// Other aggregates, each on a copy: a bucket total is read only by the
// invoices (which agree with each other) and the partition; a leaf of the
// drill-down only by its parent's sum.
TEST(Proof, EachOverwrittenAggregateFailsOnlyTheChecksThatReadIt) {
  TempDir tmp;
  const std::string golden = tmp.sub("golden");
  LoadGolden(golden);
  struct Case {
    std::string kind;
    std::set<std::string> failed;
  };
  const std::vector<Case> cases = {
      {"B", {"cost_centers_partition_org", "replay_matches_store"}},
      {"D3", {"children_sum_to_parent", "replay_matches_store"}},
      {"C", {"categories_sum_to_items", "cost_centers_partition_org", "replay_matches_store"}},
  };
  for (const Case& c : cases) {
    const std::string copy = tmp.sub("copy-" + c.kind);
    std::filesystem::copy(golden, copy, std::filesystem::copy_options::recursive);
    ASSERT_FALSE(OverwriteAggregate(copy, "acme", "2026-01", c.kind, 7).empty());
    Ran ran = Prove(copy, "acme", "2026-01");
    EXPECT_EQ(ran.code, 1) << c.kind << ": " << ran.out;
    if (ran.out.empty()) continue;
    EXPECT_EQ(FailedChecks(Json::parse(ran.out)), c.failed) << c.kind << ": " << ran.out;
  }
}

}  // namespace
}  // namespace billing
