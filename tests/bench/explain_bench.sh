#!/usr/bin/env bash
# How fast does "explain this number" answer (issue 16)? On a >= 3 M-event
# ledger of two orgs (about 125 k usage events per org and month), it reads
# every event behind a drill-down node of about 10 k events and behind the
# month's largest invoice (>= 100 k events), page by page at the largest page
# (10 000 lines), and compares, in the same run, with nginx serving the same
# NDJSON pages from files and with the `as_of` replay of that month that an
# answer without the index would need.
# Usage: tests/bench/explain_bench.sh BUILD_DIR DATA_DIR [repeats]
# DATA_DIR is reused when it already holds a ledger; otherwise it is loaded
# over HTTP (EVENTS overrides the 3 M usage events).
set -euo pipefail
BUILD=$(cd "$1" && pwd)
DATA=$2
REPEATS=${3:-5}
EVENTS=${EVENTS:-3000000}
PAGE=10000        # the routes' largest page (SPEC: limit at most 10000)
NODE_TARGET=10000 # the issue's node size
NGINX_PORT=${NGINX_PORT:-18998}
tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx's workers read the pages as another user
cleanup() {
  [ -n "${lpid:-}" ] && kill $lpid 2>/dev/null && wait $lpid 2>/dev/null || true
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

start_ledgerd() {
  "$BUILD/ledgerd" --data-dir "$DATA" --http 127.0.0.1:0 --no-access-log >"$tmp/out" 2>"$tmp/err" &
  lpid=$!
  for _ in $(seq 1 6000); do grep -q '^listening' "$tmp/out" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$tmp/out")
  [ -n "$url" ] || { cat "$tmp/err" >&2; exit 1; }
}

load() {
  echo "loading $EVENTS usage events over HTTP (NDJSON bodies of 1000, 2 connections)"
  "$BUILD/ledgerctl" generate --seed 5 --orgs 2 --months 12 --resources 4 \
    --usage-events "$EVENTS" >"$tmp/gen.ndjson"
  split -l 1000 -d -a 5 "$tmp/gen.ndjson" "$tmp/chunk."
  rm "$tmp/gen.ndjson"
  local post=(curl -sf -o /dev/null -X POST -H 'Content-Type: application/x-ndjson')
  "${post[@]}" --data-binary @"$(ls "$tmp"/chunk.* | head -1)" "$url/v1/events"
  ls "$tmp"/chunk.* | tail -n +2 | xargs -P 2 -I{} "${post[@]}" --data-binary @{} "$url/v1/events"
  rm "$tmp"/chunk.*
}

# Pages through an events route from the start; saves the pages as
# DIR/page.N and prints "<events> <seconds summed over the pages>". ledgerd
# caches answers by their whole query, so each run asks a page size of its own
# (PAGE - run) and is timed cold.
page_all() {  # base_url dir [run]
  local base=$1 dir=$2 page=$((PAGE - ${3:-0})) after=0 n=0 lines=0 total=0 t
  mkdir -p "$dir"
  while :; do
    t=$(curl -sf -o "$dir/page.$n" -w '%{time_total}' "$base?limit=$page&after=$after")
    total=$(awk -v a="$total" -v b="$t" 'BEGIN {print a + b}')
    local got
    got=$(wc -l <"$dir/page.$n")
    [ "$got" -eq 0 ] && { rm "$dir/page.$n"; break; }
    lines=$((lines + got))
    after=$(tail -1 "$dir/page.$n" | jq -r .sequence)
    n=$((n + 1))
    [ "$got" -lt "$page" ] && break
  done
  echo "$lines $total"
}

# The same pages, fetched from nginx; prints the seconds summed.
nginx_pages() {  # name (under www/)
  local total=0 t f
  for f in $(ls "$tmp/www/$1" | sort -t. -k2 -n); do
    t=$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$NGINX_PORT/$1/$f")
    total=$(awk -v a="$total" -v b="$t" 'BEGIN {print a + b}')
  done
  echo "$total"
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

start_ledgerd
head=$(curl -sf "$url/v1/ledger/verify" | jq .events)
if [ "$head" -eq 0 ]; then
  load
  kill $lpid; wait $lpid 2>/dev/null || true
  start_ledgerd
  head=$(curl -sf "$url/v1/ledger/verify" | jq .events)
fi
org=org-1
api="$url/v1/orgs/$org"
# A month in the middle of the history: fully loaded, and late charges of
# later months have not reached it yet.
month=$(curl -sf "$api/usage-history?months=12" | jq -r '.months[6].month')

# The month's largest invoice.
best_invoice="" best_count=0
for id in $(curl -sf "$api/invoices?month=$month" | jq -r '.invoices[].invoice_id'); do
  read -r count _ < <(page_all "$api/invoices/$id/events" "$tmp/probe")
  rm -rf "$tmp/probe"
  if [ "$count" -gt "$best_count" ]; then best_invoice=$id; best_count=$count; fi
done

# The drill-down node (provider or resource) whose event count is closest to 10 k.
best_node="" best_node_count=0 best_gap=-1
for item in $(curl -sf "$api/usage-history/$month" | jq -r '.items[] | select(.category == "usage") | .id'); do
  for provider in $(curl -sf "$api/usage-history/$month/items/$item" | jq -r '.children[].id'); do
    for node in $provider $(curl -sf "$api/usage-history/$month/items/$provider" | jq -r '.children[].id'); do
      read -r count _ < <(page_all "$api/usage-history/$month/items/$node/events" "$tmp/probe")
      rm -rf "$tmp/probe"
      gap=$((count > NODE_TARGET ? count - NODE_TARGET : NODE_TARGET - count))
      if [ "$best_gap" -lt 0 ] || [ "$gap" -lt "$best_gap" ]; then
        best_node=$node; best_node_count=$count; best_gap=$gap
      fi
    done
  done
done

mkdir -p "$tmp/www"
read -r _ _ < <(page_all "$api/invoices/$best_invoice/events" "$tmp/www/invoice")
read -r _ _ < <(page_all "$api/usage-history/$month/items/$best_node/events" "$tmp/www/node")
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 64; }
http {
  access_log off;
  default_type application/x-ndjson;
  client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fcgi;
  uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
  server { listen 127.0.0.1:$NGINX_PORT; root $tmp/www; }
}
CONF
nginx -c "$tmp/nginx.conf"
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; [ -f "$tmp/nginx.pid" ] && break; sleep 0.1; done

# Each figure: the median of REPEATS runs, in milliseconds; the command gets
# the run's number last.
measure() {  # label command...
  local label=$1; shift
  local ms
  ms=$(for r in $(seq 1 "$REPEATS"); do "$@" "$r"; done | median | awk '{printf "%.1f", $1 * 1000}')
  printf "%-52s %10s ms\n" "$label" "$ms"
  echo "$ms" >"$tmp/ms.$(echo "$label" | tr -c 'a-z0-9' _)"
}
ledgerd_pages() { page_all "$1" "$tmp/run" "$2" | awk '{print $2}'; rm -rf "$tmp/run"; }
first_page() { curl -sf -o /dev/null -w '%{time_total}\n' "$1?limit=$((1000 - $2))"; }
nginx_run() { nginx_pages "$1"; }
# As of the sequence before the head: the head itself is answered from the
# stored read models, any earlier point by replaying the org's history.
replay() { curl -sf -o /dev/null -w '%{time_total}\n' "$api/usage-history/$month?as_of=$((head - $1))"; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
echo "ledger: $head events; org $org, month $month; median of $REPEATS runs; pages of $PAGE"
echo "invoice $best_invoice: $best_count events ($(cat "$tmp"/www/invoice/* | wc -c) bytes)"
echo "node $best_node: $best_node_count events ($(cat "$tmp"/www/node/* | wc -c) bytes)"
measure "node: first page (1000 lines)" first_page "$api/usage-history/$month/items/$best_node/events"
measure "node: every page, ledgerd" ledgerd_pages "$api/usage-history/$month/items/$best_node/events"
measure "node: every page, nginx (same bytes)" nginx_run node
measure "invoice: first page (1000 lines)" first_page "$api/invoices/$best_invoice/events"
measure "invoice: every page, ledgerd" ledgerd_pages "$api/invoices/$best_invoice/events"
measure "invoice: every page, nginx (same bytes)" nginx_run invoice
measure "the month as_of head-1: the replay an index spares" replay
