// Prepare: a received message's bytes turned into a ledger Entry, the step
// every ingest path (HTTP, Kafka, a re-drive of a stored rejection) takes
// before appending.
//
// It needs only the event schema: parsing and stateless validation
// (events/event.h). Stateful validation happens later, inside the append, in
// the Gate the read models install. So an ingest path prepares entries
// without linking the projections.
#pragma once

#include <string>

#include "ledger/ledger.h"

namespace billing::ledger {

// Parses and statelessly validates one message into an Entry that owns `raw`;
// never fails: a bad message becomes an entry carrying its rejection (its
// message cut to events::kRejectionMessageBytesMax), with the event and org
// ids it named as far as they could be read. Binary protobuf is accepted only
// from a Kafka `source`; anything else must be JSON. Thread-safe.
Entry PrepareEntry(std::string raw, const Source& source);

}  // namespace billing::ledger
