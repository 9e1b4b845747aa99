// Read-model rebuild throughput against a raw RocksDB iterator scan plus
// protobuf parse of the same ledger, in the same process (issue 3).
// Usage: rebuild_bench load DIR EVENTS   (writes a synthetic history)
//        rebuild_bench measure DIR       (scan + parse, then full rebuild; peak RSS)
//        rebuild_bench rebuild DIR       (the rebuild alone, to profile it)
#include <rocksdb/db.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ledger/format.h"
#include "ledger/prepare.h"
#include "ops/generator.h"
#include "projections/billing.h"
#include "projections/decider.h"
#include "projections/store.h"

using namespace billing;

namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// CPU seconds of the whole process (every thread, RocksDB's background ones
// too): with two cores, wall time cannot drop below half of it.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

long PeakRssMib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

int Load(const std::string& dir, int64_t events) {
  projections::BillingOptions o;
  o.dir = dir;
  o.durability = ledger::Durability::kAsync;  // loading only; the bench measures reads
  auto billing = std::move(projections::Billing::Open(o)).value();
  ops::GeneratorOptions g;
  g.seed = 42;
  g.orgs = 10;
  g.months = 24;
  g.usage_events = events;
  g.resources_per_provider = 2000;  // 10 orgs x ~4 providers x 2000: ~100k resources
  ledger::AppendRequest req;
  auto start = std::chrono::steady_clock::now();
  auto flush = [&] {
    billing->Submit(std::move(req));
    req = ledger::AppendRequest();
  };
  ops::Generate(g, [&](const std::string& line) {
    req.entries.push_back(ledger::PrepareEntry(line, ledger::Source()));
    if (req.entries.size() >= 5000) flush();
  });
  flush();
  std::printf("loaded %llu events in %.1f s\n",
              static_cast<unsigned long long>(billing->ledger().head().sequence.value),
              Seconds(start));
  return 0;
}

// Opening a ledger whose last rebuild was cut short by the process exiting
// resumes that rebuild's compactions; they belong to the previous run, so the
// timed rebuild starts once they are done.
void WaitForCompactions(rocksdb::DB* db) {
  for (;;) {
    uint64_t pending = 0, running = 0, flushing = 0;
    db->GetIntProperty("rocksdb.compaction-pending", &pending);
    db->GetIntProperty("rocksdb.num-running-compactions", &running);
    db->GetIntProperty("rocksdb.num-running-flushes", &flushing);
    if (pending == 0 && running == 0 && flushing == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Prints "(N % of raw)" when the raw rate is known.
std::string OfRaw(double rate, double raw_rate) {
  if (raw_rate <= 0) return "";
  return " (" + std::to_string(static_cast<int>(100 * rate / raw_rate + 0.5)) + " % of raw)";
}

int TimeRebuild(projections::Billing& billing, uint64_t events, double raw_rate = 0) {
  WaitForCompactions(billing.ledger().db());
  auto start = std::chrono::steady_clock::now();
  double cpu_start = CpuSeconds();
  Status s = billing.Rebuild();
  double secs = Seconds(start);
  if (!s.ok()) {
    std::printf("rebuild failed: %s\n", s.ToString().c_str());
    return 1;
  }
  double cpu = CpuSeconds() - cpu_start;
  double rate = static_cast<double>(events) / secs;
  std::printf("rebuild: %llu events in %.2f s = %.0f events/s%s, %.2f CPU s\n",
              static_cast<unsigned long long>(events), secs, rate, OfRaw(rate, raw_rate).c_str(),
              cpu);
  // The read models are complete and in table files when Rebuild returns;
  // RocksDB then compacts those files in the background while queries are
  // served. Shown so that work is not hidden from the figure above.
  auto after = std::chrono::steady_clock::now();
  double cpu_after = CpuSeconds();
  WaitForCompactions(billing.ledger().db());
  double more = Seconds(after);
  std::printf(
      "compactions still running after the rebuild: %.2f s more, %.2f CPU s; "
      "rebuild and compactions: %.0f events/s%s\n",
      more, CpuSeconds() - cpu_after, static_cast<double>(events) / (secs + more),
      OfRaw(static_cast<double>(events) / (secs + more), raw_rate).c_str());
  return 0;
}

int RebuildOnly(const std::string& dir) {
  projections::BillingOptions o;
  o.dir = dir;
  auto billing = std::move(projections::Billing::Open(o)).value();
  uint64_t events = billing->ledger().head().sequence.value;
  if (TimeRebuild(*billing, events) != 0) return 1;
  std::printf("peak RSS: %ld MiB\n", PeakRssMib());
  return 0;
}

int Measure(const std::string& dir) {
  // Raw: iterate the records and parse record and event protobufs.
  uint64_t n = 0;
  double raw_rate = 0;
  {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    if (!rocksdb::DB::OpenForReadOnly(o, dir, &raw).ok()) return 1;
    std::unique_ptr<rocksdb::DB> db(raw);
    auto start = std::chrono::steady_clock::now();
    rocksdb::ReadOptions ro;
    std::string upper(1, ledger::format::kRecordPrefix + 1);
    rocksdb::Slice upper_slice(upper);
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
    ledger::Record record;
    events::Envelope envelope;
    for (it->Seek(std::string(1, ledger::format::kRecordPrefix)); it->Valid(); it->Next()) {
      record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()));
      envelope.ParseFromString(record.event());
      ++n;
    }
    double secs = Seconds(start);
    raw_rate = static_cast<double>(n) / secs;
    std::printf("raw scan+parse: %llu events in %.2f s = %.0f events/s\n",
                static_cast<unsigned long long>(n), secs, raw_rate);
  }
  projections::BillingOptions o;
  o.dir = dir;
  auto billing = std::move(projections::Billing::Open(o)).value();
  {
    // The rules alone: the same scan, with every record decided again and its
    // postings dropped (no aggregation, no writes). What a rebuild cannot go
    // below on one thread.
    struct DropSink : projections::Sink {
      void Merge(std::string_view, const projections::Agg&) override {}
      void Put(std::string_view, std::string_view) override {}
    } drop;
    projections::MemoryStore empty;
    projections::Decider decider;
    const ledger::Ledger& led = billing->ledger();
    projections::EventLookup lookup = [&led](ledger::EventKey key) { return led.FindEvent(key); };
    Status failure;
    auto start = std::chrono::steady_clock::now();
    Status scan = led.Scan(ledger::Sequence{0}, 0, [&](const ledger::Record& record) {
      failure = decider.Redecide(record, lookup, drop, empty);
      return failure.ok();
    });
    double secs = Seconds(start);
    if (!scan.ok() || !failure.ok()) {
      std::printf("decide failed: %s %s\n", scan.ToString().c_str(), failure.ToString().c_str());
      return 1;
    }
    std::printf("scan+parse+decide, postings dropped: %.2f s = %.0f events/s%s\n", secs,
                static_cast<double>(n) / secs,
                OfRaw(static_cast<double>(n) / secs, raw_rate).c_str());
  }
  if (TimeRebuild(*billing, n, raw_rate) != 0) return 1;
  std::printf("peak RSS: %ld MiB\n", PeakRssMib());
  {
    // An answer as of a past sequence replays one org (here org-1, a tenth of
    // the history); what it keeps in memory depends on the route's scope.
    const ledger::Ledger& led = billing->ledger();
    uint64_t upto = led.head().sequence.value - 1;
    for (const char* kinds : {"", "B", "ID"}) {
      projections::MemoryStore store;
      projections::ReplayScope scope{.kinds = kinds, .month = std::nullopt};
      if (std::string_view(kinds) == "ID") scope.month = *ParseMonth("2026-06", "month");
      auto begin = std::chrono::steady_clock::now();
      auto state = projections::ReplayOrg(led, "org-1", ledger::Sequence{upto}, &store, scope);
      if (!state.ok()) {
        std::printf("replay failed: %s\n", state.status().ToString().c_str());
        return 1;
      }
      std::printf("as_of replay of org-1, scope \"%s\"%s: %.2f s, %zu keys kept\n", kinds,
                  scope.month ? " (one month)" : "", Seconds(begin), store.size());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "load" && argc == 4) return Load(argv[2], std::stoll(argv[3]));
  if (mode == "measure" && argc == 3) return Measure(argv[2]);
  if (mode == "rebuild" && argc == 3) return RebuildOnly(argv[2]);
  std::fprintf(stderr,
               "usage: rebuild_bench load DIR EVENTS | rebuild_bench measure DIR | rebuild_bench "
               "rebuild DIR\n");
  return 2;
}
