// Explanations: the ledger events behind a number the read models show.
//
// Every posting the decider writes into a month item, a drill-down node or an
// invoice bucket also writes one entry of the explain index (keys.h, `px`;
// stored in blocks of entries, index_block.h):
// under that aggregate's key, the sequence of the event that posted and what
// it contributed. The entries are written with the aggregates, in the same
// atomic write, and never change afterwards (a void writes its own negative
// entries at its own sequence), so the index is a pure function of the ledger
// like every read model, and an answer as of a past sequence is the same
// index read up to that sequence: no replay.
//
// The contributions of one aggregate sum exactly to its amount, at the head
// and as of any sequence. Pure functions of (OrgState, View): thread-safe
// over immutable inputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/money.h"
#include "ledger/ledger.h"
#include "projections/org_state.h"
#include "projections/store.h"

namespace billing::projections {

// Lines of one page when the client names no limit: a month item of a busy
// org holds hundreds of thousands of events, and an answer of a thousand
// (a few hundred KiB of JSON) is one screen's worth to a person or a script.
inline constexpr size_t kExplainPageLinesDefault = 1000;
// The most a client may ask for in one page: each line reads one ledger record,
// so this bounds a request to ~10k reads and a few MiB of answer.
inline constexpr size_t kExplainPageLinesMax = 10000;

// What one event contributed to one aggregate (one index entry).
struct Contribution {
  uint64_t sequence = 0;
  Sum amount = 0;               // signed: credits and reversals are negative
  std::optional<Sum> quantity;  // usage (late usage too); negated for reversals
  char category = 0;            // invoice buckets only: keys::Category of the line
  std::string label;            // invoice buckets only: the line's description
};

// An index entry's bytes: the contribution without its sequence (which the
// block holds). Invoice-bucket entries carry their line's category and label.
void EncodeContribution(const Contribution& c, std::string* out);
// False when `value` is not an encoded contribution (corruption); `sequence`
// comes from the key.
bool DecodeContribution(std::string_view value, uint64_t sequence, Contribution* out);

// Which entries a page holds: sequences after `after`, at most `limit` of
// them, none after `upto` (an answer as of that sequence).
struct ExplainPage {
  ledger::Sequence after{0};
  size_t limit = kExplainPageLinesDefault;
  ledger::Sequence upto = ledger::kSequenceMax;
};

// The events that posted into the month item or drill-down node `item_id`
// (the ids of queries.h ItemChildren/MonthItems), in sequence order.
// kNotFound when the id names nothing in that month, or nothing any event
// had posted into by `page.upto`.
Result<std::vector<Contribution>> ItemContributions(const OrgState& org, const View& view,
                                                    Month month, const std::string& item_id,
                                                    const ExplainPage& page);

// The events behind invoice `invoice_id`, in sequence order, each with the
// category and label of the line it went into. The invoice is resolved as
// GetInvoice resolves it, with the month's invoicing mode as known at
// `page.upto`. kNotFound when there was no such invoice then.
Result<std::vector<Contribution>> InvoiceContributions(const OrgState& org, const View& view,
                                                       const std::string& invoice_id,
                                                       const ExplainPage& page);

// The ledger record of `sequence`, read through `view` (a RocksView of the
// ledger's database sees the records too). nullopt when there is none; a
// read failure is in view.status(), an undecodable record kCorruption.
Result<std::optional<ledger::Record>> RecordAt(const View& view, ledger::Sequence sequence);

// One NDJSON line of an explanation, without its newline: {"sequence",
// "amount" (9 digits), "quantity" (9 digits, or null), then for invoice lines
// "category" and "description", then "event": `event_json` as the ledger's
// GET /v1/ledger/events renders it}. The one builder for ledgerd and ledgerctl.
enum class LineKind { kNode, kInvoice };
std::string ContributionLine(const Contribution& c, LineKind kind, std::string_view event_json);

}  // namespace billing::projections
