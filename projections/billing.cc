#include "projections/billing.h"

#include <rocksdb/db.h>

#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "ledger/prepare.h"
#include "ledger/rocks_status.h"
#include "projections/agg.h"
#include "projections/answer_json.h"
#include "projections/decider.h"
#include "projections/keys.h"
#include "projections/seal.h"

namespace billing::projections {

// The Gate the ledger's writer calls: decides each event, buffers its
// postings and the changed org states, and publishes immutable copies of the
// states for queries once the group is durable.
class Billing::LiveGate : public ledger::Gate {
 public:
  explicit LiveGate(const ledger::Ledger* ledger) : ledger_(ledger), db_(ledger->db()) {
    // The stored read models keep the explain index (explain.h).
    decider_.set_explain_index(ExplainIndex::kWrite);
  }

  Status Admit(const events::Event& event, ledger::Sequence seq, ledger::Txn& txn) override {
    if (stale_) {
      // The reload after a failed group failed too: nothing can be decided
      // on the states in memory until it succeeds.
      if (Status loaded = Load(); !loaded.ok()) return loaded;
      stale_ = false;
    }
    if (!view_) view_ = std::make_unique<RocksView>(db_);
    EventLookup lookup = [&txn](ledger::EventKey key) { return txn.FindEvent(key); };
    Status decided = decider_.Decide(event, seq, lookup, sink_, *view_);
    // A failed read may have turned a refusal into an acceptance (a voided
    // marker not seen): fail the group; Aborted() forgets what was decided.
    if (Status read = view_->status(); !read.ok()) return read;
    if (decided.ok()) {
      touched_.insert(event.envelope.org_id());
      QueueRaisedAlerts(event.envelope.org_id(), seq);
      if (event.envelope.payload_case() == events::Payload::kBillingPeriodClosed) {
        to_seal_.insert(event.envelope.org_id());
        if (Status queued = QueueFinalizedInvoices(event.envelope.org_id(), seq); !queued.ok())
          return queued;
      }
    }
    return decided;
  }

  // The seam of the webhook outbox (delivery_queue.h): called on the writer
  // thread while a group is decided (from Admit), it queues a delivery of
  // (kind, org, sequence, ref) to every matching endpoint in the WriteBatch
  // of the group holding `sequence`; a failed group forgets it. `data`: the
  // delivery's data as JSON text when known now (an alert), else empty.
  void QueueDeliveries(DeliveryKind kind, const std::string& org, ledger::Sequence sequence,
                       std::string ref, std::string data = {}) {
    if (deliveries_ == nullptr) return;
    to_deliver_.push_back(DeliveryRequest{kind, org, sequence, std::move(ref), std::move(data)});
  }

  void Seal(ledger::Txn& txn) override {
    decider_.FlushFigures(sink_);
    for (const std::string& org : decider_.TakeDirty()) {
      sink_.Put(keys::StateKey(org), decider_.Find(org)->ToProto().SerializeAsString());
      dirty_.insert(org);
    }
    sink_.FlushTo(txn.batch());
    for (const DeliveryRequest& request : to_deliver_) deliveries_->Enqueue(request, *txn.batch());
    queued_ = queued_ || !to_deliver_.empty();
    to_deliver_.clear();
  }

  void Committed() override {
    decider_.ClearPending();
    view_.reset();
    // Sealed before the new states are published: a query that sees a month
    // closed finds its seals. A failed write leaves the orgs in to_seal_ for
    // the next group (the service answers 503 for a final invoice without
    // its seal meanwhile); a crash before it is repaired by SealClosedMonths
    // at the next open.
    if (!to_seal_.empty()) {
      std::map<std::string, const OrgState*> orgs;
      for (const std::string& org : to_seal_) orgs[org] = decider_.Find(org);
      if (SealClosedMonths(orgs).ok()) to_seal_.clear();
    }
    std::unique_lock<std::shared_mutex> lock(mu_);
    for (const std::string& org : dirty_) {
      published_[org] = std::make_shared<const OrgState>(*decider_.Find(org));
    }
    for (const std::string& org : touched_) versions_[org]++;
    dirty_.clear();
    touched_.clear();
    lock.unlock();
    // Last: a delivery sent now finds its invoice final, sealed and published.
    if (queued_) deliveries_->Committed();
    queued_ = false;
  }

  void Aborted() override {
    // Everything decided in the failed group is forgotten by reloading the
    // durable states; published copies were never touched.
    sink_.Clear();
    view_.reset();
    dirty_.clear();
    touched_.clear();
    to_seal_.clear();
    to_deliver_.clear();
    if (queued_) deliveries_->Aborted();
    queued_ = false;
    decider_.TakeDirty();
    // A storage failure can fail the reload as well; the next group retries
    // it before deciding anything.
    stale_ = !Load().ok();
  }

  // Queues budget_alert for every alert the event just decided raised. The
  // data is the alert exactly as GET .../alerts lists it: an alert has no
  // other renderer, and it never changes once raised.
  void QueueRaisedAlerts(const std::string& org_id, ledger::Sequence seq) {
    if (deliveries_ == nullptr || decider_.raised().empty()) return;
    const OrgState& org = *decider_.Find(org_id);
    for (const Alert& alert : decider_.raised()) {
      QueueDeliveries(DeliveryKind::kBudgetAlert, org_id, seq, AlertId(alert),
                      AlertJson(alert, org).dump());
    }
  }

  // Queues invoice_finalized for every invoice of the month `org` closed at
  // `seq`, just decided. Its invoices are the buckets holding its postings:
  // those of earlier groups in the database, those of this group still in
  // the sink (nothing lands in a month after its close). A failed read fails
  // the group rather than lose a delivery.
  Status QueueFinalizedInvoices(const std::string& org_id, ledger::Sequence seq) {
    if (deliveries_ == nullptr) return Status::Ok();
    const OrgState* org = decider_.Find(org_id);
    for (const auto& [index, closed] : org->closed) {
      if (closed.sequence != seq.value) continue;
      const Month month{index};
      const std::string prefix = keys::MonthPrefix(org_id, month) + 'B';
      std::set<std::string> buckets;
      auto add = [&](std::string_view key) { buckets.emplace(key.substr(prefix.size())); };
      view_->Scan(prefix, [&](std::string_view key, std::string_view) {
        add(key);
        return true;
      });
      if (Status read = view_->status(); !read.ok()) return read;
      sink_.VisitKeys(prefix, add);
      for (std::string& id : InvoiceIdsOf(*org, month, buckets))
        QueueDeliveries(DeliveryKind::kInvoiceFinalized, org_id, seq, std::move(id));
    }
    return Status::Ok();
  }

  // Reads every persisted org state; the writer must be idle.
  Status Load() {
    std::map<std::string, OrgState> orgs;
    RocksView view(db_);
    bool bad = false;
    view.Scan(keys::kStatePrefix, [&](std::string_view key, std::string_view value) {
      v1::OrgState proto;
      if (!proto.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        bad = true;
        return false;
      }
      orgs.emplace(std::string(key.substr(keys::kStatePrefix.size())), OrgState::FromProto(proto));
      return true;
    });
    if (bad) return Status(Code::kCorruption, "an organization state is undecodable");
    if (Status read = view.status(); !read.ok()) return read;
    std::unique_lock<std::shared_mutex> lock(mu_);
    published_.clear();
    for (const auto& [id, org] : orgs) published_[id] = std::make_shared<const OrgState>(org);
    decider_.Load(std::move(orgs));
    return Status::Ok();
  }

  // Stores the missing seals of every closed month of `orgs`, in one synced
  // write. Seals are a pure function of the ledger, so recomputing one that
  // exists would write the same bytes: only missing ones are computed.
  Status SealClosedMonths(const std::map<std::string, const OrgState*>& orgs) {
    RocksView view(db_);
    MemoryStore seals;
    for (const auto& [id, org] : orgs) {
      for (const auto& [index, closed] : org->closed) {
        bool missing = false;
        for (const InvoiceSummary& inv : Invoices(*org, view, Month{index}).invoices) {
          missing = missing || !view.Get(keys::SealKey(id, inv.invoice_id));
        }
        if (!missing) continue;
        auto point = FindClosePoint(*ledger_, *org, Month{index});
        if (!point.ok()) return point.status();
        PutSeals(id, MonthSeals(*org, view, Month{index}, **point), seals);
      }
    }
    if (Status read = view.status(); !read.ok()) return read;
    if (seals.size() == 0) return Status::Ok();
    rocksdb::WriteBatch batch;
    seals.Scan("", [&](std::string_view key, std::string_view value) {
      batch.Put(rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size()));
      return true;
    });
    rocksdb::WriteOptions wo;
    wo.sync = true;  // the seals are part of what the close's answer vouches for
    return ledger::FromRocks(db_->Write(wo, &batch), "writing invoice seals");
  }

  // Every published org's missing seals (Open: a crash may have cut the
  // write after a close; a rebuild cleared them all).
  Status SealAll() {
    std::map<std::string, std::shared_ptr<const OrgState>> held;
    {
      std::shared_lock<std::shared_mutex> lock(mu_);
      held = published_;
    }
    std::map<std::string, const OrgState*> orgs;
    for (const auto& [id, org] : held) orgs[id] = org.get();
    return SealClosedMonths(orgs);
  }

  void SetDeliveryQueue(DeliveryQueue* queue) { deliveries_ = queue; }

  uint64_t Version(const std::string& org) const {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = versions_.find(org);
    return it == versions_.end() ? 0 : it->second;
  }

  std::shared_ptr<const OrgState> Published(const std::string& org) const {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = published_.find(org);
    return it == published_.end() ? nullptr : it->second;
  }

 private:
  const ledger::Ledger* ledger_;
  rocksdb::DB* db_;
  Decider decider_;
  CombiningSink sink_;
  std::unique_ptr<RocksView> view_;
  std::set<std::string> dirty_;          // structure changed in this group
  std::set<std::string> touched_;        // any event accepted in this group
  std::set<std::string> to_seal_;        // closed a month in this group, or whose sealing failed
  bool stale_ = false;                   // decider_ holds undone decisions: reload first
  DeliveryQueue* deliveries_ = nullptr;  // the webhook outbox; nullptr: none
  std::vector<DeliveryRequest> to_deliver_;  // queued while deciding, written by Seal
  bool queued_ = false;                      // Seal enqueued deliveries in this group

  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<const OrgState>> published_;
  std::unordered_map<std::string, uint64_t> versions_;
};

Billing::~Billing() {
  // The ledger's destructor drains the writer, which still calls the gate.
  ledger_.reset();
  gate_.reset();
}

Result<std::unique_ptr<Billing>> Billing::Open(const BillingOptions& options) {
  ledger::Options lo;
  lo.dir = options.dir;
  lo.durability = options.durability;
  lo.mode = options.mode;
  lo.env = options.env;
  lo.on_unrecoverable = options.on_unrecoverable;
  lo.merge_operator = NewAggMergeOperator();
  auto opened = ledger::Ledger::Open(lo);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<Billing> b(new Billing());
  b->ledger_ = std::move(opened).value();
  b->rebuild_batch_events_ = std::max<size_t>(1, options.rebuild_batch_events);
  b->gate_ = std::make_unique<LiveGate>(b->ledger_.get());

  std::string version;
  rocksdb::Status s = b->ledger_->db()->Get(rocksdb::ReadOptions(), keys::kMetaVersion, &version);
  if (!s.ok() && !s.IsNotFound()) return ledger::FromRocks(s, "reading projection version");
  if (version != keys::kProjectionVersion) {
    if (options.mode == ledger::OpenMode::kReadOnly) {
      return Status(Code::kCorruption,
                    "the read models are missing or of another version; run "
                    "`ledgerctl replay` or start ledgerd to rebuild them");
    }
    Status rebuilt = b->Rebuild();
    if (!rebuilt.ok()) return rebuilt;
  } else {
    Status loaded = b->gate_->Load();
    if (!loaded.ok()) return loaded;
    if (options.mode == ledger::OpenMode::kReadWrite) {
      if (Status sealed = b->gate_->SealAll(); !sealed.ok()) return sealed;
    }
  }
  b->ledger_->SetGate(b->gate_.get());
  return b;
}

void Billing::SubmitAsync(ledger::AppendRequest request,
                          std::function<void(ledger::AppendResult)> done,
                          ledger::Ledger::WhenQueueFull when_full) {
  ledger_->AppendAsync(std::move(request), std::move(done), when_full);
}

ledger::AppendResult Billing::Submit(ledger::AppendRequest request) {
  return ledger_->Append(std::move(request));
}

Result<ledger::AppendResult> Billing::Retry(uint64_t rejected_id) {
  auto rec = ledger_->GetRejected(rejected_id);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) {
    return Status(Code::kNotFound,
                  "rejected message " + std::to_string(rejected_id) + " does not exist");
  }
  if ((*rec)->raw_truncated()) {
    // Only a prefix was kept: parsing it would judge another message.
    return Status(Code::kInvalidArgument,
                  "rejected message " + std::to_string(rejected_id) + " kept only " +
                      std::to_string((*rec)->raw().size()) + " of its " +
                      std::to_string((*rec)->raw_bytes()) +
                      " bytes and cannot be re-driven; send the event again");
  }
  ledger::Entry entry = ledger::PrepareEntry((*rec)->raw(), (*rec)->source());
  entry.redrive_of = rejected_id;
  ledger::AppendRequest request;
  request.entries.push_back(std::move(entry));
  return Submit(std::move(request));
}

Result<std::unique_ptr<ledger::Ledger>> OpenLedgerReadOnly(const std::string& dir) {
  ledger::Options o;
  o.dir = dir;
  o.mode = ledger::OpenMode::kReadOnly;
  o.merge_operator = NewAggMergeOperator();
  return ledger::Ledger::Open(o);
}

namespace {

// Passes on to a MemoryStore only the aggregates a ReplayScope names, and
// everything else (voided markers, which deciding reads back).
class ScopedSink : public Sink {
 public:
  ScopedSink(MemoryStore* store, const std::string& org, const ReplayScope& scope)
      : store_(store),
        kind_at_(keys::MonthPrefix(org, Month{0}).size()),
        month_prefix_(scope.month ? keys::MonthPrefix(org, *scope.month) : std::string()),
        kinds_(scope.kinds) {}

  void Merge(std::string_view key, const Agg& delta) override {
    if (Keep(key)) store_->Merge(key, delta);
  }
  void Put(std::string_view key, std::string_view value) override {
    if (Keep(key)) store_->Put(key, value);
  }

 private:
  bool Keep(std::string_view key) const {
    if (!key.starts_with(keys::kAggPrefix) || key.size() <= kind_at_) return true;
    if (!month_prefix_.empty() && !key.starts_with(month_prefix_)) return false;
    return kinds_.empty() || kinds_.find(key[kind_at_]) != std::string::npos;
  }

  MemoryStore* store_;
  size_t kind_at_;            // where the kind follows the month in this org's aggregate keys
  std::string month_prefix_;  // empty: every month
  std::string kinds_;         // empty: every kind
};

}  // namespace

Result<OrgState> ReplayOrg(const ledger::Ledger& ledger, const std::string& org_id,
                           ledger::Sequence upto, MemoryStore* store, const ReplayScope& scope) {
  Decider decider;
  Status failure;
  ScopedSink sink(store, org_id, scope);
  EventLookup lookup = [&ledger](ledger::EventKey key) { return ledger.FindEvent(key); };
  Status scan =
      ledger.ScanOrg(org_id, ledger::Sequence{0}, upto, 0, [&](const ledger::Record& record) {
        failure = decider.Redecide(record, lookup, sink, *store);
        return failure.ok();
      });
  if (!scan.ok()) return scan;
  if (!failure.ok()) return failure;
  decider.FlushFigures(sink);
  const OrgState* org = decider.Find(org_id);
  if (org == nullptr) return Status(Code::kNotFound, "organization " + org_id + " is unknown");
  return *org;
}

Result<OrgSnapshot> Billing::Snapshot(const std::string& org, std::optional<ledger::Sequence> as_of,
                                      const ReplayScope& scope) const {
  if (as_of && *as_of < ledger_->head().sequence) {
    auto store = std::make_shared<MemoryStore>();
    auto state = ReplayOrg(*ledger_, org, *as_of, store.get(), scope);
    if (!state.ok()) return state.status();
    return OrgSnapshot{std::make_shared<const OrgState>(std::move(state).value()), store};
  }
  // Take the state before the view: the view is then at least as new as the
  // state, so every month the state knows of has its postings visible.
  std::shared_ptr<const OrgState> state = gate_->Published(org);
  if (!state) return Status(Code::kNotFound, "organization " + org + " is unknown");
  return OrgSnapshot{std::move(state), std::make_shared<RocksView>(ledger_->db())};
}

Status Billing::Rebuild() {
  if (Status rebuilt = RebuildReadModels(*ledger_, rebuild_batch_events_); !rebuilt.ok())
    return rebuilt;
  if (Status loaded = gate_->Load(); !loaded.ok()) return loaded;
  return gate_->SealAll();
}

Result<std::optional<InvoiceSeal>> Billing::StoredSeal(const std::string& org,
                                                       const std::string& invoice_id) const {
  RocksView view(ledger_->db());
  auto seal = ReadSeal(view, org, invoice_id);
  if (Status read = view.status(); !read.ok()) return read;
  return seal;
}

ledger::Ledger& Billing::ledger() const { return *ledger_; }

void Billing::SetDeliveryQueue(DeliveryQueue* queue) { gate_->SetDeliveryQueue(queue); }

uint64_t Billing::OrgVersion(const std::string& org) const { return gate_->Version(org); }

}  // namespace billing::projections
