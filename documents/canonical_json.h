// Canonical JSON: RFC 8785, the JSON Canonicalization Scheme (JCS).
//
// A JSON value has many spellings (key order, spacing, escapes, number
// forms); a hash or signature over it needs exactly one. JCS defines it:
// no whitespace; object members sorted by their names compared as arrays of
// UTF-16 code units; strings written as themselves in UTF-8 except `"`, `\`
// and the controls below U+0020 (the short escapes \b \t \n \f \r where one
// exists, else \u00xx in lower-case hex); numbers written as ECMAScript's
// Number.prototype.toString writes the IEEE 754 double they denote.
//
// Values outside the JCS data model are refused rather than approximated,
// because a hash over an approximation would certify something else:
// non-finite doubles, integers JSON parsers cannot hold exactly (beyond
// kCanonicalIntegerMagnitudeMax), and strings that are not valid UTF-8.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "events/status.h"

namespace billing::documents {

// Largest integer magnitude written as a number: 2^53, the last integer up to
// which every integer is an IEEE 754 double. A larger int64 would be read
// back by a JCS peer (which parses doubles) as a different value, so it is
// refused; money in our answers is always a decimal string, never a number.
inline constexpr uint64_t kCanonicalIntegerMagnitudeMax = uint64_t{1} << 53;

// The canonical text of `value` (UTF-8). kInvalidArgument, naming the
// problem, for NaN or infinite numbers, integers beyond
// kCanonicalIntegerMagnitudeMax, strings or keys that are not valid UTF-8,
// and binary values (not JSON).
Result<std::string> CanonicalJson(const nlohmann::json& value);
Result<std::string> CanonicalJson(const nlohmann::ordered_json& value);

// One double as ECMAScript writes it (`1e+30`, `4.5`, `0.002`, `-0` as `0`).
// kInvalidArgument for NaN and the infinities.
Result<std::string> CanonicalNumber(double value);

}  // namespace billing::documents
