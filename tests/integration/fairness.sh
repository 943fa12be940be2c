#!/usr/bin/env bash
# The fairness report on German credit, checked against a hand computation. The
# loan-screening process is trained on the first 700 applications; the other 300 are
# submitted with their true outcome in a field the process does not read ("truth"). Loan
# officers then answer every task with the truth and give feedback on every decision the
# AI made alone, so every item ends with a decision and a known true outcome. The report
# grouped by age (25 and under, over 25) must match, number for number, what awk computes
# from the submission's answers and the truth alone, without reading tandem's database.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
EX=$SRC/examples/loan-screening
DB=$WORK/tandem.db
P=loan-screening

start_server "$DB" --threads 4
expect_http 200 PUT /v1/processes/$P -H 'Content-Type: application/yaml' \
    --data-binary @"$EX/process.yaml"
head -n 701 "$EX/data/applications.csv" >"$WORK/train.csv"
expect_http 200 POST /v1/processes/$P/train -H 'Content-Type: text/csv' \
    --data-binary @"$WORK/train.csv"
[ "$(jqb '.steps[0].n_train')" = 700 ] || fail "train: $(cat "$WORK/body")"
echo "ok: trained on 700 applications"

# The other 300, each with an id and its true outcome as "truth".
{
    head -n 1 "$EX/data/applications.csv" | sed 's/^/id,/; s/,decision$/,truth/'
    tail -n +702 "$EX/data/applications.csv" | awk '{ print "app-" NR + 700 "," $0 }'
} >"$WORK/items.csv"
# id, age, truth, by the header's names (not by position).
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
         { print $col["id"], $col["age"], $col["truth"] }' "$WORK/items.csv" >"$WORK/truth.txt"
[ "$(wc -l <"$WORK/truth.txt")" -eq 300 ] || fail "expected 300 items"
"$TANDEM" submit --process $P --url "$BASE" --batch 300 "$WORK/items.csv" \
    >"$WORK/results.jsonl" || fail "submit failed"
[ "$(wc -l <"$WORK/results.jsonl")" -eq 300 ] || fail "expected 300 results"
# id, status, the AI's proposal, then the decision id or the task id.
jq -r 'if .status == "decided" then "\(.id) decided \(.decision.value) \(.decision.id)"
       else "\(.id) queued \(.proposal.value // "-") \(.task_id)" end' \
    "$WORK/results.jsonl" >"$WORK/routes.txt"
DECIDED=$(grep -c ' decided ' "$WORK/routes.txt" || true)
QUEUED=$(grep -c ' queued ' "$WORK/routes.txt" || true)
[ "$DECIDED" -gt 0 ] && [ "$QUEUED" -gt 0 ] || fail "decided $DECIDED, queued $QUEUED: need both"
grep -q ' queued - ' "$WORK/routes.txt" && fail "a queued item has no AI proposal"
echo "ok: $DECIDED decided by the AI alone, $QUEUED queued"

# Runs many requests in one curl (a config file of transfers), checking each answers 200.
# batch FILE: FILE holds "PATH BODY" lines, BODY a JSON object without blanks.
batch() {
    awk -v base="$BASE" -v tok="$ADMIN_TOKEN" '{
        if (NR > 1) print "next"
        printf "url = \"%s%s\"\nrequest = \"POST\"\n", base, $1
        printf "header = \"Authorization: Bearer %s\"\nheader = \"Content-Type: application/json\"\n", tok
        gsub(/"/, "\\\"", $2)
        printf "data = \"%s\"\noutput = \"/dev/null\"\nwrite-out = \"%%{http_code}\\n\"\n", $2
    }' "$1" >"$WORK/curl.cfg"
    curl -s -m 120 -K "$WORK/curl.cfg" >"$WORK/codes.txt" || fail "curl batch $1 failed"
    [ "$(grep -c '^200$' "$WORK/codes.txt")" -eq "$(wc -l <"$1")" ] ||
        fail "batch $1: not every request answered 200: $(sort "$WORK/codes.txt" | uniq -c)"
}

# Officers claim and answer every task with the truth; feedback on every AI-alone decision.
awk 'NR == FNR { truth[$1] = $3; next }
     $2 == "queued" { print "/v1/tasks/" $4 "/claim {\"lease_seconds\":600}" >"'"$WORK/claims.txt"'"
                      if ($3 == truth[$1]) print "/v1/tasks/" $4 "/complete {\"action\":\"accept\"}"
                      else print "/v1/tasks/" $4 "/complete {\"action\":\"correct\",\"value\":\"" truth[$1] "\"}" }' \
    "$WORK/truth.txt" "$WORK/routes.txt" >"$WORK/completes.txt"
awk 'NR == FNR { truth[$1] = $3; next }
     $2 == "decided" { if ($3 == truth[$1]) print "/v1/decisions/" $4 "/feedback {\"verdict\":\"accurate\"}"
                       else print "/v1/decisions/" $4 "/feedback {\"verdict\":\"inaccurate\",\"correction\":\"" truth[$1] "\"}" }' \
    "$WORK/truth.txt" "$WORK/routes.txt" >"$WORK/feedback.txt"
batch "$WORK/claims.txt"
batch "$WORK/completes.txt"
batch "$WORK/feedback.txt"
expect_http 200 GET '/v1/queues/loans/tasks?state=open&limit=1000'
[ "$(jqb '.tasks | length')" = 0 ] || fail "open tasks remain: $(jqb '.tasks | length')"
echo "ok: $QUEUED tasks answered, $DECIDED decisions given feedback"

# The hand computation. Per item: group, AI proposal, final decision (the AI's alone, the
# truth where an officer answered), whether an officer decided, the truth.
awk 'NR == FNR { age[$1] = $2; truth[$1] = $3; next }
     {
         g = age[$1] <= 25 ? "<=25" : ">25"
         final = $2 == "decided" ? $3 : truth[$1]
         n[g]++
         ai[g] += $3 == "approve"
         fin[g] += final == "approve"
         if ($2 == "queued") { pn[g]++; over[g] += final != $3 }
         if (truth[$1] == "approve") { pos[g]++; tp[g] += $3 == "approve" }
         else { neg[g]++; fp[g] += $3 == "approve" }
     }
     function r(a, b) { return b > 0 ? sprintf("%.15f", a / b) : "null" }
     END {
         max = 0
         for (g in n) if (fin[g] / n[g] > max) max = fin[g] / n[g]
         split("<=25 >25", order, " ")
         for (k = 1; k <= 2; k++) {
             g = order[k]
             ratio = (fin[g] / n[g]) / max
             printf "%s %d %s %s %.15f %s %s %s %s\n", g, n[g], r(ai[g], n[g]), r(fin[g], n[g]),
                 ratio, (ratio >= 0.8 ? "true" : "false"), r(over[g], pn[g]), r(tp[g], pos[g]),
                 r(fp[g], neg[g])
         }
     }' "$WORK/truth.txt" "$WORK/routes.txt" >"$WORK/expected.txt"
cat "$WORK/expected.txt"

expect_http 200 GET "/v1/processes/$P/fairness?group=age&bins=25"
cp "$WORK/body" "$WORK/report.json"
jq -c . "$WORK/report.json"
[ "$(jqb '[.process, .step, .favourable, .field] | join(" ")')" = "$P screen approve age" ] ||
    fail "report header: $(cat "$WORK/report.json")"
[ "$(jqb '[.groups[] | keys_unsorted | join(",")] | unique | join(";")')" = \
    "group,count,ai_favourable_rate,final_favourable_rate,impact_ratio,four_fifths_ok,override_rate,tpr,fpr" ] ||
    fail "group objects must have exactly the nine keys, in order: $(cat "$WORK/report.json")"
jq -r '.groups[] | [.group, .count, .ai_favourable_rate, .final_favourable_rate, .impact_ratio,
                    .four_fifths_ok, .override_rate, .tpr, .fpr] | map(tostring) | join(" ")' \
    "$WORK/report.json" >"$WORK/got.txt"
[ "$(wc -l <"$WORK/got.txt")" -eq 2 ] || fail "expected the groups <=25 and >25: $(cat "$WORK/got.txt")"
paste -d' ' "$WORK/expected.txt" "$WORK/got.txt" | awk '
    BEGIN { split("group count ai_favourable_rate final_favourable_rate impact_ratio four_fifths_ok override_rate tpr fpr", name, " ") }
    {
        for (i = 1; i <= 9; i++) {
            want = $i; got = $(i + 9)
            if (i == 1 || i == 6 || want == "null" || got == "null") bad = want != got
            else { d = want - got; bad = (d > 1e-9 || d < -1e-9) }
            if (bad) { printf "FAIL: group %s: %s is %s, expected %s\n", $1, name[i], got, want; fails++ }
            else printf "ok: group %s: %s = %s\n", $1, name[i], got
        }
    }
    END { exit fails > 0 }' || fail "the report differs from the hand computation"
# The equalized-odds gaps are the spread of the groups' rates.
awk -v a="$(jq '.equalized_odds.tpr_gap' "$WORK/report.json")" \
    -v b="$(jq '[.groups[].tpr] | max - min' "$WORK/report.json")" \
    -v c="$(jq '.equalized_odds.fpr_gap' "$WORK/report.json")" \
    -v d="$(jq '[.groups[].fpr] | max - min' "$WORK/report.json")" \
    'BEGIN { x = a - b; y = c - d; exit !(x < 1e-9 && x > -1e-9 && y < 1e-9 && y > -1e-9) }' ||
    fail "equalized odds: $(jq -c .equalized_odds "$WORK/report.json")"
echo "ok: equalized odds $(jq -c .equalized_odds "$WORK/report.json")"

# The command line gives the same answer, and a table.
"$TANDEM" fairness --process $P --group age --bins 25 --url "$BASE" --json >"$WORK/cli.json" ||
    fail "tandem fairness --json failed"
cmp -s "$WORK/cli.json" "$WORK/report.json" || fail "tandem fairness --json: $(cat "$WORK/cli.json")"
"$TANDEM" fairness --process $P --group age --bins 25 --url "$BASE" >"$WORK/table.txt" ||
    fail "tandem fairness failed"
cat "$WORK/table.txt"
grep -q '^<=25 ' "$WORK/table.txt" && grep -q '^>25 ' "$WORK/table.txt" &&
    grep -q '^equalized odds: TPR gap' "$WORK/table.txt" || fail "table: $(cat "$WORK/table.txt")"
echo "ok: tandem fairness --url prints the same JSON, and a table"

# Grouping by value: every item in one of the field's values; a field no item has.
expect_http 200 GET "/v1/processes/$P/fairness?group=foreign_worker&step=screen"
[ "$(jqb '[.groups[].group] | join(",")')" = "A201,A202" ] || fail "by value: $(cat "$WORK/body")"
[ "$(jqb '[.groups[].count] | add')" = 300 ] || fail "by value: $(cat "$WORK/body")"
expect_http 200 GET "/v1/processes/$P/fairness?group=no_such_field"
[ "$(jqb '[.groups[] | "\(.group) \(.count)"] | join(",")')" = "(missing) 300" ] ||
    fail "missing field: $(cat "$WORK/body")"
expect_http 200 GET "/v1/processes/$P/fairness?group=age&bins=25%2C40,60"
[ "$(jqb '[.groups[].group] | join(" ")')" = "25<..<=40 40<..<=60 <=25 >60" ] ||
    fail "three edges: $(cat "$WORK/body")"
echo "ok: groups by value, a missing field, three edges"

# Who may read it.
VIEWER=$(make_token vic viewer)
SERVICE=$(make_token svc service)
AS=$VIEWER expect_http 200 GET "/v1/processes/$P/fairness?group=age"
AS=$SERVICE expect_http 403 GET "/v1/processes/$P/fairness?group=age"
AS=none expect_http 401 GET "/v1/processes/$P/fairness?group=age"
echo "ok: viewer 200, service 403, no token 401"

# Errors.
expect_http 400 GET "/v1/processes/$P/fairness"
[ "$(jqb .error.field)" = group ] || fail "missing group: $(cat "$WORK/body")"
expect_http 400 GET "/v1/processes/$P/fairness?group=age&bins=25,abc"
[ "$(jqb .error.field)" = bins ] || fail "bad bins: $(cat "$WORK/body")"
expect_http 400 GET "/v1/processes/$P/fairness?group=age&bins="
expect_http 422 GET "/v1/processes/$P/fairness?group=age&bins=40,25"
[ "$(jqb .error.field)" = bins ] || fail "decreasing bins: $(cat "$WORK/body")"
expect_http 422 GET "/v1/processes/$P/fairness?group="
[ "$(jqb .error.field)" = group ] || fail "empty group: $(cat "$WORK/body")"
expect_http 422 GET "/v1/processes/$P/fairness?group=age&step=no-such-step"
[ "$(jqb .error.field)" = step ] || fail "unknown step: $(cat "$WORK/body")"
expect_http 404 GET "/v1/processes/no-such-process/fairness?group=age"
cat >"$WORK/plain.yaml" <<'EOF'
process: plain
owner: ops@example.com
kpis: [handling_minutes]
baseline: {minutes_per_item: 4.5, error_rate: 0.06}
steps:
  - id: triage
    allocation: human
    owner: ops@example.com
    output:
      field: answer
      labels: [yes, no]
    guardrails:
      queue: plain
EOF
expect_http 200 PUT /v1/processes/plain -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/plain.yaml"
expect_http 422 GET "/v1/processes/plain/fairness?group=age&step=triage"
jqb .error.message | grep -q 'step triage declares no favourable outcome (output.favourable)' ||
    fail "no favourable: $(cat "$WORK/body")"
expect_http 422 GET "/v1/processes/plain/fairness?group=age"
echo "ok: 400 without group or with malformed bins, 422 for bad values, 404, 422 without favourable"
expect_fail 2 'fairness: --process and --group are required' -- \
    "$TANDEM" fairness --process $P --url "$BASE"
expect_fail 2 'expected comma-separated numbers' -- \
    "$TANDEM" fairness --process $P --group age --bins 25,x --url "$BASE"
expect_fail 1 'no process named' -- \
    "$TANDEM" fairness --process nope --group age --url "$BASE"

# On the database directly (read-only), after the server is gone: the same answer.
stop_server TERM
"$TANDEM" fairness --process $P --group age --bins 25 --db "$DB" --json >"$WORK/db.json" ||
    fail "tandem fairness --db failed"
cmp -s "$WORK/db.json" "$WORK/report.json" || fail "tandem fairness --db: $(cat "$WORK/db.json")"
echo "ok: tandem fairness --db gives the same answer"
