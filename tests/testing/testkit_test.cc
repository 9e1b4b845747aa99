// The test helpers keep their promises: ledgerd starts with the flags asked
// for and a failed start fails the test with ledgerd's reason, stopping
// reports the exit, a child sees the environment given, and WaitUntil
// returns as soon as its condition holds and gives up at its deadline.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>

#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/wait.h"

namespace billing::testing {
namespace {

using namespace std::chrono_literals;

TEST(TestLedgerd, StartsWithTheFlagsAskedForAndStopsCleanly) {
  Ledgerd ledgerd(
      {.tokens = "testkit-admin-0123456789 admin * testkit\n", .access_log = AccessLog::kOn});
  ASSERT_TRUE(ledgerd.started());
  EXPECT_EQ(ledgerd.Get("/metrics").status, 401) << "--tokens was not passed";
  EXPECT_EQ(ledgerd.Get("/metrics", {{"Authorization", "Bearer testkit-admin-0123456789"}}).status,
            200);
  EXPECT_EQ(ledgerd.Stop(), 0);
  EXPECT_NE(ledgerd.StderrText().find("\"path\":\"/metrics\""), std::string::npos)
      << "no access log line: " << ledgerd.StderrText();
}

TEST(TestLedgerd, AFailedStartFailsTheTestWithLedgerdsReason) {
  EXPECT_NONFATAL_FAILURE(
      {
        Ledgerd refused({.extra_args = {"--no-such-flag"}});
        EXPECT_FALSE(refused.started());
      },
      "--no-such-flag");
}

TEST(TestLedgerd, KillIsACrash) {
  Ledgerd ledgerd;
  ASSERT_TRUE(ledgerd.started());
  EXPECT_EQ(ledgerd.Kill(), 128 + SIGKILL);
  EXPECT_EQ(ledgerd.Wait(), 128 + SIGKILL) << "a second Wait answers the same";
}

TEST(TestChild, SeesTheEnvironmentGivenOnTopOfTheTestsOwn) {
  setenv("LEDGER_TESTKIT_INHERITED", "kept", 1);
  setenv("LEDGER_TESTKIT_SHADOWED", "outer", 1);
  Child env({"/usr/bin/env"},
            {.env = {{"LEDGER_TESTKIT_SHADOWED", "inner"}, {"LEDGER_TESTKIT_NEW", "42"}}});
  std::string out = "\n" + env.ReadToEnd();
  EXPECT_EQ(env.Wait(), 0);
  EXPECT_NE(out.find("\nLEDGER_TESTKIT_INHERITED=kept\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nLEDGER_TESTKIT_SHADOWED=inner\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nLEDGER_TESTKIT_NEW=42\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("\nLEDGER_TESTKIT_SHADOWED=outer\n"), std::string::npos)
      << "the test's value is there too: " << out;
}

TEST(TestChild, WaitForGivesUpWhileTheChildRuns) {
  Child sleeper({"/bin/sleep", "600"});
  EXPECT_EQ(sleeper.WaitFor(50ms), std::nullopt);
  sleeper.Signal(SIGTERM);
  EXPECT_EQ(sleeper.WaitFor(10s), 128 + SIGTERM);
}

TEST(TestWaitUntil, ReturnsOnceTheConditionHolds) {
  int checks = 0;
  EXPECT_TRUE(WaitUntil([&] { return ++checks == 3; }, 10s));
  EXPECT_EQ(checks, 3);
}

TEST(TestWaitUntil, GivesUpAtTheDeadline) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(WaitUntil([] { return false; }, 100ms));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 100ms);
}

}  // namespace
}  // namespace billing::testing
