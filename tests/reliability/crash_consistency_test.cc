// Crash consistency of the real ledgerd: several threads post events over
// HTTP while a Kafka broker in this process feeds it more, and ledgerd is
// killed with SIGKILL at seeded random moments (after a random number of
// acknowledged HTTP events and Kafka appends in each life), many times over,
// and restarted on the same data directory. Posters retry what was not
// acknowledged, as real producers do. At the end every HTTP event and every
// Kafka message is in the ledger exactly once, no Kafka message was read
// twice, the chain verifies, totals equal what was sent, and every read model
// answer equals the answer after `ledgerctl replay` rebuilt the read models
// from the ledger. The seed is printed; LEDGER_CRASH_SEED=N replays a run and
// LEDGER_CRASH_ROUNDS=N changes the number of kills.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "kafka/embedded_kafka.h"
#include "tests/kafka/kafka_test_support.h"
#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace billing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::Http;
using testing::Ledgerd;
using testing::MetricValue;
using testing::TempDir;
using testing::WaitUntil;

constexpr int kRoundsDefault = 12;
constexpr int kHttpPosters = 4;
constexpr int kKafkaOrgs = 4;  // one per partition
// Events per HTTP body: 1..kBodyEventsMax, seeded.
constexpr int kBodyEventsMax = 5;
// Each life ends, by a seeded coin, either after a seeded number (0..max) of
// HTTP events acknowledged in it, mostly before its Kafka consumer has joined
// the group (which takes the mock broker about 3 s), or after a seeded
// number (1..max) of Kafka messages appended in it: in the first batches of
// the backlog that built up while ledgerd was down (up to
// kKafkaBatchEventsMax = 1000 a batch), or later in steady state.
constexpr int kKillAfterHttpEventsMax = 1500;
constexpr int kKillAfterKafkaEventsMax = 2500;
// A poster's pause between bodies: bounds the events a run produces (and
// the time to check them), not a synchronization.
constexpr auto kPosterPause = 5ms;
// Kafka messages produced per producer step, and the step interval: about
// 400 messages a second, so every life starts with a backlog to read.
constexpr int kKafkaChunk = 20;
constexpr auto kKafkaChunkInterval = 50ms;
constexpr auto kLifeTimeout = 60s;
constexpr auto kDrainTimeout = 120s;
// Every usage event is worth the same, so totals are easy to predict.
constexpr const char* kAmount = "0.01";
constexpr int64_t kAmountCents = 1;

uint64_t SeedFromEnvOrRandom() {
  if (const char* s = std::getenv("LEDGER_CRASH_SEED")) return std::stoull(s);
  return std::random_device{}();
}

int RoundsFromEnv() {
  const char* s = std::getenv("LEDGER_CRASH_ROUNDS");
  return s ? std::stoi(s) : kRoundsDefault;
}

std::vector<std::string> SetupIds(const std::string& org) {
  return {org + ":org", org + ":cc", org + ":ws", org + ":prv"};
}

// Where the current ledgerd listens (0 while there is none), and a
// generation that changes with every start, so posters waiting for a new
// ledgerd wake up when there is one.
class Target {
 public:
  void Set(uint16_t port) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      port_ = port;
      generation_++;
    }
    cv_.notify_all();
  }
  uint16_t port() {
    std::lock_guard<std::mutex> lock(mu_);
    return port_;
  }
  // Waits until a ledgerd other than the one that failed is up, or `wait`
  // passes (the same one may still answer: the failure was a timeout).
  void AwaitChange(uint16_t failed_port, std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, wait, [&] { return port_ != 0 && port_ != failed_port; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint16_t port_ = 0;
  uint64_t generation_ = 0;
};

// One HTTP producer: its own org, bodies of seeded sizes, every body retried
// until it is acknowledged (200 with every event accepted or a duplicate).
class Poster {
 public:
  Poster(int index, uint64_t seed, Target* target, std::atomic<int64_t>* acked_total)
      : org_("horg" + std::to_string(index)),
        rng_(seed),
        target_(target),
        acked_total_(acked_total) {}

  void Run(const std::atomic<bool>& stop) {
    Post(kafka_testing::StructureEvents(org_), SetupIds(org_));
    while (!stop && error_.empty()) {
      int n = std::uniform_int_distribution<int>(1, kBodyEventsMax)(rng_);
      std::vector<std::string> events, ids;
      for (int i = 0; i < n; ++i, ++next_) {
        events.push_back(kafka_testing::Usage(org_, next_, kAmount));
        ids.push_back(org_ + ":use:" + std::to_string(next_));
      }
      Post(events, ids);
      std::this_thread::sleep_for(kPosterPause);
    }
  }

  const std::string& org() const { return org_; }
  const std::vector<std::string>& acked() const { return acked_; }
  int usage_acked() const { return usage_acked_; }
  int duplicates() const { return duplicates_; }
  const std::string& error() const { return error_; }

 private:
  void Post(const std::vector<std::string>& events, const std::vector<std::string>& ids) {
    std::string body;
    for (const auto& e : events) body += e + "\n";
    auto deadline = std::chrono::steady_clock::now() + kLifeTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      uint16_t port = target_->port();
      if (port == 0) {
        target_->AwaitChange(0, 100ms);
        continue;
      }
      auto r = Http(port, "POST", "/v1/events", body, "application/x-ndjson");
      if (r.status != 200) {
        // Killed under us (no answer), or not serving yet: not acknowledged,
        // so send the very same body again to the next ledgerd.
        target_->AwaitChange(port, 20ms);
        continue;
      }
      Json answer = Json::parse(r.body, nullptr, false);
      if (answer.is_discarded() || !answer["rejected"].empty() ||
          answer["accepted"].get<int>() + answer["duplicates"].get<int>() !=
              static_cast<int>(ids.size())) {
        error_ = org_ + ": unexpected answer " + r.body;
        return;
      }
      duplicates_ += answer["duplicates"].get<int>();
      acked_.insert(acked_.end(), ids.begin(), ids.end());
      if (ids[0].find(":use:") != std::string::npos) usage_acked_ += static_cast<int>(ids.size());
      *acked_total_ += static_cast<int64_t>(ids.size());
      return;
    }
    error_ = org_ + ": a body was never acknowledged";
  }

  std::string org_;
  std::mt19937_64 rng_;
  Target* target_;
  std::atomic<int64_t>* acked_total_;
  int next_ = 1;
  std::vector<std::string> acked_;
  int usage_acked_ = 0;
  int duplicates_ = 0;
  std::string error_;
};

// Every read-model answer of the SPEC for `orgs`, by request target.
std::map<std::string, std::string> ReadModelAnswers(uint16_t port,
                                                    const std::vector<std::string>& orgs) {
  std::map<std::string, std::string> out;
  for (const auto& org : orgs) {
    const std::string base = "/v1/orgs/" + org;
    for (const std::string& target :
         {base + "/dashboard?months=3&end=2026-02",
          base + "/dashboard?months=3&end=2026-02&cost_center=cc-1",
          base + "/usage-history?months=3&end=2026-02", base + "/usage-history/2026-01",
          base + "/invoices?month=2026-01", base + "/invoices/2026-01-org"}) {
      auto r = Http(port, "GET", target);
      out[target] = std::to_string(r.status) + " " + r.body;
    }
    // Drill-down by the ids the month answer gives.
    Json month =
        Json::parse(Http(port, "GET", base + "/usage-history/2026-01").body, nullptr, false);
    if (month.is_object() && month["items"].is_array()) {
      for (const auto& item : month["items"]) {
        const std::string target =
            base + "/usage-history/2026-01/items/" + item["id"].get<std::string>();
        auto r = Http(port, "GET", target);
        out[target] = std::to_string(r.status) + " " + r.body;
      }
    }
  }
  return out;
}

TEST(CrashConsistency, KillNineDuringHttpAndKafkaIngestLosesAndRepeatsNothing) {
  const uint64_t seed = SeedFromEnvOrRandom();
  const int rounds = RoundsFromEnv();
  std::printf("crash seed: %llu, %d kills (replay with LEDGER_CRASH_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), rounds, static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);

  const std::string topic = "billing.events";
  auto kafka = api::EmbeddedKafka::Start({{topic}, kKafkaOrgs});
  ASSERT_TRUE(kafka.ok()) << kafka.status().ToString();
  kafka_testing::TestProducer producer((*kafka)->bootstrap());
  std::vector<std::string> kafka_orgs, kafka_ids;
  for (int p = 0; p < kKafkaOrgs; ++p) {
    const std::string org = "korg" + std::to_string(p);
    kafka_orgs.push_back(org);
    for (const auto& e : kafka_testing::StructureEvents(org)) producer.Send(topic, org, e, p);
    for (const auto& id : SetupIds(org)) kafka_ids.push_back(id);
  }
  ASSERT_TRUE(producer.Flush());

  // The producer runs through every life; it is a rate, not a wait.
  std::atomic<bool> stop_producing{false};
  std::vector<int> kafka_usage(kKafkaOrgs, 0);
  int next_kafka = 1;
  bool produced_ok = true;
  std::thread kafka_thread([&] {
    while (!stop_producing) {
      for (int i = 0; i < kKafkaChunk; ++i, ++next_kafka) {
        int p = next_kafka % kKafkaOrgs;
        producer.Send(topic, kafka_orgs[p],
                      kafka_testing::Usage(kafka_orgs[p], next_kafka, kAmount), p);
        kafka_ids.push_back(kafka_orgs[p] + ":use:" + std::to_string(next_kafka));
        kafka_usage[p]++;
      }
      produced_ok = produced_ok && producer.Flush();
      std::this_thread::sleep_for(kKafkaChunkInterval);
    }
  });

  Target target;
  std::atomic<int64_t> http_acked{0};
  std::atomic<bool> stop_posting{false};
  std::vector<std::unique_ptr<Poster>> posters;
  std::vector<std::thread> poster_threads;
  for (int t = 0; t < kHttpPosters; ++t) {
    posters.push_back(std::make_unique<Poster>(t, seed + 1 + t, &target, &http_acked));
    poster_threads.emplace_back([&, t] { posters[t]->Run(stop_posting); });
  }
  auto stop_all = [&] {
    stop_posting = true;
    stop_producing = true;
    for (auto& th : poster_threads) th.join();
    kafka_thread.join();
  };

  TempDir tmp;
  const std::string data = tmp.sub("data");
  // Each life joins a group of its own: the offsets that matter are the ones
  // stored in the ledger, and a new group is assigned at once instead of
  // waiting out the session of the member that was just killed.
  auto life_options = [&](int life) {
    return testing::LedgerdOptions{.data_dir = data,
                                   .kafka = testing::KafkaSource::kBrokers,
                                   .kafka_brokers = (*kafka)->bootstrap(),
                                   .kafka_topic = topic,
                                   .kafka_group = "crash-life-" + std::to_string(life)};
  };
  for (int round = 0; round < rounds; ++round) {
    Ledgerd ledgerd(life_options(round));
    if (!ledgerd.started()) {
      stop_all();
      FAIL() << "ledgerd did not start in round " << round;
    }
    target.Set(ledgerd.port());
    const bool by_kafka = std::bernoulli_distribution(0.5)(rng);
    const int64_t http_start = http_acked;
    const int64_t goal =
        by_kafka ? std::uniform_int_distribution<int64_t>(1, kKillAfterKafkaEventsMax)(rng)
                 : std::uniform_int_distribution<int64_t>(0, kKillAfterHttpEventsMax)(rng);
    int64_t kafka_appended = 0;
    bool reached = WaitUntil(
        [&] {
          std::string m = ledgerd.Metrics();
          kafka_appended = MetricValue(m, "ledger_kafka_appended_total");
          EXPECT_EQ(MetricValue(m, "ledger_kafka_duplicates_total"), 0)
              << "a Kafka message was read twice";
          return by_kafka ? kafka_appended >= goal : http_acked - http_start >= goal;
        },
        kLifeTimeout);
    int exit_code = ledgerd.Kill();
    target.Set(0);
    std::printf(
        "round %d: SIGKILL after %lld HTTP events acknowledged and %lld Kafka messages appended in "
        "this "
        "life (goal: %lld %s)\n",
        round, static_cast<long long>(http_acked - http_start),
        static_cast<long long>(kafka_appended), static_cast<long long>(goal),
        by_kafka ? "Kafka" : "HTTP");
    std::fflush(stdout);
    if (!reached || exit_code != 128 + SIGKILL) {
      stop_all();
      FAIL() << "round " << round << ": goal reached " << reached << ", exit " << exit_code;
    }
  }

  // The last life: posting and producing stop, everything sent gets in.
  Ledgerd ledgerd(life_options(rounds));
  ASSERT_TRUE(ledgerd.started());
  target.Set(ledgerd.port());
  stop_all();
  ASSERT_TRUE(produced_ok) << "the test's producer lost messages";
  std::set<std::string> http_ids;
  int http_duplicates = 0;
  for (const auto& p : posters) {
    ASSERT_TRUE(p->error().empty()) << p->error();
    http_ids.insert(p->acked().begin(), p->acked().end());
    http_duplicates += p->duplicates();
  }
  const int64_t expected = static_cast<int64_t>(http_ids.size() + kafka_ids.size());
  int64_t head = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        head = MetricValue(ledgerd.Metrics(), "ledger_head_sequence");
        return head >= expected;
      },
      kDrainTimeout))
      << "head " << head << " of " << expected;
  std::string metrics = ledgerd.Metrics();
  EXPECT_EQ(MetricValue(metrics, "ledger_kafka_duplicates_total"), 0)
      << "a Kafka message was read twice";
  EXPECT_EQ(MetricValue(metrics, "ledger_kafka_rejected_total"), 0);
  std::printf(
      "%zu HTTP events (%d acknowledged as duplicates of an unanswered earlier try), %zu Kafka "
      "messages\n",
      http_ids.size(), http_duplicates, kafka_ids.size());

  // Exactly once: the ledger holds every id sent, once, and nothing else.
  auto stream = Http(ledgerd.port(), "GET", "/v1/ledger/events");
  ASSERT_EQ(stream.status, 200);
  std::map<std::string, int> seen;
  int64_t lines = 0;
  std::istringstream in(stream.body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    Json record = Json::parse(line, nullptr, false);
    ASSERT_FALSE(record.is_discarded()) << line;
    ++lines;
    EXPECT_EQ(record["sequence"].get<int64_t>(), lines) << "sequences have a gap";
    seen[record["event"]["event_id"].get<std::string>()]++;
  }
  EXPECT_EQ(lines, expected);
  for (const auto& id : http_ids) EXPECT_EQ(seen[id], 1) << "HTTP event " << id;
  for (const auto& id : kafka_ids) EXPECT_EQ(seen[id], 1) << "Kafka message " << id;
  EXPECT_EQ(seen.size(), static_cast<size_t>(expected)) << "the ledger holds events nobody sent";

  Json verify = Json::parse(Http(ledgerd.port(), "GET", "/v1/ledger/verify").body, nullptr, false);
  EXPECT_EQ(verify["ok"], true) << verify.dump();
  EXPECT_EQ(verify["events"], expected);

  // Totals are what was sent: every usage event is worth one cent.
  std::vector<std::string> orgs = kafka_orgs;
  std::map<std::string, int64_t> usage_cents;
  for (int p = 0; p < kKafkaOrgs; ++p) usage_cents[kafka_orgs[p]] = kafka_usage[p] * kAmountCents;
  for (const auto& p : posters) {
    orgs.push_back(p->org());
    usage_cents[p->org()] = p->usage_acked() * kAmountCents;
  }
  for (const auto& org : orgs) {
    Json month =
        Json::parse(Http(ledgerd.port(), "GET", "/v1/orgs/" + org + "/usage-history/2026-01").body,
                    nullptr, false);
    char want[32];
    std::snprintf(want, sizeof(want), "%lld.%02lld", static_cast<long long>(usage_cents[org] / 100),
                  static_cast<long long>(usage_cents[org] % 100));
    EXPECT_EQ(month["total"], want) << org;
  }

  // Read models equal a fresh rebuild from the ledger.
  auto before = ReadModelAnswers(ledgerd.port(), orgs);
  ASSERT_EQ(ledgerd.Stop(), 0);
  testing::Child replay({testing::LedgerctlPath(), "replay", data});
  ASSERT_EQ(replay.Wait(), 0) << "ledgerctl replay failed";
  Ledgerd rebuilt({.data_dir = data});
  ASSERT_TRUE(rebuilt.started());
  auto after = ReadModelAnswers(rebuilt.port(), orgs);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [target_path, answer] : before) {
    EXPECT_EQ(answer, after[target_path]) << target_path;
    EXPECT_EQ(answer.rfind("200 ", 0), 0u) << target_path << ": " << answer;
  }
  EXPECT_EQ(rebuilt.Stop(), 0);
}

}  // namespace
}  // namespace billing
