// Events: the SPEC's envelope, read from JSON or binary protobuf and checked
// without any state.
//
// `ParseJson`/`ParseBinary` turn bytes into an `Envelope` (the protobuf message
// of events.proto); `Validate` checks every stateless rule of the SPEC
// (charsets, lengths, RFC 3339 times, decimal money, months, usage_end >=
// usage_start, exactly one payload) and returns an `Event`, the envelope with
// its money already in nano-units and its times parsed. All failures are
// kInvalidArgument with a message naming the field. Thread-safe: no state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "events/calendar.h"
#include "events/events.pb.h"
#include "events/money.h"
#include "events/status.h"

namespace billing::events {

using Envelope = ::billing::events::v1::Envelope;
using Payload = Envelope::PayloadCase;

// Longest free-text field (names, descriptions, labels) we store: long enough
// for any real provider's SKU or resource name, short enough that one event
// cannot bloat every page that lists it.
inline constexpr size_t kTextBytesMax = 1024;
// Longest event_id and org_id (SPEC).
inline constexpr size_t kEventIdBytesMax = 128;
inline constexpr size_t kOrgIdBytesMax = 64;

enum class InvoicingMode { kSingle, kPerCostCenter };

// A stateless-valid event. Money fields hold nano-units; fields that the
// payload does not have stay zero.
struct Event {
  Envelope envelope;
  Timestamp occurred_at;
  Nanos amount = 0;       // usage, support, credit (credit: positive, it reduces the bill)
  Nanos quantity = 0;     // usage
  Timestamp usage_start;  // usage
  Timestamp usage_end;    // usage
  Month month;            // usage: month of usage_start; support, credit, close: its month
  InvoicingMode mode = InvoicingMode::kSingle;  // invoicing_mode_changed
};

// What a rejected message still tells us, so its rejection can name it.
struct Names {
  std::string event_id;
  std::string org_id;
};

// Reads one event in the SPEC's JSON form. Rejects (kInvalidArgument) text that
// is not a JSON object, unknown keys at any level, JSON numbers or other
// non-strings where the SPEC wants strings, and not exactly one payload.
// `names`, if given, receives event_id and org_id whenever they are strings,
// even when the event is rejected.
Result<Envelope> ParseJson(std::string_view json, Names* names = nullptr);

// Reads one binary protobuf Envelope (a Kafka value may be either form).
Result<Envelope> ParseBinary(std::string_view bytes);

// Reads a Kafka value or stored raw bytes: JSON when the first non-space byte is
// `{`, binary protobuf otherwise.
Result<Envelope> ParseAny(std::string_view bytes, Names* names = nullptr);

// Checks every stateless rule; see the header comment. Takes the envelope by
// value: callers done with theirs move it in instead of copying every field.
Result<Event> Validate(Envelope envelope);
// The same, in place: checks `event->envelope` and sets the fields derived
// from it (the others are reset). Replays reuse one Event this way, so the
// envelope's strings keep their capacity from record to record. On failure
// the derived fields are partly set and must not be used.
Status Validate(Event* event);

// The SPEC's JSON form of an envelope (field order of the schema, compact).
std::string ToJson(const Envelope& envelope);

// The bytes the ledger stores and hashes: deterministic protobuf serialization,
// so equal envelopes (JSON-value equality) give equal bytes.
std::string CanonicalBytes(const Envelope& envelope);

// The payload key as it appears in JSON, e.g. "usage_recorded".
std::string_view PayloadName(Payload payload);

// One event of a request body or Kafka message, still unparsed.
struct RawEvent {
  std::string bytes;
};

enum class BodyFormat { kJson, kNdjson };

// Splits a POST body into its events: one JSON object, a JSON array of objects
// (kJson) or one object per line (kNdjson, blank lines skipped). Fails with
// kInvalidArgument only when the body as a whole is not JSON; each element is
// validated on its own later, so one bad event does not sink the others.
Result<std::vector<RawEvent>> SplitBody(std::string_view body, BodyFormat format);

}  // namespace billing::events
