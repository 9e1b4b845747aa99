#include "projections/org_state.h"

namespace billing::projections {

namespace {

void SetInstant(v1::Instant* out, Timestamp t) {
  out->set_seconds(t.seconds());
  out->set_nanos(t.nanos());
}

Timestamp InstantOf(const v1::Instant& in) {
  return Timestamp::FromSecondsAndNanos(in.seconds(), in.nanos());
}

}  // namespace

Result<std::string> OrgState::CostCenterOf(const std::string& provider, Timestamp at,
                                           ledger::Sequence known_before) const {
  auto found = providers.find(provider);
  if (found == providers.end())
    return Status(Code::kUnknownProvider, "provider " + provider + " is unknown");
  const ProviderInfo& p = found->second;
  if (p.placements.empty()) {
    return Status(Code::kCorruption,
                  "provider " + provider + " of organization " + org_id + " has no workspace");
  }
  // The latest placement effective at or before `at` wins, ties in ledger
  // order; usage before every placement belongs to the first workspace.
  const Placement* best = nullptr;
  for (const Placement& pl : p.placements) {
    if (pl.sequence >= known_before.value) break;
    if (pl.effective <= at && (best == nullptr || pl.effective >= best->effective)) best = &pl;
  }
  if (best == nullptr) best = &p.placements.front();
  auto workspace = workspaces.find(best->workspace_id);
  if (workspace == workspaces.end()) {
    return Status(Code::kCorruption, "provider " + provider + " of organization " + org_id +
                                         " is placed in unknown workspace " + best->workspace_id);
  }
  return workspace->second;
}

bool OrgState::IsClosed(Month month, ledger::Sequence known_before) const {
  auto it = closed.find(month.index);
  return it != closed.end() && it->second.sequence < known_before.value;
}

Month OrgState::EarliestOpenAfter(Month month, ledger::Sequence known_before) const {
  Month m = month.next();
  while (IsClosed(m, known_before)) m = m.next();
  return m;
}

InvoicingMode OrgState::ModeOf(Month month, ledger::Sequence known_before) const {
  if (IsClosed(month, known_before)) return closed.at(month.index).mode;
  Timestamp next_start = MonthStart(month.next());
  const ModeChange* best = nullptr;
  for (const ModeChange& m : modes) {
    if (m.sequence >= known_before.value) break;  // ledger order: every later one is too
    if (m.effective < next_start && (best == nullptr || m.effective >= best->effective)) best = &m;
  }
  return best ? best->mode : InvoicingMode::kSingle;
}

std::optional<std::string> OrgState::AccountOf(const std::string& cost_center, Month month) const {
  if (auto it = closed.find(month.index); it != closed.end()) {
    auto acc = it->second.cost_center_accounts.find(cost_center);
    if (acc == it->second.cost_center_accounts.end()) return std::nullopt;
    return acc->second;
  }
  auto cc = cost_centers.find(cost_center);
  if (cc == cost_centers.end()) return std::nullopt;
  return cc->second.billing_account;
}

std::map<std::string, const BudgetChange*> OrgState::BudgetsOf(Month month) const {
  const Timestamp next_start = MonthStart(month.next());
  std::map<std::string, const BudgetChange*> latest;
  for (const BudgetChange& change : budgets) {
    if (change.effective >= next_start) continue;
    const BudgetChange*& best = latest[change.budget_id];
    // Ledger order: `>=` lets the later of two equal instants win.
    if (best == nullptr || change.effective >= best->effective) best = &change;
  }
  std::erase_if(
      latest, [](const auto& entry) { return entry.second->kind == BudgetChange::Kind::kRemoved; });
  return latest;
}

bool OrgState::BudgetExists(const std::string& budget_id) const {
  for (auto it = budgets.rbegin(); it != budgets.rend(); ++it) {
    if (it->budget_id == budget_id) return it->kind == BudgetChange::Kind::kSet;
  }
  return false;
}

v1::OrgState OrgState::ToProto() const {
  v1::OrgState p;
  p.set_org_id(org_id);
  p.set_name(name);
  p.set_currency(currency);
  p.set_billing_account(billing_account);
  p.set_created_month(created_month.index);
  for (const auto& [id, cc] : cost_centers) {
    auto* c = p.add_cost_centers();
    c->set_id(id);
    c->set_name(cc.name);
    if (cc.billing_account) c->set_billing_account(*cc.billing_account);
  }
  for (const auto& [id, cc] : workspaces) {
    auto* w = p.add_workspaces();
    w->set_id(id);
    w->set_cost_center_id(cc);
    if (auto name = workspace_names.find(id); name != workspace_names.end())
      w->set_name(name->second);
  }
  for (const auto& [id, prov] : providers) {
    auto* q = p.add_providers();
    q->set_id(id);
    q->set_name(prov.name);
    q->set_kind(prov.kind);
    for (const Placement& pl : prov.placements) {
      auto* x = q->add_placements();
      SetInstant(x->mutable_effective(), pl.effective);
      x->set_sequence(pl.sequence);
      x->set_workspace_id(pl.workspace_id);
    }
  }
  for (const ModeChange& m : modes) {
    auto* x = p.add_modes();
    SetInstant(x->mutable_effective(), m.effective);
    x->set_sequence(m.sequence);
    x->set_per_cost_center(m.mode == InvoicingMode::kPerCostCenter);
  }
  for (const auto& [month, c] : closed) {
    auto* x = p.add_closed();
    x->set_month(month);
    x->set_sequence(c.sequence);
    x->set_per_cost_center(c.mode == InvoicingMode::kPerCostCenter);
    for (const auto& [cc, acc] : c.cost_center_accounts)
      (*x->mutable_cost_center_accounts())[cc] = acc;
  }
  p.set_has_charges(latest_charge_month.has_value());
  if (latest_charge_month) p.set_latest_charge_month(latest_charge_month->index);
  for (const BudgetChange& b : budgets) {
    auto* x = p.add_budgets();
    x->set_budget_id(b.budget_id);
    SetInstant(x->mutable_effective(), b.effective);
    x->set_sequence(b.sequence);
    x->set_removed(b.kind == BudgetChange::Kind::kRemoved);
    x->set_amount(b.amount);
    if (b.cost_center) x->set_cost_center_id(*b.cost_center);
    for (int32_t t : b.thresholds) x->add_thresholds(t);
  }
  for (int32_t m : charged_months) p.add_charged_months(m);
  return p;
}

OrgState OrgState::FromProto(const v1::OrgState& p) {
  OrgState s;
  s.org_id = p.org_id();
  s.name = p.name();
  s.currency = p.currency();
  s.minor_digits = MinorUnitDigits(s.currency);
  s.billing_account = p.billing_account();
  s.created_month = Month{p.created_month()};
  for (const auto& c : p.cost_centers()) {
    CostCenterInfo info{c.name(), std::nullopt};
    if (c.has_billing_account()) info.billing_account = c.billing_account();
    s.cost_centers[c.id()] = std::move(info);
  }
  for (const auto& w : p.workspaces()) {
    s.workspaces[w.id()] = w.cost_center_id();
    s.workspace_names[w.id()] = w.name();
  }
  for (const auto& q : p.providers()) {
    ProviderInfo info{q.name(), q.kind(), {}};
    for (const auto& x : q.placements()) {
      info.placements.push_back(
          Placement{InstantOf(x.effective()), x.sequence(), x.workspace_id()});
    }
    s.providers[q.id()] = std::move(info);
  }
  for (const auto& m : p.modes()) {
    s.modes.push_back(
        ModeChange{InstantOf(m.effective()), m.sequence(),
                   m.per_cost_center() ? InvoicingMode::kPerCostCenter : InvoicingMode::kSingle});
  }
  for (const auto& c : p.closed()) {
    ClosedMonth cm;
    cm.sequence = c.sequence();
    cm.mode = c.per_cost_center() ? InvoicingMode::kPerCostCenter : InvoicingMode::kSingle;
    for (const auto& [cc, acc] : c.cost_center_accounts()) cm.cost_center_accounts[cc] = acc;
    s.closed[c.month()] = std::move(cm);
  }
  if (p.has_charges()) s.latest_charge_month = Month{p.latest_charge_month()};
  for (const auto& x : p.budgets()) {
    BudgetChange b;
    b.budget_id = x.budget_id();
    b.effective = InstantOf(x.effective());
    b.sequence = x.sequence();
    b.kind = x.removed() ? BudgetChange::Kind::kRemoved : BudgetChange::Kind::kSet;
    b.amount = x.amount();
    if (x.has_cost_center_id()) b.cost_center = x.cost_center_id();
    b.thresholds.assign(x.thresholds().begin(), x.thresholds().end());
    s.budgets.push_back(std::move(b));
  }
  s.charged_months.insert(p.charged_months().begin(), p.charged_months().end());
  return s;
}

}  // namespace billing::projections
