// ledgerctl: the operator's and auditor's tool. Works on a data directory
// without the service (read-only where it only reads, so it is safe beside a
// running ledgerd).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "ledger/hash_chain.h"
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
  CLI11_PARSE(app, argc, argv);
  if (*verify) return Verify(dir);
  if (*replay) return Replay(dir);
  return 2;
}
