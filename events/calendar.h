// Calendar: RFC 3339 UTC instants and `YYYY-MM` billing months.
//
// Billing is by UTC calendar month. A Month is a dense integer (year*12 + m-1)
// so month ranges are plain integer ranges; a Timestamp is an exact instant to
// the nanosecond: whole seconds since the Unix epoch and the nanoseconds into
// that second. Both parse strictly: times must end in `Z`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "events/status.h"

namespace billing {

// Most fractional-second digits an RFC 3339 time may carry: nanoseconds, the
// finest unit cloud usage exports use. More digits would be precision we
// silently drop, so they are refused rather than rounded.
inline constexpr int kTimeFractionDigitsMax = 9;
inline constexpr int32_t kNanosPerSecond = 1'000'000'000;

// An exact instant. Not an int64 of nanoseconds: times of years 0000..9999 are
// accepted (and may be in existing ledgers), and an int64 of nanoseconds only
// spans 1678..2262. Not an aggregate either, so a stray `Timestamp{micros}`
// from the microsecond era fails to compile instead of meaning seconds.
class Timestamp {
 public:
  constexpr Timestamp() = default;
  // `nanos` must be in 0..999'999'999 (the invariant the ordering relies on).
  static constexpr Timestamp FromSecondsAndNanos(int64_t seconds, int32_t nanos) {
    Timestamp t;
    t.seconds_ = seconds;
    t.nanos_ = nanos;
    return t;
  }
  // A microsecond count since the epoch: the ledger's recorded_at_micros and
  // received_at_micros. They stay microseconds on purpose: recorded_at is
  // part of every record's hash (ledger/hash_chain.h), so changing its unit
  // would break verification of every existing ledger, and the ledger's own
  // clock needs no finer grain. Only event times are nanosecond-exact.
  static constexpr Timestamp FromMicros(int64_t micros) {
    int64_t seconds = micros / 1'000'000;
    int64_t rest = micros % 1'000'000;
    if (rest < 0) {
      --seconds;
      rest += 1'000'000;
    }
    return FromSecondsAndNanos(seconds, static_cast<int32_t>(rest * 1000));
  }

  int64_t seconds() const { return seconds_; }  // since 1970-01-01T00:00:00Z, floor
  int32_t nanos() const { return nanos_; }      // 0..999'999'999 into that second

  // Seconds first, then nanos: chronological because nanos stay normalized.
  auto operator<=>(const Timestamp&) const = default;

 private:
  int64_t seconds_ = 0;
  int32_t nanos_ = 0;
};

struct Month {
  int32_t index = 0;  // year * 12 + (month - 1); 0 is 0000-01
  auto operator<=>(const Month&) const = default;
  int year() const { return index / 12; }
  int month() const { return index % 12 + 1; }
  Month next() const { return Month{index + 1}; }
  Month prev() const { return Month{index - 1}; }
  // Within 0000-01..9999-12, the months ParseMonth accepts. Outside it
  // year()/month() and FormatMonth do not describe a `YYYY-MM` month.
  bool valid() const;
};

inline constexpr Month kMonthFirst{0};              // 0000-01
inline constexpr Month kMonthLast{9999 * 12 + 11};  // 9999-12

inline bool Month::valid() const { return kMonthFirst <= *this && *this <= kMonthLast; }

// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with 1..9 fraction digits, exact to the
// nanosecond; kInvalidArgument naming `field` otherwise.
Result<Timestamp> ParseTimestamp(std::string_view text, std::string_view field);
// `YYYY-MM` with MM in 01..12; kInvalidArgument naming `field` otherwise.
Result<Month> ParseMonth(std::string_view text, std::string_view field);

// The `count` months ending at `end` (inclusive) as their first month: the
// earliest month of a list of `count` entries. kInvalidArgument naming `field`
// when that list would reach before 0000-01, so a month list never holds a
// month that cannot be written `YYYY-MM`. `count` must be at least 1.
Result<Month> FirstMonthOfRange(Month end, int count, std::string_view field);

Month MonthOf(Timestamp t);
Timestamp MonthStart(Month m);
std::string FormatMonth(Month m);
// RFC 3339, exact: six fraction digits when the instant is a whole
// microsecond (e.g. 2026-10-03T12:00:00.000000Z, the format recorded_at has
// always had), nine otherwise (2026-10-03T12:00:00.000000001Z). Parsing the
// result gives `t` back.
std::string FormatTimestamp(Timestamp t);

}  // namespace billing
