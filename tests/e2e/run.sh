#!/usr/bin/env bash
# tests/e2e/run.sh TANDEM_BINARY [--docs]
#
# The browser tests of the workspace: sets up a support-triage process on a fresh database
# (trained on examples/support-triage/data/train.csv), tokens (admin; ana and bob, reviewers
# of the support queue; olga, owner of support-triage; vic, a viewer; intake, a service),
# starts `tandem serve` on a free port of 127.0.0.1, sends
# it about 300 test messages and runs workspace.test.mjs, which drives Debian's chromium
# (headless, through playwright-core) against it.
#
# Screenshots go to $TDM_E2E_SCREENSHOTS (default build/e2e/screenshots/); with --docs they
# are copied into docs/img/ too. TDM_E2E_SKIP=1 skips the test (exit 0); anything else
# missing is a failure.

set -euo pipefail

usage() {
    echo "usage: tests/e2e/run.sh TANDEM_BINARY [--docs]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
TANDEM=$1
shift
DOCS=0
for arg in "$@"; do
    case $arg in
    --docs) DOCS=1 ;;
    *) usage ;;
    esac
done

if [ "${TDM_E2E_SKIP:-}" = 1 ]; then
    echo "e2e: skipped (TDM_E2E_SKIP=1)"
    exit 0
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
case $TANDEM in /*) ;; *) TANDEM="$PWD/$TANDEM" ;; esac
CHROMIUM=${TDM_CHROMIUM:-/usr/bin/chromium}

fail() {
    echo "e2e: FAIL: $*" >&2
    exit 1
}

[ -x "$TANDEM" ] || fail "no tandem binary at $TANDEM (build it first: cmake --build build)"
command -v node >/dev/null || fail "node is missing: run scripts/deps.sh"
[ -x "$CHROMIUM" ] || fail "chromium is missing at $CHROMIUM: run scripts/deps.sh (apt-get install chromium)"
[ -d "$HERE/node_modules/playwright-core" ] && [ -f "$HERE/node_modules/axe-core/axe.min.js" ] ||
    fail "tests/e2e/node_modules is missing playwright-core or axe-core: run npm ci --prefix tests/e2e (scripts/deps.sh does)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tandem-e2e.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        # Bounded: a server that does not stop within 5 s is killed.
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${TDM_E2E_KEEP:-}" = 1 ]; then
        echo "e2e: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

DB=$WORK/tandem.db
START=$(date +%s)
step() { echo "e2e: [$(($(date +%s) - START))s] $*"; }

step "applying the support-triage process and training it"
timeout 60 "$TANDEM" process apply "$SRC/examples/support-triage/process.yaml" --db "$DB" >/dev/null
timeout 120 "$TANDEM" train --process support-triage "$SRC/examples/support-triage/data/train.csv" --db "$DB" >"$WORK/train.out"

token() {
    timeout 30 "$TANDEM" token create --name "$1" --role "$2" ${3:+--scope "$3"} --db "$DB" 2>"$WORK/token.err" ||
        fail "tandem token create --name $1 --role $2 failed: $(cat "$WORK/token.err")"
}
ADMIN_TOKEN=$(token admin admin)
ANA_TOKEN=$(token ana reviewer support)
OLGA_TOKEN=$(token olga owner support-triage)
VIC_TOKEN=$(token vic viewer)
BOB_TOKEN=$(token bob reviewer support)
SVC_TOKEN=$(token intake service support-triage)

# The test messages: every tenth row of test.csv, with an id and a customer (ten messages
# per customer, so a task has earlier decisions on related items), without the true
# category (kept in truth.csv for the test). The rest of test.csv stays for the test to
# send while it runs.
node - "$SRC/examples/support-triage/data/test.csv" "$WORK" <<'EOF'
const fs = require('fs');
const [file, dir] = process.argv.slice(2);
// A CSV reader for quoted fields with "" escapes (the data has commas inside quotes).
function parse(text) {
    const rows = []; let row = [], field = '', q = false;
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (q) {
            if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
            else if (c === '"') q = false;
            else field += c;
        } else if (c === '"') q = true;
        else if (c === ',') { row.push(field); field = ''; }
        else if (c === '\n' || c === '\r') {
            if (c === '\r' && text[i + 1] === '\n') i++;
            row.push(field); field = ''; rows.push(row); row = [];
        } else field += c;
    }
    if (field !== '' || row.length) { row.push(field); rows.push(row); }
    return rows;
}
const rows = parse(fs.readFileSync(file, 'utf8')).slice(1).filter(r => r.length === 2);
const esc = s => '"' + s.replace(/"/g, '""') + '"';
const items = ['id,text,customer'], truth = ['id,text,category'], rest = [];
rows.forEach((r, i) => {
    if (i % 10 === 0 && items.length <= 300) {
        const n = items.length;
        const id = 'msg-' + String(n).padStart(4, '0');
        items.push([id, esc(r[0]), 'c-' + (n % 30)].join(','));
        truth.push([id, esc(r[0]), r[1]].join(','));
    } else rest.push(JSON.stringify({ text: r[0], category: r[1] }));
});
fs.writeFileSync(dir + '/items.csv', items.join('\n') + '\n');
fs.writeFileSync(dir + '/truth.csv', truth.join('\n') + '\n');
fs.writeFileSync(dir + '/rest.jsonl', rest.join('\n') + '\n');
EOF

step "starting tandem serve"
"$TANDEM" serve --db "$DB" --listen 127.0.0.1:0 --quiet >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
line=
for _ in $(seq 1 100); do
    line=$(grep "listening on" "$WORK/serve.out" 2>/dev/null) && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "tandem serve exited: $(cat "$WORK/serve.err")"
    sleep 0.1
done
[[ "$line" =~ (http://127\.0\.0\.1:[0-9]+)$ ]] || fail "tandem serve did not listen within 10 s: $(cat "$WORK/serve.err")"
URL=${BASH_REMATCH[1]}
for _ in $(seq 1 50); do
    curl -fs -m 2 "$URL/healthz" >/dev/null && break
    sleep 0.1
done
curl -fs -m 2 "$URL/healthz" >/dev/null || fail "$URL/healthz does not answer"

step "submitting $(($(wc -l <"$WORK/items.csv") - 1)) messages to $URL"
TANDEM_TOKEN=$ADMIN_TOKEN timeout 60 "$TANDEM" submit --process support-triage --url "$URL" "$WORK/items.csv" >"$WORK/submitted.jsonl"
step "$(grep -c '"decided"' "$WORK/submitted.jsonl" || true) decided by the AI, $(grep -c '"queued"' "$WORK/submitted.jsonl" || true) queued"

SHOTS=${TDM_E2E_SCREENSHOTS:-$SRC/build/e2e/screenshots}
mkdir -p "$SHOTS"
rm -f "$SHOTS"/failed-*.png

step "running workspace.test.mjs against chromium"
status=0
TDM_URL=$URL TDM_WORK=$WORK TDM_SRC=$SRC TDM_CHROMIUM=$CHROMIUM TDM_E2E_SCREENSHOTS=$SHOTS \
    TDM_ADMIN_TOKEN=$ADMIN_TOKEN TDM_ANA_TOKEN=$ANA_TOKEN TDM_OLGA_TOKEN=$OLGA_TOKEN \
    TDM_VIC_TOKEN=$VIC_TOKEN TDM_BOB_TOKEN=$BOB_TOKEN TDM_SVC_TOKEN=$SVC_TOKEN \
    timeout 170 node "$HERE/workspace.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
    [ "$status" -eq 124 ] && echo "e2e: FAIL: workspace.test.mjs ran out of its 170 s" >&2
    echo "e2e: server log (last 20 lines):" >&2
    tail -n 20 "$WORK/serve.err" >&2 || true
    exit "$status"
fi

# The server stops cleanly, and a sanitizer build (TDM_SANITIZE) found nothing while the
# browser used it.
kill -TERM "$SERVER_PID"
for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SERVER_PID" 2>/dev/null && fail "tandem serve did not stop within 10 s of SIGTERM"
serve_status=0
wait "$SERVER_PID" || serve_status=$?
SERVER_PID=
if grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:" "$WORK/serve.err"; then
    grep -E -A 20 "AddressSanitizer|LeakSanitizer|runtime error:" "$WORK/serve.err" | head -n 60 >&2
    fail "the sanitizers reported the above in tandem serve"
fi
[ "$serve_status" -eq 0 ] || fail "tandem serve exited $serve_status on SIGTERM: $(tail -n 5 "$WORK/serve.err")"

if [ "$DOCS" = 1 ]; then
    mkdir -p "$SRC/docs/img"
    cp "$SHOTS"/*.png "$SRC/docs/img/"
    step "screenshots copied into docs/img/"
fi
step "done"
