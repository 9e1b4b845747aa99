#include "http/target.h"

namespace billing::api {

namespace {

int FromHex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status Bad(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }

}  // namespace

std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = FromHex(s[i + 1]), lo = FromHex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Result<ParsedTarget> ParseTarget(std::string_view target) {
  ParsedTarget out;
  size_t q = target.find('?');
  out.path = target.substr(0, q);
  if (q != std::string_view::npos) {
    std::string_view qs = target.substr(q + 1);
    size_t pos = 0;
    while (pos <= qs.size()) {
      size_t amp = qs.find('&', pos);
      if (amp == std::string_view::npos) amp = qs.size();
      std::string_view pair = qs.substr(pos, amp - pos);
      if (!pair.empty()) {
        size_t eq = pair.find('=');
        auto key = PercentDecode(pair.substr(0, eq), true);
        auto value = PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
        if (!key || !value) return Bad("malformed query string");
        out.query[*key] = *value;
      }
      pos = amp + 1;
    }
  }
  std::string_view path = out.path;
  if (path.empty() || path[0] != '/') return Bad("the request target must be an absolute path");
  // Split first, decode each segment after: an encoded slash stays inside
  // its segment and can never change which route matches.
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    auto seg = PercentDecode(path.substr(pos, slash - pos), false);
    if (!seg) return Bad("malformed percent-encoding in path");
    if (*seg == "." || *seg == "..") return Bad("dot segments are not allowed in paths");
    out.segments.push_back(std::move(*seg));
    pos = slash + 1;
  }
  if (out.segments.size() > 1 && out.segments.back().empty()) {
    out.segments.pop_back();  // tolerate one trailing slash
  }
  return out;
}

}  // namespace billing::api
