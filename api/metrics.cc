#include "api/metrics.h"

#include <sstream>

namespace billing::api {

namespace {

// Upper bounds in microseconds: 100 us to ~3 s, doubling.
constexpr std::array<int64_t, 16> kBucketMicros = {100,   200,   400,   800,    1600,   3200,
                                                   6400,  12800, 25600, 51200,  102400, 204800,
                                                   409600, 819200, 1638400, 3276800};

}  // namespace

void Metrics::Count(const std::string& name, const std::string& labels, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_[name][labels] += static_cast<int64_t>(n);
}

void Metrics::Set(const std::string& name, const std::string& labels, int64_t value) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_[name][labels] = value;
}

void Metrics::ObserveLatency(const std::string& route, int64_t micros) {
  std::lock_guard<std::mutex> lock(mu_);
  Histogram& h = latency_[route];
  for (size_t i = 0; i < kBucketMicros.size(); ++i) {
    if (micros <= kBucketMicros[i]) h.buckets[i]++;
  }
  h.count++;
  h.sum_micros += micros;
}

void Metrics::AddCollector(std::function<void(Metrics&)> collector) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string Metrics::Render() {
  std::vector<std::function<void(Metrics&)>> collectors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    collectors = collectors_;
  }
  for (auto& c : collectors) c(*this);
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream out;
  auto series = [&](const std::string& name, const std::string& labels, int64_t v) {
    out << name;
    if (!labels.empty()) out << '{' << labels << '}';
    out << ' ' << v << '\n';
  };
  for (const auto& [name, by_labels] : counters_) {
    out << "# TYPE " << name << " counter\n";
    for (const auto& [labels, v] : by_labels) series(name, labels, v);
  }
  for (const auto& [name, by_labels] : gauges_) {
    out << "# TYPE " << name << " gauge\n";
    for (const auto& [labels, v] : by_labels) series(name, labels, v);
  }
  out << "# TYPE ledger_http_request_duration_seconds histogram\n";
  for (const auto& [route, h] : latency_) {
    for (size_t i = 0; i < kBucketMicros.size(); ++i) {
      out << "ledger_http_request_duration_seconds_bucket{route=\"" << route << "\",le=\""
          << static_cast<double>(kBucketMicros[i]) / 1e6 << "\"} " << h.buckets[i] << '\n';
    }
    out << "ledger_http_request_duration_seconds_bucket{route=\"" << route << "\",le=\"+Inf\"} "
        << h.count << '\n';
    out << "ledger_http_request_duration_seconds_sum{route=\"" << route << "\"} "
        << static_cast<double>(h.sum_micros) / 1e6 << '\n';
    out << "ledger_http_request_duration_seconds_count{route=\"" << route << "\"} " << h.count << '\n';
  }
  return out.str();
}

}  // namespace billing::api
