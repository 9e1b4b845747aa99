// Money: exact decimal amounts as integer nano-units (10^-9 of a currency unit).
//
// One event's amount or quantity fits an int64 (up to ~9.2 billion units); every
// sum is an Int128 (`Sum`), which cannot overflow for any ledger this service
// could hold (2^127 nanos is ~1.7e29 units). No floating point anywhere.
// Decimal text is `digits[.digits]` with at most 9 fractional digits: no sign,
// exponent, `.5` or `1.` (SPEC "Signs").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "events/status.h"

namespace billing {

using Nanos = int64_t;  // one amount, as parsed from an event
using Sum = __int128;   // any total of amounts

inline constexpr int kNanoDigits = 9;
inline constexpr Nanos kNanosPerUnit = 1'000'000'000;
// Longest decimal text we parse: 19 integer digits can never fit once scaled by
// 10^9, so anything longer is an overflow before we do arithmetic on it.
inline constexpr size_t kDecimalTextBytesMax = 40;

// Parses a non-negative decimal string into nano-units. kInvalidArgument with a
// message naming `field` when malformed, with too many decimals, or over int64.
Result<Nanos> ParseDecimal(std::string_view text, std::string_view field);

// Formats `value` nano-units with exactly `digits` fractional digits (0..9),
// which must already be rounded to that precision (checked).
std::string FormatNanos(Sum value, int digits = kNanoDigits);

// Rounds half away from zero to `digits` fractional digits (0..9).
Sum RoundHalfAwayFromZero(Sum value, int digits);

// Digits of the currency's minor unit: USD/EUR 2, JPY 0, BHD/KWD 3 (ISO 4217);
// 2 for currencies not in our table.
int MinorUnitDigits(std::string_view currency);

// Decimal text of an Int128 (std::to_string has no overload for it).
std::string SumToString(Sum value);

}  // namespace billing
