// Ledger append throughput against raw RocksDB WriteBatch writes of the same
// event bytes with the same sync policy, in the same process (issue 2).
// Usage: ledger_bench [events_per_case] [dir]
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ledger/format.h"
#include "ledger/hash_chain.h"
#include "ledger/ledger.h"

using namespace billing;

namespace {

std::string UsageJson(int64_t i) {
  char buf[512];
  std::snprintf(
      buf, sizeof(buf),
      R"({"event_id":"bench:use:%012lld","org_id":"bench-org","occurred_at":"2026-01-08T12:56:36Z","source":"aws-cur","usage_recorded":{"provider_id":"aws-prod-01","service":"AmazonEC2","sku":"EBS:VolumeUsage.gp3","resource_id":"i-0a09f76a170b%04lld","region":"eu-west-1","quantity":"1530","unit":"GB-Mo","amount":"10.682700000","usage_start":"2026-01-08T11:56:36Z","usage_end":"2026-01-08T12:56:36Z"}})",
      static_cast<long long>(i), static_cast<long long>(i % 10000));
  return buf;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs `threads` appenders, each appending its share of `events` in batches.
template <typename Fn>
double Run(int threads, int64_t events, int batch, Fn append_batch) {
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  int64_t per = events / threads;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int64_t i = t * per; i < (t + 1) * per; i += batch)
        append_batch(i, std::min<int64_t>(batch, (t + 1) * per - i));
    });
  }
  for (auto& th : ts) th.join();
  return static_cast<double>(per * threads) / Seconds(start);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t events = argc > 1 ? std::stoll(argv[1]) : 200000;
  std::string root = argc > 2 ? argv[2] : "/tmp/ledger-bench";
  // Optional: only the case "THREADS,BATCH,on|off", for profiling.
  std::string only = argc > 3 ? argv[3] : "";
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  // Pre-parse every event once: the benchmark measures the ledger, not JSON.
  std::vector<std::string> raw;
  std::vector<events::Event> parsed;
  std::vector<std::string> canonical;
  for (int64_t i = 0; i < events; ++i) {
    raw.push_back(UsageJson(i));
    parsed.push_back(*events::Validate(*events::ParseJson(raw.back())));
    canonical.push_back(events::CanonicalBytes(parsed.back().envelope));
  }
  std::printf("events per case: %lld, event bytes: %zu (JSON %zu)\n",
              static_cast<long long>(events), canonical[0].size(), raw[0].size());
  // The per-event work the ledger cannot skip, on one thread: canonical
  // bytes, content digest, chain hash and the record's encoding.
  std::vector<std::string> records;
  {
    auto start = std::chrono::steady_clock::now();
    std::string prev = ledger::GenesisHash();
    for (int64_t i = 0; i < events; ++i) {
      std::string bytes = events::CanonicalBytes(parsed[static_cast<size_t>(i)].envelope);
      const std::string digest = ledger::Digest(bytes);  // the idempotency digest
      (void)digest;
      ledger::Record r;
      r.set_sequence(static_cast<uint64_t>(i) + 1);
      r.set_recorded_at_micros(1'700'000'000'000'000 + i);
      r.set_prev_hash(prev);
      r.set_hash(ledger::ChainHash(prev, r.sequence(), r.recorded_at_micros(), bytes));
      r.set_event(std::move(bytes));
      prev = r.hash();
      records.push_back(r.SerializeAsString());
    }
    std::printf("hashing + encoding (one thread): %.2f us/event, record bytes %zu\n",
                1e6 * Seconds(start) / static_cast<double>(events), records[0].size());
  }
  std::printf("%-8s %-8s %-6s %14s %14s %8s %16s %8s %14s %8s\n", "threads", "batch", "sync",
              "raw ev/s", "ledger ev/s", "ratio", "re-append ev/s", "speedup", "3 keys ev/s",
              "ratio");
  for (bool sync : {true, false}) {
    for (int threads : {1, 8}) {
      for (int batch : {1, 1000}) {
        std::string name =
            std::to_string(threads) + "," + std::to_string(batch) + (sync ? ",on" : ",off");
        if (!only.empty() && only != name) continue;
        // Batch 1 with sync costs one fsync per event: keep that case short.
        int64_t n = batch == 1 && sync ? std::min<int64_t>(events, 4000) : events;
        std::string raw_dir = root + "/raw", led_dir = root + "/ledger";
        std::filesystem::remove_all(raw_dir);
        std::filesystem::remove_all(led_dir);
        rocksdb::DB* db = nullptr;
        rocksdb::Options o;
        o.create_if_missing = true;
        o.IncreaseParallelism(2);
        if (!rocksdb::DB::Open(o, raw_dir, &db).ok()) return 1;
        rocksdb::WriteOptions wo;
        wo.sync = sync;
        double raw_rate = Run(threads, n, batch, [&](int64_t from, int64_t count) {
          rocksdb::WriteBatch b;
          for (int64_t i = from; i < from + count; ++i)
            b.Put(ledger::format::RecordKey(static_cast<uint64_t>(i) + 1),
                  canonical[static_cast<size_t>(i)]);
          db->Write(wo, &b);
        });
        delete db;
        // The storage floor: raw RocksDB writing the three keys the ledger
        // writes per event (record, event-id index, org index), in the order
        // the ledger puts them in a batch, with no hashing or deciding.
        std::filesystem::remove_all(raw_dir);
        if (!rocksdb::DB::Open(o, raw_dir, &db).ok()) return 1;
        double keys3_rate = Run(threads, n, batch, [&](int64_t from, int64_t count) {
          rocksdb::WriteBatch b;
          std::vector<std::string> ids, orgs;
          for (int64_t i = from; i < from + count; ++i) {
            uint64_t seq = static_cast<uint64_t>(i) + 1;
            b.Put(ledger::format::RecordKey(seq), records[static_cast<size_t>(i)]);
            orgs.push_back(ledger::format::OrgKey("bench-org", seq));
            ids.push_back(ledger::format::EventIdKey(
                "bench-org", parsed[static_cast<size_t>(i)].envelope.event_id()));
          }
          std::sort(orgs.begin(), orgs.end());
          std::sort(ids.begin(), ids.end());
          for (const auto& k : orgs) b.Put(k, "");
          for (const auto& k : ids) b.Put(k, std::string(40, 'v'));
          rocksdb::WriteOptions w = wo;
          w.memtable_insert_hint_per_batch = true;
          db->Write(w, &b);
        });
        delete db;
        ledger::Options lo;
        lo.dir = led_dir;
        lo.durability = sync ? ledger::Durability::kSync : ledger::Durability::kAsync;
        auto led = std::move(ledger::Ledger::Open(lo)).value();
        // Requests are built before the clock starts, as the raw side's bytes
        // are: both sides measure only the write path.
        // Requests by the first event they hold: a thread's share need not be a
        // whole number of batches, so `from / batch` would name another's.
        std::map<int64_t, size_t> request_at;
        auto build = [&]() {
          std::vector<ledger::AppendRequest> reqs;
          int64_t per = n / threads;
          for (int t = 0; t < threads; ++t) {
            for (int64_t i = t * per; i < (t + 1) * per; i += batch) {
              ledger::AppendRequest req;
              for (int64_t k = i; k < std::min<int64_t>(i + batch, (t + 1) * per); ++k) {
                ledger::Entry e;
                e.event = parsed[static_cast<size_t>(k)];
                req.entries.push_back(std::move(e));
              }
              request_at[i] = reqs.size();
              reqs.push_back(std::move(req));
            }
          }
          return reqs;
        };
        std::vector<ledger::AppendRequest> first = build(), again = build();
        std::vector<ledger::AppendRequest>* current = &first;
        auto append = [&](int64_t from, int64_t count) {
          (void)count;
          led->Append(std::move((*current)[request_at.at(from)]));
        };
        double led_rate = Run(threads, n, batch, append);
        current = &again;
        double dup_rate = Run(threads, n, batch, append);
        std::printf("%-8d %-8d %-6s %14.0f %14.0f %7.0f%% %16.0f %7.2fx %14.0f %7.0f%%\n", threads,
                    batch, sync ? "on" : "off", raw_rate, led_rate, 100.0 * led_rate / raw_rate,
                    dup_rate, dup_rate / led_rate, keys3_rate, 100.0 * keys3_rate / raw_rate);
        std::fflush(stdout);
        if (led->head().sequence.value != static_cast<uint64_t>(n / threads * threads)) {
          std::printf("BUG: head %llu\n",
                      static_cast<unsigned long long>(led->head().sequence.value));
          return 1;
        }
      }
    }
  }
  std::filesystem::remove_all(root);
  return 0;
}
