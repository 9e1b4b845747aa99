// The real ledgerd binary consuming Kafka. With --kafka-embedded it prints its
// broker, shows it in /healthz and ingests what `ledgerctl produce` publishes
// there (the golden example, giving the expected answers), also after a
// restart that starts a new, empty embedded broker. With
// --kafka-brokers pointing at a broker in this test process, a ledgerd killed
// with SIGKILL in the middle of ingestion, again and again, and restarted on
// the same data directory ends with every event exactly once, a verifying
// chain, and no message read twice (its duplicate counter stays at zero).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "kafka/embedded_kafka.h"
#include "tests/kafka/kafka_test_support.h"
#include "tests/testing/files.h"
#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace billing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::Child;
using testing::ExamplesDir;
using testing::Http;
using testing::KafkaSource;
using testing::Ledgerd;
using testing::MetricValue;
using testing::ReadFile;
using testing::TempDir;
using testing::WaitUntil;

// How long `ledgerctl produce` may take to deliver the golden example.
constexpr auto kProduceTimeout = 30s;
constexpr auto kIngestTimeout = 90s;
// Short, so that a restarted ledgerd gets its partitions soon after the group
// has given up on the killed one.
constexpr auto kSessionTimeout = 4000ms;

Json ReadJsonFile(const std::string& path) { return Json::parse(ReadFile(path), nullptr, false); }

// ledgerd on `data_dir` with its own embedded broker.
testing::LedgerdOptions WithEmbeddedBroker(const std::string& data_dir) {
  return {.data_dir = data_dir,
          .kafka = KafkaSource::kEmbedded,
          .kafka_session_timeout = kSessionTimeout};
}

// The ledger's head sequence; -1 while /metrics is not answered.
int64_t Head(const Ledgerd& ledgerd) {
  std::string metrics = ledgerd.Metrics();
  return metrics.empty() ? -1 : MetricValue(metrics, "ledger_head_sequence");
}

TEST(LedgerdKafka, EmbeddedBrokerIngestsWhatLedgerctlProduces) {
  TempDir tmp;
  Ledgerd ledgerd(WithEmbeddedBroker(tmp.sub("data")));
  ASSERT_TRUE(ledgerd.started());
  const std::string bootstrap = ledgerd.kafka_bootstrap();

  auto health = Json::parse(Http(ledgerd.port(), "GET", "/healthz").body, nullptr, false);
  EXPECT_EQ(health["kafka_bootstrap"], bootstrap);

  Child produce({testing::LedgerctlPath(), "produce", "--brokers", bootstrap, "--topic",
                 "billing.events", ExamplesDir() + "/events.ndjson"});
  EXPECT_EQ(produce.WaitForLine("delivered ", kProduceTimeout),
            "62 of 62 messages to billing.events");
  EXPECT_EQ(produce.Wait(), 0);

  // The golden outcomes: 57 accepted, the rest duplicates or rejected.
  Json outcomes = ReadJsonFile(ExamplesDir() + "/expected/outcomes.json");
  ASSERT_FALSE(outcomes.is_discarded());
  std::string outcomes_text = outcomes.dump();
  auto count = [&](const std::string& kind) {
    int n = 0;
    for (size_t at = 0; (at = outcomes_text.find("\"" + kind + "\"", at)) != std::string::npos;
         ++at)
      n++;
    return n;
  };
  const int accepted = 57;
  ASSERT_TRUE(WaitUntil([&] { return Head(ledgerd) == accepted; }, kIngestTimeout));
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::string m = ledgerd.Metrics();
        return MetricValue(m, "ledger_kafka_appended_total") +
                   MetricValue(m, "ledger_kafka_duplicates_total") +
                   MetricValue(m, "ledger_kafka_rejected_total") ==
               62;
      },
      kIngestTimeout));
  std::string metrics = ledgerd.Metrics();
  EXPECT_EQ(MetricValue(metrics, "ledger_kafka_consumed_total"), 62);
  EXPECT_EQ(MetricValue(metrics, "ledger_kafka_duplicates_total"), count("duplicate"));
  EXPECT_EQ(MetricValue(metrics, "ledger_kafka_rejected_total"), count("rejected"));

  auto verify = Json::parse(Http(ledgerd.port(), "GET", "/v1/ledger/verify").body, nullptr, false);
  EXPECT_EQ(verify["ok"], true);
  EXPECT_EQ(verify["events"], accepted);

  auto rejected =
      Json::parse(Http(ledgerd.port(), "GET", "/v1/ledger/rejected").body, nullptr, false);
  ASSERT_TRUE(rejected["rejected"].is_array());
  for (const Json& r : rejected["rejected"]) {
    EXPECT_EQ(r["source"]["kind"], "kafka");
    EXPECT_EQ(r["source"]["topic"], "billing.events");
  }

  // Answers whose lists have a fixed order match the golden files exactly.
  for (const char* org : {"acme", "kaiju-jp"}) {
    for (const char* name : {"dashboard.json", "usage-history.json"}) {
      Json expected = ReadJsonFile(ExamplesDir() + "/expected/" + std::string(org) + "/" + name);
      ASSERT_FALSE(expected.is_discarded()) << org << "/" << name;
      std::string target = expected["request"].get<std::string>().substr(4);  // after "GET "
      auto got = Http(ledgerd.port(), "GET", target);
      EXPECT_EQ(got.status, 200) << target;
      Json answer = Json::parse(got.body, nullptr, false);
      // The golden files predate budgets: their dashboards have no "budget"
      // and "forecast" (tests/service/budgets_http_test.cc checks those).
      for (Json& month : answer["months"]) {
        if (!expected["response"]["months"][0].contains("budget")) month.erase("budget");
        if (!expected["response"]["months"][0].contains("forecast")) month.erase("forecast");
      }
      EXPECT_EQ(answer, expected["response"]) << target;
    }
  }

  EXPECT_EQ(ledgerd.Stop(), 0);
}

TEST(LedgerdKafka, RestartedEmbeddedBrokerIsReadFromItsStart) {
  // The embedded broker's log dies with ledgerd; the offsets stored by the
  // first run must not be applied to the second run's new, empty log, or the
  // second run would skip as many messages there.
  TempDir tmp;
  const std::string data = tmp.sub("data");
  auto produce_golden = [&](const std::string& bootstrap) {
    Child produce({testing::LedgerctlPath(), "produce", "--brokers", bootstrap, "--topic",
                   "billing.events", ExamplesDir() + "/events.ndjson"});
    EXPECT_EQ(produce.WaitForLine("delivered ", kProduceTimeout),
              "62 of 62 messages to billing.events");
    EXPECT_EQ(produce.Wait(), 0);
  };
  auto settled = [](Ledgerd& l) {
    std::string m = l.Metrics();
    return MetricValue(m, "ledger_kafka_appended_total") +
           MetricValue(m, "ledger_kafka_duplicates_total") +
           MetricValue(m, "ledger_kafka_rejected_total");
  };
  {
    Ledgerd first(WithEmbeddedBroker(data));
    ASSERT_TRUE(first.started());
    produce_golden(first.kafka_bootstrap());
    ASSERT_TRUE(WaitUntil([&] { return settled(first) == 62; }, kIngestTimeout));
    ASSERT_EQ(first.Stop(), 0);
  }
  Ledgerd second(WithEmbeddedBroker(data));
  ASSERT_TRUE(second.started());
  produce_golden(second.kafka_bootstrap());
  // Every message of the new log is read: all known already, none new.
  ASSERT_TRUE(WaitUntil([&] { return settled(second) == 62; }, kIngestTimeout))
      << "settled " << settled(second) << " of 62";
  std::string m = second.Metrics();
  EXPECT_EQ(MetricValue(m, "ledger_kafka_appended_total"), 0);
  EXPECT_EQ(Head(second), 57);
  EXPECT_EQ(second.Stop(), 0);
}

TEST(LedgerdKafka, KillNineDuringIngestionLosesAndRepeatsNothing) {
  // The broker lives here, so it and its messages survive ledgerd's deaths.
  const std::string topic = "billing.events";
  constexpr int kPartitions = 4;
  auto kafka = api::EmbeddedKafka::Start({{topic}, kPartitions});
  ASSERT_TRUE(kafka.ok()) << kafka.status().ToString();
  kafka_testing::TestProducer producer((*kafka)->bootstrap());

  // Four orgs, one per partition; 24 k usage events (~2.4 MB a partition,
  // inside the mock broker's memory) produced in chunks, at most two chunks
  // ahead of the ledger, so a backlog is being read at every kill.
  constexpr int kOrgs = 4;
  constexpr int kUsage = 24000;
  constexpr int kChunk = 2000;
  const int64_t total = kOrgs * 4 + kUsage;
  int64_t produced = 0;
  int next_usage = 1;
  for (int o = 0; o < kOrgs; ++o) {
    const std::string org = "org" + std::to_string(o);
    for (const std::string& e : kafka_testing::StructureEvents(org)) {
      producer.Send(topic, org, &e, o);
      produced++;
    }
  }
  auto produce_chunk = [&] {
    for (int i = 0; i < kChunk && next_usage <= kUsage; ++i, ++next_usage) {
      int o = next_usage % kOrgs;
      const std::string org = "org" + std::to_string(o);
      producer.Send(topic, org, kafka_testing::Usage(org, next_usage, "0.001"), o);
      produced++;
    }
    return producer.Flush();
  };
  ASSERT_TRUE(produce_chunk());

  TempDir tmp;
  const std::string data = tmp.sub("data");
  const testing::LedgerdOptions consuming{.data_dir = data,
                                          .kafka = KafkaSource::kBrokers,
                                          .kafka_brokers = (*kafka)->bootstrap(),
                                          .kafka_topic = topic,
                                          .kafka_session_timeout = kSessionTimeout};
  const int64_t kill_at[] = {3000, 9000, 15000};
  for (int64_t threshold : kill_at) {
    Ledgerd ledgerd(consuming);
    ASSERT_TRUE(ledgerd.started());
    int64_t head_at_kill = -1;
    ASSERT_TRUE(WaitUntil(
        [&] {
          int64_t head = Head(ledgerd);
          if (head < 0) return false;
          if (head + 2 * kChunk >= produced && produced < total) {
            EXPECT_TRUE(produce_chunk());
          }
          if (head >= threshold && head < produced) {
            // Nothing read twice since this ledgerd started.
            EXPECT_EQ(MetricValue(ledgerd.Metrics(), "ledger_kafka_duplicates_total"), 0);
            ledgerd.Signal(SIGKILL);
            head_at_kill = head;
            return true;
          }
          return false;
        },
        kIngestTimeout))
        << "ledgerd never reached " << threshold << " events with a backlog";
    EXPECT_EQ(ledgerd.Wait(), 128 + SIGKILL);
    EXPECT_LT(head_at_kill, produced);
  }

  // The last life: everything else arrives, nothing twice.
  Ledgerd ledgerd(consuming);
  ASSERT_TRUE(ledgerd.started());
  ASSERT_TRUE(WaitUntil(
      [&] {
        int64_t head = Head(ledgerd);
        if (head >= 0 && head + 2 * kChunk >= produced && produced < total) {
          EXPECT_TRUE(produce_chunk());
        }
        return head == total;
      },
      kIngestTimeout))
      << "head " << Head(ledgerd) << " of " << total;
  std::string metrics = ledgerd.Metrics();
  EXPECT_EQ(MetricValue(metrics, "ledger_kafka_duplicates_total"), 0);
  EXPECT_EQ(MetricValue(metrics, "ledger_kafka_rejected_total"), 0);

  auto verify = Json::parse(Http(ledgerd.port(), "GET", "/v1/ledger/verify").body, nullptr, false);
  EXPECT_EQ(verify["ok"], true);
  EXPECT_EQ(verify["events"], total);

  auto stream = Http(ledgerd.port(), "GET", "/v1/ledger/events");
  ASSERT_EQ(stream.status, 200);
  std::set<std::string> ids;
  int64_t lines = 0;
  std::istringstream in(stream.body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    Json record = Json::parse(line, nullptr, false);
    ASSERT_FALSE(record.is_discarded()) << line;
    lines++;
    ids.insert(record["event"]["event_id"].get<std::string>());
  }
  EXPECT_EQ(lines, total);
  EXPECT_EQ(static_cast<int64_t>(ids.size()), total) << "some event is in the ledger twice";
  for (int n = 1; n <= kUsage; ++n) {
    const std::string id = "org" + std::to_string(n % kOrgs) + ":use:" + std::to_string(n);
    if (!ids.count(id)) {
      ADD_FAILURE() << id << " is missing";
      break;
    }
  }
  auto rejected =
      Json::parse(Http(ledgerd.port(), "GET", "/v1/ledger/rejected").body, nullptr, false);
  EXPECT_TRUE(rejected["rejected"].empty());

  EXPECT_EQ(ledgerd.Stop(), 0);
}

}  // namespace
}  // namespace billing
