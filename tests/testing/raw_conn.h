// A raw TCP client for tests that must send what a well-behaved HTTP client
// never would (ambiguous framing, headers without a body, a stalled upload):
// non-blocking I/O with deadlines, so a hung server fails a test instead of
// hanging it, and an optional source address (127.0.0.2 on Linux) to act as
// a second client. Also a flood that stops at the server's answer, and the
// memory of a process, read from /proc.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <string>
#include <string_view>

namespace billing::testing {

class RawConn {
 public:
  using Clock = std::chrono::steady_clock;

  // Connects to 127.0.0.1:port from `source` (any loopback address), with
  // an optional small receive buffer (for clients that stop reading).
  explicit RawConn(uint16_t port, int recv_buffer_bytes = 0, const char* source = nullptr) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    if (recv_buffer_bytes > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &recv_buffer_bytes, sizeof(int));
    if (source != nullptr) {
      sockaddr_in from{};
      from.sin_family = AF_INET;
      inet_pton(AF_INET, source, &from.sin_addr);
      if (bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0) {
        Fail();
        return;
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      Fail();
      return;
    }
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~RawConn() {
    if (fd_ >= 0) close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  bool ok() const { return fd_ >= 0; }

  // Sends all of `data`; false on an error (the peer closed) or the deadline.
  bool Send(std::string_view data, std::chrono::milliseconds deadline) {
    auto until = Clock::now() + deadline;
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      if (!Wait(POLLOUT, until)) return false;
    }
    return true;
  }

  // Reads until the peer closes, `until_text` has arrived, or the deadline;
  // returns what was read. `closed()` tells which.
  std::string Read(std::chrono::milliseconds deadline, std::string_view until_text = "") {
    auto until = Clock::now() + deadline;
    std::string out;
    char buf[16384];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        if (!until_text.empty() && out.find(until_text) != std::string::npos) return out;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        closed_ = true;
        return out;
      }
      if (!Wait(POLLIN, until)) return out;
    }
  }

  // True once the peer has closed (EOF or reset), checked without waiting.
  bool PeerClosed() {
    char buf[256];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed_ = true;
      return closed_;
    }
  }
  bool closed() const { return closed_; }

 private:
  void Fail() {
    close(fd_);
    fd_ = -1;
  }
  bool Wait(short events, Clock::time_point until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, events, 0};
    return poll(&p, 1, static_cast<int>(left)) > 0;
  }

  int fd_ = -1;
  bool closed_ = false;
};

// Sends `head`, then `flood_bytes` copies of `filler` in pieces, reading
// between pieces and stopping as soon as an answer arrives or the peer
// closes: a server that refuses early is not made to drain the whole flood.
// Then reads until `deadline`, the peer's close or "}}" (the end of an error
// body). Returns what was read.
inline std::string FloodUntilAnswered(RawConn& c, const std::string& head, char filler, size_t flood_bytes,
                                      std::chrono::milliseconds deadline) {
  constexpr size_t kPieceBytes = 1 << 20;
  const std::string piece(kPieceBytes, filler);
  std::string answer;
  bool open = c.Send(head, deadline);
  for (size_t sent = 0; open && sent < flood_bytes && answer.empty(); sent += kPieceBytes) {
    open = c.Send(std::string_view(piece).substr(0, std::min(kPieceBytes, flood_bytes - sent)), deadline);
    answer += c.Read(std::chrono::milliseconds(0));
    if (c.closed()) break;
  }
  if (answer.find("}}") == std::string::npos && !c.closed()) answer += c.Read(deadline, "}}");
  return answer;
}

// The status code of the first answer in `answer` ("HTTP/1.1 401 ..."), or 0.
inline int StatusOf(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
  return std::stoi(answer.substr(9, 3));
}

// A memory figure of process `pid` in bytes from /proc/PID/status: "VmRSS"
// (now) or "VmHWM" (the peak resident size), 0 if unreadable.
inline size_t ProcessMemoryBytes(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

}  // namespace billing::testing
