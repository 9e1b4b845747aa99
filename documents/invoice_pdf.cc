#include "documents/invoice_pdf.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <pango/pangocairo.h>

#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "events/calendar.h"

namespace billing::documents {

namespace {

using Json = nlohmann::ordered_json;

// Page geometry in PDF points (1/72 inch): A4, the paper of most invoice
// recipients, with margins any printer can print.
constexpr double kPageWidthPt = 595.276;
constexpr double kPageHeightPt = 841.890;
constexpr double kMarginPt = 50;
constexpr double kContentWidthPt = kPageWidthPt - 2 * kMarginPt;
// Kept free above the bottom margin for the footer (seal, page number).
constexpr double kFooterHeightPt = 62;
// The lines table: category and amount columns sized for their longest
// values ("Adjustment"; a 13-digit amount with 9 decimals and grouping);
// the description takes the rest and wraps.
constexpr double kCategoryColumnPt = 80;
constexpr double kAmountColumnPt = 150;
constexpr double kDescriptionColumnPt = kContentWidthPt - kCategoryColumnPt - kAmountColumnPt;
constexpr double kCellPaddingPt = 5;
// A description is at most events::kTextBytesMax (1 KiB), ~20 wrapped lines
// here; the bound keeps any row shorter than a page even if an answer ever
// held more, so pagination always makes progress.
constexpr int kDescriptionLinesMax = 30;

constexpr const char* kFontBody = "DejaVu Sans,sans-serif 9";
constexpr const char* kFontBodyBold = "DejaVu Sans,sans-serif Bold 9";
constexpr const char* kFontSmall = "DejaVu Sans,sans-serif 7.5";
constexpr const char* kFontMono = "DejaVu Sans Mono,monospace 7.5";
constexpr const char* kFontTitle = "DejaVu Sans,sans-serif Bold 22";
constexpr const char* kFontOrg = "DejaVu Sans,sans-serif Bold 14";

struct Rgb {
  double r, g, b;
};
constexpr Rgb kInk{0.12, 0.13, 0.15};
constexpr Rgb kMuted{0.40, 0.42, 0.46};
constexpr Rgb kRule{0.75, 0.77, 0.80};
constexpr Rgb kHeadFill{0.20, 0.25, 0.33};
constexpr Rgb kWhite{1, 1, 1};
constexpr Rgb kZebra{0.955, 0.96, 0.97};
constexpr Rgb kFinal{0.08, 0.45, 0.22};
constexpr Rgb kDraft{0.72, 0.42, 0.02};

void SetColor(cairo_t* cr, Rgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

struct GObjectUnref {
  void operator()(void* p) const { g_object_unref(p); }
};
using LayoutPtr = std::unique_ptr<PangoLayout, GObjectUnref>;

LayoutPtr Text(cairo_t* cr, const std::string& text, const char* font, double width_pt = 0,
               PangoAlignment align = PANGO_ALIGN_LEFT) {
  LayoutPtr layout(pango_cairo_create_layout(cr));
  PangoFontDescription* desc = pango_font_description_from_string(font);
  pango_layout_set_font_description(layout.get(), desc);
  pango_font_description_free(desc);
  if (width_pt > 0) {
    pango_layout_set_width(layout.get(), pango_units_from_double(width_pt));
    pango_layout_set_wrap(layout.get(), PANGO_WRAP_WORD_CHAR);
  }
  pango_layout_set_alignment(layout.get(), align);
  pango_layout_set_text(layout.get(), text.data(), static_cast<int>(text.size()));
  return layout;
}

double HeightOf(PangoLayout* layout) {
  int w = 0, h = 0;
  pango_layout_get_size(layout, &w, &h);
  return pango_units_to_double(h);
}

void Show(cairo_t* cr, PangoLayout* layout, double x, double y, Rgb color) {
  SetColor(cr, color);
  cairo_move_to(cr, x, y);
  pango_cairo_show_layout(cr, layout);
}

void Rule(cairo_t* cr, double y, double width_pt, Rgb color) {
  SetColor(cr, color);
  cairo_set_line_width(cr, width_pt);
  cairo_move_to(cr, kMarginPt, y);
  cairo_line_to(cr, kMarginPt + kContentWidthPt, y);
  cairo_stroke(cr);
}

struct Line {
  std::string category, description, amount;
};

// What the document shows, read from the invoice answer.
struct Fields {
  std::string invoice_id;
  std::optional<std::string> cost_center_id;
  std::optional<std::string> billing_account;
  bool final = false;
  std::string total, currency;
  int minor_digits = 0;
  Month month;
  std::vector<Line> lines;
  std::optional<uint64_t> seal_sequence;
  std::string document_hash;
};

Result<std::string> StringAt(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return Status(Code::kInvalidArgument,
                  std::string("the invoice answer has no string \"") + key + "\"");
  }
  return it->get<std::string>();
}

Result<std::optional<std::string>> OptionalStringAt(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string())
    return Status(Code::kInvalidArgument, std::string("\"") + key + "\" is not a string");
  return std::optional<std::string>(it->get<std::string>());
}

Status ReadLines(const Json& answer, Fields* f) {
  auto lines = answer.find("lines");
  if (lines == answer.end() || !lines->is_array()) {
    return Status(Code::kInvalidArgument, "the invoice answer has no \"lines\" array");
  }
  if (lines->size() > kInvoicePdfLinesMax) {
    return Status(Code::kInvalidArgument, "an invoice document holds at most " +
                                              std::to_string(kInvoicePdfLinesMax) +
                                              " lines; export it as CSV");
  }
  for (const Json& l : *lines) {
    if (!l.is_object()) return Status(Code::kInvalidArgument, "an invoice line is not an object");
    auto category = StringAt(l, "category");
    auto description = StringAt(l, "description");
    auto amount = StringAt(l, "amount");
    if (!category.ok()) return category.status();
    if (!description.ok()) return description.status();
    if (!amount.ok()) return amount.status();
    f->lines.push_back(Line{*category, *description, *amount});
  }
  return Status::Ok();
}

Result<Fields> ReadFields(const Json& answer) {
  if (!answer.is_object())
    return Status(Code::kInvalidArgument, "the invoice answer is not an object");
  Fields f;
  auto id = StringAt(answer, "invoice_id");
  auto status = StringAt(answer, "status");
  auto total = StringAt(answer, "total");
  auto currency = StringAt(answer, "currency");
  auto cost_center = OptionalStringAt(answer, "cost_center_id");
  auto account = OptionalStringAt(answer, "billing_account");
  for (const Status& s : {id.status(), status.status(), total.status(), currency.status(),
                          cost_center.status(), account.status()}) {
    if (!s.ok()) return s;
  }
  f.invoice_id = *id;
  f.final = *status == "final";
  f.total = *total;
  f.currency = *currency;
  f.cost_center_id = *cost_center;
  f.billing_account = *account;
  // Totals carry exactly the currency's minor-unit digits (SPEC).
  size_t dot = f.total.find('.');
  f.minor_digits = dot == std::string::npos ? 0 : static_cast<int>(f.total.size() - dot - 1);
  auto month = ParseMonth(std::string_view(f.invoice_id).substr(0, 7), "invoice month");
  if (!month.ok())
    return Status(Code::kInvalidArgument,
                  "invoice id " + f.invoice_id + " does not start with its month");
  f.month = *month;
  if (Status s = ReadLines(answer, &f); !s.ok()) return s;
  auto seal = answer.find("seal");
  if (seal != answer.end() && seal->is_object()) {
    auto hash = StringAt(*seal, "document_hash");
    if (!hash.ok()) return hash.status();
    f.document_hash = *hash;
    if (auto seq = seal->find("sequence"); seq != seal->end() && seq->is_number_unsigned()) {
      f.seal_sequence = seq->get<uint64_t>();
    }
  }
  return f;
}

int DaysIn(Month m) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y = m.year();
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m.month() == 2 && leap ? 29 : kDays[static_cast<size_t>(m.month() - 1)];
}

std::string PeriodText(Month m) {
  static constexpr std::array<const char*, 12> kNames = {
      "January", "February", "March",     "April",   "May",      "June",
      "July",    "August",   "September", "October", "November", "December"};
  std::string name = kNames[static_cast<size_t>(m.month() - 1)];
  std::string year = std::to_string(m.year());
  return "1 " + name + " " + year + " \u2013 " + std::to_string(DaysIn(m)) + " " + name + " " +
         year + " (" + FormatMonth(m) + ")";
}

std::string CategoryText(const std::string& category) {
  if (category == "usage") return "Usage";
  if (category == "support") return "Support";
  if (category == "credit") return "Credit";
  if (category == "adjustment") return "Adjustment";
  return category;
}

// An adjustment line's description is the month its late charges belong to.
std::string DescriptionText(const Line& line) {
  if (line.category == "adjustment") return "Late charges and corrections for " + line.description;
  return line.description;
}

}  // namespace

std::string DisplayAmount(const std::string& decimal, int minor_digits) {
  std::string_view s = decimal;
  std::string sign;
  if (!s.empty() && s[0] == '-') {
    sign = "-";
    s.remove_prefix(1);
  }
  size_t dot = s.find('.');
  std::string whole(s.substr(0, dot));
  std::string frac = dot == std::string_view::npos ? std::string() : std::string(s.substr(dot + 1));
  while (frac.size() > static_cast<size_t>(minor_digits) && frac.back() == '0') frac.pop_back();
  if (frac.size() < static_cast<size_t>(minor_digits))
    frac.append(static_cast<size_t>(minor_digits) - frac.size(), '0');
  std::string grouped;
  for (size_t i = 0; i < whole.size(); ++i) {
    if (i > 0 && (whole.size() - i) % 3 == 0) grouped.push_back(',');
    grouped.push_back(whole[i]);
  }
  return sign + grouped + (frac.empty() ? std::string() : "." + frac);
}

namespace {

// The laid-out document: every text measured once, then placed page by page.
class Renderer {
 public:
  Renderer(cairo_t* cr, const Fields& f, const InvoiceIssuer& issuer)
      : cr_(cr), f_(f), issuer_(issuer) {}

  void Render() {
    LayoutRows();
    Paginate();
    int page = 0;
    double y = DrawFirstHeader(true);
    y = DrawTableHeader(y);
    for (size_t i = 0; i < rows_.size(); ++i) {
      if (row_page_[i] != page) {
        DrawFooter(page);
        cairo_show_page(cr_);
        ++page;
        y = DrawTableHeader(DrawContinuationHeader(true));
      }
      y = DrawRow(i, y);
    }
    if (total_page_ != page) {
      DrawFooter(page);
      cairo_show_page(cr_);
      ++page;
      y = DrawContinuationHeader(true);
    }
    DrawTotal(y);
    DrawFooter(page);
    cairo_show_page(cr_);
  }

 private:
  struct Row {
    LayoutPtr category, description, amount;
    double height = 0;
  };

  static constexpr double kBottomPt = kPageHeightPt - kMarginPt - kFooterHeightPt;

  void LayoutRows() {
    for (const Line& line : f_.lines) {
      Row row;
      row.category =
          Text(cr_, CategoryText(line.category), kFontBody, kCategoryColumnPt - 2 * kCellPaddingPt);
      row.description =
          Text(cr_, DescriptionText(line), kFontBody, kDescriptionColumnPt - 2 * kCellPaddingPt);
      pango_layout_set_height(row.description.get(), -kDescriptionLinesMax);
      pango_layout_set_ellipsize(row.description.get(), PANGO_ELLIPSIZE_END);
      row.amount = Text(cr_, DisplayAmount(line.amount, f_.minor_digits), kFontBody,
                        kAmountColumnPt - 2 * kCellPaddingPt, PANGO_ALIGN_RIGHT);
      row.height = std::max({HeightOf(row.category.get()), HeightOf(row.description.get()),
                             HeightOf(row.amount.get())}) +
                   2 * kCellPaddingPt;
      rows_.push_back(std::move(row));
    }
  }

  // Which page each row lands on: a row never splits, and the total block
  // goes on the last row's page when it fits there.
  void Paginate() {
    const double table_head = TableHeaderHeight();
    int page = 0;
    double y = DrawFirstHeader(false) + table_head;
    const double next_top = DrawContinuationHeader(false) + table_head;
    for (const Row& row : rows_) {
      if (y + row.height > kBottomPt) {
        ++page;
        y = next_top;
      }
      row_page_.push_back(page);
      y += row.height;
    }
    total_page_ = y + TotalHeight() > kBottomPt ? page + 1 : page;
    pages_ = total_page_ + 1;
  }

  // Draws (or, with draw false, only measures) the first page's header;
  // returns the y where the table starts.
  double DrawFirstHeader(bool draw) {
    double y = kMarginPt;
    auto org = Text(cr_, issuer_.org_name.empty() ? issuer_.org_id : issuer_.org_name, kFontOrg,
                    kContentWidthPt * 0.6);
    auto org_id = Text(cr_, "Organization ID: " + issuer_.org_id, kFontBody, kContentWidthPt * 0.6);
    auto title = Text(cr_, "INVOICE", kFontTitle, kContentWidthPt * 0.4, PANGO_ALIGN_RIGHT);
    auto badge = Text(cr_, f_.final ? "FINAL" : "DRAFT", kFontBodyBold, kContentWidthPt * 0.4,
                      PANGO_ALIGN_RIGHT);
    if (draw) {
      Show(cr_, org.get(), kMarginPt, y, kInk);
      Show(cr_, org_id.get(), kMarginPt, y + HeightOf(org.get()) + 2, kMuted);
      Show(cr_, title.get(), kMarginPt + kContentWidthPt * 0.6, y - 4, kInk);
      Show(cr_, badge.get(), kMarginPt + kContentWidthPt * 0.6, y + HeightOf(title.get()) - 2,
           f_.final ? kFinal : kDraft);
    }
    y += std::max(HeightOf(org.get()) + HeightOf(org_id.get()) + 2,
                  HeightOf(title.get()) + HeightOf(badge.get())) +
         10;
    if (draw) Rule(cr_, y, 1, kRule);
    y += 12;
    const std::vector<std::pair<std::string, std::string>> facts = {
        {"Invoice number", f_.invoice_id},
        {"Billing account", f_.billing_account ? *f_.billing_account : "not assigned"},
        {"Billing period", PeriodText(f_.month)},
        {"Billed to",
         f_.cost_center_id ? "Cost center " + *f_.cost_center_id : "Organization (no cost center)"},
        {"Status", f_.final ? "Final" : "Draft"},
        {"Currency", f_.currency},
    };
    constexpr double kLabelWidthPt = 110;
    for (const auto& [label, value] : facts) {
      auto l = Text(cr_, label, kFontBody, kLabelWidthPt);
      auto v = Text(cr_, value, kFontBodyBold, kContentWidthPt - kLabelWidthPt);
      if (draw) {
        Show(cr_, l.get(), kMarginPt, y, kMuted);
        Show(cr_, v.get(), kMarginPt + kLabelWidthPt, y, kInk);
      }
      y += std::max(HeightOf(l.get()), HeightOf(v.get())) + 3;
    }
    return y + 16;
  }

  // Pages after the first repeat who and which invoice, compactly.
  double DrawContinuationHeader(bool draw) {
    auto head =
        Text(cr_,
             "Invoice " + f_.invoice_id + " \u00b7 " +
                 (issuer_.org_name.empty() ? issuer_.org_id : issuer_.org_name) + " (continued)",
             kFontBodyBold, kContentWidthPt);
    double y = kMarginPt;
    if (draw) Show(cr_, head.get(), kMarginPt, y, kInk);
    y += HeightOf(head.get()) + 6;
    if (draw) Rule(cr_, y, 0.5, kRule);
    return y + 10;
  }

  std::array<LayoutPtr, 3> TableHeaderCells() {
    return {Text(cr_, "Category", kFontBodyBold, kCategoryColumnPt - 2 * kCellPaddingPt),
            Text(cr_, "Description", kFontBodyBold, kDescriptionColumnPt - 2 * kCellPaddingPt),
            Text(cr_, "Amount (" + f_.currency + ")", kFontBodyBold,
                 kAmountColumnPt - 2 * kCellPaddingPt, PANGO_ALIGN_RIGHT)};
  }

  double TableHeaderHeight() { return HeightOf(TableHeaderCells()[0].get()) + 2 * kCellPaddingPt; }

  double DrawTableHeader(double y) {
    auto cells = TableHeaderCells();
    double h = HeightOf(cells[0].get()) + 2 * kCellPaddingPt;
    SetColor(cr_, kHeadFill);
    cairo_rectangle(cr_, kMarginPt, y, kContentWidthPt, h);
    cairo_fill(cr_);
    DrawCells(cells[0].get(), cells[1].get(), cells[2].get(), y, kWhite);
    return y + h;
  }

  void DrawCells(PangoLayout* category, PangoLayout* description, PangoLayout* amount, double y,
                 Rgb color) {
    Show(cr_, category, kMarginPt + kCellPaddingPt, y + kCellPaddingPt, color);
    Show(cr_, description, kMarginPt + kCategoryColumnPt + kCellPaddingPt, y + kCellPaddingPt,
         color);
    Show(cr_, amount, kMarginPt + kCategoryColumnPt + kDescriptionColumnPt + kCellPaddingPt,
         y + kCellPaddingPt, color);
  }

  double DrawRow(size_t i, double y) {
    const Row& row = rows_[i];
    if (i % 2 == 1) {
      SetColor(cr_, kZebra);
      cairo_rectangle(cr_, kMarginPt, y, kContentWidthPt, row.height);
      cairo_fill(cr_);
    }
    DrawCells(row.category.get(), row.description.get(), row.amount.get(), y, kInk);
    return y + row.height;
  }

  std::array<LayoutPtr, 2> TotalCells() {
    return {
        Text(cr_, "Total (" + f_.currency + ")", kFontBodyBold, kContentWidthPt - kAmountColumnPt),
        Text(cr_, DisplayAmount(f_.total, f_.minor_digits) + " " + f_.currency, kFontBodyBold,
             kAmountColumnPt - 2 * kCellPaddingPt, PANGO_ALIGN_RIGHT)};
  }

  double TotalHeight() { return HeightOf(TotalCells()[0].get()) + 4 * kCellPaddingPt + 6; }

  void DrawTotal(double y) {
    auto cells = TotalCells();
    y += 6;
    Rule(cr_, y, 1.2, kInk);
    Show(cr_, cells[0].get(), kMarginPt + kCellPaddingPt, y + 2 * kCellPaddingPt, kInk);
    Show(cr_, cells[1].get(), kMarginPt + kCategoryColumnPt + kDescriptionColumnPt + kCellPaddingPt,
         y + 2 * kCellPaddingPt, kInk);
  }

  void DrawFooter(int page) {
    double y = kPageHeightPt - kMarginPt - kFooterHeightPt + 12;
    Rule(cr_, y, 0.5, kRule);
    y += 6;
    constexpr double kPageNumberWidthPt = 80;
    const double text_width = kContentWidthPt - kPageNumberWidthPt;
    if (f_.final && !f_.document_hash.empty()) {
      std::string what = "Final invoice, sealed";
      if (f_.seal_sequence) what += " at ledger sequence " + std::to_string(*f_.seal_sequence);
      what +=
          ". Document hash (SHA-256 of the invoice's RFC 8785 canonical JSON, without its seal):";
      auto note = Text(cr_, what, kFontSmall, text_width);
      auto hash = Text(cr_, f_.document_hash, kFontMono, text_width);
      Show(cr_, note.get(), kMarginPt, y, kMuted);
      Show(cr_, hash.get(), kMarginPt, y + HeightOf(note.get()) + 2, kInk);
    } else {
      auto note = Text(
          cr_,
          f_.final ? "Final invoice."
                   : "Draft: the figures can change until the billing period is closed; the final "
                     "invoice carries its seal here.",
          kFontSmall, text_width);
      Show(cr_, note.get(), kMarginPt, y, kMuted);
    }
    auto number = Text(cr_, "Page " + std::to_string(page + 1) + " of " + std::to_string(pages_),
                       kFontSmall, kPageNumberWidthPt, PANGO_ALIGN_RIGHT);
    Show(cr_, number.get(), kMarginPt + text_width, y, kMuted);
  }

  cairo_t* cr_;
  const Fields& f_;
  const InvoiceIssuer& issuer_;
  std::vector<Row> rows_;
  std::vector<int> row_page_;
  int total_page_ = 0;
  int pages_ = 1;
};

cairo_status_t AppendBytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

Result<std::string> RenderInvoicePdf(const Json& invoice_answer, const InvoiceIssuer& issuer) {
  auto fields = ReadFields(invoice_answer);
  if (!fields.ok()) return fields.status();
  std::string pdf;
  cairo_surface_t* surface =
      cairo_pdf_surface_create_for_stream(AppendBytes, &pdf, kPageWidthPt, kPageHeightPt);
  std::string title = "Invoice " + fields->invoice_id;
  cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, title.c_str());
  cairo_pdf_surface_set_metadata(
      surface, CAIRO_PDF_METADATA_AUTHOR,
      (issuer.org_name.empty() ? issuer.org_id : issuer.org_name).c_str());
  cairo_t* cr = cairo_create(surface);
  {
    // Layouts hold the context; they go before it does.
    Renderer renderer(cr, *fields, issuer);
    renderer.Render();
  }
  cairo_status_t drawn = cairo_status(cr);
  cairo_destroy(cr);
  cairo_surface_finish(surface);
  cairo_status_t finished = cairo_surface_status(surface);
  cairo_surface_destroy(surface);
  if (drawn != CAIRO_STATUS_SUCCESS || finished != CAIRO_STATUS_SUCCESS) {
    return Status(Code::kInternal,
                  std::string("cairo could not write the PDF: ") +
                      cairo_status_to_string(drawn != CAIRO_STATUS_SUCCESS ? drawn : finished));
  }
  return pdf;
}

}  // namespace billing::documents
