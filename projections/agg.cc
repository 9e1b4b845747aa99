#include "projections/agg.h"

#include <rocksdb/merge_operator.h>

#include <cstring>
#include <deque>

namespace billing::projections {

namespace {

constexpr size_t kFixedBytes = 16 + 16 + 1;

void PutI128(std::string* out, Sum v) {
  unsigned __int128 u = static_cast<unsigned __int128>(v);
  char bytes[16];
  for (int i = 0; i < 16; ++i) bytes[i] = static_cast<char>((u >> (8 * i)) & 0xff);
  out->append(bytes, sizeof bytes);
}

Sum GetI128(const char* p) {
  unsigned __int128 u = 0;
  for (int i = 15; i >= 0; --i) u = (u << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<Sum>(u);
}

// Adds every operand of a key in one pass and encodes the sum once: flushes
// and compactions of a rebuild merge millions of keys, and summing them two at
// a time re-encoded every partial sum. A value that is not an Agg fails the
// full merge, so RocksDB reports a corruption rather than silently losing
// money (a failed partial merge only keeps the operands for the full one).
class AggMergeOperator : public rocksdb::MergeOperator {
 public:
  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    Agg sum;
    if (in.existing_value != nullptr && !AddEncoded(*in.existing_value, &sum)) return false;
    for (const rocksdb::Slice& operand : in.operand_list) {
      if (!AddEncoded(operand, &sum)) return false;
    }
    out->new_value.clear();
    EncodeAgg(sum, &out->new_value);
    return true;
  }
  bool PartialMergeMulti(const rocksdb::Slice& key, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger* logger) const override {
    Agg sum;
    for (const rocksdb::Slice& operand : operands) {
      if (!AddEncoded(operand, &sum)) return false;
    }
    new_value->clear();
    EncodeAgg(sum, new_value);
    return true;
  }
  const char* Name() const override { return "billing.AggSum.v1"; }

 private:
  static bool AddEncoded(const rocksdb::Slice& bytes, Agg* sum) {
    Agg operand;
    if (!DecodeAgg(std::string_view(bytes.data(), bytes.size()), &operand)) return false;
    sum->Add(operand);
    return true;
  }
};

}  // namespace

void Agg::Add(const Agg& other) {
  amount += other.amount;
  quantity += other.quantity;
  if (other.unit_state == Unit::kNone) return;
  if (unit_state == Unit::kNone) {
    unit_state = other.unit_state;
    unit = other.unit;
  } else if (unit_state == Unit::kOne && (other.unit_state == Unit::kMixed || other.unit != unit)) {
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

void EncodeAgg(const Agg& agg, std::string* out) {
  out->reserve(out->size() + kFixedBytes + agg.unit.size());
  PutI128(out, agg.amount);
  PutI128(out, agg.quantity);
  out->push_back(static_cast<char>(agg.unit_state));
  *out += agg.unit;
}

std::string EncodeAgg(const Agg& agg) {
  std::string out;
  EncodeAgg(agg, &out);
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
