#include "kafka/client.h"

#include <cstdarg>
#include <cstdio>

namespace billing::api {

Result<rd_kafka_t*> NewKafkaClient(rd_kafka_type_t type, const KafkaSettings& settings,
                                   const std::function<void(rd_kafka_conf_t*)>& prepare,
                                   std::string_view what) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status(Code::kInvalidArgument,
                    std::string(what) + " configuration: " + name + ": " + err);
    }
  }
  if (prepare) prepare(conf);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);  // on failure the configuration is still ours
    return Status(Code::kInvalidArgument, std::string(what) + ": " + err);
  }
  return rk;
}

void KafkaLogLine(const char* who, const char* fmt, ...) {
  char line[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(line, sizeof(line), fmt, args);
  va_end(args);
  std::fprintf(stderr, "ledgerd: %s: %s\n", who, line);
}

void KafkaErrorLog::Log(const std::string& kind, const std::string& text) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = last_.find(kind);
    if (it != last_.end() && now - it->second < kKafkaErrorLogInterval) return;
    last_[kind] = now;
  }
  KafkaLogLine(who_, "%s", text.c_str());
}

}  // namespace billing::api
