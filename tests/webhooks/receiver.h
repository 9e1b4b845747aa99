// A webhook receiver for tests: a real HTTP/1.1 server (Boost.Beast) on a
// free loopback port that records every request it is sent and answers 200,
// answers 500, answers 200 with a body far over the sender's limit, or never
// answers (holding the connection open), as told.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace billing::testing {

class Receiver {
 public:
  enum class Mode { kAnswer200, kAnswer500, kAnswer200TooLarge, kNeverAnswer };
  // kAnswer200TooLarge's body: far more than webhooks::kAnswerBytesMax, and
  // more than loopback's socket buffers hold, so that its write completes
  // only if the sender reads it all.
  static constexpr size_t kTooLargeAnswerBytes = 64 * 1024 * 1024;
  explicit Receiver(Mode mode);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  uint16_t port() const;
  // Applies to requests read from now on. Thread-safe.
  void set_mode(Mode mode);

  struct Request {
    std::string method, target, content_type;
    std::string delivery_id;  // Billing-Delivery-Id
    std::string signature;    // Billing-Signature
    std::string body;
  };
  // Every request read so far, in arrival order. Thread-safe.
  std::vector<Request> Received() const;
  // How the writes of kAnswer200TooLarge answers ended so far: written whole
  // (the sender read it all) or cut off (the sender closed first). Thread-safe.
  struct TooLargeAnswers {
    int whole = 0, cut = 0;
  };
  TooLargeAnswers TooLarge() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A loopback port nothing listens on (bound, then closed): an endpoint that is down.
uint16_t ClosedPort();

}  // namespace billing::testing
