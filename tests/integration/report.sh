#!/usr/bin/env bash
# The ROI report of a month, as leadership would get it: tandem report --format html on a
# month of support-triage work, then rendered in headless Chromium (tests/e2e/report.test.mjs)
# to a PNG and an A4 PDF, checking that the charts are drawn, that nothing is fetched from
# anywhere and that the page fits its width.
#
# The month, March 2025, is played under libfaketime (the server's clock read from a file):
# each day at 09:00 a batch of messages from examples/support-triage/data/test.csv comes in
# (fewer at weekends), with a "channel" field; three reviewers answer the oldest tasks with
# the message's true intent (accepting the AI when it was right, correcting it when not), a
# claim a few minutes before each answer; every eighth task is escalated and a lead answers
# it the next day; feedback tells the truth on three of the AI's decisions a day; the owner
# pauses the AI on the 12th and resumes it on the 13th. What nobody answers waits past its
# SLA. The report's numbers are checked by tests/integration/metrics.sh; here it is the
# rendering that is tested.
#
# The files go to report/ beside the tandem binary (report.html, report.png, report-top.png,
# report-print.png, report.pdf); TDM_REPORT_DOCS=1 also copies report-top.png to
# docs/img/report.png. TDM_E2E_SKIP=1 skips the browser part (node, playwright-core and
# chromium are needed otherwise, as for tests/e2e).
TANDEM=$1
source "$(dirname "$0")/lib.bash"
EX=$SRC/examples/support-triage
P=support-triage
# The database on a RAM disk when there is one: this test is about the report, not about
# durability, and a month's thousand fsyncs would be most of its time on a busy machine.
SHM= FAKED=
trap 'stop_server KILL; [ -z "$FAKED" ] || faked_cleanup; rm -rf "$WORK"' EXIT
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    SHM=$(mktemp -d /dev/shm/tandem-report.XXXXXX)
    trap 'stop_server KILL; [ -z "$FAKED" ] || faked_cleanup; rm -rf "$WORK" "$SHM"' EXIT
fi
DB=${SHM:-$WORK}/tandem.db
OUT=$(cd "$(dirname "$TANDEM")" && pwd)/report
mkdir -p "$OUT"

FAKETIME_LIB=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)
[ -n "$FAKETIME_LIB" ] || fail "libfaketime is missing: run scripts/deps.sh --test (apt-get install faketime)"
CLOCK=$WORK/clock
at() { echo "$1" >"$CLOCK"; }

# The test messages as records (a quoted field may hold a newline), each with a channel.
awk '{ sub(/\r$/, "") }
     NR == 1 { print $0 ",channel"; next }
     { rec = rec (rec == "" ? "" : "\n") $0; n = gsub(/"/, "\"", rec) }
     n % 2 == 0 { k++; c = (k % 7 < 3) ? "mail" : (k % 7 < 5) ? "chat" : (k % 7 < 6) ? "phone" : "app";
                  print rec "," c; rec = "" }' "$EX/data/test.csv" >"$WORK/records.csv"
# record_count FILE: records (not lines) after the header.
HEADER=$(head -n 1 "$WORK/records.csv")

at "2025-02-28 18:00:00"
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
expect_http 200 PUT /v1/processes/$P -H 'Content-Type: application/yaml' --data-binary @"$EX/process.yaml"
"$TANDEM" train --process $P "$EX/data/train.csv" --url "$BASE" >/dev/null || fail "training failed"
declare -A TOKEN
for who in ana ben cara; do TOKEN[$who]=$(make_token $who reviewer support); done
TOKEN[lena]=$(make_token lena reviewer support-leads)
TOKEN[maria]=$(make_token maria owner $P)
REVIEWERS=(ana ben cara)
J='Content-Type: application/json'

# post WHO PATH BODY: must answer 200.
post() {
    AS=${TOKEN[$1]} expect_http 200 POST "$2" -H "$J" -d "$3" >/dev/null
}

# day N: the batch for March N: a slice of the records, the size by weekday.
awk_slice() { # FROM COUNT: records FROM..FROM+COUNT-1 (1-based), with the header
    awk -v from="$1" -v count="$2" -v h="$HEADER" '
        NR == 1 { print h; next }
        { rec = rec (rec == "" ? "" : "\n") $0; n = gsub(/"/, "\"", rec) }
        n % 2 == 0 { k++; if (k >= from && k < from + count) print rec; rec = "" }' "$WORK/records.csv"
}

NEXT=1
SEQ=0
START=$(date +%s)
for day in $(seq 1 31); do
    d=$(printf '2025-03-%02d' "$day")
    dow=$(date -u -d "$d" +%u) # 1 Monday .. 7 Sunday
    if [ "$dow" -ge 6 ]; then n=$((14 + day % 5)) answers=2; else n=$((30 + (day * 7) % 20)) answers=7; fi
    [ "$day" != 13 ] || answers=45 # the day after the pause, the team works off its backlog
    at "$d 09:00:00"
    awk_slice "$NEXT" "$n" >"$WORK/day.csv"
    # The true intents, one a line in the batch's order (the results come in that order).
    awk 'NR > 1 { rec = rec (rec == "" ? "" : "\n") $0; q = gsub(/"/, "\"", rec) }
         NR > 1 && q % 2 == 0 { n = split(rec, f, ","); print f[n - 1]; rec = "" }' \
        "$WORK/day.csv" >"$WORK/day.truth"
    NEXT=$((NEXT + n))
    TANDEM_TOKEN=${TOKEN[maria]} "$TANDEM" submit --process $P "$WORK/day.csv" --url "$BASE" \
        >"$WORK/day.jsonl" || fail "submit on $d failed"

    # The lead answers yesterday's escalations first thing.
    AS=${TOKEN[lena]} expect_http 200 GET "/v1/queues/support-leads/tasks?limit=100"
    jqb '.tasks[] | "\(.id) \(.proposal.value) \(.item.category)"' >"$WORK/leads.txt"
    minute=5
    while read -r id proposal truth; do
        at "$d 09:$(printf %02d $minute):00"
        post lena "/v1/tasks/$id/claim" '{"lease_seconds": 3600}'
        at "$d 09:$(printf %02d $((minute + 4))):00"
        if [ "$proposal" = "$truth" ]; then body='{"action": "accept"}'; else body="{\"action\": \"correct\", \"value\": \"$truth\"}"; fi
        post lena "/v1/tasks/$id/complete" "$body"
        minute=$((minute + 6))
        [ $minute -lt 20 ] || break
    done <"$WORK/leads.txt"

    # The reviewers answer the oldest tasks, one every seven minutes from 10:00.
    AS=${TOKEN[ana]} expect_http 200 GET "/v1/queues/support/tasks?limit=$answers"
    jqb '.tasks[] | "\(.id) \(.proposal.value) \(.item.category)"' >"$WORK/tasks.txt"
    i=0
    while read -r id proposal truth; do
        who=${REVIEWERS[$(((i + day) % 3))]}
        t=$((600 + i * 7 * 60))
        at "$d $(printf '%02d:%02d:00' $((9 + t / 3600)) $((t % 3600 / 60)))"
        post "$who" "/v1/tasks/$id/claim" '{"lease_seconds": 3600}'
        t=$((t + 60 + (SEQ * 53) % 300))
        at "$d $(printf '%02d:%02d:%02d' $((9 + t / 3600)) $((t % 3600 / 60)) $((t % 60)))"
        SEQ=$((SEQ + 1))
        if [ $((SEQ % 8)) = 0 ]; then
            body='{"action": "escalate"}'
        elif [ "$proposal" = "$truth" ]; then
            body='{"action": "accept"}'
        else
            body="{\"action\": \"correct\", \"value\": \"$truth\"}"
        fi
        post "$who" "/v1/tasks/$id/complete" "$body"
        i=$((i + 1))
    done <"$WORK/tasks.txt"

    # Feedback, the truth, on three of the day's AI decisions.
    at "$d 16:00:00"
    [ "$(wc -l <"$WORK/day.truth")" = "$(wc -l <"$WORK/day.jsonl")" ] ||
        fail "$d: $(wc -l <"$WORK/day.truth") intents for $(wc -l <"$WORK/day.jsonl") results"
    jq -r '"\(.status) \(.decision.id) \(.decision.value)"' "$WORK/day.jsonl" |
        paste -d' ' - "$WORK/day.truth" | awk '$1 == "decided" && ++k % 9 == 1' | head -n 3 >"$WORK/fb.txt"
    while read -r _ dec value truth; do
        if [ "$value" = "$truth" ]; then body='{"verdict": "accurate"}'; else body="{\"verdict\": \"inaccurate\", \"correction\": \"$truth\"}"; fi
        post "${REVIEWERS[$((day % 3))]}" "/v1/decisions/$dec/feedback" "$body"
    done <"$WORK/fb.txt"

    if [ "$day" = 12 ]; then
        at "$d 14:00:00"
        post maria "/v1/processes/$P/steps/triage/pause" '{"reason": "complaint about card messages"}'
    elif [ "$day" = 13 ]; then
        at "$d 08:30:00"
        post maria "/v1/processes/$P/steps/triage/resume" ''
    fi
done
at "2025-04-01 08:00:00"
echo "ok: a month played in $(($(date +%s) - START)) s"

"$TANDEM" report --process $P --from 2025-03-01 --to 2025-03-31 --segment channel --rate 45 \
    --currency EUR --url "$BASE" --out "$OUT/report.html" || fail "tandem report failed"
"$TANDEM" report --process $P --from 2025-03-01 --to 2025-03-31 --by week --url "$BASE" \
    --out "$OUT/report-weeks.html" || fail "tandem report --by week failed"
grep -q 'In March 2025, <b>support-triage</b> received' "$OUT/report.html" ||
    fail "the summary does not open with the month"
grep -qi '<script\|<link\|<img\|@import\|url([^#]' "$OUT/report.html" && fail "the HTML loads something"
echo "ok: report.html ($(wc -c <"$OUT/report.html") bytes)"
stop_server
faked_cleanup
if grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:" "$WORK/serve.err"; then
    grep -E -A 20 "AddressSanitizer|LeakSanitizer|runtime error:" "$WORK/serve.err" | head -n 60 >&2
    fail "the sanitizers reported the above in tandem serve"
fi

if [ "${TDM_E2E_SKIP:-}" = 1 ]; then
    echo "ok: the browser part skipped (TDM_E2E_SKIP=1)"
    exit 0
fi
E2E=$SRC/tests/e2e
command -v node >/dev/null || fail "node is missing: run scripts/deps.sh --test"
[ -d "$E2E/node_modules/playwright-core" ] ||
    fail "tests/e2e/node_modules has no playwright-core: run npm ci --prefix tests/e2e"
TDM_REPORT_DIR=$OUT timeout 120 node "$E2E/report.test.mjs" "$OUT/report.html" "$OUT/report-weeks.html" ||
    fail "report.test.mjs failed"
if [ "${TDM_REPORT_DOCS:-}" = 1 ]; then
    cp "$OUT/report-top.png" "$SRC/docs/img/report.png"
    echo "ok: docs/img/report.png"
fi
echo "ok: report"
