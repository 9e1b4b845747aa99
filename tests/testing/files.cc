#include "tests/testing/files.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace billing::testing {

std::string ExamplesDir() {
  const char* dir = std::getenv("LEDGER_EXAMPLES_DIR");
  return dir != nullptr ? dir : LEDGER_DEFAULT_EXAMPLES_DIR;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace billing::testing
