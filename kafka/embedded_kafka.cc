#include "kafka/embedded_kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace billing::api {

namespace {

// The mock cluster replicates nothing; one broker is enough for every client.
constexpr int kEmbeddedBrokers = 1;
constexpr int kReplicationFactor = 1;

}  // namespace

Result<std::unique_ptr<EmbeddedKafka>> EmbeddedKafka::Start(const EmbeddedKafkaOptions& options) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The host handle never connects anywhere; it only carries the cluster. Its
  // own complaints (no bootstrap servers) are noise, so only errors are logged.
  if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return Status(Code::kInternal, std::string("embedded kafka: ") + err);
  }
  rd_kafka_t* host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (host == nullptr) {
    return Status(Code::kUnavailable, std::string("embedded kafka: ") + err);
  }
  std::unique_ptr<EmbeddedKafka> kafka(new EmbeddedKafka());
  kafka->host_ = host;
  kafka->cluster_ = rd_kafka_mock_cluster_new(host, kEmbeddedBrokers);
  if (kafka->cluster_ == nullptr) {
    return Status(Code::kUnavailable, "embedded kafka: cannot start the mock cluster");
  }
  kafka->bootstrap_ = rd_kafka_mock_cluster_bootstraps(kafka->cluster_);
  for (const std::string& topic : options.topics) {
    Status created = kafka->CreateTopic(topic, options.partitions);
    if (!created.ok()) return created;
  }
  return kafka;
}

EmbeddedKafka::~EmbeddedKafka() {
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  if (host_ != nullptr) rd_kafka_destroy(host_);
}

Status EmbeddedKafka::CreateTopic(const std::string& topic, int partitions) {
  rd_kafka_resp_err_t e =
      rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, kReplicationFactor);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Code::kInvalidArgument,
                  "embedded kafka: cannot create topic " + topic + ": " + rd_kafka_err2str(e));
  }
  return Status::Ok();
}

}  // namespace billing::api
