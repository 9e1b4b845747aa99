// Heavy requests never stall others (issue 14): while verifies of a large
// ledger and `as_of` replays are in flight, dashboards on other connections
// are answered, and a full worker queue is a 503 with Retry-After. Real
// ledgerd over loopback; the proof is the order of the answers, not a timing.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/testing/files.h"
#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using Json = nlohmann::json;
using testing::Http;
using testing::Ledgerd;
using testing::TempDir;

// How many usage events the ledger holds: enough that one verify takes a
// noticeable share of a second on a small machine.
constexpr int kUsageEvents = 200000;
// Ingest bodies may hold at most 10 000 events (events::kBodyEventsMax).
constexpr size_t kLinesPerPost = 10000;

// Loads a seeded synthetic history, NDJSON from `ledgerctl generate`.
std::string LoadHistory(Ledgerd& d) {
  TempDir tmp;
  std::string file = tmp.sub("history.ndjson");
  std::string cmd = testing::LedgerctlPath() +
                    " generate --seed 3 --orgs 2 --months 3 --usage-events " +
                    std::to_string(kUsageEvents) + " > " + file;
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  std::istringstream lines(testing::ReadFile(file));
  std::string line, body, org;
  size_t n = 0;
  auto post = [&] {
    auto r = Http(d.port(), "POST", "/v1/events", body, "application/x-ndjson");
    EXPECT_EQ(r.status, 200) << r.body.substr(0, 200);
    body.clear();
    n = 0;
  };
  while (std::getline(lines, line)) {
    if (org.empty()) org = Json::parse(line)["org_id"];
    body += line + "\n";
    if (++n == kLinesPerPost) post();
  }
  if (n > 0) post();
  return org;
}

// One ledger for the suite: loading it is most of the suite's time.
class HeavyRequests : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ledgerd_ = new Ledgerd();
    org_ = new std::string(LoadHistory(*ledgerd_));
  }
  static void TearDownTestSuite() {
    delete ledgerd_;
    delete org_;
  }
  static Ledgerd* ledgerd_;
  static std::string* org_;
};
Ledgerd* HeavyRequests::ledgerd_ = nullptr;
std::string* HeavyRequests::org_ = nullptr;

TEST_F(HeavyRequests, DashboardsAreAnsweredWhileVerifiesAndReplaysRun) {
  Ledgerd& d = *ledgerd_;
  const std::string org = *org_;
  ASSERT_EQ(Http(d.port(), "GET", "/v1/orgs/" + org + "/dashboard").status, 200);
  constexpr int kHeavy = 16;
  std::atomic<int> heavy_done{0};
  std::atomic<int> heavy_ok{0};
  std::vector<std::thread> heavy;
  for (int i = 0; i < kHeavy; ++i) {
    heavy.emplace_back([&, i] {
      std::string target =
          i % 4 == 3 ? "/v1/orgs/" + org + "/usage-history?as_of=" + std::to_string(100000 + i)
                     : std::string("/v1/ledger/verify");
      auto r = Http(d.port(), "GET", target);
      if (r.status == 200 || r.status == 503) heavy_ok++;
      heavy_done++;
    });
  }
  // Dashboards on their own connections, while the heavy requests are in
  // flight: each must be answered, and all of them before half the heavy
  // ones are (with heavy work on the I/O threads they queued behind it).
  // The proof is that order, not a time: sanitizer builds run it 5x slower.
  int answered = 0;
  for (int i = 0; i < 8; ++i) {
    auto r =
        Http(d.port(), "GET", "/v1/orgs/" + org + "/dashboard?months=3&i=" + std::to_string(i));
    if (r.status == 200) answered++;
  }
  const int heavy_done_when_answered = heavy_done.load();
  for (auto& t : heavy) t.join();
  EXPECT_EQ(answered, 8);
  EXPECT_EQ(heavy_ok.load(), kHeavy);
  EXPECT_LT(heavy_done_when_answered, kHeavy / 2)
      << "dashboards waited for " << heavy_done_when_answered << " of " << kHeavy
      << " heavy requests";
}

TEST_F(HeavyRequests, AFullWorkerQueueIs503WithRetryAfter) {
  Ledgerd& d = *ledgerd_;
  // More verifies at once than workers plus queue slots (http/worker_pool.h).
  constexpr int kVerifies = 2 + 64 + 32;
  std::atomic<int> refused{0}, ok{0}, retry_after{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kVerifies; ++i) {
    threads.emplace_back([&] {
      auto r = Http(d.port(), "GET", "/v1/ledger/verify");
      if (r.status == 200) ok++;
      if (r.status == 503) {
        refused++;
        if (r.headers.count("Retry-After")) retry_after++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok + refused, kVerifies);
  EXPECT_GT(refused.load(), 0);
  EXPECT_EQ(retry_after.load(), refused.load());
  EXPECT_EQ(Http(d.port(), "GET", "/v1/ledger/verify").status, 200);
}

}  // namespace
}  // namespace billing
