#!/usr/bin/env bash
# The write-ahead log stays bounded under a steady stream of single items. A checkpoint that
# runs beside a busy writer never catches up with it, and SQLite starts the WAL anew only
# when a transaction begins with every frame copied; before the writer finished each
# checkpoint itself, this stream grew the WAL to 23 MB in 8 s (and on without end). pace
# sends 2,500 items a second for 8 s; the WAL must stay under 16 MiB, twice the 8 MiB
# (2,000 pages) at which a checkpoint starts.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
PACE=${TDM_PACE:?set TDM_PACE to the pace load generator}
DB=$WORK/tandem.db

cat >"$WORK/process.yaml" <<'YAML'
process: intake
owner: ops@example.com
kpis: [items_per_hour]
baseline:
  minutes_per_item: 2
  error_rate: 0.05
steps:
  - id: sort
    allocation: hybrid
    owner: ops@example.com
    inputs: [text]
    output:
      field: team
    guardrails:
      queue: sorting
YAML
echo '{"text": "my card payment was declined twice today"}' >"$WORK/item.json"
start_server "$DB" --process "$WORK/process.yaml" --rate-limit 0

"$PACE" --url "$BASE/v1/processes/intake/items" --rate 2500 --duration 8 --connections 16 \
    --header "Authorization: Bearer $ADMIN_TOKEN" \
    --body "$WORK/item.json" >"$WORK/pace.out" 2>"$WORK/pace.err" &
PACE_PID=$!
MAX=0
# Sample the WAL's size every 50 ms while pace runs (bounded: pace stops itself after 8 s
# plus at most 10 s of draining).
for _ in $(seq 1 400); do
    kill -0 "$PACE_PID" 2>/dev/null || break
    SIZE=$(stat -c %s "$DB-wal" 2>/dev/null || echo 0)
    [ "$SIZE" -gt "$MAX" ] && MAX=$SIZE
    sleep 0.05
done
wait "$PACE_PID" || fail "pace failed: $(cat "$WORK/pace.err")"
cat "$WORK/pace.out"
OK=$(grep -o ' ok=[0-9]*' "$WORK/pace.out" | cut -d= -f2)
STORED=$(sqlite3 "$DB" "SELECT count(*) FROM items")
[ "$STORED" -eq "$OK" ] || fail "pace saw $OK items accepted, the database holds $STORED"
# Enough load to matter: a sanitized build on a busy machine may fall behind the rate.
expect_number "items accepted" "$OK" ">=" 10000
expect_number "largest WAL (bytes)" "$MAX" "<=" $((16 << 20))
stop_server
