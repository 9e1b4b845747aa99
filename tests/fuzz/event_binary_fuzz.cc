// Fuzz target: a Kafka value in binary protobuf through ParseBinary/ParseAny
// and Validate; what validates keeps its canonical bytes through a round trip.
#include <google/protobuf/stubs/logging.h>

#include <string>
#include <string_view>

#include "events/event.h"
#include "tests/fuzz/fuzz_targets.h"

namespace billing::fuzz {

int EventBinary(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  events::Names names;
  (void)events::ParseAny(input, &names);
  auto envelope = events::ParseBinary(input);
  if (!envelope.ok()) {
    FUZZ_CHECK(envelope.status().code() == Code::kInvalidArgument, envelope.status().ToString());
    return 0;
  }
  // Printing must never fail hard, whatever bytes the strings hold (binary
  // input may carry invalid UTF-8, which the ledger stream must survive).
  (void)events::ToJson(*envelope);
  const std::string canonical = events::CanonicalBytes(*envelope);
  auto again = events::ParseBinary(canonical);
  FUZZ_CHECK(again.ok(), again.status().ToString());
  FUZZ_CHECK(events::CanonicalBytes(*again) == canonical, "canonical bytes changed");
  auto event = events::Validate(*envelope);
  if (!event.ok()) {
    FUZZ_CHECK(event.status().code() == Code::kInvalidArgument, event.status().ToString());
    return 0;
  }
  FUZZ_CHECK(events::Validate(*again).ok(), "a valid envelope's canonical bytes do not validate");
  return 0;
}

}  // namespace billing::fuzz

LEDGER_FUZZ_MAIN(billing::fuzz::EventBinary)
LEDGER_FUZZ_QUIET_PROTOBUF()
