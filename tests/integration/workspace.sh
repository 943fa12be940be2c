#!/usr/bin/env bash
# The routes behind the web workspace: its embedded files (page policy, ETag), who the
# token is (/v1/me), the inbox (/v1/queues) for each role, the live inbox (/v1/events,
# server-sent events), working a queue (/v1/queues/{q}/next: 204 when empty, one's own claim
# first), a task with its context (alternatives, choices, inputs, related decisions), feedback
# on an item's decisions, and the audit trail's filters.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DB=$WORK/tandem.db
J='Content-Type: application/json'

cat >"$WORK/ws.yaml" <<EOF
process: ws
owner: ops@example.com
kpis: [items_per_hour]
related_by: customer
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
      labels: [billing, tech, sales]
    guardrails:
      queue: q1
      sla_minutes: 0.01
      escalation_queue: q1-leads
EOF
{
    echo "text,team"
    for i in $(seq 1 30); do
        echo "my invoice $i is wrong,billing"
        echo "the app crashes on screen $i,tech"
        echo "I want to buy $i more seats,sales"
    done
} >"$WORK/train.csv"
start_server "$DB" --process "$WORK/ws.yaml"
"$TANDEM" train --process ws "$WORK/train.csv" --url "$BASE" >/dev/null || fail "train failed"
RITA=$(make_token rita reviewer q1)
OLGA=$(make_token olga owner other-process)
VIC=$(make_token vic viewer)
SAM=$(make_token sam service ws)

# ---- the embedded files --------------------------------------------------------------------
curl -s -D "$WORK/h" -o "$WORK/body" "$BASE/" || fail "GET / failed"
grep -qi '^content-type: text/html' "$WORK/h" || fail "GET / is not HTML: $(cat "$WORK/h")"
grep -qi "^content-security-policy: default-src 'none'; script-src 'self'" "$WORK/h" ||
    fail "GET / lacks the page's policy: $(cat "$WORK/h")"
grep -q '<html' "$WORK/body" || fail "GET / is not the page: $(head -c 200 "$WORK/body")"
ETAG=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *\(.*\)\r$/\1/p' "$WORK/h")
[ -n "$ETAG" ] || fail "GET / has no ETag"
S=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $ETAG" "$BASE/")
[ "$S" = 304 ] || fail "GET / with its ETag: status $S, expected 304"
AS=none expect_http 404 GET /ui/nothing.js
[ "$(jqb .error.code)" = not_found ] || fail "a missing file's answer is not a JSON error"
curl -s -D "$WORK/h" -o /dev/null -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/v1/processes"
grep -qi "^content-security-policy: default-src 'none'; frame-ancestors 'none'" "$WORK/h" ||
    fail "an API answer lost its strict policy: $(cat "$WORK/h")"
echo "ok: the workspace is served from the binary with its own policy and an ETag (304)"

# ---- who am I ------------------------------------------------------------------------------
AS=$RITA expect_http 200 GET /v1/me
[ "$(jqb '[.name, .role, (.scope | join(","))] | join(" ")')" = "rita reviewer q1" ] ||
    fail "/v1/me for rita: $(cat "$WORK/body")"
AS=$SAM expect_http 200 GET /v1/me
[ "$(jqb .role)" = service ] || fail "/v1/me for sam: $(cat "$WORK/body")"
echo "ok: /v1/me names the token's holder, role and scope"

# ---- working a queue -----------------------------------------------------------------------
AS=$RITA expect_http 204 POST /v1/queues/q1/next
[ ! -s "$WORK/body" ] || fail "204 with a body: $(cat "$WORK/body")"
for i in 1 2 3; do
    expect_http 200 POST /v1/processes/ws/items -H "$J" -d "{\"text\": \"invoice $i is wrong\", \"customer\": \"c-1\"}"
done
expect_http 200 POST /v1/processes/ws/items -H "$J" -d '{"text": "the app crashes", "customer": "c-2"}'
AS=$RITA expect_http 200 POST /v1/queues/q1/next -H "$J" -d '{"lease_seconds": 120}'
T1=$(jqb .id)
[ "$(jqb '[.state, .claimed_by] | join(" ")')" = "claimed rita" ] || fail "next: $(cat "$WORK/body")"
[ "$(jqb '.choices | join(",")')" = "billing,tech,sales" ] || fail "choices: $(jqb .choices)"
[ "$(jqb '.inputs[0].name')" = text ] || fail "inputs: $(jqb .inputs)"
[ "$(jqb '.alternatives | length')" = 2 ] || fail "alternatives: $(jqb .alternatives)"
jqb '.alternatives[] | .confidence' | while read -r c; do expect_number "alternative's confidence" "$c" "<=" "$(jqb .proposal.confidence)"; done
[ "$(jqb '.alternatives | map(.value) | index("'"$(jqb .proposal.value)"'")')" = null ] ||
    fail "the proposal is among its alternatives"
[ "$(jqb .related.key)" = customer ] || fail "related: $(jqb .related)"
AS=$RITA expect_http 200 POST /v1/queues/q1/next
[ "$(jqb .id)" = "$T1" ] || fail "next gave $(jqb .id), not rita's own claimed task $T1"
AS=$ADMIN_TOKEN expect_http 200 POST /v1/queues/q1/next
[ "$(jqb .id)" != "$T1" ] || fail "the admin was given rita's task"
echo "ok: next claims the first open task, gives one's own claim back, never another's"

AS=$RITA expect_http 200 POST "/v1/tasks/$T1/complete" -H "$J" -d '{"action": "correct", "value": "tech"}'
# Another task of customer c-1 now shows that decision as related.
AS=$RITA expect_http 200 POST /v1/queues/q1/next
T2=$(jqb .id)
CUST=$(jqb .item.customer)
if [ "$CUST" = c-1 ]; then
    [ "$(jqb '[.related.decisions[] | .value] | index("tech")')" != null ] ||
        fail "task $T2 (customer c-1) does not show the decision on its related item: $(jqb .related)"
    echo "ok: a task shows the decisions on items of the same customer"
fi
AS=$RITA expect_http 200 GET "/v1/tasks/$T2"
[ "$(jqb .claimed_by)" = rita ] || fail "GET task: $(cat "$WORK/body")"
AS=$RITA expect_http 404 GET /v1/tasks/tsk_nothing
AS=$RITA expect_http 403 POST /v1/queues/q1-leads/next
AS=$OLGA expect_http 403 POST /v1/queues/q1/next
grep -q "no process in its scope" "$WORK/body" || fail "owner 403 does not say why: $(cat "$WORK/body")"
AS=$RITA expect_http 422 POST /v1/queues/q1/next -H "$J" -d '{"lease_seconds": 0}'
echo "ok: a task with its context; next is held to roles and scopes"

# ---- the inbox -----------------------------------------------------------------------------
sleep 1 # every task is past its due time (sla_minutes 0.01 is 0.6 s)
AS=$RITA expect_http 200 GET /v1/queues
[ "$(jqb '[.queues[].queue] | join(",")')" = q1 ] || fail "rita's inbox: $(cat "$WORK/body")"
[ "$(jqb '.queues[0] | [.open, .claimed, .confirming, .sla_breached] | map(tostring) | join(" ")')" = "1 2 0 3" ] ||
    fail "q1 counts (open claimed confirming breached), expected 1 2 0 3: $(cat "$WORK/body")"
expect_number "oldest open task's age" "$(jqb '.queues[0].oldest_open_seconds')" ">=" 1
AS=$VIC expect_http 200 GET /v1/queues
[ "$(jqb '[.queues[].queue] | join(",")')" = q1,q1-leads ] || fail "vic's inbox: $(cat "$WORK/body")"
AS=$OLGA expect_http 200 GET /v1/queues
[ "$(jqb '.queues | length')" = 0 ] || fail "olga's inbox (no process of hers): $(cat "$WORK/body")"
AS=$SAM expect_http 403 GET /v1/queues
echo "ok: the inbox counts open, claimed and breached tasks, for the queues each role may see"

# ---- the live inbox ------------------------------------------------------------------------
AS=$SAM expect_http 403 GET /v1/events
AS=none expect_http 401 GET /v1/events
curl -s -N -m 4 -H "Authorization: Bearer $RITA" -o "$WORK/events" -D "$WORK/events.h" "$BASE/v1/events" &
CURL=$!
sleep 1.5
expect_http 200 POST /v1/processes/ws/items -H "$J" -d '{"text": "one more invoice"}'
wait "$CURL" || true
grep -qi '^content-type: text/event-stream' "$WORK/events.h" || fail "events: $(cat "$WORK/events.h")"
# One event at connect, one when the item arrives; one more when it passes its due time
# (sla_breached changes), as it may within the 4 s.
OPEN=$(sed -n 's/^data: //p' "$WORK/events" | jq -r '.queues[0].open' | uniq | tr '\n' ' ')
[ "$OPEN" = "1 2 " ] || fail "open counts in the stream: $OPEN, expected 1 then 2: $(cat "$WORK/events")"
N=$(grep -c '^event: queues$' "$WORK/events")
[ "$N" -le 3 ] || fail "$N events in 4 s: the stream repeats itself: $(cat "$WORK/events")"
echo "ok: the live inbox sends the queues at once and again when a count changes (open: $OPEN)"

# ---- feedback on an item's decisions --------------------------------------------------------
AS=$ADMIN_TOKEN expect_http 200 GET "/v1/tasks/$T1"
ITEM=$(jqb .item_id)
expect_http 200 GET "/v1/items/$ITEM"
DEC=$(jqb '.decisions[0].id')
[ "$(jqb '.decisions[0].choices | length')" = 3 ] || fail "decision choices: $(cat "$WORK/body")"
[ "$(jqb '.decisions[0].feedback | length')" = 0 ] || fail "feedback before any: $(cat "$WORK/body")"
AS=$RITA expect_http 200 POST "/v1/decisions/$DEC/feedback" -H "$J" -d '{"verdict": "inaccurate", "correction": "sales", "comment": "a seat order"}'
expect_http 200 GET "/v1/items/$ITEM"
[ "$(jqb '.decisions[0].feedback[0] | [.verdict, .by, .correction, .comment] | join("/")')" = "inaccurate/rita/sales/a seat order" ] ||
    fail "feedback on the item page: $(jqb '.decisions[0].feedback')"
echo "ok: an item's decisions carry their feedback and the values a correction may take"

# ---- the audit trail's filters ------------------------------------------------------------
expect_http 200 GET '/v1/audit?event=task.claimed&limit=1000'
[ "$(jqb '[.entries[].event] | unique | join(",")')" = task.claimed ] || fail "event filter: $(cat "$WORK/body")"
[ "$(jqb .end)" = true ] || fail "event filter: not at the end"
expect_http 200 GET '/v1/audit?actor=rita&limit=1000'
[ "$(jqb '[.entries[].actor] | unique | join(",")')" = rita ] || fail "actor filter: $(cat "$WORK/body")"
N_RITA=$(jqb '.entries | length')
expect_http 200 GET '/v1/audit?actor=rita&limit=2'
[ "$(jqb '.entries | length')" = 2 ] && [ "$(jqb .end)" = false ] || fail "a page of 2: $(cat "$WORK/body")"
expect_http 200 GET "/v1/audit?actor=rita&limit=1000&after=$(jqb .next)"
[ "$(jqb '.entries | length')" = $((N_RITA - 2)) ] || fail "the next page has $(jqb '.entries | length') entries, expected $((N_RITA - 2))"
expect_http 200 GET "/v1/audit?subject=$T1"
[ "$(jqb '[.entries[].subject] | unique | join(",")')" = "$T1" ] || fail "subject filter: $(cat "$WORK/body")"
expect_http 200 GET '/v1/audit?subject=ws%2F*&limit=1000'
[ "$(jqb '[.entries[].subject | startswith("ws/")] | all')" = true ] && [ "$(jqb '.entries | length')" -ge 1 ] ||
    fail "subject prefix filter: $(cat "$WORK/body")"
expect_http 200 GET '/v1/audit?event=&actor=&limit=5'
[ "$(jqb '.entries | length')" = 5 ] || fail "empty filters should filter nothing"
expect_http 400 GET "/v1/audit?actor=$(printf 'a%.0s' $(seq 1 201))"
[ "$(jqb .error.field)" = actor ] || fail "long filter: $(cat "$WORK/body")"
echo "ok: the audit trail filters by event, actor and subject (whole or prefix), page by page"
stop_server
