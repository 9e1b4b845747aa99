#include "ops/focus_import.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "events/calendar.h"
#include "events/event.h"
#include "events/money.h"
#include "ops/csv_reader.h"

namespace billing::ops {

namespace {

// Hex digits of SHA-256 kept in an event id: 128 bits, so distinct rows never
// collide in practice, and the id stays short.
constexpr size_t kFocusIdHexDigits = 32;
// Exponents beyond this cannot describe a cost that fits an Int128 at any
// scale the readers use (9 or 18 digits).
constexpr int kDecimalExponentMax = 40;
// Digits an Int128 magnitude holds without overflow (2^127 is about 1.7e38).
constexpr size_t kSumDigitsMax = 38;
// What missing text becomes: every usage text field is required by the SPEC.
constexpr std::string_view kNone = "(none)";

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// FOCUS writes nulls as a bare NULL; other tools leave the field empty.
bool IsNull(const std::optional<std::string>& v) { return !v || v->empty() || *v == "NULL"; }

// Control characters (an embedded line break in a description) would make
// the event invalid; they carry no meaning in these fields.
std::string CleanText(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return Trim(out);
}

std::string Hex(const unsigned char* bytes, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 15]);
  }
  return out;
}

std::string DigitsOnly(std::string_view s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return "";
  }
  return std::string(s.substr(0, n));
}

}  // namespace

FocusColumns::FocusColumns(const CsvRecord& header) {
  // The first of two columns with one name wins, as before.
  for (size_t i = 0; i < header.size(); ++i)
    by_lower_name_.emplace(Lower(Trim(header[i].value_or(""))), i);
}

std::optional<size_t> FocusColumns::IndexOf(std::string_view name) const {
  auto it = by_lower_name_.find(Lower(std::string(name)));
  if (it == by_lower_name_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> FocusColumns::Field(const CsvRecord& row, std::string_view name) const {
  auto i = IndexOf(name);
  if (!i || *i >= row.size() || IsNull(row[*i])) return std::nullopt;
  return Trim(*row[*i]);
}

std::string FocusText(const std::optional<std::string>& field) {
  std::string cleaned = field ? CleanText(*field) : std::string();
  return cleaned.empty() ? std::string(kNone) : cleaned;
}

std::optional<std::string> FocusProvider(
    const ProviderMap& map,
    const std::function<std::optional<std::string>(std::string_view)>& field) {
  for (std::string_view key : {"SubAccountId", "BillingAccountId", "ProviderName"}) {
    if (auto v = field(key)) {
      if (auto it = map.by_key.find(*v); it != map.by_key.end()) return it->second;
    }
  }
  return map.fallback;
}

Result<ProviderMap> ParseProviderMap(std::string_view text) {
  ProviderMap map;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::string trimmed = Trim(line);
    if (trimmed.empty()) continue;
    // Keys (Azure subscription paths, provider names) may hold spaces; our
    // provider ids never hold `=`, so the last `=` separates.
    size_t eq = trimmed.rfind('=');
    if (eq == std::string::npos) {
      return Status(Code::kInvalidArgument, "provider map line " + std::to_string(line_no) +
                                                ": expected `key = provider_id`");
    }
    std::string key = Trim(std::string_view(trimmed).substr(0, eq));
    std::string provider = Trim(std::string_view(trimmed).substr(eq + 1));
    if (key.empty() || provider.empty()) {
      return Status(Code::kInvalidArgument, "provider map line " + std::to_string(line_no) +
                                                ": key and provider_id must not be empty");
    }
    if (key == "*") {
      map.fallback = provider;
    } else {
      map.by_key[key] = provider;
    }
    if (nl == text.size()) break;
  }
  return map;
}

Result<Sum> ParseScaledDecimal(std::string_view text, int scale) {
  Status bad(Code::kInvalidArgument, "\"" + std::string(text) + "\" is not a decimal number");
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  std::string digits;
  int fraction_digits = 0;
  bool seen_dot = false, seen_digit = false;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      seen_digit = true;
      if (!(digits.empty() && c == '0')) digits.push_back(c);  // leading zeros carry nothing
      if (seen_dot) ++fraction_digits;
    } else if (c == '.' && !seen_dot) {
      seen_dot = true;
    } else {
      break;
    }
  }
  if (!seen_digit) return bad;
  int exponent = 0;
  if (i < s.size()) {
    if (s[i] != 'e' && s[i] != 'E') return bad;
    ++i;
    bool exp_negative = false;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) exp_negative = s[i++] == '-';
    if (i == s.size()) return bad;
    for (; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return bad;
      exponent = exponent * 10 + (s[i] - '0');
      if (exponent > kDecimalExponentMax) return bad;
    }
    if (exp_negative) exponent = -exponent;
  }
  // value = digits * 10^(exponent - fraction_digits), counted in 10^-scale units.
  int shift = exponent - fraction_digits + scale;
  Status overflow(Code::kInvalidArgument, "\"" + std::string(text) + "\" is out of range");
  Sum magnitude = 0;
  if (shift >= 0) {
    if (!digits.empty() && digits.size() + static_cast<size_t>(shift) > kSumDigitsMax) {
      return overflow;
    }
    for (char c : digits) magnitude = magnitude * 10 + (c - '0');
    for (int k = 0; k < shift && magnitude != 0; ++k) magnitude *= 10;
  } else {
    size_t drop = static_cast<size_t>(-shift);
    if (drop <= digits.size()) {
      std::string kept = digits.substr(0, digits.size() - drop);
      if (kept.size() > kSumDigitsMax) return overflow;
      for (char c : kept) magnitude = magnitude * 10 + (c - '0');
      // Half away from zero on the magnitude: the first dropped digit decides.
      if (digits[digits.size() - drop] >= '5') magnitude += 1;
    }
    // drop > digits.size(): below half a unit, rounds to zero.
  }
  return negative ? -magnitude : magnitude;
}

Result<int64_t> ParseRoundedNanos(std::string_view text) {
  ASSIGN_OR_RETURN(Sum nanos, ParseScaledDecimal(text, kNanoDigits));
  if (nanos > std::numeric_limits<int64_t>::max() || nanos < -std::numeric_limits<int64_t>::max()) {
    return Status(Code::kInvalidArgument,
                  "\"" + std::string(text) + "\" does not fit int64 nano-units");
  }
  return static_cast<int64_t>(nanos);
}

Result<std::string> NormalizeFocusTime(std::string_view text) {
  Status bad(Code::kInvalidArgument, "\"" + std::string(text) + "\" is not a UTC date-time");
  std::string t = Trim(text);
  if (t.size() == 10) t += "T00:00:00";
  if (t.size() < 19 || DigitsOnly(t, 4).empty() || t[4] != '-' || t[7] != '-') return bad;
  if (t[10] == ' ') t[10] = 'T';
  if (t[10] != 'T') return bad;
  if (t.back() == 'Z') {
    t.pop_back();
  } else if (t.size() > 6 && (t.ends_with("+00:00") || t.ends_with("-00:00"))) {
    t.resize(t.size() - 6);
  }
  t += 'Z';
  auto parsed = ParseTimestamp(t, "time");
  if (!parsed.ok()) return bad;
  return t;
}

namespace {

using Json = nlohmann::ordered_json;

// Every row needs a cost, a service and a time; without these columns no row
// could become an event, so the whole file is refused.
Status CheckRequiredColumns(const FocusColumns& columns) {
  for (std::string_view required : {"BilledCost", "ServiceName"}) {
    if (!columns.IndexOf(required)) {
      return Status(Code::kInvalidArgument, "the CSV has no " + std::string(required) + " column");
    }
  }
  if (!columns.IndexOf("ChargePeriodStart") && !columns.IndexOf("BillingPeriodStart")) {
    return Status(Code::kInvalidArgument,
                  "the CSV has neither ChargePeriodStart nor BillingPeriodStart");
  }
  return Status::Ok();
}

// One data row, read by column name. Conversion failures come back as a
// kInvalidArgument whose message is the reason the row is skipped.
class FocusRow {
 public:
  FocusRow(const FocusColumns& columns, const CsvRecord& row) : columns_(columns), row_(row) {}

  std::optional<std::string> Field(std::string_view name) const {
    return columns_.Field(row_, name);
  }

  // The first of `candidates` with text left after cleaning, else "(none)".
  std::string Text(std::initializer_list<std::string_view> candidates) const {
    for (std::string_view name : candidates) {
      if (auto v = Field(name)) {
        std::string cleaned = CleanText(*v);
        if (!cleaned.empty()) return cleaned;
      }
    }
    return std::string(kNone);
  }

 private:
  const FocusColumns& columns_;
  const CsvRecord& row_;
};

Status Skip(std::string why) { return Status(Code::kInvalidArgument, std::move(why)); }

// The id: the org and the row's content, column by column, so quoting or line
// endings do not change it but any value does. The Nth identical copy of a
// row in one file gets `:N`, counted in `copies`.
std::string RowEventId(const std::string& org_id, const std::vector<std::string>& names,
                       const CsvRecord& row, std::unordered_map<std::string, uint64_t>* copies) {
  std::string content = org_id;
  content.push_back('\0');
  for (size_t i = 0; i < names.size(); ++i) {
    content += names[i];
    content.push_back(row[i] ? '\x1f' : '\x1e');  // present vs absent
    if (row[i]) content += *row[i];
    content.push_back('\0');
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  LEDGER_CHECK(
      EVP_Digest(content.data(), content.size(), digest, &digest_len, EVP_sha256(), nullptr) == 1,
      "SHA-256 failed");
  std::string event_id = "focus:" + Hex(digest, digest_len).substr(0, kFocusIdHexDigits);
  if (uint64_t seen = (*copies)[event_id]++; seen > 0) event_id += ":" + std::to_string(seen + 1);
  return event_id;
}

Result<int64_t> RowCost(const FocusRow& row) {
  auto cost_text = row.Field("BilledCost");
  if (!cost_text) return Skip("BilledCost is NULL");
  auto cost = ParseRoundedNanos(*cost_text);
  if (!cost.ok()) return Skip("BilledCost " + cost.status().message());
  return *cost;
}

Result<std::string> RowStart(const FocusRow& row) {
  auto start_text = row.Field("ChargePeriodStart");
  if (!start_text) start_text = row.Field("BillingPeriodStart");
  if (!start_text) return Skip("no ChargePeriodStart or BillingPeriodStart");
  auto start = NormalizeFocusTime(*start_text);
  if (!start.ok()) return Skip("ChargePeriodStart " + start.status().message());
  return *start;
}

// A negative cost (refund, credit, correction) is a credit of its month.
Json CreditPayload(const FocusImportOptions& options, int64_t cost, const std::string& start,
                   const std::string& service) {
  Json credit{{"month", start.substr(0, 7)},
              {"amount", FormatNanos(-static_cast<Sum>(cost))},
              {"description", service}};
  if (options.credit_cost_center) credit["cost_center_id"] = *options.credit_cost_center;
  return credit;
}

Result<Json> UsagePayload(const FocusRow& row, const FocusImportOptions& options, int64_t cost,
                          const std::string& start, const std::string& service) {
  auto field = [&](std::string_view name) { return row.Field(name); };
  std::optional<std::string> provider = FocusProvider(options.providers, field);
  if (!provider)
    return Skip(
        "no provider mapping for SubAccountId, BillingAccountId or ProviderName and no `*` line");
  std::string end = start;
  if (auto end_text = row.Field("ChargePeriodEnd")) {
    auto e = NormalizeFocusTime(*end_text);
    if (!e.ok()) return Skip("ChargePeriodEnd " + e.status().message());
    end = *e;
  }
  // Negative quantities go with refunds, which are credits; on a usage row
  // they are a provider's correction of zero cost, counted as none.
  int64_t quantity = 0;
  if (auto q = row.Field("ConsumedQuantity")) {
    auto parsed = ParseRoundedNanos(*q);
    if (!parsed.ok()) return Skip("ConsumedQuantity " + parsed.status().message());
    quantity = std::max<int64_t>(*parsed, 0);
  }
  Json usage{{"provider_id", *provider},
             {"service", service},
             {"sku", row.Text({"SkuId", "SkuPriceId"})},
             {"resource_id", row.Text({"ResourceId", "ResourceName"})},
             {"region", row.Text({"RegionId", "RegionName"})},
             {"quantity", quantity == 0 ? std::string("0") : FormatNanos(quantity)},
             {"unit", row.Text({"ConsumedUnit", "PricingUnit"})},
             {"amount", FormatNanos(cost)},
             {"usage_start", start},
             {"usage_end", end}};
  if (auto currency = row.Field("BillingCurrency")) usage["currency"] = *currency;
  return usage;
}

// The row's event: a credit when its rounded cost is negative, else usage.
Result<Json> RowEvent(const FocusRow& row, const FocusImportOptions& options,
                      const std::string& event_id) {
  ASSIGN_OR_RETURN(int64_t cost, RowCost(row));
  ASSIGN_OR_RETURN(std::string start, RowStart(row));
  std::string service = FocusText(row.Field("ServiceName"));
  Json event{{"event_id", event_id},
             {"org_id", options.org_id},
             {"occurred_at", start},
             {"source", options.source}};
  if (cost < 0) {
    event["credit_applied"] = CreditPayload(options, cost, start, service);
  } else {
    ASSIGN_OR_RETURN(event["usage_recorded"], UsagePayload(row, options, cost, start, service));
  }
  return event;
}

// Checks every stateless rule now, so a row the ledger would refuse is
// reported against its row number instead of failing at post time.
Status CheckEventIsValid(const std::string& line) {
  auto envelope = events::ParseJson(line);
  if (!envelope.ok()) return envelope.status();
  auto valid = events::Validate(*envelope);
  if (!valid.ok()) return valid.status();
  return Status::Ok();
}

}  // namespace

Result<FocusImportReport> ImportFocus(std::istream& in, const FocusImportOptions& options,
                                      const std::function<void(const std::string&)>& emit) {
  CsvReader reader(in);
  CsvRecord header;
  ASSIGN_OR_RETURN(bool got_header, reader.Next(&header));
  if (!got_header) return Status(Code::kInvalidArgument, "the CSV is empty (no header line)");
  std::vector<std::string> names;
  for (const auto& h : header) names.push_back(h.value_or(""));
  FocusColumns columns(header);
  RETURN_IF_ERROR(CheckRequiredColumns(columns));

  FocusImportReport report;
  std::unordered_map<std::string, uint64_t> copies;  // row digest -> times seen
  CsvRecord row;
  for (;;) {
    ASSIGN_OR_RETURN(bool got_row, reader.Next(&row));
    if (!got_row) break;
    ++report.rows;
    const uint64_t row_no = reader.record_number();
    auto skip = [&](const std::string& why) {
      ++report.skipped;
      if (report.problems.size() < kFocusProblemsMax) {
        report.problems.push_back("row " + std::to_string(row_no) + ": " + why);
      }
    };
    if (row.size() != names.size()) {
      skip("has " + std::to_string(row.size()) + " fields, the header has " +
           std::to_string(names.size()));
      continue;
    }
    std::string event_id = RowEventId(options.org_id, names, row, &copies);
    auto event = RowEvent(FocusRow(columns, row), options, event_id);
    if (!event.ok()) {
      skip(event.status().message());
      continue;
    }
    std::string line = event->dump(-1, ' ', false, Json::error_handler_t::replace);
    if (Status valid = CheckEventIsValid(line); !valid.ok()) {
      skip(valid.message());
      continue;
    }
    if (event->contains("credit_applied")) {
      ++report.credits;
    } else {
      ++report.usage;
    }
    emit(line);
  }
  return report;
}

}  // namespace billing::ops
