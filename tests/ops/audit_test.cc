// Audit and operations against the real binaries: ledgerctl verify and replay
// beside a running ledgerd, a tampered copy, export rows against the invoices
// (our CSV and FOCUS), the FOCUS sample imported with exact decimal sums,
// export -> import round trips, and backup while running -> restore -> equal
// answers. Amounts are compared as integers, never floats.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>

#include "events/event.h"
#include "ledger/format.h"
#include "ledger/ledger.h"
#include "ops/csv_reader.h"
#include "ops/focus_import.h"
#include "projections/agg.h"
#include "projections/keys.h"
#include "tests/testing/files.h"
#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using Json = nlohmann::json;
using testing::ExamplesDir;
using testing::Http;
using testing::Ledgerd;
using testing::Ran;
using testing::ReadFile;
using testing::TempDir;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// ledgerctl with `args`, run to its exit.
Ran Ledgerctl(std::vector<std::string> args) {
  args.insert(args.begin(), testing::LedgerctlPath());
  return testing::RunToExit(std::move(args));
}

std::vector<Json> JsonLines(const std::string& text) {
  std::vector<Json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(Json::parse(line));
  }
  return out;
}

Json GetJson(const Ledgerd& s, const std::string& target) {
  auto r = s.Get(target);
  EXPECT_EQ(r.status, 200) << target << ": " << r.body;
  return r.status == 200 ? Json::parse(r.body) : Json();
}

Json PostNdjson(const Ledgerd& s, const std::string& body) {
  auto r = s.Post("/v1/events", body, "application/x-ndjson");
  EXPECT_EQ(r.status, 200) << r.body;
  return r.status == 200 ? Json::parse(r.body) : Json();
}

// Exact nano-units of a decimal with at most 9 digits (any sign).
Sum Nanos(const std::string& text) {
  auto v = ops::ParseRoundedNanos(text);
  EXPECT_TRUE(v.ok()) << text;
  return v.ok() ? *v : 0;
}

using CsvRows = std::vector<std::map<std::string, std::string>>;

CsvRows ParseCsv(const std::string& text, std::vector<std::string>* header_out = nullptr) {
  std::istringstream in(text);
  ops::CsvReader reader(in);
  ops::CsvRecord header, record;
  CsvRows rows;
  auto got = reader.Next(&header);
  EXPECT_TRUE(got.ok() && *got) << "no CSV header";
  if (!got.ok() || !*got) return rows;
  if (header_out) {
    header_out->clear();
    for (const auto& h : header) header_out->push_back(h.value_or(""));
  }
  while (true) {
    auto next = reader.Next(&record);
    EXPECT_TRUE(next.ok()) << next.status().ToString();
    if (!next.ok() || !*next) break;
    EXPECT_EQ(record.size(), header.size());
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < record.size(); ++i)
      row[*header[i]] = record[i].value_or("");
    rows.push_back(std::move(row));
  }
  return rows;
}

// The golden example, posted into a fresh ledgerd: 57 accepted events.
struct GoldenServer {
  GoldenServer() : server({.data_dir = tmp.sub("data")}) {
    Json r = PostNdjson(server, ReadFile(ExamplesDir() + "/events.ndjson"));
    EXPECT_EQ(r["last_sequence"], 57);
  }
  TempDir tmp;
  Ledgerd server;
};

// Every (org, month) holding postings, from the offline replay at the head.
std::vector<std::pair<std::string, std::string>> OrgMonths(const std::string& dir) {
  Ran replay = Ledgerctl({"replay", dir, "--to-seq", "999999"});
  EXPECT_EQ(replay.code, 0);
  std::vector<std::pair<std::string, std::string>> out;
  for (const Json& line : JsonLines(replay.out)) out.emplace_back(line["org_id"], line["month"]);
  return out;
}

TEST(Audit, VerifyWorksOfflineBesideARunningLedgerd) {
  GoldenServer g;
  Ran first = Ledgerctl({"verify", g.server.data_dir()});
  ASSERT_EQ(first.code, 0) << first.out;
  Json report = Json::parse(first.out);
  EXPECT_EQ(report["ok"], true);
  EXPECT_EQ(report["events"], 57);
  EXPECT_EQ(report["head_hash"], GetJson(g.server, "/v1/ledger/verify")["head_hash"]);
  // The service keeps writing; a new offline verify sees the new head.
  Json more = PostNdjson(
      g.server,
      R"({"event_id":"live-1","org_id":"acme","occurred_at":"2026-02-01T00:00:00Z","support_charged":{"month":"2026-02","amount":"3","description":"desk"}})");
  EXPECT_EQ(more["accepted"], 1);
  Ran second = Ledgerctl({"verify", g.server.data_dir()});
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_EQ(Json::parse(second.out)["head_sequence"], 58);
  EXPECT_EQ(GetJson(g.server, "/v1/ledger/verify")["ok"], true);
}

TEST(Audit, TamperedCopyReportsTheEditedSequence) {
  GoldenServer g;
  std::string copy = g.tmp.sub("copy");
  ASSERT_EQ(g.server.Stop(), 0);
  std::filesystem::copy(g.server.data_dir(), copy, std::filesystem::copy_options::recursive);
  {
    // An attacker with disk access edits one record's event through raw RocksDB.
    rocksdb::Options o;
    o.merge_operator = projections::NewAggMergeOperator();
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, copy, &db).ok());
    std::string bytes;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), ledger::format::RecordKey(23), &bytes).ok());
    ledger::Record record;
    ASSERT_TRUE(record.ParseFromString(bytes));
    events::Envelope env;
    ASSERT_TRUE(env.ParseFromString(record.event()));
    env.set_occurred_at("2020-01-01T00:00:00Z");
    record.set_event(env.SerializeAsString());
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), ledger::format::RecordKey(23), record.SerializeAsString())
            .ok());
    delete db;
  }
  Ran tampered = Ledgerctl({"verify", copy});
  EXPECT_EQ(tampered.code, 1) << tampered.out;
  Json report = Json::parse(tampered.out);
  EXPECT_EQ(report["ok"], false);
  EXPECT_EQ(report["first_bad_sequence"], 23);
  EXPECT_FALSE(report["problem"].get<std::string>().empty());
  Ran original = Ledgerctl({"verify", g.server.data_dir()});
  EXPECT_EQ(original.code, 0);
  EXPECT_EQ(Json::parse(original.out)["ok"], true);
}

// A stopped golden server's directory copied, edited through raw RocksDB by
// `edit`, and verified offline.
Json VerifyEditedCopy(GoldenServer& g, const std::function<void(rocksdb::DB*)>& edit, int* code) {
  std::string copy = g.tmp.sub("copy");
  EXPECT_EQ(g.server.Stop(), 0);
  std::filesystem::copy(g.server.data_dir(), copy, std::filesystem::copy_options::recursive);
  rocksdb::Options o;
  o.merge_operator = projections::NewAggMergeOperator();
  rocksdb::DB* db = nullptr;
  EXPECT_TRUE(rocksdb::DB::Open(o, copy, &db).ok());
  edit(db);
  delete db;
  Ran ran = Ledgerctl({"verify", copy});
  *code = ran.code;
  return Json::parse(ran.out);
}

TEST(Audit, VerifyRecomputesEverySealOfAnUntouchedLedger) {
  GoldenServer g;
  ASSERT_EQ(g.server.Stop(), 0);
  Ran ran = Ledgerctl({"verify", g.server.data_dir()});
  EXPECT_EQ(ran.code, 0) << ran.out;
  Json report = Json::parse(ran.out);
  EXPECT_EQ(report["ok"], true);
  EXPECT_GE(report["seals"].get<int>(), 2) << "the golden example closes 2025-11 and 2025-12";
}

TEST(Audit, TamperedStoredSealIsNamedByVerify) {
  GoldenServer g;
  int code = 0;
  Json report = VerifyEditedCopy(
      g,
      [](rocksdb::DB* db) {
        std::string key = projections::keys::SealKey("acme", "2025-11-org");
        std::string value;
        ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), key, &value).ok());
        Json seal = Json::parse(value);
        seal["document_hash"] = std::string(64, '0');
        ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, seal.dump()).ok());
      },
      &code);
  EXPECT_EQ(code, 1) << report.dump();
  EXPECT_EQ(report["ok"], false);
  EXPECT_EQ(report["org_id"], "acme");
  EXPECT_EQ(report["invoice_id"], "2025-11-org");
  EXPECT_NE(report["problem"].get<std::string>().find("2025-11-org"), std::string::npos);
}

TEST(Audit, TamperedClosedMonthFigureIsNamedByVerify) {
  GoldenServer g;
  int code = 0;
  Json report = VerifyEditedCopy(
      g,
      [](rocksdb::DB* db) {
        // One nano-unit more on a line of the closed month: the stored seal is
        // untouched, but the read models no longer give the sealed invoice.
        Month month = *ParseMonth("2025-11", "month");
        projections::Agg delta;
        delta.amount = 1;
        std::string lines = projections::keys::MonthPrefix("acme", month) + 'L';
        std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
        it->Seek(lines);
        ASSERT_TRUE(it->Valid() && it->key().starts_with(lines)) << "the month has invoice lines";
        std::string key = it->key().ToString();
        it.reset();
        ASSERT_TRUE(db->Merge(rocksdb::WriteOptions(), key, projections::EncodeAgg(delta)).ok());
      },
      &code);
  EXPECT_EQ(code, 1) << report.dump();
  EXPECT_EQ(report["ok"], false);
  EXPECT_EQ(report["org_id"], "acme");
  EXPECT_EQ(report["invoice_id"], "2025-11-org");
  EXPECT_NE(report["problem"].get<std::string>().find("read models"), std::string::npos);
}

TEST(Audit, ReplayToSeqEqualsTheApiAsOf) {
  GoldenServer g;
  Ledgerd& s = g.server;
  int compared = 0;
  for (int seq : {5, 19, 30, 44, 57}) {
    // Offline and read-only, while the service runs on the same directory.
    Ran replay = Ledgerctl({"replay", s.data_dir(), "--to-seq", std::to_string(seq)});
    ASSERT_EQ(replay.code, 0) << replay.out;
    std::set<std::string> orgs;
    for (const Json& line : JsonLines(replay.out)) {
      std::string org = line["org_id"], month = line["month"];
      orgs.insert(org);
      std::string as_of = "&as_of=" + std::to_string(seq);
      SCOPED_TRACE(org + " " + month + as_of);
      Json dash = GetJson(s, "/v1/orgs/" + org + "/dashboard?months=1&end=" + month + as_of);
      EXPECT_EQ(line["billed"], dash["months"][0]["billed"]);
      Json hist = GetJson(
          s, "/v1/orgs/" + org + "/usage-history?months=1&end=" + month + as_of)["months"][0];
      for (const char* k : {"status", "total", "usage", "support", "credits", "adjustments"}) {
        EXPECT_EQ(line[k], hist[k]) << k;
      }
      Json inv = GetJson(s, "/v1/orgs/" + org + "/invoices?month=" + month + as_of);
      EXPECT_EQ(line["mode"], inv["mode"]);
      EXPECT_EQ(line["invoices"], inv["invoices"]);
      for (auto& [cc, billed] : line["billed_by_cost_center"].items()) {
        Json by_cc = GetJson(s, "/v1/orgs/" + org + "/dashboard?months=1&end=" + month +
                                    "&cost_center=" + cc + as_of);
        EXPECT_EQ(billed, by_cc["months"][0]["billed"]) << cc;
      }
      ++compared;
    }
    // Only orgs that exist at that sequence, each by itself with --org.
    for (const std::string& org : orgs) {
      Ran one = Ledgerctl({"replay", s.data_dir(), "--to-seq", std::to_string(seq), "--org", org});
      ASSERT_EQ(one.code, 0);
      for (const Json& line : JsonLines(one.out)) EXPECT_EQ(line["org_id"], org);
    }
  }
  EXPECT_GE(compared, 10);
  // An org unknown at that point is an error, not an empty answer.
  EXPECT_NE(Ledgerctl({"replay", s.data_dir(), "--to-seq", "3", "--org", "kaiju-jp"}).code, 0);
}

// Sums export rows per invoice and (category, label) and compares them with
// the invoice's lines; returns how many invoices were compared.
int CompareRowsWithInvoices(Ledgerd& s, const std::string& org, const std::string& month,
                            const CsvRows& month_rows) {
  std::map<std::string, std::map<std::pair<std::string, std::string>, Sum>> by_invoice;
  for (const auto& row : month_rows)
    by_invoice[row.at("invoice_id")][{row.at("category"), row.at("label")}] +=
        Nanos(row.at("amount"));
  Json list = GetJson(s, "/v1/orgs/" + org + "/invoices?month=" + month);
  std::set<std::string> listed;
  for (const Json& inv : list["invoices"]) {
    std::string id = inv["invoice_id"];
    listed.insert(id);
    Json full = GetJson(s, "/v1/orgs/" + org + "/invoices/" + id);
    std::map<std::pair<std::string, std::string>, Sum> lines;
    for (const Json& l : full["lines"])
      lines[{l["category"], l["description"]}] = Nanos(l["amount"]);
    EXPECT_EQ(by_invoice[id], lines) << org << " " << id;
    // The per-invoice CSV holds exactly that invoice's rows.
    auto csv = s.Get("/v1/orgs/" + org + "/invoices/" + id + ".csv");
    EXPECT_EQ(csv.status, 200);
    EXPECT_EQ(csv.headers["Content-Type"], "text/csv; charset=utf-8");
    CsvRows own = ParseCsv(csv.body);
    size_t want = 0;
    for (const auto& row : month_rows) want += row.at("invoice_id") == id ? 1 : 0;
    EXPECT_EQ(own.size(), want) << id;
    for (const auto& row : own) EXPECT_EQ(row.at("invoice_id"), id);
  }
  std::set<std::string> exported;
  for (const auto& [id, _] : by_invoice) exported.insert(id);
  EXPECT_EQ(exported, listed) << org << " " << month;
  return static_cast<int>(listed.size());
}

TEST(Audit, ExportRowsSumToTheInvoiceLines) {
  GoldenServer g;
  Ledgerd& s = g.server;
  int invoices = 0;
  std::set<std::string> categories;
  for (const auto& [org, month] : OrgMonths(s.data_dir())) {
    SCOPED_TRACE(org + " " + month);
    Ran offline =
        Ledgerctl({"export", s.data_dir(), "--org", org, "--month", month, "--format", "csv"});
    ASSERT_EQ(offline.code, 0);
    auto http = s.Get("/v1/orgs/" + org + "/usage-history/" + month + ".csv");
    ASSERT_EQ(http.status, 200);
    EXPECT_EQ(http.body, offline.out);  // the same rows over HTTP and offline
    CsvRows rows = ParseCsv(offline.out);
    for (const auto& row : rows) {
      categories.insert(row.at("category"));
      EXPECT_EQ(row.at("org_id"), org);
      EXPECT_FALSE(row.at("event_id").empty());
      if (row.at("category") == "credit") {
        EXPECT_LT(Nanos(row.at("amount")), 0);
      }
      if (!row.at("reverses_event_id").empty()) {
        EXPECT_NE(row.at("reverses_event_id"), row.at("event_id"));
      }
    }
    invoices += CompareRowsWithInvoices(s, org, month, rows);
    // All rows together are the month's exact charges.
    Json hist = GetJson(s, "/v1/orgs/" + org + "/usage-history?months=1&end=" + month)["months"][0];
    Sum exact = Nanos(hist["usage"]) + Nanos(hist["support"]) + Nanos(hist["credits"]) +
                Nanos(hist["adjustments"]);
    Sum rows_total = 0;
    for (const auto& row : rows) rows_total += Nanos(row.at("amount"));
    EXPECT_EQ(rows_total, exact);
    // NDJSON carries the same amounts.
    Ran nd =
        Ledgerctl({"export", s.data_dir(), "--org", org, "--month", month, "--format", "ndjson"});
    Sum nd_total = 0;
    for (const Json& line : JsonLines(nd.out)) nd_total += Nanos(line["amount"]);
    EXPECT_EQ(nd_total, exact);
  }
  EXPECT_GE(invoices, 8);
  // The golden example exercises every category (voids, closes, late charges).
  EXPECT_EQ(categories, (std::set<std::string>{"usage", "support", "credit", "adjustment"}));
  EXPECT_EQ(s.Get("/v1/orgs/acme/invoices/2026-01-nope.csv").status, 404);
  EXPECT_EQ(s.Get("/v1/orgs/nobody/usage-history/2026-01.csv").status, 404);
  EXPECT_EQ(s.Get("/v1/orgs/acme/usage-history/2026-13.csv").status, 400);
}

TEST(Audit, FocusExportColumnsAndSumsMatchTheInvoices) {
  GoldenServer g;
  Ledgerd& s = g.server;
  const std::vector<std::string> required = {"BillingAccountId",
                                             "BillingAccountName",
                                             "BillingPeriodStart",
                                             "BillingPeriodEnd",
                                             "ChargePeriodStart",
                                             "ChargePeriodEnd",
                                             "BilledCost",
                                             "EffectiveCost",
                                             "ListCost",
                                             "BillingCurrency",
                                             "ServiceName",
                                             "ResourceId",
                                             "SkuId",
                                             "RegionId",
                                             "SubAccountId",
                                             "SubAccountName",
                                             "ChargeCategory",
                                             "ChargeDescription",
                                             "ConsumedQuantity",
                                             "ConsumedUnit",
                                             "ProviderName"};
  int compared = 0;
  for (const auto& [org, month] : OrgMonths(s.data_dir())) {
    SCOPED_TRACE(org + " " + month);
    Ran focus =
        Ledgerctl({"export", s.data_dir(), "--org", org, "--month", month, "--format", "focus"});
    ASSERT_EQ(focus.code, 0);
    std::vector<std::string> header;
    CsvRows rows = ParseCsv(focus.out, &header);
    for (const std::string& column : required) {
      EXPECT_NE(std::find(header.begin(), header.end(), column), header.end()) << column;
    }
    std::string start = month + "-01T00:00:00Z";
    std::map<std::pair<std::string, std::string>, Sum> by_account_service;
    std::map<std::pair<std::string, std::string>, Sum> adjustments;
    std::map<std::string, Sum> by_invoice;
    for (const auto& r : rows) {
      EXPECT_EQ(r.at("BillingPeriodStart"), start);
      EXPECT_EQ(r.at("BillingPeriodEnd").size(), 20u);
      EXPECT_LE(r.at("ChargePeriodStart"), r.at("ChargePeriodEnd"));
      EXPECT_EQ(r.at("BilledCost"), r.at("EffectiveCost"));
      EXPECT_EQ(r.at("BilledCost"), r.at("ListCost"));
      const std::string& category = r.at("ChargeCategory");
      EXPECT_TRUE(category == "Usage" || category == "Purchase" || category == "Credit" ||
                  category == "Adjustment")
          << category;
      if (category == "Usage") {
        EXPECT_FALSE(r.at("SubAccountId").empty());
        EXPECT_FALSE(r.at("ConsumedUnit").empty());
        EXPECT_EQ(r.at("ChargePeriodStart").substr(0, 7), month);
      } else {
        EXPECT_EQ(r.at("ChargePeriodStart"), start);
      }
      // Adjustments are invoice lines per original month, whatever their service.
      if (category == "Adjustment") {
        adjustments[{r.at("BillingAccountId"), r.at("ChargeDescription")}] +=
            Nanos(r.at("BilledCost"));
      } else {
        by_account_service[{r.at("BillingAccountId"), r.at("ServiceName")}] +=
            Nanos(r.at("BilledCost"));
      }
      by_invoice[r.at("x_InvoiceId")] += Nanos(r.at("BilledCost"));
    }
    // The invoices, seen per billing account and service: usage lines are
    // per service, support is "Support", credits "Credit".
    std::map<std::pair<std::string, std::string>, Sum> want, want_adjustments;
    Json list = GetJson(s, "/v1/orgs/" + org + "/invoices?month=" + month);
    for (const Json& inv : list["invoices"]) {
      Json full =
          GetJson(s, "/v1/orgs/" + org + "/invoices/" + inv["invoice_id"].get<std::string>());
      std::string account =
          inv["billing_account"].is_null() ? "" : inv["billing_account"].get<std::string>();
      Sum total = 0;
      for (const Json& l : full["lines"]) {
        Sum amount = Nanos(l["amount"]);
        total += amount;
        std::string category = l["category"];
        if (category == "adjustment") {
          want_adjustments[{account, l["description"]}] += amount;
          continue;
        }
        std::string service = category == "usage"     ? l["description"].get<std::string>()
                              : category == "support" ? "Support"
                                                      : "Credit";
        want[{account, service}] += amount;
      }
      // The exact invoice total, rounded, is the invoice's total.
      int digits = MinorUnitDigits(inv["currency"].get<std::string>());
      EXPECT_EQ(FormatNanos(RoundHalfAwayFromZero(by_invoice[inv["invoice_id"]], digits), digits),
                inv["total"]);
      EXPECT_EQ(total, by_invoice[inv["invoice_id"]]);
    }
    EXPECT_EQ(by_account_service, want);
    EXPECT_EQ(adjustments, want_adjustments);
    compared += static_cast<int>(!want.empty()) + static_cast<int>(!want_adjustments.empty());
  }
  EXPECT_GE(compared, 9);  // the golden example's months, adjustments included
}

TEST(Audit, CsvRoutesFollowTheJsonAccessRules) {
  // Tokens are at least 16 characters.
  Ledgerd s({.tokens = "t-view-0123456789 viewer acme alice\nt-prod-0123456789 producer acme feed\n"
                       "t-admin-0123456789 admin * root\n"});
  auto as = [](const std::string& token) {
    return std::map<std::string, std::string>{{"Authorization", "Bearer " + token + "-0123456789"}};
  };
  ASSERT_EQ(Http(s.port(), "POST", "/v1/events", ReadFile(ExamplesDir() + "/events.ndjson"),
                 "application/x-ndjson", as("t-admin"))
                .status,
            200);
  struct Case {
    std::string target, token;
    int status;
  };
  for (const Case& c : std::vector<Case>{
           {"/v1/orgs/acme/usage-history/2026-01.csv", "", 401},
           {"/v1/orgs/acme/usage-history/2026-01.csv", "t-view", 200},
           {"/v1/orgs/acme/invoices/2026-01-cc-eng.csv", "t-view", 200},
           {"/v1/orgs/kaiju-jp/usage-history/2026-01.csv", "t-view", 403},
           {"/v1/orgs/kaiju-jp/invoices/2026-01-org.csv", "t-view", 403},
           {"/v1/orgs/acme/usage-history/2026-01.csv", "t-prod", 403},
           {"/v1/orgs/kaiju-jp/usage-history/2026-01.csv?format=focus", "t-admin", 200},
           {"/v1/orgs/acme/usage-history/2026-01.csv?format=ndjson", "t-admin", 400},
       }) {
    auto r = Http(s.port(), "GET", c.target, "", "",
                  c.token.empty() ? std::map<std::string, std::string>{} : as(c.token));
    EXPECT_EQ(r.status, c.status) << c.target << " as " << c.token << ": " << r.body;
  }
}

TEST(Audit, BackupDuringIngestRestoresAVerifyingLedger) {
  TempDir tmp;
  Ledgerd s({.data_dir = tmp.sub("data")});
  ASSERT_EQ(PostNdjson(s, ReadFile(ExamplesDir() + "/events.ndjson"))["last_sequence"], 57);
  // A producer keeps posting (a bounded number of events) while two backups
  // are taken; each restores to a chain that verifies, holding at least the
  // head its backup recorded.
  constexpr int kLiveEvents = 300;
  std::thread producer([&] {
    for (int i = 0; i < kLiveEvents; ++i) {
      Http(
          s.port(), "POST", "/v1/events",
          R"({"event_id":"ingest-)" + std::to_string(i) +
              R"(","org_id":"acme","occurred_at":"2026-02-01T00:00:00Z","support_charged":{"month":"2026-02","amount":"0.5","description":"live"}})");
    }
  });
  std::vector<Json> backups;
  for (int i = 0; i < 2; ++i) {
    Ran backup = Ledgerctl({"backup", s.data_dir(), tmp.sub("backups")});
    EXPECT_EQ(backup.code, 0) << backup.out;
    if (backup.code == 0) backups.push_back(Json::parse(backup.out));
  }
  producer.join();
  ASSERT_EQ(backups.size(), 2u);
  EXPECT_EQ(backups[1]["backups"], 2);
  for (const Json& b : backups) {
    std::string dest = tmp.sub("restored-" + std::to_string(b["backup_id"].get<int>()));
    Ran restore = Ledgerctl({"restore", tmp.sub("backups"), dest, "--backup-id",
                             std::to_string(b["backup_id"].get<int>())});
    ASSERT_EQ(restore.code, 0) << restore.out;
    Json r = Json::parse(restore.out);
    EXPECT_EQ(r["ok"], true) << restore.out;
    EXPECT_GE(r["head_sequence"].get<uint64_t>(), b["head_sequence"].get<uint64_t>());
    // The restored chain is a prefix of the live one: same hash at its head.
    uint64_t head = r["head_sequence"];
    Json live =
        Json::parse(s.Get("/v1/ledger/events?after=" + std::to_string(head - 1) + "&limit=1").body);
    EXPECT_EQ(live["sequence"], head);
    EXPECT_EQ(live["hash"], r["head_hash"]);
    std::printf("backup %d holds head %llu\n", b["backup_id"].get<int>(),
                static_cast<unsigned long long>(head));
  }
}

// The org, its structure and providers for imported events.
std::string ImportSetup(const std::string& org, const std::vector<std::string>& providers) {
  std::string lines =
      R"({"event_id":")" + org + R"(:org","org_id":")" + org +
      R"(","occurred_at":"2024-01-01T00:00:00Z","organization_created":{"name":"Imported","currency":"USD","billing_account":"IMP-1"}})"
      "\n"
      R"({"event_id":")" +
      org + R"(:cc","org_id":")" + org +
      R"(","occurred_at":"2024-01-01T00:00:00Z","cost_center_created":{"cost_center_id":"cc-cloud","name":"Cloud"}})"
      "\n"
      R"({"event_id":")" +
      org + R"(:ws","org_id":")" + org +
      R"(","occurred_at":"2024-01-01T00:00:00Z","workspace_created":{"workspace_id":"ws-1","cost_center_id":"cc-cloud","name":"W"}})"
      "\n";
  for (const std::string& p : providers) {
    lines += R"({"event_id":")" + org + ":" + p + R"(","org_id":")" + org +
             R"(","occurred_at":"2024-01-01T00:00:00Z","provider_registered":{"provider_id":")" +
             p + R"(","workspace_id":"ws-1","name":")" + p +
             R"(","kind":"cloud"}})"
             "\n";
  }
  return lines;
}

// Exact value of a decimal in units of 10^-11 (the sample's finest digit).
__int128 Pico11(const std::string& text) {
  std::string s = text;
  bool negative = !s.empty() && s[0] == '-';
  if (negative) s.erase(0, 1);
  size_t dot = s.find('.');
  std::string whole = dot == std::string::npos ? s : s.substr(0, dot);
  std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  EXPECT_LE(frac.size(), 11u) << text;
  frac.append(11 - frac.size(), '0');
  __int128 v = 0;
  for (char c : whole + frac) v = v * 10 + (c - '0');
  return negative ? -v : v;
}

TEST(Audit, FocusSampleImportReproducesBilledCostPerService) {
  TempDir tmp;
  std::string sample = ExamplesDir() + "/focus/focus_sample.csv";
  WriteFile(tmp.sub("map"),
            "# FOCUS ProviderName -> our provider\nAWS = aws-main\nMicrosoft = azure-main\n* = "
            "other-main\n");
  Ran first =
      Ledgerctl({"import-focus", sample, "--org", "sunbird", "--provider-map", tmp.sub("map")});
  ASSERT_EQ(first.code, 0);
  Ran again =
      Ledgerctl({"import-focus", sample, "--org", "sunbird", "--provider-map", tmp.sub("map")});
  EXPECT_EQ(first.out, again.out);  // same file, same events, same ids
  std::vector<Json> events = JsonLines(first.out);
  ASSERT_EQ(events.size(), 1000u);

  // Expected sums straight from the CSV, in exact 10^-11 units.
  CsvRows rows = ParseCsv(ReadFile(sample));
  ASSERT_EQ(rows.size(), 1000u);
  std::map<std::string, __int128> want;
  std::map<std::string, int> rows_of;
  __int128 want_total = 0;
  for (const auto& r : rows) {
    want[r.at("ServiceName")] += Pico11(r.at("BilledCost"));
    rows_of[r.at("ServiceName")]++;
    want_total += Pico11(r.at("BilledCost"));
  }

  Ledgerd s({.data_dir = tmp.sub("data")});
  Json setup = PostNdjson(s, ImportSetup("sunbird", {"aws-main", "azure-main", "other-main"}));
  ASSERT_EQ(setup["accepted"], 6);
  Json posted = PostNdjson(s, first.out);
  EXPECT_EQ(posted["accepted"], 1000);
  EXPECT_TRUE(posted["rejected"].empty()) << posted["rejected"].dump();
  Json twice = PostNdjson(s, again.out);
  EXPECT_EQ(twice["accepted"], 0);
  EXPECT_EQ(twice["duplicates"], 1000);

  // Usage items are per service; negative rows became credits described by
  // their service: together they are the service's BilledCost.
  Json month = GetJson(s, "/v1/orgs/sunbird/usage-history/2024-09");
  std::map<std::string, __int128> got;
  for (const Json& item : month["items"]) {
    ASSERT_TRUE(item["category"] == "usage" || item["category"] == "credit") << item.dump();
    got[item["label"]] += static_cast<__int128>(Nanos(item["amount"])) * 100;  // 10^-9 -> 10^-11
  }
  ASSERT_EQ(got.size(), want.size());
  __int128 got_total = 0;
  for (const auto& [service, expected] : want) {
    __int128 diff = got[service] - expected;
    if (diff < 0) diff = -diff;
    // Each row moves by at most half a nano-unit (50 units of 10^-11).
    EXPECT_LE(static_cast<int64_t>(diff), 50 * rows_of[service]) << service;
    got_total += got[service];
  }
  __int128 total_diff = got_total - want_total;
  if (total_diff < 0) total_diff = -total_diff;
  EXPECT_LE(static_cast<int64_t>(total_diff), 50 * 1000);
  // The rounded month total is the sample's total rounded to cents.
  Sum want_cents = RoundHalfAwayFromZero(static_cast<Sum>(want_total / 100), 2);
  EXPECT_EQ(month["total"], FormatNanos(want_cents, 2));
}

TEST(Audit, ExportThenImportReproducesTheMonthTotals) {
  GoldenServer g;
  Ledgerd& s = g.server;
  WriteFile(g.tmp.sub("map"), "* = copy-provider\n");
  Json setup = PostNdjson(s, ImportSetup("acme-copy", {"copy-provider"}));
  ASSERT_EQ(setup["accepted"], 4);
  int months = 0;
  for (const auto& [org, month] : OrgMonths(s.data_dir())) {
    if (org != "acme") continue;
    SCOPED_TRACE(month);
    Ran focus = Ledgerctl({"export", s.data_dir(), "--org", "acme", "--month", month, "--format",
                           "focus", "--out", g.tmp.sub("export.csv")});
    ASSERT_EQ(focus.code, 0);
    Ran imported = Ledgerctl({"import-focus", g.tmp.sub("export.csv"), "--org", "acme-copy",
                              "--provider-map", g.tmp.sub("map")});
    ASSERT_EQ(imported.code, 0);
    Json posted = PostNdjson(s, imported.out);
    EXPECT_TRUE(posted["rejected"].empty()) << posted["rejected"].dump();
    Json a = GetJson(s, "/v1/orgs/acme/usage-history?months=1&end=" + month)["months"][0];
    Json b = GetJson(s, "/v1/orgs/acme-copy/usage-history?months=1&end=" + month)["months"][0];
    Sum exact_a =
        Nanos(a["usage"]) + Nanos(a["support"]) + Nanos(a["credits"]) + Nanos(a["adjustments"]);
    Sum exact_b =
        Nanos(b["usage"]) + Nanos(b["support"]) + Nanos(b["credits"]) + Nanos(b["adjustments"]);
    EXPECT_EQ(exact_a, exact_b);
    Json inv = GetJson(s, "/v1/orgs/acme/invoices?month=" + month);
    if (inv["mode"] == "SINGLE") {
      EXPECT_EQ(a["total"], b["total"]);  // one invoice each, the same exact sum
    }
    ++months;
  }
  EXPECT_GE(months, 3);
}

TEST(Audit, BackupWhileRunningRestoresAnEqualLedger) {
  GoldenServer g;
  Ledgerd& s = g.server;
  Ran backup = Ledgerctl({"backup", s.data_dir(), g.tmp.sub("backups")});
  ASSERT_EQ(backup.code, 0) << backup.out;
  Json b = Json::parse(backup.out);
  EXPECT_EQ(b["head_sequence"], 57);
  // Writes after the backup are not in it.
  PostNdjson(
      s,
      R"({"event_id":"after-backup","org_id":"acme","occurred_at":"2026-02-01T00:00:00Z","support_charged":{"month":"2026-02","amount":"7","description":"later"}})");
  Ran restore = Ledgerctl({"restore", g.tmp.sub("backups"), g.tmp.sub("restored")});
  ASSERT_EQ(restore.code, 0) << restore.out;
  Json r = Json::parse(restore.out);
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["events"], 57);
  EXPECT_EQ(r["head_hash"], b["head_hash"]);
  // A restore never overwrites.
  EXPECT_NE(Ledgerctl({"restore", g.tmp.sub("backups"), g.tmp.sub("restored")}).code, 0);

  // The restored copy, served by its own ledgerd from its restored read
  // models, answers what the original answers as of the backup's head.
  Ledgerd copy({.data_dir = g.tmp.sub("restored")});
  int compared = 0;
  for (const std::string org : {"acme", "kaiju-jp"}) {
    std::vector<std::string> targets = {"/v1/orgs/" + org + "/dashboard?months=12&end=2026-02",
                                        "/v1/orgs/" + org + "/usage-history?months=12&end=2026-02"};
    for (const auto& [o, month] : OrgMonths(copy.data_dir())) {
      if (o != org) continue;
      targets.push_back("/v1/orgs/" + org + "/invoices?month=" + month);
      targets.push_back("/v1/orgs/" + org + "/usage-history/" + month + ".csv");
    }
    for (const std::string& t : targets) {
      std::string sep = t.find('?') == std::string::npos ? "?" : "&";
      auto original = s.Get(t + sep + "as_of=57");
      auto restored = copy.Get(t);
      EXPECT_EQ(original.status, 200) << t;
      EXPECT_EQ(restored.body, original.body) << t;
      ++compared;
    }
  }
  EXPECT_GE(compared, 10);
  EXPECT_EQ(GetJson(copy, "/v1/ledger/verify")["head_hash"], b["head_hash"]);
}

}  // namespace
}  // namespace billing
