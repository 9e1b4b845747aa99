// Proves that Kafka ingestion has exactly-once effect: messages produced over
// the real protocol to the embedded (librdkafka mock) broker are consumed into
// a real Billing on RocksDB in a temp dir, and every one of them is accepted,
// a duplicate or rejected exactly once, across partitions, restarts and
// rebalances, with per-org order kept and read models matching.
#include "kafka/kafka_consumer.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kafka/embedded_kafka.h"
#include "tests/kafka/kafka_test_support.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace billing {
namespace {

using namespace std::chrono_literals;
using kafka_testing::TestProducer;
using testing::TempDir;
using testing::WaitUntil;

constexpr int kPartitions = 4;
// The mock broker's group waits about session timeout - 1 s for the other
// members whenever one joins or leaves; short keeps rebalance tests short.
constexpr int kTestSessionTimeoutMs = 4000;
// Joining a group takes the mock broker 3 s; ingesting a few thousand events
// takes well under a second; this deadline only bounds a broken run.
constexpr auto kIngestTimeout = 60s;

class KafkaConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = api::EmbeddedKafka::Start({{topic_}, kPartitions});
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    kafka_ = std::move(started).value();
    producer_ = std::make_unique<TestProducer>(kafka_->bootstrap());
    billing_ = OpenBilling(dir_.sub("ledger"));
  }

  void TearDown() override {
    billing_.reset();
    producer_.reset();
    kafka_.reset();
  }

  std::unique_ptr<projections::Billing> OpenBilling(const std::string& path) {
    projections::BillingOptions o;
    o.dir = path;
    auto opened = projections::Billing::Open(o);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }

  std::unique_ptr<api::KafkaConsumer> StartConsumer(projections::Billing& billing,
                                                    const std::string& dlq_topic = "",
                                                    api::SubmitFn submit = nullptr) {
    api::KafkaOptions o;
    o.brokers = kafka_->bootstrap();
    o.topic = topic_;
    o.group = "test-group";
    o.dlq_topic = dlq_topic;
    o.session_timeout_ms = kTestSessionTimeoutMs;
    o.submit = std::move(submit);
    auto started = api::KafkaConsumer::Start(o, billing, metrics_);
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    return started.ok() ? std::move(started).value() : nullptr;
  }

  uint64_t Head() const { return billing_->ledger().head().sequence.value; }

  // Sends the four structural events of `org` to `partition`.
  void SendSetup(const std::string& org, int32_t partition) {
    for (const std::string& e : kafka_testing::StructureEvents(org)) {
      producer_->Send(topic_, org, &e, partition);
    }
  }

  // All event ids in the ledger, checking on the way that none repeats.
  std::set<std::string> LedgerEventIds() {
    std::set<std::string> ids;
    Status s = billing_->ledger().Scan(ledger::Sequence{0}, 0, [&](const ledger::Record& r) {
      auto env = ledger::DecodeEvent(r);
      EXPECT_TRUE(env.ok());
      if (env.ok()) {
        EXPECT_TRUE(ids.insert(env->event_id()).second) << env->event_id() << " twice";
      }
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return ids;
  }

  void ExpectChainVerifies(uint64_t events) {
    auto report = billing_->ledger().Verify();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->ok) << report->problem;
    EXPECT_EQ(report->events, events);
  }

  const std::string topic_ = "billing.events";
  TempDir dir_;
  std::unique_ptr<api::EmbeddedKafka> kafka_;
  std::unique_ptr<TestProducer> producer_;
  api::Metrics metrics_;
  std::unique_ptr<projections::Billing> billing_;
};

uint64_t Settled(const api::KafkaStats& s) { return s.appended + s.duplicates + s.rejected; }

TEST_F(KafkaConsumerTest, EveryMessageIsAcceptedDuplicateOrRejectedExactlyOnce) {
  // Six orgs keyed by org_id (librdkafka's default partitioner spreads them),
  // each with 200 usage events and, in between, five bad messages and ten
  // exact re-sends; plus one event of an org that does not exist.
  constexpr int kOrgs = 6;
  constexpr int kUsage = 200;
  const std::string not_json = "this is not json";
  int sent = 0;
  for (int o = 0; o < kOrgs; ++o) {
    const std::string org = "org" + std::to_string(o);
    auto send = [&](const std::string* value) {
      producer_->Send(topic_, org, value);
      sent++;
    };
    for (const std::string& e : kafka_testing::StructureEvents(org)) {
      send(&e);
    }
    for (int n = 1; n <= kUsage; ++n) {
      std::string usage = kafka_testing::Usage(org, n, std::to_string(n) + ".25");
      send(&usage);
      std::string bad;
      switch (n) {
        case 10:
          send(&not_json);
          break;
        case 20:
          send(nullptr);  // a tombstone: no value at all
          break;
        case 30:
          bad = kafka_testing::Usage(org, 100000 + n, "1.00", "no-such-provider");
          send(&bad);
          break;
        case 40:
          bad = kafka_testing::Usage(org, 5, "9.99");  // event 5 with other content
          send(&bad);
          break;
        case 50:
          bad = kafka_testing::Usage(org, 100000 + n, "1.00");
          bad.replace(bad.find(R"("amount":"1.00")"), 15, R"("amount":1.00)");  // a JSON number
          send(&bad);
          break;
        default:
          break;
      }
      if (n > 60 && n <= 70) {
        std::string again = kafka_testing::Usage(org, n - 60, std::to_string(n - 60) + ".25");
        send(&again);
      }
    }
  }
  const std::string ghost = kafka_testing::Usage("ghost", 1, "1.00");
  producer_->Send(topic_, "ghost", &ghost);
  sent++;
  ASSERT_TRUE(producer_->Flush());

  auto consumer = StartConsumer(*billing_);
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return Settled(consumer->stats()) == static_cast<uint64_t>(sent); },
                        kIngestTimeout))
      << "settled " << Settled(consumer->stats()) << " of " << sent;

  const uint64_t accepted = kOrgs * (4 + kUsage);
  api::KafkaStats stats = consumer->stats();
  EXPECT_EQ(stats.consumed, static_cast<uint64_t>(sent));
  EXPECT_EQ(stats.appended, accepted);
  EXPECT_EQ(stats.duplicates, static_cast<uint64_t>(kOrgs * 10));
  EXPECT_EQ(stats.rejected, static_cast<uint64_t>(kOrgs * 5 + 1));
  EXPECT_EQ(Head(), accepted);
  ExpectChainVerifies(accepted);

  // Every rejection is kept with its raw bytes and where it came from.
  auto rejected = billing_->ledger().ListRejected(0, 1000);
  ASSERT_TRUE(rejected.ok());
  ASSERT_EQ(rejected->size(), static_cast<size_t>(kOrgs * 5 + 1));
  std::map<std::string, int> by_code;
  int raw_kept = 0;
  for (const ledger::RejectedRecord& r : *rejected) {
    by_code[r.code()]++;
    EXPECT_EQ(r.source().kind(), ledger::Source::KAFKA);
    EXPECT_EQ(r.source().topic(), topic_);
    EXPECT_GE(r.source().partition(), 0);
    EXPECT_LT(r.source().partition(), kPartitions);
    if (r.raw() == not_json) raw_kept++;
  }
  EXPECT_EQ(raw_kept, kOrgs);
  EXPECT_EQ(by_code["invalid_argument"], kOrgs * 3);  // not JSON, tombstone, JSON number
  EXPECT_EQ(by_code["unknown_provider"], kOrgs);
  EXPECT_EQ(by_code["conflict"], kOrgs);
  EXPECT_EQ(by_code["unknown_org"], 1);

  // The read models saw each usage event once: sum(n + 0.25) for n = 1..200.
  const Sum expected_total = static_cast<Sum>(kUsage * (kUsage + 1) / 2) * kNanosPerUnit +
                             static_cast<Sum>(kUsage) * kNanosPerUnit / 4;
  const Month january{2026 * 12};
  for (int o = 0; o < kOrgs; ++o) {
    auto snap = billing_->Snapshot("org" + std::to_string(o), std::nullopt);
    ASSERT_TRUE(snap.ok()) << snap.status().ToString();
    projections::MonthDetail month = projections::MonthItems(*snap->org, *snap->view, january);
    EXPECT_TRUE(month.total == expected_total) << "org" << o;
    auto dashboard = projections::Dashboard(*snap->org, *snap->view, {january, 1}, std::nullopt);
    ASSERT_TRUE(dashboard.ok());
    ASSERT_EQ(dashboard->size(), 1u);
    EXPECT_TRUE((*dashboard)[0].billed == expected_total);
  }

  // The ledger's offsets are the partitions' ends, and the messages were
  // spread over more than one partition.
  int64_t offsets_total = 0;
  int used = 0;
  for (int32_t p = 0; p < kPartitions; ++p) {
    int64_t high = kafka_testing::HighWatermark(producer_->handle(), topic_, p);
    auto stored = billing_->ledger().KafkaNextOffset(topic_, p);
    ASSERT_TRUE(stored.ok());
    if (high > 0) {
      used++;
      ASSERT_TRUE(stored->has_value()) << "partition " << p;
      EXPECT_EQ(**stored, high) << "partition " << p;
      offsets_total += high;
    }
  }
  EXPECT_GE(used, 2);
  EXPECT_EQ(offsets_total, sent);

  // Caught up: the lag gauges say so.
  EXPECT_TRUE(WaitUntil(
      [&] {
        std::string text = metrics_.Render();
        for (int32_t p = 0; p < kPartitions; ++p) {
          int64_t high = kafka_testing::HighWatermark(producer_->handle(), topic_, p);
          if (high > 0 && text.find("ledger_kafka_lag{partition=\"" + std::to_string(p) +
                                    "\"} 0\n") == std::string::npos) {
            return false;
          }
        }
        return true;
      },
      10s));
  std::string text = metrics_.Render();
  EXPECT_NE(text.find("ledger_kafka_consumed_total " + std::to_string(sent) + "\n"),
            std::string::npos);
  EXPECT_NE(text.find("ledger_kafka_rejected_total " + std::to_string(kOrgs * 5 + 1) + "\n"),
            std::string::npos);
}

TEST_F(KafkaConsumerTest, EachOrgsEventsKeepTheirProducedOrder) {
  // Sixteen orgs over four partitions, sent interleaved, so every partition
  // mixes several orgs; structural events must precede usage (else they
  // would be rejected) and usage must keep its order.
  constexpr int kOrgs = 16;
  constexpr int kUsage = 50;
  for (int o = 0; o < kOrgs; ++o) {
    const std::string org = "org" + std::to_string(o);
    SendSetup(org, RD_KAFKA_PARTITION_UA);
  }
  for (int n = 1; n <= kUsage; ++n) {
    for (int o = 0; o < kOrgs; ++o) {
      const std::string org = "org" + std::to_string(o);
      producer_->Send(topic_, org, kafka_testing::Usage(org, n, "0.5"));
    }
  }
  ASSERT_TRUE(producer_->Flush());
  const uint64_t total = kOrgs * (4 + kUsage);

  auto consumer = StartConsumer(*billing_);
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return Settled(consumer->stats()) == total; }, kIngestTimeout));
  EXPECT_EQ(consumer->stats().rejected, 0u);
  EXPECT_EQ(Head(), total);

  for (int o = 0; o < kOrgs; ++o) {
    const std::string org = "org" + std::to_string(o);
    std::vector<std::string> expected = {org + ":org", org + ":cc", org + ":ws", org + ":prv"};
    for (int n = 1; n <= kUsage; ++n) expected.push_back(org + ":use:" + std::to_string(n));
    std::vector<std::string> seen;
    Status s = billing_->ledger().ScanOrg(org, ledger::Sequence{0}, ledger::Sequence{total}, 0,
                                          [&](const ledger::Record& r) {
                                            auto env = ledger::DecodeEvent(r);
                                            if (env.ok()) seen.push_back(env->event_id());
                                            return true;
                                          });
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(seen, expected) << org;
  }
}

TEST_F(KafkaConsumerTest, RestartMidStreamLeavesEveryEventExactlyOnce) {
  // Four orgs, one per partition. The consumer is stopped while a backlog is
  // still unread, the Billing closed and reopened (a clean process restart),
  // more is produced while the next consumer reads, twice over.
  constexpr int kOrgs = 4;
  constexpr int kPerRound = 8000;
  int next_usage = 1;
  uint64_t produced = 0;
  auto produce_round = [&] {
    for (int i = 0; i < kPerRound; ++i, ++next_usage) {
      int o = i % kOrgs;
      const std::string org = "org" + std::to_string(o);
      producer_->Send(topic_, org, kafka_testing::Usage(org, next_usage, "0.01"), o);
    }
    produced += kPerRound;
  };
  for (int o = 0; o < kOrgs; ++o) SendSetup("org" + std::to_string(o), o);
  produced += 4 * kOrgs;
  produce_round();
  ASSERT_TRUE(producer_->Flush());

  uint64_t duplicates = 0, rejected = 0;
  {
    auto c1 = StartConsumer(*billing_);
    ASSERT_NE(c1, nullptr);
    ASSERT_TRUE(WaitUntil([&] { return Head() >= 1000; }, kIngestTimeout));
    c1->Stop();
    duplicates += c1->stats().duplicates;
    rejected += c1->stats().rejected;
  }
  EXPECT_LT(Head(), produced) << "the first consumer should stop with a backlog left";

  billing_.reset();
  billing_ = OpenBilling(dir_.sub("ledger"));
  ASSERT_NE(billing_, nullptr);
  {
    auto c2 = StartConsumer(*billing_);
    ASSERT_NE(c2, nullptr);
    produce_round();  // while c2 joins and reads
    ASSERT_TRUE(producer_->Flush());
    ASSERT_TRUE(WaitUntil([&] { return Head() >= 10000; }, kIngestTimeout));
    c2->Stop();
    duplicates += c2->stats().duplicates;
    rejected += c2->stats().rejected;
  }
  EXPECT_LT(Head(), produced) << "the second consumer should stop with a backlog left";

  billing_.reset();
  billing_ = OpenBilling(dir_.sub("ledger"));
  ASSERT_NE(billing_, nullptr);
  auto c3 = StartConsumer(*billing_);
  ASSERT_NE(c3, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return Head() == produced; }, kIngestTimeout))
      << "head " << Head() << " of " << produced;
  // Nothing more trickles in after the last event.
  ASSERT_TRUE(WaitUntil([&] { return Settled(c3->stats()) == c3->stats().consumed; }, 10s));
  duplicates += c3->stats().duplicates;
  rejected += c3->stats().rejected;

  EXPECT_EQ(duplicates, 0u) << "a message was read twice";
  EXPECT_EQ(rejected, 0u);
  EXPECT_EQ(LedgerEventIds().size(), produced);
  ExpectChainVerifies(produced);
}

TEST_F(KafkaConsumerTest, SecondMemberJoiningLosesAndRepeatsNothing) {
  // Messages keep coming while a second consumer (same ledger, same group)
  // joins and later leaves; each rebalance revokes everything from the first
  // and hands partitions out again, seeking to the ledger's offsets.
  constexpr int kOrgs = 4;
  constexpr int kChunk = 200;
  int next_usage = 1;
  uint64_t produced = 0;
  auto produce_chunk = [&] {
    for (int i = 0; i < kChunk; ++i, ++next_usage) {
      int o = i % kOrgs;
      const std::string org = "org" + std::to_string(o);
      producer_->Send(topic_, org, kafka_testing::Usage(org, next_usage, "0.01"), o);
    }
    produced += kChunk;
    ASSERT_TRUE(producer_->Flush());
  };
  // Keeps producing, at most two chunks ahead of the ledger, until `done`.
  auto produce_until = [&](const std::function<bool()>& done) {
    while (!done()) {
      produce_chunk();
      ASSERT_TRUE(WaitUntil([&] { return Head() + 2 * kChunk >= produced; }, kIngestTimeout));
    }
  };
  for (int o = 0; o < kOrgs; ++o) SendSetup("org" + std::to_string(o), o);
  produced += 4 * kOrgs;
  produce_chunk();

  auto a = StartConsumer(*billing_);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return Head() == produced; }, kIngestTimeout));

  auto b = StartConsumer(*billing_);
  ASSERT_NE(b, nullptr);
  // Until the group has settled with both members sharing the partitions,
  // and a few chunks beyond.
  int after_split = 0;
  produce_until([&] {
    api::KafkaStats sa = a->stats(), sb = b->stats();
    if (sa.assigned_partitions > 0 && sb.assigned_partitions > 0 &&
        sa.assigned_partitions + sb.assigned_partitions == kPartitions) {
      after_split++;
    }
    return after_split > 5;
  });
  ASSERT_TRUE(WaitUntil([&] { return Head() == produced; }, kIngestTimeout));
  EXPECT_GT(b->stats().appended, 0u) << "the second member never consumed";

  // The second member leaves: the first takes every partition back.
  b->Stop();
  int after_leave = 0;
  produce_until([&] {
    if (a->stats().assigned_partitions == kPartitions) after_leave++;
    return after_leave > 5;
  });
  ASSERT_TRUE(WaitUntil([&] { return Head() == produced; }, kIngestTimeout))
      << "head " << Head() << " of " << produced;
  ASSERT_TRUE(WaitUntil([&] { return Settled(a->stats()) == a->stats().consumed; }, 10s));

  EXPECT_EQ(a->stats().duplicates + b->stats().duplicates, 0u) << "a message was read twice";
  EXPECT_EQ(a->stats().rejected + b->stats().rejected, 0u);
  EXPECT_EQ(a->stats().appended + b->stats().appended, produced);
  EXPECT_EQ(LedgerEventIds().size(), produced);
  ExpectChainVerifies(produced);
}

TEST_F(KafkaConsumerTest, FailedAppendsAdvanceNothingAndAreRetried) {
  // Every other append fails as a storage failure would (nothing written).
  // The consumer must drop what it read since, seek back to the ledger's
  // offsets and try again: in the end every event is there once, and no
  // message was ever written twice (no duplicates).
  constexpr int kOrgs = 4;
  constexpr int kUsage = 8000;
  for (int o = 0; o < kOrgs; ++o) SendSetup("org" + std::to_string(o), o);
  for (int n = 1; n <= kUsage; ++n) {
    int o = n % kOrgs;
    const std::string org = "org" + std::to_string(o);
    producer_->Send(topic_, org, kafka_testing::Usage(org, n, "0.01"), o);
  }
  ASSERT_TRUE(producer_->Flush());
  const uint64_t total = kOrgs * 4 + kUsage;

  std::atomic<int> calls{0};
  projections::Billing* billing = billing_.get();
  api::SubmitFn failing = [&calls, billing](ledger::AppendRequest request,
                                            std::function<void(ledger::AppendResult)> done) {
    if (++calls % 2 == 0) {
      ledger::AppendResult failed;
      failed.status = Status(Code::kUnavailable, "injected storage failure");
      done(std::move(failed));
      return;
    }
    billing->SubmitAsync(std::move(request), std::move(done));
  };
  auto consumer = StartConsumer(*billing_, "", failing);
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return Head() == total; }, kIngestTimeout))
      << "head " << Head() << " of " << total;
  // The consumer counts a batch once it sees it durable, just after the head moves.
  ASSERT_TRUE(WaitUntil([&] { return consumer->stats().appended == total; }, 10s));
  api::KafkaStats stats = consumer->stats();
  EXPECT_GE(stats.append_failures, 3u);
  EXPECT_EQ(stats.duplicates, 0u) << "a batch was written twice";
  EXPECT_EQ(stats.rejected, 0u);
  EXPECT_EQ(stats.appended, total);
  EXPECT_EQ(LedgerEventIds().size(), total);
  ExpectChainVerifies(total);
  for (int32_t p = 0; p < kOrgs; ++p) {
    auto stored = billing_->ledger().KafkaNextOffset(topic_, p);
    ASSERT_TRUE(stored.ok() && stored->has_value());
    EXPECT_EQ(**stored, kafka_testing::HighWatermark(producer_->handle(), topic_, p));
  }
}

TEST_F(KafkaConsumerTest, OffsetsComeFromTheLedgerNotFromKafka) {
  // A consumer commits its offsets to Kafka; a new, empty ledger in the same
  // group must still read everything from the beginning.
  for (int o = 0; o < 2; ++o) {
    const std::string org = "org" + std::to_string(o);
    SendSetup(org, o);
    for (int n = 1; n <= 100; ++n)
      producer_->Send(topic_, org, kafka_testing::Usage(org, n, "1"), o);
  }
  ASSERT_TRUE(producer_->Flush());
  const uint64_t total = 2 * 104;
  {
    auto c = StartConsumer(*billing_);
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(WaitUntil([&] { return Head() == total; }, kIngestTimeout));
  }
  auto fresh = OpenBilling(dir_.sub("other-ledger"));
  ASSERT_NE(fresh, nullptr);
  auto c = StartConsumer(*fresh);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(
      WaitUntil([&] { return fresh->ledger().head().sequence.value == total; }, kIngestTimeout))
      << "the new ledger got " << fresh->ledger().head().sequence.value << " of " << total;
  c->Stop();
}

TEST_F(KafkaConsumerTest, RejectedMessagesAreMirroredToTheDeadLetterTopic) {
  const std::string dlq = "billing.events.dlq";
  ASSERT_TRUE(kafka_->CreateTopic(dlq, 1).ok());
  SendSetup("org0", 0);
  const std::string not_json = "{broken";
  producer_->Send(topic_, "org0", &not_json, 0);
  producer_->Send(topic_, "org0", kafka_testing::Usage("org0", 1, "1", "no-such-provider"), 0);
  producer_->Send(topic_, "org0", kafka_testing::Usage("org0", 2, "1"), 0);
  ASSERT_TRUE(producer_->Flush());

  auto consumer = StartConsumer(*billing_, dlq);
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return Settled(consumer->stats()) == 7; }, kIngestTimeout));
  EXPECT_EQ(consumer->stats().rejected, 2u);

  // Read the dead-letter topic with a plain consumer.
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", kafka_->bootstrap().c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "group.id", "dlq-reader", err, sizeof(err));
  rd_kafka_t* reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  ASSERT_NE(reader, nullptr) << err;
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, dlq.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(reader, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  std::vector<std::pair<std::string, std::string>> got;  // (code header, value)
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(reader, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_headers_t* headers = nullptr;
      std::string code;
      const void* value = nullptr;
      size_t size = 0;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(headers, "ledger-code", &value, &size) ==
              RD_KAFKA_RESP_ERR_NO_ERROR) {
        code.assign(static_cast<const char*>(value), size);
      }
      got.emplace_back(code, std::string(static_cast<const char*>(m->payload), m->len));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(reader);
  rd_kafka_destroy(reader);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, "invalid_argument");
  EXPECT_EQ(got[0].second, not_json);
  EXPECT_EQ(got[1].first, "unknown_provider");
}

}  // namespace
}  // namespace billing
