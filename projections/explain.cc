#include "projections/explain.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "ledger/format.h"
#include "projections/index_block.h"
#include "projections/keys.h"
#include "projections/queries.h"

namespace billing::projections {

namespace {

// The value's first byte: which optional parts follow the amount.
constexpr char kHasQuantity = 1;
// A sequence in a key: the last 8 bytes, big-endian (keys.h).
constexpr size_t kSequenceBytes = 8;

// Signed sums as zigzag base-128 varints: an event's part is a few bytes,
// and the index holds one entry per (event, aggregate).
void PutSigned(std::string* out, Sum v) {
  unsigned __int128 u = v < 0 ? ((~static_cast<unsigned __int128>(v)) << 1) | 1
                              : static_cast<unsigned __int128>(v) << 1;
  while (u >= 0x80) {
    out->push_back(static_cast<char>((u & 0x7f) | 0x80));
    u >>= 7;
  }
  out->push_back(static_cast<char>(u));
}

bool GetSigned(std::string_view* in, Sum* v) {
  unsigned __int128 u = 0;
  for (int shift = 0; shift < 128; shift += 7) {
    if (in->empty()) return false;
    const auto byte = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    u |= static_cast<unsigned __int128>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = (u & 1) ? static_cast<Sum>(~(u >> 1)) : static_cast<Sum>(u >> 1);
      return true;
    }
  }
  return false;
}

// A value the index cannot hold came from outside our writes: the answer
// fails as corruption (the view reports it) rather than dropping a line.
void FailCorrupt(const View& view) {
  view.Fail(Status(Code::kCorruption, "the explain index holds an undecodable entry"));
}

// The last sequence of a block's key under `prefix`; 0 (no event has it)
// when the key is malformed.
uint64_t SequenceOf(std::string_view key, size_t prefix_size) {
  if (key.size() != prefix_size + kSequenceBytes) return 0;
  return ledger::format::GetBe64(key.substr(prefix_size));
}

// Decodes the block under `key` into `visit(sequence, contribution)` until
// it returns false. False, and the view failed, when the block is malformed:
// an entry with sequence 0, sequences going back, or a last sequence other
// than its key's.
template <typename Visit>
bool ReadBlock(const View& view, size_t prefix_size, std::string_view key, std::string_view value,
               Visit&& visit) {
  const uint64_t last = SequenceOf(key, prefix_size);
  BlockReader block(value);
  uint64_t previous = 0;
  bool any = false;
  while (block.Next()) {
    if (block.sequence() == 0 || block.sequence() < previous || block.sequence() > last) break;
    previous = block.sequence();
    any = true;
    if (!visit(block.sequence(), block.contribution())) return true;
  }
  if (!block.corrupt() && any && previous == last) return true;
  FailCorrupt(view);
  return false;
}

// Whether any event had posted into the aggregate whose entries start with
// `prefix` by sequence `upto`: blocks are in ledger order, so the first
// block's first entry tells.
bool PostedBy(const View& view, const std::string& prefix, ledger::Sequence upto) {
  bool posted = false;
  view.Scan(prefix, [&](std::string_view key, std::string_view value) {
    ReadBlock(view, prefix.size(), key, value, [&](uint64_t seq, std::string_view) {
      posted = seq <= upto.value;
      return false;
    });
    return false;
  });
  return posted;
}

// Appends the page's entries under `prefix` to `out`, in sequence order. The
// first block holding an entry after `page.after` is the first whose last
// sequence is above it: one seek.
void ReadPage(const View& view, const std::string& prefix, const ExplainPage& page,
              std::vector<Contribution>* out) {
  if (page.limit == 0 || page.after.value >= page.upto.value) return;
  std::string from = prefix;
  ledger::format::PutBe64(&from, page.after.value + 1);
  size_t taken = 0;
  bool more = true;
  // Takes one entry of a block; false once the page is full or past `upto`.
  auto take = [&](uint64_t seq, std::string_view contribution) {
    if (seq <= page.after.value) return true;
    Contribution c;
    if (seq > page.upto.value) {
      more = false;
    } else if (!DecodeContribution(contribution, seq, &c)) {
      FailCorrupt(view);
      more = false;
    } else {
      out->push_back(std::move(c));
      more = ++taken < page.limit;
    }
    return more;
  };
  view.ScanFrom(prefix, from, [&](std::string_view key, std::string_view value) {
    return ReadBlock(view, prefix.size(), key, value, take) && more;
  });
}

// The invoice buckets the month holds at the head: the aggregate key of each.
std::vector<std::string> BucketKeys(const OrgState& org, const View& view, Month month) {
  std::vector<std::string> out;
  const std::string prefix = keys::MonthPrefix(org.org_id, month) + 'B';
  view.Scan(prefix, [&](std::string_view key, std::string_view) {
    out.emplace_back(key);
    return true;
  });
  return out;
}

}  // namespace

void EncodeContribution(const Contribution& c, std::string* out) {
  out->push_back(c.quantity ? kHasQuantity : 0);
  PutSigned(out, c.amount);
  if (c.quantity) PutSigned(out, *c.quantity);
  if (c.category == 0) return;
  out->push_back(c.category);
  out->append(c.label);
}

bool DecodeContribution(std::string_view value, uint64_t sequence, Contribution* out) {
  if (value.empty() || (value[0] & ~kHasQuantity) != 0) return false;
  const bool has_quantity = value[0] == kHasQuantity;
  value.remove_prefix(1);
  *out = Contribution();
  out->sequence = sequence;
  if (!GetSigned(&value, &out->amount)) return false;
  if (has_quantity) {
    Sum q = 0;
    if (!GetSigned(&value, &q)) return false;
    out->quantity = q;
  }
  if (value.empty()) return true;
  out->category = value[0];
  out->label = std::string(value.substr(1));
  return true;
}

Result<std::vector<Contribution>> ItemContributions(const OrgState& org, const View& view,
                                                    Month month, const std::string& item_id,
                                                    const ExplainPage& page) {
  Status not_found(Code::kNotFound, "item " + item_id + " does not exist in " + FormatMonth(month));
  auto raw = DecodeItemId(item_id);
  if (!raw || raw->size() < 2) return not_found;
  const char kind = (*raw)[0];
  if (kind != 'I' && !(kind == 'D' && (*raw)[1] >= '1' && (*raw)[1] <= '3')) return not_found;
  // The id is the aggregate key's tail: the aggregate must exist at the head
  // (so a crafted id cannot name a part of another key) and have been
  // posted into by `upto`.
  const std::string agg_key = keys::MonthPrefix(org.org_id, month) + *raw;
  if (!view.Get(agg_key)) return not_found;
  const std::string prefix = keys::ExplainPrefix(agg_key);
  if (!PostedBy(view, prefix, page.upto)) return not_found;
  std::vector<Contribution> out;
  ReadPage(view, prefix, page, &out);
  return out;
}

Result<std::vector<Contribution>> InvoiceContributions(const OrgState& org, const View& view,
                                                       const std::string& invoice_id,
                                                       const ExplainPage& page) {
  Status not_found(Code::kNotFound, "invoice " + invoice_id + " does not exist");
  if (invoice_id.size() < 9 || invoice_id[7] != '-') return not_found;
  auto month = ParseMonth(std::string_view(invoice_id).substr(0, 7), "invoice month");
  if (!month.ok()) return not_found;
  const std::string named = invoice_id.substr(8);
  // Buckets holding a posting by `upto`, by bucket id ("": the organization's).
  std::map<std::string, std::string> posted;  // bucket -> its entries' prefix
  const size_t bucket_at = keys::MonthPrefix(org.org_id, *month).size() + 1;
  for (const std::string& key : BucketKeys(org, view, *month)) {
    std::string prefix = keys::ExplainPrefix(key);
    if (PostedBy(view, prefix, page.upto)) posted[key.substr(bucket_at)] = std::move(prefix);
  }
  // Which buckets the invoice gathers, as GetInvoice decides (queries.cc):
  // every bucket on the organization invoice of a SINGLE month; else a cost
  // center's own, or the organization's charges on `{month}-org`, a cost
  // center's invoice winning where both would have that id.
  const ledger::Sequence known_before{page.upto == ledger::kSequenceMax ? page.upto.value
                                                                        : page.upto.value + 1};
  std::vector<const std::string*> sources;
  if (org.ModeOf(*month, known_before) == InvoicingMode::kSingle) {
    if (named == "org") {
      for (const auto& [bucket, prefix] : posted) sources.push_back(&prefix);
    }
  } else if (auto it = posted.find(named); it != posted.end()) {
    sources.push_back(&it->second);
  } else if (auto org_bucket = posted.find(""); named == "org" && org_bucket != posted.end()) {
    sources.push_back(&org_bucket->second);
  }
  if (sources.empty()) return not_found;
  // Each bucket's page, merged: an event posts into one bucket only, so the
  // first `limit` by sequence are the invoice's page.
  std::vector<Contribution> out;
  for (const std::string* prefix : sources) ReadPage(view, *prefix, page, &out);
  std::sort(out.begin(), out.end(),
            [](const Contribution& a, const Contribution& b) { return a.sequence < b.sequence; });
  if (out.size() > page.limit) out.resize(page.limit);
  return out;
}

Result<std::optional<ledger::Record>> RecordAt(const View& view, ledger::Sequence sequence) {
  std::optional<std::string> bytes = view.Get(ledger::format::RecordKey(sequence.value));
  if (!bytes) return std::optional<ledger::Record>();
  ledger::Record record;
  if (!record.ParseFromString(*bytes) || record.sequence() != sequence.value) {
    return Status(Code::kCorruption,
                  "ledger record " + std::to_string(sequence.value) + " is undecodable");
  }
  return std::optional<ledger::Record>(std::move(record));
}

std::string ContributionLine(const Contribution& c, LineKind kind, std::string_view event_json) {
  nlohmann::ordered_json j;
  j["sequence"] = c.sequence;
  j["amount"] = FormatNanos(c.amount);
  j["quantity"] = c.quantity ? nlohmann::ordered_json(FormatNanos(*c.quantity)) : nullptr;
  if (kind == LineKind::kInvoice) {
    j["category"] = std::string(keys::CategoryName(c.category));
    j["description"] = c.label;
  }
  // Labels are validated UTF-8 text, but a line must never throw: replace.
  std::string line = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  line.pop_back();  // the closing brace: the event goes last
  line += ",\"event\":";
  line += event_json;
  line += '}';
  return line;
}

}  // namespace billing::projections
