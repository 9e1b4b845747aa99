#include "cluster/shard_set.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "cluster/shard_map.h"
#include "kafka/client.h"
#include "ledger/hash_chain.h"

namespace billing::cluster {

namespace {

using Clock = std::chrono::steady_clock;

// How often the producer's delivery reports are served and expired waits
// answered: the granularity of an ingest's timeout.
constexpr int kSweepIntervalMs = 20;
// The producer gives up on a message after this long; an ingest waits less,
// so its answer never depends on this.
constexpr const char* kProduceMessageTimeoutMs = "30000";
// Messages still queued at shutdown get this long to be delivered.
constexpr int kProducerFlushMs = 5000;
// A standby batch the owner waits for is one ledger write; one still not
// landed after this long is worth a log line (storage trouble).
constexpr int kStandbyWaitLogMs = 10000;

void Log(const std::string& line) { std::fprintf(stderr, "ledgerd: cluster: %s\n", line.c_str()); }

// What one ingest request waits for.
struct Pending {
  int shard = 0;
  std::vector<std::string> tokens;  // one per event, in the waiters' map until answered
  std::vector<ledger::Outcome> outcomes;
  size_t remaining = 0;
  Clock::time_point deadline;
  IngestDone done;
  bool finished = false;
};

// Calls `done` with `answer`; a callback that throws must not take the
// thread (the consumer's, or the sweeper) down with it.
void Answer(Pending& p, Result<std::vector<ledger::Outcome>> answer) noexcept {
  try {
    p.done(std::move(answer));
  } catch (const std::exception& e) {
    Log(std::string("an ingest's answer failed: ") + e.what());
  } catch (...) {
    Log("an ingest's answer failed");
  }
}

struct Waiter {
  std::shared_ptr<Pending> pending;
  size_t index = 0;
};

std::string RandomNonce() {
  std::random_device device;
  char text[17];
  std::snprintf(text, sizeof(text), "%08x%08x", device(), device());
  return text;
}

}  // namespace

struct ShardSet::Impl {
  struct Slot {
    std::unique_ptr<projections::Billing> billing;  // opened on first assignment, kept
    std::atomic<bool> owned{false};
    std::atomic<bool> serving{false};
    // Who may write the copy (under standby_mu): the owner's consumer from
    // Acquire to Detached; else the standby reader while `standby`.
    bool owner_held = false;
    bool standby = false;
    int standby_inflight = 0;  // standby batches submitted, not yet answered
  };
  class StandbyHost;

  Impl(const ShardSetOptions& o, api::Metrics& m) : options(o), metrics(m), slots(o.shards) {}

  // ledger_cluster_ingest_refused_total{reason}: events answered 503 by
  // this set, by why (not served here, the pending limit, not applied in
  // time).
  void CountRefused(const char* reason, size_t events) {
    metrics.Count("ledger_cluster_ingest_refused_total", std::string("reason=\"") + reason + "\"",
                  events);
  }
  // The shard's Billing, opened on first use; kInvalidArgument for a
  // partition beyond the shard count.
  Result<projections::Billing*> Open(int shard);
  Status StartProducer();
  void Run();
  // Answers `pending` with `why` unless it was answered; under `mu`, it
  // only collects it into `failed`, to be answered once `mu` is released.
  void FailLocked(const std::shared_ptr<Pending>& pending,
                  std::vector<std::shared_ptr<Pending>>* failed);
  void Fail(const std::shared_ptr<Pending>& pending, const Status& why);
  // Fails the open ingests `which` selects (all when null).
  void FailWhere(const std::function<bool(const Pending&)>& which, const Status& why);
  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);

  const ShardSetOptions options;
  api::Metrics& metrics;
  std::vector<Slot> slots;
  std::mutex open_mu;  // Acquire (consumer thread) against Status readers
  std::mutex standby_mu;
  std::condition_variable standby_cv;  // a standby batch was answered
  std::vector<int> standby_wanted;     // ascending; under standby_mu
  std::unique_ptr<StandbyHost> standby_host;
  rd_kafka_t* producer = nullptr;
  const std::string token_prefix = options.instance_id + "/" + RandomNonce() + "/";

  std::mutex mu;
  std::map<std::string, Waiter> waiters;  // by ingest token
  // Open ingests, oldest first: all wait equally long, so this is also
  // deadline order and the sweeper looks at the front only.
  std::deque<std::shared_ptr<Pending>> open;
  uint64_t next_token = 0;
  bool stopping = false;
  std::condition_variable cv;
  std::thread thread;
};

// The standby reader's view of the set: the shards to keep warm, and a
// writer's claim on each copy that yields to the owner's consumer.
class ShardSet::Impl::StandbyHost final : public api::ShardHost {
 public:
  explicit StandbyHost(Impl& set) : set_(set) {}

  std::vector<int32_t> StandbyShards() override {
    std::lock_guard<std::mutex> lock(set_.standby_mu);
    std::vector<int32_t> out;
    for (int shard : set_.standby_wanted) {
      if (!set_.slots[shard].owner_held) out.push_back(shard);
    }
    return out;
  }
  Result<projections::Billing*> Acquire(int shard) override {
    ASSIGN_OR_RETURN(projections::Billing * billing, set_.Open(shard));
    std::lock_guard<std::mutex> lock(set_.standby_mu);
    Slot& slot = set_.slots[shard];
    if (slot.owner_held) return Status(Code::kConflict, "it is owned here now");
    slot.standby = true;
    return billing;
  }
  void CaughtUp(int) override {}
  void Applied(int, const std::vector<std::string>&, const ledger::AppendResult&) override {}
  void Release(int shard) override {
    std::lock_guard<std::mutex> lock(set_.standby_mu);
    set_.slots[shard].standby = false;
  }
  void Submit(int shard, projections::Billing& billing, ledger::AppendRequest request,
              std::function<void(ledger::AppendResult)> done) override {
    bool refused = false;
    {
      std::lock_guard<std::mutex> lock(set_.standby_mu);
      Slot& slot = set_.slots[shard];
      refused = slot.owner_held || !slot.standby;
      if (!refused) slot.standby_inflight++;
    }
    if (refused) {
      ledger::AppendResult r;
      r.status = Status(Code::kConflict,
                        "shard " + std::to_string(shard) + " is owned here now; its standby stops");
      return done(std::move(r));
    }
    // The count comes down however the batch ends (the owner's Acquire
    // waits on it), before `done`, which may throw.
    auto landed = [this, shard] {
      std::lock_guard<std::mutex> lock(set_.standby_mu);
      set_.slots[shard].standby_inflight--;
      set_.standby_cv.notify_all();
    };
    try {
      billing.SubmitAsync(std::move(request), [landed, done](ledger::AppendResult r) {
        landed();
        done(std::move(r));
      });
    } catch (const std::exception& e) {
      landed();
      ledger::AppendResult failed;
      failed.status = Status(Code::kUnavailable, std::string("standby batch: ") + e.what());
      done(std::move(failed));
    }
  }

 private:
  Impl& set_;
};

Result<projections::Billing*> ShardSet::Impl::Open(int shard) {
  if (shard < 0 || shard >= options.shards) {
    return Status(Code::kInvalidArgument, "partition " + std::to_string(shard) +
                                              " is beyond the cluster's " +
                                              std::to_string(options.shards) + " shards");
  }
  Slot& slot = slots[shard];
  std::lock_guard<std::mutex> lock(open_mu);
  if (slot.billing == nullptr) {
    projections::BillingOptions o;
    o.dir = options.data_dir + "/shard-" + std::to_string(shard);
    o.durability = options.durability;
    o.on_unrecoverable = options.on_unrecoverable;
    auto opened = projections::Billing::Open(o);
    if (!opened.ok()) return opened.status();
    slot.billing = std::move(opened).value();
  }
  return slot.billing.get();
}

Status ShardSet::Impl::StartProducer() {
  const api::KafkaSettings settings = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "ledgerd-ingest"},
      // Acknowledged means on a quorum of brokers, without duplicates from
      // the producer's own retries, in order per partition.
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "1"},
      {"message.timeout.ms", kProduceMessageTimeoutMs},
      {"log.connection.close", "false"},
  };
  ASSIGN_OR_RETURN(producer, api::NewKafkaClient(
                                 RD_KAFKA_PRODUCER, settings,
                                 [this](rd_kafka_conf_t* conf) {
                                   rd_kafka_conf_set_dr_msg_cb(conf, &Impl::OnDelivery);
                                   rd_kafka_conf_set_opaque(conf, this);
                                 },
                                 "ingest producer"));
  return Status::Ok();
}

void ShardSet::Impl::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  // A C callback: nothing may unwind through librdkafka.
  std::unique_ptr<std::string> token(static_cast<std::string*>(m->_private));
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || token == nullptr) return;
  auto* impl = static_cast<Impl*>(opaque);
  try {
    std::shared_ptr<Pending> pending;
    {
      std::lock_guard<std::mutex> lock(impl->mu);
      auto it = impl->waiters.find(*token);
      if (it == impl->waiters.end()) return;
      pending = it->second.pending;
    }
    impl->Fail(pending,
               Status(Code::kUnavailable,
                      std::string("the shards log refused an event: ") + rd_kafka_err2str(m->err)));
  } catch (...) {
    Log("a failed delivery could not be reported to its ingest");
  }
}

void ShardSet::Impl::FailLocked(const std::shared_ptr<Pending>& pending,
                                std::vector<std::shared_ptr<Pending>>* failed) {
  if (pending->finished) return;
  pending->finished = true;
  for (const std::string& token : pending->tokens) waiters.erase(token);
  failed->push_back(pending);
}

void ShardSet::Impl::Fail(const std::shared_ptr<Pending>& pending, const Status& why) {
  std::vector<std::shared_ptr<Pending>> failed;
  {
    std::lock_guard<std::mutex> lock(mu);
    FailLocked(pending, &failed);
  }
  for (const auto& p : failed) Answer(*p, why);
}

void ShardSet::Impl::FailWhere(const std::function<bool(const Pending&)>& which,
                               const Status& why) {
  std::vector<std::shared_ptr<Pending>> failed;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& p : open) {
      if (!which || which(*p)) FailLocked(p, &failed);
    }
  }
  for (const auto& p : failed) Answer(*p, why);
}

void ShardSet::Impl::Run() {
  for (;;) {
    std::vector<std::shared_ptr<Pending>> expired;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(kSweepIntervalMs), [this] { return stopping; });
      if (stopping) return;
      const Clock::time_point now = Clock::now();
      while (!open.empty() && (open.front()->finished || open.front()->deadline <= now)) {
        FailLocked(open.front(), &expired);
        open.pop_front();
      }
    }
    for (const auto& p : expired) {
      CountRefused("not_applied_in_time", p->outcomes.size());
      Answer(*p, Status(Code::kUnavailable, "the events were not applied in time; retry"));
    }
    rd_kafka_poll(producer, 0);
  }
}

Result<std::unique_ptr<ShardSet>> ShardSet::Create(const ShardSetOptions& options,
                                                   api::Metrics& metrics) {
  if (options.shards <= 0) return Status(Code::kInvalidArgument, "a cluster needs shards");
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return Status(Code::kUnavailable, "cannot create " + options.data_dir + ": " + ec.message());
  }
  auto impl = std::make_unique<Impl>(options, metrics);
  impl->standby_host = std::make_unique<Impl::StandbyHost>(*impl);
  RETURN_IF_ERROR(impl->StartProducer());
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<ShardSet>(new ShardSet(std::move(impl)));
}

ShardSet::ShardSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ShardSet::~ShardSet() {
  Stop();
  rd_kafka_destroy(impl_->producer);
}

void ShardSet::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->FailWhere(nullptr, Status(Code::kUnavailable, "the instance is stopping; retry"));
  if (rd_kafka_flush(impl_->producer, kProducerFlushMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Log(std::to_string(rd_kafka_outq_len(impl_->producer)) + " ingest messages undelivered");
    // Their delivery reports (purged) free what each message carries.
    rd_kafka_purge(impl_->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(impl_->producer, 0);
  }
}

int ShardSet::shards() const { return impl_->options.shards; }

projections::Billing* ShardSet::ForOrg(std::string_view org) const {
  return Serving(ShardOf(org, shards()));
}

projections::Billing* ShardSet::Serving(int shard) const {
  if (shard < 0 || shard >= shards()) return nullptr;
  const Impl::Slot& slot = impl_->slots[shard];
  // `serving` is set only after the Billing is in place, and the Billing is
  // never destroyed before the set.
  return slot.serving.load(std::memory_order_acquire) ? slot.billing.get() : nullptr;
}

std::vector<ShardStatus> ShardSet::Describe() const {
  std::vector<ShardStatus> out;
  std::lock_guard<std::mutex> lock(impl_->open_mu);
  for (int shard = 0; shard < shards(); shard++) {
    const Impl::Slot& slot = impl_->slots[shard];
    ShardStatus s;
    s.shard = shard;
    s.owned = slot.owned.load();
    s.serving = slot.serving.load();
    {
      std::lock_guard<std::mutex> standby_lock(impl_->standby_mu);
      s.standby = slot.standby;
    }
    if (slot.billing != nullptr) {
      const ledger::Head head = slot.billing->ledger().head();
      s.sequence = head.sequence.value;
      s.hash_hex = ledger::Hex(head.hash);
      auto next = slot.billing->ledger().KafkaNextOffset(impl_->options.shards_topic, shard);
      if (next.ok() && next->has_value()) s.next_offset = **next;
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<projections::Billing*> ShardSet::Acquire(int shard) {
  ASSIGN_OR_RETURN(projections::Billing * billing, impl_->Open(shard));
  Impl::Slot& slot = impl_->slots[shard];
  {
    // The standby's batch in flight lands before the consumer reads the
    // stored offset it starts from; the ledger answers every batch, so this
    // ends.
    std::unique_lock<std::mutex> lock(impl_->standby_mu);
    slot.owner_held = true;
    slot.standby = false;
    while (!impl_->standby_cv.wait_for(lock, std::chrono::milliseconds(kStandbyWaitLogMs),
                                       [&slot] { return slot.standby_inflight == 0; })) {
      Log("shard " + std::to_string(shard) + ": still waiting for its standby batch to land");
    }
  }
  slot.owned = true;
  return billing;
}

void ShardSet::Detached(int shard) {
  if (shard < 0 || shard >= shards()) return;
  std::lock_guard<std::mutex> lock(impl_->standby_mu);
  impl_->slots[shard].owner_held = false;
}

void ShardSet::SetStandby(std::vector<int> wanted) {
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  std::erase_if(wanted, [this](int shard) { return shard < 0 || shard >= shards(); });
  std::lock_guard<std::mutex> lock(impl_->standby_mu);
  impl_->standby_wanted = std::move(wanted);
}

api::ShardHost& ShardSet::standby_host() { return *impl_->standby_host; }

void ShardSet::CaughtUp(int shard) {
  if (shard < 0 || shard >= shards()) return;
  impl_->slots[shard].serving.store(true, std::memory_order_release);
}

void ShardSet::Release(int shard) {
  if (shard < 0 || shard >= shards()) return;
  {
    // Under `mu`, so that no ingest registers for the shard after the
    // failures below (Ingest checks `serving` under it).
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->slots[shard].serving = false;
    impl_->slots[shard].owned = false;
  }
  impl_->FailWhere([shard](const Pending& p) { return p.shard == shard; },
                   Status(Code::kUnavailable, "shard " + std::to_string(shard) +
                                                  " is moving to another instance; retry"));
}

void ShardSet::Applied(int shard, const std::vector<std::string>& tokens,
                       const ledger::AppendResult& result) {
  (void)shard;
  std::vector<std::shared_ptr<Pending>> finished;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (size_t i = 0; i < tokens.size() && i < result.outcomes.size(); i++) {
      if (tokens[i].empty()) continue;
      auto it = impl_->waiters.find(tokens[i]);
      if (it == impl_->waiters.end()) continue;  // another run's, or timed out
      Pending& p = *it->second.pending;
      p.outcomes[it->second.index] = result.outcomes[i];
      if (--p.remaining == 0 && !p.finished) {
        p.finished = true;
        finished.push_back(it->second.pending);
      }
      impl_->waiters.erase(it);
    }
  }
  for (const auto& p : finished) Answer(*p, std::move(p->outcomes));
}

void ShardSet::Ingest(int shard, std::vector<IngestEvent> events, const std::string& principal,
                      IngestDone done) {
  if (shard < 0 || shard >= shards()) {
    return done(Status(Code::kInvalidArgument, "no shard " + std::to_string(shard)));
  }
  if (events.empty()) return done(std::vector<ledger::Outcome>{});
  auto pending = std::make_shared<Pending>();
  pending->shard = shard;
  pending->outcomes.resize(events.size());
  pending->remaining = events.size();
  pending->deadline = Clock::now() + std::chrono::milliseconds(impl_->options.ingest_wait_ms);
  pending->done = std::move(done);
  Status refused = Status::Ok();
  const char* reason = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping || !impl_->slots[shard].serving.load()) {
      refused = Status(Code::kUnavailable,
                       "shard " + std::to_string(shard) + " is not served here now; retry");
      reason = "not_served";
    } else if (impl_->waiters.size() + events.size() > impl_->options.pending_events_max) {
      refused = Status(Code::kUnavailable, "too many events wait to be applied; retry");
      reason = "pending_limit";
    } else {
      for (size_t i = 0; i < events.size(); i++) {
        pending->tokens.push_back(impl_->token_prefix + std::to_string(impl_->next_token++));
        impl_->waiters[pending->tokens.back()] = Waiter{pending, i};
      }
      impl_->open.push_back(pending);
    }
  }
  if (!refused.ok()) {
    impl_->CountRefused(reason, events.size());
    return Answer(*pending, refused);
  }
  const std::vector<std::string>& tokens = pending->tokens;
  const std::string& topic = impl_->options.shards_topic;
  for (size_t i = 0; i < events.size(); i++) {
    const IngestEvent& e = events[i];
    rd_kafka_headers_t* headers = rd_kafka_headers_new(3);
    rd_kafka_header_add(headers, api::kIngestTokenHeader, -1, tokens[i].data(),
                        static_cast<ssize_t>(tokens[i].size()));
    rd_kafka_header_add(headers, api::kIngestPrincipalHeader, -1, principal.data(),
                        static_cast<ssize_t>(principal.size()));
    if (e.redrive) {
      const std::string id = std::to_string(e.redrive->id);
      rd_kafka_header_add(headers, api::kRedriveHeader, -1, id.data(),
                          static_cast<ssize_t>(id.size()));
      rd_kafka_header_add(headers, api::kRedriveSourceHeader, -1, e.redrive->source.data(),
                          static_cast<ssize_t>(e.redrive->source.size()));
    }
    auto* opaque = new std::string(tokens[i]);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        impl_->producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(shard),
        RD_KAFKA_V_KEY(e.org_id.data(), e.org_id.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(e.raw.data()), e.raw.size()),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      delete opaque;
      rd_kafka_headers_destroy(headers);  // the message owns them only once queued
      // What was queued before may still be applied: it is answered as a
      // failure all the same, and the client's retry finds duplicates.
      impl_->Fail(pending, Status(Code::kUnavailable,
                                  std::string("cannot queue an event: ") + rd_kafka_err2str(err)));
      return;
    }
  }
}

}  // namespace billing::cluster
