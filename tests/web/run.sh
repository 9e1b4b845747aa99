#!/usr/bin/env bash
# End-to-end test of the web page: starts the real ledgerd on a fresh data dir
# and a free port, loads the golden example over HTTP, and drives the page in
# headless Chromium (tests/web/dashboard.test.mjs). Screenshots go to
# $BUILD_DIR/screenshots.
set -euo pipefail
BUILD_DIR=$(cd "${1:-build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
EXAMPLES=${LEDGER_EXAMPLES_DIR:-$HERE/../golden}

if [ ! -d "$HERE/node_modules/playwright-core" ]; then
  echo "web test: run 'npm ci' in tests/web first (ops/test.sh does)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$BUILD_DIR/ledgerd" --data-dir "$tmp/data" --http 127.0.0.1:0 --no-access-log >"$tmp/out" 2>"$tmp/err" &
pid=$!
url=""
for _ in $(seq 1 300); do
  url=$(sed -n 's/^listening on //p' "$tmp/out")
  [ -n "$url" ] && break
  kill -0 $pid 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "web test: ledgerd did not start" >&2; exit 1; }
curl -sf -X POST -H 'Content-Type: application/x-ndjson' --data-binary @"$EXAMPLES/events.ndjson" \
  "$url/v1/events" >/dev/null
cd "$HERE"
LEDGER_URL="$url" SCREENSHOT_DIR="$BUILD_DIR/screenshots" node --test dashboard.test.mjs
