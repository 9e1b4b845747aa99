// The ledger on real RocksDB in temp dirs: append, reopen and continue;
// duplicates vs conflicts (also within one batch); verify catches edits and
// deletions; foreign directories are refused; and a child process killed
// with SIGKILL mid-append loses nothing it acknowledged.
#include "ledger/ledger.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "ledger/format.h"
#include "tests/testing/entries.h"
#include "tests/testing/temp_dir.h"

namespace billing::ledger {
namespace {

using billing::testing::TempDir;

Entry Usage(const std::string& id, const std::string& amount = "1.5",
            const std::string& org = "acme") {
  std::string json =
      R"({"event_id":")" + id + R"(","org_id":")" + org +
      R"(","occurred_at":"2026-01-08T12:56:36Z","usage_recorded":{"provider_id":"p","service":"S",)"
      R"("sku":"k","resource_id":"r","region":"x","quantity":"1","unit":"u","amount":")" +
      amount + R"(","usage_start":"2026-01-08T11:56:36Z","usage_end":"2026-01-08T12:56:36Z"}})";
  return billing::testing::ValidEntry(json);
}

std::unique_ptr<Ledger> OpenAt(const std::string& dir) {
  Options o;
  o.dir = dir;
  auto r = Ledger::Open(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

AppendResult AppendAll(Ledger& l, std::vector<Entry> entries) {
  AppendRequest req;
  req.entries = std::move(entries);
  return l.Append(std::move(req));
}

TEST(Ledger, AppendsWithGapFreeSequencesAndContinuesAfterReopen) {
  TempDir tmp;
  {
    auto l = OpenAt(tmp.path());
    auto r = AppendAll(*l, {Usage("e1"), Usage("e2"), Usage("e3")});
    ASSERT_TRUE(r.status.ok());
    EXPECT_EQ(r.outcomes[0].sequence.value, 1u);
    EXPECT_EQ(r.outcomes[2].sequence.value, 3u);
    EXPECT_EQ(r.last_sequence.value, 3u);
  }
  auto l = OpenAt(tmp.path());
  EXPECT_EQ(l->head().sequence.value, 3u);
  auto r = AppendAll(*l, {Usage("e4")});
  EXPECT_EQ(r.outcomes[0].sequence.value, 4u);
  auto v = l->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok);
  EXPECT_EQ(v->events, 4u);
  EXPECT_EQ(v->head.hash, l->head().hash);
  auto found = l->FindEvent({.org_id = "acme", .event_id = "e2"});
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->sequence.value, 2u);
}

TEST(Ledger, DuplicateIsAcknowledgedAndConflictIsRejected) {
  TempDir tmp;
  auto l = OpenAt(tmp.path());
  AppendAll(*l, {Usage("e1", "1.5")});
  auto r = AppendAll(*l, {Usage("e1", "1.5"), Usage("e1", "2"), Usage("e2")});
  EXPECT_EQ(r.outcomes[0].kind, Outcome::Kind::kDuplicate);
  EXPECT_EQ(r.outcomes[0].sequence.value, 1u);
  EXPECT_EQ(r.outcomes[1].kind, Outcome::Kind::kRejected);
  EXPECT_EQ(r.outcomes[1].code, Code::kConflict);
  EXPECT_EQ(r.outcomes[2].sequence.value, 2u);
  EXPECT_EQ(l->head().sequence.value, 2u);
  // The conflict is kept, with its raw bytes, for re-drive.
  auto rejected = l->ListRejected(0, 0);
  ASSERT_TRUE(rejected.ok());
  ASSERT_EQ(rejected->size(), 1u);
  EXPECT_EQ((*rejected)[0].code(), "conflict");
  EXPECT_NE((*rejected)[0].raw().find("\"2\""), std::string::npos);
}

// The idempotency key is (org_id, event_id): one org's ids never collide
// with, block or reveal another's, in one batch or across batches.
TEST(Ledger, EqualEventIdsOfTwoOrgsAreTwoEvents) {
  TempDir tmp;
  auto l = OpenAt(tmp.path());
  auto first = AppendAll(
      *l, {Usage("acme:use:99999", "1", "kaiju-jp"), Usage("acme:use:99999", "2", "acme")});
  EXPECT_EQ(first.outcomes[0].kind, Outcome::Kind::kAccepted);
  EXPECT_EQ(first.outcomes[1].kind, Outcome::Kind::kAccepted);
  auto again =
      AppendAll(*l, {Usage("acme:use:99999", "2", "acme"), Usage("acme:use:99999", "1", "kaiju-jp"),
                     Usage("acme:use:99999", "3", "acme")});
  EXPECT_EQ(again.outcomes[0].kind, Outcome::Kind::kDuplicate);
  EXPECT_EQ(again.outcomes[0].sequence.value, 2u);
  EXPECT_EQ(again.outcomes[1].kind, Outcome::Kind::kDuplicate);
  EXPECT_EQ(again.outcomes[1].sequence.value, 1u);
  EXPECT_EQ(again.outcomes[2].code, Code::kConflict);
  auto acme = l->FindEvent({.org_id = "acme", .event_id = "acme:use:99999"});
  ASSERT_TRUE(acme.ok() && acme->has_value());
  EXPECT_EQ((*acme)->sequence.value, 2u);
  EXPECT_EQ((*acme)->envelope.org_id(), "acme");
  auto other = l->FindEvent({.org_id = "globex", .event_id = "acme:use:99999"});
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
}

TEST(Ledger, DuplicatesAndConflictsWithinOneBatch) {
  TempDir tmp;
  auto l = OpenAt(tmp.path());
  auto r = AppendAll(*l, {Usage("e1", "1"), Usage("e1", "1"), Usage("e1", "3")});
  EXPECT_EQ(r.outcomes[0].kind, Outcome::Kind::kAccepted);
  EXPECT_EQ(r.outcomes[1].kind, Outcome::Kind::kDuplicate);
  EXPECT_EQ(r.outcomes[2].code, Code::kConflict);
  EXPECT_EQ(l->head().sequence.value, 1u);
}

// Replays decode every record into one reused envelope, which keeps its usage
// payload across records; each decode must still equal a fresh one, whatever
// the previous record held (other fields, another payload, no payload, junk).
TEST(Ledger, DecodingIntoAReusedEnvelopeEqualsAFreshDecode) {
  auto with_currency = Usage("u1").event->envelope;
  with_currency.mutable_usage_recorded()->set_currency("USD");
  auto support = *events::ParseJson(
      R"({"event_id":"s1","org_id":"acme","occurred_at":"2026-01-08T12:56:36Z",)"
      R"("support_charged":{"month":"2026-01","amount":"3","description":"d"}})");
  events::Envelope no_payload;
  no_payload.set_event_id("n1");
  events::Envelope empty_usage;
  empty_usage.set_event_id("e1");
  empty_usage.mutable_usage_recorded();
  std::vector<std::string> stream = {
      with_currency.SerializeAsString(), Usage("u2", "7").event->envelope.SerializeAsString(),
      support.SerializeAsString(),       Usage("u3").event->envelope.SerializeAsString(),
      no_payload.SerializeAsString(),    Usage("u4").event->envelope.SerializeAsString(),
      empty_usage.SerializeAsString(),   Usage("u5").event->envelope.SerializeAsString(),
      std::string("\xff\xff\xff", 3),    Usage("u6").event->envelope.SerializeAsString(),
  };
  events::Envelope reused;
  for (size_t i = 0; i < stream.size(); ++i) {
    Record record;
    record.set_sequence(i + 1);
    record.set_event(stream[i]);
    auto fresh = DecodeEvent(record);
    Status status = DecodeEvent(record, &reused);
    ASSERT_EQ(status.ok(), fresh.ok()) << i;
    if (!fresh.ok()) continue;
    EXPECT_EQ(reused.payload_case(), fresh->payload_case()) << i;
    EXPECT_EQ(reused.usage_recorded().has_currency(), fresh->usage_recorded().has_currency()) << i;
    EXPECT_EQ(events::CanonicalBytes(reused), events::CanonicalBytes(*fresh)) << i;
  }
}

TEST(Ledger, KafkaOffsetsAreStoredWithTheEvents) {
  TempDir tmp;
  auto l = OpenAt(tmp.path());
  AppendRequest req;
  req.entries.push_back(Usage("e1"));
  req.offsets.push_back(KafkaOffset{"billing.events", 3, 42});
  ASSERT_TRUE(l->Append(std::move(req)).status.ok());
  auto off = l->KafkaNextOffset("billing.events", 3);
  ASSERT_TRUE(off.ok() && off->has_value());
  EXPECT_EQ(**off, 42);
  EXPECT_FALSE(l->KafkaNextOffset("billing.events", 2)->has_value());
}

// Every record of `l`, serialized, in sequence order.
std::vector<std::string> AllRecords(const Ledger& l) {
  std::vector<std::string> out;
  Status s = l.Scan(Sequence{0}, 0, [&](const Record& r) {
    out.push_back(r.SerializeAsString());
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// A cluster's shard (docs/CLUSTER.md) must be a pure function of its
// partition: the same entries with the same given times make the same bytes,
// whenever and in however many batches and runs they are appended.
TEST(Ledger, GivenTimesMakeTheSameRecordsOnAnyMachineAtAnyTime) {
  std::mt19937 rng(19);
  std::vector<Entry> entries;
  int64_t t = 1'767'225'600'000'000;  // 2026-01-01, microseconds
  for (int i = 0; i < 60; i++) {
    // Mostly forward, sometimes backward (a producer's clock): the ledger
    // keeps time monotonic, and must do so the same way on every replay.
    t += static_cast<int64_t>(rng() % 5000) - 1000;
    Entry e = i % 7 == 3 ? Usage("e" + std::to_string(i - 1), "9") : Usage("e" + std::to_string(i));
    e.recorded_at_micros = t;
    entries.push_back(std::move(e));
  }
  TempDir a, b;
  {
    auto l = OpenAt(a.path());
    ASSERT_TRUE(AppendAll(*l, entries).status.ok());
  }
  // The second copy in small batches, reopened in the middle.
  for (size_t start = 0; start < entries.size(); start += 7) {
    auto l = OpenAt(b.path());
    std::vector<Entry> part(entries.begin() + start,
                            entries.begin() + std::min(entries.size(), start + 7));
    ASSERT_TRUE(AppendAll(*l, std::move(part)).status.ok());
  }
  auto la = OpenAt(a.path());
  auto lb = OpenAt(b.path());
  const std::vector<std::string> ra = AllRecords(*la), rb = AllRecords(*lb);
  EXPECT_GT(ra.size(), 40u);
  EXPECT_EQ(ra, rb);
  EXPECT_EQ(la->head().hash, lb->head().hash);
}

TEST(Ledger, ConcurrentAppendersShareGroupsWithoutGaps) {
  TempDir tmp;
  auto l = OpenAt(tmp.path());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i)
        AppendAll(*l, {Usage("t" + std::to_string(t) + "-" + std::to_string(i))});
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(l->head().sequence.value, 400u);
  auto v = l->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->problem;
}

TEST(Ledger, OrgIndexReadsOneOrgsHistory) {
  TempDir tmp;
  auto l = OpenAt(tmp.path());
  AppendAll(*l, {Usage("a1", "1", "a"), Usage("b1", "1", "b"), Usage("a2", "1", "a"),
                 Usage("b2", "1", "b")});
  std::vector<uint64_t> seen;
  ASSERT_TRUE(l->ScanOrg("a", Sequence{0}, Sequence{UINT64_MAX}, 0, [&](const Record& r) {
                 seen.push_back(r.sequence());
                 return true;
               }).ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 3}));
}

// Opens the RocksDB underneath directly, as an attacker with disk access would.
void Tamper(const std::string& dir, const std::function<void(rocksdb::DB*)>& edit) {
  rocksdb::DB* db = nullptr;
  rocksdb::Options o;
  ASSERT_TRUE(rocksdb::DB::Open(o, dir, &db).ok());
  edit(db);
  delete db;
}

TEST(Ledger, VerifyCatchesAnEditedRecord) {
  TempDir tmp;
  {
    auto l = OpenAt(tmp.path());
    AppendAll(*l, {Usage("e1"), Usage("e2"), Usage("e3")});
  }
  Tamper(tmp.path(), [](rocksdb::DB* db) {
    std::string bytes;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), format::RecordKey(2), &bytes).ok());
    Record r;
    r.ParseFromString(bytes);
    events::Envelope env;
    env.ParseFromString(r.event());
    env.mutable_usage_recorded()->set_amount("0.01");
    r.set_event(env.SerializeAsString());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), format::RecordKey(2), r.SerializeAsString()).ok());
  });
  auto l = OpenAt(tmp.path());
  auto v = l->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->ok);
  EXPECT_EQ(v->first_bad.value, 2u);
}

TEST(Ledger, VerifyCatchesADeletedRecordInTheMiddleAndAtTheTail) {
  TempDir middle, tail;
  for (const auto* t : {&middle, &tail}) {
    auto l = OpenAt(t->path());
    AppendAll(*l, {Usage("e1"), Usage("e2"), Usage("e3")});
  }
  Tamper(middle.path(),
         [](rocksdb::DB* db) { db->Delete(rocksdb::WriteOptions(), format::RecordKey(2)); });
  Tamper(tail.path(),
         [](rocksdb::DB* db) { db->Delete(rocksdb::WriteOptions(), format::RecordKey(3)); });
  auto v = OpenAt(middle.path())->Verify();
  EXPECT_FALSE(v->ok);
  EXPECT_EQ(v->first_bad.value, 2u);
  auto w = OpenAt(tail.path())->Verify();
  EXPECT_FALSE(w->ok);
  EXPECT_EQ(w->first_bad.value, 3u);
}

TEST(Ledger, RefusesForeignAndCorruptDirectories) {
  TempDir tmp;
  std::ofstream(tmp.sub("notes.txt")) << "not a ledger";
  Options o;
  o.dir = tmp.path();
  auto r = Ledger::Open(o);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);

  TempDir other;
  rocksdb::DB* db = nullptr;
  rocksdb::Options ro;
  ro.create_if_missing = true;
  ASSERT_TRUE(rocksdb::DB::Open(ro, other.sub("foreign"), &db).ok());
  db->Put(rocksdb::WriteOptions(), "hello", "world");
  delete db;
  o.dir = other.sub("foreign");
  auto f = Ledger::Open(o);
  EXPECT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("not a ledger"), std::string::npos);
}

// A child appends batches and reports each acknowledged sequence on a pipe;
// the parent kills it at a random moment, reopens, and every acknowledged
// event must be there, once, with a verifying chain.
TEST(Ledger, SigkillMidAppendLosesNothingAcknowledged) {
  std::random_device rd;
  uint64_t seed = rd();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  TempDir tmp;
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      Options o;
      o.dir = tmp.path();
      auto l = Ledger::Open(o);
      if (!l.ok()) _exit(3);
      for (int i = 0;; ++i) {
        std::vector<Entry> batch;
        for (int k = 0; k < 10; ++k)
          batch.push_back(Usage("r" + std::to_string(round) + "-" + std::to_string(i * 10 + k)));
        AppendRequest req;
        req.entries = std::move(batch);
        AppendResult r = (*l)->Append(std::move(req));
        if (!r.status.ok()) _exit(4);
        uint64_t last = r.last_sequence.value;
        if (write(fds[1], &last, sizeof(last)) != sizeof(last)) _exit(5);
      }
    }
    close(fds[1]);
    uint64_t acked = 0, v = 0;
    int want = 5 + static_cast<int>(rng() % 40);
    for (int n = 0; n < want && read(fds[0], &v, sizeof(v)) == sizeof(v); ++n) acked = v;
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    // Drain acknowledgements written before the kill.
    while (read(fds[0], &v, sizeof(v)) == sizeof(v)) acked = v;
    close(fds[0]);
    auto l = OpenAt(tmp.path());
    EXPECT_GE(l->head().sequence.value, acked) << "round " << round;
    auto report = l->Verify();
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->ok) << report->problem;
    std::set<std::string> ids;
    ASSERT_TRUE(l->Scan(Sequence{0}, 0, [&](const Record& r) {
                   auto env = DecodeEvent(r);
                   EXPECT_TRUE(ids.insert(env->event_id()).second) << "twice: " << env->event_id();
                   return true;
                 }).ok());
    EXPECT_EQ(ids.size(), l->head().sequence.value);
  }
}

}  // namespace
}  // namespace billing::ledger
