// Webhooks against the real ledgerd and a real receiver on loopback: every
// invoice that becomes final is delivered, signed (checked with an
// independent HMAC) and as GET .../invoices/{id} answers it; failing, silent
// and dead endpoints hold back no other; every budget alert is delivered as
// the alerts route lists it; a SIGKILL at seeded moments loses no
// delivery; the retry route re-drives a failed one; a bad file exits 2.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <atomic>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/files.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"
#include "tests/webhooks/receiver.h"

namespace billing::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kSecret = "5f0c3b9e2a7d4e1f8c6b0a9d3e2f1c4b";
constexpr const char* kOtherSecret = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
// Generous: a sanitizer build on a loaded 2-core machine.
constexpr auto kDeliveryDeadline = 60s;

// HMAC-SHA256 through OpenSSL's EVP_MAC interface, not the one-shot HMAC()
// ledgerd signs with: the check does not share the code it checks.
std::string IndependentHmacHex(const std::string& key, const std::string& message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t out_len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(message.data()), message.size(), out,
                sizeof(out), &out_len) == nullptr) {
    return "";
  }
  std::string hex;
  char byte[3];
  for (size_t i = 0; i < out_len; ++i) {
    std::snprintf(byte, sizeof(byte), "%02x", out[i]);
    hex += byte;
  }
  return hex;
}

// Whether `header` is `t=<digits>,v1=<hex HMAC(secret, "<t>." + body)>`.
bool SignatureHolds(const std::string& header, const std::string& secret, const std::string& body) {
  if (header.rfind("t=", 0) != 0) return false;
  const size_t comma = header.find(",v1=");
  if (comma == std::string::npos) return false;
  const std::string t = header.substr(2, comma - 2);
  if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos) return false;
  return header.substr(comma + 4) == IndependentHmacHex(secret, t + "." + body);
}

std::string WriteWebhooksFile(const TempDir& dir, const std::string& text, mode_t mode = 0600) {
  const std::string path = dir.sub("webhooks");
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
  return path;
}

std::string Url(uint16_t port, const std::string& path = "/hook") {
  return "http://127.0.0.1:" + std::to_string(port) + path;
}

// One line of the webhooks file: the endpoint takes `kinds` for every org.
std::string Endpoint(const std::string& url, const std::string& secret, const std::string& kinds) {
  return url + " " + secret + " * " + kinds + "\n";
}

LedgerdOptions WithWebhooks(const std::string& file, std::vector<std::string> more = {}) {
  LedgerdOptions o;
  o.extra_args = {"--webhooks", file};
  o.extra_args.insert(o.extra_args.end(), more.begin(), more.end());
  return o;
}

// The delivery listing, every page of it; each entry keyed by delivery id.
std::map<std::string, Json> Deliveries(const Ledgerd& ledgerd, const std::string& status = "") {
  std::map<std::string, Json> out;
  std::string after;
  for (;;) {
    std::string target = "/v1/webhooks/deliveries?limit=7";
    if (!status.empty()) target += "&status=" + status;
    if (!after.empty()) target += "&after=" + after;
    HttpResponse r = ledgerd.Get(target);
    if (r.status != 200) return {};
    Json page = Json::parse(r.body);
    for (const Json& d : page["deliveries"]) out[d["delivery_id"].get<std::string>()] = d;
    if (page["next_after"].is_null()) return out;
    after = page["next_after"].get<std::string>();
  }
}

// "org/invoice_id" of every final invoice of the months the events close.
std::set<std::string> FinalInvoices(const Ledgerd& ledgerd, const std::string& ndjson) {
  std::set<std::string> out;
  std::istringstream in(ndjson);
  std::string line;
  while (std::getline(in, line)) {
    Json e = Json::parse(line, nullptr, false);
    if (e.is_discarded() || !e.contains("billing_period_closed")) continue;
    const std::string org = e["org_id"];
    HttpResponse r = ledgerd.Get("/v1/orgs/" + org + "/invoices?month=" +
                                 e["billing_period_closed"]["month"].get<std::string>());
    EXPECT_EQ(r.status, 200) << r.body;
    const Json list = Json::parse(r.body);
    for (const Json& inv : list["invoices"]) {
      if (inv["status"] == "final") out.insert(org + "/" + inv["invoice_id"].get<std::string>());
    }
  }
  return out;
}

std::set<std::string> DistinctIds(const Receiver& receiver) {
  std::set<std::string> ids;
  for (const auto& r : receiver.Received()) ids.insert(r.delivery_id);
  return ids;
}

// Every request of one delivery id carries the same body.
void ExpectRepeatsAreIdentical(const Receiver& receiver) {
  std::map<std::string, std::string> first;
  for (const auto& r : receiver.Received()) {
    auto [it, fresh] = first.emplace(r.delivery_id, r.body);
    if (!fresh) {
      EXPECT_EQ(it->second, r.body) << "delivery " << r.delivery_id << " changed";
    }
  }
}

std::string GoldenEvents() { return ReadFile(ExamplesDir() + "/events.ndjson"); }

TEST(Webhooks, EveryFinalInvoiceIsDeliveredSignedAsTheInvoiceRouteAnswersIt) {
  Receiver receiver(Receiver::Mode::kAnswer200);
  Receiver alerts_only(Receiver::Mode::kAnswer200);
  TempDir tmp;
  const std::string file = WriteWebhooksFile(
      tmp, "# endpoint secret org kinds\n" + Url(receiver.port(), "/in/billing?src=ledger") + " " +
               kSecret + " * invoice_finalized\n" + Url(alerts_only.port()) + " " + kOtherSecret +
               " acme budget_alert  # no invoices\n");
  LedgerdOptions options = WithWebhooks(file);
  options.data_dir = tmp.sub("data");
  auto ledgerd = std::make_unique<Ledgerd>(options);
  ASSERT_TRUE(ledgerd->started());
  const std::string events = GoldenEvents();
  ASSERT_EQ(ledgerd->Post("/v1/events", events, "application/x-ndjson").status, 200);
  const std::set<std::string> expected = FinalInvoices(*ledgerd, events);
  ASSERT_FALSE(expected.empty());

  ASSERT_TRUE(
      WaitUntil([&] { return DistinctIds(receiver).size() >= expected.size(); }, kDeliveryDeadline))
      << DistinctIds(receiver).size() << " of " << expected.size() << " delivered";
  std::set<std::string> delivered;
  for (const auto& r : receiver.Received()) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/in/billing?src=ledger");
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_TRUE(SignatureHolds(r.signature, kSecret, r.body)) << r.signature;
    Json body = Json::parse(r.body);
    EXPECT_EQ(body["delivery_id"], r.delivery_id);
    EXPECT_EQ(body["kind"], "invoice_finalized");
    const std::string org = body["org_id"];
    const std::string invoice = body["data"]["invoice_id"];
    delivered.insert(org + "/" + invoice);
    // The invoice exactly as the route answers it, seal included, byte for byte.
    HttpResponse answer = ledgerd->Get("/v1/orgs/" + org + "/invoices/" + invoice);
    ASSERT_EQ(answer.status, 200);
    EXPECT_EQ(body["data"].dump(), Json::parse(answer.body).dump());
    EXPECT_NE(r.body.find("\"data\":" + answer.body + "}"), std::string::npos) << r.body;
    EXPECT_EQ(body["sequence"], body["data"]["seal"]["sequence"]);
  }
  EXPECT_EQ(delivered, expected);
  EXPECT_TRUE(alerts_only.Received().empty());
  ExpectRepeatsAreIdentical(receiver);

  // One delivery per invoice and endpoint, and the listing says so.
  std::map<std::string, Json> listed = Deliveries(*ledgerd);
  EXPECT_EQ(listed.size(), expected.size());
  EXPECT_TRUE(WaitUntil([&] { return Deliveries(*ledgerd, "delivered").size() == expected.size(); },
                        kDeliveryDeadline));
  const std::string metrics = ledgerd->Metrics();
  EXPECT_EQ(MetricValue(metrics, "ledger_webhook_deliveries{status=\"delivered\"}"),
            static_cast<int64_t>(expected.size()));
  EXPECT_NE(metrics.find("ledger_webhook_attempt_duration_seconds_count"), std::string::npos);

  // A rebuild of the read models neither deletes nor queues deliveries again.
  const std::string before = ledgerd->Get("/v1/webhooks/deliveries").body;
  ASSERT_EQ(ledgerd->Stop(), 0);
  ledgerd.reset();
  ASSERT_EQ(RunToExit({LedgerctlPath(), "replay", tmp.sub("data")}).code, 0);
  ledgerd = std::make_unique<Ledgerd>(options);
  ASSERT_TRUE(ledgerd->started());
  EXPECT_EQ(ledgerd->Get("/v1/webhooks/deliveries").body, before);
  EXPECT_TRUE(Deliveries(*ledgerd, "pending").empty());
}

// The budgets golden example raises alerts in two orgs; each reaches a
// budget_alert endpoint once, signed, as the alerts route lists it.
TEST(Webhooks, EveryBudgetAlertIsDeliveredAsTheAlertsRouteListsIt) {
  Receiver receiver(Receiver::Mode::kAnswer200);
  TempDir tmp;
  const std::string file =
      WriteWebhooksFile(tmp, Endpoint(Url(receiver.port()), kSecret, "budget_alert"));
  Ledgerd ledgerd(WithWebhooks(file));
  ASSERT_TRUE(ledgerd.started());
  const std::string events = ReadFile(ExamplesDir() + "/budgets/events.ndjson");
  ASSERT_EQ(ledgerd.Post("/v1/events", events, "application/x-ndjson").status, 200);
  std::map<std::string, Json> alerts;  // by alert_id
  for (const std::string org : {"noor.bh", "hoshi.jp"}) {
    HttpResponse r = ledgerd.Get("/v1/orgs/" + org + "/alerts");
    ASSERT_EQ(r.status, 200) << r.body;
    const Json listed = Json::parse(r.body);
    for (const Json& a : listed["alerts"]) alerts[a["alert_id"].get<std::string>()] = a;
  }
  ASSERT_EQ(alerts.size(), 9u);  // the example's README lists nine

  ASSERT_TRUE(
      WaitUntil([&] { return DistinctIds(receiver).size() >= alerts.size(); }, kDeliveryDeadline))
      << DistinctIds(receiver).size() << " of " << alerts.size() << " delivered";
  std::set<std::string> delivered;
  for (const auto& r : receiver.Received()) {
    EXPECT_TRUE(SignatureHolds(r.signature, kSecret, r.body)) << r.signature;
    Json body = Json::parse(r.body);
    EXPECT_EQ(body["kind"], "budget_alert");
    const std::string id = body["data"]["alert_id"];
    ASSERT_TRUE(alerts.count(id)) << "an alert the route does not list: " << r.body;
    EXPECT_EQ(body["data"], alerts[id]);
    EXPECT_EQ(body["sequence"], alerts[id]["sequence"]);
    EXPECT_EQ(body["org_id"], body["data"]["budget_id"] == "monthly" ? "hoshi.jp" : "noor.bh");
    delivered.insert(id);
  }
  EXPECT_EQ(delivered.size(), alerts.size());
  ExpectRepeatsAreIdentical(receiver);
}

TEST(Webhooks, AFailingASilentAndADeadEndpointHoldBackNoOther) {
  Receiver good(Receiver::Mode::kAnswer200);
  Receiver failing(Receiver::Mode::kAnswer500);
  Receiver silent(Receiver::Mode::kNeverAnswer);
  const uint16_t dead = ClosedPort();
  TempDir tmp;
  const std::string file = WriteWebhooksFile(
      tmp, Endpoint(Url(silent.port()), kSecret, "invoice_finalized") +
               Endpoint(Url(dead), kSecret, "invoice_finalized") +
               Endpoint(Url(failing.port()), kOtherSecret, "invoice_finalized") +
               Endpoint(Url(good.port()), kSecret, "invoice_finalized,budget_alert"));
  // The silent endpoint holds its first attempt for a minute; the others
  // give up after three attempts 20 ms apart.
  Ledgerd ledgerd(WithWebhooks(file, {"--webhook-attempts-max", "3", "--webhook-backoff-ms", "20",
                                      "--webhook-timeout-ms", "60000"}));
  ASSERT_TRUE(ledgerd.started());
  const std::string events = GoldenEvents();
  ASSERT_EQ(ledgerd.Post("/v1/events", events, "application/x-ndjson").status, 200);
  const size_t invoices = FinalInvoices(ledgerd, events).size();
  ASSERT_GT(invoices, 1u);

  ASSERT_TRUE(WaitUntil([&] { return DistinctIds(good).size() == invoices; }, kDeliveryDeadline));
  // The silent endpoint is still in its first attempt: every one of its
  // deliveries is pending with no attempt finished, yet the others are done.
  size_t silent_pending = 0;
  for (const auto& [id, d] : Deliveries(ledgerd, "pending")) {
    if (d["endpoint"] == Url(silent.port())) {
      ++silent_pending;
      EXPECT_EQ(d["attempts"], 0) << id;
    }
  }
  EXPECT_EQ(silent_pending, invoices);
  EXPECT_EQ(silent.Received().size(), 1u);
  // The ledger is not held either.
  EXPECT_EQ(ledgerd
                .Post("/v1/events",
                      R"({"event_id":"late","org_id":"acme","occurred_at":"2026-03-01T00:00:00Z",)"
                      R"("support_charged":{"month":"2026-03","amount":"1","description":"x"}})")
                .status,
            200);

  auto failed_at = [&](uint16_t port) {
    size_t n = 0;
    for (const auto& [id, d] : Deliveries(ledgerd, "failed")) n += d["endpoint"] == Url(port);
    return n;
  };
  ASSERT_TRUE(WaitUntil([&] { return failed_at(failing.port()) == invoices; }, kDeliveryDeadline));
  ASSERT_TRUE(WaitUntil([&] { return failed_at(dead) == invoices; }, kDeliveryDeadline));
  std::map<std::string, int> tries;
  for (const auto& r : failing.Received()) {
    tries[r.delivery_id]++;
    EXPECT_TRUE(SignatureHolds(r.signature, kOtherSecret, r.body));
  }
  EXPECT_EQ(tries.size(), invoices);
  for (const auto& [id, n] : tries) EXPECT_EQ(n, 3) << id;
  ExpectRepeatsAreIdentical(failing);
  for (const auto& [id, d] : Deliveries(ledgerd, "failed")) {
    EXPECT_EQ(d["attempts"], 3);
    EXPECT_FALSE(d["last_error"].is_null());
  }

  // The retry route re-drives a failed delivery, with the same id and body.
  failing.set_mode(Receiver::Mode::kAnswer200);
  const std::string id = tries.begin()->first;
  HttpResponse retried = ledgerd.Post("/v1/webhooks/deliveries/" + id + "/retry", "");
  ASSERT_EQ(retried.status, 200) << retried.body;
  EXPECT_EQ(Json::parse(retried.body)["status"], "pending");
  ASSERT_TRUE(WaitUntil([&] { return Deliveries(ledgerd, "delivered").count(id) == 1; },
                        kDeliveryDeadline));
  EXPECT_EQ(failing.Received().size(), 3 * invoices + 1);
  EXPECT_EQ(failing.Received().back().delivery_id, id);
  ExpectRepeatsAreIdentical(failing);
  EXPECT_EQ(ledgerd.Post("/v1/webhooks/deliveries/" + id + "/retry", "").status, 409);
  EXPECT_EQ(ledgerd.Post("/v1/webhooks/deliveries/1-0123456789abcdef/retry", "").status, 404);
  EXPECT_EQ(ledgerd.Get("/v1/webhooks/deliveries?status=lost").status, 400);
  // Stopping does not wait for the silent endpoint's minute.
  EXPECT_EQ(ledgerd.Stop(), 0);
}

// One org's events: a month of charges and its close. PER_COST_CENTER orgs
// get two invoices (the cost center's and the org's), the others one.
std::string OrgEvents(int index) {
  const std::string org = "org" + std::to_string(index);
  auto line = [&](const std::string& id, const std::string& at, const std::string& payload) {
    return R"({"event_id":")" + id + R"(","org_id":")" + org + R"(","occurred_at":")" + at +
           R"(",)" + payload + "}\n";
  };
  std::string out =
      line("o", "2026-01-01T00:00:00Z",
           R"("organization_created":{"name":"N","currency":"USD","billing_account":"B"})") +
      line("c", "2026-01-01T00:00:01Z",
           R"("cost_center_created":{"cost_center_id":"cc","name":"C"})") +
      line("w", "2026-01-01T00:00:02Z",
           R"("workspace_created":{"workspace_id":"w","cost_center_id":"cc","name":"W"})") +
      line(
          "p", "2026-01-01T00:00:03Z",
          R"("provider_registered":{"provider_id":"p","workspace_id":"w","name":"P","kind":"aws"})");
  if (index % 2 == 0)
    out +=
        line("m", "2026-01-01T00:00:04Z", R"("invoicing_mode_changed":{"mode":"PER_COST_CENTER"})");
  out += line("u", "2026-01-02T00:00:00Z",
              R"("usage_recorded":{"provider_id":"p","service":"S","sku":"k","resource_id":"r",)"
              R"("region":"x","quantity":"1","unit":"h","amount":"1.25",)"
              R"("usage_start":"2026-01-02T00:00:00Z","usage_end":"2026-01-02T01:00:00Z"})") +
         line("s", "2026-01-03T00:00:00Z",
              R"("support_charged":{"month":"2026-01","amount":"2","description":"Support"})") +
         line("x", "2026-02-01T00:00:00Z", R"("billing_period_closed":{"month":"2026-01"})");
  return out;
}

uint64_t SeedFromEnvOrRandom() {
  if (const char* s = std::getenv("LEDGER_WEBHOOK_CRASH_SEED"))
    return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

TEST(Webhooks, SigkillDuringIngestAndDeliveryLosesNoDelivery) {
  const uint64_t seed = SeedFromEnvOrRandom();
  const char* rounds_env = std::getenv("LEDGER_WEBHOOK_CRASH_ROUNDS");
  const int rounds = rounds_env ? std::atoi(rounds_env) : 3;
  std::printf("webhook crash seed: %" PRIu64 ", %d kills (replay with LEDGER_WEBHOOK_CRASH_SEED)\n",
              seed, rounds);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr int kOrgs = 24;

  Receiver receiver(Receiver::Mode::kAnswer200);
  TempDir tmp;
  const std::string file =
      WriteWebhooksFile(tmp, Endpoint(Url(receiver.port()), kSecret, "invoice_finalized"));
  LedgerdOptions options = WithWebhooks(file);
  options.data_dir = tmp.sub("data");
  std::atomic<int> next{0};  // the first org whose body is not acknowledged
  // Posts each org's body until it is acknowledged, until told to stop or killed.
  auto post_from = [&](Ledgerd& ledgerd, std::atomic<bool>& stop) {
    while (!stop && next < kOrgs) {
      HttpResponse r = ledgerd.Post("/v1/events", OrgEvents(next), "application/x-ndjson");
      if (r.status != 200) return;  // killed under us: not acknowledged
      ++next;
    }
  };
  for (int round = 0; round < rounds; ++round) {
    Ledgerd ledgerd(options);
    ASSERT_TRUE(ledgerd.started());
    const int kill_after = next + std::uniform_int_distribution<int>(0, 5)(rng);
    std::atomic<bool> stop{false};
    std::thread poster([&] { post_from(ledgerd, stop); });
    // The kill lands while bodies are posted and earlier closes deliver.
    WaitUntil([&] { return next >= std::min(kill_after, kOrgs); }, kDeliveryDeadline);
    ledgerd.Kill();
    stop = true;
    poster.join();
  }
  Ledgerd ledgerd(options);
  ASSERT_TRUE(ledgerd.started());
  std::atomic<bool> stop{false};
  post_from(ledgerd, stop);
  ASSERT_EQ(next, kOrgs);

  std::string all;
  for (int i = 0; i < kOrgs; ++i) all += OrgEvents(i);
  const std::set<std::string> expected = FinalInvoices(ledgerd, all);
  ASSERT_EQ(expected.size(), static_cast<size_t>(kOrgs + kOrgs / 2));
  ASSERT_TRUE(WaitUntil([&] { return Deliveries(ledgerd, "delivered").size() == expected.size(); },
                        kDeliveryDeadline))
      << Deliveries(ledgerd, "delivered").size() << " of " << expected.size() << "; pending "
      << ledgerd.Get("/v1/webhooks/deliveries?status=pending").body << "; failed "
      << ledgerd.Get("/v1/webhooks/deliveries?status=failed").body;
  // Nothing lost, nothing invented: one delivery per final invoice, each received.
  EXPECT_EQ(Deliveries(ledgerd).size(), expected.size());
  std::set<std::string> received;
  for (const auto& r : receiver.Received()) {
    EXPECT_TRUE(SignatureHolds(r.signature, kSecret, r.body));
    Json body = Json::parse(r.body);
    received.insert(body["org_id"].get<std::string>() + "/" +
                    body["data"]["invoice_id"].get<std::string>());
  }
  EXPECT_EQ(received, expected);
  EXPECT_EQ(DistinctIds(receiver).size(), expected.size());
  ExpectRepeatsAreIdentical(receiver);
}

// The listing's inputs are bounded and checked: a bad status, page size or
// cursor is a 400 naming the parameter, never a scan of the whole outbox.
TEST(Webhooks, TheDeliveriesListRefusesBadStatusLimitsAndCursors) {
  Receiver receiver(Receiver::Mode::kAnswer200);
  TempDir tmp;
  const std::string file =
      WriteWebhooksFile(tmp, Endpoint(Url(receiver.port()), kSecret, "invoice_finalized"));
  Ledgerd ledgerd(WithWebhooks(file));
  ASSERT_TRUE(ledgerd.started());
  for (const std::string query : {"status=bogus", "status=", "limit=0", "limit=1001", "limit=x",
                                  "limit=-1", "after=not-a-delivery-id", "after="}) {
    HttpResponse r = ledgerd.Get("/v1/webhooks/deliveries?" + query);
    EXPECT_EQ(r.status, 400) << query << ": " << r.body;
    EXPECT_NE(r.body.find(query.substr(0, query.find('='))), std::string::npos) << r.body;
  }
  EXPECT_EQ(ledgerd.Get("/v1/webhooks/deliveries?limit=1000").status, 200);
  EXPECT_EQ(ledgerd.Post("/v1/webhooks/deliveries/nope/retry", "").status, 404);
}

TEST(Webhooks, ABadWebhooksFileExitsWith2NamingItsLine) {
  const std::string good =
      "http://127.0.0.1:9/hook " + std::string(kSecret) + " * invoice_finalized\n";
  struct Case {
    std::string text;
    mode_t mode;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"# plain http leaves the machine\nhttp://example.com/hook " + std::string(kSecret) +
           " * invoice_finalized\n",
       0600, ":2: URL http://example.com/hook: plain http:// is allowed only to a loopback host"},
      {good + "https://h.example/x short * invoice_finalized\n", 0600, ":2: the secret must be"},
      {good + "https://h.example/x " + kOtherSecret + " * invoice_final\n", 0600,
       ":2: unknown kind `invoice_final`"},
      {"https://h.example/x " + std::string(kOtherSecret) + " acme\n", 0600, ":1: expected `<URL>"},
      {"ftp://h.example/x " + std::string(kOtherSecret) + " * budget_alert\n", 0600,
       ":1: URL ftp://h.example/x: must start with https://"},
      {"https://u:p@h.example/x " + std::string(kOtherSecret) + " * budget_alert\n", 0600,
       "user:password@ is not allowed"},
      {good + good, 0600, ":2: URL http://127.0.0.1:9/hook is listed twice"},
      {good, 0644, "is readable by every user"},
  };
  for (const Case& c : cases) {
    TempDir tmp;
    const std::string path = WriteWebhooksFile(tmp, c.text, c.mode);
    const std::string log = tmp.sub("stderr");
    // A ledgerd that took the file would serve on: give it a deadline.
    Child child(
        {LedgerdPath(), "--data-dir", tmp.sub("data"), "--http", "127.0.0.1:0", "--webhooks", path},
        ChildOptions{.stderr_file = log});
    const std::optional<int> code = child.WaitFor(kLedgerdStartTimeout);
    const std::string err = ReadFile(log);
    EXPECT_EQ(code, std::optional<int>(2)) << c.text << err;
    EXPECT_NE(err.find(c.says), std::string::npos) << err;
    EXPECT_EQ(err.find(kSecret), std::string::npos) << "a secret was logged: " << err;
    EXPECT_EQ(err.find(kOtherSecret), std::string::npos) << "a secret was logged: " << err;
  }
  TempDir tmp;
  Child missing({LedgerdPath(), "--data-dir", tmp.sub("data"), "--http", "127.0.0.1:0",
                 "--webhooks", tmp.sub("none")});
  EXPECT_EQ(missing.WaitFor(kLedgerdStartTimeout), std::optional<int>(2));
}

}  // namespace
}  // namespace billing::testing
