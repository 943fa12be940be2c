#!/usr/bin/env bash
# tandem plan, the task audit, on examples/task-audit/tasks.csv: rows land in the buckets
# the rubric (docs/plan.md) gives them, tags win, the split equals a computation of its own
# from the CSV, the JSON has its documented shape, --out writes skeletons that tandem process
# validate accepts and never overwrites without --force, and bad logs fail with file:line and
# exit 1, writing nothing.
TANDEM=$1
source "$(dirname "$0")/lib.bash"

LOG="$SRC/examples/task-audit/tasks.csv"
[ -f "$LOG" ] || fail "no example log at $LOG"

# ---- the help and the rubric ---------------------------------------------------------------
"$TANDEM" plan --help | grep -q "70-20-10" || fail "tandem plan --help does not name the rule of thumb"
"$TANDEM" plan --rubric >"$WORK/rubric" || fail "tandem plan --rubric failed"
grep -q "judgement +2" "$WORK/rubric" || fail "--rubric lacks the judgement group: $(head -20 "$WORK/rubric")"
echo "ok: --help and --rubric"

# ---- the text report -----------------------------------------------------------------------
"$TANDEM" plan "$LOG" >"$WORK/text" 2>"$WORK/err" || fail "tandem plan failed: $(cat "$WORK/err")"
[ ! -s "$WORK/err" ] || fail "stderr not empty: $(cat "$WORK/err")"
grep -q "tasks.csv: 35 tasks of 5 teams" "$WORK/text" || fail "no summary line: $(head -3 "$WORK/text")"
# row NAME BUCKET: the table's row for NAME shows BUCKET (with * when a tag decided it).
row() {
    local line
    line=$(grep -E "^$1  " "$WORK/text") || fail "no row for \"$1\""
    [[ "$line" =~ [[:space:]]$2[[:space:]] ]] || fail "row \"$1\": expected bucket $2: $line"
    echo "ok: $1 -> $2"
}
row "Match supplier invoices" "AI-only"                      # repetitive, data-heavy, 200 a week
row "Triage incoming support email" "AI-only"
row "Close accounts after a bereavement" 'human-only\*'      # tagged human-only
row "Disciplinary cases" 'human-only\*'
row "Handle complaints about damaged goods" "human-only"     # empathy, no AI word
row "Screen job applications" "hybrid"                       # held by a risk word
row "Assess water damage claims" 'hybrid\*'                  # scored AI-only, tagged regulated
row "Process payroll changes" 'hybrid\*'                     # scored AI-only, tagged sensitive
grep -q "^\* set or held by a tag a person gave the task (7 tasks)" "$WORK/text" ||
    fail "the tagged rows are not counted: $(grep '^\*' "$WORK/text")"
grep -q "tag human-only" "$WORK/text" || fail "the WHY column does not name the tag"
grep -q "70% of a team's tasks can go to the AI alone" "$WORK/text" || fail "the rule of thumb is not stated"

# --explain names the words behind each signal.
"$TANDEM" plan "$LOG" --explain >"$WORK/explain"
sed -n '/^line 25: Screen job applications/,/^$/p' "$WORK/explain" >"$WORK/screen"
grep -q "people +3 risk *shortlist" "$WORK/screen" || fail "--explain: $(cat "$WORK/screen")"
grep -q "held at hybrid by: risk" "$WORK/screen" || fail "--explain: $(cat "$WORK/screen")"
echo "ok: --explain"

# ---- the JSON, and the split computed again from the CSV -----------------------------------
"$TANDEM" plan "$LOG" --json >"$WORK/plan.json" || fail "--json failed"
[ "$(wc -l <"$WORK/plan.json")" -eq 1 ] || fail "--json is not one line"
jq -e 'keys == ["rule_of_thumb", "source", "split", "tasks", "totals"]' "$WORK/plan.json" >/dev/null ||
    fail "top-level keys: $(jq -c keys "$WORK/plan.json")"
jq -e '.rule_of_thumb == {"ai": 0.7, "hybrid": 0.2, "human": 0.1}' "$WORK/plan.json" >/dev/null ||
    fail "rule_of_thumb: $(jq -c .rule_of_thumb "$WORK/plan.json")"
jq -e '.tasks | length == 35 and all(.[];
        (keys | contains(["name", "team", "minutes", "per_week", "weekly_hours", "bucket",
                          "forced_by_tag", "signals"]))
        and (.bucket | IN("ai", "hybrid", "human"))
        and (.signals | type == "array")
        and all(.signals[]; (keys == ["matched", "signal", "toward", "weight"])))' \
    "$WORK/plan.json" >/dev/null || fail "task shape: $(jq -c '.tasks[0]' "$WORK/plan.json")"
jq -e '.split | keys == ["ai", "human", "hybrid"] and all(.[]; keys == ["hours", "share_hours", "share_tasks", "tasks"])' \
    "$WORK/plan.json" >/dev/null || fail "split shape: $(jq -c .split "$WORK/plan.json")"
echo "ok: JSON shape"

# bucket NAME: the bucket the JSON gives the task NAME.
bucket() { jq -r --arg n "$1" '.tasks[] | select(.name == $n) | .bucket' "$WORK/plan.json"; }
[ "$(bucket "Answer order status questions")" = ai ] || fail "order status: $(bucket "Answer order status questions")"
[ "$(bucket "Meet partners at trade fairs")" = human ] || fail "trade fairs: $(bucket "Meet partners at trade fairs")"
jq -e '.tasks[] | select(.name == "Close accounts after a bereavement") | .forced_by_tag == "human-only" and .bucket == "human"' \
    "$WORK/plan.json" >/dev/null || fail "the bereavement row is not forced by its tag"
jq -e '.tasks[] | select(.name == "Reset customer passwords") | .forced_by_tag == null and .bucket == "ai"' \
    "$WORK/plan.json" >/dev/null || fail "the password row"
echo "ok: buckets in the JSON"

# A CSV reader in awk, independent of tandem's (the example's records are one line each).
cat >"$WORK/csv.awk" <<'EOF'
function parse(line,    i, c, f, n, q) {
    n = 0; f = ""; q = 0
    for (i = 1; i <= length(line); i++) {
        c = substr(line, i, 1)
        if (q) {
            if (c == "\"") {
                if (substr(line, i + 1, 1) == "\"") { f = f c; i++ } else q = 0
            } else f = f c
        } else if (c == "\"") q = 1
        else if (c == ",") { F[++n] = f; f = "" }
        else f = f c
    }
    F[++n] = f
    return n
}
EOF
# Every tag "sensitive" or "regulated" in the CSV: that task is never AI-only.
awk "$(cat "$WORK/csv.awk")"'
    NR == 1 { n = parse($0); for (i = 1; i <= n; i++) col[F[i]] = i; next }
    { parse($0); if (F[col["tags"]] ~ /(^|[ ;,])(sensitive|regulated)([ ;,]|$)/) print F[col["name"]] }' \
    "$LOG" >"$WORK/held"
[ "$(wc -l <"$WORK/held")" -eq 4 ] || fail "expected 4 sensitive or regulated rows in the log, found: $(cat "$WORK/held")"
while IFS= read -r name; do
    b=$(bucket "$name")
    [ "$b" = hybrid ] || fail "\"$name\" is tagged sensitive or regulated but is $b"
done <"$WORK/held"
echo "ok: no sensitive or regulated task is AI-only ($(wc -l <"$WORK/held") tasks)"

# The split: tasks and hours per bucket from the CSV's minutes and per_week, with the JSON's
# buckets joined by name and team; the JSON's own minutes and per_week must match the CSV's.
jq -r '.tasks[] | [.name, .team, .bucket, .minutes, .per_week] | @tsv' "$WORK/plan.json" >"$WORK/buckets.tsv"
awk "$(cat "$WORK/csv.awk")"'
    BEGIN { FS = "\t" }
    FILENAME != csv { b[$1 SUBSEP $2] = $3; m[$1 SUBSEP $2] = $4; w[$1 SUBSEP $2] = $5; next }
    FNR == 1 { n = parse($0); for (i = 1; i <= n; i++) col[F[i]] = i; next }
    {
        parse($0)
        k = F[col["name"]] SUBSEP F[col["team"]]
        if (!(k in b)) { print "missing " F[col["name"]] > "/dev/stderr"; exit 1 }
        if (m[k] + 0 != F[col["minutes"]] + 0 || w[k] + 0 != F[col["per_week"]] + 0) {
            print "numbers differ for " F[col["name"]] > "/dev/stderr"; exit 1
        }
        h = F[col["minutes"]] * F[col["per_week"]] / 60
        tasks[b[k]]++; hours[b[k]] += h; all_tasks++; all_hours += h
    }
    END {
        for (x in tasks) if (x != "ai" && x != "hybrid" && x != "human") exit 1
        split("ai hybrid human", names, " ")
        for (i = 1; i <= 3; i++) {
            x = names[i]
            printf "%s %d %.9f %.9f %.9f\n", x, tasks[x], hours[x], tasks[x] / all_tasks, hours[x] / all_hours
        }
        printf "all %d %.9f\n", all_tasks, all_hours
    }' csv="$LOG" "$WORK/buckets.tsv" "$LOG" >"$WORK/expected" || fail "the awk computation failed"
jq -r '.split as $s | ("ai", "hybrid", "human") as $b
       | "\($b) \($s[$b].tasks) \($s[$b].hours) \($s[$b].share_tasks) \($s[$b].share_hours)"' \
    "$WORK/plan.json" >"$WORK/got"
jq -r '"all \(.totals.tasks) \(.totals.hours)"' "$WORK/plan.json" >>"$WORK/got"
paste -d' ' "$WORK/expected" "$WORK/got" | awk '
    {
        half = NF / 2
        if ($1 != $(half + 1)) { print "row " NR ": " $0; bad = 1; next }
        for (i = 2; i <= half; i++) {
            d = $i - $(i + half); if (d < 0) d = -d
            if (d > 1e-6) { print "row " NR " field " i ": expected " $i ", got " $(i + half); bad = 1 }
        }
    }
    END { exit bad }' || fail "the split differs from the CSV's own computation"
echo "ok: the split equals the computation from the CSV:"
sed 's/^/    /' "$WORK/expected"
# The text table shows the same numbers, rounded.
ai_hours=$(awk '$1 == "ai" { printf "%.1f", $3 }' "$WORK/expected")
grep -Eq "^AI-only +$(awk '$1 == "ai" { print $2 }' "$WORK/expected") .* $ai_hours " "$WORK/text" ||
    fail "the text split does not show $ai_hours AI-only hours: $(grep '^AI-only ' "$WORK/text")"
echo "ok: the text split matches"

# ---- skeletons -----------------------------------------------------------------------------
OUT="$WORK/processes"
"$TANDEM" plan "$LOG" --out "$OUT" >"$WORK/out.txt" || fail "--out failed"
want=$(jq '[.tasks[] | select(.bucket != "human")] | length' "$WORK/plan.json")
got=$(find "$OUT" -name '*.yaml' | wc -l)
[ "$got" -eq "$want" ] || fail "--out wrote $got skeletons, expected $want (one per AI-only or hybrid task)"
[ "$(find "$OUT" -type f | wc -l)" -eq "$want" ] || fail "--out left other files: $(ls "$OUT")"
"$TANDEM" process validate "$OUT"/*.yaml >"$WORK/validate" 2>&1 || fail "tandem process validate: $(cat "$WORK/validate")"
[ "$(grep -c ': ok (process ' "$WORK/validate")" -eq "$want" ] || fail "validate: $(cat "$WORK/validate")"
echo "ok: $want skeletons, every one valid"
# Each skeleton: its process name, its allocation, its baseline minutes, its team's queue.
f="$OUT/match-supplier-invoices.yaml"
grep -q '^process: match-supplier-invoices$' "$f" || fail "$f: process name"
grep -q '^    allocation: ai ' "$f" || fail "$f: allocation"
grep -q '^  minutes_per_item: 6 ' "$f" || fail "$f: baseline minutes"
grep -q '^  error_rate: 0.05  # TODO' "$f" || fail "$f: error rate"
grep -q '^      queue: finance-ops ' "$f" || fail "$f: queue"
grep -q '^owner: .*# TODO' "$f" || fail "$f: owner placeholder"
grep -q '^    allocation: hybrid ' "$OUT/assess-water-damage-claims.yaml" || fail "the regulated task's skeleton is not hybrid"
[ ! -e "$OUT/close-accounts-after-a-bereavement.yaml" ] || fail "a human-only task got a skeleton"
echo "ok: skeleton contents"

# No overwriting without --force: exit 1, nothing changed.
before=$(cat "$OUT"/*.yaml | sha256sum)
echo "# edited by its owner" >>"$f"
edited=$(cat "$OUT"/*.yaml | sha256sum)
expect_fail 1 "yaml exists \(use --force to overwrite; nothing was written\)" -- \
    "$TANDEM" plan "$LOG" --out "$OUT"
[ "$(cat "$OUT"/*.yaml | sha256sum)" = "$edited" ] || fail "a refused --out changed files"
"$TANDEM" plan "$LOG" --out "$OUT" --force --json >"$WORK/forced.json" || fail "--force failed"
[ "$(cat "$OUT"/*.yaml | sha256sum)" = "$before" ] || fail "--force did not rewrite the skeletons"
jq -e --argjson n "$want" '.skeletons | length == $n' "$WORK/forced.json" >/dev/null ||
    fail "--json with --out: $(jq -c .skeletons "$WORK/forced.json" | head -c 300)"
echo "ok: --force rewrites, nothing is overwritten without it"

# ---- bad input: file:line, exit 1, nothing written ------------------------------------------
bad() { # bad NAME CONTENT PATTERN
    printf '%b' "$2" >"$WORK/$1"
    expect_fail 1 "$3" -- "$TANDEM" plan "$WORK/$1" --out "$WORK/bad-out"
    [ ! -e "$WORK/bad-out" ] || fail "$1: --out wrote something: $(ls -R "$WORK/bad-out")"
}
H='name,team,minutes,per_week,description,tags\n'
bad missing.csv 'name,team,minutes,description\nA,b,1,x\n' \
    '^tandem: .*missing.csv:1: missing column "per_week"'
bad misspelt.csv 'name,team,minutes,perweek,description\nA,b,1,2,x\n' \
    'misspelt.csv:1: unknown column "perweek" \(did you mean "per_week"\?'
bad negative.csv "${H}Sort post,desk,3,10,sort it,\nFile letters,desk,-5,10,file them,\n" \
    'negative.csv:3: column "minutes": "-5" is out of range'
bad number.csv "${H}Sort post,desk,3,ten,sort it,\n" \
    'number.csv:2: column "per_week": "ten" is not a number'
bad comma.csv "${H}Sort post,desk,\"2,5\",1,sort it,\n" \
    'comma.csv:2: column "minutes": "2,5" is not a number .*with a dot for decimals'
bad tags.csv "${H}Sort post,desk,3,1,sort it,ai-only human-only\n" \
    'tags.csv:2: column "tags": tags "ai-only" and "human-only" contradict'
bad empty.csv "$H" 'empty.csv: no tasks'
bad quote.csv "${H}Sort post,desk,3,1,\"sort it,\n" 'quote.csv:2'
[ ! -s "$WORK/out" ] || fail "stdout not empty on failure: $(cat "$WORK/out")"
expect_fail 1 "nothere.csv: cannot open" -- "$TANDEM" plan "$WORK/nothere.csv"
# --out on a file that is not a directory: refused before writing.
: >"$WORK/afile"
expect_fail 1 "is not a directory" -- "$TANDEM" plan "$LOG" --out "$WORK/afile"

# Usage errors: exit 2.
expect_fail 2 "name the task log FILE" -- "$TANDEM" plan
expect_fail 2 "unknown option --bogus" -- "$TANDEM" plan "$LOG" --bogus
expect_fail 2 "--force goes with --out" -- "$TANDEM" plan "$LOG" --force
expect_fail 2 "one task log at a time" -- "$TANDEM" plan "$LOG" "$LOG"
expect_fail 2 "needs a value" -- "$TANDEM" plan "$LOG" --out

echo "PASS: tandem plan"
