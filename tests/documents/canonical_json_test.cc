// RFC 8785 canonical JSON against the RFC's own examples (section 3.2.2's
// sample with its UTF-8 bytes, section 3.2.3's sorting of Unicode keys,
// Appendix B's IEEE 754 number table), the values it refuses, and the
// invoice document hash against a hash computed independently.
#include "documents/canonical_json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "documents/document_hash.h"

namespace billing::documents {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

std::string Canonical(const std::string& text) {
  auto out = CanonicalJson(Json::parse(text));
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? *out : std::string();
}

std::string HexBytes(const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (!out.empty()) out.push_back(' ');
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// RFC 8785 section 3.2.2 (the input) and 3.2.4 (its canonical UTF-8 bytes).
TEST(CanonicalJson, RfcSampleGivesTheRfcBytes) {
  const std::string input = R"({
    "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
    "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
    "literals": [null, true, false]
  })";
  const std::string expected =
      "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
      "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
  const std::string rfc_hex =
      "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 "
      "75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a "
      "5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31 "
      "65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 "
      "5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 "
      "30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d";
  std::string got = Canonical(input);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(HexBytes(got), rfc_hex);
  // Member order in the input cannot matter.
  auto ordered = CanonicalJson(OrderedJson::parse(input));
  ASSERT_TRUE(ordered.ok());
  EXPECT_EQ(*ordered, expected);
}

// RFC 8785 section 3.2.3: names compare as UTF-16 code units, so the emoji
// (a surrogate pair, D83D DE00) sorts before U+FB33 although its code point
// and its UTF-8 bytes are larger.
TEST(CanonicalJson, KeysSortByUtf16CodeUnitsAsInTheRfc) {
  const std::string input = R"({
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\ud83d\ude00": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis"
  })";
  const std::string expected =
      "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
      "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
      "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\",\"\xef\xac\xb3\":\"Hebrew Letter Dalet With "
      "Dagesh\"}";
  EXPECT_EQ(Canonical(input), expected);
  auto ordered = CanonicalJson(OrderedJson::parse(input));
  ASSERT_TRUE(ordered.ok());
  EXPECT_EQ(*ordered, expected);
}

double FromBits(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
TEST(CanonicalJson, NumbersMatchRfcAppendixB) {
  struct Vector {
    uint64_t bits;
    const char* text;
  };
  const std::vector<Vector> vectors = {
      {0x0000000000000000, "0"},
      {0x8000000000000000, "0"},
      {0x0000000000000001, "5e-324"},
      {0x8000000000000001, "-5e-324"},
      {0x7fefffffffffffff, "1.7976931348623157e+308"},
      {0xffefffffffffffff, "-1.7976931348623157e+308"},
      {0x4340000000000000, "9007199254740992"},
      {0xc340000000000000, "-9007199254740992"},
      {0x4430000000000000, "295147905179352830000"},
      {0x44b52d02c7e14af5, "9.999999999999997e+22"},
      {0x44b52d02c7e14af6, "1e+23"},
      {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
      {0x444b1ae4d6e2ef4e, "999999999999999700000"},
      {0x444b1ae4d6e2ef4f, "999999999999999900000"},
      {0x444b1ae4d6e2ef50, "1e+21"},
      {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
      {0x3eb0c6f7a0b5ed8d, "0.000001"},
      {0x41b3de4355555553, "333333333.3333332"},
      {0x41b3de4355555554, "333333333.33333325"},
      {0x41b3de4355555555, "333333333.3333333"},
      {0x41b3de4355555556, "333333333.3333334"},
      {0x41b3de4355555557, "333333333.33333343"},
      {0xbecbf647612f3696, "-0.0000033333333333333333"},
      {0x43143ff3c1cb0959, "1424953923781206.2"},
  };
  for (const Vector& v : vectors) {
    auto got = CanonicalNumber(FromBits(v.bits));
    ASSERT_TRUE(got.ok()) << std::hex << v.bits;
    EXPECT_EQ(*got, v.text) << std::hex << v.bits;
    // The same through a JSON value, as a document carries it.
    auto in_doc = CanonicalJson(Json::array({FromBits(v.bits)}));
    ASSERT_TRUE(in_doc.ok());
    EXPECT_EQ(*in_doc, std::string("[") + v.text + "]");
  }
  // Appendix B's two entries that are errors: NaN and Infinity.
  EXPECT_EQ(CanonicalNumber(FromBits(0x7fffffffffffffff)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(CanonicalNumber(FromBits(0x7ff0000000000000)).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(CanonicalJson(Json{{"x", -std::numeric_limits<double>::infinity()}}).ok());
}

TEST(CanonicalJson, IntegersBeyondTwoToThe53AreRefusedNotRounded) {
  EXPECT_EQ(Canonical("[0, -1, 9007199254740992, -9007199254740992]"),
            "[0,-1,9007199254740992,-9007199254740992]");
  EXPECT_EQ(CanonicalJson(Json(int64_t{9007199254740993})).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(CanonicalJson(Json(int64_t{-9007199254740993})).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(CanonicalJson(Json(uint64_t{18446744073709551615u})).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(CanonicalJson(Json(std::numeric_limits<int64_t>::min())).status().code(),
            Code::kInvalidArgument);
}

TEST(CanonicalJson, ControlsUseShortEscapesElseLowerCaseHex) {
  Json v = std::string("\x01\b\t\n\x0b\f\r\x1f\x7f/\"\\");
  auto got = CanonicalJson(v);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "\"\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\x7f/\\\"\\\\\"");
}

TEST(CanonicalJson, InvalidUtf8IsRefused) {
  for (std::string bad : {std::string("\xff"), std::string("\xc0\xaf"), std::string("\xed\xa0\x80"),
                          std::string("\xe2\x82"), std::string("\xf4\x90\x80\x80")}) {
    EXPECT_EQ(CanonicalJson(Json(bad)).status().code(), Code::kInvalidArgument) << HexBytes(bad);
    EXPECT_EQ(CanonicalJson(Json{{bad, 1}}).status().code(), Code::kInvalidArgument)
        << HexBytes(bad);
  }
}

TEST(CanonicalJson, NestedObjectsAreSortedAtEveryLevelArraysKeepTheirOrder) {
  EXPECT_EQ(Canonical(R"({"b": [3, {"z": 1, "a": {"y": null, "x": []}}, 1], "a": {}})"),
            R"({"a":{},"b":[3,{"a":{"x":[],"y":null},"z":1},1]})");
}

OrderedJson SampleInvoice() {
  return OrderedJson::parse(
      R"({"invoice_id":"2026-01-cc-eng","cost_center_id":"cc-eng","billing_account":null,
    "status":"final","total":"1234.57","currency":"EUR",
    "lines":[{"category":"usage","description":"Compute Engine","amount":"1200.000000001"},
             {"category":"credit","description":"Rabatt f\u00fcr \u00dc","amount":"-5.000000000"}]})");
}

// The expected hash was computed outside this code: Python's json.dumps with
// sort_keys, compact separators and ensure_ascii=False (which equals JCS for
// this document: ASCII keys, no numbers), then hashlib.sha256.
TEST(DocumentHash, IsSha256OfTheCanonicalAnswerWithoutItsSeal) {
  const std::string expected = "0e650dc4ac3bab7e902e28fe36feb89d79c192e5c4be2993d316694f76f9b08f";
  auto plain = DocumentHash(SampleInvoice());
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(*plain, expected);
  OrderedJson sealed = SampleInvoice();
  sealed["seal"] =
      OrderedJson{{"sequence", 57}, {"ledger_hash", "ab"}, {"document_hash", expected}};
  auto with_seal = DocumentHash(sealed);
  ASSERT_TRUE(with_seal.ok());
  EXPECT_EQ(*with_seal, expected);
  // Any change of content changes it.
  OrderedJson changed = SampleInvoice();
  changed["lines"][0]["amount"] = "1200.000000002";
  EXPECT_NE(*DocumentHash(changed), expected);
  EXPECT_EQ(DocumentHash(OrderedJson::array()).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace billing::documents
