// webhooks::Sender against a real Beast receiver on loopback: an answer whose
// body is far over kAnswerBytesMax is not read past the limit (the receiver's
// write of it is cut off), and its status still counts, as the sender says.
#include "webhooks/sender.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/testing/wait.h"
#include "tests/webhooks/receiver.h"

namespace billing::webhooks {
namespace {

using namespace std::chrono_literals;
using testing::Receiver;

// Generous for loopback; the attempt itself takes milliseconds.
constexpr std::chrono::milliseconds kAttemptTimeout = 30s;

Endpoint Loopback(uint16_t port) {
  Endpoint e;
  e.url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
  e.scheme = Scheme::kHttp;
  e.host = "127.0.0.1";
  e.port = std::to_string(port);
  e.target = "/hook";
  return e;
}

static_assert(Receiver::kTooLargeAnswerBytes > 100 * kAnswerBytesMax);

TEST(WebhookSender, AnAnswerOverTheLimitIsNotReadPastItAndItsStatusCounts) {
  Receiver receiver(Receiver::Mode::kAnswer200TooLarge);
  Sender sender;
  AttemptResult r =
      sender.Post(Loopback(receiver.port()), "{}", {}, Timeouts{kAttemptTimeout, kAttemptTimeout});
  // The receiver answered its status: that is the answer (sender.cc).
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.delivered()) << r.error;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        Receiver::TooLargeAnswers t = receiver.TooLarge();
        return t.whole + t.cut == 1;
      },
      kAttemptTimeout));
  EXPECT_EQ(receiver.TooLarge().cut, 1) << "the sender read the whole too-large answer";
  EXPECT_EQ(receiver.Received().size(), 1u);
}

}  // namespace
}  // namespace billing::webhooks
