#!/usr/bin/env bash
# The metrics (GET /v1/processes/{name}/metrics, GET /metrics, tandem report) after a
# scripted sequence of five days, every number checked exactly against what the script did.
#
# The server runs under libfaketime with its clock read from a file the script writes
# (frozen between writes), so every event happens at a known second: items in, tasks
# claimed and answered after known waits, an escalation, a task answered past its SLA, a
# process switched to audit every would-be-autonomous item, audit samples answered right
# and wrong, the kill switch pressed and released, feedback, an item submitted again.
# The process "claims" has two steps: "sort" (ai: billing or tech) and "check" (human).
#
# The timeline (UTC), and what each event adds to the numbers:
#   Thu 2025-02-27 09:00  process applied (audit_sample 0), trained; tokens
#                  10:00  a1 a2 decided by the AI (sort); a3 a4 queued by the review rule
#                         (S3 S4); check tasks for a1 a2
#                  10:05  ana claims S3; 10:07 accepts it (latency 420 s, work 120 s)
#                  10:10  ben corrects S4 without a claim (an override; latency 600 s)
#   Fri 2025-02-28 09:00  b1 queued (S5, due 10:00), b2 decided by the AI, b3 queued (S7)
#                  09:30  ana escalates S7; 09:40 ben claims it there; 09:45 accepts (2700,
#                         300 s)
#                  12:00  ana, who claimed S5 at 11:50, corrects it: past its SLA (10800,
#                         600 s; an override)
#                  15:00  ben answers a2's check without a claim (the process's latency:
#                         104400 s, from a2's intake)
#                  16:00  a1 submitted again: version 2, decided by the AI at once (latency 0
#                         from its new intake); a1's open check task is voided
#   Sat 2025-03-01 10:00  ana claims a3's check; 10:20 answers it (174000 s; work 1200 s)
#   Sun 2025-03-02        nothing
#   Mon 2025-03-03 08:00  process applied again with audit_sample 1
#                  08:30  c1 c2: audit samples (S8 S9)
#                  09:00  ana claims S8; 09:01 accepts (right; 1860, 60 s)
#                  09:02  ana claims S9; 09:04 corrects (wrong: an audit error; 2040, 120 s)
#                  10:00  olga pauses sort; 10:10 c3 goes to a person (S10); 10:30 resumes
#                  11:00  ben accepts S10 without a claim (3000 s)
#                  12:00  feedback: accurate on a1's AI decision, inaccurate (to billing) on
#                         a2's, accurate on S3's person's decision
#                  12:30  ben answers a1's (version 2) check: 246600 s from version 2's intake
#                  14:00  the numbers are read
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DB=$WORK/tandem.db
J='Content-Type: application/json'

FAKETIME_LIB=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)
[ -n "$FAKETIME_LIB" ] || fail "libfaketime is missing: run scripts/deps.sh --test (apt-get install faketime)"
command -v promtool >/dev/null || fail "promtool is missing: run scripts/deps.sh --test (apt-get install prometheus)"

CLOCK=$WORK/clock
FAKED=
trap 'stop_server KILL; [ -z "$FAKED" ] || faked_cleanup; rm -rf "$WORK"' EXIT
# at "YYYY-MM-DD HH:MM:SS": the server's clock (UTC) from now on, until the next call.
at() {
    echo "$1" >"$CLOCK"
}

# expect_eq NAME GOT WANT
expect_eq() {
    [ "$2" = "$3" ] || fail "$1 = $2, expected $3"
    echo "ok: $1 = $2"
}

# expect_json NAME FILTER WANT: jq FILTER (compact) on the last answer equals WANT.
expect_json() {
    local got
    got=$(jq -c "$2" "$WORK/body")
    [ "$got" = "$3" ] || fail "$1: $2 = $got, expected $3"
    echo "ok: $1"
}

# expect_close NAME GOT WANT: numbers within 1e-9 (relative), or both null.
expect_close() {
    awk -v g="$2" -v w="$3" 'BEGIN {
        if (g == "null" || w == "null") exit !(g == w);
        d = g - w; if (d < 0) d = -d; m = w < 0 ? -w : w;
        exit !(d <= 1e-9 * (m > 1 ? m : 1)) }' || fail "$1 = $2, expected $3"
    echo "ok: $1 = $2"
}

post() {
    local token=$1 path=$2 body=$3
    AS=$token expect_http 200 POST "$path" -H "$J" -d "$body"
}

cat >"$WORK/claims.yaml" <<'EOF'
process: claims
owner: olga@example.com
kpis: [hours_saved]
baseline: {minutes_per_item: 6, error_rate: 0.1, cost_per_hour: 40}
steps:
  - id: sort
    allocation: ai
    owner: olga@example.com
    inputs: [text]
    output: {field: team, labels: [billing, tech]}
    guardrails:
      max_error: 0.5
      confidence: 0.9
      audit_sample: 0
      review_when: ['text contains "review"']
      queue: desk
      sla_minutes: 60
      escalation_queue: desk-leads
  - id: check
    allocation: human
    owner: olga@example.com
    output: {field: verdict, labels: [ok, fraud]}
    guardrails: {queue: audit-desk, sla_minutes: 5256000}
EOF
cat >"$WORK/other.yaml" <<'EOF'
process: other
owner: otto@example.com
kpis: [days]
baseline: {minutes_per_item: 20, error_rate: 0.02}
steps:
  - id: read
    allocation: human
    owner: otto@example.com
    output: {field: verdict, labels: [yes, no]}
    guardrails: {queue: other-desk}
EOF
{
    echo "text,team"
    for i in $(seq 1 30); do
        echo "my invoice $i is wrong,billing"
        echo "the app crashes on screen $i,tech"
    done
} >"$WORK/train.csv"

# ---- the sequence ---------------------------------------------------------------------------

at "2025-02-27 09:00:00"
# The server alone runs under libfaketime: a wrapper execs it with the library preloaded
# (under ASan, which wants to be loaded first, with that check off). libfaketime keeps a
# shared-memory file per process, removed when the process exits normally; the traps
# remove the server's in any case.
cat >"$WORK/tandem-faked" <<EOF
#!/bin/sh
exec env ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}verify_asan_link_order=0" TZ=UTC \\
    FAKETIME_TIMESTAMP_FILE="$CLOCK" FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \\
    LD_PRELOAD="$FAKETIME_LIB" "$TANDEM" "\$@"
EOF
chmod +x "$WORK/tandem-faked"
TANDEM=$WORK/tandem-faked start_server "$DB"
FAKED=$SERVER_PID
faked_cleanup() {
    rm -f "/dev/shm/faketime_shm_$FAKED" "/dev/shm/sem.faketime_sem_$FAKED"
}
for p in claims other; do
    expect_http 200 PUT /v1/processes/$p -H 'Content-Type: application/yaml' \
        --data-binary @"$WORK/$p.yaml"
done
"$TANDEM" train --process claims "$WORK/train.csv" --url "$BASE" >/dev/null || fail "training failed"
ANA=$(make_token ana reviewer desk,desk-leads,audit-desk)
BEN=$(make_token ben reviewer desk,desk-leads,audit-desk)
OLGA=$(make_token olga owner claims)
OTTO=$(make_token otto owner other)
VIC=$(make_token vic viewer)
SAM=$(make_token sam service claims)
expect_http 200 GET /v1/audit?limit=1
expect_eq "the server's clock" "$(jqb '.entries[0].at')" "2025-02-27T09:00:00.000Z"

# submit AT JSON-LINES...: items in at AT; the results go to $WORK/submitted.jsonl.
submit() {
    at "$1"
    shift
    printf '%s\n' "$@" >"$WORK/batch.jsonl"
    expect_http 200 POST /v1/processes/claims/items -H 'Content-Type: application/x-ndjson' \
        --data-binary @"$WORK/batch.jsonl"
    cp "$WORK/body" "$WORK/submitted.jsonl"
}
# sorted_by ITEM: who sorted the item in the last submission: "ai" when it went on to the
# check step at once, "person" when it waits for one at sort.
sorted_by() {
    jq -r --arg id "$1" 'select(.id == $id) | if .step == "check" then "ai" else "person" end' \
        "$WORK/submitted.jsonl"
}
# task ITEM STEP: the item's task at STEP that is not done (id).
task() {
    http GET "/v1/items/$1"
    jqb "[.tasks[] | select(.step == \"$2\" and .state != \"done\")][0].id // empty"
}
# proposal TASK: the AI's proposal on the task, and why it came to a person.
proposal() {
    http GET "/v1/tasks/$1"
    jqb '"\(.proposal.value) \(.why)"'
}
# decision ITEM STEP: the item's latest decision at STEP (id).
decision() {
    http GET "/v1/items/$1"
    jqb "[.decisions[] | select(.step == \"$2\")][-1].id"
}
claim() { post "$1" "/v1/tasks/$2/claim" '{"lease_seconds": 3600}'; }
complete() { post "$1" "/v1/tasks/$2/complete" "$3"; }
ACCEPT='{"action": "accept"}'
correct() { echo "{\"action\": \"correct\", \"value\": \"$1\"}"; }

submit "2025-02-27 10:00:00" \
    '{"id": "a1", "text": "my invoice is wrong", "channel": "mail"}' \
    '{"id": "a2", "text": "the app crashes on start", "channel": "phone"}' \
    '{"id": "a3", "text": "please review my invoice", "channel": "mail"}' \
    '{"id": "a4", "text": "please review the app crash", "channel": "phone"}'
expect_eq "a1 a2 a3 a4" "$(sorted_by a1) $(sorted_by a2) $(sorted_by a3) $(sorted_by a4)" \
    "ai ai person person"
S3=$(task a3 sort) S4=$(task a4 sort)
expect_eq "S3, S4: proposals" "$(proposal "$S3"), $(proposal "$S4")" \
    "billing review_rule, tech review_rule"
at "2025-02-27 10:05:00"
claim "$ANA" "$S3"
at "2025-02-27 10:07:00"
complete "$ANA" "$S3" "$ACCEPT"
at "2025-02-27 10:10:00"
complete "$BEN" "$S4" "$(correct billing)"

submit "2025-02-28 09:00:00" \
    '{"id": "b1", "text": "please review this invoice", "channel": "mail"}' \
    '{"id": "b2", "text": "another invoice problem", "channel": "phone"}' \
    '{"id": "b3", "text": "please review the app login", "channel": "mail"}'
expect_eq "b1 b2 b3" "$(sorted_by b1) $(sorted_by b2) $(sorted_by b3)" "person ai person"
S5=$(task b1 sort) S7=$(task b3 sort)
# S7 is accepted, whatever the AI proposes (by now it has learnt from S4's correction).
expect_eq "S5, S7: proposals" "$(proposal "$S5"), $(proposal "$S7" | sed 's/^[a-z]* /* /')" \
    "billing review_rule, * review_rule"
at "2025-02-28 09:30:00"
complete "$ANA" "$S7" '{"action": "escalate"}'
at "2025-02-28 09:40:00"
claim "$BEN" "$S7"
at "2025-02-28 09:45:00"
complete "$BEN" "$S7" "$ACCEPT"
at "2025-02-28 11:50:00"
claim "$ANA" "$S5"
at "2025-02-28 12:00:00"
complete "$ANA" "$S5" "$(correct tech)"
C2=$(task a2 check)
at "2025-02-28 15:00:00"
complete "$BEN" "$C2" '{"action": "correct", "value": "ok"}'
submit "2025-02-28 16:00:00" '{"id": "a1", "text": "my invoice is still wrong", "channel": "mail"}'
expect_eq "a1, again" "$(sorted_by a1)" "ai"

C3=$(task a3 check)
at "2025-03-01 10:00:00"
claim "$ANA" "$C3"
at "2025-03-01 10:20:00"
complete "$ANA" "$C3" '{"action": "correct", "value": "fraud"}'

at "2025-03-03 08:00:00"
sed 's/audit_sample: 0$/audit_sample: 1/' "$WORK/claims.yaml" >"$WORK/claims-audit.yaml"
expect_http 200 PUT /v1/processes/claims -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/claims-audit.yaml"
submit "2025-03-03 08:30:00" \
    '{"id": "c1", "text": "invoice c1 is wrong", "channel": "mail"}' \
    '{"id": "c2", "text": "app crash c2", "channel": "phone"}'
S8=$(task c1 sort) S9=$(task c2 sort)
expect_eq "S8, S9: proposals" "$(proposal "$S8"), $(proposal "$S9")" \
    "billing audit_sample, tech audit_sample"
at "2025-03-03 09:00:00"
claim "$ANA" "$S8"
at "2025-03-03 09:01:00"
complete "$ANA" "$S8" "$ACCEPT"
at "2025-03-03 09:02:00"
claim "$ANA" "$S9"
at "2025-03-03 09:04:00"
complete "$ANA" "$S9" "$(correct billing)"
at "2025-03-03 10:00:00"
post "$OLGA" /v1/processes/claims/steps/sort/pause '{"reason": "checking a complaint"}'
submit "2025-03-03 10:10:00" '{"id": "c3", "text": "invoice c3", "channel": "mail"}'
S10=$(task c3 sort)
expect_eq "S10: proposal" "$(proposal "$S10")" "billing paused"
at "2025-03-03 10:30:00"
post "$OLGA" /v1/processes/claims/steps/sort/resume ''
at "2025-03-03 11:00:00"
complete "$BEN" "$S10" "$ACCEPT"
at "2025-03-03 12:00:00"
post "$ANA" "/v1/decisions/$(decision a1 sort)/feedback" '{"verdict": "accurate"}'
post "$ANA" "/v1/decisions/$(decision a2 sort)/feedback" \
    '{"verdict": "inaccurate", "correction": "billing"}'
post "$BEN" "/v1/decisions/$(decision a3 sort)/feedback" '{"verdict": "accurate"}'
C1=$(task a1 check)
at "2025-03-03 12:30:00"
complete "$BEN" "$C1" '{"action": "correct", "value": "ok"}'
post "$ADMIN_TOKEN" /v1/processes/other/items '{"text": "a contract"}'
# A long note: "a" and 150 "é" (301 bytes), to see a segment's name cut at a character.
post "$ADMIN_TOKEN" /v1/processes/other/items \
    "{\"text\": \"another\", \"note\": \"a$(printf 'é%.0s' $(seq 1 150))\"}"
at "2025-03-03 14:00:00"
echo "ok: the sequence ran"

# ---- the JSON metrics, by day ---------------------------------------------------------------

W='from=2025-02-27&to=2025-03-03'
expect_http 200 GET "/v1/processes/claims/metrics?$W&by=day&segment=channel"
cp "$WORK/body" "$WORK/day.json"
expect_json "window" '[.process, .from, .to, .by, .generated_at]' \
    '["claims","2025-02-27T00:00:00.000Z","2025-03-04T00:00:00.000Z","day","2025-03-03T14:00:00.000Z"]'
expect_json "baseline, rate, budget" '[.baseline, .cost_per_hour, .risk_budget]' \
    '[{"minutes_per_item":6,"error_rate":0.1,"cost_per_hour":40},40,{"max_error":0.5,"confidence":0.9}]'
expect_json "periods" '[.periods[] | [.label, .start, .end]]' \
    '[["2025-02-27","2025-02-27T00:00:00.000Z","2025-02-28T00:00:00.000Z"],["2025-02-28","2025-02-28T00:00:00.000Z","2025-03-01T00:00:00.000Z"],["2025-03-01","2025-03-01T00:00:00.000Z","2025-03-02T00:00:00.000Z"],["2025-03-02","2025-03-02T00:00:00.000Z","2025-03-03T00:00:00.000Z"],["2025-03-03","2025-03-03T00:00:00.000Z","2025-03-04T00:00:00.000Z"]]'

# The process over the window. 10 items; the AI decided a1 a2 b2 and a1 again (4), people
# the 7 sort tasks and 3 checks; 18 tasks made (7 sort, 11 check). Latency at the process
# level is the last step's (the 3 checks: 104400, 174000, 246600 s). Timed work: S3 120, S7
# 300, S5 600, S8 60, S9 120, C3 1200 = 2400 s over 6 answers. Hours at 6 minutes an item,
# 40 an hour.
expect_json "process: efficiency" '.totals.efficiency | del(.automation_rate, .reviewer_hours)' \
    '{"items":10,"decided_by_ai":4,"decided_by_people":10,"queued":18,"latency_seconds":{"count":3,"p50":174000,"p90":246600},"reviewer_seconds":2400,"timed_answers":6,"reviewer_hours_estimated":1,"baseline_hours":1,"hours_saved":0.4,"cost":{"per_hour":40,"baseline":40,"people_measured":26.66666667,"people_estimated":40,"saved":16}}'
expect_close "process: automation_rate" "$(jq .totals.efficiency.automation_rate "$WORK/day.json")" \
    "$(awk 'BEGIN { printf "%.10g", 4 / 14 }')"
expect_close "process: reviewer_hours" "$(jq .totals.efficiency.reviewer_hours "$WORK/day.json")" \
    "$(awk 'BEGIN { printf "%.10g", 2400 / 3600 }')"
# Audit samples S8 (right) and S9 (wrong): 1 of 2, bound sqrt(0.9) at 90% (for n - 1 errors
# of n, P(X <= n - 1) = 1 - p^n). Reviews: the 7 sort answers (all with a proposal) and the
# 2 feedbacks on AI decisions; overrides S4, S5, S9 and a2's inaccurate. S5 passed its SLA.
expect_json "process: quality" '.totals.quality | del(.override_rate, .audited_error_bound)' \
    '{"audited":2,"audited_errors":1,"audited_error":0.5,"reviews":9,"overrides":4,"feedback":{"accurate":2,"inaccurate":1},"sla_breaches":1,"pauses":1}'
expect_close "process: override_rate" "$(jq .totals.quality.override_rate "$WORK/day.json")" \
    "$(awk 'BEGIN { printf "%.10g", 4 / 9 }')"
expect_close "process: audited_error_bound" \
    "$(jq .totals.quality.audited_error_bound "$WORK/day.json")" \
    "$(awk 'BEGIN { printf "%.10g", sqrt(0.9) }')"
# ana answered S3 S5 S8 S9 C3, ben S4 S7 S10 C2 C1; proposals kept: S3 S7 S8 S10 of 7.
expect_json "process: team" '.totals.team | del(.acceptance_rate)' \
    '{"reviewers":2,"human_answers":10,"answers_per_reviewer":5,"proposals":7,"proposals_accepted":4,"escalations":1}'
expect_close "process: acceptance_rate" "$(jq .totals.team.acceptance_rate "$WORK/day.json")" \
    "$(awk 'BEGIN { printf "%.10g", 4 / 7 }')"
expect_json "reviewers" '.reviewers' \
    '[{"reviewer":"ana","answers":5,"timed_answers":5,"reviewer_seconds":2100,"proposals":4,"proposals_accepted":2,"acceptance_rate":0.5},{"reviewer":"ben","answers":5,"timed_answers":1,"reviewer_seconds":300,"proposals":3,"proposals_accepted":2,"acceptance_rate":0.6666666667}]'

# Per day: items, AI, people, tasks made, latency count, timed answers and seconds,
# proposals, kept, reviews, overrides, audited, audit errors, SLA breaches, escalations,
# pauses, reviewers.
expect_json "process: per day" '[.periods[] | [.efficiency.items, .efficiency.decided_by_ai, .efficiency.decided_by_people, .efficiency.queued, .efficiency.latency_seconds.count, .efficiency.latency_seconds.p50, .efficiency.timed_answers, .efficiency.reviewer_seconds, .team.proposals, .team.proposals_accepted, .quality.reviews, .quality.overrides, .quality.audited, .quality.audited_errors, .quality.sla_breaches, .team.escalations, .quality.pauses, .team.reviewers, .efficiency.automation_rate]]' \
    '[[4,2,2,6,0,null,1,120,2,1,2,1,0,0,0,0,0,2,0.5],[3,2,3,6,1,104400,2,900,2,1,2,1,0,0,1,1,0,2,0.4],[0,0,1,0,1,174000,1,1200,0,0,0,0,0,0,0,0,0,1,0],[0,0,0,0,0,null,0,0,0,0,0,0,0,0,0,0,0,0,null],[3,0,4,6,1,246600,2,180,3,2,5,2,2,1,0,0,1,2,0]]'
expect_json "process: feedback per day" '[.periods[] | .quality.feedback | [.accurate, .inaccurate]]' \
    '[[0,0],[0,0],[0,0],[0,0],[2,1]]'

# The sort step: 11 items routed to it (4 by the AI, 7 tasks); its 11 decisions' latencies
# 0 0 0 0 420 600 1860 2040 2700 3000 10800: p50 the 6th (600), p90 the 10th (3000).
expect_json "sort: head" '.steps[0] | [.step, .allocation, .queue, .max_error, .confidence, .paused, .pause_reason]' \
    '["sort","ai","desk",0.5,0.9,false,null]'
expect_json "sort: efficiency" '.steps[0].totals.efficiency | del(.automation_rate, .reviewer_hours, .cost)' \
    '{"items":11,"decided_by_ai":4,"decided_by_people":7,"queued":7,"latency_seconds":{"count":11,"p50":600,"p90":3000},"reviewer_seconds":1200,"timed_answers":5,"reviewer_hours_estimated":0.7,"baseline_hours":1.1,"hours_saved":0.4}'
expect_json "sort: quality" '.steps[0].totals.quality | del(.override_rate, .audited_error_bound)' \
    '{"audited":2,"audited_errors":1,"audited_error":0.5,"reviews":9,"overrides":4,"feedback":{"accurate":2,"inaccurate":1},"sla_breaches":1,"pauses":1}'
expect_json "sort: team" '.steps[0].totals.team | del(.acceptance_rate)' \
    '{"reviewers":2,"human_answers":7,"answers_per_reviewer":3.5,"proposals":7,"proposals_accepted":4,"escalations":1}'
expect_json "sort: latency per day" '[.steps[0].periods[].efficiency.latency_seconds]' \
    '[{"count":4,"p50":0,"p90":600},{"count":4,"p50":0,"p90":10800},{"count":0,"p50":null,"p90":null},{"count":0,"p50":null,"p90":null},{"count":3,"p50":2040,"p90":3000}]'
# The check step: people only; no proposals, so no reviews; no bound without an AI.
expect_json "check" '.steps[1] | [.step, .allocation, .max_error, .threshold, .totals.efficiency.items, .totals.efficiency.decided_by_people, .totals.efficiency.latency_seconds, .totals.efficiency.timed_answers, .totals.efficiency.reviewer_seconds, .totals.quality.reviews, .totals.quality.override_rate, .totals.quality.audited_error_bound, .totals.team.human_answers]' \
    '["check","human",null,null,11,3,{"count":3,"p50":174000,"p90":246600},1,1200,0,null,null,3]'

# Segments by channel (the items' current fields): mail a1 a3 b1 b3 c1 c3, phone a2 a4 b2 c2.
expect_json "segments" '.segments | [.field, .more, (.groups[] | [.value, .items, .decided_by_ai, .decided_by_people, .audited, .audited_errors, .reviews, .overrides])]' \
    '["channel",0,["mail",6,2,7,1,0,6,1],["phone",4,2,3,1,1,3,3]]'
expect_json "confusions" '.confusions' \
    '[{"proposed":"tech","actual":"billing","count":3},{"proposed":"billing","actual":"tech","count":1}]'
expect_json "pauses" '.pauses' \
    '[{"at":"2025-03-03T10:00:00.000Z","step":"sort","event":"paused","actor":"olga","reason":"checking a complaint"},{"at":"2025-03-03T10:30:00.000Z","step":"sort","event":"resumed","actor":"olga","reason":null}]'

# The periods add up to the totals.
expect_json "periods add up" '[(.periods | map(.efficiency.items) | add), (.periods | map(.efficiency.decided_by_people) | add), (.periods | map(.quality.reviews) | add), (.periods | map(.efficiency.reviewer_seconds) | add), (.periods | map(.efficiency.latency_seconds.count) | add)]' \
    '[10,10,9,2400,3]'

# ---- weeks, months, windows -----------------------------------------------------------------

expect_http 200 GET "/v1/processes/claims/metrics?$W&by=week"
expect_json "by week" '[.periods[] | [.label, .start, .end, .efficiency.items, .efficiency.decided_by_people]]' \
    '[["2025-02-24","2025-02-27T00:00:00.000Z","2025-03-03T00:00:00.000Z",7,6],["2025-03-03","2025-03-03T00:00:00.000Z","2025-03-04T00:00:00.000Z",3,4]]'
expect_http 200 GET "/v1/processes/claims/metrics?$W&by=month"
expect_json "by month" '[.periods[] | [.label, .start, .end, .efficiency.items, .efficiency.latency_seconds.count]]' \
    '[["2025-02","2025-02-27T00:00:00.000Z","2025-03-01T00:00:00.000Z",7,1],["2025-03","2025-03-01T00:00:00.000Z","2025-03-04T00:00:00.000Z",3,2]]'
# A window of times with an offset (10:00+01:00 is 09:00Z): Feb 28 09:00 to 12:00 exclusive
# holds b1 b2 b3 and S7's answer, not S5's at 12:00.
expect_http 200 GET "/v1/processes/claims/metrics?from=2025-02-28T10:00:00%2B01:00&to=2025-02-28T12:00:00Z&rate=90"
expect_json "a window of times" '[.from, .to, (.periods | length), .totals.efficiency.items, .totals.efficiency.decided_by_people, .totals.team.escalations, .cost_per_hour, .totals.efficiency.cost.saved]' \
    '["2025-02-28T09:00:00.000Z","2025-02-28T12:00:00.000Z",1,3,1,1,90,9]'
# The default window: the 30 UTC days up to now.
expect_http 200 GET "/v1/processes/claims/metrics"
expect_json "the default window" '[.from, .to, (.periods | length), .totals.efficiency.items, .segments]' \
    '["2025-02-02T00:00:00.000Z","2025-03-03T14:00:00.000Z",30,10,null]'
# top: the segments listed.
expect_http 200 GET "/v1/processes/claims/metrics?$W&segment=channel&top=1"
expect_json "top" '.segments | [(.groups | length), .more]' '[1,1]'
expect_http 200 GET "/v1/processes/other/metrics?$W&segment=note"
expect_json "other: its own" '[.totals.efficiency.items, .risk_budget, .cost_per_hour, .totals.efficiency.cost]' \
    '[2,null,null,null]'
expect_json "a long segment value is cut at 200 bytes, at a character" \
    '[.segments.groups[] | [(.value | length), (.value | utf8bytelength), .items]]' \
    '[[9,9,1],[103,202,1]]'

# ---- bad requests ---------------------------------------------------------------------------

bad() { # STATUS FIELD QUERY
    expect_http "$1" GET "/v1/processes/claims/metrics?$3"
    expect_eq "$3: field" "$(jqb .error.field)" "$2"
}
bad 400 from 'from=2025-13-01'
bad 400 to 'to=2025-02-30'
bad 400 from 'from=2025-03-01T10:00:00'
bad 400 from 'from=2025-03-01T10:00:00+01:00'
grep -q '%2B' "$WORK/body" || fail "a + decoded as a space: the message should say to write %2B"
bad 400 to 'to=tomorrow'
bad 400 from 'from=1969-12-31'
bad 400 by 'by=year'
bad 422 to 'from=2025-03-03&to=2025-03-01'
bad 422 by 'from=2020-01-01&to=2025-01-01&by=day'
bad 400 rate 'rate=abc'
bad 400 rate 'rate=0'
bad 400 top 'top=0'
bad 422 segment "segment=$(printf 'x%.0s' $(seq 1 201))"
expect_http 404 GET "/v1/processes/nope/metrics"
echo "ok: bad dates and values are refused, naming the parameter"

# ---- who may call ---------------------------------------------------------------------------

AS=$OLGA expect_http 200 GET "/v1/processes/claims/metrics?$W"
AS=$VIC expect_http 200 GET "/v1/processes/claims/metrics?$W"
AS=$OTTO expect_http 403 GET "/v1/processes/claims/metrics?$W"
AS=$ANA expect_http 403 GET "/v1/processes/claims/metrics?$W"
AS=$SAM expect_http 403 GET "/v1/processes/claims/metrics?$W"
AS=none expect_http 401 GET "/v1/processes/claims/metrics?$W"
AS=$ANA expect_http 403 GET /metrics
AS=$SAM expect_http 403 GET /metrics
AS=none expect_http 401 GET /metrics
AS=$OTTO expect_http 200 GET /metrics
grep -q 'process="claims"' "$WORK/body" && fail "an owner of other sees claims in /metrics"
grep -q '^tandem_items_total{process="other"} 2$' "$WORK/body" || fail "otto does not see other"
echo "ok: /metrics shows an owner its own processes only"

# ---- Prometheus -----------------------------------------------------------------------------

expect_http 200 GET /metrics
cp "$WORK/body" "$WORK/metrics.txt"
curl -s -o /dev/null -w '%{content_type}' -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/metrics" >"$WORK/ctype"
expect_eq "content type" "$(cat "$WORK/ctype")" "text/plain; version=0.0.4; charset=utf-8"
promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1 ||
    fail "promtool check metrics: $(cat "$WORK/promtool.out")"
echo "ok: promtool check metrics passes"
# value METRIC{LABELS}: the sample's value.
value() {
    awk -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }' "$WORK/metrics.txt" ||
        fail "no sample $1 in /metrics"
}
S='process="claims",step="sort"'
C='process="claims",step="check"'
for pair in \
    "tandem_items_total{process=\"claims\"} 10" \
    "tandem_items_total{process=\"other\"} 2" \
    "tandem_decisions_total{$S,by=\"ai\"} 4" \
    "tandem_decisions_total{$S,by=\"person\"} 7" \
    "tandem_decisions_total{$C,by=\"person\"} 3" \
    "tandem_tasks_total{$S} 7" \
    "tandem_tasks_total{$C} 11" \
    "tandem_human_answers_total{$S} 7" \
    "tandem_ai_proposals_total{$S} 7" \
    "tandem_ai_proposals_accepted_total{$S} 4" \
    "tandem_reviews_total{$S} 9" \
    "tandem_overrides_total{$S} 4" \
    "tandem_feedback_total{$S,verdict=\"accurate\"} 2" \
    "tandem_feedback_total{$S,verdict=\"inaccurate\"} 1" \
    "tandem_audit_samples_total{$S} 2" \
    "tandem_audit_errors_total{$S} 1" \
    "tandem_audited_samples{$S} 0" \
    "tandem_risk_budget_ratio{$S} 0.5" \
    "tandem_risk_confidence_ratio{$S} 0.9" \
    "tandem_step_paused{$S} 0" \
    "tandem_reviewer_seconds_total{$S} 1200" \
    "tandem_reviewer_seconds_total{$C} 1200" \
    "tandem_reviewer_timed_answers_total{$S} 5" \
    "tandem_reviewers{$S} 2" \
    "tandem_sla_breaches_total{$S} 1" \
    "tandem_escalations_total{$S} 1" \
    "tandem_pauses_total{$S} 1" \
    "tandem_saved_seconds{process=\"claims\"} 1440" \
    "tandem_saved_cost{process=\"claims\"} 16" \
    "tandem_decision_latency_seconds_count{$S} 11" \
    "tandem_decision_latency_seconds_sum{$S} 21420" \
    "tandem_decision_latency_seconds_bucket{$S,le=\"1\"} 4" \
    "tandem_decision_latency_seconds_bucket{$S,le=\"300\"} 4" \
    "tandem_decision_latency_seconds_bucket{$S,le=\"900\"} 6" \
    "tandem_decision_latency_seconds_bucket{$S,le=\"3600\"} 10" \
    "tandem_decision_latency_seconds_bucket{$S,le=\"14400\"} 11" \
    "tandem_decision_latency_seconds_bucket{$S,le=\"+Inf\"} 11" \
    "tandem_decision_latency_seconds_bucket{$C,le=\"86400\"} 0" \
    "tandem_decision_latency_seconds_bucket{$C,le=\"172800\"} 1" \
    "tandem_decision_latency_seconds_bucket{$C,le=\"604800\"} 3" \
    "tandem_decision_latency_seconds_sum{$C} 525000" \
    "tandem_queue_open_tasks{process=\"claims\",queue=\"desk\"} 0" \
    "tandem_queue_open_tasks{process=\"claims\",queue=\"audit-desk\"} 7" \
    "tandem_queue_oldest_open_seconds{process=\"claims\",queue=\"audit-desk\"} 359400" \
    "tandem_sla_breached_tasks{process=\"claims\",queue=\"desk\"} 0" \
    "tandem_queue_open_tasks{process=\"other\",queue=\"other-desk\"} 2"; do
    expect_eq "${pair% *}" "$(value "${pair% *}")" "${pair##* }"
done
# The registry's audited error restarted at the resume: no samples since, no ratio; the
# human step has no AI gauges; the automation ratio is 4 / 11.
grep -q "^tandem_audited_error_ratio{$S}" "$WORK/metrics.txt" && fail "an audited error with no samples"
grep -q "^tandem_step_paused{$C}" "$WORK/metrics.txt" && fail "a human step has a pause gauge"
expect_close "tandem_automation_ratio{$S}" "$(value "tandem_automation_ratio{$S}")" \
    "$(awk 'BEGIN { printf "%.17g", 4 / 11 }')"
# While paused the gauge says so.
post "$OLGA" /v1/processes/claims/steps/sort/pause '{"reason": "again"}'
expect_http 200 GET /metrics
cp "$WORK/body" "$WORK/metrics.txt"
expect_eq "tandem_step_paused while paused" "$(value "tandem_step_paused{$S}")" 1
expect_eq "tandem_pauses_total" "$(value "tandem_pauses_total{$S}")" 2
post "$OLGA" /v1/processes/claims/steps/sort/resume ''
AS=$VIC expect_http 200 GET /metrics
expect_http 200 HEAD /metrics -I

# ---- tandem report --------------------------------------------------------------------------

R=(--process claims --from 2025-02-27 --to 2025-03-03 --segment channel --url "$BASE")
"$TANDEM" report "${R[@]}" --format json >"$WORK/report.json" || fail "report --format json"
expect_http 200 GET "/v1/processes/claims/metrics?$W&by=day&segment=channel"
cp "$WORK/body" "$WORK/now.json"
[ "$(jq -c 'del(.generated_at)' "$WORK/report.json")" = "$(jq -c 'del(.generated_at)' "$WORK/now.json")" ] ||
    fail "report --format json differs from the API's answer"
echo "ok: report --format json is the API's answer"
"$TANDEM" report "${R[@]}" --format csv --out "$WORK/report.csv" || fail "report --format csv"
expect_eq "csv header" "$(head -n 1 "$WORK/report.csv" | tr -d '\r')" "scope,period,start,end,family,metric,value"
csv() { # SCOPE PERIOD METRIC
    awk -F, -v s="$1" -v p="$2" -v m="$3" '$1 == s && $2 == p && $6 == m { sub(/\r$/, "", $7); print $7 }' "$WORK/report.csv"
}
expect_eq "csv: items" "$(csv process:claims total items)" 10
expect_eq "csv: latency p90 on 2025-02-28 at sort" "$(csv step:sort 2025-02-28 latency_seconds.p90)" 10800
expect_eq "csv: cost saved" "$(csv process:claims total cost.saved)" 16
expect_eq "csv: empty p50 on a quiet day" "$(csv process:claims 2025-03-02 latency_seconds.p50)" ""
# One row per period (5 and the total) × metric (of the three families), per scope.
rows=$(($(wc -l <"$WORK/report.csv") - 1))
per=$(awk -F, '$1 == "process:claims" && $2 == "total"' "$WORK/report.csv" | wc -l)
expect_eq "csv rows" "$rows" "$((per * 6 * 3))"
"$TANDEM" report "${R[@]}" --currency EUR --out "$WORK/report.html" || fail "report --format html"
grep -q '<svg' "$WORK/report.html" || fail "the HTML has no chart"
grep -qi '<script\|<link\|<img\|@import\|url([^#]' "$WORK/report.html" && fail "the HTML loads something"
grep -q 'received 10 items' "$WORK/report.html" || fail "the summary does not say 10 items"
grep -q 'EUR 16' "$WORK/report.html" || fail "the summary does not give the saving in EUR"
grep -q 'From 27 February 2025 to 3 March 2025' "$WORK/report.html" || fail "the window in words"
"$TANDEM" report --process other --from 2025-03-03 --to 2025-03-03 --url "$BASE" \
    --out "$WORK/other.html" || fail "report on a process of people only"
grep -q 'On 3 March 2025, <b>other</b> received 2 items' "$WORK/other.html" ||
    fail "the summary of a day: $(grep -o '<p class="summary">[^<]*' "$WORK/other.html")"
grep -q 'No step of this process lets the AI decide alone' "$WORK/other.html" ||
    fail "a process of people only has an audited error chart"
echo "ok: tandem report in json, csv and html"
expect_fail 2 'report: --from: "2025-02-31": there is no such day in that month' -- \
    "$TANDEM" report --process claims --from 2025-02-31 --url "$BASE"
expect_fail 2 'report: --format: expected html, csv or json, got "pdf"' -- \
    "$TANDEM" report --process claims --format pdf --url "$BASE"
expect_fail 2 'report: --by: expected day, week or month' -- \
    "$TANDEM" report --process claims --by year --url "$BASE"
expect_fail 2 'report: --to: to \(2025-03-01T00:00:00.000Z\) must be after from' -- \
    "$TANDEM" report --process claims --from 2025-03-03 --to 2025-02-28 --url "$BASE"
expect_fail 2 'report: --rate: expected a number' -- \
    "$TANDEM" report --process claims --rate none --url "$BASE"
expect_fail 2 'report: --process is required' -- "$TANDEM" report --url "$BASE"
expect_fail 1 'report: no process named "nope"' -- "$TANDEM" report --process nope --url "$BASE"
expect_fail 1 'report: --out /nonexistent/r.html: cannot write' -- \
    "$TANDEM" report --process claims --out /nonexistent/r.html --url "$BASE"

# On the database, read-only, once the server is gone: the same numbers.
stop_server
faked_cleanup
if grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:" "$WORK/serve.err"; then
    grep -E -A 20 "AddressSanitizer|LeakSanitizer|runtime error:" "$WORK/serve.err" | head -n 60 >&2
    fail "the sanitizers reported the above in tandem serve"
fi
DIGEST=$(db_digest "$DB")
"$TANDEM" report --process claims --from 2025-02-27 --to 2025-03-03 --segment channel --db "$DB" \
    --format json >"$WORK/db.json" || fail "report --db"
[ "$(jq -c 'del(.generated_at)' "$WORK/db.json")" = "$(jq -c 'del(.generated_at)' "$WORK/now.json")" ] ||
    fail "report --db differs from the server's answer"
echo "ok: report --db gives the server's answer"
expect_eq "the database is unchanged" "$(db_digest "$DB")" "$DIGEST"
echo "ok: metrics"
