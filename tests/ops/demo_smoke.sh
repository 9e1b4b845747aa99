#!/usr/bin/env bash
# The README's first command works: ops/demo.sh starts ledgerd with the demo
# data and says where to look, and what it points at answers with the data.
# Usage: tests/ops/demo_smoke.sh (from anywhere; uses the repository's build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$root" && DATA="$tmp/data" PORT="$port" exec bash ops/demo.sh >"$tmp/out" 2>&1) &
demo=$!
cleanup() {
  kill -TERM "$demo" 2>/dev/null || true
  wait "$demo" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
# Loading the demo takes seconds; this bounds a hang, not the speed.
for _ in $(seq 1 1200); do
  grep -q 'Press Ctrl-C' "$tmp/out" && break
  kill -0 "$demo" 2>/dev/null || { echo "demo.sh exited early:"; cat "$tmp/out"; exit 1; }
  sleep 0.1
done
grep -q 'Press Ctrl-C' "$tmp/out" || { echo "demo.sh never said where to look:"; cat "$tmp/out"; exit 1; }
url=http://127.0.0.1:$port
for org in acme kaiju-jp org-1 org-3; do
  months=$(curl -sf "$url/v1/orgs/$org/dashboard?months=12" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["months"]))')
  [ "$months" -gt 0 ] || { echo "no months for $org"; exit 1; }
done
# Whole answers first: grep -q stops reading early, and pipefail would
# report curl's write error.
verify=$(curl -sf "$url/v1/ledger/verify")
[[ $verify == *'"ok":true'* ]] || { echo "verify: $verify"; exit 1; }
page=$(curl -sf "$url/?org=acme")
[[ $page == *'<html'* ]] || { echo "no web page at $url/?org=acme"; exit 1; }
# Every link the demo prints answers (the PDF as a PDF, the proof holding).
for path in $(sed -n 's#^  [a-z ]*http://127.0.0.1:[0-9]*\(/v1/[^ ]*\).*#\1#p' "$tmp/out"); do
  curl -sf -o "$tmp/answer" "$url$path" || { echo "demo link $path did not answer"; exit 1; }
done
curl -sf -o "$tmp/invoice.pdf" "$url/v1/orgs/acme/invoices/2025-12-org.pdf"
pdf=$(head -c 5 "$tmp/invoice.pdf")
[ "$pdf" = "%PDF-" ] || { echo "the demo's invoice PDF is not a PDF"; exit 1; }
proof=$(curl -sf "$url/v1/orgs/acme/usage-history/2025-12/proof")
[[ $proof == '{"month":"2025-12","ok":true'* ]] || { echo "proof: $proof"; exit 1; }
alerts=$(curl -sf "$url/v1/orgs/noor.bh/alerts")
[[ $alerts == *'"kind":"forecast"'* ]] || { echo "no budget alerts in the demo: $alerts"; exit 1; }
echo "demo answers for acme, kaiju-jp, org-1, org-3 and every printed link; verify ok"
