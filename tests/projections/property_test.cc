// Randomized histories (seeded, seed printed; times given nanosecond
// fractions) checked three ways: against an independent, deliberately naive
// model of the SPEC's billing rules written here; incremental answers == a
// full rebuild == a per-org replay; and `as_of` answers == what the model said at that point of the
// stream.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>

#include "ledger/prepare.h"
#include "ops/generator.h"
#include "projections/answer_json.h"
#include "projections/billing.h"
#include "projections/proof.h"
#include "tests/testing/temp_dir.h"

namespace billing::projections {
namespace {

using Json = nlohmann::json;

// ---- The model: a second, simple-minded reading of the SPEC. ----

__int128 Dec(const std::string& s) {  // decimal string -> nanos; input already known valid
  size_t dot = s.find('.');
  std::string whole = s.substr(0, dot), frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  frac.resize(9, '0');
  return static_cast<__int128>(std::stoll(whole)) * 1000000000 + std::stoll(frac);
}

// YYYY-MM-DDTHH:MM:SS[.fffffffff]Z -> nanoseconds since the epoch (years
// 2024..2027 here, well inside int64); only ordering matters.
int64_t Nanos(const std::string& t) {
  struct tm tm = {};
  strptime(t.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  int64_t nanos = 0;
  if (t.size() > 20 && t[19] == '.') {
    std::string frac = t.substr(20, t.size() - 21);
    frac.resize(9, '0');
    nanos = std::stoll(frac);
  }
  return static_cast<int64_t>(timegm(&tm)) * 1'000'000'000 + nanos;
}

int MonthIdx(const std::string& t) {
  return std::stoi(t.substr(0, 4)) * 12 + std::stoi(t.substr(5, 2)) - 1;
}

uint64_t Hash(uint64_t seed, const std::string& a, const std::string& b) {
  return std::hash<std::string>{}(std::to_string(seed) + "/" + a + "/" + b);
}

// Gives the generator's whole-second times sub-microsecond fractions (0..999
// ns, so instants in the same second share their microsecond), and makes half
// the usages start at the very second of an earlier recorded move of their
// provider: a usage a few nanoseconds before or after a move must be
// attributed exactly. Every choice is a function of (seed, event_id, time)
// and the moves before it, so exact re-sends (emitted right after their
// original) stay duplicates and a usage's equal start and end stay equal. One
// time in four keeps its whole second, so ties at the same instant still occur.
std::vector<std::string> WithNanoseconds(const std::vector<std::string>& lines, uint64_t seed) {
  std::map<std::pair<std::string, std::string>, std::vector<std::string>>
      moves;  // (org, provider) -> times
  static const std::regex kTime(R"re("(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z")re");
  std::vector<std::string> out;
  for (std::string line : lines) {
    Json e = Json::parse(line, nullptr, false);
    if (e.is_discarded() || !e.is_object() || !e.contains("event_id") ||
        !e["event_id"].is_string()) {
      out.push_back(line);
      continue;
    }
    const std::string id = e["event_id"];
    const std::string org = e.value("org_id", "");
    if (e.contains("provider_moved") && e["provider_moved"].is_object() &&
        e["occurred_at"].is_string()) {
      moves[{org, e["provider_moved"].value("provider_id", "")}].push_back(e["occurred_at"]);
    }
    if (e.contains("usage_recorded") && e["usage_recorded"].is_object()) {
      const Json& u = e["usage_recorded"];
      auto it = moves.find({org, u.value("provider_id", "")});
      uint64_t h = Hash(seed, id, "move");
      if (it != moves.end() && h % 2 == 0 && u["usage_start"].is_string() &&
          u["usage_end"].is_string()) {
        const std::string start = u["usage_start"], end = u["usage_end"];
        const std::string& move = it->second[h / 2 % it->second.size()];
        size_t at = line.find("\"usage_start\":\"" + start + "\"");
        if (Nanos(move) <= Nanos(end) && at != std::string::npos) {
          line.replace(at + std::string("\"usage_start\":\"").size(), start.size(), move);
        }
      }
    }
    std::string sharpened;
    auto from = line.cbegin();
    for (std::sregex_iterator m(line.begin(), line.end(), kTime), end; m != end; ++m) {
      sharpened.append(from, (*m)[0].first);
      uint64_t h = Hash(seed, id, (*m)[1].str());
      if (h % 4 == 0) {
        sharpened += (*m)[0].str();
      } else {
        char frac[16];
        std::snprintf(frac, sizeof(frac), ".%09llu", static_cast<unsigned long long>(h / 4 % 1000));
        sharpened += "\"" + (*m)[1].str() + frac + "Z\"";
      }
      from = (*m)[0].second;
    }
    sharpened.append(from, line.cend());
    out.push_back(std::move(sharpened));
  }
  return out;
}

struct Model {
  struct Posting {
    int month;
    std::string bucket, category, label;
    __int128 amount;
  };
  struct Charge {
    uint64_t seq;
    int month;
    std::string bucket, category, label;
    __int128 amount;
  };
  struct OrgM {
    std::string currency;
    int digits = 2;
    std::string account;
    int created;
    std::map<std::string, std::optional<std::string>> ccs;
    std::map<std::string, std::string> ws;
    std::map<std::string, std::vector<std::tuple<int64_t, uint64_t, std::string>>> prov;
    std::vector<std::tuple<int64_t, uint64_t, bool>> modes;
    std::map<int, std::pair<bool, std::map<std::string, std::optional<std::string>>>> closed;
    std::map<std::string, Charge> charges;
    std::set<std::string> voided;
    std::vector<Posting> postings;
  };
  std::map<std::string, OrgM> orgs;
  std::map<std::string, Json> ids;  // event_id -> content
  uint64_t seq = 0;

  bool Closed(const OrgM& o, int m) const { return o.closed.count(m) > 0; }
  int Target(const OrgM& o, int m) const {
    while (Closed(o, m)) ++m;
    return m;
  }
  bool ModeOf(const OrgM& o, int m) const {  // true: per cost center
    if (auto it = o.closed.find(m); it != o.closed.end()) return it->second.first;
    int64_t next = 0;
    {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%04d-%02d-01T00:00:00Z", (m + 1) / 12, (m + 1) % 12 + 1);
      next = Nanos(buf);
    }
    bool mode = false;
    int64_t best = INT64_MIN;
    for (auto& [t, s, per] : o.modes) {
      if (t < next && t >= best) {
        best = t;
        mode = per;
      }
    }
    return mode;
  }

  // Returns "accepted", "duplicate" or the rejection code.
  std::string Apply(const std::string& line) {
    Json e = Json::parse(line, nullptr, false);
    std::string id = e.value("event_id", "");
    std::string kind;
    for (auto& [k, v] : e.items()) {
      if (v.is_object()) kind = k;
    }
    const Json& p = e[kind];
    for (auto& [k, v] : p.items()) {
      if (!v.is_string()) return "invalid_argument";
    }
    if (kind == "usage_recorded" && Nanos(p["usage_end"]) < Nanos(p["usage_start"]))
      return "invalid_argument";
    if (auto it = ids.find(id); it != ids.end()) return it->second == e ? "duplicate" : "conflict";
    std::string org_id = e["org_id"];
    if (kind == "organization_created") {
      if (orgs.count(org_id)) return "org_exists";
      OrgM o;
      o.currency = p["currency"];
      o.digits = o.currency == "JPY" ? 0 : (o.currency == "KWD" || o.currency == "BHD") ? 3 : 2;
      o.account = p["billing_account"];
      o.created = MonthIdx(e["occurred_at"]);
      orgs[org_id] = o;
      return Accept(id, e);
    }
    if (!orgs.count(org_id)) return "unknown_org";
    OrgM& o = orgs[org_id];
    int64_t at = Nanos(e["occurred_at"]);
    uint64_t s = seq + 1;
    if (kind == "cost_center_created") {
      if (o.ccs.count(p["cost_center_id"])) return "already_exists";
      o.ccs[p["cost_center_id"]] = std::nullopt;
    } else if (kind == "workspace_created") {
      if (o.ws.count(p["workspace_id"])) return "already_exists";
      if (!o.ccs.count(p["cost_center_id"])) return "unknown_cost_center";
      o.ws[p["workspace_id"]] = p["cost_center_id"];
    } else if (kind == "provider_registered") {
      if (o.prov.count(p["provider_id"])) return "already_exists";
      if (!o.ws.count(p["workspace_id"])) return "unknown_workspace";
      o.prov[p["provider_id"]].emplace_back(at, s, p["workspace_id"]);
    } else if (kind == "provider_moved") {
      if (!o.prov.count(p["provider_id"])) return "unknown_provider";
      if (!o.ws.count(p["workspace_id"])) return "unknown_workspace";
      o.prov[p["provider_id"]].emplace_back(at, s, p["workspace_id"]);
    } else if (kind == "billing_account_assigned") {
      if (!o.ccs.count(p["cost_center_id"])) return "unknown_cost_center";
      o.ccs[p["cost_center_id"]] = p["billing_account"].get<std::string>();
    } else if (kind == "invoicing_mode_changed") {
      o.modes.emplace_back(at, s, p["mode"] == "PER_COST_CENTER");
    } else if (kind == "usage_recorded" || kind == "support_charged" || kind == "credit_applied") {
      Charge c;
      c.seq = s;
      if (kind == "usage_recorded") {
        if (!o.prov.count(p["provider_id"])) return "unknown_provider";
        if (p.contains("currency") && p["currency"] != o.currency) return "currency_mismatch";
        int64_t start = Nanos(p["usage_start"]);
        const auto& pl = o.prov[p["provider_id"]];
        std::string ws = std::get<2>(pl.front());
        int64_t best = INT64_MIN;
        for (auto& [t, sq, w] : pl) {
          if (t <= start && t >= best) {
            best = t;
            ws = w;
          }
        }
        c.bucket = o.ws[ws];
        c.month = MonthIdx(p["usage_start"]);
        c.category = "usage";
        c.label = p["service"];
        c.amount = Dec(p["amount"]);
      } else {
        if (p.contains("cost_center_id") && !o.ccs.count(p["cost_center_id"]))
          return "unknown_cost_center";
        c.bucket = p.value("cost_center_id", "");
        c.month = MonthIdx(p["month"]);
        c.category = kind == "support_charged" ? "support" : "credit";
        c.label = p["description"];
        c.amount = kind == "support_charged" ? Dec(p["amount"]) : -Dec(p["amount"]);
      }
      Post(o, c.month, c.bucket, c.category, c.label, c.amount);
      o.charges[id] = c;
    } else if (kind == "event_voided") {
      std::string target = p["voided_event_id"];
      if (!ids.count(target) || ids[target]["org_id"] != org_id) return "unknown_event";
      if (!o.charges.count(target)) return "not_voidable";
      if (o.voided.count(target)) return "already_voided";
      const Charge& c = o.charges[target];
      o.voided.insert(target);
      Post(o, c.month, c.bucket, c.category, c.label, -c.amount);
    } else if (kind == "billing_period_closed") {
      int m = MonthIdx(p["month"]);
      if (Closed(o, m)) return "period_closed";
      o.closed[m] = {ModeOf(o, m), o.ccs};
    }
    return Accept(id, e);
  }
  // A posting for month m lands there if open, else as an adjustment.
  void Post(OrgM& o, int m, const std::string& bucket, const std::string& cat,
            const std::string& label, __int128 amount) {
    if (Closed(o, m)) {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "%04d-%02d", m / 12, m % 12 + 1);
      o.postings.push_back({Target(o, m), bucket, "adjustment", buf, amount});
    } else {
      o.postings.push_back({m, bucket, cat, label, amount});
    }
  }
  std::string Accept(const std::string& id, const Json& e) {
    ids[id] = e;
    ++seq;
    return "accepted";
  }

  static __int128 Round(__int128 v, int digits) {
    __int128 unit = 1;
    for (int i = 0; i < 9 - digits; ++i) unit *= 10;
    __int128 mag = v < 0 ? -v : v;
    mag = (mag + unit / 2) / unit * unit;
    return v < 0 ? -mag : mag;
  }
  // invoice id -> rounded total, for one month.
  std::map<std::string, __int128> Invoices(const std::string& org_id, int m) const {
    const OrgM& o = orgs.at(org_id);
    std::map<std::string, __int128> buckets;
    std::set<std::string> touched;
    for (const auto& p : o.postings) {
      if (p.month != m) continue;
      buckets[p.bucket] += p.amount;
      touched.insert(p.bucket);
    }
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%04d-%02d", m / 12, m % 12 + 1);
    std::map<std::string, __int128> out;
    if (touched.empty()) return out;
    if (!ModeOf(o, m)) {
      __int128 sum = 0;
      for (auto& [b, v] : buckets) sum += v;
      out[std::string(buf) + "-org"] = Round(sum, o.digits);
    } else {
      for (auto& [b, v] : buckets)
        out[std::string(buf) + "-" + (b.empty() ? "org" : b)] = Round(v, o.digits);
    }
    return out;
  }
  std::map<std::string, __int128> Items(const std::string& org_id, int m) const {
    std::map<std::string, __int128> out;
    for (const auto& p : orgs.at(org_id).postings) {
      if (p.month == m) out[p.category + "/" + p.label] += p.amount;
    }
    return out;
  }
};

// ---- The service's answers in the same shapes. ----

std::map<std::string, __int128> ServiceInvoices(const OrgSnapshot& s, int m) {
  std::map<std::string, __int128> out;
  for (const auto& inv : Invoices(*s.org, *s.view, Month{m}).invoices)
    out[inv.invoice_id] = inv.total;
  return out;
}

std::map<std::string, __int128> ServiceItems(const OrgSnapshot& s, int m) {
  std::map<std::string, __int128> out;
  for (const auto& it : MonthItems(*s.org, *s.view, Month{m}).items)
    out[it.category + "/" + it.label] = it.amount;
  return out;
}

// Everything a client can see of one org, as text, for exact comparisons.
std::string Everything(const OrgSnapshot& s, int first, int last) {
  std::string out;
  for (int m = first; m <= last; ++m) {
    auto d = MonthItems(*s.org, *s.view, Month{m});
    out += FormatMonth(Month{m}) + (d.closed ? " closed " : " open ") + SumToString(d.total) + "\n";
    for (const auto& it : d.items) {
      out += " " + it.id + " " + it.category + " " + it.label + " " + SumToString(it.amount) + "\n";
      if (!it.drillable) continue;
      std::vector<std::string> stack{it.id};
      while (!stack.empty()) {
        std::string id = stack.back();
        stack.pop_back();
        auto c = ItemChildren(*s.org, *s.view, Month{m}, id);
        for (const auto& ch : c->children) {
          out += "  " + ch.label + " " + SumToString(ch.amount) + " " +
                 (ch.quantity ? SumToString(*ch.quantity) + " " + *ch.unit : "null") + "\n";
          if (ch.drillable) stack.push_back(ch.id);
        }
      }
    }
    for (const auto& inv : Invoices(*s.org, *s.view, Month{m}).invoices) {
      out += " inv " + inv.invoice_id + " " + SumToString(inv.total) + " " +
             inv.billing_account.value_or("null") + (inv.final ? " final\n" : " draft\n");
      auto full = GetInvoice(*s.org, *s.view, inv.invoice_id);
      for (const auto& l : full->lines)
        out += "  " + l.category + " " + l.description + " " + SumToString(l.amount) + "\n";
    }
  }
  return out;
}

class PropertyTest : public ::testing::TestWithParam<int> {};

TEST_P(PropertyTest, ServiceAgreesWithTheModelAndWithItsOwnReplays) {
  uint64_t seed = 1000 + static_cast<uint64_t>(GetParam());
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  ops::GeneratorOptions g;
  g.seed = seed;
  g.orgs = 3;
  g.months = 5;
  g.usage_events = 1500;
  g.resources_per_provider = 4;
  g.faults = true;
  std::vector<std::string> lines = ops::GenerateLines(g);
  lines = WithNanoseconds(lines, seed);

  billing::testing::TempDir dir;
  BillingOptions o;
  o.dir = dir.path();
  o.durability = ledger::Durability::kAsync;
  // The rebuild at the end then crosses a batch boundary every few records,
  // voids and their originals often in different batches.
  o.rebuild_batch_events = 1 + static_cast<size_t>(GetParam()) * 3;
  auto billing = Billing::Open(o);
  ASSERT_TRUE(billing.ok());
  Model model;
  std::mt19937_64 rng(seed);
  struct Checkpoint {
    uint64_t seq;
    std::map<std::string, std::map<int, std::map<std::string, __int128>>> invoices;
  };
  std::vector<Checkpoint> checkpoints;
  int first = 2025 * 12 - 1, last = 2025 * 12 + g.months + 1;
  size_t i = 0;
  while (i < lines.size()) {
    size_t n = std::min(lines.size() - i, static_cast<size_t>(1 + rng() % 200));
    ledger::AppendRequest req;
    std::vector<std::string> expected;
    for (size_t k = 0; k < n; ++k) {
      req.entries.push_back(ledger::PrepareEntry(lines[i + k], ledger::Source()));
      expected.push_back(model.Apply(lines[i + k]));
    }
    auto r = (*billing)->Submit(std::move(req));
    ASSERT_TRUE(r.status.ok());
    for (size_t k = 0; k < n; ++k) {
      const auto& out = r.outcomes[k];
      std::string got = out.kind == ledger::Outcome::Kind::kAccepted ? "accepted"
                        : out.kind == ledger::Outcome::Kind::kDuplicate
                            ? "duplicate"
                            : std::string(CodeName(out.code));
      ASSERT_EQ(got, expected[k]) << "line " << i + k << ": " << lines[i + k] << "\n"
                                  << out.message;
    }
    i += n;
    ASSERT_EQ(r.last_sequence.value, model.seq);
    if (rng() % 8 == 0) {
      Checkpoint c{model.seq, {}};
      for (const auto& [org, m] : model.orgs) {
        for (int month = first; month <= last; ++month)
          c.invoices[org][month] = model.Invoices(org, month);
      }
      checkpoints.push_back(std::move(c));
    }
  }

  std::map<std::string, std::string> live;
  for (const auto& [org, m] : model.orgs) {
    auto s = (*billing)->Snapshot(org, std::nullopt);
    ASSERT_TRUE(s.ok());
    for (int month = first; month <= last; ++month) {
      EXPECT_EQ(ServiceInvoices(*s, month), model.Invoices(org, month))
          << org << " " << FormatMonth(Month{month});
      EXPECT_EQ(ServiceItems(*s, month), model.Items(org, month))
          << org << " " << FormatMonth(Month{month});
    }
    live[org] = Everything(*s, first, last);
    // A per-org replay into memory gives the same answers, byte for byte.
    MemoryStore store;
    auto replayed = ReplayOrg((*billing)->ledger(), org, ledger::kSequenceMax, &store);
    ASSERT_TRUE(replayed.ok());
    OrgSnapshot rs{std::make_shared<const OrgState>(*replayed),
                   std::shared_ptr<const View>(&store, [](const View*) {})};
    EXPECT_EQ(Everything(rs, first, last), live[org]) << org;
  }
  for (const Checkpoint& c : checkpoints) {
    for (const auto& [org, months] : c.invoices) {
      auto s = (*billing)->Snapshot(org, ledger::Sequence{c.seq});
      if (!s.ok()) continue;  // the org did not exist yet
      for (const auto& [month, invoices] : months) {
        EXPECT_EQ(ServiceInvoices(*s, month), invoices) << org << " as_of " << c.seq;
      }
    }
  }
  ASSERT_TRUE((*billing)->Rebuild().ok());
  for (const auto& [org, text] : live) {
    auto s = (*billing)->Snapshot(org, std::nullopt);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(Everything(*s, first, last), text) << org << " after rebuild";
  }
}

// Every month of every org of a random history proves (projections/proof.h):
// at the head, as of random sequences, and at the head again after a rebuild.
TEST_P(PropertyTest, EveryMonthProvesAtTheHeadAndAsOfRandomSequences) {
  uint64_t seed = 2000 + static_cast<uint64_t>(GetParam());
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  ops::GeneratorOptions g;
  g.seed = seed;
  g.orgs = 3;
  g.months = 5;
  g.usage_events = 600;
  g.resources_per_provider = 3;
  g.faults = true;
  std::vector<std::string> lines = ops::GenerateLines(g);
  lines = WithNanoseconds(lines, seed);
  std::set<std::string> orgs;
  for (const std::string& line : lines) {
    Json e = Json::parse(line, nullptr, false);
    if (e.is_object() && e.contains("organization_created") && e["org_id"].is_string())
      orgs.insert(e["org_id"].get<std::string>());
  }

  billing::testing::TempDir dir;
  BillingOptions o;
  o.dir = dir.path();
  o.durability = ledger::Durability::kAsync;
  auto billing = Billing::Open(o);
  ASSERT_TRUE(billing.ok());
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < lines.size();) {
    size_t n = std::min(lines.size() - i, static_cast<size_t>(1 + rng() % 200));
    ledger::AppendRequest req;
    for (size_t k = 0; k < n; ++k)
      req.entries.push_back(ledger::PrepareEntry(lines[i + k], ledger::Source()));
    ASSERT_TRUE((*billing)->Submit(std::move(req)).status.ok());
    i += n;
  }
  const uint64_t head = (*billing)->ledger().head().sequence.value;
  ASSERT_GT(head, 1u);

  const int first = 2025 * 12 - 1, last = 2025 * 12 + g.months + 1;
  int proved_with_charges = 0;
  auto prove_all = [&](std::optional<ledger::Sequence> as_of, const std::string& when) {
    for (const std::string& org : orgs) {
      for (int m = first; m <= last; ++m) {
        auto proof = ProveMonthOf((*billing)->ledger(), org, Month{m}, as_of);
        // As of a sequence before the org was created it does not exist.
        if (proof.status().code() == Code::kNotFound && as_of) continue;
        ASSERT_TRUE(proof.ok()) << org << " " << when << ": " << proof.status().ToString();
        EXPECT_TRUE(proof->ok) << org << " " << when << ": " << ProofJson(*proof).dump();
        if (proof->checks[1].expected != FormatNanos(0)) ++proved_with_charges;
      }
    }
  };
  prove_all(std::nullopt, "at the head");
  for (int k = 0; k < 6; ++k) {
    uint64_t as_of = 1 + rng() % (head - 1);
    prove_all(ledger::Sequence{as_of}, "as_of " + std::to_string(as_of));
  }
  ASSERT_TRUE((*billing)->Rebuild().ok());
  prove_all(std::nullopt, "after a rebuild");
  // Not a vacuous pass: most months of most orgs hold charges.
  EXPECT_GT(proved_with_charges, static_cast<int>(orgs.size()) * 2 * 3);
}

INSTANTIATE_TEST_SUITE_P(Seeds, PropertyTest, ::testing::Range(0, 6));

}  // namespace
}  // namespace billing::projections
