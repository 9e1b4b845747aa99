#include "projections/agg.h"

#include <rocksdb/merge_operator.h>

#include <cstring>

namespace billing::projections {

namespace {

constexpr size_t kFixedBytes = 16 + 16 + 1;

void PutI128(std::string* out, Sum v) {
  unsigned __int128 u = static_cast<unsigned __int128>(v);
  for (int i = 0; i < 16; ++i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

Sum GetI128(const char* p) {
  unsigned __int128 u = 0;
  for (int i = 15; i >= 0; --i) u = (u << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<Sum>(u);
}

class AggMergeOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& key, const rocksdb::Slice* existing_value,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* logger) const override {
    Agg sum;
    if (existing_value != nullptr &&
        !DecodeAgg(std::string_view(existing_value->data(), existing_value->size()), &sum)) {
      return false;  // RocksDB reports a corruption rather than silently losing money
    }
    Agg add;
    if (!DecodeAgg(std::string_view(value.data(), value.size()), &add)) return false;
    sum.Add(add);
    *new_value = EncodeAgg(sum);
    return true;
  }
  const char* Name() const override { return "billing.AggSum.v1"; }
};

}  // namespace

void Agg::Add(const Agg& other) {
  amount += other.amount;
  quantity += other.quantity;
  if (other.unit_state == Unit::kNone) return;
  if (unit_state == Unit::kNone) {
    unit_state = other.unit_state;
    unit = other.unit;
  } else if (unit_state == Unit::kOne &&
             (other.unit_state == Unit::kMixed || other.unit != unit)) {
    unit_state = Unit::kMixed;
    unit.clear();
  }
}

Agg AmountAgg(Sum amount) {
  Agg a;
  a.amount = amount;
  return a;
}

Agg UsageAgg(Sum amount, Sum quantity, std::string_view unit) {
  Agg a;
  a.amount = amount;
  a.quantity = quantity;
  a.unit_state = Agg::Unit::kOne;
  a.unit = std::string(unit);
  return a;
}

std::string EncodeAgg(const Agg& agg) {
  std::string out;
  out.reserve(kFixedBytes + agg.unit.size());
  PutI128(&out, agg.amount);
  PutI128(&out, agg.quantity);
  out.push_back(static_cast<char>(agg.unit_state));
  out += agg.unit;
  return out;
}

bool DecodeAgg(std::string_view bytes, Agg* out) {
  if (bytes.size() < kFixedBytes) return false;
  uint8_t state = static_cast<uint8_t>(bytes[32]);
  if (state > 2) return false;
  out->amount = GetI128(bytes.data());
  out->quantity = GetI128(bytes.data() + 16);
  out->unit_state = static_cast<Agg::Unit>(state);
  out->unit.assign(bytes.data() + kFixedBytes, bytes.size() - kFixedBytes);
  return true;
}

std::shared_ptr<rocksdb::MergeOperator> NewAggMergeOperator() {
  return std::make_shared<AggMergeOperator>();
}

}  // namespace billing::projections
