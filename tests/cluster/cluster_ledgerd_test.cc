// Three real ledgerd instances sharing one cluster through a Kafka mock in its
// own process: events of many orgs by HTTP to every instance and by Kafka give,
// org by org, the answers of one ledgerd fed the same events; an instance
// SIGKILLed mid-ingest loses and doubles nothing that was acknowledged, its
// shards move to the others and every chain verifies; it joins again without
// loss, and each shard it holds, rebuilt on its own, answers the same; and a
// client's own Ledger-Forwarded header is refused, never followed.
#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

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
                                       const std::string& bootstrap) {
  return std::make_unique<Ledgerd>(testing::LedgerdOptions{
      .data_dir = data_dir,
      .kafka = KafkaSource::kBrokers,
      .kafka_brokers = bootstrap,
      .kafka_group = kGroup,
      .kafka_session_timeout = kSessionTimeout,
      .extra_args = {"--instance-id", id, "--shards", std::to_string(kShards)}});
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

// Seeded rounds: each seed makes another history and kills at another point.
class ClusterKill : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ClusterKill, AnInstanceKilledMidIngestLosesNothingAndJoinsAgain) {
  MockProcess mock;
  ASSERT_FALSE(mock.bootstrap.empty());
  TempDir tmp;
  const uint64_t seed = GetParam();
  const History h = Generate(seed);
  auto single = Reference(h);
  std::vector<std::unique_ptr<Ledgerd>> owned;
  for (const char* id : {"a", "b", "c"}) {
    owned.push_back(StartInstance(id, tmp.sub(id), mock.bootstrap));
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
  // A shard is a function of its partition: the copies the killed instance
  // kept of its shards, brought up to date from the log, must end in the
  // very records (same sequences, same hashes) the survivors rebuilt.
  const std::vector<std::string> heads = ShardHeads(*all[0]);

  // The killed instance joins again on its old directory: shards move back
  // to it, nothing is lost or doubled on the way.
  owned[2] = StartInstance("c", tmp.sub("c"), mock.bootstrap);
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

INSTANTIATE_TEST_SUITE_P(Seeds, ClusterKill, ::testing::Values(19, 23));

}  // namespace
}  // namespace billing
