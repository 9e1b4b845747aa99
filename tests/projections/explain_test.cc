// The explain index on seeded random histories (voids, late charges, closes,
// mode changes): for every item, drill-down node and invoice, the events it
// names, read page by page, add up exactly to the figure the read models show,
// at the head and as of random past sequences (against a replay), and a
// rebuild writes the same index byte for byte.
#include "projections/explain.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ledger/prepare.h"
#include "ops/generator.h"
#include "projections/billing.h"
#include "projections/keys.h"
#include "tests/testing/temp_dir.h"

namespace billing::projections {
namespace {

// Small pages, so that paging with `after` is crossed on most nodes.
constexpr size_t kTestPageLines = 7;

// A figure the read models show: a node's amount (and quantity, where shown),
// or an invoice's exact total and lines.
struct Figure {
  Sum amount = 0;
  std::optional<Sum> quantity;
  std::map<std::pair<std::string, std::string>, Sum> lines;  // invoices: (category, label)
};

// Every node (month item or drill-down node) and invoice of one org's months,
// by id, as `snap` shows them.
struct Figures {
  std::map<std::pair<int, std::string>, Figure> nodes;  // (month index, id)
  std::map<std::string, Figure> invoices;
};

Figures FiguresOf(const OrgSnapshot& snap, int first, int last) {
  Figures out;
  for (int m = first; m <= last; ++m) {
    const Month month{m};
    for (const Item& item : MonthItems(*snap.org, *snap.view, month).items) {
      out.nodes[{m, item.id}] = Figure{item.amount, std::nullopt, {}};
      std::vector<std::string> stack{item.id};
      while (!stack.empty()) {
        std::string id = stack.back();
        stack.pop_back();
        auto detail = ItemChildren(*snap.org, *snap.view, month, id);
        EXPECT_TRUE(detail.ok()) << id;
        if (!detail.ok()) continue;
        for (const Child& c : detail->children) {
          out.nodes[{m, c.id}] = Figure{c.amount, c.quantity, {}};
          if (c.drillable) stack.push_back(c.id);
        }
      }
    }
    for (const InvoiceSummary& s : Invoices(*snap.org, *snap.view, month).invoices) {
      auto inv = GetInvoice(*snap.org, *snap.view, s.invoice_id);
      EXPECT_TRUE(inv.ok()) << s.invoice_id;
      if (!inv.ok()) continue;
      Figure f;
      for (const InvoiceLine& l : inv->lines) {
        f.amount += l.amount;
        f.lines[{l.category, l.description}] += l.amount;
      }
      out.invoices[s.invoice_id] = f;
    }
  }
  return out;
}

// Reads every page of an explanation, checking that sequences only grow.
template <typename Read>
Result<std::vector<Contribution>> AllPages(ledger::Sequence upto, Read read) {
  ExplainPage page{.after = ledger::Sequence{0}, .limit = kTestPageLines, .upto = upto};
  std::vector<Contribution> all;
  // More pages than any test history has lines: paging that does not move on
  // fails instead of hanging.
  constexpr int kPagesMax = 10000;
  for (int n = 0; n < kPagesMax; ++n) {
    Result<std::vector<Contribution>> one = read(page);
    if (!one.ok()) return one.status();
    for (Contribution& c : *one) {
      if (c.sequence <= page.after.value) {
        ADD_FAILURE() << "sequence " << c.sequence << " on the page after " << page.after.value;
        return all;
      }
      EXPECT_LE(c.sequence, upto.value);
      page.after = ledger::Sequence{c.sequence};
      all.push_back(std::move(c));
    }
    if (one->size() < kTestPageLines) return all;
  }
  ADD_FAILURE() << "paging does not end";
  return all;
}

// What the histories exercised, so that a generator change cannot quietly
// leave the interesting cases out.
struct Coverage {
  int reversals_in_usage = 0;  // negative usage lines: voids netting into open months
  int adjustments = 0;         // lines of adjustment items (late charges and voids)
  int absent_then = 0;         // nodes or invoices not there yet as of a past sequence
};

// Checks every figure of `want` against the index read up to `upto` from the
// head's `head` snapshot; nodes and invoices of `head_figures` missing from
// `want` must be unknown to the index as of `upto`.
void ExpectIndexExplains(const OrgSnapshot& head, const Figures& head_figures, const Figures& want,
                         ledger::Sequence upto, const std::string& where, Coverage* seen) {
  for (const auto& [key, figure] : head_figures.nodes) {
    const auto& [m, id] = key;
    auto lines = AllPages(upto, [&](const ExplainPage& page) {
      return ItemContributions(*head.org, *head.view, Month{m}, id, page);
    });
    auto expected = want.nodes.find(key);
    if (expected == want.nodes.end()) {
      EXPECT_EQ(lines.status().code(), Code::kNotFound) << where << " node " << id;
      seen->absent_then++;
      continue;
    }
    ASSERT_TRUE(lines.ok()) << where << " node " << id << ": " << lines.status().ToString();
    EXPECT_FALSE(lines->empty()) << where << " node " << id;
    Sum amount = 0, quantity = 0;
    for (const Contribution& c : *lines) {
      amount += c.amount;
      if (c.quantity) quantity += *c.quantity;
    }
    EXPECT_EQ(SumToString(amount), SumToString(expected->second.amount)) << where << " node " << id;
    if (expected->second.quantity) {
      EXPECT_EQ(SumToString(quantity), SumToString(*expected->second.quantity))
          << where << " node " << id;
    }
  }
  for (const auto& [id, figure] : head_figures.invoices) {
    auto lines = AllPages(upto, [&](const ExplainPage& page) {
      return InvoiceContributions(*head.org, *head.view, id, page);
    });
    auto expected = want.invoices.find(id);
    if (expected == want.invoices.end()) {
      EXPECT_EQ(lines.status().code(), Code::kNotFound) << where << " invoice " << id;
      seen->absent_then++;
      continue;
    }
    ASSERT_TRUE(lines.ok()) << where << " invoice " << id << ": " << lines.status().ToString();
    Figure got;
    for (const Contribution& c : *lines) {
      if (c.category == keys::kUsage && c.amount < 0) seen->reversals_in_usage++;
      if (c.category == keys::kAdjustment) seen->adjustments++;
      got.amount += c.amount;
      got.lines[{std::string(keys::CategoryName(c.category)), c.label}] += c.amount;
    }
    EXPECT_EQ(SumToString(got.amount), SumToString(expected->second.amount))
        << where << " invoice " << id;
    EXPECT_EQ(got.lines, expected->second.lines) << where << " invoice " << id;
  }
  // An invoice that exists only as of `upto` (a mode changed since) is
  // explained too.
  for (const auto& [id, figure] : want.invoices) {
    if (head_figures.invoices.count(id)) continue;
    auto lines = AllPages(upto, [&](const ExplainPage& page) {
      return InvoiceContributions(*head.org, *head.view, id, page);
    });
    ASSERT_TRUE(lines.ok()) << where << " invoice " << id;
    Sum amount = 0;
    for (const Contribution& c : *lines) amount += c.amount;
    EXPECT_EQ(SumToString(amount), SumToString(figure.amount)) << where << " invoice " << id;
  }
}

// Every explain-index entry of the store, key and value.
std::map<std::string, std::string> IndexEntries(const ledger::Ledger& ledger) {
  std::map<std::string, std::string> out;
  RocksView view(ledger.db());
  view.Scan(keys::kExplainPrefix, [&](std::string_view key, std::string_view value) {
    out.emplace(key, value);
    return true;
  });
  EXPECT_TRUE(view.status().ok());
  return out;
}

class ExplainTest : public ::testing::TestWithParam<int> {};

TEST_P(ExplainTest, IndexSumsToEveryFigureAtHeadAndAsOfAndRebuildsByteForByte) {
  const uint64_t seed = 7000 + static_cast<uint64_t>(GetParam());
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  ops::GeneratorOptions g;
  g.seed = seed;
  g.orgs = 2;
  g.months = 4;
  g.usage_events = 600;
  g.resources_per_provider = 3;
  g.faults = true;
  std::vector<std::string> lines;
  ops::Generate(g, [&](const std::string& l) { lines.push_back(l); });

  billing::testing::TempDir dir;
  BillingOptions o;
  o.dir = dir.path();
  o.durability = ledger::Durability::kAsync;
  o.rebuild_batch_events = 50;  // the rebuild crosses batches, voids apart from originals
  auto billing = Billing::Open(o);
  ASSERT_TRUE(billing.ok());
  std::mt19937_64 rng(seed);
  std::set<std::string> orgs;
  for (size_t i = 0; i < lines.size();) {
    const size_t n = std::min(lines.size() - i, static_cast<size_t>(1 + rng() % 100));
    ledger::AppendRequest req;
    for (size_t k = 0; k < n; ++k) {
      ledger::Entry e = ledger::PrepareEntry(lines[i + k], ledger::Source());
      if (!e.org_id.empty()) orgs.insert(e.org_id);
      req.entries.push_back(std::move(e));
    }
    ASSERT_TRUE((*billing)->Submit(std::move(req)).status.ok());
    i += n;
  }
  const uint64_t head = (*billing)->ledger().head().sequence.value;
  const int first = 2025 * 12 - 1, last = 2025 * 12 + g.months + 1;
  Coverage seen;

  for (const std::string& org : orgs) {
    auto snap = (*billing)->Snapshot(org, std::nullopt);
    if (!snap.ok()) continue;  // an org id of a rejected event only
    const Figures at_head = FiguresOf(*snap, first, last);
    ASSERT_FALSE(at_head.nodes.empty()) << org;
    ExpectIndexExplains(*snap, at_head, at_head, ledger::kSequenceMax, org + " at head", &seen);
    for (int i = 0; i < 4; ++i) {
      const uint64_t as_of = 1 + rng() % head;
      auto past = (*billing)->Snapshot(org, ledger::Sequence{as_of});
      const Figures then = past.ok() ? FiguresOf(*past, first, last) : Figures();
      ExpectIndexExplains(*snap, at_head, then, ledger::Sequence{as_of},
                          org + " as_of " + std::to_string(as_of), &seen);
    }
  }
  EXPECT_GT(seen.reversals_in_usage, 0);
  EXPECT_GT(seen.adjustments, 0);
  EXPECT_GT(seen.absent_then, 0);

  const std::map<std::string, std::string> live = IndexEntries((*billing)->ledger());
  ASSERT_FALSE(live.empty());
  ASSERT_TRUE((*billing)->Rebuild().ok());
  EXPECT_TRUE(live == IndexEntries((*billing)->ledger()))
      << "the rebuilt explain index differs from the one written live";
}

INSTANTIATE_TEST_SUITE_P(Seeds, ExplainTest, ::testing::Range(0, 3));

TEST(ExplainCodec, ContributionsRoundTripWithSignsQuantitiesAndLines) {
  const Sum big = static_cast<Sum>(INT64_MAX) * 4;
  for (const Contribution& c :
       {Contribution{1, 0, std::nullopt, 0, ""}, Contribution{2, -1500000000, Sum{-3}, 0, ""},
        Contribution{3, big, Sum{0}, keys::kUsage, "AmazonEC2"},
        Contribution{4, -big, std::nullopt, keys::kCredit, "goodwill credit"}}) {
    std::string value;
    EncodeContribution(c, &value);
    Contribution back;
    ASSERT_TRUE(DecodeContribution(value, c.sequence, &back));
    EXPECT_EQ(back.sequence, c.sequence);
    EXPECT_EQ(SumToString(back.amount), SumToString(c.amount));
    EXPECT_EQ(back.quantity.has_value(), c.quantity.has_value());
    if (c.quantity) {
      EXPECT_EQ(SumToString(*back.quantity), SumToString(*c.quantity));
    }
    EXPECT_EQ(back.category, c.category);
    EXPECT_EQ(back.label, c.label);
  }
  Contribution out;
  EXPECT_FALSE(DecodeContribution("", 1, &out));
  EXPECT_FALSE(DecodeContribution(std::string("\x04\x02", 2), 1, &out));  // unknown flag
  EXPECT_FALSE(DecodeContribution(std::string("\x00\x80", 2), 1, &out));  // cut varint
}

}  // namespace
}  // namespace billing::projections
