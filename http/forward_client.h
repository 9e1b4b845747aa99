// Forwarding client: how one ledgerd instance hands a request to the cluster
// peer that owns the org (docs/CLUSTER.md, "Serving") and gets its answer back
// as an HttpReply to give its own client.
//
// Peers talk plain HTTP/1.1 on the cluster's private network: a peer URL is
// `http://HOST:PORT` and nothing else (no https, no path), parsed once into a
// PeerUrl. Connections to each peer are kept alive and reused, a bounded few
// per peer. Every Send has one deadline covering resolving, connecting,
// writing and reading; a failure to reach or hear the peer is kUnavailable,
// which the caller may retry or answer as 503. The peer's whole answer is read
// into memory (a chunked one too) up to a byte limit: an answer over it is an
// error, never a truncated body passed on as if complete.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/status.h"
#include "http/http_server.h"

namespace billing::api {

// Idle connections kept open to one peer. Forwarded requests are served by
// the peer's worker pool (a few threads), so more idle connections than this
// would not run more requests at once there; requests beyond it still go out
// on connections of their own, which are closed after their answer. Far
// below the peer's kHttpConnectionsPerClientMax (request_gate.h), which all
// of one instance's connections share.
inline constexpr size_t kForwardIdleConnectionsPerPeer = 16;
// An idle connection older than this is closed instead of reused: the peer
// closes idle connections after kHttpIdleTimeout (60 s), and reusing one at
// the moment the peer closes it costs a failed attempt.
inline constexpr std::chrono::seconds kForwardIdleTimeout{30};
// The largest forwarded answer body held in memory (its head has its own
// limit below).
// Forwarded answers include CSV exports and ledger streams, which the owner
// streams chunked and this client must hold whole before answering its own
// client; 256 MiB covers a large org's yearly export while bounding what one
// forwarded request can pin (a few such at once fit the machine's memory).
// A larger answer is refused (kUnavailable), never passed on cut short.
inline constexpr size_t kForwardReplyBytesMax = 256 * 1024 * 1024;
// The answer's status line and headers: our server sends a handful of short
// headers, so 64 KiB is generous and still stops a head that never ends.
inline constexpr uint32_t kForwardReplyHeaderBytesMax = 64 * 1024;
// The deadline of a Send that names none: a forwarded read answers within a
// second or two; a stream of a large export may take longer, and such callers
// pass their own.
inline constexpr std::chrono::milliseconds kForwardDeadlineDefault{10'000};

// A cluster peer's base URL, `http://HOST:PORT`: HOST a name, an IPv4
// address or a bracketed IPv6 address; PORT 1-65535 and required.
struct PeerUrl {
  std::string host;  // without brackets
  uint16_t port = 0;

  // kInvalidArgument for any other scheme (https included: peers talk plain
  // HTTP on a private network), a path, query, user info, an empty host or a
  // missing or bad port. A single trailing '/' is accepted.
  static Result<PeerUrl> Parse(std::string_view url);
  // "http://host:port", IPv6 hosts bracketed; Parse(ToString()) gives it back.
  std::string ToString() const;
};

struct ForwardClientOptions {
  size_t idle_connections_per_peer = kForwardIdleConnectionsPerPeer;
  std::chrono::milliseconds idle_timeout = kForwardIdleTimeout;
  size_t reply_bytes_max = kForwardReplyBytesMax;
  std::chrono::milliseconds deadline_default = kForwardDeadlineDefault;
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

class ForwardClient {
 public:
  explicit ForwardClient(ForwardClientOptions options = {});
  ~ForwardClient();  // closes the idle connections
  ForwardClient(const ForwardClient&) = delete;
  ForwardClient& operator=(const ForwardClient&) = delete;

  // Sends `request` (method, target, content_type, authorization, body) to
  // `peer` with `extra_headers` added (e.g. {"Ledger-Forwarded", "1"}) and
  // returns the peer's answer: status, content type ("" if it sent none),
  // body (empty for HEAD), and its other headers except hop-by-hop ones
  // (Connection and those it names, Keep-Alive, Transfer-Encoding,
  // Content-Length, Upgrade, TE, Trailer, Proxy-Connection).
  // Errors: kUnavailable (retryable) when the peer cannot be resolved or
  // reached, the connection breaks, `deadline` passes (it bounds the whole
  // exchange) or the answer is over reply_bytes_max; kInvalidArgument for a
  // malformed answer, or a request that cannot be sent (a target not starting
  // with '/', an extra header that would change the framing: Host,
  // Content-Length, Transfer-Encoding, Connection).
  // A reused connection found closed by the peer is retried once on a new
  // one, if nothing was written yet or the method is GET or HEAD.
  // Blocking and thread-safe: call it from worker threads, never from an I/O
  // thread (it would stall every connection on that thread).
  Result<HttpReply> Send(const PeerUrl& peer, const HttpRequest& request,
                         const HeaderList& extra_headers, std::chrono::milliseconds deadline);
  // The same with options.deadline_default.
  Result<HttpReply> Send(const PeerUrl& peer, const HttpRequest& request,
                         const HeaderList& extra_headers);

  struct Impl;  // public so the .cc's helpers can reach it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace billing::api
