#include "projections/proof.h"

#include <map>
#include <utility>

#include "ledger/format.h"
#include "projections/billing.h"
#include "projections/keys.h"
#include "projections/queries.h"

namespace billing::projections {

namespace {

constexpr std::string_view kAbsent = "absent";

ProofCheck Check(std::string name, bool ok, std::string expected, std::string actual) {
  return ProofCheck{std::move(name), ok, std::move(expected), std::move(actual)};
}

ProofCheck SumsCheck(std::string name, Sum expected, Sum actual) {
  return Check(std::move(name), expected == actual, FormatNanos(expected), FormatNanos(actual));
}

Sum CategoriesSum(const HistoryMonth& h) { return h.usage + h.support + h.credits + h.adjustments; }

ProofCheck InvoicesSumToTotal(const OrgState& org, const View& view, const MonthDetail& detail) {
  Sum invoices = 0;
  for (const InvoiceSummary& inv : Invoices(org, view, detail.month).invoices)
    invoices += inv.total;
  auto dashboard = Dashboard(org, view, MonthRange{detail.month, 1}, std::nullopt);
  // Without a cost center the dashboard has nothing to refuse.
  Sum billed = dashboard.ok() ? (*dashboard)[0].billed : 0;
  const int digits = org.minor_digits;
  const bool ok = dashboard.ok() && detail.total == invoices && billed == invoices;
  std::string actual =
      ok ? FormatNanos(detail.total, digits)
         : "total " + FormatNanos(detail.total, digits) + ", billed " +
               (dashboard.ok() ? FormatNanos(billed, digits) : std::string(kAbsent));
  return Check("invoices_sum_to_total", ok, FormatNanos(invoices, digits), std::move(actual));
}

ProofCheck CategoriesSumToItems(const HistoryMonth& history, const MonthDetail& detail) {
  Sum items = 0;
  for (const Item& item : detail.items) items += item.amount;
  return SumsCheck("categories_sum_to_items", items, CategoriesSum(history));
}

// Depth first through every drillable node, in the API's order (items, then
// each node's children), so the first node named is the one a client drilling
// down from the top meets first.
ProofCheck ChildrenSumToParent(const OrgState& org, const View& view, const MonthDetail& detail) {
  struct Node {
    std::string id, label;
    Sum amount = 0;
  };
  std::vector<Node> stack;
  for (auto it = detail.items.rbegin(); it != detail.items.rend(); ++it) {
    if (it->drillable) stack.push_back(Node{it->id, it->label, it->amount});
  }
  Sum parents = 0, children = 0;
  while (!stack.empty()) {
    Node node = std::move(stack.back());
    stack.pop_back();
    const std::string name = "node " + node.id + " (" + node.label + "): ";
    auto d = ItemChildren(org, view, detail.month, node.id);
    if (!d.ok()) {
      return Check("children_sum_to_parent", false, name + FormatNanos(node.amount),
                   name + std::string(kAbsent));
    }
    Sum sum = 0;
    for (const Child& c : d->children) sum += c.amount;
    if (sum != node.amount) {
      return Check("children_sum_to_parent", false, name + FormatNanos(node.amount),
                   name + FormatNanos(sum));
    }
    parents += node.amount;
    children += sum;
    for (auto c = d->children.rbegin(); c != d->children.rend(); ++c) {
      if (c->drillable) stack.push_back(Node{c->id, c->label, c->amount});
    }
  }
  return SumsCheck("children_sum_to_parent", parents, children);
}

// Categories in the order the API lists them (keys.h codes), not by name.
int CategoryRank(const std::string& category) {
  if (category == keys::CategoryName(keys::kUsage)) return keys::kUsage;
  if (category == keys::CategoryName(keys::kSupport)) return keys::kSupport;
  if (category == keys::CategoryName(keys::kCredit)) return keys::kCredit;
  return keys::kAdjustment;
}

// Invoice lines group like the items (SPEC), one invoice per cost center or
// one for all: across the month's invoices, each (category, label) sums to
// exactly its item.
ProofCheck LinesRegroupItems(const OrgState& org, const View& view, const MonthDetail& detail) {
  using Group = std::pair<int, std::string>;                  // (category rank, label)
  std::map<Group, std::pair<std::string, Sum>> items, lines;  // -> (category, amount)
  Sum items_sum = 0, lines_sum = 0;
  for (const Item& item : detail.items) {
    items[{CategoryRank(item.category), item.label}] = {item.category, item.amount};
    items_sum += item.amount;
  }
  for (const InvoiceSummary& summary : Invoices(org, view, detail.month).invoices) {
    auto invoice = GetInvoice(org, view, summary.invoice_id);
    if (!invoice.ok()) {
      return Check("lines_regroup_items", false, "invoice " + summary.invoice_id,
                   invoice.status().message());
    }
    for (const InvoiceLine& line : invoice->lines) {
      auto& group = lines[{CategoryRank(line.category), line.description}];
      group.first = line.category;
      group.second += line.amount;
      lines_sum += line.amount;
    }
  }
  auto text = [](const std::map<Group, std::pair<std::string, Sum>>& side, const Group& g) {
    auto it = side.find(g);
    return it == side.end() ? std::string(kAbsent) : FormatNanos(it->second.second);
  };
  std::map<Group, std::string> groups;  // every group of either side, with its category name
  for (const auto& [g, v] : items) groups[g] = v.first;
  for (const auto& [g, v] : lines) groups[g] = v.first;
  for (const auto& [g, category] : groups) {
    std::string want = text(items, g), got = text(lines, g);
    if (want != got) {
      const std::string name = category + " " + g.second + ": ";
      return Check("lines_regroup_items", false, name + want, name + got);
    }
  }
  return SumsCheck("lines_regroup_items", items_sum, lines_sum);
}

// Each cost center's exact charges (as the dashboard by cost center counts
// them) and the organization's own: every bucket the org can have, read by
// key, so that charges under a bucket of no cost center are missed, not added.
ProofCheck CostCentersPartitionOrg(const OrgState& org, const View& view, Month month,
                                   const HistoryMonth& history) {
  Sum parts = 0;
  auto add = [&](const std::string& bucket) {
    if (auto value = view.Get(keys::BucketKey(org.org_id, month, bucket)))
      parts += ReadAgg(view, *value).amount;
  };
  for (const auto& [cost_center, info] : org.cost_centers) add(cost_center);
  add("");
  return SumsCheck("cost_centers_partition_org", CategoriesSum(history), parts);
}

// ---- replay_matches_store

// A stored aggregate's key below the month, named for people: "item usage
// EC2", "line cc-eng usage EC2", "node 2 EC2/p1/i-1"...
std::string FigureName(std::string_view rest) {
  if (rest.empty()) return "aggregate";
  const char kind = rest[0];
  rest.remove_prefix(1);
  auto category = [](std::string_view r) {
    return r.empty() ? std::string("?") : std::string(keys::CategoryName(r[0]));
  };
  auto label = [](std::string_view r) { return std::string(r.empty() ? r : r.substr(1)); };
  switch (kind) {
    case 'C':
      return "category " + category(rest);
    case 'I':
      return "item " + category(rest) + " " + label(rest);
    case 'B':
      return "bucket " + (rest.empty() ? std::string("(organization)") : std::string(rest));
    case 'L': {
      size_t sep = rest.find('\0');
      std::string bucket(rest.substr(0, sep));
      std::string_view line = sep == std::string_view::npos ? "" : rest.substr(sep + 1);
      return "line " + (bucket.empty() ? std::string("(organization)") : bucket) + " " +
             category(line) + " " + label(line);
    }
    case 'D': {
      std::string path(rest.empty() ? rest : rest.substr(1));
      for (char& c : path) {
        if (c == '\0') c = '/';
      }
      return "node " + std::string(rest.substr(0, 1)) + " " + path;
    }
    default:
      return "aggregate " + std::string(1, kind) + std::string(rest);
  }
}

std::string AggText(const Agg& agg) {
  std::string text = FormatNanos(agg.amount);
  switch (agg.unit_state) {
    case Agg::Unit::kNone:
      if (agg.quantity != 0) text += " (quantity " + FormatNanos(agg.quantity) + ")";
      break;
    case Agg::Unit::kOne:
      text += " (quantity " + FormatNanos(agg.quantity) + " " + agg.unit + ")";
      break;
    case Agg::Unit::kMixed:
      text += " (quantity " + FormatNanos(agg.quantity) + ", mixed units)";
      break;
  }
  return text;
}

bool SameAgg(const Agg& a, const Agg& b) {
  return a.amount == b.amount && a.quantity == b.quantity && a.unit_state == b.unit_state &&
         (a.unit_state != Agg::Unit::kOne || a.unit == b.unit);
}

// Every aggregate of the month, by its key below the month's prefix.
std::map<std::string, Agg> MonthAggregates(const OrgState& org, const View& view, Month month) {
  std::map<std::string, Agg> out;
  const std::string prefix = keys::MonthPrefix(org.org_id, month);
  view.Scan(prefix, [&](std::string_view key, std::string_view value) {
    out.emplace(std::string(key.substr(prefix.size())), ReadAgg(view, value));
    return true;
  });
  return out;
}

// What the structure decides about the month: its status, its mode and its
// invoices (ids, accounts, status and totals), named for people.
std::map<std::string, std::string> MonthDecisions(const OrgState& org, const View& view,
                                                  Month month) {
  std::map<std::string, std::string> out;
  out["status"] = org.IsClosed(month) ? "closed" : "open";
  InvoiceList list = Invoices(org, view, month);
  out["mode"] = std::string(events::InvoicingModeName(list.mode));
  for (const InvoiceSummary& inv : list.invoices) {
    out["invoice " + inv.invoice_id] = FormatNanos(inv.total, org.minor_digits) +
                                       (inv.final ? " final" : " draft") + ", account " +
                                       inv.billing_account.value_or("null");
  }
  return out;
}

// The first key of either map whose values differ (or that one lacks), as
// (expected, actual) texts from `want` and `got`; nullopt when they agree.
template <typename V, typename Same, typename Name, typename Text>
std::optional<std::pair<std::string, std::string>> FirstDifference(
    const std::map<std::string, V>& want, const std::map<std::string, V>& got, Same same, Name name,
    Text text) {
  auto w = want.begin();
  auto g = got.begin();
  while (w != want.end() || g != got.end()) {
    const bool take_want = g == got.end() || (w != want.end() && w->first <= g->first);
    const bool take_got = w == want.end() || (g != got.end() && g->first <= w->first);
    const std::string& key = take_want ? w->first : g->first;
    std::string want_text = take_want ? text(w->second) : std::string(kAbsent);
    std::string got_text = take_got ? text(g->second) : std::string(kAbsent);
    if (!take_want || !take_got || !same(w->second, g->second)) {
      return std::make_pair(name(key) + ": " + want_text, name(key) + ": " + got_text);
    }
    ++w;
    ++g;
  }
  return std::nullopt;
}

ProofCheck ReplayMatchesStore(const ProofInputs& in, Month month, const HistoryMonth& stored) {
  const std::string kName = "replay_matches_store";
  auto diff = FirstDifference(
      MonthAggregates(*in.replayed_org, *in.replayed, month),
      MonthAggregates(*in.org, *in.view, month), SameAgg,
      [](const std::string& key) { return FigureName(key); }, AggText);
  if (!diff) {
    diff = FirstDifference(
        MonthDecisions(*in.replayed_org, *in.replayed, month),
        MonthDecisions(*in.org, *in.view, month),
        [](const std::string& a, const std::string& b) { return a == b; },
        [](const std::string& key) { return key; }, [](const std::string& v) { return v; });
  }
  if (diff) return Check(kName, false, std::move(diff->first), std::move(diff->second));
  HistoryMonth replayed = UsageHistory(*in.replayed_org, *in.replayed, MonthRange{month, 1})[0];
  return SumsCheck(kName, CategoriesSum(replayed), CategoriesSum(stored));
}

Result<ledger::Sequence> StoredHead(const View& view) {
  std::optional<std::string> value = view.Get(std::string(ledger::format::kMetaHead));
  if (!value || value->size() < 8)
    return Status(Code::kCorruption, "the ledger head is missing beside the read models");
  return ledger::Sequence{ledger::format::GetBe64(*value)};
}

}  // namespace

MonthProof ProveMonth(const ProofInputs& in, Month month) {
  const OrgState& org = *in.org;
  const View& view = *in.view;
  MonthDetail detail = MonthItems(org, view, month);
  HistoryMonth history = UsageHistory(org, view, MonthRange{month, 1})[0];
  MonthProof proof;
  proof.month = month;
  proof.checks.push_back(InvoicesSumToTotal(org, view, detail));
  proof.checks.push_back(CategoriesSumToItems(history, detail));
  proof.checks.push_back(ChildrenSumToParent(org, view, detail));
  proof.checks.push_back(LinesRegroupItems(org, view, detail));
  proof.checks.push_back(CostCentersPartitionOrg(org, view, month, history));
  proof.checks.push_back(ReplayMatchesStore(in, month, history));
  proof.ok = true;
  for (const ProofCheck& c : proof.checks) proof.ok = proof.ok && c.ok;
  return proof;
}

Result<MonthProof> ProveMonthOf(const ledger::Ledger& ledger, const std::string& org_id,
                                Month month, std::optional<ledger::Sequence> as_of) {
  // Only this month's aggregates (and the voided markers deciding reads back).
  const ReplayScope scope{.kinds = "", .month = month};
  if (as_of && *as_of < ledger.head().sequence) {
    MemoryStore store;
    auto org = ReplayOrg(ledger, org_id, *as_of, &store, scope);
    if (!org.ok()) return org.status();
    MonthProof proof = ProveMonth({&*org, &store, &*org, &store}, month);
    if (Status read = store.status(); !read.ok()) return read;
    return proof;
  }
  RocksView view(ledger.db());
  auto stored = StoredOrg(view, org_id);
  if (!stored.ok()) return stored.status();
  if (Status read = view.status(); !read.ok()) return read;
  if (!*stored) return Status(Code::kNotFound, "organization " + org_id + " is unknown");
  auto head = StoredHead(view);
  if (!head.ok()) return head.status();
  MemoryStore replay;
  auto replayed = ReplayOrg(ledger, org_id, *head, &replay, scope);
  if (replayed.status().code() == Code::kNotFound) {
    // The read models know the org but the ledger does not: not a 404.
    return Status(Code::kCorruption, "the read models hold organization " + org_id +
                                         ", which the ledger does not create");
  }
  if (!replayed.ok()) return replayed.status();
  MonthProof proof = ProveMonth({&**stored, &view, &*replayed, &replay}, month);
  if (Status read = view.status(); !read.ok()) return read;
  if (Status read = replay.status(); !read.ok()) return read;
  return proof;
}

}  // namespace billing::projections
