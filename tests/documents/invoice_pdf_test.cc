// Invoice PDFs read back by a real PDF reader (poppler's pdftotext): every
// golden invoice written by `ledgerctl invoice` from a real ledger shows its
// id, billing account, status, every line amount, total and (final) document
// hash; hundreds of lines with long descriptions flow onto numbered pages.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "documents/document_hash.h"
#include "documents/invoice_pdf.h"
#include "tests/testing/files.h"
#include "tests/testing/ingest.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using Json = nlohmann::ordered_json;
using testing::RunToExit;
using testing::TempDir;

// The text poppler reads from a PDF (layout kept, so a row stays one line),
// with thousands separators dropped so amounts compare as plain decimals.
std::string PdfText(const std::string& path, int page = 0) {
  std::vector<std::string> args{"/usr/bin/pdftotext", "-layout"};
  if (page > 0) {
    args.insert(args.end(), {"-f", std::to_string(page), "-l", std::to_string(page)});
  }
  args.insert(args.end(), {path, "-"});
  testing::Ran r = RunToExit(args);
  EXPECT_EQ(r.code, 0) << "pdftotext failed on " << path;
  std::string text = r.out;
  text.erase(std::remove(text.begin(), text.end(), ','), text.end());
  return text;
}

int PdfPages(const std::string& path) {
  testing::Ran r = RunToExit({"/usr/bin/pdfinfo", path});
  size_t at = r.out.find("Pages:");
  return at == std::string::npos ? 0 : std::stoi(r.out.substr(at + 6));
}

// "12.500000000" with 2 minor digits reads "12.50"; extra significant digits stay.
std::string Shown(std::string amount, int minor_digits) {
  size_t dot = amount.find('.');
  if (dot == std::string::npos) return amount;
  size_t keep = dot + 1 + static_cast<size_t>(minor_digits);
  while (amount.size() > keep && amount.back() == '0') amount.pop_back();
  if (amount.back() == '.') amount.pop_back();
  return amount;
}

int MinorDigits(const std::string& total) {
  size_t dot = total.find('.');
  return dot == std::string::npos ? 0 : static_cast<int>(total.size() - dot - 1);
}

// The SPEC's line order (the golden files leave it free): category, then
// description by code point.
Json InSpecOrder(Json answer) {
  static const std::map<std::string, int> kRank = {{"usage", 0}, {"support", 1}, {"credit", 2}, {"adjustment", 3}};
  std::vector<Json> lines(answer["lines"].begin(), answer["lines"].end());
  std::sort(lines.begin(), lines.end(), [](const Json& a, const Json& b) {
    return std::make_pair(kRank.at(a["category"]), a["description"].get<std::string>()) <
           std::make_pair(kRank.at(b["category"]), b["description"].get<std::string>());
  });
  answer["lines"] = lines;
  return answer;
}

void WriteFile(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// To look at the documents: LEDGER_PDF_KEEP_DIR=/tmp/pdfs keeps a copy of each.
void Keep(const std::string& pdf) {
  if (const char* dir = std::getenv("LEDGER_PDF_KEEP_DIR")) {
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(pdf, std::string(dir) + "/" + std::filesystem::path(pdf).filename().string(),
                               std::filesystem::copy_options::overwrite_existing);
  }
}

TEST(InvoicePdf, EveryGoldenInvoiceReadsBackFromLedgerctlInvoice) {
  TempDir tmp;
  const std::string events = testing::ReadFile(testing::ExamplesDir() + "/events.ndjson");
  ASSERT_EQ(testing::IngestNdjson(tmp.sub("data"), events).last_sequence, 57u);
  std::map<std::string, std::string> org_names;
  std::istringstream lines(events);
  for (std::string line; std::getline(lines, line);) {
    Json e = Json::parse(line);
    if (e.contains("organization_created")) org_names[e["org_id"]] = e["organization_created"]["name"];
  }
  int checked = 0, final_checked = 0;
  for (const auto& [org, name] : org_names) {
    for (const auto& file : std::filesystem::directory_iterator(testing::ExamplesDir() + "/expected/" + org)) {
      std::string base = file.path().filename().string();
      if (!base.starts_with("invoice-")) continue;
      Json want = Json::parse(testing::ReadFile(file.path().string()))["response"];
      const std::string id = want["invoice_id"];
      SCOPED_TRACE(org + " " + id);
      const std::string pdf = tmp.sub(org + "-" + id + ".pdf");
      testing::Ran ran = RunToExit({testing::BuildDir() + "/ledgerctl", "invoice", tmp.sub("data"), "--org", org,
                                     "--invoice", id, "--out", pdf});
      ASSERT_EQ(ran.code, 0) << ran.out;
      Json printed = Json::parse(ran.out);
      Keep(pdf);
      const std::string text = PdfText(pdf);
      EXPECT_NE(text.find(id), std::string::npos);
      EXPECT_NE(text.find(name), std::string::npos);
      EXPECT_NE(text.find("Organization ID: " + org), std::string::npos);
      EXPECT_NE(text.find(want["billing_account"].is_null() ? std::string("not assigned")
                                                            : want["billing_account"].get<std::string>()),
                std::string::npos);
      const int minor = MinorDigits(want["total"]);
      for (const Json& line : want["lines"]) {
        EXPECT_NE(text.find(Shown(line["amount"], minor)), std::string::npos) << line.dump();
        EXPECT_NE(text.find(line["description"].get<std::string>()), std::string::npos) << line.dump();
      }
      EXPECT_NE(text.find(want["total"].get<std::string>() + " " + want["currency"].get<std::string>()),
                std::string::npos);
      if (want["status"] == "final") {
        EXPECT_NE(text.find("Final"), std::string::npos);
        // The hash of the golden answer, computed apart from the answer
        // ledgerctl built, is the one printed on the document.
        auto hash = documents::DocumentHash(InSpecOrder(want));
        ASSERT_TRUE(hash.ok());
        EXPECT_NE(text.find(*hash), std::string::npos);
        EXPECT_EQ(printed["seal"]["document_hash"], *hash);
        ++final_checked;
      } else {
        EXPECT_NE(text.find("Draft"), std::string::npos);
        EXPECT_TRUE(printed["seal"].is_null());
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 9);  // the golden example's invoices: five of acme, four of kaiju-jp
  EXPECT_GE(final_checked, 2);
}

TEST(InvoicePdf, UnknownInvoiceIsExitTwoAndWritesNothing) {
  TempDir tmp;
  testing::IngestNdjson(tmp.sub("data"), testing::ReadFile(testing::ExamplesDir() + "/events.ndjson"));
  for (const char* id : {"2031-01-org", "nonsense", "2025-11-cc-nowhere"}) {
    testing::Ran ran = RunToExit({testing::BuildDir() + "/ledgerctl", "invoice", tmp.sub("data"), "--org", "acme",
                                   "--invoice", id, "--out", tmp.sub("x.pdf")});
    EXPECT_EQ(ran.code, 2) << id;
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.sub("x.pdf")));
}

// 400 lines, some with ~900-byte descriptions (events::kTextBytesMax is 1 KiB,
// so as long as one gets): rows never split, every page
// repeats the table header and says which page of how many it is, and every
// amount and the end of every long description is still on the paper.
TEST(InvoicePdf, ManyLinesAndLongDescriptionsFlowOntoNumberedPages) {
  TempDir tmp;
  Json lines = Json::array();
  std::string long_text;
  for (int w = 0; w < 40; ++w) long_text += "cross-region-transfer ";
  for (int i = 0; i < 400; ++i) {
    std::string description = "Service " + std::to_string(i);
    if (i % 50 == 7) description += " " + long_text + "END" + std::to_string(i);
    lines.push_back(Json{{"category", i % 3 == 0 ? "credit" : "usage"},
                         {"description", description},
                         {"amount", (i % 3 == 0 ? "-" : "") + std::to_string(1000 + i * 7) + ".1234567" +
                                        std::to_string(i % 10) + "0"}});
  }
  Json answer{{"invoice_id", "2026-02-cc-big"}, {"cost_center_id", "cc-big"}, {"billing_account", nullptr},
              {"status", "draft"}, {"total", "123456.78"}, {"currency", "EUR"}, {"lines", lines}, {"seal", nullptr}};
  auto pdf = documents::RenderInvoicePdf(answer, {"bigco", "Big Company GmbH"});
  ASSERT_TRUE(pdf.ok()) << pdf.status().ToString();
  WriteFile(tmp.sub("big.pdf"), *pdf);
  Keep(tmp.sub("big.pdf"));
  const int pages = PdfPages(tmp.sub("big.pdf"));
  ASSERT_GT(pages, 5);
  std::string all;
  for (int p = 1; p <= pages; ++p) {
    std::string text = PdfText(tmp.sub("big.pdf"), p);
    EXPECT_NE(text.find("Amount (EUR)"), std::string::npos) << "page " << p;
    EXPECT_NE(text.find("Page " + std::to_string(p) + " of " + std::to_string(pages)), std::string::npos);
    all += text;
  }
  for (const Json& line : lines) {
    EXPECT_NE(all.find(Shown(line["amount"], 2)), std::string::npos) << line.dump();
  }
  for (int i = 7; i < 400; i += 50) EXPECT_NE(all.find("END" + std::to_string(i)), std::string::npos) << i;
  EXPECT_NE(all.find("not assigned"), std::string::npos);
  EXPECT_NE(all.find("DRAFT"), std::string::npos);
  EXPECT_NE(all.find("123456.78 EUR"), std::string::npos);
}

TEST(InvoicePdf, AnswerMissingWhatTheDocumentShowsIsRefused) {
  Json answer{{"invoice_id", "2026-02-org"}, {"cost_center_id", nullptr}, {"billing_account", "A-1"},
              {"status", "final"}, {"total", "1.00"}, {"currency", "USD"}, {"lines", Json::array()}};
  EXPECT_TRUE(documents::RenderInvoicePdf(answer, {"o", "O"}).ok());
  for (const char* key : {"invoice_id", "total", "currency", "lines", "status"}) {
    Json broken = answer;
    broken.erase(key);
    EXPECT_EQ(documents::RenderInvoicePdf(broken, {"o", "O"}).status().code(), Code::kInvalidArgument) << key;
  }
  Json bad_line = answer;
  bad_line["lines"].push_back(Json{{"category", "usage"}, {"description", "x"}, {"amount", 5}});
  EXPECT_EQ(documents::RenderInvoicePdf(bad_line, {"o", "O"}).status().code(), Code::kInvalidArgument);
}

TEST(InvoicePdf, DisplayAmountKeepsSignificantDigitsAndGroupsThousands) {
  EXPECT_EQ(documents::DisplayAmount("-1234.500000000", 2), "-1,234.50");
  EXPECT_EQ(documents::DisplayAmount("0.000016060", 2), "0.00001606");
  EXPECT_EQ(documents::DisplayAmount("1234567.000000000", 0), "1,234,567");
  EXPECT_EQ(documents::DisplayAmount("12.300000000", 3), "12.300");
  EXPECT_EQ(documents::DisplayAmount("999", 2), "999.00");
}

}  // namespace
}  // namespace billing
