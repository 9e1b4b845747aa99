// The router against librdkafka's mock broker in this process: every message
// of billing.events lands, unchanged, in its org's shard partition of
// G.shards in per-org order with its origin header, and a router stopped and
// started again, or one whose deliveries fail, skips nothing (at least once).
#include "cluster/router.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cluster/shard_map.h"
#include "events/event.h"
#include "kafka/embedded_kafka.h"
#include "kafka/kafka_consumer.h"
#include "tests/kafka/kafka_test_support.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/wait.h"

namespace billing::cluster {
namespace {

using namespace std::chrono_literals;
using kafka_testing::HighWatermark;
using kafka_testing::TestProducer;
using kafka_testing::Usage;
using testing::WaitUntil;

constexpr auto kForwardTimeout = 60s;
constexpr int kInputPartitions = 4;
constexpr int kShards = 8;
// The mock accepts a short session: a stopped router's partitions move fast.
constexpr int kSessionTimeoutMs = 6000;

struct ClientDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Client = std::unique_ptr<rd_kafka_t, ClientDeleter>;

// One message read from a shards topic.
struct Forwarded {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
};

// Reads `topic` (all `partitions`, from the beginning, no group) until
// `done(records)` holds or the timeout passes.
std::vector<Forwarded> ReadUntil(const std::string& bootstrap, const std::string& topic,
                                 int partitions,
                                 const std::function<bool(const std::vector<Forwarded>&)>& done) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "fetch.wait.max.ms", "20", err, sizeof(err));
  // rd_kafka_consumer_poll needs a group id, even with assign (never joined).
  rd_kafka_conf_set(conf, "group.id", "test-reader", err, sizeof(err));
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
  Client rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)));
  rd_kafka_poll_set_consumer(rk.get());
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++) {
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk.get(), parts);
  rd_kafka_topic_partition_list_destroy(parts);
  std::vector<Forwarded> records;
  WaitUntil(
      [&] {
        while (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 50)) {
          if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            Forwarded f;
            f.partition = m->partition;
            f.offset = m->offset;
            if (m->key) f.key.assign(static_cast<const char*>(m->key), m->key_len);
            if (m->payload) f.value.assign(static_cast<const char*>(m->payload), m->len);
            rd_kafka_headers_t* hdrs = nullptr;
            if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
              const char* name;
              const void* value;
              size_t size;
              for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &value, &size); i++) {
                f.headers[name] = std::string(static_cast<const char*>(value), size);
              }
            }
            records.push_back(std::move(f));
          } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            ADD_FAILURE() << "reading " << topic << ": " << rd_kafka_message_errstr(m);
            rd_kafka_message_destroy(m);
            return true;
          }
          rd_kafka_message_destroy(m);
        }
        return done(records);
      },
      kForwardTimeout);
  rd_kafka_consumer_close(rk.get());
  return records;
}

// Distinct event ids among forwarded JSON events.
std::set<std::string> EventIds(const std::vector<Forwarded>& records) {
  std::set<std::string> ids;
  for (const Forwarded& f : records) {
    auto j = nlohmann::json::parse(f.value, nullptr, false);
    if (j.is_object() && j.contains("event_id")) ids.insert(j["event_id"].get<std::string>());
  }
  return ids;
}

// Sends `value` keyed by `key` with a header trace-id = `trace`.
void SendTraced(TestProducer& producer, const std::string& key, const std::string& value,
                const std::string& trace) {
  ASSERT_EQ(rd_kafka_producev(
                producer.handle(), RD_KAFKA_V_TOPIC("billing.events"),
                RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                RD_KAFKA_V_HEADER("trace-id", trace.data(), static_cast<ssize_t>(trace.size())),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
}

std::string Org(int i) { return "org-" + std::to_string(i); }

// Usage events n in [from, to) of orgs 0..orgs-1, keyed by org, each traced
// with its event id; returns their ids.
std::set<std::string> SendUsage(TestProducer& producer, int orgs, int from, int to) {
  std::set<std::string> ids;
  for (int n = from; n < to; n++) {
    for (int i = 0; i < orgs; i++) {
      const std::string id = Org(i) + ":use:" + std::to_string(n);
      SendTraced(producer, Org(i), Usage(Org(i), n, "1.5"), id);
      ids.insert(id);
    }
  }
  EXPECT_TRUE(producer.Flush());
  return ids;
}

struct Cluster {
  Cluster() {
    auto started =
        api::EmbeddedKafka::Start({.topics = {"billing.events"}, .partitions = kInputPartitions});
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    kafka = std::move(started).value();
    EXPECT_TRUE(kafka->CreateTopic("G.shards", kShards).ok());
  }
  RouterOptions Options(const std::string& shards_topic = "G.shards") const {
    return {.brokers = kafka->bootstrap(),
            .input_topic = "billing.events",
            .group = "G",
            .shards_topic = shards_topic,
            .shards = kShards,
            .session_timeout_ms = kSessionTimeoutMs};
  }
  std::unique_ptr<Router> StartRouter(const RouterOptions& options) {
    auto router = Router::Start(options, metrics);
    EXPECT_TRUE(router.ok()) << router.status().ToString();
    return std::move(router).value();
  }
  std::unique_ptr<api::EmbeddedKafka> kafka;
  api::Metrics metrics;
};

// The group G.router's committed offset of each input partition.
std::vector<int64_t> Committed(const std::string& bootstrap) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "group.id", "G.router", err, sizeof(err));
  Client rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)));
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(kInputPartitions);
  for (int p = 0; p < kInputPartitions; p++) {
    rd_kafka_topic_partition_list_add(parts, "billing.events", p);
  }
  std::vector<int64_t> offsets(kInputPartitions, -1);
  if (rd_kafka_committed(rk.get(), parts, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < parts->cnt; i++)
      offsets[parts->elems[i].partition] = parts->elems[i].offset;
  }
  rd_kafka_topic_partition_list_destroy(parts);
  return offsets;
}

TEST(Router, ForwardsEveryMessageToItsOrgsShardInOrderWithItsOrigin) {
  Cluster c;
  constexpr int kOrgs = 12;
  constexpr int kPerOrg = 25;
  TestProducer producer(c.kafka->bootstrap());
  std::set<std::string> ids = SendUsage(producer, kOrgs, 0, kPerOrg);
  // A binary protobuf event is routed by its org too; bytes without an org
  // go to shard 0.
  events::Envelope binary;
  binary.set_event_id("bin-1");
  binary.set_org_id("org-bin");
  binary.set_occurred_at("2026-01-15T10:00:00Z");
  binary.mutable_usage_recorded()->set_provider_id("aws-1");
  SendTraced(producer, "org-bin", binary.SerializeAsString(), "bin-1");
  SendTraced(producer, "", "not an event", "garbage");
  ASSERT_TRUE(producer.Flush());
  const size_t total = ids.size() + 2;

  auto router = c.StartRouter(c.Options());
  std::vector<Forwarded> records =
      ReadUntil(c.kafka->bootstrap(), "G.shards", kShards,
                [&](const std::vector<Forwarded>& r) { return r.size() >= total; });
  ASSERT_EQ(records.size(), total);

  std::set<std::string> origins;
  std::map<std::string, int> last_n;  // per org, the last usage number seen
  for (Forwarded& f : records) {
    const std::string& origin = f.headers["ledger-origin"];
    EXPECT_EQ(origin.rfind("billing.events/", 0), 0u) << origin;
    origins.insert(origin);
    if (f.headers["trace-id"] == "garbage") {
      EXPECT_EQ(f.partition, 0);
      EXPECT_EQ(f.value, "not an event");
      continue;
    }
    if (f.headers["trace-id"] == "bin-1") {
      EXPECT_EQ(f.partition, ShardOf("org-bin", kShards));
      EXPECT_EQ(f.value, binary.SerializeAsString());
      continue;
    }
    auto j = nlohmann::json::parse(f.value);
    const std::string org = j["org_id"];
    const std::string id = j["event_id"];
    EXPECT_EQ(f.partition, ShardOf(org, kShards)) << id;
    EXPECT_EQ(f.key, org);
    EXPECT_EQ(f.headers["trace-id"], id) << "the input's headers are copied";
    const int n = std::stoi(id.substr(id.rfind(':') + 1));
    // Records arrive in offset order per partition, and an org is in one.
    auto last = last_n.find(org);
    EXPECT_EQ(n, last == last_n.end() ? 0 : last->second + 1) << "order of " << org;
    last_n[org] = n;
  }
  EXPECT_EQ(origins.size(), total) << "every input coordinate once";
  EXPECT_EQ(EventIds(records), ids);

  // Committed: the input is done, up to every partition's end.
  EXPECT_TRUE(WaitUntil(
      [&] {
        std::vector<int64_t> committed = Committed(c.kafka->bootstrap());
        for (int p = 0; p < kInputPartitions; p++) {
          if (committed[p] != HighWatermark(producer.handle(), "billing.events", p)) return false;
        }
        return true;
      },
      kForwardTimeout));
  router->Stop();
  EXPECT_EQ(router->stats().forwarded, total);
  EXPECT_EQ(router->stats().unrouted, 1u);
  EXPECT_EQ(testing::MetricValue(c.metrics.Render(), "ledger_router_forwarded_total"),
            static_cast<int64_t>(total));
}

// The cluster's own headers mean "posted over HTTP by this principal" and
// "re-judge that stored rejection": a producer of the input topic must not
// be able to claim either.
TEST(Router, StripsTheHeadersOnlyTheClusterMaySet) {
  Cluster c;
  TestProducer producer(c.kafka->bootstrap());
  const std::string value = Usage(Org(0), 0, "1.5");
  const std::string token = "a/x/1", principal = "admin", redrive = "1", source = "x";
  ASSERT_EQ(rd_kafka_producev(producer.handle(), RD_KAFKA_V_TOPIC("billing.events"),
                              RD_KAFKA_V_KEY(Org(0).data(), Org(0).size()),
                              RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                              RD_KAFKA_V_HEADER(api::kIngestTokenHeader, token.data(), -1),
                              RD_KAFKA_V_HEADER(api::kIngestPrincipalHeader, principal.data(), -1),
                              RD_KAFKA_V_HEADER(api::kRedriveHeader, redrive.data(), -1),
                              RD_KAFKA_V_HEADER(api::kRedriveSourceHeader, source.data(), -1),
                              RD_KAFKA_V_HEADER("trace-id", "t", -1),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(producer.Flush());
  auto router = c.StartRouter(c.Options());
  std::vector<Forwarded> records =
      ReadUntil(c.kafka->bootstrap(), "G.shards", kShards,
                [&](const std::vector<Forwarded>& r) { return !r.empty(); });
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].value, value);
  EXPECT_EQ(records[0].headers["trace-id"], "t") << "other headers are kept";
  for (const char* name : {api::kIngestTokenHeader, api::kIngestPrincipalHeader,
                           api::kRedriveHeader, api::kRedriveSourceHeader}) {
    EXPECT_EQ(records[0].headers.count(name), 0u) << name;
  }
  router->Stop();
}

TEST(Router, RestartedRouterSkipsNothing) {
  Cluster c;
  TestProducer producer(c.kafka->bootstrap());
  std::set<std::string> ids = SendUsage(producer, 5, 0, 20);
  auto first = c.StartRouter(c.Options());
  ASSERT_TRUE(WaitUntil([&] { return first->stats().forwarded >= ids.size(); }, kForwardTimeout));
  first->Stop();
  first->Stop();  // idempotent

  std::set<std::string> more = SendUsage(producer, 5, 20, 40);
  ids.insert(more.begin(), more.end());
  auto second = c.StartRouter(c.Options());
  std::vector<Forwarded> records =
      ReadUntil(c.kafka->bootstrap(), "G.shards", kShards,
                [&](const std::vector<Forwarded>& r) { return EventIds(r).size() >= ids.size(); });
  EXPECT_EQ(EventIds(records), ids);
}

// Deliveries to partitions a one-partition shards topic lacks fail; such a
// batch must not be committed, so a router on a proper topic (same group)
// forwards it after the failing one stops.
TEST(Router, UnacknowledgedBatchIsNotCommittedAndIsForwardedAgain) {
  Cluster c;
  ASSERT_TRUE(c.kafka->CreateTopic("G.small", 1).ok());
  TestProducer producer(c.kafka->bootstrap());
  std::set<std::string> ids = SendUsage(producer, 10, 0, 10);
  auto failing = c.StartRouter(c.Options("G.small"));
  ASSERT_TRUE(WaitUntil([&] { return failing->stats().rewinds >= 2; }, kForwardTimeout));
  failing->Stop();
  EXPECT_GT(failing->stats().delivery_failures, 0u);
  EXPECT_GT(
      testing::MetricValue(c.metrics.Render(), "ledger_router_failures_total{kind=\"delivery\"}"),
      0);

  auto good = c.StartRouter(c.Options());
  const int64_t small_end = HighWatermark(producer.handle(), "G.small", 0);
  std::vector<Forwarded> small = ReadUntil(
      c.kafka->bootstrap(), "G.small", 1,
      [&](const std::vector<Forwarded>& r) { return static_cast<int64_t>(r.size()) >= small_end; });
  std::set<std::string> seen = EventIds(small);
  std::vector<Forwarded> records =
      ReadUntil(c.kafka->bootstrap(), "G.shards", kShards, [&](const std::vector<Forwarded>& r) {
        std::set<std::string> all = EventIds(r);
        all.insert(seen.begin(), seen.end());
        return all.size() >= ids.size();
      });
  std::set<std::string> all = EventIds(records);
  all.insert(seen.begin(), seen.end());
  EXPECT_EQ(all, ids);
}

}  // namespace
}  // namespace billing::cluster
