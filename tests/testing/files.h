// Files the tests read: the SPEC's example stream with its expected answers,
// and whole files (logs, exports) read into a string.
#pragma once

#include <string>

namespace billing::testing {

// ../shared/examples as configured at build time (tests/golden, a copy), or
// $LEDGER_EXAMPLES_DIR.
std::string ExamplesDir();

// The whole file, byte for byte; empty when it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace billing::testing
