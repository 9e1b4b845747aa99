// The real ledgerd over loopback with a tokens file: producers of two orgs
// use equal event ids without meeting, and the rejected store stays bounded
// (a huge message kept as a marked prefix that is not re-driven, pages cut by
// bytes with a cursor, each org keeping its newest rejections).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"

namespace billing {
namespace {

using Json = nlohmann::json;
using testing::HttpResponse;
using testing::Ledgerd;

using Headers = std::map<std::string, std::string>;
Headers As(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

// Producers and auditors scoped to acme and kaiju-jp.
constexpr char kTokens[] =
    "# token role org name\n"
    "p-acme-token-0123456789 producer acme acme-feed\n"
    "p-kaiju-token-0123456789 producer kaiju-jp kaiju-feed\n"
    "a-acme-token-0123456789 auditor acme acme-audit\n"
    "a-kaiju-token-0123456789 auditor kaiju-jp kaiju-audit\n";

// A running ledgerd with kTokens; every request made as one of them.
struct Server {
  HttpResponse Get(const std::string& target, const std::string& token) {
    return ledgerd.Get(target, As(token));
  }
  HttpResponse Post(const std::string& target, const std::string& body, const std::string& token) {
    return ledgerd.Post(target, body, "application/json", As(token));
  }
  // Posts events; the answer's JSON, or null when the status is not 200.
  Json Ingest(const std::string& body, const std::string& token) {
    HttpResponse r = Post("/v1/events", body, token);
    EXPECT_EQ(r.status, 200) << r.body.substr(0, 500);
    return r.status == 200 ? Json::parse(r.body) : Json();
  }

  Ledgerd ledgerd{{.tokens = kTokens}};
};

std::string OrgCreated(const std::string& org, const std::string& currency) {
  return Json{{"event_id", org + ":org:1"},
              {"org_id", org},
              {"occurred_at", "2026-01-01T00:00:00Z"},
              {"organization_created",
               {{"name", org}, {"currency", currency}, {"billing_account", "BA-1"}}}}
      .dump();
}

Json Support(const std::string& org, const std::string& id, const std::string& amount,
             const std::string& description = "support") {
  return Json{{"event_id", id},
              {"org_id", org},
              {"occurred_at", "2026-01-05T00:00:00Z"},
              {"support_charged",
               {{"month", "2026-01"}, {"amount", amount}, {"description", description}}}};
}

std::string Void(const std::string& org, const std::string& id, const std::string& target) {
  return Json{{"event_id", id},
              {"org_id", org},
              {"occurred_at", "2026-01-06T00:00:00Z"},
              {"event_voided", {{"voided_event_id", target}, {"reason", "test"}}}}
      .dump();
}

// Every rejection a token may list, following next_after; each page's JSON in `pages`.
std::vector<Json> ListAll(Server& s, const std::string& token, std::vector<Json>* pages = nullptr) {
  std::vector<Json> all;
  Json after = 0;
  for (int n = 0; !after.is_null(); ++n) {
    EXPECT_LT(n, 100) << "the listing does not end";
    if (n >= 100) break;
    HttpResponse r =
        s.Get("/v1/ledger/rejected?after=" + std::to_string(after.get<uint64_t>()), token);
    EXPECT_EQ(r.status, 200) << r.body.substr(0, 500);
    if (r.status != 200) break;
    Json page = Json::parse(r.body);
    for (const Json& rec : page["rejected"]) all.push_back(rec);
    after = page["next_after"];
    if (pages) pages->push_back(std::move(page));
  }
  return all;
}

TEST(Tenancy, EqualEventIdsOfTwoOrgsNeverCollideBlockOrReveal) {
  Server s;
  s.Ingest(OrgCreated("acme", "USD"), "p-acme-token-0123456789");
  s.Ingest(OrgCreated("kaiju-jp", "JPY"), "p-kaiju-token-0123456789");
  // kaiju-jp posts first under an id acme is about to use.
  Json k =
      s.Ingest(Support("kaiju-jp", "acme:use:99999", "500").dump(), "p-kaiju-token-0123456789");
  EXPECT_EQ(k["accepted"], 1);
  Json a = s.Ingest(
      Json::array({Support("acme", "acme:use:99999", "12.50"), Support("acme", "acme:sup:1", "1")})
          .dump(),
      "p-acme-token-0123456789");
  EXPECT_EQ(a["accepted"], 2) << a.dump();
  EXPECT_EQ(a["rejected"], Json::array());
  // Each org's re-send is its own duplicate; a changed re-send conflicts only within its org.
  EXPECT_EQ(s.Ingest(Support("kaiju-jp", "acme:use:99999", "500").dump(),
                     "p-kaiju-token-0123456789")["duplicates"],
            1);
  Json changed =
      s.Ingest(Support("acme", "acme:use:99999", "99").dump(), "p-acme-token-0123456789");
  ASSERT_EQ(changed["rejected"].size(), 1u);
  EXPECT_EQ(changed["rejected"][0]["code"], "conflict");
  // kaiju-jp cannot void acme's event: to kaiju-jp it does not exist.
  Json cross = s.Ingest(Void("kaiju-jp", "kaiju:void:1", "acme:sup:1"), "p-kaiju-token-0123456789");
  ASSERT_EQ(cross["rejected"].size(), 1u);
  EXPECT_EQ(cross["rejected"][0]["code"], "unknown_event");
  // Its void of the shared id reverses its own event, never acme's.
  EXPECT_EQ(s.Ingest(Void("kaiju-jp", "kaiju:void:2", "acme:use:99999"),
                     "p-kaiju-token-0123456789")["accepted"],
            1);
  HttpResponse acme = s.Get("/v1/orgs/acme/usage-history/2026-01", "a-acme-token-0123456789");
  ASSERT_EQ(acme.status, 200) << acme.body;
  EXPECT_EQ(Json::parse(acme.body)["total"], "13.50");
  HttpResponse kaiju = s.Get("/v1/orgs/kaiju-jp/usage-history/2026-01", "a-kaiju-token-0123456789");
  ASSERT_EQ(kaiju.status, 200) << kaiju.body;
  EXPECT_EQ(Json::parse(kaiju.body)["total"], "0");
}

TEST(Tenancy, AHugeRejectedMessageIsKeptAsAMarkedPrefixAndIsNotRetried) {
  Server s;
  s.Ingest(OrgCreated("acme", "USD"), "p-acme-token-0123456789");
  // A 200 KB description is over the text limit: rejected, and too long to keep whole.
  std::string huge = Support("acme", "acme:huge:1", "1", std::string(200 * 1024, 'd')).dump();
  Json r = s.Ingest(huge, "p-acme-token-0123456789");
  ASSERT_EQ(r["rejected"].size(), 1u);
  std::vector<Json> listed = ListAll(s, "a-acme-token-0123456789");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["raw_truncated"], true);
  EXPECT_EQ(listed[0]["raw_bytes"], huge.size());
  EXPECT_EQ(listed[0]["raw"].get<std::string>(), huge.substr(0, 64 * 1024));
  uint64_t id = listed[0]["id"];
  HttpResponse retry =
      s.Post("/v1/ledger/rejected/" + std::to_string(id) + "/retry", "", "p-acme-token-0123456789");
  EXPECT_EQ(retry.status, 409) << retry.body;
  EXPECT_EQ(Json::parse(retry.body)["error"]["code"], "raw_truncated");
  // A rejection kept whole is still re-driven.
  Json small = s.Ingest(Support("acme", "acme:cc:1", "1").dump().replace(0, 1, "{\"x\":1,"),
                        "p-acme-token-0123456789");
  ASSERT_EQ(small["rejected"].size(), 1u);
  listed = ListAll(s, "a-acme-token-0123456789");
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[1]["raw_truncated"], false);
  HttpResponse again =
      s.Post("/v1/ledger/rejected/" + std::to_string(listed[1]["id"].get<uint64_t>()) + "/retry",
             "", "p-acme-token-0123456789");
  EXPECT_EQ(again.status, 200) << again.body;
}

TEST(Tenancy, TheRejectedListingPagesByBytesAndShowsOnlyTheTokensOrg) {
  Server s;
  Json bad = Json::array();
  for (int i = 0; i < 40; ++i)
    bad.push_back(
        Support("acme", "acme:big:" + std::to_string(i), "1", std::string(60 * 1024, 'd')));
  EXPECT_EQ(s.Ingest(bad.dump(), "p-acme-token-0123456789")["rejected"].size(), 40u);
  s.Ingest(Json::array({Support("kaiju-jp", "k:1", "1"), Support("kaiju-jp", "k:2", "1")}).dump(),
           "p-kaiju-token-0123456789");
  std::vector<Json> pages;
  std::vector<Json> acme = ListAll(s, "a-acme-token-0123456789", &pages);
  ASSERT_EQ(acme.size(), 40u);
  // 40 x 60 KiB does not fit one 1 MiB page: the cursor carries the rest.
  EXPECT_GE(pages.size(), 3u);
  for (const Json& page : pages) EXPECT_LT(page.dump().size(), 2u * 1024 * 1024);
  for (size_t i = 0; i < acme.size(); ++i) {
    EXPECT_EQ(acme[i]["org_id"], "acme");
    if (i > 0) {
      EXPECT_GT(acme[i]["id"].get<uint64_t>(), acme[i - 1]["id"].get<uint64_t>());
    }
  }
  std::vector<Json> kaiju = ListAll(s, "a-kaiju-token-0123456789");
  ASSERT_EQ(kaiju.size(), 2u);
  EXPECT_EQ(kaiju[0]["org_id"], "kaiju-jp");
}

TEST(Tenancy, AFloodOfRejectionsKeepsEachOrgsNewestAndBlocksNothing) {
  Server s;
  s.Ingest(OrgCreated("acme", "USD"), "p-acme-token-0123456789");
  s.Ingest(Json{{"org_id", "kaiju-jp"}}.dump(), "p-kaiju-token-0123456789");
  // 1005 messages naming acme and nothing else: acme keeps its newest 1000.
  Json flood = Json::array();
  for (int i = 0; i < 1005; ++i) flood.push_back(Json{{"org_id", "acme"}, {"n", i}});
  EXPECT_EQ(s.Ingest(flood.dump(), "p-acme-token-0123456789")["rejected"].size(), 1005u);
  std::vector<Json> acme = ListAll(s, "a-acme-token-0123456789");
  ASSERT_EQ(acme.size(), 1000u);
  EXPECT_NE(acme.front()["raw"].get<std::string>().find("\"n\":5,"), std::string::npos)
      << acme.front().dump();
  EXPECT_NE(acme.back()["raw"].get<std::string>().find("\"n\":1004,"), std::string::npos);
  // Another org's rejections are untouched, and acme's good events still go in.
  EXPECT_EQ(ListAll(s, "a-kaiju-token-0123456789").size(), 1u);
  EXPECT_EQ(
      s.Ingest(Support("acme", "acme:ok:1", "1").dump(), "p-acme-token-0123456789")["accepted"], 1);
}

}  // namespace
}  // namespace billing
