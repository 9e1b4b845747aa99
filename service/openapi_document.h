// The HTTP API's contract, service/openapi.json (OpenAPI 3.1), compiled into the
// binary so that ledgerd serves the document of exactly the routes it has
// (GET /v1/openapi.json).
#pragma once

#include <string_view>

namespace billing::api {

// The bytes of service/openapi.json as built into this binary.
std::string_view OpenApiDocument();

}  // namespace billing::api
