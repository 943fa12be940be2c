#!/usr/bin/env bash
# Killing the server with SIGKILL during intake loses no acknowledged item: four clients post
# items (single ones and small batches) as fast as they can and log every id the server
# acknowledged with 200; the server is killed mid-stream; after a restart every logged id is
# there, and the audit chain still verifies.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DB=$WORK/tandem.db

cat >"$WORK/process.yaml" <<'EOF'
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
EOF
start_server "$DB" --threads 4 --process "$WORK/process.yaml"

# client N: posts items c<N>-<i> until told to stop (at most 5000), one in three as a batch of
# three; appends each acknowledged id to acked.<N>.
client() {
    local n=$1 i=0
    while [ $i -lt 5000 ] && [ ! -e "$WORK/stop" ]; do
        i=$((i + 1))
        if [ $((i % 3)) -eq 0 ]; then
            body=$(printf '{"id": "c%d-%d-a", "text": "batch"}\n{"id": "c%d-%d-b", "text": "batch"}\n{"id": "c%d-%d-c", "text": "batch"}\n' \
                "$n" "$i" "$n" "$i" "$n" "$i")
            code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/x-ndjson' \
                --data-binary "$body" "$BASE/v1/processes/intake/items" || true)
            [ "$code" = 200 ] && printf 'c%d-%d-a\nc%d-%d-b\nc%d-%d-c\n' "$n" "$i" "$n" "$i" "$n" "$i" >>"$WORK/acked.$n"
        else
            code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
                -d "{\"id\": \"c$n-$i\", \"text\": \"single $i\"}" "$BASE/v1/processes/intake/items" || true)
            [ "$code" = 200 ] && echo "c$n-$i" >>"$WORK/acked.$n"
        fi
        [ "$code" = 000 ] && break # the server is gone
    done
    return 0
}

for n in 1 2 3 4; do
    : >"$WORK/acked.$n"
    client "$n" &
done
# Let them run for a while, then kill the server without warning.
for _ in $(seq 1 30); do
    [ "$(cat "$WORK"/acked.* | wc -l)" -ge 300 ] && break
    sleep 0.1
done
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
touch "$WORK/stop"
wait
cat "$WORK"/acked.* | sort >"$WORK/acked"
ACKED=$(wc -l <"$WORK/acked")
[ "$ACKED" -gt 0 ] || fail "no item was acknowledged before the kill"
echo "ok: killed the server after $ACKED acknowledged items"

# Restart on the same database: every acknowledged item is there.
start_server "$DB"
sqlite3 "$DB" "SELECT id FROM items" | sort >"$WORK/stored"
MISSING=$(comm -23 "$WORK/acked" "$WORK/stored" | wc -l)
[ "$MISSING" -eq 0 ] || fail "$MISSING acknowledged items are missing, e.g. $(comm -23 "$WORK/acked" "$WORK/stored" | head -3 | tr '\n' ' ')"
echo "ok: all $ACKED acknowledged items survived ($(wc -l <"$WORK/stored") stored in all)"
expect_http 200 GET "/v1/items/$(head -n 1 "$WORK/acked")"
expect_http 200 GET /v1/audit/verify
[ "$(jqb .ok)" = true ] || fail "audit chain broken after the kill: $(cat "$WORK/body")"
echo "ok: the audit chain ($(jqb .entries) entries) verifies after the kill"
# And the server takes new work.
expect_http 200 POST /v1/processes/intake/items -H 'Content-Type: application/json' -d '{"text": "after"}'
stop_server TERM
