// Three real ledgerd instances sharing one cluster through a Kafka mock in its
// own process: events of many orgs by HTTP to every instance and by Kafka give,
// org by org, the answers of one ledgerd fed the same events; an instance
// SIGKILLed mid-ingest loses and doubles nothing that was acknowledged, its
// shards move to the others and every chain verifies; it joins again without
// loss, and each shard it holds, rebuilt on its own, answers the same; and a
// client's own Ledger-Forwarded header is refused, never followed.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/shard_map.h"
#include "events/event.h"
#include "ops/generator.h"
#include "tests/kafka/kafka_test_support.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace billing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::Child;
using testing::HttpResponse;
using testing::KafkaSource;
using testing::Ledgerd;
using testing::TempDir;
using testing::WaitUntil;

constexpr int kShards = 6;
constexpr const char* kGroup = "g";
constexpr auto kMockStartTimeout = 30s;
// A shard's move: the group's session timeout (below), a rebalance and the
// restore of the shard from its partition, with margin for a sanitizer build.
constexpr auto kMoveTimeout = 120s;
constexpr auto kSessionTimeout = 6000ms;
// How long one HTTP body may keep answering 503 while shards move.
constexpr auto kPostTimeout = 120s;
constexpr size_t kLinesPerBody = 150;
// api::kForwardedHeader (http/http_server.h): what marks a request one
// instance forwarded to another.
constexpr const char* kForwardedHeader = "Ledger-Forwarded";

// `ledgerctl kafka-mock` with the cluster's topics created up front (the mock
// cannot create topics on request, and would make the shards topic with its
// own default partition count).
struct MockProcess {
  MockProcess()
      : child({testing::LedgerctlPath(), "kafka-mock", "--partitions", std::to_string(kShards),
               "--topic", "billing.events", "--topic", std::string(kGroup) + ".shards", "--topic",
               std::string(kGroup) + ".members"}) {
    bootstrap = child.WaitForLine("kafka bootstrap: ", kMockStartTimeout);
  }
  Child child;
  std::string bootstrap;
};

std::unique_ptr<Ledgerd> StartInstance(const std::string& id, const std::string& data_dir,
                                       const std::string& bootstrap, int standby_replicas = 0) {
  return std::make_unique<Ledgerd>(testing::LedgerdOptions{
      .data_dir = data_dir,
      .kafka = KafkaSource::kBrokers,
      .kafka_brokers = bootstrap,
      .kafka_group = kGroup,
      .kafka_session_timeout = kSessionTimeout,
      .extra_args = {"--instance-id", id, "--shards", std::to_string(kShards), "--standby-replicas",
                     std::to_string(standby_replicas)}});
}

// GET /v1/cluster, parsed; an empty object when it does not answer.
Json ClusterOf(const Ledgerd& instance) {
  HttpResponse r = instance.Get("/v1/cluster");
  if (r.status != 200) return Json::object();
  return Json::parse(r.body, nullptr, false);
}

// Every shard has a serving owner, and only `instances` own them.
bool AllServedBy(const Ledgerd& asked, const std::set<std::string>& instances) {
  Json c = ClusterOf(asked);
  if (!c.contains("shards") || c["shards"].size() != kShards) return false;
  for (const Json& s : c["shards"]) {
    if (!s["owner"].is_string() || !instances.count(s["owner"].get<std::string>())) return false;
  }
  return true;
}

// The events in every shard, as their owners publish them.
uint64_t ClusterEvents(const Ledgerd& asked) {
  Json c = ClusterOf(asked);
  uint64_t total = 0;
  for (const Json& s : c.value("shards", Json::array())) total += s.value("head_sequence", 0ull);
  return total;
}

// Each shard's head (sequence and hash) as its owner publishes it.
std::vector<std::string> ShardHeads(const Ledgerd& asked) {
  std::vector<std::string> heads;
  for (const Json& s : ClusterOf(asked).value("shards", Json::array())) {
    heads.push_back(std::to_string(s.value("head_sequence", 0ull)) + " " +
                    s.value("head_hash", std::string()));
  }
  return heads;
}

uint64_t HeadOf(const Ledgerd& single) {
  Json v = Json::parse(single.Get("/v1/ledger/verify").body, nullptr, false);
  return v.value("head_sequence", 0ull);
}

// Posts `body` (NDJSON) until it is answered 200: a 503 (a shard moving) or
// no answer (a killed instance) is retried at the next instance, as a client
// of a cluster does. Retries are safe: events are idempotent.
// 503 answers seen by PostUntilAcknowledged (while shards moved).
int retried_503 = 0;

bool PostUntilAcknowledged(const std::vector<Ledgerd*>& instances, size_t first,
                           const std::string& body) {
  size_t next = first;
  return WaitUntil(
      [&] {
        const Ledgerd* to = instances[next++ % instances.size()];
        HttpResponse r = to->Post("/v1/events", body, "application/x-ndjson");
        EXPECT_TRUE(r.status == 200 || r.status == 503 || r.status == 0)
            << r.status << " " << r.body;
        // A shard on the move is never a stale or partial answer: 503, and when.
        if (r.status == 503) {
          EXPECT_EQ(r.headers["Retry-After"], "1") << r.body;
          retried_503++;
        }
        return r.status == 200;
      },
      kPostTimeout);
}

std::vector<std::string> Bodies(const std::vector<std::string>& lines) {
  std::vector<std::string> bodies;
  for (size_t i = 0; i < lines.size(); i += kLinesPerBody) {
    std::string body;
    for (size_t k = i; k < std::min(lines.size(), i + kLinesPerBody); k++) body += lines[k] + "\n";
    bodies.push_back(std::move(body));
  }
  return bodies;
}

std::string OrgOf(const std::string& line) {
  Json e = Json::parse(line, nullptr, false);
  return e.is_object() && e["org_id"].is_string() ? e["org_id"].get<std::string>() : "";
}

// Every org's answers from `instance` equal the single ledgerd's, and every
// shard's chain verifies.
void ExpectSameAnswers(const Ledgerd& single, const Ledgerd& instance,
                       const std::set<std::string>& orgs) {
  for (const std::string& org : orgs) {
    for (const char* route : {"", "/dashboard", "/usage", "/invoices"}) {
      const std::string target = "/v1/orgs/" + org + route;
      HttpResponse want = single.Get(target);
      HttpResponse got = instance.Get(target);
      EXPECT_EQ(got.status, want.status) << target << " " << got.body;
      EXPECT_EQ(got.body, want.body) << target;
    }
  }
  for (int shard = 0; shard < kShards; shard++) {
    HttpResponse v = instance.Get("/v1/ledger/verify?shard=" + std::to_string(shard));
    ASSERT_EQ(v.status, 200) << v.body;
    EXPECT_TRUE(Json::parse(v.body, nullptr, false).value("ok", false)) << shard << v.body;
  }
}

struct History {
  std::vector<std::string> lines;
  std::set<std::string> orgs;
};

History Generate(uint64_t seed) {
  History h;
  h.lines = ops::GenerateLines({.seed = seed,
                                .orgs = 12,
                                .months = 3,
                                .usage_events = 4000,
                                .resources_per_provider = 5,
                                .faults = true,
                                .start_month = "2026-01"});
  for (const std::string& line : h.lines) {
    if (std::string org = OrgOf(line); org.rfind("org-", 0) == 0) h.orgs.insert(org);
  }
  return h;
}

// The same history through one ledgerd, by HTTP, in order.
std::unique_ptr<Ledgerd> Reference(const History& h) {
  auto single = std::make_unique<Ledgerd>();
  for (const std::string& body : Bodies(h.lines)) {
    EXPECT_EQ(single->Post("/v1/events", body, "application/x-ndjson").status, 200);
  }
  return single;
}

TEST(ClusterLedgerd, ThreeInstancesAnswerEveryOrgAsOneLedgerdDoes) {
  MockProcess mock;
  ASSERT_FALSE(mock.bootstrap.empty());
  TempDir tmp;
  const History h = Generate(7);
  auto single = Reference(h);
  std::vector<std::unique_ptr<Ledgerd>> owned;
  std::vector<Ledgerd*> instances;
  for (const char* id : {"a", "b", "c"}) {
    owned.push_back(StartInstance(id, tmp.sub(id), mock.bootstrap));
    ASSERT_TRUE(owned.back()->started());
    instances.push_back(owned.back().get());
  }
  ASSERT_TRUE(WaitUntil(
      [&] {
        return AllServedBy(*instances[0], {"a", "b", "c"});
      },
      kMoveTimeout))
      << ClusterOf(*instances[0]).dump();

  // Half the orgs write through Kafka (any partitioner: the router re-keys
  // them), the other half by HTTP to every instance in turn; each org keeps
  // its own order on its one path.
  std::vector<std::string> by_http;
  kafka_testing::TestProducer producer(mock.bootstrap);
  int kafka_lines = 0;
  for (const std::string& line : h.lines) {
    const std::string org = OrgOf(line);
    if (!org.empty() && std::hash<std::string>()(org) % 2 == 0) {
      producer.Send("billing.events", org, line);
      kafka_lines++;
    } else {
      by_http.push_back(line);
    }
  }
  ASSERT_TRUE(producer.Flush());
  EXPECT_GT(kafka_lines, 100);
  std::vector<std::string> bodies = Bodies(by_http);
  for (size_t i = 0; i < bodies.size(); i++) {
    ASSERT_TRUE(PostUntilAcknowledged(instances, i, bodies[i])) << "body " << i;
  }
  const uint64_t want = HeadOf(*single);
  ASSERT_TRUE(WaitUntil([&] { return ClusterEvents(*instances[1]) == want; }, kMoveTimeout))
      << ClusterEvents(*instances[1]) << " events in the cluster, " << want << " in one ledgerd";
  for (const Ledgerd* instance : instances) ExpectSameAnswers(*single, *instance, h.orgs);

  // Verify without a shard reports every shard, whichever instance holds it.
  HttpResponse all = instances[2]->Get("/v1/ledger/verify");
  ASSERT_EQ(all.status, 200) << all.body;
  Json verify = Json::parse(all.body);
  EXPECT_TRUE(verify["ok"].get<bool>()) << all.body;
  EXPECT_EQ(verify["events"].get<uint64_t>(), want);
  ASSERT_EQ(verify["shards"].size(), static_cast<size_t>(kShards));
  for (int shard = 0; shard < kShards; shard++) {
    EXPECT_EQ(verify["shards"][shard]["shard"].get<int>(), shard);
    EXPECT_TRUE(verify["shards"][shard]["ok"].get<bool>());
  }

  // An instance counting another number of shards would map orgs elsewhere
  // and fork their history: it refuses to start.
  TempDir other;
  testing::Ran refused =
      testing::RunToExit({testing::LedgerdPath(), "--data-dir", other.sub("d"), "--http",
                          "127.0.0.1:0", "--kafka-brokers", mock.bootstrap, "--group", kGroup,
                          "--instance-id", "d", "--shards", std::to_string(kShards + 1)},
                         {.stderr_file = other.sub("err")});
  EXPECT_EQ(refused.code, 2);
  for (auto& instance : owned) EXPECT_EQ(instance->Stop(), 0) << "a clean stop";
}

// The mock keeps about 5 MiB per partition: past that its log starts later
// than offset 0, as a real topic's would after a retention mistake. A shard
// restored from such a log would be missing events; it must not serve.
TEST(ClusterLedgerd, AShardWhoseLogWasCutIsNeverServed) {
  MockProcess mock;
  ASSERT_FALSE(mock.bootstrap.empty());
  {
    kafka_testing::TestProducer producer(mock.bootstrap);
    const std::string filler(1000, 'x');  // not an event: only its bytes matter
    for (int i = 0; i < 12000; i++) producer.Send(std::string(kGroup) + ".shards", "", filler, 0);
    ASSERT_TRUE(producer.Flush());
  }
  TempDir tmp;
  auto a = StartInstance("a", tmp.sub("a"), mock.bootstrap);
  ASSERT_TRUE(a->started());
  ASSERT_TRUE(WaitUntil(
      [&] { return a->StderrText().find("shard 0 cannot be served") != std::string::npos; },
      kMoveTimeout))
      << a->StderrText();
  ASSERT_TRUE(WaitUntil(
      [&] {
        Json c = ClusterOf(*a);
        int served = 0;
        for (const Json& s : c.value("shards", Json::array())) served += s["owner"].is_string();
        return served == kShards - 1;
      },
      kMoveTimeout))
      << ClusterOf(*a).dump();
  EXPECT_TRUE(ClusterOf(*a)["shards"][0]["owner"].is_null());
  HttpResponse r = a->Get("/v1/ledger/verify?shard=0");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.headers["Retry-After"], "1");
}

TEST(ClusterLedgerd, ClusterFlagsAreCheckedBeforeAnythingStarts) {
  TempDir tmp;
  const std::vector<std::vector<std::string>> wrong = {
      {"--instance-id", "a"},                      // no brokers
      {"--instance-id", "a", "--kafka-embedded"},  // a broker that dies with it
      {"--instance-id", "a", "--kafka-brokers", "127.0.0.1:1", "--shards", "0"},
      {"--instance-id", "a", "--kafka-brokers", "127.0.0.1:1", "--webhooks", tmp.sub("w")},
      {"--instance-id", std::string(200, 'x'), "--kafka-brokers", "127.0.0.1:1"},
      {"--instance-id", "a", "--kafka-brokers", "127.0.0.1:1", "--standby-replicas", "9"},
      {"--instance-id", "a", "--kafka-brokers", "127.0.0.1:1", "--standby-replicas", "-1"},
  };
  for (const auto& args : wrong) {
    std::vector<std::string> argv{testing::LedgerdPath(), "--data-dir", tmp.sub("d"), "--http",
                                  "127.0.0.1:0"};
    argv.insert(argv.end(), args.begin(), args.end());
    EXPECT_EQ(testing::RunToExit(argv, {.stderr_file = tmp.sub("err")}).code, 2) << args.back();
  }
}

// Ledger-Forwarded marks a request one instance forwarded to another, which
// answers it or refuses it and never forwards it again (loop protection). A
// client that sends the header itself, for an org served elsewhere, is
// therefore refused with 503 and Retry-After, by design; without the header
// the same request is forwarded to the org's owner and answered.
TEST(ClusterLedgerd, AClientsOwnForwardedHeaderIsRefusedNotForwarded) {
  MockProcess mock;
  ASSERT_FALSE(mock.bootstrap.empty());
  TempDir tmp;
  auto a = StartInstance("a", tmp.sub("a"), mock.bootstrap);
  auto b = StartInstance("b", tmp.sub("b"), mock.bootstrap);
  ASSERT_TRUE(a->started() && b->started());
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::set<std::string> owners;
        for (const Json& s : ClusterOf(*a).value("shards", Json::array())) {
          if (s["owner"].is_string()) owners.insert(s["owner"].get<std::string>());
        }
        return AllServedBy(*a, {"a", "b"}) && owners.size() == 2;
      },
      kMoveTimeout))
      << ClusterOf(*a).dump();

  const std::vector<std::string> lines = ops::GenerateLines(
      {.seed = 3, .orgs = 12, .months = 1, .usage_events = 200, .start_month = "2026-01"});
  std::set<std::string> orgs;
  for (const std::string& line : lines) {
    if (std::string org = OrgOf(line); org.rfind("org-", 0) == 0) orgs.insert(org);
  }
  for (const std::string& body : Bodies(lines)) {
    ASSERT_TRUE(PostUntilAcknowledged({b.get()}, 0, body));
  }

  // An org b serves: b answers a request marked forwarded for it itself.
  std::string elsewhere;
  for (const std::string& org : orgs) {
    if (b->Get("/v1/orgs/" + org, {{kForwardedHeader, "1"}}).status == 200) elsewhere = org;
  }
  ASSERT_FALSE(elsewhere.empty()) << "b serves none of the generated orgs";
  const std::string target = "/v1/orgs/" + elsewhere;
  HttpResponse refused = a->Get(target, {{kForwardedHeader, "1"}});
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.headers["Retry-After"], "1");
  EXPECT_EQ(Json::parse(refused.body, nullptr, false)["error"]["code"], "unavailable");

  HttpResponse owner = b->Get(target);
  ASSERT_EQ(owner.status, 200) << owner.body;
  HttpResponse forwarded = a->Get(target);
  EXPECT_EQ(forwarded.status, 200) << forwarded.body;
  EXPECT_EQ(forwarded.body, owner.body);
  EXPECT_EQ(a->Stop(), 0) << "a clean stop";
  EXPECT_EQ(b->Stop(), 0) << "a clean stop";
}

// Seeded rounds: each seed makes another history and kills at another point;
// with standby replicas, the survivors' warm copies become the owners'.
struct KillRound {
  uint64_t seed = 0;
  int standby_replicas = 0;
};
void PrintTo(const KillRound& r, std::ostream* os) {
  *os << "seed " << r.seed << ", standby replicas " << r.standby_replicas;
}
class ClusterKill : public ::testing::TestWithParam<KillRound> {};

TEST_P(ClusterKill, AnInstanceKilledMidIngestLosesNothingAndJoinsAgain) {
  MockProcess mock;
  ASSERT_FALSE(mock.bootstrap.empty());
  TempDir tmp;
  const uint64_t seed = GetParam().seed;
  const int replicas = GetParam().standby_replicas;
  const History h = Generate(seed);
  auto single = Reference(h);
  std::vector<std::unique_ptr<Ledgerd>> owned;
  for (const char* id : {"a", "b", "c"}) {
    owned.push_back(StartInstance(id, tmp.sub(id), mock.bootstrap, replicas));
    ASSERT_TRUE(owned.back()->started());
  }
  std::vector<Ledgerd*> all{owned[0].get(), owned[1].get(), owned[2].get()};
  ASSERT_TRUE(WaitUntil([&] { return AllServedBy(*all[0], {"a", "b", "c"}); }, kMoveTimeout));

  std::vector<std::string> bodies = Bodies(h.lines);
  std::mt19937_64 rng(seed);
  const size_t kill_at = 1 + rng() % (bodies.size() - 2);
  for (size_t i = 0; i < bodies.size(); i++) {
    if (i == kill_at) owned[2]->Kill();  // its shards are mid-ingest: posts keep coming
    std::vector<Ledgerd*> alive = i < kill_at ? all : std::vector<Ledgerd*>{all[0], all[1]};
    ASSERT_TRUE(PostUntilAcknowledged(alive, i, bodies[i])) << "body " << i;
  }
  const uint64_t want = HeadOf(*single);
  ASSERT_TRUE(WaitUntil([&] { return AllServedBy(*all[0], {"a", "b"}); }, kMoveTimeout));
  ASSERT_TRUE(WaitUntil([&] { return ClusterEvents(*all[0]) == want; }, kMoveTimeout))
      << ClusterEvents(*all[0]) << " events in the cluster, " << want << " in one ledgerd";
  ExpectSameAnswers(*single, *all[0], h.orgs);
  if (replicas > 0) {
    EXPECT_GT(testing::MetricValue(all[0]->Metrics(), "ledger_standby_applied_total"), 0);
  }
  // A shard is a function of its partition: the copies the killed instance
  // kept of its shards, brought up to date from the log, must end in the
  // very records (same sequences, same hashes) the survivors rebuilt.
  const std::vector<std::string> heads = ShardHeads(*all[0]);

  // The killed instance joins again on its old directory: shards move back
  // to it, nothing is lost or doubled on the way.
  owned[2] = StartInstance("c", tmp.sub("c"), mock.bootstrap, replicas);
  ASSERT_TRUE(owned[2]->started());
  ASSERT_TRUE(WaitUntil(
      [&] {
        Json c = ClusterOf(*owned[2]);
        for (const Json& m : c.value("instances", Json::array())) {
          if (m.value("instance_id", "") == "c" && !m["serving"].empty()) return true;
        }
        return false;
      },
      kMoveTimeout))
      << ClusterOf(*owned[2]).dump();
  ASSERT_TRUE(WaitUntil([&] { return AllServedBy(*owned[2], {"a", "b", "c"}); }, kMoveTimeout));
  EXPECT_EQ(ClusterEvents(*owned[2]), want);
  ASSERT_TRUE(WaitUntil([&] { return ShardHeads(*owned[2]) == heads; }, kMoveTimeout))
      << ClusterOf(*owned[2]).dump();
  ExpectSameAnswers(*single, *owned[2], h.orgs);

  // Each shard c serves is a ledger of its own: stopped, its read models
  // rebuilt from its records alone (`ledgerctl replay`), and served by a
  // single ledgerd, it answers for its orgs as the reference does.
  std::vector<int> served;
  const Json cluster = ClusterOf(*owned[2]);
  for (const Json& m : cluster["instances"]) {
    if (m["instance_id"] == "c") served = m["serving"].get<std::vector<int>>();
  }
  ASSERT_FALSE(served.empty()) << cluster.dump();
  EXPECT_EQ(owned[2]->Stop(), 0);
  size_t orgs_found = 0;
  for (int shard : served) {
    const std::string dir = tmp.sub("c") + "/shard-" + std::to_string(shard);
    ASSERT_EQ(testing::RunToExit({testing::LedgerctlPath(), "replay", dir}).code, 0) << dir;
    Ledgerd alone({.data_dir = dir});
    ASSERT_TRUE(alone.started());
    for (const std::string& org : h.orgs) {
      if (alone.Get("/v1/orgs/" + org).status == 404) continue;  // another shard's
      orgs_found++;
      for (const char* route : {"/dashboard", "/usage", "/invoices"}) {
        const std::string target = "/v1/orgs/" + org + route;
        EXPECT_EQ(alone.Get(target).body, single->Get(target).body) << target;
      }
    }
  }
  EXPECT_GT(orgs_found, 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ClusterKill,
                         ::testing::Values(KillRound{19, 0}, KillRound{23, 0}, KillRound{29, 2}),
                         [](const ::testing::TestParamInfo<KillRound>& info) {
                           return "seed" + std::to_string(info.param.seed) + "_standby" +
                                  std::to_string(info.param.standby_replicas);
                         });

// The instances' standby lists in /v1/cluster, by instance id.
std::map<std::string, std::vector<int>> StandbyLists(const Ledgerd& asked) {
  std::map<std::string, std::vector<int>> out;
  for (const Json& m : ClusterOf(asked).value("instances", Json::array())) {
    out[m.value("instance_id", "")] = m.value("standby", std::vector<int>{});
  }
  return out;
}

std::vector<int> OwnedBy(const Ledgerd& asked, const std::string& id) {
  for (const Json& m : ClusterOf(asked).value("instances", Json::array())) {
    if (m.value("instance_id", "") == id) return m.value("owned", std::vector<int>{});
  }
  return {};
}

// Every standby copy `instance` keeps has applied its partition to the end.
bool StandbysCaughtUp(const Ledgerd& instance, const std::vector<int>& shards) {
  const std::string metrics = instance.Metrics();
  for (int shard : shards) {
    const std::string series = "ledger_standby_lag{partition=\"" + std::to_string(shard) + "\"}";
    if (metrics.find(series) == std::string::npos) return false;
    if (testing::MetricValue(metrics, series) != 0) return false;
  }
  return true;
}

// Two instances, one standby replica each: each keeps a warm copy of the
// other's shards without serving them, and when one leaves, the other takes
// its shards over by replaying only what its copies had not applied: here
// nothing at all, where a cold move replays every record of the shards.
TEST(ClusterLedgerd, AStandbyCopyMakesAMoveReplayOnlyTheTail) {
  MockProcess mock;
  ASSERT_FALSE(mock.bootstrap.empty());
  TempDir tmp;
  const History h = Generate(31);
  auto single = Reference(h);
  auto a = StartInstance("a", tmp.sub("a"), mock.bootstrap, 1);
  auto b = StartInstance("b", tmp.sub("b"), mock.bootstrap, 1);
  ASSERT_TRUE(a->started());
  ASSERT_TRUE(b->started());
  ASSERT_TRUE(WaitUntil([&] { return AllServedBy(*a, {"a", "b"}); }, kMoveTimeout));
  const std::vector<std::string> bodies = Bodies(h.lines);
  for (size_t i = 0; i < bodies.size(); i++) {
    ASSERT_TRUE(PostUntilAcknowledged({a.get(), b.get()}, i, bodies[i])) << "body " << i;
  }
  const uint64_t want = HeadOf(*single);
  ASSERT_TRUE(WaitUntil([&] { return ClusterEvents(*a) == want; }, kMoveTimeout));

  // Each stands by for exactly the other's shards, and its copies catch up.
  std::vector<int> b_owned;
  ASSERT_TRUE(WaitUntil(
      [&] {
        b_owned = OwnedBy(*a, "b");
        auto lists = StandbyLists(*a);
        return !b_owned.empty() && lists["a"] == b_owned && lists["b"] == OwnedBy(*a, "a");
      },
      kMoveTimeout))
      << ClusterOf(*a).dump();
  ASSERT_TRUE(WaitUntil([&] { return StandbysCaughtUp(*a, b_owned); }, kMoveTimeout))
      << a->Metrics();
  // Standby copies are no ingest of a's: its ingest counters are its own.
  const std::string before = a->Metrics();
  EXPECT_GT(testing::MetricValue(before, "ledger_standby_applied_total"), 0);
  const int64_t consumed_before = testing::MetricValue(before, "ledger_kafka_consumed_total");

  EXPECT_EQ(b->Stop(), 0);
  ASSERT_TRUE(WaitUntil([&] { return AllServedBy(*a, {"a"}); }, kMoveTimeout))
      << ClusterOf(*a).dump();
  EXPECT_EQ(testing::MetricValue(a->Metrics(), "ledger_kafka_consumed_total"), consumed_before)
      << "the move replayed records the standby copies had already applied";
  EXPECT_EQ(ClusterEvents(*a), want);
  ExpectSameAnswers(*single, *a, h.orgs);
  EXPECT_EQ(a->Stop(), 0);
}

// The rejected store of `shard`, as `asked` answers it (forwarded to the
// owner when need be): "org/event_id" -> rejected id.
std::map<std::string, uint64_t> RejectedOf(const Ledgerd& asked, int shard) {
  std::map<std::string, uint64_t> out;
  HttpResponse r = asked.Get("/v1/ledger/rejected?shard=" + std::to_string(shard));
  EXPECT_EQ(r.status, 200) << r.body;
  Json page = Json::parse(r.body, nullptr, false);
  for (const Json& rec : page.value("rejected", Json::array())) {
    if (rec["event_id"].is_string() && rec["org_id"].is_string()) {
      out[rec["org_id"].get<std::string>() + "/" + rec["event_id"].get<std::string>()] =
          rec["id"].get<uint64_t>();
    }
  }
  return out;
}

// A rejected message is re-driven through its shard's log, from any
// instance: it is judged again on its stored bytes and leaves the rejected
// store when accepted, as on one ledgerd, and every copy of the shard (here
// a restore from the log on another instance) holds the very same records.
TEST(ClusterLedgerd, ARejectedMessageIsReDrivenThroughItsShardsLog) {
  MockProcess mock;
  ASSERT_FALSE(mock.bootstrap.empty());
  TempDir tmp;
  auto a = StartInstance("a", tmp.sub("a"), mock.bootstrap);
  ASSERT_TRUE(a->started());
  ASSERT_TRUE(WaitUntil([&] { return AllServedBy(*a, {"a"}); }, kMoveTimeout));
  auto b = StartInstance("b", tmp.sub("b"), mock.bootstrap);
  ASSERT_TRUE(b->started());
  ASSERT_TRUE(WaitUntil(
      [&] {
        return AllServedBy(*a, {"a", "b"}) && !OwnedBy(*a, "b").empty();
      },
      kMoveTimeout));
  Ledgerd single;
  std::vector<Ledgerd*> both{a.get(), b.get()};
  auto post = [&](const std::string& line) {
    ASSERT_TRUE(PostUntilAcknowledged(both, 0, line + "\n"));
    ASSERT_EQ(single.Post("/v1/events", line + "\n", "application/x-ndjson").status, 200);
  };
  // Per org: a cost center before its org (rejected: unknown org), then the
  // org; a workspace under a cost center that never comes (rejected twice).
  const int kOrgs = 8;
  auto org = [](int i) { return "rd-" + std::to_string(i); };
  for (int i = 0; i < kOrgs; i++) {
    const std::string o = org(i);
    post(
        R"({"event_id":"cc","org_id":")" + o +
        R"(","occurred_at":"2026-01-01T00:00:00Z","cost_center_created":{"cost_center_id":"cc-1","name":"One"}})");
    post(
        R"({"event_id":"ws","org_id":")" + o +
        R"(","occurred_at":"2026-01-01T00:00:00Z","workspace_created":{"workspace_id":"ws-1","cost_center_id":"cc-9","name":"W"}})");
    post(
        R"({"event_id":"org","org_id":")" + o +
        R"(","occurred_at":"2026-01-01T00:00:00Z","organization_created":{"name":"Org","currency":"USD","billing_account":"B-1"}})");
  }
  const std::vector<std::string> heads_before = ShardHeads(*a);
  for (int i = 0; i < kOrgs; i++) {
    const int shard = cluster::ShardOf(org(i), kShards);
    // Ask the instance that does not serve the shard: the retry is forwarded.
    const std::vector<int> a_owns = OwnedBy(*a, "a");
    Ledgerd& asked = std::find(a_owns.begin(), a_owns.end(), shard) == a_owns.end() ? *a : *b;
    std::map<std::string, uint64_t> rejected = RejectedOf(asked, shard);
    const std::string cc = org(i) + "/cc", ws = org(i) + "/ws";
    ASSERT_TRUE(rejected.count(cc) && rejected.count(ws)) << org(i);
    const std::string retry = "/v1/ledger/rejected/" + std::to_string(rejected[cc]) +
                              "/retry?shard=" + std::to_string(shard);
    HttpResponse r = asked.Post(retry, "");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Json::parse(r.body)["accepted"], 1) << r.body;
    EXPECT_EQ(asked.Post(retry, "").status, 404) << "re-driven and accepted: gone";
    HttpResponse again = asked.Post("/v1/ledger/rejected/" + std::to_string(rejected[ws]) +
                                        "/retry?shard=" + std::to_string(shard),
                                    "");
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(Json::parse(again.body)["rejected"][0]["code"], "unknown_cost_center") << again.body;
    // Accepted, it left the store; rejected again, it stays under its id.
    std::map<std::string, uint64_t> after = RejectedOf(asked, shard);
    EXPECT_FALSE(after.count(cc));
    EXPECT_EQ(after[ws], rejected[ws]);
  }
  // The same re-drives on one ledgerd: the orgs answer alike.
  const Json single_rejected = Json::parse(single.Get("/v1/ledger/rejected").body);
  ASSERT_EQ(single_rejected["rejected"].size(), 2u * kOrgs);
  for (const Json& rec : single_rejected["rejected"]) {
    const std::string id = std::to_string(rec["id"].get<uint64_t>());
    EXPECT_EQ(single.Post("/v1/ledger/rejected/" + id + "/retry", "").status, 200) << id;
  }
  std::set<std::string> orgs;
  for (int i = 0; i < kOrgs; i++) orgs.insert(org(i));
  ExpectSameAnswers(single, *a, orgs);

  // Retries racing: each passes the owner's check before the first is
  // applied, so the later ones find the rejection gone. They are judged as
  // one ledgerd judges them, with the original source (here a binary Kafka
  // message): duplicates, never a new rejection of the bytes as HTTP JSON.
  const std::string race = "rd-race";
  events::Envelope binary;
  binary.set_event_id("cc");
  binary.set_org_id(race);
  binary.set_occurred_at("2026-01-01T00:00:00Z");
  binary.mutable_cost_center_created()->set_cost_center_id("cc-1");
  binary.mutable_cost_center_created()->set_name("One");
  kafka_testing::TestProducer producer(mock.bootstrap);
  producer.Send("billing.events", race, binary.SerializeAsString());
  ASSERT_TRUE(producer.Flush());
  const int race_shard = cluster::ShardOf(race, kShards);
  std::map<std::string, uint64_t> race_rejected;
  ASSERT_TRUE(WaitUntil(
      [&] {
        race_rejected = RejectedOf(*a, race_shard);
        return race_rejected.count(race + "/cc") > 0;
      },
      kMoveTimeout));
  post(
      R"({"event_id":"org","org_id":")" + race +
      R"(","occurred_at":"2026-01-01T00:00:00Z","organization_created":{"name":"Org","currency":"USD","billing_account":"B-1"}})");
  const std::string race_retry = "/v1/ledger/rejected/" +
                                 std::to_string(race_rejected[race + "/cc"]) +
                                 "/retry?shard=" + std::to_string(race_shard);
  std::vector<HttpResponse> answers(4);
  std::vector<std::thread> retries;
  for (size_t k = 0; k < answers.size(); k++) {
    retries.emplace_back([&, k] { answers[k] = both[k % 2]->Post(race_retry, ""); });
  }
  for (std::thread& t : retries) t.join();
  int accepted = 0, raced = 0;
  for (const HttpResponse& r : answers) {
    ASSERT_TRUE(r.status == 200 || r.status == 404) << r.status << " " << r.body;
    if (r.status != 200) continue;
    Json answer = Json::parse(r.body);
    EXPECT_TRUE(answer["rejected"].empty()) << r.body;
    accepted += answer["accepted"].get<int>();
    raced += answer["duplicates"].get<int>();
  }
  EXPECT_EQ(accepted, 1);
  std::fprintf(stderr, "%d of %zu racing retries found the rejection gone\n", raced,
               answers.size());
  EXPECT_EQ(RejectedOf(*a, race_shard).count(race + "/cc"), 0u);
  EXPECT_NE(a->Get("/v1/orgs/" + race).body.find("cc-1"), std::string::npos);

  // b leaves; a restores b's shards from the log (its own copies of them are
  // from before any event): the re-drives replay to the very same records.
  // The members' table is refreshed every 250 ms: wait until it shows every
  // accepted event before taking the heads from it.
  // (The single ledgerd lacks the race's Kafka event.)
  ASSERT_TRUE(WaitUntil([&] { return ClusterEvents(*a) == HeadOf(single) + 1; }, kMoveTimeout));
  const std::vector<std::string> heads = ShardHeads(*a);
  EXPECT_NE(heads, heads_before);
  EXPECT_EQ(b->Stop(), 0);
  ASSERT_TRUE(WaitUntil([&] { return AllServedBy(*a, {"a"}); }, kMoveTimeout));
  ASSERT_TRUE(WaitUntil([&] { return ShardHeads(*a) == heads; }, kMoveTimeout))
      << ::testing::PrintToString(heads) << "\n"
      << ClusterOf(*a).dump();
  ExpectSameAnswers(single, *a, orgs);
}

}  // namespace
}  // namespace billing
