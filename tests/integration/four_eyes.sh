#!/usr/bin/env bash
# Four eyes: a step asks a second, different person to confirm a person's answer when its
# rule holds (here: amount > 50000). The first answer waits on the task; the same person
# confirming it is refused (403); a second person confirms it (the decision is the first
# person's, confirmed by the second) or declines it (the task is open again).
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DB=$WORK/tandem.db

cat >"$WORK/process.yaml" <<'EOF'
process: refunds
owner: ops@example.com
kpis: [refund_hours]
baseline:
  minutes_per_item: 6
  error_rate: 0.04
steps:
  - id: decide
    allocation: hybrid
    owner: ops@example.com
    inputs: [text]
    output:
      field: outcome
      labels: [refund, refuse]
    guardrails:
      queue: refunds
      four_eyes: 'amount > 50000'
EOF
start_server "$DB" --process "$WORK/process.yaml"
ANA=$(make_token ana reviewer refunds)
BEN=$(make_token ben reviewer refunds)
J='Content-Type: application/json'

# submit ID AMOUNT: sets TASK.
submit() {
    expect_http 200 POST /v1/processes/refunds/items -H "$J" \
        -d "{\"id\": \"$1\", \"text\": \"refund please\", \"amount\": $2}"
    TASK=$(jqb .task_id)
}

# A large refund: ana's answer waits for a second person.
submit big-1 60000
AS=$ANA expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" \
    -d '{"action": "correct", "value": "refund", "comment": "receipt checked"}'
[ "$(jqb .awaiting_confirmation)" = true ] && [ "$(jqb .decision)" = null ] &&
    [ "$(jqb .confirmation_because)" = four_eyes ] ||
    fail "the first answer decided: $(cat "$WORK/body")"
[ "$(jqb .task.state)" = confirming ] && [ "$(jqb .task.answer.by)" = ana ] &&
    [ "$(jqb .task.answer.value)" = refund ] && [ "$(jqb .task.answer.because)" = four_eyes ] ||
    fail "task after the first answer: $(cat "$WORK/body")"
expect_http 200 GET /v1/items/big-1
[ "$(jqb .status)" != decided ] || fail "the item was decided by one person"
expect_http 200 GET '/v1/queues/refunds/tasks?state=confirming'
[ "$(jqb '.tasks | length')" = 1 ] || fail "confirming list: $(cat "$WORK/body")"
echo "ok: ana's answer on a refund over 50,000 waits for a second person"

# Working the queue: ben is given ana's answer to confirm (no claim), ana is given nothing.
AS=$BEN expect_http 200 POST /v1/queues/refunds/next
[ "$(jqb '[.id, .state, .answer.by] | join(" ")')" = "$TASK confirming ana" ] ||
    fail "next for ben: $(cat "$WORK/body")"
AS=$ANA expect_http 204 POST /v1/queues/refunds/next
echo "ok: next gives the waiting answer to a second person, not to the one who gave it"

before=$(db_digest "$DB")
AS=$ANA expect_http 403 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "confirm"}'
[ "$(jqb .error.code)" = forbidden ] || fail "self-confirmation: $(cat "$WORK/body")"
AS=$BEN expect_http 409 POST "/v1/tasks/$TASK/claim" -H "$J" -d '{}'
AS=$BEN expect_http 409 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "accept"}'
[ "$(db_digest "$DB")" = "$before" ] || fail "a refused request changed the store"
echo "ok: ana confirming her own answer is 403; claiming or answering it again is 409"

AS=$BEN expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "confirm"}'
[ "$(jqb .decision.value)" = refund ] && [ "$(jqb .decision.by)" = person:ana ] &&
    [ "$(jqb .decision.confirmed_by)" = ben ] || fail "confirmation: $(cat "$WORK/body")"
[ "$(jqb .task.state)" = done ] || fail "task after confirmation: $(cat "$WORK/body")"
AS=$ANA expect_http 409 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "confirm"}'
expect_http 200 GET /v1/items/big-1
[ "$(jqb .status)" = decided ] || fail "item after confirmation: $(cat "$WORK/body")"
[ "$(sqlite3 "$DB" "SELECT confirmed_by FROM decisions WHERE item_id = 'big-1'")" = ben ] ||
    fail "the stored decision does not name ben"
[ "$(sqlite3 "$DB" "SELECT group_concat(e, ' ') FROM (SELECT event || ':' || actor AS e FROM audit WHERE subject = '$TASK' ORDER BY seq)")" = \
    "task.created:admin task.answered:ana task.confirmed:ben" ] || fail "audit of the task: $(sqlite3 "$DB" "SELECT event, actor FROM audit WHERE subject = '$TASK'")"
echo "ok: ben confirmed: decided by ana, confirmed by ben, both on the audit trail"

# Declined: the task is open again, for anyone; then the roles swap.
submit big-2 75000
AS=$ANA expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "correct", "value": "refuse"}'
AS=$BEN expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "decline", "comment": "refund is due"}'
[ "$(jqb .task.state)" = open ] || fail "task after decline: $(cat "$WORK/body")"
AS=$BEN expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "correct", "value": "refund"}'
[ "$(jqb .awaiting_confirmation)" = true ] || fail "ben's answer: $(cat "$WORK/body")"
AS=$ANA expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "confirm"}'
[ "$(jqb .decision.by)" = person:ben ] && [ "$(jqb .decision.confirmed_by)" = ana ] &&
    [ "$(jqb .decision.value)" = refund ] || fail "after decline and a new answer: $(cat "$WORK/body")"
echo "ok: declined, answered again by ben, confirmed by ana"

# A small refund: the rule does not hold, one person decides.
submit small-1 100
AS=$ANA expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "correct", "value": "refund"}'
[ "$(jqb .decision.by)" = person:ana ] && [ "$(jqb .awaiting_confirmation)" = null ] ||
    fail "a small refund waited: $(cat "$WORK/body")"
AS=$ANA expect_http 409 POST "/v1/tasks/$TASK/complete" -H "$J" -d '{"action": "confirm"}'
echo "ok: under the rule's amount one person decides; there is nothing to confirm"
expect_http 200 GET /v1/audit/verify
[ "$(jqb .ok)" = true ] || fail "audit chain: $(cat "$WORK/body")"
stop_server
