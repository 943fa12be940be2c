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
