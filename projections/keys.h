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
//   pf | org | 0 | invoice_id                 -> seal of a final invoice (seal.h),
//                                                JSON {"sequence","ledger_hash","document_hash"};
//                                                written when its month closes
//   pb | org | 0 | be32 month                 -> MonthFigures (state.proto): the month's
//                                                bucket totals, usage, observed usage_end
//                                                and the alerts raised (budgets.h)
//   pr | org | 0 | be64 sequence | be32 month | budget_id 0 kind threshold
//                                             -> Alert (state.proto), a raised alert
//   px | org | 0 | be32 month | kind | ... | 0 | be64 sequence
//                                             -> a block of the events' contributions
//                                                to one aggregate (explain.h,
//                                                index_block.h): the aggregate's key
//                                                after `pa`, then the sequence of the
//                                                block's last entry
//      kinds 'I' (month item), 'D' (drill-down node) and 'B' (invoice bucket)
//   pm | name                                 -> projection metadata
//
// A bucket is a cost center id, or "" for the organization's own charges.
// Ids and labels cannot hold control characters (events::Validate), so 0 is a
// safe separator.
#pragma once

#include <string>
#include <string_view>

#include "events/calendar.h"
#include "ledger/format.h"

namespace billing::projections::keys {

enum Category : char { kUsage = '1', kSupport = '2', kCredit = '3', kAdjustment = '4' };

inline std::string_view CategoryName(char c) {
  switch (c) {
    case kUsage:
      return "usage";
    case kSupport:
      return "support";
    case kCredit:
      return "credit";
    default:
      return "adjustment";
  }
}

inline constexpr std::string_view kStatePrefix = "ps";
inline constexpr std::string_view kVoidedPrefix = "pv";
inline constexpr std::string_view kAggPrefix = "pa";
inline constexpr std::string_view kSealPrefix = "pf";
inline constexpr std::string_view kFiguresPrefix = "pb";
inline constexpr std::string_view kAlertPrefix = "pr";
inline constexpr std::string_view kExplainPrefix = "px";
inline constexpr std::string_view kMetaVersion = "pmversion";
// Bumped whenever projection keys, encodings or rules change: a mismatch
// triggers a rebuild. 2: OrgState's effective times are exact instants
// (seconds and nanos) instead of microseconds. 3: OrgState keeps workspace names. 4: seals of final
// invoices (pf). 5: budgets in OrgState, month figures (pb), alerts (pr) and the
// explain index (px). 6: the explain index in blocks (index_block.h).
inline constexpr std::string_view kProjectionVersion = "projections/6";

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

// Every seal of `org` starts with this.
inline std::string SealPrefix(std::string_view org) {
  std::string k(kSealPrefix);
  k += org;
  k.push_back('\0');
  return k;
}

inline std::string SealKey(std::string_view org, std::string_view invoice_id) {
  std::string k = SealPrefix(org);
  k += invoice_id;
  return k;
}

inline std::string FiguresKey(std::string_view org, Month month) {
  std::string k(kFiguresPrefix);
  k += org;
  k.push_back('\0');
  ledger::format::PutBe32(&k, static_cast<uint32_t>(month.index));
  return k;
}

// Every alert of `org`, in ledger order.
inline std::string AlertPrefix(std::string_view org) {
  std::string k(kAlertPrefix);
  k += org;
  k.push_back('\0');
  return k;
}

// `kind` is 'A' (actual) or 'F' (forecast). Sequence first, so a scan lists
// the org's alerts in the order they were raised.
inline std::string AlertKey(std::string_view org, uint64_t sequence, Month month,
                            std::string_view budget_id, char kind, int32_t threshold) {
  std::string k = AlertPrefix(org);
  ledger::format::PutBe64(&k, sequence);
  ledger::format::PutBe32(&k, static_cast<uint32_t>(month.index));
  k += budget_id;
  k.push_back('\0');
  k.push_back(kind);
  ledger::format::PutBe32(&k, static_cast<uint32_t>(threshold));
  return k;
}

// Builds the aggregate keys of one org's month in one reused buffer: posting an
// event writes seven of them, and building each as a fresh string was a third
// of a rebuild's allocations. Each view is valid until the next call.
class MonthKeys {
 public:
  MonthKeys(std::string* buffer, std::string_view org, Month month) : k_(*buffer) {
    k_.assign(kAggPrefix);
    k_ += org;
    k_.push_back('\0');
    ledger::format::PutBe32(&k_, static_cast<uint32_t>(month.index));
    prefix_ = k_.size();
  }
  std::string_view Prefix() {
    k_.resize(prefix_);
    return k_;
  }
  std::string_view Category(char category) {
    Kind('C');
    k_.push_back(category);
    return k_;
  }
  std::string_view Item(char category, std::string_view label) {
    Kind('I');
    k_.push_back(category);
    k_ += label;
    return k_;
  }
  std::string_view Bucket(std::string_view bucket) {
    Kind('B');
    k_ += bucket;
    return k_;
  }
  std::string_view LinePrefix(std::string_view bucket) {
    Kind('L');
    k_ += bucket;
    k_.push_back('\0');
    return k_;
  }
  std::string_view Line(std::string_view bucket, char category, std::string_view label) {
    LinePrefix(bucket);
    k_.push_back(category);
    k_ += label;
    return k_;
  }
  // A drill-down node given its parts already joined by 0 (queries).
  std::string_view Drill(char level, std::string_view path) {
    Kind('D');
    k_.push_back(level);
    k_ += path;
    return k_;
  }
  // A drill-down node: level '1' service 0 provider, '2' adds 0 resource,
  // '3' adds 0 sku.
  std::string_view Drill(char level, std::string_view service, std::string_view provider,
                         std::string_view resource = {}, std::string_view sku = {}) {
    Drill(level, service);
    k_.push_back('\0');
    k_ += provider;
    if (level == '1') return k_;
    k_.push_back('\0');
    k_ += resource;
    if (level == '2') return k_;
    k_.push_back('\0');
    k_ += sku;
    return k_;
  }

 private:
  void Kind(char kind) {
    k_.resize(prefix_);
    k_.push_back(kind);
  }
  std::string& k_;
  size_t prefix_ = 0;
};

// Every explain entry of the aggregate `agg_key` (a `pa` key of kind I, D or
// B) starts with this, written into `*out`; its blocks' keys add the block's
// last sequence, big-endian, so they sort in ledger order (index_block.h).
// Labels and ids hold no 0 (see above), so no other aggregate's entries share it.
inline void ExplainPrefix(std::string* out, std::string_view agg_key) {
  out->assign(kExplainPrefix);
  out->append(agg_key.substr(kAggPrefix.size()));
  out->push_back('\0');
}

inline std::string ExplainPrefix(std::string_view agg_key) {
  std::string k;
  ExplainPrefix(&k, agg_key);
  return k;
}

// One key each, for code that builds a few (queries, tests). The builder's
// view covers all of its buffer, so the buffer is the key.
inline std::string MonthPrefix(std::string_view org, Month month) {
  std::string k;
  MonthKeys(&k, org, month).Prefix();
  return k;
}

inline std::string CategoryKey(std::string_view org, Month month, char category) {
  std::string k;
  MonthKeys(&k, org, month).Category(category);
  return k;
}

inline std::string ItemKey(std::string_view org, Month month, char category,
                           std::string_view label) {
  std::string k;
  MonthKeys(&k, org, month).Item(category, label);
  return k;
}

inline std::string BucketKey(std::string_view org, Month month, std::string_view bucket) {
  std::string k;
  MonthKeys(&k, org, month).Bucket(bucket);
  return k;
}

inline std::string LinePrefix(std::string_view org, Month month, std::string_view bucket) {
  std::string k;
  MonthKeys(&k, org, month).LinePrefix(bucket);
  return k;
}

inline std::string LineKey(std::string_view org, Month month, std::string_view bucket,
                           char category, std::string_view label) {
  std::string k;
  MonthKeys(&k, org, month).Line(bucket, category, label);
  return k;
}

// `path` is the node's parts joined by 0: service 0 provider [0 resource [0 sku]].
inline std::string DrillKey(std::string_view org, Month month, char level, std::string_view path) {
  std::string k;
  MonthKeys(&k, org, month).Drill(level, path);
  return k;
}

}  // namespace billing::projections::keys
