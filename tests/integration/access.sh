#!/usr/bin/env bash
# Who may call what: every route of the API with every role (and with no token, and a
# revoked one), checked against the table in docs/api.md ("Who may call what"); then the
# scopes (an owner outside its processes, a reviewer outside its queues, a service outside
# its processes), and revocation taking effect on the next request.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DB=$WORK/tandem.db

# Two processes, each with its own queue.
for n in 1 2; do
    cat >"$WORK/p$n.yaml" <<EOF
process: p$n
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
      labels: [billing, tech]
      favourable: billing
    guardrails:
      queue: q$n
EOF
done
{
    echo "text,team"
    for i in $(seq 1 30); do
        echo "my invoice $i is wrong,billing"
        echo "the app crashes on screen $i,tech"
    done
} >"$WORK/train.csv"
start_server "$DB" --process "$WORK/p1.yaml" --process "$WORK/p2.yaml"

OWNER=$(make_token olga owner p1)
REVIEWER=$(make_token rita reviewer q1)
VIEWER=$(make_token vic viewer)
SERVICE=$(make_token sam service p1)
GONE=$(make_token gone viewer)
GONE_ID=$(AS=$ADMIN_TOKEN http GET /v1/tokens && jqb '.tokens[] | select(.name == "gone") | .id')
"$TANDEM" token revoke "$GONE_ID" --url "$BASE" >/dev/null || fail "token revoke failed"

J='Content-Type: application/json'
# new_item PROCESS: submits an item as admin; sets ITEM, TASK (its task) and DEC (a decision,
# made by completing the task as admin).
new_item() {
    AS=$ADMIN_TOKEN expect_http 200 POST "/v1/processes/$1/items" -H "$J" -d '{"text": "which team?"}'
    ITEM=$(jqb .id)
    TASK=$(jqb .task_id)
}
new_decision() {
    new_item "$1"
    AS=$ADMIN_TOKEN expect_http 200 POST "/v1/tasks/$TASK/claim" -H "$J" -d '{}'
    AS=$ADMIN_TOKEN expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" \
        -d '{"action": "correct", "value": "billing"}'
    DEC=$(jqb .decision.id)
}
# new_webhook: subscribes (as admin) a receiver that is not there to p1's task.created, after
# deleting the one it made before (a process has at most 20); sets WH. new_delivery: that,
# then an item, and DLV its delivery.
new_webhook() {
    [ -z "${WH:-}" ] || AS=$ADMIN_TOKEN http DELETE "/v1/webhooks/$WH"
    AS=$ADMIN_TOKEN expect_http 201 POST /v1/processes/p1/webhooks -H "$J" \
        -d '{"url": "http://127.0.0.1:9/hook", "events": ["task.created"]}'
    WH=$(jqb .id)
}
new_delivery() {
    new_webhook
    new_item p1
    AS=$ADMIN_TOKEN expect_http 200 GET "/v1/webhooks/$WH/deliveries"
    DLV=$(jqb '.deliveries[0].id')
}

# The table: route, then the status for admin, owner (of p1), reviewer (of q1), viewer,
# service (of p1), no token, a revoked token. Every row's resources are in p1 / q1.
ROLES=(admin owner reviewer viewer service none revoked)
token_of() {
    case $1 in
    admin) echo "$ADMIN_TOKEN" ;;
    owner) echo "$OWNER" ;;
    reviewer) echo "$REVIEWER" ;;
    viewer) echo "$VIEWER" ;;
    service) echo "$SERVICE" ;;
    none) echo none ;;
    revoked) echo "$GONE" ;;
    esac
}

# row EXPECTED... -- METHOD PATH [curl options...]: PATH may hold @ITEM@, @TASK@, @DEC@,
# @TOKEN@, each made fresh for every call (a task claimed by the caller for /complete), and
# @NEXT@, the queue q1 with a fresh task in it. GET /v1/events streams: see workspace.sh.
checked=0
row() {
    local expected=()
    while [ "$1" != -- ]; do
        expected+=("$1")
        shift
    done
    shift
    local method=$1 path=$2
    shift 2
    for i in "${!ROLES[@]}"; do
        local role=${ROLES[$i]} want=${expected[$i]} p=$path token
        token=$(token_of "$role")
        case $p in
        *@ITEM@*) new_item p1 && p=${p//@ITEM@/$ITEM} ;;
        *@TASK@/complete)
            new_item p1
            # the caller holds the task when it may claim; else the admin does
            if [ "$want" = 200 ]; then AS=$token http POST "/v1/tasks/$TASK/claim" -H "$J" -d '{}'; else AS=$ADMIN_TOKEN http POST "/v1/tasks/$TASK/claim" -H "$J" -d '{}'; fi
            p=${p//@TASK@/$TASK}
            ;;
        *@TASK@*) new_item p1 && p=${p//@TASK@/$TASK} ;;
        *@NEXT@*) new_item p1 && p=${p//@NEXT@/q1} ;;
        *@DEC@*) new_decision p1 && p=${p//@DEC@/$DEC} ;;
        *@DELIVERY@*) new_delivery && p=${p//@WEBHOOK@/$WH} && p=${p//@DELIVERY@/$DLV} ;;
        *@WEBHOOK@*) new_webhook && p=${p//@WEBHOOK@/$WH} ;;
        *@TOKEN@*)
            AS=$ADMIN_TOKEN http POST /v1/tokens -H "$J" -d "{\"name\": \"t$RANDOM$RANDOM\", \"role\": \"viewer\"}"
            p=${p//@TOKEN@/$(jqb .id)}
            ;;
        esac
        AS=$token http "$method" "$p" "$@"
        [ "$STATUS" = "$want" ] ||
            fail "$method $path as $role: status $STATUS, expected $want: $(head -c 300 "$WORK/body")"
        if [ "$want" = 401 ] || [ "$want" = 403 ]; then
            [ "$(jqb .error.code)" = "$([ "$want" = 401 ] && echo unauthorized || echo forbidden)" ] ||
                fail "$method $path as $role: error code $(jqb .error.code)"
        fi
        checked=$((checked + 1))
    done
    echo "ok: $method $path: ${expected[*]}"
}

#    admin owner reviewer viewer service none revoked
row 200 200 200 200 200 200 200 -- GET /healthz
row 200 200 200 200 200 200 200 -- GET /
row 200 200 200 200 200 200 200 -- GET /ui/index.html
row 200 200 200 200 200 401 401 -- GET /v1/me
row 200 200 200 200 403 401 401 -- GET /v1/queues
row 200 200 200 403 403 401 401 -- POST /v1/queues/@NEXT@/next
row 200 200 200 200 403 401 401 -- GET /v1/tasks/@TASK@
row 200 200 403 200 403 401 401 -- GET /v1/processes/p1/dashboard
row 200 200 200 200 403 401 401 -- GET /v1/processes
row 200 200 200 200 403 401 401 -- GET /v1/processes/p1
row 200 200 403 403 403 401 401 -- PUT /v1/processes/p1 -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/p1.yaml"
row 200 200 403 403 403 401 401 -- POST /v1/processes/p1/train -H 'Content-Type: text/csv' \
    --data-binary @"$WORK/train.csv"
row 200 200 403 403 200 401 401 -- POST /v1/processes/p1/items -H "$J" -d '{"text": "a bill"}'
row 200 200 200 200 200 401 401 -- GET /v1/items/@ITEM@
row 200 200 200 200 403 401 401 -- GET /v1/queues/q1/tasks
row 200 200 200 403 403 401 401 -- POST /v1/tasks/@TASK@/claim -H "$J" -d '{}'
row 200 200 200 403 403 401 401 -- POST /v1/tasks/@TASK@/complete -H "$J" -d '{"action": "accept"}'
row 200 200 403 200 403 401 401 -- GET /v1/decisions
row 200 200 200 403 403 401 401 -- POST /v1/decisions/@DEC@/feedback -H "$J" \
    -d '{"verdict": "accurate"}'
row 200 200 403 200 403 401 401 -- GET /v1/audit
row 200 200 403 200 403 401 401 -- GET /v1/audit/verify
row 200 200 403 403 403 401 401 -- POST /v1/processes/p1/steps/sort/pause
row 200 200 403 403 403 401 401 -- POST /v1/processes/p1/steps/sort/resume
row 200 200 200 200 403 401 401 -- GET /v1/registry
row 200 200 200 200 403 401 401 -- GET '/v1/processes/p1/fairness?group=text'
row 200 403 403 403 403 401 401 -- GET /v1/tokens
row 201 403 403 403 403 401 401 -- POST /v1/tokens -H "$J" -d '{"name": "x1", "role": "viewer"}'
row 200 403 403 403 403 401 401 -- DELETE /v1/tokens/@TOKEN@
row 200 200 403 403 403 401 401 -- GET /v1/processes/p1/webhooks
row 201 201 403 403 403 401 401 -- POST /v1/processes/p1/webhooks -H "$J" \
    -d '{"url": "http://127.0.0.1:9/x", "events": ["decision.made"]}'
row 200 200 403 403 403 401 401 -- GET /v1/webhooks/@WEBHOOK@/deliveries
row 200 200 403 403 403 401 401 -- POST /v1/webhooks/@WEBHOOK@/replay
row 200 200 403 403 403 401 401 -- POST /v1/webhooks/@WEBHOOK@/deliveries/@DELIVERY@/replay
row 200 200 403 403 403 401 401 -- DELETE /v1/webhooks/@WEBHOOK@
row 200 200 403 200 403 401 401 -- GET /v1/processes/p1/metrics
row 200 200 403 200 403 401 401 -- GET /metrics
echo "ok: $checked calls, every route with every role"

# POST /v1/tokens made x1 for the admin only: the others were refused before anything was
# stored.
AS=$ADMIN_TOKEN expect_http 200 GET /v1/tokens
[ "$(jqb '[.tokens[] | select(.name == "x1")] | length')" = 1 ] || fail "x1 made more than once"
grep -q '"token"' "$WORK/body" && fail "the token list shows tokens"
grep -q "$OWNER" "$WORK/body" && fail "the token list holds a token"

# Scopes: each role outside its own processes or queues.
new_item p2
P2_ITEM=$ITEM P2_TASK=$TASK
AS=$OWNER expect_http 403 PUT /v1/processes/p2 -H 'Content-Type: application/yaml' --data-binary @"$WORK/p2.yaml"
grep -q 'scope' "$WORK/body" || fail "the 403 does not say why: $(cat "$WORK/body")"
AS=$OWNER expect_http 403 POST /v1/processes/p2/items -H "$J" -d '{"text": "x"}'
AS=$OWNER expect_http 403 POST "/v1/tasks/$P2_TASK/claim" -H "$J" -d '{}'
AS=$OWNER expect_http 403 POST /v1/processes/p2/steps/sort/pause
AS=$REVIEWER expect_http 403 POST "/v1/tasks/$P2_TASK/claim" -H "$J" -d '{}'
AS=$REVIEWER expect_http 403 GET /v1/queues/q2/tasks
AS=$SERVICE expect_http 403 POST /v1/processes/p2/items -H "$J" -d '{"text": "x"}'
AS=$SERVICE expect_http 403 GET "/v1/items/$P2_ITEM"
AS=$REVIEWER expect_http 404 POST /v1/tasks/tsk_nothing/claim -H "$J" -d '{}'
AS=$OWNER expect_http 403 POST /v1/processes/p2/webhooks -H "$J" \
    -d '{"url": "http://127.0.0.1:9/x", "events": ["task.created"]}'
AS=$ADMIN_TOKEN expect_http 201 POST /v1/processes/p2/webhooks -H "$J" \
    -d '{"url": "http://127.0.0.1:9/x", "events": ["task.created"]}'
P2_WH=$(jqb .id)
AS=$OWNER expect_http 403 GET "/v1/webhooks/$P2_WH/deliveries"
AS=$OWNER expect_http 403 DELETE "/v1/webhooks/$P2_WH"
AS=$OWNER expect_http 404 GET /v1/webhooks/whk_nothing/deliveries
AS=$OWNER expect_http 403 GET /v1/processes/p2/metrics
AS=$OWNER expect_http 200 GET /metrics
grep -q 'process="p2"' "$WORK/body" && fail "an owner of p1 sees p2 in /metrics"
grep -q 'process="p1"' "$WORK/body" || fail "an owner of p1 does not see p1 in /metrics"
echo "ok: owner, reviewer and service are held to their scopes"

# The audit trail names the principal behind each action.
AS=$OWNER expect_http 200 POST /v1/processes/p1/items -H "$J" -d '{"text": "who sent me?"}'
ITEM=$(jqb .id)
AS=$ADMIN_TOKEN expect_http 200 GET '/v1/audit?after=0&limit=1000'
[ "$(jq -r --arg i "$ITEM" '.entries[] | select(.event == "item.received" and .subject == $i) | .actor' "$WORK/body")" = olga ] ||
    fail "item.received of $ITEM does not name olga"
echo "ok: the audit trail names the token's holder (olga)"

# Revocation counts on the next request.
AS=$VIEWER expect_http 200 GET /v1/processes
VIC_ID=$(AS=$ADMIN_TOKEN http GET /v1/tokens && jqb '.tokens[] | select(.name == "vic") | .id')
"$TANDEM" token revoke "$VIC_ID" --db "$DB" >/dev/null || fail "token revoke --db failed"
AS=$VIEWER expect_http 401 GET /v1/processes
AS=$ADMIN_TOKEN expect_http 409 DELETE "/v1/tokens/$VIC_ID"
echo "ok: a token revoked on the database stops working on its next request"

# The command line: create prints the token alone; list never shows one.
T=$("$TANDEM" token create --name cli-made --role service --url "$BASE" 2>"$WORK/err") || fail "token create: $(cat "$WORK/err")"
[[ "$T" =~ ^tdm_[A-Za-z0-9_-]{43}$ ]] || fail "token create printed \"$T\""
AS=$T expect_http 200 POST /v1/processes/p2/items -H "$J" -d '{"text": "any process"}'
"$TANDEM" token list --db "$DB" >"$WORK/list.txt"
grep -q cli-made "$WORK/list.txt" || fail "token list does not show cli-made"
grep -q "$T" "$WORK/list.txt" && fail "token list shows a token"
expect_fail 1 "in force" -- "$TANDEM" token create --name cli-made --role viewer --db "$DB"
expect_fail 2 "--role" -- "$TANDEM" token create --name z --role boss --db "$DB"
expect_fail 1 "scope" -- "$TANDEM" token create --name z --role owner --db "$DB"
TANDEM_TOKEN=$REVIEWER expect_fail 1 "reviewer token" -- "$TANDEM" token list --url "$BASE"
expect_fail 1 "TANDEM_TOKEN, which is not set" -- env -u TANDEM_TOKEN "$TANDEM" registry --url "$BASE"
echo "ok: tandem token create, list and revoke"
stop_server
