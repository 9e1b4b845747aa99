#!/usr/bin/env bash
# Bounded load test (issue 8): wrk on loopback, 256 connections, a fixed
# duration, a mix of ingest (POST /v1/events, NDJSON bodies of 5 new usage
# events) and queries (dashboard, usage history, a month's items) over 8
# orgs. Fails unless every request got a 2xx (no socket errors, timeouts or
# other statuses), every posted event was accepted, and ledgerd's resident
# memory did not grow after the warm-up: VmRSS is sampled every second, and
# the median of the measured run's last 10 samples may exceed the median of
# the warm-up's last 5 by at most RSS_GROWTH_MIB_MAX. Medians, because
# flushes and compactions make short spikes of tens of MiB that are given
# back. Prints req/s and latency percentiles.
# Usage: tests/bench/load_test.sh BUILD_DIR [SECONDS] [WARMUP_SECONDS]
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SECS=${2:-30}
WARMUP=${3:-20}
CONNS=${CONNS:-256}
THREADS=${THREADS:-2}
ORGS=8
# The warm-up goes through several memtable flushes (64 MiB each, one per
# ~100 k events at the ingest rate of this mix), so its resident size
# already holds the memtables, the block cache and the answer cache; a
# memtable fills and empties between samples, so up to this much on top is
# noise, more is growth.
RSS_GROWTH_MIB_MAX=${RSS_GROWTH_MIB_MAX:-32}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/load-test.XXXXXX")
cleanup() {
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null || true
  [ -n "${lpid:-}" ] && kill "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$BUILD/ledgerd" --data-dir "$tmp/data" --http 127.0.0.1:0 --no-access-log >"$tmp/out" 2>"$tmp/err" &
lpid=$!
deadline=$((SECONDS + 60))
until grep -qs '^listening on ' "$tmp/out"; do
  kill -0 "$lpid" 2>/dev/null && [ $SECONDS -lt $deadline ] || { cat "$tmp/err" >&2; exit 1; }
  sleep 0.05
done
url=$(sed -n 's/^listening on //p' "$tmp/out")

# Each org: structure, and one usage event so that its month exists.
for o in $(seq 1 $ORGS); do
  org="load-$o"
  curl -sf -H 'Content-Type: application/x-ndjson' --data-binary @- "$url/v1/events" >/dev/null <<EOF
{"event_id":"$org:org","org_id":"$org","occurred_at":"2026-01-01T00:00:00Z","organization_created":{"name":"L","currency":"USD","billing_account":"BA"}}
{"event_id":"$org:cc","org_id":"$org","occurred_at":"2026-01-01T00:00:00Z","cost_center_created":{"cost_center_id":"cc","name":"C"}}
{"event_id":"$org:ws","org_id":"$org","occurred_at":"2026-01-01T00:00:00Z","workspace_created":{"workspace_id":"ws","cost_center_id":"cc","name":"W"}}
{"event_id":"$org:p","org_id":"$org","occurred_at":"2026-01-01T00:00:00Z","provider_registered":{"provider_id":"p","workspace_id":"ws","name":"P","kind":"aws"}}
{"event_id":"$org:u0","org_id":"$org","occurred_at":"2026-01-15T10:00:00Z","usage_recorded":{"provider_id":"p","service":"EC2","sku":"s","resource_id":"r","region":"eu","quantity":"1","unit":"h","amount":"0.5","usage_start":"2026-01-15T09:00:00Z","usage_end":"2026-01-15T10:00:00Z"}}
EOF
done

# One request in four is an ingest of 5 new events; ids are unique per wrk
# run, thread and request, so every event is new.
cat >"$tmp/mix.lua" <<'LUA'
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  run = args[1]
  n = 0
  posted = 0
end
function request()
  n = n + 1
  local org = "load-" .. (n % 8 + 1)
  local kind = n % 4
  if kind == 0 then
    local lines = {}
    for k = 1, 5 do
      lines[k] = string.format(
        '{"event_id":"%s:%s-%d-%d-%d","org_id":"%s","occurred_at":"2026-01-15T10:00:00Z","usage_recorded":' ..
        '{"provider_id":"p","service":"S%d","sku":"k%d","resource_id":"r%d","region":"eu","quantity":"1",' ..
        '"unit":"h","amount":"0.001","usage_start":"2026-01-15T09:00:00Z","usage_end":"2026-01-15T10:00:00Z"}}',
        org, run, tid, n, k, org, k, n % 50, n % 1000)
    end
    posted = posted + 5
    return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/x-ndjson"},
                      table.concat(lines, "\n") .. "\n")
  elseif kind == 1 then
    return wrk.format("GET", "/v1/orgs/" .. org .. "/dashboard")
  elseif kind == 2 then
    return wrk.format("GET", "/v1/orgs/" .. org .. "/usage-history")
  else
    return wrk.format("GET", "/v1/orgs/" .. org .. "/usage-history/2026-01")
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("posted") end
  io.write(string.format("posted_events %d\n", total))
end
LUA

rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$lpid/status"; }
metric() { curl -sf "$url/metrics" | sed -n "s/^$1 //p"; }
# VmRSS every second into $tmp/rss.<phase>, until killed.
sample() {
  while kill -0 "$lpid" 2>/dev/null; do
    echo "$(rss_mib)" >>"$tmp/rss.$1"
    sleep 1
  done
}
peak() { sort -n "$tmp/rss.$1" | tail -1; }
# The median of the last $2 samples of a phase.
settled() { tail -n "$2" "$tmp/rss.$1" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
series() { tr "\n" " " <"$tmp/rss.$1"; }

# wrk's `posted` is per thread; the done() hook sums it.
run_wrk() {  # phase seconds
  sample "$1" &
  sampler=$!
  wrk -t"$THREADS" -c"$CONNS" -d"$2s" --latency -s "$tmp/mix.lua" "$url" -- "$1" >"$tmp/wrk.$1"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  sampler=
}

check() {  # phase: fails on any error or non-2xx
  local out=$tmp/wrk.$1
  if grep -q 'Socket errors\|Non-2xx' "$out"; then
    cat "$out" >&2
    echo "FAIL: errors or non-2xx answers during $1" >&2
    exit 1
  fi
}

accepted0=$(metric ledger_events_accepted_total)
run_wrk warmup "$WARMUP"
check warmup
run_wrk measure "$SECS"
check measure
accepted1=$(metric ledger_events_accepted_total)
posted=$(($(sed -n 's/^posted_events //p' "$tmp/wrk.warmup") + $(sed -n 's/^posted_events //p' "$tmp/wrk.measure")))
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
echo "wrk -t$THREADS -c$CONNS, warm-up ${WARMUP}s then ${SECS}s; 1 request in 4 posts 5 events (NDJSON), the rest read"
sed -n '/Latency Distribution/,/^ *99%/p;/Requests\/sec/p;/requests in/p' "$tmp/wrk.measure"
echo "events accepted: $((accepted1 - accepted0)) of $posted posted"
warm=$(settled warmup 5)
end=$(settled measure 10)
echo "ledgerd VmRSS: after the warm-up ${warm} MiB, at the end ${end} MiB (medians; peaks $(peak warmup) and $(peak measure) MiB)"
echo "VmRSS MiB each second: warm-up [$(series warmup)] measured [$(series measure)]"
echo "ledger: $(curl -sf "$url/v1/ledger/verify" | sed 's/,"head_hash.*//')"
# wrk counts the bodies it made; those of requests still in flight when a
# run ends (one per connection at most) may or may not have been written.
accepted=$((accepted1 - accepted0))
if [ "$accepted" -gt "$posted" ] || [ "$accepted" -lt $((posted - CONNS * 5)) ]; then
  echo "FAIL: $accepted events accepted of $posted posted" >&2
  exit 1
fi
# An empty listing: no rejected message (and so no next page).
if [ "$(curl -sf "$url/v1/ledger/rejected")" != '{"rejected":[],"next_after":null}' ]; then
  echo "FAIL: events were rejected" >&2
  exit 1
fi
if [ "$end" -gt $((warm + RSS_GROWTH_MIB_MAX)) ]; then
  echo "FAIL: ledgerd's memory grew by more than ${RSS_GROWTH_MIB_MAX} MiB after the warm-up" >&2
  exit 1
fi
echo "OK: no errors, no non-2xx answers, no memory growth after the warm-up"
