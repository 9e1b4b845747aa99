// The rejected store's bounds, on real RocksDB: a huge message keeps a marked
// prefix, a long reason is cut, each org keeps its newest rejections (across
// reopens and re-drives), and listing pages by count and by bytes, saying
// where to continue.
#include <gtest/gtest.h>

#include "ledger/ledger.h"
#include "tests/testing/entries.h"
#include "tests/testing/temp_dir.h"

namespace billing::ledger {
namespace {

using billing::testing::TempDir;

Entry Bad(const std::string& org, std::string raw = "{}", std::string why = "event_id is missing") {
  Entry e;
  e.raw = std::move(raw);
  e.rejection = Status(Code::kInvalidArgument, std::move(why));
  e.org_id = org;
  return e;
}

std::unique_ptr<Ledger> OpenAt(const std::string& dir, size_t per_org_max = kRejectedPerOrgMax) {
  Options o;
  o.dir = dir;
  o.rejected_per_org_max = per_org_max;
  auto r = Ledger::Open(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

AppendResult AppendAll(Ledger& l, std::vector<Entry> entries) {
  AppendRequest req;
  req.entries = std::move(entries);
  return l.Append(std::move(req));
}

std::vector<uint64_t> IdsOf(const Ledger& l, std::optional<std::string> org) {
  auto page =
      l.ListRejected(RejectedQuery{.after_id = 0, .limit = 0, .bytes_max = SIZE_MAX, .org = org});
  EXPECT_TRUE(page.ok());
  std::vector<uint64_t> ids;
  for (const auto& rec : page->records) ids.push_back(rec.id());
  return ids;
}

TEST(RejectedStore, AHugeMessageKeepsAMarkedPrefixAndItsLength) {
  TempDir tmp;
  auto l = OpenAt(tmp.path());
  const size_t big = 4 * 1024 * 1024 + 7;
  std::string long_reason(10000, 'x');
  long_reason += "\xc3\xa9";  // a two-byte character at the end, never cut in half
  AppendAll(*l, {Bad("acme", std::string(big, '{'),
                     std::string(kRejectedMessageBytesMax - 1, 'y') + "\xc3\xa9"),
                 Bad("acme", "{\"small\":1}", long_reason)});
  auto all = l->ListRejected(0, 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  const RejectedRecord& huge = (*all)[0];
  EXPECT_TRUE(huge.raw_truncated());
  EXPECT_EQ(huge.raw().size(), kRejectedRawBytesMax);
  EXPECT_EQ(huge.raw_bytes(), big);
  // Cut before the character that would straddle the limit.
  EXPECT_EQ(huge.message(), std::string(kRejectedMessageBytesMax - 1, 'y'));
  const RejectedRecord& small = (*all)[1];
  EXPECT_FALSE(small.raw_truncated());
  EXPECT_EQ(small.raw(), "{\"small\":1}");
  EXPECT_EQ(small.raw_bytes(), small.raw().size());
  EXPECT_EQ(small.message().size(), kRejectedMessageBytesMax);
}

TEST(RejectedStore, EachOrgKeepsItsNewestAndDropsItsOldest) {
  TempDir tmp;
  {
    auto l = OpenAt(tmp.path(), /*per_org_max=*/3);
    // ids 1..5 acme, 6..7 kaiju-jp, 8..11 an org id no org can have (the "no org" bucket).
    std::vector<Entry> batch;
    for (int i = 0; i < 5; ++i) batch.push_back(Bad("acme"));
    for (int i = 0; i < 2; ++i) batch.push_back(Bad("kaiju-jp"));
    for (int i = 0; i < 4; ++i) batch.push_back(Bad("not an org!"));
    AppendAll(*l, std::move(batch));
    EXPECT_EQ(IdsOf(*l, "acme"), (std::vector<uint64_t>{3, 4, 5}));
    EXPECT_EQ(IdsOf(*l, "kaiju-jp"), (std::vector<uint64_t>{6, 7}));
    EXPECT_EQ(IdsOf(*l, ""), (std::vector<uint64_t>{9, 10, 11}));
    EXPECT_EQ(IdsOf(*l, std::nullopt), (std::vector<uint64_t>{3, 4, 5, 6, 7, 9, 10, 11}));
    EXPECT_EQ(l->rejected_dropped(), 3u);
  }
  // The quota holds across a reopen: the buckets are read back from the index.
  auto l = OpenAt(tmp.path(), 3);
  AppendAll(*l, {Bad("acme")});
  EXPECT_EQ(IdsOf(*l, "acme"), (std::vector<uint64_t>{4, 5, 12}));
  EXPECT_EQ(IdsOf(*l, "kaiju-jp"), (std::vector<uint64_t>{6, 7}));
}

TEST(RejectedStore, AnAcceptedRedriveFreesItsPlaceInTheQuota) {
  TempDir tmp;
  auto l = OpenAt(tmp.path(), 2);
  AppendAll(*l, {Bad("acme"), Bad("acme")});
  std::string json = R"({"event_id":"s1","org_id":"acme","occurred_at":"2026-01-08T12:56:36Z",)"
                     R"("support_charged":{"month":"2026-01","amount":"3","description":"d"}})";
  Entry redrive = billing::testing::ValidEntry(json);
  redrive.redrive_of = 1;
  auto r = AppendAll(*l, {std::move(redrive)});
  ASSERT_EQ(r.outcomes[0].kind, Outcome::Kind::kAccepted);
  EXPECT_EQ(IdsOf(*l, "acme"), (std::vector<uint64_t>{2}));
  AppendAll(*l, {Bad("acme")});
  EXPECT_EQ(IdsOf(*l, "acme"), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(l->rejected_dropped(), 0u);
}

TEST(RejectedStore, PagesAreBoundedByBytesAndSayWhereToContinue) {
  TempDir tmp;
  auto l = OpenAt(tmp.path());
  const size_t raw_bytes = 60 * 1024;
  const size_t count = 40;  // 2.4 MiB in all: more than two pages
  std::vector<Entry> batch;
  for (size_t i = 0; i < count; ++i) batch.push_back(Bad("acme", std::string(raw_bytes, 'r')));
  AppendAll(*l, std::move(batch));
  std::vector<uint64_t> seen;
  std::optional<uint64_t> after = 0;
  int pages = 0;
  while (after) {
    auto page = l->ListRejected(RejectedQuery{.after_id = *after, .limit = 1000, .org = "acme"});
    ASSERT_TRUE(page.ok());
    ASSERT_FALSE(page->records.empty());
    size_t bytes = 0;
    for (const auto& rec : page->records) {
      seen.push_back(rec.id());
      bytes += rec.ByteSizeLong();
    }
    // The budget is checked before each record, so a page ends within one record of it.
    EXPECT_LT(bytes, kRejectedPageBytesMax + raw_bytes + 1024);
    after = page->next_after;
    if (after) {
      EXPECT_EQ(*after, page->records.back().id());
    }
    ASSERT_LT(++pages, 10);
  }
  EXPECT_GE(pages, 3);
  ASSERT_EQ(seen.size(), count);
  for (size_t i = 0; i < count; ++i) EXPECT_EQ(seen[i], i + 1);
  // A count limit pages too; the last page says there is no more.
  auto two = l->ListRejected(RejectedQuery{.after_id = 37, .limit = 2, .org = std::nullopt});
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->records.size(), 2u);
  EXPECT_EQ(two->next_after, 39u);
  auto last = l->ListRejected(RejectedQuery{.after_id = 38, .limit = 2, .org = std::nullopt});
  EXPECT_EQ(last->records.size(), 2u);
  EXPECT_EQ(last->next_after, std::nullopt);
}

}  // namespace
}  // namespace billing::ledger
