// Generator: seeded synthetic billing histories as NDJSON events, for the
// demo, the benchmarks and the randomized tests.
//
// A history has organizations with cost centers, workspaces and providers,
// moves and mode changes, months of usage across services, resources and
// SKUs, support charges, credits, voids and period closes, including late
// charges for closed months. With `faults` it also mixes in what producers
// get wrong: exact re-sends, conflicting re-sends, unknown references,
// currency mismatches and malformed events. The same seed gives the same
// bytes on every machine (std::mt19937_64 is fully specified).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "events/status.h"

namespace billing::ops {

// The largest history a command line may ask for. Organizations: ids,
// currencies and structure are kept in memory for the whole run. Months:
// a century of history is more than any test or demo replays.
inline constexpr int kGeneratorOrgsMax = 100000;
inline constexpr int kGeneratorMonthsMax = 1200;

struct GeneratorOptions {
  uint64_t seed = 1;
  int orgs = 2;
  int months = 6;                // months of history per org
  int64_t usage_events = 10000;  // total usage_recorded events across orgs
  int resources_per_provider = 20;
  bool faults = false;  // mix in invalid and repeated events
  std::string start_month = "2025-01";
};

// kInvalidArgument naming the option when `options` cannot make a history:
// --start-month not YYYY-MM, --orgs or --months out of 1..their maximum (or
// running past 9999-12), negative --usage-events, --resources below 1.
Status CheckGeneratorOptions(const GeneratorOptions& options);

// Calls `emit` with one JSON event (no newline) at a time, in publishing
// order. `options` must pass CheckGeneratorOptions (a check fails otherwise).
void Generate(const GeneratorOptions& options, const std::function<void(const std::string&)>& emit);

// The same history as lines in memory, for tests that replay it.
std::vector<std::string> GenerateLines(const GeneratorOptions& options);

}  // namespace billing::ops
