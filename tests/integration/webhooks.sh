#!/usr/bin/env bash
# Signed webhooks, checked by a receiver written apart from tandem (webhook_receiver.py: it
# verifies every signature with Python's hmac, hashlib and base64, as Standard Webhooks
# says): task.created and decision.made arrive signed and match what the API answered; a
# receiver holding a tampered secret rejects every delivery; a failing receiver gets
# retries with growing delays and the same webhook-id, then the delivery; a receiver that
# is down leaves the delivery dead, and replay delivers it; sla.breached once per task (on a
# subscription made on the database beside the running server); automation.paused from the
# kill switch; and kill -9 of the server with deliveries pending, then a restart, delivers
# every recorded delivery (duplicates only with the same webhook-id and body).
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DB=$WORK/tandem.db
RECEIVER=$(dirname "$0")/webhook_receiver.py
J='Content-Type: application/json'

python3 "$RECEIVER" --selftest || fail "the receiver's verifier is wrong"

# ---- receivers ------------------------------------------------------------------------------

RECEIVER_PIDS=()
trap 'for p in "${RECEIVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; stop_server KILL; rm -rf "$WORK"' EXIT

# start_receiver NAME [--port PORT]: starts a receiver logging to $WORK/NAME.log; sets
# RPORT to its port.
start_receiver() {
    local name=$1
    shift
    rm -f "$WORK/$name.port"
    python3 "$RECEIVER" --port-file "$WORK/$name.port" --log "$WORK/$name.log" "$@" &
    RECEIVER_PIDS+=($!)
    for _ in $(seq 1 100); do
        [ -s "$WORK/$name.port" ] && break
        sleep 0.1
    done
    [ -s "$WORK/$name.port" ] || fail "receiver $name did not start within 10 s"
    RPORT=$(cat "$WORK/$name.port")
    touch "$WORK/$name.log"
}
# secret PORT HOOK SECRET / failures PORT HOOK N: tells a receiver a hook's secret, or to
# answer its next N verified deliveries with 500.
secret() { curl -sf -m 5 -X PUT --data "$3" "http://127.0.0.1:$1/control/secret/$2" >/dev/null || fail "receiver: secret"; }
failures() { curl -sf -m 5 -X PUT "http://127.0.0.1:$1/control/fail/$2?n=$3" >/dev/null || fail "receiver: failures"; }

# wait_until WHAT SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_until() {
    local what=$1 secs=$2
    shift 2
    local n=$((secs * 10))
    for _ in $(seq 1 "$n"); do
        "$@" && return 0
        sleep 0.1
    done
    fail "$what: not within $secs s"
}
# log_count LOG FILTER: how many log lines match a jq filter.
log_count() { jq -s "map(select($2)) | length" "$WORK/$1.log"; }
at_least() { [ "$(log_count "$1" "$2")" -ge "$3" ]; }

# ---- the processes --------------------------------------------------------------------------

# p1: the AI sorts alone, except what a review rule sends to a person. fast: every task is
# due 0.6 s after it is queued.
cat >"$WORK/p1.yaml" <<'EOF'
process: p1
owner: ops@example.com
kpis: [items_per_hour]
baseline:
  minutes_per_item: 2
  error_rate: 0.05
steps:
  - id: sort
    allocation: ai
    owner: ops@example.com
    inputs: [text]
    output:
      field: team
      labels: [billing, tech]
    guardrails:
      max_error: 0.2
      confidence: 0.9
      audit_sample: 0
      review_when: ['text contains "please"']
      queue: q1
EOF
sed -e 's/^process: p1$/process: fast/' -e 's/^      queue: q1$/      queue: qf\n      sla_minutes: 0.01/' \
    -e '/review_when/d' -e 's/allocation: ai/allocation: hybrid/' "$WORK/p1.yaml" >"$WORK/fast.yaml"
{
    echo "text,team"
    for i in $(seq 1 100); do
        echo "my invoice $i is wrong,billing"
        echo "the app crashes on screen $i,tech"
    done
} >"$WORK/train.csv"

SERVE_OPTS=(--process "$WORK/p1.yaml" --process "$WORK/fast.yaml" --webhook-retry-base-ms 100
    --webhook-max-attempts 4)
start_server "$DB" "${SERVE_OPTS[@]}"
"$TANDEM" train --process p1 "$WORK/train.csv" --url "$BASE" >/dev/null || fail "training p1 failed"
start_receiver main
MAIN=$RPORT

# ---- subscribing: what is refused --------------------------------------------------------

expect_http 422 POST /v1/processes/p1/webhooks -H "$J" -d '{"url": "ftp://127.0.0.1/x", "events": ["task.created"]}'
[ "$(jqb .error.field)" = url ] && jqb .error.message | grep -q "http:// and https:// only" ||
    fail "an ftp URL: $(cat "$WORK/body")"
expect_http 422 POST /v1/processes/p1/webhooks -H "$J" -d '{"url": "file:///etc/passwd", "events": ["task.created"]}'
expect_http 422 POST /v1/processes/p1/webhooks -H "$J" -d '{"url": "not a url", "events": ["task.created"]}'
expect_http 422 POST /v1/processes/p1/webhooks -H "$J" -d '{"url": "https://u:pw@example.com/", "events": ["task.created"]}'
jqb .error.message | grep -q credentials || fail "credentials in the URL: $(cat "$WORK/body")"
expect_http 422 POST /v1/processes/p1/webhooks -H "$J" -d '{"url": "https://example.com/", "events": ["task.done"]}'
[ "$(jqb .error.field)" = events ] || fail "an unknown event: $(cat "$WORK/body")"
expect_http 422 POST /v1/processes/p1/webhooks -H "$J" -d '{"url": "https://example.com/", "events": []}'
expect_http 422 POST /v1/processes/p1/webhooks -H "$J" -d '{"url": "https://example.com/", "events": ["task.created", "task.created"]}'
expect_http 422 POST /v1/processes/p1/webhooks -H "$J" -d '{"url": "https://example.com/", "events": ["task.created"], "secret": "x"}'
[ "$(jqb .error.field)" = secret ] || fail "an unknown key: $(cat "$WORK/body")"
expect_http 400 POST /v1/processes/p1/webhooks -H "$J" -d '{"url": '
expect_http 404 POST /v1/processes/nope/webhooks -H "$J" -d '{"url": "https://example.com/", "events": ["task.created"]}'
expect_http 200 GET /v1/processes/p1/webhooks
[ "$(jqb '.webhooks | length')" = 0 ] || fail "a refused subscription was stored: $(cat "$WORK/body")"
echo "ok: non-http URLs, credentials in URLs, unknown or repeated events and unknown keys are refused (422)"

# ---- signed deliveries: task.created and decision.made ------------------------------------

# create HOOK PROCESS EVENTS [URL]: subscribes through the API; sets WH (its id) and SECRET.
create() {
    local url=${4:-http://127.0.0.1:$MAIN/hook/$1}
    expect_http 201 POST "/v1/processes/$2/webhooks" -H "$J" -d "{\"url\": \"$url\", \"events\": $3}"
    WH=$(jqb .id)
    SECRET=$(jqb .secret)
    [[ "$SECRET" =~ ^whsec_[A-Za-z0-9+/]{43}=$ ]] || fail "the secret is \"$SECRET\""
}
create a p1 '["task.created", "decision.made", "automation.paused"]'
A=$WH
secret "$MAIN" a "$SECRET"
# The same events to a receiver that holds the secret with one character changed.
create tampered p1 '["task.created", "decision.made"]'
T=$WH T_SECRET=$SECRET
if [ "${SECRET:6:1}" = A ]; then BAD=whsec_B${SECRET:7}; else BAD=whsec_A${SECRET:7}; fi
[ "$BAD" != "$SECRET" ] && [ ${#BAD} = ${#SECRET} ] || fail "the tampered secret: $BAD"
secret "$MAIN" tampered "$BAD"
expect_http 200 GET /v1/processes/p1/webhooks
[ "$(jqb '.webhooks | map(.id) | sort | join(" ")')" = "$(printf '%s\n' "$A" "$T" | sort | paste -sd' ')" ] ||
    fail "the list: $(cat "$WORK/body")"
grep -q whsec_ "$WORK/body" && fail "the list shows a secret"

# Two items the AI decides alone, one a review rule sends to a person, who then decides it.
for text in "my invoice 7 is wrong" "the app crashes on screen 3" "please look at invoice 9"; do
    expect_http 200 POST /v1/processes/p1/items -H "$J" -d "{\"text\": \"$text\"}"
    jqb . >>"$WORK/items.jsonl"
done
TASK=$(jq -r 'select(.status == "queued") | .task_id' "$WORK/items.jsonl")
[ -n "$TASK" ] || fail "no item was queued: $(cat "$WORK/items.jsonl")"
[ "$(jq -r 'select(.status == "decided") | .decision.id' "$WORK/items.jsonl" | wc -l)" = 2 ] ||
    fail "the AI did not decide two items alone: $(cat "$WORK/items.jsonl")"
expect_http 200 POST "/v1/tasks/$TASK/claim" -H "$J" -d '{}'
expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "correct", "value": "billing"}'
PERSON_DEC=$(jqb .decision.id)
wait_until "3 decision.made and 1 task.created delivered to a" 15 \
    at_least main '.hook == "a" and .status == 200' 4
sleep 0.3 # nothing more arrives
WANT_DECS=$( (jq -r 'select(.status == "decided") | .decision.id' "$WORK/items.jsonl"; echo "$PERSON_DEC") | sort | paste -sd' ')
GOT_DECS=$(jq -rs 'map(select(.hook == "a") | .body | fromjson | select(.type == "decision.made") | .data.decision_id) | sort | join(" ")' "$WORK/main.log")
[ "$GOT_DECS" = "$WANT_DECS" ] || fail "decision.made for $GOT_DECS, expected $WANT_DECS"
[ "$(jq -rs 'map(select(.hook == "a") | .body | fromjson | select(.type == "task.created") | .data.task_id) | join(" ")' "$WORK/main.log")" = "$TASK" ] ||
    fail "task.created: $(jq -c 'select(.hook == "a")' "$WORK/main.log")"
[ "$(log_count main '.hook == "a" and (.verified | not)')" = 0 ] || fail "a delivery to a did not verify"
# The bodies: Standard Webhooks' {"type", "timestamp", "data"}; data names the process, the
# actor and the audit entry that recorded the event.
jq -s -e 'map(select(.hook == "a") | .body | fromjson) | all(.data.process == "p1" and
    (.timestamp | test("^[0-9-]{10}T[0-9:.]{12}Z$")) and (.data.audit_seq | type) == "number")' \
    "$WORK/main.log" >/dev/null || fail "the bodies: $(jq -c 'select(.hook == "a") | .body' "$WORK/main.log")"
jq -s -e --arg d "$PERSON_DEC" --arg t "$TASK" 'map(select(.hook == "a") | .body | fromjson |
    select(.data.decision_id == $d))[0].data | .actor == "admin" and .value == "billing" and
    .task == $t and .autonomous == false' "$WORK/main.log" >/dev/null ||
    fail "the person's decision: $(cat "$WORK/main.log")"
SEQ=$(jq -rs --arg t "$TASK" 'map(.body | fromjson | select(.data.task_id == $t))[0].data.audit_seq' "$WORK/main.log")
expect_http 200 GET "/v1/audit?after=$((SEQ - 1))&limit=1"
[ "$(jqb '.entries[0] | "\(.event) \(.subject)"')" = "task.created $TASK" ] ||
    fail "audit_seq $SEQ is $(jqb '.entries[0]')"
# The webhook-id of each is the delivery's id, as the API lists it.
expect_http 200 GET "/v1/webhooks/$A/deliveries?state=delivered"
[ "$(jqb '.deliveries | map(.id) | sort | join(" ")')" = "$(jq -rs 'map(select(.hook == "a") | .id) | sort | join(" ")' "$WORK/main.log")" ] ||
    fail "delivered deliveries: $(cat "$WORK/body")"
[ "$(jqb '.deliveries | map(.attempts == 1 and .last_status == 200) | all')" = true ] || fail "$(cat "$WORK/body")"
echo "ok: task.created and decision.made (the AI's and a person's) arrived signed, as the API and the audit trail recorded them"

# The receiver with the tampered secret refused every one (401); each verifies with the
# real secret, so the signature, not the body, was what the receiver checked.
wait_until "the tampered receiver was tried" 10 at_least main '.hook == "tampered"' 4
[ "$(log_count main '.hook == "tampered" and .verified')" = 0 ] || fail "a delivery verified with a tampered secret"
[ "$(log_count main '.hook == "tampered" and .status == 401')" = "$(log_count main '.hook == "tampered"')" ] ||
    fail "the tampered receiver did not refuse every delivery"
jq -c 'select(.hook == "tampered")' "$WORK/main.log" | python3 "$RECEIVER" --check "$T_SECRET" | sort | uniq -c >"$WORK/check"
[ "$(awk '{print $2}' "$WORK/check")" = ok ] || fail "with the real secret: $(cat "$WORK/check")"
jq -c 'select(.hook == "tampered")' "$WORK/main.log" | python3 "$RECEIVER" --check "$BAD" | grep -qv bad &&
    fail "a delivery verifies with the tampered secret"
echo "ok: with a tampered secret, every signature fails the receiver's check (401)"

# ---- retries with growing delays, a dead delivery, replay ---------------------------------

# A receiver that is down: nothing listens on DOWN's port yet.
DOWN=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
create d p1 '["task.created"]' "http://127.0.0.1:$DOWN/hook/d"
D=$WH D_SECRET=$SECRET
failures "$MAIN" a 3
expect_http 200 POST /v1/processes/p1/items -H "$J" -d '{"text": "please fix invoice 12"}'
X=$(jqb .task_id)
xid() { jq -rs --arg t "$X" 'map(select(.hook == "a" and (.body | fromjson | .data.task_id == $t)))[0].id // empty' "$WORK/main.log"; }
wait_until "the retried delivery of $X arrived" 15 at_least main "(.hook == \"a\") and .status == 200 and (.body | fromjson | .data.task_id == \"$X\")" 1
XID=$(xid)
jq -s --arg i "$XID" 'map(select(.id == $i)) | sort_by(.at)' "$WORK/main.log" >"$WORK/x.json"
[ "$(jq -r 'map(.status) | join(",")' "$WORK/x.json")" = "500,500,500,200" ] ||
    fail "attempts of $XID: $(jq -c 'map(.status)' "$WORK/x.json")"
[ "$(jq -r 'map(.body) | unique | length' "$WORK/x.json")" = 1 ] || fail "the body changed between attempts"
jq -e '[.[1].at - .[0].at, .[2].at - .[1].at, .[3].at - .[2].at] as $g |
    $g[0] >= 0.09 and $g[1] >= 0.5 and $g[2] >= 2.2 and $g[0] < $g[1] and $g[1] < $g[2]' "$WORK/x.json" >/dev/null ||
    fail "the delays did not grow as 0.1, 0.6, 2.4 s: $(jq -c '[.[1].at - .[0].at, .[2].at - .[1].at, .[3].at - .[2].at]' "$WORK/x.json")"
echo "ok: a failing receiver got 3 retries after $(jq -c '[.[1].at - .[0].at, .[2].at - .[1].at, .[3].at - .[2].at] | map(. * 100 | round / 100)' "$WORK/x.json") s, one webhook-id, one body, then the delivery"

# The receiver that was down: 4 attempts refused, then dead, on the dead-letter list.
dead() { http GET "/v1/webhooks/$D/deliveries?state=dead" && [ "$(jqb '.deliveries | length')" = 1 ]; }
wait_until "the delivery to the receiver that is down is dead" 15 dead
DEAD_ID=$(jqb '.deliveries[0].id')
[ "$(jqb '.deliveries[0] | "\(.attempts) \(.next_at) \(.last_status)"')" = "4 null null" ] || fail "the dead delivery: $(cat "$WORK/body")"
jqb '.deliveries[0].last_error' | grep -qi connect || fail "last_error: $(jqb '.deliveries[0].last_error')"
expect_http 200 GET /v1/processes/p1/webhooks
[ "$(jq -r --arg d "$D" '.webhooks[] | select(.id == $d) | "\(.pending) \(.dead)"' "$WORK/body")" = "0 1" ] ||
    fail "the list: $(cat "$WORK/body")"
"$TANDEM" webhook deliveries "$D" --state dead --url "$BASE" >"$WORK/dead.txt" || fail "webhook deliveries"
grep -q "$DEAD_ID.*dead" "$WORK/dead.txt" || fail "tandem webhook deliveries: $(cat "$WORK/dead.txt")"
# The receiver comes up; a replay delivers the dead delivery, under its own webhook-id.
start_receiver down --port "$DOWN"
secret "$DOWN" d "$D_SECRET"
"$TANDEM" webhook replay "$D" --url "$BASE" >"$WORK/replay.json" || fail "webhook replay"
[ "$(jq -r '"\(.replayed) \(.deliveries[0])"' "$WORK/replay.json")" = "1 $DEAD_ID" ] || fail "replay: $(cat "$WORK/replay.json")"
wait_until "the replayed delivery arrived" 10 at_least down '.status == 200' 1
[ "$(jq -rs 'map(.id) | join(" ")' "$WORK/down.log")" = "$DEAD_ID" ] || fail "replayed: $(cat "$WORK/down.log")"
[ "$(jq -rs '.[0].body | fromjson | .data.task_id' "$WORK/down.log")" = "$X" ] || fail "the replayed body"
delivered() { http GET "/v1/webhooks/$D/deliveries?state=delivered" && [ "$(jqb '.deliveries[0].id')" = "$DEAD_ID" ]; }
wait_until "the replay is recorded" 5 delivered
[ "$(jqb '.deliveries[0].attempts')" = 1 ] || fail "attempts after replay: $(cat "$WORK/body")"
# One delivery again, by its id: same webhook-id, same body.
expect_http 200 POST "/v1/webhooks/$D/deliveries/$DEAD_ID/replay"
wait_until "the second replay arrived" 10 at_least down '.status == 200' 2
[ "$(jq -rs 'map(.id) | unique | join(" ")' "$WORK/down.log")" = "$DEAD_ID" ] || fail "a replay changed the webhook-id"
[ "$(jq -rs 'map(.body) | unique | length' "$WORK/down.log")" = 1 ] || fail "a replay changed the body"
expect_http 404 POST "/v1/webhooks/$D/deliveries/msg_nothing/replay"
expect_http 200 POST "/v1/webhooks/$D/replay"
[ "$(jqb .replayed)" = 0 ] || fail "replayed with nothing dead: $(cat "$WORK/body")"
echo "ok: a receiver that was down left the delivery dead after 4 attempts; replay delivered it, same webhook-id"

# The tampered receiver's deliveries are dead too; deleting the webhook removes it.
tampered_dead() { http GET "/v1/webhooks/$T/deliveries?state=pending" && [ "$(jqb '.deliveries | length')" = 0 ]; }
wait_until "the tampered receiver's deliveries ran out of attempts" 15 tampered_dead
"$TANDEM" webhook delete "$T" --url "$BASE" >/dev/null || fail "webhook delete"
expect_http 404 GET "/v1/webhooks/$T/deliveries"
expect_http 404 DELETE "/v1/webhooks/$T"
echo "ok: tandem webhook delete; the webhook is gone (404)"

# ---- automation.paused from the kill switch ---------------------------------------------

expect_http 200 POST /v1/processes/p1/steps/sort/pause -H "$J" -d '{"reason": "drift suspected"}'
expect_http 200 POST /v1/processes/p1/steps/sort/resume
wait_until "automation.paused arrived" 10 at_least main '.hook == "a" and .status == 200 and (.body | fromjson | .type == "automation.paused")' 1
jq -s -e 'map(select(.hook == "a") | .body | fromjson | select(.type == "automation.paused")) |
    length == 1 and .[0].data.step == "sort" and .[0].data.reason == "drift suspected" and
    .[0].data.by == "person" and .[0].data.actor == "admin"' "$WORK/main.log" >/dev/null ||
    fail "automation.paused: $(jq -c 'select(.body | contains("automation"))' "$WORK/main.log")"
echo "ok: the kill switch sent automation.paused (resuming sends nothing)"

# ---- sla.breached, subscribed on the database beside the running server -----------------

S_SECRET=$("$TANDEM" webhook create --process fast --endpoint "http://127.0.0.1:$MAIN/hook/s" \
    --events sla.breached --db "$DB" --actor ops 2>"$WORK/err") || fail "webhook create --db: $(cat "$WORK/err")"
secret "$MAIN" s "$S_SECRET"
: >"$WORK/fast.jsonl"
for i in 1 2; do
    expect_http 200 POST /v1/processes/fast/items -H "$J" -d "{\"text\": \"slow $i\"}"
    jqb .task_id >>"$WORK/fast.jsonl"
done
wait_until "two sla.breached" 10 at_least main '.hook == "s" and .status == 200' 2
sleep 1.5 # two more sweeps: nothing is announced twice
[ "$(jq -rs 'map(select(.hook == "s") | .body | fromjson | .data.task_id) | sort | join(" ")' "$WORK/main.log")" = "$(sort "$WORK/fast.jsonl" | paste -sd' ')" ] ||
    fail "sla.breached: $(jq -c 'select(.hook == "s") | .body' "$WORK/main.log")"
jq -s -e 'map(select(.hook == "s") | .body | fromjson) | all(.type == "sla.breached" and .data.queue == "qf"
    and .data.state == "open" and .data.actor == "tandem")' "$WORK/main.log" >/dev/null || fail "sla.breached bodies"
expect_http 200 GET '/v1/audit?event=task.sla_breached&limit=1000'
[ "$(jqb '[.entries[].subject] | sort | join(" ")')" = "$(sort "$WORK/fast.jsonl" | paste -sd' ')" ] ||
    fail "task.sla_breached on the audit trail: $(cat "$WORK/body")"
echo "ok: sla.breached once per task past its due time (audited as task.sla_breached)"

# ---- kill -9 with deliveries pending, then a restart -------------------------------------

# Every first attempt fails, and the next is 2 s later; the server dies as soon as the
# receiver has refused them all.
stop_server
SERVE_OPTS=(--webhook-retry-base-ms 2000 --webhook-max-attempts 4)
start_server "$DB" "${SERVE_OPTS[@]}"
N=20
failures "$MAIN" a $N
for i in $(seq 1 $N); do echo "{\"text\": \"please refund invoice $i\"}"; done >"$WORK/batch.jsonl"
expect_http 200 POST /v1/processes/p1/items -H 'Content-Type: application/x-ndjson' --data-binary @"$WORK/batch.jsonl"
jq -r .task_id "$WORK/body" | sort >"$WORK/batch.tasks"
[ "$(wc -l <"$WORK/batch.tasks")" = $N ] || fail "the batch: $(cat "$WORK/body")"
BEFORE=$(log_count main '.hook == "a" and .status == 200')
wait_until "$N refused first attempts" 10 at_least main '.hook == "a" and .status == 500' $((N + 3))
stop_server KILL
PENDING=$(sqlite3 "$DB" "SELECT count(*) FROM deliveries WHERE webhook_id = '$A' AND state = 'pending'")
expect_number "deliveries pending at the crash" "$PENDING" ">=" 1
sqlite3 "$DB" "SELECT id FROM deliveries WHERE webhook_id = '$A' AND json_extract(payload, '\$.data.task_id') IN ($(sed "s/.*/'&'/" "$WORK/batch.tasks" | paste -sd,))" |
    sort >"$WORK/recorded"
[ "$(wc -l <"$WORK/recorded")" = $N ] || fail "$(wc -l <"$WORK/recorded") deliveries recorded for $N tasks"
start_server "$DB" "${SERVE_OPTS[@]}"
all_delivered() { [ "$(jq -rs --slurpfile r <(jq -R . "$WORK/recorded") 'map(select(.hook == "a" and .status == 200) | .id) | unique | map(select(IN($r[]))) | length' "$WORK/main.log")" = $N ]; }
wait_until "every recorded delivery delivered after the restart" 15 all_delivered
# No event lost: every task of the batch arrived; duplicates only with the same id and body.
[ "$(jq -rs --slurpfile r <(jq -R . "$WORK/recorded") 'map(select(.hook == "a" and .status == 200 and (.id | IN($r[]))) | .body | fromjson | .data.task_id) | unique | sort | .[]' "$WORK/main.log")" = "$(cat "$WORK/batch.tasks")" ] ||
    fail "the tasks delivered after the restart are not the batch's"
[ "$(jq -rs 'map(select(.hook == "a")) | group_by(.id) | map(map(.body) | unique | length) | max' "$WORK/main.log")" = 1 ] ||
    fail "a webhook-id came with two different bodies"
[ "$(jq -rs 'map(select(.hook == "a" and .status == 200)) | group_by(.body) | map(map(.id) | unique | length) | max' "$WORK/main.log")" = 1 ] ||
    fail "one event came under two webhook-ids"
AFTER=$(log_count main '.hook == "a" and .status == 200')
echo "ok: kill -9 with $PENDING deliveries pending; after the restart all $N were delivered ($((AFTER - BEFORE - N)) duplicate(s), each with its webhook-id)"
stop_server
