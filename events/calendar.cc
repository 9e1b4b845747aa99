#include "events/calendar.h"

#include <cstdio>

namespace billing {

namespace {

// Howard Hinnant's days_from_civil: exact for the proleptic Gregorian calendar.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at `pos`; false if any is not a digit.
bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

Status Bad(std::string_view field, std::string_view text, std::string_view want) {
  return Status(Code::kInvalidArgument, std::string(field) + " must be " + std::string(want) +
                                            ", got \"" + std::string(text) + "\"");
}

// Reads the fraction after the `.` at `*pos` as nanoseconds. False when it
// has no digit or more than kTimeFractionDigitsMax of them.
bool Fraction(std::string_view s, size_t* pos, int32_t* nanos) {
  const size_t start = *pos;
  int32_t value = 0;
  int32_t scale = kNanosPerSecond;
  while (*pos < s.size() && s[*pos] >= '0' && s[*pos] <= '9') {
    if (*pos - start == static_cast<size_t>(kTimeFractionDigitsMax)) return false;
    scale /= 10;
    value += (s[*pos] - '0') * scale;
    ++*pos;
  }
  *nanos = value;
  return *pos != start;
}

// Floor division of seconds into days, and the second of that day.
void SplitDays(int64_t seconds, int64_t* days, int64_t* second_of_day) {
  *days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  *second_of_day = seconds - *days * 86400;
}

}  // namespace

Result<Timestamp> ParseTimestamp(std::string_view s, std::string_view field) {
  constexpr std::string_view kWant = "an RFC 3339 UTC time like 2026-10-03T12:00:00Z";
  int y, mo, d, h, mi, se;
  if (s.size() < 20 || !Digits(s, 0, 4, &y) || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d) || s[10] != 'T' || !Digits(s, 11, 2, &h) ||
      s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' || !Digits(s, 17, 2, &se)) {
    return Bad(field, s, kWant);
  }
  size_t pos = 19;
  int32_t nanos = 0;
  // Every digit counts: instants a nanosecond apart must order as they are
  // (a usage_end before its usage_start, a move between two usages), so a
  // fraction finer than we can hold is refused, not cut.
  if (s[pos] == '.') {
    ++pos;
    if (!Fraction(s, &pos, &nanos))
      return Bad(field, s, "an RFC 3339 UTC time with 1 to 9 fraction digits");
  }
  if (pos + 1 != s.size() || s[pos] != 'Z') return Bad(field, s, kWant);
  if (mo < 1 || mo > 12 || d < 1 || d > static_cast<int>(DaysInMonth(y, mo)) || h > 23 || mi > 59 ||
      se > 59) {
    return Bad(field, s, "a valid calendar time");
  }
  int64_t days = DaysFromCivil(y, mo, d);
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + se;
  return Timestamp::FromSecondsAndNanos(secs, nanos);
}

Result<Month> ParseMonth(std::string_view s, std::string_view field) {
  int y, m;
  if (s.size() != 7 || !Digits(s, 0, 4, &y) || s[4] != '-' || !Digits(s, 5, 2, &m) || m < 1 ||
      m > 12) {
    return Bad(field, s, "a month YYYY-MM");
  }
  return Month{y * 12 + m - 1};
}

Result<Month> FirstMonthOfRange(Month end, int count, std::string_view field) {
  // Compared as int64: an `end` and `count` near the int32 limits must not wrap.
  const int64_t first = static_cast<int64_t>(end.index) - count + 1;
  if (!end.valid() || count < 1 || first < kMonthFirst.index) {
    return Status(Code::kInvalidArgument,
                  std::string(field) + " " +
                      (end.valid() ? FormatMonth(end) : std::string("(out of range)")) + ": " +
                      std::to_string(count) +
                      " months back from it reach before 0000-01, the first month there is");
  }
  return Month{static_cast<int32_t>(first)};
}

Month MonthOf(Timestamp t) {
  int64_t days, second_of_day;
  SplitDays(t.seconds(), &days, &second_of_day);
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  return Month{static_cast<int32_t>(y * 12 + m - 1)};
}

Timestamp MonthStart(Month m) {
  int64_t days = DaysFromCivil(m.year(), static_cast<unsigned>(m.month()), 1);
  return Timestamp::FromSecondsAndNanos(days * 86400, 0);
}

std::string FormatMonth(Month m) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d-%02d", m.year(), m.month());
  return buf;
}

std::string FormatTimestamp(Timestamp t) {
  int64_t days, rem;
  SplitDays(t.seconds(), &days, &rem);
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  // Six digits for whole microseconds keeps every answer that printed
  // recorded_at before nanoseconds byte-identical; nine otherwise is exact.
  const bool whole_micros = t.nanos() % 1000 == 0;
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%0*ldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                static_cast<long long>(rem % 3600 / 60), static_cast<long long>(rem % 60),
                whole_micros ? 6 : 9,
                static_cast<long>(whole_micros ? t.nanos() / 1000 : t.nanos()));
  return buf;
}

}  // namespace billing
