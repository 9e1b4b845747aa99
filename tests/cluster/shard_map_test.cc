// Shards: an org's shard is a fixed function of its id, spread evenly.
#include "cluster/shard_map.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace billing::cluster {
namespace {

TEST(ShardMap, AnOrgsShardIsTheSha256PrefixModuloTheShardCount) {
  // `printf org-1 | sha256sum` begins c24787a75cb363e4: the expected shards
  // below are that prefix modulo each count, worked out outside the code.
  EXPECT_EQ(ShardOf("org-1", 1), 0);
  EXPECT_EQ(ShardOf("org-1", 16), 0x4);
  EXPECT_EQ(ShardOf("org-1", 256), 0xe4);
  EXPECT_EQ(ShardOf("org-1", 3), static_cast<int>(0xc24787a75cb363e4ULL % 3));
  EXPECT_EQ(ShardOf("org-1", 255), static_cast<int>(0xc24787a75cb363e4ULL % 255));
}

TEST(ShardMap, OrgsSpreadOverEveryShard) {
  constexpr int kShards = 16;
  constexpr int kOrgs = 16000;
  std::map<int, int> counts;
  for (int i = 0; i < kOrgs; i++) counts[ShardOf("org-" + std::to_string(i), kShards)]++;
  ASSERT_EQ(counts.size(), static_cast<size_t>(kShards));
  for (const auto& [shard, n] : counts) {
    // 1000 expected per shard; a hash this far off would be broken.
    EXPECT_GT(n, 800) << "shard " << shard;
    EXPECT_LT(n, 1200) << "shard " << shard;
  }
}

TEST(ShardMap, TopicsAreNamedAfterTheGroup) {
  EXPECT_EQ(ShardsTopic("g1"), "g1.shards");
  EXPECT_EQ(MembersTopic("g1"), "g1.members");
}

}  // namespace
}  // namespace billing::cluster
