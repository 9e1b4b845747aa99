// A raw TCP client for tests that must send what a well-behaved HTTP client
// never would (ambiguous framing, headers without a body, a stalled upload):
// non-blocking I/O with deadlines, so a hung server fails a test instead of
// hanging it, and an optional source address (127.0.0.2 on Linux) to act as
// a second client. Also a flood that stops at the server's answer, and the
// memory of a process, read from /proc.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace billing::testing {

class RawConn {
 public:
  using Clock = std::chrono::steady_clock;

  // Connects to 127.0.0.1:port from `source` (any loopback address), with
  // an optional small receive buffer (for clients that stop reading).
  // ok() is false when the connection could not be made.
  explicit RawConn(uint16_t port, int recv_buffer_bytes = 0, const char* source = nullptr);
  ~RawConn();
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  bool ok() const { return fd_ >= 0; }

  // Sends all of `data`; false on an error (the peer closed) or the deadline.
  bool Send(std::string_view data, std::chrono::milliseconds deadline);

  // Reads until the peer closes, `until_text` has arrived, or the deadline;
  // returns what was read. `closed()` tells which.
  std::string Read(std::chrono::milliseconds deadline, std::string_view until_text = "");

  // True once the peer has closed (EOF or reset), checked without waiting.
  bool PeerClosed();
  bool closed() const { return closed_; }

 private:
  void Fail();
  bool Wait(short events, Clock::time_point until);

  int fd_ = -1;
  bool closed_ = false;
};

// Sends `head`, then `flood_bytes` copies of `filler` in pieces, reading
// between pieces and stopping as soon as an answer arrives or the peer
// closes: a server that refuses early is not made to drain the whole flood.
// Then reads until `deadline`, the peer's close or "}}" (the end of an error
// body). Returns what was read.
std::string FloodUntilAnswered(RawConn& c, const std::string& head, char filler, size_t flood_bytes,
                               std::chrono::milliseconds deadline);

// The status code of the first answer in `answer` ("HTTP/1.1 401 ..."), or 0.
int StatusOf(const std::string& answer);

// A memory figure of process `pid` in bytes from /proc/PID/status: "VmRSS"
// (now) or "VmHWM" (the peak resident size), 0 if unreadable.
size_t ProcessMemoryBytes(pid_t pid, const std::string& field);

}  // namespace billing::testing
