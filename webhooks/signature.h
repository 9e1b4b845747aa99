// Delivery signatures (SPEC, "Webhooks"): each delivery carries
// `Billing-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(SECRET, "<t>." + body)>`.
// The time is inside the signed bytes, so a receiver that also refuses old
// times (say, five minutes) cannot be fed a recorded delivery again later.
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace billing::webhooks {

// Lower-case hex HMAC-SHA256 of `message` under `key` (OpenSSL).
std::string HmacSha256Hex(std::string_view key, std::string_view message);

// The Billing-Signature header value for `body` sent at `unix_seconds`.
std::string SignatureHeader(std::string_view secret, int64_t unix_seconds, std::string_view body);

}  // namespace billing::webhooks
