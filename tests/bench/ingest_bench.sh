#!/usr/bin/env bash
# Live ingest against its two yardsticks, on the same events in the same run
# (issue 18): our own rebuild (`ledgerctl replay`, the rules without the
# network, parsing or fsync per group) and PostgreSQL doing the least a user
# would build instead (the events as rows, batched INSERT of 1000 a
# transaction, primary key on (org, event id), index on (org, usage_start),
# synchronous_commit on).
# Usage: tests/bench/ingest_bench.sh BUILD_DIR [events]
# NO_PG=1 skips PostgreSQL (a quick A/B of ledgerd alone); KEEP=1 keeps the
# temporary directory (the ledger, the chunks) and prints its path.
# Installs PostgreSQL from Debian when missing. Needs root (PostgreSQL runs as
# the postgres user on a socket in a temporary directory).
set -euo pipefail
BUILD=$(cd "$1" && pwd)
EVENTS=${2:-3000000}
BODY_EVENTS=1000 # events per HTTP body and per PostgreSQL transaction
CONNS=2          # HTTP connections and psql sessions
tmp=$(mktemp -d)
chmod 755 "$tmp"
cleanup() {
  [ -n "${lpid:-}" ] && kill $lpid 2>/dev/null && wait $lpid 2>/dev/null || true
  [ -n "${PGBIN:-}" ] && [ -d "$tmp/pg" ] &&
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$tmp/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get install -y -q postgresql >/dev/null
fi
PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
rate() { awk -v n="$1" -v s="$2" 'BEGIN {printf "%.0f", n / s}'; }
now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN {printf "%.2f", e - s}'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
"$BUILD/ledgerctl" generate --seed 3 --orgs 20 --months 12 --usage-events "$EVENTS" >"$tmp/events.ndjson"
total=$(wc -l <"$tmp/events.ndjson")
echo "events: $total ($(du -m "$tmp/events.ndjson" | cut -f1) MB of NDJSON); bodies and transactions of $BODY_EVENTS, $CONNS connections"
split -l "$BODY_EVENTS" -d -a 6 "$tmp/events.ndjson" "$tmp/chunk."

# 1. ledgerd over HTTP, durable answers.
"$BUILD/ledgerd" --data-dir "$tmp/ledger" --http 127.0.0.1:0 --no-access-log >"$tmp/out" 2>"$tmp/err" &
lpid=$!
for _ in $(seq 1 600); do grep -q '^listening' "$tmp/out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$tmp/out")
post=(curl -sf -o /dev/null -X POST -H 'Content-Type: application/x-ndjson')
start=$(now)
# Structure events open the stream: the first body goes alone.
"${post[@]}" --data-binary @"$tmp/chunk.000000" "$url/v1/events"
ls "$tmp"/chunk.* | tail -n +2 | xargs -P "$CONNS" -I{} "${post[@]}" --data-binary @{} "$url/v1/events"
http_s=$(since "$start")
# CPU seconds (user + system) of the process: what an event costs, whatever the wall clock.
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
http_cpu=$(cpu_of $lpid)
accepted=$(curl -sf "$url/v1/ledger/verify" | jq .events)
kill $lpid; wait $lpid 2>/dev/null || true; lpid=""

# 2. The rebuild of the same ledger.
start=$(now)
/usr/bin/time -f "%U %S" -o "$tmp/replay.time" "$BUILD/ledgerctl" replay "$tmp/ledger" >/dev/null
replay_s=$(since "$start")
replay_cpu=$(awk '{printf "%.2f", $1 + $2}' "$tmp/replay.time")

# The floor: what an event costs each path in CPU, against what this machine's
# cores give; and RocksDB alone writing the ledger's three keys an event in
# synced batches of 1000 (ledger_bench: its own ~400-byte usage events).
floor() {
  awk -v n="$total" -v h="$http_cpu" -v a="$accepted" -v r="$replay_cpu" -v c="$(nproc)" 'BEGIN {
    printf "CPU an event: live %.1f us (ceiling on %d cores %.0f events/s), rebuild %.1f us\n",
      1e6 * h / n, c, c * n / h, 1e6 * r / a }'
  if [ -x "$BUILD/tests/ledger_bench" ]; then
    "$BUILD/tests/ledger_bench" "$(( total < 300000 ? total : 300000 ))" "$tmp/floor" |
      awk '$1 == 1 && $2 == 1000 && $3 == "on" {
        printf "storage floor, 1 thread, synced batches of 1000: RocksDB 3 keys an event %s events/s; ledger append, no read models %s events/s\n", $9, $5 }'
    rm -rf "$tmp/floor"
  fi
}

if [ -n "${NO_PG:-}" ]; then
  [ -n "${KEEP:-}" ] && echo "kept: $tmp"
  awk -v n="$total" -v h="$http_s" -v a="$accepted" -v r="$replay_s" 'BEGIN {
    printf "live %d events %.2f s = %.0f events/s; replay %.2f s = %.0f events/s; live = %.0f %% of the rebuild\n",
      n, h, n / h, r, a / r, 100 * (n / h) / (a / r) }'
  floor
  exit 0
fi

# 3. PostgreSQL: the same events as rows. The SQL is written before the clock starts.
python3 - "$tmp" "$BODY_EVENTS" <<'PY'
import glob, json, sys
tmp, per = sys.argv[1], int(sys.argv[2])
def q(s):
    return "NULL" if s is None else "'" + s.replace("'", "''") + "'"
for path in sorted(glob.glob(tmp + "/chunk.*")):
    rows = []
    for line in open(path):
        e = json.loads(line)
        kind = next(k for k in e if k not in ("event_id", "org_id", "occurred_at", "source"))
        p = e[kind]
        amount = p.get("amount") if isinstance(p, dict) else None
        rows.append("(%s,%s,%s,%s,%s,%s,%s)" % (q(e["org_id"]), q(e["event_id"]), q(e["occurred_at"]),
                    q(kind), q(p.get("usage_start")), amount if amount else "NULL", q(line.strip())))
    with open(path + ".sql", "w") as f:
        f.write("BEGIN;\nINSERT INTO events VALUES\n" + ",\n".join(rows) +
                "\nON CONFLICT DO NOTHING;\nCOMMIT;\n")
PY
mkdir "$tmp/pg" "$tmp/sock" && chown postgres: "$tmp/pg" "$tmp/sock" && chmod 700 "$tmp/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$tmp/pg" -A trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$tmp/pg" -l "$tmp/pg/server.log" -w \
  -o "-k $tmp/sock -c listen_addresses= -c synchronous_commit=on -c fsync=on" start >/dev/null
psql=(runuser -u postgres -- psql -h "$tmp/sock" -d postgres -q -v ON_ERROR_STOP=1)
"${psql[@]}" -c "CREATE TABLE events (org_id text, event_id text, occurred_at timestamptz,
  kind text, usage_start timestamptz, amount numeric, body jsonb, PRIMARY KEY (org_id, event_id));
  CREATE INDEX events_org_usage ON events (org_id, usage_start);"
chmod 644 "$tmp"/chunk.*.sql
start=$(now)
"${psql[@]}" -f "$tmp/chunk.000000.sql"
ls "$tmp"/chunk.*.sql | tail -n +2 | xargs -P "$CONNS" -I{} "${psql[@]}" -f {}
pg_s=$(since "$start")
rows=$("${psql[@]}" -At -c "SELECT count(*) FROM events")

http_rate=$(rate "$total" "$http_s")
replay_rate=$(rate "$accepted" "$replay_s")
pg_rate=$(rate "$rows" "$pg_s")
printf "%-44s %9s events %8s s %10s events/s\n" \
  "ledgerd, HTTP NDJSON x$BODY_EVENTS, $CONNS conns" "$total" "$http_s" "$http_rate" \
  "ledgerctl replay (rebuild)" "$accepted" "$replay_s" "$replay_rate" \
  "PostgreSQL $(basename "$(dirname "$PGBIN")"), INSERT x$BODY_EVENTS, $CONNS conns" "$rows" "$pg_s" "$pg_rate"
awk -v h="$http_rate" -v r="$replay_rate" -v p="$pg_rate" \
  'BEGIN {printf "live ingest = %.0f %% of the rebuild, %.2f x PostgreSQL\n", 100 * h / r, h / p}'
floor
