#!/usr/bin/env bash
# Governance on the loan-screening example (German credit): adverse outcomes need a person
# (the AI never rejects alone, whatever its confidence), the kill switch (an owner pauses
# the step, the next item queues; resume gives autonomy back; both audited; a viewer may
# not press it), and the registry of AI use cases.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DB=$WORK/tandem.db
EX=$SRC/examples/loan-screening

start_server "$DB" --process "$EX/process.yaml"
OWNER=$(make_token jan owner loan-screening)
VIEWER=$(make_token vera viewer)

"$TANDEM" train --process loan-screening "$EX/data/applications.csv" --url "$BASE" --json \
    >"$WORK/train.json" || fail "training loan-screening failed"
# The certificate leaves out the rows whose proposal is an adverse outcome: the same process
# without adverse_outcomes, trained on the same rows, certifies on more of them.
sed -e 's/^process: loan-screening$/process: loan-all/' -e '/adverse_outcomes:/d' \
    "$EX/process.yaml" >"$WORK/all.yaml"
"$TANDEM" process apply "$WORK/all.yaml" --url "$BASE" >/dev/null || fail "apply loan-all failed"
"$TANDEM" train --process loan-all "$EX/data/applications.csv" --url "$BASE" --json \
    >"$WORK/train-all.json" || fail "training loan-all failed"
WITH=$(jq '.steps[0].eligible_n' "$WORK/train.json")
WITHOUT=$(jq '.steps[0].eligible_n' "$WORK/train-all.json")
expect_number "rows certified on, rejections left out" "$WITH" ">" 0
awk -v a="$WITH" -v b="$WITHOUT" 'BEGIN { exit !(a < b) }' ||
    fail "adverse outcomes did not leave rows out of the certificate ($WITH, without them $WITHOUT)"
echo "ok: the certificate counts $WITH rows; without adverse_outcomes it would count $WITHOUT"
# (loan-all stays, a second use case in the registry, never used.)

# Every application again, as items: the AI may approve alone, never reject.
"$TANDEM" submit --process loan-screening "$EX/data/applications.csv" --url "$BASE" \
    >"$WORK/results.jsonl" || fail "submit failed"
TOTAL=$(wc -l <"$WORK/results.jsonl")
DECIDED=$(jq -r 'select(.status == "decided") | .decision.value' "$WORK/results.jsonl" | sort | uniq -c)
echo "ok: $TOTAL applications; decided by the AI alone: $(echo $DECIDED)"
jq -r 'select(.status == "decided") | .decision.value' "$WORK/results.jsonl" | grep -qx approve ||
    fail "the AI approved nothing alone (the test would prove nothing)"
if jq -r 'select(.status == "decided") | .decision.value' "$WORK/results.jsonl" | grep -qx reject; then
    fail "the AI rejected an application alone"
fi
REJECTS=$(jq -r 'select(.status == "queued" and .proposal.value == "reject") | .task_id' \
    "$WORK/results.jsonl")
[ -n "$REJECTS" ] || fail "the AI proposed no rejection"
# Confident rejections too (at or above the certified threshold, where an approval would
# have been decided alone): the reason is the adverse outcome, not a low confidence.
expect_http 200 GET /v1/processes/loan-screening
THRESHOLD=$(jqb '.steps[0].threshold')
expect_number "certified threshold" "$THRESHOLD" ">" 0
CONFIDENT=$(jq -rs --argjson t "$THRESHOLD" 'map(select(.status == "queued" and
    .proposal.value == "reject" and .proposal.confidence >= $t)) | .[0].task_id // empty' \
    "$WORK/results.jsonl")
[ -n "$CONFIDENT" ] || fail "no rejection proposed with confidence >= $THRESHOLD"
expect_http 200 GET "/v1/queues/loans/tasks?state=open&limit=1000"
[ "$(jq -r --arg t "$CONFIDENT" '.tasks[] | select(.id == $t) | .why' "$WORK/body")" = adverse_outcome ] ||
    fail "a confident rejection was queued for another reason: $(jq -c --arg t "$CONFIDENT" '.tasks[] | select(.id == $t)' "$WORK/body")"
echo "ok: every proposed rejection went to a person (why: adverse_outcome), confident ones included"

# The kill switch.
expect_http 200 GET /v1/registry
[ "$(jqb '.use_cases | length')" = 2 ] || fail "registry: $(cat "$WORK/body")"
[ "$(jqb '.use_cases[] | select(.process == "loan-screening") | .paused')" = false ] || fail "registry: paused already"
[ "$(jqb '.use_cases[] | select(.process == "loan-screening") | .owner')" = credit-risk@example.com ] || fail "registry owner: $(cat "$WORK/body")"
[ "$(jqb '.use_cases[] | select(.process == "loan-screening") | .kpis | length')" = 2 ] || fail "registry kpis: $(cat "$WORK/body")"
AUTO=$(jqb '.use_cases[] | select(.process == "loan-screening") | .automation_rate')
WANT=$(jq -rs 'map(select(.status == "decided")) | length / 1000' "$WORK/results.jsonl")
awk -v a="$AUTO" -v w="$WANT" 'BEGIN { exit !(a - w < 1e-9 && w - a < 1e-9) }' ||
    fail "registry automation rate $AUTO, expected $WANT (decided alone / submitted)"
echo "ok: the registry lists the step, its owner, KPIs and automation rate ($AUTO)"
AS=$VIEWER expect_http 403 POST /v1/processes/loan-screening/steps/screen/pause
AS=$VIEWER expect_http 200 GET /v1/registry
AS=$OWNER expect_http 200 POST /v1/processes/loan-screening/steps/screen/pause \
    -H 'Content-Type: application/json' -d '{"reason": "checking a complaint"}'
[ "$(jqb .paused)" = true ] && [ "$(jqb .changed)" = true ] || fail "pause: $(cat "$WORK/body")"
AS=$OWNER expect_http 200 POST /v1/processes/loan-screening/steps/screen/pause
[ "$(jqb .changed)" = false ] || fail "a second pause changed something: $(cat "$WORK/body")"
# The first 199 applications again (the AI approved many alone before): all wait for a person.
sed -n '1,200p' "$EX/data/applications.csv" >"$WORK/again.csv"
"$TANDEM" submit --process loan-screening "$WORK/again.csv" --url "$BASE" >"$WORK/paused.jsonl"
[ "$(jq -r 'select(.status == "decided")' "$WORK/paused.jsonl" | wc -l)" = 0 ] ||
    fail "items were decided alone while the step was paused"
jq -rs '.[0].task_id' "$WORK/paused.jsonl" >"$WORK/t1"
expect_http 200 GET "/v1/queues/loans/tasks?state=open&limit=1000"
[ "$(jq -r --arg t "$(cat "$WORK/t1")" '.tasks[] | select(.id == $t) | .why' "$WORK/body")" != "" ] ||
    fail "the paused item's task is not in the queue"
expect_http 200 GET /v1/registry
[ "$(jqb '.use_cases[] | select(.process == "loan-screening") | .paused')" = true ] && [ "$(jqb '.use_cases[] | select(.process == "loan-screening") | .pause_reason')" = "checking a complaint" ] ||
    fail "registry after pause: $(cat "$WORK/body")"
echo "ok: paused by the owner: 199 items, none decided alone; the registry says paused"
"$TANDEM" step resume --process loan-screening --step screen --url "$BASE" >"$WORK/out" ||
    fail "step resume failed"
grep -q resumed "$WORK/out" || fail "step resume said: $(cat "$WORK/out")"
"$TANDEM" submit --process loan-screening "$WORK/again.csv" --url "$BASE" >"$WORK/resumed.jsonl"
[ "$(jq -r 'select(.status == "decided")' "$WORK/resumed.jsonl" | wc -l)" -gt 0 ] ||
    fail "nothing decided alone after resume"
echo "ok: resumed with tandem step resume; the AI decides alone again"

# People check the audit samples: one of them the AI got wrong.
expect_http 200 GET "/v1/queues/loans/tasks?state=open&limit=1000"
jq -r '.tasks[] | select(.why == "audit_sample") | "\(.id) \(.proposal.value)"' "$WORK/body" \
    >"$WORK/audit_tasks"
AUDITED=$(wc -l <"$WORK/audit_tasks")
expect_number "audit samples queued" "$AUDITED" ">=" 2
first=1
while read -r task proposal; do
    if [ $first = 1 ]; then
        other=$([ "$proposal" = approve ] && echo reject || echo approve)
        expect_http 200 POST "/v1/tasks/$task/complete" -H 'Content-Type: application/json' \
            -d "{\"action\": \"correct\", \"value\": \"$other\"}"
        first=0
    else
        expect_http 200 POST "/v1/tasks/$task/complete" -H 'Content-Type: application/json' \
            -d '{"action": "accept"}'
    fi
done <"$WORK/audit_tasks"
expect_http 200 GET /v1/registry
[ "$(jqb '.use_cases[] | select(.process == "loan-screening") | .audited')" = "$AUDITED" ] || fail "registry audited: $(cat "$WORK/body")"
awk -v e="$(jqb '.use_cases[] | select(.process == "loan-screening") | .audited_error')" -v n="$AUDITED" -v b="$(jqb '.use_cases[] | select(.process == "loan-screening") | .audited_error_bound')" \
    'BEGIN { exit !(e - 1 / n < 1e-9 && 1 / n - e < 1e-9 && b > e && b < 1) }' ||
    fail "registry audited error: $(cat "$WORK/body")"
[ "$(jqb '.use_cases[] | select(.process == "loan-screening") | .last_audit_sample')" != null ] || fail "registry: no last audit sample"
echo "ok: the registry counts $AUDITED audit samples, 1 wrong, with its upper bound"

# Resuming restarts the window of audit samples the registry (and the drift check) counts.
AS=$OWNER expect_http 200 POST /v1/processes/loan-screening/steps/screen/pause
AS=$OWNER expect_http 200 POST /v1/processes/loan-screening/steps/screen/resume
expect_http 200 GET /v1/registry
[ "$(jqb '.use_cases[] | select(.process == "loan-screening") | .audited')" = 0 ] || fail "resume did not restart the audit window: $(cat "$WORK/body")"
echo "ok: after a pause and resume the audit window starts again"
[ "$(sqlite3 "$DB" "SELECT actor FROM audit WHERE event = 'automation.paused' ORDER BY seq LIMIT 1")" = jan ] ||
    fail "the first automation.paused is not jan's"
[ "$(sqlite3 "$DB" "SELECT actor FROM audit WHERE event = 'automation.resumed' ORDER BY seq LIMIT 1")" = admin ] ||
    fail "the first automation.resumed is not admin's"
expect_http 200 GET /v1/audit/verify
[ "$(jqb .ok)" = true ] || fail "audit chain: $(cat "$WORK/body")"
echo "ok: pause and resume are on the audit trail with who pressed them"

# The command line: the registry table, and the switch's errors.
"$TANDEM" registry --url "$BASE" >"$WORK/registry.txt" || fail "tandem registry failed"
grep -q "loan-screening/screen" "$WORK/registry.txt" || fail "registry: $(cat "$WORK/registry.txt")"
"$TANDEM" registry --db "$DB" --json | jq -e '.use_cases[0].risk_budget.max_error == 0.15' >/dev/null ||
    fail "registry --db --json"
expect_fail 1 "no step" -- "$TANDEM" step pause --process loan-screening --step nope --url "$BASE"
expect_fail 2 "--process and --step" -- "$TANDEM" step pause --url "$BASE"
AS=$ADMIN_TOKEN expect_http 422 POST /v1/processes/loan-screening/steps/screen/resume \
    -H 'Content-Type: application/json' -d '{"reason": "x"}'
echo "ok: tandem registry, and the kill switch's errors"
stop_server
