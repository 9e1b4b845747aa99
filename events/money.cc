#include "events/money.h"

#include <algorithm>
#include <array>
#include <limits>

namespace billing {

namespace {

Status Bad(std::string_view field, std::string_view why) {
  return Status(Code::kInvalidArgument, std::string(field) + " " + std::string(why));
}

Sum Pow10(int digits) {
  Sum p = 1;
  for (int i = 0; i < digits; ++i) p *= 10;
  return p;
}

}  // namespace

Result<Nanos> ParseDecimal(std::string_view text, std::string_view field) {
  if (text.empty()) return Bad(field, "must be a decimal string, got an empty string");
  if (text.size() > kDecimalTextBytesMax) return Bad(field, "is too long to be an amount");
  size_t dot = text.find('.');
  std::string_view int_part = text.substr(0, dot);
  std::string_view frac_part = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  auto all_digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (int_part.empty() || !all_digits(int_part) ||
      (dot != std::string_view::npos && (frac_part.empty() || !all_digits(frac_part)))) {
    return Bad(field,
               "must be a decimal string of digits[.digits], got \"" + std::string(text) + "\"");
  }
  if (frac_part.size() > kNanoDigits) {
    return Bad(field, "has more than 9 fractional digits: \"" + std::string(text) + "\"");
  }
  Sum value = 0;
  for (char c : int_part) {
    value = value * 10 + (c - '0');
    if (value > std::numeric_limits<Nanos>::max()) return Bad(field, "overflows");
  }
  Sum frac = 0;
  for (char c : frac_part) frac = frac * 10 + (c - '0');
  frac *= Pow10(kNanoDigits - static_cast<int>(frac_part.size()));
  value = value * kNanosPerUnit + frac;
  if (value > std::numeric_limits<Nanos>::max()) return Bad(field, "overflows");
  return static_cast<Nanos>(value);
}

std::string SumToString(Sum value) {
  if (value == 0) return "0";
  bool negative = value < 0;
  // Work on the negative side so the most negative Int128 needs no special case.
  Sum v = negative ? value : -value;
  std::string out;
  while (v != 0) {
    out.push_back(static_cast<char>('0' - static_cast<int>(v % 10)));
    v /= 10;
  }
  if (negative) out.push_back('-');
  std::reverse(out.begin(), out.end());
  return out;
}

std::string FormatNanos(Sum value, int digits) {
  LEDGER_CHECK(digits >= 0 && digits <= kNanoDigits, "digits out of range");
  Sum unit = Pow10(kNanoDigits - digits);
  LEDGER_CHECK(value % unit == 0, "formatting an unrounded amount");
  bool negative = value < 0;
  Sum scaled = value / unit;
  std::string abs = SumToString(negative ? -scaled : scaled);
  if (digits > 0) {
    if (abs.size() <= static_cast<size_t>(digits)) {
      abs.insert(0, static_cast<size_t>(digits) + 1 - abs.size(), '0');
    }
    abs.insert(abs.size() - static_cast<size_t>(digits), ".");
  }
  return negative ? "-" + abs : abs;
}

Sum RoundHalfAwayFromZero(Sum value, int digits) {
  LEDGER_CHECK(digits >= 0 && digits <= kNanoDigits, "digits out of range");
  Sum unit = Pow10(kNanoDigits - digits);
  if (unit == 1) return value;
  Sum magnitude = value < 0 ? -value : value;
  Sum rounded = (magnitude + unit / 2) / unit * unit;
  return value < 0 ? -rounded : rounded;
}

int MinorUnitDigits(std::string_view currency) {
  // ISO 4217 exponents that differ from the common 2.
  static constexpr std::array<std::string_view, 16> kZero = {
      "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW",
      "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF"};
  static constexpr std::array<std::string_view, 7> kThree = {"BHD", "IQD", "JOD", "KWD",
                                                             "LYD", "OMR", "TND"};
  if (std::find(kZero.begin(), kZero.end(), currency) != kZero.end()) return 0;
  if (std::find(kThree.begin(), kThree.end(), currency) != kThree.end()) return 3;
  return 2;
}

}  // namespace billing
