#!/usr/bin/env bash
# tandem eval on German credit: structured fields only, typed automatically, a stratified
# seeded split. It must beat the majority class (0.70).
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DATA=$SRC/examples/loan-screening/data

"$TANDEM" eval --train "$DATA/german.csv" --label credit --test-fraction 0.3 --seed 1 --json \
    >"$WORK/a.json"
cat "$WORK/a.json"
expect_number accuracy "$(json_get accuracy <"$WORK/a.json")" ">" 0.70
expect_number n_test "$(json_get n_test <"$WORK/a.json")" ">=" 300
expect_number n_classes "$(json_get n_classes <"$WORK/a.json")" ">=" 2

# The same seed gives the same result; the split is seeded, not random.
"$TANDEM" eval --train "$DATA/german.csv" --label credit --test-fraction 0.3 --seed 1 --json \
    >"$WORK/b.json"
[ "$(json_get accuracy <"$WORK/a.json")" = "$(json_get accuracy <"$WORK/b.json")" ] ||
    fail "same seed, different accuracy"
echo "ok: reproducible"

# Explicit field kinds work and the human-readable report names what it measured.
"$TANDEM" eval --train "$DATA/german.csv" --label credit --test-fraction 0.3 \
    --fields age:numeric,status,credit_amount:numeric,purpose:categorical >"$WORK/report.txt"
grep -q "accuracy" "$WORK/report.txt" || fail "report has no accuracy line"
grep -q "certified threshold" "$WORK/report.txt" || fail "report has no threshold line"
echo "ok: human-readable report"
