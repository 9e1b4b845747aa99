// Fills a ledger directory in-process, as ledgerd's ingest would, for tests
// of the offline tools (ledgerctl invoice, reconcile) that need a real ledger
// but no server.
#pragma once

#include <sstream>
#include <string>

#include "ledger/ledger.h"
#include "ledger/prepare.h"
#include "projections/billing.h"

namespace billing::testing {

struct Ingested {
  int accepted = 0, duplicates = 0, rejected = 0;
  uint64_t last_sequence = 0;
};

// Appends every non-empty NDJSON line of `ndjson` to the ledger in `dir`
// (created when missing), in one group, and closes it again.
inline Ingested IngestNdjson(const std::string& dir, const std::string& ndjson) {
  projections::BillingOptions options;
  options.dir = dir;
  auto billing = projections::Billing::Open(options);
  if (!billing.ok()) std::abort();
  ledger::AppendRequest request;
  std::istringstream in(ndjson);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) request.entries.push_back(ledger::PrepareEntry(line, ledger::Source()));
  }
  ledger::AppendResult result = (*billing)->Submit(std::move(request));
  if (!result.status.ok()) std::abort();
  Ingested out;
  for (const ledger::Outcome& o : result.outcomes) {
    if (o.kind == ledger::Outcome::Kind::kAccepted) ++out.accepted;
    if (o.kind == ledger::Outcome::Kind::kDuplicate) ++out.duplicates;
    if (o.kind == ledger::Outcome::Kind::kRejected) ++out.rejected;
  }
  out.last_sequence = result.last_sequence.value;
  return out;
}

}  // namespace billing::testing
