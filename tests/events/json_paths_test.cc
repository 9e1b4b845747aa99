// ParseJson's fast path (simdjson) never changes an answer: on the example
// events, generated events with faults and seeded mutations of both, it
// either gives the slow path's exact envelope and names or declines.
#include "events/json_paths.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ops/generator.h"
#include "tests/testing/files.h"

namespace billing::events {
namespace {

using Json = nlohmann::ordered_json;

// What one path answered, in comparable form.
struct Answer {
  bool ok = false;
  std::string message;  // the rejection's, when !ok
  std::string bytes;    // CanonicalBytes, when ok
  Names names;
};

// Names start as a marker so "left alone" differs from "set to empty".
Names Unset() { return Names{"<unset>", "<unset>"}; }

Answer Slow(std::string_view json) {
  Answer a;
  a.names = Unset();
  auto r = internal::ParseJsonSlow(json, &a.names);
  a.ok = r.ok();
  if (r.ok()) a.bytes = CanonicalBytes(*r);
  if (!r.ok()) a.message = r.status().ToString();
  return a;
}

// Counts of what the fast path did, so a test can demand it was exercised.
struct Tally {
  size_t handled = 0;
  size_t declined = 0;
};

// The property: the fast path declines (touching no names) or answers as
// the slow path does; and ParseJson as a whole answers as the slow path.
void ExpectSameAnswer(std::string_view json, Tally* tally) {
  SCOPED_TRACE(std::string(json.substr(0, 400)));
  const Answer slow = Slow(json);
  if (json.find('\0') == std::string_view::npos) {
    Names names = Unset();
    std::optional<Envelope> fast = internal::ParseJsonFast(json, &names);
    if (fast.has_value()) {
      ++tally->handled;
      EXPECT_TRUE(slow.ok) << "the fast path accepted what the slow path rejects: " << slow.message;
      EXPECT_EQ(CanonicalBytes(*fast), slow.bytes);
      EXPECT_EQ(names.event_id, slow.names.event_id);
      EXPECT_EQ(names.org_id, slow.names.org_id);
    } else {
      ++tally->declined;
      EXPECT_EQ(names.event_id, "<unset>");
      EXPECT_EQ(names.org_id, "<unset>");
    }
  }
  Names names = Unset();
  auto both = ParseJson(json, &names);
  ASSERT_EQ(both.ok(), slow.ok) << (both.ok() ? slow.message : both.status().ToString());
  if (both.ok()) {
    EXPECT_EQ(CanonicalBytes(*both), slow.bytes);
  } else {
    EXPECT_EQ(both.status().ToString(), slow.message);
  }
  EXPECT_EQ(names.event_id, slow.names.event_id);
  EXPECT_EQ(names.org_id, slow.names.org_id);
}

// Every line of every *.ndjson under the examples directory.
std::vector<std::string> ExampleLines() {
  std::vector<std::string> lines;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(testing::ExamplesDir())) {
    if (entry.path().extension() != ".ndjson") continue;
    std::istringstream in(testing::ReadFile(entry.path().string()));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) lines.push_back(line);
    }
  }
  return lines;
}

std::vector<std::string> GeneratedLines() {
  ops::GeneratorOptions options;
  options.seed = 18;
  options.orgs = 3;
  options.months = 3;
  options.usage_events = 600;
  options.faults = true;
  return ops::GenerateLines(options);
}

// Raw JSON text that replaces a string value, each a way strings go wrong
// (or right) that the two parsers must judge alike.
const std::vector<std::string>& RawStrings() {
  static const std::vector<std::string> raws = {
      R"("\ud800")",
      R"("a\ud800b")",
      R"("\udc00")",
      R"("\ud800\u0041")",
      R"("\ud83d\ude00")",
      R"("\u0000")",
      R"("\u00e9")",
      R"("\u12")",
      R"("\x")",
      R"("a\/b\\c\"d\n")",
      "\"\xff\"",
      "\"\xc0\x80\"",
      "\"\xed\xa0\x80\"",
      "\"\xe2\x82\"",
      "\"\xf4\x90\x80\x80\"",
      "\"caf\xc3\xa9\"",
      "\"tab\there\"",
      "\"\x01\"",
      "\"\x7f\"",
      R"("")",
      "\"" + std::string(200, 'x') + "\"",
  };
  return raws;
}

// Raw JSON values that replace any value.
const std::vector<std::string>& RawValues() {
  static const std::vector<std::string> raws = {
      "null",
      "true",
      "12",
      "-0",
      "1e2",
      "1.5",
      "[]",
      "{}",
      "[\"a\"]",
      "{\"a\":\"b\"}",
      "[[[[[[[[[[1]]]]]]]]]]",
      "99999999999999999999999",
      "\"12\"",
      "-",
      "01",
  };
  return raws;
}

// Raw JSON arrays for budget_set.thresholds.
const std::vector<std::string>& RawThresholds() {
  static const std::vector<std::string> raws = {
      "[50,80,100]",
      "[]",
      "[-0]",
      "[1e2]",
      "[50.0]",
      "[2147483647]",
      "[2147483648]",
      "[-2147483648]",
      "[-2147483649]",
      "[18446744073709551615]",
      "[18446744073709551616]",
      "[9223372036854775808]",
      "[\"50\"]",
      "[null]",
      "[[50]]",
      "null",
      "50",
  };
  return raws;
}

const char* const kPayloads[] = {"usage_recorded", "budget_set", "credit_applied",
                                 "organization_created", "nonsense"};

// One seeded mutation of an event. Changes are made on the tree with a
// placeholder value, then the placeholder is replaced by raw text, so the
// text can be what no tree holds (bad escapes, bad UTF-8, a key twice).
class Mutator {
 public:
  explicit Mutator(uint64_t seed) : random_(seed) {}

  std::string Mutate(const std::string& line) {
    Json tree = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!tree.is_object() || tree.empty()) return ByteMutation(line);
    Json* target = &tree;
    // Half the time change the payload's object rather than the envelope.
    for (auto& [key, value] : tree.items()) {
      if (value.is_object() && !value.empty() && Pick(2) == 0) target = &value;
    }
    std::vector<std::string> keys;
    for (auto& [key, value] : target->items()) keys.push_back(key);
    const std::string key = keys[Pick(keys.size())];
    std::string raw;
    switch (Pick(10)) {
      case 0:
        target->erase(key);
        break;
      case 1:
        raw = Any(RawStrings());
        break;
      case 2:
        raw = Any(RawValues());
        break;
      case 3:  // a key twice, with the same or another value
        return InsertAfterOpening(tree.dump(), *target == tree ? "" : key,
                                  "\"" + key + "\":" + (Pick(2) ? (*target)[key].dump() : "\"1\""));
      case 4:
        (*target)["unknown_" + std::to_string(Pick(3))] = "x";
        break;
      case 5:
        tree[kPayloads[Pick(std::size(kPayloads))]] = Json::object();
        break;
      case 6:
        tree["budget_set"] = {{"budget_id", "b1"}, {"amount", "10"}};
        tree.erase("usage_recorded");
        raw = Any(RawThresholds());
        target = &tree["budget_set"];
        (*target)["thresholds"] = kPlaceholder;
        return Replace(tree.dump(), raw);
      case 7:
        raw = Nest(Pick(12));
        break;
      case 8:
        (*target)[key] = std::string(Pick(2) ? 129 : 65, 'i');
        break;
      default:
        return ByteMutation(tree.dump());
    }
    if (raw.empty()) return tree.dump();
    (*target)[key] = kPlaceholder;
    return Replace(tree.dump(), raw);
  }

 private:
  static constexpr const char* kPlaceholder = "@@placeholder@@";

  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(random_); }
  const std::string& Any(const std::vector<std::string>& options) {
    return options[Pick(options.size())];
  }

  static std::string Replace(std::string text, const std::string& raw) {
    const std::string quoted = std::string("\"") + kPlaceholder + "\"";
    if (auto at = text.find(quoted); at != std::string::npos) text.replace(at, quoted.size(), raw);
    return text;
  }

  // `member,` right after the `{` of the envelope (`inside` empty) or of
  // the object under key `inside`.
  static std::string InsertAfterOpening(std::string text, const std::string& inside,
                                        const std::string& member) {
    size_t at = inside.empty() ? text.find('{') : text.find("\"" + inside + "\":{");
    if (at == std::string::npos) return text;
    at = text.find('{', at) + 1;
    text.insert(at, member + (text[at] == '}' ? "" : ","));
    return text;
  }

  std::string Nest(size_t depth) {
    const bool arrays = Pick(2) == 0;
    std::string open = arrays ? "[" : "{\"a\":";
    std::string close = arrays ? "]" : "}";
    std::string out;
    for (size_t i = 0; i < depth; ++i) out += open;
    out += "\"x\"";
    for (size_t i = 0; i < depth; ++i) out += close;
    return out;
  }

  // Whole-text damage: a byte changed, cut, or text around the event.
  std::string ByteMutation(std::string text) {
    static const std::string kAround[] = {" ", "\r\n", "\xef\xbb\xbf", "x", "{}", ",", "\t"};
    switch (Pick(4)) {
      case 0:
        if (!text.empty()) text[Pick(text.size())] = static_cast<char>(Pick(256));
        return text;
      case 1:
        return text.substr(0, Pick(text.size() + 1));
      case 2:
        return kAround[Pick(std::size(kAround))] + text;
      default:
        return text + kAround[Pick(std::size(kAround))];
    }
  }

  std::mt19937_64 random_;
};

TEST(EventJsonPaths, FastPathReadsEveryValidExampleEventAsTheSlowPathDoes) {
  Tally tally;
  const std::vector<std::string> lines = ExampleLines();
  ASSERT_GT(lines.size(), 50u);
  for (const std::string& line : lines) {
    ExpectSameAnswer(line, &tally);
    // The examples are the everyday events the fast path exists for.
    if (internal::ParseJsonSlow(line, nullptr).ok()) {
      EXPECT_TRUE(internal::ParseJsonFast(line, nullptr).has_value()) << line;
    }
  }
  EXPECT_GT(tally.handled, 50u);
}

TEST(EventJsonPaths, FastPathAgreesWithSlowPathOnGeneratedEventsWithFaults) {
  Tally tally;
  for (const std::string& line : GeneratedLines()) ExpectSameAnswer(line, &tally);
  // Its faults are events that fail validation, not reading: all are read.
  EXPECT_GT(tally.handled, 500u);
}

TEST(EventJsonPaths, FastPathAgreesWithSlowPathOnMutatedEvents) {
  const uint64_t seed = 20260118;
  std::cout << "mutation seed " << seed << "\n";
  Mutator mutator(seed);
  std::vector<std::string> bases = ExampleLines();
  for (const std::string& line : GeneratedLines()) bases.push_back(line);
  Tally tally;
  for (int round = 0; round < 20; ++round) {
    for (const std::string& base : bases) {
      std::string mutated = mutator.Mutate(base);
      // A second mutation on a third of them, so faults also come in pairs.
      if (round % 3 == 0) mutated = mutator.Mutate(mutated);
      ExpectSameAnswer(mutated, &tally);
      if (::testing::Test::HasFailure()) return;  // one input is enough to debug
    }
  }
  std::cout << "fast path read " << tally.handled << ", declined " << tally.declined << "\n";
  EXPECT_GT(tally.handled, 1000u);
  EXPECT_GT(tally.declined, 1000u);
}

// `[1,1,...]` of `n` integers.
std::string IntegerList(int n) {
  std::string out = "[";
  for (int i = 0; i < n; ++i) out += i == 0 ? "1" : ",1";
  return out + "]";
}

// The cases the brief of issue 18 names, each written out.
TEST(EventJsonPaths, FastPathAgreesWithSlowPathOnHandPickedEdgeCases) {
  const std::string head =
      R"({"event_id":"a:1","org_id":"a","occurred_at":"2026-01-08T12:56:36Z",)";
  const std::string budget = R"("budget_set":{"budget_id":"b","amount":"10","thresholds":)";
  const std::vector<std::string> cases = {
      head + R"("budget_set":{"budget_id":"b","amount":"10"}})",
      head + budget + "[50,80]}}",
      head + budget + "[-0]}}",
      head + budget + "[1e2]}}",
      head + budget + "[2147483648]}}",
      head + budget + IntegerList(250) + "}}",  // within kEventJsonValuesMax
      head + budget + IntegerList(260) + "}}",  // past it
      head + R"("source":null,"budget_removed":{"budget_id":"b"}})",
      head + R"("source":"","budget_removed":{"budget_id":"b"}})",
      head + R"("budget_removed":{"budget_id":"b"},"budget_removed":{"budget_id":"b"}})",
      head + R"("budget_removed":{"budget_id":"b"},"event_voided":{}})",
      head + R"("budget_removed":{"budget_id":"b","budget_id":"c"}})",
      head + R"("budget_removed":null})",
      head + R"("event_id":"a:1","budget_removed":{"budget_id":"b"}})",
      R"({"org_id":"a","budget_removed":{"budget_id":"b"}})",
      R"({"event_id":null,"budget_removed":{"budget_id":"b"}})",
      R"({"eventId":"a","budget_removed":{"budget_id":"b"}})",
      R"({"budget_removed":{"budget_id":"\ud800"}})",
      R"({"budget_removed":{"budget_id":"\u0000"}})",
      "\xef\xbb\xbf"
      R"({"budget_removed":{"budget_id":"b"}})",
      R"( {"budget_removed":{"budget_id":"b"}} )",
      R"({"budget_removed":{"budget_id":"b"}}{})",
      R"([{"budget_removed":{"budget_id":"b"}}])",
      R"("text")",
      "",
      "{}",
  };
  Tally tally;
  for (const std::string& json : cases) ExpectSameAnswer(json, &tally);
  EXPECT_GT(tally.handled, 3u);
}

// NDJSON needs one line that is JSON; a JSON body read line by line needs
// every line to be.
TEST(EventJsonPaths, SplitBodyChecksLinesAsItsFormatNeeds) {
  const std::string good = R"({"a":"b"})";
  auto nd = SplitBody(good + "\n{bad\n" + good, BodyFormat::kNdjson);
  ASSERT_TRUE(nd.ok()) << nd.status().ToString();
  EXPECT_EQ(nd->size(), 3u);
  auto bad_first = SplitBody("{bad\n" + good, BodyFormat::kNdjson);
  ASSERT_TRUE(bad_first.ok()) << bad_first.status().ToString();
  EXPECT_EQ(bad_first->size(), 2u);
  EXPECT_FALSE(SplitBody("{bad\n{worse", BodyFormat::kNdjson).ok());
  auto json = SplitBody(good + "\n" + good, BodyFormat::kJson);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(json->size(), 2u);
  EXPECT_FALSE(SplitBody(good + "\n{bad", BodyFormat::kJson).ok());
}

}  // namespace
}  // namespace billing::events
