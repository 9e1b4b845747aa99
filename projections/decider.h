// The decider: stateful validation and posting of one event at a time.
//
// Given the structure known so far, it accepts or rejects an event with the
// SPEC's code (unknown org, duplicate ids, currency mismatch, voids of
// unknown, non-voidable or voided events, closing a period twice) and, on
// acceptance, updates the structure and writes the event's postings to a
// Sink: which month (or adjustment month), category, label, invoice bucket and
// drill-down path each amount lands in. Decisions depend on nothing but the
// events before this one, so replaying the ledger reproduces them exactly.
//
// Not thread-safe: one writer decides at a time.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "events/event.h"
#include "ledger/ledger.h"
#include "projections/budgets.h"
#include "projections/org_state.h"
#include "projections/store.h"

namespace billing::projections {

// Finds an accepted event by its org and id (the ledger, or the group being
// written); an id of another org is not found.
using EventLookup = std::function<Result<std::optional<ledger::StoredEvent>>(ledger::EventKey key)>;

// One posting exactly as the decider writes it to the read models, for
// observers that need line-level detail (exports). Pointers and views are
// valid only during the observer call.
struct PostingRow {
  const OrgState* org = nullptr;
  Month month;             // the month it lands in (for adjustments: the open month it moved to)
  char category = 0;       // keys::Category
  std::string_view label;  // the month item's label: service, description or YYYY-MM
  std::string_view cost_center;  // the invoice bucket: a cost center id, "" for the organization
  Sum amount = 0;                // signed: credits and reversals are negative
  Sum quantity = 0;              // usage only; negative for reversals
  std::string_view unit;         // usage only
  // The event recorded as this sequence that caused the posting: the charge
  // itself, or the event_voided that reverses it.
  const events::Event* cause = nullptr;
  uint64_t sequence = 0;
  // The charge whose fields the posting carries (provider, service, sku...):
  // `cause` itself, or for a reversal the voided original.
  const events::Event* charge = nullptr;
};

using PostingObserver = std::function<void(const PostingRow&)>;

// Whether the decider also writes the explain index (explain.h) to its sink.
// The stored read models keep it (the live gate, rebuilds); a replay into
// memory (as_of answers, exports, seals) reads no explanation and skips it.
enum class ExplainIndex { kSkip, kWrite };

class Decider {
 public:
  // Decides `event` as ledger sequence `seq`. OK: accepted, applied and its
  // writes added to `sink`. A SPEC code: rejected, and nothing changed.
  // kUnavailable/kCorruption: a lookup failed. `view` answers voided markers
  // written before the current group.
  Status Decide(const events::Event& event, ledger::Sequence sequence, const EventLookup& lookup,
                Sink& sink, const View& view);
  // Decides a record already in the ledger again (replays, rebuilds,
  // exports). It was accepted when written, so a refusal by the rules now is
  // kCorruption naming the sequence: the rules or the stored bytes changed
  // under us. A failed lookup keeps its code (kUnavailable: retry).
  Status Redecide(const ledger::Record& record, const EventLookup& lookup, Sink& sink,
                  const View& view);

  // The alerts the last Decide raised (empty after a rejection): what a
  // caller that acts on alerts (webhooks) reads right after Decide, before
  // the next event. They are already written to the sink (keys.h "pr").
  const std::vector<Alert>& raised() const { return raised_; }

  // Writes the month figures changed since the last call (keys.h "pb") to
  // `sink`. Call it before the sink's writes become visible to readers: the
  // live gate when it seals a group, a rebuild per batch, a replay at its end.
  void FlushFigures(Sink& sink);

  const OrgState* Find(const std::string& org) const;
  // Orgs changed since the last TakeDirty(), and empties that set.
  std::set<std::string> TakeDirty();
  // Forgets voids and month figures decided since the last call: they are
  // now readable from the view (FlushFigures wrote the figures).
  void ClearPending();

  // Replaces the whole structure (loading from storage).
  void Load(std::map<std::string, OrgState> orgs);

  // Called once for every posting an accepted event writes, after it is
  // written to the sink and in the same order; decisions do not depend on
  // it. Empty (the default): no call. Exports use it to see line-level rows
  // produced by exactly the rules that build the invoices.
  void set_observer(PostingObserver observer) { observer_ = std::move(observer); }
  // kSkip (the default) or kWrite: one index entry per aggregate a posting
  // goes into, except the month's category totals and invoice lines (a
  // bucket's entry names its line).
  void set_explain_index(ExplainIndex explain) { explain_ = explain; }

 private:
  struct Posting;
  Result<Posting> PostingFor(const OrgState& org, const events::Event& event,
                             ledger::Sequence seq) const;
  void Emit(OrgState& org, const Posting& posting, Sink& sink, const View& view,
            const events::Event& cause, uint64_t seq, const events::Event& charge);
  // Encodes the explain index's values of a posting into explain_node_ (items
  // and drill-down nodes) and explain_bucket_ (the invoice bucket, with the
  // line); both empty when the index is skipped.
  void ExplainValues(const Posting& posting, const events::Event& charge);
  // Posts an accepted usage, support charge or credit.
  Status DecideCharge(OrgState& org, const events::Event& event, ledger::Sequence sequence,
                      Sink& sink, const View& view);
  Status DecideBudgetSet(OrgState& org, const events::Event& event, uint64_t seq, Sink& sink,
                         const View& view);
  // The month's figures as of the event being decided: read from `view` the
  // first time (nothing of the month is pending then), kept in memory after.
  MonthFigures& FiguresOf(const std::string& org, Month month, const View& view);
  // Raises the alerts that hold for `month` now (budgets.h NewAlerts) and
  // writes them to `sink`.
  void RaiseAlerts(const OrgState& org, Month month, uint64_t seq, Sink& sink, const View& view);
  Status DecideEventVoided(OrgState& org, const events::Event& event, ledger::Sequence sequence,
                           const EventLookup& lookup, Sink& sink, const View& view);
  Result<Posting> ReversalFor(const OrgState& org, const events::Event& original,
                              ledger::Sequence original_seq, ledger::Sequence now) const;

  std::map<std::string, OrgState> orgs_;
  std::set<std::string> dirty_;
  std::set<std::string> pending_voids_;  // org \0 event_id, decided in the current group
  PostingObserver observer_;
  events::Event replayed_;  // Redecide's, reused so a replay does not allocate an event per record
  std::string key_;         // Emit's key buffer (keys::MonthKeys)
  // Month figures read or changed since the last ClearPending, by (org,
  // month index), and those changed since the last FlushFigures.
  std::map<std::pair<std::string, int32_t>, MonthFigures> figures_;
  std::set<std::pair<std::string, int32_t>> figures_dirty_;
  std::vector<Alert> raised_;  // by the event decided last
  ExplainIndex explain_ = ExplainIndex::kSkip;
  std::string explain_key_;   // Emit's buffers for the explain index
  std::string explain_node_;  // (reused: a replay writes millions)
  std::string explain_bucket_;
};

}  // namespace billing::projections
