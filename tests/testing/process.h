// A child process for tests that run the real binaries (ledgerd, ledgerctl):
// spawned with its arguments and environment, its stdout read line by line
// with a deadline, stopped by a signal and waited for, also with a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace billing::testing {

// Where ledgerd and ledgerctl were built: $LEDGER_BUILD_DIR, else the build
// tree this test was configured in.
std::string BuildDir();

struct ChildOptions {
  // stderr is appended to this file when given (for tests that read the
  // log); else it goes to /dev/null, or to the test's stderr when
  // LEDGER_TEST_VERBOSE is set.
  std::string stderr_file{};
  // Variables set in the child's environment on top of the test's own.
  std::map<std::string, std::string> env{};
  // When set, SIGALRM ends the child after this many seconds (alarm(2)
  // survives exec): a run that should stop at once but hangs fails the test
  // instead of hanging it.
  unsigned alarm_seconds = 0;
};

class Child {
 public:
  // Runs args[0] (a path) with args; throws std::system_error if it cannot
  // fork. An exec that fails exits the child with 127.
  explicit Child(std::vector<std::string> args, ChildOptions options = {});
  // Kills (SIGKILL) and reaps the child if it is still running.
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The first stdout line starting with `prefix` (without it), or "" if none
  // arrives before `timeout` or stdout closes. Lines before it are dropped.
  std::string WaitForLine(const std::string& prefix,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Everything the child writes to stdout from here until it closes it
  // (usually at its exit). No deadline: for programs that end on their own.
  std::string ReadToEnd();

  void Signal(int sig);
  pid_t pid() const { return pid_; }
  // Waits for the exit; the exit code, or 128 + the signal that ended it.
  // Safe to call again: answers the same code.
  int Wait();
  // As Wait, but gives up after `timeout`: nullopt while it still runs.
  std::optional<int> WaitFor(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::optional<int> exit_code_;
  std::string buffer_;
};

// A program run to its exit: its exit code (as Child::Wait) and stdout.
struct Ran {
  int code = -1;
  std::string out{};
};
Ran RunToExit(std::vector<std::string> args, ChildOptions options = {});

}  // namespace billing::testing
