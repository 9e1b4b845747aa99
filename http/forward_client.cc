#include "http/forward_client.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <deque>
#include <map>
#include <mutex>

#include "http/bounded_read.h"

namespace billing::api {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;

// One kept-alive connection to a peer with an io_context of its own: the
// worker thread that holds it runs its I/O itself, so no I/O thread is shared
// with the server and no completion crosses threads. A connection is used by
// one Send at a time (the pool hands it out under a lock).
struct Connection {
  net::io_context ioc{1};
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  Clock::time_point idle_since;
};

// Runs the context until the operation just started has completed: every
// operation on the stream has its expiry, so this returns by the deadline.
void Run(net::io_context& ioc) {
  ioc.restart();
  ioc.run();
}

bool IEquals(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()),
                        beast::string_view(b.data(), b.size()));
}

// A CR, LF or other control character in a header value or the target would
// let a forwarded request smuggle headers of its own.
bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::string Bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

Status InvalidUrl(std::string_view url, const std::string& why) {
  return Status(Code::kInvalidArgument, "bad peer URL \"" + std::string(url) + "\": " + why);
}

// Host names as a cluster table writes them: letters, digits, '.', '-', '_'.
bool IsHostName(std::string_view host) {
  return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

Result<uint16_t> ParsePort(std::string_view url, std::string_view text) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return InvalidUrl(url, "the port must be a number from 1 to 65535");
  const int port = std::stoi(std::string(text));
  if (port < 1 || port > 65535) return InvalidUrl(url, "the port must be from 1 to 65535");
  return static_cast<uint16_t>(port);
}

// Fields that describe one connection, not the message (RFC 9110 §7.6.1):
// a forwarded answer is re-framed by the server that passes it on.
bool IsHopByHop(std::string_view name) {
  for (std::string_view hop : {"Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length",
                               "Upgrade", "TE", "Trailer", "Proxy-Connection"})
    if (IEquals(name, hop)) return true;
  return false;
}

// The peer's answer as an HttpReply: Content-Type goes to content_type, the
// hop-by-hop fields and those the Connection field names are left out.
HttpReply ToReply(http::response<http::string_body>&& res) {
  std::vector<std::string> named;
  for (auto token : http::token_list(res[http::field::connection]))
    named.emplace_back(token.data(), token.size());
  HttpReply reply;
  reply.status = static_cast<int>(res.result_int());
  reply.content_type = std::string(res[http::field::content_type]);
  reply.body = std::move(res.body());
  for (const auto& field : res) {
    const std::string_view name(field.name_string().data(), field.name_string().size());
    if (IsHopByHop(name) || IEquals(name, "Content-Type")) continue;
    if (std::any_of(named.begin(), named.end(), [&](const auto& n) { return IEquals(n, name); }))
      continue;
    reply.headers.emplace_back(std::string(name), std::string(field.value()));
  }
  return reply;
}

Result<Request> BuildRequest(const PeerUrl& peer, const HttpRequest& request,
                             const HeaderList& extra_headers) {
  const http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown)
    return Status(Code::kInvalidArgument, "cannot forward method \"" + request.method + "\"");
  if (request.target.empty() || request.target[0] != '/' || HasControl(request.target) ||
      request.target.find(' ') != std::string::npos)
    return Status(Code::kInvalidArgument, "cannot forward target \"" + request.target + "\"");
  if (HasControl(request.content_type) || HasControl(request.authorization))
    return Status(Code::kInvalidArgument, "a forwarded header holds a control character");
  Request msg{verb, request.target, 11};
  msg.set(http::field::host, Bracketed(peer.host) + ":" + std::to_string(peer.port));
  msg.set(http::field::user_agent, "billing-ledger-forward/1");
  if (!request.content_type.empty()) msg.set(http::field::content_type, request.content_type);
  if (!request.authorization.empty()) msg.set(http::field::authorization, request.authorization);
  for (const auto& [name, value] : extra_headers) {
    // These would change how the peer frames the request or routes it.
    if (IsHopByHop(name) || IEquals(name, "Host") || name.empty() || HasControl(name) ||
        name.find_first_of(" :") != std::string::npos || HasControl(value))
      return Status(Code::kInvalidArgument, "cannot forward with header \"" + name + "\"");
    msg.set(name, value);
  }
  msg.body() = request.body;
  msg.keep_alive(true);
  msg.prepare_payload();
  return msg;
}

// Whether an idle connection still looks usable: a peer that closed it (its
// idle timeout, a restart) has sent its FIN by now, which a peek sees
// without waiting; bytes waiting unasked would be a broken peer.
bool StillOpen(tcp::socket& socket) {
  error_code ec;
  socket.non_blocking(true, ec);
  if (ec) return false;
  char byte = 0;
  socket.receive(net::buffer(&byte, 1), tcp::socket::message_peek, ec);
  const bool open = ec == net::error::would_block;
  socket.non_blocking(false, ec);
  return open && !ec;
}

// The peer closed the connection under us: before an answer began, this is
// what a kept-alive connection the peer had just closed looks like.
bool ClosedByPeer(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted;
}

Status NetworkError(const PeerUrl& peer, const std::string& step, const error_code& ec) {
  const std::string why =
      ec == beast::error::timeout ? std::string("the deadline passed") : ec.message();
  return Status(Code::kUnavailable, step + " " + peer.ToString() + ": " + why);
}

Status ReadError(const PeerUrl& peer, const error_code& ec, size_t reply_bytes_max) {
  if (ec == http::error::body_limit)
    return Status(Code::kUnavailable, "the answer of " + peer.ToString() + " is larger than " +
                                          std::to_string(reply_bytes_max) +
                                          " bytes, the most a forwarded answer may hold");
  const bool malformed = ec.category() == make_error_code(http::error::end_of_stream).category() &&
                         ec != http::error::end_of_stream && ec != http::error::partial_message;
  if (malformed)
    return Status(Code::kInvalidArgument,
                  "malformed answer from " + peer.ToString() + ": " + ec.message());
  return NetworkError(peer, "reading the answer of", ec);
}

// How one exchange on one connection ended.
struct Attempt {
  Status status;  // ok: `reply` holds the answer
  HttpReply reply;
  bool reusable = false;  // the connection may carry another request
  bool wrote = false;     // some of the request reached the socket
  bool closed = false;    // the peer closed before any byte of an answer
};

Attempt Exchange(Connection& c, const PeerUrl& peer, const Request& msg, Clock::time_point deadline,
                 size_t reply_bytes_max) {
  Attempt out;
  error_code ec;
  size_t written = 0;
  c.stream.expires_at(deadline);
  http::async_write(c.stream, msg, [&](error_code e, size_t n) {
    ec = e;
    written = n;
  });
  Run(c.ioc);
  out.wrote = written > 0;
  if (ec) {
    out.closed = ClosedByPeer(ec);
    out.status = NetworkError(peer, "sending the request to", ec);
    return out;
  }
  http::response_parser<http::string_body> parser;
  parser.header_limit(kForwardReplyHeaderBytesMax);
  parser.body_limit(reply_bytes_max);
  // An answer to HEAD announces a body it does not carry.
  parser.skip(msg.method() == http::verb::head);
  // Head first, so that the body_limit holds (http/bounded_read.h).
  AsyncReadBounded(c.stream, c.buffer, parser, [&](error_code e, size_t) { ec = e; });
  Run(c.ioc);
  if (ec) {
    out.closed = ClosedByPeer(ec) && !parser.got_some();
    out.status = ReadError(peer, ec, reply_bytes_max);
    return out;
  }
  // Bytes past the answer were never asked for: such a connection is dropped.
  out.reusable = parser.get().keep_alive() && !parser.need_eof() && c.buffer.size() == 0;
  out.reply = ToReply(parser.release());
  return out;
}

// The peer's addresses: its host as an address, or looked up as a name.
Result<std::vector<tcp::endpoint>> Resolve(net::io_context& ioc, const PeerUrl& peer,
                                           Clock::time_point deadline) {
  error_code ec;
  const net::ip::address address = net::ip::make_address(peer.host, ec);
  if (!ec) return std::vector<tcp::endpoint>{tcp::endpoint(address, peer.port)};
  // WARNING: a name lookup (getaddrinfo) cannot be interrupted, so a slow
  // DNS can overrun the deadline by libc's own timeouts; cluster tables name
  // peers by address or by names in /etc/hosts, which answer at once.
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(peer.host, std::to_string(peer.port), ec);
  if (ec) return NetworkError(peer, "resolving", ec);
  if (Clock::now() >= deadline) return NetworkError(peer, "resolving", beast::error::timeout);
  std::vector<tcp::endpoint> endpoints;
  for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  return endpoints;
}

Result<std::unique_ptr<Connection>> Connect(const PeerUrl& peer, Clock::time_point deadline) {
  auto c = std::make_unique<Connection>();
  ASSIGN_OR_RETURN(auto addresses, Resolve(c->ioc, peer, deadline));
  error_code ec;
  c->stream.expires_at(deadline);
  c->stream.async_connect(addresses, [&](error_code e, const tcp::endpoint&) { ec = e; });
  Run(c->ioc);
  if (ec) return NetworkError(peer, "connecting to", ec);
  // Requests and answers are small and alternate: do not hold a segment back.
  c->stream.socket().set_option(tcp::no_delay(true), ec);
  return c;
}

std::string PeerKey(const PeerUrl& peer) { return peer.ToString(); }

}  // namespace

Result<PeerUrl> PeerUrl::Parse(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() >= 8 && IEquals(url.substr(0, 8), "https://"))
    return InvalidUrl(url, "https is not used: cluster peers talk plain HTTP on a private network");
  if (url.size() < kScheme.size() || !IEquals(url.substr(0, kScheme.size()), kScheme))
    return InvalidUrl(url, "it must be http://HOST:PORT");
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos)
    return InvalidUrl(url, "a peer URL has no path, query or user: http://HOST:PORT");
  PeerUrl peer;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return InvalidUrl(url, "unclosed '[' in the host");
    peer.host = std::string(rest.substr(1, close - 1));
    error_code ec;
    net::ip::make_address_v6(peer.host, ec);
    if (ec) return InvalidUrl(url, "the host in brackets is not an IPv6 address");
    rest.remove_prefix(close + 1);
    if (rest.empty() || rest.front() != ':') return InvalidUrl(url, "the port is missing");
    port = rest.substr(1);
  } else {
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos) return InvalidUrl(url, "the port is missing");
    peer.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
    if (peer.host.empty()) return InvalidUrl(url, "the host is empty");
    if (!IsHostName(peer.host)) return InvalidUrl(url, "the host is not a name or an address");
  }
  ASSIGN_OR_RETURN(peer.port, ParsePort(url, port));
  return peer;
}

std::string PeerUrl::ToString() const {
  return "http://" + Bracketed(host) + ":" + std::to_string(port);
}

struct ForwardClient::Impl {
  ForwardClientOptions options;
  std::mutex mu;
  // Idle connections by peer, the most recently used last.
  std::map<std::string, std::deque<std::unique_ptr<Connection>>> idle;  // guarded by mu

  // The most recently used idle connection to `peer` that is still open, or
  // null; closes the expired and closed ones it passes.
  std::unique_ptr<Connection> TakeIdle(const PeerUrl& peer) {
    std::vector<std::unique_ptr<Connection>> dead;  // closed after the lock is let go
    std::unique_ptr<Connection> found;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto& list = idle[PeerKey(peer)];
      const auto oldest = Clock::now() - options.idle_timeout;
      while (!list.empty() && found == nullptr) {
        auto c = std::move(list.back());
        list.pop_back();
        if (c->idle_since > oldest && StillOpen(c->stream.socket())) {
          found = std::move(c);
        } else {
          dead.push_back(std::move(c));
        }
      }
    }
    return found;
  }

  void Put(const PeerUrl& peer, std::unique_ptr<Connection> c) {
    c->idle_since = Clock::now();
    std::lock_guard<std::mutex> lock(mu);
    auto& list = idle[PeerKey(peer)];
    if (list.size() >= options.idle_connections_per_peer) return;  // `c` closes
    list.push_back(std::move(c));
  }

  // A kept-alive connection the peer had closed: it closed the others idle
  // since as long too, or restarted, so none of them is worth a try.
  void DropIdle(const PeerUrl& peer) {
    std::deque<std::unique_ptr<Connection>> dead;
    std::lock_guard<std::mutex> lock(mu);
    idle[PeerKey(peer)].swap(dead);
  }
};

ForwardClient::ForwardClient(ForwardClientOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
}

ForwardClient::~ForwardClient() = default;

Result<HttpReply> ForwardClient::Send(const PeerUrl& peer, const HttpRequest& request,
                                      const HeaderList& extra_headers) {
  return Send(peer, request, extra_headers, impl_->options.deadline_default);
}

Result<HttpReply> ForwardClient::Send(const PeerUrl& peer, const HttpRequest& request,
                                      const HeaderList& extra_headers,
                                      std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  ASSIGN_OR_RETURN(const Request msg, BuildRequest(peer, request, extra_headers));
  // Only these may reach the peer twice: a repeated POST could ingest twice.
  const bool repeatable = msg.method() == http::verb::get || msg.method() == http::verb::head;
  std::unique_ptr<Connection> conn = impl_->TakeIdle(peer);
  bool reused = conn != nullptr;
  for (;;) {
    if (conn == nullptr) {
      ASSIGN_OR_RETURN(conn, Connect(peer, until));
    }
    Attempt attempt = Exchange(*conn, peer, msg, until, impl_->options.reply_bytes_max);
    if (attempt.status.ok()) {
      if (attempt.reusable) impl_->Put(peer, std::move(conn));
      return std::move(attempt.reply);
    }
    const bool retry = reused && attempt.closed && (repeatable || !attempt.wrote);
    if (!retry) return attempt.status;
    // Once, on a new connection (`reused` is false from here on).
    impl_->DropIdle(peer);
    conn.reset();
    reused = false;
  }
}

}  // namespace billing::api
