// Fuzz target: HTTP request targets through api::ParseTarget, the router's
// only reading of the path and query.
#include <string>
#include <string_view>

#include "http/target.h"
#include "tests/fuzz/fuzz_targets.h"

namespace billing::fuzz {

namespace {

// Percent-encodes everything but unreserved characters (RFC 3986).
std::string Encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

int Target(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto parsed = api::ParseTarget(input);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == Code::kInvalidArgument, parsed.status().ToString());
    return 0;
  }
  FUZZ_CHECK(!parsed->segments.empty(), std::string(input));
  FUZZ_CHECK(!parsed->path.empty() && parsed->path[0] == '/', std::string(input));
  FUZZ_CHECK(parsed->path.find('?') == std::string_view::npos, std::string(input));
  for (const std::string& seg : parsed->segments) {
    FUZZ_CHECK(seg != "." && seg != "..", std::string(input));
  }
  // A decoded segment may hold any byte, '/' and '?' included; encoded again
  // (dots too, so no segment is literally "." or "..") it must parse back to
  // exactly the same segments: nothing a client encodes can change a route.
  std::string rebuilt;
  for (const std::string& seg : parsed->segments) rebuilt += "/" + Encode(seg);
  if (parsed->segments.size() > 1 && parsed->segments.back().empty()) rebuilt += "/";
  char sep = '?';
  for (const auto& [key, value] : parsed->query) {
    rebuilt += sep + Encode(key) + "=" + Encode(value);
    sep = '&';
  }
  auto again = api::ParseTarget(rebuilt);
  FUZZ_CHECK(again.ok(), std::string(input) + " -> " + rebuilt + ": " + again.status().ToString());
  FUZZ_CHECK(again->segments == parsed->segments, std::string(input) + " -> " + rebuilt);
  FUZZ_CHECK(again->query == parsed->query, std::string(input) + " -> " + rebuilt);
  return 0;
}

}  // namespace billing::fuzz

LEDGER_FUZZ_MAIN(billing::fuzz::Target)
