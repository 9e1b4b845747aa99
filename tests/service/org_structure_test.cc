// GET /v1/orgs/{org} on the real ledgerd: names of every level, lists sorted
// by id, a provider under the workspace of its latest-dated placement (a
// future move and a tie included), as_of, an unknown org, and names that
// survive a restart (the stored structure keeps them).
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using Json = nlohmann::json;
using testing::HttpResponse;
using testing::Ledgerd;
using testing::TempDir;

std::string Event(const std::string& id, const std::string& at, const std::string& payload) {
  return R"({"event_id":")" + id + R"(","org_id":"org-s","occurred_at":")" + at + R"(",)" +
         payload + "}\n";
}

// Created out of id order on purpose; p-2 moves to ws-b in the future, p-3
// moves twice at one instant (the later in the ledger wins).
std::string Events() {
  return Event(
             "e1", "2026-01-01T00:00:00Z",
             R"("organization_created":{"name":"Org S","currency":"EUR","billing_account":"S-1"})") +
         Event("e2", "2026-01-01T00:00:00Z",
               R"("cost_center_created":{"cost_center_id":"cc-z","name":"Zeta"})") +
         Event("e3", "2026-01-01T00:00:00Z",
               R"("cost_center_created":{"cost_center_id":"cc-a","name":"Alpha"})") +
         Event(
             "e4", "2026-01-01T00:00:00Z",
             R"("workspace_created":{"workspace_id":"ws-b","cost_center_id":"cc-a","name":"Bravo"})") +
         Event(
             "e5", "2026-01-01T00:00:00Z",
             R"("workspace_created":{"workspace_id":"ws-a","cost_center_id":"cc-a","name":"Able"})") +
         Event(
             "e6", "2026-01-01T00:00:00Z",
             R"("provider_registered":{"provider_id":"p-2","workspace_id":"ws-a","name":"Two","kind":"aws"})") +
         Event(
             "e7", "2026-01-01T00:00:00Z",
             R"("provider_registered":{"provider_id":"p-1","workspace_id":"ws-a","name":"One","kind":"gcp"})") +
         Event(
             "e8", "2026-01-01T00:00:00Z",
             R"("provider_registered":{"provider_id":"p-3","workspace_id":"ws-a","name":"Three","kind":"azure"})") +
         Event("e9", "2099-01-01T00:00:00Z",
               R"("provider_moved":{"provider_id":"p-2","workspace_id":"ws-b"})") +
         Event("e10", "2026-02-01T00:00:00Z",
               R"("provider_moved":{"provider_id":"p-3","workspace_id":"ws-b"})") +
         Event("e11", "2026-02-01T00:00:00Z",
               R"("provider_moved":{"provider_id":"p-3","workspace_id":"ws-a"})") +
         Event("e12", "2026-02-01T00:00:00Z",
               R"("billing_account_assigned":{"cost_center_id":"cc-a","billing_account":"S-A"})");
}

const Json kExpected =
    Json::parse(R"({"org_id":"org-s","name":"Org S","currency":"EUR","billing_account":"S-1",
  "cost_centers":[
    {"cost_center_id":"cc-a","name":"Alpha","billing_account":"S-A","workspaces":[
      {"workspace_id":"ws-a","name":"Able","providers":[
        {"provider_id":"p-1","name":"One","kind":"gcp"},{"provider_id":"p-3","name":"Three","kind":"azure"}]},
      {"workspace_id":"ws-b","name":"Bravo","providers":[{"provider_id":"p-2","name":"Two","kind":"aws"}]}]},
    {"cost_center_id":"cc-z","name":"Zeta","billing_account":null,"workspaces":[]}]})");

TEST(OrgStructure, ListsNamesSortedWithEachProviderWhereItsLatestPlacementPutsIt) {
  Ledgerd s;
  HttpResponse post = s.Post("/v1/events", Events(), "application/x-ndjson");
  ASSERT_EQ(post.status, 200) << post.body;
  ASSERT_EQ(Json::parse(post.body)["accepted"], 12) << post.body;

  HttpResponse r = s.Get("/v1/orgs/org-s");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body), kExpected) << r.body;
}

TEST(OrgStructure, AsOfAnswersTheStructureAsItStoodThen) {
  Ledgerd s;
  ASSERT_EQ(s.Post("/v1/events", Events(), "application/x-ndjson").status, 200);
  // After e7: p-2 and p-1 registered in ws-a, no account for cc-a yet.
  HttpResponse r = s.Get("/v1/orgs/org-s?as_of=7");
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = Json::parse(r.body);
  EXPECT_EQ(j["cost_centers"][0]["billing_account"], nullptr);
  EXPECT_EQ(
      j["cost_centers"][0]["workspaces"][0]["providers"],
      Json::parse(
          R"([{"provider_id":"p-1","name":"One","kind":"gcp"},{"provider_id":"p-2","name":"Two","kind":"aws"}])"));
  EXPECT_EQ(j["cost_centers"][0]["workspaces"][1]["providers"], Json::array());
  EXPECT_EQ(s.Get("/v1/orgs/org-s?as_of=x").status, 400);
}

TEST(OrgStructure, UnknownOrgIs404) {
  Ledgerd s;
  HttpResponse r = s.Get("/v1/orgs/nobody");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("unknown_org"), std::string::npos) << r.body;
}

TEST(OrgStructure, WorkspaceNamesSurviveARestart) {
  TempDir tmp;
  {
    Ledgerd s({.data_dir = tmp.sub("data")});
    ASSERT_EQ(s.Post("/v1/events", Events(), "application/x-ndjson").status, 200);
  }
  Ledgerd again({.data_dir = tmp.sub("data")});
  HttpResponse r = again.Get("/v1/orgs/org-s");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body), kExpected) << r.body;
}

}  // namespace
}  // namespace billing
