// Every file of the checked-in fuzz corpora (tests/fuzz/corpus/<target>/:
// seeds, and the inputs of every crash the fuzzers found) goes through its
// target in the normal and sanitizer builds, so a fixed crash stays fixed
// without clang or libFuzzer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/fuzz/fuzz_targets.h"

namespace billing {
namespace {

namespace fs = std::filesystem;

// Runs every corpus file of `target` through `fn`; returns how many.
int Replay(const std::string& target, int (*fn)(const uint8_t*, size_t)) {
  int n = 0;
  const fs::path dir = fs::path(LEDGER_FUZZ_CORPUS_DIR) / target;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(entry.path().string());
    fn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++n;
  }
  return n;
}

TEST(FuzzCorpus, EventJsonInputsKeepTheirProperties) {
  EXPECT_GT(Replay("event_json", fuzz::EventJson), 0);
}
TEST(FuzzCorpus, EventBinaryInputsKeepTheirProperties) {
  EXPECT_GT(Replay("event_binary", fuzz::EventBinary), 0);
}
TEST(FuzzCorpus, DecimalInputsRoundTrip) { EXPECT_GT(Replay("decimal", fuzz::Decimal), 0); }
TEST(FuzzCorpus, TargetInputsParseStably) { EXPECT_GT(Replay("target", fuzz::Target), 0); }

}  // namespace
}  // namespace billing
