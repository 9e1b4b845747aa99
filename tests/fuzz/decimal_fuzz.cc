// Fuzz target: decimal money text. Whatever ParseDecimal accepts formats back
// into text that parses to the same nano-units, at 9 digits and, once
// rounded half away from zero, at every minor unit from 0 to 9 digits.
#include <limits>
#include <string>
#include <string_view>

#include "events/money.h"
#include "tests/fuzz/fuzz_targets.h"

namespace billing::fuzz {

int Decimal(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseDecimal(input, "amount");
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == Code::kInvalidArgument, parsed.status().ToString());
    FUZZ_CHECK(parsed.status().message().find("amount") != std::string::npos,
               parsed.status().message());
    return 0;
  }
  const Nanos value = *parsed;
  FUZZ_CHECK(value >= 0, std::string(input));
  const std::string text = FormatNanos(value);
  auto reparsed = ParseDecimal(text, "amount");
  FUZZ_CHECK(reparsed.ok() && *reparsed == value, std::string(input) + " -> " + text);
  for (int digits = 0; digits <= kNanoDigits; ++digits) {
    const Sum rounded = RoundHalfAwayFromZero(value, digits);
    FUZZ_CHECK(rounded - value < kNanosPerUnit && value - rounded < kNanosPerUnit, text);
    const std::string shown = FormatNanos(rounded, digits);
    // Rounding up the largest amounts can leave int64; ParseDecimal must then
    // say it overflows rather than wrap.
    auto back = ParseDecimal(shown, "amount");
    if (rounded > std::numeric_limits<Nanos>::max()) {
      FUZZ_CHECK(!back.ok(), shown);
    } else {
      FUZZ_CHECK(back.ok() && *back == rounded,
                 text + " at " + std::to_string(digits) + " digits -> " + shown);
    }
    // The negative of an amount (a credit) formats symmetrically.
    FUZZ_CHECK(FormatNanos(-rounded, digits) == (rounded == 0 ? shown : "-" + shown), shown);
  }
  return 0;
}

}  // namespace billing::fuzz

LEDGER_FUZZ_MAIN(billing::fuzz::Decimal)
