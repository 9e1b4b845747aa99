#include "webhooks/delivery.h"

#include <nlohmann/json.hpp>

#include "ledger/format.h"
#include "ledger/hash_chain.h"

namespace billing::webhooks {

namespace {

using Json = nlohmann::json;
using projections::DeliveryKind;
constexpr size_t kId16Chars = 16;
constexpr size_t kBe64Bytes = 8;

}  // namespace

std::string_view StatusName(DeliveryStatus status) {
  switch (status) {
    case DeliveryStatus::kPending:
      return "pending";
    case DeliveryStatus::kDelivered:
      return "delivered";
    case DeliveryStatus::kFailed:
      return "failed";
  }
  return "pending";
}

std::optional<DeliveryStatus> ParseStatus(std::string_view name) {
  for (DeliveryStatus s :
       {DeliveryStatus::kPending, DeliveryStatus::kDelivered, DeliveryStatus::kFailed}) {
    if (StatusName(s) == name) return s;
  }
  return std::nullopt;
}

std::string DeliveryId(DeliveryKind kind, std::string_view org, uint64_t sequence,
                       std::string_view ref, std::string_view endpoint_url) {
  // Ids, refs and kinds hold no 0 byte, and a URL is last: the parts cannot
  // run into each other.
  std::string named(projections::DeliveryKindName(kind));
  named.push_back('\0');
  named.append(org);
  named.push_back('\0');
  named.append(ref);
  named.push_back('\0');
  named.append(endpoint_url);
  return std::to_string(sequence) + "-" + ledger::Hex(ledger::Digest(named)).substr(0, kId16Chars);
}

std::optional<std::pair<uint64_t, std::string>> SplitDeliveryId(std::string_view id) {
  const size_t dash = id.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash > 19) return std::nullopt;
  if (id.size() != dash + 1 + kId16Chars) return std::nullopt;
  uint64_t seq = 0;
  for (char c : id.substr(0, dash)) {
    if (c < '0' || c > '9') return std::nullopt;
    seq = seq * 10 + static_cast<uint64_t>(c - '0');
  }
  std::string_view hex = id.substr(dash + 1);
  if (hex.find_first_not_of("0123456789abcdef") != std::string_view::npos) return std::nullopt;
  if (std::to_string(seq) != id.substr(0, dash)) return std::nullopt;  // no leading zeros
  return std::make_pair(seq, std::string(hex));
}

std::string DeliveryKey(uint64_t sequence, std::string_view id16) {
  std::string k(kDeliveryPrefix);
  ledger::format::PutBe64(&k, sequence);
  k.append(id16);
  return k;
}

std::string DeliveryKeyOf(std::string_view id) {
  auto parts = SplitDeliveryId(id);
  return parts ? DeliveryKey(parts->first, parts->second) : std::string();
}

std::string StatusPrefix(DeliveryStatus status) {
  std::string k(kStatusPrefix);
  k.push_back(static_cast<char>(status));
  return k;
}

std::string StatusKey(DeliveryStatus status, uint64_t sequence, std::string_view id16) {
  std::string k = StatusPrefix(status);
  ledger::format::PutBe64(&k, sequence);
  k.append(id16);
  return k;
}

std::string DuePrefix(std::string_view endpoint_key) {
  std::string k(kDuePrefix);
  k.append(endpoint_key);
  return k;
}

std::string DueKey(std::string_view endpoint_key, int64_t due_ms, uint64_t sequence,
                   std::string_view id16) {
  std::string k = DuePrefix(endpoint_key);
  ledger::format::PutBe64(&k, static_cast<uint64_t>(std::max<int64_t>(due_ms, 0)));
  ledger::format::PutBe64(&k, sequence);
  k.append(id16);
  return k;
}

std::string IdOfIndexKey(std::string_view key) {
  std::string_view tail = key.substr(key.size() - kBe64Bytes - kId16Chars);
  return std::to_string(ledger::format::GetBe64(tail)) + "-" + std::string(tail.substr(kBe64Bytes));
}

int64_t DueMsOf(std::string_view due_key) {
  return static_cast<int64_t>(
      ledger::format::GetBe64(due_key.substr(kDuePrefix.size() + kId16Chars)));
}

std::string EncodeDelivery(const Delivery& d) {
  Json j{{"id", d.id},
         {"kind", projections::DeliveryKindName(d.kind)},
         {"org_id", d.org_id},
         {"sequence", d.sequence},
         {"ref", d.ref},
         {"endpoint", d.endpoint_url},
         {"endpoint_key", d.endpoint_key},
         {"status", StatusName(d.status)},
         {"attempts", d.attempts},
         {"last_error", d.last_error ? Json(*d.last_error) : Json(nullptr)},
         {"next_attempt_ms", d.next_attempt_ms},
         {"created_ms", d.created_ms},
         {"delivered_ms", d.delivered_ms ? Json(*d.delivered_ms) : Json(nullptr)},
         {"data", d.data},
         {"body", d.body}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<Delivery> DecodeDelivery(std::string_view value) {
  Json j = Json::parse(value, nullptr, /*allow_exceptions=*/false);
  Status bad(Code::kCorruption, "a stored webhook delivery is undecodable");
  if (!j.is_object()) return bad;
  try {
    Delivery d;
    d.id = j.at("id").get<std::string>();
    d.kind = j.at("kind").get<std::string>() == "budget_alert" ? DeliveryKind::kBudgetAlert
                                                               : DeliveryKind::kInvoiceFinalized;
    d.org_id = j.at("org_id").get<std::string>();
    d.sequence = j.at("sequence").get<uint64_t>();
    d.ref = j.at("ref").get<std::string>();
    d.endpoint_url = j.at("endpoint").get<std::string>();
    d.endpoint_key = j.at("endpoint_key").get<std::string>();
    auto status = ParseStatus(j.at("status").get<std::string>());
    if (!status) return bad;
    d.status = *status;
    d.attempts = j.at("attempts").get<uint32_t>();
    if (!j.at("last_error").is_null()) d.last_error = j.at("last_error").get<std::string>();
    d.next_attempt_ms = j.at("next_attempt_ms").get<int64_t>();
    d.created_ms = j.at("created_ms").get<int64_t>();
    if (!j.at("delivered_ms").is_null()) d.delivered_ms = j.at("delivered_ms").get<int64_t>();
    d.data = j.at("data").get<std::string>();
    d.body = j.at("body").get<std::string>();
    return d;
  } catch (const Json::exception&) {
    return bad;
  }
}

}  // namespace billing::webhooks
