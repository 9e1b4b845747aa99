// api::Service over a Ledgers of two real Billings (two data directories, one
// org in each), in-process through Service::Handle: org routes read their
// org's Billing, `?shard=N` picks the whole-ledger routes' Billing, a shard
// this instance does not serve now is 503 with Retry-After, and an answer
// cached from one Billing is never served from another; and LedgerOfRequest,
// the rule a cluster's front shares, picks the same ledger for each target.
#include "service/ledgers.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/target.h"
#include "ledger/prepare.h"
#include "metrics/metrics.h"
#include "projections/billing.h"
#include "service/service.h"
#include "tests/testing/temp_dir.h"

namespace billing::api {
namespace {

using Json = nlohmann::json;

// How long one in-process request may take to answer: it reads a ledger of
// two records; the rest is margin for a sanitizer build on a loaded machine.
constexpr std::chrono::seconds kAnswerTimeout{30};

// A cluster instance's view with two shards: org "beta" lives in shard 1,
// every other org in shard 0. Once `moved` is set, neither is served here.
class TwoShards final : public Ledgers {
 public:
  TwoShards(projections::Billing& zero, projections::Billing& one) : billings_{&zero, &one} {}
  projections::Billing* ForOrg(std::string_view org) const override {
    return ForShard(org == "beta" ? 1 : 0);
  }
  projections::Billing* ForShard(int shard) const override {
    if (moved.load() || shard < 0 || shard >= shards()) return nullptr;
    return billings_[shard];
  }
  int shards() const override { return 2; }

  std::atomic<bool> moved{false};

 private:
  std::array<projections::Billing*, 2> billings_;
};

struct Answer {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return "";
  }
};

std::string OrgCreated(const std::string& event_id, const std::string& org,
                       const std::string& name) {
  return Json{
      {"event_id", event_id},
      {"org_id", org},
      {"occurred_at", "2026-01-01T00:00:00Z"},
      {"organization_created", {{"name", name}, {"currency", "USD"}, {"billing_account", "BA"}}}}
      .dump();
}

class ServiceOverLedgers : public ::testing::Test {
 protected:
  void SetUp() override {
    zero_ = Open(dir_zero_);
    one_ = Open(dir_one_);
    ASSERT_TRUE(zero_ && one_);
    Append(*zero_, OrgCreated("e1", "acme", "Acme"));
    Append(*one_, OrgCreated("e1", "beta", "Beta"));
    // An event of an org that does not exist: shard 1's rejected store holds it.
    Append(*one_, Json{{"event_id", "e2"},
                       {"org_id", "nobody"},
                       {"occurred_at", "2026-01-01T00:00:00Z"},
                       {"cost_center_created", {{"cost_center_id", "cc"}, {"name", "C"}}}}
                      .dump());
    ledgers_ = std::make_unique<TwoShards>(*zero_, *one_);
    service_ = std::make_unique<Service>(*ledgers_, metrics_, ServiceOptions{});
  }
  void TearDown() override {
    // The Service goes before the Billings it reads.
    if (service_) service_->StopHeavyWork();
    service_.reset();
  }

  static std::unique_ptr<projections::Billing> Open(const testing::TempDir& dir) {
    projections::BillingOptions o;
    o.dir = dir.path();
    o.durability = ledger::Durability::kAsync;
    auto b = projections::Billing::Open(o);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return b.ok() ? std::move(b).value() : nullptr;
  }
  static void Append(projections::Billing& billing, const std::string& line) {
    ledger::AppendRequest request;
    request.entries.push_back(ledger::PrepareEntry(line, ledger::Source()));
    EXPECT_TRUE(billing.Submit(std::move(request)).status.ok());
  }

  // One request through Service::Handle, its streamed body read to the end.
  Answer Call(const std::string& method, const std::string& target, std::string body = "") {
    auto promise = std::make_shared<std::promise<HttpReply>>();
    std::future<HttpReply> replied = promise->get_future();
    HttpRequest request;
    request.method = method;
    request.target = target;
    request.has_body = !body.empty();
    if (!body.empty()) request.content_type = "application/json";
    request.body = std::move(body);
    service_->Handle(std::move(request),
                     [promise](HttpReply r) { promise->set_value(std::move(r)); });
    if (replied.wait_for(kAnswerTimeout) != std::future_status::ready) {
      ADD_FAILURE() << method << " " << target << " did not answer within "
                    << kAnswerTimeout.count() << " s";
      return {};
    }
    HttpReply reply = replied.get();
    Answer a{reply.status, std::move(reply.body), std::move(reply.headers)};
    if (reply.stream) {
      while (reply.stream(&a.body)) {
      }
    }
    return a;
  }
  Answer Get(const std::string& target) { return Call("GET", target); }

  // The org_id of each line of an NDJSON ledger stream.
  static std::vector<std::string> StreamOrgs(const Answer& a) {
    std::vector<std::string> orgs;
    size_t start = 0;
    for (size_t end; (end = a.body.find('\n', start)) != std::string::npos; start = end + 1) {
      orgs.push_back(Json::parse(a.body.substr(start, end - start))["event"]["org_id"]);
    }
    return orgs;
  }

  testing::TempDir dir_zero_, dir_one_;
  std::unique_ptr<projections::Billing> zero_, one_;
  std::unique_ptr<TwoShards> ledgers_;
  Metrics metrics_;
  std::unique_ptr<Service> service_;
};

TEST_F(ServiceOverLedgers, OrgRoutesReadTheirOrgsBilling) {
  auto acme = Get("/v1/orgs/acme");
  ASSERT_EQ(acme.status, 200) << acme.body;
  EXPECT_EQ(Json::parse(acme.body)["name"], "Acme");
  auto beta = Get("/v1/orgs/beta");
  ASSERT_EQ(beta.status, 200) << beta.body;
  EXPECT_EQ(Json::parse(beta.body)["name"], "Beta");
  EXPECT_EQ(Get("/v1/orgs/beta/dashboard").status, 200);
  EXPECT_EQ(Get("/v1/orgs/beta/invoices?month=2026-01").status, 200);
  // Shard 0 does not hold beta's history: the org's own shard answered.
  EXPECT_EQ(Get("/v1/orgs/beta/usage-history/2026-01.csv").status, 200);
}

TEST_F(ServiceOverLedgers, ShardParameterPicksTheWholeLedgersBilling) {
  EXPECT_EQ(StreamOrgs(Get("/v1/ledger/events")), std::vector<std::string>{"acme"});
  EXPECT_EQ(StreamOrgs(Get("/v1/ledger/events?shard=0")), std::vector<std::string>{"acme"});
  EXPECT_EQ(StreamOrgs(Get("/v1/ledger/events?shard=1")), std::vector<std::string>{"beta"});
  // The org-filtered stream reads the org's shard without being told.
  EXPECT_EQ(StreamOrgs(Get("/v1/ledger/events?org=beta")), std::vector<std::string>{"beta"});

  Json verify_zero = Json::parse(Get("/v1/ledger/verify").body);
  Json verify_one = Json::parse(Get("/v1/ledger/verify?shard=1").body);
  Json head_one = Json::parse(Get("/v1/ledger/events?shard=1").body);
  EXPECT_EQ(verify_one["ok"], true);
  EXPECT_EQ(verify_one["head_hash"], head_one["hash"]);
  EXPECT_NE(verify_zero["head_hash"], verify_one["head_hash"]);

  EXPECT_EQ(Json::parse(Get("/v1/ledger/rejected").body)["rejected"].size(), 0u);
  Json rejected_one = Json::parse(Get("/v1/ledger/rejected?shard=1").body)["rejected"];
  ASSERT_EQ(rejected_one.size(), 1u);
  EXPECT_EQ(rejected_one[0]["org_id"], "nobody");
  EXPECT_EQ(Call("POST", "/v1/ledger/rejected/1/retry").status, 404) << "shard 0 rejected nothing";
  auto retried = Call("POST", "/v1/ledger/rejected/1/retry?shard=1");
  ASSERT_EQ(retried.status, 200) << retried.body;
  EXPECT_EQ(Json::parse(retried.body)["rejected"][0]["code"], "unknown_org");

  auto past = Get("/v1/ledger/verify?shard=2");
  EXPECT_EQ(past.status, 400);
  EXPECT_EQ(Json::parse(past.body)["error"]["code"], "invalid_argument");
}

TEST_F(ServiceOverLedgers, ShardNotServedHereIs503WithRetryAfter) {
  ledgers_->moved = true;
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/orgs/acme"},
           {"GET", "/v1/orgs/beta/dashboard"},
           {"GET", "/v1/ledger/events"},
           {"GET", "/v1/ledger/events?org=beta"},
           {"GET", "/v1/ledger/verify?shard=1"},
           {"GET", "/v1/ledger/rejected?shard=1"},
           {"POST", "/v1/ledger/rejected/1/retry?shard=1"}}) {
    auto a = Call(method, target);
    EXPECT_EQ(a.status, 503) << method << " " << target;
    EXPECT_EQ(a.Header("Retry-After"), "1") << target;
    if (a.status == 503) {
      EXPECT_EQ(Json::parse(a.body)["error"]["code"], "unavailable") << target;
    }
  }
  auto ingest = Call("POST", "/v1/events", OrgCreated("e9", "acme", "Acme"));
  EXPECT_EQ(ingest.status, 503);
  EXPECT_EQ(ingest.Header("Retry-After"), "1");
  // Routes that read no ledger still answer; the metrics sum only the shards served.
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Get("/metrics").status, 200);
  ledgers_->moved = false;
  EXPECT_EQ(Get("/v1/orgs/acme").status, 200);
}

// One shard whose Billing can be replaced, as a cluster instance reopens a
// shard that moved away and back.
class ReopenedShard final : public Ledgers {
 public:
  explicit ReopenedShard(projections::Billing& billing) : billing_(&billing) {}
  projections::Billing* ForOrg(std::string_view) const override { return billing_.load(); }
  projections::Billing* ForShard(int shard) const override {
    return shard == 0 ? billing_.load() : nullptr;
  }
  int shards() const override { return 1; }
  void Reopen(projections::Billing& billing) { billing_ = &billing; }

 private:
  std::atomic<projections::Billing*> billing_;
};

// An org's version counts within one Billing (it starts at 0 when one opens):
// a cached answer of the Billing that served the shard before is not served
// from the one serving it now, even at the same version.
TEST_F(ServiceOverLedgers, CachedOrgAnswerIsNotServedFromAnotherBilling) {
  testing::TempDir dir_reopened;
  auto reopened = Open(dir_reopened);
  ASSERT_TRUE(reopened);
  Append(*reopened, OrgCreated("e1", "acme", "Acme Reopened"));
  ASSERT_EQ(reopened->OrgVersion("acme"), zero_->OrgVersion("acme"));
  ReopenedShard shard(*zero_);
  Metrics metrics;
  Service service(shard, metrics, ServiceOptions{});
  auto name = [&service] {
    auto promise = std::make_shared<std::promise<HttpReply>>();
    auto replied = promise->get_future();
    HttpRequest request;
    request.method = "GET";
    request.target = "/v1/orgs/acme";
    service.Handle(std::move(request),
                   [promise](HttpReply r) { promise->set_value(std::move(r)); });
    EXPECT_EQ(replied.wait_for(kAnswerTimeout), std::future_status::ready);
    return Json::parse(replied.get().body)["name"].get<std::string>();
  };
  EXPECT_EQ(name(), "Acme");
  EXPECT_EQ(name(), "Acme") << "served from the cache";
  shard.Reopen(*reopened);
  EXPECT_EQ(name(), "Acme Reopened");
  service.StopHeavyWork();
}

// The rule the front and PickLedger share (service.h, LedgerOfRequest).
RequestLedger Which(std::string_view target, std::optional<std::string> scoped = std::nullopt) {
  auto parsed = ParseTarget(target);
  EXPECT_TRUE(parsed.ok()) << target;
  return LedgerOfRequest(parsed->segments, parsed->query, scoped, /*shards=*/4);
}

TEST(LedgerOfRequest, OrgsPathsScopesAndShardsPickOneLedger) {
  using K = RequestLedger::Kind;
  EXPECT_EQ(Which("/v1/orgs/acme/dashboard").org, "acme");
  EXPECT_EQ(Which("/v1/orgs/acme", "beta").org, "acme") << "the path's org, not the scope's";
  EXPECT_EQ(Which("/v1/ledger/events?shard=3").shard, 3);
  EXPECT_EQ(Which("/v1/ledger/events?shard=3").kind, K::kShard);
  EXPECT_EQ(Which("/v1/ledger/rejected").kind, K::kShard);
  EXPECT_EQ(Which("/v1/ledger/rejected").shard, 0);
  // A scoped token reads its org's ledger on every whole-ledger route but verify.
  EXPECT_EQ(Which("/v1/ledger/rejected?shard=3", "acme").org, "acme");
  EXPECT_EQ(Which("/v1/ledger/verify?shard=2", "acme").shard, 2);
  EXPECT_EQ(Which("/v1/ledger/events?org=beta&shard=1").org, "beta");
  EXPECT_EQ(Which("/v1/ledger/events?org=beta", "acme").org, "acme");
  // Only the stream filters by `?org=`, and an empty one filters nothing.
  EXPECT_EQ(Which("/v1/ledger/rejected?org=beta").kind, K::kShard);
  EXPECT_EQ(Which("/v1/ledger/events?org=&shard=2").kind, K::kShard);
  EXPECT_EQ(Which("/v1/ledger/events?org=&shard=2").shard, 2);
  for (const char* bad : {"4", "-1", "", "x", "1e0", "99999999999999999999"}) {
    EXPECT_EQ(Which(std::string("/v1/ledger/verify?shard=") + bad).kind, K::kBadShard) << bad;
  }
  for (const char* none :
       {"/", "/healthz", "/v1/events", "/v1/orgs", "/v1/cluster", "/v1/webhooks/deliveries"}) {
    EXPECT_EQ(Which(none, "acme").kind, K::kNone) << none;
  }
}

}  // namespace
}  // namespace billing::api
