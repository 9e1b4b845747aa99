// Rebuild: the read models recomputed from the ledger alone.
//
// The read models are a pure function of the ledger, so they can always be
// thrown away and replayed: Billing::Open does it when they are missing or of
// another version, `ledgerctl replay` on request. The replay is a bulk load:
// deciding overlaps with writing on a second thread, the writes skip the WAL
// and compactions wait until the end; the version marker, written last and
// synced, is what declares the read models built, so a rebuild cut short at
// any point is simply done again at the next open.
#pragma once

#include <cstddef>

#include "events/status.h"
#include "ledger/ledger.h"

namespace billing::projections {

// Records replayed per WriteBatch while rebuilding: large enough to amortise
// the write, small enough to bound the buffers (a batch's posting log is
// ~30 MiB, its sums a few MiB).
inline constexpr size_t kRebuildBatchEvents = 50000;

// Deletes the read models stored beside `ledger` and replays every record into
// them, `batch_events` (at least 1) records per batch; returns Ok once they
// are durable and marked built. kUnavailable on a storage failure, the
// decider's code if a stored record cannot be redecided (a bug or corruption).
// Only while nothing else reads or writes the read models: it drops table
// files under any live snapshot. The caller reloads what it keeps in memory.
Status RebuildReadModels(const ledger::Ledger& ledger, size_t batch_events);

}  // namespace billing::projections
