#include "events/event.h"

#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "events/json_paths.h"

namespace billing::events {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using Json = nlohmann::json;

Status Invalid(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }

bool JsonSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Follows JSON text byte by byte far enough to tell string contents (where
// brackets and commas mean nothing) from structure.
class StringTracker {
 public:
  // True when `c` belongs to a string, its quotes included.
  bool InString(char c) {
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      return true;
    }
    in_string_ = c == '"';
    return in_string_;
  }

 private:
  bool in_string_ = false;
  bool escaped_ = false;
};

Status TooManyEvents() {
  return Status(Code::kTooLarge, "the body holds more than " + std::to_string(kBodyEventsMax) +
                                     " events; send them in smaller bodies");
}

// The elements of a top-level JSON array, each as the bytes it was sent as
// (no parse and re-print, so a stored rejection keeps the producer's bytes).
// `body` must already be known to be one valid JSON array. Fails with
// kTooLarge past kBodyEventsMax elements, before it has copied more.
Result<std::vector<RawEvent>> ArrayElements(std::string_view body) {
  std::vector<RawEvent> out;
  int depth = 0;
  StringTracker strings;
  size_t start = std::string_view::npos;
  auto finish = [&](size_t end) -> bool {
    if (start == std::string_view::npos) return true;  // `[]`
    while (end > start && JsonSpace(body[end - 1])) --end;
    if (out.size() == kBodyEventsMax) return false;
    out.push_back(RawEvent{std::string(body.substr(start, end - start))});
    start = std::string_view::npos;
    return true;
  };
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (strings.InString(c)) {
      // A string element starts at its opening quote.
      if (depth == 1 && start == std::string_view::npos) start = i;
      continue;
    }
    if (JsonSpace(c)) continue;
    const bool closing = c == ']' || c == '}';
    const bool separator = depth == 1 && (c == ',' || closing);
    if (separator) {
      if (!finish(i)) return TooManyEvents();
    } else if (depth >= 1 && start == std::string_view::npos) {
      start = i;
    }
    if (c == '[' || c == '{') ++depth;
    if (closing) --depth;
  }
  return out;
}

bool IsMoneyField(std::string_view name) { return name == "amount" || name == "quantity"; }

// Reads a JSON array of integers into a repeated int32 field (the schema's
// only list: budget_set.thresholds). An empty array is refused here because
// the binary form cannot tell it from a list left out, which means the
// default; values outside int32 are refused before they could wrap.
Status ReadIntegers(const Json& value, google::protobuf::Message* message,
                    const FieldDescriptor* field, const std::string& name) {
  if (field->cpp_type() != FieldDescriptor::CPPTYPE_INT32) {
    return Invalid(name + " is not a list in the schema");
  }
  if (!value.is_array() || value.empty()) {
    return Invalid(name + " must be a non-empty JSON array of integers");
  }
  const google::protobuf::Reflection* reflection = message->GetReflection();
  constexpr int64_t kLow = std::numeric_limits<int32_t>::min();
  constexpr int64_t kHigh = std::numeric_limits<int32_t>::max();
  for (const Json& element : value) {
    bool fits = false;
    int64_t number = 0;
    if (element.is_number_unsigned()) {  // nlohmann's type for integers >= 0
      fits = element.get<uint64_t>() <= static_cast<uint64_t>(kHigh);
      number = fits ? static_cast<int64_t>(element.get<uint64_t>()) : 0;
    } else if (element.is_number_integer()) {
      number = element.get<int64_t>();
      fits = number >= kLow && number <= kHigh;
    }
    if (!fits) return Invalid(name + " must hold whole numbers, e.g. [50, 80, 100]");
    reflection->AddInt32(message, field, static_cast<int32_t>(number));
  }
  return Status::Ok();
}

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
    if (field == nullptr) return Invalid("unknown key \"" + path + QuoteInput(key) + "\"");
    if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (!value.is_object()) return Invalid(path + key + " must be a JSON object");
      ++*payloads;
      int nested = 0;
      Status s =
          ReadObject(value, reflection->MutableMessage(message, field), path + key + ".", &nested);
      if (!s.ok()) return s;
      continue;
    }
    if (value.is_null() && field->has_presence()) continue;  // optional field left out
    if (field->is_repeated()) {
      RETURN_IF_ERROR(ReadIntegers(value, message, field, path + key));
      continue;
    }
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

// One check per payload kind: each field's rules, and the parsed values
// (amounts, times, month, mode) the rest of the system reads from `out`.

Status ValidateOrganizationCreated(const v1::OrganizationCreated& p) {
  RETURN_IF_ERROR(CheckText(p.name(), "organization_created.name"));
  RETURN_IF_ERROR(CheckCurrency(p.currency(), "organization_created.currency"));
  return CheckText(p.billing_account(), "organization_created.billing_account");
}

Status ValidateCostCenterCreated(const v1::CostCenterCreated& p) {
  RETURN_IF_ERROR(CheckText(p.cost_center_id(), "cost_center_created.cost_center_id"));
  return CheckText(p.name(), "cost_center_created.name");
}

Status ValidateWorkspaceCreated(const v1::WorkspaceCreated& p) {
  RETURN_IF_ERROR(CheckText(p.workspace_id(), "workspace_created.workspace_id"));
  RETURN_IF_ERROR(CheckText(p.cost_center_id(), "workspace_created.cost_center_id"));
  return CheckText(p.name(), "workspace_created.name");
}

Status ValidateProviderRegistered(const v1::ProviderRegistered& p) {
  RETURN_IF_ERROR(CheckText(p.provider_id(), "provider_registered.provider_id"));
  RETURN_IF_ERROR(CheckText(p.workspace_id(), "provider_registered.workspace_id"));
  RETURN_IF_ERROR(CheckText(p.name(), "provider_registered.name"));
  return CheckText(p.kind(), "provider_registered.kind");
}

Status ValidateProviderMoved(const v1::ProviderMoved& p) {
  RETURN_IF_ERROR(CheckText(p.provider_id(), "provider_moved.provider_id"));
  return CheckText(p.workspace_id(), "provider_moved.workspace_id");
}

Status ValidateBillingAccountAssigned(const v1::BillingAccountAssigned& p) {
  RETURN_IF_ERROR(CheckText(p.cost_center_id(), "billing_account_assigned.cost_center_id"));
  return CheckText(p.billing_account(), "billing_account_assigned.billing_account");
}

Status ValidateInvoicingModeChanged(const v1::InvoicingModeChanged& p, Event* out) {
  const auto& mode = p.mode();
  if (mode == InvoicingModeName(InvoicingMode::kSingle)) {
    out->mode = InvoicingMode::kSingle;
  } else if (mode == InvoicingModeName(InvoicingMode::kPerCostCenter)) {
    out->mode = InvoicingMode::kPerCostCenter;
  } else {
    return Invalid("invoicing_mode_changed.mode must be SINGLE or PER_COST_CENTER");
  }
  return Status::Ok();
}

Status ValidateUsageRecorded(const v1::UsageRecorded& p, Event* out) {
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

Status ValidateSupportCharged(const v1::SupportCharged& p, Event* out) {
  ASSIGN_OR_RETURN(out->month, ParseMonth(p.month(), "support_charged.month"));
  ASSIGN_OR_RETURN(out->amount, ParseDecimal(p.amount(), "support_charged.amount"));
  RETURN_IF_ERROR(CheckText(p.description(), "support_charged.description"));
  if (p.has_cost_center_id()) {
    RETURN_IF_ERROR(CheckText(p.cost_center_id(), "support_charged.cost_center_id"));
  }
  return Status::Ok();
}

Status ValidateCreditApplied(const v1::CreditApplied& p, Event* out) {
  ASSIGN_OR_RETURN(out->month, ParseMonth(p.month(), "credit_applied.month"));
  ASSIGN_OR_RETURN(out->amount, ParseDecimal(p.amount(), "credit_applied.amount"));
  if (out->amount == 0) return Invalid("credit_applied.amount must be more than zero");
  RETURN_IF_ERROR(CheckText(p.description(), "credit_applied.description"));
  if (p.has_cost_center_id()) {
    RETURN_IF_ERROR(CheckText(p.cost_center_id(), "credit_applied.cost_center_id"));
  }
  return Status::Ok();
}

Status ValidateEventVoided(const v1::EventVoided& p) {
  RETURN_IF_ERROR(CheckId(p.voided_event_id(), "event_voided.voided_event_id", kEventIdBytesMax));
  return CheckText(p.reason(), "event_voided.reason");
}

Status ValidateBillingPeriodClosed(const v1::BillingPeriodClosed& p, Event* out) {
  ASSIGN_OR_RETURN(out->month, ParseMonth(p.month(), "billing_period_closed.month"));
  return Status::Ok();
}

Status ValidateBudgetSet(const v1::BudgetSet& p, Event* out) {
  RETURN_IF_ERROR(CheckText(p.budget_id(), "budget_set.budget_id"));
  ASSIGN_OR_RETURN(out->amount, ParseDecimal(p.amount(), "budget_set.amount"));
  if (out->amount == 0) return Invalid("budget_set.amount must be more than zero");
  if (p.has_cost_center_id()) {
    RETURN_IF_ERROR(CheckText(p.cost_center_id(), "budget_set.cost_center_id"));
  }
  // An empty list is "left out" (binary cannot say []), so the default.
  if (p.thresholds_size() > kBudgetThresholdsMax) {
    return Invalid("budget_set.thresholds holds more than " + std::to_string(kBudgetThresholdsMax) +
                   " thresholds");
  }
  std::set<int32_t> seen;
  for (int32_t percent : p.thresholds()) {
    if (percent < 1 || percent > kBudgetThresholdPercentMax) {
      return Invalid("budget_set.thresholds must be percents from 1 to " +
                     std::to_string(kBudgetThresholdPercentMax));
    }
    if (!seen.insert(percent).second) {
      return Invalid("budget_set.thresholds holds " + std::to_string(percent) + " twice");
    }
  }
  return Status::Ok();
}

Status ValidateBudgetRemoved(const v1::BudgetRemoved& p) {
  return CheckText(p.budget_id(), "budget_removed.budget_id");
}

Status ValidatePayload(const Envelope& e, Event* out) {
  switch (e.payload_case()) {
    case Payload::kOrganizationCreated:
      return ValidateOrganizationCreated(e.organization_created());
    case Payload::kCostCenterCreated:
      return ValidateCostCenterCreated(e.cost_center_created());
    case Payload::kWorkspaceCreated:
      return ValidateWorkspaceCreated(e.workspace_created());
    case Payload::kProviderRegistered:
      return ValidateProviderRegistered(e.provider_registered());
    case Payload::kProviderMoved:
      return ValidateProviderMoved(e.provider_moved());
    case Payload::kBillingAccountAssigned:
      return ValidateBillingAccountAssigned(e.billing_account_assigned());
    case Payload::kInvoicingModeChanged:
      return ValidateInvoicingModeChanged(e.invoicing_mode_changed(), out);
    case Payload::kUsageRecorded:
      return ValidateUsageRecorded(e.usage_recorded(), out);
    case Payload::kSupportCharged:
      return ValidateSupportCharged(e.support_charged(), out);
    case Payload::kCreditApplied:
      return ValidateCreditApplied(e.credit_applied(), out);
    case Payload::kEventVoided:
      return ValidateEventVoided(e.event_voided());
    case Payload::kBillingPeriodClosed:
      return ValidateBillingPeriodClosed(e.billing_period_closed(), out);
    case Payload::kBudgetSet:
      return ValidateBudgetSet(e.budget_set(), out);
    case Payload::kBudgetRemoved:
      return ValidateBudgetRemoved(e.budget_removed());
    case Payload::PAYLOAD_NOT_SET:
      break;
  }
  return Invalid("the event has no payload; exactly one is required");
}

// A SAX pass over one event's text, before it is parsed into a tree, that
// refuses what the tree would hide or what would make it costly: a key given
// twice in one object (nlohmann keeps the last, so `"amount":"1",
// "amount":"1000"` would book 1000 while a reader of the raw bytes sees 1),
// nesting past kJsonDepthMax and more than kEventJsonValuesMax values. It
// stops at the first, and every step is linear: nlohmann's callback parser,
// which can see duplicates too, rescans an object's siblings at each `}`, so
// a hostile event of many small objects took time quadratic in its size.
class EventShape final : public nlohmann::json_sax<Json> {
 public:
  enum class Problem { kNone, kNotJson, kTooDeep, kTooManyValues, kDuplicateKey };
  Problem problem() const { return problem_; }

  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return Value() && Open();
  }
  bool key(string_t& key) override {
    keys_.back().push_back(std::move(key));
    return true;
  }
  bool end_object() override {
    std::vector<std::string>& keys = keys_.back();
    std::sort(keys.begin(), keys.end());
    if (std::adjacent_find(keys.begin(), keys.end()) != keys.end())
      return Fail(Problem::kDuplicateKey);
    keys_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override { return Value() && Open(); }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return Fail(Problem::kNotJson);
  }

 private:
  bool Fail(Problem problem) {
    problem_ = problem;
    return false;
  }
  bool Value() { return ++values_ <= kEventJsonValuesMax || Fail(Problem::kTooManyValues); }
  bool Open() { return ++depth_ <= kJsonDepthMax || Fail(Problem::kTooDeep); }

  std::vector<std::vector<std::string>> keys_;  // of each open object
  int depth_ = 0;
  size_t values_ = 0;
  Problem problem_ = Problem::kNone;
};

EventShape::Problem CheckShape(std::string_view json) {
  EventShape shape;
  try {
    if (Json::sax_parse(json.begin(), json.end(), &shape) ||
        shape.problem() != EventShape::Problem::kNone) {
      return shape.problem();
    }
  } catch (const Json::exception&) {
    // parse_error reports every syntax error; nothing else should throw.
  }
  return EventShape::Problem::kNotJson;
}

// Keeps an id for the rejection's answer only when it could be one: a
// megabyte "event_id" is echoed nowhere.
void KeepName(const Json& tree, const char* key, size_t max_bytes, std::string* out) {
  if (auto it = tree.find(key); it != tree.end() && it->is_string()) {
    const auto& value = it->get_ref<const std::string&>();
    if (value.size() <= max_bytes) *out = value;
  }
}

}  // namespace

std::string_view CutUtf8(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t cut = max_bytes;
  // Back up over UTF-8 continuation bytes so the cut never splits a character.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

std::string QuoteInput(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  return std::string(CutUtf8(text, max_bytes)) + "...";
}

Result<Envelope> ParseJson(std::string_view json, Names* names) {
  // Live ingest spent half its CPU reading events three times over
  // (accept, SAX, tree); the fast path reads the usual event in one pass and
  // hands anything else to the slow path, which alone words rejections.
  if (json.find('\0') == std::string_view::npos) {
    if (auto envelope = internal::ParseJsonFast(json, names)) return std::move(*envelope);
  }
  return internal::ParseJsonSlow(json, names);
}

Result<Envelope> internal::ParseJsonSlow(std::string_view json, Names* names) {
  // nlohmann's parser takes a NUL byte for the end of the input, so
  // `{...}\0junk` would read as the object alone. JSON text can never hold a
  // raw NUL (control characters must be escaped even inside strings).
  if (json.find('\0') != std::string_view::npos) {
    return Invalid("the event is not valid JSON: it holds a NUL byte");
  }
  using Problem = EventShape::Problem;
  const Problem problem = CheckShape(json);
  switch (problem) {
    case Problem::kNotJson:
      return Invalid("the event is not valid JSON");
    case Problem::kTooDeep:
      return Invalid("the event is nested deeper than " + std::to_string(kJsonDepthMax) +
                     " levels");
    case Problem::kTooManyValues:
      return Invalid("the event holds more than " + std::to_string(kEventJsonValuesMax) +
                     " values");
    case Problem::kNone:
    case Problem::kDuplicateKey:
      break;  // parsed still, to name the event in the rejection
  }
  // The shape is bounded now, so the tree is small.
  Json tree = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (tree.is_discarded()) return Invalid("the event is not valid JSON");
  if (!tree.is_object()) return Invalid("an event must be a JSON object");
  if (names != nullptr) {
    KeepName(tree, "event_id", kEventIdBytesMax, &names->event_id);
    KeepName(tree, "org_id", kOrgIdBytesMax, &names->org_id);
  }
  if (problem == Problem::kDuplicateKey) return Invalid("the event has a key twice in one object");
  int payloads = 0;
  Envelope envelope;
  Status s = ReadObject(tree, &envelope, "", &payloads);
  if (!s.ok()) return s;
  if (payloads != 1) {
    return Invalid("an event needs exactly one payload, found " + std::to_string(payloads));
  }
  return envelope;
}

namespace {

// Walks one message's wire bytes against its schema, so that binary input is
// judged as JSON is: protobuf's own parser keeps unknown fields (stored in
// the hashed bytes, shown nowhere), keeps the last of a field sent twice and
// the last of two payloads. Recurses only into the schema's message fields,
// so its depth is the schema's.
Status CheckWire(std::string_view bytes, const Descriptor* descriptor, const std::string& path,
                 int* payloads) {
  google::protobuf::UnknownFieldSet wire;
  if (!wire.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Invalid("the message is neither a JSON event nor a binary protobuf Envelope");
  }
  std::vector<int> seen;
  for (int i = 0; i < wire.field_count(); ++i) {
    const google::protobuf::UnknownField& f = wire.field(i);
    const FieldDescriptor* field = descriptor->FindFieldByNumber(f.number());
    if (field == nullptr) {
      return Invalid("unknown field number " + std::to_string(f.number()) + " in " +
                     (path.empty() ? std::string("the envelope") : path));
    }
    const std::string name = path + field->name();
    if (!field->is_repeated()) {
      if (std::find(seen.begin(), seen.end(), f.number()) != seen.end()) {
        return Invalid("the message has field " + name + " twice");
      }
      seen.push_back(f.number());
    }
    if (field->real_containing_oneof() != nullptr) ++*payloads;  // not `optional`'s synthetic oneof
    const bool delimited = f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED;
    const bool wants_delimited = field->type() == FieldDescriptor::TYPE_STRING ||
                                 field->type() == FieldDescriptor::TYPE_BYTES ||
                                 field->type() == FieldDescriptor::TYPE_MESSAGE;
    // Protobuf would keep a field of the wrong wire type as an unknown field.
    if (wants_delimited && !delimited) return Invalid("field " + name + " has the wrong wire type");
    // Integers (budget_set.thresholds) come as varints, or packed in one
    // delimited field when repeated.
    const bool varint = f.type() == google::protobuf::UnknownField::TYPE_VARINT;
    if (field->type() == FieldDescriptor::TYPE_INT32 && !varint &&
        !(field->is_repeated() && delimited)) {
      return Invalid("field " + name + " has the wrong wire type");
    }
    if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      int nested = 0;
      Status s = CheckWire(f.length_delimited(), field->message_type(), name + ".", &nested);
      if (!s.ok()) return s;
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Envelope> ParseBinary(std::string_view bytes) {
  Envelope envelope;
  if (!envelope.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Invalid("the message is neither a JSON event nor a binary protobuf Envelope");
  }
  int payloads = 0;
  Status s = CheckWire(bytes, Envelope::descriptor(), "", &payloads);
  if (!s.ok()) return s;
  if (payloads != 1) {
    return Invalid("an event needs exactly one payload, found " + std::to_string(payloads));
  }
  return envelope;
}

Result<Envelope> ParseAny(std::string_view bytes, Names* names) {
  size_t i = 0;
  while (i < bytes.size() && JsonSpace(bytes[i])) ++i;
  if (i < bytes.size() && bytes[i] == '{') return ParseJson(bytes, names);
  auto envelope = ParseBinary(bytes);
  if (envelope.ok() && names != nullptr) {
    if (envelope->event_id().size() <= kEventIdBytesMax) names->event_id = envelope->event_id();
    if (envelope->org_id().size() <= kOrgIdBytesMax) names->org_id = envelope->org_id();
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

std::string_view InvoicingModeName(InvoicingMode mode) {
  return mode == InvoicingMode::kPerCostCenter ? "PER_COST_CENTER" : "SINGLE";
}

std::string_view PayloadName(Payload payload) {
  const FieldDescriptor* field =
      Envelope::descriptor()->FindFieldByNumber(static_cast<int>(payload));
  if (field == nullptr) return "none";
  return field->name();
}

Result<std::vector<RawEvent>> SplitBody(std::string_view body, BodyFormat format) {
  // Found by fuzzing: nlohmann's parser takes a NUL byte for the end of its
  // input, so `[{...}]\0junk` read as the array alone and the junk was
  // silently dropped. JSON text never holds a raw NUL: such a body or line
  // is not JSON.
  auto has_nul = [](std::string_view text) { return text.find('\0') != std::string_view::npos; };
  // accept() checks the whole body without building a tree (its parser keeps
  // an explicit stack, so no nesting depth can exhaust ours); the elements
  // are then cut out as sent and judged one by one.
  if (format == BodyFormat::kJson && !has_nul(body) && Json::accept(body.begin(), body.end())) {
    size_t first = 0;
    while (first < body.size() && JsonSpace(body[first])) ++first;
    if (first < body.size() && body[first] == '[') return ArrayElements(body);
    return std::vector<RawEvent>{RawEvent{std::string(body)}};
  }
  // Not one JSON document; producers often send NDJSON as application/json,
  // so accept it when every line reads as JSON.
  std::vector<RawEvent> out;
  size_t parsed_lines = 0;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view line = body.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool blank = line.find_first_not_of(" \t") == std::string_view::npos;
    if (!blank) {
      if (out.size() == kBodyEventsMax) return TooManyEvents();
      // NDJSON needs one line that reads as JSON (each is judged later on
      // its own), so after the first the lines are only cut, not parsed.
      const bool check = format == BodyFormat::kJson || parsed_lines == 0;
      if (check && !has_nul(line) && Json::accept(line.begin(), line.end())) ++parsed_lines;
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
