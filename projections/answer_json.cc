#include "projections/answer_json.h"

#include "ledger/hash_chain.h"

namespace billing::projections {

AnswerJson VerifyJson(const ledger::VerifyReport& report) {
  AnswerJson j{{"ok", report.ok},
               {"events", report.events},
               {"head_sequence", report.head.sequence.value},
               {"head_hash", ledger::Hex(report.head.hash)}};
  if (!report.ok) {
    j["first_bad_sequence"] = report.first_bad.value;
    j["problem"] = report.problem;
  }
  return j;
}

AnswerJson VerifyJson(const ledger::VerifyReport& report, const SealReport& seals) {
  AnswerJson j = VerifyJson(report);
  j["seals"] = seals.seals;
  if (report.ok && !seals.ok) {
    j["ok"] = false;
    j["org_id"] = seals.org_id;
    j["invoice_id"] = seals.invoice_id;
    j["problem"] = seals.problem;
  }
  return j;
}

AnswerJson InvoiceSummaryJson(const InvoiceSummary& invoice, const OrgState& org) {
  return AnswerJson{
      {"invoice_id", invoice.invoice_id},
      {"cost_center_id",
       invoice.cost_center_id ? AnswerJson(*invoice.cost_center_id) : AnswerJson(nullptr)},
      {"billing_account",
       invoice.billing_account ? AnswerJson(*invoice.billing_account) : AnswerJson(nullptr)},
      {"status", invoice.final ? "final" : "draft"},
      {"total", FormatNanos(invoice.total, org.minor_digits)},
      {"currency", org.currency}};
}

AnswerJson AlertJson(const Alert& alert, const OrgState& org) {
  return AnswerJson{{"alert_id", AlertId(alert)},
                    {"budget_id", alert.budget_id},
                    {"cost_center_id", alert.cost_center_id ? AnswerJson(*alert.cost_center_id)
                                                            : AnswerJson(nullptr)},
                    {"month", FormatMonth(alert.month)},
                    {"kind", AlertKindName(alert.kind)},
                    {"threshold", alert.threshold},
                    {"budget", FormatNanos(alert.budget, org.minor_digits)},
                    {"amount", FormatNanos(alert.amount, org.minor_digits)},
                    {"sequence", alert.sequence}};
}

AnswerJson InvoiceJson(const Invoice& invoice, const OrgState& org) {
  AnswerJson j = InvoiceSummaryJson(invoice.summary, org);
  AnswerJson lines = AnswerJson::array();
  for (const InvoiceLine& l : invoice.lines) {
    lines.push_back(AnswerJson{{"category", l.category},
                               {"description", l.description},
                               {"amount", FormatNanos(l.amount)}});
  }
  j["lines"] = std::move(lines);
  return j;
}

AnswerJson WithSeal(AnswerJson answer, const std::optional<InvoiceSeal>& seal) {
  if (!seal) {
    answer["seal"] = nullptr;
    return answer;
  }
  answer["seal"] = AnswerJson{{"sequence", seal->sequence.value},
                              {"ledger_hash", seal->ledger_hash},
                              {"document_hash", seal->document_hash}};
  return answer;
}

AnswerJson ProofJson(const MonthProof& proof) {
  AnswerJson checks = AnswerJson::array();
  for (const ProofCheck& c : proof.checks) {
    checks.push_back(AnswerJson{
        {"check", c.check}, {"ok", c.ok}, {"expected", c.expected}, {"actual", c.actual}});
  }
  return AnswerJson{
      {"month", FormatMonth(proof.month)}, {"ok", proof.ok}, {"checks", std::move(checks)}};
}

}  // namespace billing::projections
