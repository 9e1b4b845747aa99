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
  // One finished HTTP request: counted per route and status, and its latency
  // observed. Lock-free: it runs on every request.
  void Request(int route, int status, int64_t micros);
  // Route labels by index, for Request(); set once before serving.
  void SetRoutes(std::vector<std::string> routes);
  // One observation of a slow operation (a webhook delivery attempt) in the
  // histogram `name` (labels `labels`), with buckets from 1 ms to ~33 s.
  // Takes the lock: for operations that take milliseconds, not per request.
  void ObserveSlow(const std::string& name, const std::string& labels, int64_t micros);
  // Gauges computed at scrape time (ledger head, Kafka lag).
  void AddCollector(std::function<void(Metrics&)> collector);
  std::string Render();

 private:
  std::mutex mu_;
  std::map<std::string, std::map<std::string, int64_t>> counters_;  // name -> labels -> value
  std::map<std::string, std::map<std::string, int64_t>> gauges_;
  std::vector<std::function<void(Metrics&)>> collectors_;
  struct SlowHistogram {
    std::vector<uint64_t> buckets;  // non-cumulative, one per kSlowBucketMicros
    uint64_t count = 0;
    int64_t sum_micros = 0;
  };
  std::map<std::string, std::map<std::string, SlowHistogram>> slow_;  // name -> labels -> it

 public:
  static constexpr int kRoutesMax = 32;
  static constexpr int kLatencyBuckets = 16;

 private:
  // Per route: requests by status class (1xx..5xx) and latency buckets.
  struct RouteStats {
    std::array<std::atomic<uint64_t>, 6> by_class{};
    std::array<std::atomic<uint64_t>, kLatencyBuckets> buckets{};
    std::atomic<uint64_t> count{0};
    std::atomic<int64_t> sum_micros{0};
  };
  std::array<RouteStats, kRoutesMax> routes_;
  std::vector<std::string> route_names_;
};

}  // namespace billing::api
