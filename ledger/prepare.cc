#include "ledger/prepare.h"

#include <utility>

#include "events/event.h"

namespace billing::ledger {

Entry PrepareEntry(std::string raw, const Source& source) {
  Entry entry;
  entry.source = source;
  events::Names names;
  // The SPEC allows binary protobuf only as a Kafka value; over HTTP it would
  // be a way around the JSON rules.
  auto envelope = source.kind() == Source::KAFKA ? events::ParseAny(raw, &names)
                                                 : events::ParseJson(raw, &names);
  entry.event_id = names.event_id;
  entry.org_id = names.org_id;
  if (!envelope.ok()) {
    entry.rejection = envelope.status();
  } else {
    auto event = events::Validate(std::move(envelope).value());
    if (event.ok()) {
      entry.event = std::move(event).value();
    } else {
      entry.rejection = event.status();
    }
  }
  if (entry.rejection.message().size() > events::kRejectionMessageBytesMax) {
    entry.rejection =
        Status(entry.rejection.code(),
               events::QuoteInput(entry.rejection.message(), events::kRejectionMessageBytesMax));
  }
  entry.raw = std::move(raw);
  return entry;
}

}  // namespace billing::ledger
