// Routes: what the router knows of each route of the HTTP API before it runs
// a handler. One row per (method, path pattern) says who may call it (Access),
// where it runs (Cost), whether it reads a body, and its metrics label; the
// table itself is Service::Routes() (service/routes.cc), next to the handlers it
// names, and service/openapi.json describes the same rows for clients (a test
// holds the two to each other, tests/service/routes_test.cc).
//
// Patterns are absolute paths whose segments are literals, `{name}` (any one
// segment, decoded) or `{name}.csv` (a segment ending in `.csv`; the parameter
// is what comes before). "/" is the one empty segment. The first row whose
// method and pattern both match a request is its route; a path matched by some
// rows but not for the request's method is 405 with their methods in `Allow`.
// Pure functions and constant data: thread-safe.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "service/auth.h"

namespace billing::api {

// Who may call a route. An admin may call every route.
enum class Access {
  kPublic,     // anyone, without a token: probes, the web page, the contract
  kOrgReader,  // viewer or auditor whose scope holds the path's {org}; the answer
               // reads that org's read models only, so it is cached per org version
  kProducer,   // producer: writes events (each event's org must be in scope)
  kAuditor,    // auditor: the ledger, the rejected store, metrics
  kAdmin,      // admin only: operator matters (webhook deliveries)
};

// Where a route's work runs. Heavy work runs on the worker pool
// (http/worker_pool.h), never on an HTTP I/O thread, so that one auditor's
// verify cannot stall every dashboard on the same thread.
enum class Cost {
  kInline,     // a few key reads: on the I/O thread
  kHeavy,      // reads the whole ledger or an org's whole history: on the pool
  kHeavyAsOf,  // inline, but on the pool when `as_of` asks for a replay of the past
  kHeavyBody,  // inline, but on the pool when the body is over kInlineBodyBytesMax
  kStreamed,   // head inline; each chunk of the streamed body is made on the pool
};

// Whether a route reads a request body. Only ingest does: a body on any other
// route is refused from the head (400), before a byte of it is buffered.
enum class Body { kNone, kEvents };

struct RouteSpec {
  std::string_view method;   // "GET" (HEAD is served as GET) or "POST"
  std::string_view pattern;  // e.g. "/v1/orgs/{org}/invoices/{invoice_id}.csv"
  Access access;
  Cost cost;
  Body body;
  std::string_view name;  // the route label of ledger_http_requests_total
};

// A path's parameters by name, values percent-decoded.
class PathParams {
 public:
  void Add(std::string_view name, std::string value) {
    values_.emplace_back(name, std::move(value));
  }
  // The value of `name`; "" when the pattern has no such parameter.
  const std::string& Get(std::string_view name) const;

 private:
  std::vector<std::pair<std::string_view, std::string>> values_;
};

// Whether `segments` (http/target.h, decoded) match `pattern`; fills `params`.
bool MatchPattern(std::string_view pattern, const std::vector<std::string>& segments,
                  PathParams* params);

struct RouteMatch {
  // Index into the table of the route matching method and path; nullopt
  // when none does (404 when `allow` is empty, else 405).
  std::optional<size_t> index;
  // The first row whose pattern matches the path, whatever its method: its
  // access decides whether a token is needed before 404/405 is answered,
  // and its name labels the request in the metrics.
  std::optional<size_t> path_index;
  PathParams params;
  std::string allow;  // the path's methods, "GET, HEAD" for GET, comma-separated
};

// Finds the route of `method` (HEAD is looked up as GET) and `segments` in
// `routes`, first match wins.
RouteMatch FindRoute(std::span<const RouteSpec> routes, std::string_view method,
                     const std::vector<std::string>& segments);

// Whether `role` may call a route of `access` (kPublic: everyone).
bool RoleMay(Access access, Role role);

}  // namespace billing::api
