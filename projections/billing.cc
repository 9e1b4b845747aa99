#include "projections/billing.h"

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "ledger/format.h"
#include "ledger/rocks_status.h"
#include "projections/agg.h"
#include "projections/decider.h"
#include "projections/keys.h"

namespace billing::projections {

// The Gate the ledger's writer calls: decides each event, buffers its
// postings and the changed org states, and publishes immutable copies of the
// states for queries once the group is durable.
class Billing::LiveGate : public ledger::Gate {
 public:
  explicit LiveGate(rocksdb::DB* db) : db_(db) {}

  Status Admit(const events::Event& event, ledger::Sequence seq, ledger::Txn& txn) override {
    if (stale_) {
      // The reload after a failed group failed too: nothing can be decided
      // on the states in memory until it succeeds.
      if (Status loaded = Load(); !loaded.ok()) return loaded;
      stale_ = false;
    }
    if (!view_) view_ = std::make_unique<RocksView>(db_);
    EventLookup lookup = [&txn](ledger::EventKey key) { return txn.FindEvent(key); };
    Status decided = decider_.Decide(event, seq.value, lookup, sink_, *view_);
    // A failed read may have turned a refusal into an acceptance (a voided
    // marker not seen): fail the group; Aborted() forgets what was decided.
    if (Status read = view_->status(); !read.ok()) return read;
    if (decided.ok()) touched_.insert(event.envelope.org_id());
    return decided;
  }

  void Seal(ledger::Txn& txn) override {
    for (const std::string& org : decider_.TakeDirty()) {
      sink_.Put(keys::StateKey(org), decider_.Find(org)->ToProto().SerializeAsString());
      dirty_.insert(org);
    }
    sink_.FlushTo(txn.batch());
  }

  void Committed() override {
    decider_.ClearPending();
    view_.reset();
    std::unique_lock<std::shared_mutex> lock(mu_);
    for (const std::string& org : dirty_) {
      published_[org] = std::make_shared<const OrgState>(*decider_.Find(org));
    }
    for (const std::string& org : touched_) versions_[org]++;
    dirty_.clear();
    touched_.clear();
  }

  void Aborted() override {
    // Everything decided in the failed group is forgotten by reloading the
    // durable states; published copies were never touched.
    sink_.Clear();
    view_.reset();
    dirty_.clear();
    touched_.clear();
    decider_.TakeDirty();
    // A storage failure can fail the reload as well; the next group retries
    // it before deciding anything.
    stale_ = !Load().ok();
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
  rocksdb::DB* db_;
  Decider decider_;
  CombiningSink sink_;
  std::unique_ptr<RocksView> view_;
  std::set<std::string> dirty_;    // structure changed in this group
  std::set<std::string> touched_;  // any event accepted in this group
  bool stale_ = false;             // decider_ holds undone decisions: reload first

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
  b->gate_ = std::make_unique<LiveGate>(b->ledger_->db());

  std::string version;
  rocksdb::Status s = b->ledger_->db()->Get(rocksdb::ReadOptions(), keys::kMetaVersion, &version);
  if (!s.ok() && !s.IsNotFound()) return ledger::FromRocks(s, "reading projection version");
  if (version != keys::kProjectionVersion) {
    if (options.mode == ledger::OpenMode::kReadOnly) {
      return Status(Code::kCorruption, "the read models are missing or of another version; run "
                                       "`ledgerctl replay` or start ledgerd to rebuild them");
    }
    Status rebuilt = b->Rebuild();
    if (!rebuilt.ok()) return rebuilt;
  } else {
    Status loaded = b->gate_->Load();
    if (!loaded.ok()) return loaded;
  }
  b->ledger_->SetGate(b->gate_.get());
  return b;
}

ledger::Entry Billing::Prepare(std::string raw, const ledger::Source& source) {
  ledger::Entry entry;
  entry.source = source;
  events::Names names;
  // The SPEC allows binary protobuf only as a Kafka value; over HTTP it would
  // be a way around the JSON rules.
  auto envelope = source.kind() == ledger::Source::KAFKA ? events::ParseAny(raw, &names)
                                                         : events::ParseJson(raw, &names);
  entry.event_id = names.event_id;
  entry.org_id = names.org_id;
  if (!envelope.ok()) {
    entry.rejection = envelope.status();
  } else {
    auto event = events::Validate(std::move(envelope).value());
    if (event.ok()) {
      entry.event = std::move(event).value();
    } else {
      entry.rejection = event.status();
    }
  }
  if (entry.rejection.message().size() > events::kRejectionMessageBytesMax) {
    entry.rejection = Status(entry.rejection.code(),
                             events::QuoteInput(entry.rejection.message(), events::kRejectionMessageBytesMax));
  }
  entry.raw = std::move(raw);
  return entry;
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
    return Status(Code::kNotFound, "rejected message " + std::to_string(rejected_id) + " does not exist");
  }
  if ((*rec)->raw_truncated()) {
    // Only a prefix was kept: parsing it would judge another message.
    return Status(Code::kInvalidArgument, "rejected message " + std::to_string(rejected_id) + " kept only " +
                                              std::to_string((*rec)->raw().size()) + " of its " +
                                              std::to_string((*rec)->raw_bytes()) +
                                              " bytes and cannot be re-driven; send the event again");
  }
  ledger::Entry entry = Prepare((*rec)->raw(), (*rec)->source());
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
        kind_at_(keys::MonthPrefix(org, 0).size()),
        month_prefix_(scope.month ? keys::MonthPrefix(org, scope.month->index) : std::string()),
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

Result<OrgState> ReplayOrg(const ledger::Ledger& ledger, const std::string& org_id, uint64_t upto,
                           MemoryStore* store, const ReplayScope& scope) {
  Decider decider;
  Status failure;
  ScopedSink sink(store, org_id, scope);
  EventLookup lookup = [&ledger](ledger::EventKey key) { return ledger.FindEvent(key); };
  Status scan = ledger.ScanOrg(org_id, ledger::Sequence{0}, ledger::Sequence{upto}, 0,
                               [&](const ledger::Record& record) {
    failure = decider.Redecide(record, lookup, sink, *store);
    return failure.ok();
  });
  if (!scan.ok()) return scan;
  if (!failure.ok()) return failure;
  const OrgState* org = decider.Find(org_id);
  if (org == nullptr) return Status(Code::kNotFound, "organization " + org_id + " is unknown");
  return *org;
}

Result<OrgSnapshot> Billing::Snapshot(const std::string& org, std::optional<uint64_t> as_of,
                                      const ReplayScope& scope) const {
  if (as_of && *as_of < ledger_->head().sequence.value) {
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

namespace {

// RocksDB set for a bulk load while the rebuild writes, as its own advice
// goes. Compactions paused: compacting meanwhile would merge each new table
// file into the same key range over and over (every batch spans every org's
// current month); resuming compacts once, in the background. Larger
// memtables (kRebuildWriteBufferBytes): half as many flushes and L0 files,
// and more operands of a key merged in memory.
class BulkLoad {
 public:
  explicit BulkLoad(rocksdb::DB* db) : db_(db), before_(db->GetOptions()) {
    set_ = db_->SetOptions({{"disable_auto_compactions", "true"},
                            {"write_buffer_size", std::to_string(kRebuildWriteBufferBytes)}})
               .ok();
  }
  ~BulkLoad() { (void)End(); }
  // Restores the options the database had; compactions start again.
  Status End() {
    if (!set_) return Status::Ok();
    rocksdb::Status s = db_->SetOptions(
        {{"disable_auto_compactions", before_.disable_auto_compactions ? "true" : "false"},
         {"write_buffer_size", std::to_string(before_.write_buffer_size)}});
    if (!s.ok()) return ledger::FromRocks(s, "restoring options after the rebuild");
    set_ = false;
    return Status::Ok();
  }

 private:
  rocksdb::DB* db_;
  const rocksdb::Options before_;
  bool set_ = false;
};

// Every flush of a rebuild is an L0 file. Past RocksDB's slowdown trigger the
// first appends after it would be throttled, or stopped, until compaction
// caught up; so a rebuild that left half as many waits for the compaction
// that resuming started to bring them down (a 10 M-event history leaves 8,
// under that; the compaction takes them all at once).
Status WaitForL0Compaction(rocksdb::DB* db) {
  const rocksdb::Options now = db->GetOptions();
  const uint64_t l0_limit = static_cast<uint64_t>(now.level0_slowdown_writes_trigger) / 2;
  uint64_t errors_before = 0;
  db->GetIntProperty("rocksdb.background-errors", &errors_before);
  while (!now.disable_auto_compactions) {
    std::string property;  // a string property, not an int one
    uint64_t l0_files = 0, background_errors = 0;
    if (!db->GetProperty("rocksdb.num-files-at-level0", &property)) break;
    std::from_chars(property.data(), property.data() + property.size(), l0_files);
    if (l0_files < l0_limit) break;
    if (db->GetIntProperty("rocksdb.background-errors", &background_errors) && background_errors > errors_before) {
      return Status(Code::kUnavailable, "compacting read models failed; see the RocksDB LOG");
    }
    std::this_thread::sleep_for(kRebuildCompactionPoll);
  }
  return Status::Ok();
}

}  // namespace

Status Billing::Rebuild() {
  rocksdb::DB* db = ledger_->db();
  rocksdb::WriteOptions wo;
  // The version marker goes first, so a rebuild cut short is redone at the next start.
  rocksdb::WriteBatch reset;
  reset.Delete(keys::kMetaVersion);
  std::string begin(1, ledger::format::kProjectionPrefix);
  std::string end(1, ledger::format::kProjectionPrefix + 1);
  reset.DeleteRange(begin, end);
  // Synced: dropping files below is in the MANIFEST at once, so the marker's
  // deletion must be durable first, or a power cut could leave a marker
  // vouching for read models with whole files missing.
  wo.sync = true;
  rocksdb::Status s = db->Write(wo, &reset);
  if (!s.ok()) return ledger::FromRocks(s, "clearing read models");
  // The range tombstone hides the old read models; dropping the table files
  // that hold nothing else spares the compactions of this rebuild reading
  // and discarding them. It ignores snapshots: hence Rebuild's precondition
  // that nothing reads the read models meanwhile (billing.h).
  rocksdb::Slice begin_slice(begin), end_slice(end);
  s = rocksdb::DeleteFilesInRange(db, db->DefaultColumnFamily(), &begin_slice, &end_slice,
                                  /*include_end=*/false);
  if (!s.ok()) return ledger::FromRocks(s, "dropping old read models");

  BulkLoad bulk_load(db);
  // Deciding (this thread) overlaps with adding up, ordering, encoding and
  // writing the postings (a second thread): this thread logs each batch's
  // postings and hands the log over, and gets back an emptied one. The
  // writes skip the WAL: until the version marker is written after a flush,
  // a crash only means the rebuild runs again.
  rocksdb::WriteOptions rebuild_wo;
  rebuild_wo.disableWAL = true;
  rebuild_wo.memtable_insert_hint_per_batch = true;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<PostingLog>> queue;  // at most kRebuildQueueBatches
  std::vector<std::unique_ptr<PostingLog>> idle;  // replayed, ready to fill again
  bool producer_done = false;
  rocksdb::Status write_status;
  std::thread writer([&] {
    CombiningSink sums;
    rocksdb::WriteBatch batch;  // cleared, not freed, between writes
    for (bool last = false, failed = false; !last;) {
      std::unique_ptr<PostingLog> log;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return producer_done || !queue.empty(); });
        if (!queue.empty()) {
          log = std::move(queue.front());
          queue.pop_front();
        }
        last = producer_done && queue.empty();
        failed = !write_status.ok();
      }
      if (!log) continue;
      cv.notify_all();  // room in the queue
      if (!failed) log->ReplayInto(sums);
      {
        std::lock_guard<std::mutex> lock(mu);
        idle.push_back(std::move(log));
      }
      cv.notify_all();  // a log to fill
      if (failed) continue;  // the deciding thread stops at its next hand-over
      batch.Clear();
      sums.FlushTo(&batch);
      rocksdb::Status ws = db->Write(rebuild_wo, &batch);
      if (!ws.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (write_status.ok()) write_status = ws;
      }
    }
  });

  Decider decider;
  auto sink = std::make_unique<PostingLog>();
  RocksView empty_view(db);  // voided markers of this rebuild are all still pending
  EventLookup lookup = [this](ledger::EventKey key) { return ledger_->FindEvent(key); };
  Status failure;
  size_t in_batch = 0;
  auto flush = [&]() -> Status {
    for (const std::string& org : decider.TakeDirty()) {
      sink->Put(keys::StateKey(org), decider.Find(org)->ToProto().SerializeAsString());
    }
    in_batch = 0;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return queue.size() < kRebuildQueueBatches; });
    if (!write_status.ok()) return ledger::FromRocks(write_status, "writing read models");
    queue.push_back(std::move(sink));
    cv.notify_all();
    if (idle.empty()) {
      sink = std::make_unique<PostingLog>();
    } else {
      sink = std::move(idle.back());
      idle.pop_back();
    }
    return Status::Ok();
  };
  Status scan = ledger_->Scan(ledger::Sequence{0}, 0, [&](const ledger::Record& record) {
    failure = decider.Redecide(record, lookup, *sink, empty_view);
    if (!failure.ok()) return false;
    if (++in_batch >= rebuild_batch_events_) {
      failure = flush();
      if (!failure.ok()) return false;
    }
    return true;
  });
  Status flushed = scan.ok() && failure.ok() ? flush() : Status::Ok();
  {
    std::lock_guard<std::mutex> lock(mu);
    producer_done = true;
  }
  cv.notify_all();
  writer.join();
  if (!scan.ok()) return scan;
  if (!failure.ok()) return failure;
  if (!flushed.ok()) return flushed;
  if (Status read = empty_view.status(); !read.ok()) return read;
  if (!write_status.ok()) return ledger::FromRocks(write_status, "writing read models");
  // The read models were written without the WAL: make them durable in
  // table files before declaring them built.
  s = db->Flush(rocksdb::FlushOptions());
  if (!s.ok()) return ledger::FromRocks(s, "flushing read models");
  if (Status ended = bulk_load.End(); !ended.ok()) return ended;
  if (Status compacted = WaitForL0Compaction(db); !compacted.ok()) return compacted;
  s = db->Put(wo, keys::kMetaVersion, keys::kProjectionVersion);
  if (!s.ok()) return ledger::FromRocks(s, "marking read models built");
  return gate_->Load();
}

ledger::Ledger& Billing::ledger() const { return *ledger_; }

uint64_t Billing::OrgVersion(const std::string& org) const { return gate_->Version(org); }

}  // namespace billing::projections
