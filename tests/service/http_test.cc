// The real ledgerd over loopback: the golden example through HTTP, the ledger
// stream, verify and re-drive, a table of bad inputs with their status codes,
// the access-control matrix, the loopback rule, and clean SIGTERM.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/testing/files.h"
#include "tests/testing/golden_json.h"
#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using Json = nlohmann::json;
using testing::Child;
using testing::ExamplesDir;
using testing::Http;
using testing::Ledgerd;
using testing::ReadFile;
using testing::TempDir;

// `sha256sum` of a file holding `text`.
std::string Sha256Sum(const TempDir& tmp, const std::string& text) {
  std::string path = tmp.sub("sha256-input");
  std::ofstream(path, std::ios::binary) << text;
  testing::Ran r = testing::RunToExit({"/usr/bin/sha256sum", path});
  return r.out.substr(0, 64);
}

// Checks the seal of one invoice answer independently of the service's code,
// then removes it (the golden files predate seals): a final invoice's
// `ledger_hash` is the ledger stream's hash at `sequence`, and its
// `document_hash` is `sha256sum` of the answer without `seal` dumped with
// sorted keys and no spaces, which for these ASCII keys and string values is
// exactly RFC 8785. `detail` is the detail answer; list entries must carry
// the detail's seal.
void CheckSeal(Json* invoice, const Json& detail, Ledgerd& s, const TempDir& tmp) {
  ASSERT_TRUE(invoice->contains("seal")) << invoice->dump();
  const Json seal = (*invoice)["seal"];
  invoice->erase("seal");
  if ((*invoice)["status"] == "draft") {
    EXPECT_TRUE(seal.is_null()) << invoice->dump();
    return;
  }
  ASSERT_TRUE(seal.is_object()) << invoice->dump();
  EXPECT_EQ(seal, detail["seal"]);
  uint64_t sequence = seal["sequence"];
  auto stream = s.Get("/v1/ledger/events?after=" + std::to_string(sequence - 1) + "&limit=1");
  ASSERT_EQ(stream.status, 200);
  EXPECT_EQ(seal["ledger_hash"],
            Json::parse(stream.body.substr(0, stream.body.find('\n')))["hash"]);
  Json unsealed = detail;
  unsealed.erase("seal");
  EXPECT_EQ(seal["document_hash"], Sha256Sum(tmp, unsealed.dump())) << unsealed.dump();
}

// Checks and removes the seals of an invoice or invoice list answer of `target`.
void DropCheckedSeals(Json* answer, const std::string& target, Ledgerd& s, const TempDir& tmp) {
  std::string base = target.substr(0, target.find("/invoices") + 9);
  auto detail_of = [&](const Json& invoice) {
    return Json::parse(s.Get(base + "/" + invoice["invoice_id"].get<std::string>()).body);
  };
  if (answer->contains("invoices")) {
    for (Json& invoice : (*answer)["invoices"]) CheckSeal(&invoice, detail_of(invoice), s, tmp);
  } else {
    const Json detail = *answer;
    CheckSeal(answer, detail, s, tmp);
  }
}

// The golden dashboards predate budgets: their months have no "budget" and
// "forecast" (tests/service/budgets_http_test.cc checks those), so drop them
// where the expected answer has none.
void DropBudgetKeysMissingFrom(Json* answer, const Json& want) {
  if (!answer->contains("months") || !want.contains("months")) return;
  for (size_t i = 0; i < (*answer)["months"].size() && i < want["months"].size(); ++i) {
    for (const char* key : {"budget", "forecast"}) {
      if (!want["months"][i].contains(key)) (*answer)["months"][i].erase(key);
    }
  }
}

// Ids are the service's choice and list order is free where the SPEC says so;
// month lists keep their order.
Json Normalize(const Json& j) { return testing::NormalizeGolden(j, {"id"}); }

TEST(Http, InvoicePdfReadsBackWithTheSealsDocumentHash) {
  Ledgerd s;
  TempDir tmp;
  ASSERT_EQ(s.Post("/v1/events", ReadFile(ExamplesDir() + "/events.ndjson"), "application/x-ndjson")
                .status,
            200);
  Json invoice = Json::parse(s.Get("/v1/orgs/acme/invoices/2025-11-org").body);
  ASSERT_TRUE(invoice["seal"].is_object()) << invoice.dump();
  auto pdf = s.Get("/v1/orgs/acme/invoices/2025-11-org.pdf");
  ASSERT_EQ(pdf.status, 200) << pdf.body;
  EXPECT_EQ(pdf.headers["Content-Type"], "application/pdf");
  std::string path = tmp.sub("invoice.pdf");
  std::ofstream(path, std::ios::binary) << pdf.body;
  testing::Ran text = testing::RunToExit({"/usr/bin/pdftotext", "-layout", path, "-"});
  ASSERT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("2025-11-org"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("Final"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(invoice["seal"]["document_hash"].get<std::string>()), std::string::npos)
      << text.out;
  EXPECT_EQ(s.Get("/v1/orgs/acme/invoices/2025-11-nope.pdf").status, 404);
}

TEST(Http, GoldenExampleGivesTheExpectedAnswers) {
  Ledgerd s;
  TempDir tmp;
  auto post =
      s.Post("/v1/events", ReadFile(ExamplesDir() + "/events.ndjson"), "application/x-ndjson");
  ASSERT_EQ(post.status, 200) << post.body;
  Json r = Json::parse(post.body);
  EXPECT_EQ(r["accepted"], 57);
  EXPECT_EQ(r["duplicates"], 1);
  EXPECT_EQ(r["last_sequence"], 57);
  Json outcomes = Json::parse(ReadFile(ExamplesDir() + "/expected/outcomes.json"));
  std::map<int, std::string> rejected;
  for (auto& x : r["rejected"]) rejected[x["index"].get<int>()] = x["code"];
  for (auto& o : outcomes) {
    int index = o["line"].get<int>() - 1;
    if (o["status"] == "rejected") {
      EXPECT_EQ(rejected[index], o["code"]) << o.dump();
    } else {
      EXPECT_EQ(rejected.count(index), 0u) << o.dump();
    }
  }
  int files = 0;
  for (const auto& org : std::filesystem::directory_iterator(ExamplesDir() + "/expected")) {
    if (!org.is_directory()) continue;
    for (const auto& f : std::filesystem::directory_iterator(org.path())) {
      Json want = Json::parse(ReadFile(f.path().string()));
      std::string request = want["request"];
      std::string target = request.substr(request.find(' ') + 1);
      auto got = s.Get(target);
      ASSERT_EQ(got.status, 200) << request << " " << got.body;
      Json answer = Json::parse(got.body);
      if (target.find("/invoices") != std::string::npos) DropCheckedSeals(&answer, target, s, tmp);
      DropBudgetKeysMissingFrom(&answer, want["response"]);
      EXPECT_EQ(Normalize(answer), Normalize(want["response"])) << request;
      ++files;
    }
  }
  EXPECT_GE(files, 30);
  // Drill-down from the month list by id: usage -> providers -> resources -> skus.
  Json month = Json::parse(s.Get("/v1/orgs/acme/usage-history/2026-01").body);
  for (auto& item : month["items"]) {
    if (item["label"] != "Cloud Storage") continue;
    Json providers = Json::parse(
        s.Get("/v1/orgs/acme/usage-history/2026-01/items/" + item["id"].get<std::string>()).body);
    ASSERT_EQ(providers["children"].size(), 1u);
    EXPECT_EQ(providers["children"][0]["label"], "Google Cloud prod 1");
    EXPECT_EQ(providers["children"][0]["amount"], "44.148636100");
    EXPECT_EQ(providers["children"][0]["quantity"], "235.250281000");
    EXPECT_EQ(providers["children"][0]["unit"], "gibibyte month");
    Json resources = Json::parse(s.Get("/v1/orgs/acme/usage-history/2026-01/items/" +
                                       providers["children"][0]["id"].get<std::string>())
                                     .body);
    EXPECT_EQ(resources["children"].size(), 2u);
  }
  // as_of: right after sequence 19 (acme's first usage), November is 34.29.
  Json asof = Json::parse(s.Get("/v1/orgs/acme/dashboard?months=1&end=2025-11&as_of=19").body);
  EXPECT_EQ(asof["months"][0]["billed"], "34.29");
  Json before = Json::parse(s.Get("/v1/orgs/acme/dashboard?months=1&end=2025-11&as_of=16").body);
  EXPECT_EQ(before["months"][0]["billed"], "0.00");
}

TEST(Http, LedgerStreamVerifyAndRedrive) {
  Ledgerd s;
  ASSERT_EQ(s.Post("/v1/events", ReadFile(ExamplesDir() + "/events.ndjson"), "application/x-ndjson")
                .status,
            200);
  auto stream = s.Get("/v1/ledger/events?after=10&limit=5");
  ASSERT_EQ(stream.status, 200);
  EXPECT_EQ(stream.headers["Content-Type"], "application/x-ndjson");
  std::istringstream lines(stream.body);
  std::string line, prev_hash;
  int n = 0;
  while (std::getline(lines, line)) {
    Json j = Json::parse(line);
    EXPECT_EQ(j["sequence"], 11 + n);
    if (n > 0) {
      EXPECT_EQ(j["prev_hash"], prev_hash);
    }
    prev_hash = j["hash"];
    EXPECT_TRUE(j["event"].contains("event_id"));
    ++n;
  }
  EXPECT_EQ(n, 5);
  auto kaiju = s.Get("/v1/ledger/events?org=kaiju-jp");
  int k = 0;
  std::istringstream kl(kaiju.body);
  while (std::getline(kl, line)) {
    EXPECT_EQ(Json::parse(line)["event"]["org_id"], "kaiju-jp");
    ++k;
  }
  EXPECT_EQ(k, 26);
  Json all_lines = Json::array();
  Json verify = Json::parse(s.Get("/v1/ledger/verify").body);
  EXPECT_EQ(verify["ok"], true);
  EXPECT_EQ(verify["events"], 57);
  EXPECT_EQ(verify["head_sequence"], 57);
  EXPECT_EQ(verify["head_hash"].get<std::string>().size(), 64u);

  Json rejected = Json::parse(s.Get("/v1/ledger/rejected").body);
  ASSERT_EQ(rejected["rejected"].size(), 4u);
  Json ghost;
  for (auto& r : rejected["rejected"]) {
    if (r["code"] == "unknown_org") ghost = r;
    EXPECT_EQ(r["source"]["kind"], "http");
    EXPECT_FALSE(r["raw"].get<std::string>().empty());
  }
  ASSERT_FALSE(ghost.is_null());
  std::string retry = "/v1/ledger/rejected/" + std::to_string(ghost["id"].get<int>()) + "/retry";
  Json again = Json::parse(s.Post(retry, "").body);
  EXPECT_EQ(again["rejected"][0]["code"], "unknown_org");
  // Once the org exists (with its provider), the same message goes through.
  std::string setup =
      R"({"event_id":"g1","org_id":"ghost-org","occurred_at":"2025-11-01T00:00:00Z","organization_created":{"name":"G","currency":"USD","billing_account":"G"}}
{"event_id":"g2","org_id":"ghost-org","occurred_at":"2025-11-01T00:00:00Z","cost_center_created":{"cost_center_id":"c","name":"C"}}
{"event_id":"g3","org_id":"ghost-org","occurred_at":"2025-11-01T00:00:00Z","workspace_created":{"workspace_id":"w","cost_center_id":"c","name":"W"}}
{"event_id":"g4","org_id":"ghost-org","occurred_at":"2025-11-01T00:00:00Z","provider_registered":{"provider_id":"aws-prod-01","workspace_id":"w","name":"P","kind":"aws"}})";
  ASSERT_EQ(Json::parse(s.Post("/v1/events", setup, "application/x-ndjson").body)["accepted"], 4);
  Json ok = Json::parse(s.Post(retry, "").body);
  EXPECT_EQ(ok["accepted"], 1);
  EXPECT_EQ(Json::parse(s.Get("/v1/ledger/rejected").body)["rejected"].size(), 3u);
  EXPECT_EQ(s.Post("/v1/ledger/rejected/999/retry", "").status, 404);
}

TEST(Http, BadInputsGetPreciseStatusCodes) {
  Ledgerd s;
  ASSERT_EQ(s.Post("/v1/events", ReadFile(ExamplesDir() + "/events.ndjson"), "application/x-ndjson")
                .status,
            200);
  struct Case {
    std::string method, target, body, type;
    int status;
    std::string code;
  };
  std::vector<Case> cases = {
      {"POST", "/v1/events", "{broken", "application/json", 400, "invalid_argument"},
      {"POST", "/v1/events", "", "application/json", 400, "invalid_argument"},
      {"POST", "/v1/events", "{}", "text/plain", 415, "unsupported_media_type"},
      {"POST", "/v1/events", "a=b", "application/x-www-form-urlencoded", 415,
       "unsupported_media_type"},
      {"GET", "/v1/events", "", "", 405, "method_not_allowed"},
      {"DELETE", "/v1/orgs/acme/dashboard", "", "", 405, "method_not_allowed"},
      {"GET", "/v1/nothing", "", "", 404, "not_found"},
      {"GET", "/v2/orgs/acme/dashboard", "", "", 404, "not_found"},
      {"GET", "/v1/orgs/nobody/dashboard", "", "", 404, "unknown_org"},
      {"GET", "/v1/orgs/acme/dashboard?months=0", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/dashboard?months=37", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/dashboard?months=abc", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/dashboard?months=-3", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/dashboard?end=2026-13", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/dashboard?cost_center=nope", "", "", 404, "unknown_cost_center"},
      {"GET", "/v1/orgs/acme/dashboard?as_of=x", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/usage-history?months=100", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/usage-history/2026-1", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/usage-history/2026-01/items/bogus", "", "", 404, "not_found"},
      {"GET", "/v1/orgs/acme/invoices", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/invoices?month=26-01", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/invoices/2026-01-nope", "", "", 404, "not_found"},
      {"GET", "/v1/orgs/acme/invoices/2025-11-cc-eng", "", "", 404, "not_found"},
      {"GET", "/v1/orgs/acme/invoices/garbage", "", "", 404, "not_found"},
      {"GET", "/v1/orgs/../ledger/verify", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme/%2e%2e/dashboard", "", "", 400, "invalid_argument"},
      {"GET", "/v1/orgs/acme%2Fdashboard/dashboard", "", "", 404, "unknown_org"},
      {"GET", "/v1/orgs/acme/dashboard%", "", "", 400, "invalid_argument"},
      {"GET", "/v1/ledger/events?limit=0", "", "", 400, "invalid_argument"},
      {"GET", "/v1/ledger/events?after=-1", "", "", 400, "invalid_argument"},
  };
  for (const Case& c : cases) {
    auto r = Http(s.port(), c.method, c.target, c.body, c.type);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << " " << r.body;
    if (r.status == c.status) {
      Json j = Json::parse(r.body);
      EXPECT_EQ(j["error"]["code"], c.code) << c.target;
      EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
    }
  }
  // A JSON number for money, in a body with a good event: the good one is accepted.
  std::string body =
      R"([{"event_id":"n1","org_id":"acme","occurred_at":"2026-02-01T00:00:00Z","support_charged":{"month":"2026-02","amount":12.5,"description":"d"}},
                         {"event_id":"n2","org_id":"acme","occurred_at":"2026-02-01T00:00:00Z","support_charged":{"month":"2026-02","amount":"12.5","description":"d"}}])";
  Json mixed = Json::parse(s.Post("/v1/events", body).body);
  EXPECT_EQ(mixed["accepted"], 1);
  EXPECT_EQ(mixed["rejected"][0]["index"], 0);
  EXPECT_EQ(mixed["rejected"][0]["event_id"], "n1");
  EXPECT_EQ(mixed["rejected"][0]["code"], "invalid_argument");
  // Oversized body: 413, and the server keeps serving.
  std::string huge(17 * 1024 * 1024, ' ');
  EXPECT_EQ(s.Post("/v1/events", huge).status, 413);
  // Header flood: 431 (or the connection is refused), and others are still served.
  std::map<std::string, std::string> many;
  for (int i = 0; i < 8; ++i) many["X-Flood-" + std::to_string(i)] = std::string(8 * 1024, 'a');
  auto flood = Http(s.port(), "GET", "/healthz", "", "", many);
  EXPECT_TRUE(flood.status == 431 || flood.status == 0) << flood.status;
  EXPECT_EQ(s.Get("/healthz").status, 200);
  Json health = Json::parse(s.Get("/healthz").body);
  EXPECT_EQ(health["status"], "ok");
  EXPECT_TRUE(health["kafka_bootstrap"].is_null());
  EXPECT_EQ(s.Get("/readyz").status, 200);
  auto metrics = s.Get("/metrics");
  EXPECT_NE(metrics.body.find("ledger_events_accepted_total 58"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("ledger_head_sequence 58"), std::string::npos);
  auto page = s.Get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.headers["Content-Type"].find("text/html"), std::string::npos);
  EXPECT_EQ(s.Get("/web/app.js").status, 200);
  EXPECT_EQ(s.Get("/web/..%2Fsecret").status, 404);
}

// Issue 13, each item reproduced against the real ledgerd: input that crashed
// it or took gigabytes is refused precisely, and the server keeps serving.
TEST(Ingest, DeeplyNestedJsonIsRejectedNotFatal) {
  Ledgerd s;
  const size_t n = 100000;  // a 200 KB body; the old server died at any depth past ~50 000
  auto r = s.Post("/v1/events", std::string(n + 1, '[') + std::string(n + 1, ']'));
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  Json j = Json::parse(r.body);
  ASSERT_EQ(j["rejected"].size(), 1u);
  EXPECT_EQ(j["rejected"][0]["code"], "invalid_argument");
  std::string deep_object;
  for (size_t i = 0; i < n; ++i) deep_object += "{\"a\":";
  deep_object += "1" + std::string(n, '}');
  auto o = s.Post("/v1/events", deep_object);
  EXPECT_EQ(o.status, 200) << o.body.substr(0, 300);
  EXPECT_EQ(s.Get("/healthz").status, 200);
}

// Found in review: one ~1 MB event of tiny objects held an I/O thread for
// minutes (a quadratic duplicate-key check); it is now refused at once.
TEST(Ingest, AnEventOfManySmallObjectsIsRefusedPromptly) {
  Ledgerd s;
  std::string many = "{\"a\":[";
  for (size_t i = 0; i < 300000; ++i) many += i ? ",{}" : "{}";
  many += "]}";
  auto r = s.Post("/v1/events", many);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  Json j = Json::parse(r.body);
  ASSERT_EQ(j["rejected"].size(), 1u);
  EXPECT_EQ(j["rejected"][0]["code"], "invalid_argument");
  EXPECT_EQ(s.Get("/healthz").status, 200);
}

TEST(Ingest, ABodyOfTooManyEventsIs413AndNothingIsStored) {
  Ledgerd s;
  std::string body = "[{}";
  for (size_t i = 0; i < 1400000; ++i) body += ",{}";  // the 4.2 MB body that took 2.17 GB
  body += "]";
  auto r = s.Post("/v1/events", body);
  EXPECT_EQ(r.status, 413) << r.body.substr(0, 300);
  EXPECT_EQ(Json::parse(r.body)["error"]["code"], "payload_too_large");
  Json rejected = Json::parse(s.Get("/v1/ledger/rejected").body);
  EXPECT_TRUE(rejected["rejected"].empty());
  // At the cap, every element is answered, and the answer stays small: no
  // message quotes more than a bounded piece of its input.
  std::string at_cap = "[";
  const std::string junk_key(1500, 'k');
  for (size_t i = 0; i < 10000; ++i) at_cap += (i ? ",{\"" : "{\"") + junk_key + "\":1}";
  at_cap += "]";
  auto full = s.Post("/v1/events", at_cap);
  ASSERT_EQ(full.status, 200) << full.body.substr(0, 300);
  EXPECT_EQ(Json::parse(full.body)["rejected"].size(), 10000u);
  EXPECT_LT(full.body.size(), 4u * 1024 * 1024) << "an answer of " << full.body.size() << " bytes";
}

TEST(Ingest, DuplicateJsonKeysAreRejected) {
  Ledgerd s;
  ASSERT_EQ(s.Post("/v1/events", ReadFile(ExamplesDir() + "/events.ndjson"), "application/x-ndjson")
                .status,
            200);
  std::string twice = R"({"event_id":"dup:1","org_id":"acme","occurred_at":"2026-02-01T00:00:00Z",
    "support_charged":{"month":"2026-02","amount":"1","amount":"1000","description":"d"}})";
  Json j = Json::parse(s.Post("/v1/events", twice).body);
  EXPECT_EQ(j["accepted"], 0);
  ASSERT_EQ(j["rejected"].size(), 1u);
  EXPECT_EQ(j["rejected"][0]["code"], "invalid_argument");
  EXPECT_EQ(j["rejected"][0]["event_id"], "dup:1");
}

// Binary protobuf is a Kafka value form only; over HTTP it would bypass the
// JSON rules (two payloads, unknown fields kept in the hashed bytes).
TEST(Ingest, BinaryProtobufOverHttpIsRejected) {
  Ledgerd s;
  ASSERT_EQ(s.Post("/v1/events", ReadFile(ExamplesDir() + "/events.ndjson"), "application/x-ndjson")
                .status,
            200);
  // A complete, valid Envelope in binary (a support charge of acme), with
  // every tag written as a two-byte varint so that no byte is a line break
  // (field 1's usual tag is 0x0a, '\n'); protobuf reads overlong tags.
  auto field = [](int number, const std::string& bytes) {
    return std::string{static_cast<char>(0x80 | ((number << 3 | 2) & 0x7f)),
                       static_cast<char>((number << 3 | 2) >> 7), static_cast<char>(bytes.size())} +
           bytes;
  };
  std::string binary = field(1, "b:1") + field(2, "acme") + field(3, "2026-02-01T00:00:00Z") +
                       field(18, field(1, "2026-02") + field(2, "1000") + field(3, "binary"));
  ASSERT_EQ(binary.find('\n'), std::string::npos);
  std::string good = R"({"event_id":"b:2","org_id":"acme","occurred_at":"2026-02-01T00:00:00Z",)"
                     R"("support_charged":{"month":"2026-02","amount":"1","description":"d"}})";
  auto r = s.Post("/v1/events", good + "\n" + binary + "\n", "application/x-ndjson");
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = Json::parse(r.body);
  EXPECT_EQ(j["accepted"], 1) << j.dump();
  ASSERT_EQ(j["rejected"].size(), 1u) << j.dump();
  EXPECT_EQ(j["rejected"][0]["index"], 1);
  EXPECT_EQ(j["rejected"][0]["code"], "invalid_argument");
}

// The answer cache keyed on the raw target stored one copy per junk query
// parameter; now parameters that cannot change an answer share one entry.
TEST(Serving, AnswerCacheIgnoresParametersThatDoNotChangeTheAnswer) {
  Ledgerd s;
  ASSERT_EQ(s.Post("/v1/events", ReadFile(ExamplesDir() + "/events.ndjson"), "application/x-ndjson")
                .status,
            200);
  auto gauge = [&](const std::string& name) {
    std::string body = s.Get("/metrics").body;
    size_t at = body.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stoll(body.substr(at + name.size() + 2));
  };
  std::string first;
  for (int i = 0; i < 20; ++i) {
    auto r = s.Get("/v1/orgs/acme/dashboard?months=12&r=" + std::to_string(i));
    ASSERT_EQ(r.status, 200);
    if (i == 0) first = r.body;
    EXPECT_EQ(r.body, first);
  }
  EXPECT_EQ(gauge("ledger_answer_cache_entries"), 1);
  EXPECT_GT(gauge("ledger_answer_cache_bytes"), 0);
  // A parameter that changes the answer is its own entry.
  auto six = s.Get("/v1/orgs/acme/dashboard?months=6");
  EXPECT_NE(six.body, first);
  EXPECT_EQ(gauge("ledger_answer_cache_entries"), 2);
}

TEST(Serving, TheWebPageForbidsFramingAndForeignCode) {
  Ledgerd s;
  auto page = s.Get("/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.headers["Content-Security-Policy"].find("frame-ancestors 'none'"),
            std::string::npos);
  EXPECT_NE(page.headers["Content-Security-Policy"].find("default-src 'self'"), std::string::npos);
  EXPECT_EQ(page.headers["X-Frame-Options"], "DENY");
  EXPECT_EQ(page.headers["X-Content-Type-Options"], "nosniff");
}

TEST(Http, AccessControlByRoleAndOrganization) {
  // Tokens are at least 16 characters.
  Ledgerd s({.tokens = "# token role org name\n"
                       "t-view-0123456789 viewer acme alice\n"
                       "t-prod-0123456789 producer acme feed\n"
                       "t-aud-0123456789 auditor * carol\n"
                       "t-aud-k-0123456789 auditor kaiju-jp dave\n"
                       "t-admin-0123456789 admin * root\n"});
  auto as = [](const std::string& token) {
    return std::map<std::string, std::string>{{"Authorization", "Bearer " + token + "-0123456789"}};
  };
  std::string events = ReadFile(ExamplesDir() + "/events.ndjson");
  // The producer may only write acme's events; a body naming kaiju-jp is refused whole.
  EXPECT_EQ(s.Post("/v1/events", events, "application/x-ndjson", as("t-prod")).status, 403);
  ASSERT_EQ(s.Post("/v1/events", events, "application/x-ndjson", as("t-admin")).status, 200);
  struct Case {
    std::string method, target, token;
    int status;
  };
  std::vector<Case> cases = {
      {"GET", "/v1/orgs/acme/dashboard", "", 401},
      {"GET", "/v1/orgs/acme/dashboard", "wrong", 401},
      {"GET", "/v1/orgs/acme/dashboard", "t-view", 200},
      {"GET", "/v1/orgs/kaiju-jp/dashboard", "t-view", 403},
      {"GET", "/v1/orgs/nobody/dashboard", "t-view", 403},  // reveals nothing about existence
      {"GET", "/v1/orgs/acme/invoices?month=2026-01", "t-view", 200},
      {"GET", "/v1/orgs/acme/dashboard", "t-prod", 403},
      {"GET", "/v1/orgs/kaiju-jp/usage-history", "t-aud", 200},
      {"GET", "/v1/orgs/acme/usage-history", "t-aud-k", 403},
      {"GET", "/v1/ledger/events", "t-view", 403},
      {"GET", "/v1/ledger/events", "t-aud", 200},
      {"GET", "/v1/ledger/events?org=acme", "t-aud-k", 403},
      {"GET", "/v1/ledger/verify", "t-aud", 200},
      {"GET", "/v1/ledger/verify", "t-prod", 403},
      {"GET", "/v1/ledger/rejected", "t-aud", 200},
      {"GET", "/v1/ledger/rejected", "t-view", 403},
      {"GET", "/metrics", "t-view", 403},
      {"GET", "/metrics", "t-admin", 200},
      {"GET", "/metrics", "", 401},
      {"POST", "/v1/events", "t-view", 403},
      {"POST", "/v1/events", "t-aud", 403},
      {"GET", "/healthz", "", 200},
      {"GET", "/", "", 200},
  };
  for (const Case& c : cases) {
    auto r = Http(s.port(), c.method, c.target, c.method == "POST" ? "{}" : "", "application/json",
                  c.token.empty() ? std::map<std::string, std::string>{} : as(c.token));
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << " as " << c.token << ": "
                                  << r.body;
  }
  // A scoped auditor's stream holds only its org's events.
  auto stream = s.Get("/v1/ledger/events", as("t-aud-k"));
  std::istringstream lines(stream.body);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    EXPECT_EQ(Json::parse(line)["event"]["org_id"], "kaiju-jp");
    ++n;
  }
  EXPECT_EQ(n, 26);
  // Producer posts of its own org are recorded with its name.
  std::string own =
      R"({"event_id":"p1","org_id":"acme","occurred_at":"2026-02-01T00:00:00Z","support_charged":{"month":"2026-02","amount":"1","description":"d"}})";
  ASSERT_EQ(
      Json::parse(s.Post("/v1/events", own, "application/json", as("t-prod")).body)["accepted"], 1);
  Json last = Json::parse(s.Get("/v1/ledger/events?after=57", as("t-aud")).body);
  EXPECT_EQ(last["source"]["principal"], "feed");
}

TEST(Http, RefusesNonLoopbackWithoutTokensAndStopsCleanlyOnSigterm) {
  TempDir tmp;
  Child refused({testing::LedgerdPath(), "--data-dir", tmp.sub("d1"), "--http", "0.0.0.0:0"});
  EXPECT_NE(refused.Wait(), 0);
  Ledgerd s;
  ASSERT_EQ(s.Post("/v1/events", ReadFile(ExamplesDir() + "/events.ndjson"), "application/x-ndjson")
                .status,
            200);
  EXPECT_EQ(s.Stop(), 0);
  // The data survives and verifies offline.
  Child verify({testing::LedgerctlPath(), "verify", s.data_dir()});
  std::string out = verify.WaitForLine("{");
  EXPECT_NE(out.find("\"ok\":true"), std::string::npos) << out;
  EXPECT_EQ(verify.Wait(), 0);
}

TEST(Http, KillDashNineLosesNoAcknowledgedEvent) {
  TempDir tmp;
  std::string dir = tmp.sub("data");
  std::vector<std::string> acked;
  for (int round = 0; round < 3; ++round) {
    Ledgerd s({.data_dir = dir});
    if (round == 0) {
      ASSERT_EQ(
          s.Post(
               "/v1/events",
               R"({"event_id":"k-org","org_id":"k","occurred_at":"2026-01-01T00:00:00Z","organization_created":{"name":"K","currency":"USD","billing_account":"B"}})")
              .status,
          200);
    }
    for (int i = 0; i < 20; ++i) {
      std::string id = "k" + std::to_string(round) + "-" + std::to_string(i);
      std::string e =
          R"({"event_id":")" + id +
          R"(","org_id":"k","occurred_at":"2026-01-01T00:00:00Z","support_charged":{"month":"2026-01","amount":"1","description":"d"}})";
      auto r = s.Post("/v1/events", e);
      if (r.status == 200 && Json::parse(r.body)["accepted"] == 1) acked.push_back(id);
    }
    // Killed right after the last answer: nothing may be waiting in a buffer.
    s.Kill();
  }
  ASSERT_EQ(acked.size(), 60u);
  Ledgerd s({.data_dir = dir});
  std::string stream = s.Get("/v1/ledger/events").body;
  for (const auto& id : acked) EXPECT_NE(stream.find("\"" + id + "\""), std::string::npos) << id;
  EXPECT_EQ(Json::parse(s.Get("/v1/ledger/verify").body)["ok"], true);
}

}  // namespace
}  // namespace billing
