#!/usr/bin/env bash
# The HTTP contract's checks, with the tools pinned in package-lock.json:
#   run.sh lint             redocly lint of service/openapi.json (redocly.yaml)
#   run.sh validate DIR     every answer recorded in DIR (LEDGER_HTTP_RECORD_DIR,
#                           tests/testing/http_client.h) against service/openapi.json
# Run 'npm ci' here first (ops/test.sh does). The route table against the
# document's paths is routes_test (tests/service/routes_test.cc).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = validate ]; then record=$(cd "${2:?usage: run.sh validate RECORD_DIR}" && pwd); fi
cd "$HERE"
if [ ! -x node_modules/.bin/redocly ] || [ ! -d node_modules/ajv ]; then
  echo "contract: run 'npm ci' in tests/contract first (ops/test.sh does)" >&2
  exit 1
fi
# Redocly's CLI reports usage to its vendor and checks for updates unless told not to.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
case "${1:-}" in
  lint) exec node_modules/.bin/redocly lint --config redocly.yaml ../../service/openapi.json ;;
  validate) exec node validate_responses.mjs "$record" ../../service/openapi.json ;;
  *) echo "usage: run.sh lint | validate RECORD_DIR" >&2; exit 2 ;;
esac
