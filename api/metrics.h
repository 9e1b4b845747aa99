// Metrics: counters and latency histograms in Prometheus' text format.
//
// Label sets are small and fixed (routes, SPEC codes, Kafka partitions), so a
// mutex-guarded ordered map is enough; the hot path takes the lock briefly.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace billing::api {

class Metrics {
 public:
  void Count(const std::string& name, const std::string& labels, uint64_t n = 1);
  void Set(const std::string& name, const std::string& labels, int64_t value);
  void ObserveLatency(const std::string& route, int64_t micros);
  // Gauges computed at scrape time (ledger head, Kafka lag).
  void AddCollector(std::function<void(Metrics&)> collector);
  std::string Render();

 private:
  std::mutex mu_;
  std::map<std::string, std::map<std::string, int64_t>> counters_;  // name -> labels -> value
  std::map<std::string, std::map<std::string, int64_t>> gauges_;
  struct Histogram {
    std::array<uint64_t, 16> buckets{};
    uint64_t count = 0;
    int64_t sum_micros = 0;
  };
  std::map<std::string, Histogram> latency_;
  std::vector<std::function<void(Metrics&)>> collectors_;
};

}  // namespace billing::api
