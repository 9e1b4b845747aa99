#!/usr/bin/env bash
# Starts ledgerd on embedded defaults with demo data: the ledger in ./demo-data,
# HTTP on 127.0.0.1:8080 and the embedded Kafka broker; the golden example is
# produced to Kafka, a generated history posted over HTTP. Prints where to
# look; Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}
DATA=${DATA:-demo-data}
if [ ! -x build/ledgerd ]; then
  bash ops/setup.sh
  cmake -S . -B build -G Ninja >/dev/null
  cmake --build build
fi
log=$(mktemp)
build/ledgerd --data-dir "$DATA" --http "127.0.0.1:$PORT" --kafka-embedded ${EXTRA_FLAGS:-} >"$log" 2>"$log.err" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log" "$log.err"' EXIT INT TERM
for _ in $(seq 1 100); do
  grep -q '^listening on' "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log.err" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$log")
# The golden example goes through Kafka, as provider integrations send it
# (the embedded broker keeps only ~5 MiB a partition, so the big history goes
# over HTTP); wait until every message is settled (appended, duplicate or
# rejected).
bootstrap=$(sed -n 's/^kafka bootstrap: //p' "$log")
build/ledgerctl produce --brokers "$bootstrap" --topic billing.events tests/golden/events.ndjson >/dev/null
want=$(grep -c . tests/golden/events.ndjson)
for _ in $(seq 1 300); do
  settled=$(curl -sf "$url/metrics" | awk '/^ledger_kafka_(appended|duplicates|rejected)_total /{n+=$2} END{print n+0}')
  [ "$settled" -ge "$want" ] && break
  sleep 0.1
done
# A body holds at most 10 000 events (events::kBodyEventsMax): post the
# history in bodies of 1000 lines, in order, as an integration would.
# Budgets, forecasts and alerts (orgs noor.bh and hoshi.jp), by HTTP.
curl -sf -o /dev/null -X POST -H 'Content-Type: application/x-ndjson' \
  --data-binary @tests/golden/budgets/events.ndjson "$url/v1/events"
build/ledgerctl generate --seed 7 --orgs 3 --months 12 --usage-events 20000 --start-month 2025-03 |
  split -l 1000 --filter="curl -sf -o /dev/null -X POST -H 'Content-Type: application/x-ndjson' --data-binary @- $url/v1/events"
cat "$log"
cat <<INFO

Billing ledger demo is running (data in $DATA/):
  web dashboard   $url/?org=acme      (also org-1, org-2, org-3, kaiju-jp; budgets: noor.bh)
  dashboard API   $url/v1/orgs/acme/dashboard?months=12
  usage history   $url/v1/orgs/acme/usage-history
  invoices        $url/v1/orgs/acme/invoices?month=2026-01
  invoice PDF     $url/v1/orgs/acme/invoices/2025-12-org.pdf
  month proof     $url/v1/orgs/acme/usage-history/2025-12/proof
  budget alerts   $url/v1/orgs/noor.bh/alerts
  ledger stream   $url/v1/ledger/events?limit=5
  verify          $url/v1/ledger/verify
  metrics         $url/metrics
  kafka broker    $bootstrap (topic billing.events: build/ledgerctl produce --brokers $bootstrap FILE.ndjson)
Press Ctrl-C to stop.
INFO
wait $pid
