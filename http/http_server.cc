#include "http/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include "http/request_gate.h"

namespace billing::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// Logs the exception being handled, once, where it is stopped: an I/O or
// worker thread must outlive whatever a handler throws. Only inside a catch.
void LogException(const char* doing, const std::string& target) noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ledgerd: internal error %s %s: %s\n", doing, target.c_str(), e.what());
  } catch (...) {
    std::fprintf(stderr,
                 "ledgerd: internal error %s %s: an exception that is not a std::exception\n",
                 doing, target.c_str());
  }
}

int64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

}  // namespace

struct HttpServer::Impl {
  // One io_context per thread: a connection lives on one thread for its
  // whole life, so no strands, locks or cross-thread wake-ups on the hot path.
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  size_t next_context = 0;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::steady_timer> accept_retry;  // on contexts[0], as the acceptor
  Handler handler;
  AccessLog log;
  HeaderCheck check;
  HostPolicy hosts = HostPolicy::kAny;
  BodyBudget body_budget{kHttpBodyBudgetBytes};
  ClientConnections clients{kHttpConnectionsMax};
  std::vector<std::thread> threads;
  std::atomic<size_t> connections{0};
  std::atomic<size_t> in_flight{0};
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  bool stopped = false;
  uint16_t port = 0;
  std::string host;

  // Sessions still queued in a context are destroyed with it and reach back
  // into `clients` and `connections`: destroy the contexts first.
  ~Impl() {
    accept_retry.reset();
    acceptor.reset();
    guards.clear();
    contexts.clear();
  }
  void Accept();
};

namespace {

// Concrete executor types instead of Asio's type-erased any_io_executor: a
// connection only ever runs on its own io_context.
using Executor = net::io_context::executor_type;
using Socket = net::basic_stream_socket<tcp, Executor>;
using Stream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;

// The interim answer to `Expect: 100-continue` (RFC 9110 §10.1.1).
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
  }
  return out + "\"";
}

HttpReply ErrorReply(int status, std::string_view code, std::string_view message) {
  HttpReply reply;
  reply.status = status;
  reply.body =
      R"({"error":{"code":)" + JsonString(code) + R"(,"message":)" + JsonString(message) + "}}";
  return reply;
}

// A body that does not fit in what is left of the body budget.
HttpReply BusyReply() {
  HttpReply busy =
      ErrorReply(503, "unavailable", "too many request bodies are being received; retry shortly");
  busy.headers.emplace_back("Retry-After", std::to_string(kBodyBudgetRetryAfterSeconds));
  return busy;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket&& socket, HttpServer::Impl* server, net::ip::address client)
      : stream_(std::move(socket)), server_(server), client_(std::move(client)) {
    // The parser keeps a reference to its chunk callback: it lives here.
    on_chunk_header_ = [this](std::uint64_t size, beast::string_view, beast::error_code& ec) {
      if (!reservation_.TryGrow(&server_->body_budget, static_cast<size_t>(size))) {
        over_budget_ = true;
        ec = net::error::no_buffer_space;
      }
    };
  }
  ~Session() {
    server_->clients.Remove(client_);
    server_->connections--;
  }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(true); });
  }

 private:
  void Read(bool first) {
    if (server_->stopping) return Close();
    parser_.emplace();
    parser_->body_limit(kHttpBodyBytesMax);
    parser_->header_limit(kHttpHeaderBytesMax);
    head_only_ = false;
    // A keep-alive connection may idle between requests; the first request
    // of a connection gets the read deadline at once.
    stream_.expires_after(first ? kHttpReadTimeout : kHttpIdleTimeout);
    ParseHead();
  }

  // The head is read here rather than with http::async_read_header because
  // the obs-fold check needs its raw bytes, which the parser consumes. The
  // parser takes nothing until the whole head is in the buffer.
  void ParseHead() {
    beast::error_code ec = http::error::need_more;
    size_t used = 0;
    if (buffer_.size() > 0) used = parser_->put(buffer_.data(), ec);
    // The parser refuses a head over kHttpHeaderBytesMax before the buffer
    // is full; this only keeps prepare() within the buffer's maximum.
    if (ec == http::error::need_more && buffer_.size() >= buffer_.max_size())
      ec = http::error::header_limit;
    if (ec == http::error::need_more) {
      const size_t room =
          std::min<size_t>(kHttpHeaderBytesMax, buffer_.max_size() - buffer_.size());
      stream_.async_read_some(buffer_.prepare(room),
                              [self = shared_from_this()](beast::error_code ec, size_t n) {
                                self->buffer_.commit(n);
                                if (ec == net::error::eof) ec = http::error::end_of_stream;
                                if (ec) return self->OnReadError(ec);
                                self->ParseHead();
                              });
      return;
    }
    if (ec) return OnReadError(ec);
    std::string_view raw(static_cast<const char*>(buffer_.data().data()), used);
    std::optional<Refusal> refusal = CheckRequestHead(parser_->get(), raw, server_->hosts);
    buffer_.consume(used);
    OnHead(std::move(refusal));
  }

  // The head alone decides whether the body is read: a request refused here
  // costs no body bytes, and the connection closes (unread input left).
  void OnHead(std::optional<Refusal> refusal) {
    started_ = std::chrono::steady_clock::now();
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    head_only_ = msg.method() == http::verb::head;
    request_ =
        HttpRequest{std::string(msg.method_string()), std::string(msg.target()), {}, {}, {}, false};
    const bool has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;
    if (refusal) {
      keep_alive_ = false;
      return Answer(ErrorReply(refusal->status, refusal->code, refusal->message));
    }
    if (server_->check) {
      std::optional<HttpReply> refused;
      try {
        refused = server_->check(RequestOf(msg, {}));
      } catch (...) {
        // The check must not throw; if it does, it must not take the I/O thread with it.
        LogException("checking the head of", request_.target);
        refused = ErrorReply(500, "internal", "internal error");
      }
      if (refused) {
        if (has_body) keep_alive_ = false;
        return Answer(std::move(*refused));
      }
    }
    if (parser_->chunked()) {
      // A chunked body's size is unknown until its end: each chunk takes its
      // share of the budget when its size line arrives (on_chunk_header_),
      // so a chunked upload that sends nothing holds nothing.
      over_budget_ = false;
      parser_->on_chunk_header(on_chunk_header_);
    } else if (has_body) {
      auto reservation =
          server_->body_budget.TryReserve(static_cast<size_t>(*parser_->content_length()));
      if (!reservation) {
        keep_alive_ = false;
        return Answer(BusyReply());
      }
      reservation_ = std::move(*reservation);
    }
    // From the head on, the whole request must arrive in time.
    stream_.expires_after(kHttpReadTimeout);
    if (has_body && msg.count(http::field::expect) > 0) {
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  // What the handler sees of a request; HEAD is served as GET.
  HttpRequest RequestOf(http::request<http::string_body>& msg, std::string body) const {
    HttpRequest req;
    req.method = head_only_ ? "GET" : std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.content_type = std::string(msg[http::field::content_type]);
    req.authorization = std::string(msg[http::field::authorization]);
    req.forwarded = !msg[kForwardedHeader].empty();
    req.body = std::move(body);
    req.has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;
    return req;
  }

  // Answers a request the server refused itself, before the handler.
  void Answer(HttpReply reply) {
    server_->in_flight++;
    Send(std::move(reply));
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof) {
      return Close();
    }
    request_ = HttpRequest{};
    if (parser_ && parser_->is_header_done()) {
      request_.method = std::string(parser_->get().method_string());
      request_.target = std::string(parser_->get().target());
    }
    keep_alive_ = false;
    head_only_ = false;
    started_ = std::chrono::steady_clock::now();
    if (over_budget_) {
      over_budget_ = false;
      return Answer(BusyReply());
    }
    if (ec == http::error::buffer_overflow) {
      return Answer(ErrorReply(
          400, "invalid_argument",
          "a chunk-size line (with its extensions) or the trailer section is longer than " +
              std::to_string(kHttpReadBufferBytesMax) + " bytes"));
    }
    if (ec == http::error::body_limit) {
      return Answer(
          ErrorReply(413, "payload_too_large",
                     "the body is larger than " + std::to_string(kHttpBodyBytesMax) + " bytes"));
    }
    if (ec == http::error::header_limit) {
      return Answer(ErrorReply(
          431, "headers_too_large",
          "the request headers are larger than " + std::to_string(kHttpHeaderBytesMax) + " bytes"));
    }
    Answer(ErrorReply(400, "invalid_argument", "malformed HTTP request: " + ec.message()));
  }

  void OnRead(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    HttpRequest req = RequestOf(msg, std::move(msg.body()));
    server_->in_flight++;
    // The handler may answer from another thread (ingest answers from the
    // ledger's writer); hop back onto this connection's strand to write.
    // Answers given inline (reads) are already on it and write at once.
    // One answer per request: after a handler that threw, the 500 below
    // must not race an answer it had already given.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    try {
      server_->handler(std::move(req), [self = shared_from_this(), answered](HttpReply reply) {
        if (answered->exchange(true)) return;
        net::dispatch(self->stream_.get_executor(),
                      [self, reply = std::move(reply)]() mutable { self->Send(std::move(reply)); });
      });
    } catch (...) {
      // The handler must not throw; if it does, the client still gets an answer.
      LogException("handling", request_.target);
      if (!answered->exchange(true)) Send(ErrorReply(500, "internal", "internal error"));
    }
  }

  void Send(HttpReply reply) {
    status_ = reply.status;
    bytes_ = 0;
    if (head_only_) return SendHead(std::move(reply));
    if (reply.stream) return StartStream(std::move(reply));
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), 11);
    SetHeaders(*res, reply);
    res->body() = std::move(reply.body);
    res->prepare_payload();
    bytes_ = res->body().size();
    stream_.expires_after(kHttpWriteTimeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        self->Finish(ec, res->need_eof());
                      });
  }

  template <class Response>
  void SetHeaders(Response& res, const HttpReply& reply) {
    res.set(http::field::server, "billing-ledger");
    res.set(http::field::content_type, reply.content_type);
    for (auto& [k, v] : reply.headers) res.set(k, v);
    res.keep_alive(keep_alive_ && !server_->stopping);
  }

  // HEAD: the head GET would have, without the body (RFC 9110 §9.3.2).
  void SendHead(HttpReply reply) {
    auto res = std::make_shared<http::response<http::empty_body>>(
        static_cast<http::status>(reply.status), 11);
    SetHeaders(*res, reply);
    if (reply.stream) {
      res->chunked(true);
    } else {
      res->content_length(reply.body.size());
    }
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    stream_.expires_after(kHttpWriteTimeout);
    http::async_write_header(stream_, *sr,
                             [self = shared_from_this(), res, sr](beast::error_code ec, size_t) {
                               self->Finish(ec, res->need_eof());
                             });
  }

  void StartStream(HttpReply reply) {
    stream_fn_ = std::move(reply.stream);
    offload_ = std::move(reply.offload);
    auto res = std::make_shared<http::response<http::empty_body>>(
        static_cast<http::status>(reply.status), 11);
    SetHeaders(*res, reply);
    res->chunked(true);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    stream_.expires_after(kHttpWriteTimeout);
    http::async_write_header(stream_, *sr,
                             [self = shared_from_this(), res, sr](beast::error_code ec, size_t) {
                               if (ec) return self->Finish(ec, true);
                               self->need_eof_ = res->need_eof();
                               self->NextChunk();
                             });
  }

  void NextChunk() {
    if (offload_) {
      // Reading the next piece (RocksDB, up to a few hundred records) runs
      // on a worker; this connection waits for it without holding its I/O
      // thread, then writes it from its own thread again.
      auto self = shared_from_this();
      auto produce = [self] {
        auto piece = std::make_shared<std::string>();
        bool more = self->Produce(piece.get());
        net::dispatch(self->stream_.get_executor(), [self, piece, more] {
          self->chunk_ = std::move(*piece);
          self->WriteChunk(more);
        });
      };
      if (offload_(produce)) return;
    }
    chunk_.clear();
    WriteChunk(Produce(&chunk_));
  }

  // The next piece of a streamed body; an exception (it would otherwise
  // escape into an I/O or worker thread) ends the stream where it is.
  bool Produce(std::string* piece) {
    try {
      return stream_fn_(piece);
    } catch (...) {
      LogException("streaming the answer to", request_.target);
      return false;
    }
  }

  void WriteChunk(bool more) {
    bytes_ += chunk_.size();
    stream_.expires_after(kHttpWriteTimeout);
    if (!chunk_.empty()) {
      net::async_write(stream_, http::make_chunk(net::buffer(chunk_)),
                       [self = shared_from_this(), more](beast::error_code ec, size_t) {
                         if (ec) return self->Finish(ec, true);
                         if (more) return self->NextChunk();
                         self->LastChunk();
                       });
    } else if (more) {
      NextChunk();
    } else {
      LastChunk();
    }
  }

  void LastChunk() {
    net::async_write(stream_, http::make_chunk_last(),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->stream_fn_ = nullptr;
                       self->offload_ = nullptr;
                       self->Finish(ec, self->need_eof_);
                     });
  }

  void Finish(beast::error_code ec, bool close) {
    server_->in_flight--;
    // The body is answered for: its bytes are no longer buffered for it.
    reservation_.Release();
    if (server_->log) {
      try {
        server_->log(request_, status_, bytes_, MicrosSince(started_));
      } catch (...) {
        LogException("logging", request_.target);
      }
    }
    // A connection that carried a large body keeps no large buffer idle.
    if (buffer_.size() == 0) buffer_.shrink_to_fit();
    if (ec || close || !keep_alive_ || server_->stopping) return Close();
    Read(false);
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    // Lingering close: a client may still be sending a body we refused (413).
    // Closing with unread input would reset the connection and could destroy
    // our answer before the client reads it, so drain for a moment first.
    stream_.expires_after(kLingerTimeout);
    Drain();
  }

  void Drain() {
    stream_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec) self->Drain();
                            });
  }

  Stream stream_;
  beast::flat_buffer buffer_{kHttpReadBufferBytesMax};
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpServer::Impl* server_;
  net::ip::address client_;
  BodyBudget::Reservation reservation_;
  // Grows reservation_ by each chunk's size; sets over_budget_ when the
  // budget cannot cover it.
  std::function<void(std::uint64_t, beast::string_view, beast::error_code&)> on_chunk_header_;
  bool over_budget_ = false;
  HttpRequest request_;  // method and target, for the access log
  bool keep_alive_ = false;
  bool head_only_ = false;  // a HEAD request: answer without the body
  bool need_eof_ = false;
  int status_ = 0;
  size_t bytes_ = 0;
  std::string chunk_;
  std::array<char, 16 * 1024> drain_;
  std::function<bool(std::string*)> stream_fn_;
  std::function<bool(std::function<void()>)> offload_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace

void HttpServer::Impl::Accept() {
  net::io_context& target = *contexts[next_context];
  next_context = (next_context + 1) % contexts.size();
  acceptor->async_accept(target, [this](beast::error_code ec, Socket socket) {
    if (ec) {
      if (stopping || !acceptor->is_open()) return;
      // Out of descriptors, most likely: retrying at once would only spin.
      accept_retry->expires_after(kAcceptRetryDelay);
      accept_retry->async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && !stopping) Accept();
      });
      return;
    }
    beast::error_code peer_ec;
    tcp::endpoint peer = socket.remote_endpoint(peer_ec);
    if (peer_ec || !clients.TryAdd(peer.address())) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      connections++;
      std::make_shared<Session>(std::move(socket), this, peer.address())->Run();
    }
    Accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const ServerOptions& options, Handler handler,
                                                      AccessLog log, HeaderCheck check) {
  auto impl = std::make_unique<Impl>();
  impl->handler = std::move(handler);
  impl->log = std::move(log);
  impl->check = std::move(check);
  impl->hosts = options.hosts;
  int threads = options.threads > 0
                    ? options.threads
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) {
    impl->contexts.push_back(std::make_unique<net::io_context>(1));
    impl->guards.push_back(net::make_work_guard(*impl->contexts.back()));
  }
  impl->acceptor = std::make_unique<tcp::acceptor>(*impl->contexts[0]);
  impl->accept_retry = std::make_unique<net::steady_timer>(*impl->contexts[0]);
  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  if (ec)
    return Status(Code::kInvalidArgument,
                  "bad listen address " + options.host + ": " + ec.message());
  tcp::endpoint endpoint(address, options.port);
  tcp::acceptor& acceptor = *impl->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(Code::kUnavailable, "cannot listen on " + options.host + ":" +
                                          std::to_string(options.port) + ": " + ec.message());
  }
  impl->port = acceptor.local_endpoint().port();
  impl->host = options.host;
  impl->Accept();
  for (auto& ctx : impl->contexts) {
    net::io_context* c = ctx.get();
    // A handler that throws despite the guards above ends only its own
    // connection: run() passes the exception out, and is called again.
    impl->threads.emplace_back([c] {
      for (;;) {
        try {
          c->run();
          return;
        } catch (...) {
          LogException("an I/O thread, running a handler for", "a connection");
        }
      }
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port; }
std::string HttpServer::host() const { return impl_->host; }

void HttpServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping = true;
  net::post(*impl_->contexts[0], [p = impl_.get()] {
    beast::error_code ignored;
    p->acceptor->close(ignored);
  });
  // In-flight requests (an ingest waiting for its fsync, say) finish and are
  // answered; idle keep-alive connections close at their next read.
  auto deadline = std::chrono::steady_clock::now() + kShutdownGrace;
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& ctx : impl_->contexts) ctx->stop();
  for (auto& t : impl_->threads) t.join();
}

}  // namespace billing::api
