#include "webhooks/sender.h"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <optional>

#include "http/bounded_read.h"

namespace billing::webhooks {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;

// Lets Sender::Cancel stop the io_context of the attempt in flight.
struct Canceller {
  std::mutex mu;
  net::io_context* current = nullptr;  // guarded by mu
  bool cancelled = false;              // guarded by mu
};

// Runs `ioc` until the operation just started sets `done`; false when the
// sender was cancelled first. Every operation has a deadline of its own
// (tcp_stream's expiry, or a timer), so this ends.
bool Await(net::io_context& ioc, const bool& done, Canceller& canceller) {
  {
    // Under the lock: a Cancel either sees this context or comes before the
    // restart (which would undo its stop) and is seen here.
    std::lock_guard<std::mutex> lock(canceller.mu);
    if (canceller.cancelled) return false;
    ioc.restart();
  }
  while (!done && ioc.run_one() > 0) {
  }
  return done;
}

const AttemptResult kStopped{0, "stopped"};

AttemptResult Failed(const std::string& step, const error_code& ec) {
  std::string why = ec == beast::error::timeout ? std::string("timed out") : ec.message();
  return AttemptResult{0, step + ": " + why};
}

// Resolves the endpoint's host within `timeout`. The lookup itself cannot be
// interrupted (getaddrinfo); cancelling stops waiting for it as soon as the
// resolver lets go, and libc's own resolver timeouts bound that.
std::optional<AttemptResult> Resolve(net::io_context& ioc, Canceller& canceller,
                                     const Endpoint& endpoint, std::chrono::milliseconds timeout,
                                     tcp::resolver::results_type* out) {
  tcp::resolver resolver(ioc);
  net::steady_timer guard(ioc);
  bool done = false;
  error_code ec;
  guard.expires_after(timeout);
  guard.async_wait([&](error_code e) {
    if (!e) resolver.cancel();
  });
  resolver.async_resolve(endpoint.host, endpoint.port,
                         [&](error_code e, tcp::resolver::results_type r) {
                           ec = e;
                           *out = std::move(r);
                           done = true;
                         });
  const bool finished = Await(ioc, done, canceller);
  guard.cancel();
  ioc.restart();
  ioc.poll();  // lets the cancelled timer's handler run while `resolver` lives
  if (!finished) return kStopped;
  if (ec)
    return Failed("resolving " + endpoint.host,
                  ec == net::error::operation_aborted ? error_code(beast::error::timeout) : ec);
  return std::nullopt;
}

// Writes the request and reads the answer's head (and at most
// kAnswerBytesMax of it) on a connected stream, within `timeout`.
template <typename Stream>
AttemptResult Exchange(net::io_context& ioc, Canceller& canceller, Stream& stream,
                       beast::tcp_stream& lowest, http::request<http::string_body>& request,
                       std::chrono::milliseconds timeout) {
  bool done = false;
  error_code ec;
  lowest.expires_after(timeout);
  http::async_write(stream, request, [&](error_code e, size_t) {
    ec = e;
    done = true;
  });
  if (!Await(ioc, done, canceller)) return kStopped;
  if (ec) return Failed("sending", ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kAnswerBytesMax);
  parser.header_limit(static_cast<uint32_t>(kAnswerBytesMax));
  done = false;
  // Head first, so that the body_limit holds (http/bounded_read.h): a
  // receiver's answer past kAnswerBytesMax is never read in full.
  api::AsyncReadBounded(stream, buffer, parser, [&](error_code e, size_t) {
    ec = e;
    done = true;
  });
  if (!Await(ioc, done, canceller)) return kStopped;
  // A receiver that answered its status and then sent too much, or closed
  // without a length, still answered.
  const bool has_status = parser.is_header_done();
  if (ec && !has_status) return Failed("reading the answer", ec);
  const int status = static_cast<int>(parser.get().result_int());
  AttemptResult r{status, ""};
  if (!r.delivered()) r.error = "answered " + std::to_string(status);
  return r;
}

http::request<http::string_body> MakeRequest(
    const Endpoint& endpoint, const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  http::request<http::string_body> request{http::verb::post, endpoint.target, 11};
  const bool default_port = endpoint.port == (endpoint.scheme == Scheme::kHttps ? "443" : "80");
  const std::string host =
      endpoint.host.find(':') != std::string::npos ? "[" + endpoint.host + "]" : endpoint.host;
  request.set(http::field::host, default_port ? host : host + ":" + endpoint.port);
  request.set(http::field::user_agent, "billing-ledger-webhooks/1");
  request.set(http::field::content_type, "application/json");
  request.set(http::field::connection, "close");
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  request.prepare_payload();
  return request;
}

}  // namespace

struct Sender::Impl {
  ssl::context tls{ssl::context::tls_client};
  std::string tls_setup_error;  // non-empty: https cannot be verified, so it is not attempted
  Canceller canceller;

  Impl() {
    error_code ec;
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                    ec);
    if (!ec) tls.set_default_verify_paths(ec);  // the system's CA store
    if (!ec) tls.set_verify_mode(ssl::verify_peer, ec);
    if (ec) tls_setup_error = "setting up TLS verification: " + ec.message();
  }
};

Sender::Sender() : impl_(std::make_unique<Impl>()) {}
Sender::~Sender() = default;

void Sender::Cancel() {
  std::lock_guard<std::mutex> lock(impl_->canceller.mu);
  impl_->canceller.cancelled = true;
  if (impl_->canceller.current != nullptr) impl_->canceller.current->stop();
}

AttemptResult Sender::Post(const Endpoint& endpoint, const std::string& body,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           Timeouts timeouts) {
  net::io_context ioc;
  Canceller& canceller = impl_->canceller;
  {
    std::lock_guard<std::mutex> lock(canceller.mu);
    canceller.current = &ioc;
  }
  struct Forget {  // the context dies with this call
    Canceller& c;
    ~Forget() {
      std::lock_guard<std::mutex> lock(c.mu);
      c.current = nullptr;
    }
  } forget{canceller};
  tcp::resolver::results_type addresses;
  if (auto failed = Resolve(ioc, canceller, endpoint, timeouts.connect, &addresses)) return *failed;
  auto request = MakeRequest(endpoint, body, headers);
  bool done = false;
  error_code ec;
  auto connect = [&](beast::tcp_stream& lowest) {
    lowest.expires_after(timeouts.connect);
    lowest.async_connect(addresses, [&](error_code e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    return Await(ioc, done, canceller);
  };
  if (endpoint.scheme == Scheme::kHttp) {
    beast::tcp_stream stream(ioc);
    if (!connect(stream)) return kStopped;
    if (ec) return Failed("connecting", ec);
    return Exchange(ioc, canceller, stream, stream, request, timeouts.response);
  }
  if (!impl_->tls_setup_error.empty()) return AttemptResult{0, impl_->tls_setup_error};
  beast::ssl_stream<beast::tcp_stream> stream(ioc, impl_->tls);
  // SNI, and the certificate must name the URL's host (or IP address).
  if (!SSL_set_tlsext_host_name(stream.native_handle(), endpoint.host.c_str()))
    return AttemptResult{0, "TLS: cannot set the server name"};
  stream.set_verify_callback(ssl::host_name_verification(endpoint.host));
  auto& lowest = beast::get_lowest_layer(stream);
  if (!connect(lowest)) return kStopped;
  if (ec) return Failed("connecting", ec);
  done = false;
  lowest.expires_after(timeouts.connect);
  stream.async_handshake(ssl::stream_base::client, [&](error_code e) {
    ec = e;
    done = true;
  });
  if (!Await(ioc, done, canceller)) return kStopped;
  if (ec) return Failed("TLS handshake", ec);
  return Exchange(ioc, canceller, stream, lowest, request, timeouts.response);
}

}  // namespace billing::webhooks
