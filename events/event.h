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
// Deepest nesting of arrays and objects in one event. The schema needs 3
// (envelope, payload, a payload's list); anything deeper is not an event,
// and refusing it before parsing keeps a hostile `[[[[...` from costing
// stack or memory in any later step.
inline constexpr int kJsonDepthMax = 8;
// Most JSON values (objects, arrays, scalars) in one event. The largest
// event of the schema has about 25; past this it is not an event, and
// refusing it keeps a hostile one of a million tiny objects from costing a
// million allocations.
inline constexpr size_t kEventJsonValuesMax = 256;
// Events in one POST body. A full 16 MiB body of real events (~300 bytes
// each) holds about 50 k; each costs ~1.5 KiB while it is decided, so 10 k
// bounds one request to ~15 MiB and its answer to a few MiB, and a producer
// with more splits them (the answer says so with 413).
inline constexpr size_t kBodyEventsMax = 10000;
// Longest piece of a client's input quoted back in a rejection message (an
// unknown key, a malformed time): enough to recognize it, never an echo of
// megabytes.
inline constexpr size_t kQuotedInputBytesMax = 64;
// Longest rejection message kept and answered: ours are a sentence naming a
// field; this bounds any that quotes more.
inline constexpr size_t kRejectionMessageBytesMax = 512;

// A budget's thresholds (SPEC): at most 10, each a whole percent of the
// budget from 1 to 1000 (an alert at ten times the budget is still useful;
// past that it is a typo).
inline constexpr int kBudgetThresholdsMax = 10;
inline constexpr int32_t kBudgetThresholdPercentMax = 1000;
// Thresholds of a budget_set that names none (SPEC).
inline constexpr int32_t kBudgetThresholdsDefault[] = {50, 80, 100};

enum class InvoicingMode { kSingle, kPerCostCenter };

// The SPEC's name of a mode, as events carry it and answers show it:
// "SINGLE" or "PER_COST_CENTER".
std::string_view InvoicingModeName(InvoicingMode mode);

// A stateless-valid event. Money fields hold nano-units; fields that the
// payload does not have stay zero.
struct Event {
  Envelope envelope;
  Timestamp occurred_at;
  Nanos amount = 0;       // usage, support, credit (credit: positive, it reduces the bill), budget
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

// Reads one binary protobuf Envelope (a Kafka value may be either form),
// judged as JSON is: kInvalidArgument for unknown fields, a field given twice
// (protobuf would keep the last) and not exactly one payload.
Result<Envelope> ParseBinary(std::string_view bytes);

// Reads a Kafka value or stored raw bytes: JSON when the first non-space byte is
// `{`, binary protobuf otherwise. Only Kafka values may be binary (SPEC); HTTP
// bodies go through ParseJson.
Result<Envelope> ParseAny(std::string_view bytes, Names* names = nullptr);

// The longest prefix of `text` of at most `max_bytes` that does not split a
// UTF-8 character.
std::string_view CutUtf8(std::string_view text, size_t max_bytes);
// `text` cut to `max_bytes` (CutUtf8, "..." marking the cut), for quoting a
// client's input in a message.
std::string QuoteInput(std::string_view text, size_t max_bytes = kQuotedInputBytesMax);

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
// (kJson) or one object per line (kNdjson, blank lines skipped). Each event
// keeps its bytes as sent. Fails with kInvalidArgument only when the body as a
// whole is not JSON, and with kTooLarge when it holds more than
// kBodyEventsMax events; each element is validated on its own later, so one
// bad event (even one nested too deep) does not sink the others.
Result<std::vector<RawEvent>> SplitBody(std::string_view body, BodyFormat format);

}  // namespace billing::events
