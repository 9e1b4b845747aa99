// Ledger entries for tests that append to the ledger without the read models:
// an event's JSON, parsed and statelessly validated as an ingest path would.
#pragma once

#include <string>

#include "events/event.h"
#include "ledger/ledger.h"

namespace billing::testing {

// The entry of a valid event; the JSON must parse and validate.
inline ledger::Entry ValidEntry(const std::string& json) {
  ledger::Entry e;
  e.raw = json;
  auto envelope = events::ParseJson(json);
  auto event = events::Validate(*envelope);
  e.event = *event;
  e.event_id = e.event->envelope.event_id();
  e.org_id = e.event->envelope.org_id();
  return e;
}

}  // namespace billing::testing
