#include "tests/testing/raw_conn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>

namespace billing::testing {

RawConn::RawConn(uint16_t port, int recv_buffer_bytes, const char* source) {
  // Close-on-exec: a ledgerd the test starts later must not inherit (and so
  // hold open) this connection.
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  if (recv_buffer_bytes > 0)
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &recv_buffer_bytes, sizeof(int));
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

RawConn::~RawConn() {
  if (fd_ >= 0) close(fd_);
}

bool RawConn::Send(std::string_view data, std::chrono::milliseconds deadline) {
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

std::string RawConn::Read(std::chrono::milliseconds deadline, std::string_view until_text) {
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

bool RawConn::PeerClosed() {
  char buf[256];
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) continue;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed_ = true;
    return closed_;
  }
}

void RawConn::Fail() {
  close(fd_);
  fd_ = -1;
}

bool RawConn::Wait(short events, Clock::time_point until) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
  if (left <= 0) return false;
  pollfd p{fd_, events, 0};
  return poll(&p, 1, static_cast<int>(left)) > 0;
}

std::string FloodUntilAnswered(RawConn& c, const std::string& head, char filler, size_t flood_bytes,
                               std::chrono::milliseconds deadline) {
  // Pieces small enough that an early answer is noticed soon after it comes.
  constexpr size_t kPieceBytes = 1 << 20;
  const std::string piece(kPieceBytes, filler);
  std::string answer;
  bool open = c.Send(head, deadline);
  for (size_t sent = 0; open && sent < flood_bytes && answer.empty(); sent += kPieceBytes) {
    open = c.Send(std::string_view(piece).substr(0, std::min(kPieceBytes, flood_bytes - sent)),
                  deadline);
    answer += c.Read(std::chrono::milliseconds(0));
    if (c.closed()) break;
  }
  if (answer.find("}}") == std::string::npos && !c.closed()) answer += c.Read(deadline, "}}");
  return answer;
}

int StatusOf(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
  return std::stoi(answer.substr(9, 3));
}

size_t ProcessMemoryBytes(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

}  // namespace billing::testing
