#include "kafka/kafka_consumer.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "kafka/client.h"
#include "kafka/embedded_kafka.h"
#include "ledger/prepare.h"

namespace billing::api {

namespace {

using Clock = std::chrono::steady_clock;

// How long one poll may block while nothing is in flight or in hand; bounds
// how long Stop waits for the thread to notice.
constexpr int kIdlePollMs = 100;
// While an append is in flight the thread polls this briefly, so that it
// sees the append finish (and may send the next batch) within a millisecond.
constexpr int kInflightPollMs = 1;
// fetch.wait.max.ms: how long a broker may hold a fetch when it has nothing
// new. The embedded (mock) broker always waits this long before answering an
// empty fetch and returns one batch per partition per fetch, so a short wait
// is what makes it fast (~43 k msg/s at librdkafka's default of 500 ms, ~540
// k msg/s at 10 ms); real brokers answer as soon as data arrives, so there it
// only bounds idle polling.
constexpr const char* kFetchWaitMaxMsEmbedded = "10";
constexpr const char* kFetchWaitMaxMsBrokers = "100";
// queued.max.messages.kbytes: what librdkafka may prefetch ahead of us (KiB,
// all partitions). 32 MiB is about 100 k events of ~300 B: enough to keep
// batches full, bounded so a backlog does not become our memory problem.
constexpr const char* kPrefetchKbytesMax = "32768";
// After a failed append: first and longest wait before reading again.
constexpr int kRetryBackoffMsMin = 100;
constexpr int kRetryBackoffMsMax = 5000;
// How often the lag gauges are refreshed while idle.
constexpr int kLagRefreshMs = 1000;
// Offsets are committed to Kafka at most this often: they only feed lag
// monitoring, and one commit request per batch would cost the broker a
// request per few milliseconds for nothing.
constexpr int kKafkaCommitIntervalMs = 1000;
// Seeking back to the stored offsets after a failed append.
constexpr int kSeekTimeoutMs = 10000;
// How long an assignment may wait for a shard's end offset (cluster mode);
// on failure it is asked again at the next lag refresh.
constexpr int kWatermarkTimeoutMs = 5000;
// Dead-letter messages still queued at Stop get this long to be delivered.
constexpr int kDlqFlushMs = 5000;
// The dead-letter producer gives up on a message after this long.
constexpr const char* kDlqMessageTimeoutMs = "30000";

constexpr const char* kLogWho = "kafka";

// The value of the message's last header `name`, empty when it has none.
std::string HeaderOf(const rd_kafka_message_t* m, const char* name) {
  rd_kafka_headers_t* headers = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_message_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      value == nullptr) {
    return {};
  }
  return std::string(static_cast<const char*>(value), size);
}

std::string PartitionLabel(int32_t partition) {
  return "partition=\"" + std::to_string(partition) + "\"";
}

}  // namespace

struct KafkaConsumer::Impl {
  Impl(const KafkaOptions& o, projections::Billing* b, ShardHost* h, Metrics& m)
      : options(o), billing(b), host(h), metrics(m) {}

  ~Impl() {
    if (rk != nullptr) rd_kafka_destroy(rk);
    if (dlq != nullptr) {
      if (rd_kafka_flush(dlq, kDlqFlushMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        KafkaLogLine(kLogWho, "%d dead-letter messages undelivered at stop",
                     rd_kafka_outq_len(dlq));
      }
      rd_kafka_destroy(dlq);
    }
    // The broker goes last: the clients above leave it cleanly first.
    embedded.reset();
  }

  // Messages read but not yet appended, with the offset after the last
  // message of each partition they came from.
  struct Batch {
    ledger::AppendRequest request;
    std::map<int32_t, int64_t> next;
    Clock::time_point started;
    // Cluster mode: the one partition (shard) of the batch, and each
    // message's ingest token.
    int32_t partition = -1;
    std::vector<std::string> tokens;
    size_t size() const { return request.entries.size(); }
    bool empty() const { return request.entries.empty(); }
  };

  Status Configure();
  // The producer of rejected messages to options.dlq_topic (`dlq`).
  Status CreateDlqProducer();
  void Run();
  void Turn();
  void Take(const rd_kafka_message_t* m);
  // Makes everything read so far durable (the batch in hand and the one in
  // flight); false when that failed and the consumer must rewind.
  bool Drain();
  // Cluster mode: the entry a re-drive message stands for (kRedriveHeader),
  // judged on the stored rejection's bytes and source; nullopt when the
  // message is no re-drive or its rejection is gone (then its own bytes are
  // judged, like a repost).
  Result<std::optional<ledger::Entry>> RedriveOf(const rd_kafka_message_t* m);
  void Submit();
  // The Billing a partition's messages go to: the only one, or its shard's.
  projections::Billing& BillingOf(int32_t partition);
  void AcquireShards(rd_kafka_topic_partition_list_t* parts);
  // Standby mode: follows the host's list of shards to keep warm.
  void Restandby();
  // Cluster mode: tells the host which shards have caught up with the end of
  // their partition as seen at assignment (asking for unknown ends again).
  // `query`: ask the broker for ends not known yet (blocking, so not after
  // every batch).
  void CheckCaughtUp(bool query);
  // Cluster mode: a shard whose partition cannot give it the next record it
  // needs stops serving and is not read further (until it is assigned again).
  void BreakShard(int32_t partition, const std::string& why);
  bool InflightDone(int wait_ms);
  void AwaitInflight();
  void Complete();
  void Account(const ledger::AppendResult& result, const std::map<int32_t, int64_t>& next);
  void Rewind();
  void Finish();
  void Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
  void Assign(rd_kafka_topic_partition_list_t* parts);
  void Revoke(bool flush);
  Result<int64_t> StoredOffset(int32_t partition);
  Status SeekToStored();
  void UpdateLag(const std::vector<int32_t>& partitions);
  void MirrorToDlq(const ledger::AppendResult& result);
  void LogError(rd_kafka_resp_err_t err, const std::string& what);
  bool WaitUnlessStopping(int ms);
  // "ledger_kafka_NAME", or "ledger_standby_NAME" for a standby reader: a
  // warm copy's troubles are not ingest's.
  std::string MetricName(std::string_view name) const {
    return std::string(options.standby ? "ledger_standby_" : "ledger_kafka_") + std::string(name);
  }

  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* parts, void* opaque);
  static void OnDlqDelivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque);
  static void OnCommit(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t* offsets, void* opaque);
  void CommitToKafka(bool now);

  const KafkaOptions options;
  projections::Billing* billing;  // single ledgerd; nullptr in cluster mode
  ShardHost* host;                // cluster mode; nullptr otherwise
  Metrics& metrics;
  std::unique_ptr<EmbeddedKafka> embedded;
  std::string bootstrap;
  rd_kafka_t* rk = nullptr;   // the group consumer
  rd_kafka_t* dlq = nullptr;  // dead-letter producer, when configured
  std::thread thread;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  std::mutex join_mu;
  std::atomic<bool> stopping{false};

  std::atomic<uint64_t> consumed{0}, appended{0}, duplicates{0}, rejected{0}, batches{0},
      append_failures{0};
  std::atomic<int> assigned_count{0};

  // Consumer thread only (rebalance callbacks run on it, inside poll/close).
  Batch batch;
  bool drained = false;  // the last poll found nothing ready
  // At most one append is in flight: a batch is only sent once the one
  // before it is durable. Were two in flight and the first failed, the
  // second would store offsets past the first one's messages and lose them.
  bool inflight = false;
  std::map<int32_t, int64_t> inflight_next;
  int32_t inflight_partition = -1;
  std::vector<std::string> inflight_tokens;
  // Cluster mode: each assigned shard's Billing, and the end offset a shard
  // must reach before it serves (-1: not known yet).
  std::map<int32_t, projections::Billing*> shard_billing;
  std::map<int32_t, int64_t> restore_until;
  std::set<int32_t> broken;
  bool rewind = false;  // an append failed: drop what is in hand, seek back
  int backoff_ms = 0;
  std::vector<int32_t> assigned;
  std::map<int32_t, int64_t> stored;            // next offset durable in the ledger
  std::map<int32_t, int64_t> position;          // next offset we expect to read
  std::map<int32_t, int64_t> uncommitted;       // durable, not yet committed to Kafka
  std::map<int32_t, int64_t> written_this_run;  // durable, by this process
  Clock::time_point next_commit;
  Clock::time_point next_lag_refresh;
  Clock::time_point next_standby_refresh;
  bool restandby_now = false;     // a copy was taken meanwhile: assign again
  KafkaErrorLog errors{kLogWho};  // by librdkafka error code

  // The append's completion, handed over from the ledger's writer thread.
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  ledger::AppendResult result;

  std::atomic<uint64_t> dlq_failures{0};
};

Status KafkaConsumer::Impl::Configure() {
  const std::string fetch_wait =
      options.embedded ? kFetchWaitMaxMsEmbedded : kFetchWaitMaxMsBrokers;
  const int heartbeat_ms = std::max(1, options.session_timeout_ms / 3);
  const KafkaSettings settings = {
      {"bootstrap.servers", bootstrap},
      // A standby joins no group (it assigns its partitions itself), but
      // rd_kafka_consumer_poll still wants a group id; this one is never
      // joined and nothing is committed to it.
      {"group.id", options.standby ? options.group + ".standby" : options.group},
      {"client.id", "ledgerd"},
      // Offsets live in the ledger; Kafka's copy is written by us, after
      // the ledger's durable write, for monitoring only.
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // Only used when the ledger has no offset and the log start moved.
      {"auto.offset.reset", "earliest"},
      // Eager assignors: the rebalance callback owns the whole assignment
      // (rd_kafka_assign), which is what seeking to stored offsets needs.
      {"partition.assignment.strategy", "range,roundrobin"},
      {"session.timeout.ms", std::to_string(options.session_timeout_ms)},
      {"heartbeat.interval.ms", std::to_string(heartbeat_ms)},
      {"fetch.wait.max.ms", fetch_wait},
      {"queued.max.messages.kbytes", kPrefetchKbytesMax},
      {"log.connection.close", "false"},
  };
  ASSIGN_OR_RETURN(rk, NewKafkaClient(
                           RD_KAFKA_CONSUMER, settings,
                           [this](rd_kafka_conf_t* conf) {
                             rd_kafka_conf_set_rebalance_cb(conf, &Impl::OnRebalance);
                             rd_kafka_conf_set_offset_commit_cb(conf, &Impl::OnCommit);
                             rd_kafka_conf_set_opaque(conf, this);
                           },
                           "kafka consumer"));
  // Errors and rebalances arrive through rd_kafka_consumer_poll.
  rd_kafka_poll_set_consumer(rk);
  if (options.standby) return Status::Ok();  // Restandby assigns
  PartitionList topics(1);
  rd_kafka_topic_partition_list_add(topics.list, options.topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics.list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Code::kInvalidArgument,
                  "kafka: cannot subscribe to " + options.topic + ": " + rd_kafka_err2str(e));
  }

  if (!options.dlq_topic.empty()) return CreateDlqProducer();
  return Status::Ok();
}

Status KafkaConsumer::Impl::CreateDlqProducer() {
  const KafkaSettings settings = {
      {"bootstrap.servers", bootstrap},  {"client.id", "ledgerd-dlq"},
      {"enable.idempotence", "true"},    {"message.timeout.ms", kDlqMessageTimeoutMs},
      {"log.connection.close", "false"},
  };
  ASSIGN_OR_RETURN(dlq, NewKafkaClient(
                            RD_KAFKA_PRODUCER, settings,
                            [this](rd_kafka_conf_t* conf) {
                              rd_kafka_conf_set_dr_msg_cb(conf, &Impl::OnDlqDelivery);
                              rd_kafka_conf_set_opaque(conf, this);
                            },
                            "dead-letter producer"));
  return Status::Ok();
}

void KafkaConsumer::Impl::Run() {
  // Nothing may escape this thread: an unexpected exception drops what is
  // in hand and rewinds to the ledger's offsets, like a failed append.
  while (!stopping.load()) {
    try {
      Turn();
    } catch (const std::exception& e) {
      KafkaLogLine(kLogWho, "unexpected error, reading again from the stored offsets: %s",
                   e.what());
      rewind = true;
    } catch (...) {
      KafkaLogLine(kLogWho, "unexpected error, reading again from the stored offsets");
      rewind = true;
    }
  }
  try {
    Finish();
  } catch (const std::exception& e) {
    KafkaLogLine(kLogWho, "error while stopping: %s", e.what());
  } catch (...) {
    KafkaLogLine(kLogWho, "unknown error while stopping");
  }
}

// One step of the loop: collect a finished append, send the batch in hand
// when it is time, read one message.
void KafkaConsumer::Impl::Turn() {
  if (inflight && InflightDone(0)) Complete();
  if (rewind) {
    Rewind();
    return;
  }
  Clock::time_point now = Clock::now();
  if (options.standby && (now >= next_standby_refresh || restandby_now)) {
    Restandby();
    next_standby_refresh = now + std::chrono::milliseconds(kStandbyRefreshMs);
    if (rewind) return;
  }
  if (now >= next_lag_refresh) {
    UpdateLag(assigned);
    if (host != nullptr) CheckCaughtUp(/*query=*/true);
    next_lag_refresh = now + std::chrono::milliseconds(kLagRefreshMs);
  }
  CommitToKafka(/*now=*/false);
  if (dlq != nullptr) rd_kafka_poll(dlq, 0);

  // The batch goes as soon as the previous one is durable and either nothing
  // more is ready (low latency when traffic is light), it is full, or it has
  // waited long enough; while one is in flight the next one fills up, so
  // batches grow with the load.
  bool aged =
      !batch.empty() && now - batch.started >= std::chrono::milliseconds(kKafkaBatchLingerMs);
  if (!inflight && !batch.empty() && (drained || aged || batch.size() >= kKafkaBatchEventsMax)) {
    Submit();
  }
  if (batch.size() >= kKafkaBatchEventsMax) {
    // Full, with the previous batch still being written: wait for it.
    if (InflightDone(kIdlePollMs)) Complete();
    return;
  }
  int timeout_ms = inflight ? kInflightPollMs : (batch.empty() ? kIdlePollMs : 0);
  rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, timeout_ms);
  if (m == nullptr) {
    drained = true;
    return;
  }
  drained = false;
  // The message is released however Take leaves.
  std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> owned(
      m, rd_kafka_message_destroy);
  Take(m);
}

void KafkaConsumer::Impl::Take(const rd_kafka_message_t* m) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      LogError(m->err, rd_kafka_message_errstr(m));
      metrics.Count(MetricName("errors_total"), "");
    }
    return;
  }
  const int32_t partition = m->partition;
  if (auto it = position.find(partition); it != position.end() && m->offset != it->second) {
    // Forward: retention dropped messages we never read, or the log has
    // control records (transactions) there. Backward: the topic was
    // recreated or the offset reset. The broker decides either way; say so.
    // (Messages fetched before a seek never get here: librdkafka drops them.)
    LogError(RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE,
             "partition " + std::to_string(partition) + ": expected offset " +
                 std::to_string(it->second) + ", the broker sent " + std::to_string(m->offset));
    metrics.Count(MetricName("offset_jumps_total"), PartitionLabel(partition));
    if (host != nullptr && m->offset > it->second) {
      BreakShard(partition, "the broker skipped from offset " + std::to_string(it->second) +
                                " to " + std::to_string(m->offset));
      return;
    }
  }
  if (broken.count(partition)) return;
  if (host != nullptr && !batch.empty() && batch.partition != partition) {
    // One shard per batch: each shard is a ledger of its own.
    AwaitInflight();
    if (rewind) return;  // the stored offsets are read again, this message too
    Submit();
  }
  Result<std::optional<ledger::Entry>> redrive = RedriveOf(m);
  if (!redrive.ok()) {
    KafkaLogLine(kLogWho, "cannot read the rejection a re-drive names, reading again: %s",
                 redrive.status().ToString().c_str());
    rewind = true;
  }
  if (rewind) return;
  // Cluster mode: an event that came by HTTP carries its ingest's token, and
  // is judged as HTTP ingest (JSON only; binary protobuf is for Kafka).
  std::string token = host != nullptr ? HeaderOf(m, kIngestTokenHeader) : std::string();
  ledger::Source source;
  source.set_kind(token.empty() ? ledger::Source::KAFKA : ledger::Source::HTTP);
  if (!token.empty()) source.set_principal(HeaderOf(m, kIngestPrincipalHeader));
  source.set_topic(options.topic);
  source.set_partition(partition);
  source.set_offset(m->offset);
  std::string raw;
  if (m->payload != nullptr) raw.assign(static_cast<const char*>(m->payload), m->len);
  if (batch.empty()) batch.started = Clock::now();
  ledger::Entry entry =
      redrive->has_value() ? std::move(**redrive) : ledger::PrepareEntry(std::move(raw), source);
  if (host != nullptr) {
    // The record's timestamp (set once, when it was produced) is the time
    // the shard records: a replay anywhere records the same. Brokers since
    // Kafka 0.10 always give one; without it the wall clock is all there is.
    rd_kafka_timestamp_type_t type;
    const int64_t ms = rd_kafka_message_timestamp(m, &type);
    if (ms >= 0) entry.recorded_at_micros = ms * 1000;
    batch.tokens.push_back(std::move(token));
    batch.partition = partition;
  }
  batch.request.entries.push_back(std::move(entry));
  batch.next[partition] = m->offset + 1;
  position[partition] = m->offset + 1;
}

bool KafkaConsumer::Impl::Drain() {
  if (!batch.empty()) {
    AwaitInflight();
    if (rewind) return false;
    Submit();
  }
  AwaitInflight();
  return !rewind;
}

Result<std::optional<ledger::Entry>> KafkaConsumer::Impl::RedriveOf(const rd_kafka_message_t* m) {
  if (host == nullptr) return std::optional<ledger::Entry>();
  const std::string header = HeaderOf(m, kRedriveHeader);
  uint64_t id = 0;
  const char* end = header.data() + header.size();
  if (header.empty() || std::from_chars(header.data(), end, id).ptr != end) {
    return std::optional<ledger::Entry>();
  }
  // The rejection may have been re-driven or written in the batches before
  // this message: every copy of the shard must look it up at the same point
  // of the partition, whatever its batches were.
  if (!Drain()) return std::optional<ledger::Entry>();  // rewind is set
  auto rec = BillingOf(m->partition).ledger().GetRejected(id);
  if (!rec.ok()) return rec.status();
  if (rec->has_value() && !(*rec)->raw_truncated()) {
    ledger::Entry entry = ledger::PrepareEntry((*rec)->raw(), (*rec)->source());
    entry.redrive_of = id;
    return std::optional<ledger::Entry>(std::move(entry));
  }
  // Gone (an earlier re-drive of it was accepted: two retries raced): the
  // stored bytes the message carries are judged with their original source,
  // as one ledgerd judges the second of two racing retries (a duplicate).
  ledger::Source original;
  if (!original.ParseFromString(HeaderOf(m, kRedriveSourceHeader))) {
    return std::optional<ledger::Entry>();  // judged as a repost of its bytes
  }
  std::string raw;
  if (m->payload != nullptr) raw.assign(static_cast<const char*>(m->payload), m->len);
  ledger::Entry entry = ledger::PrepareEntry(std::move(raw), original);
  entry.redrive_of = id;
  return std::optional<ledger::Entry>(std::move(entry));
}

void KafkaConsumer::Impl::Submit() {
  ledger::AppendRequest request = std::move(batch.request);
  request.offsets.reserve(batch.next.size());
  for (const auto& [partition, next] : batch.next) {
    request.offsets.push_back(ledger::KafkaOffset{options.topic, partition, next});
  }
  const size_t n = request.entries.size();
  consumed += n;
  if (!options.standby) metrics.Count("ledger_kafka_consumed_total", "", n);
  inflight_next = std::move(batch.next);
  inflight_partition = batch.partition;
  inflight_tokens = std::move(batch.tokens);
  projections::Billing& target = BillingOf(batch.partition);
  batch = Batch{};
  {
    std::lock_guard<std::mutex> lock(done_mu);
    done = false;
  }
  inflight = true;
  auto on_done = [this](ledger::AppendResult r) {
    std::lock_guard<std::mutex> lock(done_mu);
    result = std::move(r);
    done = true;
    done_cv.notify_one();
  };
  if (options.submit) {
    options.submit(std::move(request), std::move(on_done));
  } else if (host != nullptr) {
    host->Submit(inflight_partition, target, std::move(request), std::move(on_done));
  } else {
    target.SubmitAsync(std::move(request), std::move(on_done));
  }
}

projections::Billing& KafkaConsumer::Impl::BillingOf(int32_t partition) {
  if (host == nullptr) return *billing;
  // Only assigned partitions' messages reach a batch, and each was acquired
  // before the assignment took effect.
  return *shard_billing.at(partition);
}

bool KafkaConsumer::Impl::InflightDone(int wait_ms) {
  std::unique_lock<std::mutex> lock(done_mu);
  if (wait_ms > 0)
    done_cv.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return done; });
  return done;
}

void KafkaConsumer::Impl::AwaitInflight() {
  // The ledger's writer always answers (durable or failed), so this ends.
  while (inflight) {
    if (InflightDone(kIdlePollMs)) Complete();
  }
}

void KafkaConsumer::Impl::Complete() {
  ledger::AppendResult r;
  {
    std::lock_guard<std::mutex> lock(done_mu);
    r = std::move(result);
    done = false;
  }
  inflight = false;
  if (!r.status.ok() && options.standby && r.status.code() == Code::kConflict) {
    // The owner's consumer took the copy since it was acquired here (it
    // may even have given it back): the assignment is made again at once,
    // from the stored offsets, without the failure backoff.
    KafkaLogLine(kLogWho, "standby: %s", r.status.message().c_str());
    restandby_now = true;
    return;
  }
  if (!r.status.ok()) {
    append_failures++;
    metrics.Count(MetricName("append_failures_total"), "");
    KafkaLogLine(
        kLogWho,
        "append failed, nothing of the batch was written; reading again from the stored offsets: "
        "%s",
        r.status.ToString().c_str());
    rewind = true;
    return;
  }
  backoff_ms = 0;
  Account(r, inflight_next);
  if (host != nullptr) {
    host->Applied(inflight_partition, inflight_tokens, r);
    CheckCaughtUp(/*query=*/false);
  }
}

void KafkaConsumer::Impl::BreakShard(int32_t partition, const std::string& why) {
  KafkaLogLine(kLogWho, "shard %d cannot be served, its partition is paused: %s", partition,
               why.c_str());
  metrics.Count(MetricName("broken_shards_total"), PartitionLabel(partition));
  host->Release(partition);
  PartitionList list(1);
  rd_kafka_topic_partition_list_add(list.list, options.topic.c_str(), partition);
  rd_kafka_pause_partitions(rk, list.list);
  broken.insert(partition);
}

void KafkaConsumer::Impl::CheckCaughtUp(bool query) {
  for (auto it = restore_until.begin(); it != restore_until.end();) {
    const int32_t partition = it->first;
    auto done_to = stored.find(partition);
    const int64_t next = done_to != stored.end() ? done_to->second : 0;
    if (it->second < 0 && query) {
      int64_t low = 0, high = 0;
      if (rd_kafka_query_watermark_offsets(rk, options.topic.c_str(), partition, &low, &high,
                                           kWatermarkTimeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (low > next) {
          // The log lost records this copy never applied (retention, a
          // broker's memory limit): the shard cannot be rebuilt, and
          // serving what it has would be a partial answer.
          BreakShard(partition, "its log starts at offset " + std::to_string(low) +
                                    ", this copy needs offset " + std::to_string(next));
          it = restore_until.erase(it);
          continue;
        }
        it->second = high;
      }
    }
    if (it->second >= 0 && next >= it->second) {
      KafkaLogLine(kLogWho,
                   options.standby ? "standby copy of shard %d caught up at offset %lld"
                                   : "shard %d restored to offset %lld: serving",
                   partition, static_cast<long long>(next));
      host->CaughtUp(partition);
      it = restore_until.erase(it);
    } else {
      ++it;
    }
  }
}

// The batch is durable: count it, remember its offsets, tell Kafka.
void KafkaConsumer::Impl::Account(const ledger::AppendResult& r,
                                  const std::map<int32_t, int64_t>& next) {
  uint64_t n_accepted = 0, n_duplicates = 0, n_rejected = 0;
  std::map<std::string, uint64_t> by_code;
  for (const ledger::Outcome& o : r.outcomes) {
    switch (o.kind) {
      case ledger::Outcome::Kind::kAccepted:
        n_accepted++;
        break;
      case ledger::Outcome::Kind::kDuplicate:
        n_duplicates++;
        break;
      case ledger::Outcome::Kind::kRejected:
        n_rejected++;
        by_code[std::string(CodeName(o.code))]++;
        break;
    }
  }
  appended += n_accepted;
  duplicates += n_duplicates;
  rejected += n_rejected;
  batches++;
  if (options.standby) {
    // A warm copy of what the owner ingests: not ingest of this instance.
    metrics.Count("ledger_standby_applied_total", "", r.outcomes.size());
  } else {
    metrics.Count("ledger_kafka_appended_total", "", n_accepted);
    metrics.Count("ledger_kafka_duplicates_total", "", n_duplicates);
    metrics.Count("ledger_kafka_rejected_total", "", n_rejected);
    metrics.Count("ledger_kafka_batches_total", "");
    // The service-wide counters, whichever way the events came.
    metrics.Count("ledger_events_accepted_total", "", n_accepted);
    metrics.Count("ledger_events_duplicate_total", "", n_duplicates);
    for (const auto& [code, n] : by_code) {
      metrics.Count("ledger_events_rejected_total", "code=\"" + code + "\"", n);
    }
  }

  std::vector<int32_t> touched;
  for (const auto& [partition, offset] : next) {
    stored[partition] = offset;
    uncommitted[partition] = offset;
    written_this_run[partition] = offset;
    touched.push_back(partition);
  }
  CommitToKafka(/*now=*/false);
  UpdateLag(touched);
  if (dlq != nullptr && n_rejected > 0) MirrorToDlq(r);
}

// Tells Kafka the offsets the ledger has made durable. Asynchronous and only
// counted when it fails: Kafka's committed offsets serve lag monitoring, and
// a lost commit costs nothing but a stale number there.
void KafkaConsumer::Impl::CommitToKafka(bool now) {
  Clock::time_point t = Clock::now();
  if (options.standby) uncommitted.clear();  // a standby's group is never joined
  if (uncommitted.empty() || (!now && t < next_commit)) return;
  PartitionList commit(static_cast<int>(uncommitted.size()));
  for (const auto& [partition, offset] : uncommitted) {
    rd_kafka_topic_partition_list_add(commit.list, options.topic.c_str(), partition)->offset =
        offset;
  }
  rd_kafka_commit(rk, commit.list, 1);
  uncommitted.clear();
  next_commit = t + std::chrono::milliseconds(kKafkaCommitIntervalMs);
}

void KafkaConsumer::Impl::OnCommit(rd_kafka_t*, rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t*, void* opaque) {
  // _NO_OFFSET: there was nothing to commit. A commit refused during a
  // rebalance is expected and harmless; the next one carries newer offsets.
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  // A C callback: exceptions must not unwind through librdkafka.
  try {
    static_cast<Impl*>(opaque)->metrics.Count("ledger_kafka_commit_failures_total", "");
  } catch (const std::exception& e) {
    KafkaLogLine(kLogWho, "counting a failed offset commit: %s", e.what());
  } catch (...) {
    KafkaLogLine(kLogWho, "counting a failed offset commit failed");
  }
}

void KafkaConsumer::Impl::Rewind() {
  AwaitInflight();
  batch = Batch{};
  drained = false;
  backoff_ms = backoff_ms == 0 ? kRetryBackoffMsMin : std::min(backoff_ms * 2, kRetryBackoffMsMax);
  if (!WaitUnlessStopping(backoff_ms)) return;
  Status sought = SeekToStored();
  if (!sought.ok()) {
    KafkaLogLine(kLogWho, "cannot seek back to the stored offsets, will try again: %s",
                 sought.ToString().c_str());
    return;  // rewind stays set
  }
  rewind = false;
}

void KafkaConsumer::Impl::Finish() {
  AwaitInflight();
  // What is in hand was read from partitions we still own: write it, so a
  // clean stop leaves nothing to read again.
  if (!rewind && !batch.empty()) {
    Submit();
    AwaitInflight();
  }
  batch = Batch{};
  // Leaves the group; the revoke callback runs from inside.
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(rk);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    KafkaLogLine(kLogWho, "closing the consumer: %s", rd_kafka_err2str(e));
}

void KafkaConsumer::Impl::OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                      rd_kafka_topic_partition_list_t* parts, void* opaque) {
  // A C callback: exceptions must not unwind through librdkafka.
  auto* impl = static_cast<Impl*>(opaque);
  try {
    impl->Rebalance(err, parts);
  } catch (const std::exception& e) {
    KafkaLogLine(kLogWho, "rebalance failed, giving up the assignment: %s", e.what());
    rd_kafka_assign(rk, nullptr);
    impl->assigned.clear();
    impl->assigned_count = 0;
  } catch (...) {
    KafkaLogLine(kLogWho, "rebalance failed, giving up the assignment");
    rd_kafka_assign(rk, nullptr);
    impl->assigned.clear();
    impl->assigned_count = 0;
  }
}

void KafkaConsumer::Impl::Rebalance(rd_kafka_resp_err_t err,
                                    rd_kafka_topic_partition_list_t* parts) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
      Assign(parts);
      break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
      Revoke(/*flush=*/true);
      break;
    default:
      KafkaLogLine(kLogWho, "rebalance error: %s", rd_kafka_err2str(err));
      Revoke(/*flush=*/false);
      break;
  }
}

void KafkaConsumer::Impl::Assign(rd_kafka_topic_partition_list_t* parts) {
  AwaitInflight();
  batch = Batch{};
  rewind = false;
  drained = false;
  assigned.clear();
  stored.clear();
  position.clear();
  if (host != nullptr && !options.standby) {
    AcquireShards(parts);
    if (stopping.load()) {
      for (const auto& [partition, shard] : shard_billing) {
        host->Release(partition);
        host->Detached(partition);
      }
      shard_billing.clear();
      rd_kafka_assign(rk, nullptr);
      return;
    }
  }
  std::string shown;
  for (int i = 0; i < parts->cnt; ++i) {
    rd_kafka_topic_partition_t& p = parts->elems[i];
    Result<int64_t> offset = StoredOffset(p.partition);
    // Reading our own RocksDB should not fail; if it does, there is no safe
    // place to start from, so keep trying rather than guess.
    int wait_ms = kRetryBackoffMsMin;
    while (!offset.ok()) {
      KafkaLogLine(kLogWho, "cannot read the stored offset of partition %d, retrying: %s",
                   p.partition, offset.status().ToString().c_str());
      if (!WaitUnlessStopping(wait_ms)) {
        rd_kafka_assign(rk, nullptr);
        return;
      }
      wait_ms = std::min(wait_ms * 2, kRetryBackoffMsMax);
      offset = StoredOffset(p.partition);
    }
    p.offset = *offset;
    assigned.push_back(p.partition);
    if (*offset >= 0) {
      stored[p.partition] = *offset;
      position[p.partition] = *offset;
    } else if (options.embedded || host != nullptr) {
      // The embedded log starts at 0 with this process: a first message at
      // a later offset means the broker dropped older ones (its memory
      // limit) before we read them, which must not pass silently.
      position[p.partition] = 0;
    }
    shown += (shown.empty() ? "" : ", ") + std::to_string(p.partition) + "@" +
             (*offset >= 0 ? std::to_string(*offset) : std::string("beginning"));
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    KafkaLogLine(kLogWho, "assign failed: %s", rd_kafka_err2str(e));
    assigned.clear();
    return;
  }
  assigned_count = static_cast<int>(assigned.size());
  KafkaLogLine(kLogWho, "%s %s partitions %s (offsets from the ledger)",
               options.standby ? "standing by for" : "assigned", options.topic.c_str(),
               shown.c_str());
  if (host != nullptr) {
    // A shard serves once it has applied its partition up to the end seen
    // now: before that its answers would be stale.
    for (int32_t partition : assigned) restore_until[partition] = -1;
    CheckCaughtUp(/*query=*/true);
  }
}

void KafkaConsumer::Impl::AcquireShards(rd_kafka_topic_partition_list_t* parts) {
  shard_billing.clear();
  restore_until.clear();
  broken.clear();  // a new assignment tries again (a new assign reads unpaused)
  for (int i = 0; i < parts->cnt; ++i) {
    const int32_t partition = parts->elems[i].partition;
    Result<projections::Billing*> shard = host->Acquire(partition);
    // Without its ledger the shard cannot be read at all: keep trying, as
    // for a stored offset that cannot be read.
    int wait_ms = kRetryBackoffMsMin;
    while (!shard.ok()) {
      KafkaLogLine(kLogWho, "cannot open shard %d, retrying: %s", partition,
                   shard.status().ToString().c_str());
      if (!WaitUnlessStopping(wait_ms)) return;
      wait_ms = std::min(wait_ms * 2, kRetryBackoffMsMax);
      shard = host->Acquire(partition);
    }
    shard_billing[partition] = *shard;
  }
}

void KafkaConsumer::Impl::Restandby() {
  std::vector<int32_t> wanted = host->StandbyShards();
  if (wanted == assigned && !restandby_now) return;
  restandby_now = false;
  // What is in hand is dropped: every partition is read again from its
  // stored offset by the new assignment, so nothing is lost.
  AwaitInflight();
  if (rewind) return;  // the failed batch is read again first
  batch = Batch{};
  for (int32_t partition : assigned) {
    if (std::binary_search(wanted.begin(), wanted.end(), partition)) continue;
    host->Release(partition);
    // Gauges cannot be removed: a copy not kept here is nothing to wait for.
    metrics.Set(MetricName("lag"), PartitionLabel(partition), 0);
  }
  shard_billing.clear();
  restore_until.clear();
  broken.clear();
  PartitionList list(static_cast<int>(std::max<size_t>(wanted.size(), 1)));
  for (int32_t partition : wanted) {
    // Refused when the shard became this instance's own meanwhile: the next
    // refresh no longer names it.
    Result<projections::Billing*> copy = host->Acquire(partition);
    if (!copy.ok()) {
      errors.Log("standby acquire",
                 "standby: shard " + std::to_string(partition) + ": " + copy.status().ToString());
      continue;
    }
    shard_billing[partition] = *copy;
    rd_kafka_topic_partition_list_add(list.list, options.topic.c_str(), partition);
  }
  Assign(list.list);
}

void KafkaConsumer::Impl::Revoke(bool flush) {
  // Stop serving first: a lost shard may already be another member's.
  if (host != nullptr) {
    for (int32_t partition : assigned) host->Release(partition);
    restore_until.clear();
  }
  AwaitInflight();
  // A lost assignment (session timed out) may already be another member's:
  // writing what we hold could store offsets behind theirs.
  bool lost = rd_kafka_assignment_lost(rk) != 0;
  if (flush && !lost && !rewind && !batch.empty()) {
    Submit();
    AwaitInflight();
  }
  batch = Batch{};
  rewind = false;
  if (!lost) CommitToKafka(/*now=*/true);
  uncommitted.clear();
  rd_kafka_assign(rk, nullptr);
  // Nothing more is written: another writer (this instance's standby) may
  // take the copies.
  if (host != nullptr) {
    for (const auto& [partition, shard] : shard_billing) host->Detached(partition);
    shard_billing.clear();
  }
  if (!assigned.empty())
    KafkaLogLine(kLogWho, "released %zu partitions%s", assigned.size(), lost ? " (lost)" : "");
  assigned.clear();
  stored.clear();
  position.clear();
  assigned_count = 0;
}

Result<int64_t> KafkaConsumer::Impl::StoredOffset(int32_t partition) {
  if (options.embedded) {
    // The embedded broker lives and dies with this process: offsets in the
    // ledger from an earlier run point into a log that no longer exists (the
    // new one starts again at 0), so only offsets written by this run count.
    auto it = written_this_run.find(partition);
    return it != written_this_run.end() ? it->second
                                        : static_cast<int64_t>(RD_KAFKA_OFFSET_BEGINNING);
  }
  auto next = BillingOf(partition).ledger().KafkaNextOffset(options.topic, partition);
  if (!next.ok()) return next.status();
  return next->has_value() ? **next : static_cast<int64_t>(RD_KAFKA_OFFSET_BEGINNING);
}

Status KafkaConsumer::Impl::SeekToStored() {
  if (assigned.empty()) return Status::Ok();
  PartitionList list(static_cast<int>(assigned.size()));
  std::map<int32_t, int64_t> offsets;
  for (int32_t partition : assigned) {
    Result<int64_t> offset = StoredOffset(partition);
    if (!offset.ok()) return offset.status();
    offsets[partition] = *offset;
    rd_kafka_topic_partition_list_add(list.list, options.topic.c_str(), partition)->offset =
        *offset;
  }
  rd_kafka_error_t* error = rd_kafka_seek_partitions(rk, list.list, kSeekTimeoutMs);
  if (error != nullptr) {
    Status s(Code::kUnavailable, std::string("seek: ") + rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return s;
  }
  for (int i = 0; i < list.list->cnt; ++i) {
    if (list.list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status(Code::kUnavailable, "seek partition " +
                                            std::to_string(list.list->elems[i].partition) + ": " +
                                            rd_kafka_err2str(list.list->elems[i].err));
    }
  }
  position.clear();
  for (const auto& [partition, offset] : offsets) {
    if (offset >= 0) position[partition] = offset;
  }
  return Status::Ok();
}

void KafkaConsumer::Impl::UpdateLag(const std::vector<int32_t>& partitions) {
  for (int32_t partition : partitions) {
    int64_t low = 0, high = 0;
    // Cached from fetch responses: no broker round trip.
    if (rd_kafka_get_watermark_offsets(rk, options.topic.c_str(), partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;
    }
    auto it = stored.find(partition);
    int64_t next = it != stored.end() ? it->second : std::max<int64_t>(low, 0);
    metrics.Set(MetricName("lag"), PartitionLabel(partition), std::max<int64_t>(0, high - next));
  }
}

void KafkaConsumer::Impl::MirrorToDlq(const ledger::AppendResult& r) {
  for (const ledger::Outcome& o : r.outcomes) {
    if (o.kind != ledger::Outcome::Kind::kRejected) continue;
    // The rejected store has the raw bytes and the source; it stays the
    // record of truth, the dead-letter topic is a convenience copy.
    auto rec = BillingOf(inflight_partition).ledger().GetRejected(o.rejected_id);
    if (!rec.ok() || !rec->has_value()) continue;
    const ledger::RejectedRecord& rej = **rec;
    const std::string partition = std::to_string(rej.source().partition());
    const std::string offset = std::to_string(rej.source().offset());
    rd_kafka_resp_err_t e = rd_kafka_producev(
        dlq, RD_KAFKA_V_TOPIC(options.dlq_topic.c_str()),
        RD_KAFKA_V_KEY(rej.org_id().data(), rej.org_id().size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(rej.raw().data()), rej.raw().size()),
        RD_KAFKA_V_HEADER("ledger-code", rej.code().data(),
                          static_cast<ssize_t>(rej.code().size())),
        RD_KAFKA_V_HEADER("ledger-message", rej.message().data(),
                          static_cast<ssize_t>(rej.message().size())),
        RD_KAFKA_V_HEADER("source-topic", rej.source().topic().data(),
                          static_cast<ssize_t>(rej.source().topic().size())),
        RD_KAFKA_V_HEADER("source-partition", partition.data(),
                          static_cast<ssize_t>(partition.size())),
        RD_KAFKA_V_HEADER("source-offset", offset.data(), static_cast<ssize_t>(offset.size())),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      dlq_failures++;
      metrics.Count("ledger_kafka_dlq_failures_total", "");
      LogError(e, std::string("dead-letter produce: ") + rd_kafka_err2str(e));
    }
  }
}

void KafkaConsumer::Impl::OnDlqDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  auto* impl = static_cast<Impl*>(opaque);
  impl->dlq_failures++;
  // A C callback: exceptions must not unwind through librdkafka.
  try {
    impl->metrics.Count("ledger_kafka_dlq_failures_total", "");
    impl->LogError(m->err, std::string("dead-letter delivery: ") + rd_kafka_err2str(m->err));
  } catch (const std::exception& e) {
    KafkaLogLine(kLogWho, "a dead-letter delivery failed (%s), and so did reporting it: %s",
                 rd_kafka_err2str(m->err), e.what());
  } catch (...) {
    KafkaLogLine(kLogWho, "a dead-letter delivery failed (%s), and so did reporting it",
                 rd_kafka_err2str(m->err));
  }
}

void KafkaConsumer::Impl::LogError(rd_kafka_resp_err_t err, const std::string& what) {
  errors.Log(std::to_string(static_cast<int>(err)), what);
}

// Waits `ms` unless Stop is called first; false if it was.
bool KafkaConsumer::Impl::WaitUnlessStopping(int ms) {
  std::unique_lock<std::mutex> lock(stop_mu);
  stop_cv.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping.load(); });
  return !stopping.load();
}

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Start(const KafkaOptions& options,
                                                            projections::Billing& billing,
                                                            Metrics& metrics) {
  if (options.standby) {
    return Status(Code::kInvalidArgument, "kafka: a standby reader serves a cluster's shards");
  }
  return Launch(std::make_unique<Impl>(options, &billing, nullptr, metrics));
}

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Start(const KafkaOptions& options,
                                                            ShardHost& shards, Metrics& metrics) {
  if (options.embedded || !options.dlq_topic.empty()) {
    return Status(Code::kInvalidArgument,
                  "kafka: a cluster's shards need real brokers and no dead-letter topic");
  }
  return Launch(std::make_unique<Impl>(options, nullptr, &shards, metrics));
}

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Launch(std::unique_ptr<Impl> impl) {
  const KafkaOptions& options = impl->options;
  if (options.topic.empty()) return Status(Code::kInvalidArgument, "kafka: empty topic name");
  if (options.embedded) {
    EmbeddedKafkaOptions eo;
    eo.topics = {options.topic};
    if (!options.dlq_topic.empty()) eo.topics.push_back(options.dlq_topic);
    auto started = EmbeddedKafka::Start(eo);
    if (!started.ok()) return started.status();
    impl->embedded = std::move(started).value();
    impl->bootstrap = impl->embedded->bootstrap();
  } else {
    impl->bootstrap = options.brokers;
  }
  if (impl->bootstrap.empty()) return Status(Code::kInvalidArgument, "kafka: no brokers given");
  Status configured = impl->Configure();
  if (!configured.ok()) return configured;
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<KafkaConsumer>(new KafkaConsumer(std::move(impl)));
}

KafkaConsumer::KafkaConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaConsumer::~KafkaConsumer() { Stop(); }

std::string KafkaConsumer::bootstrap() const { return impl_->bootstrap; }

void KafkaConsumer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  // Every caller returns only once the thread has finished.
  std::lock_guard<std::mutex> lock(impl_->join_mu);
  if (impl_->thread.joinable()) impl_->thread.join();
}

KafkaStats KafkaConsumer::stats() const {
  KafkaStats s;
  s.consumed = impl_->consumed.load();
  s.appended = impl_->appended.load();
  s.duplicates = impl_->duplicates.load();
  s.rejected = impl_->rejected.load();
  s.batches = impl_->batches.load();
  s.append_failures = impl_->append_failures.load();
  s.assigned_partitions = impl_->assigned_count.load();
  return s;
}

}  // namespace billing::api
