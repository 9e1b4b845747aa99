#include "cluster/router.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>

#include "cluster/shard_map.h"
#include "events/event.h"
#include "kafka/client.h"
#include "kafka/kafka_consumer.h"

namespace billing::cluster {

namespace {

using Clock = std::chrono::steady_clock;

// Messages forwarded between two commits at most: one flush and one commit
// request per thousand messages is cheap, and a batch to forward again after
// a failure stays small.
constexpr size_t kRouterBatchMessagesMax = 1000;
// How long a batch may keep collecting while messages keep arriving: bounds
// the delay the router adds to an event under load.
constexpr int kRouterBatchLingerMs = 20;
// How long one poll may block with nothing in hand; bounds how long Stop
// waits for the thread to notice.
constexpr int kIdlePollMs = 100;
// fetch.wait.max.ms: how long the broker may hold an empty fetch. The mock
// broker always waits this long on one and answers one batch per partition,
// so a short wait keeps it fast; on real brokers it only bounds idle polling.
constexpr const char* kFetchWaitMaxMs = "20";
// queued.max.messages.kbytes: what librdkafka may prefetch (KiB, all
// partitions): enough to keep batches full, bounded so a backlog stays in
// Kafka rather than in our memory.
constexpr const char* kPrefetchKbytesMax = "32768";
// The producer keeps retrying a message this long before reporting it
// failed: rides out a broker restart or a leader election.
constexpr int kMessageTimeoutMs = 30000;
// How long a batch's flush waits for every report: the message timeout and a
// margin for the last reports, so that a batch is always settled (delivered
// or failed) before it is committed or forwarded again; forwarding a copy
// while the original is still queued could put the copy first.
constexpr int kBatchFlushMs = kMessageTimeoutMs + 5000;
// Each wait inside a flush, so that Stop is noticed.
constexpr int kFlushSliceMs = 100;
// At Stop, the batch in hand gets this long to be acknowledged; then it is
// dropped uncommitted (the group's next router forwards it again).
constexpr int kStopFlushMs = 5000;
// After purging what was not acknowledged, how long its reports get.
constexpr int kPurgeFlushMs = 5000;
// After a failed batch: first and longest wait before forwarding it again.
constexpr int kRetryBackoffMsMin = 100;
constexpr int kRetryBackoffMsMax = 5000;
// Seeking back to a failed batch's first offsets.
constexpr int kSeekTimeoutMs = 10000;
// Linger of the producer: short, since each batch is flushed anyway.
constexpr const char* kProducerLingerMs = "5";
// The header naming a forwarded message's input coordinates.
constexpr const char* kOriginHeader = "ledger-origin";

constexpr const char* kLogWho = "router";

// The org a message is for, "" if it names none readably. Only the envelope
// is read (JSON or binary protobuf); validation is the shard owner's.
std::string OrgOf(std::string_view value) {
  events::Names names;
  auto envelope = events::ParseAny(value, &names);
  if (envelope.ok()) return envelope->org_id();
  return names.org_id;
}

std::string FailureLabel(const char* kind) { return std::string("kind=\"") + kind + "\""; }

}  // namespace

struct Router::Impl {
  Impl(const RouterOptions& o, api::Metrics& m) : options(o), metrics(m) {}
  ~Impl() {
    if (consumer != nullptr) rd_kafka_destroy(consumer);
    if (producer != nullptr) rd_kafka_destroy(producer);
  }

  // Messages forwarded since the last commit: each input partition's first
  // offset (where to seek back to) and next offset (what to commit).
  struct Batch {
    std::map<int32_t, int64_t> first;
    std::map<int32_t, int64_t> next;
    size_t size = 0;
    uint64_t acked = 0;   // delivery reports, set by OnDelivery
    uint64_t failed = 0;  // failed reports and messages never handed over
    bool empty() const { return size == 0; }
  };

  Status CreateConsumer();
  Status CreateProducer();
  void Run();
  void Turn();
  void Forward(const rd_kafka_message_t* m);
  bool Settle();
  bool CompleteBatch();
  void Rewind();
  void CountFailure(const char* kind, uint64_t n, const std::string& what);
  bool WaitUnlessStopping(int ms);

  static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque);
  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* parts, void* opaque);

  const RouterOptions options;
  api::Metrics& metrics;
  rd_kafka_t* consumer = nullptr;
  rd_kafka_t* producer = nullptr;
  std::thread thread;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  std::mutex join_mu;
  std::atomic<bool> stopping{false};

  std::atomic<uint64_t> forwarded{0}, delivery_failures{0}, commits{0}, commit_failures{0},
      rewinds{0}, unrouted{0};

  // Router thread only (librdkafka's callbacks run on it, inside poll,
  // flush and close).
  Batch batch;
  std::map<int32_t, int64_t> rewind_to;  // a failed batch's first offsets
  int backoff_ms = 0;
  api::KafkaErrorLog errors{kLogWho};  // by kind of failure
};

Status Router::Impl::CreateConsumer() {
  const api::KafkaSettings settings = {
      {"bootstrap.servers", options.brokers},
      {"group.id", options.group + ".router"},
      {"client.id", "ledgerd-router"},
      // Offsets are committed by us, only after the batch below them is
      // acknowledged by the shards topic's broker.
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      // Eager assignors: a revocation hands the callback every partition,
      // and the batch in hand is finished before they go.
      {"partition.assignment.strategy", "range,roundrobin"},
      {"session.timeout.ms", std::to_string(options.session_timeout_ms)},
      {"heartbeat.interval.ms", std::to_string(std::max(1, options.session_timeout_ms / 3))},
      {"fetch.wait.max.ms", kFetchWaitMaxMs},
      {"queued.max.messages.kbytes", kPrefetchKbytesMax},
      {"log.connection.close", "false"},
  };
  ASSIGN_OR_RETURN(consumer, api::NewKafkaClient(
                                 RD_KAFKA_CONSUMER, settings,
                                 [this](rd_kafka_conf_t* conf) {
                                   rd_kafka_conf_set_rebalance_cb(conf, &Impl::OnRebalance);
                                   rd_kafka_conf_set_opaque(conf, this);
                                 },
                                 "router consumer"));
  rd_kafka_poll_set_consumer(consumer);
  api::PartitionList topics(1);
  rd_kafka_topic_partition_list_add(topics.list, options.input_topic.c_str(),
                                    RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(consumer, topics.list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Code::kInvalidArgument, "router: cannot subscribe to " + options.input_topic +
                                              ": " + rd_kafka_err2str(e));
  }
  return Status::Ok();
}

Status Router::Impl::CreateProducer() {
  const api::KafkaSettings settings = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "ledgerd-router"},
      // No duplicates or reordering from the producer's own retries.
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"message.timeout.ms", std::to_string(kMessageTimeoutMs)},
      {"linger.ms", kProducerLingerMs},
      {"log.connection.close", "false"},
  };
  ASSIGN_OR_RETURN(producer, api::NewKafkaClient(
                                 RD_KAFKA_PRODUCER, settings,
                                 [this](rd_kafka_conf_t* conf) {
                                   rd_kafka_conf_set_dr_msg_cb(conf, &Impl::OnDelivery);
                                   rd_kafka_conf_set_opaque(conf, this);
                                 },
                                 "router producer"));
  return Status::Ok();
}

void Router::Impl::Run() {
  // Nothing may escape this thread: an unexpected exception drops the batch
  // in hand uncommitted and forwards it again, like a failed delivery.
  while (!stopping.load()) {
    try {
      Turn();
    } catch (const std::exception& e) {
      api::KafkaLogLine(kLogWho, "unexpected error, forwarding the batch again: %s", e.what());
      if (!batch.empty()) rewind_to = batch.first;
      batch = Batch();
    } catch (...) {
      api::KafkaLogLine(kLogWho, "unexpected error, forwarding the batch again");
      if (!batch.empty()) rewind_to = batch.first;
      batch = Batch();
    }
  }
  try {
    CompleteBatch();
    // Leaving the group revokes the partitions (OnRebalance) at once, so
    // the next router does not wait for the session to time out.
    rd_kafka_consumer_close(consumer);
  } catch (const std::exception& e) {
    api::KafkaLogLine(kLogWho, "error while stopping: %s", e.what());
  } catch (...) {
    api::KafkaLogLine(kLogWho, "unknown error while stopping");
  }
}

// One batch: collect and forward messages until the batch is full, nothing
// more is ready, or it has lingered long enough; then settle and commit it.
void Router::Impl::Turn() {
  if (!rewind_to.empty()) {
    Rewind();
    return;
  }
  const Clock::time_point started = Clock::now();
  while (batch.size < kRouterBatchMessagesMax && !stopping.load()) {
    int timeout_ms = kIdlePollMs;
    if (!batch.empty()) {
      auto waited =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
      timeout_ms = static_cast<int>(std::max<int64_t>(0, kRouterBatchLingerMs - waited));
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, timeout_ms);
    if (m == nullptr) break;
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> owned(
        m, rd_kafka_message_destroy);
    Forward(m);
    rd_kafka_poll(producer, 0);
  }
  if (batch.empty()) return;
  if (!CompleteBatch()) return;
  backoff_ms = 0;
}

void Router::Impl::Forward(const rd_kafka_message_t* m) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      CountFailure("consume", 1, std::string("consumer: ") + rd_kafka_message_errstr(m));
    }
    return;
  }
  std::string_view value;
  if (m->payload != nullptr) value = std::string_view(static_cast<const char*>(m->payload), m->len);
  std::string org = OrgOf(value);
  if (org.empty()) unrouted++;
  const int32_t shard = org.empty() ? 0 : ShardOf(org, options.shards);
  const std::string origin =
      options.input_topic + "/" + std::to_string(m->partition) + "/" + std::to_string(m->offset);

  rd_kafka_headers_t* input_headers = nullptr;
  rd_kafka_headers_t* headers =
      rd_kafka_message_headers(m, &input_headers) == RD_KAFKA_RESP_ERR_NO_ERROR
          ? rd_kafka_headers_copy(input_headers)
          : rd_kafka_headers_new(1);
  // A producer of the input topic must not pose as the cluster's own HTTP
  // ingest (whose events are judged as HTTP and name their principal) or
  // re-drive (which re-judges a stored rejection).
  rd_kafka_header_remove(headers, api::kIngestTokenHeader);
  rd_kafka_header_remove(headers, api::kIngestPrincipalHeader);
  rd_kafka_header_remove(headers, api::kRedriveHeader);
  rd_kafka_header_remove(headers, api::kRedriveSourceHeader);
  rd_kafka_header_add(headers, kOriginHeader, -1, origin.data(),
                      static_cast<ssize_t>(origin.size()));

  if (batch.first.find(m->partition) == batch.first.end()) batch.first[m->partition] = m->offset;
  batch.next[m->partition] = m->offset + 1;
  batch.size++;
  for (;;) {
    // The timestamp is left unset: librdkafka stamps the produce time, the
    // instant the event entered the cluster, which the shard records.
    rd_kafka_resp_err_t e = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(options.shards_topic.c_str()), RD_KAFKA_V_PARTITION(shard),
        RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return;  // the headers are the producer's now
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !stopping.load()) {
      rd_kafka_poll(producer, kFlushSliceMs);
      continue;
    }
    rd_kafka_headers_destroy(headers);
    batch.failed++;
    errors.Log("delivery", std::string("produce: ") + rd_kafka_err2str(e));
    return;
  }
}

// Waits until every message of the batch is acknowledged or failed; false
// if any was not acknowledged (the batch must not be committed).
bool Router::Impl::Settle() {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(kBatchFlushMs);
  Clock::time_point stop_deadline = Clock::time_point::max();
  while (rd_kafka_outq_len(producer) > 0 && Clock::now() < deadline &&
         Clock::now() < stop_deadline) {
    rd_kafka_flush(producer, kFlushSliceMs);
    if (stopping.load() && stop_deadline == Clock::time_point::max()) {
      stop_deadline = Clock::now() + std::chrono::milliseconds(kStopFlushMs);
    }
  }
  if (rd_kafka_outq_len(producer) > 0) {
    // Given up on: purged, so no copy of it can land after a re-forwarded one.
    rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(producer, kPurgeFlushMs);
  }
  char reason[512];
  rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(producer, reason, sizeof(reason));
  if (fatal != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // An idempotent producer that lost its guarantees stops for good; a new
    // one starts a new producer id, and the batch is forwarded again.
    errors.Log("fatal", std::string("producer failed, starting a new one: ") + reason);
    rd_kafka_destroy(producer);
    producer = nullptr;  // Rewind creates the next one
    return false;
  }
  return batch.failed == 0 && batch.acked == batch.size;
}

// Settles the batch and commits its offsets; false (with rewind_to set) if
// it must be forwarded again.
bool Router::Impl::CompleteBatch() {
  if (batch.empty()) return true;
  const bool delivered = Settle();
  forwarded += batch.acked;
  metrics.Count("ledger_router_forwarded_total", "", batch.acked);
  if (!delivered) {
    const uint64_t lost = batch.size - std::min(batch.size, static_cast<size_t>(batch.acked));
    delivery_failures += lost;
    CountFailure("delivery", lost,
                 "batch of " + std::to_string(batch.size) + " messages, " + std::to_string(lost) +
                     " not acknowledged: forwarding it again");
    rewind_to = batch.first;
    batch = Batch();
    return false;
  }
  api::PartitionList offsets(static_cast<int>(batch.next.size()));
  for (const auto& [partition, next] : batch.next) {
    rd_kafka_topic_partition_list_add(offsets.list, options.input_topic.c_str(), partition)
        ->offset = next;
  }
  // Synchronous: the commit is known done (or refused) before the next
  // batch, so what the group's next router re-reads is bounded by one batch.
  rd_kafka_resp_err_t e = rd_kafka_commit(consumer, offsets.list, /*async=*/0);
  batch = Batch();
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Forwarded and acknowledged, only not recorded: whoever reads these
    // partitions next forwards them again, and the shard drops the copies.
    commit_failures++;
    CountFailure("commit", 1, std::string("commit: ") + rd_kafka_err2str(e));
  } else {
    commits++;
  }
  return true;
}

void Router::Impl::Rewind() {
  rewinds++;
  backoff_ms = std::clamp(backoff_ms * 2, kRetryBackoffMsMin, kRetryBackoffMsMax);
  if (!WaitUnlessStopping(backoff_ms)) return;
  if (producer == nullptr) {
    Status created = CreateProducer();
    if (!created.ok()) {
      errors.Log("fatal", created.ToString());
      return;  // rewind_to is kept: tried again after the next backoff
    }
  }
  api::PartitionList parts(static_cast<int>(rewind_to.size()));
  for (const auto& [partition, offset] : rewind_to) {
    rd_kafka_topic_partition_list_add(parts.list, options.input_topic.c_str(), partition)->offset =
        offset;
  }
  // A partition revoked meanwhile fails to seek, which is right: its next
  // owner starts from the last commit.
  rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer, parts.list, kSeekTimeoutMs);
  if (error != nullptr) {
    CountFailure("consume", 1, std::string("seek back: ") + rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  }
  rewind_to.clear();
}

void Router::Impl::CountFailure(const char* kind, uint64_t n, const std::string& what) {
  metrics.Count("ledger_router_failures_total", FailureLabel(kind), n);
  errors.Log(kind, what);
}

bool Router::Impl::WaitUnlessStopping(int ms) {
  std::unique_lock<std::mutex> lock(stop_mu);
  stop_cv.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping.load(); });
  return !stopping.load();
}

void Router::Impl::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* impl = static_cast<Impl*>(opaque);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    impl->batch.acked++;
    return;
  }
  impl->batch.failed++;
  // A C callback: exceptions must not unwind through librdkafka.
  try {
    impl->errors.Log("delivery", std::string("delivery: ") + rd_kafka_err2str(m->err));
  } catch (...) {
    api::KafkaLogLine(kLogWho, "a delivery failed (%s), and so did reporting it",
                      rd_kafka_err2str(m->err));
  }
}

void Router::Impl::OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* impl = static_cast<Impl*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    rd_kafka_assign(rk, parts);
    return;
  }
  // Revoked (or an error): finish the batch in hand while its partitions are
  // still ours, so its commit counts. A failure leaves it uncommitted; the
  // partitions' next owner forwards it again.
  try {
    impl->CompleteBatch();
  } catch (const std::exception& e) {
    api::KafkaLogLine(kLogWho, "error finishing the batch at revocation: %s", e.what());
    impl->batch = Batch();
  } catch (...) {
    api::KafkaLogLine(kLogWho, "error finishing the batch at revocation");
    impl->batch = Batch();
  }
  impl->rewind_to.clear();
  rd_kafka_assign(rk, nullptr);
}

Result<std::unique_ptr<Router>> Router::Start(const RouterOptions& options, api::Metrics& metrics) {
  if (options.brokers.empty()) return Status(Code::kInvalidArgument, "router: no brokers given");
  if (options.input_topic.empty() || options.shards_topic.empty() || options.group.empty()) {
    return Status(Code::kInvalidArgument, "router: empty topic or group name");
  }
  if (options.shards < 1 || options.shards > kShardsMax) {
    return Status(Code::kInvalidArgument, "router: shards must be 1.." +
                                              std::to_string(kShardsMax) + ", not " +
                                              std::to_string(options.shards));
  }
  auto impl = std::make_unique<Impl>(options, metrics);
  RETURN_IF_ERROR(impl->CreateProducer());
  RETURN_IF_ERROR(impl->CreateConsumer());
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<Router>(new Router(std::move(impl)));
}

Router::Router(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Router::~Router() { Stop(); }

void Router::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  std::lock_guard<std::mutex> lock(impl_->join_mu);
  if (impl_->thread.joinable()) impl_->thread.join();
}

RouterStats Router::stats() const {
  RouterStats s;
  s.forwarded = impl_->forwarded.load();
  s.delivery_failures = impl_->delivery_failures.load();
  s.commits = impl_->commits.load();
  s.commit_failures = impl_->commit_failures.load();
  s.rewinds = impl_->rewinds.load();
  s.unrouted = impl_->unrouted.load();
  return s;
}

}  // namespace billing::cluster
