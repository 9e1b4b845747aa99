// Status and Result: how errors cross module boundaries, as values.
//
// Three kinds of failure travel on three channels (see STYLE.md):
//  - business rejections are an event's SPEC code (`Code`, e.g. kUnknownOrg) and
//    are part of the API, never exceptions;
//  - operating failures (disk, network, broker) are a Status whose code says
//    whether a retry can help (kUnavailable) or not (kCorruption, ...);
//  - broken invariants are bugs and stop the process (LEDGER_CHECK).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace billing {

// Every code the service reports, business and operational. The first group is
// the SPEC's list of rejection codes; their names are wire format.
enum class Code {
  kOk = 0,
  kInvalidArgument,
  kUnknownOrg,
  kOrgExists,
  kUnknownCostCenter,
  kUnknownWorkspace,
  kUnknownProvider,
  kAlreadyExists,
  kCurrencyMismatch,
  kConflict,
  kUnknownEvent,
  kNotVoidable,
  kAlreadyVoided,
  kPeriodClosed,
  // Operational codes: not event rejections.
  kNotFound,     // the thing asked for does not exist (HTTP 404)
  kTooLarge,     // the input is over one of our limits; smaller pieces may pass (HTTP 413)
  kUnavailable,  // storage or broker failure that a retry may cure (HTTP 503)
  kOverloaded,   // a bounded queue is full; retry shortly (HTTP 503 with Retry-After)
  kCorruption,   // stored data is damaged or foreign; do not retry
  kInternal,     // anything else unexpected
};

// The SPEC's snake_case name of a code, e.g. "unknown_org".
std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {
    if (std::get<Status>(v_).ok()) std::abort();  // a Result without a value needs a reason
  }
  bool ok() const { return v_.index() == 0; }
  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, std::string_view msg);

}  // namespace billing

// Invariants that must hold in release builds too (money, sequence order):
// a failure is a bug, and continuing could publish a wrong bill.
#define LEDGER_CHECK(cond, msg) \
  do {                          \
    if (!(cond)) ::billing::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)
