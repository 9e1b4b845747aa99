// Request targets: how an HTTP request target (`/v1/orgs/acme/dashboard?months=3`)
// becomes the path segments and query parameters the router matches on.
//
// The path is split on '/' first and each segment is percent-decoded after,
// so an encoded slash (`%2F`) stays inside its segment and can never change
// which route matches; `.` and `..` segments (also encoded) are refused, so
// no target can climb out of the route it names; one trailing slash is
// tolerated. Query strings are `key=value` pairs split on '&', percent-decoded
// with '+' as a space; a repeated key keeps its last value. Pure functions,
// no state: thread-safe, and the fuzzer's target (tests/fuzz).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/status.h"

namespace billing::api {

struct ParsedTarget {
  std::string_view path;              // the raw path, before decoding: a view into the target
  std::vector<std::string> segments;  // decoded; "/" alone gives one empty segment
  std::map<std::string, std::string> query;
};

// Parses `target` (which must outlive the result's `path`). kInvalidArgument,
// with a message fit for a 400 answer, for a malformed query string, a path
// that is not absolute, a bad percent escape or a dot segment.
Result<ParsedTarget> ParseTarget(std::string_view target);

// Percent-decoding; with `plus_is_space` (query strings) '+' becomes ' '.
// nullopt on a '%' not followed by two hex digits.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);

}  // namespace billing::api
