#include "projections/budgets.h"

#include <openssl/evp.h>

#include <algorithm>

#include "projections/keys.h"
#include "projections/state.pb.h"

namespace billing::projections {

namespace {

constexpr int64_t kSecondsPerDay = 86400;
// Hex digits of an alert id: 128 bits of SHA-256, unique among any number of
// alerts a ledger could hold, short enough to read in a log line.
constexpr size_t kAlertIdHexDigits = 32;

std::string SumBytes(Sum v) {
  unsigned __int128 u = static_cast<unsigned __int128>(v);
  std::string out(16, '\0');
  for (int i = 0; i < 16; ++i) out[i] = static_cast<char>((u >> (8 * i)) & 0xff);
  return out;
}

bool SumOf(const std::string& bytes, Sum* out) {
  if (bytes.size() != 16) return false;
  unsigned __int128 u = 0;
  for (int i = 15; i >= 0; --i) u = (u << 8) | static_cast<unsigned char>(bytes[i]);
  *out = static_cast<Sum>(u);
  return true;
}

Sum Pow10(int digits) {
  Sum p = 1;
  for (int i = 0; i < digits; ++i) p *= 10;
  return p;
}

// Nanoseconds from `from` to `to` (negative when `to` is earlier).
Sum NanosBetween(Timestamp from, Timestamp to) {
  return (static_cast<Sum>(to.seconds()) - from.seconds()) * kNanosPerSecond +
         (to.nanos() - from.nanos());
}

// Floor division by a positive divisor: 0 <= *rest < divisor.
Sum FloorDiv(Sum value, Sum divisor, Sum* rest) {
  Sum q = value / divisor;
  Sum r = value % divisor;
  if (r < 0) {
    q -= 1;
    r += divisor;
  }
  *rest = r;
  return q;
}

// The mark of one alert in MonthFigures::raised: budget_id 0 kind threshold.
std::string AlertMark(std::string_view budget_id, AlertKind kind, int32_t threshold) {
  std::string mark(budget_id);
  mark.push_back('\0');
  mark.push_back(static_cast<char>(kind));
  mark += std::to_string(threshold);
  return mark;
}

}  // namespace

std::string EncodeFigures(const MonthFigures& figures) {
  v1::MonthFigures p;
  for (const auto& [bucket, f] : figures.buckets) {
    v1::BucketFigures* b = p.add_buckets();
    b->set_bucket(bucket);
    b->set_total(SumBytes(f.total));
    b->set_usage(SumBytes(f.usage));
  }
  if (figures.observed) {
    p.mutable_observed()->set_seconds(figures.observed->seconds());
    p.mutable_observed()->set_nanos(figures.observed->nanos());
  }
  for (const std::string& mark : figures.raised) p.add_raised(mark);
  return p.SerializeAsString();
}

bool DecodeFigures(std::string_view bytes, MonthFigures* out) {
  v1::MonthFigures p;
  if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return false;
  *out = MonthFigures();
  for (const v1::BucketFigures& b : p.buckets()) {
    BucketFigures& f = out->buckets[b.bucket()];
    if (!SumOf(b.total(), &f.total) || !SumOf(b.usage(), &f.usage)) return false;
  }
  if (p.has_observed()) {
    if (p.observed().nanos() < 0 || p.observed().nanos() >= kNanosPerSecond) return false;
    out->observed = Timestamp::FromSecondsAndNanos(p.observed().seconds(), p.observed().nanos());
  }
  out->raised.insert(p.raised().begin(), p.raised().end());
  return true;
}

MonthFigures ReadFigures(const View& view, const std::string& org, Month month) {
  MonthFigures figures;
  auto bytes = view.Get(keys::FiguresKey(org, month));
  if (bytes && !DecodeFigures(*bytes, &figures)) {
    view.Fail(Status(Code::kCorruption, "the read models hold undecodable month figures"));
    return MonthFigures();
  }
  return figures;
}

ScopeFigures ScopeOf(const MonthFigures& figures, const std::optional<std::string>& cost_center) {
  ScopeFigures scope;
  for (const auto& [bucket, f] : figures.buckets) {
    if (cost_center && bucket != *cost_center) continue;
    scope.total += f.total;
    scope.usage += f.usage;
  }
  return scope;
}

Sum Forecast(const ScopeFigures& scope, std::optional<Timestamp> observed, Month month,
             int minor_digits) {
  const Timestamp start = MonthStart(month);
  const Sum length = NanosBetween(start, MonthStart(month.next()));
  const Sum day = static_cast<Sum>(kSecondsPerDay) * kNanosPerSecond;
  const Sum elapsed = observed ? std::clamp(NanosBetween(start, *observed), day, length) : length;
  // usage × length ÷ elapsed, split as (q·elapsed + r) × length ÷ elapsed so
  // that no product leaves Int128: q·length ≤ 31 × usage (elapsed is at least
  // a day), and r·length < elapsed·length ≤ (31 days in ns)² ≈ 7.2e30.
  Sum r = 0;
  const Sum q = FloorDiv(scope.usage, elapsed, &r);
  Sum fraction = 0;  // of `elapsed`, still to round
  const Sum whole = q * length + FloorDiv(r * length, elapsed, &fraction);
  const Sum exact_floor = whole + (scope.total - scope.usage);
  // Round exact_floor + fraction/elapsed to the minor unit, half away from
  // zero, without forming fraction's product with the (large) sum.
  const Sum unit = Pow10(kNanoDigits - minor_digits);
  Sum below = 0;  // nanos above the lower multiple of `unit`
  const Sum units = FloorDiv(exact_floor, unit, &below);
  const Sum twice_excess = 2 * (below * elapsed + fraction);  // vs unit × elapsed
  const Sum half = unit * elapsed;
  // A non-negative value rounds a tie up; a negative one rounds it down
  // (away from zero), which is the lower multiple.
  const bool up = units >= 0 ? twice_excess >= half : twice_excess > half;
  return (units + (up ? 1 : 0)) * unit;
}

std::string_view AlertKindName(AlertKind kind) {
  return kind == AlertKind::kForecast ? "forecast" : "actual";
}

std::string AlertId(const Alert& alert) {
  std::string identity = alert.org_id;
  identity.push_back('\0');
  identity += FormatMonth(alert.month);
  identity.push_back('\0');
  identity += AlertMark(alert.budget_id, alert.kind, alert.threshold);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(identity.data(), identity.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "alert-";
  for (size_t i = 0; i < kAlertIdHexDigits / 2 && i < size; ++i) {
    id.push_back(kHex[digest[i] >> 4]);
    id.push_back(kHex[digest[i] & 0xf]);
  }
  return id;
}

std::string EncodeAlert(const Alert& alert) {
  v1::Alert p;
  p.set_budget_id(alert.budget_id);
  if (alert.cost_center_id) p.set_cost_center_id(*alert.cost_center_id);
  p.set_month(alert.month.index);
  p.set_forecast(alert.kind == AlertKind::kForecast);
  p.set_threshold(alert.threshold);
  p.set_budget(SumBytes(alert.budget));
  p.set_amount(SumBytes(alert.amount));
  p.set_sequence(alert.sequence);
  return p.SerializeAsString();
}

bool DecodeAlert(std::string_view bytes, Alert* out) {
  v1::Alert p;
  if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return false;
  out->budget_id = p.budget_id();
  out->cost_center_id.reset();
  if (p.has_cost_center_id()) out->cost_center_id = p.cost_center_id();
  out->month = Month{p.month()};
  out->kind = p.forecast() ? AlertKind::kForecast : AlertKind::kActual;
  out->threshold = p.threshold();
  out->sequence = p.sequence();
  return SumOf(p.budget(), &out->budget) && SumOf(p.amount(), &out->amount);
}

std::vector<Alert> Alerts(const OrgState& org, const View& view, std::optional<Month> month) {
  std::vector<Alert> out;
  view.Scan(keys::AlertPrefix(org.org_id), [&](std::string_view, std::string_view value) {
    Alert alert;
    if (!DecodeAlert(value, &alert)) {
      view.Fail(Status(Code::kCorruption, "the read models hold an undecodable alert"));
      return false;
    }
    alert.org_id = org.org_id;
    if (!month || alert.month == *month) out.push_back(std::move(alert));
    return true;
  });
  return out;
}

std::optional<Sum> MonthBudget(const OrgState& org, Month month,
                               const std::optional<std::string>& cost_center) {
  std::optional<Sum> sum;
  for (const auto& [id, budget] : org.BudgetsOf(month)) {
    if (budget->cost_center != cost_center) continue;
    sum = sum.value_or(0) + budget->amount;
  }
  if (sum) sum = RoundHalfAwayFromZero(*sum, org.minor_digits);
  return sum;
}

std::vector<Alert> NewAlerts(const OrgState& org, Month month, MonthFigures* figures,
                             uint64_t sequence) {
  std::vector<Alert> out;
  const bool open = !org.IsClosed(month);
  auto raise = [&](const BudgetChange& budget, AlertKind kind, int32_t threshold, Sum amount) {
    if (!figures->raised.insert(AlertMark(budget.budget_id, kind, threshold)).second) return;
    out.push_back(Alert{org.org_id, budget.budget_id, budget.cost_center, month, kind, threshold,
                        RoundHalfAwayFromZero(budget.amount, org.minor_digits), amount, sequence});
  };
  for (const auto& [id, budget] : org.BudgetsOf(month)) {
    const ScopeFigures scope = ScopeOf(*figures, budget->cost_center);
    std::vector<int32_t> thresholds = budget->thresholds;
    std::sort(thresholds.begin(), thresholds.end());
    for (int32_t percent : thresholds) {
      // Reached: total ≥ amount × percent / 100, compared without dividing.
      if (scope.total * 100 >= static_cast<Sum>(budget->amount) * percent) {
        raise(*budget, AlertKind::kActual, percent,
              RoundHalfAwayFromZero(scope.total, org.minor_digits));
      }
    }
    if (!open) continue;
    const Sum forecast = Forecast(scope, figures->observed, month, org.minor_digits);
    if (forecast >= budget->amount) {
      raise(*budget, AlertKind::kForecast, kForecastAlertThreshold, forecast);
    }
  }
  return out;
}

}  // namespace billing::projections
