// The route table and service/openapi.json describe the same routes both ways
// (method, path, who may call it), patterns match as documented, and the real
// ledgerd answers 404, 405 with Allow, 401 and the public contract from the table.
#include "service/routes.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "service/openapi_document.h"
#include "service/service.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing::api {
namespace {

using Json = nlohmann::json;

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// "GET /v1/orgs/{org}" for every operation of the document.
std::set<std::string> DocumentedRoutes(const Json& doc) {
  std::set<std::string> out;
  for (const auto& [path, item] : doc.at("paths").items()) {
    for (const auto& [method, operation] : item.items()) {
      if (method == "parameters" || method == "summary" || method == "description") continue;
      out.insert(Upper(method) + " " + path);
    }
  }
  return out;
}

TEST(Routes, TableAndOpenApiDocumentListTheSameRoutes) {
  Json doc = Json::parse(OpenApiDocument());
  std::set<std::string> table;
  for (const RouteSpec& r : Service::RouteTable()) {
    EXPECT_TRUE(table.insert(std::string(r.method) + " " + std::string(r.pattern)).second)
        << r.method << " " << r.pattern << " is in the table twice";
  }
  std::set<std::string> documented = DocumentedRoutes(doc);
  for (const auto& route : table) {
    EXPECT_TRUE(documented.count(route)) << route << " is served but not in service/openapi.json";
  }
  for (const auto& route : documented) {
    EXPECT_TRUE(table.count(route))
        << route << " is in service/openapi.json but not in the route table";
  }
}

TEST(Routes, DocumentedAccessIsTheTablesAccess) {
  Json doc = Json::parse(OpenApiDocument());
  const std::vector<std::pair<std::string, Role>> roles = {{"viewer", Role::kViewer},
                                                           {"producer", Role::kProducer},
                                                           {"auditor", Role::kAuditor},
                                                           {"admin", Role::kAdmin}};
  for (const RouteSpec& r : Service::RouteTable()) {
    std::string method(r.method);
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    const Json* op = doc["paths"].contains(std::string(r.pattern)) &&
                             doc["paths"][std::string(r.pattern)].contains(method)
                         ? &doc["paths"][std::string(r.pattern)][method]
                         : nullptr;
    if (op == nullptr) continue;  // the test above names it
    const bool documented_public = op->contains("security") && (*op)["security"].empty();
    EXPECT_EQ(documented_public, r.access == Access::kPublic) << r.pattern << ": security";
    if (r.access == Access::kPublic) continue;
    std::set<std::string> documented_roles;
    for (const auto& role : op->value("x-roles", Json::array()))
      documented_roles.insert(role.get<std::string>());
    for (const auto& [name, role] : roles) {
      EXPECT_EQ(documented_roles.count(name) == 1, RoleMay(r.access, role))
          << r.method << " " << r.pattern << ": " << name;
    }
    EXPECT_TRUE((*op)["responses"].contains("401")) << r.pattern;
    EXPECT_TRUE((*op)["responses"].contains("403")) << r.pattern;
  }
}

TEST(Routes, PatternsMatchWholeSegmentsAndCsvSuffixes) {
  PathParams p;
  EXPECT_TRUE(MatchPattern("/v1/orgs/{org}/usage-history/{month}.csv",
                           {"v1", "orgs", "a/b", "usage-history", "2026-01.csv"}, &p));
  EXPECT_EQ(p.Get("org"), "a/b");
  EXPECT_EQ(p.Get("month"), "2026-01");
  EXPECT_FALSE(MatchPattern("/v1/orgs/{org}/usage-history/{month}.csv",
                            {"v1", "orgs", "a", "usage-history", "2026-01"}, &p));
  EXPECT_FALSE(MatchPattern("/v1/orgs/{org}", {"v1", "orgs"}, &p));
  EXPECT_FALSE(MatchPattern("/v1/orgs/{org}", {"v1", "orgs", "a", "dashboard"}, &p));
  EXPECT_TRUE(MatchPattern("/", {""}, &p));
  EXPECT_FALSE(MatchPattern("/", {"healthz"}, &p));
  // The `.csv` row wins over the plain one; a month item is not an invoice.
  RouteMatch m = FindRoute(Service::RouteTable(), "GET",
                           {"v1", "orgs", "acme", "invoices", "2026-01-org.csv"});
  ASSERT_TRUE(m.index);
  EXPECT_EQ(Service::RouteTable()[*m.index].name, "invoice_csv");
  m = FindRoute(Service::RouteTable(), "HEAD", {"v1", "orgs", "acme", "dashboard"});
  ASSERT_TRUE(m.index) << "HEAD is looked up as GET";
  m = FindRoute(Service::RouteTable(), "DELETE", {"v1", "orgs", "acme", "dashboard"});
  EXPECT_FALSE(m.index);
  EXPECT_EQ(m.allow, "GET, HEAD");
  m = FindRoute(Service::RouteTable(), "GET", {"v1", "orgs", "acme", "nothing"});
  EXPECT_FALSE(m.path_index);
  EXPECT_EQ(m.allow, "");
}

// ---- The real ledgerd, with access control on.

constexpr const char* kAdminToken = "routes-admin-token-0123456789";
constexpr const char* kViewerToken = "routes-viewer-token-0123456789";

struct Server {
  Server() {
    std::string tokens = tmp.sub("tokens");
    std::ofstream(tokens) << kAdminToken << " admin *\n" << kViewerToken << " viewer acme\n";
    chmod(tokens.c_str(), 0600);
    child = std::make_unique<testing::Child>(
        std::vector<std::string>{testing::BuildDir() + "/ledgerd", "--data-dir", tmp.sub("data"),
                                 "--http", "127.0.0.1:0", "--no-access-log", "--tokens", tokens});
    std::string url = child->WaitForLine("listening on http://127.0.0.1:");
    EXPECT_FALSE(url.empty()) << "ledgerd did not start";
    port = url.empty() ? 0 : static_cast<uint16_t>(std::stoi(url));
  }
  testing::HttpResponse Call(const std::string& method, const std::string& target,
                             const std::string& token = "") {
    std::map<std::string, std::string> headers;
    if (!token.empty()) headers["Authorization"] = std::string("Bearer ") + token;
    return testing::Http(port, method, target, "", method == "POST" ? "application/json" : "",
                         headers);
  }
  testing::TempDir tmp;
  std::unique_ptr<testing::Child> child;
  uint16_t port = 0;
};

TEST(Routes, LedgerdServesItsContractWithoutAToken) {
  Server s;
  auto r = s.Call("GET", "/v1/openapi.json");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["Content-Type"], "application/json");
  EXPECT_EQ(r.body, OpenApiDocument());
  EXPECT_EQ(Json::parse(r.body)["openapi"], "3.1.0");
}

TEST(Routes, UnknownPathsAndMethodsFollowTheTable) {
  Server s;
  // Without a token, a path that is not public is 401 whether or not it exists.
  EXPECT_EQ(s.Call("GET", "/v1/nothing").status, 401);
  EXPECT_EQ(s.Call("DELETE", "/v1/orgs/acme/dashboard").status, 401);
  EXPECT_EQ(s.Call("GET", "/v1/nothing", kAdminToken).status, 404);
  EXPECT_EQ(s.Call("GET", "/v1/orgs/acme/nothing", kAdminToken).status, 404);
  auto wrong = s.Call("DELETE", "/v1/orgs/acme/dashboard", kAdminToken);
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.headers["Allow"], "GET, HEAD");
  EXPECT_EQ(Json::parse(wrong.body)["error"]["code"], "method_not_allowed");
  auto post_only = s.Call("GET", "/v1/ledger/rejected/1/retry", kAdminToken);
  EXPECT_EQ(post_only.status, 405);
  EXPECT_EQ(post_only.headers["Allow"], "POST");
  // Public paths answer 405 without a token.
  auto probe = s.Call("POST", "/healthz");
  EXPECT_EQ(probe.status, 405);
  EXPECT_EQ(probe.headers["Allow"], "GET, HEAD");
  // The table's access: a viewer reads its org, not another's, and does not post.
  EXPECT_EQ(s.Call("GET", "/v1/orgs/acme/dashboard", kViewerToken).status, 404)
      << "unknown org, but allowed";
  EXPECT_EQ(s.Call("GET", "/v1/orgs/other/dashboard", kViewerToken).status, 403);
  EXPECT_EQ(s.Call("GET", "/v1/ledger/verify", kViewerToken).status, 403);
  EXPECT_EQ(s.Call("POST", "/v1/ledger/rejected/1/retry", kViewerToken).status, 403);
  EXPECT_EQ(s.Call("GET", "/v1/ledger/verify", kAdminToken).status, 200);
}

// `shard` on a single ledgerd: 0 is its one ledger, the same answer as
// without it; any other value, or one that is not a whole number, is 400.
TEST(Routes, SingleLedgerdAnswersShardZeroAndRefusesAnyOtherShard) {
  Server s;
  auto post = [&s](const std::string& body) {
    return testing::Http(s.port, "POST", "/v1/events", body, "application/json",
                         {{"Authorization", std::string("Bearer ") + kAdminToken}});
  };
  ASSERT_EQ(
      post(R"({"event_id":"e1","org_id":"acme","occurred_at":"2026-01-01T00:00:00Z",)"
           R"("organization_created":{"name":"Acme","currency":"USD","billing_account":"BA"}})")
          .status,
      200);
  // An event of an unknown org: rejected, so the rejected store holds id 1.
  ASSERT_EQ(post(R"({"event_id":"e2","org_id":"nobody","occurred_at":"2026-01-01T00:00:00Z",)"
                 R"("cost_center_created":{"cost_center_id":"cc","name":"C"}})")
                .status,
            200);
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/v1/ledger/events"},
      {"GET", "/v1/ledger/verify"},
      {"GET", "/v1/ledger/rejected"},
      {"POST", "/v1/ledger/rejected/1/retry"}};
  for (const auto& [method, path] : routes) {
    auto plain = s.Call(method, path, kAdminToken);
    auto zero = s.Call(method, path + "?shard=0", kAdminToken);
    EXPECT_EQ(plain.status, 200) << path << ": " << plain.body;
    EXPECT_EQ(zero.status, plain.status) << path;
    EXPECT_EQ(zero.body, plain.body) << path;
    EXPECT_FALSE(plain.body.empty()) << path;
    for (const char* shard : {"1", "-1", "x", "", "00000000000000000001"}) {
      auto r = s.Call(method, path + "?shard=" + shard, kAdminToken);
      EXPECT_EQ(r.status, 400) << method << " " << path << "?shard=" << shard;
      if (r.status == 400) {
        EXPECT_EQ(Json::parse(r.body)["error"]["code"], "invalid_argument") << path;
      }
    }
  }
}

}  // namespace
}  // namespace billing::api
