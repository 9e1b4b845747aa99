// The fuzz targets' bodies, callable from libFuzzer (each *_fuzz.cc defines
// LLVMFuzzerTestOneInput when built with LEDGER_FUZZ_ENTRY) and from the
// normal test suites (corpus_replay_test.cc feeds every checked-in corpus
// file through them, so a crash once found stays a regression test).
// Each returns 0; a broken property aborts with a message on stderr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace billing::fuzz {

// events::SplitBody, ParseJson and Validate; ParseJson's fast path declines
// or gives the slow path's envelope and names; an event that validates survives
// ToJson -> ParseJson and CanonicalBytes -> ParseBinary unchanged.
int EventJson(const uint8_t* data, size_t size);
// events::ParseBinary and Validate; a valid envelope's canonical bytes parse
// back to the same canonical bytes.
int EventBinary(const uint8_t* data, size_t size);
// ParseDecimal: format(parse(x)) re-parses to the same value, and rounding to
// any minor unit formats into text that parses to the rounded value.
int Decimal(const uint8_t* data, size_t size);
// api::ParseTarget: no dot segment gets through, and re-encoding the parsed
// segments and query gives back the same parse.
int Target(const uint8_t* data, size_t size);

}  // namespace billing::fuzz

// A property that must hold for every input: print what broke, then abort so
// libFuzzer saves the input (and a replay test fails).
#define FUZZ_CHECK(cond, what)                                                                    \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "fuzz property broken at %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                                    \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

#ifdef LEDGER_FUZZ_ENTRY
#define LEDGER_FUZZ_MAIN(fn) \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return fn(data, size); }
// For targets that parse protobuf: protobuf logs every string field that is
// not UTF-8, and millions of such lines would bury the fuzzer's own report.
#define LEDGER_FUZZ_QUIET_PROTOBUF()                                              \
  extern "C" int LLVMFuzzerInitialize(int*, char***) {                            \
    google::protobuf::SetLogHandler(                                              \
        [](google::protobuf::LogLevel, const char*, int, const std::string&) {}); \
    return 0;                                                                     \
  }
#else
#define LEDGER_FUZZ_MAIN(fn)
#define LEDGER_FUZZ_QUIET_PROTOBUF()
#endif
