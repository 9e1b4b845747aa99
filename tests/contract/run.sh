#!/usr/bin/env bash
# The HTTP contract's checks, with the tools pinned in package-lock.json:
#   run.sh lint             redocly lint of api/openapi.json (redocly.yaml)
# Run 'npm ci' here first (ops/test.sh does).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE"
if [ ! -x node_modules/.bin/redocly ]; then
  echo "contract: run 'npm ci' in tests/contract first (ops/test.sh does)" >&2
  exit 1
fi
# Redocly's CLI reports usage to its vendor and checks for updates unless told not to.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
case "${1:-}" in
  lint) exec node_modules/.bin/redocly lint --config redocly.yaml ../../api/openapi.json ;;
  *) echo "usage: run.sh lint" >&2; exit 2 ;;
esac
