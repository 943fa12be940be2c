# lib.sh — helpers for the integration tests, which drive the real tandem binary.
# Source it after setting TANDEM (the binary under test). Every check prints what it
# expected and what it got, and the first failure ends the test with status 1.

set -euo pipefail

: "${TANDEM:?set TANDEM to the tandem binary}"
SRC=${TDM_SOURCE_DIR:?set TDM_SOURCE_DIR to the repository root}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tandem-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# json_get KEY < one-line JSON object: prints the value (numbers, null, true/false).
json_get() {
    awk -v key="\"$1\"" '
        {
            gsub(/^[{]|[}]$/, "");
            n = split($0, parts, /, "/);
            for (i = 1; i <= n; i++) {
                p = parts[i];
                if (i > 1) p = "\"" p;
                split(p, kv, /": /);
                if (kv[1] "\"" == key) { print kv[2]; found = 1 }
            }
        }
        END { if (!found) exit 1 }'
}

# json_keys < one-line JSON object: prints the keys, one per line, in order.
json_keys() {
    grep -o '"[a-z0-9_]*": ' | sed 's/"\([a-z0-9_]*\)": /\1/'
}

# expect_number NAME VALUE OP LIMIT: checks VALUE OP LIMIT numerically (OP is >= or <=).
expect_number() {
    local name=$1 value=$2 op=$3 limit=$4
    awk -v v="$value" -v l="$limit" -v op="$op" 'BEGIN {
        if (v == "null" || v == "") exit 1;
        ok = (op == ">=") ? (v + 0 >= l + 0) : (op == "<=") ? (v + 0 <= l + 0) : (op == ">") ? (v + 0 > l + 0) : 0;
        exit ok ? 0 : 1 }' || fail "$name = $value, expected $op $limit"
    echo "ok: $name = $value ($op $limit)"
}

# expect_fail STATUS PATTERN -- COMMAND...: runs COMMAND, wants exit STATUS and PATTERN
# (a grep -E expression) in its standard error.
expect_fail() {
    local want=$1 pattern=$2
    shift 3
    local status=0
    "$@" >"$WORK/out" 2>"$WORK/err" || status=$?
    [ "$status" -eq "$want" ] || fail "$* exited $status, expected $want; stderr: $(cat "$WORK/err")"
    grep -Eq -- "$pattern" "$WORK/err" || fail "$*: stderr does not match /$pattern/: $(cat "$WORK/err")"
    echo "ok: $(head -c 160 "$WORK/err" | head -n 1)"
}

# ---- a tandem server for a test --------------------------------------------------------------

SERVER_PID=
BASE=
# Every server a test starts makes this its admin token on a fresh database (and the CLI's
# --url calls send it); a test acts as someone else with AS=TOKEN before http/expect_http.
ADMIN_TOKEN="tdm_test_$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
export TANDEM_ADMIN_TOKEN=$ADMIN_TOKEN TANDEM_TOKEN=$ADMIN_TOKEN

# start_server DB [serve options...]: starts `tandem serve` on a free port of 127.0.0.1 and
# sets BASE and SERVER_PID; waits at most 10 s for it to listen.
start_server() {
    local db=$1
    shift
    # A restarted server writes the same file: without this, the wait below could read the
    # line of the server before it (the new one truncates the file only once it runs) and
    # take its port, which nothing listens on any more.
    rm -f "$WORK/serve.out"
    "$TANDEM" serve --db "$db" --listen 127.0.0.1:0 --quiet "$@" >"$WORK/serve.out" 2>"$WORK/serve.err" &
    SERVER_PID=$!
    local line=
    for _ in $(seq 1 100); do
        line=$(grep "listening on" "$WORK/serve.out" 2>/dev/null) && break
        kill -0 "$SERVER_PID" 2>/dev/null || fail "tandem serve exited: $(cat "$WORK/serve.err")"
        sleep 0.1
    done
    [[ "$line" =~ http://127\.0\.0\.1:([0-9]+)$ ]] || fail "tandem serve did not listen within 10 s"
    BASE="http://127.0.0.1:${BASH_REMATCH[1]}"
}

# stop_server [SIGNAL]: stops the server (TERM by default) and waits for it.
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -"${1:-TERM}" "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}

trap 'stop_server KILL; rm -rf "$WORK"' EXIT

# http METHOD PATH [curl options...]: sets STATUS; the body is in $WORK/body. Sends the
# token in $AS (the admin token when unset; none when AS=none).
http() {
    local method=$1 path=$2 token=${AS:-$ADMIN_TOKEN}
    shift 2
    local auth=()
    [ "$token" = none ] || auth=(-H "Authorization: Bearer $token")
    STATUS=$(curl -s -m 60 -X "$method" -o "$WORK/body" -w '%{http_code}' "${auth[@]}" "$@" "$BASE$path" || echo 000)
}

# make_token NAME ROLE [SCOPE]: creates a token through the running server (as admin) and
# prints it.
make_token() {
    "$TANDEM" token create --name "$1" --role "$2" ${3:+--scope "$3"} --url "$BASE" 2>/dev/null ||
        fail "token create $1 $2 failed"
}

# expect_http STATUS METHOD PATH [curl options...]: like http, and checks the status.
expect_http() {
    local want=$1
    shift
    http "$@"
    [ "$STATUS" = "$want" ] || fail "$1 $2: status $STATUS, expected $want: $(head -c 300 "$WORK/body")"
}

# jqb FILTER: runs jq on the last answer's body (raw output).
jqb() {
    jq -r "$1" "$WORK/body"
}

# db_digest DB: a digest of everything stored (every table, as SQL), for "nothing changed".
db_digest() {
    sqlite3 "$1" .dump | sha256sum | cut -d' ' -f1
}
