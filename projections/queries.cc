#include "projections/queries.h"

#include <openssl/evp.h>

#include <map>

#include "projections/budgets.h"
#include "projections/keys.h"

namespace billing::projections {

// A value that is not an Agg cannot come from our own writes, but if the
// read models ever hold one, the answer fails as corruption (the view reports
// it) instead of taking the server down or counting it as zero.
Agg ReadAgg(const View& view, std::string_view bytes) {
  Agg agg;
  if (!DecodeAgg(bytes, &agg)) {
    view.Fail(Status(Code::kCorruption, "the read models hold a value that is not an aggregate"));
    return Agg();
  }
  return agg;
}

Result<std::optional<OrgState>> StoredOrg(const View& view, const std::string& org) {
  std::optional<std::string> value = view.Get(keys::StateKey(org));
  if (!value) return std::optional<OrgState>();
  v1::OrgState proto;
  if (!proto.ParseFromString(*value))
    return Status(Code::kCorruption, "the state of " + org + " is undecodable");
  return std::optional<OrgState>(OrgState::FromProto(proto));
}

namespace {

// Item ids are the item's key path in base64url: opaque to clients, stable
// across replays, and resolvable without an index.
std::string EncodeId(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::optional<std::string> DecodeId(std::string_view id) {
  std::string b64(id);
  for (char& c : b64) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return std::nullopt;
    }
  }
  size_t pad = (4 - b64.size() % 4) % 4;
  if (pad == 3) return std::nullopt;
  b64.append(pad, '=');
  std::string out(b64.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// Exact totals of every invoice bucket of the month that any posting touched.
std::map<std::string, Sum> BucketTotals(const OrgState& org, const View& view, Month month) {
  std::map<std::string, Sum> out;
  std::string prefix = keys::MonthPrefix(org.org_id, month) + 'B';
  view.Scan(prefix, [&](std::string_view key, std::string_view value) {
    out[std::string(key.substr(prefix.size()))] = ReadAgg(view, value).amount;
    return true;
  });
  return out;
}

std::string InvoiceId(Month month, const std::string& bucket) {
  return FormatMonth(month) + "-" + (bucket.empty() ? std::string("org") : bucket);
}

// The month's invoices: one per bucket in PER_COST_CENTER mode, else one for
// the whole organization; each total rounded on its own.
std::vector<InvoiceSummary> InvoicesOf(const OrgState& org, const View& view, Month month,
                                       std::map<std::string, Sum>* buckets_out = nullptr) {
  std::map<std::string, Sum> buckets = BucketTotals(org, view, month);
  std::vector<InvoiceSummary> out;
  bool final = org.IsClosed(month);
  if (org.ModeOf(month) == InvoicingMode::kSingle) {
    if (!buckets.empty()) {
      Sum total = 0;
      for (const auto& [bucket, sum] : buckets) total += sum;
      out.push_back(InvoiceSummary{InvoiceId(month, ""), std::nullopt, org.billing_account, final,
                                   RoundHalfAwayFromZero(total, org.minor_digits)});
    }
  } else {
    for (const auto& [bucket, sum] : buckets) {
      if (bucket.empty()) continue;
      out.push_back(InvoiceSummary{InvoiceId(month, bucket), bucket, org.AccountOf(bucket, month),
                                   final, RoundHalfAwayFromZero(sum, org.minor_digits)});
    }
    if (auto it = buckets.find(""); it != buckets.end()) {
      out.push_back(InvoiceSummary{InvoiceId(month, ""), std::nullopt, org.billing_account, final,
                                   RoundHalfAwayFromZero(it->second, org.minor_digits)});
    }
  }
  if (buckets_out) *buckets_out = std::move(buckets);
  return out;
}

Sum MonthTotal(const OrgState& org, const View& view, Month month) {
  Sum total = 0;
  for (const InvoiceSummary& inv : InvoicesOf(org, view, month)) total += inv.total;
  return total;
}

std::string LabelOf(const OrgState& org, char level, std::string_view path) {
  size_t last = path.rfind('\0');
  std::string_view tail = path.substr(last + 1);
  if (level == '1') {
    auto it = org.providers.find(std::string(tail));
    return it != org.providers.end() ? it->second.name : std::string(tail);
  }
  return std::string(tail);
}

// Children of a drill-down node: the nodes one level down under `path`.
std::vector<Child> DrillChildren(const OrgState& org, const View& view, Month month, char level,
                                 const std::string& path) {
  std::vector<Child> out;
  std::string prefix = keys::DrillKey(org.org_id, month, level, path + '\0');
  std::string node_prefix = keys::DrillKey(org.org_id, month, level, "");
  view.Scan(prefix, [&](std::string_view key, std::string_view value) {
    std::string_view child_path = key.substr(node_prefix.size());
    Agg agg = ReadAgg(view, value);
    Child c;
    c.id = EncodeId(std::string("D") + level + std::string(child_path));
    c.label = LabelOf(org, level, child_path);
    c.amount = agg.amount;
    if (agg.has_quantity()) {
      c.quantity = agg.quantity;
      c.unit = agg.unit;
    }
    c.drillable = level != '3';
    out.push_back(std::move(c));
    return true;
  });
  return out;
}

}  // namespace

std::optional<std::string> DecodeItemId(std::string_view id) { return DecodeId(id); }

Result<std::vector<DashboardMonth>> Dashboard(const OrgState& org, const View& view,
                                              MonthRange range,
                                              const std::optional<std::string>& cost_center) {
  if (cost_center && !org.cost_centers.count(*cost_center)) {
    return Status(Code::kNotFound, "cost center " + *cost_center + " is unknown");
  }
  std::vector<DashboardMonth> out;
  for (int i = range.count - 1; i >= 0; --i) {
    Month m{range.end.index - i};
    Sum billed = 0;
    if (cost_center) {
      auto value = view.Get(keys::BucketKey(org.org_id, m, *cost_center));
      if (value) billed = RoundHalfAwayFromZero(ReadAgg(view, *value).amount, org.minor_digits);
    } else {
      billed = MonthTotal(org, view, m);
    }
    DashboardMonth row{m, billed, MonthBudget(org, m, cost_center), std::nullopt};
    if (!org.IsClosed(m)) {
      const MonthFigures figures = ReadFigures(view, org.org_id, m);
      row.forecast = Forecast(ScopeOf(figures, cost_center), figures.observed, m, org.minor_digits);
    }
    out.push_back(std::move(row));
  }
  return out;
}

std::vector<HistoryMonth> UsageHistory(const OrgState& org, const View& view, MonthRange range) {
  std::vector<HistoryMonth> out;
  for (int i = 0; i < range.count; ++i) {
    Month m{range.end.index - i};
    HistoryMonth h;
    h.month = m;
    h.closed = org.IsClosed(m);
    h.total = MonthTotal(org, view, m);
    std::string prefix = keys::MonthPrefix(org.org_id, m) + 'C';
    view.Scan(prefix, [&](std::string_view key, std::string_view value) {
      Sum amount = ReadAgg(view, value).amount;
      switch (key[prefix.size()]) {
        case keys::kUsage:
          h.usage += amount;
          break;
        case keys::kSupport:
          h.support += amount;
          break;
        case keys::kCredit:
          h.credits += amount;
          break;
        default:
          h.adjustments += amount;
          break;
      }
      return true;
    });
    out.push_back(h);
  }
  return out;
}

MonthDetail MonthItems(const OrgState& org, const View& view, Month month) {
  MonthDetail d;
  d.month = month;
  d.closed = org.IsClosed(month);
  d.total = MonthTotal(org, view, month);
  std::string prefix = keys::MonthPrefix(org.org_id, month) + 'I';
  view.Scan(prefix, [&](std::string_view key, std::string_view value) {
    std::string_view rest = key.substr(prefix.size());
    Item item;
    item.id = EncodeId(std::string("I") + std::string(rest));
    item.category = std::string(keys::CategoryName(rest[0]));
    item.label = std::string(rest.substr(1));
    item.amount = ReadAgg(view, value).amount;
    item.drillable = rest[0] == keys::kUsage;
    d.items.push_back(std::move(item));
    return true;
  });
  return d;
}

Result<ItemDetail> ItemChildren(const OrgState& org, const View& view, Month month,
                                const std::string& item_id) {
  Status not_found(Code::kNotFound, "item " + item_id + " does not exist in " + FormatMonth(month));
  auto raw = DecodeId(item_id);
  if (!raw || raw->size() < 2) return not_found;
  ItemDetail d;
  d.id = item_id;
  if ((*raw)[0] == 'I') {
    char category = (*raw)[1];
    std::string label = raw->substr(2);
    auto value = view.Get(keys::ItemKey(org.org_id, month, category, label));
    if (!value) return not_found;
    d.label = label;
    d.amount = ReadAgg(view, *value).amount;
    if (category == keys::kUsage) d.children = DrillChildren(org, view, month, '1', label);
    return d;
  }
  char level = (*raw)[1];
  if ((*raw)[0] != 'D' || level < '1' || level > '3') return not_found;
  std::string path = raw->substr(2);
  auto value = view.Get(keys::DrillKey(org.org_id, month, level, path));
  if (!value) return not_found;
  d.label = LabelOf(org, level, path);
  d.amount = ReadAgg(view, *value).amount;
  if (level != '3')
    d.children = DrillChildren(org, view, month, static_cast<char>(level + 1), path);
  return d;
}

InvoiceList Invoices(const OrgState& org, const View& view, Month month) {
  return InvoiceList{month, org.ModeOf(month), InvoicesOf(org, view, month)};
}

std::vector<std::string> InvoiceIdsOf(const OrgState& org, Month month,
                                      const std::set<std::string>& buckets) {
  // InvoicesOf's rule: SINGLE gives one organization invoice; PER_COST_CENTER
  // one per cost center, then the organization's for charges without one.
  std::vector<std::string> ids;
  if (buckets.empty()) return ids;
  if (org.ModeOf(month) == InvoicingMode::kSingle) return {InvoiceId(month, "")};
  for (const std::string& bucket : buckets) {
    if (!bucket.empty()) ids.push_back(InvoiceId(month, bucket));
  }
  if (buckets.count("") != 0) ids.push_back(InvoiceId(month, ""));
  return ids;
}

Result<Invoice> GetInvoice(const OrgState& org, const View& view, const std::string& invoice_id) {
  Status not_found(Code::kNotFound, "invoice " + invoice_id + " does not exist");
  if (invoice_id.size() < 9 || invoice_id[7] != '-') return not_found;
  auto month = ParseMonth(std::string_view(invoice_id).substr(0, 7), "invoice month");
  if (!month.ok()) return not_found;
  std::map<std::string, Sum> buckets;
  std::vector<InvoiceSummary> all = InvoicesOf(org, view, *month, &buckets);
  for (InvoiceSummary& summary : all) {
    if (summary.invoice_id != invoice_id) continue;
    Invoice inv;
    inv.summary = std::move(summary);
    // The organization invoice of a SINGLE month carries every bucket's lines.
    std::vector<std::string> sources;
    if (inv.summary.cost_center_id) {
      sources.push_back(*inv.summary.cost_center_id);
    } else if (org.ModeOf(*month) == InvoicingMode::kSingle) {
      for (const auto& [bucket, sum] : buckets) sources.push_back(bucket);
    } else {
      sources.push_back("");
    }
    std::map<std::pair<char, std::string>, Sum> lines;
    for (const std::string& bucket : sources) {
      std::string prefix = keys::LinePrefix(org.org_id, *month, bucket);
      view.Scan(prefix, [&](std::string_view key, std::string_view value) {
        std::string_view rest = key.substr(prefix.size());
        lines[{rest[0], std::string(rest.substr(1))}] += ReadAgg(view, value).amount;
        return true;
      });
    }
    for (const auto& [k, amount] : lines) {
      inv.lines.push_back(InvoiceLine{std::string(keys::CategoryName(k.first)), k.second, amount});
    }
    return inv;
  }
  return not_found;
}

std::vector<StructureCostCenter> Structure(const OrgState& org) {
  // Where each provider stands now: placements are in ledger order, so `>=`
  // lets the later of two equal instants win.
  std::map<std::string, std::vector<StructureProvider>> by_workspace;
  for (const auto& [id, info] : org.providers) {  // id order, so each list comes out sorted
    const Placement* latest = nullptr;
    for (const Placement& p : info.placements) {
      if (latest == nullptr || p.effective >= latest->effective) latest = &p;
    }
    if (latest != nullptr) by_workspace[latest->workspace_id].push_back({id, info.name, info.kind});
  }
  // Workspaces visited in id order, so each cost center's list comes out sorted.
  std::map<std::string, std::vector<StructureWorkspace>> by_cost_center;
  for (const auto& [workspace, owner] : org.workspaces) {
    auto name = org.workspace_names.find(workspace);
    StructureWorkspace w{
        workspace, name == org.workspace_names.end() ? std::string() : name->second, {}};
    if (auto it = by_workspace.find(workspace); it != by_workspace.end())
      w.providers = std::move(it->second);
    by_cost_center[owner].push_back(std::move(w));
  }
  std::vector<StructureCostCenter> out;
  for (const auto& [id, cc] : org.cost_centers) {
    out.push_back(
        StructureCostCenter{id, cc.name, cc.billing_account, std::move(by_cost_center[id])});
  }
  return out;
}

}  // namespace billing::projections
