#include "http/request_gate.h"

#include <algorithm>
#include <cctype>
#include <utility>

namespace billing::api {

namespace http = boost::beast::http;

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// A field's value (the first, where repeated), trimmed.
std::string_view ValueOf(const http::request_header<>& head, http::field field) {
  auto value = head[field];
  return Trim(std::string_view(value.data(), value.size()));
}

size_t CountOf(const http::request_header<>& head, http::field field) {
  auto [first, last] = head.equal_range(field);
  return static_cast<size_t>(std::distance(first, last));
}

bool AllDigits(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// obs-fold is a line of the head that starts with a space or a tab: the
// continuation of the previous field's value. The parser joins it into that
// value, so only the raw bytes show it.
bool HasObsFold(std::string_view raw_head) {
  for (size_t at = raw_head.find("\r\n"); at != std::string_view::npos;
       at = raw_head.find("\r\n", at + 2)) {
    if (at + 2 < raw_head.size() && (raw_head[at + 2] == ' ' || raw_head[at + 2] == '\t'))
      return true;
  }
  return false;
}

Refusal BadRequest(std::string message) {
  return Refusal{400, "invalid_argument", std::move(message)};
}

}  // namespace

bool IsLoopbackHost(std::string_view host) {
  std::string_view name = host;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    name = host.substr(0, close + 1);
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (!AllDigits(port)) return false;
    }
    return name == "[::1]";
  }
  if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
    if (!AllDigits(port)) return false;
  }
  if (IEquals(name, "localhost")) return true;
  // An IPv4 literal in 127.0.0.0/8: four decimal parts, the first 127.
  if (name.rfind("127.", 0) != 0) return false;
  int parts = 0;
  for (size_t start = 0; start <= name.size();) {
    size_t dot = name.find('.', start);
    std::string_view part =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!AllDigits(part) || part.size() > 3 || std::stoi(std::string(part)) > 255) return false;
    ++parts;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts == 4;
}

bool IsJsonMediaType(std::string_view content_type) {
  std::string_view type = Trim(content_type.substr(0, content_type.find(';')));
  return IEquals(type, "application/json") || IEquals(type, "application/x-ndjson");
}

std::optional<Refusal> CheckRequestHead(const http::request_header<>& head,
                                        std::string_view raw_head, HostPolicy hosts) {
  if (HasObsFold(raw_head)) {
    return BadRequest("header lines folded onto the next line (obs-fold) are not accepted");
  }
  const size_t host_count = CountOf(head, http::field::host);
  if (host_count > 1 || (head.version() >= 11 && host_count == 0)) {
    return BadRequest("an HTTP/1.1 request needs exactly one Host header");
  }
  // The parser reads a body only for `chunked` as the last coding, and reads
  // `xchunked` or `chunked, identity` as no body at all, which makes the body
  // the next request. We decode no other coding, so anything but a plain
  // `chunked` is refused, as is a Content-Length beside it (RFC 9112 §6.3).
  const size_t te_count = CountOf(head, http::field::transfer_encoding);
  if (te_count > 0 && head.version() < 11) {
    // HTTP/1.0 has no chunked coding: a proxy may read the body as ending
    // at the close, we would read chunks (RFC 9112 §6.1: faulty framing).
    return BadRequest("Transfer-Encoding is not defined for HTTP/1.0");
  }
  if (te_count > 0) {
    if (te_count > 1 || !IEquals(ValueOf(head, http::field::transfer_encoding), "chunked")) {
      return BadRequest("Transfer-Encoding must be `chunked` alone");
    }
    if (CountOf(head, http::field::content_length) > 0) {
      return BadRequest("a request may not have both Transfer-Encoding and Content-Length");
    }
  }
  if (CountOf(head, http::field::authorization) > 1) {
    return BadRequest("a request may carry one Authorization header");
  }
  const size_t expect_count = CountOf(head, http::field::expect);
  if (expect_count > 1 ||
      (expect_count == 1 && !IEquals(ValueOf(head, http::field::expect), "100-continue"))) {
    return Refusal{417, "expectation_failed",
                   "the only expectation understood is `Expect: 100-continue`"};
  }
  if (hosts == HostPolicy::kLoopbackOnly &&
      (host_count == 0 || !IsLoopbackHost(ValueOf(head, http::field::host)))) {
    // A browser sends the name it resolved: any other name reaching a
    // loopback listener is a DNS rebinding (or a misrouted request). An
    // HTTP/1.0 request without Host names nothing, so it cannot show it is
    // not one.
    return Refusal{421, "misdirected_request",
                   "without access control this server only answers requests for localhost, "
                   "127.0.0.1 or [::1]"};
  }
  return std::nullopt;
}

BodyBudget::Reservation& BodyBudget::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void BodyBudget::Reservation::Release() {
  if (budget_ != nullptr) budget_->available_ += bytes_;
  budget_ = nullptr;
  bytes_ = 0;
}

bool BodyBudget::Reservation::TryGrow(BodyBudget* budget, size_t bytes) {
  if (budget_ != nullptr && budget_ != budget) return false;
  size_t available = budget->available_.load();
  do {
    if (available < bytes) return false;
  } while (!budget->available_.compare_exchange_weak(available, available - bytes));
  budget_ = budget;
  bytes_ += bytes;
  return true;
}

std::optional<BodyBudget::Reservation> BodyBudget::TryReserve(size_t bytes) {
  size_t available = available_.load();
  do {
    if (available < bytes) return std::nullopt;
  } while (!available_.compare_exchange_weak(available, available - bytes));
  return Reservation(this, bytes);
}

boost::asio::ip::address ClientConnections::ClientOf(const boost::asio::ip::address& address) {
  if (!address.is_v6()) return address;
  boost::asio::ip::address_v6 v6 = address.to_v6();
  if (v6.is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6);
  boost::asio::ip::address_v6::bytes_type bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return boost::asio::ip::address_v6(bytes);
}

bool ClientConnections::TryAdd(const boost::asio::ip::address& address) {
  const boost::asio::ip::address client = ClientOf(address);
  std::lock_guard<std::mutex> lock(mu_);
  if (total_ >= total_max_) return false;
  auto it = open_.find(client);
  const size_t open = it == open_.end() ? 0 : it->second;
  if (open >= kHttpConnectionsPerClientMax) return false;
  const bool only_reserved_left = total_ + kHttpConnectionsReserved >= total_max_;
  if (only_reserved_left && open >= kHttpReservedConnectionsPerClientMax) return false;
  ++open_[client];
  ++total_;
  return true;
}

void ClientConnections::Remove(const boost::asio::ip::address& address) {
  const boost::asio::ip::address client = ClientOf(address);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(client);
  if (it == open_.end()) return;
  --total_;
  if (--it->second == 0) open_.erase(it);
}

size_t ClientConnections::total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

}  // namespace billing::api
