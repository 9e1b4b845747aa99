// ledgerctl: the operator's and auditor's tool. Works on a data directory
// without the service (read-only where it only reads, so it is safe beside a
// running ledgerd).
#include <CLI/CLI.hpp>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ledger/hash_chain.h"
#include "ops/backup.h"
#include "ops/focus_import.h"
#include "ops/generator.h"
#include "ops/invoice_document.h"
#include "ops/reconcile.h"
#include "ops/produce.h"
#include "projections/billing.h"
#include "projections/export.h"
#include "projections/keys.h"

using namespace billing;

namespace {


int Verify(const std::string& dir) {
  // WARNING: the merge operator is required even to verify. A read-only open
  // replays the WAL of a running (or crashed) ledgerd, whose batches hold
  // read-model merges next to the records; without the operator RocksDB
  // stops applying a batch at its first merge, so the records are seen but
  // the head written at the batch's end is not, and verify reports a false
  // break at the tail.
  auto led = projections::OpenLedgerReadOnly(dir);
  if (!led.ok()) {
    std::fprintf(stderr, "ledgerctl: %s\n", led.status().ToString().c_str());
    return 2;
  }
  auto report = (*led)->Verify();
  if (!report.ok()) {
    std::fprintf(stderr, "ledgerctl: %s\n", report.status().ToString().c_str());
    return 2;
  }
  std::printf("{\"ok\":%s,\"events\":%llu,\"head_sequence\":%llu,\"head_hash\":\"%s\"",
              report->ok ? "true" : "false", static_cast<unsigned long long>(report->events),
              static_cast<unsigned long long>(report->head.sequence.value),
              ledger::Hex(report->head.hash).c_str());
  if (!report->ok) {
    std::printf(",\"first_bad_sequence\":%llu,\"problem\":\"%s\"",
                static_cast<unsigned long long>(report->first_bad.value), report->problem.c_str());
  }
  std::printf("}\n");
  return report->ok ? 0 : 1;
}

int Produce(const ops::ProduceOptions& options, const std::string& file) {
  std::ifstream in;
  if (file != "-") {
    in.open(file);
    if (!in) {
      std::fprintf(stderr, "ledgerctl: cannot read %s\n", file.c_str());
      return 2;
    }
  }
  ops::ProduceReport report = ops::ProduceLines(options, file == "-" ? std::cin : in);
  if (report.unkeyed > 0) {
    std::fprintf(stderr, "ledgerctl: %llu lines had no readable org_id and were sent without a key\n",
                 static_cast<unsigned long long>(report.unkeyed));
  }
  std::printf("delivered %llu of %llu messages to %s\n", static_cast<unsigned long long>(report.delivered),
              static_cast<unsigned long long>(report.sent), options.topic.c_str());
  if (report.failed > 0 || !report.error.empty()) {
    std::fprintf(stderr, "ledgerctl: %llu messages not delivered: %s\n",
                 static_cast<unsigned long long>(report.failed), report.error.c_str());
    return 1;
  }
  return 0;
}

int Replay(const std::string& dir) {
  projections::BillingOptions o;
  o.dir = dir;
  auto billing = projections::Billing::Open(o);
  if (!billing.ok()) {
    std::fprintf(stderr, "ledgerctl: %s\n", billing.status().ToString().c_str());
    return 2;
  }
  Status s = (*billing)->Rebuild();
  if (!s.ok()) {
    std::fprintf(stderr, "ledgerctl: rebuild failed: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("rebuilt read models from %llu events\n",
              static_cast<unsigned long long>((*billing)->ledger().head().sequence.value));
  return 0;
}

using Json = nlohmann::ordered_json;

int Fail(const Status& s) {
  std::fprintf(stderr, "ledgerctl: %s\n", s.ToString().c_str());
  return s.code() == Code::kInvalidArgument || s.code() == Code::kNotFound ? 2 : 1;
}

// Opens the ledger read-only: no lock is taken, so this is safe beside a
// running ledgerd, and it sees the ledger as of the open.
std::string Money(Sum v, int digits) { return FormatNanos(v, digits); }

// Every org created at or before `upto`, in ledger order.
Result<std::vector<std::string>> OrgsUpTo(const ledger::Ledger& led, uint64_t upto) {
  std::vector<std::string> orgs;
  Status failure;
  Status s = led.Scan(ledger::Sequence{0}, 0, [&](const ledger::Record& record) {
    if (record.sequence() > upto) return false;
    auto env = ledger::DecodeEvent(record);
    if (!env.ok()) {
      failure = env.status();
      return false;
    }
    if (env->payload_case() == events::Payload::kOrganizationCreated) orgs.push_back(env->org_id());
    return true;
  });
  if (!s.ok()) return s;
  if (!failure.ok()) return failure;
  return orgs;
}

// One org's months as they stood right after `upto`: one JSON line per month
// that holds any posting, with what the API's dashboard, usage-history and
// invoices routes answer for that month `as_of` the same sequence.
Status PrintOrgAsOf(const ledger::Ledger& led, const std::string& org_id, uint64_t upto) {
  projections::MemoryStore store;
  auto state = projections::ReplayOrg(led, org_id, upto, &store);
  if (!state.ok()) return state.status();
  const projections::OrgState& org = *state;
  std::set<int32_t> months;
  std::string prefix(projections::keys::kAggPrefix);
  prefix += org_id;
  prefix.push_back('\0');
  store.Scan(prefix, [&](std::string_view key, std::string_view) {
    // Keys continue with the month as a big-endian 32-bit index (keys.h).
    if (key.size() >= prefix.size() + 4) {
      uint32_t index = 0;
      for (size_t i = 0; i < 4; ++i) index = (index << 8) | static_cast<unsigned char>(key[prefix.size() + i]);
      months.insert(static_cast<int32_t>(index));
    }
    return true;
  });
  for (int32_t index : months) {
    Month m{index};
    auto history = projections::UsageHistory(org, store, projections::MonthRange{m, 1});
    auto list = projections::Invoices(org, store, m);
    Json invoices = Json::array();
    for (const auto& inv : list.invoices) {
      invoices.push_back(Json{{"invoice_id", inv.invoice_id},
                              {"cost_center_id", inv.cost_center_id ? Json(*inv.cost_center_id) : Json(nullptr)},
                              {"billing_account", inv.billing_account ? Json(*inv.billing_account) : Json(nullptr)},
                              {"status", inv.final ? "final" : "draft"},
                              {"total", Money(inv.total, org.minor_digits)},
                              {"currency", org.currency}});
    }
    Json by_cost_center = Json::object();
    for (const auto& [cc, info] : org.cost_centers) {
      auto rows = projections::Dashboard(org, store, projections::MonthRange{m, 1}, cc);
      if (rows.ok()) by_cost_center[cc] = Money((*rows)[0].billed, org.minor_digits);
    }
    auto billed = projections::Dashboard(org, store, projections::MonthRange{m, 1}, std::nullopt);
    const auto& h = history[0];
    Json line{{"org_id", org_id},
              {"as_of", upto},
              {"month", FormatMonth(m)},
              {"status", h.closed ? "closed" : "open"},
              {"mode", list.mode == projections::InvoicingMode::kSingle ? "SINGLE" : "PER_COST_CENTER"},
              {"currency", org.currency},
              {"total", Money(h.total, org.minor_digits)},
              {"billed", billed.ok() ? Money((*billed)[0].billed, org.minor_digits) : ""},
              {"usage", Money(h.usage, kNanoDigits)},
              {"support", Money(h.support, kNanoDigits)},
              {"credits", Money(h.credits, kNanoDigits)},
              {"adjustments", Money(h.adjustments, kNanoDigits)},
              {"invoices", std::move(invoices)},
              {"billed_by_cost_center", std::move(by_cost_center)}};
    if (Status read = store.status(); !read.ok()) return read;
    std::printf("%s\n", line.dump().c_str());
  }
  return Status::Ok();
}

int ReplayAsOf(const std::string& dir, std::optional<uint64_t> to_seq, const std::optional<std::string>& org) {
  auto led = projections::OpenLedgerReadOnly(dir);
  if (!led.ok()) return Fail(led.status());
  uint64_t head = (*led)->head().sequence.value;
  uint64_t upto = to_seq ? std::min(*to_seq, head) : head;
  std::vector<std::string> orgs;
  if (org) {
    orgs.push_back(*org);
  } else {
    auto all = OrgsUpTo(**led, upto);
    if (!all.ok()) return Fail(all.status());
    orgs = std::move(all).value();
  }
  for (const std::string& o : orgs) {
    Status s = PrintOrgAsOf(**led, o, upto);
    if (!s.ok()) return Fail(s);
  }
  return 0;
}

struct ExportArgs {
  std::string org;
  std::string month;
  std::string format = "csv";
  std::optional<uint64_t> to_seq;
  std::string invoice;
  std::string out;
};

int Export(const std::string& dir, const ExportArgs& args) {
  auto month = ParseMonth(args.month, "--month");
  if (!month.ok()) return Fail(month.status());
  auto format = projections::ParseExportFormat(args.format);
  if (!format.ok()) return Fail(format.status());
  auto led = projections::OpenLedgerReadOnly(dir);
  if (!led.ok()) return Fail(led.status());
  auto rows = projections::ExportMonth(**led, args.org, *month, args.to_seq.value_or(UINT64_MAX));
  if (!rows.ok()) return Fail(rows.status());
  if (!args.invoice.empty() && projections::KeepInvoice(&*rows, args.invoice) == 0) {
    return Fail(Status(Code::kNotFound, "invoice " + args.invoice + " has no lines"));
  }
  std::string text = projections::RenderExport(*rows, *format);
  if (args.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  std::ofstream out(args.out, std::ios::binary);
  out << text;
  out.close();
  if (!out) return Fail(Status(Code::kUnavailable, "cannot write " + args.out));
  return 0;
}

struct ImportArgs {
  std::string file;
  std::string org;
  std::string provider_map;
  std::string credit_cost_center;
  std::string out;
};

int ImportFocus(const ImportArgs& args) {
  std::ifstream map_in(args.provider_map);
  if (!map_in) return Fail(Status(Code::kInvalidArgument, "cannot read provider map " + args.provider_map));
  std::stringstream map_text;
  map_text << map_in.rdbuf();
  auto map = ops::ParseProviderMap(map_text.str());
  if (!map.ok()) return Fail(map.status());
  ops::FocusImportOptions options;
  options.org_id = args.org;
  options.providers = std::move(map).value();
  if (!args.credit_cost_center.empty()) options.credit_cost_center = args.credit_cost_center;
  std::ifstream file_in;
  if (args.file != "-") {
    file_in.open(args.file, std::ios::binary);
    if (!file_in) return Fail(Status(Code::kInvalidArgument, "cannot read " + args.file));
  }
  std::ofstream out_file;
  if (!args.out.empty()) {
    out_file.open(args.out, std::ios::binary);
    if (!out_file) return Fail(Status(Code::kInvalidArgument, "cannot write " + args.out));
  }
  std::ostream& out = args.out.empty() ? std::cout : out_file;
  auto report = ops::ImportFocus(args.file == "-" ? std::cin : file_in, options,
                                 [&out](const std::string& line) { out << line << '\n'; });
  out.flush();
  if (!out) return Fail(Status(Code::kUnavailable, "writing the events failed"));
  if (!report.ok()) return Fail(report.status());
  for (const std::string& problem : report->problems) std::fprintf(stderr, "ledgerctl: skipped %s\n", problem.c_str());
  std::fprintf(stderr, "%s\n", Json{{"rows", report->rows}, {"usage", report->usage}, {"credits", report->credits},
                                    {"skipped", report->skipped}}.dump().c_str());
  return report->skipped == 0 ? 0 : 1;
}

int Backup(const std::string& dir, const std::string& dest) {
  auto report = ops::Backup(dir, dest);
  if (!report.ok()) return Fail(report.status());
  std::printf("%s\n", Json{{"backup_id", report->backup_id},
                           {"head_sequence", report->head.sequence.value},
                           {"head_hash", ledger::Hex(report->head.hash)},
                           {"size_bytes", report->size_bytes},
                           {"backups", report->backups}}.dump().c_str());
  return 0;
}

int Restore(const std::string& backup, const std::string& dest, std::optional<uint32_t> id) {
  auto report = ops::Restore(backup, dest, id);
  if (!report.ok()) return Fail(report.status());
  const ledger::VerifyReport& v = report->verify;
  Json j{{"backup_id", report->backup_id},
         {"recorded_head_sequence", report->recorded_head.sequence.value},
         {"ok", v.ok},
         {"events", v.events},
         {"head_sequence", v.head.sequence.value},
         {"head_hash", ledger::Hex(v.head.hash)}};
  if (!v.ok) {
    j["first_bad_sequence"] = v.first_bad.value;
    j["problem"] = v.problem;
  }
  std::printf("%s\n", j.dump().c_str());
  // The copy must hold at least what the backup recorded (its WAL copy may
  // hold a little more, never less).
  return v.ok && v.head.sequence >= report->recorded_head.sequence ? 0 : 1;
}

// ledgerctl invoice: the invoice's PDF written to `out`; one JSON line saying
// what was written.
int InvoicePdf(const ops::InvoiceDocumentRequest& request, const std::string& out) {
  auto doc = ops::MakeInvoiceDocument(request);
  if (!doc.ok()) return Fail(doc.status());
  std::ofstream file(out, std::ios::binary);
  file << doc->pdf;
  file.close();
  if (!file) return Fail(Status(Code::kUnavailable, "cannot write " + out));
  Json line{{"invoice_id", doc->answer["invoice_id"]}, {"status", doc->answer["status"]},
            {"total", doc->answer["total"]}, {"currency", doc->answer["currency"]},
            {"seal", doc->answer["seal"]}, {"out", out}, {"bytes", doc->pdf.size()}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}

struct ReconcileArgs {
  std::string dir, org, focus, provider_map, month;
  bool all = false;
};

// ledgerctl reconcile: one JSON line per (month, provider, service) that
// differs beyond rounding (every group with --all), a summary on stderr.
// Exit 0 when all agree, 1 when any differs or a bill row cannot be placed,
// 2 when it could not compare (arguments, files, the ledger).
int ReconcileCmd(const ReconcileArgs& args) {
  auto refuse = [](const Status& s) {
    std::fprintf(stderr, "ledgerctl: %s\n", s.ToString().c_str());
    return 2;
  };
  ops::ReconcileOptions options;
  options.org = args.org;
  if (!args.month.empty()) {
    auto month = ParseMonth(args.month, "--month");
    if (!month.ok()) return refuse(month.status());
    options.month = *month;
  }
  std::ifstream map_in(args.provider_map);
  if (!map_in) return refuse(Status(Code::kInvalidArgument, "cannot read provider map " + args.provider_map));
  std::stringstream map_text;
  map_text << map_in.rdbuf();
  auto map = ops::ParseProviderMap(map_text.str());
  if (!map.ok()) return refuse(map.status());
  options.providers = std::move(map).value();
  std::ifstream csv(args.focus, std::ios::binary);
  if (!csv) return refuse(Status(Code::kInvalidArgument, "cannot read " + args.focus));
  auto led = projections::OpenLedgerReadOnly(args.dir);
  if (!led.ok()) return refuse(led.status());
  auto report = ops::Reconcile(csv, **led, options);
  if (!report.ok()) return refuse(report.status());
  for (const ops::ReconcileGroup& g : report->groups) {
    if (g.agrees() && !args.all) continue;
    Json line{{"month", FormatMonth(g.month)}, {"provider_id", g.provider_id}, {"service", g.service},
              {"kind", g.credit ? "credit" : "usage"}, {"bill_rows", g.bill_rows}, {"ledger_rows", g.ledger_rows},
              {"billed_cost", ops::FormatBillUnits(g.billed)}, {"ledger_amount", ops::FormatBillUnits(g.ledger)},
              {"difference", ops::FormatBillUnits(g.ledger - g.billed)},
              {"tolerance", ops::FormatBillUnits(g.tolerance)}, {"agrees", g.agrees()}};
    std::printf("%s\n", line.dump().c_str());
  }
  for (const std::string& problem : report->problems) std::fprintf(stderr, "ledgerctl: unplaced %s\n", problem.c_str());
  std::fprintf(stderr, "%s\n", Json{{"groups", report->groups.size()}, {"differences", report->differences()},
                                    {"bill_rows", report->bill_rows}, {"unplaced_rows", report->unplaced_rows}}
                                   .dump()
                                   .c_str());
  return report->differences() == 0 && report->unplaced_rows == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // A ledger holds every tenant's bills: what this tool creates (a replayed
  // directory's files, a restore, a backup, an export) is its owner's only.
  umask(077);
  CLI::App app{"ledgerctl: verify, replay and export a billing ledger"};
  app.require_subcommand(1);
  std::string dir;
  auto* verify = app.add_subcommand("verify", "walk the hash chain and report the first break");
  verify->add_option("DIR", dir, "data directory")->required();
  auto* replay = app.add_subcommand(
      "replay", "rebuild the read models; with --to-seq/--org, print months as of a sequence (read-only)");
  replay->add_option("DIR", dir, "data directory")->required();
  uint64_t replay_to_seq = 0;
  std::string replay_org;
  auto* to_seq_opt = replay->add_option("--to-seq", replay_to_seq, "answer as of right after this sequence");
  auto* org_opt = replay->add_option("--org", replay_org, "only this organization");
  ExportArgs export_args;
  uint64_t export_to_seq = 0;
  auto* export_cmd = app.add_subcommand("export", "a month's line-level charges of one org (read-only)");
  export_cmd->add_option("DIR", dir, "data directory")->required();
  export_cmd->add_option("--org", export_args.org, "organization")->required();
  export_cmd->add_option("--month", export_args.month, "month, YYYY-MM")->required();
  export_cmd->add_option("--format", export_args.format, "csv (default), focus or ndjson");
  auto* export_to_seq_opt = export_cmd->add_option("--to-seq", export_to_seq, "as of right after this sequence");
  export_cmd->add_option("--invoice", export_args.invoice, "only this invoice's rows");
  export_cmd->add_option("--out", export_args.out, "write here instead of stdout");
  ImportArgs import_args;
  auto* import_cmd = app.add_subcommand("import-focus", "turn a FOCUS cost CSV into NDJSON events");
  import_cmd->add_option("FILE", import_args.file, "FOCUS CSV; - for stdin")->required();
  import_cmd->add_option("--org", import_args.org, "organization the events belong to")->required();
  import_cmd->add_option("--provider-map", import_args.provider_map, "`key = provider_id` lines, `*` default")
      ->required();
  import_cmd->add_option("--credit-cost-center", import_args.credit_cost_center,
                         "cost center for credits (default: the organization)");
  import_cmd->add_option("--out", import_args.out, "write here instead of stdout");
  std::string backup_dest;
  auto* backup_cmd = app.add_subcommand("backup", "add a backup of DIR to DEST (RocksDB BackupEngine; read-only)");
  backup_cmd->add_option("DIR", dir, "data directory")->required();
  backup_cmd->add_option("DEST", backup_dest, "backup directory")->required();
  std::string restore_backup;
  uint32_t restore_id = 0;
  auto* restore_cmd = app.add_subcommand("restore", "restore a backup into a new data directory and verify it");
  restore_cmd->add_option("BACKUP", restore_backup, "backup directory")->required();
  restore_cmd->add_option("DEST", dir, "new data directory (must not exist or be empty)")->required();
  auto* restore_id_opt = restore_cmd->add_option("--backup-id", restore_id, "which backup (default: the latest)");
  ops::GeneratorOptions gen;
  auto* generate = app.add_subcommand("generate", "write a seeded synthetic history as NDJSON to stdout");
  generate->add_option("--seed", gen.seed, "random seed (same seed, same bytes)");
  generate->add_option("--orgs", gen.orgs, "organizations");
  generate->add_option("--months", gen.months, "months of history");
  generate->add_option("--usage-events", gen.usage_events, "usage_recorded events in total");
  generate->add_option("--resources", gen.resources_per_provider, "resources per provider");
  generate->add_option("--start-month", gen.start_month, "first month, YYYY-MM");
  generate->add_flag("--faults", gen.faults, "mix in duplicates, conflicts and invalid events");
  ops::ProduceOptions produce_options;
  std::string produce_file;
  auto* produce = app.add_subcommand("produce", "publish NDJSON events to Kafka (key org_id)");
  produce->add_option("--brokers", produce_options.brokers, "Kafka bootstrap servers")->required();
  produce->add_option("--topic", produce_options.topic, "topic (default billing.events)");
  produce->add_option("FILE", produce_file, "NDJSON file, one event a line; - for stdin")->required();
  ops::InvoiceDocumentRequest invoice_request;
  std::string invoice_out;
  auto* invoice_cmd = app.add_subcommand("invoice", "write one invoice as a PDF document (read-only)");
  invoice_cmd->add_option("DIR", invoice_request.dir, "data directory")->required();
  invoice_cmd->add_option("--org", invoice_request.org, "organization")->required();
  invoice_cmd->add_option("--invoice", invoice_request.invoice_id, "invoice id, e.g. 2026-01-org")->required();
  invoice_cmd->add_option("--out", invoice_out, "the PDF file to write")->required();
  ReconcileArgs reconcile_args;
  auto* reconcile_cmd = app.add_subcommand(
      "reconcile", "compare a FOCUS cost CSV with the ledger per (month, provider, service) (read-only)");
  reconcile_cmd->add_option("DIR", reconcile_args.dir, "data directory")->required();
  reconcile_cmd->add_option("--org", reconcile_args.org, "organization")->required();
  reconcile_cmd->add_option("--focus", reconcile_args.focus, "FOCUS (or similar) cost CSV")->required();
  reconcile_cmd->add_option("--provider-map", reconcile_args.provider_map, "as for import-focus")->required();
  reconcile_cmd->add_option("--month", reconcile_args.month, "only this month, YYYY-MM");
  reconcile_cmd->add_flag("--all", reconcile_args.all, "print agreeing groups too");
  CLI11_PARSE(app, argc, argv);
  if (*reconcile_cmd) return ReconcileCmd(reconcile_args);
  if (*invoice_cmd) return InvoicePdf(invoice_request, invoice_out);
  if (*produce) return Produce(produce_options, produce_file);
  if (*generate) {
    std::string buffer;
    ops::Generate(gen, [&buffer](const std::string& line) {
      buffer += line;
      buffer += '\n';
      if (buffer.size() > (1 << 20)) {
        std::fwrite(buffer.data(), 1, buffer.size(), stdout);
        buffer.clear();
      }
    });
    std::fwrite(buffer.data(), 1, buffer.size(), stdout);
    return 0;
  }
  if (*verify) return Verify(dir);
  if (*replay) {
    if (to_seq_opt->count() == 0 && org_opt->count() == 0) return Replay(dir);
    return ReplayAsOf(dir, to_seq_opt->count() ? std::optional<uint64_t>(replay_to_seq) : std::nullopt,
                      org_opt->count() ? std::optional<std::string>(replay_org) : std::nullopt);
  }
  if (*export_cmd) {
    if (export_to_seq_opt->count()) export_args.to_seq = export_to_seq;
    return Export(dir, export_args);
  }
  if (*import_cmd) return ImportFocus(import_args);
  if (*backup_cmd) return Backup(dir, backup_dest);
  if (*restore_cmd) {
    return Restore(restore_backup, dir, restore_id_opt->count() ? std::optional<uint32_t>(restore_id) : std::nullopt);
  }
  return 2;
}
