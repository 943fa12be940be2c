#!/usr/bin/env bash
# Refits over real HTTP (docs/process-file.md, `refit`): a hybrid support-triage step trained
# on 300 Banking77 rows learns online from 1,000 answers; the 1,000th makes the server fit the
# model again on its refit thread, from the 300 kept training rows and the 1,000 answers. The
# refit is the step's next model version, on the trail as model.refit; it survives a restart,
# and the next answer teaches it. A step with `refit: off` is never refitted.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
EX=$SRC/examples/support-triage
DB=$WORK/tandem.db

start_server "$DB"

# cut_rows NAME HEADER FIRST END: rows FIRST to END - 1 of train.csv into $WORK/NAME, under
# HEADER (comma-separated names). Rows are cut as CSV: some texts span lines.
cut_rows() {
    python3 - "$EX/data/train.csv" "$WORK/$1" "$2" "$3" "$4" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))[1:]
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(sys.argv[3].split(","))
    w.writerows(rows[int(sys.argv[4]):int(sys.argv[5])])
PY
}

# Every item goes to a person on a hybrid step, so 1,000 items make 1,000 answers.
sed -e 's/allocation: ai/allocation: hybrid/' -e '/audit_sample/d' "$EX/process.yaml" \
    >"$WORK/hybrid.yaml"
expect_http 200 PUT /v1/processes/support-triage -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/hybrid.yaml"
[ "$(jqb '.steps[0].refit')" = auto ] || fail "refit is not auto by default: $(cat "$WORK/body")"
# The first 300 rows as history, the next 1,000 as items, the one after for later; the true
# intent of an item travels in a field the process does not read.
cut_rows history.csv text,category 0 300
cut_rows items.csv text,truth 300 1300
cut_rows one.csv text,truth 1300 1301
expect_http 200 POST /v1/processes/support-triage/train -H 'Content-Type: text/csv' \
    --data-binary @"$WORK/history.csv"
[ "$(jqb '.steps[0].model_version')" = 1 ] || fail "train: $(cat "$WORK/body")"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM examples WHERE version = 1")" = 300 ] ||
    fail "the 300 training rows are not kept"
echo "ok: trained on 300 rows, kept for refits"

"$TANDEM" submit --process support-triage --url "$BASE" --batch 500 "$WORK/items.csv" \
    >"$WORK/results.jsonl" || fail "submit failed"
[ "$(jq -r 'select(.status == "queued") | .id' "$WORK/results.jsonl" | wc -l)" = 1000 ] ||
    fail "expected 1000 queued items"
sqlite3 "$DB" "SELECT id, json_extract(fields, '$.truth') FROM items" | tr '|' ' ' >"$WORK/truth.txt"

# answer_tasks FILE: completes each task of FILE's "item task proposal" lines with the truth,
# over one keep-alive connection; prints each status.
answer_tasks() {
    awk -v base="$BASE" -v token="$ADMIN_TOKEN" '
        NR == FNR { truth[$1] = $2; next }
        {
            if (n++) print "next"
            print "url = \"" base "/v1/tasks/" $2 "/complete\""
            print "request = \"POST\""
            print "header = \"Authorization: Bearer " token "\""
            print "header = \"Content-Type: application/json\""
            if ($3 == truth[$1])
                print "data = \"{\\\"action\\\": \\\"accept\\\"}\""
            else
                print "data = \"{\\\"action\\\": \\\"correct\\\", \\\"value\\\": \\\"" truth[$1] "\\\"}\""
            print "output = \"/dev/null\""
            print "write-out = \"%{http_code}\\n\""
        }' "$WORK/truth.txt" "$1" >"$WORK/answers.curl"
    curl -s -m 300 -K "$WORK/answers.curl"
}

jq -r 'select(.status == "queued") | "\(.id) \(.task_id) \(.proposal.value // "")"' \
    "$WORK/results.jsonl" >"$WORK/tasks.txt"
head -n 999 "$WORK/tasks.txt" >"$WORK/first.txt"
tail -n 1 "$WORK/tasks.txt" >"$WORK/last.txt"
[ "$(answer_tasks "$WORK/first.txt" | grep -c '^200$')" = 999 ] || fail "999 answers not all 200"
expect_http 200 GET '/v1/audit?event=model.refit'
[ "$(jqb '.entries | length')" = 0 ] || fail "a refit before 1,000 answers: $(cat "$WORK/body")"
[ "$(answer_tasks "$WORK/last.txt")" = 200 ] || fail "the 1,000th answer failed"
echo "ok: 1,000 answers over HTTP"

# The refit thread fits and commits: 60 s at most.
for _ in $(seq 1 600); do
    http GET '/v1/audit?event=model.refit'
    [ "$STATUS" = 200 ] && [ "$(jqb '.entries | length')" = 1 ] && break
    sleep 0.1
done
[ "$(jqb '.entries | length')" = 1 ] || fail "no refit within 60 s: $(cat "$WORK/body")"
[ "$(jqb '.entries[0].actor')" = tandem ] || fail "refit actor: $(cat "$WORK/body")"
[ "$(jqb '.entries[0].data.model_version')" = 1002 ] || fail "refit version: $(cat "$WORK/body")"
[ "$(jqb '.entries[0].data.n_train')" = 1300 ] || fail "refit rows: $(cat "$WORK/body")"
accuracy=$(jqb '.entries[0].data.oof_accuracy')
expect_number "refit out-of-fold accuracy" "$accuracy" ">=" 0.5
expect_http 200 GET /v1/processes/support-triage
[ "$(jqb '.steps[0].model_version')" = 1002 ] || fail "model version: $(cat "$WORK/body")"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM checks WHERE source != 'crossfit' OR model_version != 1002")" = 0 ] ||
    fail "checks of older models are left"
expect_http 200 GET /metrics
grep -qx 'tandem_model_fit_examples{process="support-triage",step="triage"} 1300' "$WORK/body" ||
    fail "metrics: $(grep tandem_model_ "$WORK/body")"
echo "ok: refitted on 300 + 1,000 rows as model version 1002 (out-of-fold accuracy $accuracy)"

# A restart keeps it, and the next answer teaches it.
stop_server
start_server "$DB"
expect_http 200 GET /v1/processes/support-triage
[ "$(jqb '.steps[0].model_version')" = 1002 ] || fail "after a restart: $(cat "$WORK/body")"
"$TANDEM" submit --process support-triage --url "$BASE" "$WORK/one.csv" >"$WORK/one.jsonl" ||
    fail "submit failed"
task=$(jq -r .task_id "$WORK/one.jsonl")
expect_http 200 POST "/v1/tasks/$task/complete" -H 'Content-Type: application/json' \
    -d '{"action": "accept"}'
[ "$(jqb .decision.model_version)" = 1003 ] || fail "next answer: $(cat "$WORK/body")"
echo "ok: after a restart the refitted model is in force and learns (version 1003)"

# refit: off — the same 1,000 answers make no refit.
sed 's/^process: support-triage/process: triage-off/; s/    model: linear/    model: linear\n    refit: off/' \
    "$WORK/hybrid.yaml" >"$WORK/off.yaml"
expect_http 200 PUT /v1/processes/triage-off -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/off.yaml"
[ "$(jqb '.steps[0].refit')" = off ] || fail "refit: off: $(cat "$WORK/body")"
"$TANDEM" submit --process triage-off --url "$BASE" --batch 500 "$WORK/items.csv" \
    >"$WORK/off.jsonl" || fail "submit failed"
sqlite3 "$DB" "SELECT id, json_extract(fields, '$.truth') FROM items" | tr '|' ' ' >"$WORK/truth.txt"
jq -r 'select(.status == "queued") | "\(.id) \(.task_id) \(.proposal.value // "")"' \
    "$WORK/off.jsonl" >"$WORK/tasks.txt"
[ "$(answer_tasks "$WORK/tasks.txt" | grep -c '^200$')" = 1000 ] || fail "answers not all 200"
sleep 1
[ "$(sqlite3 "$DB" "SELECT count(*) FROM models WHERE process = 'triage-off' AND reason = 'refit'")" = 0 ] ||
    fail "a step with refit: off was refitted"
expect_http 200 GET /v1/processes/triage-off
[ "$(jqb '.steps[0].model_version')" = 1000 ] || fail "triage-off: $(cat "$WORK/body")"
echo "ok: refit: off learns online only (1,000 versions, no refit)"

# A refit under way when the server stops: the fit stops at once (it is asked between its
# passes over the rows) instead of holding the shutdown for the whole fit, nothing of it is
# committed, and the next answer after the restart makes it due again. 6,000 rows of history
# make a refit due at the 3,000th answer, a fit on 9,000 rows: seconds of work.
sed 's/^process: support-triage/process: triage-stop/' "$WORK/hybrid.yaml" >"$WORK/stop.yaml"
expect_http 200 PUT /v1/processes/triage-stop -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/stop.yaml"
cut_rows stop-history.csv text,category 0 6000
cut_rows stop-items.csv text,truth 6000 9001
expect_http 200 POST /v1/processes/triage-stop/train -H 'Content-Type: text/csv' \
    --data-binary @"$WORK/stop-history.csv"
"$TANDEM" submit --process triage-stop --url "$BASE" --batch 500 "$WORK/stop-items.csv" \
    >"$WORK/stop.jsonl" || fail "submit failed"
sqlite3 "$DB" "SELECT id, json_extract(fields, '$.truth') FROM items WHERE process = 'triage-stop'" |
    tr '|' ' ' >"$WORK/truth.txt"
jq -r 'select(.status == "queued") | "\(.id) \(.task_id) \(.proposal.value // "")"' \
    "$WORK/stop.jsonl" >"$WORK/tasks.txt"
[ "$(wc -l <"$WORK/tasks.txt")" = 3001 ] || fail "expected 3001 queued items"
head -n 3000 "$WORK/tasks.txt" >"$WORK/first.txt"
tail -n 1 "$WORK/tasks.txt" >"$WORK/last.txt"
[ "$(answer_tasks "$WORK/first.txt" | grep -c '^200$')" = 3000 ] || fail "3,000 answers not all 200"
t0=$(date +%s%N)
stop_server
stop_ms=$((($(date +%s%N) - t0) / 1000000))
refits=$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE event IN ('model.refit', 'model.refit_declined') AND subject LIKE 'triage-stop/%'")
[ "$refits" = 0 ] || fail "the refit was not stopped: $refits entries ($stop_ms ms to stop)"
[ "$(sqlite3 "$DB" "SELECT coalesce(refit_tried, 0) FROM steps WHERE process = 'triage-stop'")" = 0 ] ||
    fail "a stopped refit was recorded as tried"
expect_number "ms to stop with a refit under way" "$stop_ms" "<=" 5000
start_server "$DB"
[ "$(answer_tasks "$WORK/last.txt")" = 200 ] || fail "the answer after the restart failed"
for _ in $(seq 1 600); do
    [ "$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE event IN ('model.refit', 'model.refit_declined') AND subject LIKE 'triage-stop/%'")" = 1 ] && break
    sleep 0.1
done
[ "$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE event = 'model.refit' AND subject LIKE 'triage-stop/%'")" = 1 ] ||
    fail "no refit after the restart: $(sqlite3 "$DB" "SELECT event, data FROM audit WHERE subject LIKE 'triage-stop/%' AND event LIKE 'model.%'")"
echo "ok: a refit under way stopped with the server ($stop_ms ms) and ran after the restart"

stop_server
echo "PASS refit"
