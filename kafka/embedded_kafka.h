// EmbeddedKafka: a Kafka broker inside this process, for development, tests
// and benchmarks.
//
// It is librdkafka's mock cluster: it speaks the real Kafka protocol on a
// loopback port, so any client (ledgerd's consumer, `ledgerctl produce`, kcat)
// can use it through `bootstrap()`, consumer groups and offset commits
// included. It is not a real broker: messages live in memory only and die
// with the process, and each partition keeps only about 5 MiB or 100 k
// batches, dropping the oldest beyond that, so a consumer must keep up with
// its producers. Topics named in the options are created up front with their
// partition count; topics that clients name later are created on first use
// with the mock's default of 4 partitions.
//
// Thread-safe: the cluster runs on its own thread; the object only owns it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "events/status.h"

// librdkafka's handles, kept out of this header.
struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace billing::api {

// Partitions of a topic the embedded broker creates: several, so that
// consumption is spread like on a real cluster and so that the mock's
// per-partition memory limit holds four times the messages.
inline constexpr int kEmbeddedPartitionsDefault = 4;

struct EmbeddedKafkaOptions {
  std::vector<std::string> topics;  // created at start
  int partitions = kEmbeddedPartitionsDefault;
};

class EmbeddedKafka {
 public:
  // Starts the cluster (one broker) and creates the topics. kUnavailable if
  // librdkafka cannot start it (no loopback socket, for instance).
  static Result<std::unique_ptr<EmbeddedKafka>> Start(const EmbeddedKafkaOptions& options);
  ~EmbeddedKafka();  // stops the broker; connected clients see it disappear

  EmbeddedKafka(const EmbeddedKafka&) = delete;
  EmbeddedKafka& operator=(const EmbeddedKafka&) = delete;

  // HOST:PORT of the broker, for clients' bootstrap.servers.
  const std::string& bootstrap() const { return bootstrap_; }

  // Creates a topic (kInvalidArgument if the broker refuses, e.g. it exists).
  Status CreateTopic(const std::string& topic, int partitions);

 private:
  EmbeddedKafka() = default;
  rd_kafka_s* host_ = nullptr;  // the client handle the mock cluster is attached to
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::string bootstrap_;
};

}  // namespace billing::api
