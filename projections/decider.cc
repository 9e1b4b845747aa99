#include "projections/decider.h"

#include "projections/explain.h"
#include "projections/keys.h"

namespace billing::projections {

namespace {

Status Reject(Code code, std::string message) { return Status(code, std::move(message)); }

// The structural decisions: each checks its event against the org's
// structure and, when accepted, changes it; a rejection changes nothing.

OrgState NewOrg(const events::Event& event) {
  const auto& p = event.envelope.organization_created();
  OrgState org;
  org.org_id = event.envelope.org_id();
  org.name = p.name();
  org.currency = p.currency();
  org.minor_digits = MinorUnitDigits(p.currency());
  org.billing_account = p.billing_account();
  org.created_month = MonthOf(event.occurred_at);
  return org;
}

Status DecideCostCenterCreated(OrgState& org, const events::v1::CostCenterCreated& p) {
  if (org.cost_centers.count(p.cost_center_id())) {
    return Reject(Code::kAlreadyExists, "cost center " + p.cost_center_id() + " already exists");
  }
  org.cost_centers[p.cost_center_id()] = CostCenterInfo{p.name(), std::nullopt};
  return Status::Ok();
}

Status DecideWorkspaceCreated(OrgState& org, const events::v1::WorkspaceCreated& p) {
  if (org.workspaces.count(p.workspace_id())) {
    return Reject(Code::kAlreadyExists, "workspace " + p.workspace_id() + " already exists");
  }
  if (!org.cost_centers.count(p.cost_center_id())) {
    return Reject(Code::kUnknownCostCenter, "cost center " + p.cost_center_id() + " is unknown");
  }
  org.workspaces[p.workspace_id()] = p.cost_center_id();
  org.workspace_names[p.workspace_id()] = p.name();
  return Status::Ok();
}

Status DecideProviderRegistered(OrgState& org, const events::Event& event, uint64_t seq) {
  const auto& p = event.envelope.provider_registered();
  if (org.providers.count(p.provider_id())) {
    return Reject(Code::kAlreadyExists, "provider " + p.provider_id() + " already exists");
  }
  if (!org.workspaces.count(p.workspace_id())) {
    return Reject(Code::kUnknownWorkspace, "workspace " + p.workspace_id() + " is unknown");
  }
  org.providers[p.provider_id()] =
      ProviderInfo{p.name(), p.kind(), {Placement{event.occurred_at, seq, p.workspace_id()}}};
  return Status::Ok();
}

Status DecideProviderMoved(OrgState& org, const events::Event& event, uint64_t seq) {
  const auto& p = event.envelope.provider_moved();
  auto prov = org.providers.find(p.provider_id());
  if (prov == org.providers.end()) {
    return Reject(Code::kUnknownProvider, "provider " + p.provider_id() + " is unknown");
  }
  if (!org.workspaces.count(p.workspace_id())) {
    return Reject(Code::kUnknownWorkspace, "workspace " + p.workspace_id() + " is unknown");
  }
  prov->second.placements.push_back(Placement{event.occurred_at, seq, p.workspace_id()});
  return Status::Ok();
}

Status DecideBillingAccountAssigned(OrgState& org, const events::v1::BillingAccountAssigned& p) {
  auto cc = org.cost_centers.find(p.cost_center_id());
  if (cc == org.cost_centers.end()) {
    return Reject(Code::kUnknownCostCenter, "cost center " + p.cost_center_id() + " is unknown");
  }
  cc->second.billing_account = p.billing_account();
  return Status::Ok();
}

Status DecideBillingPeriodClosed(OrgState& org, const events::Event& event, uint64_t seq) {
  Month month = event.month;
  if (org.IsClosed(month)) {
    return Reject(Code::kPeriodClosed, "period " + FormatMonth(month) + " is already closed");
  }
  ClosedMonth closed;
  closed.sequence = seq;
  closed.mode = org.ModeOf(month);
  for (const auto& [id, cc] : org.cost_centers) {
    if (cc.billing_account) closed.cost_center_accounts[id] = *cc.billing_account;
  }
  org.closed[month.index] = std::move(closed);
  return Status::Ok();
}

Status DecideBudgetRemoved(OrgState& org, const events::Event& event, uint64_t seq) {
  const std::string& id = event.envelope.budget_removed().budget_id();
  if (!org.BudgetExists(id)) {
    return Reject(Code::kUnknownBudget, "budget " + id + " is unknown or already removed");
  }
  BudgetChange change;
  change.budget_id = id;
  change.effective = event.occurred_at;
  change.sequence = seq;
  change.kind = BudgetChange::Kind::kRemoved;
  org.budgets.push_back(std::move(change));
  return Status::Ok();
}

// The checks a charge passes before it is posted.

Status CheckUsage(const OrgState& org, const events::v1::UsageRecorded& u) {
  if (!org.providers.count(u.provider_id())) {
    return Reject(Code::kUnknownProvider, "provider " + u.provider_id() + " is unknown");
  }
  if (u.has_currency() && u.currency() != org.currency) {
    return Reject(Code::kCurrencyMismatch,
                  "currency " + u.currency() + " differs from the organization's " + org.currency);
  }
  return Status::Ok();
}

// Support charges and credits: a cost center they name must exist.
Status CheckSupportOrCredit(const OrgState& org, const events::Envelope& e) {
  const bool support = e.payload_case() == events::Payload::kSupportCharged;
  const bool has_cc =
      support ? e.support_charged().has_cost_center_id() : e.credit_applied().has_cost_center_id();
  const std::string& cc =
      support ? e.support_charged().cost_center_id() : e.credit_applied().cost_center_id();
  if (has_cc && !org.cost_centers.count(cc)) {
    return Reject(Code::kUnknownCostCenter, "cost center " + cc + " is unknown");
  }
  return Status::Ok();
}

}  // namespace

struct Decider::Posting {
  Month target;
  char category = keys::kUsage;
  std::string label;
  std::string bucket;  // cost center id, or "" for the organization
  // Usage: the charge whose drill-down path (service, provider, resource,
  // sku) is also posted; nullptr for none. Points into the charge event.
  const events::v1::UsageRecorded* drill = nullptr;
  Sum amount = 0;
  Sum quantity = 0;
  std::string_view unit;  // into the charge event
};

const OrgState* Decider::Find(const std::string& org) const {
  auto it = orgs_.find(org);
  return it == orgs_.end() ? nullptr : &it->second;
}

std::set<std::string> Decider::TakeDirty() {
  std::set<std::string> out;
  out.swap(dirty_);
  return out;
}

void Decider::Load(std::map<std::string, OrgState> orgs) {
  orgs_ = std::move(orgs);
  dirty_.clear();
  pending_voids_.clear();
  figures_.clear();
  figures_dirty_.clear();
  raised_.clear();
}

void Decider::ClearPending() {
  pending_voids_.clear();
  // Unflushed figures would be lost with the cache: a caller bug.
  LEDGER_CHECK(figures_dirty_.empty(), "month figures cleared before they were flushed");
  figures_.clear();
}

void Decider::FlushFigures(Sink& sink) {
  for (const auto& [org, index] : figures_dirty_) {
    sink.Put(keys::FiguresKey(org, Month{index}), EncodeFigures(figures_.at({org, index})));
  }
  figures_dirty_.clear();
}

MonthFigures& Decider::FiguresOf(const std::string& org, Month month, const View& view) {
  auto [it, added] = figures_.try_emplace({org, month.index});
  // Every change of a month's figures goes through this cache, so the first
  // touch since the cache was last emptied finds nothing pending for it.
  if (added) it->second = ReadFigures(view, org, month);
  return it->second;
}

void Decider::RaiseAlerts(const OrgState& org, Month month, uint64_t seq, Sink& sink,
                          const View& view) {
  MonthFigures& figures = FiguresOf(org.org_id, month, view);
  std::vector<Alert> raised = NewAlerts(org, month, &figures, seq);
  if (raised.empty()) return;
  figures_dirty_.insert({org.org_id, month.index});
  for (Alert& alert : raised) {
    const char kind = static_cast<char>(alert.kind);
    sink.Put(keys::AlertKey(org.org_id, seq, month, alert.budget_id, kind, alert.threshold),
             EncodeAlert(alert));
    raised_.push_back(std::move(alert));
  }
}

// Where an accepted charge (usage, support, credit) lands, by the structure
// and closed months known before sequence `seq`.
Result<Decider::Posting> Decider::PostingFor(const OrgState& org, const events::Event& event,
                                             ledger::Sequence seq) const {
  using events::Payload;
  Posting p;
  const events::Envelope& e = event.envelope;
  switch (e.payload_case()) {
    case Payload::kUsageRecorded: {
      const auto& u = e.usage_recorded();
      p.category = keys::kUsage;
      p.label = u.service();
      auto bucket = org.CostCenterOf(u.provider_id(), event.usage_start, seq);
      if (!bucket.ok()) return bucket.status();
      p.bucket = std::move(bucket).value();
      p.drill = &u;
      p.amount = event.amount;
      p.quantity = event.quantity;
      p.unit = u.unit();
      break;
    }
    case Payload::kSupportCharged:
      p.category = keys::kSupport;
      p.label = e.support_charged().description();
      p.bucket = e.support_charged().cost_center_id();
      p.amount = event.amount;
      break;
    case Payload::kCreditApplied:
      p.category = keys::kCredit;
      p.label = e.credit_applied().description();
      p.bucket = e.credit_applied().cost_center_id();
      p.amount = -static_cast<Sum>(event.amount);
      break;
    default:
      return Status(Code::kNotVoidable, "not a charge");
  }
  p.target = event.month;
  if (org.IsClosed(event.month, seq)) {
    // A closed month never changes: the charge lands in the earliest open
    // month after it as an adjustment labelled with the month it belongs to.
    p.target = org.EarliestOpenAfter(event.month, seq);
    p.category = keys::kAdjustment;
    p.label = FormatMonth(event.month);
    p.drill = nullptr;
  }
  return p;
}

void Decider::ExplainValues(const Posting& p, const events::Event& charge) {
  explain_node_.clear();
  explain_bucket_.clear();
  if (explain_ == ExplainIndex::kSkip) return;
  Contribution c;
  c.amount = p.amount;
  // Usage posted as an adjustment has no drill-down path but still its quantity.
  if (charge.envelope.payload_case() == events::Payload::kUsageRecorded) c.quantity = p.quantity;
  EncodeContribution(c, &explain_node_);
  c.category = p.category;
  c.label = p.label;
  EncodeContribution(c, &explain_bucket_);
}

void Decider::Emit(OrgState& org, const Posting& p, Sink& sink, const View& view,
                   const events::Event& cause, uint64_t seq, const events::Event& charge) {
  const std::string& id = org.org_id;
  ExplainValues(p, charge);
  // Merges into an aggregate and, when the index is kept, records this
  // event's part of it under the aggregate's key (keys.h, `px`).
  auto post = [&](std::string_view key, const Agg& delta, const std::string& explained) {
    sink.Merge(key, delta);
    if (explained.empty()) return;
    keys::ExplainPrefix(&explain_key_, key);
    sink.Index(explain_key_, seq, explained);
  };
  static const std::string kUnexplained;
  Agg amount = AmountAgg(p.amount);
  keys::MonthKeys k(&key_, id, p.target);
  post(k.Category(p.category), amount, kUnexplained);
  post(k.Item(p.category, p.label), amount, explain_node_);
  post(k.Bucket(p.bucket), amount, explain_bucket_);
  post(k.Line(p.bucket, p.category, p.label), amount, kUnexplained);
  if (p.drill != nullptr) {
    const events::v1::UsageRecorded& u = *p.drill;
    Agg usage = UsageAgg(p.amount, p.quantity, p.unit);
    post(k.Drill('1', u.service(), u.provider_id()), usage, explain_node_);
    post(k.Drill('2', u.service(), u.provider_id(), u.resource_id()), usage, explain_node_);
    post(k.Drill('3', u.service(), u.provider_id(), u.resource_id(), u.sku()), usage,
         explain_node_);
  }
  if (!org.latest_charge_month || *org.latest_charge_month < p.target) {
    org.latest_charge_month = p.target;
    dirty_.insert(id);
  }
  if (org.charged_months.insert(p.target.index).second) dirty_.insert(id);
  MonthFigures& figures = FiguresOf(id, p.target, view);
  BucketFigures& bucket = figures.buckets[p.bucket];
  bucket.total += p.amount;
  if (p.category == keys::kUsage) {
    bucket.usage += p.amount;
    // A reversal carries its original's usage_end, already counted: voided
    // usage still tells how far the feeds have reported (SPEC).
    if (!figures.observed || *figures.observed < charge.usage_end) {
      figures.observed = charge.usage_end;
    }
  }
  figures_dirty_.insert({id, p.target.index});
  RaiseAlerts(org, p.target, seq, sink, view);
  if (observer_) {
    PostingRow row;
    row.org = &org;
    row.month = p.target;
    row.category = p.category;
    row.label = p.label;
    row.cost_center = p.bucket;
    row.amount = p.amount;
    row.quantity = p.quantity;
    row.unit = p.unit;
    row.cause = &cause;
    row.sequence = seq;
    row.charge = &charge;
    observer_(row);
  }
}

Status Decider::DecideCharge(OrgState& org, const events::Event& event, ledger::Sequence sequence,
                             Sink& sink, const View& view) {
  auto posting = PostingFor(org, event, sequence);
  if (!posting.ok()) return posting.status();
  Emit(org, *posting, sink, view, event, sequence.value, event);
  return Status::Ok();
}

// A budget applies from the month of its occurred_at on, so setting one can
// raise alerts for any month from there that holds postings: each is held
// against every budget in force in it (those already raised stay quiet).
Status Decider::DecideBudgetSet(OrgState& org, const events::Event& event, uint64_t seq, Sink& sink,
                                const View& view) {
  const auto& p = event.envelope.budget_set();
  if (p.has_cost_center_id() && !org.cost_centers.count(p.cost_center_id())) {
    return Reject(Code::kUnknownCostCenter, "cost center " + p.cost_center_id() + " is unknown");
  }
  BudgetChange change;
  change.budget_id = p.budget_id();
  change.effective = event.occurred_at;
  change.sequence = seq;
  change.kind = BudgetChange::Kind::kSet;
  change.amount = event.amount;
  if (p.has_cost_center_id()) change.cost_center = p.cost_center_id();
  change.thresholds.assign(p.thresholds().begin(), p.thresholds().end());
  if (change.thresholds.empty()) {
    change.thresholds.assign(std::begin(events::kBudgetThresholdsDefault),
                             std::end(events::kBudgetThresholdsDefault));
  }
  org.budgets.push_back(std::move(change));
  const Month from = MonthOf(event.occurred_at);
  for (auto it = org.charged_months.lower_bound(from.index); it != org.charged_months.end(); ++it) {
    RaiseAlerts(org, Month{*it}, seq, sink, view);
  }
  return Status::Ok();
}

// The posting that undoes `original` (recorded at `original_seq`) when it is
// voided at `now`.
Result<Decider::Posting> Decider::ReversalFor(const OrgState& org, const events::Event& original,
                                              ledger::Sequence original_seq,
                                              ledger::Sequence now) const {
  auto posting = PostingFor(org, original, original_seq);
  if (!posting.ok()) return posting.status();
  Posting reversal = *posting;
  reversal.amount = -reversal.amount;
  reversal.quantity = -reversal.quantity;
  if (org.IsClosed(original.month, now)) {
    // The original's month closed after it was recorded: the reversal is
    // a late posting like any other.
    reversal.target = org.EarliestOpenAfter(original.month, now);
    reversal.category = keys::kAdjustment;
    reversal.label = FormatMonth(original.month);
    reversal.drill = nullptr;
  }
  return reversal;
}

Status Decider::DecideEventVoided(OrgState& org, const events::Event& event,
                                  ledger::Sequence sequence, const EventLookup& lookup, Sink& sink,
                                  const View& view) {
  using events::Payload;
  const std::string& org_id = event.envelope.org_id();
  const std::string& target_id = event.envelope.event_voided().voided_event_id();
  // The void's own org: an id of another org is unknown here (SPEC).
  auto found = lookup(ledger::EventKey{.org_id = org_id, .event_id = target_id});
  if (!found.ok()) return found.status();
  if (!found->has_value() || (*found)->envelope.org_id() != org_id) {
    return Reject(Code::kUnknownEvent, "event " + target_id + " is unknown");
  }
  const ledger::StoredEvent& original = **found;
  Payload kind = original.envelope.payload_case();
  if (kind != Payload::kUsageRecorded && kind != Payload::kSupportCharged &&
      kind != Payload::kCreditApplied) {
    return Reject(Code::kNotVoidable, "event " + target_id + " is a " +
                                          std::string(events::PayloadName(kind)) +
                                          ", which cannot be voided");
  }
  std::string marker = keys::VoidedKey(org_id, target_id);
  if (pending_voids_.count(marker) || view.Get(marker)) {
    return Reject(Code::kAlreadyVoided, "event " + target_id + " is already voided");
  }
  auto parsed = events::Validate(original.envelope);
  if (!parsed.ok()) {
    return Status(Code::kCorruption, "stored event " + target_id +
                                         " no longer validates: " + parsed.status().message());
  }
  auto reversal = ReversalFor(org, *parsed, original.sequence, sequence);
  if (!reversal.ok()) return reversal.status();
  Emit(org, *reversal, sink, view, event, sequence.value, *parsed);
  sink.Put(marker, "");
  pending_voids_.insert(marker);
  return Status::Ok();
}

Status Decider::Decide(const events::Event& event, ledger::Sequence sequence,
                       const EventLookup& lookup, Sink& sink, const View& view) {
  // The org state and the postings keep the bare number (state.proto).
  const uint64_t seq = sequence.value;
  using events::Payload;
  const events::Envelope& e = event.envelope;
  const std::string& org_id = e.org_id();
  raised_.clear();
  auto org_it = orgs_.find(org_id);
  if (e.payload_case() == Payload::kOrganizationCreated) {
    if (org_it != orgs_.end())
      return Reject(Code::kOrgExists, "organization " + org_id + " already exists");
    orgs_.emplace(org_id, NewOrg(event));
    dirty_.insert(org_id);
    return Status::Ok();
  }
  if (org_it == orgs_.end())
    return Reject(Code::kUnknownOrg, "organization " + org_id + " is unknown");
  OrgState& org = org_it->second;

  // Charges and voids mark the org dirty only through Emit (its latest
  // charge month); every accepted structural change marks it below.
  switch (e.payload_case()) {
    case Payload::kUsageRecorded:
      RETURN_IF_ERROR(CheckUsage(org, e.usage_recorded()));
      return DecideCharge(org, event, sequence, sink, view);
    case Payload::kSupportCharged:
    case Payload::kCreditApplied:
      RETURN_IF_ERROR(CheckSupportOrCredit(org, e));
      return DecideCharge(org, event, sequence, sink, view);
    case Payload::kEventVoided:
      return DecideEventVoided(org, event, sequence, lookup, sink, view);
    case Payload::kCostCenterCreated:
      RETURN_IF_ERROR(DecideCostCenterCreated(org, e.cost_center_created()));
      break;
    case Payload::kWorkspaceCreated:
      RETURN_IF_ERROR(DecideWorkspaceCreated(org, e.workspace_created()));
      break;
    case Payload::kProviderRegistered:
      RETURN_IF_ERROR(DecideProviderRegistered(org, event, seq));
      break;
    case Payload::kProviderMoved:
      RETURN_IF_ERROR(DecideProviderMoved(org, event, seq));
      break;
    case Payload::kBillingAccountAssigned:
      RETURN_IF_ERROR(DecideBillingAccountAssigned(org, e.billing_account_assigned()));
      break;
    case Payload::kInvoicingModeChanged:
      org.modes.push_back(ModeChange{event.occurred_at, seq, event.mode});
      break;
    case Payload::kBillingPeriodClosed:
      RETURN_IF_ERROR(DecideBillingPeriodClosed(org, event, seq));
      break;
    case Payload::kBudgetSet:
      RETURN_IF_ERROR(DecideBudgetSet(org, event, seq, sink, view));
      break;
    case Payload::kBudgetRemoved:
      RETURN_IF_ERROR(DecideBudgetRemoved(org, event, seq));
      break;
    default:
      return Reject(Code::kInvalidArgument, "the event has no payload");
  }
  dirty_.insert(org_id);
  return Status::Ok();
}

Status Decider::Redecide(const ledger::Record& record, const EventLookup& lookup, Sink& sink,
                         const View& view) {
  if (Status decoded = ledger::DecodeEvent(record, &replayed_.envelope); !decoded.ok())
    return decoded;
  if (Status valid = events::Validate(&replayed_); !valid.ok()) {
    return Status(Code::kCorruption, "record " + std::to_string(record.sequence()) +
                                         " does not validate: " + valid.message());
  }
  Status decided = Decide(replayed_, ledger::Sequence{record.sequence()}, lookup, sink, view);
  if (decided.ok()) return decided;
  // Only a refusal by the rules means the stored history and the rules
  // disagree. A lookup that failed (a read error, a busy disk) keeps its own
  // code: a rebuild or an as_of answer it interrupts can simply be retried,
  // and must not be reported as a corrupt ledger.
  if (IsRejection(decided.code())) {
    return Status(Code::kCorruption, "record " + std::to_string(record.sequence()) +
                                         " is no longer accepted on replay: " + decided.ToString());
  }
  return Status(decided.code(),
                "replaying record " + std::to_string(record.sequence()) + ": " + decided.message());
}

}  // namespace billing::projections
