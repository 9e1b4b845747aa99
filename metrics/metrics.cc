#include "metrics/metrics.h"

#include <sstream>

namespace billing::api {

namespace {

// Upper bounds in microseconds: 100 us to ~3 s, doubling.
constexpr std::array<int64_t, 16> kBucketMicros = {100,    200,    400,     800,    1600,   3200,
                                                   6400,   12800,  25600,   51200,  102400, 204800,
                                                   409600, 819200, 1638400, 3276800};

// Upper bounds in microseconds of ObserveSlow's histograms: 1 ms to ~33 s,
// doubling; a webhook attempt is bounded by its timeouts (webhooks/outbox.h).
constexpr std::array<int64_t, 16> kSlowBucketMicros = {
    1000,   2000,   4000,    8000,    16000,   32000,   64000,    128000,
    256000, 512000, 1024000, 2048000, 4096000, 8192000, 16384000, 32768000};

}  // namespace

void Metrics::ObserveSlow(const std::string& name, const std::string& labels, int64_t micros) {
  std::lock_guard<std::mutex> lock(mu_);
  SlowHistogram& h = slow_[name][labels];
  if (h.buckets.empty()) h.buckets.resize(kSlowBucketMicros.size());
  for (size_t i = 0; i < kSlowBucketMicros.size(); ++i) {
    if (micros <= kSlowBucketMicros[i]) {
      h.buckets[i]++;
      break;
    }
  }
  h.count++;
  h.sum_micros += micros;
}

void Metrics::Count(const std::string& name, const std::string& labels, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_[name][labels] += static_cast<int64_t>(n);
}

void Metrics::Set(const std::string& name, const std::string& labels, int64_t value) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_[name][labels] = value;
}

void Metrics::SetRoutes(std::vector<std::string> routes) { route_names_ = std::move(routes); }

void Metrics::Request(int route, int status, int64_t micros) {
  if (route < 0 || route >= kRoutesMax) return;
  RouteStats& r = routes_[static_cast<size_t>(route)];
  int cls = status / 100;
  r.by_class[static_cast<size_t>(cls >= 1 && cls <= 5 ? cls : 0)].fetch_add(
      1, std::memory_order_relaxed);
  for (size_t i = 0; i < kBucketMicros.size(); ++i) {
    if (micros <= kBucketMicros[i]) {
      r.buckets[i].fetch_add(1, std::memory_order_relaxed);
      break;  // buckets are stored non-cumulative and summed when rendered
    }
  }
  r.count.fetch_add(1, std::memory_order_relaxed);
  r.sum_micros.fetch_add(micros, std::memory_order_relaxed);
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
  for (const auto& [name, by_labels] : slow_) {
    out << "# TYPE " << name << " histogram\n";
    for (const auto& [labels, h] : by_labels) {
      const std::string sep = labels.empty() ? "" : ",";
      uint64_t cumulative = 0;
      for (size_t b = 0; b < kSlowBucketMicros.size(); ++b) {
        cumulative += h.buckets[b];
        out << name << "_bucket{" << labels << sep << "le=\""
            << static_cast<double>(kSlowBucketMicros[b]) / 1e6 << "\"} " << cumulative << '\n';
      }
      out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << h.count << '\n';
      const std::string braced = labels.empty() ? "" : "{" + labels + "}";
      out << name << "_sum" << braced << ' ' << static_cast<double>(h.sum_micros) / 1e6 << '\n';
      out << name << "_count" << braced << ' ' << h.count << '\n';
    }
  }
  out << "# TYPE ledger_http_requests_total counter\n";
  for (size_t i = 0; i < route_names_.size() && i < routes_.size(); ++i) {
    for (int cls = 1; cls <= 5; ++cls) {
      uint64_t n = routes_[i].by_class[static_cast<size_t>(cls)].load();
      if (n == 0) continue;
      out << "ledger_http_requests_total{route=\"" << route_names_[i] << "\",code=\"" << cls
          << "xx\"} " << n << '\n';
    }
  }
  out << "# TYPE ledger_http_request_duration_seconds histogram\n";
  for (size_t i = 0; i < route_names_.size() && i < routes_.size(); ++i) {
    const RouteStats& r = routes_[i];
    if (r.count.load() == 0) continue;
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kBucketMicros.size(); ++b) {
      cumulative += r.buckets[b].load();
      out << "ledger_http_request_duration_seconds_bucket{route=\"" << route_names_[i] << "\",le=\""
          << static_cast<double>(kBucketMicros[b]) / 1e6 << "\"} " << cumulative << '\n';
    }
    out << "ledger_http_request_duration_seconds_bucket{route=\"" << route_names_[i]
        << "\",le=\"+Inf\"} " << r.count.load() << '\n';
    out << "ledger_http_request_duration_seconds_sum{route=\"" << route_names_[i] << "\"} "
        << static_cast<double>(r.sum_micros.load()) / 1e6 << '\n';
    out << "ledger_http_request_duration_seconds_count{route=\"" << route_names_[i] << "\"} "
        << r.count.load() << '\n';
  }
  return out.str();
}

}  // namespace billing::api
