// Webhook endpoints: where deliveries go, read from the operator's file given
// to `ledgerd --webhooks FILE` (SPEC, "Webhooks").
//
// One endpoint a line, `#` starts a comment:
//
//     <URL> <SECRET> <org-id or *> <kind>[,<kind>...]
//
// Kinds: budget_alert, invoice_finalized. `https://` URLs are verified
// against the system's CA store and the host name; `http://` is allowed only
// to a loopback host (127.0.0.0/8, ::1, localhost), for local receivers and
// tests. The secret keys each delivery's HMAC signature (signature.h). The
// file holds secrets, so it is refused when others may write it or every user
// may read it (as the tokens file is); secrets are never logged, stored or
// shown: the outbox keeps only an endpoint's URL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "events/status.h"
#include "projections/delivery_queue.h"

namespace billing::webhooks {

// Endpoints one file may name. Each gets its own delivery thread (outbox.h),
// so that a slow one never delays another; 64 threads are cheap, more would
// suggest the file is not what the operator meant.
inline constexpr size_t kEndpointsMax = 64;
// A URL's length: RFC 9110 recommends supporting 8000 octets; receivers'
// hook URLs are far shorter, and the URL is stored with each delivery.
inline constexpr size_t kUrlBytesMax = 2048;
// A secret's length in characters: at least 128 bits written as hex (e.g.
// `openssl rand -hex 16`), so that a signature cannot be forged by guessing
// the key; at most one SHA-256 block, HMAC's natural key size.
inline constexpr size_t kSecretCharsMin = 32;
inline constexpr size_t kSecretCharsMax = 64;
// Bytes of one line of the file: a URL, a secret, an org id and the kinds.
inline constexpr size_t kLineBytesMax = kUrlBytesMax + 512;

enum class Scheme { kHttp, kHttps };

struct Endpoint {
  std::string url;                 // as written; stored with each delivery, shown by the listing
  std::string secret;              // the HMAC key; never logged or stored
  std::optional<std::string> org;  // nullopt: every org (`*`)
  bool budget_alert = false;
  bool invoice_finalized = false;
  // Parts of the URL.
  Scheme scheme = Scheme::kHttps;
  std::string host;    // without brackets for IPv6
  std::string port;    // decimal
  std::string target;  // path and query, "/" at least
  // 16 hex digits of SHA-256(url): the endpoint's name in the outbox's keys.
  std::string key;

  bool Takes(projections::DeliveryKind kind, const std::string& org_id) const;
};

// Parses a webhooks file. kInvalidArgument naming the file and line (or the
// file's mode) on anything wrong: a line that is not four fields, a malformed
// or unsupported URL (userinfo, a fragment, plain http to a non-loopback host),
// a secret out of bounds, an unknown kind, the same URL twice, more than
// kEndpointsMax endpoints.
Result<std::vector<Endpoint>> LoadEndpoints(const std::string& path);

// Parses one `URL` as LoadEndpoints does; kInvalidArgument saying why.
Result<Endpoint> ParseUrl(const std::string& url);

}  // namespace billing::webhooks
