#include "events/status.h"

namespace billing {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid_argument";
    case Code::kUnknownOrg:
      return "unknown_org";
    case Code::kOrgExists:
      return "org_exists";
    case Code::kUnknownCostCenter:
      return "unknown_cost_center";
    case Code::kUnknownWorkspace:
      return "unknown_workspace";
    case Code::kUnknownProvider:
      return "unknown_provider";
    case Code::kAlreadyExists:
      return "already_exists";
    case Code::kCurrencyMismatch:
      return "currency_mismatch";
    case Code::kConflict:
      return "conflict";
    case Code::kUnknownEvent:
      return "unknown_event";
    case Code::kNotVoidable:
      return "not_voidable";
    case Code::kAlreadyVoided:
      return "already_voided";
    case Code::kPeriodClosed:
      return "period_closed";
    case Code::kUnknownBudget:
      return "unknown_budget";
    case Code::kNotFound:
      return "not_found";
    case Code::kTooLarge:
      return "payload_too_large";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kOverloaded:
      return "overloaded";
    case Code::kCorruption:
      return "corruption";
    case Code::kInternal:
      return "internal";
  }
  return "internal";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(code_)) + ": " + message_;
}

void CheckFailed(const char* file, int line, const char* expr, std::string_view msg) {
  std::fprintf(stderr, "FATAL %s:%d: check failed: %s: %.*s\n", file, line, expr,
               static_cast<int>(msg.size()), msg.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace billing
