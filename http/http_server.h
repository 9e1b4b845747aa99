// HTTP server: an asynchronous Boost.Beast HTTP/1.1 server on Asio with one
// thread per core, keep-alive, and every limit of a public endpoint.
//
// It knows nothing of billing: it reads a request (bounded header and body
// sizes, a deadline for the whole read so a slow client cannot hold a
// connection), hands it to the Handler, and writes whatever reply the handler
// produces whenever it produces it (ingest answers after the WAL sync, from
// the ledger's writer thread). Replies may stream a chunked body of unknown
// length in bounded pieces. Stop() stops accepting, lets in-flight requests
// finish, then joins the threads.
//
// A request is judged from its head before its body is read (request_gate.h:
// framing, Host, then the HeaderCheck, e.g. the token, then a share of the
// body budget, which a chunked body takes chunk by chunk as each size line
// arrives), so a client that may not post cannot make the server buffer a
// byte of its body; `Expect: 100-continue` is answered once it passes.
// HEAD is answered as GET without the body.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "events/status.h"

namespace billing::api {

// A POST body above this is refused with 413: a thousand-event NDJSON batch is
// under 1 MiB, so 16 MiB leaves room for bulk loads without letting one
// request pin unbounded memory.
inline constexpr size_t kHttpBodyBytesMax = 16 * 1024 * 1024;
// Request line plus headers; 16 KiB is what common proxies allow.
inline constexpr uint32_t kHttpHeaderBytesMax = 16 * 1024;
// The most a connection's read buffer holds. The parser moves body bytes out
// of it into the body as they arrive, so it only ever needs a head (at most
// kHttpHeaderBytesMax) and what follows it in one read; what cannot be parsed
// within this (a chunk-size line with endless chunk extensions, a trailer
// section without end) fails the read with 400 instead of growing the buffer.
inline constexpr size_t kHttpReadBufferBytesMax = 2 * kHttpHeaderBytesMax;
// The whole request must arrive within this; defeats slowloris clients.
inline constexpr std::chrono::seconds kHttpReadTimeout{30};
// An idle keep-alive connection is closed after this.
inline constexpr std::chrono::seconds kHttpIdleTimeout{60};
// Writing a reply (or one streamed chunk) must finish within this.
inline constexpr std::chrono::seconds kHttpWriteTimeout{60};
// After refusing a request, input is drained this long before closing, so the
// client can read the refusal instead of a connection reset.
inline constexpr std::chrono::seconds kLingerTimeout{2};
// Connections beyond this are closed at accept: bounds sockets and memory.
// One client may hold kHttpConnectionsPerClientMax of them, and the last
// kHttpConnectionsReserved are kept for clients holding few (request_gate.h).
inline constexpr size_t kHttpConnectionsMax = 4096;
// After a failed accept (out of file descriptors, say) the next one waits
// this long instead of spinning on the same error.
inline constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
// How long Stop() waits for in-flight requests before closing anyway.
inline constexpr std::chrono::seconds kShutdownGrace{10};

// Which Host header values the server answers.
enum class HostPolicy {
  kAny,           // access control is on: a token, not the name, decides
  kLoopbackOnly,  // localhost, 127.0.0.0/8 or [::1], with any port (421 otherwise)
};

// Marks a request one cluster instance forwarded to another (docs/CLUSTER.md):
// its receiver answers it or refuses it, and never forwards it again, so a
// stale view of who owns what costs a retry, never a loop.
inline constexpr const char* kForwardedHeader = "Ledger-Forwarded";

struct HttpRequest {
  std::string method;
  std::string target;
  std::string content_type;
  std::string authorization;
  std::string body;
  // The head announced a body (Content-Length above 0, or chunked): lets the
  // HeaderCheck refuse a body where the route takes none.
  bool has_body = false;
  bool forwarded = false;  // it carries kForwardedHeader
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the body is streamed with chunked encoding: each call appends
  // the next piece to *chunk and returns false after the last piece.
  std::function<bool(std::string* chunk)> stream;
  // When set with `stream`, each piece is produced through it, off the I/O
  // thread (the service's worker pool): it takes the task that produces the
  // piece and returns false if it cannot run it, and then the piece is made
  // on the I/O thread after all, so a stream never stalls for good.
  std::function<bool(std::function<void()>)> offload;
};

using Respond = std::function<void(HttpReply)>;
// Judges a request from its head (`body` is empty, `has_body` says whether
// one follows; HEAD arrives as GET): returns a refusal (400, 401, 403, 415,
// ...) to answer without reading the body (the connection is closed when a
// body was announced), or nullopt to read it and call the Handler. Runs on an I/O thread, so it
// must be cheap and must not block or throw.
using HeaderCheck = std::function<std::optional<HttpReply>(const HttpRequest& head)>;
// Must call `respond` exactly once, from any thread; must not throw.
using Handler = std::function<void(HttpRequest&& request, Respond respond)>;
// One finished request: route label is the handler's business, so the server
// reports method, target, status, bytes and microseconds.
using AccessLog =
    std::function<void(const HttpRequest& request, int status, size_t bytes, int64_t micros)>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port
  int threads = 0;       // 0: one per core
  // kLoopbackOnly (when nothing else controls access) refuses requests whose
  // Host names anything but the loopback interface (421).
  HostPolicy hosts = HostPolicy::kAny;
};

class HttpServer {
 public:
  // Binds and starts serving. kUnavailable if the address cannot be bound.
  // `check` may be empty (every well-formed request is read).
  static Result<std::unique_ptr<HttpServer>> Start(const ServerOptions& options, Handler handler,
                                                   AccessLog log, HeaderCheck check = nullptr);
  ~HttpServer();
  uint16_t port() const;
  std::string host() const;
  // Graceful stop; idempotent.
  void Stop();

  struct Impl;  // public so the .cc's connection class can reach it

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace billing::api
