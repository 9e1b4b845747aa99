// Fuzz target: a POST body or Kafka value in JSON through SplitBody, ParseJson
// (its fast path checked against its slow path) and Validate, with the round
// trips the ledger relies on for idempotency.
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "events/event.h"
#include "events/json_paths.h"
#include "tests/fuzz/fuzz_targets.h"

namespace billing::fuzz {

namespace {

// ParseJson's fast path may only decline or give the slow path's answer:
// the same envelope and the same names.
void CheckFastPathAgrees(std::string_view json) {
  if (json.find('\0') != std::string_view::npos) return;  // ParseJsonFast's precondition
  events::Names fast_names{"<unset>", "<unset>"};
  auto fast = events::internal::ParseJsonFast(json, &fast_names);
  events::Names slow_names{"<unset>", "<unset>"};
  auto slow = events::internal::ParseJsonSlow(json, &slow_names);
  if (!fast.has_value()) {
    FUZZ_CHECK(fast_names.event_id == "<unset>" && fast_names.org_id == "<unset>",
               "the fast path declined but set names");
    return;
  }
  FUZZ_CHECK(slow.ok(), "the fast path accepted: " + slow.status().ToString());
  FUZZ_CHECK(events::CanonicalBytes(*fast) == events::CanonicalBytes(*slow),
             "the fast path read another envelope");
  FUZZ_CHECK(fast_names.event_id == slow_names.event_id && fast_names.org_id == slow_names.org_id,
             "the fast path kept other names");
}

void CheckEvent(std::string_view json) {
  CheckFastPathAgrees(json);
  events::Names names;
  auto envelope = events::ParseJson(json, &names);
  if (!envelope.ok()) {
    FUZZ_CHECK(envelope.status().code() == Code::kInvalidArgument, envelope.status().ToString());
    return;
  }
  // JSON text never holds a raw NUL (nlohmann's parser stops reading there).
  FUZZ_CHECK(json.find('\0') == std::string_view::npos, "an event with a NUL byte was read");
  auto event = events::Validate(*envelope);
  if (!event.ok()) {
    FUZZ_CHECK(event.status().code() == Code::kInvalidArgument, event.status().ToString());
    return;
  }
  FUZZ_CHECK(names.event_id == envelope->event_id(), names.event_id);
  // Idempotency compares canonical bytes: the JSON we print (the ledger
  // stream) must read back as the very same event, and so must the bytes we
  // store and hash.
  const std::string canonical = events::CanonicalBytes(*envelope);
  const std::string printed = events::ToJson(*envelope);
  auto reread = events::ParseJson(printed);
  FUZZ_CHECK(reread.ok(), printed + ": " + reread.status().ToString());
  FUZZ_CHECK(events::Validate(*reread).ok(), printed);
  FUZZ_CHECK(events::CanonicalBytes(*reread) == canonical, printed);
  auto binary = events::ParseBinary(canonical);
  FUZZ_CHECK(binary.ok(), binary.status().ToString());
  FUZZ_CHECK(events::CanonicalBytes(*binary) == canonical, printed);
  auto any = events::ParseAny(printed);
  FUZZ_CHECK(any.ok() && events::CanonicalBytes(*any) == canonical, printed);
}

}  // namespace

int EventJson(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckEvent(input);
  for (auto format : {events::BodyFormat::kJson, events::BodyFormat::kNdjson}) {
    auto raws = events::SplitBody(input, format);
    if (!raws.ok()) continue;
    // Only a JSON body can be empty (`[]`); NDJSON needs one line at least.
    FUZZ_CHECK(format == events::BodyFormat::kJson || !raws->empty(),
               "an NDJSON body with no events");
    FUZZ_CHECK(format == events::BodyFormat::kNdjson || input.find('\0') == std::string_view::npos,
               "a JSON body with a NUL byte was split");
    // A JSON array is cut into its elements without a parse: each piece must
    // be exactly the element the parser sees there.
    // (nlohmann's == recurses, so only on inputs of bounded nesting.)
    const auto brackets =
        std::count_if(input.begin(), input.end(), [](char c) { return c == '[' || c == '{'; });
    if (format == events::BodyFormat::kJson && !raws->empty() && raws->size() <= 64 &&
        brackets <= 256) {
      auto tree = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
      if (tree.is_array()) {
        FUZZ_CHECK(tree.size() == raws->size(), "an array split into another number of events");
        for (size_t i = 0; i < raws->size(); ++i) {
          auto piece = nlohmann::json::parse((*raws)[i].bytes, nullptr, /*allow_exceptions=*/false);
          FUZZ_CHECK(piece == tree[i], (*raws)[i].bytes);
        }
      }
    }
    // A body of many events is parsed event by event; bounded so one input
    // cannot take seconds.
    size_t n = 0;
    for (const auto& raw : *raws) {
      if (++n > 64) break;
      CheckEvent(raw.bytes);
    }
  }
  return 0;
}

}  // namespace billing::fuzz

LEDGER_FUZZ_MAIN(billing::fuzz::EventJson)
LEDGER_FUZZ_QUIET_PROTOBUF()
