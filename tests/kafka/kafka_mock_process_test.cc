// `ledgerctl kafka-mock` as its own process (issue 19): it prints its
// bootstrap, serves a ledgerd that outlives nothing of it, keeps serving after
// that ledgerd is killed, and stops cleanly on SIGTERM. Also checks what
// docs/CLUSTER.md needs from the mock before cluster code relies on it: a
// record keeps the timestamp its producer gave it. (It does not filter
// aborted transactions for read_committed consumers: tried, and the design
// does without transactions; see CLUSTER.md.)
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <memory>
#include <string>

#include "tests/kafka/kafka_test_support.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace billing {
namespace {

using namespace std::chrono_literals;
using testing::Child;
using testing::KafkaSource;
using testing::Ledgerd;
using testing::MetricValue;
using testing::TempDir;
using testing::WaitUntil;

constexpr auto kStartTimeout = 30s;
constexpr auto kIngestTimeout = 90s;
constexpr int kKafkaTimeoutMs = 30000;
// A fixed instant (2026-01-02T03:04:05.678Z) a producer stamps on a record.
constexpr int64_t kStampMs = 1767323045678;

// The mock as a child process and its bootstrap address.
struct MockProcess {
  explicit MockProcess(int partitions)
      : child({testing::LedgerctlPath(), "kafka-mock", "--partitions", std::to_string(partitions),
               "--topic", "billing.events", "--topic", "shards"}) {
    bootstrap = child.WaitForLine("kafka bootstrap: ", kStartTimeout);
  }
  Child child;
  std::string bootstrap;
};

rd_kafka_t* NewClient(rd_kafka_type_t type, const std::string& bootstrap,
                      std::initializer_list<std::pair<const char*, const char*>> settings) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof(err));
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      ADD_FAILURE() << name << ": " << err;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  EXPECT_NE(rk, nullptr) << err;
  return rk;
}

struct ClientDeleter {
  void operator()(rd_kafka_t* rk) const {
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};
using Client = std::unique_ptr<rd_kafka_t, ClientDeleter>;

void ProduceStamped(rd_kafka_t* rk, const std::string& value) {
  ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("shards"), RD_KAFKA_V_PARTITION(0),
                              RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                              RD_KAFKA_V_TIMESTAMP(kStampMs),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
}

TEST(KafkaMockProcess, ServesLedgerdAndStopsOnSigterm) {
  MockProcess mock(3);
  ASSERT_FALSE(mock.bootstrap.empty()) << "no bootstrap line";
  TempDir tmp;
  const std::string events =
      "{\"event_id\":\"o1\",\"org_id\":\"m\",\"occurred_at\":"
      "\"2026-01-01T00:00:00Z\",\"organization_created\":{\"name\":\"M\","
      "\"currency\":\"USD\",\"billing_account\":\"A\"}}";
  {
    Ledgerd ledgerd({.data_dir = tmp.sub("data"),
                     .kafka = KafkaSource::kBrokers,
                     .kafka_brokers = mock.bootstrap});
    kafka_testing::TestProducer producer(mock.bootstrap);
    producer.Send("billing.events", "m", events);
    ASSERT_TRUE(producer.Flush());
    EXPECT_TRUE(
        WaitUntil([&] { return MetricValue(ledgerd.Metrics(), "ledger_head_sequence") == 1; },
                  kIngestTimeout));
    ledgerd.Kill();  // the broker is not the ledgerd's: it must outlive it
  }
  {
    kafka_testing::TestProducer after(mock.bootstrap);
    after.Send("billing.events", "m", events);
    EXPECT_TRUE(after.Flush()) << "the mock stopped serving when its client died";
  }
  mock.child.Signal(SIGTERM);
  EXPECT_EQ(mock.child.WaitFor(kStartTimeout), std::optional<int>(0));
}

// docs/CLUSTER.md takes a shard record's recorded_at from its Kafka
// timestamp, so the broker must hand back exactly what the producer stamped.
TEST(KafkaMockProcess, RecordsKeepTheTimestampTheirProducerGave) {
  MockProcess mock(1);
  ASSERT_FALSE(mock.bootstrap.empty());
  Client producer(NewClient(RD_KAFKA_PRODUCER, mock.bootstrap, {{"enable.idempotence", "true"}}));
  ASSERT_TRUE(producer);
  ProduceStamped(producer.get(), "stamped");
  ASSERT_EQ(rd_kafka_flush(producer.get(), kKafkaTimeoutMs), RD_KAFKA_RESP_ERR_NO_ERROR);

  Client consumer(NewClient(RD_KAFKA_CONSUMER, mock.bootstrap, {{"group.id", "check"}}));
  ASSERT_TRUE(consumer);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, "shards", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  ASSERT_EQ(rd_kafka_assign(consumer.get(), parts), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);
  std::string value;
  int64_t stamp = -1;
  rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  ASSERT_TRUE(WaitUntil(
      [&] {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 100);
        if (m == nullptr) return false;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          value.assign(static_cast<const char*>(m->payload), m->len);
          stamp = rd_kafka_message_timestamp(m, &type);
        }
        rd_kafka_message_destroy(m);
        return !value.empty();
      },
      kIngestTimeout));
  EXPECT_EQ(value, "stamped");
  EXPECT_EQ(stamp, kStampMs);
  EXPECT_EQ(type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
  rd_kafka_consumer_close(consumer.get());
}

}  // namespace
}  // namespace billing
