// Files the tests read: the SPEC's example stream with its expected answers,
// and whole files (logs, exports) read into a string.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace billing::testing {

// ../shared/examples as configured at build time (LEDGER_DEFAULT_EXAMPLES_DIR,
// a compile definition of every test target), or $LEDGER_EXAMPLES_DIR.
inline std::string ExamplesDir() {
  const char* dir = std::getenv("LEDGER_EXAMPLES_DIR");
  return dir != nullptr ? dir : LEDGER_DEFAULT_EXAMPLES_DIR;
}

// The whole file, byte for byte; empty when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace billing::testing
