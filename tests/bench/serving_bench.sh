#!/usr/bin/env bash
# Does an auditor's work stall dashboard users? (issue 14). Dashboard latency
# on 64 keep-alive connections, first on a quiet ledgerd, then while verifies
# of the whole ledger and `as_of` replays run back to back, in the same run.
# Usage: tests/bench/serving_bench.sh BUILD_DIR DATA_DIR [seconds]
# DATA_DIR is reused when it already holds a ledger; otherwise it is loaded
# over HTTP with the issue's 3 M-event history (EVENTS overrides the count).
set -euo pipefail
BUILD=$(cd "$1" && pwd)
DATA=$2
SECS=${3:-20}
CONNS=${CONNS:-64}
EVENTS=${EVENTS:-3000000}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${lpid:-}" ] && kill $lpid 2>/dev/null && wait $lpid 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

start_ledgerd() {
  "$BUILD/ledgerd" --data-dir "$DATA" --http 127.0.0.1:0 --no-access-log >"$tmp/out" 2>"$tmp/err" &
  lpid=$!
  for _ in $(seq 1 3000); do grep -q '^listening' "$tmp/out" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$tmp/out")
}

load() {
  echo "loading $EVENTS events over HTTP (NDJSON bodies of 1000, 2 connections)"
  "$BUILD/ledgerctl" generate --seed 3 --orgs 20 --months 12 --usage-events "$EVENTS" >"$tmp/gen.ndjson"
  split -l 1000 -d -a 5 "$tmp/gen.ndjson" "$tmp/chunk."
  rm "$tmp/gen.ndjson"
  local post=(curl -sf -o /dev/null -X POST -H 'Content-Type: application/x-ndjson')
  # Structure events open the stream: the first body goes alone.
  "${post[@]}" --data-binary @"$(ls "$tmp"/chunk.* | head -1)" "$url/v1/events"
  ls "$tmp"/chunk.* | tail -n +2 | xargs -P 2 -I{} "${post[@]}" --data-binary @{} "$url/v1/events"
  rm "$tmp"/chunk.*
}

start_ledgerd
head=$(curl -sf "$url/v1/ledger/verify" | sed -n 's/.*"events":\([0-9]*\).*/\1/p')
if [ "${head:-0}" -eq 0 ]; then
  load
  kill $lpid; wait $lpid 2>/dev/null || true
  start_ledgerd
fi

dash="$url/v1/orgs/org-1/dashboard?months=12"
month=$(curl -sf "$dash" | sed -n 's/.*"month":"\([0-9-]*\)".*/\1/p')
replay="$url/v1/orgs/org-2/usage-history/$month?as_of=$((head / 2))"

run() {  # label
  local out
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 2s --latency "$dash")
  local rps p50 p99 timeouts
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  timeouts=$(echo "$out" | sed -n 's/.*timeout \([0-9]*\).*/\1/p')
  printf "%-36s %10s req/s   p50 %-8s p99 %-8s timeouts %s\n" "$1" "$rps" "$p50" "$p99" "${timeouts:-0}"
}

# Back-to-back heavy requests; each loop counts what it completed.
heavy_loop() {  # name url
  local n=0
  while :; do
    curl -sf -o /dev/null --max-time 600 "$2" && n=$((n + 1))
    echo $n >"$tmp/count.$1"
  done
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
start=$(date +%s.%N)
curl -sf "$url/v1/ledger/verify" >"$tmp/verify"
echo "ledger: $(sed 's/,"head_hash.*//' "$tmp/verify"); one verify took $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f s", e-s}')"
echo "wrk -t2 -c$CONNS -d${SECS}s --timeout 2s GET /v1/orgs/org-1/dashboard?months=12"
wrk -t2 -c"$CONNS" -d2s "$dash" >/dev/null  # warm-up: caches, connections, CPU frequency
run "quiet"
heavy_loop verify "$url/v1/ledger/verify" & pids+=($!)
heavy_loop replay "$replay" & pids+=($!)
sleep 1
run "with verify + as_of replay looping"
echo "heavy requests completed meanwhile: verify $(cat "$tmp/count.verify" 2>/dev/null || echo 0), as_of replay $(cat "$tmp/count.replay" 2>/dev/null || echo 0)"
