// The document hash of a sealed invoice (SPEC, "Sealed invoices and invoice
// documents"): hex SHA-256 of the RFC 8785 canonical JSON of the invoice as
// `GET /v1/orgs/{org}/invoices/{invoice_id}` answers it, without its `seal`
// key. Whoever holds the answer can recompute it with any JCS library and
// `sha256sum`, so the hash proves the document without trusting this code.
// Pure functions; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "events/status.h"

namespace billing::documents {

// 64 lower-case hex digits. kInvalidArgument when `invoice_answer` is not an
// object or holds a value canonical JSON refuses (canonical_json.h).
Result<std::string> DocumentHash(const nlohmann::ordered_json& invoice_answer);

// Lower-case hex SHA-256 of `bytes`.
std::string Sha256Hex(const std::string& bytes);

}  // namespace billing::documents
