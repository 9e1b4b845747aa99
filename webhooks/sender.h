// One delivery attempt: a POST to an endpoint over HTTP/1.1, with deadlines.
//
// `https://` runs over Beast's ssl_stream with OpenSSL verifying the peer's
// certificate chain against the system's CA store and its name against the
// URL's host (SNI sent); `http://` is only ever a loopback host (endpoints.h).
// Every step has a deadline: resolving, connecting and the TLS handshake
// share the connect timeout, writing the request and reading the answer
// share the response timeout. A Sender blocks its calling thread (each
// endpoint has its own, outbox.h); only Cancel may be called from another.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "webhooks/endpoints.h"

namespace billing::webhooks {

// Bytes of an endpoint's answer that are read: its status line and headers
// matter, a body is read only so far (a receiver's answer has no use beyond
// its status, and a hostile one must not fill memory).
inline constexpr size_t kAnswerBytesMax = 64 * 1024;

struct Timeouts {
  std::chrono::milliseconds connect;
  std::chrono::milliseconds response;
};

struct AttemptResult {
  int status = 0;     // the HTTP status; 0 when there was none
  std::string error;  // why it failed ("" for a 2xx): a status or a network error
  bool delivered() const { return status >= 200 && status <= 299; }
};

class Sender {
 public:
  Sender();
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;
  // POSTs `body` (application/json) with `headers` to `endpoint`.
  AttemptResult Post(const Endpoint& endpoint, const std::string& body,
                     const std::vector<std::pair<std::string, std::string>>& headers,
                     Timeouts timeouts);
  // Ends the attempt in flight (its result: not delivered, "stopped") and
  // every later one at once. Thread-safe: the outbox's Stop calls it.
  void Cancel();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace billing::webhooks
