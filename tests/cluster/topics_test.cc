// EnsureTopic against librdkafka's mock broker: a topic of the right
// partition count passes, another count is refused naming both, and a
// missing topic (the mock cannot create topics) is an error that leaves
// nothing auto-created behind.
#include "cluster/topics.h"

#include <gtest/gtest.h>

#include "kafka/embedded_kafka.h"

namespace billing::cluster {
namespace {

// Short: the mock never answers CreateTopics, so a missing topic costs this.
constexpr int kMissingTopicTimeoutMs = 2000;

std::unique_ptr<api::EmbeddedKafka> StartKafka() {
  auto kafka = api::EmbeddedKafka::Start({});
  EXPECT_TRUE(kafka.ok()) << kafka.status().ToString();
  return std::move(kafka).value();
}

TEST(EnsureTopic, TopicWithTheClusterPartitionCountPasses) {
  auto kafka = StartKafka();
  ASSERT_TRUE(kafka->CreateTopic("G.shards", 8).ok());
  Status s = EnsureTopic(kafka->bootstrap(), "G.shards", 8, ShardsTopicConfigs(),
                         kEnsureTopicTimeoutMsDefault);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(EnsureTopic, DifferentPartitionCountIsRefusedNamingBoth) {
  auto kafka = StartKafka();
  ASSERT_TRUE(kafka->CreateTopic("G.shards", 8).ok());
  Status s = EnsureTopic(kafka->bootstrap(), "G.shards", 16, ShardsTopicConfigs(),
                         kEnsureTopicTimeoutMsDefault);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_EQ(s.message(), "G.shards has 8 partitions, --shards says 16");
  ASSERT_TRUE(kafka->CreateTopic("G.members", 1).ok());
  s = EnsureTopic(kafka->bootstrap(), "G.members", 2, MembersTopicConfigs(),
                  kEnsureTopicTimeoutMsDefault);
  EXPECT_EQ(s.message(), "G.members has 1 partitions, expected 2");
}

// The mock (librdkafka 2.0.2) names no controller, so CreateTopics times
// out; a real cluster creates the topic here. Either way, looking the topic
// up must not make the mock auto-create it with its default of 4.
TEST(EnsureTopic, MissingTopicOnTheMockIsUnavailableAndNotAutoCreated) {
  auto kafka = StartKafka();
  Status s =
      EnsureTopic(kafka->bootstrap(), "G.shards", 8, ShardsTopicConfigs(), kMissingTopicTimeoutMs);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  // Still absent: creating it with 8 partitions succeeds, and then it passes.
  ASSERT_TRUE(kafka->CreateTopic("G.shards", 8).ok());
  s = EnsureTopic(kafka->bootstrap(), "G.shards", 8, ShardsTopicConfigs(),
                  kEnsureTopicTimeoutMsDefault);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(EnsureTopic, NonPositivePartitionCountIsInvalid) {
  auto kafka = StartKafka();
  EXPECT_EQ(EnsureTopic(kafka->bootstrap(), "G.shards", 0, {}, kMissingTopicTimeoutMs).code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace billing::cluster
