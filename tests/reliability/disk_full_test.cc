// A full disk under the real ledgerd: its data directory is on a small tmpfs
// made by the test (root only: skipped, saying why, where mounting is not
// allowed), which a filler file fills to the last byte. Ingest then answers
// 503 with a log line naming the cause, nothing refused reaches the ledger,
// reads keep working, and once the filler is removed the very same events
// are accepted as new, without a restart. A SIGKILL and restart afterwards
// find exactly the acknowledged events and a verifying chain.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/kafka/kafka_test_support.h"
#include "tests/testing/files.h"
#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace billing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::Http;
using testing::Ledgerd;
using testing::ReadFile;
using testing::TempDir;
using testing::WaitUntil;

// Room for RocksDB's files of a small ledger (WAL, MANIFEST, OPTIONS, a
// few small SSTs) with margin, and little enough RAM to fill in a moment.
constexpr const char* kTmpfsSize = "size=16m";
constexpr size_t kFillChunkBytes = 64 * 1024;
// Events per POST while the disk is full, and how many POSTs at most before
// one must be refused: 2000 posts of 100 events is far more WAL than the
// tmpfs holds.
constexpr int kBodyEvents = 100;
constexpr int kFillPostsMax = 2000;
constexpr auto kLogTimeout = 10s;

// A tmpfs mounted for the test's lifetime.
class Tmpfs {
 public:
  explicit Tmpfs(const std::string& dir) : dir_(dir) {
    std::filesystem::create_directories(dir);
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, kTmpfsSize) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~Tmpfs() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

// Writes to `path` until the file system refuses; returns the bytes written.
size_t FillUp(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::setvbuf(f, nullptr, _IONBF, 0);
  std::string chunk(kFillChunkBytes, 'x');
  size_t total = 0;
  for (size_t size = kFillChunkBytes; size > 0;) {
    size_t n = std::fwrite(chunk.data(), 1, size, f);
    total += n;
    if (n < size) size /= 2;  // the last chunks, down to the last byte
  }
  std::fclose(f);
  return total;
}

// The ledger's head sequence; -1 while /metrics is not answered.
int64_t Head(const Ledgerd& ledgerd) {
  std::string metrics = ledgerd.Metrics();
  return metrics.empty() ? -1 : testing::MetricValue(metrics, "ledger_head_sequence");
}

TEST(DiskFull, IngestAnswers503LogsWhyAndRecoversOnceSpaceReturns) {
  TempDir tmp;
  Tmpfs fs(tmp.sub("mnt"));
  if (!fs.mounted()) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << fs.error()
                 << "); this test needs root, as in CI";
  }
  const std::string log = tmp.sub("ledgerd.log");
  const testing::LedgerdOptions options{.data_dir = tmp.sub("mnt/data"), .stderr_file = log};
  const std::string org = "full";
  auto ledgerd = std::make_unique<Ledgerd>(options);
  ASSERT_TRUE(ledgerd->started());
  const uint16_t port = ledgerd->port();
  ASSERT_EQ(
      Http(port, "POST", "/v1/events", kafka_testing::StructureNdjson(org), "application/x-ndjson")
          .status,
      200);
  auto usage = [&](int from, int n) {
    std::string body;
    for (int i = from; i < from + n; ++i) body += kafka_testing::Usage(org, i, "1.25") + "\n";
    return body;
  };
  auto post = [&](const std::string& body) {
    return Http(port, "POST", "/v1/events", body, "application/x-ndjson");
  };
  ASSERT_EQ(post(usage(1, 10)).status, 200);
  const int64_t head_before = Head(*ledgerd);
  ASSERT_EQ(head_before, 14);

  const std::string filler = tmp.sub("mnt/filler");
  size_t filled = FillUp(filler);
  ASSERT_GT(filled, 0u);
  std::printf("filled the tmpfs with %zu bytes\n", filled);

  // The disk is full, but RocksDB preallocated some of its WAL: appends
  // succeed until that is used up. Bounded: the tmpfs cannot hold more.
  int next = 11;
  int64_t acked = head_before;
  std::string refused_body;
  for (int attempt = 0; attempt < kFillPostsMax && refused_body.empty(); ++attempt) {
    std::string body = usage(next, kBodyEvents);
    auto r = post(body);
    if (r.status == 200) {
      acked += kBodyEvents;
      next += kBodyEvents;
      continue;
    }
    ASSERT_EQ(r.status, 503) << r.body;
    refused_body = body;
  }
  ASSERT_FALSE(refused_body.empty()) << "the full disk never refused a write";
  std::printf("%lld events acknowledged before the disk refused a write\n",
              static_cast<long long>(acked));
  // Still full: every ingest is refused whole, and says why.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = post(refused_body);
    ASSERT_EQ(r.status, 503) << r.body;
    Json j = Json::parse(r.body, nullptr, false);
    EXPECT_EQ(j["error"]["code"], "unavailable");
    EXPECT_NE(j["error"]["message"].get<std::string>().find("No space left on device"),
              std::string::npos)
        << r.body;
  }
  EXPECT_EQ(Head(*ledgerd), acked) << "a refused event reached the ledger";
  EXPECT_TRUE(WaitUntil(
      [&] { return ReadFile(log).find("cannot write to the ledger") != std::string::npos; },
      kLogTimeout))
      << "no log line about the full disk in:\n"
      << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("No space left on device"), std::string::npos);
  // Reads do not need the disk to have space.
  auto dashboard = Http(port, "GET", "/v1/orgs/" + org + "/dashboard?months=1&end=2026-01");
  EXPECT_EQ(dashboard.status, 200);
  EXPECT_EQ(Http(port, "GET", "/healthz").status, 200);

  // Space returns: the same events go in as new ones, at once.
  std::filesystem::remove(filler);
  auto r = post(refused_body);
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = Json::parse(r.body);
  EXPECT_EQ(j["accepted"], kBodyEvents) << r.body;
  EXPECT_EQ(j["duplicates"], 0) << r.body;
  acked += kBodyEvents;
  next += kBodyEvents;
  EXPECT_EQ(j["last_sequence"], acked);
  EXPECT_TRUE(WaitUntil(
      [&] { return ReadFile(log).find("writes to the ledger succeed again") != std::string::npos; },
      kLogTimeout));
  ASSERT_EQ(post(usage(next, kBodyEvents)).status, 200);
  acked += kBodyEvents;

  // A crash now loses nothing acknowledged and finds nothing else.
  ledgerd->Kill();
  Ledgerd again(options);
  ASSERT_TRUE(again.started());
  EXPECT_EQ(Head(again), acked);
  Json verify = Json::parse(again.Get("/v1/ledger/verify").body, nullptr, false);
  EXPECT_EQ(verify["ok"], true) << verify.dump();
  EXPECT_EQ(verify["events"], acked);
  // Every usage event is worth 1.25, so the month is 1.25 times their number.
  const int64_t usage_events = acked - 4;
  auto month =
      Json::parse(again.Get("/v1/orgs/" + org + "/usage-history/2026-01").body, nullptr, false);
  char want[32];
  std::snprintf(want, sizeof(want), "%lld.%02lld", static_cast<long long>(usage_events * 125 / 100),
                static_cast<long long>(usage_events * 125 % 100));
  EXPECT_EQ(month["total"], want) << month.dump();
  EXPECT_EQ(again.Stop(), 0);
}

}  // namespace
}  // namespace billing
