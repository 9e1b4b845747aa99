// The members' table against librdkafka's mock broker in this process: two
// instances see each other's records, ownership follows what is published,
// Stop's tombstone removes an instance at once, a silent one expires, and
// hostile records are ignored and counted.
#include "cluster/members.h"

#include <gtest/gtest.h>

#include <string>

#include "cluster/shard_map.h"
#include "kafka/embedded_kafka.h"
#include "tests/kafka/kafka_test_support.h"
#include "tests/testing/wait.h"

namespace billing::cluster {
namespace {

using namespace std::chrono_literals;
using kafka_testing::TestProducer;
using testing::WaitUntil;

constexpr auto kSeeTimeout = 20s;
// Fast heartbeats so the tests run quickly.
constexpr int kHeartbeatMs = 100;
// Far longer than any test waits: only a tombstone removes a member sooner.
constexpr int kLongExpiryMs = 120000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Fixture {
  Fixture() {
    auto started = api::EmbeddedKafka::Start({});
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    kafka = std::move(started).value();
    EXPECT_TRUE(kafka->CreateTopic(MembersTopic("G"), 1).ok());
  }
  std::unique_ptr<Members> Start(const std::string& id, int expiry_ms = kLongExpiryMs) {
    auto members = Members::Start({.brokers = kafka->bootstrap(),
                                   .group = "G",
                                   .instance_id = id,
                                   .heartbeat_ms = kHeartbeatMs,
                                   .expiry_ms = expiry_ms});
    EXPECT_TRUE(members.ok()) << members.status().ToString();
    return std::move(members).value();
  }
  std::unique_ptr<api::EmbeddedKafka> kafka;
};

MemberRecord Record(const std::string& url, std::vector<int> serving) {
  MemberRecord r;
  r.url = url;
  r.owned = serving;
  r.serving = std::move(serving);
  return r;
}

bool Lists(const Members& m, const std::string& id) {
  for (const MemberRecord& r : m.Table()) {
    if (r.instance_id == id) return true;
  }
  return false;
}

std::string OwnerUrl(const Members& m, int shard) {
  auto owner = m.OwnerOf(shard);
  return owner ? owner->url : "";
}

TEST(Members, TwoInstancesSeeEachOthersRecords) {
  Fixture f;
  auto a = f.Start("a");
  auto b = f.Start("b");
  MemberRecord ra = Record("http://a:1", {1, 2});
  ra.standby = {3};
  ra.heads = {{.shard = 1, .sequence = 42, .hash_hex = std::string(64, 'f'), .next_offset = 7}};
  a->Publish(ra);
  b->Publish(Record("http://b:1", {3}));
  ASSERT_TRUE(
      WaitUntil([&] { return a->Table().size() == 2 && b->Table().size() == 2; }, kSeeTimeout));
  std::vector<MemberRecord> table = b->Table();
  EXPECT_EQ(table[0].instance_id, "a");
  EXPECT_EQ(table[1].instance_id, "b");
  EXPECT_EQ(table[0].url, "http://a:1");
  EXPECT_EQ(table[0].serving, (std::vector<int>{1, 2}));
  EXPECT_EQ(table[0].standby, (std::vector<int>{3}));
  ASSERT_EQ(table[0].heads.size(), 1u);
  EXPECT_EQ(table[0].heads[0].sequence, 42u);
  EXPECT_EQ(table[0].heads[0].hash_hex, std::string(64, 'f'));
  EXPECT_EQ(table[0].heads[0].next_offset, 7);
  EXPECT_EQ(OwnerUrl(*b, 1), "http://a:1");
  EXPECT_EQ(OwnerUrl(*a, 3), "http://b:1");
  EXPECT_FALSE(a->OwnerOf(5).has_value());
}

TEST(Members, OwnerOfFollowsPublish) {
  Fixture f;
  auto a = f.Start("a");
  auto b = f.Start("b");
  a->Publish(Record("http://a:1", {}));
  b->Publish(Record("http://b:1", {3}));
  ASSERT_TRUE(WaitUntil([&] { return OwnerUrl(*a, 3) == "http://b:1"; }, kSeeTimeout));
  // The shard moves: b stops serving it, a starts.
  b->Publish(Record("http://b:1", {}));
  a->Publish(Record("http://a:1", {3}));
  EXPECT_EQ(OwnerUrl(*a, 3), "http://a:1") << "an instance's own record is current at once";
  EXPECT_TRUE(WaitUntil([&] { return OwnerUrl(*b, 3) == "http://a:1"; }, kSeeTimeout));
}

TEST(Members, StopTombstoneRemovesTheMemberAtOnce) {
  Fixture f;
  auto a = f.Start("a");
  auto b = f.Start("b");
  a->Publish(Record("http://a:1", {}));
  b->Publish(Record("http://b:1", {3}));
  ASSERT_TRUE(WaitUntil([&] { return Lists(*a, "b"); }, kSeeTimeout));
  b->Stop();
  b->Stop();  // idempotent
  EXPECT_FALSE(Lists(*b, "b"));
  // The expiry is two minutes: only the tombstone can remove b this soon.
  EXPECT_TRUE(WaitUntil([&] { return !Lists(*a, "b") && !a->OwnerOf(3); }, kSeeTimeout));
}

// An instance that dies without a tombstone (SIGKILL) is a record that stops
// being re-sent: written here once, by hand.
TEST(Members, ExpiredHeartbeatDropsTheMember) {
  Fixture f;
  constexpr int kExpiryMs = 1500;
  auto a = f.Start("a", kExpiryMs);
  MemberRecord ghost = Record("http://ghost:1", {4});
  ghost.instance_id = "ghost";
  ghost.heartbeat_ms = NowMs();
  TestProducer producer(f.kafka->bootstrap());
  producer.Send(MembersTopic("G"), "ghost", MemberRecordJson(ghost), 0);
  ASSERT_TRUE(producer.Flush());
  ASSERT_TRUE(WaitUntil([&] { return OwnerUrl(*a, 4) == "http://ghost:1"; }, kSeeTimeout));
  EXPECT_TRUE(WaitUntil([&] { return !Lists(*a, "ghost") && !a->OwnerOf(4); }, kSeeTimeout));
  EXPECT_GE(NowMs() - ghost.heartbeat_ms, kExpiryMs);
}

TEST(Members, HostileRecordsAreIgnoredAndCounted) {
  Fixture f;
  auto a = f.Start("a");
  TestProducer producer(f.kafka->bootstrap());
  const std::string topic = MembersTopic("G");
  MemberRecord other = Record("http://x:1", {1});
  other.instance_id = "someone-else";
  other.heartbeat_ms = NowMs();
  MemberRecord bad_shard = Record("http://x:1", {kShardsMax});
  bad_shard.instance_id = "bad-shard";
  bad_shard.heartbeat_ms = NowMs();
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  producer.Send(topic, "garbage", "not json", 0);
  producer.Send(topic, "deep", deep, 0);
  producer.Send(topic, "too-big", std::string(kMemberRecordBytesMax + 1, ' '), 0);
  producer.Send(topic, "impostor", MemberRecordJson(other), 0);  // id is not its key
  producer.Send(topic, "bad-shard", MemberRecordJson(bad_shard), 0);
  producer.Send(topic, "", MemberRecordJson(other), 0);  // no key
  MemberRecord after = Record("http://after:1", {2});
  after.instance_id = "after";
  after.heartbeat_ms = NowMs();
  producer.Send(topic, "after", MemberRecordJson(after), 0);
  ASSERT_TRUE(producer.Flush());
  ASSERT_TRUE(WaitUntil([&] { return Lists(*a, "after"); }, kSeeTimeout));
  EXPECT_EQ(a->stats().ignored, 6u);
  EXPECT_EQ(a->Table().size(), 1u) << "only 'after'; 'a' has not published";
}

TEST(MemberRecord, JsonRoundTrips) {
  MemberRecord r = Record("http://a:1", {0, 255});
  r.instance_id = "a";
  r.standby = {7};
  r.heads = {{.shard = 0, .sequence = UINT64_MAX, .hash_hex = "ab", .next_offset = 1}};
  r.heartbeat_ms = 1767323045678;
  auto back = ParseMemberRecord(MemberRecordJson(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->instance_id, "a");
  EXPECT_EQ(back->serving, r.serving);
  EXPECT_EQ(back->standby, r.standby);
  EXPECT_EQ(back->heads[0].sequence, UINT64_MAX);
  EXPECT_EQ(back->heartbeat_ms, r.heartbeat_ms);
  EXPECT_FALSE(ParseMemberRecord(R"({"instance_id":"a"})").ok());
}

MemberRecord Owning(std::string id, std::vector<int> owned, int64_t heartbeat_ms = 1) {
  MemberRecord m;
  m.instance_id = std::move(id);
  m.owned = std::move(owned);
  m.heartbeat_ms = heartbeat_ms;
  return m;
}

TEST(StandbyFor, EachShardIsKeptByTheReplicasAfterItsOwnerWrappingAround) {
  const std::vector<MemberRecord> table = {Owning("a", {0, 3}), Owning("b", {1, 4}),
                                           Owning("c", {2, 5})};
  // One replica: the next instance after the owner.
  EXPECT_EQ(StandbyFor(table, "a", 1, 6), (std::vector<int>{2, 5}));
  EXPECT_EQ(StandbyFor(table, "b", 1, 6), (std::vector<int>{0, 3}));
  EXPECT_EQ(StandbyFor(table, "c", 1, 6), (std::vector<int>{1, 4}));
  // As many replicas as other instances (or more): every shard not owned.
  for (int replicas : {2, 8}) {
    EXPECT_EQ(StandbyFor(table, "a", replicas, 6), (std::vector<int>{1, 2, 4, 5}));
  }
  EXPECT_TRUE(StandbyFor(table, "a", 0, 6).empty());
}

TEST(StandbyFor, UnownedShardsAndStrangersGetNoStandby) {
  std::vector<MemberRecord> table = {Owning("a", {0}), Owning("b", {})};
  // Shard 1 has no owner (it is moving): nobody stands by for it.
  EXPECT_EQ(StandbyFor(table, "b", 1, 2), (std::vector<int>{0}));
  // An instance not in the table (not published yet) keeps nothing.
  EXPECT_TRUE(StandbyFor(table, "z", 1, 2).empty());
  // Shards beyond the count are hostile input: ignored.
  table[0].owned = {0, 7, -1};
  EXPECT_EQ(StandbyFor(table, "b", 1, 2), (std::vector<int>{0}));
}

TEST(StandbyFor, TwoClaimsOnAShardFollowTheNewestHeartbeat) {
  // Shard 0 moves from a to c; a's record is older.
  const std::vector<MemberRecord> table = {Owning("a", {0}, 10), Owning("b", {}, 10),
                                           Owning("c", {0}, 20)};
  EXPECT_EQ(StandbyFor(table, "a", 1, 1), (std::vector<int>{0}));  // after c, wrapping
  EXPECT_TRUE(StandbyFor(table, "b", 1, 1).empty());
}

}  // namespace
}  // namespace billing::cluster
