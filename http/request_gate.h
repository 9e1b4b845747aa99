// Request gate: what the HTTP server decides about a request from its head
// alone, before it reads a byte of the body, and the shared limits that keep
// one client from exhausting the server.
//
// A request whose framing is ambiguous (a Transfer-Encoding other than
// `chunked`, both Transfer-Encoding and Content-Length, obs-fold lines) could
// be read one way by us and another way by a proxy in front of us (request
// smuggling, RFC 9112 §6.3, §5.2), so it is refused with 400 and the
// connection is closed, as is Transfer-Encoding on an HTTP/1.0 request (RFC
// 9112 §6.1). An HTTP/1.1 request needs exactly one Host, and at most one
// Authorization. Without access control the server only answers requests
// whose Host names the loopback interface (an HTTP/1.0 request without Host
// included), so that a web page cannot reach it through a DNS name rebound
// to 127.0.0.1.
//
// BodyBudget bounds the body bytes buffered across all connections;
// ClientConnections bounds the connections of one client (an IPv4 address or
// an IPv6 /64) and keeps the last slots for clients holding few. Both are
// thread-safe and never block.
#pragma once

#include <atomic>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/message.hpp>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "http/http_server.h"

namespace billing::api {

// Body bytes buffered at once across all connections. 64 MiB admits four
// maximal (16 MiB) bodies side by side, far beyond what producers posting
// thousand-event batches need, while a flood of large uploads cannot grow the
// process by more than this (plus what ingest makes of the admitted ones).
inline constexpr size_t kHttpBodyBudgetBytes = 64 * 1024 * 1024;
// Connections one client may hold. An eighth of kHttpConnectionsMax: a
// single client cannot take every slot, while one busy producer or a proxy
// keeps far more connections than it needs. Clients behind one NAT or proxy
// share it. A client is an IPv4 address or an IPv6 /64: one host is usually
// given a whole /64, so counting single IPv6 addresses would let it open
// 2^64 "clients".
inline constexpr size_t kHttpConnectionsPerClientMax = 512;
// The last connection slots, kept for clients that hold few: eight clients
// at the per-client maximum fill kHttpConnectionsMax, and then a /healthz
// probe or an operator's curl must still get in. 64 slots are 1.5% of the
// total, and enough for 16 light clients at once.
inline constexpr size_t kHttpConnectionsReserved = 64;
// Once fewer than kHttpConnectionsReserved slots are free, only a client
// holding fewer than this many connections may open another: a probe or a
// dashboard needs one or two, a client that filled the rest holds hundreds.
inline constexpr size_t kHttpReservedConnectionsPerClientMax = 4;
// Told to clients refused for want of body budget: uploads in flight finish
// within the read deadline, usually within a fraction of a second.
inline constexpr int kBodyBudgetRetryAfterSeconds = 1;

// A refusal decided from a request's head: the status and the SPEC's error
// code and message.
struct Refusal {
  int status = 400;
  std::string code;
  std::string message;
};

// Checks the framing and headers of a parsed request head. `raw_head` is the
// head's bytes as received (to find obs-fold, which the parser hides by
// joining the lines). Returns the refusal, or nullopt when the request may
// proceed. Every refusal closes the connection: its framing cannot be trusted.
std::optional<Refusal> CheckRequestHead(const boost::beast::http::request_header<>& head,
                                        std::string_view raw_head, HostPolicy hosts);

// True when a Host header value names the loopback interface: `localhost`,
// an IPv4 address in 127.0.0.0/8 or `[::1]`, each with an optional port.
bool IsLoopbackHost(std::string_view host);

// True when `content_type`'s media type (parameters ignored, case-insensitive)
// is `application/json` or `application/x-ndjson`.
bool IsJsonMediaType(std::string_view content_type);

// The body bytes all connections may buffer at once (kHttpBodyBudgetBytes).
class BodyBudget {
 public:
  // A share of the budget, returned when destroyed or released.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(BodyBudget* budget, size_t bytes) : budget_(budget), bytes_(bytes) {}
    Reservation(Reservation&& other) noexcept { *this = std::move(other); }
    Reservation& operator=(Reservation&& other) noexcept;
    ~Reservation() { Release(); }
    void Release();
    // Takes `bytes` more of the budget (a reservation made empty can grow
    // too: pass the budget); false (nothing taken) when that much is not left.
    bool TryGrow(BodyBudget* budget, size_t bytes);
    size_t bytes() const { return bytes_; }

   private:
    BodyBudget* budget_ = nullptr;
    size_t bytes_ = 0;
  };

  explicit BodyBudget(size_t bytes) : available_(bytes) {}
  // Takes `bytes` of the budget, or nullopt when that much is not left.
  std::optional<Reservation> TryReserve(size_t bytes);
  size_t available() const { return available_.load(); }

 private:
  std::atomic<size_t> available_;
};

// Open connections in all (`total_max`, kHttpConnectionsMax in the server)
// and per client (kHttpConnectionsPerClientMax), with the last
// kHttpConnectionsReserved slots for clients holding fewer than
// kHttpReservedConnectionsPerClientMax.
class ClientConnections {
 public:
  explicit ClientConnections(size_t total_max) : total_max_(total_max) {}
  // Counts a new connection from `client`; false (nothing counted) when the
  // total is reached, the client holds its maximum, or only reserved slots
  // are left and the client already holds several.
  bool TryAdd(const boost::asio::ip::address& client);
  // Forgets one connection counted by TryAdd.
  void Remove(const boost::asio::ip::address& client);
  size_t total() const;

  // What a connection counts against: an IPv4 address (an IPv4-mapped IPv6
  // address counts as the IPv4 one), or an IPv6 address with its last 64
  // bits cleared.
  static boost::asio::ip::address ClientOf(const boost::asio::ip::address& address);

 private:
  const size_t total_max_;
  mutable std::mutex mu_;
  size_t total_ = 0;
  std::map<boost::asio::ip::address, size_t> open_;  // only clients with a connection
};

}  // namespace billing::api
