#include "projections/export.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "projections/decider.h"
#include "projections/keys.h"

namespace billing::projections {

namespace {

// The decider needs a sink for its postings and a view of voided markers.
// An export only wants the observer's rows, so sums are dropped and only the
// markers (a few bytes per void) are kept.
class MarkerStore : public Sink, public View {
 public:
  void Merge(std::string_view, const Agg&) override {}
  void Put(std::string_view key, std::string_view value) override {
    puts_.insert_or_assign(std::string(key), std::string(value));
  }
  std::optional<std::string> Get(const std::string& key) const override {
    auto it = puts_.find(key);
    if (it == puts_.end()) return std::nullopt;
    return it->second;
  }
  void Scan(std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override {
    for (auto it = puts_.lower_bound(prefix); it != puts_.end(); ++it) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) break;
      if (!visit(it->first, it->second)) break;
    }
  }

 private:
  std::map<std::string, std::string, std::less<>> puts_;
};

// FOCUS dates: `YYYY-MM-DDTHH:MM:SSZ`, with a fraction only when there is one.
std::string FocusTime(Timestamp t) {
  std::string s = FormatTimestamp(t);
  const std::string_view zero_fraction = ".000000Z";
  if (s.size() > zero_fraction.size() &&
      std::string_view(s).substr(s.size() - zero_fraction.size()) == zero_fraction) {
    s.resize(s.size() - zero_fraction.size());
    s += 'Z';
  }
  return s;
}

std::string FocusTimeOf(const std::string& rfc3339) {
  auto t = ParseTimestamp(rfc3339, "time");
  return t.ok() ? FocusTime(*t) : rfc3339;
}

// What a column holds. Our own number columns (amounts, quantities,
// sequences) are decimals we formatted, like -1.500000000, and must stay
// numbers to a spreadsheet; every other column is text, and text can come from
// an event's author.
enum class CellKind : char { kText, kNumber };

struct CsvColumn {
  std::string_view name;
  CellKind kind;
};

// RFC 4180: a cell is quoted only when it holds a delimiter, a quote or a
// line break, or when it is guarded (below).
void AppendCsvCell(std::string* out, std::string_view field, CellKind kind) {
  // A spreadsheet runs a cell that starts with = + - @ (or TAB or CR, which
  // it may skip before them) as a formula: an event's `=HYPERLINK(...)`
  // would execute on the analyst's machine. OWASP's remedy: a leading ' makes
  // the cell plain text and is not shown, and quoting keeps CSV readers from
  // splitting it. A value that itself starts with ' is guarded too, so the
  // rule to recover the exact value has no exception: drop one leading '.
  const bool guarded = kind == CellKind::kText && !field.empty() &&
                       std::string_view("=+-@\t\r'").find(field.front()) != std::string_view::npos;
  if (!guarded && field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(field);
    return;
  }
  out->push_back('"');
  if (guarded) out->push_back('\'');
  for (char c : field) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

void AppendCsvHeader(std::string* out, const std::vector<CsvColumn>& columns) {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(columns[i].name);
  }
  out->push_back('\n');
}

void AppendCsvLine(std::string* out, const std::vector<CsvColumn>& columns,
                   const std::vector<std::string>& fields) {
  LEDGER_CHECK(fields.size() == columns.size(), "export: " + std::to_string(fields.size()) +
                                                    " cells for " + std::to_string(columns.size()) +
                                                    " columns");
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendCsvCell(out, fields[i], columns[i].kind);
  }
  out->push_back('\n');
}

std::string CsvQuantity(const ExportRow& r) {
  return r.quantity ? FormatNanos(*r.quantity) : std::string();
}

constexpr CellKind kText = CellKind::kText;
constexpr CellKind kNumber = CellKind::kNumber;

const std::vector<CsvColumn>& CsvColumns() {
  static const std::vector<CsvColumn> kColumns = {
      {"org_id", kText},         {"month", kText},
      {"invoice_id", kText},     {"billing_account", kText},
      {"cost_center_id", kText}, {"category", kText},
      {"label", kText},          {"service", kText},
      {"provider_id", kText},    {"provider_name", kText},
      {"resource_id", kText},    {"sku", kText},
      {"region", kText},         {"quantity", kNumber},
      {"unit", kText},           {"amount", kNumber},
      {"usage_start", kText},    {"usage_end", kText},
      {"description", kText},    {"event_id", kText},
      {"sequence", kNumber},     {"reverses_event_id", kText}};
  return kColumns;
}

const std::vector<CsvColumn>& FocusColumns() {
  static const std::vector<CsvColumn> kColumns = {
      {"BillingAccountId", kText},   {"BillingAccountName", kText}, {"BillingCurrency", kText},
      {"BillingPeriodStart", kText}, {"BillingPeriodEnd", kText},   {"ChargePeriodStart", kText},
      {"ChargePeriodEnd", kText},    {"ChargeCategory", kText},     {"ChargeDescription", kText},
      {"BilledCost", kNumber},       {"EffectiveCost", kNumber},    {"ListCost", kNumber},
      {"ConsumedQuantity", kNumber}, {"ConsumedUnit", kText},       {"ProviderName", kText},
      {"ServiceName", kText},        {"ResourceId", kText},         {"SkuId", kText},
      {"RegionId", kText},           {"SubAccountId", kText},       {"SubAccountName", kText},
      {"x_InvoiceId", kText},        {"x_CostCenterId", kText},     {"x_EventId", kText},
      {"x_Sequence", kNumber}};
  return kColumns;
}

// FOCUS ServiceName: the usage's service; support and credits are services of
// their own, named by category, so per-ServiceName sums stay meaningful.
std::string FocusServiceName(const ExportRow& r) {
  if (r.charge_kind == "usage_recorded") return r.service;
  if (r.charge_kind == "support_charged") return "Support";
  return "Credit";
}

// An export row for a posting the decider made: the charge's fields, and
// the cause when that is a void reversing it. Invoice and names come later.
ExportRow RowOf(const PostingRow& p) {
  ExportRow r;
  r.cost_center_id = std::string(p.cost_center);
  r.category = std::string(keys::CategoryName(p.category));
  r.label = std::string(p.label);
  r.amount = p.amount;
  const events::Envelope& charge = p.charge->envelope;
  r.charge_kind = std::string(events::PayloadName(charge.payload_case()));
  switch (charge.payload_case()) {
    case events::Payload::kUsageRecorded: {
      const auto& u = charge.usage_recorded();
      r.service = u.service();
      r.provider_id = u.provider_id();
      r.resource_id = u.resource_id();
      r.sku = u.sku();
      r.region = u.region();
      r.quantity = p.quantity;
      r.unit = std::string(p.unit);
      r.usage_start = u.usage_start();
      r.usage_end = u.usage_end();
      break;
    }
    case events::Payload::kSupportCharged:
      r.description = charge.support_charged().description();
      break;
    case events::Payload::kCreditApplied:
      r.description = charge.credit_applied().description();
      break;
    default:
      break;
  }
  r.event_id = p.cause->envelope.event_id();
  r.sequence = p.sequence;
  if (p.cause != p.charge) r.reverses_event_id = charge.event_id();
  return r;
}

// Decides the org's records up to `upto` again, so the decider's observer sees
// every posting exactly as the invoices were built.
Status RedecideOrg(Decider& decider, const ledger::Ledger& ledger, const std::string& org_id,
                   ledger::Sequence upto) {
  MarkerStore store;
  Status failure;
  EventLookup lookup = [&ledger](ledger::EventKey key) { return ledger.FindEvent(key); };
  Status scan =
      ledger.ScanOrg(org_id, ledger::Sequence{0}, upto, 0, [&](const ledger::Record& record) {
        failure = decider.Redecide(record, lookup, store, store);
        return failure.ok();
      });
  if (!scan.ok()) return scan;
  return failure;
}

// Same rule as the invoices: one organization invoice in SINGLE months, else
// one per cost center plus the organization's own.
void PlaceOnInvoice(const OrgState& org, Month month, InvoicingMode mode, ExportRow* r) {
  bool own_invoice = mode == InvoicingMode::kPerCostCenter && !r->cost_center_id.empty();
  r->invoice_id = FormatMonth(month) + "-" + (own_invoice ? r->cost_center_id : std::string("org"));
  if (own_invoice) {
    r->billing_account = org.AccountOf(r->cost_center_id, month);
    auto cc = org.cost_centers.find(r->cost_center_id);
    r->billing_account_name = cc != org.cost_centers.end() ? cc->second.name : r->cost_center_id;
  } else {
    r->billing_account = org.billing_account;
    r->billing_account_name = org.name;
  }
}

void NameProvider(const OrgState& org, ExportRow* r) {
  if (r->provider_id.empty()) return;
  auto prov = org.providers.find(r->provider_id);
  if (prov != org.providers.end()) {
    r->provider_name = prov->second.name;
    r->provider_kind = prov->second.kind;
  }
}

}  // namespace

std::string_view FocusChargeCategory(std::string_view category) {
  if (category == "usage") return "Usage";
  if (category == "support") return "Purchase";
  if (category == "credit") return "Credit";
  return "Adjustment";
}

Result<MonthExport> ExportMonth(const ledger::Ledger& ledger, const std::string& org_id,
                                Month month, ledger::Sequence upto) {
  // Rows are collected with their bucket; invoice ids and accounts depend on
  // the month's mode and accounts as of `upto`, known only at the end.
  std::vector<ExportRow> rows;
  Decider decider;
  decider.set_observer([&](const PostingRow& p) {
    if (p.month == month) rows.push_back(RowOf(p));
  });
  RETURN_IF_ERROR(RedecideOrg(decider, ledger, org_id, upto));
  const OrgState* org = decider.Find(org_id);
  if (org == nullptr) return Status(Code::kNotFound, "organization " + org_id + " is unknown");

  MonthExport out;
  out.org_id = org_id;
  out.org_name = org->name;
  out.currency = org->currency;
  out.month = month;
  out.mode = org->ModeOf(month);
  out.closed = org->IsClosed(month);
  for (ExportRow& r : rows) {
    PlaceOnInvoice(*org, month, out.mode, &r);
    NameProvider(*org, &r);
  }
  out.rows = std::move(rows);
  return out;
}

size_t KeepInvoice(MonthExport* month_export, const std::string& invoice_id) {
  auto& rows = month_export->rows;
  std::erase_if(rows, [&](const ExportRow& r) { return r.invoice_id != invoice_id; });
  return rows.size();
}

Result<ExportFormat> ParseExportFormat(std::string_view name) {
  if (name == "csv") return ExportFormat::kCsv;
  if (name == "focus") return ExportFormat::kFocus;
  if (name == "ndjson") return ExportFormat::kNdjson;
  return Status(Code::kInvalidArgument,
                "format must be csv, focus or ndjson, not " + std::string(name));
}

std::string RenderExport(const MonthExport& e, ExportFormat format) {
  std::string out;
  const std::string month = FormatMonth(e.month);
  const std::string period_start = FocusTime(MonthStart(e.month));
  const std::string period_end = FocusTime(MonthStart(e.month.next()));
  switch (format) {
    case ExportFormat::kCsv:
      AppendCsvHeader(&out, CsvColumns());
      for (const ExportRow& r : e.rows) {
        AppendCsvLine(&out, CsvColumns(),
                      {e.org_id,
                       month,
                       r.invoice_id,
                       r.billing_account.value_or(""),
                       r.cost_center_id,
                       r.category,
                       r.label,
                       r.service,
                       r.provider_id,
                       r.provider_name,
                       r.resource_id,
                       r.sku,
                       r.region,
                       CsvQuantity(r),
                       r.unit,
                       FormatNanos(r.amount),
                       r.usage_start,
                       r.usage_end,
                       r.description,
                       r.event_id,
                       std::to_string(r.sequence),
                       r.reverses_event_id});
      }
      break;
    case ExportFormat::kFocus:
      AppendCsvHeader(&out, FocusColumns());
      for (const ExportRow& r : e.rows) {
        // Usage carries its own charge period; support, credits and
        // adjustments are charges of the whole billing period.
        bool usage = r.category == "usage";
        std::string cost = FormatNanos(r.amount);
        AppendCsvLine(&out, FocusColumns(),
                      {r.billing_account.value_or(""),
                       r.billing_account_name,
                       e.currency,
                       period_start,
                       period_end,
                       usage ? FocusTimeOf(r.usage_start) : period_start,
                       usage ? FocusTimeOf(r.usage_end) : period_end,
                       std::string(FocusChargeCategory(r.category)),
                       r.label,
                       cost,
                       cost,
                       cost,
                       CsvQuantity(r),
                       r.unit,
                       r.provider_kind,
                       FocusServiceName(r),
                       r.resource_id,
                       r.sku,
                       r.region,
                       r.provider_id,
                       r.provider_name,
                       r.invoice_id,
                       r.cost_center_id,
                       r.event_id,
                       std::to_string(r.sequence)});
      }
      break;
    case ExportFormat::kNdjson:
      for (const ExportRow& r : e.rows) {
        using Json = nlohmann::ordered_json;
        auto text_or_null = [](const std::string& s) {
          return s.empty() ? Json(nullptr) : Json(s);
        };
        Json j{{"org_id", e.org_id},
               {"month", month},
               {"invoice_id", r.invoice_id},
               {"billing_account", r.billing_account ? Json(*r.billing_account) : Json(nullptr)},
               {"cost_center_id", text_or_null(r.cost_center_id)},
               {"category", r.category},
               {"label", r.label},
               {"service", text_or_null(r.service)},
               {"provider_id", text_or_null(r.provider_id)},
               {"provider_name", text_or_null(r.provider_name)},
               {"resource_id", text_or_null(r.resource_id)},
               {"sku", text_or_null(r.sku)},
               {"region", text_or_null(r.region)},
               {"quantity", r.quantity ? Json(FormatNanos(*r.quantity)) : Json(nullptr)},
               {"unit", text_or_null(r.unit)},
               {"amount", FormatNanos(r.amount)},
               {"currency", e.currency},
               {"usage_start", text_or_null(r.usage_start)},
               {"usage_end", text_or_null(r.usage_end)},
               {"description", text_or_null(r.description)},
               {"event_id", r.event_id},
               {"sequence", r.sequence},
               {"reverses_event_id", text_or_null(r.reverses_event_id)}};
        out += j.dump(-1, ' ', false, Json::error_handler_t::replace);
        out += '\n';
      }
      break;
  }
  return out;
}

}  // namespace billing::projections
