// ledgerctl: the operator's and auditor's tool. Works on a data directory
// without the service (read-only where it only reads, so it is safe beside a
// running ledgerd).
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "kafka/embedded_kafka.h"
#include "kafka/produce.h"
#include "ledger/hash_chain.h"
#include "ops/backup.h"
#include "ops/command_line.h"
#include "ops/focus_import.h"
#include "ops/generator.h"
#include "ops/invoice_document.h"
#include "ops/reconcile.h"
#include "projections/answer_json.h"
#include "projections/billing.h"
#include "projections/export.h"
#include "projections/keys.h"
#include "projections/proof.h"

using namespace billing;

namespace {

using Json = nlohmann::ordered_json;

// One JSON line on stdout. Text from storage (a RocksDB message naming a
// path) need not be UTF-8: replace such bytes, never throw.
void PrintJson(const Json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
}
// Reports `s`; the exit status: 2 (ops::kExitUsage) when the command line
// named something wrong or missing, 1 for any other failure.
int Fail(const Status& s) {
  std::fprintf(stderr, "ledgerctl: %s\n", s.ToString().c_str());
  return s.code() == Code::kInvalidArgument || s.code() == Code::kNotFound ? ops::kExitUsage : 1;
}

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
  // Then every seal, recomputed from a replay of the ledger (SPEC: verify
  // fails naming the invoice whose seal differs). A broken chain is the
  // answer already: replaying it would report its damage as a read error.
  if (!report->ok) {
    PrintJson(projections::VerifyJson(*report));
    return 1;
  }
  auto seals = projections::VerifySeals(**led);
  if (!seals.ok()) {
    std::fprintf(stderr, "ledgerctl: %s\n", seals.status().ToString().c_str());
    return 2;
  }
  PrintJson(projections::VerifyJson(*report, *seals));
  return report->ok && seals->ok ? 0 : 1;
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
    std::fprintf(stderr,
                 "ledgerctl: %llu lines had no readable org_id and were sent without a key\n",
                 static_cast<unsigned long long>(report.unkeyed));
  }
  std::printf("delivered %llu of %llu messages to %s\n",
              static_cast<unsigned long long>(report.delivered),
              static_cast<unsigned long long>(report.sent), options.topic.c_str());
  if (report.failed > 0 || !report.error.empty()) {
    std::fprintf(stderr, "ledgerctl: %llu messages not delivered: %s\n",
                 static_cast<unsigned long long>(report.failed), report.error.c_str());
    return 1;
  }
  return 0;
}

int Replay(const std::string& dir) {
  // A read-write open creates a missing ledger; a rebuild of a mistyped
  // path must say so instead of building an empty one there.
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec)) {
    return Fail(Status(Code::kNotFound, dir + " holds no ledger"));
  }
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

// A final invoice's seal recomputed from the replay (as the API's stored
// one, which a closed month's unchanging figures make equal); nullopt for a draft.
Result<std::optional<projections::InvoiceSeal>> ReplayedSeal(
    const ledger::Ledger& led, const projections::OrgState& org, const projections::View& store,
    const projections::InvoiceSummary& summary) {
  if (!summary.final) return std::optional<projections::InvoiceSeal>();
  auto invoice = projections::GetInvoice(org, store, summary.invoice_id);
  if (!invoice.ok()) return invoice.status();
  auto month = ParseMonth(std::string_view(summary.invoice_id).substr(0, 7), "invoice month");
  if (!month.ok()) return month.status();
  auto point = projections::FindClosePoint(led, org, *month);
  if (!point.ok()) return point.status();
  if (!*point)
    return Status(Code::kCorruption,
                  "invoice " + summary.invoice_id + " is final but its month is open");
  return std::optional<projections::InvoiceSeal>(projections::SealOf(org, *invoice, **point));
}

// One org's months as they stood right after `upto`: one JSON line per month
// that holds any posting, with what the API's dashboard, usage-history and
// invoices routes answer for that month `as_of` the same sequence.
Status PrintOrgAsOf(const ledger::Ledger& led, const std::string& org_id, uint64_t upto) {
  projections::MemoryStore store;
  auto state = projections::ReplayOrg(led, org_id, ledger::Sequence{upto}, &store);
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
      for (size_t i = 0; i < 4; ++i)
        index = (index << 8) | static_cast<unsigned char>(key[prefix.size() + i]);
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
      auto seal = ReplayedSeal(led, org, store, inv);
      if (!seal.ok()) return seal.status();
      invoices.push_back(projections::WithSeal(projections::InvoiceSummaryJson(inv, org), *seal));
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
              {"mode", events::InvoicingModeName(list.mode)},
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
    PrintJson(line);
  }
  return Status::Ok();
}

int ReplayAsOf(const std::string& dir, std::optional<uint64_t> to_seq,
               const std::optional<std::string>& org) {
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
  auto rows = projections::ExportMonth(**led, args.org, *month,
                                       ledger::Sequence{args.to_seq.value_or(UINT64_MAX)});
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
  if (!map_in)
    return Fail(Status(Code::kInvalidArgument, "cannot read provider map " + args.provider_map));
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
  for (const std::string& problem : report->problems)
    std::fprintf(stderr, "ledgerctl: skipped %s\n", problem.c_str());
  std::fprintf(stderr, "%s\n",
               Json{{"rows", report->rows},
                    {"usage", report->usage},
                    {"credits", report->credits},
                    {"skipped", report->skipped}}
                   .dump()
                   .c_str());
  return report->skipped == 0 ? 0 : 1;
}

int Backup(const std::string& dir, const std::string& dest) {
  auto report = ops::Backup(dir, dest);
  if (!report.ok()) return Fail(report.status());
  PrintJson(Json{{"backup_id", report->backup_id},
                 {"head_sequence", report->head.sequence.value},
                 {"head_hash", ledger::Hex(report->head.hash)},
                 {"size_bytes", report->size_bytes},
                 {"backups", report->backups}});
  return 0;
}

int Restore(const std::string& backup, const std::string& dest, std::optional<uint32_t> id) {
  auto report = ops::Restore(backup, dest, id);
  if (!report.ok()) return Fail(report.status());
  const ledger::VerifyReport& v = report->verify;
  Json j{{"backup_id", report->backup_id},
         {"recorded_head_sequence", report->recorded_head.sequence.value}};
  j.update(projections::VerifyJson(v));
  PrintJson(j);
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
  Json line{{"invoice_id", doc->answer["invoice_id"]},
            {"status", doc->answer["status"]},
            {"total", doc->answer["total"]},
            {"currency", doc->answer["currency"]},
            {"seal", doc->answer["seal"]},
            {"out", out},
            {"bytes", doc->pdf.size()}};
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
    return ops::kExitUsage;
  };
  ops::ReconcileOptions options;
  options.org = args.org;
  if (!args.month.empty()) {
    auto month = ParseMonth(args.month, "--month");
    if (!month.ok()) return refuse(month.status());
    options.month = *month;
  }
  std::ifstream map_in(args.provider_map);
  if (!map_in)
    return refuse(Status(Code::kInvalidArgument, "cannot read provider map " + args.provider_map));
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
    Json line{{"month", FormatMonth(g.month)},
              {"provider_id", g.provider_id},
              {"service", g.service},
              {"kind", g.credit ? "credit" : "usage"},
              {"bill_rows", g.bill_rows},
              {"ledger_rows", g.ledger_rows},
              {"billed_cost", ops::FormatBillUnits(g.billed)},
              {"ledger_amount", ops::FormatBillUnits(g.ledger)},
              {"difference", ops::FormatBillUnits(g.ledger - g.billed)},
              {"tolerance", ops::FormatBillUnits(g.tolerance)},
              {"agrees", g.agrees()}};
    std::printf("%s\n", line.dump().c_str());
  }
  for (const std::string& problem : report->problems)
    std::fprintf(stderr, "ledgerctl: unplaced %s\n", problem.c_str());
  std::fprintf(stderr, "%s\n",
               Json{{"groups", report->groups.size()},
                    {"differences", report->differences()},
                    {"bill_rows", report->bill_rows},
                    {"unplaced_rows", report->unplaced_rows}}
                   .dump()
                   .c_str());
  return report->differences() == 0 && report->unplaced_rows == 0 ? 0 : 1;
}

struct ProveArgs {
  std::string dir, org, month;
  std::optional<uint64_t> as_of;
};

// ledgerctl prove: the month's conservation proof as one JSON line, what
// `GET .../usage-history/{month}/proof` answers. Exit 0 when every check
// holds, 1 when one fails, 2 when it cannot prove (arguments, an unknown
// org, an unreadable ledger), like reconcile.
int Prove(const ProveArgs& args) {
  auto refuse = [](const Status& s) {
    std::fprintf(stderr, "ledgerctl: %s\n", s.ToString().c_str());
    return ops::kExitUsage;
  };
  auto month = ParseMonth(args.month, "--month");
  if (!month.ok()) return refuse(month.status());
  auto led = projections::OpenLedgerReadOnly(args.dir);
  if (!led.ok()) return refuse(led.status());
  std::optional<ledger::Sequence> as_of;
  if (args.as_of) as_of = ledger::Sequence{*args.as_of};
  auto proof = projections::ProveMonthOf(**led, args.org, *month, as_of);
  if (!proof.ok()) return refuse(proof.status());
  PrintJson(projections::ProofJson(*proof));
  return proof->ok ? 0 : 1;
}

// Writes the generated history to stdout in pieces of at most
// kGenerateBufferBytes, so that a large one never sits in memory whole.
constexpr size_t kGenerateBufferBytes = 1 << 20;

int Generate(const ops::GeneratorOptions& options) {
  if (Status checked = ops::CheckGeneratorOptions(options); !checked.ok()) return Fail(checked);
  std::string buffer;
  ops::Generate(options, [&buffer](const std::string& line) {
    buffer += line;
    buffer += '\n';
    if (buffer.size() > kGenerateBufferBytes) {
      std::fwrite(buffer.data(), 1, buffer.size(), stdout);
      buffer.clear();
    }
  });
  std::fwrite(buffer.data(), 1, buffer.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

// The most partitions `kafka-mock` creates per topic: the mock keeps about
// 5 MiB per partition in memory, and a cluster test needs tens, not thousands.
constexpr int kKafkaMockPartitionsMax = 256;

struct KafkaMockArgs {
  int partitions = api::kEmbeddedPartitionsDefault;
  std::vector<std::string> topics{"billing.events"};
};

// Runs librdkafka's mock cluster as a process of its own, so that it
// outlives the ledgerd instances it serves (an embedded broker dies with its
// host), until SIGTERM or SIGINT.
int KafkaMock(const KafkaMockArgs& args) {
  if (args.partitions < 1 || args.partitions > kKafkaMockPartitionsMax) {
    std::fprintf(stderr, "ledgerctl: --partitions must be 1..%d\n", kKafkaMockPartitionsMax);
    return ops::kExitUsage;
  }
  // Blocked before the broker's threads start, so that they inherit the
  // mask and the signal reaches sigwait below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto kafka = api::EmbeddedKafka::Start({.topics = args.topics, .partitions = args.partitions});
  if (!kafka.ok()) return Fail(kafka.status());
  std::printf("kafka bootstrap: %s\n", (*kafka)->bootstrap().c_str());
  std::fflush(stdout);
  int signal = 0;
  sigwait(&stop, &signal);
  return 0;
}

// Every subcommand's arguments, filled in by CLI11.
struct Args {
  std::string dir;
  std::optional<uint64_t> replay_to_seq;
  std::optional<std::string> replay_org;
  ExportArgs export_args;
  ImportArgs import_args;
  std::string backup_dest;
  std::string restore_backup;
  std::optional<uint32_t> restore_id;
  ops::GeneratorOptions generate;
  ops::ProduceOptions produce;
  std::string produce_file;
  KafkaMockArgs kafka_mock;
  ops::InvoiceDocumentRequest invoice;
  std::string invoice_out;
  ReconcileArgs reconcile;
  ProveArgs prove;
};

// The subcommands, to see which one was given.
struct Commands {
  CLI::App* verify;
  CLI::App* replay;
  CLI::App* export_cmd;
  CLI::App* import_focus;
  CLI::App* backup;
  CLI::App* restore;
  CLI::App* generate;
  CLI::App* produce;
  CLI::App* kafka_mock;
  CLI::App* invoice;
  CLI::App* reconcile;
  CLI::App* prove;
};

// Sequences, counts and ids are whole numbers: CLI11 alone would read "-5"
// into an unsigned option as a huge number.
// (One too large for its option still fails CLI11's conversion.)
const CLI::Validator& WholeNumber() {
  static const CLI::Validator kWholeNumber(
      [](std::string& text) -> std::string {
        if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) return "";
        return "must be a whole number (0, 1, 2, ...), got " + text;
      },
      "WHOLE");
  return kWholeNumber;
}

void AddLedgerCommands(CLI::App& app, Args& a, Commands& c) {
  c.verify = app.add_subcommand("verify", "walk the hash chain and report the first break");
  c.verify->add_option("DIR", a.dir, "data directory")->required();
  c.replay = app.add_subcommand(
      "replay",
      "rebuild the read models; with --to-seq/--org, print months as of a sequence (read-only)");
  c.replay->add_option("DIR", a.dir, "data directory")->required();
  c.replay->add_option("--to-seq", a.replay_to_seq, "answer as of right after this sequence")
      ->check(WholeNumber());
  c.replay->add_option("--org", a.replay_org, "only this organization");
  c.export_cmd =
      app.add_subcommand("export", "a month's line-level charges of one org (read-only)");
  c.export_cmd->add_option("DIR", a.dir, "data directory")->required();
  c.export_cmd->add_option("--org", a.export_args.org, "organization")->required();
  c.export_cmd->add_option("--month", a.export_args.month, "month, YYYY-MM")->required();
  c.export_cmd->add_option("--format", a.export_args.format, "csv (default), focus or ndjson");
  c.export_cmd->add_option("--to-seq", a.export_args.to_seq, "as of right after this sequence")
      ->check(WholeNumber());
  c.export_cmd->add_option("--invoice", a.export_args.invoice, "only this invoice's rows");
  c.export_cmd->add_option("--out", a.export_args.out, "write here instead of stdout");
  c.backup =
      app.add_subcommand("backup", "add a backup of DIR to DEST (RocksDB BackupEngine; read-only)");
  c.backup->add_option("DIR", a.dir, "data directory")->required()->check(CLI::ExistingDirectory);
  c.backup->add_option("DEST", a.backup_dest, "backup directory")->required();
  c.restore =
      app.add_subcommand("restore", "restore a backup into a new data directory and verify it");
  c.restore->add_option("BACKUP", a.restore_backup, "backup directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  c.restore->add_option("DEST", a.dir, "new data directory (must not exist or be empty)")
      ->required();
  c.restore->add_option("--backup-id", a.restore_id, "which backup (default: the latest)")
      ->check(WholeNumber());
}

void AddDocumentCommands(CLI::App& app, Args& a, Commands& c) {
  c.invoice = app.add_subcommand("invoice", "write one invoice as a PDF document (read-only)");
  c.invoice->add_option("DIR", a.invoice.dir, "data directory")->required();
  c.invoice->add_option("--org", a.invoice.org, "organization")->required();
  c.invoice->add_option("--invoice", a.invoice.invoice_id, "invoice id, e.g. 2026-01-org")
      ->required();
  c.invoice->add_option("--out", a.invoice_out, "the PDF file to write")->required();
  ReconcileArgs& r = a.reconcile;
  c.reconcile = app.add_subcommand(
      "reconcile",
      "compare a FOCUS cost CSV with the ledger per (month, provider, service) (read-only)");
  c.reconcile->add_option("DIR", r.dir, "data directory")->required();
  c.reconcile->add_option("--org", r.org, "organization")->required();
  c.reconcile->add_option("--focus", r.focus, "FOCUS (or similar) cost CSV")->required();
  c.reconcile->add_option("--provider-map", r.provider_map, "as for import-focus")->required();
  c.reconcile->add_option("--month", r.month, "only this month, YYYY-MM");
  c.reconcile->add_flag("--all", r.all, "print agreeing groups too");
  ProveArgs& p = a.prove;
  c.prove = app.add_subcommand(
      "prove", "check that a month's figures add up and match a replay of the ledger (read-only)");
  c.prove->add_option("DIR", p.dir, "data directory")->required();
  c.prove->add_option("--org", p.org, "organization")->required();
  c.prove->add_option("--month", p.month, "month, YYYY-MM")->required();
  c.prove->add_option("--as-of", p.as_of, "as of right after this sequence")->check(WholeNumber());
}

void AddEventCommands(CLI::App& app, Args& a, Commands& c) {
  c.import_focus = app.add_subcommand("import-focus", "turn a FOCUS cost CSV into NDJSON events");
  c.import_focus->add_option("FILE", a.import_args.file, "FOCUS CSV; - for stdin")->required();
  c.import_focus->add_option("--org", a.import_args.org, "organization the events belong to")
      ->required();
  c.import_focus
      ->add_option("--provider-map", a.import_args.provider_map,
                   "`key = provider_id` lines, `*` default")
      ->required();
  c.import_focus->add_option("--credit-cost-center", a.import_args.credit_cost_center,
                             "cost center for credits (default: the organization)");
  c.import_focus->add_option("--out", a.import_args.out, "write here instead of stdout");
  ops::GeneratorOptions& gen = a.generate;
  c.generate =
      app.add_subcommand("generate", "write a seeded synthetic history as NDJSON to stdout");
  c.generate->add_option("--seed", gen.seed, "random seed (same seed, same bytes)")
      ->check(WholeNumber());
  c.generate->add_option("--orgs", gen.orgs, "organizations");
  c.generate->add_option("--months", gen.months, "months of history");
  c.generate->add_option("--usage-events", gen.usage_events, "usage_recorded events in total");
  c.generate->add_option("--resources", gen.resources_per_provider, "resources per provider");
  c.generate->add_option("--start-month", gen.start_month, "first month, YYYY-MM");
  c.generate->add_flag("--faults", gen.faults, "mix in duplicates, conflicts and invalid events");
  c.produce = app.add_subcommand("produce", "publish NDJSON events to Kafka (key org_id)");
  c.produce->add_option("--brokers", a.produce.brokers, "Kafka bootstrap servers")->required();
  c.produce->add_option("--topic", a.produce.topic, "topic (default billing.events)");
  c.produce->add_option("FILE", a.produce_file, "NDJSON file, one event a line; - for stdin")
      ->required();
  c.kafka_mock = app.add_subcommand(
      "kafka-mock", "run a Kafka mock cluster until SIGTERM (development and cluster tests)");
  c.kafka_mock->add_option("--partitions", a.kafka_mock.partitions, "partitions per topic");
  c.kafka_mock->add_option("--topic", a.kafka_mock.topics, "topics to create (repeatable)");
}

int Run(const Args& a, const Commands& c) {
  if (*c.verify) return Verify(a.dir);
  if (*c.replay) {
    if (!a.replay_to_seq && !a.replay_org) return Replay(a.dir);
    return ReplayAsOf(a.dir, a.replay_to_seq, a.replay_org);
  }
  if (*c.export_cmd) return Export(a.dir, a.export_args);
  if (*c.import_focus) return ImportFocus(a.import_args);
  if (*c.backup) return Backup(a.dir, a.backup_dest);
  if (*c.restore) return Restore(a.restore_backup, a.dir, a.restore_id);
  if (*c.generate) return Generate(a.generate);
  if (*c.produce) return Produce(a.produce, a.produce_file);
  if (*c.kafka_mock) return KafkaMock(a.kafka_mock);
  if (*c.invoice) return InvoicePdf(a.invoice, a.invoice_out);
  if (*c.reconcile) return ReconcileCmd(a.reconcile);
  if (*c.prove) return Prove(a.prove);
  return ops::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  // A ledger holds every tenant's bills: what this tool creates (a replayed
  // directory's files, a restore, a backup, an export) is its owner's only.
  umask(077);
  CLI::App app{"ledgerctl: verify, replay and export a billing ledger"};
  app.require_subcommand(1);
  Args args;
  Commands commands{};
  AddLedgerCommands(app, args, commands);
  AddEventCommands(app, args, commands);
  AddDocumentCommands(app, args, commands);
  if (auto exit = ops::ParseCommandLine(app, argc, argv)) return *exit;
  return Run(args, commands);
}
