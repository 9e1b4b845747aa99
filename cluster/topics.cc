#include "cluster/topics.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <memory>
#include <thread>

#include "kafka/client.h"

namespace billing::cluster {

namespace {

using Clock = std::chrono::steady_clock;

// A topic just created may be missing from metadata for a moment (the
// controller tells the other brokers asynchronously): look again this often.
constexpr int kMetadataRetryMs = 200;
// The smallest wait for one request, so that a nearly spent deadline still
// gives the broker a chance to answer.
constexpr int kRequestTimeoutMsMin = 100;
// Replication is the brokers' default (-1): a real cluster sets 3 and
// min.insync.replicas=2 for G.shards (docs/CLUSTER.md); a mock has one broker.
constexpr int kReplicationFactorBrokerDefault = -1;

struct ClientDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Client = std::unique_ptr<rd_kafka_t, ClientDeleter>;

Result<Client> NewAdminClient(const std::string& brokers) {
  const api::KafkaSettings settings = {
      {"bootstrap.servers", brokers},
      {"client.id", "ledgerd-admin"},
      {"log.connection.close", "false"},
  };
  ASSIGN_OR_RETURN(rd_kafka_t * rk,
                   api::NewKafkaClient(RD_KAFKA_PRODUCER, settings, nullptr, "kafka admin"));
  return Client(rk);
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max<int>(kRequestTimeoutMsMin, static_cast<int>(left.count()));
}

// The partition count of `topic`, 0 if the brokers do not know it. An
// all-topics request: naming the topic would make a mock cluster (and a
// broker with auto.create.topics.enable) create it with its default count.
Result<int> PartitionCount(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, /*all_topics=*/1, nullptr, &md, timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Code::kUnavailable,
                  "kafka: cannot read the metadata of " + topic + ": " + rd_kafka_err2str(e));
  }
  int count = 0;
  for (int i = 0; i < md->topic_cnt; i++) {
    if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      count = md->topics[i].partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(md);
  return count;
}

// Asks the brokers to create the topic; an existing topic is success.
Status CreateTopic(rd_kafka_t* rk, const std::string& topic, int partitions,
                   const TopicConfigs& configs, int timeout_ms) {
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(
      topic.c_str(), partitions, kReplicationFactorBrokerDefault, err, sizeof(err));
  if (nt == nullptr) return Status(Code::kInvalidArgument, "kafka: topic " + topic + ": " + err);
  std::unique_ptr<rd_kafka_NewTopic_t, void (*)(rd_kafka_NewTopic_t*)> new_topic(
      nt, rd_kafka_NewTopic_destroy);
  for (const auto& [name, value] : configs) {
    if (rd_kafka_NewTopic_set_config(nt, name.c_str(), value.c_str()) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status(Code::kInvalidArgument, "kafka: topic " + topic + ": bad config " + name);
    }
  }
  std::unique_ptr<rd_kafka_AdminOptions_t, void (*)(rd_kafka_AdminOptions_t*)> options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS), rd_kafka_AdminOptions_destroy);
  rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms, err, sizeof(err));
  rd_kafka_AdminOptions_set_operation_timeout(options.get(), timeout_ms, err, sizeof(err));
  std::unique_ptr<rd_kafka_queue_t, void (*)(rd_kafka_queue_t*)> queue(rd_kafka_queue_new(rk),
                                                                       rd_kafka_queue_destroy);
  rd_kafka_CreateTopics(rk, &nt, 1, options.get(), queue.get());
  // The request carries its own timeout; the margin lets its answer arrive.
  std::unique_ptr<rd_kafka_event_t, void (*)(rd_kafka_event_t*)> event(
      rd_kafka_queue_poll(queue.get(), timeout_ms + 1000), rd_kafka_event_destroy);
  if (event == nullptr) {
    return Status(Code::kUnavailable, "kafka: no answer to creating topic " + topic);
  }
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Code::kUnavailable, "kafka: cannot create topic " + topic + ": " +
                                          rd_kafka_event_error_string(event.get()) +
                                          " (a mock cluster cannot create topics: create it "
                                          "up front, e.g. `ledgerctl kafka-mock --topic`)");
  }
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &n);
  for (size_t i = 0; i < n; i++) {
    rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
    const char* why = rd_kafka_topic_result_error_string(results[i]);
    return Status(Code::kUnavailable, "kafka: cannot create topic " + topic + ": " +
                                          (why != nullptr ? why : rd_kafka_err2str(e)));
  }
  return Status::Ok();
}

}  // namespace

// min.insync.replicas=2: an acknowledged (acks=all) event is on two brokers
// at least, so losing one broker loses no acknowledged event.
TopicConfigs ShardsTopicConfigs() {
  return {{"retention.ms", "-1"}, {"retention.bytes", "-1"}, {"min.insync.replicas", "2"}};
}

TopicConfigs MembersTopicConfigs() { return {{"cleanup.policy", "compact"}}; }

Status EnsureTopic(const std::string& brokers, const std::string& topic, int partitions,
                   const TopicConfigs& configs, int timeout_ms, PartitionCheck check) {
  if (partitions < 1) {
    return Status(Code::kInvalidArgument,
                  topic + ": partition count must be positive, not " + std::to_string(partitions));
  }
  ASSIGN_OR_RETURN(Client client, NewAdminClient(brokers));
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  ASSIGN_OR_RETURN(int count, PartitionCount(client.get(), topic, RemainingMs(deadline)));
  if (count == 0) {
    RETURN_IF_ERROR(CreateTopic(client.get(), topic, partitions, configs, RemainingMs(deadline)));
    // Created (by us or by a racing instance): wait until metadata shows it.
    while (count == 0) {
      ASSIGN_OR_RETURN(count, PartitionCount(client.get(), topic, RemainingMs(deadline)));
      if (count != 0) break;
      if (Clock::now() >= deadline) {
        return Status(Code::kUnavailable, "kafka: topic " + topic +
                                              " was created but the "
                                              "brokers do not list it yet");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kMetadataRetryMs));
    }
  }
  if (count != partitions && !(check == PartitionCheck::kAtLeast && count > partitions)) {
    // The shards' log is sized by --shards; name the flag the operator got wrong.
    const std::string shards_suffix = ".shards";
    const bool is_shards =
        topic.size() >= shards_suffix.size() &&
        topic.compare(topic.size() - shards_suffix.size(), std::string::npos, shards_suffix) == 0;
    return Status(Code::kInvalidArgument,
                  topic + " has " + std::to_string(count) + " partitions, " +
                      (is_shards ? "--shards says " : "expected ") + std::to_string(partitions));
  }
  return Status::Ok();
}

}  // namespace billing::cluster
