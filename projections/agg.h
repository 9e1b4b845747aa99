// Aggregates: the summable value behind every amount the read models show.
//
// Each month item, invoice line, bucket total and drill-down node is one key
// whose value is an Agg, and postings add to it through a RocksDB merge
// operator, so recording an event never reads before it writes. An Agg sums
// amount and quantity exactly (Int128 nano-units) and tracks whether all
// postings used the same unit, since a quantity is only shown where they did.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "events/money.h"

namespace rocksdb {
class MergeOperator;
}

namespace billing::projections {

struct Agg {
  enum class Unit : uint8_t { kNone = 0, kOne = 1, kMixed = 2 };
  Sum amount = 0;
  Sum quantity = 0;
  Unit unit_state = Unit::kNone;
  std::string unit;  // when unit_state == kOne

  void Add(const Agg& other);
  // The quantity to show: set only when every posting had the same unit.
  bool has_quantity() const { return unit_state == Unit::kOne; }
};

Agg AmountAgg(Sum amount);
Agg UsageAgg(Sum amount, Sum quantity, std::string_view unit);

std::string EncodeAgg(const Agg& agg);
// Appends the encoding to `out` (callers encoding many reuse one buffer).
void EncodeAgg(const Agg& agg, std::string* out);
// False when `bytes` is not an encoded Agg (corruption).
bool DecodeAgg(std::string_view bytes, Agg* out);

// The merge operator summing encoded Aggs, to install on the database.
std::shared_ptr<rocksdb::MergeOperator> NewAggMergeOperator();

}  // namespace billing::projections
