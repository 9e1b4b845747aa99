// How ledgerd and ledgerctl read their command lines: CLI11, with every
// mistake (an unknown flag, a value that does not convert or fails its
// check, a missing argument) reported on stderr and exit status 2, the
// convention for usage errors, instead of CLI11's own codes (104, 109, ...).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>

namespace billing::ops {

// The exit status of a bad command line.
inline constexpr int kExitUsage = 2;

// Parses argv into `app`'s options. nullopt: go on. Otherwise the process
// should exit with the value: 0 after --help, kExitUsage after a mistake
// (CLI11's message is on stderr).
inline std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
}

}  // namespace billing::ops
