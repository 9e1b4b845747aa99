// Key layout of the projections' range ('p' prefix of ledger/format.h).
//
//   ps | org                                  -> OrgState (state.proto)
//   pv | org | 0 | event_id                   -> voided marker
//   pa | org | 0 | be32 month | kind | ...    -> Agg (merge operator sums)
//      kind 'C' category                      month total by category
//      kind 'I' category label                month item
//      kind 'B' bucket                        invoice bucket total
//      kind 'L' bucket 0 category label       invoice line
//      kind 'D' level service 0 provider ...  drill-down node (level 1..3)
//   pm | name                                 -> projection metadata
//
// A bucket is a cost center id, or "" for the organization's own charges.
// Ids and labels cannot hold control characters (events::Validate), so 0 is a
// safe separator.
#pragma once

#include <string>
#include <string_view>

#include "ledger/format.h"

namespace billing::projections::keys {

enum Category : char { kUsage = '1', kSupport = '2', kCredit = '3', kAdjustment = '4' };

inline std::string_view CategoryName(char c) {
  switch (c) {
    case kUsage: return "usage";
    case kSupport: return "support";
    case kCredit: return "credit";
    default: return "adjustment";
  }
}

inline constexpr std::string_view kStatePrefix = "ps";
inline constexpr std::string_view kVoidedPrefix = "pv";
inline constexpr std::string_view kAggPrefix = "pa";
inline constexpr std::string_view kMetaVersion = "pmversion";
// Bumped whenever projection keys or rules change: a mismatch triggers a rebuild.
inline constexpr std::string_view kProjectionVersion = "projections/1";

inline std::string StateKey(std::string_view org) {
  std::string k(kStatePrefix);
  k += org;
  return k;
}

inline std::string VoidedKey(std::string_view org, std::string_view event_id) {
  std::string k(kVoidedPrefix);
  k += org;
  k.push_back('\0');
  k += event_id;
  return k;
}

inline std::string MonthPrefix(std::string_view org, int32_t month) {
  std::string k(kAggPrefix);
  k += org;
  k.push_back('\0');
  ledger::format::PutBe32(&k, static_cast<uint32_t>(month));
  return k;
}

inline std::string CategoryKey(std::string_view org, int32_t month, char category) {
  std::string k = MonthPrefix(org, month);
  k.push_back('C');
  k.push_back(category);
  return k;
}

inline std::string ItemKey(std::string_view org, int32_t month, char category, std::string_view label) {
  std::string k = MonthPrefix(org, month);
  k.push_back('I');
  k.push_back(category);
  k += label;
  return k;
}

inline std::string BucketKey(std::string_view org, int32_t month, std::string_view bucket) {
  std::string k = MonthPrefix(org, month);
  k.push_back('B');
  k += bucket;
  return k;
}

inline std::string LinePrefix(std::string_view org, int32_t month, std::string_view bucket) {
  std::string k = MonthPrefix(org, month);
  k.push_back('L');
  k += bucket;
  k.push_back('\0');
  return k;
}

inline std::string LineKey(std::string_view org, int32_t month, std::string_view bucket, char category,
                           std::string_view label) {
  std::string k = LinePrefix(org, month, bucket);
  k.push_back(category);
  k += label;
  return k;
}

// `path` is the node's parts joined by 0: service 0 provider [0 resource [0 sku]].
inline std::string DrillKey(std::string_view org, int32_t month, char level, std::string_view path) {
  std::string k = MonthPrefix(org, month);
  k.push_back('D');
  k.push_back(level);
  k += path;
  return k;
}

}  // namespace billing::projections::keys
