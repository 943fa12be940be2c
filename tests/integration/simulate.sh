#!/usr/bin/env bash
# tandem simulate on a tiny data set whose outcome is known: two intents, each told apart by
# one word (tests/data/simulate/tiny.csv, 140 rows; every tenth message says "urgent", which
# the process always sends to a person). Checked exactly where the rules decide the number
# (all-human automates nothing; a fixed threshold of 0.5 decides every non-urgent item of a
# two-label step; perfect reviewers make no final error; minutes and hours follow from the
# answers), by inequality where learning decides it, plus determinism, the order changing
# with the seed, blocks of 1,000, a two-step process, four eyes, the HTML report and the
# option and data errors.
TANDEM=$1
source "$(dirname "$0")/lib.bash"
D=$SRC/tests/data/simulate
export TMPDIR=$WORK # the throwaway stores go here; the test checks they are gone

sim() { "$TANDEM" simulate --process "$D/process.yaml" --data "$D/tiny.csv" "$@"; }

# expect_eq NAME JQ FILE WANT: the jq expression's value (compact) must be WANT.
expect_eq() {
    local got
    got=$(jq -c "$2" "$3") || fail "$1: jq failed on $(head -c 300 "$3")"
    [ "$got" = "$4" ] || fail "$1 = $got, expected $4"
    echo "ok: $1 = $got"
}

# ---- warm start: 40 rows of history, 100 replayed, perfect reviewers ----------------------
sim --history 40 --reviewer-error 0 --strategies all-human,fixed:0.5,guaranteed --json \
    >"$WORK/warm.json" || fail "simulate failed"
expect_eq "top level" '[.process, .rows, .history, .items, .seed, .reviewer_minutes]' \
    "$WORK/warm.json" '["tiny-triage",140,40,100,1,2]'
expect_eq "strategy names" '[.strategies[].name]' "$WORK/warm.json" \
    '["all-human","fixed:0.5","guaranteed"]'
expect_eq "all-human" '.strategies[0] | [.items, .ai_share, .ai_error, .final_error,
    .reviewer_minutes, .hours_saved, .first_ai_item, .answers, [.blocks[] | del(.thresholds)]]' \
    "$WORK/warm.json" \
    '[100,0,null,0,200,0,null,100,[{"end":100,"ai_share":0,"ai_error":null}]]'
# Two labels: the top one always has confidence >= 0.5, so only the rule holds items back.
expect_eq "fixed:0.5" '.strategies[1] | [.ai_share, .ai_error, .final_error,
    .reviewer_minutes, .hours_saved, .answers, .ai_decisions]' "$WORK/warm.json" \
    '[0.9,0,0,20,3,10,90]'
FIRST=$(jq '.strategies[1].first_ai_item' "$WORK/warm.json")
expect_number "fixed:0.5 first AI item" "$FIRST" ">=" 1
expect_number "fixed:0.5 first AI item" "$FIRST" "<=" 11
# The certificate on 36 eligible rows of history lets the AI decide; it never errs here.
G=$(jq -c '.strategies[2]' "$WORK/warm.json")
expect_number "guaranteed ai_share" "$(jq '.ai_share' <<<"$G")" ">=" 0.5
expect_number "guaranteed ai_share" "$(jq '.ai_share' <<<"$G")" "<=" 0.9
expect_eq "guaranteed errors" '.strategies[2] | [.ai_error, .final_error]' "$WORK/warm.json" '[0,0]'
expect_eq "guaranteed minutes" '.strategies[2] | .reviewer_minutes == 2 * .answers and
    .hours_saved == (200 - .reviewer_minutes) / 60' "$WORK/warm.json" true
expect_eq "tail: the last 3,000, here all 100" '.strategies[1].tail' "$WORK/warm.json" \
    '{"items":100,"ai_share":0.9,"ai_error":0}'
expect_eq "steps state" '.strategies[2].steps[0] | [.step, .paused, (.threshold | type)]' \
    "$WORK/warm.json" '["sort",false,"number"]'
# The same again, byte for byte; one strategy at a time gives the same answer too.
sim --history 40 --reviewer-error 0 --strategies all-human,fixed:0.5,guaranteed --json \
    --jobs 1 >"$WORK/warm2.json" || fail "simulate failed"
cmp -s "$WORK/warm.json" "$WORK/warm2.json" || fail "same seed, different answers"
echo "ok: same seed, same JSON (with --jobs 1)"
[ -z "$(ls -A "$WORK" | grep tandem-sim || true)" ] || fail "throwaway stores left behind"
echo "ok: no throwaway store left in \$TMPDIR"

# Minutes per task given: reviewer minutes and hours saved follow.
sim --history 40 --reviewer-error 0 --reviewer-minutes 0.5 --strategies all-human --json \
    >"$WORK/minutes.json" || fail "simulate failed"
expect_eq "all-human at 0.5 min" '.strategies[0] | [.reviewer_minutes, .hours_saved]' \
    "$WORK/minutes.json" '[50,2.5]'

# Reviewers wrong half the time: the final error is theirs, and it is not zero.
sim --history 40 --reviewer-error 0.5 --strategies all-human --json >"$WORK/err.json" ||
    fail "simulate failed"
E=$(jq '.strategies[0].final_error' "$WORK/err.json")
expect_number "all-human final error at 50% reviewer error" "$E" ">=" 0.3
expect_number "all-human final error at 50% reviewer error" "$E" "<=" 0.7
expect_eq "wrong answers are final" '.strategies[0] | .final_wrong == (.final_error * 100 |
    round)' "$WORK/err.json" true

# ---- cold start: all 140 rows from no model ----------------------------------------------
sim --reviewer-error 0 --strategies all-human,fixed:0.5,guaranteed --json \
    >"$WORK/cold.json" || fail "simulate failed"
expect_eq "cold all-human" '.strategies[0] | [.items, .ai_share, .final_error, .first_ai_item]' \
    "$WORK/cold.json" '[140,0,0,null]'
# Item 1 has no model; after one answer the model knows one label and is sure of it.
FIRST=$(jq '.strategies[1].first_ai_item' "$WORK/cold.json")
expect_number "cold fixed:0.5 first AI item" "$FIRST" ">=" 2
expect_number "cold fixed:0.5 first AI item" "$FIRST" "<=" 12
expect_number "cold fixed:0.5 AI error (no guarantee)" \
    "$(jq '.strategies[1].ai_error' "$WORK/cold.json")" ">" 0.1
# No threshold before 25 checks (items 2 to 26: the first has no proposal), none is a check
# of a rule-held item, and what the AI then decides alone stays inside the 10% budget.
FIRST=$(jq '.strategies[2].first_ai_item' "$WORK/cold.json")
expect_number "cold guaranteed first AI item" "$FIRST" ">=" 27
expect_number "cold guaranteed first AI item" "$FIRST" "<=" 140
expect_number "cold guaranteed AI error" "$(jq '.strategies[2].ai_error' "$WORK/cold.json")" \
    "<=" 0.1

# The seed sets the order: another seed, another replay. With perfect reviewers and no
# audit sample, nothing but the order can tell two seeds apart.
sim --reviewer-error 0 --strategies guaranteed --seed 1 --json >"$WORK/seed1.json" ||
    fail "simulate failed"
sim --reviewer-error 0 --strategies guaranteed --seed 2 --json >"$WORK/seed2.json" ||
    fail "simulate failed"
expect_eq "seed 1 is the default" '.strategies[2]' "$WORK/cold.json" \
    "$(jq -c '.strategies[0]' "$WORK/seed1.json")"
if cmp -s <(jq -c '.strategies[0]' "$WORK/seed1.json") <(jq -c '.strategies[0]' "$WORK/seed2.json"); then
    fail "seeds 1 and 2 replayed alike: $(cat "$WORK/seed2.json")"
fi
echo "ok: seed 2 replays another order (first AI item and threshold $(jq -c '.strategies[0] |
    [.first_ai_item, .steps[0].threshold]' "$WORK/seed1.json") against $(jq -c \
    '.strategies[0] | [.first_ai_item, .steps[0].threshold]' "$WORK/seed2.json"))"

# ---- blocks of 1,000: 1,240 rows, 1,200 replayed -----------------------------------------
awk 'BEGIN { print "text,intent";
    for (i = 1; i <= 1240; i++)
        if (i % 2) print "\"question " i " about my invoice\",billing";
        else print "\"please reset my password, ticket " i "\",account" }' >"$WORK/big.csv"
"$TANDEM" simulate --process "$D/process.yaml" --data "$WORK/big.csv" --history 40 \
    --reviewer-error 0 --strategies all-human,guaranteed --json >"$WORK/big.json" ||
    fail "simulate failed"
expect_eq "all-human blocks" '[.strategies[0].blocks[] | del(.thresholds)]' "$WORK/big.json" \
    '[{"end":1000,"ai_share":0,"ai_error":null},{"end":1200,"ai_share":0,"ai_error":null}]'
expect_eq "guaranteed blocks add up" '.strategies[1] | [.blocks[].end] == [1000, 1200] and
    ((.blocks[0].ai_share * 1000 + .blocks[1].ai_share * 200) | round) == .ai_decisions' \
    "$WORK/big.json" true
expect_eq "the last block's threshold is the one at the end" \
    '.strategies[1] | .blocks[-1].thresholds == [.steps[0].threshold]' "$WORK/big.json" true

# ---- a second step answered by people, and four eyes ---------------------------------------
sed -e 's/^process: tiny-triage/process: tiny-two-steps/' "$D/process.yaml" >"$WORK/two.yaml"
cat >>"$WORK/two.yaml" <<'EOF'
  - id: urgency
    allocation: human
    owner: lead@example.com
    inputs: [text]
    output:
      field: urgency
      labels: [low, high]
    guardrails:
      queue: tiny
EOF
awk -F'",' 'NR == 1 { print "text,intent,urgency"; next }
    { print $0 "," ($1 ~ /urgent/ ? "high" : "low") }' "$D/tiny.csv" >"$WORK/two.csv"
"$TANDEM" simulate --process "$WORK/two.yaml" --data "$WORK/two.csv" --history 40 \
    --reviewer-error 0 --strategies fixed:0.5 --json >"$WORK/two.json" || fail "simulate failed"
# Every item meets a person at the second step: none is the AI's alone, none is wrong, and
# the reviewers answered 100 second steps and the 10 urgent first ones.
expect_eq "two steps" '.strategies[0] | [.ai_share, .first_ai_item, .final_error, .answers]' \
    "$WORK/two.json" '[0,null,0,110]'
sed -e 's/^      queue: tiny$/      four_eyes: always\n      queue: tiny/' "$D/process.yaml" \
    >"$WORK/four.yaml"
grep -q 'four_eyes: always' "$WORK/four.yaml" || fail "four.yaml"
"$TANDEM" simulate --process "$WORK/four.yaml" --data "$D/tiny.csv" --history 40 \
    --reviewer-error 0 --strategies all-human --json >"$WORK/four.json" || fail "simulate failed"
expect_eq "four eyes: two answers a task" '.strategies[0] | [.answers, .reviewer_minutes,
    .final_error]' "$WORK/four.json" '[200,400,0]'

# A second look: a hybrid step (a person answers every item, the AI's proposal beside it),
# reviewers who err 20% of the time. Without it, their mistakes are the final error; with
# it, a correction that contradicts a proposal of confidence 0.5 or more goes to a second
# simulated reviewer, who judges on their own (and declines when their answer differs, so
# the task is answered again), so most mistakes are caught, at the cost of more answers.
# With perfect reviewers nobody contradicts this perfect model: no second look at all. The
# all-human strategy is the baseline without AI: no second look there.
sed -e 's/^    allocation: ai$/    allocation: hybrid/' "$D/process.yaml" >"$WORK/hybrid.yaml"
sed -e 's/^      queue: tiny$/      second_look: 0.5\n      queue: tiny/' "$WORK/hybrid.yaml" \
    >"$WORK/look.yaml"
grep -q 'allocation: hybrid' "$WORK/look.yaml" && grep -q 'second_look: 0.5' "$WORK/look.yaml" ||
    fail "look.yaml"
for f in hybrid look; do
    "$TANDEM" simulate --process "$WORK/$f.yaml" --data "$D/tiny.csv" --history 40 \
        --reviewer-error 0.2 --strategies guaranteed,all-human --json >"$WORK/noisy-$f.json" ||
        fail "simulate failed"
done
expect_eq "second look, all-human as without it" '.strategies[1] | [.final_error, .answers]' \
    "$WORK/noisy-look.json" "$(jq -c '.strategies[1] | [.final_error, .answers]' "$WORK/noisy-hybrid.json")"
read -r e0 a0 < <(jq -r '.strategies[0] | "\(.final_error) \(.answers)"' "$WORK/noisy-hybrid.json")
read -r e1 a1 < <(jq -r '.strategies[0] | "\(.final_error) \(.answers)"' "$WORK/noisy-look.json")
awk -v e0="$e0" -v e1="$e1" -v a0="$a0" -v a1="$a1" \
    'BEGIN { exit !(e0 >= 0.1 && e1 < e0 / 2 && a0 == 100 && a1 > 100) }' ||
    fail "second look: final error $e0 -> $e1, answers $a0 -> $a1"
echo "ok: a second look cuts the final error of 20%-wrong reviewers from $e0 to $e1 ($a0 -> $a1 answers)"
"$TANDEM" simulate --process "$WORK/look.yaml" --data "$D/tiny.csv" --history 40 \
    --reviewer-error 0.2 --strategies guaranteed,all-human --json >"$WORK/noisy-look2.json" ||
    fail "simulate failed"
cmp -s "$WORK/noisy-look.json" "$WORK/noisy-look2.json" || fail "second look: not deterministic"
"$TANDEM" simulate --process "$WORK/look.yaml" --data "$D/tiny.csv" --history 40 \
    --reviewer-error 0 --strategies guaranteed --json >"$WORK/clean-look.json" ||
    fail "simulate failed"
expect_eq "second look, perfect reviewers" '.strategies[0] | [.final_error, .answers]' \
    "$WORK/clean-look.json" '[0,100]'

# ---- the table and the HTML report -------------------------------------------------------
sim --history 40 --reviewer-error 0 --html "$WORK/report.html" >"$WORK/table.txt" ||
    fail "simulate failed"
grep -Eq '^all-human +100 +0\.0% +- +0\.00% ' "$WORK/table.txt" ||
    fail "table: $(cat "$WORK/table.txt")"
grep -Eq '^fixed:0\.90 +100 +90\.0% ' "$WORK/table.txt" || fail "table: $(cat "$WORK/table.txt")"
grep -q '^guaranteed ' "$WORK/table.txt" || fail "table: $(cat "$WORK/table.txt")"
echo "ok: the table lists the default strategies"
[ "$(grep -c '<svg viewBox' "$WORK/report.html")" -eq 2 ] || fail "report: expected 2 charts"
[ "$(grep -c '<polyline' "$WORK/report.html")" -ge 3 ] || fail "report: expected lines"
if grep -Eq '(src|href)=|@import|url\(' "$WORK/report.html"; then
    fail "report: loads something from elsewhere"
fi
grep -q '<td>fixed:0.90</td><td>100</td><td>90.0%</td>' "$WORK/report.html" ||
    fail "report: no numbers table"
echo "ok: the HTML report has two inline charts, its numbers and nothing external"

# ---- option and data errors --------------------------------------------------------------
expect_fail 2 'unknown strategy "magic"' -- sim --strategies all-human,magic
expect_fail 2 'fixed:1.5.*above 0 and at most 1' -- sim --strategies fixed:1.5
expect_fail 2 'fixed:0.*above 0 and at most 1' -- sim --strategies fixed:0
expect_fail 2 'named twice' -- sim --strategies guaranteed,guaranteed
expect_fail 2 '^tandem: simulate: --history: .*140 rows' -- sim --history 140
expect_fail 2 '^tandem: --reviewer-error' -- sim --reviewer-error 1
expect_fail 2 '^tandem: --seed' -- sim --seed -1
expect_fail 2 'give --process FILE and --data' -- "$TANDEM" simulate --data "$D/tiny.csv"
expect_fail 2 'unknown option --frobnicate' -- sim --frobnicate
cut -d, -f1 "$D/tiny.csv" | sed 's/"$//; s/^"//' >"$WORK/nolabel.csv"
expect_fail 2 '^tandem: simulate: --data: .*nolabel.csv has no column "intent"' -- \
    "$TANDEM" simulate --process "$D/process.yaml" --data "$WORK/nolabel.csv"
sed '5s/,account$/,refund/' "$D/tiny.csv" >"$WORK/badlabel.csv"
expect_fail 1 'badlabel.csv:5: column "intent": "refund" is not one of step "sort"' -- \
    "$TANDEM" simulate --process "$D/process.yaml" --data "$WORK/badlabel.csv"
sed '7s/,account$/,/' "$D/tiny.csv" >"$WORK/nolabel7.csv"
expect_fail 1 'nolabel7.csv:7: column "intent" is empty' -- \
    "$TANDEM" simulate --process "$D/process.yaml" --data "$WORK/nolabel7.csv"
sed 's/max_error: 0.1/max_error: 2/' "$D/process.yaml" >"$WORK/bad.yaml"
expect_fail 1 'bad.yaml:[0-9]+: .*max_error' -- \
    "$TANDEM" simulate --process "$WORK/bad.yaml" --data "$D/tiny.csv"
[ -z "$(ls -A "$WORK" | grep tandem-sim || true)" ] || fail "throwaway stores left behind"
echo "ok: no throwaway store left after the errors"
echo "PASS"
