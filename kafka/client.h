// Kafka clients: the one place a list of librdkafka settings becomes a
// client handle, so that every consumer and producer of ours reports a
// refused setting the same way and never leaks the configuration on failure.
// Thread-safe (each call builds its own configuration).
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/status.h"

namespace billing::api {

// (property, value) pairs, in the order they are set.
using KafkaSettings = std::vector<std::pair<const char*, std::string>>;

// A client of `type` made from `settings`; `prepare` (may be empty) sets
// callbacks and the opaque on the configuration first. kInvalidArgument,
// starting with `what`, for a setting librdkafka refuses or a client it
// cannot make. The caller owns the handle (rd_kafka_destroy).
Result<rd_kafka_t*> NewKafkaClient(rd_kafka_type_t type, const KafkaSettings& settings,
                                   const std::function<void(rd_kafka_conf_t*)>& prepare,
                                   std::string_view what);

// One line on stderr, "ledgerd: WHO: TEXT", printf-style: how every
// Kafka-facing component (consumer, router, members) reports.
void KafkaLogLine(const char* who, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// The same kind of failure is logged at most this often: a broker that is
// down reports on every reconnect attempt, and one line per 5 s says as much.
inline constexpr std::chrono::milliseconds kKafkaErrorLogInterval{5000};

// A component's rate-limited failure log (by kind). Thread-safe.
class KafkaErrorLog {
 public:
  explicit KafkaErrorLog(const char* who) : who_(who) {}
  // Logs `text` unless a line of `kind` was logged within
  // kKafkaErrorLogInterval.
  void Log(const std::string& kind, const std::string& text);

 private:
  const char* const who_;
  std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_;
};

// Owns a partition list for the length of a scope.
struct PartitionList {
  explicit PartitionList(int size) : list(rd_kafka_topic_partition_list_new(size)) {}
  ~PartitionList() { rd_kafka_topic_partition_list_destroy(list); }
  PartitionList(const PartitionList&) = delete;
  PartitionList& operator=(const PartitionList&) = delete;
  rd_kafka_topic_partition_list_t* list;
};

}  // namespace billing::api
