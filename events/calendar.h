// Calendar: RFC 3339 UTC instants and `YYYY-MM` billing months.
//
// Billing is by UTC calendar month. A Month is a dense integer (year*12 + m-1)
// so month ranges are plain integer ranges; a Timestamp is microseconds since
// the Unix epoch. Both parse strictly: times must end in `Z`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "events/status.h"

namespace billing {

struct Timestamp {
  int64_t micros = 0;  // since 1970-01-01T00:00:00Z
  auto operator<=>(const Timestamp&) const = default;
};

struct Month {
  int32_t index = 0;  // year * 12 + (month - 1)
  auto operator<=>(const Month&) const = default;
  int year() const { return index / 12; }
  int month() const { return index % 12 + 1; }
  Month next() const { return Month{index + 1}; }
  Month prev() const { return Month{index - 1}; }
};

// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`; kInvalidArgument naming `field` otherwise.
Result<Timestamp> ParseTimestamp(std::string_view text, std::string_view field);
// `YYYY-MM` with MM in 01..12; kInvalidArgument naming `field` otherwise.
Result<Month> ParseMonth(std::string_view text, std::string_view field);

Month MonthOf(Timestamp t);
Timestamp MonthStart(Month m);
std::string FormatMonth(Month m);
// RFC 3339 with microseconds, e.g. 2026-10-03T12:00:00.000000Z.
std::string FormatTimestamp(Timestamp t);

}  // namespace billing
