// The real ledgerd over loopback against requests a well-behaved client never sends (issue 13):
// ambiguous framing is 400 and closes, refusals come from the head before any body (also bodies
// where the route takes none and bad targets), endless chunk lines and trailers are refused instead
// of buffered, foreign or missing Hosts and browser-style posts are refused without tokens, HEAD
// and Expect work, and ledgerd refuses unsafe start-up settings.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/testing/files.h"
#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/raw_conn.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::Child;
using testing::RawConn;
using testing::StatusOf;
using testing::TempDir;

// An answer the server gives from the head alone arrives at once; this is
// margin for a loaded machine, far below the 30 s body read deadline that
// a server waiting for the body would run into.
constexpr auto kAnswerDeadline = 5s;

constexpr char kProducerToken[] = "producer-token-0123456789";
constexpr char kViewerToken[] = "viewer-token-0123456789ab";

std::string TokensFile(const TempDir& tmp, mode_t mode = 0600,
                       const std::string& text = std::string(kProducerToken) +
                                                 " producer * feed\n" + kViewerToken +
                                                 " viewer * alice\n") {
  std::string path = tmp.sub("tokens");
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
  return path;
}

// A running ledgerd, and the connection of the last raw exchange with it.
struct Server {
  explicit Server(testing::LedgerdOptions options = {}) : ledgerd(std::move(options)) {}
  uint16_t port() const { return ledgerd.port(); }
  // Sends `request` raw on a new connection and reads until the server
  // closes or the deadline passes.
  std::string Exchange(const std::string& request) {
    conn = std::make_unique<RawConn>(port());
    conn->Send(request, 2000ms);
    return conn->Read(kAnswerDeadline);
  }
  testing::Ledgerd ledgerd;
  std::unique_ptr<RawConn> conn;  // the last Exchange's connection
};

size_t CountOf(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

int LedgerEvents(uint16_t port) {
  return Json::parse(testing::Http(port, "GET", "/v1/ledger/verify").body)["events"].get<int>();
}

const std::string kOneEvent =
    R"({"event_id":"e1","org_id":"acme","occurred_at":"2026-01-01T00:00:00Z","organization_created":{"name":"A","currency":"USD","billing_account":"B"}})";
const std::string kSmuggled = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

TEST(Http, TransferEncodingOtherThanChunkedIs400AndCloses) {
  Server s;
  for (const std::string te : {"xchunked", "chunked, identity", "gzip", "gzip, chunked"}) {
    std::string answer = s.Exchange(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: " +
        te + "\r\n\r\n" + kSmuggled);
    EXPECT_EQ(StatusOf(answer), 400) << te << ": " << answer;
    EXPECT_EQ(CountOf(answer, "HTTP/1.1 "), 1u)
        << te << ": the body was read as a second request: " << answer;
    EXPECT_TRUE(s.conn->closed()) << te;
  }
  // Both framings at once: which one a proxy used is anyone's guess.
  std::string both = s.Exchange(
      "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
      "application/json\r\nContent-Length: 5\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
      kSmuggled);
  EXPECT_EQ(StatusOf(both), 400) << both;
  EXPECT_EQ(CountOf(both, "HTTP/1.1 "), 1u) << both;
  // Plain chunked stays fine.
  std::string body = kOneEvent;
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", body.size());
  std::string chunked = s.Exchange(
      "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
      std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n");
  EXPECT_EQ(StatusOf(chunked), 200) << chunked;
  EXPECT_EQ(LedgerEvents(s.port()), 1);
}

TEST(Http, ObsFoldHeaderIs400) {
  Server s;
  std::string answer =
      s.Exchange("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Folded: a\r\n b\r\n\r\n");
  EXPECT_EQ(StatusOf(answer), 400) << answer;
  EXPECT_TRUE(s.conn->closed());
}

TEST(Http, Http11WithoutHostIs400) {
  Server s;
  std::string answer = s.Exchange("GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(StatusOf(answer), 400) << answer;
  std::string two =
      s.Exchange("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: localhost\r\n\r\n");
  EXPECT_EQ(StatusOf(two), 400) << two;
}

TEST(Http, Http10WithoutHostIsRefusedWithoutTokens) {
  Server s;
  // Without tokens only loopback Host values are answered; no Host at all
  // names nothing that shows the request is not a rebinding.
  EXPECT_EQ(StatusOf(s.Exchange("GET /healthz HTTP/1.0\r\n\r\n")), 421);
  std::string post =
      s.Exchange("POST /v1/events HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(kOneEvent.size()) + "\r\n\r\n" + kOneEvent);
  EXPECT_EQ(StatusOf(post), 421) << post;
  EXPECT_EQ(LedgerEvents(s.port()), 0);
  EXPECT_EQ(StatusOf(s.Exchange("GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")), 200);
  // With tokens HTTP/1.0 needs no Host: the token decides.
  TempDir config;
  Server with_tokens({.tokens_file = TokensFile(config)});
  EXPECT_EQ(StatusOf(with_tokens.Exchange("GET /healthz HTTP/1.0\r\n\r\n")), 200);
}

TEST(Http, ChunkedOnHttp10Is400AndCloses) {
  Server s;
  // HTTP/1.0 has no chunked coding (RFC 9112 §6.1): a proxy may read the
  // body up to the close, so decoding chunks would let the rest smuggle.
  std::string answer = s.Exchange(
      "POST /v1/events HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n" +
      kSmuggled);
  EXPECT_EQ(StatusOf(answer), 400) << answer;
  EXPECT_EQ(CountOf(answer, "HTTP/1.1 "), 1u) << answer;
  EXPECT_TRUE(s.conn->closed());
}

TEST(Http, BodyWhereTheRouteTakesNoneIsRefusedFromTheHead) {
  Server s;
  // Each head announces a body that never comes: a server waiting for it
  // would answer only at its read deadline, after holding budget for it.
  for (const std::string head :
       {"GET /healthz HTTP/1.1\r\nContent-Length: 16777216\r\n",
        "GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
        "POST /healthz HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n",
        "GET /web/app.js HTTP/1.1\r\nContent-Length: 100\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
        "GET /v1/orgs/acme/dashboard HTTP/1.1\r\nContent-Length: 100\r\n",
        "POST /v1/ledger/rejected/1/retry HTTP/1.1\r\nContent-Type: "
        "application/json\r\nContent-Length: 100\r\n"}) {
    RawConn c(s.port());
    ASSERT_TRUE(c.Send(head + "Host: 127.0.0.1\r\n\r\n", 2000ms));
    std::string answer = c.Read(kAnswerDeadline);
    EXPECT_EQ(StatusOf(answer), 400) << head << answer;
    EXPECT_TRUE(c.closed()) << head;
  }
  // A target that does not parse is 400 from the head too, body or not.
  for (const std::string target : {"/v1/events%zz", "/v1/events?x=%"}) {
    RawConn c(s.port());
    ASSERT_TRUE(c.Send("POST " + target +
                           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           "Content-Length: 16777216\r\n\r\n",
                       2000ms));
    std::string answer = c.Read(kAnswerDeadline);
    EXPECT_EQ(StatusOf(answer), 400) << target << answer;
    EXPECT_TRUE(c.closed()) << target;
  }
  // Bodiless requests to the same routes are served as before.
  EXPECT_EQ(StatusOf(s.Exchange("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n")),
            200);
  EXPECT_EQ(
      testing::Http(s.port(), "POST", "/v1/ledger/rejected/1/retry", "", "application/json").status,
      404);
}

TEST(Http, EndlessChunkLineOrTrailerIsRefusedNotBuffered) {
  Server s;
  const std::string head =
      "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  // Far more than any chunk-size line or trailer section needs; a server
  // that buffers it answers only at its read deadline.
  constexpr size_t kFloodBytes = 8 << 20;
  struct Case {
    std::string what, start;
  };
  for (const Case& c : {Case{"chunk extension", "1;"}, Case{"chunk size", "1"},
                        Case{"trailer", "1\r\na\r\n0\r\nX-T: "}}) {
    RawConn conn(s.port());
    std::string answer =
        testing::FloodUntilAnswered(conn, head + c.start, 'a', kFloodBytes, kAnswerDeadline);
    int status = StatusOf(answer);
    EXPECT_TRUE(status == 400 || status == 431) << c.what << ": " << answer;
  }
  // Ordinary chunks, many and large, still make a body.
  const std::string body = kOneEvent + std::string(4 << 20, ' ');
  std::string chunked;
  constexpr size_t kChunkBytes = 1 << 20;
  for (size_t at = 0; at < body.size(); at += kChunkBytes) {
    std::string piece = body.substr(at, kChunkBytes);
    char size[16];
    std::snprintf(size, sizeof(size), "%zx", piece.size());
    chunked += std::string(size) + ";ext=1\r\n" + piece + "\r\n";
  }
  RawConn conn(s.port());
  ASSERT_TRUE(
      conn.Send("POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                    chunked + "0\r\nX-T: 1\r\n\r\n",
                10000ms));
  std::string answer = conn.Read(30000ms);
  EXPECT_EQ(StatusOf(answer), 200) << answer.substr(0, 300);
}

TEST(Http, PostWithoutJsonContentTypeIs415) {
  Server s;
  // What a cross-site `fetch(..., {mode: 'no-cors'})` or a form sends.
  for (const std::string type :
       {"", "Content-Type: text/plain\r\n", "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n"}) {
    // The head alone is refused: the body is never awaited.
    RawConn c(s.port());
    ASSERT_TRUE(c.Send("POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n" + type +
                           "Content-Length: " + std::to_string(kOneEvent.size()) + "\r\n\r\n",
                       2000ms));
    std::string answer = c.Read(kAnswerDeadline, "}}");
    EXPECT_EQ(StatusOf(answer), 415) << "[" << type << "] " << answer;
    c.Send(kOneEvent, 1000ms);
  }
  // A retry re-drives a rejected event: it is a write, held to the same rule.
  EXPECT_EQ(testing::Http(s.port(), "POST", "/v1/ledger/rejected/1/retry", "", "").status, 415);
  EXPECT_EQ(LedgerEvents(s.port()), 0);
  EXPECT_EQ(
      testing::Http(s.port(), "POST", "/v1/events", kOneEvent, "Application/JSON; charset=utf-8")
          .status,
      200);
}

TEST(Http, ForeignHostIsRefusedWithoutTokens) {
  Server s;
  for (const std::string host :
       {"attacker.example", "attacker.example:8080", "localhost.attacker.example",
        "127.0.0.1.nip.io", "10.0.0.1", "[::2]:80"}) {
    auto r = testing::Http(s.port(), "GET", "/healthz", "", "", {{"Host", host}});
    EXPECT_EQ(r.status, 421) << host;
    auto post = testing::Http(s.port(), "POST", "/v1/events", kOneEvent, "application/json",
                              {{"Host", host}});
    EXPECT_EQ(post.status, 421) << host;
  }
  EXPECT_EQ(LedgerEvents(s.port()), 0);
  for (const std::string host :
       {"localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:8080"}) {
    EXPECT_EQ(testing::Http(s.port(), "GET", "/healthz", "", "", {{"Host", host}}).status, 200)
        << host;
  }
  // With tokens the token decides, whatever name the client used.
  TempDir config;
  Server with_tokens({.tokens_file = TokensFile(config)});
  EXPECT_EQ(
      testing::Http(with_tokens.port(), "GET", "/healthz", "", "", {{"Host", "ledger.example.com"}})
          .status,
      200);
}

TEST(Http, HeadAnswersLikeGetWithoutBody) {
  Server s;
  ASSERT_EQ(testing::Http(s.port(), "POST", "/v1/events", kOneEvent).status, 200);
  for (const std::string target : {"/healthz", "/v1/orgs/acme/dashboard", "/"}) {
    auto get = testing::Http(s.port(), "GET", target);
    ASSERT_EQ(get.status, 200) << target;
    std::string head =
        s.Exchange("HEAD " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(StatusOf(head), 200) << target << ": " << head;
    EXPECT_NE(head.find("Content-Length: " + std::to_string(get.body.size()) + "\r\n"),
              std::string::npos)
        << head;
    EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "")
        << target << ": a HEAD answer has no body";
  }
  // A streamed answer's head, and keep-alive after a HEAD.
  std::string stream = s.Exchange(
      "HEAD /v1/ledger/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(StatusOf(stream), 200) << stream;
  size_t end_of_head = stream.find("\r\n\r\n");
  EXPECT_NE(stream.substr(0, end_of_head).find("Transfer-Encoding: chunked"), std::string::npos)
      << stream;
  EXPECT_EQ(stream.substr(end_of_head + 4, 12), "HTTP/1.1 200")
      << "no body between the answers: " << stream;
  // Where GET is not allowed, neither is HEAD.
  EXPECT_EQ(StatusOf(s.Exchange(
                "HEAD /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")),
            405);
}

TEST(Http, ExpectContinueIsAnswered) {
  Server s;
  RawConn c(s.port());
  ASSERT_TRUE(
      c.Send("POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Expect: 100-continue\r\nConnection: close\r\nContent-Length: " +
                 std::to_string(kOneEvent.size()) + "\r\n\r\n",
             2000ms));
  std::string interim = c.Read(kAnswerDeadline, "\r\n\r\n");
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.Send(kOneEvent, 2000ms));
  std::string answer = c.Read(kAnswerDeadline);
  EXPECT_EQ(StatusOf(answer), 200) << answer;
  EXPECT_EQ(LedgerEvents(s.port()), 1);
  // A refused head gets its refusal instead of 100 Continue.
  RawConn refused(s.port());
  ASSERT_TRUE(
      refused.Send("POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                   "Expect: 100-continue\r\nContent-Length: 10\r\n\r\n",
                   2000ms));
  EXPECT_EQ(StatusOf(refused.Read(kAnswerDeadline, "}}")), 415);
  // Any other expectation: 417.
  EXPECT_EQ(
      StatusOf(s.Exchange("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: teapot\r\n\r\n")),
      417);
}

TEST(Auth, BearerSchemeIsCaseInsensitive) {
  TempDir config;
  Server s({.tokens_file = TokensFile(config)});
  for (const std::string scheme : {"Bearer", "bearer", "BEARER", "bEaReR"}) {
    auto r = testing::Http(s.port(), "GET", "/v1/ledger/verify", "", "",
                           {{"Authorization", scheme + " " + kProducerToken}});
    EXPECT_EQ(r.status, 403) << scheme
                             << " (a producer may not verify: authenticated, then denied)";
    auto v = testing::Http(s.port(), "GET", "/v1/orgs/acme/dashboard", "", "",
                           {{"Authorization", scheme + " " + kViewerToken}});
    EXPECT_EQ(v.status, 404) << scheme << ": " << v.body;
  }
  EXPECT_EQ(testing::Http(s.port(), "GET", "/v1/orgs/acme/dashboard", "", "",
                          {{"Authorization", std::string("Basic ") + kViewerToken}})
                .status,
            401);
}

TEST(Auth, TwoAuthorizationHeadersAre400) {
  TempDir config;
  Server s({.tokens_file = TokensFile(config)});
  std::string answer =
      s.Exchange(std::string("GET /v1/orgs/acme/dashboard HTTP/1.1\r\nHost: 127.0.0.1\r\n") +
                 "Authorization: Bearer " + kViewerToken +
                 "\r\nAuthorization: Bearer nobody-knows-this-one\r\n\r\n");
  EXPECT_EQ(StatusOf(answer), 400) << answer;
}

TEST(Auth, UploadWithoutAllowedTokenIsRefusedBeforeItsBody) {
  TempDir config;
  Server s({.tokens_file = TokensFile(config)});
  struct Case {
    std::string authorization;
    int status;
  };
  for (const Case& c :
       {Case{"", 401}, Case{"Authorization: Bearer wrong-token-0123456789\r\n", 401},
        Case{std::string("Authorization: Bearer ") + kViewerToken + "\r\n", 403}}) {
    // A 16 MiB body is announced and never sent: the answer comes anyway.
    RawConn conn(s.port());
    ASSERT_TRUE(conn.Send(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            c.authorization + "Content-Length: 16000000\r\n\r\n",
        2000ms));
    std::string answer = conn.Read(kAnswerDeadline, "}}");
    EXPECT_EQ(StatusOf(answer), c.status) << c.authorization << answer;
  }
}

// ---- ledgerd's start-up checks ----

// How long a ledgerd that should refuse to start is watched for its
// `listening on` line; it refuses within milliseconds.
constexpr auto kStartedDeadline = 10s;

// Runs ledgerd to its exit (it should refuse to start); returns the exit
// code and what it wrote to stderr.
std::pair<int, std::string> RunRefused(const TempDir& tmp, std::vector<std::string> extra) {
  std::vector<std::string> args{testing::LedgerdPath(), "--data-dir", tmp.sub("data")};
  args.insert(args.end(), extra.begin(), extra.end());
  Child child(args, {.stderr_file = tmp.sub("refused.log")});
  // A ledgerd that starts listening did not refuse: stop it, and say so.
  if (!child.WaitForLine("listening on", kStartedDeadline).empty()) {
    child.Signal(SIGKILL);
    child.Wait();
    return {-1, "it started"};
  }
  int code = child.Wait();
  return {code, testing::ReadFile(tmp.sub("refused.log"))};
}

TEST(Ledgerd, WorldWritableTokensFileIsRefused) {
  for (mode_t mode : {0666, 0620, 0602}) {
    TempDir tmp;
    auto [code, err] =
        RunRefused(tmp, {"--http", "127.0.0.1:0", "--tokens", TokensFile(tmp, mode)});
    EXPECT_EQ(code, 2) << std::oct << mode;
    EXPECT_NE(err.find("writable by others"), std::string::npos) << err;
  }
}

TEST(Ledgerd, WorldReadableTokensFileIsRefused) {
  for (mode_t mode : {0644, 0604}) {
    TempDir tmp;
    auto [code, err] =
        RunRefused(tmp, {"--http", "127.0.0.1:0", "--tokens", TokensFile(tmp, mode)});
    EXPECT_EQ(code, 2) << std::oct << mode;
    EXPECT_NE(err.find("readable by every user"), std::string::npos) << err;
  }
  // A group of operators may read it (as PostgreSQL allows for key files).
  TempDir config;
  Server group_readable({.tokens_file = TokensFile(config, 0640)});
  EXPECT_EQ(testing::Http(group_readable.port(), "GET", "/healthz").status, 200);
}

TEST(Ledgerd, ShortTokenIsRefused) {
  TempDir tmp;
  auto [code, err] =
      RunRefused(tmp, {"--http", "127.0.0.1:0", "--tokens", TokensFile(tmp, 0600, "x admin *\n")});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("shorter than 16 characters"), std::string::npos) << err;
}

TEST(Ledgerd, PortOutOfRangeIsRefused) {
  for (const std::string http : {"127.0.0.1:70001", "127.0.0.1:65536", "127.0.0.1:http",
                                 "127.0.0.1:", "127.0.0.1:-1", "127.0.0.1:80x"}) {
    TempDir tmp;
    auto [code, err] = RunRefused(tmp, {"--http", http});
    EXPECT_EQ(code, 2) << http;
    EXPECT_NE(err.find("bad port"), std::string::npos) << http << ": " << err;
  }
}

TEST(Ledgerd, SighupStopsCleanly) {
  Server s;
  ASSERT_EQ(testing::Http(s.port(), "POST", "/v1/events", kOneEvent).status, 200);
  s.ledgerd.Signal(SIGHUP);
  EXPECT_EQ(s.ledgerd.Wait(), 0);
  EXPECT_NE(s.ledgerd.StderrText().find("stopped cleanly"), std::string::npos);
}

TEST(Ledgerd, DataDirIsPrivate) {
  Server s;
  ASSERT_EQ(testing::Http(s.port(), "POST", "/v1/events", kOneEvent).status, 200);
  namespace fs = std::filesystem;
  const auto open_to_others = fs::perms::group_all | fs::perms::others_all;
  EXPECT_EQ(fs::status(s.ledgerd.data_dir()).permissions() & fs::perms::mask, fs::perms::owner_all);
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(s.ledgerd.data_dir())) {
    EXPECT_EQ(entry.status().permissions() & open_to_others, fs::perms::none) << entry.path();
    ++files;
  }
  EXPECT_GT(files, 0);
}

TEST(Ledgerd, AccessLogLinesStayJsonForAnyPath) {
  Server s({.access_log = testing::AccessLog::kOn});
  s.Exchange(
      "GET /v1/orgs/\xff\xfe\x80/dashboard HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
      "close\r\n\r\n");
  ASSERT_EQ(s.ledgerd.Stop(), 0);
  std::istringstream log(s.ledgerd.StderrText());
  std::string line;
  int requests = 0;
  while (std::getline(log, line)) {
    if (line.rfind("{\"method\"", 0) != 0) continue;
    Json entry = Json::parse(line, nullptr, false);
    ASSERT_FALSE(entry.is_discarded()) << line;
    EXPECT_EQ(entry["path"], "/v1/orgs/%FF%FE%80/dashboard");
    ++requests;
  }
  EXPECT_EQ(requests, 1);
}

}  // namespace
}  // namespace billing
