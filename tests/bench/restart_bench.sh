#!/usr/bin/env bash
# Restart to serving after `kill -9` (issue 8): copies a ledger, starts ledgerd
# on the copy, writes a WAL tail over HTTP (so the restart has a WAL to
# replay, as after a real crash), kills it with SIGKILL, restarts it and
# measures the time from exec until `GET /readyz` answers 200. Repeats the
# kill and restart ROUNDS times. The copy is removed afterwards.
# Usage: tests/bench/restart_bench.sh BUILD_DIR LEDGER_DIR [ROUNDS]
# LEDGER_DIR holds a ledger, e.g. from `build/tests/rebuild_bench load DIR 10000000`;
# it is only read. TAIL_EVENTS (default 100000) sets the WAL tail per round.
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SOURCE=$2
ROUNDS=${3:-3}
TAIL_EVENTS=${TAIL_EVENTS:-100000}
# How long a start may take before the script gives up on it.
START_DEADLINE_S=600
tmp=$(mktemp -d "${TMPDIR:-/tmp}/restart-bench.XXXXXX")
cleanup() {
  [ -n "${lpid:-}" ] && kill -9 "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }
ms_since() { echo "$1 $(now)" | awk '{printf "%.0f", ($2 - $1) * 1000}'; }

echo "copying $SOURCE ($(du -sh "$SOURCE" | cut -f1)) ..."
cp -r "$SOURCE" "$tmp/data"

# Starts ledgerd on the copy; sets lpid, url, and listening_ms and ready_ms
# (from exec to the `listening on` line, and to the first 200 of /readyz).
start() {
  : >"$tmp/out"
  local t0
  t0=$(now)
  "$BUILD/ledgerd" --data-dir "$tmp/data" --http 127.0.0.1:0 --no-access-log >"$tmp/out" 2>>"$tmp/err" &
  lpid=$!
  local deadline=$((SECONDS + START_DEADLINE_S))
  until grep -q '^listening on ' "$tmp/out"; do
    if ! kill -0 "$lpid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "ledgerd did not start:" >&2
      tail -5 "$tmp/err" >&2
      exit 1
    fi
    sleep 0.005
  done
  listening_ms=$(ms_since "$t0")
  url=$(sed -n 's/^listening on //p' "$tmp/out")
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ]; do
    [ $SECONDS -ge $deadline ] && { echo "never ready" >&2; exit 1; }
    sleep 0.005
  done
  ready_ms=$(ms_since "$t0")
  # CPU time the start took (all threads, compactions it started included):
  # on a shared machine the wall time above also counts waiting for a core.
  cpu_ms=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f", ($14 + $15) * 1000 / hz}' "/proc/$lpid/stat")
}

# A WAL tail: one org and TAIL_EVENTS usage events over HTTP in NDJSON
# bodies of 1000, each answered only once synced.
write_tail() {
  local round=$1 org="restart-$1"
  curl -sf -H 'Content-Type: application/x-ndjson' --data-binary @- "$url/v1/events" >/dev/null <<EOF
{"event_id":"$org:org","org_id":"$org","occurred_at":"2026-01-01T00:00:00Z","organization_created":{"name":"R","currency":"USD","billing_account":"BA"}}
{"event_id":"$org:cc","org_id":"$org","occurred_at":"2026-01-01T00:00:00Z","cost_center_created":{"cost_center_id":"cc","name":"C"}}
{"event_id":"$org:ws","org_id":"$org","occurred_at":"2026-01-01T00:00:00Z","workspace_created":{"workspace_id":"ws","cost_center_id":"cc","name":"W"}}
{"event_id":"$org:p","org_id":"$org","occurred_at":"2026-01-01T00:00:00Z","provider_registered":{"provider_id":"p","workspace_id":"ws","name":"P","kind":"aws"}}
EOF
  local n=0
  while [ $n -lt "$TAIL_EVENTS" ]; do
    awk -v org="$org" -v from=$n 'BEGIN { for (i = from; i < from + 1000; i++)
      printf "{\"event_id\":\"%s:u%d\",\"org_id\":\"%s\",\"occurred_at\":\"2026-01-15T10:00:00Z\",\"usage_recorded\":{\"provider_id\":\"p\",\"service\":\"EC2\",\"sku\":\"s%d\",\"resource_id\":\"r%d\",\"region\":\"eu\",\"quantity\":\"1\",\"unit\":\"h\",\"amount\":\"0.001\",\"usage_start\":\"2026-01-15T09:00:00Z\",\"usage_end\":\"2026-01-15T10:00:00Z\"}}\n", org, i, org, i % 97, i % 1009 }' |
      curl -sf -H 'Content-Type: application/x-ndjson' --data-binary @- "$url/v1/events" >/dev/null
    n=$((n + 1000))
  done
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
start
echo "first start (after the copy, page cache warm): listening ${listening_ms} ms, ready ${ready_ms} ms, cpu ${cpu_ms} ms"
echo "ledger: $(curl -sf "$url/metrics" | grep '^ledger_head_sequence')"
for round in $(seq 1 "$ROUNDS"); do
  write_tail "$round"
  head=$(curl -sf "$url/metrics" | sed -n 's/^ledger_head_sequence //p')
  wal_mb=$(find "$tmp/data" -name '*.log' -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s / 1048576}')
  kill -9 "$lpid"
  wait "$lpid" 2>/dev/null || true
  start
  after=$(curl -sf "$url/metrics" | sed -n 's/^ledger_head_sequence //p')
  [ "$after" = "$head" ] || { echo "head $after after restart, $head acknowledged before kill -9" >&2; exit 1; }
  echo "round $round: kill -9 at head $head (WAL ${wal_mb} MiB, $TAIL_EVENTS events since the last start);" \
    "restart: listening ${listening_ms} ms, ready ${ready_ms} ms, cpu ${cpu_ms} ms, load $(cut -d' ' -f1 /proc/loadavg)"
done
