// Hostile clients against the real ledgerd: hundreds of slowloris
// connections trickling a header byte at a time, clients that ask for a
// large ledger stream and never read it, and, in a loop, requests with huge
// headers and pipelined garbage. While all of them run, a normal client's
// every request is answered within a deadline (raw sockets with deadlines,
// so a hung server fails the test instead of hanging it); the huge headers
// get 431, the garbage gets 400 after the good requests before it; and the
// slowloris connections are cut once kHttpReadTimeout has passed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/http_server.h"
#include "tests/api/kafka_test_support.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Child;
using testing::Http;
using testing::TempDir;

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
constexpr auto kStartTimeout = 30s;
// Slowloris connections must be cut by the server's read deadline, plus
// margin for a loaded machine.
constexpr auto kSlowlorisCutDeadline = api::kHttpReadTimeout + 15s;

// A client TCP connection on loopback with non-blocking I/O and deadlines.
class RawConn {
 public:
  explicit RawConn(uint16_t port, int recv_buffer_bytes = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    if (recv_buffer_bytes > 0)
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &recv_buffer_bytes, sizeof(int));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd_);
      fd_ = -1;
      return;
    }
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~RawConn() {
    if (fd_ >= 0) close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  bool ok() const { return fd_ >= 0; }

  // Sends all of `data`; false on an error (the peer closed) or the deadline.
  bool Send(std::string_view data, std::chrono::milliseconds deadline) {
    auto until = Clock::now() + deadline;
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      if (!Wait(POLLOUT, until)) return false;
    }
    return true;
  }

  // Reads until the peer closes, `until_text` has arrived, or the deadline;
  // returns what was read. `closed()` tells which.
  std::string Read(std::chrono::milliseconds deadline, std::string_view until_text = "") {
    auto until = Clock::now() + deadline;
    std::string out;
    char buf[16384];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        if (!until_text.empty() && out.find(until_text) != std::string::npos) return out;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        closed_ = true;
        return out;
      }
      if (!Wait(POLLIN, until)) return out;
    }
  }

  // True once the peer has closed (EOF or reset), checked without waiting.
  bool PeerClosed() {
    char buf[256];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed_ = true;
      return closed_;
    }
  }
  bool closed() const { return closed_; }

 private:
  bool Wait(short events, Clock::time_point until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, events, 0};
    return poll(&p, 1, static_cast<int>(left)) > 0;
  }

  int fd_ = -1;
  bool closed_ = false;
};

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
  TempDir tmp;
  Child ledgerd({testing::BuildDir() + "/ledgerd", "--data-dir", tmp.sub("data"), "--http",
                 "127.0.0.1:0", "--no-access-log"});
  std::string url = ledgerd.WaitForLine("listening on http://127.0.0.1:", kStartTimeout);
  ASSERT_FALSE(url.empty());
  const uint16_t port = static_cast<uint16_t>(std::stoi(url));
  const std::string org = "calm";
  ASSERT_EQ(Http(port, "POST", "/v1/events", kafka_testing::StructureNdjson(org), "application/x-ndjson").status,
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
  bool all_cut = kafka_testing::WaitUntil(
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
  ledgerd.Signal(SIGTERM);
  EXPECT_EQ(ledgerd.Wait(), 0);
}

}  // namespace
}  // namespace billing
