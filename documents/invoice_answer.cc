#include "documents/invoice_answer.h"

#include "documents/document_hash.h"
#include "ledger/hash_chain.h"

namespace billing::documents {

using Json = nlohmann::ordered_json;

Json InvoiceAnswer(const projections::OrgState& org, const projections::Invoice& invoice,
                   const std::optional<SealPoint>& seal_point) {
  const projections::InvoiceSummary& s = invoice.summary;
  Json lines = Json::array();
  for (const projections::InvoiceLine& line : invoice.lines) {
    lines.push_back(Json{{"category", line.category},
                         {"description", line.description},
                         {"amount", FormatNanos(line.amount, kNanoDigits)}});
  }
  Json answer{{"invoice_id", s.invoice_id},
              {"cost_center_id", s.cost_center_id ? Json(*s.cost_center_id) : Json(nullptr)},
              {"billing_account", s.billing_account ? Json(*s.billing_account) : Json(nullptr)},
              {"status", s.final ? "final" : "draft"},
              {"total", FormatNanos(s.total, org.minor_digits)},
              {"currency", org.currency},
              {"lines", std::move(lines)},
              {"seal", nullptr}};
  if (seal_point) {
    // Every value above is a string or null, so canonical JSON cannot refuse it.
    auto hash = DocumentHash(answer);
    LEDGER_CHECK(hash.ok(), "an invoice answer has no canonical form");
    answer["seal"] = Json{{"sequence", seal_point->sequence},
                          {"ledger_hash", seal_point->ledger_hash},
                          {"document_hash", *hash}};
  }
  return answer;
}

Result<std::optional<SealPoint>> FindSealPoint(const ledger::Ledger& ledger, const std::string& org,
                                               Month month) {
  std::optional<SealPoint> found;
  Status failure;
  const std::string wanted = FormatMonth(month);
  Status s = ledger.ScanOrg(org, ledger::Sequence{0}, ledger::Sequence{UINT64_MAX}, 0,
                            [&](const ledger::Record& record) {
                              auto env = ledger::DecodeEvent(record);
                              if (!env.ok()) {
                                failure = env.status();
                                return false;
                              }
                              // A month closes once (a second close is rejected), so the first is
                              // the one.
                              if (env->payload_case() == events::Payload::kBillingPeriodClosed &&
                                  env->billing_period_closed().month() == wanted) {
                                found = SealPoint{record.sequence(), ledger::Hex(record.hash())};
                                return false;
                              }
                              return true;
                            });
  if (!s.ok()) return s;
  if (!failure.ok()) return failure;
  return found;
}

}  // namespace billing::documents
