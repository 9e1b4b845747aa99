#include "kafka/produce.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace billing::ops {

namespace {

// Bounds of the wait for outstanding deliveries at the end: the message
// timeout plus a margin for the last reports to arrive.
constexpr int kFlushMs = kProduceMessageTimeoutMs + 5000;
// While the producer's queue is full, serve delivery reports this long
// before trying again.
constexpr int kQueueFullPollMs = 100;
// After giving up, how long purged messages get to report.
constexpr int kPurgeFlushMs = 5000;

struct Counters {
  uint64_t delivered = 0;
  uint64_t failed = 0;
  std::string first_error;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* c = static_cast<Counters*>(opaque);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    c->delivered++;
  } else {
    c->failed++;
    if (c->first_error.empty()) c->first_error = rd_kafka_err2str(m->err);
  }
}

std::string OrgKey(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  auto it = j.find("org_id");
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

}  // namespace

ProduceReport ProduceLines(const ProduceOptions& options, std::istream& in) {
  ProduceReport report;
  Counters counters;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::pair<const char*, std::string> settings[] = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "ledgerctl"},
      // No duplicates or reordering from our own retries (acks=all implied).
      {"enable.idempotence", "true"},
      {"message.timeout.ms", std::to_string(kProduceMessageTimeoutMs)},
      {"linger.ms", "5"},
      {"log.connection.close", "false"},
  };
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      report.error = std::string(name) + ": " + err;
      return report;
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, &OnDelivery);
  rd_kafka_conf_set_opaque(conf, &counters);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    report.error = err;
    return report;
  }

  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::string key = OrgKey(line);
    if (key.empty()) report.unkeyed++;
    for (;;) {
      rd_kafka_resp_err_t e =
          rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(options.topic.c_str()),
                            RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
                            RD_KAFKA_V_VALUE(line.data(), line.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk, kQueueFullPollMs);
        continue;
      }
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        counters.failed++;
        if (counters.first_error.empty()) counters.first_error = rd_kafka_err2str(e);
      }
      break;
    }
    report.sent++;
    rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, kFlushMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Give up on what is still queued; its reports say so.
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, kPurgeFlushMs);
  }
  rd_kafka_destroy(rk);
  // Anything not acknowledged counts as failed, reported or not.
  report.delivered = counters.delivered;
  report.failed = report.sent - std::min(report.sent, counters.delivered);
  report.error = counters.first_error;
  if (report.error.empty() && report.failed > 0)
    report.error = "timed out waiting for delivery reports";
  return report;
}

}  // namespace billing::ops
