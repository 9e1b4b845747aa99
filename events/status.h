// Status and Result: how errors cross module boundaries, as values.
//
// Three kinds of failure travel on three channels (see STYLE.md):
//  - business rejections are an event's SPEC code (`Code`, e.g. kUnknownOrg) and
//    are part of the API, never exceptions;
//  - operating failures (disk, network, broker) are a Status whose code says
//    whether a retry can help (kUnavailable) or not (kCorruption, ...);
//  - broken invariants are bugs and stop the process (LEDGER_CHECK).
#pragma once

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
  kUnknownBudget,
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

// True for the SPEC's rejection codes (an event refused by the rules), false
// for ok and for the operational codes (kNotFound onwards).
constexpr bool IsRejection(Code code) {
  return code >= Code::kInvalidArgument && code <= Code::kUnknownBudget;
}

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

[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, std::string_view msg);

// Where a function was called from, for check failures: as a default
// argument, `{__builtin_FILE(), __builtin_LINE()}` is evaluated at the call
// site (GCC and clang alike). std::source_location would do the same, but
// clang 14 (the fuzz build's compiler) lacks it.
struct CallSite {
  const char* file;
  int line;
};
#define LEDGER_CALL_SITE \
  ::billing::CallSite { __builtin_FILE(), __builtin_LINE() }

// A value or the Status saying why there is none.
//
// WARNING: value(), operator* and operator-> on an error are bugs, not
// failures to handle: they stop the process with the caller's file:line (for
// value(); the operators name this header) and the status. Check ok() first,
// or use ASSIGN_OR_RETURN.
template <typename T>
class [[nodiscard]] Result {
 public:
  // A Result without a value needs a reason: an ok Status here is a bug.
  Result(T value) : v_(std::move(value)) {}                 // NOLINT: implicit by design
  Result(Status status, CallSite where = LEDGER_CALL_SITE)  // NOLINT
      : v_(std::move(status)) {
    if (std::get<Status>(v_).ok()) {
      CheckFailed(where.file, where.line, "!status.ok()",
                  "a Result was made from an ok Status, without a value");
    }
  }
  bool ok() const { return v_.index() == 0; }
  const T& value(CallSite where = LEDGER_CALL_SITE) const& {
    CheckHasValue(where);
    return std::get<T>(v_);
  }
  T& value(CallSite where = LEDGER_CALL_SITE) & {
    CheckHasValue(where);
    return std::get<T>(v_);
  }
  T&& value(CallSite where = LEDGER_CALL_SITE) && {
    CheckHasValue(where);
    return std::get<T>(std::move(v_));
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

 private:
  void CheckHasValue(const CallSite& where) const {
    if (!ok()) {
      CheckFailed(where.file, where.line, "result.ok()",
                  "value() of an error Result: " + std::get<Status>(v_).ToString());
    }
  }

  std::variant<T, Status> v_;
};

}  // namespace billing

// Invariants that must hold in release builds too (money, sequence order):
// a failure is a bug, and continuing could publish a wrong bill.
#define LEDGER_CHECK(cond, msg)                                            \
  do {                                                                     \
    if (!(cond)) ::billing::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

// Operating failures travel up as values. RETURN_IF_ERROR(expr) returns the
// Status `expr` evaluates to unless it is ok; ASSIGN_OR_RETURN(lhs, expr)
// evaluates a Result and either assigns its value to `lhs` (a declaration,
// e.g. `auto x`, or an existing variable) or returns its Status. Each works
// in a function returning Status or any Result<T>.
#define LEDGER_STATUS_CONCAT_INNER(a, b) a##b
#define LEDGER_STATUS_CONCAT(a, b) LEDGER_STATUS_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::billing::Status ledger_status_ = (expr);       \
    if (!ledger_status_.ok()) return ledger_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  LEDGER_ASSIGN_OR_RETURN_IMPL(LEDGER_STATUS_CONCAT(ledger_result_, __LINE__), lhs, expr)

#define LEDGER_ASSIGN_OR_RETURN_IMPL(result, lhs, expr) \
  auto result = (expr);                                 \
  if (!result.ok()) return result.status();             \
  lhs = std::move(result).value()
