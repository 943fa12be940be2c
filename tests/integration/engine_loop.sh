#!/usr/bin/env bash
# The whole loop over real HTTP on Banking77, as a process owner, an integrator and the
# reviewers would run it: apply the support-triage process, train it on the train split,
# submit the test split, check that the items the AI decided alone are within the risk
# budget, work tasks (claim, a second claim refused, accept or correct), give feedback,
# verify the audit chain, then tamper with one stored audit row and see verify name it.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
EX=$SRC/examples/support-triage
DB=$WORK/tandem.db

start_server "$DB" --threads 4
ANA=$(make_token ana reviewer support)
BEN=$(make_token ben reviewer support)

# The process owner declares the process.
expect_http 200 PUT /v1/processes/support-triage -H 'Content-Type: application/yaml' \
    --data-binary @"$EX/process.yaml"
[ "$(jqb '.steps[0].allocation')" = ai ] || fail "process summary: $(cat "$WORK/body")"
BUDGET=$(jqb '.steps[0].guardrails.max_error')
echo "ok: process applied (risk budget $BUDGET)"

# Initial training from history.
expect_http 200 POST /v1/processes/support-triage/train -H 'Content-Type: text/csv' \
    --data-binary @"$EX/data/train.csv"
[ "$(jqb '.steps[0].n_train')" = 10003 ] || fail "train: $(cat "$WORK/body")"
[ "$(jqb '.steps[0].threshold')" != null ] || fail "no certified threshold: $(cat "$WORK/body")"
echo "ok: trained, threshold $(jqb '.steps[0].threshold')"

# The test split as items. The true intent travels in a field the process does not read
# ("truth": not an input, not in any rule), so that the answers can be checked afterwards.
sed '1s/category/truth/' "$EX/data/test.csv" >"$WORK/items.csv"
"$TANDEM" submit --process support-triage --url "$BASE" --batch 500 "$WORK/items.csv" \
    >"$WORK/results.jsonl" || fail "submit failed"
[ "$(wc -l <"$WORK/results.jsonl")" -eq 3080 ] || fail "expected 3080 results"
sqlite3 "$DB" "SELECT id, json_extract(fields, '$.truth') FROM items" | tr '|' ' ' >"$WORK/truth.txt"
[ "$(wc -l <"$WORK/truth.txt")" -eq 3080 ] || fail "expected 3080 stored items"
jq -r 'select(.status == "decided") | "\(.id) \(.decision.value)"' "$WORK/results.jsonl" \
    >"$WORK/decided.txt"
jq -r 'select(.status == "queued") | "\(.id) \(.task_id) \(.proposal.value // "")"' \
    "$WORK/results.jsonl" >"$WORK/queued.txt"
DECIDED=$(wc -l <"$WORK/decided.txt")
QUEUED=$(wc -l <"$WORK/queued.txt")
[ $((DECIDED + QUEUED)) -eq 3080 ] || fail "decided $DECIDED + queued $QUEUED != 3080"
WRONG=$(awk 'NR == FNR { truth[$1] = $2; next } truth[$1] != $2 { n++ } END { print n + 0 }' \
    "$WORK/truth.txt" "$WORK/decided.txt")
echo "ok: $DECIDED decided by the AI alone, $QUEUED queued for people, $WRONG of the AI's wrong"
expect_number "automation rate" "$(awk -v d="$DECIDED" 'BEGIN { print d / 3080 }')" ">=" 0.5
expect_number "error of autonomous decisions" \
    "$(awk -v w="$WRONG" -v d="$DECIDED" 'BEGIN { print w / d }')" "<=" "$BUDGET"

# Reviewers work the queue: 30 tasks, accepted when the AI was right, corrected otherwise.
expect_http 200 GET '/v1/queues/support/tasks?state=open&limit=1000'
[ "$(jqb '.tasks | length')" -ge 30 ] || fail "fewer than 30 open tasks"
jq -r '.tasks[:30][] | "\(.id) \(.item_id) \(.proposal.value // "")"' "$WORK/body" >"$WORK/work.txt"
first_task=$(head -n 1 "$WORK/work.txt" | cut -d' ' -f1)
accepted=0 corrected=0
while read -r task item proposal; do
    truth=$(awk -v id="$item" '$1 == id { print $2 }' "$WORK/truth.txt")
    [ -n "$truth" ] || fail "no truth for $item"
    AS=$ANA expect_http 200 POST "/v1/tasks/$task/claim" -H 'Content-Type: application/json' \
        -d '{"lease_seconds": 120}'
    [ "$(jqb .claimed_by)" = ana ] || fail "claim: $(cat "$WORK/body")"
    if [ "$task" = "$first_task" ]; then
        AS=$BEN expect_http 409 POST "/v1/tasks/$task/claim" -H 'Content-Type: application/json' \
            -d '{}'
        [ "$(jqb .error.code)" = conflict ] || fail "second claim: $(cat "$WORK/body")"
        echo "ok: a task claimed twice answers 409"
    fi
    if [ "$proposal" = "$truth" ]; then
        AS=$ANA expect_http 200 POST "/v1/tasks/$task/complete" -H 'Content-Type: application/json' \
            -d '{"action": "accept"}'
        accepted=$((accepted + 1))
    else
        AS=$ANA expect_http 200 POST "/v1/tasks/$task/complete" -H 'Content-Type: application/json' \
            -d "{\"action\": \"correct\", \"value\": \"$truth\", \"comment\": \"checked\"}"
        corrected=$((corrected + 1))
    fi
    [ "$(jqb .decision.value)" = "$truth" ] || fail "complete: $(cat "$WORK/body")"
    [ "$(jqb .decision.model_version)" -gt 1 ] || fail "the model did not learn: $(cat "$WORK/body")"
done <"$WORK/work.txt"
echo "ok: 30 tasks done ($accepted accepted, $corrected corrected); each answer a new model version"
AS=$BEN expect_http 409 POST "/v1/tasks/$first_task/complete" -H 'Content-Type: application/json' \
    -d '{"action": "accept"}'
echo "ok: completing a done task answers 409"
expect_http 200 GET "/v1/items/$(sed -n 1p "$WORK/work.txt" | cut -d' ' -f2)"
[ "$(jqb .status)" = decided ] || fail "item after its task: $(cat "$WORK/body")"
[ "$(jqb '.decisions[0].kind')" = person ] || fail "item decision: $(cat "$WORK/body")"

# Feedback on one of the AI's own decisions, wrong or right.
read -r item value < <(head -n 1 "$WORK/decided.txt")
truth=$(awk -v id="$item" '$1 == id { print $2 }' "$WORK/truth.txt")
expect_http 200 GET "/v1/items/$item"
decision=$(jqb '.decisions[0].id')
if [ "$value" = "$truth" ]; then
    expect_http 200 POST "/v1/decisions/$decision/feedback" -H 'Content-Type: application/json' \
        -d '{"verdict": "accurate"}'
else
    expect_http 200 POST "/v1/decisions/$decision/feedback" -H 'Content-Type: application/json' \
        -d "{\"verdict\": \"inaccurate\", \"correction\": \"$truth\"}"
fi
[ "$(jqb .model_version)" -gt 31 ] || fail "feedback did not make a model version: $(cat "$WORK/body")"
echo "ok: feedback recorded, model version $(jqb .model_version)"

# The process summary shows the step's state; the audit trail holds it all and verifies.
expect_http 200 GET /v1/processes/support-triage
[ "$(jqb '.steps[0].model_version')" -gt 31 ] || fail "summary model version: $(cat "$WORK/body")"
expect_http 200 GET '/v1/audit?after=0&limit=10'
[ "$(jqb '.entries[0].event')" = token.created ] || fail "audit: $(cat "$WORK/body")"
[ "$(jqb '[.entries[] | select(.event == "token.created")] | length')" = 3 ] ||
    fail "audit: expected the admin, ana and ben tokens: $(cat "$WORK/body")"
[ "$(jqb '.entries[1].actor')" = admin ] || fail "audit: ana's token not made by admin"
[ "$(jqb '[.entries[] | select(.event == "process.applied")] | length')" -ge 1 ] ||
    fail "audit: no process.applied: $(cat "$WORK/body")"
grep -q "$ADMIN_TOKEN" "$WORK/body" && fail "the audit trail holds a token"
expect_http 200 GET /v1/audit/verify
[ "$(jqb .ok)" = true ] || fail "audit verify: $(cat "$WORK/body")"
ENTRIES=$(jqb .entries)
"$TANDEM" audit verify --url "$BASE" >"$WORK/verify.txt" || fail "audit verify: $(cat "$WORK/verify.txt")"
echo "ok: audit chain of $ENTRIES entries verifies"

# Tamper with one stored row behind tandem's back: verify names it.
stop_server TERM
SEQ=$((ENTRIES / 2))
sqlite3 "$DB" "UPDATE audit SET actor = actor || ' (edited)' WHERE seq = $SEQ;"
status=0
"$TANDEM" audit verify --db "$DB" >"$WORK/verify.txt" 2>&1 || status=$?
[ "$status" -eq 1 ] || fail "verify after tampering exited $status: $(cat "$WORK/verify.txt")"
grep -q "entry $SEQ" "$WORK/verify.txt" || fail "verify does not name entry $SEQ: $(cat "$WORK/verify.txt")"
echo "ok: $(cat "$WORK/verify.txt")"
