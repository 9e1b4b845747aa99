#include "webhooks/outbox.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <condition_variable>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "ledger/rocks_status.h"
#include "projections/answer_json.h"
#include "webhooks/signature.h"

namespace billing::webhooks {

namespace {

using Json = nlohmann::ordered_json;
using projections::DeliveryKind;
using Clock = std::chrono::steady_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Cut(std::string s, size_t max) {
  if (s.size() <= max) return s;
  s.resize(max);
  // Not in the middle of a UTF-8 sequence: the listing is JSON.
  while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
  if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xC0) s.pop_back();
  return s;
}

std::atomic<int64_t>& CounterOf(DeliveryStatus s, std::atomic<int64_t>& p, std::atomic<int64_t>& d,
                                std::atomic<int64_t>& f) {
  return s == DeliveryStatus::kPending ? p : s == DeliveryStatus::kDelivered ? d : f;
}

}  // namespace

struct Outbox::Worker {
  size_t index = 0;
  const Endpoint* endpoint = nullptr;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  bool wake = false;  // guarded by mu: something new may be due
  Sender sender;      // Stop cancels its attempt in flight

  // Waits for a wake-up, Stop, or `timeout` (nullopt: no timeout).
  void Sleep(const std::atomic<bool>& stopping, std::optional<std::chrono::milliseconds> timeout) {
    std::unique_lock<std::mutex> lock(mu);
    auto ready = [&] { return wake || stopping.load(); };
    if (timeout) {
      cv.wait_for(lock, *timeout, ready);
    } else {
      cv.wait(lock, ready);
    }
    wake = false;
  }
};

Outbox::Outbox(projections::Billing& billing, api::Metrics& metrics, OutboxOptions options)
    : billing_(billing),
      metrics_(metrics),
      options_(std::move(options)),
      random_(std::random_device{}()),
      woken_(options_.endpoints.size(), false) {}

Result<std::unique_ptr<Outbox>> Outbox::Open(projections::Billing& billing, api::Metrics& metrics,
                                             OutboxOptions options) {
  std::unique_ptr<Outbox> outbox(new Outbox(billing, metrics, std::move(options)));
  if (Status s = outbox->FailOrphans(); !s.ok()) return s;
  if (Status s = outbox->LoadCounts(); !s.ok()) return s;
  metrics.AddCollector([o = outbox.get()](api::Metrics& m) {
    m.Set("ledger_webhook_deliveries", "status=\"pending\"", o->pending_.load());
    m.Set("ledger_webhook_deliveries", "status=\"delivered\"", o->delivered_.load());
    m.Set("ledger_webhook_deliveries", "status=\"failed\"", o->failed_.load());
  });
  return outbox;
}

Outbox::~Outbox() { Stop(); }

Status Outbox::LoadCounts() {
  rocksdb::DB* db = billing_.ledger().db();
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (DeliveryStatus s :
       {DeliveryStatus::kPending, DeliveryStatus::kDelivered, DeliveryStatus::kFailed}) {
    const std::string prefix = StatusPrefix(s);
    int64_t n = 0;
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) ++n;
    CounterOf(s, pending_, delivered_, failed_) = n;
  }
  return ledger::FromRocks(it->status(), "reading the webhook outbox");
}

Status Outbox::FailOrphans() {
  // A pending delivery's due key names its endpoint; one the options no
  // longer name would wait forever, invisible: fail it, saying why.
  std::vector<std::string> orphans;
  {
    rocksdb::DB* db = billing_.ledger().db();
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    const std::string prefix(kDuePrefix);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      const std::string key = it->key().ToString();
      const std::string endpoint = key.substr(prefix.size(), 16);
      bool known = false;
      for (const Endpoint& e : options_.endpoints) known = known || e.key == endpoint;
      if (!known) orphans.push_back(key);
    }
    if (Status s = ledger::FromRocks(it->status(), "reading the webhook outbox"); !s.ok()) return s;
  }
  for (const std::string& due_key : orphans) {
    auto d = Load(IdOfIndexKey(due_key));
    if (!d.ok()) return d.status();
    if (!*d) continue;
    Delivery& delivery = **d;
    const DeliveryStatus was = delivery.status;
    delivery.status = DeliveryStatus::kFailed;
    delivery.last_error = "its endpoint is no longer in the --webhooks file";
    if (Status s = Store(delivery, was, due_key, /*sync=*/true); !s.ok()) return s;
  }
  if (!orphans.empty()) {
    std::fprintf(stderr,
                 "ledgerd: %zu pending webhook deliveries name an endpoint no longer configured; "
                 "marked failed\n",
                 orphans.size());
  }
  return Status::Ok();
}

void Outbox::Start() {
  for (size_t i = 0; i < options_.endpoints.size(); ++i) {
    auto w = std::make_unique<Worker>();
    w->index = i;
    w->endpoint = &options_.endpoints[i];
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) w->thread = std::thread([this, w = w.get()] { Run(*w); });
}

void Outbox::Stop() {
  stopping_ = true;
  for (auto& w : workers_) {
    w->sender.Cancel();
    Wake(w->index);
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void Outbox::Wake(size_t endpoint) {
  if (endpoint >= workers_.size()) return;
  Worker& w = *workers_[endpoint];
  {
    std::lock_guard<std::mutex> lock(w.mu);
    w.wake = true;
  }
  w.cv.notify_one();
}

// ---- The live write path (the ledger's writer thread).

void Outbox::Enqueue(const projections::DeliveryRequest& request, rocksdb::WriteBatch& batch) {
  const int64_t now = NowMs();
  for (size_t i = 0; i < options_.endpoints.size(); ++i) {
    const Endpoint& e = options_.endpoints[i];
    if (!e.Takes(request.kind, request.org)) continue;
    Delivery d;
    d.id = DeliveryId(request.kind, request.org, request.sequence.value, request.ref, e.url);
    d.kind = request.kind;
    d.org_id = request.org;
    d.sequence = request.sequence.value;
    d.ref = request.ref;
    d.endpoint_url = e.url;
    d.endpoint_key = e.key;
    d.next_attempt_ms = now;
    d.created_ms = now;
    d.data = request.data;
    const std::string id16 = d.id.substr(d.id.find('-') + 1);
    batch.Put(DeliveryKey(d.sequence, id16), EncodeDelivery(d));
    batch.Put(StatusKey(DeliveryStatus::kPending, d.sequence, id16), rocksdb::Slice());
    batch.Put(DueKey(e.key, now, d.sequence, id16), rocksdb::Slice());
    ++uncommitted_;
    woken_[i] = true;
  }
}

void Outbox::Committed() {
  pending_ += static_cast<int64_t>(uncommitted_);
  uncommitted_ = 0;
  for (size_t i = 0; i < woken_.size(); ++i) {
    if (woken_[i]) Wake(i);
    woken_[i] = false;
  }
}

void Outbox::Aborted() {
  uncommitted_ = 0;
  woken_.assign(woken_.size(), false);
}

// ---- Storage.

Result<std::optional<Delivery>> Outbox::Load(const std::string& id) const {
  const std::string key = DeliveryKeyOf(id);
  if (key.empty()) return std::optional<Delivery>();
  std::string value;
  rocksdb::Status s = billing_.ledger().db()->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::optional<Delivery>();
  if (!s.ok()) return ledger::FromRocks(s, "reading a webhook delivery");
  auto d = DecodeDelivery(value);
  if (!d.ok()) return d.status();
  return std::optional<Delivery>(std::move(d).value());
}

Status Outbox::Store(const Delivery& d, DeliveryStatus was, const std::string& due_key, bool sync) {
  const std::string id16 = d.id.substr(d.id.find('-') + 1);
  rocksdb::WriteBatch batch;
  batch.Put(DeliveryKey(d.sequence, id16), EncodeDelivery(d));
  if (was != d.status) {
    batch.Delete(StatusKey(was, d.sequence, id16));
    batch.Put(StatusKey(d.status, d.sequence, id16), rocksdb::Slice());
  }
  const std::string next_due = d.status == DeliveryStatus::kPending
                                   ? DueKey(d.endpoint_key, d.next_attempt_ms, d.sequence, id16)
                                   : std::string();
  if (!due_key.empty() && due_key != next_due) batch.Delete(due_key);
  if (!next_due.empty()) batch.Put(next_due, rocksdb::Slice());
  rocksdb::WriteOptions wo;
  // An attempt's outcome is not synced: losing it to a power cut only sends
  // the delivery again, which at-least-once allows; the ledger's own synced
  // groups carry it to disk soon after anyway.
  wo.sync = sync;
  Status s = ledger::FromRocks(billing_.ledger().db()->Write(wo, &batch),
                               "writing a webhook delivery's state");
  if (s.ok() && was != d.status) {
    CounterOf(was, pending_, delivered_, failed_)--;
    CounterOf(d.status, pending_, delivered_, failed_)++;
  }
  return s;
}

Result<DeliveryPage> Outbox::List(const DeliveryQuery& query) const {
  const std::string prefix =
      query.status ? StatusPrefix(*query.status) : std::string(kDeliveryPrefix);
  std::string start = prefix;
  if (auto after = SplitDeliveryId(query.after)) {
    start = query.status ? StatusKey(*query.status, after->first, after->second)
                         : DeliveryKey(after->first, after->second);
  }
  DeliveryPage page;
  rocksdb::DB* db = billing_.ledger().db();
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  size_t scanned = 0;
  std::string last_id;
  for (it->Seek(start); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string key = it->key().ToString();
    if (key == start && !query.after.empty()) continue;
    if (page.deliveries.size() == query.limit || scanned == kListScanMax) {
      page.next_after = last_id;
      break;
    }
    ++scanned;
    last_id = IdOfIndexKey(key);
    Result<std::optional<Delivery>> d = std::optional<Delivery>();
    if (query.status) {
      d = Load(last_id);
      if (!d.ok()) return d.status();
    } else {
      auto decoded = DecodeDelivery(std::string_view(it->value().data(), it->value().size()));
      if (!decoded.ok()) return decoded.status();
      d = std::optional<Delivery>(std::move(decoded).value());
    }
    if (!*d || (query.org && (**d).org_id != *query.org)) continue;
    page.deliveries.push_back(std::move(**d));
  }
  if (Status s = ledger::FromRocks(it->status(), "listing webhook deliveries"); !s.ok()) return s;
  return page;
}

Result<Delivery> Outbox::Retry(const std::string& id, const std::optional<std::string>& org) {
  std::lock_guard<std::mutex> lock(state_mu_);
  auto found = Load(id);
  if (!found.ok()) return found.status();
  if (!*found || (org && (**found).org_id != *org))
    return Status(Code::kNotFound, "webhook delivery " + id + " does not exist");
  Delivery d = std::move(**found);
  if (d.status != DeliveryStatus::kFailed) {
    return Status(Code::kConflict, "webhook delivery " + id + " is " +
                                       std::string(StatusName(d.status)) +
                                       "; only a failed delivery can be retried");
  }
  size_t endpoint = options_.endpoints.size();
  for (size_t i = 0; i < options_.endpoints.size(); ++i) {
    if (options_.endpoints[i].key == d.endpoint_key) endpoint = i;
  }
  if (endpoint == options_.endpoints.size()) {
    return Status(Code::kConflict, "the endpoint of webhook delivery " + id +
                                       " is no longer in the --webhooks file");
  }
  d.status = DeliveryStatus::kPending;
  d.attempts = 0;
  d.next_attempt_ms = NowMs();
  // Synced: the answer tells an admin it is queued again.
  if (Status s = Store(d, DeliveryStatus::kFailed, "", /*sync=*/true); !s.ok()) return s;
  Wake(endpoint);
  return d;
}

// ---- Sending (each endpoint's own thread).

void Outbox::Run(Worker& worker) {
  const std::string prefix = DuePrefix(worker.endpoint->key);
  while (!stopping_) {
    std::string due_key;
    rocksdb::Status read;
    {
      std::unique_ptr<rocksdb::Iterator> it(
          billing_.ledger().db()->NewIterator(rocksdb::ReadOptions()));
      it->Seek(prefix);
      if (it->Valid() && it->key().starts_with(prefix)) due_key = it->key().ToString();
      read = it->status();
    }
    if (!read.ok()) {
      std::fprintf(stderr, "ledgerd: webhooks: %s\n",
                   ledger::FromRocks(read, "reading the outbox").message().c_str());
      worker.Sleep(stopping_, kStorageRetryDelay);
      continue;
    }
    if (due_key.empty()) {
      worker.Sleep(stopping_, std::nullopt);
      continue;
    }
    const int64_t wait_ms = DueMsOf(due_key) - NowMs();
    if (wait_ms > 0) {
      worker.Sleep(stopping_, std::chrono::milliseconds(wait_ms));
      continue;
    }
    Attempt(worker, due_key);
  }
}

std::chrono::milliseconds Outbox::Backoff(uint32_t attempts) {
  // base * 2^(attempts-1), at most backoff_max, then a random point in its
  // upper half ("equal jitter").
  int64_t wait = options_.backoff_base.count();
  for (uint32_t i = 1; i < attempts && wait < options_.backoff_max.count(); ++i) wait *= 2;
  wait = std::min<int64_t>(wait, options_.backoff_max.count());
  std::lock_guard<std::mutex> lock(random_mu_);
  std::uniform_int_distribution<int64_t> upper_half(wait / 2, wait);
  return std::chrono::milliseconds(upper_half(random_));
}

Result<std::string> Outbox::Render(const Delivery& d) const {
  Json data;
  if (!d.data.empty()) {
    data = Json::parse(d.data, nullptr, /*allow_exceptions=*/false);
    if (data.is_discarded()) return Status(Code::kCorruption, "its stored data is not JSON");
  } else if (d.kind == DeliveryKind::kInvoiceFinalized) {
    // The invoice as GET /v1/orgs/{org}/invoices/{id} answers it (service.cc
    // InvoiceAnswer): a closed month never changes, so this is the same
    // whenever it is rendered.
    auto snap = billing_.Snapshot(d.org_id, std::nullopt, {.kinds = "BL", .month = std::nullopt});
    if (!snap.ok()) return snap.status();
    auto inv = projections::GetInvoice(*snap->org, *snap->view, d.ref);
    if (Status read = snap->view->status(); !read.ok()) return read;
    if (!inv.ok()) return inv.status();
    if (!inv->summary.final)
      return Status(Code::kUnavailable, "invoice " + d.ref + " is not final yet");
    auto seal = billing_.StoredSeal(d.org_id, d.ref);
    if (!seal.ok()) return seal.status();
    if (!*seal) return Status(Code::kUnavailable, "the seal of " + d.ref + " is not stored yet");
    data = projections::WithSeal(projections::InvoiceJson(*inv, *snap->org), *seal);
  } else {
    return Status(Code::kInternal, "a budget alert delivery without its data");
  }
  Json body{{"delivery_id", d.id},
            {"kind", projections::DeliveryKindName(d.kind)},
            {"org_id", d.org_id},
            {"sequence", d.sequence},
            {"data", std::move(data)}};
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void Outbox::Attempt(Worker& worker, const std::string& due_key) {
  const Endpoint& endpoint = *worker.endpoint;
  auto found = Load(IdOfIndexKey(due_key));
  auto storage_failed = [&](const Status& s) {
    std::fprintf(stderr, "ledgerd: webhooks: %s\n", s.message().c_str());
    worker.Sleep(stopping_, kStorageRetryDelay);
  };
  if (!found.ok()) return storage_failed(found.status());
  if (!*found || (**found).status != DeliveryStatus::kPending) {
    // A due key left without its pending delivery: nothing to send.
    Status s = ledger::FromRocks(billing_.ledger().db()->Delete(rocksdb::WriteOptions(), due_key),
                                 "dropping a stale webhook due key");
    if (!s.ok()) storage_failed(s);
    return;
  }
  Delivery d = std::move(**found);
  if (d.body.empty()) {
    auto body = Render(d);
    if (!body.ok()) {
      // The delivery's keys are durable a moment before the live gate
      // publishes the org's new state (projections/billing.cc), so a young
      // delivery may find its org or invoice not there yet.
      const Code code = body.status().code();
      const bool later =
          code == Code::kUnavailable ||
          (code == Code::kNotFound && NowMs() - d.created_ms < kRenderWaitMax.count());
      std::lock_guard<std::mutex> lock(state_mu_);
      if (later) {
        d.next_attempt_ms = NowMs() + kRenderRetryDelay.count();
      } else {
        d.status = DeliveryStatus::kFailed;
        d.last_error = Cut("cannot render: " + body.status().message(), kLastErrorBytesMax);
      }
      if (Status s = Store(d, DeliveryStatus::kPending, due_key, false); !s.ok()) storage_failed(s);
      return;
    }
    // Stored before the first send: every retry, after any restart, sends these bytes.
    d.body = std::move(body).value();
    std::lock_guard<std::mutex> lock(state_mu_);
    if (Status s = Store(d, DeliveryStatus::kPending, due_key, false); !s.ok())
      return storage_failed(s);
  }
  const int64_t t = NowMs() / 1000;
  const auto started = Clock::now();
  AttemptResult result =
      worker.sender.Post(endpoint, d.body,
                         {{"Billing-Delivery-Id", d.id},
                          {"Billing-Signature", SignatureHeader(endpoint.secret, t, d.body)}},
                         options_.timeouts);
  const int64_t micros =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
  if (stopping_ && !result.delivered()) return;  // abandoned, not an attempt: sent again later
  metrics_.ObserveSlow("ledger_webhook_attempt_duration_seconds", "", micros);
  metrics_.Count("ledger_webhook_attempts_total",
                 result.delivered() ? "result=\"delivered\"" : "result=\"error\"");
  std::lock_guard<std::mutex> lock(state_mu_);
  d.attempts++;
  if (result.delivered()) {
    d.status = DeliveryStatus::kDelivered;
    d.delivered_ms = NowMs();
  } else {
    d.last_error = Cut(result.error, kLastErrorBytesMax);
    if (d.attempts >= options_.attempts_max) {
      d.status = DeliveryStatus::kFailed;
    } else {
      d.next_attempt_ms = NowMs() + Backoff(d.attempts).count();
    }
  }
  if (Status s = Store(d, DeliveryStatus::kPending, due_key, false); !s.ok()) storage_failed(s);
}

}  // namespace billing::webhooks
