#include "projections/seal.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "documents/document_hash.h"
#include "ledger/hash_chain.h"
#include "projections/answer_json.h"
#include "projections/decider.h"
#include "projections/keys.h"
#include "projections/queries.h"

namespace billing::projections {

Result<std::optional<ClosePoint>> FindClosePoint(const ledger::Ledger& ledger, const OrgState& org,
                                                 Month month) {
  auto closed = org.closed.find(month.index);
  if (closed == org.closed.end()) return std::optional<ClosePoint>();
  const ledger::Sequence at{closed->second.sequence};
  std::optional<ClosePoint> point;
  Status scan = ledger.Scan(ledger::Sequence{at.value - 1}, 1, [&](const ledger::Record& record) {
    if (record.sequence() == at.value) point = ClosePoint{at, ledger::Hex(record.hash())};
    return false;
  });
  if (!scan.ok()) return scan;
  if (!point) {
    return Status(Code::kCorruption, "the close of " + org.org_id + " " + FormatMonth(month) +
                                         " at sequence " + std::to_string(at.value) +
                                         " is not in the ledger");
  }
  return point;
}

InvoiceSeal SealOf(const OrgState& org, const Invoice& invoice, const ClosePoint& point) {
  // Every value of the answer is a string or null, so canonical JSON cannot refuse it.
  auto hash = documents::DocumentHash(InvoiceJson(invoice, org));
  LEDGER_CHECK(hash.ok(), "an invoice answer has no canonical form");
  return InvoiceSeal{point.sequence, point.ledger_hash, *hash};
}

std::vector<SealedInvoice> MonthSeals(const OrgState& org, const View& view, Month month,
                                      const ClosePoint& point) {
  std::vector<SealedInvoice> out;
  for (const InvoiceSummary& summary : Invoices(org, view, month).invoices) {
    auto invoice = GetInvoice(org, view, summary.invoice_id);
    // Listed a moment ago from the same view: only a failed read can lose it,
    // and view.status() reports that.
    if (!invoice.ok()) continue;
    out.push_back(SealedInvoice{summary.invoice_id, SealOf(org, *invoice, point)});
  }
  return out;
}

namespace {

std::string EncodeSeal(const InvoiceSeal& seal) {
  return nlohmann::json{{"sequence", seal.sequence.value},
                        {"ledger_hash", seal.ledger_hash},
                        {"document_hash", seal.document_hash}}
      .dump();
}

Result<InvoiceSeal> DecodeSeal(std::string_view value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("sequence") || !j["sequence"].is_number_unsigned() ||
      !j.contains("ledger_hash") || !j["ledger_hash"].is_string() || !j.contains("document_hash") ||
      !j["document_hash"].is_string()) {
    return Status(Code::kCorruption, "a stored seal is undecodable");
  }
  return InvoiceSeal{ledger::Sequence{j["sequence"].get<uint64_t>()},
                     j["ledger_hash"].get<std::string>(), j["document_hash"].get<std::string>()};
}

}  // namespace

void PutSeals(const std::string& org, const std::vector<SealedInvoice>& seals, Sink& sink) {
  for (const SealedInvoice& s : seals)
    sink.Put(keys::SealKey(org, s.invoice_id), EncodeSeal(s.seal));
}

Result<std::optional<InvoiceSeal>> ReadSeal(const View& view, const std::string& org,
                                            const std::string& invoice_id) {
  std::optional<std::string> value = view.Get(keys::SealKey(org, invoice_id));
  if (!value) return std::optional<InvoiceSeal>();
  auto seal = DecodeSeal(*value);
  if (!seal.ok()) return seal.status();
  return std::optional<InvoiceSeal>(std::move(seal).value());
}

namespace {

// Keeps what a replay for seals needs in memory: the invoice buckets and
// lines (kinds B and L) and every non-aggregate key (voided markers, which
// deciding reads back); a month's drill-down tree is most of the rest.
class InvoiceSink : public Sink {
 public:
  explicit InvoiceSink(MemoryStore* store) : store_(store) {}
  void Merge(std::string_view key, const Agg& delta) override {
    if (Keep(key)) store_->Merge(key, delta);
  }
  void Put(std::string_view key, std::string_view value) override {
    if (Keep(key)) store_->Put(key, value);
  }

 private:
  static bool Keep(std::string_view key) {
    if (!key.starts_with(keys::kAggPrefix)) return true;
    // pa | org | 0 | be32 month | kind: org ids hold no 0 (keys.h).
    size_t end_of_org = key.find('\0', keys::kAggPrefix.size());
    size_t kind_at = end_of_org + 1 + 4;
    if (end_of_org == std::string_view::npos || key.size() <= kind_at) return true;
    return key[kind_at] == 'B' || key[kind_at] == 'L';
  }
  MemoryStore* store_;
};

SealReport Bad(const std::string& org, const std::string& invoice_id, std::string problem) {
  SealReport r;
  r.ok = false;
  r.org_id = org;
  r.invoice_id = invoice_id;
  r.problem = std::move(problem);
  return r;
}

// Checks one org's seals against `replayed` (the ledger's truth) and the
// stored read models in `stored_view`; adds each checked seal's key to `checked`.
Result<SealReport> VerifyOrg(const ledger::Ledger& ledger, const OrgState& replayed,
                             const View& replay_view, const View& stored_view,
                             std::set<std::string>* checked) {
  SealReport report;
  auto stored_org = StoredOrg(stored_view, replayed.org_id);
  if (!stored_org.ok()) return stored_org.status();
  for (const auto& [index, closed] : replayed.closed) {
    auto point = FindClosePoint(ledger, replayed, Month{index});
    if (!point.ok()) return point.status();
    std::vector<SealedInvoice> stored_figures;
    if (*stored_org) stored_figures = MonthSeals(**stored_org, stored_view, Month{index}, **point);
    for (const SealedInvoice& want : MonthSeals(replayed, replay_view, Month{index}, **point)) {
      ++report.seals;
      checked->insert(keys::SealKey(replayed.org_id, want.invoice_id));
      auto stored = ReadSeal(stored_view, replayed.org_id, want.invoice_id);
      if (!stored.ok()) return Bad(replayed.org_id, want.invoice_id, stored.status().message());
      if (!*stored)
        return Bad(replayed.org_id, want.invoice_id,
                   "invoice " + want.invoice_id + " has no stored seal");
      if (**stored != want.seal) {
        return Bad(replayed.org_id, want.invoice_id,
                   "the stored seal of invoice " + want.invoice_id +
                       " differs from the one the ledger gives");
      }
      bool figures_match = false;
      for (const SealedInvoice& s : stored_figures) {
        if (s.invoice_id == want.invoice_id) figures_match = s.seal == want.seal;
      }
      if (!figures_match) {
        return Bad(replayed.org_id, want.invoice_id,
                   "the read models' invoice " + want.invoice_id +
                       " differs from the one the ledger gives");
      }
    }
  }
  return report;
}

}  // namespace

Result<SealReport> VerifySeals(const ledger::Ledger& ledger) {
  Decider decider;
  MemoryStore replay;
  InvoiceSink sink(&replay);
  EventLookup lookup = [&ledger](ledger::EventKey key) { return ledger.FindEvent(key); };
  Status failure;
  Status scan = ledger.Scan(ledger::Sequence{0}, 0, [&](const ledger::Record& record) {
    failure = decider.Redecide(record, lookup, sink, replay);
    return failure.ok();
  });
  if (!scan.ok()) return scan;
  if (!failure.ok()) return failure;
  if (Status read = replay.status(); !read.ok()) return read;

  RocksView stored(ledger.db());
  SealReport report;
  std::set<std::string> checked;
  for (const std::string& org : decider.TakeDirty()) {  // every org the ledger holds
    auto one = VerifyOrg(ledger, *decider.Find(org), replay, stored, &checked);
    if (!one.ok()) return one.status();
    report.seals += one->seals;
    if (!one->ok) return one;
  }
  // A seal the ledger does not explain (an invoice of an open month, or one
  // that does not exist) is as false as a wrong one.
  stored.Scan(keys::kSealPrefix, [&](std::string_view key, std::string_view) {
    if (checked.count(std::string(key)) != 0) return true;
    std::string_view rest = key.substr(keys::kSealPrefix.size());
    size_t sep = rest.find('\0');
    report = Bad(std::string(rest.substr(0, sep)), std::string(rest.substr(sep + 1)),
                 "a seal is stored for invoice " + std::string(rest.substr(sep + 1)) +
                     " that the ledger does not seal");
    return false;
  });
  if (Status read = stored.status(); !read.ok()) return read;
  return report;
}

}  // namespace billing::projections
