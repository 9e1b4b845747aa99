#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test: unit,
# randomized, real-binary HTTP/Kafka and the web page in headless Chromium,
# and a short load test; then every GoogleTest suite again under
# AddressSanitizer and UndefinedBehaviorSanitizer, and each libFuzzer target
# for a bounded time.
# Usage: ops/test.sh
#   build dirs: ./build (release), ./build-asan (sanitizers), ./build-fuzz (clang, libFuzzer)
#   LEDGER_FUZZ_SECONDS=N  seconds per fuzz target (default 30; 0 skips fuzzing)
#   LEDGER_SANITIZE=0      skips the sanitizer build and run
#   LEDGER_FORMAT_CHECK=0  skips the C++ formatting check
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash ops/setup.sh
jobs=$(nproc)
step() { echo "== $* ($(date -u +%H:%M:%S))"; }

# Every tracked .h/.cc as .clang-format says (ops/check_format.sh), before
# spending minutes on a build.
step "format check"
LEDGER_FORMAT_CHECK=${LEDGER_FORMAT_CHECK:-1} bash ops/check_format.sh

step "release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build
# The web test's and the contract checks' tools come from the npm registry.
(cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/contract && npm ci --no-audit --no-fund --loglevel=error)
# Every answer the C++ tests receive is recorded, then held to service/openapi.json.
record=$root/build/http-record
rm -rf "$record" && mkdir -p "$record"
(cd build && LEDGER_HTTP_RECORD_DIR=$record ctest --output-on-failure -j"$jobs" --timeout 600)
step "recorded HTTP answers against service/openapi.json"
bash tests/contract/run.sh validate "$record"
# A short wrk run, 256 connections mixing ingest and queries: any error or
# non-2xx fails it. Only gross memory growth can show in so short a run.
step "load test, 10 s"
RSS_GROWTH_MIB_MAX=64 bash tests/bench/load_test.sh build 10 10

if [ "${LEDGER_SANITIZE:-1}" != 0 ]; then
  step "ASan+UBSan build and tests"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEDGER_SANITIZE=ON
  cmake --build build-asan
  # Every report, from a test or from a ledgerd or ledgerctl it started
  # (whose stderr the tests do not show), lands in a file here; any file
  # fails the run. The web page test and the demo smoke test (which runs
  # the release build) run in the release build only.
  logs=$root/build-asan/sanitizer-logs
  rm -rf "$logs" && mkdir -p "$logs"
  export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1"
  export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1"
  # Third-party caches that live as long as the process (tests/lsan.supp).
  export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
  (cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900 -E '^(web_dashboard|demo_smoke)$') || status=$?
  if [ -n "$(ls -A "$logs")" ]; then
    for f in "$logs"/*; do echo "--- $f"; cat "$f"; done
    echo "sanitizer reports above" >&2
    exit 1
  fi
  [ "${status:-0}" = 0 ] || exit "$status"
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
fi

fuzz_seconds=${LEDGER_FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" != 0 ]; then
  step "libFuzzer targets, ${fuzz_seconds} s each"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEDGER_FUZZ=ON
  cmake --build build-fuzz --target fuzzers
  for target in event_json event_binary decimal target; do
    # New inputs go to a scratch corpus; the checked-in seeds are only read.
    scratch=build-fuzz/corpus/$target
    rm -rf "$scratch" && mkdir -p "$scratch" build-fuzz/crashes
    if ! "build-fuzz/tests/fuzz/fuzz_$target" "$scratch" "tests/fuzz/corpus/$target" \
        -max_total_time="$fuzz_seconds" -artifact_prefix="build-fuzz/crashes/$target-" \
        -print_final_stats=1 >"build-fuzz/$target.log" 2>&1; then
      tail -60 "build-fuzz/$target.log"
      echo "fuzz_$target found a crash (build-fuzz/crashes/): copy it into tests/fuzz/corpus/$target/," \
           "fix the bug and add a test named after the behaviour" >&2
      exit 1
    fi
    echo "fuzz_$target: $(sed -n 's/^stat::number_of_executed_units: *//p' "build-fuzz/$target.log") inputs, no crash"
  done
fi
step "all tests passed"
