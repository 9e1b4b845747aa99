// Index blocks: how the explain index (explain.h) stores its entries.
//
// The index means one entry per (event, aggregate the event posted into).
// Stored as one key each, a usage event wrote five keys, and the index was
// most of the keys of a rebuild and of a live group: memtable inserts, sorts,
// flushes and compactions that doubled the rebuild's time. So the entries one
// write adds to one aggregate (a live group, a rebuild batch) are stored
// together as a block, under one key: the aggregate's index prefix, then the
// block's LAST sequence (keys.h). A group of 1000 events writes one key per
// aggregate it touched. Writes come in ledger order, so the blocks of one
// aggregate never overlap, and the block holding the first entry after a
// sequence S is the first key at or above S + 1: a page is still one seek.
//
// Where blocks begin depends on how the ledger was grouped into writes, so a
// rebuild's blocks differ from the live ones; their entries do not: the index
// read entry by entry is a pure function of the ledger.
//
// A block is its entries in sequence order, each
//   varint(sequence - previous entry's sequence; the first one's from 0)
//   varint(size of the contribution) contribution (explain.h)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace billing::projections {

// Entries in one block at most: bounds what a page read decodes before its
// first line (a few tens of KiB) while keeping an aggregate's keys a
// thousandth of its entries in a rebuild's large batches.
inline constexpr size_t kIndexBlockEntriesMax = 1024;

inline void PutVarint64(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// False on a cut or over-long varint.
inline bool GetVarint64(std::string_view* in, uint64_t* v) {
  uint64_t out = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->empty()) return false;
    const auto byte = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    out |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = out;
      return true;
    }
  }
  return false;
}

// Appends the entry of `sequence` to `block`, whose last entry has sequence
// `previous` (0 for an empty block). Sequences must not decrease.
inline void AppendBlockEntry(std::string* block, uint64_t previous, uint64_t sequence,
                             std::string_view contribution) {
  PutVarint64(block, sequence - previous);
  PutVarint64(block, contribution.size());
  block->append(contribution);
}

// Reads a block's entries in order. Next() is false at the end and on a
// malformed block; corrupt() tells which.
class BlockReader {
 public:
  explicit BlockReader(std::string_view block) : rest_(block) {}
  bool Next() {
    if (rest_.empty()) return false;
    uint64_t delta = 0, size = 0;
    if (!GetVarint64(&rest_, &delta) || !GetVarint64(&rest_, &size) || size > rest_.size() ||
        sequence_ + delta < sequence_) {
      corrupt_ = true;
      rest_ = {};
      return false;
    }
    sequence_ += delta;
    contribution_ = rest_.substr(0, size);
    rest_.remove_prefix(size);
    return true;
  }
  uint64_t sequence() const { return sequence_; }
  std::string_view contribution() const { return contribution_; }
  bool corrupt() const { return corrupt_; }

 private:
  std::string_view rest_;
  uint64_t sequence_ = 0;
  std::string_view contribution_;
  bool corrupt_ = false;
};

}  // namespace billing::projections
