#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test: unit,
# randomized, real-binary HTTP/Kafka and the web page in headless Chromium.
# Usage: ops/test.sh            (build dir: ./build)
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build
# The web test's only dependency (playwright-core) comes from the npm registry.
(cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 600
