#include "tests/webhooks/receiver.h"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <thread>

namespace billing::testing {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

}  // namespace

struct Receiver::Impl {
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  std::atomic<Mode> mode;
  mutable std::mutex mu;
  std::vector<Request> received;  // guarded by mu
  TooLargeAnswers too_large;      // guarded by mu

  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket socket, Impl* owner) : stream(std::move(socket)), impl(owner) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
    Impl* impl;

    void Read() {
      http::async_read(stream, buffer, request,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (!ec) self->Answer();
                       });
    }
    void Answer() {
      {
        std::lock_guard<std::mutex> lock(impl->mu);
        impl->received.push_back(
            Request{std::string(request.method_string()), std::string(request.target()),
                    std::string(request[http::field::content_type]),
                    std::string(request["Billing-Delivery-Id"]),
                    std::string(request["Billing-Signature"]), request.body()});
      }
      const Mode mode = impl->mode.load();
      if (mode == Mode::kNeverAnswer) {
        // Keep the connection (and this session) alive, unanswered, until the
        // receiver goes: the sender must give up by its own deadline.
        impl->held.push_back(shared_from_this());
        return;
      }
      const bool ok = mode == Mode::kAnswer200 || mode == Mode::kAnswer200TooLarge;
      response.version(11);
      response.result(ok ? http::status::ok : http::status::internal_server_error);
      response.keep_alive(false);
      response.body() = mode == Mode::kAnswer200TooLarge ? std::string(kTooLargeAnswerBytes, 'x')
                        : ok                             ? ""
                                                         : "receiver says no";
      response.prepare_payload();
      http::async_write(stream, response,
                        [self = shared_from_this(), mode](beast::error_code ec, size_t) {
                          if (mode == Mode::kAnswer200TooLarge) {
                            std::lock_guard<std::mutex> lock(self->impl->mu);
                            (ec ? self->impl->too_large.cut : self->impl->too_large.whole)++;
                          }
                          beast::error_code ignored;
                          self->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
                        });
    }
  };
  // Unanswered sessions (io thread only; destroyed before the io_context).
  std::vector<std::shared_ptr<Session>> held;

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      std::make_shared<Session>(std::move(socket), this)->Read();
      Accept();
    });
  }
};

Receiver::Receiver(Mode mode) : impl_(std::make_unique<Impl>()) {
  impl_->mode = mode;
  tcp::endpoint at(net::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(at.protocol());
  impl_->acceptor.set_option(net::socket_base::reuse_address(true));
  impl_->acceptor.bind(at);
  impl_->acceptor.listen();
  impl_->Accept();
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

Receiver::~Receiver() {
  impl_->ioc.stop();
  impl_->thread.join();
  impl_->held.clear();
}

uint16_t Receiver::port() const { return impl_->acceptor.local_endpoint().port(); }

void Receiver::set_mode(Mode mode) { impl_->mode = mode; }

std::vector<Receiver::Request> Receiver::Received() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->received;
}

Receiver::TooLargeAnswers Receiver::TooLarge() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->too_large;
}

uint16_t ClosedPort() {
  net::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

}  // namespace billing::testing
