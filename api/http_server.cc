#include "api/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

namespace billing::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

int64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start)
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
  Handler handler;
  AccessLog log;
  std::vector<std::thread> threads;
  std::atomic<size_t> connections{0};
  std::atomic<size_t> in_flight{0};
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  bool stopped = false;
  uint16_t port = 0;
  std::string host;

  void Accept();
};

namespace {

// Concrete executor types instead of Asio's type-erased any_io_executor: a
// connection only ever runs on its own io_context.
using Executor = net::io_context::executor_type;
using Socket = net::basic_stream_socket<tcp, Executor>;
using Stream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket&& socket, HttpServer::Impl* server)
      : stream_(std::move(socket)), server_(server) {}
  ~Session() { server_->connections--; }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(true); });
  }

 private:
  void Read(bool first) {
    if (server_->stopping) return Close();
    parser_.emplace();
    parser_->body_limit(kHttpBodyBytesMax);
    parser_->header_limit(kHttpHeaderBytesMax);
    // A keep-alive connection may idle between requests; the first request
    // of a connection gets the read deadline at once.
    stream_.expires_after(first ? kHttpReadTimeout : kHttpIdleTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    started_ = std::chrono::steady_clock::now();
    // From the first header byte on, the whole request must arrive in time.
    stream_.expires_after(kHttpReadTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof) {
      return Close();
    }
    HttpRequest req;
    if (parser_) {
      req.method = std::string(parser_->get().method_string());
      req.target = std::string(parser_->get().target());
    }
    keep_alive_ = false;
    int status = 400;
    std::string code = "invalid_argument";
    std::string message = "malformed HTTP request: " + ec.message();
    if (ec == http::error::body_limit) {
      status = 413;
      code = "payload_too_large";
      message = "the body is larger than " + std::to_string(kHttpBodyBytesMax) + " bytes";
    } else if (ec == http::error::header_limit) {
      status = 431;
      code = "headers_too_large";
      message = "the request headers are larger than " + std::to_string(kHttpHeaderBytesMax) + " bytes";
    }
    request_ = std::move(req);
    started_ = std::chrono::steady_clock::now();
    HttpReply reply;
    reply.status = status;
    reply.body = R"({"error":{"code":")" + code + R"(","message":")" + message + R"("}})";
    server_->in_flight++;
    Send(std::move(reply));
  }

  void OnRead(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.content_type = std::string(msg[http::field::content_type]);
    req.authorization = std::string(msg[http::field::authorization]);
    req.body = std::move(msg.body());
    // Kept for the access log; the body goes to the handler.
    request_ = HttpRequest{req.method, req.target, {}, {}, {}};
    server_->in_flight++;
    // The handler may answer from another thread (ingest answers from the
    // ledger's writer); hop back onto this connection's strand to write.
    // Answers given inline (reads) are already on it and write at once.
    server_->handler(std::move(req), [self = shared_from_this()](HttpReply reply) {
      net::dispatch(self->stream_.get_executor(),
                [self, reply = std::move(reply)]() mutable { self->Send(std::move(reply)); });
    });
  }

  void Send(HttpReply reply) {
    status_ = reply.status;
    bytes_ = 0;
    if (reply.stream) return StartStream(std::move(reply));
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), 11);
    res->set(http::field::server, "billing-ledger");
    res->set(http::field::content_type, reply.content_type);
    for (auto& [k, v] : reply.headers) res->set(k, v);
    res->keep_alive(keep_alive_ && !server_->stopping);
    res->body() = std::move(reply.body);
    res->prepare_payload();
    bytes_ = res->body().size();
    stream_.expires_after(kHttpWriteTimeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      self->Finish(ec, res->need_eof());
    });
  }

  void StartStream(HttpReply reply) {
    stream_fn_ = std::move(reply.stream);
    auto res = std::make_shared<http::response<http::empty_body>>(
        static_cast<http::status>(reply.status), 11);
    res->set(http::field::server, "billing-ledger");
    res->set(http::field::content_type, reply.content_type);
    for (auto& [k, v] : reply.headers) res->set(k, v);
    res->keep_alive(keep_alive_ && !server_->stopping);
    res->chunked(true);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    stream_.expires_after(kHttpWriteTimeout);
    http::async_write_header(stream_, *sr, [self = shared_from_this(), res, sr](beast::error_code ec, size_t) {
      if (ec) return self->Finish(ec, true);
      self->need_eof_ = res->need_eof();
      self->NextChunk();
    });
  }

  void NextChunk() {
    chunk_.clear();
    bool more = stream_fn_(&chunk_);
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
                       self->Finish(ec, self->need_eof_);
                     });
  }

  void Finish(beast::error_code ec, bool close) {
    server_->in_flight--;
    if (server_->log) server_->log(request_, status_, bytes_, MicrosSince(started_));
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
    stream_.async_read_some(net::buffer(drain_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec) self->Drain();
    });
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpServer::Impl* server_;
  HttpRequest request_;
  bool keep_alive_ = false;
  bool need_eof_ = false;
  int status_ = 0;
  size_t bytes_ = 0;
  std::string chunk_;
  std::array<char, 16 * 1024> drain_;
  std::function<bool(std::string*)> stream_fn_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace

void HttpServer::Impl::Accept() {
  net::io_context& target = *contexts[next_context];
  next_context = (next_context + 1) % contexts.size();
  acceptor->async_accept(target, [this](beast::error_code ec, Socket socket) {
    if (ec) {
      if (!stopping && acceptor->is_open()) Accept();
      return;
    }
    if (connections.load() >= kHttpConnectionsMax) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      connections++;
      std::make_shared<Session>(std::move(socket), this)->Run();
    }
    Accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const ServerOptions& options, Handler handler,
                                                      AccessLog log) {
  auto impl = std::make_unique<Impl>();
  impl->handler = std::move(handler);
  impl->log = std::move(log);
  int threads = options.threads > 0 ? options.threads
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) {
    impl->contexts.push_back(std::make_unique<net::io_context>(1));
    impl->guards.push_back(net::make_work_guard(*impl->contexts.back()));
  }
  impl->acceptor = std::make_unique<tcp::acceptor>(*impl->contexts[0]);
  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  if (ec) return Status(Code::kInvalidArgument, "bad listen address " + options.host + ": " + ec.message());
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
    impl->threads.emplace_back([c] { c->run(); });
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
