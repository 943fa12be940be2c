#!/usr/bin/env bash
# The HTTP API's basics over real HTTP against `tandem serve` on a temporary database:
# statuses and JSON errors for unknown routes, wrong methods, wrong content types, bodies
# over the limit and malformed JSON; a process put and read back; the commands that work
# through a server (--url); and a clean stop on SIGTERM.
TANDEM=$1
source "$(dirname "$0")/lib.bash"

SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A minimal valid process (docs/process-file.md): one hybrid step, untrained.
cat >"$WORK/process.yaml" <<'EOF'
process: http-test
owner: ops@example.com
kpis: [first_response_minutes]
baseline:
  minutes_per_item: 4.5
  error_rate: 0.06
steps:
  - id: triage
    allocation: hybrid
    owner: ops@example.com
    inputs:
      - name: text
        kind: text
    output:
      field: category
      labels: [billing, technical]
    model: linear
    guardrails:
      queue: support
EOF

"$TANDEM" serve --db "$WORK/tandem.db" --listen 127.0.0.1:0 --threads 2 \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "tandem serve exited: $(cat "$WORK/serve.err")"
    sleep 0.1
done
LINE=$(grep "listening on" "$WORK/serve.out") || fail "tandem serve did not say it listens within 10 s"
[[ "$LINE" =~ ^tandem:\ listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]] || fail "unexpected line: $LINE"
PORT=${BASH_REMATCH[1]}
[ "$PORT" -gt 0 ] || fail "port 0 reported"
BASE="http://127.0.0.1:$PORT"
echo "ok: $LINE"

# call METHOD PATH [curl options...]: prints the status; the body is in $WORK/body and the
# headers in $WORK/headers. Sends the token in $AS (the admin's when unset, none for none).
call() {
    local method=$1 path=$2 token=${AS:-$ADMIN_TOKEN}
    shift 2
    local auth=()
    [ "$token" = none ] || auth=(-H "Authorization: Bearer $token")
    curl -s -m 30 -X "$method" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "${auth[@]}" \
        "$@" "$BASE$path" || true
}

# expect STATUS METHOD PATH [curl options...]: checks the status; an error answer must be
# our JSON error shape.
expect() {
    local want=$1
    shift
    local got
    got=$(call "$@")
    [ "$got" = "$want" ] || fail "$1 $2: status $got, expected $want; body: $(head -c 400 "$WORK/body")"
    grep -qi '^X-Content-Type-Options: nosniff' "$WORK/headers" || fail "$1 $2: no nosniff header"
    if [ "$want" -ge 400 ]; then
        grep -qi '^Content-Type: application/json' "$WORK/headers" || fail "$1 $2: error not JSON"
        grep -Eq '^\{"error": ?\{"code": ?"[a-z_]+", ?"message": ?".+", ?"field": ?".*"\}\}$' "$WORK/body" ||
            fail "$1 $2: error body not {\"error\": {code, message, field}}: $(cat "$WORK/body")"
    fi
    echo "ok: $1 ${2:0:80} -> $got"
}

# body_has PATTERN: the last answer matches the grep -E pattern.
body_has() {
    grep -Eq -- "$1" "$WORK/body" || fail "answer does not match /$1/: $(head -c 400 "$WORK/body")"
}

expect 200 GET /healthz
body_has '"status": ?"ok"'
grep -qi '^Content-Type: application/json' "$WORK/headers" || fail "/healthz is not JSON"

expect 404 GET /v1/nothing-here
body_has '"code": ?"not_found"'
expect 404 GET /v1/processes/
expect 405 DELETE /v1/processes/http-test
body_has '"code": ?"method_not_allowed"'
grep -qi '^Allow: GET, HEAD, PUT' "$WORK/headers" || fail "405 without the Allow header"
expect 405 GET /v1/tasks/t1/claim
grep -qi '^Allow: POST' "$WORK/headers" || fail "405 without Allow: POST"

expect 415 POST /v1/tasks/t1/complete -H 'Content-Type: text/plain' --data-binary '{}'
body_has '"code": ?"unsupported_media_type"'
expect 415 PUT /v1/processes/http-test -H 'Content-Type: application/json' --data-binary '{}'
expect 415 POST /v1/processes/http-test/train -H 'Content-Type: application/json' --data-binary '{}'

# Small bodies are capped at 1 MiB: 2 MiB is refused before it is read.
head -c 2097152 /dev/zero | tr '\0' ' ' >"$WORK/big.json"
expect 413 POST /v1/tasks/x/claim -H 'Content-Type: application/json' --data-binary @"$WORK/big.json"
body_has '"code": ?"too_large"'

expect 400 POST /v1/tasks/x/claim -H 'Content-Type: application/json' --data-binary '{"lease_seconds": '
body_has '"code": ?"bad_request"'
expect 422 POST /v1/tasks/x/claim -H 'Content-Type: application/json' --data-binary '{"lease_seconds": -5}'
body_has '"field": ?"lease_seconds"'
expect 400 GET '/v1/queues/support/tasks?limit=0'
body_has '"field": ?"limit"'
expect 400 GET '/v1/queues/support/tasks?state=lost'
body_has '"field": ?"state"'
expect 400 GET '/v1/audit?limit=5000'
expect 400 GET /v1/items/bad%zzescape
expect 400 GET "/v1/processes/$(printf 'n%.0s' $(seq 1 201))"
body_has '"field": ?"name"'

# Without a token, or with one that is not tandem's: 401 with a challenge; /healthz is open.
AS=none expect 401 GET /v1/processes
body_has '"code": ?"unauthorized"'
grep -qi '^WWW-Authenticate: Bearer' "$WORK/headers" || fail "401 without WWW-Authenticate"
AS="tdm_$(printf 'x%.0s' $(seq 1 43))" expect 401 GET /v1/processes
AS=none expect 401 POST /v1/processes/http-test/items -H 'Content-Type: application/json' -d '{}'
AS=none expect 200 GET /healthz

# A process: put, read back, listed; a missing one is 404.
expect 200 PUT /v1/processes/http-test -H 'Content-Type: application/yaml' \
    --data-binary @"$WORK/process.yaml"
body_has '"name": ?"http-test"'
expect 200 GET /v1/processes/http-test
body_has '"name": ?"http-test"'
expect 200 GET /v1/processes
body_has '"http-test"'
expect 404 GET /v1/processes/no%2Fsuch
expect 200 GET '/v1/queues/support/tasks?state=open&limit=10'
body_has '"tasks": ?\['
expect 200 GET '/v1/audit?after=0&limit=10'
body_has '"entries": ?\['
expect 200 GET /v1/audit/verify
body_has '"ok": ?true'

# The commands that work through a server.
"$TANDEM" process validate "$WORK/process.yaml" >"$WORK/out"
grep -q "process.yaml: ok (process http-test, 1 step)" "$WORK/out" || fail "process validate: $(cat "$WORK/out")"
"$TANDEM" process apply "$WORK/process.yaml" --url "$BASE" >"$WORK/out"
grep -q "applied (process http-test" "$WORK/out" || fail "process apply: $(cat "$WORK/out")"
echo "ok: process validate and process apply --url"
printf 'id,text\nm1,my card was charged twice\nm2,the app crashes on start\n' >"$WORK/items.csv"
"$TANDEM" submit --process http-test "$WORK/items.csv" --url "$BASE" >"$WORK/out"
[ "$(grep -Ec '"status": ?"(queued|decided)"' "$WORK/out")" -eq 2 ] || fail "submit: expected 2 result lines: $(cat "$WORK/out")"
echo "ok: submit --url gave 2 results"
expect 200 GET /v1/items/m1
"$TANDEM" export decisions --format csv --url "$BASE" >/dev/null || fail "export decisions --url"
"$TANDEM" audit verify --url "$BASE" >"$WORK/out" || fail "audit verify --url: $(cat "$WORK/out")"
grep -q "^audit trail ok: [0-9]* entries$" "$WORK/out" || fail "audit verify: $(cat "$WORK/out")"
echo "ok: $(cat "$WORK/out") (--url)"
expect_fail 1 "no process named|not found|http-nope" -- \
    "$TANDEM" submit --process http-nope "$WORK/items.csv" --url "$BASE"
expect_fail 1 "127.0.0.1:1" -- "$TANDEM" audit verify --url http://127.0.0.1:1
expect_fail 2 "exactly one of --db" -- "$TANDEM" audit verify

# The request log names every request.
grep -Eq '^GET /healthz 200 [0-9]+ [0-9.]+$' "$WORK/serve.err" || fail "no request log line: $(head -5 "$WORK/serve.err")"
echo "ok: request log"

# SIGTERM stops the server cleanly, and the database is then readable directly.
kill -TERM "$SERVER_PID"
for _ in $(seq 1 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$SERVER_PID" 2>/dev/null && fail "tandem serve still running 10 s after SIGTERM"
status=0
wait "$SERVER_PID" || status=$?
SERVER_PID=
[ "$status" -eq 0 ] || fail "tandem serve exited $status after SIGTERM: $(tail -5 "$WORK/serve.err")"
echo "ok: stopped on SIGTERM"
"$TANDEM" audit verify --db "$WORK/tandem.db" >"$WORK/out" || fail "audit verify --db: $(cat "$WORK/out")"
echo "ok: $(cat "$WORK/out") (--db)"

"$TANDEM" serve --help | grep -q -- "--listen" || fail "serve --help"
for cmd in "process" "train" "submit" "export" "audit"; do
    "$TANDEM" $cmd --help | grep -q -- "--url" || fail "$cmd --help does not mention --url"
done
echo "ok: --help"
