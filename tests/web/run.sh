#!/usr/bin/env bash
# End-to-end test of the web page: starts the real ledgerd twice on fresh data
# dirs and free ports (one open, one with access tokens), loads the golden
# example and then the budgets example into both over HTTP, and drives the page
# in headless Chromium (tests/web/dashboard.test.mjs). Screenshots go to
# $BUILD_DIR/screenshots. Arguments after the build directory go to node, e.g.
# `tests/web/run.sh build --test-name-pattern=budget` runs only the tests so named.
set -euo pipefail
BUILD_DIR=$(cd "${1:-build}" && pwd)
shift || true
HERE=$(cd "$(dirname "$0")" && pwd)
EXAMPLES=${LEDGER_EXAMPLES_DIR:-$HERE/../golden}

if [ ! -d "$HERE/node_modules/playwright-core" ] || [ ! -d "$HERE/node_modules/axe-core" ]; then
  echo "web test: run 'npm ci' in tests/web first (ops/test.sh does)" >&2
  exit 1
fi

# The budgets example goes into the same services after the main one, so its orgs must be
# new there: an org of both would mix the two examples' answers.
org_ids() { grep -o '"org_id": *"[^"]*"' "$1" | sed 's/.*"\([^"]*\)"$/\1/' | sort -u; }
shared_orgs=$(comm -12 <(org_ids "$EXAMPLES/events.ndjson") <(org_ids "$EXAMPLES/budgets/events.ndjson"))
if [ -n "$shared_orgs" ]; then
  echo "web test: the golden and budgets examples share orgs: $shared_orgs" >&2
  exit 1
fi

tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

# Starts ledgerd with extra flags; sets `url` once it listens. Not called in a
# $(...) subshell, so that its pid reaches the EXIT trap.
start_ledgerd() {
  local name=$1; shift
  "$BUILD_DIR/ledgerd" --data-dir "$tmp/$name" --http 127.0.0.1:0 --no-access-log "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  local pid=$!
  url=""
  for _ in $(seq 1 300); do
    # The background child creates the file; until it has, there is nothing to read yet.
    url=$(sed -n 's/^listening on //p' "$tmp/$name.out" 2>/dev/null || true)
    [ -n "$url" ] && break
    kill -0 $pid 2>/dev/null || { cat "$tmp/$name.err" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "web test: ledgerd ($name) did not start" >&2; exit 1; }
}

printf '%s\n' "web-admin-token-0123456789 admin * web-admin" "web-viewer-token-0123456789 viewer acme web-viewer" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
start_ledgerd open
open_url=$url
start_ledgerd auth --tokens "$tmp/tokens"
auth_url=$url
for target in "$open_url" "$auth_url"; do
  for events in "$EXAMPLES/events.ndjson" "$EXAMPLES/budgets/events.ndjson"; do
    curl -sf -X POST -H 'Content-Type: application/x-ndjson' -H 'Authorization: Bearer web-admin-token-0123456789' \
      --data-binary @"$events" "$target/v1/events" >/dev/null
  done
done
cd "$HERE"
LEDGER_URL="$open_url" LEDGER_AUTH_URL="$auth_url" LEDGER_AUTH_TOKEN=web-viewer-token-0123456789 \
  LEDGER_BUDGETS_DIR="$EXAMPLES/budgets" SCREENSHOT_DIR="$BUILD_DIR/screenshots" \
  node --test --test-concurrency=1 "$@" dashboard.test.mjs
