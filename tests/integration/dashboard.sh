#!/usr/bin/env bash
# The owner dashboard (GET /v1/processes/{name}/dashboard) on the support-triage example,
# checked against counts this script keeps of what it did itself: 799 messages in two
# batches, people accepting, correcting (to another value, and once to the proposed value)
# and escalating tasks, feedback on the AI's decisions and on a person's. Every total is
# compared with that log (and a few with the database), the series must add up to the
# totals over a window that covers everything, and the steps, queues, confusions and recent
# decisions are checked one by one. The process's SLA is 12 seconds, so that the first
# batch's tasks are overdue when the second batch arrives. Then the errors and who may call.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
EX=$SRC/examples/support-triage
DB=$WORK/tandem.db
P=support-triage

sed 's/^      sla_minutes: 240$/      sla_minutes: 0.2/' "$EX/process.yaml" >"$WORK/process.yaml"
grep -q '^      sla_minutes: 0.2$' "$WORK/process.yaml" || fail "could not set the SLA to 0.2 minutes"
start_server "$DB"
expect_http 200 PUT /v1/processes/$P -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/process.yaml"
OWNER=$(make_token olga owner $P)
STRANGER=$(make_token otto owner another-process)
REVIEWER=$(make_token rita reviewer support)
VIEWER=$(make_token vic viewer)

# expect_eq NAME GOT WANT: the same text.
expect_eq() {
    [ "$2" = "$3" ] || fail "$1 = $2, expected $3"
    echo "ok: $1 = $2"
}

# expect_close NAME GOT WANT: numbers within 1e-9 (relative), or both null.
expect_close() {
    awk -v g="$2" -v w="$3" 'BEGIN {
        if (g == "null" || w == "null") exit !(g == w);
        d = g - w; if (d < 0) d = -d; m = w < 0 ? -w : w;
        exit !(d <= 1e-9 * (m > 1 ? m : 1)) }' || fail "$1 = $2, expected $3"
    echo "ok: $1 = $2"
}

# jqc FILTER: jq on the last answer's body, compact.
jqc() {
    jq -c "$1" "$WORK/body"
}

# post PATH BODY: a JSON POST that must answer 200.
post() {
    expect_http 200 POST "$1" -H 'Content-Type: application/json' -d "$2"
}

"$TANDEM" train --process $P "$EX/data/train.csv" --url "$BASE" --json >"$WORK/train.json" ||
    fail "training failed"

# Before any item: zeros, null rates, empty lists, and every bucket present.
expect_http 200 GET /v1/processes/$P/dashboard
expect_eq "empty: totals" "$(jqc .totals)" \
    '{"items":0,"decided_by_ai":0,"decided_by_people":0,"queued":0,"automation_rate":null,"human_answers":0,"overrides":0,"override_rate":null,"escalations":0,"hours_saved":0}'
expect_eq "empty: buckets, confusions, recent" "$(jqb '[(.series | length), (.confusions | length), (.recent | length)] | join(" ")')" "24 0 0"
expect_eq "empty: queues" "$(jqc '[.queues[] | [.queue, .open, .oldest_open_seconds]]')" \
    '[["support",0,null],["support-leads",0,null]]'

# The first batch: 599 messages (the category stays in the item; the model reads the text).
head -n 601 "$EX/data/test.csv" >"$WORK/batch1.csv"
BATCH1_START=$(date +%s)
"$TANDEM" submit --process $P "$WORK/batch1.csv" --url "$BASE" >"$WORK/res1.jsonl" ||
    fail "submit batch 1 failed"
BATCH1_AT=$(date +%s)
DECIDED1=$(jq -s 'map(select(.status == "decided")) | length' "$WORK/res1.jsonl")
QUEUED1=$(jq -s 'map(select(.status == "queued")) | length' "$WORK/res1.jsonl")
ITEMS1=$(wc -l <"$WORK/res1.jsonl") # 599: one message spans two lines
expect_eq "batch 1 results" "$((DECIDED1 + QUEUED1))" "$ITEMS1"
# The tasks to work: not audit samples, since a wrong one would pause the step (learning.c).
expect_http 200 GET "/v1/queues/support/tasks?state=open&limit=1000"
expect_eq "tasks queued" "$(jqb '.tasks | length')" "$QUEUED1"
jqb '.tasks[] | select(.why != "audit_sample") | "\(.id) \(.proposal.value)"' >"$WORK/tasks1.txt"
[ "$(wc -l <"$WORK/tasks1.txt")" -ge 12 ] || fail "only $QUEUED1 tasks: too few to work"
grep -q ' null$' "$WORK/tasks1.txt" && fail "a task has no AI proposal"
# An audit sample, answered right, counts in the registry's numbers (when there is one).
AUDIT=$(jqb '[.tasks[] | select(.why == "audit_sample") | .id][0] // empty')
echo "ok: batch 1: $DECIDED1 decided by the AI alone, $QUEUED1 queued"

# A label other than $1.
other() { if [ "$1" = card_arrival ]; then echo card_linking; else echo card_arrival; fi; }

# People work the first ten tasks; pairs.txt collects the confusions expected.
: >"$WORK/pairs.txt"
mapfile -t T < <(head -n 10 "$WORK/tasks1.txt")
for i in 0 1 2; do # accepted
    post "/v1/tasks/${T[i]% *}/complete" '{"action": "accept"}'
done
for i in 3 4 5; do # corrected to another value: overrides
    proposal=${T[i]#* }
    value=$(other "$proposal")
    post "/v1/tasks/${T[i]% *}/complete" "{\"action\": \"correct\", \"value\": \"$value\"}"
    echo "$proposal $value" >>"$WORK/pairs.txt"
    if [ $i = 3 ]; then
        PERSON_DECISION=$(jqb .decision.id) PERSON_VALUE=$value
    fi
done
for i in 6 7 8; do # escalated to support-leads
    post "/v1/tasks/${T[i]% *}/complete" '{"action": "escalate"}'
done
post "/v1/tasks/${T[6]% *}/complete" '{"action": "accept"}'
# Corrected to the value the AI proposed: a human answer, not an override.
post "/v1/tasks/${T[7]% *}/complete" "{\"action\": \"correct\", \"value\": \"${T[7]#* }\"}"
post "/v1/tasks/${T[9]% *}/claim" '{"lease_seconds": 3600}' # stays claimed
ANSWERS=8 ESCALATED=3 AUDITED=0
if [ -n "$AUDIT" ]; then
    post "/v1/tasks/$AUDIT/complete" '{"action": "accept"}'
    ANSWERS=9 AUDITED=1
fi
echo "ok: 3 accepted, 3 corrected, 3 escalated (2 of them then answered), 1 claimed, $AUDITED audit sample accepted"

# Feedback on three of the AI's decisions and on a person's.
mapfile -t D < <(jq -r 'select(.status == "decided") | "\(.decision.id) \(.decision.value)"' \
    "$WORK/res1.jsonl" | head -n 3)
post "/v1/decisions/${D[0]% *}/feedback" '{"verdict": "accurate"}'
correction=$(other "${D[1]#* }")
post "/v1/decisions/${D[1]% *}/feedback" "{\"verdict\": \"inaccurate\", \"correction\": \"$correction\"}"
echo "${D[1]#* } $correction" >>"$WORK/pairs.txt"
post "/v1/decisions/${D[2]% *}/feedback" '{"verdict": "inaccurate"}'
correction=$([ "$PERSON_VALUE" = get_physical_card ] && echo card_arrival || echo get_physical_card)
post "/v1/decisions/$PERSON_DECISION/feedback" "{\"verdict\": \"inaccurate\", \"correction\": \"$correction\"}"
echo "$PERSON_VALUE $correction" >>"$WORK/pairs.txt"
FEEDBACK_ON_AI=3 INACCURATE_ON_AI=2
echo "ok: feedback: accurate, inaccurate with and without a correction, and on a person's decision"

# Another process beside it: its numbers are its own, and must not leak into P's.
# A process of people only: reviews with nothing to override, a step without AI numbers.
cat >"$WORK/review.yaml" <<'EOF'
process: contract-review
owner: legal@example.com
kpis: [days_to_sign]
baseline: {minutes_per_item: 20, error_rate: 0.02}
steps:
  - id: read
    allocation: human
    owner: legal@example.com
    output: {field: verdict, labels: [sign, renegotiate]}
    guardrails: {queue: legal, sla_minutes: 2880}
EOF
expect_http 200 PUT /v1/processes/contract-review -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/review.yaml"
for id in c1 c2; do
    post /v1/processes/contract-review/items "{\"id\": \"$id\", \"text\": \"terms\"}"
done
post "/v1/tasks/$(jqb .task_id)/complete" '{"action": "correct", "value": "sign"}'
expect_http 200 GET /v1/processes/contract-review/dashboard
expect_eq "people only: totals" "$(jqc .totals)" \
    '{"items":2,"decided_by_ai":0,"decided_by_people":1,"queued":1,"automation_rate":0,"human_answers":1,"overrides":0,"override_rate":null,"escalations":0,"hours_saved":0}'
expect_eq "people only: a human step has no AI numbers" "$(jqc .steps)" \
    '[{"step":"read","allocation":"human","max_error":null,"confidence":null,"threshold":null,"audited":0,"audited_error":null,"audited_error_bound":null,"paused":false,"pause_reason":null}]'
expect_eq "people only: queue" \
    "$(jqc '.queues | map([.queue, .open, .claimed, .sla_breached, .sla_minutes])')" \
    '[["legal",1,0,0,2880]]'
expect_eq "people only: baseline" "$(jqc .baseline)" '{"minutes_per_item":20,"error_rate":0.02}'

# The second batch once the first one's tasks are overdue (12 s after they were queued).
head -n 1 "$EX/data/test.csv" >"$WORK/batch2.csv"
sed -n '602,801p' "$EX/data/test.csv" >>"$WORK/batch2.csv"
while [ "$(date +%s)" -le $((BATCH1_AT + 13)) ]; do sleep 1; done
"$TANDEM" submit --process $P "$WORK/batch2.csv" --url "$BASE" >"$WORK/res2.jsonl" ||
    fail "submit batch 2 failed"
DECIDED2=$(jq -s 'map(select(.status == "decided")) | length' "$WORK/res2.jsonl")
QUEUED2=$(jq -s 'map(select(.status == "queued")) | length' "$WORK/res2.jsonl")
expect_eq "batch 2 results" "$((DECIDED2 + QUEUED2))" 200

# ---- the dashboard against the log ----------------------------------------------------------

expect_http 200 GET /v1/processes/$P/dashboard
cp "$WORK/body" "$WORK/hour.json"
NOW=$(date +%s)
AI=$((DECIDED1 + DECIDED2))
QUEUED=$((QUEUED1 + QUEUED2 - ANSWERS))
OVERRIDES=$((3 + INACCURATE_ON_AI))
REVIEWS=$((ANSWERS + FEEDBACK_ON_AI))
t() { jq -r ".totals.$1" "$WORK/hour.json"; }
ITEMS=$((ITEMS1 + 200))
expect_eq "items" "$(t items)" "$ITEMS"
expect_eq "decided_by_ai" "$(t decided_by_ai)" "$AI"
expect_eq "decided_by_people" "$(t decided_by_people)" "$ANSWERS"
expect_eq "queued" "$(t queued)" "$QUEUED"
expect_close "automation_rate" "$(t automation_rate)" "$(awk -v a=$AI -v p=$ANSWERS 'BEGIN { printf "%.17g", a / (a + p) }')"
expect_eq "human_answers" "$(t human_answers)" "$ANSWERS"
expect_eq "overrides" "$(t overrides)" "$OVERRIDES"
expect_close "override_rate" "$(t override_rate)" "$(awk -v o=$OVERRIDES -v r=$REVIEWS 'BEGIN { printf "%.17g", o / r }')"
expect_eq "escalations" "$(t escalations)" "$ESCALATED"
expect_close "hours_saved" "$(t hours_saved)" "$(awk -v a=$AI 'BEGIN { printf "%.17g", a * 1.5 / 60 }')"
expect_eq "process, bucket, baseline" "$(jq -c '[.process, .bucket, .baseline]' "$WORK/hour.json")" \
    "[\"$P\",\"hour\",{\"minutes_per_item\":1.5,\"error_rate\":0.08}]"

# The same counts in the store, as tasks and decisions record them.
q() { sqlite3 "$DB" "$1"; }
expect_eq "items in the store" "$(q "SELECT count(*) FROM items WHERE process = '$P'")" "$ITEMS"
expect_eq "tasks answered (accept, correct)" \
    "$(q "SELECT count(*) FROM tasks WHERE process = '$P' AND state = 'done' AND action IN ('accept', 'correct')")" "$ANSWERS"
expect_eq "tasks not done" \
    "$(q "SELECT count(*) FROM tasks WHERE process = '$P' AND state <> 'done'")" "$QUEUED"
expect_eq "decisions the AI made alone" \
    "$(q "SELECT count(*) FROM decisions WHERE process = '$P' AND autonomous = 1")" "$AI"

# Steps: the registry's numbers, and the process's budget and threshold.
expect_http 200 GET /v1/registry
jq -c --arg p $P '[.use_cases[] | select(.process == $p) | {step, allocation,
    max_error: .risk_budget.max_error, confidence: .risk_budget.confidence, threshold, audited,
    audited_error, audited_error_bound, paused, pause_reason}]' "$WORK/body" >"$WORK/registry.json"
expect_eq "steps (as the registry has them)" "$(jq -c .steps "$WORK/hour.json")" "$(cat "$WORK/registry.json")"
expect_eq "audit samples answered" "$(jq .steps[0].audited "$WORK/hour.json")" "$AUDITED"
expect_eq "step budget" "$(jq -c '.steps[0] | [.step, .allocation, .max_error, .confidence]' "$WORK/hour.json")" \
    '["triage","ai",0.05,0.95]'
expect_http 200 GET /v1/processes/$P
expect_close "step threshold" "$(jq .steps[0].threshold "$WORK/hour.json")" "$(jqb '.steps[0].threshold')"

# Queues: the queues' own listings, and the SLA (batch 1's tasks are overdue, batch 2's not).
qv() { jq -r --arg q "$1" ".queues[] | select(.queue == \$q) | .$2" "$WORK/hour.json"; }
expect_eq "queues" "$(jq -c '[.queues[].queue]' "$WORK/hour.json")" '["support","support-leads"]'
expect_http 200 "GET" "/v1/queues/support/tasks?state=open&limit=1000"
expect_eq "support: open" "$(qv support open)" "$(jqb '.tasks | length')"
expect_eq "support: open, from the log" "$(qv support open)" "$((QUEUED1 + QUEUED2 - 10 - AUDITED))"
expect_eq "support: claimed" "$(qv support claimed)" 1
expect_eq "support: sla_breached" "$(qv support sla_breached)" "$((QUEUED1 - 9 - AUDITED))"
expect_eq "support-leads: open, claimed, sla_breached" \
    "$(qv support-leads open) $(qv support-leads claimed) $(qv support-leads sla_breached)" "1 0 1"
expect_eq "queued = what the queues hold" "$(jq '[.queues[] | .open + .claimed + .confirming] | add' "$WORK/hour.json")" "$QUEUED"
expect_eq "sla_minutes" "$(jq -c '[.queues[].sla_minutes]' "$WORK/hour.json")" '[0.2,0.2]'
for queue in support support-leads; do
    expect_number "$queue: oldest_open_seconds" "$(qv $queue oldest_open_seconds)" ">=" 12
    expect_number "$queue: oldest_open_seconds" "$(qv $queue oldest_open_seconds)" "<=" $((NOW - BATCH1_START + 1))
done

# Confusions: every pair this script made, counted, by count then names.
jq -R 'split(" ") | {proposed: .[0], actual: .[1]}' "$WORK/pairs.txt" |
    jq -sc 'group_by([.proposed, .actual]) | map(.[0] + {count: length}) |
            sort_by([-.count, .proposed, .actual]) | .[:10]' >"$WORK/confusions.json"
expect_eq "confusions" "$(jq -c .confusions "$WORK/hour.json")" "$(cat "$WORK/confusions.json")"

# Recent: the ten latest decisions of the process, newest first.
expect_eq "recent" "$(jq -r '.recent[].decision_id' "$WORK/hour.json" | tr '\n' ' ')" \
    "$(q "SELECT id FROM decisions WHERE process = '$P' ORDER BY seq DESC LIMIT 10" | tr '\n' ' ')"
jq -e '[.recent[].at] | . == (sort | reverse)' "$WORK/hour.json" >/dev/null ||
    fail "recent is not newest first: $(jq -c '[.recent[].at]' "$WORK/hour.json")"
jq -e '.recent[0] | keys_unsorted == ["decision_id","item_id","step","value","confidence","by","autonomous","at"]' \
    "$WORK/hour.json" >/dev/null || fail "recent: $(jq -c '.recent[0]' "$WORK/hour.json")"
echo "ok: steps, queues, confusions and recent decisions"

# ---- the series -------------------------------------------------------------------------------

# check_series FILE SECONDS POINTS: buckets of SECONDS, POINTS of them, aligned, ending with
# the one holding generated_at, adding up to the totals (the window covers everything).
check_series() {
    local f=$1 s=$2 n=$3
    jq -e --argjson s "$s" --argjson n "$n" '
        def t: sub("\\.000Z$"; "Z") | fromdateiso8601;
        .series as $b
        | ($b | length) == $n
        and ($b | all(.at | test("\\.000Z$")))
        and ([range(0; $n)] | all(. as $i | ($b[$i].at | t) == (($b[0].at | t) + $i * $s)))
        and (($b[0].at | t) % $s == 0)
        and .from == $b[0].at
        and (.to | t) == ($b[-1].at | t) + $s
        and ((.generated_at | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) >= ($b[-1].at | t))
        and ((.generated_at | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) < (.to | t))' "$f" \
        >/dev/null || fail "$f: the buckets are not $n aligned buckets of $s s ending now"
    jq -e '. as $d | ["items", "decided_by_ai", "decided_by_people", "human_answers", "overrides"]
        | all(. as $k | ([$d.series[][$k]] | add) == $d.totals[$k])' "$f" >/dev/null ||
        fail "$f: the series do not add up to the totals: $(jq -c .totals "$f")"
    jq -e '(([.series[].hours_saved] | add) - .totals.hours_saved) | fabs < 1e-6' "$f" >/dev/null ||
        fail "$f: hours_saved does not add up"
    jq -e '.series | all(
        (if .decided_by_ai + .decided_by_people == 0 then .automation_rate == null
         else ((.automation_rate - .decided_by_ai / (.decided_by_ai + .decided_by_people)) | fabs) < 1e-9 end)
        and (.hours_saved - .decided_by_ai * 1.5 / 60 | fabs) < 1e-9)' "$f" >/dev/null ||
        fail "$f: a bucket's rates do not follow from its counts"
    echo "ok: $f: $n buckets of $s s, adding up to the totals"
}
check_series "$WORK/hour.json" 3600 24
for p in "minute 500" "day 2"; do
    set -- $p
    expect_http 200 GET "/v1/processes/$P/dashboard?bucket=$1&points=$2"
    cp "$WORK/body" "$WORK/$1-$2.json"
done
check_series "$WORK/minute-500.json" 60 500
check_series "$WORK/day-2.json" 86400 2
jq -e '(.series | map(select(.override_rate != null)) | length) > 0' "$WORK/minute-500.json" >/dev/null ||
    fail "no minute has an override rate"

# ---- errors and access ------------------------------------------------------------------------

expect_http 400 GET "/v1/processes/$P/dashboard?bucket=week"
expect_eq "bad bucket: field" "$(jqb .error.field)" bucket
jqb .error.message | grep -q 'query parameter bucket: expected minute, hour or day' ||
    fail "bad bucket: $(cat "$WORK/body")"
for v in 0 501 abc -1 ""; do
    expect_http 400 GET "/v1/processes/$P/dashboard?points=$v"
    [ "$(jqb .error.field)" = points ] && jqb .error.message | grep -q 'query parameter points: expected a whole number from 1 to 500' ||
        fail "points=$v: $(cat "$WORK/body")"
done
echo "ok: 400 for a bad bucket or points, naming the parameter"
expect_http 404 GET /v1/processes/no-such-process/dashboard
expect_eq "unknown process" "$(jqb .error.code)" not_found
AS=$OWNER expect_http 200 GET "/v1/processes/$P/dashboard?points=2"
AS=$VIEWER expect_http 200 GET "/v1/processes/$P/dashboard?points=2"
AS=$REVIEWER expect_http 403 GET /v1/processes/$P/dashboard
AS=$STRANGER expect_http 403 GET /v1/processes/$P/dashboard
jqb .error.message | grep -q 'outside the token' || fail "owner out of scope: $(cat "$WORK/body")"
AS=none expect_http 401 GET /v1/processes/$P/dashboard
echo "ok: admin, its owner and a viewer may read it; a reviewer (403), another owner (403), no token (401) may not"

# The kill switch shows at once.
AS=$OWNER post /v1/processes/$P/steps/triage/pause '{"reason": "checking misroutes"}'
expect_http 200 GET "/v1/processes/$P/dashboard?points=1"
expect_eq "paused step" "$(jqc '.steps[0] | [.paused, .pause_reason]')" '[true,"checking misroutes"]'
stop_server
