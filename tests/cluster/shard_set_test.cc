// ShardSet against librdkafka's mock broker in this process: ingest holds at
// most ShardSetOptions::pending_events_max events waiting for their outcome,
// and answers kUnavailable (the front's 503 with Retry-After) past it; a
// shard's copy has one writer at a time, owner or standby.
#include "cluster/shard_set.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "kafka/embedded_kafka.h"
#include "metrics/metrics.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/temp_dir.h"

namespace billing::cluster {
namespace {

using namespace std::chrono_literals;

constexpr int kShards = 2;
constexpr const char* kShardsTopic = "G.shards";
// A limit a test reaches with a handful of events (the default is 200 000).
constexpr size_t kPendingEventsMax = 3;
// Long enough that nothing this test queues expires while it runs: only the
// limit may refuse (nothing applies the events; they wait until Stop).
constexpr int kIngestWaitMs = 600000;
// How long a refused ingest may take to be answered (at once, in fact).
constexpr auto kAnswerTimeout = 30s;

std::vector<IngestEvent> Events(size_t n) {
  return std::vector<IngestEvent>(n, IngestEvent{R"({"org_id":"acme"})", "acme", std::nullopt});
}

// One ingest's answer, whenever it comes.
struct Answer {
  std::shared_ptr<std::promise<Result<std::vector<ledger::Outcome>>>> promise =
      std::make_shared<std::promise<Result<std::vector<ledger::Outcome>>>>();
  std::future<Result<std::vector<ledger::Outcome>>> future = promise->get_future();
  IngestDone Done() const {
    return [promise = promise](Result<std::vector<ledger::Outcome>> r) {
      promise->set_value(std::move(r));
    };
  }
  bool Answered() { return future.wait_for(0s) == std::future_status::ready; }
};

// The mock broker, a directory and a set of kShards on them.
struct Fixture {
  explicit Fixture(size_t pending_events_max = kIngestPendingEventsMax) {
    auto started = api::EmbeddedKafka::Start({.topics = {kShardsTopic}, .partitions = kShards});
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    if (!started.ok()) return;
    kafka = std::move(started).value();
    ShardSetOptions options;
    options.data_dir = dir.sub("data");
    options.shards = kShards;
    options.brokers = kafka->bootstrap();
    options.shards_topic = kShardsTopic;
    options.instance_id = "a";
    options.ingest_wait_ms = kIngestWaitMs;
    options.pending_events_max = pending_events_max;
    auto created = ShardSet::Create(options, metrics);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    if (created.ok()) set = std::move(created).value();
  }
  std::unique_ptr<api::EmbeddedKafka> kafka;
  testing::TempDir dir;
  api::Metrics metrics;
  std::unique_ptr<ShardSet> set;
};

TEST(ShardSet, IngestPastThePendingEventsLimitIsUnavailable) {
  Fixture f(kPendingEventsMax);
  ASSERT_NE(f.set, nullptr);
  std::unique_ptr<ShardSet>* set = &f.set;
  for (int shard = 0; shard < kShards; shard++) {
    ASSERT_TRUE((*set)->Acquire(shard).ok());
    (*set)->CaughtUp(shard);
  }

  // Up to the limit, over every shard, the events wait for their outcome.
  Answer two, one_more;
  (*set)->Ingest(0, Events(2), "", two.Done());
  (*set)->Ingest(1, Events(1), "", one_more.Done());
  EXPECT_FALSE(two.Answered());
  EXPECT_FALSE(one_more.Answered());

  // Past it, on any shard, the next ingest is refused at once, whole.
  for (int shard = 0; shard < kShards; shard++) {
    Answer refused;
    (*set)->Ingest(shard, Events(1), "", refused.Done());
    ASSERT_EQ(refused.future.wait_for(kAnswerTimeout), std::future_status::ready);
    Result<std::vector<ledger::Outcome>> r = refused.future.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
    EXPECT_NE(r.status().message().find("too many events wait"), std::string::npos)
        << r.status().ToString();
  }

  EXPECT_EQ(testing::MetricValue(f.metrics.Render(),
                                 R"(ledger_cluster_ingest_refused_total{reason="pending_limit"})"),
            kShards);

  // The waiting ones are answered (kUnavailable) when the set stops.
  (*set)->Stop();
  for (Answer* waiting : {&two, &one_more}) {
    ASSERT_EQ(waiting->future.wait_for(kAnswerTimeout), std::future_status::ready);
    EXPECT_EQ(waiting->future.get().status().code(), Code::kUnavailable);
  }
}

// A batch through `host` (the standby's), empty but carrying the shard's
// next offset, as the standby reader sends one; its status.
Status SubmitThrough(api::ShardHost& host, int shard, projections::Billing& billing) {
  std::promise<Status> landed;
  ledger::AppendRequest request;
  request.offsets.push_back(ledger::KafkaOffset{kShardsTopic, shard, 1});
  host.Submit(shard, billing, std::move(request),
              [&landed](ledger::AppendResult r) { landed.set_value(r.status); });
  return landed.get_future().get();
}

// One writer per copy: the standby reader writes a shard's copy only while
// this instance's owner consumer does not hold it, from the owner's Acquire
// until its Detached (after its last batch), and then takes it back.
TEST(ShardSet, AStandbyCopyYieldsToTheOwnerAndIsTakenBackAfterIt) {
  Fixture f;
  ASSERT_NE(f.set, nullptr);
  std::unique_ptr<ShardSet>* set = &f.set;
  api::ShardHost& standby = (*set)->standby_host();
  (*set)->SetStandby({1, 0, 7, 1});  // unsorted, repeated, beyond the count
  EXPECT_EQ(standby.StandbyShards(), (std::vector<int32_t>{0, 1}));

  auto copy = standby.Acquire(0);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_TRUE(SubmitThrough(standby, 0, **copy).ok());
  EXPECT_TRUE((*set)->Describe()[0].standby);

  // The owner's consumer takes the copy: the standby's batches are refused
  // and it may not take the copy again while the owner holds it.
  ASSERT_TRUE((*set)->Acquire(0).ok());
  EXPECT_EQ(SubmitThrough(standby, 0, **copy).code(), Code::kConflict);
  EXPECT_EQ(standby.Acquire(0).status().code(), Code::kConflict);
  EXPECT_EQ(standby.StandbyShards(), (std::vector<int32_t>{1}));
  EXPECT_FALSE((*set)->Describe()[0].standby);

  // Revoked, the owner stops serving first and lets go after its last
  // batch: only then is the copy the standby's again.
  (*set)->Release(0);
  EXPECT_EQ(standby.StandbyShards(), (std::vector<int32_t>{1}));
  (*set)->Detached(0);
  EXPECT_EQ(standby.StandbyShards(), (std::vector<int32_t>{0, 1}));
  ASSERT_TRUE(standby.Acquire(0).ok());
  EXPECT_TRUE(SubmitThrough(standby, 0, **copy).ok());
  (*set)->Stop();
}

}  // namespace
}  // namespace billing::cluster
