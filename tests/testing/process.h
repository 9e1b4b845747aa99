// Runs the real ledgerd binary as a child process for integration tests:
// spawn with arguments, wait (with a deadline) for the lines it prints on
// start, and stop it with SIGTERM or SIGKILL.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

namespace billing::testing {

inline std::string BuildDir() {
  const char* dir = std::getenv("LEDGER_BUILD_DIR");
  return dir ? dir : LEDGER_DEFAULT_BUILD_DIR;
}

class Child {
 public:
  // stderr goes to `stderr_file` when given (for tests that read the log),
  // else to /dev/null unless LEDGER_TEST_VERBOSE is set.
  explicit Child(std::vector<std::string> args, const std::string& stderr_file = "") {
    int out[2];
    if (pipe(out) != 0) throw std::system_error(errno, std::generic_category(), "pipe for a child's stdout");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      if (!stderr_file.empty()) {
        int log = open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log >= 0) dup2(log, STDERR_FILENO);
      } else if (std::getenv("LEDGER_TEST_VERBOSE") == nullptr) {
        dup2(open("/dev/null", O_WRONLY), STDERR_FILENO);
      }
      close(out[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    fd_ = out[0];
  }
  ~Child() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (fd_ >= 0) close(fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The first stdout line starting with `prefix` (without it), or "" if none
  // arrives before the deadline or the process exits.
  std::string WaitForLine(const std::string& prefix, std::chrono::milliseconds deadline = std::chrono::seconds(60)) {
    auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
      size_t nl;
      while ((nl = buffer_.find('\n')) != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) return "";
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  void Signal(int sig) { kill(pid_, sig); }
  pid_t pid() const { return pid_; }
  // Waits for exit; returns the exit code, or 128+signal.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool exited_ = false;
  std::string buffer_;
};

}  // namespace billing::testing
