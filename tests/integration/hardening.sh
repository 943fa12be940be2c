#!/usr/bin/env bash
# Hardening: per-token rate limits (429 with Retry-After, one bucket per token), security
# headers on every answer, and a slow client cut off at the timeout.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DB=$WORK/tandem.db

start_server "$DB" --rate-limit 1 --timeout 2
VIEWER=$(make_token vic viewer)

# 40 requests at once from the admin token (1 a second, bursts of 2): a few pass, then 429s.
ok=0 limited=0
for i in $(seq 1 40); do
    STATUS=$(curl -s -D "$WORK/h" -o "$WORK/body" -w '%{http_code}' \
        -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/v1/processes")
    case $STATUS in
    200) ok=$((ok + 1)) ;;
    429)
        limited=$((limited + 1))
        cp "$WORK/h" "$WORK/headers"
        [ "$(jqb .error.code)" = rate_limited ] || fail "429 body: $(cat "$WORK/body")"
        ;;
    *) fail "request $i: status $STATUS: $(cat "$WORK/body")" ;;
    esac
done
expect_number "answered 200 of 40 at once" "$ok" ">=" 2
expect_number "answered 429 of 40 at once" "$limited" ">=" 25
grep -qi '^Retry-After: [1-9]' "$WORK/headers" || fail "429 without Retry-After: $(cat "$WORK/headers")"
echo "ok: $ok answered, $limited refused with 429 and Retry-After"
# Another token has its own bucket.
AS=$VIEWER expect_http 200 GET /v1/processes
# And the limit lets the admin through again after the wait.
sleep "$(tr -d '\r' <"$WORK/headers" | awk 'tolower($1) == "retry-after:" { print $2 + 0 }')"
expect_http 200 GET /v1/processes
echo "ok: one bucket per token, refilled after Retry-After"

# Security headers on every answer, errors included.
for path in /healthz /v1/processes /v1/nothing; do
    curl -s -D "$WORK/headers" -o /dev/null -H "Authorization: Bearer $VIEWER" "$BASE$path"
    for h in 'X-Content-Type-Options: nosniff' 'X-Frame-Options: DENY' \
        "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'" \
        'Referrer-Policy: no-referrer' 'Cache-Control: no-store'; do
        grep -qiF "$h" "$WORK/headers" || fail "$path: no \"$h\" header"
    done
done
echo "ok: nosniff, frame-deny, CSP, no-referrer and no-store on every answer"

# A client that sends half a request and stalls is cut off at the timeout (2 s).
PORT=${BASE##*:}
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'POST /v1/processes/x/items HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n' >&3
start=$(date +%s)
if read -r -t 10 line <&3; then
    : # an answer (a 408 or any line) also ends it; what matters is the time
fi
exec 3<&-
elapsed=$(($(date +%s) - start))
[ "$elapsed" -le 6 ] || fail "a stalled client was held ${elapsed}s (timeout 2 s)"
echo "ok: a stalled client was cut off after about ${elapsed}s"
stop_server
