// api::ForwardClient against real peers on loopback: the real HttpServer for
// round trips, streamed, oversized and unanswered requests, and a scripted
// Beast peer for what the server does only when it chooses (closing a
// kept-alive connection as a request arrives, a malformed answer), so keep-alive
// reuse, the one retry and its limits are seen from the peer's side.
#include "http/forward_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <thread>

namespace billing::api {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kDeadline{5000};

PeerUrl Loopback(uint16_t port) { return PeerUrl{"127.0.0.1", port}; }

HttpRequest Get(std::string target) {
  HttpRequest r;
  r.method = "GET";
  r.target = std::move(target);
  return r;
}

// The real server on loopback as the peer, answering with `handler`.
std::unique_ptr<HttpServer> StartPeer(Handler handler, uint16_t port = 0) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.threads = 1;
  auto server = HttpServer::Start(options, std::move(handler), nullptr);
  return server.ok() ? std::move(*server) : nullptr;
}

// What the real peer's handler saw, and an echo of it as the answer.
struct Recorder {
  std::mutex mu;
  std::vector<HttpRequest> seen;
  Handler handler() {
    return [this](HttpRequest&& request, Respond respond) {
      HttpReply reply;
      reply.content_type = "text/plain";
      reply.body = request.method + " " + request.target + " " + request.body;
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(std::move(request));
      respond(std::move(reply));
    };
  }
};

// A peer scripted request by request (across its connections, in order):
// answer 200 "answer N", close the connection after reading the request, or
// answer with a malformed head. It counts connections and keeps each request.
class ScriptedPeer {
 public:
  enum class Step { kAnswer, kClose, kMalformed };
  explicit ScriptedPeer(std::vector<Step> steps) : steps_(std::move(steps)) {
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ScriptedPeer() {
    ioc_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int connections() const { return connections_.load(); }
  std::vector<http::request<http::string_body>> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  struct Conn {
    explicit Conn(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
  };

  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      connections_++;
      Read(std::make_shared<Conn>(std::move(socket)));
      Accept();
    });
  }

  void Read(std::shared_ptr<Conn> c) {
    c->request = {};
    http::async_read(c->socket, c->buffer, c->request, [this, c](beast::error_code ec, size_t) {
      if (ec) return;
      size_t n = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        n = requests_.size();
        requests_.push_back(c->request);
      }
      const Step step = n < steps_.size() ? steps_[n] : Step::kClose;
      if (step == Step::kClose) return c->socket.close();
      auto head = std::make_shared<std::string>("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
      if (step == Step::kMalformed)
        return net::async_write(c->socket, net::buffer(*head),
                                [c, head](beast::error_code, size_t) {});
      auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, 11);
      res->set(http::field::content_type, "text/plain");
      res->set("X-Hop", "1");
      res->set(http::field::connection, "X-Hop");
      res->set("Retry-After", "1");
      res->body() = "answer " + std::to_string(n);
      res->keep_alive(true);
      res->prepare_payload();
      http::async_write(c->socket, *res, [this, c, res](beast::error_code ec, size_t) {
        if (!ec) Read(c);
      });
    });
  }

  std::vector<Step> steps_;
  net::io_context ioc_;
  tcp::acceptor acceptor_{ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<http::request<http::string_body>> requests_;  // guarded by mu_
  std::thread thread_;
};

using Step = ScriptedPeer::Step;

TEST(PeerUrl, ParsesHostAndPortOfAPlainHttpBaseUrl) {
  auto a = PeerUrl::Parse("http://127.0.0.1:8080");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  auto b = PeerUrl::Parse("HTTP://ledger-2.internal:9000/");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->host, "ledger-2.internal");
  EXPECT_EQ(b->port, 9000);
  auto c = PeerUrl::Parse("http://[::1]:80");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->ToString(), "http://[::1]:80");
  EXPECT_EQ(PeerUrl::Parse(c->ToString())->host, "::1");
}

TEST(PeerUrl, RefusesHttpsPathsBadPortsAndEmptyHosts) {
  for (const char* bad :
       {"https://127.0.0.1:8080", "http://a:1/v1", "http://a:1/v1/", "http://a:1?x=1", "http://a",
        "http://a:", "http://a:0", "http://a:65536", "http://a:8x", "http://a:+80", "http://:80",
        "http://[::1]", "http://[zz]:1", "http://u@a:1", "ftp://a:1", "", "127.0.0.1:80",
        "http://a b:1", "http://a:1#f"}) {
    auto url = PeerUrl::Parse(bad);
    EXPECT_FALSE(url.ok()) << bad;
    if (!url.ok()) {
      EXPECT_EQ(url.status().code(), Code::kInvalidArgument) << bad;
    }
  }
  auto https = PeerUrl::Parse("https://a:1");
  ASSERT_FALSE(https.ok());
  EXPECT_NE(https.status().message().find("plain HTTP"), std::string::npos);
}

TEST(ForwardClient, GetAndPostRoundTripWithBodyAndHeaders) {
  Recorder peer;
  auto server = StartPeer(peer.handler());
  ASSERT_NE(server, nullptr);
  ForwardClient client;
  auto got =
      client.Send(Loopback(server->port()), Get("/v1/orgs/acme/dashboard?months=3"), {}, kDeadline);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->content_type, "text/plain");
  EXPECT_EQ(got->body, "GET /v1/orgs/acme/dashboard?months=3 ");

  HttpRequest post;
  post.method = "POST";
  post.target = "/v1/events";
  post.content_type = "application/x-ndjson";
  post.authorization = "Bearer secret-token";
  post.body = "{\"org_id\":\"acme\"}\n{\"org_id\":\"acme\"}\n";
  auto posted = client.Send(Loopback(server->port()), post, {{"Ledger-Forwarded", "1"}}, kDeadline);
  ASSERT_TRUE(posted.ok()) << posted.status().ToString();
  EXPECT_EQ(posted->body, "POST /v1/events " + post.body);
  std::lock_guard<std::mutex> lock(peer.mu);
  ASSERT_EQ(peer.seen.size(), 2u);
  EXPECT_EQ(peer.seen[1].content_type, "application/x-ndjson");
  EXPECT_EQ(peer.seen[1].authorization, "Bearer secret-token");
  EXPECT_EQ(peer.seen[1].body, post.body);
  EXPECT_TRUE(peer.seen[0].authorization.empty());
}

TEST(ForwardClient, PeerHeadersComeBackWithoutHopByHopOnes) {
  auto server = StartPeer([](HttpRequest&&, Respond respond) {
    HttpReply reply;
    reply.status = 503;
    reply.content_type = "text/csv";
    reply.body = "a,b\n";
    reply.headers = {{"Retry-After", "1"},
                     {"Content-Disposition", "attachment; filename=\"invoice.csv\""},
                     {"Keep-Alive", "timeout=5"},
                     {"Upgrade", "h2c"},
                     {"Trailer", "X-Sum"}};
    respond(std::move(reply));
  });
  ASSERT_NE(server, nullptr);
  ForwardClient client;
  auto got = client.Send(Loopback(server->port()), Get("/x"), {}, kDeadline);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->status, 503);
  EXPECT_EQ(got->content_type, "text/csv");
  std::map<std::string, std::string> headers(got->headers.begin(), got->headers.end());
  EXPECT_EQ(headers["Retry-After"], "1");
  EXPECT_EQ(headers["Content-Disposition"], "attachment; filename=\"invoice.csv\"");
  for (const char* hop : {"Keep-Alive", "Upgrade", "Trailer", "Content-Length", "Connection",
                          "Transfer-Encoding", "Content-Type"})
    EXPECT_EQ(headers.count(hop), 0u) << hop;
}

TEST(ForwardClient, ExtraHeadersReachThePeerAndFieldsItsConnectionNamesDoNotComeBack) {
  ScriptedPeer peer({Step::kAnswer});
  ForwardClient client;
  HttpRequest get = Get("/v1/orgs/acme/invoice");
  get.authorization = "Bearer t";
  auto got = client.Send(Loopback(peer.port()), get, {{"Ledger-Forwarded", "1"}}, kDeadline);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  auto seen = peer.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0]["Ledger-Forwarded"], "1");
  EXPECT_EQ(seen[0][http::field::authorization], "Bearer t");
  EXPECT_EQ(seen[0][http::field::host], "127.0.0.1:" + std::to_string(peer.port()));
  std::map<std::string, std::string> headers(got->headers.begin(), got->headers.end());
  EXPECT_EQ(headers.count("X-Hop"), 0u);
  EXPECT_EQ(headers["Retry-After"], "1");
}

TEST(ForwardClient, AChunkedStreamedAnswerArrivesWhole) {
  constexpr int kPieces = 40;
  auto server = StartPeer([](HttpRequest&&, Respond respond) {
    HttpReply reply;
    reply.content_type = "application/x-ndjson";
    auto next = std::make_shared<int>(0);
    reply.stream = [next](std::string* chunk) {
      chunk->append(std::string(10'000, static_cast<char>('a' + *next % 26)));
      return ++*next < kPieces;
    };
    respond(std::move(reply));
  });
  ASSERT_NE(server, nullptr);
  ForwardClient client;
  auto got = client.Send(Loopback(server->port()), Get("/v1/ledger/stream"), {}, kDeadline);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->body.size(), size_t{kPieces} * 10'000);
  for (int i = 0; i < kPieces; ++i)
    EXPECT_EQ(got->body[i * 10'000 + 9'999], static_cast<char>('a' + i % 26)) << i;
}

TEST(ForwardClient, HeadReadsNoBodyAndLeavesTheConnectionUsable) {
  Recorder peer;
  auto server = StartPeer(peer.handler());
  ASSERT_NE(server, nullptr);
  ForwardClient client;
  HttpRequest head = Get("/healthz");
  head.method = "HEAD";
  auto got = client.Send(Loopback(server->port()), head, {}, milliseconds(2000));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->status, 200);
  EXPECT_TRUE(got->body.empty());
  auto after = client.Send(Loopback(server->port()), Get("/healthz"), {}, milliseconds(2000));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->body, "GET /healthz ");
}

TEST(ForwardClient, SequentialRequestsReuseOneConnection) {
  ScriptedPeer peer({Step::kAnswer, Step::kAnswer, Step::kAnswer});
  ForwardClient client;
  for (int i = 0; i < 3; ++i) {
    auto got = client.Send(Loopback(peer.port()), Get("/x"), {}, kDeadline);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->body, "answer " + std::to_string(i));
  }
  EXPECT_EQ(peer.connections(), 1);
}

TEST(ForwardClient, ConcurrentSendersEachGetTheirOwnAnswer) {
  Recorder peer;
  auto server = StartPeer(peer.handler());
  ASSERT_NE(server, nullptr);
  ForwardClient client;
  std::atomic<int> right{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const std::string target = "/t" + std::to_string(t) + "/" + std::to_string(i);
        auto got = client.Send(Loopback(server->port()), Get(target), {}, kDeadline);
        if (got.ok() && got->body == "GET " + target + " ") right++;
      }
    });
  }
  for (auto& s : senders) s.join();
  EXPECT_EQ(right.load(), 40);
}

TEST(ForwardClient, AGetOnAConnectionThePeerClosedIsRetriedOnceOnANewOne) {
  ScriptedPeer peer({Step::kAnswer, Step::kClose, Step::kAnswer});
  ForwardClient client;
  ASSERT_TRUE(client.Send(Loopback(peer.port()), Get("/x"), {}, kDeadline).ok());
  auto got = client.Send(Loopback(peer.port()), Get("/x"), {}, kDeadline);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->body, "answer 2");
  EXPECT_EQ(peer.connections(), 2);
}

TEST(ForwardClient, APostThePeerReadThenClosedOnIsNotRepeated) {
  ScriptedPeer peer({Step::kAnswer, Step::kClose, Step::kAnswer});
  ForwardClient client;
  ASSERT_TRUE(client.Send(Loopback(peer.port()), Get("/x"), {}, kDeadline).ok());
  HttpRequest post = Get("/v1/events");
  post.method = "POST";
  post.body = "{}";
  auto got = client.Send(Loopback(peer.port()), post, {}, kDeadline);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kUnavailable);
  EXPECT_EQ(peer.requests().size(), 2u);  // the POST reached the peer once
}

TEST(ForwardClient, ANewConnectionThatBreaksIsNotRetried) {
  ScriptedPeer peer({Step::kAnswer, Step::kClose, Step::kClose, Step::kAnswer});
  ForwardClient client;
  ASSERT_TRUE(client.Send(Loopback(peer.port()), Get("/x"), {}, kDeadline).ok());
  auto got = client.Send(Loopback(peer.port()), Get("/x"), {}, kDeadline);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kUnavailable);
  EXPECT_EQ(peer.connections(), 2);
}

TEST(ForwardClient, ARestartedPeerGetsEvenAPostOnANewConnection) {
  Recorder first;
  auto server = StartPeer(first.handler());
  ASSERT_NE(server, nullptr);
  const uint16_t port = server->port();
  ForwardClient client;
  ASSERT_TRUE(client.Send(Loopback(port), Get("/x"), {}, kDeadline).ok());
  server.reset();  // closes the kept-alive connection from the peer's side
  Recorder second;
  server = StartPeer(second.handler(), port);
  ASSERT_NE(server, nullptr);
  HttpRequest post = Get("/v1/events");
  post.method = "POST";
  post.body = "{}";
  auto got = client.Send(Loopback(port), post, {}, kDeadline);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->body, "POST /v1/events {}");
}

TEST(ForwardClient, APeerThatNeverAnswersIsUnavailableByTheDeadline) {
  std::mutex mu;
  std::vector<Respond> parked;
  auto server = StartPeer([&](HttpRequest&&, Respond respond) {
    std::lock_guard<std::mutex> lock(mu);
    parked.push_back(std::move(respond));
  });
  ASSERT_NE(server, nullptr);
  ForwardClient client;
  constexpr milliseconds kShort{300};
  const auto start = Clock::now();
  auto got = client.Send(Loopback(server->port()), Get("/x"), {}, kShort);
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kUnavailable);
  EXPECT_NE(got.status().message().find("deadline"), std::string::npos) << got.status().ToString();
  EXPECT_GE(elapsed, kShort);
  EXPECT_LT(elapsed, kShort + milliseconds(1000));
  // Answered and let go while the server lives: a parked Respond holds its
  // connection, which must not outlive the server.
  std::lock_guard<std::mutex> lock(mu);
  for (auto& respond : parked) respond(HttpReply{});
  parked.clear();
}

TEST(ForwardClient, AClosedPortIsUnavailableAtOnce) {
  uint16_t port = 0;
  {
    net::io_context ioc;
    tcp::acceptor taken(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = taken.local_endpoint().port();
  }
  ForwardClient client;
  const auto start = Clock::now();
  auto got = client.Send(Loopback(port), Get("/x"), {}, milliseconds(10'000));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kUnavailable);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
}

TEST(ForwardClient, AnAnswerOverTheLimitIsUnavailableNotCutShort) {
  constexpr size_t kLimit = 64 * 1024;
  auto server = StartPeer([](HttpRequest&& request, Respond respond) {
    HttpReply reply;
    if (request.target == "/whole") {
      reply.body = std::string(kLimit + 1, 'x');
    } else {
      auto sent = std::make_shared<size_t>(0);
      reply.stream = [sent](std::string* chunk) {
        chunk->append(std::string(16 * 1024, 'y'));
        *sent += 16 * 1024;
        return *sent <= kLimit;
      };
    }
    respond(std::move(reply));
  });
  ASSERT_NE(server, nullptr);
  ForwardClientOptions options;
  options.reply_bytes_max = kLimit;
  ForwardClient client(options);
  for (const char* target : {"/whole", "/streamed"}) {
    auto got = client.Send(Loopback(server->port()), Get(target), {}, kDeadline);
    ASSERT_FALSE(got.ok()) << target << ": " << got->status << ", " << got->body.size() << " bytes";
    EXPECT_EQ(got.status().code(), Code::kUnavailable) << target;
    EXPECT_NE(got.status().message().find("larger than"), std::string::npos) << target;
  }
}

TEST(ForwardClient, AMalformedAnswerIsInvalidArgument) {
  ScriptedPeer peer({Step::kMalformed});
  ForwardClient client;
  auto got = client.Send(Loopback(peer.port()), Get("/x"), {}, kDeadline);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kInvalidArgument) << got.status().ToString();
}

TEST(ForwardClient, ARequestThatCouldSmuggleHeadersIsNotSent) {
  ScriptedPeer peer({});
  ForwardClient client;
  HttpRequest bad_target = Get("/x HTTP/1.1\r\nX-Evil: 1\r\n");
  HttpRequest relative = Get("x");
  for (const auto& [request, extra] :
       std::vector<std::pair<HttpRequest, HeaderList>>{{bad_target, {}},
                                                       {relative, {}},
                                                       {Get("/x"), {{"X-A", "1\r\nX-Evil: 1"}}},
                                                       {Get("/x"), {{"Content-Length", "5"}}},
                                                       {Get("/x"), {{"Host", "elsewhere"}}}}) {
    auto got = client.Send(Loopback(peer.port()), request, extra, kDeadline);
    ASSERT_FALSE(got.ok()) << request.target;
    EXPECT_EQ(got.status().code(), Code::kInvalidArgument);
  }
  EXPECT_EQ(peer.connections(), 0);
}

}  // namespace
}  // namespace billing::api
