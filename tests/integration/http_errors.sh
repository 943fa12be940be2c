#!/usr/bin/env bash
# Bad input over HTTP gets its clear error (status, JSON error code, the field at fault) and
# leaves everything stored exactly as it was: the whole database is digested before and
# after every refused request.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DB=$WORK/tandem.db

cat >"$WORK/process.yaml" <<'EOF'
process: errors
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
    guardrails:
      queue: sorting
EOF
start_server "$DB" --threads 2 --process "$WORK/process.yaml"
ANA=$(make_token ana reviewer sorting)
BEN=$(make_token ben reviewer sorting)
expect_http 200 POST /v1/processes/errors/items -H 'Content-Type: application/json' \
    -d '{"id": "one", "text": "my invoice is wrong"}'
TASK=$(jqb .task_id)
AS=$ANA expect_http 200 POST "/v1/tasks/$TASK/claim" -H 'Content-Type: application/json' \
    -d '{"lease_seconds": 600}'

# refused STATUS CODE FIELD METHOD PATH [curl options...]: the request is refused with that
# status, error code and field ("-" for any field), and nothing stored changes.
refused() {
    local status=$1 code=$2 field=$3
    shift 3
    local before after
    before=$(db_digest "$DB")
    expect_http "$status" "$@"
    [ "$(jqb .error.code)" = "$code" ] || fail "$1 $2: error code $(jqb .error.code), expected $code"
    [ "$field" = - ] || [ "$(jqb .error.field)" = "$field" ] ||
        fail "$1 $2: field \"$(jqb .error.field)\", expected \"$field\""
    [ -n "$(jqb .error.message)" ] || fail "$1 $2: no message"
    after=$(db_digest "$DB")
    [ "$before" = "$after" ] || fail "$1 $2: the stored data changed"
    echo "ok: $status $code: $(jqb .error.message | head -c 140)"
}

J='Content-Type: application/json'
refused 400 bad_request - POST /v1/processes/errors/items -H "$J" -d '{"text": "unclosed'
refused 400 bad_request - POST /v1/processes/errors/items -H 'Content-Type: application/x-ndjson' \
    --data-binary $'{"text": "fine"}\n{"text": "also fine"}\n{broken}\n'
grep -q "line 3" "$WORK/body" || fail "the batch error does not name line 3: $(cat "$WORK/body")"
refused 415 unsupported_media_type - POST /v1/processes/errors/items -H 'Content-Type: text/plain' \
    -d '{"text": "x"}'
refused 404 not_found - POST /v1/processes/nope/items -H "$J" -d '{"text": "x"}'
head -c 2097152 /dev/zero | tr '\0' 'a' | sed 's/^/{"text": "/; s/$/"}/' >"$WORK/big.json"
refused 413 too_large - POST /v1/processes/errors/items -H "$J" --data-binary @"$WORK/big.json"
# Field limits, under the body limit: a 300 KiB field (at most 256 KiB), 300 fields (256).
head -c 307200 /dev/zero | tr '\0' 'a' | sed 's/^/{"text": "/; s/$/"}/' >"$WORK/field.json"
refused 413 too_large text POST /v1/processes/errors/items -H "$J" --data-binary @"$WORK/field.json"
awk 'BEGIN { printf "{\"text\": \"fine\"}\n{"; for (i = 0; i < 300; i++) printf "%s\"f%d\": %d", i ? ", " : "", i, i; print "}" }' \
    >"$WORK/wide.jsonl"
refused 413 too_large - POST /v1/processes/errors/items -H 'Content-Type: application/x-ndjson' \
    --data-binary @"$WORK/wide.jsonl"
grep -q "line 2" "$WORK/body" || fail "the wide item's error does not name line 2: $(cat "$WORK/body")"
refused 422 invalid id POST /v1/processes/errors/items -H "$J" -d '{"id": 7, "text": "x"}'
AS=$BEN refused 409 conflict task POST "/v1/tasks/$TASK/claim" -H "$J" -d '{}'
AS=$ANA refused 422 invalid value POST "/v1/tasks/$TASK/complete" -H "$J" \
    -d '{"action": "correct", "value": 42}'
AS=$ANA refused 422 invalid value POST "/v1/tasks/$TASK/complete" -H "$J" \
    -d '{"action": "correct", "value": "marketing"}'
AS=$ANA refused 422 invalid action POST "/v1/tasks/$TASK/complete" -H "$J" \
    -d '{"action": "approve"}'
refused 404 not_found - POST /v1/tasks/tsk_nope/complete -H "$J" -d '{"action": "accept"}'
refused 422 invalid verdict POST /v1/decisions/dec_nope/feedback -H "$J" -d '{"verdict": "meh"}'
refused 404 not_found - POST /v1/decisions/dec_nope/feedback -H "$J" -d '{"verdict": "accurate"}'
sed 's/allocation: hybrid/allocation: auto/' "$WORK/process.yaml" >"$WORK/bad.yaml"
refused 422 invalid steps[0].allocation PUT /v1/processes/errors -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/bad.yaml"
grep -q 'errors.yaml:9' "$WORK/body" || fail "the YAML error does not name line 9: $(cat "$WORK/body")"
refused 422 invalid - POST /v1/processes/errors/train -H 'Content-Type: text/csv' \
    --data-binary $'subject,team\nhello,billing\n'
refused 400 bad_request - GET '/v1/queues/sorting/tasks?limit=abc'

# The task is still Ana's and still answerable.
AS=$ANA expect_http 200 POST "/v1/tasks/$TASK/complete" -H "$J" \
    -d '{"action": "correct", "value": "billing"}'
[ "$(jqb .decision.value)" = billing ] || fail "complete: $(cat "$WORK/body")"
echo "ok: after all that, the task completes normally"
