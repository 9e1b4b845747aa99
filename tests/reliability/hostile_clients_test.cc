// Hostile clients against the real ledgerd: hundreds of slowloris
// connections trickling a header byte at a time, clients that ask for a
// large ledger stream and never read it, and, in a loop, requests with huge
// headers and pipelined garbage. While all of them run, a normal client's
// every request is answered within a deadline (raw sockets with deadlines,
// so a hung server fails the test instead of hanging it); the huge headers
// get 431, the garbage gets 400 after the good requests before it; and the
// slowloris connections are cut once kHttpReadTimeout has passed. Also:
// uploads without a token are refused before their bodies, concurrent
// uploads are held to the body budget, bodies nobody may send and idle
// chunked uploads hold none of it, endless chunk lines and trailers are not
// buffered, one client address cannot take every connection, and clients
// filling the rest leave reserved slots for a light one; ledgerd's peak
// memory (VmHWM) stays bounded throughout.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/http_server.h"
#include "http/request_gate.h"
#include "tests/kafka/kafka_test_support.h"
#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/raw_conn.h"
#include "tests/testing/wait.h"

namespace billing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Http;
using testing::Ledgerd;
using testing::RawConn;
using testing::WaitUntil;

constexpr int kSlowlorisConnections = 300;
// The attackers' pace: each slowloris connection sends one byte per round.
constexpr auto kTrickleInterval = 100ms;
constexpr int kNonReaders = 4;
// Events in the ledger, so that the stream a non-reader asks for (~600 bytes
// a record) is far larger than the socket buffers between us and ledgerd.
constexpr int kLedgerEvents = 20000;
constexpr int kNormalRounds = 40;
// How long a normal request may take while the attack runs. It takes about a
// millisecond on an idle machine; the margin is for loaded CI machines and
// sanitizer builds, and still far below any of the server's timeouts.
constexpr auto kPromptDeadline = 3s;
// Slowloris connections must be cut by the server's read deadline, plus
// margin for a loaded machine.
constexpr auto kSlowlorisCutDeadline = api::kHttpReadTimeout + 15s;

// One request on a fresh connection, answered within `deadline`: the status
// code, or 0 when there is no complete answer in time.
int Request(uint16_t port, const std::string& method, const std::string& target,
            const std::string& body, std::chrono::milliseconds deadline) {
  RawConn c(port);
  if (!c.ok()) return 0;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!body.empty()) {
    req += "Content-Type: application/x-ndjson\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
  }
  req += "\r\n" + body;
  auto start = Clock::now();
  if (!c.Send(req, deadline)) return 0;
  auto left =
      deadline - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  std::string answer = c.Read(left);
  if (!c.closed() || answer.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(answer.substr(9, 3));
}

void RaiseFileLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

TEST(HostileClients, OthersAreServedPromptlyAndSlowClientsAreCut) {
  RaiseFileLimit();
  Ledgerd ledgerd;
  ASSERT_TRUE(ledgerd.started());
  const uint16_t port = ledgerd.port();
  const std::string org = "calm";
  ASSERT_EQ(
      Http(port, "POST", "/v1/events", kafka_testing::StructureNdjson(org), "application/x-ndjson")
          .status,
      200);
  for (int from = 1; from <= kLedgerEvents; from += 1000) {
    std::string body;
    for (int i = from; i < from + 1000; ++i) body += kafka_testing::Usage(org, i, "0.01") + "\n";
    ASSERT_EQ(Http(port, "POST", "/v1/events", body, "application/x-ndjson").status, 200);
  }

  // Slowloris: connections that never finish their headers.
  std::vector<std::unique_ptr<RawConn>> slow;
  for (int i = 0; i < kSlowlorisConnections; ++i) {
    slow.push_back(std::make_unique<RawConn>(port));
    ASSERT_TRUE(slow.back()->ok()) << "connection " << i;
  }
  const std::string slow_request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
  std::atomic<bool> stop{false};
  std::thread trickler([&] {
    for (size_t round = 0; !stop; ++round) {
      char byte = round < slow_request.size() ? slow_request[round] : 'a';
      for (auto& c : slow) c->Send(std::string_view(&byte, 1), 10ms);
      std::this_thread::sleep_for(kTrickleInterval);
    }
  });

  // Non-readers: ask for the whole ledger stream, then never read.
  std::vector<std::unique_ptr<RawConn>> stalled;
  for (int i = 0; i < kNonReaders; ++i) {
    stalled.push_back(std::make_unique<RawConn>(port, 4096));
    ASSERT_TRUE(
        stalled.back()->Send("GET /v1/ledger/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 1000ms));
  }

  // Huge headers and pipelined garbage, again and again, checking answers.
  std::mutex problems_mu;
  std::vector<std::string> problems;
  auto problem = [&](std::string what) {
    std::lock_guard<std::mutex> lock(problems_mu);
    if (problems.size() < 10) problems.push_back(std::move(what));
  };
  std::atomic<int> hostile_rounds{0};
  std::thread hostile([&] {
    const std::string huge = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: " +
                             std::string(4 * api::kHttpHeaderBytesMax, 'h') + "\r\n\r\n";
    // Two good requests, then the start of a TLS handshake and junk.
    static constexpr char kGarbage[] =
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not HTTP at all \r\n\r\n\r\n";
    const std::string pipelined =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /readyz HTTP/1.1\r\nHost: "
        "127.0.0.1\r\n\r\n" +
        std::string(kGarbage, sizeof(kGarbage) - 1);
    while (!stop) {
      {
        RawConn c(port);
        c.Send(huge, 2000ms);  // the server may stop reading once the limit is hit
        std::string answer = c.Read(5000ms);
        if (answer.rfind("HTTP/1.1 431", 0) != 0)
          problem("huge headers answered: " + answer.substr(0, 40));
      }
      {
        RawConn c(port);
        if (!c.Send(pipelined, 2000ms)) problem("pipelined garbage could not be sent");
        std::string answer = c.Read(5000ms);
        size_t first = answer.find("HTTP/1.1 200");
        size_t second = answer.find("HTTP/1.1 200", first + 1);
        size_t bad = answer.find("HTTP/1.1 400");
        if (first != 0 || second == std::string::npos || bad == std::string::npos || bad < second ||
            !c.closed()) {
          problem("pipelined garbage answered: " + answer.substr(0, 300));
        }
      }
      hostile_rounds++;
    }
  });

  // The normal client, while all of that runs.
  auto worst = 0ms;
  for (int round = 0; round < kNormalRounds; ++round) {
    const std::string event = kafka_testing::Usage(org, kLedgerEvents + 1 + round, "0.01") + "\n";
    struct Call {
      std::string method, target, body;
    };
    for (const Call& call :
         {Call{"GET", "/healthz", ""}, Call{"GET", "/v1/orgs/" + org + "/dashboard", ""},
          Call{"GET", "/v1/orgs/" + org + "/usage-history/2026-01", ""},
          Call{"POST", "/v1/events", event}}) {
      auto start = Clock::now();
      int status = Request(port, call.method, call.target, call.body, kPromptDeadline);
      auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      worst = std::max(worst, took);
      ASSERT_EQ(status, 200) << call.method << " " << call.target << " in round " << round
                             << " took " << took.count() << " ms (deadline "
                             << kPromptDeadline.count() << " s)";
    }
  }
  std::printf(
      "normal client: %d rounds of 4 requests, slowest %lld ms, beside %d slowloris, %d "
      "non-readers, %d "
      "rounds of huge headers and garbage\n",
      kNormalRounds, static_cast<long long>(worst.count()), kSlowlorisConnections, kNonReaders,
      hostile_rounds.load());
  {
    std::lock_guard<std::mutex> lock(problems_mu);
    for (const auto& p : problems) ADD_FAILURE() << p;
  }
  EXPECT_GT(hostile_rounds.load(), 0);

  // A slow client cannot keep its connection: the read deadline cuts it.
  auto connected_at = Clock::now();
  bool all_cut = WaitUntil(
      [&] {
        for (auto& c : slow) {
          if (!c->PeerClosed()) return false;
        }
        return true;
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(kSlowlorisCutDeadline));
  stop = true;
  trickler.join();
  hostile.join();
  int cut = 0;
  for (auto& c : slow) cut += c->closed() ? 1 : 0;
  EXPECT_TRUE(all_cut)
      << cut << " of " << kSlowlorisConnections << " slowloris connections cut after "
      << std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - connected_at).count()
      << " s";
  // And the server is still itself. The non-readers go first, so that the
  // stop below need not wait out their writes.
  EXPECT_EQ(Request(port, "GET", "/healthz", "", kPromptDeadline), 200);
  stalled.clear();
  EXPECT_EQ(ledgerd.Stop(), 0);
}

// How far ledgerd's peak resident memory may rise during an upload flood:
// generous against allocator slack and ingest's own work, far below the
// ~800 MiB that 50 buffered 16 MiB bodies would take.
constexpr size_t kRssGrowthBytesMax = 200 * 1024 * 1024;
constexpr int kUploads = 50;
constexpr size_t kUploadBytes = api::kHttpBodyBytesMax;
// How long an answer given at the head (401, 503) may take to arrive.
constexpr auto kHeadAnswerDeadline = 5s;

std::string UploadHead(size_t body_bytes, const std::string& extra = "") {
  return "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\n"
         "Content-Length: " +
         std::to_string(body_bytes) + "\r\n" + extra + "\r\n";
}

// ledgerd's resident memory now (VmRSS) and at its peak (VmHWM), in bytes.
size_t Rss(const Ledgerd& ledgerd) { return testing::ProcessMemoryBytes(ledgerd.pid(), "VmRSS"); }
size_t PeakRss(const Ledgerd& ledgerd) {
  return testing::ProcessMemoryBytes(ledgerd.pid(), "VmHWM");
}

TEST(HostileClients, UnauthenticatedUploadIsRefusedBeforeItsBody) {
  RaiseFileLimit();
  Ledgerd ledgerd({.tokens = "producer-token-0123456789 producer * feed\n"});
  ASSERT_TRUE(ledgerd.started());
  const size_t rss_before = Rss(ledgerd);
  const std::string body(kUploadBytes, ' ');
  std::atomic<int> refused_at_head{0};
  std::vector<std::thread> uploaders;
  for (int i = 0; i < kUploads; ++i) {
    uploaders.emplace_back([&] {
      RawConn c(ledgerd.port());
      if (!c.Send(UploadHead(body.size()), 2000ms)) return;
      // The 401 comes before a byte of the body is sent...
      if (testing::StatusOf(c.Read(kHeadAnswerDeadline, "\r\n\r\n")) == 401) refused_at_head++;
      // ...and the body the attacker sends anyway is discarded, not kept.
      c.Send(body, 10000ms);
    });
  }
  for (auto& t : uploaders) t.join();
  EXPECT_EQ(refused_at_head.load(), kUploads);
  const size_t peak = PeakRss(ledgerd);
  EXPECT_LT(peak, rss_before + kRssGrowthBytesMax)
      << "VmRSS before " << rss_before / (1 << 20) << " MiB, VmHWM after " << peak / (1 << 20)
      << " MiB";
  EXPECT_EQ(Request(ledgerd.port(), "GET", "/healthz", "", kPromptDeadline), 200);
}

TEST(HostileClients, ConcurrentUploadsAreHeldToTheBodyBudget) {
  RaiseFileLimit();
  Ledgerd ledgerd;
  ASSERT_TRUE(ledgerd.started());
  const size_t rss_before = Rss(ledgerd);
  // Every uploader sends its head and the first MiB of its body, then stalls:
  // the admitted ones hold their share of the budget while the rest arrive.
  const std::string first_part(1 << 20, ' ');
  std::vector<std::unique_ptr<RawConn>> uploads;
  for (int i = 0; i < kUploads; ++i) {
    uploads.push_back(std::make_unique<RawConn>(ledgerd.port()));
    ASSERT_TRUE(uploads.back()->ok());
    ASSERT_TRUE(uploads.back()->Send(UploadHead(kUploadBytes) + first_part, 2000ms))
        << "upload " << i;
  }
  const int admitted_max = static_cast<int>(api::kHttpBodyBudgetBytes / kUploadBytes);
  std::vector<std::string> answers(kUploads);
  int busy = 0;
  WaitUntil(
      [&] {
        busy = 0;
        for (int i = 0; i < kUploads; ++i) {
          answers[i] += uploads[i]->Read(0ms);
          if (testing::StatusOf(answers[i]) == 503) ++busy;
        }
        return busy >= kUploads - admitted_max;
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(kHeadAnswerDeadline));
  EXPECT_EQ(busy, kUploads - admitted_max);
  for (const auto& answer : answers) {
    if (testing::StatusOf(answer) == 503) {
      EXPECT_NE(answer.find("Retry-After: 1\r\n"), std::string::npos) << answer;
    }
  }
  const size_t peak = PeakRss(ledgerd);
  EXPECT_LT(peak, rss_before + kRssGrowthBytesMax)
      << "VmRSS before " << rss_before / (1 << 20) << " MiB, VmHWM after " << peak / (1 << 20)
      << " MiB";
  // The stalled uploads give up; their budget returns, and uploads work again.
  uploads.clear();
  const std::string event = kafka_testing::StructureNdjson("budget");
  bool served = WaitUntil(
      [&] { return Request(ledgerd.port(), "POST", "/v1/events", event, kPromptDeadline) == 200; },
      10000ms);
  EXPECT_TRUE(served);
}

TEST(HostileClients, OneClientCannotTakeEveryConnection) {
  RaiseFileLimit();
  Ledgerd ledgerd;
  ASSERT_TRUE(ledgerd.started());
  std::vector<std::unique_ptr<RawConn>> held;
  for (size_t i = 0; i < api::kHttpConnectionsPerClientMax; ++i) {
    held.push_back(std::make_unique<RawConn>(ledgerd.port()));
    ASSERT_TRUE(held.back()->ok()) << "connection " << i;
  }
  // One more from the same address is closed unanswered...
  RawConn extra(ledgerd.port());
  ASSERT_TRUE(extra.ok());
  extra.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 1000ms);
  std::string answer = extra.Read(kHeadAnswerDeadline);
  EXPECT_TRUE(extra.closed());
  EXPECT_EQ(answer, "");
  // ...while another client address is served at once.
  RawConn other(ledgerd.port(), 0, "127.0.0.2");
  ASSERT_TRUE(other.ok()) << "cannot bind 127.0.0.2";
  ASSERT_TRUE(
      other.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 1000ms));
  EXPECT_EQ(testing::StatusOf(other.Read(kPromptDeadline)), 200);
  // Once the first client lets connections go, it is served again.
  held.resize(held.size() - 10);
  bool served = WaitUntil(
      [&] { return Request(ledgerd.port(), "GET", "/healthz", "", kPromptDeadline) == 200; },
      10000ms);
  EXPECT_TRUE(served);
}

TEST(HostileClients, EndlessChunkLineOrTrailerDoesNotGrowMemory) {
  Ledgerd ledgerd;
  ASSERT_TRUE(ledgerd.started());
  const size_t rss_before = Rss(ledgerd);
  // 300 MB without a line break: buffered, it would take 300 MB and more.
  constexpr size_t kFloodBytes = 300u << 20;
  const std::string head =
      "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  for (const std::string start : {"1;", "1\r\na\r\n0\r\nX-T: "}) {
    RawConn c(ledgerd.port());
    std::string answer =
        testing::FloodUntilAnswered(c, head + start, 'a', kFloodBytes, kHeadAnswerDeadline);
    EXPECT_EQ(testing::StatusOf(answer), 400) << start << answer.substr(0, 200);
  }
  const size_t peak = PeakRss(ledgerd);
  EXPECT_LT(peak, rss_before + kRssGrowthBytesMax)
      << "VmRSS before " << rss_before / (1 << 20) << " MiB, VmHWM after " << peak / (1 << 20)
      << " MiB";
}

TEST(HostileClients, UnusableAndIdleBodiesHoldNoBodyBudget) {
  RaiseFileLimit();
  Ledgerd ledgerd;
  ASSERT_TRUE(ledgerd.started());
  const int budget_bodies = static_cast<int>(api::kHttpBodyBudgetBytes / api::kHttpBodyBytesMax);
  std::vector<std::unique_ptr<RawConn>> held;
  // Maximal bodies on a route that takes none, no token needed...
  const std::string first_part(1 << 20, ' ');
  for (int i = 0; i < budget_bodies; ++i) {
    held.push_back(std::make_unique<RawConn>(ledgerd.port()));
    held.back()->Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                          std::to_string(api::kHttpBodyBytesMax) + "\r\n\r\n" + first_part,
                      2000ms);
    EXPECT_EQ(testing::StatusOf(held.back()->Read(kHeadAnswerDeadline, "}}")), 400)
        << "body on /healthz " << i;
  }
  // ...and chunked uploads that send their head and nothing more.
  for (int i = 0; i < budget_bodies; ++i) {
    held.push_back(std::make_unique<RawConn>(ledgerd.port()));
    ASSERT_TRUE(held.back()->Send(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
        2000ms));
  }
  // A producer's upload is still admitted at once (503 if they held it).
  EXPECT_EQ(Request(ledgerd.port(), "POST", "/v1/events", kafka_testing::StructureNdjson("budget"),
                    kPromptDeadline),
            200);
}

TEST(HostileClients, FullClientsLeaveReservedSlotsForALightOne) {
  RaiseFileLimit();
  Ledgerd ledgerd;
  ASSERT_TRUE(ledgerd.started());
  // Eight addresses at the per-client maximum would fill every slot.
  constexpr int kHeavyClients =
      static_cast<int>(api::kHttpConnectionsMax / api::kHttpConnectionsPerClientMax);
  std::vector<std::unique_ptr<RawConn>> held;
  for (int client = 1; client <= kHeavyClients; ++client) {
    const std::string source = "127.0.0." + std::to_string(client);
    for (size_t i = 0; i < api::kHttpConnectionsPerClientMax; ++i) {
      held.push_back(std::make_unique<RawConn>(ledgerd.port(), 0, source.c_str()));
      ASSERT_TRUE(held.back()->ok()) << source << " connection " << i;
    }
  }
  // A ninth client with a few connections is served: the reserve is its.
  const std::string light = "127.0.0." + std::to_string(kHeavyClients + 1);
  std::vector<std::unique_ptr<RawConn>> probes;
  for (size_t i = 0; i < api::kHttpReservedConnectionsPerClientMax; ++i) {
    probes.push_back(std::make_unique<RawConn>(ledgerd.port(), 0, light.c_str()));
    ASSERT_TRUE(probes.back()->ok());
    ASSERT_TRUE(probes.back()->Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 1000ms));
    EXPECT_EQ(testing::StatusOf(probes.back()->Read(kPromptDeadline, "}")), 200) << "probe " << i;
  }
  // The heavy clients were accepted in order before the probes; those
  // beyond the unreserved slots were closed at accept.
  size_t open = 0;
  for (auto& c : held) open += c->PeerClosed() ? 0 : 1;
  EXPECT_EQ(open, api::kHttpConnectionsMax - api::kHttpConnectionsReserved);
}

TEST(ClientConnections, Ipv6ClientsAreCountedByTheirSlash64) {
  namespace ip = boost::asio::ip;
  api::ClientConnections connections(api::kHttpConnectionsMax);
  // Every address of one /64 is one client: one host is usually given the whole /64.
  for (size_t i = 0; i < api::kHttpConnectionsPerClientMax; ++i) {
    char address[64];
    std::snprintf(address, sizeof(address), "2001:db8:0:1:%zx::%zx", i, i + 1);
    ASSERT_TRUE(connections.TryAdd(ip::make_address(address))) << address;
  }
  EXPECT_FALSE(connections.TryAdd(ip::make_address("2001:db8:0:1:ffff::1")));
  EXPECT_TRUE(connections.TryAdd(ip::make_address("2001:db8:0:2::1")));
  // IPv4 and IPv4-mapped IPv6 are the same client, counted per address.
  EXPECT_EQ(api::ClientConnections::ClientOf(ip::make_address("::ffff:10.1.2.3")),
            ip::make_address("10.1.2.3"));
  EXPECT_NE(api::ClientConnections::ClientOf(ip::make_address("10.1.2.3")),
            api::ClientConnections::ClientOf(ip::make_address("10.1.2.4")));
  connections.Remove(ip::make_address("2001:db8:0:1:7::1"));
  EXPECT_TRUE(connections.TryAdd(ip::make_address("2001:db8:0:1:abcd::1")));
}

}  // namespace
}  // namespace billing
