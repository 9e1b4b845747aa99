#include "tests/testing/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace billing::testing {
namespace {

using Clock = std::chrono::steady_clock;

int ExitCodeOf(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The test's environment with `overrides` set on top, as "NAME=VALUE".
std::vector<std::string> Environment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (!overrides.contains(entry.substr(0, entry.find('=')))) out.push_back(std::move(entry));
  }
  for (const auto& [name, value] : overrides) out.push_back(name + "=" + value);
  return out;
}

std::vector<char*> PointersTo(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Where the child's stderr goes: a descriptor to dup2 onto it, or -1 to
// leave the test's own stderr.
int StderrTarget(const ChildOptions& options) {
  if (!options.stderr_file.empty())
    return open(options.stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (std::getenv("LEDGER_TEST_VERBOSE") != nullptr) return -1;
  return open("/dev/null", O_WRONLY | O_CLOEXEC);
}

}  // namespace

std::string BuildDir() {
  const char* dir = std::getenv("LEDGER_BUILD_DIR");
  return dir != nullptr ? dir : LEDGER_DEFAULT_BUILD_DIR;
}

Child::Child(std::vector<std::string> args, ChildOptions options) {
  // Everything the child needs is made before fork: between fork and exec a
  // child of a multithreaded test may only make async-signal-safe calls.
  std::vector<std::string> env = Environment(options.env);
  std::vector<char*> argv = PointersTo(args);
  std::vector<char*> envp = PointersTo(env);
  const int err = StderrTarget(options);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe for a child's stdout");
  pid_ = fork();
  if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid_ == 0) {
    dup2(out[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
    if (err >= 0) dup2(err, STDERR_FILENO);
    if (options.alarm_seconds > 0) alarm(options.alarm_seconds);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  if (err >= 0) close(err);
  stdout_fd_ = out[0];
}

Child::~Child() {
  if (!exit_code_) {
    kill(pid_, SIGKILL);
    Wait();
  }
  close(stdout_fd_);
}

std::string Child::WaitForLine(const std::string& prefix, std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    size_t nl;
    while ((nl = buffer_.find('\n')) != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.starts_with(prefix)) return line.substr(prefix.size());
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() <= 0) return "";
    pollfd p{stdout_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    char buf[4096];
    ssize_t n = read(stdout_fd_, buf, sizeof(buf));
    if (n <= 0) return "";
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

std::string Child::ReadToEnd() {
  std::string out = std::move(buffer_);
  buffer_.clear();
  char buf[65536];
  ssize_t n;
  while ((n = read(stdout_fd_, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void Child::Signal(int sig) {
  if (!exit_code_) kill(pid_, sig);
}

int Child::Wait() {
  if (!exit_code_) {
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_code_ = ExitCodeOf(status);
  }
  return *exit_code_;
}

std::optional<int> Child::WaitFor(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  // A pidfd becomes readable when the process exits: a wait with a deadline
  // that needs neither a SIGCHLD handler nor polling waitpid.
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd < 0) return Wait();  // kernels before 5.3: wait without a deadline
  pollfd p{pidfd, POLLIN, 0};
  const bool exited = poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  close(pidfd);
  if (!exited) return std::nullopt;
  return Wait();
}

Ran RunToExit(std::vector<std::string> args, ChildOptions options) {
  Child child(std::move(args), std::move(options));
  Ran ran;
  ran.out = child.ReadToEnd();
  ran.code = child.Wait();
  return ran;
}

}  // namespace billing::testing
