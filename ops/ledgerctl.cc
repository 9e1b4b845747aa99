// ledgerctl: the operator's and auditor's tool. Works on a data directory
// without the service (read-only where it only reads, so it is safe beside a
// running ledgerd).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "ledger/hash_chain.h"
#include "ops/generator.h"
#include "ops/produce.h"
#include "projections/billing.h"

using namespace billing;

namespace {

int Verify(const std::string& dir) {
  ledger::Options o;
  o.dir = dir;
  o.mode = ledger::OpenMode::kReadOnly;
  auto led = ledger::Ledger::Open(o);
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ledgerctl: verify, replay and export a billing ledger"};
  app.require_subcommand(1);
  std::string dir;
  auto* verify = app.add_subcommand("verify", "walk the hash chain and report the first break");
  verify->add_option("DIR", dir, "data directory")->required();
  auto* replay = app.add_subcommand("replay", "rebuild the read models from the ledger");
  replay->add_option("DIR", dir, "data directory")->required();
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
  CLI11_PARSE(app, argc, argv);
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
  if (*replay) return Replay(dir);
  return 2;
}
