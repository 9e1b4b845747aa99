// What the Kafka tests share: a test producer that checks its deliveries,
// and the events they send. (Waiting is tests/testing/wait.h.)
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace billing::kafka_testing {

// An idempotent producer whose Flush waits for every delivery report.
class TestProducer {
 public:
  explicit TestProducer(const std::string& bootstrap) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "2", err, sizeof(err));
    rd_kafka_conf_set(conf, "log.connection.close", "false", err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(conf, &TestProducer::OnDelivery);
    rd_kafka_conf_set_opaque(conf, this);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk_ == nullptr) throw std::runtime_error(std::string("rd_kafka_new: ") + err);
  }
  ~TestProducer() {
    rd_kafka_flush(rk_, 10000);
    rd_kafka_destroy(rk_);
  }
  TestProducer(const TestProducer&) = delete;
  TestProducer& operator=(const TestProducer&) = delete;

  // Queues one message; an empty key is sent as no key, `value` nullptr as a
  // tombstone (no value).
  void Send(const std::string& topic, const std::string& key, const std::string* value,
            int32_t partition = RD_KAFKA_PARTITION_UA) {
    for (;;) {
      rd_kafka_resp_err_t e =
          rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                            RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
                            RD_KAFKA_V_VALUE(value ? const_cast<char*>(value->data()) : nullptr,
                                             value ? value->size() : 0),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk_, 10);
        continue;
      }
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) failed_++;
      break;
    }
    rd_kafka_poll(rk_, 0);
  }
  void Send(const std::string& topic, const std::string& key, const std::string& value,
            int32_t partition = RD_KAFKA_PARTITION_UA) {
    Send(topic, key, &value, partition);
  }

  // Waits for every report; true if all messages so far were delivered.
  bool Flush() {
    rd_kafka_flush(rk_, 30000);
    return rd_kafka_outq_len(rk_) == 0 && failed_ == 0;
  }
  int failed() const { return failed_; }
  rd_kafka_t* handle() { return rk_; }

 private:
  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) static_cast<TestProducer*>(opaque)->failed_++;
  }
  rd_kafka_t* rk_ = nullptr;
  int failed_ = 0;
};

// The high watermark (next offset to be written) of a partition.
inline int64_t HighWatermark(rd_kafka_t* rk, const std::string& topic, int32_t partition) {
  int64_t low = 0, high = -1;
  if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &low, &high, 10000) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return -1;
  }
  return high;
}

// Events of the SPEC, in JSON. Every org has one cost center, workspace and
// provider; usage lands in January 2026.
inline std::string OrgCreated(const std::string& org) {
  return R"({"event_id":")" + org + R"(:org","org_id":")" + org +
         R"(","occurred_at":"2026-01-01T00:00:00Z","organization_created":{"name":"Org )" + org +
         R"(","currency":"USD","billing_account":"BA-)" + org + R"("}})";
}
inline std::string CostCenterCreated(const std::string& org) {
  return R"({"event_id":")" + org + R"(:cc","org_id":")" + org +
         R"(","occurred_at":"2026-01-01T00:00:01Z","cost_center_created":{"cost_center_id":"cc-1","name":"Engineering"}})";
}
inline std::string WorkspaceCreated(const std::string& org) {
  return R"({"event_id":")" + org + R"(:ws","org_id":")" + org +
         R"(","occurred_at":"2026-01-01T00:00:02Z","workspace_created":{"workspace_id":"ws-1","cost_center_id":"cc-1","name":"Main"}})";
}
inline std::string ProviderRegistered(const std::string& org) {
  return R"({"event_id":")" + org + R"(:prv","org_id":")" + org +
         R"(","occurred_at":"2026-01-01T00:00:03Z","provider_registered":{"provider_id":"aws-1","workspace_id":"ws-1","name":"AWS prod","kind":"aws"}})";
}
// The four events above, in the order they must be recorded.
inline std::vector<std::string> StructureEvents(const std::string& org) {
  return {OrgCreated(org), CostCenterCreated(org), WorkspaceCreated(org), ProviderRegistered(org)};
}
// The same, as one NDJSON body for POST /v1/events.
inline std::string StructureNdjson(const std::string& org) {
  std::string body;
  for (const std::string& e : StructureEvents(org)) body += e + "\n";
  return body;
}
// A usage event of `amount` (a decimal string) with id `{org}:use:{n}`.
inline std::string Usage(const std::string& org, int n, const std::string& amount,
                         const std::string& provider = "aws-1") {
  return R"({"event_id":")" + org + ":use:" + std::to_string(n) + R"(","org_id":")" + org +
         R"(","occurred_at":"2026-01-15T10:00:00Z","source":"aws-cur","usage_recorded":{"provider_id":")" +
         provider +
         R"(","service":"AmazonEC2","sku":"BoxUsage:m5.large","resource_id":"i-0123456789abcdef0","region":"eu-west-1","quantity":"1","unit":"Hrs","amount":")" +
         amount + R"(","usage_start":"2026-01-15T09:00:00Z","usage_end":"2026-01-15T10:00:00Z"}})";
}

}  // namespace billing::kafka_testing
