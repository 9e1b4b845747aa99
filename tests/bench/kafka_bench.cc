// kafka_bench: end-to-end Kafka ingestion throughput and freshness (a
// program, not a test; results in BENCHMARKS.md, "Kafka ingestion (issue 5)").
//
// Everything runs in one process on the embedded (librdkafka mock) broker:
//  1. raw: a bare librdkafka consumer (manual assignment, no group, no
//     commits) reads N usage events while a producer thread publishes them;
//  2. ledger: the same N events, byte for byte, through api::KafkaConsumer
//     into a Billing on disk (synced WAL): ledger, hash chain, idempotency
//     index and read models, while the producer publishes them;
//  3. the ceiling: the same events through ledger::PrepareEntry and Submit
//     without Kafka (the consumer's own pipeline shape: prepare the next
//     batch of 1000 while the previous one is written), into another ledger;
//  4. freshness: at half the rate measured in 2, each event's time from the
//     produce call to being readable in the ledger, whose read models are
//     written in the same atomic WriteBatch (RocksDB makes a batch visible
//     at once), so an event readable there is in the dashboard too.
// The mock broker keeps only ~5 MiB a partition in memory, so the producer
// stays at most kWindowEventsPerPartition per partition ahead of the reader
// being measured, in both 1 and 2 alike. The events belong to one
// organization (registered first, with a cost center, workspace and
// provider); its usage events are spread over the partitions round robin
// (key org_id, explicit partition): they are independent of each other, and
// one key would put everything on one partition. With --binary the values are
// the binary protobuf envelopes of the same events instead of JSON.
//
// Usage: kafka_bench [--events N] [--partitions P] [--fresh-seconds S] [--binary 1]
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "events/event.h"
#include "kafka/embedded_kafka.h"
#include "kafka/kafka_consumer.h"
#include "ledger/prepare.h"
#include "metrics/metrics.h"
#include "projections/billing.h"
#include "projections/queries.h"

using namespace billing;
using Clock = std::chrono::steady_clock;

namespace {

// How far a producer may run ahead of the reader being measured, per
// partition: ~2.5 MB of ~330-byte events, half the mock broker's memory.
constexpr int64_t kWindowEventsPerPartition = 7500;
constexpr const char* kOrg = "bench";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A ~330-byte usage event, as a cloud cost feed would send it: 1000
// resources, 4 services, 3 months.
std::string UsageEvent(int64_t i) {
  static const char* kServices[] = {"AmazonEC2", "AmazonS3", "AWSLambda", "AmazonRDS"};
  static const char* kSkus[] = {"BoxUsage:m5.large", "TimedStorage-ByteHrs", "Request",
                                "InstanceUsage:db.r5"};
  int s = static_cast<int>(i % 4);
  int month = 1 + static_cast<int>((i / 7) % 3);
  int day = 1 + static_cast<int>((i / 21) % 28);
  int hour = static_cast<int>(i % 24);
  char buf[640];
  std::snprintf(
      buf, sizeof(buf),
      R"({"event_id":"bench:use:%010)" PRId64
      R"(","org_id":"bench","occurred_at":"2026-%02d-%02dT%02d:00:00Z","source":"aws-cur",)"
      R"("usage_recorded":{"provider_id":"aws-1","service":"%s","sku":"%s",)"
      R"("resource_id":"i-%010)" PRId64
      R"(","region":"eu-west-1","quantity":"1.000000000","unit":"Hrs",)"
      R"("amount":"0.%09)" PRId64
      R"(","usage_start":"2026-%02d-%02dT%02d:00:00Z","usage_end":"2026-%02d-%02dT%02d:59:59Z"}})",
      i, month, day, hour, kServices[s], kSkus[s], i % 1000, (i % 997) * 1000 + 17, month, day,
      hour, month, day, hour);
  return buf;
}
bool g_binary = false;

// The message value of event i: its JSON, or with --binary its protobuf.
std::string Value(int64_t i) {
  std::string json = UsageEvent(i);
  if (!g_binary) return json;
  auto env = events::ParseJson(json);
  LEDGER_CHECK(env.ok(), "a generated event does not parse: " + env.status().ToString());
  return env->SerializeAsString();
}

// Its amount in nano-units (the "0.%09d" above).
int64_t UsageNanos(int64_t i) { return (i % 997) * 1000 + 17; }

std::vector<std::string> SetupEvents() {
  return {
      R"({"event_id":"bench:org","org_id":"bench","occurred_at":"2025-12-01T00:00:00Z","organization_created":{"name":"Bench Corp","currency":"USD","billing_account":"BA-1"}})",
      R"({"event_id":"bench:cc","org_id":"bench","occurred_at":"2025-12-01T00:00:01Z","cost_center_created":{"cost_center_id":"cc-1","name":"Engineering"}})",
      R"({"event_id":"bench:ws","org_id":"bench","occurred_at":"2025-12-01T00:00:02Z","workspace_created":{"workspace_id":"ws-1","cost_center_id":"cc-1","name":"Main"}})",
      R"({"event_id":"bench:prv","org_id":"bench","occurred_at":"2025-12-01T00:00:03Z","provider_registered":{"provider_id":"aws-1","workspace_id":"ws-1","name":"AWS prod","kind":"aws"}})",
  };
}

rd_kafka_t* NewClient(rd_kafka_type_t type,
                      const std::vector<std::pair<std::string, std::string>>& settings) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "kafka_bench: %s: %s\n", k.c_str(), err);
      std::exit(2);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk == nullptr) {
    std::fprintf(stderr, "kafka_bench: %s\n", err);
    std::exit(2);
  }
  return rk;
}

class Producer {
 public:
  explicit Producer(const std::string& bootstrap)
      : rk_(NewClient(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap},
                                          {"enable.idempotence", "true"},
                                          {"linger.ms", "5"},
                                          {"batch.num.messages", "10000"},
                                          {"queue.buffering.max.messages", "1000000"},
                                          {"log.connection.close", "false"}})) {}
  ~Producer() {
    rd_kafka_flush(rk_, 30000);
    rd_kafka_destroy(rk_);
  }
  void Send(const std::string& topic, int32_t partition, const std::string& value) {
    for (;;) {
      rd_kafka_resp_err_t e =
          rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                            RD_KAFKA_V_KEY(kOrg, std::strlen(kOrg)),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk_, 1);
        continue;
      }
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::fprintf(stderr, "kafka_bench: produce: %s\n", rd_kafka_err2str(e));
        std::exit(1);
      }
      return;
    }
  }
  void Flush() {
    if (rd_kafka_flush(rk_, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "kafka_bench: produce: delivery timed out\n");
      std::exit(1);
    }
  }
  void Poll() { rd_kafka_poll(rk_, 0); }

 private:
  rd_kafka_t* rk_;
};

// Publishes `values` round robin over the partitions, never more than the
// window ahead of `progress()`, and waits until all are delivered.
void ProduceWindowed(Producer& producer, const std::string& topic, int partitions,
                     const std::vector<std::string>& values,
                     const std::function<int64_t()>& progress) {
  const int64_t window = kWindowEventsPerPartition * partitions;
  const int64_t count = static_cast<int64_t>(values.size());
  for (int64_t i = 0; i < count; ++i) {
    while (i - progress() > window) {
      producer.Poll();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    producer.Send(topic, static_cast<int32_t>(i % partitions), values[static_cast<size_t>(i)]);
    if ((i & 1023) == 0) producer.Poll();
  }
  producer.Flush();
}

struct RawResult {
  double seconds = 0;
  int64_t bytes = 0;
};

// A bare consumer: assign every partition from the beginning, count.
RawResult RawConsume(const std::string& bootstrap, const std::string& topic, int partitions,
                     int64_t count, std::atomic<int64_t>* consumed) {
  rd_kafka_t* rk = NewClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                                 {"group.id", "raw-bench"},
                                                 {"enable.auto.commit", "false"},
                                                 {"fetch.wait.max.ms", "10"},
                                                 {"queued.max.messages.kbytes", "32768"},
                                                 {"log.connection.close", "false"}});
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  RawResult r;
  Clock::time_point start;
  int64_t n = 0;
  while (n < count) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (n == 0) start = Clock::now();
      r.bytes += static_cast<int64_t>(m->len);
      consumed->store(++n, std::memory_order_relaxed);
    }
    rd_kafka_message_destroy(m);
  }
  r.seconds = Seconds(Clock::now() - start);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return r;
}

int64_t ParseFlag(int argc, char** argv, const char* name, int64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == name) return std::atoll(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = ParseFlag(argc, argv, "--events", 1000000);
  const int partitions = static_cast<int>(ParseFlag(argc, argv, "--partitions", 4));
  const int fresh_seconds = static_cast<int>(ParseFlag(argc, argv, "--fresh-seconds", 10));
  g_binary = ParseFlag(argc, argv, "--binary", 0) != 0;
  std::string dir = (std::filesystem::temp_directory_path() / "kafka_bench_XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) return 2;

  auto kafka = api::EmbeddedKafka::Start({{"raw", "ledger"}, partitions});
  if (!kafka.ok()) {
    std::fprintf(stderr, "kafka_bench: %s\n", kafka.status().ToString().c_str());
    return 2;
  }
  const std::string bootstrap = (*kafka)->bootstrap();
  std::printf("kafka_bench: %" PRId64 " %s events of ~%zu bytes, %d partitions, ledger in %s\n", n,
              g_binary ? "binary protobuf" : "JSON", Value(n / 2).size(), partitions, dir.c_str());
  std::fflush(stdout);

  // The message values, made before any clock starts (a binary value costs
  // a JSON parse to make).
  std::vector<std::string> values;
  values.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values.push_back(Value(i));

  // 1. The bare consumer.
  RawResult raw;
  {
    Producer producer(bootstrap);
    std::atomic<int64_t> consumed{0};
    std::thread reader([&] { raw = RawConsume(bootstrap, "raw", partitions, n, &consumed); });
    ProduceWindowed(producer, "raw", partitions, values,
                    [&] { return consumed.load(std::memory_order_relaxed); });
    reader.join();
  }
  const double raw_rate = static_cast<double>(n) / raw.seconds;
  std::printf("raw librdkafka consumer: %" PRId64 " events in %.2f s = %.0f events/s (%.1f MB/s)\n",
              n, raw.seconds, raw_rate, static_cast<double>(raw.bytes) / raw.seconds / 1e6);
  std::fflush(stdout);

  // 2. Through the ledger.
  projections::BillingOptions bo;
  bo.dir = dir + "/ledger";
  auto billing = projections::Billing::Open(bo);
  if (!billing.ok()) {
    std::fprintf(stderr, "kafka_bench: %s\n", billing.status().ToString().c_str());
    return 2;
  }
  ledger::Ledger& led = (*billing)->ledger();
  api::Metrics metrics;
  api::KafkaOptions ko;
  ko.brokers = bootstrap;
  ko.embedded = false;
  ko.topic = "ledger";
  ko.group = "bench";
  auto consumer = api::KafkaConsumer::Start(ko, **billing, metrics);
  if (!consumer.ok()) {
    std::fprintf(stderr, "kafka_bench: %s\n", consumer.status().ToString().c_str());
    return 2;
  }
  auto head = [&] { return static_cast<int64_t>(led.head().sequence.value); };
  auto wait_head = [&](int64_t target) {
    while (head() < target) std::this_thread::sleep_for(std::chrono::microseconds(500));
  };
  Producer producer(bootstrap);
  const std::vector<std::string> setup = SetupEvents();
  for (const std::string& e : setup) producer.Send("ledger", 0, e);
  producer.Flush();
  const int64_t base = static_cast<int64_t>(setup.size());
  wait_head(base);

  Clock::time_point start = Clock::now();
  std::thread writer([&] {
    ProduceWindowed(producer, "ledger", partitions, values, [&] { return head() - base; });
  });
  wait_head(base + n);
  const double ledger_seconds = Seconds(Clock::now() - start);
  writer.join();
  const double ledger_rate = static_cast<double>(n) / ledger_seconds;
  api::KafkaStats stats = (*consumer)->stats();
  std::printf("through ledger and read models: %" PRId64
              " events in %.2f s = %.0f events/s = %.0f%% of raw"
              " (%" PRIu64 " batches, %.0f events a batch)\n",
              n, ledger_seconds, ledger_rate, 100.0 * ledger_rate / raw_rate, stats.batches,
              static_cast<double>(stats.appended) /
                  static_cast<double>(std::max<uint64_t>(stats.batches, 1)));
  std::fflush(stdout);

  // 3. The same events without Kafka: the ledger's own ceiling here.
  double ceiling_rate = 0;
  {
    projections::BillingOptions co;
    co.dir = dir + "/ceiling";
    auto direct = projections::Billing::Open(co);
    if (!direct.ok()) {
      std::fprintf(stderr, "kafka_bench: %s\n", direct.status().ToString().c_str());
      return 2;
    }
    ledger::Source source;
    source.set_kind(ledger::Source::KAFKA);
    source.set_topic("direct");
    ledger::AppendRequest setup_request;
    for (const std::string& e : setup)
      setup_request.entries.push_back(ledger::PrepareEntry(e, source));
    (*direct)->Submit(std::move(setup_request));
    std::vector<std::string> direct_values = values;
    std::mutex mu;
    std::condition_variable cv;
    bool busy = false;
    Clock::time_point t0 = Clock::now();
    for (int64_t i = 0; i < n;) {
      ledger::AppendRequest request;
      for (size_t k = 0; k < api::kKafkaBatchEventsMax && i < n; ++k, ++i) {
        source.set_offset(i);
        request.entries.push_back(
            ledger::PrepareEntry(std::move(direct_values[static_cast<size_t>(i)]), source));
      }
      request.offsets.push_back(ledger::KafkaOffset{"direct", 0, i});
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !busy; });
      busy = true;
      lock.unlock();
      (*direct)->SubmitAsync(std::move(request), [&](ledger::AppendResult) {
        std::lock_guard<std::mutex> l(mu);
        busy = false;
        cv.notify_one();
      });
    }
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !busy; });
    }
    double seconds = Seconds(Clock::now() - t0);
    ceiling_rate = static_cast<double>(n) / seconds;
    if ((*direct)->ledger().head().sequence.value != static_cast<uint64_t>(base + n)) {
      std::fprintf(stderr, "kafka_bench: the direct ledger has %" PRIu64 " events\n",
                   (*direct)->ledger().head().sequence.value);
      return 1;
    }
    std::printf(
        "same events without Kafka (Prepare + Submit, batches of %zu): %.2f s = %.0f events/s;"
        " through Kafka is %.0f%% of that\n",
        api::kKafkaBatchEventsMax, seconds, ceiling_rate, 100.0 * ledger_rate / ceiling_rate);
    std::fflush(stdout);
  }

  // 4. Freshness at half the rate through Kafka.
  const double fresh_rate = ledger_rate / 2;
  const int64_t fresh_n = static_cast<int64_t>(fresh_rate * fresh_seconds);
  std::vector<Clock::time_point> produced_at(static_cast<size_t>(fresh_n));
  std::vector<double> latency_ms(static_cast<size_t>(fresh_n), -1);
  const int64_t fresh_base = base + n;
  std::thread watcher([&] {
    int64_t seen = fresh_base;
    while (seen < fresh_base + fresh_n) {
      int64_t h = head();
      if (h == seen) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      Clock::time_point now = Clock::now();
      Status s = led.Scan(ledger::Sequence{static_cast<uint64_t>(seen)},
                          static_cast<size_t>(h - seen), [&](const ledger::Record& r) {
                            auto env = ledger::DecodeEvent(r);
                            if (env.ok()) {
                              const std::string& id = env->event_id();
                              int64_t i = std::atoll(id.c_str() + id.rfind(':') + 1) - n;
                              if (i >= 0 && i < fresh_n) {
                                latency_ms[static_cast<size_t>(i)] =
                                    std::chrono::duration<double, std::milli>(
                                        now - produced_at[static_cast<size_t>(i)])
                                        .count();
                              }
                            }
                            return true;
                          });
      if (!s.ok()) break;
      seen = h;
    }
  });
  std::vector<std::string> fresh_values;
  fresh_values.reserve(static_cast<size_t>(fresh_n));
  for (int64_t i = 0; i < fresh_n; ++i) fresh_values.push_back(Value(n + i));
  const api::KafkaStats before_fresh = (*consumer)->stats();
  Clock::time_point fresh_start = Clock::now();
  const int64_t per_ms = std::max<int64_t>(1, static_cast<int64_t>(fresh_rate / 1000));
  for (int64_t i = 0; i < fresh_n;) {
    std::this_thread::sleep_until(fresh_start + std::chrono::microseconds(i * 1000 / per_ms));
    for (int64_t k = 0; k < per_ms && i < fresh_n; ++k, ++i) {
      produced_at[static_cast<size_t>(i)] = Clock::now();
      producer.Send("ledger", static_cast<int32_t>(i % partitions),
                    fresh_values[static_cast<size_t>(i)]);
    }
    producer.Poll();
  }
  producer.Flush();
  watcher.join();
  std::vector<double> sorted;
  for (double l : latency_ms) {
    if (l >= 0) sorted.push_back(l);
  }
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double p) {
    return sorted.empty() ? -1 : sorted[static_cast<size_t>(p * (sorted.size() - 1))];
  };
  const api::KafkaStats after_fresh = (*consumer)->stats();
  const uint64_t fresh_batches = after_fresh.batches - before_fresh.batches;
  std::printf(
      "freshness at %.0f events/s for %d s (%zu events): p50 %.1f ms, p99 %.1f ms, max %.1f ms"
      " (%" PRIu64 " batches, %.0f events a batch)\n",
      fresh_rate, fresh_seconds, sorted.size(), pct(0.5), pct(0.99),
      sorted.empty() ? -1 : sorted.back(), fresh_batches,
      static_cast<double>(after_fresh.appended - before_fresh.appended) /
          static_cast<double>(std::max<uint64_t>(fresh_batches, 1)));
  std::fflush(stdout);

  // The read models hold every event exactly once.
  (*consumer)->Stop();
  const int64_t total = n + fresh_n;
  Sum expected = 0;
  for (int64_t i = 0; i < total; ++i) expected += UsageNanos(i);
  Sum billed = 0;
  {
    // The snapshot holds a RocksDB snapshot: released before the Billing.
    auto snap = (*billing)->Snapshot(kOrg, std::nullopt);
    if (snap.ok()) {
      auto dash =
          projections::Dashboard(*snap->org, *snap->view, {Month{2026 * 12 + 2}, 3}, std::nullopt);
      if (dash.ok()) {
        for (const auto& m : *dash) billed += m.billed;
      }
    }
  }
  // Each month's bill is rounded to cents, so allow one cent a month.
  bool sums_match = billed - expected < 3 * 10'000'000 && expected - billed < 3 * 10'000'000;
  const int64_t final_head = head();
  std::printf("check: head %" PRId64 " (expected %" PRId64
              "), read models %s the produced amounts\n",
              final_head, base + total, sums_match ? "match" : "DO NOT match");
  consumer->reset();
  billing->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return final_head == base + total && sums_match ? 0 : 1;
}
