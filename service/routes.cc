#include "service/routes.h"

#include "service/service.h"

namespace billing::api {

const std::vector<Service::Route>& Service::Routes() {
  using A = Access;
  using C = Cost;
  using B = Body;
  // One row per route; service/openapi.json describes each one (routes_test
  // holds them to each other). The first match wins: a `{x}.csv` row comes
  // before the `{x}` row of the same place.
  static const std::vector<Route> kRoutes = {
      {{"GET", "/healthz", A::kPublic, C::kInline, B::kNone, "healthz"}, &Service::Healthz},
      {{"GET", "/readyz", A::kPublic, C::kInline, B::kNone, "readyz"}, &Service::Readyz},
      {{"GET", "/", A::kPublic, C::kInline, B::kNone, "web"}, &Service::WebPage},
      {{"GET", "/web/{file}", A::kPublic, C::kInline, B::kNone, "web"}, &Service::WebFile},
      {{"GET", "/v1/openapi.json", A::kPublic, C::kInline, B::kNone, "openapi"}, &Service::OpenApi},
      {{"GET", "/metrics", A::kAuditor, C::kInline, B::kNone, "metrics"}, &Service::MetricsText},
      {{"POST", "/v1/events", A::kProducer, C::kHeavyBody, B::kEvents, "post_events"},
       &Service::PostEvents},
      {{"GET", "/v1/orgs/{org}", A::kOrgReader, C::kHeavyAsOf, B::kNone, "org"},
       &Service::Structure},
      {{"GET", "/v1/orgs/{org}/dashboard", A::kOrgReader, C::kHeavyAsOf, B::kNone, "dashboard"},
       &Service::Dashboard},
      {{"GET", "/v1/orgs/{org}/alerts", A::kOrgReader, C::kHeavyAsOf, B::kNone, "alerts"},
       &Service::Alerts},
      {{"GET", "/v1/orgs/{org}/usage-history", A::kOrgReader, C::kHeavyAsOf, B::kNone,
        "usage_history"},
       &Service::UsageHistory},
      {{"GET", "/v1/orgs/{org}/usage-history/{month}.csv", A::kOrgReader, C::kHeavy, B::kNone,
        "usage_month_csv"},
       &Service::UsageMonthCsv},
      {{"GET", "/v1/orgs/{org}/usage-history/{month}", A::kOrgReader, C::kHeavyAsOf, B::kNone,
        "usage_month"},
       &Service::UsageMonth},
      // Replays the org's ledger even at the head (replay_matches_store).
      {{"GET", "/v1/orgs/{org}/usage-history/{month}/proof", A::kOrgReader, C::kHeavy, B::kNone,
        "usage_month_proof"},
       &Service::UsageMonthProof},
      {{"GET", "/v1/orgs/{org}/usage-history/{month}/items/{item_id}", A::kOrgReader, C::kHeavyAsOf,
        B::kNone, "usage_item"},
       &Service::UsageItem},
      // A page reads up to projections::kExplainPageLinesMax ledger records:
      // on the pool, as_of or not (the index answers the past without a replay).
      {{"GET", "/v1/orgs/{org}/usage-history/{month}/items/{item_id}/events", A::kOrgReader,
        C::kHeavy, B::kNone, "usage_item_events"},
       &Service::UsageItemEvents},
      {{"GET", "/v1/orgs/{org}/invoices", A::kOrgReader, C::kHeavyAsOf, B::kNone, "invoices"},
       &Service::Invoices},
      {{"GET", "/v1/orgs/{org}/invoices/{invoice_id}.csv", A::kOrgReader, C::kHeavy, B::kNone,
        "invoice_csv"},
       &Service::InvoiceCsv},
      {{"GET", "/v1/orgs/{org}/invoices/{invoice_id}.pdf", A::kOrgReader, C::kHeavy, B::kNone,
        "invoice_pdf"},
       &Service::InvoicePdf},
      {{"GET", "/v1/orgs/{org}/invoices/{invoice_id}", A::kOrgReader, C::kHeavyAsOf, B::kNone,
        "invoice"},
       &Service::Invoice},
      {{"GET", "/v1/orgs/{org}/invoices/{invoice_id}/events", A::kOrgReader, C::kHeavy, B::kNone,
        "invoice_events"},
       &Service::InvoiceEvents},
      {{"GET", "/v1/ledger/events", A::kAuditor, C::kStreamed, B::kNone, "ledger_events"},
       &Service::LedgerEvents},
      {{"GET", "/v1/ledger/verify", A::kAuditor, C::kHeavy, B::kNone, "ledger_verify"},
       &Service::Verify},
      {{"GET", "/v1/cluster", A::kAuditor, C::kInline, B::kNone, "cluster"}, &Service::Cluster},
      {{"GET", "/v1/ledger/rejected", A::kAuditor, C::kInline, B::kNone, "ledger_rejected"},
       &Service::Rejected},
      {{"POST", "/v1/ledger/rejected/{id}/retry", A::kProducer, C::kInline, B::kNone,
        "ledger_retry"},
       &Service::Retry},
      {{"GET", "/v1/webhooks/deliveries", A::kAdmin, C::kInline, B::kNone, "webhook_deliveries"},
       &Service::WebhookDeliveries},
      {{"POST", "/v1/webhooks/deliveries/{id}/retry", A::kAdmin, C::kInline, B::kNone,
        "webhook_retry"},
       &Service::WebhookRetry},
  };
  return kRoutes;
}

std::span<const RouteSpec> Service::RouteTable() {
  static const std::vector<RouteSpec> kSpecs = [] {
    std::vector<RouteSpec> specs;
    for (const Route& r : Routes()) specs.push_back(r.spec);
    return specs;
  }();
  return kSpecs;
}

const std::string& PathParams::Get(std::string_view name) const {
  static const std::string kNone;
  for (const auto& [n, v] : values_) {
    if (n == name) return v;
  }
  return kNone;
}

bool MatchPattern(std::string_view pattern, const std::vector<std::string>& segments,
                  PathParams* params) {
  // "/" is one empty segment, as ParseTarget splits it.
  std::string_view rest = pattern.substr(1);
  for (size_t i = 0;; ++i) {
    const size_t slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    if (i >= segments.size()) return false;
    const std::string& segment = segments[i];
    if (part.starts_with('{')) {
      const size_t close = part.find('}');
      const std::string_view suffix = part.substr(close + 1);
      if (!segment.ends_with(suffix)) return false;
      params->Add(part.substr(1, close - 1), segment.substr(0, segment.size() - suffix.size()));
    } else if (segment != part) {
      return false;
    }
    if (slash == std::string_view::npos) return i + 1 == segments.size();
    rest = rest.substr(slash + 1);
  }
}

RouteMatch FindRoute(std::span<const RouteSpec> routes, std::string_view method,
                     const std::vector<std::string>& segments) {
  RouteMatch match;
  if (method == "HEAD") method = "GET";
  for (size_t i = 0; i < routes.size(); ++i) {
    PathParams params;
    if (!MatchPattern(routes[i].pattern, segments, &params)) continue;
    if (!match.path_index) match.path_index = i;
    std::string allowed = routes[i].method == "GET" ? "GET, HEAD" : std::string(routes[i].method);
    if (match.allow.find(allowed) == std::string::npos) {
      match.allow += (match.allow.empty() ? "" : ", ") + allowed;
    }
    if (!match.index && routes[i].method == method) {
      match.index = i;
      match.params = std::move(params);
    }
  }
  return match;
}

bool RoleMay(Access access, Role role) {
  if (access == Access::kPublic || role == Role::kAdmin) return true;
  switch (access) {
    case Access::kOrgReader:
      return role == Role::kViewer || role == Role::kAuditor;
    case Access::kProducer:
      return role == Role::kProducer;
    case Access::kAuditor:
      return role == Role::kAuditor;
    case Access::kAdmin:
      return false;  // admins were admitted above
    case Access::kPublic:
      return true;
  }
  return false;
}

}  // namespace billing::api
