// Budgets, forecasts and alerts (SPEC "Budgets, forecasts and alerts").
//
// A budget is an amount per month for the organization or one cost center,
// in force by the org's budget history (OrgState::BudgetsOf). What it is held
// against are a month's running figures: per invoice bucket the exact total
// and the usage, and `observed`, the latest usage_end the feeds have reported
// for the month. The decider keeps them per (org, month) as postings land,
// raises alerts from them at the sequence their condition first holds, and
// writes both as read models (keys.h "pb", "pr"), so a rebuild or an `as_of`
// replay finds exactly the alerts the live service raised.
//
// The forecast is a linear extrapolation: the month's usage so far, scaled
// from the part of the month the feeds have covered to the whole month, plus
// the month's other charges (support, credits, adjustments) as they are.
//
// Everything here is a pure function of its arguments; thread-safe.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "events/calendar.h"
#include "events/money.h"
#include "projections/org_state.h"
#include "projections/store.h"

namespace billing::projections {

// One invoice bucket's figures of a month, exact.
struct BucketFigures {
  Sum total = 0;  // every posting (usage, support, credits, adjustments), signed
  Sum usage = 0;  // the usage category only: net of voids, without adjustments
};

struct MonthFigures {
  std::map<std::string, BucketFigures> buckets;  // cost center id, "" for the organization
  // Latest usage_end of the usage posted into the month (not as an
  // adjustment), voided ones included: how far the feeds have reported.
  std::optional<Timestamp> observed;
  // Alerts already raised for the month (AlertMark): each at most once.
  std::set<std::string> raised;
};

std::string EncodeFigures(const MonthFigures& figures);
// False when `bytes` is not an encoded MonthFigures (corruption).
bool DecodeFigures(std::string_view bytes, MonthFigures* out);
// The stored figures of `org`'s month; empty when none are stored. Bytes that
// do not decode fail the view (kCorruption) and read as empty.
MonthFigures ReadFigures(const View& view, const std::string& org, Month month);

// What one scope (the whole organization, or one cost center) has in a month.
struct ScopeFigures {
  Sum total = 0;
  Sum usage = 0;
};
// The organization's figures (nullopt), or that cost center's.
ScopeFigures ScopeOf(const MonthFigures& figures, const std::optional<std::string>& cost_center);

// The SPEC's forecast of a scope for `month`, rounded half away from zero to
// `minor_digits`: usage × month length ÷ (observed − month start) + the other
// charges, exact. `observed` is held between one day after the month's first
// instant and the month's end; nullopt (no usage reported) counts as the end.
Sum Forecast(const ScopeFigures& scope, std::optional<Timestamp> observed, Month month,
             int minor_digits);

enum class AlertKind : char { kActual = 'A', kForecast = 'F' };
// The threshold every forecast alert has (SPEC).
inline constexpr int32_t kForecastAlertThreshold = 100;

// A raised alert, as `GET /v1/orgs/{org}/alerts` lists it.
struct Alert {
  std::string org_id;
  std::string budget_id;
  std::optional<std::string> cost_center_id;  // nullopt: an organization budget
  Month month;
  AlertKind kind = AlertKind::kActual;
  int32_t threshold = 0;  // percent of the budget
  Sum budget = 0;         // the budget's amount, rounded to the minor unit
  Sum amount = 0;         // covered charges or forecast at `sequence`, rounded
  uint64_t sequence = 0;  // the event that raised it
};

// Opaque and stable: derived from (budget, month, kind, threshold) alone, the
// identity that alerts at most once, so a rebuild gives every alert its id.
std::string AlertId(const Alert& alert);
std::string_view AlertKindName(AlertKind kind);  // "actual", "forecast"

std::string EncodeAlert(const Alert& alert);
bool DecodeAlert(std::string_view bytes, Alert* out);

// The org's alerts in sequence order (ties by month, budget, kind,
// threshold); of `month` only when given.
std::vector<Alert> Alerts(const OrgState& org, const View& view, std::optional<Month> month);

// The month's budget for the dashboard: the exact sum of the amounts of the
// organization's budgets (nullopt) or that cost center's, in force in
// `month`, rounded to the minor unit; nullopt when there is none.
std::optional<Sum> MonthBudget(const OrgState& org, Month month,
                               const std::optional<std::string>& cost_center);

// The alerts whose condition holds for `month` at `sequence` and that were
// not raised before: every threshold an actual alert's covered charges reach,
// and, while the month is open, the forecast alert of each budget whose
// scope's rounded forecast is at least its amount. Marks them in
// `figures->raised`; ordered by budget id, then actual thresholds ascending,
// then forecast.
std::vector<Alert> NewAlerts(const OrgState& org, Month month, MonthFigures* figures,
                             uint64_t sequence);

}  // namespace billing::projections
