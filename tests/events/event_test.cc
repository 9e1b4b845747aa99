// Event parsing and stateless validation: JSON <-> protobuf round trips, the
// binary form, and every SPEC rule with the code it must produce.
#include "events/event.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace billing::events {
namespace {

using Json = nlohmann::json;

Json Usage() {
  return Json::parse(
      R"({"event_id":"acme:use:1","org_id":"acme","occurred_at":"2026-01-08T12:56:36Z",
    "source":"aws-cur","usage_recorded":{"provider_id":"aws-prod-01","service":"AmazonEC2",
    "sku":"EBS:VolumeUsage.gp3","resource_id":"i-0a09","region":"eu-west-1","quantity":"1530",
    "unit":"GB-Mo","amount":"10.682700000","usage_start":"2026-01-08T11:56:36Z",
    "usage_end":"2026-01-08T12:56:36Z"}})");
}

// Parses and validates; returns the code (kOk on acceptance).
Code Check(const Json& j) {
  auto env = ParseJson(j.dump());
  if (!env.ok()) return env.status().code();
  auto ev = Validate(*env);
  return ev.ok() ? Code::kOk : ev.status().code();
}

TEST(Event, JsonRoundTripsThroughProtobuf) {
  Json in = Usage();
  auto env = ParseJson(in.dump());
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  EXPECT_EQ(Json::parse(ToJson(*env)), in);
  auto ev = Validate(*env);
  ASSERT_TRUE(ev.ok()) << ev.status().ToString();
  EXPECT_EQ(ev->amount, 10'682'700'000);
  EXPECT_EQ(ev->quantity, 1530'000'000'000);
  EXPECT_EQ(FormatMonth(ev->month), "2026-01");
}

TEST(Event, BinaryRoundTripsAndEqualContentHasEqualBytes) {
  Json a = Usage();
  // Same JSON value, other key order and spacing.
  std::string reordered =
      R"({ "org_id":"acme", "usage_recorded":{"usage_end":"2026-01-08T12:56:36Z",
    "usage_start":"2026-01-08T11:56:36Z","amount":"10.682700000","unit":"GB-Mo","quantity":"1530",
    "region":"eu-west-1","resource_id":"i-0a09","sku":"EBS:VolumeUsage.gp3","service":"AmazonEC2",
    "provider_id":"aws-prod-01"}, "source":"aws-cur", "occurred_at":"2026-01-08T12:56:36Z",
    "event_id":"acme:use:1" })";
  auto x = ParseJson(a.dump());
  auto y = ParseJson(reordered);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ(CanonicalBytes(*x), CanonicalBytes(*y));
  auto back = ParseAny(CanonicalBytes(*x));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(CanonicalBytes(*back), CanonicalBytes(*x));
  // An amount written differently is different content (JSON-value equality).
  Json b = a;
  b["usage_recorded"]["amount"] = "10.6827";
  auto z = ParseJson(b.dump());
  ASSERT_TRUE(z.ok());
  EXPECT_NE(CanonicalBytes(*z), CanonicalBytes(*x));
  // An absent source differs from an empty one.
  Json c = a, d = a;
  c.erase("source");
  d["source"] = "";
  EXPECT_NE(CanonicalBytes(*ParseJson(c.dump())), CanonicalBytes(*ParseJson(d.dump())));
}

TEST(Event, AcceptsEveryPayloadOfTheSpec) {
  const char* events[] = {
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","organization_created":{"name":"Acme","currency":"USD","billing_account":"A-1"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","cost_center_created":{"cost_center_id":"cc","name":"Eng"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","workspace_created":{"workspace_id":"w","cost_center_id":"cc","name":"W"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","provider_registered":{"provider_id":"p","workspace_id":"w","name":"P","kind":"aws"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","provider_moved":{"provider_id":"p","workspace_id":"w"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","billing_account_assigned":{"cost_center_id":"cc","billing_account":"B"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","invoicing_mode_changed":{"mode":"PER_COST_CENTER"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","support_charged":{"month":"2025-12","amount":"185.355","description":"S"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","support_charged":{"month":"2025-12","amount":"0","description":"S","cost_center_id":"cc"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","credit_applied":{"month":"2025-12","amount":"1","description":"C"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","event_voided":{"voided_event_id":"x:y","reason":"r"}})",
      R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z","billing_period_closed":{"month":"2025-11"}})",
  };
  for (const char* e : events) EXPECT_EQ(Check(Json::parse(e)), Code::kOk) << e;
}

struct Case {
  const char* what;
  std::function<void(Json&)> mutate;
};

TEST(Event, EveryStatelessRuleRejectsWithInvalidArgument) {
  std::vector<Case> cases = {
      {"missing event_id", [](Json& j) { j.erase("event_id"); }},
      {"empty event_id", [](Json& j) { j["event_id"] = ""; }},
      {"event_id charset", [](Json& j) { j["event_id"] = "a b"; }},
      {"event_id slash", [](Json& j) { j["event_id"] = "a/b"; }},
      {"event_id too long", [](Json& j) { j["event_id"] = std::string(129, 'a'); }},
      {"org_id too long", [](Json& j) { j["org_id"] = std::string(65, 'a'); }},
      {"org_id charset", [](Json& j) { j["org_id"] = "ac%me"; }},
      {"missing occurred_at", [](Json& j) { j.erase("occurred_at"); }},
      {"occurred_at with offset", [](Json& j) { j["occurred_at"] = "2026-01-08T12:56:36+01:00"; }},
      {"occurred_at not a time", [](Json& j) { j["occurred_at"] = "yesterday"; }},
      {"unknown top-level key", [](Json& j) { j["extra"] = "x"; }},
      {"camelCase alias",
       [](Json& j) {
         j["eventId"] = j["event_id"];
         j.erase("event_id");
       }},
      {"unknown payload key", [](Json& j) { j["usage_recorded"]["color"] = "red"; }},
      {"no payload", [](Json& j) { j.erase("usage_recorded"); }},
      {"two payloads",
       [](Json& j) {
         j["billing_period_closed"] = Json{{"month", "2026-01"}};
       }},
      {"amount as JSON number", [](Json& j) { j["usage_recorded"]["amount"] = 12.5; }},
      {"quantity as JSON number", [](Json& j) { j["usage_recorded"]["quantity"] = 3; }},
      {"negative amount", [](Json& j) { j["usage_recorded"]["amount"] = "-1"; }},
      {"amount with exponent", [](Json& j) { j["usage_recorded"]["amount"] = "1e3"; }},
      {"amount .5", [](Json& j) { j["usage_recorded"]["amount"] = ".5"; }},
      {"amount 1.", [](Json& j) { j["usage_recorded"]["amount"] = "1."; }},
      {"amount with 10 decimals", [](Json& j) { j["usage_recorded"]["amount"] = "1.0000000001"; }},
      {"amount overflows", [](Json& j) { j["usage_recorded"]["amount"] = "99999999999"; }},
      {"missing amount", [](Json& j) { j["usage_recorded"].erase("amount"); }},
      {"missing provider", [](Json& j) { j["usage_recorded"].erase("provider_id"); }},
      {"usage_end before usage_start",
       [](Json& j) { j["usage_recorded"]["usage_end"] = "2026-01-08T10:00:00Z"; }},
      {"bad currency", [](Json& j) { j["usage_recorded"]["currency"] = "usd"; }},
      {"payload not an object", [](Json& j) { j["usage_recorded"] = "x"; }},
      {"string field as number", [](Json& j) { j["source"] = 5; }},
      {"control character", [](Json& j) { j["usage_recorded"]["service"] = "a\nb"; }},
  };
  for (const Case& c : cases) {
    Json j = Usage();
    c.mutate(j);
    EXPECT_EQ(Check(j), Code::kInvalidArgument) << c.what;
  }
}

TEST(Event, PayloadRulesRejectWithInvalidArgument) {
  auto with = [](const char* payload) {
    return Json::parse(
        std::string(R"({"event_id":"a","org_id":"o","occurred_at":"2025-11-01T00:00:07Z",)") +
        payload + "}");
  };
  for (const char* p : {
           R"("organization_created":{"name":"A","currency":"DOLLARS","billing_account":"B"})",
           R"("organization_created":{"name":"A","currency":"USD"})",
           R"("invoicing_mode_changed":{"mode":"per_cost_center"})",
           R"("support_charged":{"month":"2025-13","amount":"1","description":"S"})",
           R"("support_charged":{"month":"2025-12","amount":"1"})",
           R"("credit_applied":{"month":"2025-12","amount":"0","description":"C"})",
           R"("credit_applied":{"month":"2025-12","amount":"-5","description":"C"})",
           R"("event_voided":{"voided_event_id":"a b","reason":"r"})",
           R"("billing_period_closed":{"month":"2025/11"})",
       }) {
    EXPECT_EQ(Check(with(p)), Code::kInvalidArgument) << p;
  }
}

TEST(Event, NotJsonIsInvalidArgumentAndNamesAreKept) {
  EXPECT_EQ(ParseJson("{not json").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseJson("[1,2]").status().code(), Code::kInvalidArgument);
  Names names;
  Json j = Usage();
  j["usage_recorded"]["amount"] = 12.5;
  auto r = ParseJson(j.dump(), &names);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(names.event_id, "acme:use:1");
  EXPECT_EQ(names.org_id, "acme");
  EXPECT_NE(r.status().message().find("decimal string"), std::string::npos);
}

TEST(Event, SplitsBodiesOfEveryShape) {
  std::string one = Usage().dump();
  auto single = SplitBody(one, BodyFormat::kJson);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->size(), 1u);
  auto array = SplitBody("[" + one + "," + one + "]", BodyFormat::kJson);
  ASSERT_TRUE(array.ok());
  EXPECT_EQ(array->size(), 2u);
  auto nd = SplitBody(one + "\n\n" + one + "\r\n{bad\n", BodyFormat::kNdjson);
  ASSERT_TRUE(nd.ok());
  EXPECT_EQ(nd->size(), 3u);  // the bad line is kept and rejected on its own later
  EXPECT_FALSE(SplitBody("not json at all", BodyFormat::kJson).ok());
  EXPECT_FALSE(SplitBody("", BodyFormat::kNdjson).ok());
  EXPECT_FALSE(SplitBody("garbage\nmore garbage", BodyFormat::kNdjson).ok());
}

// Found by fuzzing (tests/fuzz/corpus/event_json/crash-nul-after-array): a NUL
// byte ended the JSON parser's input, so whatever followed it was dropped
// unseen and the body was accepted.
TEST(Event, ANulByteIsNeverJson) {
  std::string one = Usage().dump();
  const std::string nul(1, '\0');
  EXPECT_FALSE(SplitBody("[" + one + "]" + nul + "junk", BodyFormat::kJson).ok());
  EXPECT_FALSE(SplitBody(one + nul + "junk", BodyFormat::kJson).ok());
  auto r = ParseJson(one + nul + "}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  // In NDJSON the line with the NUL is one bad event; the others still count.
  auto nd = SplitBody(one + "\n" + one + nul + "\n", BodyFormat::kNdjson);
  ASSERT_TRUE(nd.ok());
  ASSERT_EQ(nd->size(), 2u);
  EXPECT_TRUE(ParseJson(nd->at(0).bytes).ok());
  EXPECT_FALSE(ParseJson(nd->at(1).bytes).ok());
}

// Issue 13: a body nested 100 000 deep killed the process (a recursive dump).
// Now the body splits into one element, which is refused on its own.
TEST(Event, DeeplyNestedJsonIsRejectedNotFatal) {
  const size_t n = 100000;
  std::string deep = std::string(n + 1, '[') + std::string(n + 1, ']');
  auto body = SplitBody(deep, BodyFormat::kJson);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  ASSERT_EQ(body->size(), 1u);
  auto r = ParseJson(body->at(0).bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("nested deeper"), std::string::npos) << r.status().message();
  // Objects nest the same way, and strings holding brackets are not nesting.
  std::string objects;
  for (size_t i = 0; i < n; ++i) objects += "{\"a\":";
  objects += "1" + std::string(n, '}');
  EXPECT_FALSE(ParseJson(objects).ok());
  Json bracketed = Usage();
  bracketed["usage_recorded"]["sku"] = std::string(50, '[') + "{{{";
  EXPECT_TRUE(ParseJson(bracketed.dump()).ok());
}

TEST(Event, ArrayElementsKeepTheBytesTheyWereSentAs) {
  std::string a = R"({ "event_id" : "x:1",  "s": "a,]\"}" })";
  std::string b = R"([1, {"k": [2, 3]}])";
  auto body = SplitBody("[ " + a + " ,\n\t" + b + " , \"str,]\" ,7 ]", BodyFormat::kJson);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  ASSERT_EQ(body->size(), 4u);
  EXPECT_EQ(body->at(0).bytes, a);
  EXPECT_EQ(body->at(1).bytes, b);
  EXPECT_EQ(body->at(2).bytes, "\"str,]\"");
  EXPECT_EQ(body->at(3).bytes, "7");
  auto empty = SplitBody(" [ ] ", BodyFormat::kJson);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

// Issue 13: 1.4 M `{}` elements in a 4 MB body took 2 GB; a body has a cap.
TEST(Event, ABodyOfTooManyEventsIsTooLarge) {
  std::string body = "[";
  for (size_t i = 0; i <= kBodyEventsMax; ++i) body += i == 0 ? "{}" : ",{}";
  body += "]";
  auto r = SplitBody(body, BodyFormat::kJson);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTooLarge);
  std::string lines;
  for (size_t i = 0; i <= kBodyEventsMax; ++i) lines += "{}\n";
  auto nd = SplitBody(lines, BodyFormat::kNdjson);
  ASSERT_FALSE(nd.ok());
  EXPECT_EQ(nd.status().code(), Code::kTooLarge);
  // Exactly the cap is fine.
  body = "[{}";
  for (size_t i = 1; i < kBodyEventsMax; ++i) body += ",{}";
  body += "]";
  auto at_cap = SplitBody(body, BodyFormat::kJson);
  ASSERT_TRUE(at_cap.ok());
  EXPECT_EQ(at_cap->size(), kBodyEventsMax);
}

// Issue 13: `"amount":"1","amount":"1000"` booked 1000.
TEST(Event, DuplicateJsonKeysAreRejected) {
  std::string top =
      R"({"event_id":"a:1","event_id":"a:2","org_id":"acme","occurred_at":"2026-01-08T12:56:36Z",
    "billing_period_closed":{"month":"2026-01"}})";
  auto r = ParseJson(top);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("twice"), std::string::npos);
  std::string nested = Usage().dump();
  nested.insert(nested.find("\"amount\""), R"("amount":"1",)");
  auto n = ParseJson(nested);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(ParseJson(Usage().dump()).ok());
}

TEST(Event, AnUnknownKeyIsQuotedOnlyInPart) {
  Json j = Usage();
  j[std::string(100000, 'k')] = "v";
  auto r = ParseJson(j.dump());
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 200u) << r.status().message().size();
  // A cut never splits a UTF-8 character.
  std::string text = std::string(kQuotedInputBytesMax - 1, 'a') + "\u00e9\u00e9";
  std::string cut = QuoteInput(text);
  EXPECT_EQ(cut, std::string(kQuotedInputBytesMax - 1, 'a') + "...");
}

// Issue 13: binary input skipped the JSON rules. Build wire bytes by hand.
std::string Field(int number, const std::string& bytes) {
  std::string out;
  uint32_t tag = static_cast<uint32_t>(number << 3 | 2);
  while (tag >= 0x80) {
    out.push_back(static_cast<char>(tag | 0x80));
    tag >>= 7;
  }
  out.push_back(static_cast<char>(tag));
  size_t n = bytes.size();
  while (n >= 0x80) {
    out.push_back(static_cast<char>(n | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
  return out + bytes;
}

TEST(Event, BinaryIsJudgedAsJsonIs) {
  auto good = ParseJson(Usage().dump());
  ASSERT_TRUE(good.ok());
  const std::string bytes = CanonicalBytes(*good);
  ASSERT_TRUE(ParseBinary(bytes).ok());
  const auto* env = Envelope::descriptor();
  // Unknown field 99: protobuf keeps it, stored and hashed but never shown.
  auto unknown = ParseBinary(bytes + Field(99, "hidden"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown field"), std::string::npos);
  // A second payload: protobuf keeps the last.
  const int closed = env->FindFieldByName("billing_period_closed")->number();
  auto two = ParseBinary(bytes + Field(closed, Field(1, "2026-01")));
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("payload"), std::string::npos) << two.status().message();
  // The same field twice: protobuf keeps the last.
  const int event_id = env->FindFieldByName("event_id")->number();
  auto twice = ParseBinary(bytes + Field(event_id, "acme:use:2"));
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("twice"), std::string::npos);
  // An unknown field inside the payload.
  const int usage = env->FindFieldByName("usage_recorded")->number();
  Envelope no_payload = *good;
  no_payload.clear_usage_recorded();
  auto nested =
      ParseBinary(CanonicalBytes(no_payload) +
                  Field(usage, good->usage_recorded().SerializeAsString() + Field(77, "x")));
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.status().message().find("usage_recorded"), std::string::npos)
      << nested.status().message();
  // No payload at all.
  EXPECT_FALSE(ParseBinary(CanonicalBytes(no_payload)).ok());
  // A string field sent as a varint (protobuf would keep it as unknown).
  Envelope no_source = *good;
  no_source.clear_source();
  const int source = env->FindFieldByName("source")->number();
  ASSERT_LT(source, 16);
  auto wrong =
      ParseBinary(CanonicalBytes(no_source) + std::string{static_cast<char>(source << 3), 1});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("wire type"), std::string::npos)
      << wrong.status().message();
}

// Found in review: duplicate keys were detected with nlohmann's callback
// parser, which rescans siblings at every `}`, so a 1 MB event of tiny
// objects took minutes. Events now have a value cap, checked in one pass.
TEST(Event, AnEventOfTooManyValuesIsRejected) {
  std::string many = "{\"a\":[";
  for (size_t i = 0; i < 300000; ++i) many += i ? ",{}" : "{}";
  many += "]}";
  auto r = ParseJson(many);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("values"), std::string::npos) << r.status().message();
  // Keys count too: a flat object of many keys.
  std::string keys = "{";
  for (size_t i = 0; i < kEventJsonValuesMax + 1; ++i)
    keys += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":1";
  keys += "}";
  EXPECT_FALSE(ParseJson(keys).ok());
  EXPECT_TRUE(ParseJson(Usage().dump()).ok());
}

}  // namespace
}  // namespace billing::events

namespace billing::events {
namespace {

// Budgets: thresholds are the schema's one list; JSON and binary read it alike.
TEST(Event, BudgetSetReadsThresholdsFromJsonAndBinary) {
  const std::string json =
      R"({"event_id":"b1","org_id":"o","occurred_at":"2026-01-01T00:00:00Z",)"
      R"("budget_set":{"budget_id":"team","amount":"30","cost_center_id":"cc","thresholds":[50,100]}})";
  auto parsed = ParseJson(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->budget_set().thresholds_size(), 2);
  auto event = Validate(*parsed);
  ASSERT_TRUE(event.ok()) << event.status().ToString();
  EXPECT_EQ(event->amount, 30 * kNanosPerUnit);
  // The JSON form prints the list back as numbers.
  EXPECT_NE(ToJson(*parsed).find("\"thresholds\":[50,100]"), std::string::npos) << ToJson(*parsed);
  auto binary = ParseBinary(CanonicalBytes(*parsed));
  ASSERT_TRUE(binary.ok()) << binary.status().ToString();
  EXPECT_EQ(CanonicalBytes(*binary), CanonicalBytes(*parsed));
  // A threshold sent as a fixed32 would be dropped by protobuf: refused.
  Envelope no_payload = *parsed;
  no_payload.clear_budget_set();
  const int budget_set = Envelope::descriptor()->FindFieldByName("budget_set")->number();
  std::string payload = parsed->budget_set().SerializeAsString();
  payload += std::string{static_cast<char>(4 << 3 | 5), 50, 0, 0, 0};
  auto wrong = ParseBinary(CanonicalBytes(no_payload) + Field(budget_set, payload));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("wire type"), std::string::npos)
      << wrong.status().message();
  // No thresholds: the default, and a removal needs only its id.
  EXPECT_TRUE(
      Validate(
          *ParseJson(
              R"({"event_id":"b2","org_id":"o","occurred_at":"2026-01-01T00:00:00Z","budget_set":{"budget_id":"t","amount":"1"}})"))
          .ok());
  EXPECT_TRUE(
      Validate(
          *ParseJson(
              R"({"event_id":"b3","org_id":"o","occurred_at":"2026-01-01T00:00:00Z","budget_removed":{"budget_id":"t"}})"))
          .ok());
  EXPECT_FALSE(
      ParseJson(
          R"({"event_id":"b4","org_id":"o","occurred_at":"2026-01-01T00:00:00Z","budget_removed":{"budget_id":"t","thresholds":[5]}})")
          .ok());
}

}  // namespace
}  // namespace billing::events
