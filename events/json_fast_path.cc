// ParseJson's fast path: one simdjson pass for the events producers send
// every day, with every unusual input left to the slow path (event.cc) so
// that there is one place that decides rejections and words their messages.
#include <simdjson.h>

#include <cstdint>
#include <limits>

#include "events/json_paths.h"

namespace billing::events::internal {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using simdjson::dom::element;

// FindFieldByName wants a std::string, which costs an allocation for long
// keys; comparing in place over a message's dozen fields costs none.
const FieldDescriptor* FindField(const Descriptor* descriptor, std::string_view key) {
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->name() == key) return field;
  }
  return nullptr;
}

// Walks a parsed document as the slow path's ReadObject walks nlohmann's
// tree, but answers only "same envelope as the slow path" (true) or "let
// the slow path decide" (false). So it accepts only what the slow path
// provably accepts: schema keys, each once; strings; null where a field has
// presence; thresholds as int32 integers; and the shape limits of
// EventShape (every value counted, objects and arrays included, keys not).
class FastReader {
 public:
  // `check_utf8`: the text has `\u` escapes. simdjson checks the UTF-8 of
  // the raw text, and escapes are where decoded strings could still go
  // wrong (a lone surrogate, which nlohmann refuses). simdjson 3.0.1 refuses
  // those itself (the differential test passes without this check), but its
  // documentation promises no such thing, so the decoded strings are
  // checked again; real events rarely carry escapes, so this costs nothing.
  explicit FastReader(bool check_utf8) : check_utf8_(check_utf8) {}

  // The schema nests three deep at most, so the depth check can only fire
  // if the schema grows; it keeps EventShape's limit true here regardless.
  bool ReadObject(simdjson::dom::object object, Message* message, int depth, int* payloads) {
    if (!Count() || depth > kJsonDepthMax) return false;
    const Descriptor* descriptor = message->GetDescriptor();
    // The schema's messages have fewer than 64 fields, so a bit per field
    // finds a key given twice (nlohmann would keep the last) without sorting.
    uint64_t seen = 0;
    for (auto [key, value] : object) {
      const FieldDescriptor* field = FindField(descriptor, key);
      if (field == nullptr || field->index() >= 64) return false;
      const uint64_t bit = uint64_t{1} << field->index();
      if ((seen & bit) != 0) return false;
      seen |= bit;
      if (!ReadMember(value, message, field, depth, payloads)) return false;
    }
    return true;
  }

 private:
  // One key's value, in the slow path's order of checks.
  bool ReadMember(element value, Message* message, const FieldDescriptor* field, int depth,
                  int* payloads) {
    const google::protobuf::Reflection* reflection = message->GetReflection();
    if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      simdjson::dom::object nested;
      if (value.get_object().get(nested) != simdjson::SUCCESS) return false;
      ++*payloads;
      int nested_payloads = 0;  // the slow path counts payloads of the envelope only
      return ReadObject(nested, reflection->MutableMessage(message, field), depth + 1,
                        &nested_payloads);
    }
    if (value.is_null()) return field->has_presence() && Count();  // optional field left out
    if (field->is_repeated()) return ReadIntegers(value, message, field, depth + 1);
    std::string_view text;
    if (value.get_string().get(text) != simdjson::SUCCESS) return false;
    if (check_utf8_ && !simdjson::validate_utf8(text.data(), text.size())) return false;
    reflection->SetString(message, field, std::string(text));
    return Count();
  }

  // budget_set.thresholds: a non-empty array of integers that fit int32.
  // simdjson types a non-negative integer as INT64 whenever it fits, so a
  // UINT64 is past int32 anyway; DOUBLE (1e2, 50.0) is left to the slow path.
  bool ReadIntegers(element value, Message* message, const FieldDescriptor* field, int depth) {
    simdjson::dom::array array;
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_INT32 ||
        value.get_array().get(array) != simdjson::SUCCESS || array.size() == 0) {
      return false;
    }
    if (!Count() || depth > kJsonDepthMax) return false;
    const google::protobuf::Reflection* reflection = message->GetReflection();
    for (element item : array) {
      int64_t number = 0;
      if (item.type() != simdjson::dom::element_type::INT64 ||
          item.get_int64().get(number) != simdjson::SUCCESS) {
        return false;
      }
      if (number < std::numeric_limits<int32_t>::min() ||
          number > std::numeric_limits<int32_t>::max() || !Count()) {
        return false;
      }
      reflection->AddInt32(message, field, static_cast<int32_t>(number));
    }
    return true;
  }

  bool Count() { return ++values_ <= kEventJsonValuesMax; }

  bool check_utf8_;
  size_t values_ = 0;
};

// The slow path's KeepName: the id when the key holds a string short enough
// to be one.
void KeepName(simdjson::dom::object object, std::string_view key, size_t max_bytes,
              std::string* out) {
  std::string_view value;
  if (object.at_key(key).get_string().get(value) == simdjson::SUCCESS &&
      value.size() <= max_bytes) {
    *out = std::string(value);
  }
}

}  // namespace

std::optional<Envelope> ParseJsonFast(std::string_view json, Names* names) {
  if (json.size() > kFastJsonBytesMax) return std::nullopt;
  // A parser keeps its buffers from event to event, which is where its
  // speed comes from; ParseJson runs on every I/O thread at once, so each
  // thread has its own. Its capacity is bounded so no thread keeps more
  // than a few hundred KiB for it.
  thread_local simdjson::dom::parser parser(kFastJsonBytesMax);
  simdjson::dom::object object;
  if (parser.parse(json.data(), json.size()).get_object().get(object) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  FastReader reader(json.find("\\u") != std::string_view::npos);
  Envelope envelope;
  int payloads = 0;
  if (!reader.ReadObject(object, &envelope, 1, &payloads) || payloads != 1) return std::nullopt;
  if (names != nullptr) {
    KeepName(object, "event_id", kEventIdBytesMax, &names->event_id);
    KeepName(object, "org_id", kOrgIdBytesMax, &names->org_id);
  }
  return envelope;
}

}  // namespace billing::events::internal
