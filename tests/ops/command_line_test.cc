// Proves ledgerd and ledgerctl, run as real binaries, refuse every bad command
// line (bad months, negative counts, missing files, unknown flags, bad ports)
// with a message on stderr and exit status 2 before doing anything, and that
// `ledgerctl verify` prints valid JSON even when its problem text quotes a
// path holding a double quote.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ledger/prepare.h"
#include "projections/billing.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing {
namespace {

using testing::TempDir;

// A refused command line exits at once; one that hangs (ledgerd listening
// after all) is killed by SIGALRM after this, which fails the test.
constexpr unsigned kCommandSecondsMax = 30;

struct Ran {
  int code = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
};

// Runs `binary` (in the build directory) with `args` to completion, keeping
// its stderr too: a refusal must say why.
Ran RunBinary(const std::string& binary, std::vector<std::string> args) {
  TempDir tmp;
  const std::string err_file = tmp.sub("stderr");
  args.insert(args.begin(), testing::BuildDir() + "/" + binary);
  testing::Ran ran = testing::RunToExit(
      std::move(args), {.stderr_file = err_file, .alarm_seconds = kCommandSecondsMax});
  std::ifstream in(err_file);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return Ran{ran.code, std::move(ran.out), std::move(err)};
}

void ExpectRefused(const std::string& binary, const std::vector<std::string>& args) {
  std::string shown = binary;
  for (const auto& a : args) shown += " " + a;
  Ran r = RunBinary(binary, args);
  EXPECT_EQ(r.code, 2) << shown << "\nstderr: " << r.err;
  EXPECT_FALSE(r.err.empty()) << shown << ": no message on stderr";
  EXPECT_EQ(r.out.find("listening on"), std::string::npos) << shown << " started serving";
  EXPECT_TRUE(r.out.empty()) << shown << " printed: " << r.out.substr(0, 200);
}

TEST(CommandLine, LedgerctlRefusesEveryBadArgumentWithExit2) {
  TempDir tmp;
  const std::string missing = tmp.sub("missing");
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"verify"},
      {"verify", missing},
      {"verify", tmp.path(), "--bogus"},
      {"replay", missing},
      {"replay", tmp.path(), "--to-seq", "-5"},
      {"replay", tmp.path(), "--to-seq", "abc"},
      {"export", missing, "--org", "acme", "--month", "2026-13"},
      {"export", missing, "--org", "acme", "--month", "2026-01", "--format", "xml"},
      {"export", missing, "--org", "acme", "--month", "2026-01", "--to-seq", "-1"},
      {"export", missing, "--org", "acme", "--month", "2026-01"},
      {"import-focus", missing, "--org", "acme", "--provider-map", missing},
      {"backup", missing, tmp.sub("backup")},
      {"restore", missing, tmp.sub("restored")},
      {"restore", tmp.path(), tmp.sub("restored"), "--backup-id", "-3"},
      {"generate", "--start-month", "abcdefg"},
      {"generate", "--start-month", "2026-13"},
      {"generate", "--start-month", "9999-12", "--months", "2"},
      {"generate", "--orgs", "-1"},
      {"generate", "--orgs", "0"},
      {"generate", "--months", "-2"},
      {"generate", "--usage-events", "-5"},
      {"generate", "--resources", "0"},
      {"generate", "--seed", "-1"},
      {"generate", "--bogus"},
      {"produce", "--brokers", "127.0.0.1:1", missing},
      {"produce", missing},
      {"kafka-mock", "--partitions", "0"},
      {"kafka-mock", "--partitions", "100000"},
      {"kafka-mock", "--partitions", "x"},
      {"prove", missing, "--org", "acme", "--month", "2026-01"},
      {"prove", tmp.path(), "--org", "acme"},
      {"prove", missing, "--org", "acme", "--month", "2026-13"},
      {"prove", missing, "--org", "acme", "--month", "2026-01", "--as-of", "-1"},
  };
  for (const auto& args : cases) ExpectRefused("ledgerctl", args);
  // Nothing was created where a path was wrong.
  EXPECT_FALSE(std::filesystem::exists(missing));
  EXPECT_FALSE(std::filesystem::exists(tmp.sub("backup")));
  EXPECT_FALSE(std::filesystem::exists(tmp.sub("restored")));
}

TEST(CommandLine, LedgerdRefusesBadArgumentsWithExit2BeforeListening) {
  TempDir tmp;
  const std::string data = tmp.sub("data");
  const std::string file = tmp.sub("a-file");
  std::ofstream(file) << "not a directory\n";
  const std::vector<std::vector<std::string>> cases = {
      {"--http", "127.0.0.1:99999"},
      {"--http", "127.0.0.1:65536"},
      {"--http", "127.0.0.1:-1"},
      {"--http", "127.0.0.1:8x"},
      {"--http", "127.0.0.1:"},
      {"--http", "127.0.0.1"},
      {"--http", "10.1.2.3:8080"},  // not loopback, and no --tokens
      {"--bogus"},
      {"--kafka-session-timeout-ms", "soon"},
      {"--tokens", tmp.sub("no-tokens")},
      {"--kafka-embedded", "--kafka-brokers", "127.0.0.1:1"},
  };
  for (auto args : cases) {
    args.insert(args.begin(), {"--data-dir", data, "--no-access-log"});
    if (args[3] != "--http") args.insert(args.end(), {"--http", "127.0.0.1:0"});
    ExpectRefused("ledgerd", args);
  }
  EXPECT_FALSE(std::filesystem::exists(data));
  ExpectRefused("ledgerd", {"--data-dir", file, "--http", "127.0.0.1:0", "--no-access-log"});
}

// A ledger in a directory whose name holds a double quote, with a table file
// damaged in its first records: RocksDB's checksum message names the file,
// quote and all, and that message is verify's "problem".
TEST(CommandLine, LedgerctlVerifyPrintsValidJsonWhenTheProblemQuotesAPath) {
  TempDir tmp;
  const std::string dir = tmp.sub("ledger \"quoted\" \\ dir");
  {
    projections::BillingOptions o;
    o.dir = dir;
    auto billing = projections::Billing::Open(o);
    ASSERT_TRUE(billing.ok()) << billing.status().ToString();
    // Enough records to fill many table blocks: the damage in the first one
    // leaves the head and the format marker readable.
    ledger::AppendRequest request;
    for (int i = 0; i < 400; ++i) {
      nlohmann::json e{{"event_id", "created"},
                       {"org_id", "org-" + std::to_string(i)},
                       {"occurred_at", "2026-01-01T00:00:00Z"},
                       {"organization_created",
                        {{"name", "Org"}, {"currency", "USD"}, {"billing_account", "BA"}}}};
      request.entries.push_back(ledger::PrepareEntry(e.dump(), ledger::Source()));
    }
    auto appended = (*billing)->Submit(std::move(request));
    ASSERT_TRUE(appended.status.ok()) << appended.status.ToString();
    ASSERT_TRUE((*billing)->ledger().db()->Flush(rocksdb::FlushOptions()).ok());
  }
  std::string table;
  uintmax_t table_bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".sst" && entry.file_size() > table_bytes) {
      table = entry.path().string();
      table_bytes = entry.file_size();
    }
  }
  ASSERT_GT(table_bytes, 16u * 1024) << "no table file holds the records";
  {
    std::fstream f(table, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.write("DAMAGED", 7);
  }
  Ran r = RunBinary("ledgerctl", {"verify", dir});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  nlohmann::json report;
  ASSERT_NO_THROW(report = nlohmann::json::parse(r.out)) << "not JSON: " << r.out;
  EXPECT_EQ(report["ok"], false);
  EXPECT_EQ(report["first_bad_sequence"], 1);
  const std::string problem = report["problem"];
  EXPECT_NE(problem.find("\"quoted\""), std::string::npos) << problem;
}

}  // namespace
}  // namespace billing
