// The explain index on seeded random histories (voids, late charges, closes,
// mode changes): for every item, drill-down node and invoice, the events it
// names, read page by page, add up exactly to the figure the read models show,
// at the head and as of random past sequences (against a replay), and a
// rebuild writes the same index entries (in blocks of other sizes); index
// blocks split and page across their boundaries, and a malformed one is
// corruption, never a short answer.
#include "projections/explain.h"

#include <gtest/gtest.h>
#include <rocksdb/write_batch.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ledger/prepare.h"
#include "ops/generator.h"
#include "projections/billing.h"
#include "projections/index_block.h"
#include "projections/keys.h"
#include "projections/store.h"
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

// Every explain-index entry of the store, decoded from its block: the
// aggregate's index prefix and the entry's sequence, then the contribution.
// Blocks depend on how the ledger was grouped into writes, entries do not.
std::map<std::string, std::string> IndexEntries(const ledger::Ledger& ledger) {
  std::map<std::string, std::string> out;
  RocksView view(ledger.db());
  view.Scan(keys::kExplainPrefix, [&](std::string_view key, std::string_view value) {
    const std::string_view prefix = key.substr(0, key.size() - 8);
    BlockReader block(value);
    uint64_t last = 0;
    while (block.Next()) {
      std::string entry(prefix);
      ledger::format::PutBe64(&entry, block.sequence());
      EXPECT_TRUE(out.emplace(entry, block.contribution()).second) << "an entry twice";
      last = block.sequence();
    }
    EXPECT_FALSE(block.corrupt());
    EXPECT_EQ(last, ledger::format::GetBe64(key.substr(prefix.size()))) << "block key";
    return true;
  });
  EXPECT_TRUE(view.status().ok());
  return out;
}

class ExplainTest : public ::testing::TestWithParam<int> {};

TEST_P(ExplainTest, IndexSumsToEveryFigureAtHeadAndAsOfAndRebuildsTheSameEntries) {
  const uint64_t seed = 7000 + static_cast<uint64_t>(GetParam());
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  ops::GeneratorOptions g;
  g.seed = seed;
  g.orgs = 2;
  g.months = 4;
  g.usage_events = 600;
  g.resources_per_provider = 3;
  g.faults = true;
  std::vector<std::string> lines = ops::GenerateLines(g);

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

// Copies what a CombiningSink flushed into a store, as RocksDB would apply it.
class CopyInto : public rocksdb::WriteBatch::Handler {
 public:
  explicit CopyInto(MemoryStore* store) : store_(store) {}
  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    store_->Put(key.ToStringView(), value.ToStringView());
    return rocksdb::Status::OK();
  }

 private:
  MemoryStore* store_;
};

// An org with one month item whose explain index holds `sequences`, written
// through a CombiningSink in one flush, as the live gate and a rebuild write.
struct OneItem {
  OrgState org;
  MemoryStore store;
  const Month month{2025 * 12 + 5};
  std::string item_id;
  std::string prefix;  // the item's index prefix
  explicit OneItem(const std::vector<uint64_t>& sequences) {
    org.org_id = "org-1";
    const std::string agg = keys::ItemKey(org.org_id, month, keys::kUsage, "AmazonEC2");
    store.Put(agg, EncodeAgg(AmountAgg(1)));
    item_id = MonthItems(org, store, month).items.at(0).id;
    prefix = keys::ExplainPrefix(agg);
    CombiningSink sink;
    for (uint64_t seq : sequences) {
      std::string entry;
      EncodeContribution(Contribution{seq, static_cast<Sum>(seq), std::nullopt, 0, ""}, &entry);
      sink.Index(prefix, seq, entry);
    }
    rocksdb::WriteBatch batch;
    sink.FlushTo(&batch);
    CopyInto copy(&store);
    EXPECT_TRUE(batch.Iterate(&copy).ok());
  }
  std::vector<uint64_t> Page(uint64_t after, size_t limit, uint64_t upto) {
    auto got =
        ItemContributions(org, store, month, item_id,
                          ExplainPage{ledger::Sequence{after}, limit, ledger::Sequence{upto}});
    std::vector<uint64_t> out;
    if (!got.ok()) return out;
    for (const Contribution& c : *got) {
      EXPECT_EQ(c.amount, static_cast<Sum>(c.sequence));
      out.push_back(c.sequence);
    }
    return out;
  }
};

TEST(IndexBlocks, AWriteSplitsAnAggregateIntoFullBlocksAndPagesCrossThem) {
  std::vector<uint64_t> sequences;
  for (uint64_t seq = 10; sequences.size() < 2 * kIndexBlockEntriesMax + 5; seq += 3)
    sequences.push_back(seq);
  OneItem item(sequences);
  size_t blocks = 0;
  item.store.Scan(item.prefix, [&](std::string_view, std::string_view) {
    ++blocks;
    return true;
  });
  EXPECT_EQ(blocks, 3u) << "blocks of at most kIndexBlockEntriesMax entries";
  // Every page, from every kind of start: before the first entry, inside a
  // block, on a block's last entry, between entries, with limits and upto
  // ending inside blocks.
  std::mt19937_64 rng(11);
  const uint64_t end = sequences.back() + 5;
  for (int round = 0; round < 300; ++round) {
    const uint64_t after = rng() % end;
    const size_t limit = 1 + rng() % 1500;
    const uint64_t upto = after + rng() % end + 1;
    std::vector<uint64_t> want;
    for (uint64_t seq : sequences) {
      if (seq > after && seq <= upto && want.size() < limit) want.push_back(seq);
    }
    EXPECT_EQ(item.Page(after, limit, upto), want)
        << "after " << after << " limit " << limit << " upto " << upto;
  }
  EXPECT_TRUE(item.store.status().ok());
  // The page after each block's last entry starts the next block.
  const uint64_t first_block_last = sequences[kIndexBlockEntriesMax - 1];
  EXPECT_EQ(item.Page(first_block_last, 1, UINT64_MAX),
            std::vector<uint64_t>{sequences[kIndexBlockEntriesMax]});
}

TEST(IndexBlocks, AMalformedBlockIsCorruptionNotAShortAnswer) {
  OneItem good({5, 6, 9});
  auto be64 = [](uint64_t seq) {
    std::string out;
    ledger::format::PutBe64(&out, seq);
    return out;
  };
  const std::optional<std::string> block = good.store.Get(good.prefix + be64(9));
  ASSERT_TRUE(block) << "one block, under its last sequence";
  std::string from_zero;
  AppendBlockEntry(&from_zero, 0, 0, block->substr(2, 2));
  AppendBlockEntry(&from_zero, 0, 9, block->substr(2, 2));
  const std::vector<std::pair<uint64_t, std::string>> broken = {
      {9, block->substr(0, block->size() - 1)},  // cut
      {8, *block},                               // its key names another last sequence
      {10, *block},
      {9, from_zero},  // an entry of sequence 0
      {9, ""},         // no entry
  };
  for (const auto& [key_sequence, value] : broken) {
    OneItem item({});
    item.store.Put(item.prefix + be64(key_sequence), value);
    auto got = ItemContributions(item.org, item.store, item.month, item.item_id, ExplainPage{});
    EXPECT_EQ(item.store.status().code(), Code::kCorruption)
        << "a " << value.size() << "-byte block under sequence " << key_sequence;
  }
  // The good block reads back whole.
  EXPECT_EQ(good.Page(0, 10, UINT64_MAX), (std::vector<uint64_t>{5, 6, 9}));
  EXPECT_TRUE(good.store.status().ok());
}

}  // namespace
}  // namespace billing::projections
