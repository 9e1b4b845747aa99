#!/usr/bin/env bash
# HTTP read throughput of ledgerd against nginx serving the same JSON bytes
# as static files, on loopback, in the same run (issue 4). Also ingest by HTTP.
# Usage: tests/bench/http_bench.sh BUILD_DIR DATA_DIR [seconds]
# DATA_DIR holds a ledger (e.g. from `rebuild_bench load DIR 1000000`).
set -euo pipefail
BUILD=$(cd "$1" && pwd)
DATA=$2
SECS=${3:-10}
CONNS=${CONNS:-64}
tmp=$(mktemp -d)
cleanup() {
  [ -n "${lpid:-}" ] && kill $lpid 2>/dev/null && wait $lpid 2>/dev/null || true
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$BUILD/ledgerd" --data-dir "$DATA" --http 127.0.0.1:0 --no-access-log >"$tmp/out" 2>"$tmp/err" &
lpid=$!
for _ in $(seq 1 600); do grep -q '^listening' "$tmp/out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$tmp/out")
org=${ORG:-org-1}
latest=$(curl -sf "$url/v1/orgs/$org/dashboard?months=1" | sed -n 's/.*"month":"\([0-9-]*\)".*/\1/p')
dash="/v1/orgs/$org/dashboard"
month="/v1/orgs/$org/usage-history/$latest"

mkdir -p "$tmp/www"
curl -sf "$url$dash" >"$tmp/www/dashboard.json"
curl -sf "$url$month" >"$tmp/www/month.json"
cat >"$tmp/nginx.conf" <<CONF
worker_processes auto;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fcgi;
  uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
  server { listen 127.0.0.1:18999; root $tmp/www; }
}
CONF
nginx -c "$tmp/nginx.conf"
sleep 0.5

run() {  # label url key
  local out
  wrk -t2 -c"$CONNS" -d2s "$2" >/dev/null  # warm-up: caches, connections, CPU frequency
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$2")
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  printf "%-34s %12s req/s   p99 %s\n" "$1" "$rps" "$p99"
  echo "$rps" >"$tmp/rps.$3"
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
echo "ledger: $(curl -sf "$url/v1/ledger/verify" | sed 's/,"head_hash.*//'), org $org, month $latest; wrk -t2 -c$CONNS -d${SECS}s"
echo "dashboard bytes: $(wc -c <"$tmp/www/dashboard.json"), month detail bytes: $(wc -c <"$tmp/www/month.json")"
run "ledgerd GET dashboard" "$url$dash" ld
run "nginx   GET dashboard.json" "http://127.0.0.1:18999/dashboard.json" nd
run "ledgerd GET usage-history/{month}" "$url$month" lm
run "nginx   GET month.json" "http://127.0.0.1:18999/month.json" nm
echo "dashboard: ledgerd/nginx = $(awk -v a="$(cat "$tmp/rps.ld")" -v b="$(cat "$tmp/rps.nd")" 'BEGIN {printf "%.0f%%", 100*a/b}')"
echo "month:     ledgerd/nginx = $(awk -v a="$(cat "$tmp/rps.lm")" -v b="$(cat "$tmp/rps.nm")" 'BEGIN {printf "%.0f%%", 100*a/b}')"

# Ingest: NDJSON bodies of 1000 events, 4 concurrent posters, into a fresh ledger.
"$BUILD/ledgerctl" generate --seed 9 --orgs 4 --months 6 --usage-events 200000 >"$tmp/gen.ndjson"
split -l 1000 -d -a 4 "$tmp/gen.ndjson" "$tmp/chunk."
kill $lpid; wait $lpid 2>/dev/null || true
"$BUILD/ledgerd" --data-dir "$tmp/ingest" --http 127.0.0.1:0 --no-access-log >"$tmp/out2" 2>/dev/null &
lpid=$!
for _ in $(seq 1 100); do grep -q '^listening' "$tmp/out2" && break; sleep 0.1; done
url2=$(sed -n 's/^listening on //p' "$tmp/out2")
# The structure events come first in the stream: send the first chunk alone.
first=$(ls "$tmp"/chunk.* | head -1)
curl -sf -X POST -H 'Content-Type: application/x-ndjson' --data-binary @"$first" "$url2/v1/events" >/dev/null
start=$(date +%s.%N)
ls "$tmp"/chunk.* | tail -n +2 | xargs -P 4 -I{} curl -sf -o /dev/null -X POST -H 'Content-Type: application/x-ndjson' --data-binary @{} "$url2/v1/events"
end=$(date +%s.%N)
n=$(curl -sf "$url2/v1/ledger/verify" | sed 's/.*"events":\([0-9]*\).*/\1/')
echo "ingest: $n events accepted in total; $(awk -v s="$start" -v e="$end" -v l="$(($(wc -l <"$tmp/gen.ndjson") - 1000))" 'BEGIN {printf "%.0f events/s over HTTP (NDJSON x1000, 4 posters, synced)", l/(e-s)}')"
