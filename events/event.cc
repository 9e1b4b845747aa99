#include "events/event.h"

#include <google/protobuf/util/json_util.h>

#include <nlohmann/json.hpp>

namespace billing::events {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using Json = nlohmann::json;

Status Invalid(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }

bool IsMoneyField(std::string_view name) { return name == "amount" || name == "quantity"; }

// Reads one JSON object into `message`: every key must be a field of the
// schema under its SPEC name (protobuf's own JSON parser would also accept
// camelCase aliases, which the SPEC does not), every scalar must be a string
// (so a JSON number for money gets its own precise message), and nested
// objects are payloads. Filling the message by reflection from the parsed
// tree is a single pass; parsing the text again with protobuf's JSON parser
// cost more than everything else an append does. `path` prefixes messages,
// e.g. "usage_recorded.".
Status ReadObject(const Json& object, google::protobuf::Message* message, const std::string& path,
                  int* payloads) {
  const Descriptor* descriptor = message->GetDescriptor();
  const google::protobuf::Reflection* reflection = message->GetReflection();
  for (const auto& [key, value] : object.items()) {
    const FieldDescriptor* field = descriptor->FindFieldByName(key);
    if (field == nullptr) return Invalid("unknown key \"" + path + key + "\"");
    if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (!value.is_object()) return Invalid(path + key + " must be a JSON object");
      ++*payloads;
      int nested = 0;
      Status s = ReadObject(value, reflection->MutableMessage(message, field), path + key + ".", &nested);
      if (!s.ok()) return s;
      continue;
    }
    if (value.is_null() && field->has_presence()) continue;  // optional field left out
    if (!value.is_string()) {
      if (IsMoneyField(key) && value.is_number()) {
        return Invalid(path + key + " must be a decimal string, not a JSON number");
      }
      return Invalid(path + key + " must be a string");
    }
    reflection->SetString(message, field, value.get<std::string>());
  }
  return Status::Ok();
}

bool IdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

Status CheckId(std::string_view value, std::string_view field, size_t max_bytes) {
  if (value.empty()) return Invalid(std::string(field) + " is required");
  if (value.size() > max_bytes) {
    return Invalid(std::string(field) + " is longer than " + std::to_string(max_bytes) +
                   " characters");
  }
  for (char c : value) {
    if (!IdChar(c)) return Invalid(std::string(field) + " may only contain [A-Za-z0-9._:-]");
  }
  return Status::Ok();
}

// Free text and the ids the SPEC gives no charset (cost centers, workspaces,
// providers): required, bounded, and free of control characters, which would
// only ever be a producer bug and would break CSV and log lines.
Status CheckText(std::string_view value, std::string_view field) {
  if (value.empty()) return Invalid(std::string(field) + " is required");
  if (value.size() > kTextBytesMax) {
    return Invalid(std::string(field) + " is longer than " + std::to_string(kTextBytesMax) +
                   " bytes");
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) return Invalid(std::string(field) + " contains a control character");
  }
  return Status::Ok();
}

Status CheckCurrency(std::string_view value, std::string_view field) {
  bool ok = value.size() == 3;
  for (char c : value) ok = ok && c >= 'A' && c <= 'Z';
  if (!ok) return Invalid(std::string(field) + " must be an ISO 4217 code like USD");
  return Status::Ok();
}

#define RETURN_IF_ERROR(expr)     \
  do {                            \
    Status _s = (expr);           \
    if (!_s.ok()) return _s;      \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr)      \
  do {                                   \
    auto _r = (expr);                    \
    if (!_r.ok()) return _r.status();    \
    lhs = std::move(_r).value();         \
  } while (0)

Status ValidatePayload(const Envelope& e, Event* out) {
  switch (e.payload_case()) {
    case Payload::kOrganizationCreated: {
      const auto& p = e.organization_created();
      RETURN_IF_ERROR(CheckText(p.name(), "organization_created.name"));
      RETURN_IF_ERROR(CheckCurrency(p.currency(), "organization_created.currency"));
      return CheckText(p.billing_account(), "organization_created.billing_account");
    }
    case Payload::kCostCenterCreated: {
      const auto& p = e.cost_center_created();
      RETURN_IF_ERROR(CheckText(p.cost_center_id(), "cost_center_created.cost_center_id"));
      return CheckText(p.name(), "cost_center_created.name");
    }
    case Payload::kWorkspaceCreated: {
      const auto& p = e.workspace_created();
      RETURN_IF_ERROR(CheckText(p.workspace_id(), "workspace_created.workspace_id"));
      RETURN_IF_ERROR(CheckText(p.cost_center_id(), "workspace_created.cost_center_id"));
      return CheckText(p.name(), "workspace_created.name");
    }
    case Payload::kProviderRegistered: {
      const auto& p = e.provider_registered();
      RETURN_IF_ERROR(CheckText(p.provider_id(), "provider_registered.provider_id"));
      RETURN_IF_ERROR(CheckText(p.workspace_id(), "provider_registered.workspace_id"));
      RETURN_IF_ERROR(CheckText(p.name(), "provider_registered.name"));
      return CheckText(p.kind(), "provider_registered.kind");
    }
    case Payload::kProviderMoved: {
      const auto& p = e.provider_moved();
      RETURN_IF_ERROR(CheckText(p.provider_id(), "provider_moved.provider_id"));
      return CheckText(p.workspace_id(), "provider_moved.workspace_id");
    }
    case Payload::kBillingAccountAssigned: {
      const auto& p = e.billing_account_assigned();
      RETURN_IF_ERROR(CheckText(p.cost_center_id(), "billing_account_assigned.cost_center_id"));
      return CheckText(p.billing_account(), "billing_account_assigned.billing_account");
    }
    case Payload::kInvoicingModeChanged: {
      const auto& mode = e.invoicing_mode_changed().mode();
      if (mode == "SINGLE") {
        out->mode = InvoicingMode::kSingle;
      } else if (mode == "PER_COST_CENTER") {
        out->mode = InvoicingMode::kPerCostCenter;
      } else {
        return Invalid("invoicing_mode_changed.mode must be SINGLE or PER_COST_CENTER");
      }
      return Status::Ok();
    }
    case Payload::kUsageRecorded: {
      const auto& p = e.usage_recorded();
      RETURN_IF_ERROR(CheckText(p.provider_id(), "usage_recorded.provider_id"));
      RETURN_IF_ERROR(CheckText(p.service(), "usage_recorded.service"));
      RETURN_IF_ERROR(CheckText(p.sku(), "usage_recorded.sku"));
      RETURN_IF_ERROR(CheckText(p.resource_id(), "usage_recorded.resource_id"));
      RETURN_IF_ERROR(CheckText(p.region(), "usage_recorded.region"));
      RETURN_IF_ERROR(CheckText(p.unit(), "usage_recorded.unit"));
      ASSIGN_OR_RETURN(out->quantity, ParseDecimal(p.quantity(), "usage_recorded.quantity"));
      ASSIGN_OR_RETURN(out->amount, ParseDecimal(p.amount(), "usage_recorded.amount"));
      ASSIGN_OR_RETURN(out->usage_start, ParseTimestamp(p.usage_start(), "usage_recorded.usage_start"));
      ASSIGN_OR_RETURN(out->usage_end, ParseTimestamp(p.usage_end(), "usage_recorded.usage_end"));
      if (out->usage_end < out->usage_start) {
        return Invalid("usage_recorded.usage_end is before usage_start");
      }
      if (p.has_currency()) RETURN_IF_ERROR(CheckCurrency(p.currency(), "usage_recorded.currency"));
      out->month = MonthOf(out->usage_start);
      return Status::Ok();
    }
    case Payload::kSupportCharged: {
      const auto& p = e.support_charged();
      ASSIGN_OR_RETURN(out->month, ParseMonth(p.month(), "support_charged.month"));
      ASSIGN_OR_RETURN(out->amount, ParseDecimal(p.amount(), "support_charged.amount"));
      RETURN_IF_ERROR(CheckText(p.description(), "support_charged.description"));
      if (p.has_cost_center_id()) {
        RETURN_IF_ERROR(CheckText(p.cost_center_id(), "support_charged.cost_center_id"));
      }
      return Status::Ok();
    }
    case Payload::kCreditApplied: {
      const auto& p = e.credit_applied();
      ASSIGN_OR_RETURN(out->month, ParseMonth(p.month(), "credit_applied.month"));
      ASSIGN_OR_RETURN(out->amount, ParseDecimal(p.amount(), "credit_applied.amount"));
      if (out->amount == 0) return Invalid("credit_applied.amount must be more than zero");
      RETURN_IF_ERROR(CheckText(p.description(), "credit_applied.description"));
      if (p.has_cost_center_id()) {
        RETURN_IF_ERROR(CheckText(p.cost_center_id(), "credit_applied.cost_center_id"));
      }
      return Status::Ok();
    }
    case Payload::kEventVoided: {
      const auto& p = e.event_voided();
      RETURN_IF_ERROR(CheckId(p.voided_event_id(), "event_voided.voided_event_id", kEventIdBytesMax));
      return CheckText(p.reason(), "event_voided.reason");
    }
    case Payload::kBillingPeriodClosed: {
      ASSIGN_OR_RETURN(out->month, ParseMonth(e.billing_period_closed().month(),
                                              "billing_period_closed.month"));
      return Status::Ok();
    }
    case Payload::PAYLOAD_NOT_SET:
      break;
  }
  return Invalid("the event has no payload; exactly one is required");
}

}  // namespace

Result<Envelope> ParseJson(std::string_view json, Names* names) {
  // nlohmann's parser takes a NUL byte for the end of the input, so
  // `{...}\0junk` would read as the object alone. JSON text can never hold a
  // raw NUL (control characters must be escaped even inside strings).
  if (json.find('\0') != std::string_view::npos) {
    return Invalid("the event is not valid JSON: it holds a NUL byte");
  }
  Json tree = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (tree.is_discarded()) return Invalid("the event is not valid JSON");
  if (!tree.is_object()) return Invalid("an event must be a JSON object");
  if (names != nullptr) {
    if (auto it = tree.find("event_id"); it != tree.end() && it->is_string()) {
      names->event_id = it->get<std::string>();
    }
    if (auto it = tree.find("org_id"); it != tree.end() && it->is_string()) {
      names->org_id = it->get<std::string>();
    }
  }
  int payloads = 0;
  Envelope envelope;
  Status s = ReadObject(tree, &envelope, "", &payloads);
  if (!s.ok()) return s;
  if (payloads != 1) {
    return Invalid("an event needs exactly one payload, found " + std::to_string(payloads));
  }
  return envelope;
}

Result<Envelope> ParseBinary(std::string_view bytes) {
  Envelope envelope;
  if (!envelope.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Invalid("the message is neither a JSON event nor a binary protobuf Envelope");
  }
  return envelope;
}

Result<Envelope> ParseAny(std::string_view bytes, Names* names) {
  size_t i = 0;
  while (i < bytes.size() && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\r' ||
                              bytes[i] == '\n')) {
    ++i;
  }
  if (i < bytes.size() && bytes[i] == '{') return ParseJson(bytes, names);
  auto envelope = ParseBinary(bytes);
  if (envelope.ok() && names != nullptr) {
    names->event_id = envelope->event_id();
    names->org_id = envelope->org_id();
  }
  return envelope;
}

Status Validate(Event* event) {
  Envelope envelope;
  envelope.Swap(&event->envelope);
  *event = Event();
  event->envelope.Swap(&envelope);
  const Envelope& e = event->envelope;
  RETURN_IF_ERROR(CheckId(e.event_id(), "event_id", kEventIdBytesMax));
  RETURN_IF_ERROR(CheckId(e.org_id(), "org_id", kOrgIdBytesMax));
  ASSIGN_OR_RETURN(event->occurred_at, ParseTimestamp(e.occurred_at(), "occurred_at"));
  if (e.has_source() && e.source().size() > kTextBytesMax) {
    return Invalid("source is longer than " + std::to_string(kTextBytesMax) + " bytes");
  }
  return ValidatePayload(e, event);
}

Result<Event> Validate(Envelope envelope) {
  Event event;
  event.envelope = std::move(envelope);
  RETURN_IF_ERROR(Validate(&event));
  return event;
}

std::string ToJson(const Envelope& envelope) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  // Printing a message we built can only fail on invalid UTF-8, which JSON
  // input cannot carry; binary input could, so fall back to a visible marker.
  if (!google::protobuf::util::MessageToJsonString(envelope, &out, options).ok()) {
    return "{\"error\":\"event is not printable as JSON\"}";
  }
  return out;
}

std::string CanonicalBytes(const Envelope& envelope) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  envelope.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

std::string_view PayloadName(Payload payload) {
  const FieldDescriptor* field = Envelope::descriptor()->FindFieldByNumber(static_cast<int>(payload));
  if (field == nullptr) return "none";
  return field->name();
}

Result<std::vector<RawEvent>> SplitBody(std::string_view body, BodyFormat format) {
  std::vector<RawEvent> out;
  // Found by fuzzing: nlohmann's parser takes a NUL byte for the end of its
  // input, so `[{...}]\0junk` read as the array alone and the junk was
  // silently dropped. JSON text never holds a raw NUL: such a body or line
  // is not JSON.
  auto has_nul = [](std::string_view text) { return text.find('\0') != std::string_view::npos; };
  if (format == BodyFormat::kJson && !has_nul(body)) {
    Json tree = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (!tree.is_discarded()) {
      if (tree.is_array()) {
        out.reserve(tree.size());
        for (const auto& element : tree) out.push_back(RawEvent{element.dump()});
      } else {
        out.push_back(RawEvent{std::string(body)});
      }
      return out;
    }
    // Not one JSON document; producers often send NDJSON as application/json,
    // so accept it when every line reads as JSON.
  }
  size_t parsed_lines = 0;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view line = body.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool blank = line.find_first_not_of(" \t") == std::string_view::npos;
    if (!blank) {
      if (!has_nul(line) && Json::accept(line.begin(), line.end())) ++parsed_lines;
      out.push_back(RawEvent{std::string(line)});
    }
    pos = end + 1;
  }
  if (out.empty()) return Invalid("the body holds no events");
  if (parsed_lines == 0 || (format == BodyFormat::kJson && parsed_lines != out.size())) {
    return Invalid("the body is not JSON");
  }
  return out;
}

}  // namespace billing::events
