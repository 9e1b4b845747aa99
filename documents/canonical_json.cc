#include "documents/canonical_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>
#include <utility>
#include <vector>

namespace billing::documents {

namespace {

// Nesting a canonical value may have: our invoice answers nest three levels;
// the bound keeps a hostile document from exhausting the stack through the
// recursion below.
constexpr int kCanonicalDepthMax = 128;

// ECMAScript writes a number in plain digits while its decimal exponent
// (the position of the decimal point) is at most 21, and as 0.000ddd while
// it is above -6 (ECMA-262 Number::toString, steps 7 to 9).
constexpr int kPlainExponentMax = 21;
constexpr int kLeadingZerosExponentMin = -6;

Status Invalid(const std::string& why) {
  return Status(Code::kInvalidArgument, "canonical JSON: " + why);
}

// Appends the UTF-16 code units of valid UTF-8 `s` to `out`; false when `s`
// is not valid UTF-8 (overlong forms, surrogates, beyond U+10FFFF, cut off).
bool Utf16Units(std::string_view s, std::u16string* out) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp = 0;
    size_t len = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      cp = c, len = 1, min = 0;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F, len = 2, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F, len = 3, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07, len = 4, min = 0x10000;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out->push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out->push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      out->push_back(static_cast<char16_t>(cp));
    }
    i += len;
  }
  return true;
}

// RFC 8785 section 3.2.2.2: the string as itself, but for the quote, the
// backslash and the controls below U+0020.
Status AppendString(std::string_view s, std::string* out) {
  std::u16string ignored;
  if (!Utf16Units(s, &ignored)) return Invalid("a string is not valid UTF-8");
  static const char* kHex = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
  return Status::Ok();
}

template <typename Json>
Status Append(const Json& value, int depth, std::string* out);

template <typename Json>
Status AppendObject(const Json& value, int depth, std::string* out) {
  // Members sorted by their names as UTF-16 code units (RFC 8785 section
  // 3.2.3), which differs from UTF-8 byte order for characters beyond U+FFFF.
  std::vector<std::pair<std::u16string, const Json*>> members;
  std::vector<const std::string*> names;
  for (auto it = value.begin(); it != value.end(); ++it) {
    std::u16string units;
    if (!Utf16Units(it.key(), &units)) return Invalid("a member name is not valid UTF-8");
    members.emplace_back(std::move(units), &it.value());
    names.push_back(&it.key());
  }
  std::vector<size_t> order(members.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return members[a].first < members[b].first; });
  out->push_back('{');
  for (size_t n = 0; n < order.size(); ++n) {
    if (n > 0) out->push_back(',');
    if (Status s = AppendString(*names[order[n]], out); !s.ok()) return s;
    out->push_back(':');
    if (Status s = Append(*members[order[n]].second, depth + 1, out); !s.ok()) return s;
  }
  out->push_back('}');
  return Status::Ok();
}

template <typename Json>
Status Append(const Json& value, int depth, std::string* out) {
  if (depth > kCanonicalDepthMax)
    return Invalid("nested deeper than " + std::to_string(kCanonicalDepthMax));
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      out->append("null");
      return Status::Ok();
    case nlohmann::json::value_t::boolean:
      out->append(value.template get<bool>() ? "true" : "false");
      return Status::Ok();
    case nlohmann::json::value_t::string:
      return AppendString(value.template get_ref<const std::string&>(), out);
    case nlohmann::json::value_t::number_integer: {
      int64_t v = value.template get<int64_t>();
      uint64_t magnitude =
          v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
      if (magnitude > kCanonicalIntegerMagnitudeMax)
        return Invalid(std::to_string(v) + " is beyond 2^53");
      out->append(std::to_string(v));
      return Status::Ok();
    }
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t v = value.template get<uint64_t>();
      if (v > kCanonicalIntegerMagnitudeMax) return Invalid(std::to_string(v) + " is beyond 2^53");
      out->append(std::to_string(v));
      return Status::Ok();
    }
    case nlohmann::json::value_t::number_float: {
      auto text = CanonicalNumber(value.template get<double>());
      if (!text.ok()) return text.status();
      out->append(*text);
      return Status::Ok();
    }
    case nlohmann::json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const auto& element : value) {
        if (!first) out->push_back(',');
        first = false;
        if (Status s = Append(element, depth + 1, out); !s.ok()) return s;
      }
      out->push_back(']');
      return Status::Ok();
    }
    case nlohmann::json::value_t::object:
      return AppendObject(value, depth, out);
    default:
      return Invalid("binary and discarded values are not JSON");
  }
}

template <typename Json>
Result<std::string> Canonical(const Json& value) {
  std::string out;
  if (Status s = Append(value, 0, &out); !s.ok()) return s;
  return out;
}

}  // namespace

Result<std::string> CanonicalNumber(double value) {
  if (!std::isfinite(value)) return Invalid("NaN and infinities are not JSON numbers");
  if (value == 0) return std::string("0");  // -0 too (ECMA-262: "0")
  // The shortest digits that read back as the same double (what ECMAScript
  // requires, ties going to the closer value), in scientific form d.ddde±x.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  if (ec != std::errc()) return Invalid("a number could not be formatted");
  std::string_view sci(buf, static_cast<size_t>(end - buf));
  std::string out;
  if (sci.front() == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int exponent = 0;
  std::string_view exp_text = sci.substr(e + 1);
  bool exp_negative = exp_text.front() == '-';
  std::from_chars(exp_text.data() + 1, exp_text.data() + exp_text.size(), exponent);
  if (exp_negative) exponent = -exponent;
  // ECMA-262's k (digit count) and n (the decimal point's position).
  const int k = static_cast<int>(digits.size());
  const int n = exponent + 1;
  if (k <= n && n <= kPlainExponentMax) {
    out += digits;
    out.append(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= kPlainExponentMax) {
    out += digits.substr(0, static_cast<size_t>(n));
    out.push_back('.');
    out += digits.substr(static_cast<size_t>(n));
  } else if (kLeadingZerosExponentMin < n && n <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-n), '0');
    out += digits;
  } else {
    out.push_back(digits[0]);
    if (k > 1) {
      out.push_back('.');
      out += digits.substr(1);
    }
    out.push_back('e');
    out.push_back(n - 1 < 0 ? '-' : '+');
    out += std::to_string(n - 1 < 0 ? 1 - n : n - 1);
  }
  return out;
}

Result<std::string> CanonicalJson(const nlohmann::json& value) { return Canonical(value); }
Result<std::string> CanonicalJson(const nlohmann::ordered_json& value) { return Canonical(value); }

}  // namespace billing::documents
