// Exports cannot smuggle spreadsheet formulas: text cells that a spreadsheet
// would run are written with a guarding ' (number cells never), NDJSON stays
// exact, and event times keep their nanoseconds; proven on RenderExport
// directly and on the real ledgerd's CSV answers and ledgerctl's exports.
#include "projections/export.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "ops/csv_reader.h"
#include "tests/testing/files.h"
#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing::projections {
namespace {

using Json = nlohmann::json;
using billing::testing::Child;
using billing::testing::Http;
using billing::testing::Ledgerd;
using billing::testing::ReadFile;
using billing::testing::TempDir;

// The values an event's author controls, each starting with a character a
// spreadsheet treats as the start of a formula (or with the guard itself).
constexpr const char* kDescription = "=HYPERLINK(\"http://evil.example\",\"click\")";
constexpr const char* kService = "+cmd|' /C calc'!A0";
constexpr const char* kSku = "@SUM(1+1)";
constexpr const char* kResource = "-2+3";
constexpr const char* kRegion = "\t=1";
constexpr const char* kUnit = "'quoted";

// Records of a CSV text, each a vector of cells ("" for empty).
std::vector<std::vector<std::string>> ReadCsv(const std::string& text) {
  std::istringstream in(text);
  ops::CsvReader reader(in);
  std::vector<std::vector<std::string>> out;
  ops::CsvRecord record;
  for (;;) {
    auto got = reader.Next(&record);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    if (!got.ok() || !*got) break;
    std::vector<std::string> cells;
    for (const auto& c : record) cells.push_back(c.value_or(""));
    out.push_back(std::move(cells));
  }
  return out;
}

// Records as header name -> cell.
std::vector<std::map<std::string, std::string>> CsvRows(const std::string& text) {
  auto records = ReadCsv(text);
  std::vector<std::map<std::string, std::string>> rows;
  for (size_t r = 1; r < records.size(); ++r) {
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < records[0].size() && i < records[r].size(); ++i)
      row[records[0][i]] = records[r][i];
    rows.push_back(std::move(row));
  }
  return rows;
}

MonthExport HostileMonth() {
  MonthExport e;
  e.org_id = "o";
  e.org_name = "=org";
  e.currency = "USD";
  e.month = Month{2026 * 12};
  ExportRow usage;
  usage.invoice_id = "2026-01-org";
  usage.billing_account = "-BA";
  usage.billing_account_name = "=org";
  usage.category = "usage";
  usage.label = kService;
  usage.charge_kind = "usage_recorded";
  usage.service = kService;
  usage.provider_id = "p1";
  usage.provider_name = "@prov";
  usage.resource_id = kResource;
  usage.sku = kSku;
  usage.region = kRegion;
  usage.quantity = -1'500'000'000;  // a reversal: negative numbers stay numbers
  usage.unit = kUnit;
  usage.amount = -2'250'000'000;
  usage.usage_start = "2026-01-10T00:00:00.000000001Z";
  usage.usage_end = "2026-01-10T01:00:00.999999999Z";
  usage.event_id = "-void";
  usage.sequence = 7;
  usage.reverses_event_id = "u-1";
  ExportRow support;
  support.invoice_id = "2026-01-org";
  support.billing_account = "BA";
  support.category = "support";
  support.label = kDescription;
  support.charge_kind = "support_charged";
  support.description = kDescription;
  support.amount = 3'000'000'000;
  support.event_id = "s-1";
  support.sequence = 8;
  e.rows = {usage, support};
  return e;
}

// A cell as a spreadsheet would read it must not start a formula: either it
// starts with the guard, or with none of the formula characters.
void ExpectNoFormula(const std::string& cell, const std::string& column) {
  if (cell.empty()) return;
  EXPECT_EQ(std::string_view("=+-@\t\r").find(cell.front()), std::string_view::npos)
      << column << " = \"" << cell << "\" would run as a formula";
}

// Drops the guard: the documented way back to the exact value.
std::string Unguard(const std::string& cell) {
  return !cell.empty() && cell.front() == '\'' ? cell.substr(1) : cell;
}

TEST(Export, CsvGuardsFormulaTextAndKeepsNumbersNumeric) {
  std::string csv = RenderExport(HostileMonth(), ExportFormat::kCsv);
  // The raw text: guarded and quoted, inner quotes doubled; numbers bare.
  EXPECT_NE(csv.find(R"x("'=HYPERLINK(""http://evil.example"",""click"")")x"), std::string::npos)
      << csv;
  EXPECT_NE(csv.find(",-1.500000000,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",-2.250000000,"), std::string::npos) << csv;
  auto rows = CsvRows(csv);
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    for (const auto& [column, cell] : row) {
      if (column != "quantity" && column != "amount") ExpectNoFormula(cell, column);
    }
  }
  const auto& u = rows[0];
  EXPECT_EQ(u.at("service"), std::string("'") + kService);
  EXPECT_EQ(Unguard(u.at("service")), kService);
  EXPECT_EQ(Unguard(u.at("sku")), kSku);
  EXPECT_EQ(Unguard(u.at("resource_id")), kResource);
  EXPECT_EQ(Unguard(u.at("region")), kRegion);
  EXPECT_EQ(Unguard(u.at("unit")), kUnit);  // a value starting with ' keeps its own
  EXPECT_EQ(u.at("unit"), std::string("''quoted"));
  EXPECT_EQ(Unguard(u.at("billing_account")), "-BA");
  EXPECT_EQ(Unguard(u.at("event_id")), "-void");
  EXPECT_EQ(u.at("quantity"), "-1.500000000");
  EXPECT_EQ(u.at("amount"), "-2.250000000");
  EXPECT_EQ(u.at("usage_start"), "2026-01-10T00:00:00.000000001Z");
  EXPECT_EQ(u.at("sequence"), "7");
  EXPECT_EQ(Unguard(rows[1].at("description")), kDescription);
  EXPECT_EQ(rows[1].at("amount"), "3.000000000");
  // Ordinary text is written as before: no guard, no quotes.
  EXPECT_NE(csv.find("\no,2026-01,2026-01-org,"), std::string::npos) << csv;
}

TEST(Export, FocusGuardsFormulaTextAndKeepsCostsAndTimesExact) {
  std::string focus = RenderExport(HostileMonth(), ExportFormat::kFocus);
  auto rows = CsvRows(focus);
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    for (const auto& [column, cell] : row) {
      if (column != "BilledCost" && column != "EffectiveCost" && column != "ListCost" &&
          column != "ConsumedQuantity") {
        ExpectNoFormula(cell, column);
      }
    }
  }
  const auto& u = rows[0];
  EXPECT_EQ(Unguard(u.at("ServiceName")), kService);
  EXPECT_EQ(Unguard(u.at("ChargeDescription")), kService);
  EXPECT_EQ(Unguard(u.at("SkuId")), kSku);
  EXPECT_EQ(Unguard(u.at("ResourceId")), kResource);
  EXPECT_EQ(Unguard(u.at("SubAccountName")), "@prov");
  EXPECT_EQ(Unguard(u.at("BillingAccountName")), "=org");
  EXPECT_EQ(u.at("BilledCost"), "-2.250000000");
  EXPECT_EQ(u.at("ConsumedQuantity"), "-1.500000000");
  EXPECT_EQ(u.at("ChargePeriodStart"), "2026-01-10T00:00:00.000000001Z");
  EXPECT_EQ(u.at("ChargePeriodEnd"), "2026-01-10T01:00:00.999999999Z");
  EXPECT_EQ(u.at("BillingPeriodStart"), "2026-01-01T00:00:00Z");
  EXPECT_EQ(Unguard(rows[1].at("ChargeDescription")), kDescription);
}

TEST(Export, NdjsonCarriesTheExactValues) {
  std::string nd = RenderExport(HostileMonth(), ExportFormat::kNdjson);
  std::istringstream in(nd);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  Json u = Json::parse(line);
  EXPECT_EQ(u["service"], kService);
  EXPECT_EQ(u["sku"], kSku);
  EXPECT_EQ(u["resource_id"], kResource);
  EXPECT_EQ(u["region"], kRegion);
  EXPECT_EQ(u["unit"], kUnit);
  EXPECT_EQ(u["usage_start"], "2026-01-10T00:00:00.000000001Z");
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(Json::parse(line)["description"], kDescription);
}

// ---- The real binaries ----

std::string Event(const std::string& id, const std::string& at, const Json& payload_kind_and_body) {
  Json e{{"event_id", id}, {"org_id", "evil"}, {"occurred_at", at}};
  for (const auto& [k, v] : payload_kind_and_body.items()) e[k] = v;
  return e.dump() + "\n";
}

TEST(Export, HostileEventTextIsGuardedOverHttpAndInLedgerctl) {
  TempDir tmp;
  Ledgerd s;
  const std::string t0 = "2026-01-01T00:00:00Z";
  std::string body =
      Event("o", t0,
            {{"organization_created",
              {{"name", "Evil"}, {"currency", "USD"}, {"billing_account", "BA"}}}}) +
      Event("cc", t0, {{"cost_center_created", {{"cost_center_id", "cc"}, {"name", "CC"}}}}) +
      Event("ws", t0,
            {{"workspace_created",
              {{"workspace_id", "ws"}, {"cost_center_id", "cc"}, {"name", "W"}}}}) +
      Event(
          "p", t0,
          {{"provider_registered",
            {{"provider_id", "p1"}, {"workspace_id", "ws"}, {"name", "@prov"}, {"kind", "aws"}}}}) +
      Event("u", "2026-01-10T00:00:00.000000001Z",
            {{"usage_recorded",
              {{"provider_id", "p1"},
               {"service", kService},
               {"sku", kSku},
               {"resource_id", kResource},
               {"region", "x"},
               {"quantity", "1.5"},
               {"unit", "h"},
               {"amount", "2.25"},
               {"usage_start", "2026-01-10T00:00:00.000000001Z"},
               {"usage_end", "2026-01-10T00:00:00.999999999Z"}}}}) +
      Event("s", t0,
            {{"support_charged",
              {{"month", "2026-01"}, {"amount", "3"}, {"description", kDescription}}}}) +
      Event("v", t0, {{"event_voided", {{"voided_event_id", "u"}, {"reason", "r"}}}});
  auto posted = Http(s.port(), "POST", "/v1/events", body, "application/x-ndjson");
  ASSERT_EQ(posted.status, 200) << posted.body;
  ASSERT_EQ(Json::parse(posted.body)["accepted"], 7) << posted.body;

  auto check_csv = [](const std::string& csv, const std::string& where) {
    SCOPED_TRACE(where);
    auto rows = CsvRows(csv);
    ASSERT_EQ(rows.size(), 3u) << csv;  // in ledger order: usage, support, the usage's reversal
    for (const auto& row : rows) {
      for (const auto& [column, cell] : row) {
        if (column != "quantity" && column != "amount") ExpectNoFormula(cell, column);
      }
    }
    EXPECT_EQ(Unguard(rows[0].at("service")), kService);
    EXPECT_EQ(Unguard(rows[0].at("sku")), kSku);
    EXPECT_EQ(Unguard(rows[0].at("resource_id")), kResource);
    EXPECT_EQ(Unguard(rows[0].at("provider_name")), "@prov");
    EXPECT_EQ(rows[0].at("usage_start"), "2026-01-10T00:00:00.000000001Z");
    EXPECT_EQ(Unguard(rows[1].at("description")), kDescription);
    EXPECT_EQ(rows[2].at("amount"), "-2.250000000");  // the void's reversal stays a number
    EXPECT_EQ(rows[2].at("quantity"), "-1.500000000");
  };
  auto month_csv = Http(s.port(), "GET", "/v1/orgs/evil/usage-history/2026-01.csv");
  ASSERT_EQ(month_csv.status, 200) << month_csv.body;
  check_csv(month_csv.body, "GET usage-history/2026-01.csv");
  auto invoice_csv = Http(s.port(), "GET", "/v1/orgs/evil/invoices/2026-01-org.csv");
  ASSERT_EQ(invoice_csv.status, 200) << invoice_csv.body;
  check_csv(invoice_csv.body, "GET invoices/2026-01-org.csv");

  auto ledgerctl = [&](const std::string& format) {
    std::string out = tmp.sub("export." + format);
    Child run({billing::testing::LedgerctlPath(), "export", s.data_dir(), "--org", "evil",
               "--month", "2026-01", "--format", format, "--out", out});
    EXPECT_EQ(run.Wait(), 0) << format;
    return ReadFile(out);
  };
  std::string csv = ledgerctl("csv");
  EXPECT_EQ(csv, month_csv.body);
  check_csv(csv, "ledgerctl export --format csv");
  auto focus = CsvRows(ledgerctl("focus"));
  ASSERT_EQ(focus.size(), 3u);
  for (const auto& row : focus) {
    for (const auto& [column, cell] : row) {
      if (column != "BilledCost" && column != "EffectiveCost" && column != "ListCost" &&
          column != "ConsumedQuantity") {
        ExpectNoFormula(cell, column);
      }
    }
  }
  EXPECT_EQ(Unguard(focus[0].at("ServiceName")), kService);
  EXPECT_EQ(focus[0].at("ChargePeriodEnd"), "2026-01-10T00:00:00.999999999Z");
  EXPECT_EQ(focus[2].at("BilledCost"), "-2.250000000");
  std::istringstream nd(ledgerctl("ndjson"));
  std::string line;
  ASSERT_TRUE(std::getline(nd, line));
  Json first = Json::parse(line);
  EXPECT_EQ(first["service"], kService);
  EXPECT_EQ(first["resource_id"], kResource);
  EXPECT_EQ(first["usage_end"], "2026-01-10T00:00:00.999999999Z");
}

}  // namespace
}  // namespace billing::projections
