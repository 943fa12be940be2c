#!/usr/bin/env bash
# Bad input to tandem eval: every mistake gets a clear message naming the place and the
# fix, exit status 1 for bad data and 2 for a bad command line, and nothing on stdout.
TANDEM=$1
source "$(dirname "$0")/lib.bash"

printf 'text,label\nhello there,greet\nbye now,leave\n"good\nmorning",greet\nsee you,leave\n' >"$WORK/ok.csv"
for i in $(seq 1 40); do
    printf 'hello friend %d,greet\ngoodbye friend %d,leave\n' "$i" "$i" >>"$WORK/ok.csv"
done

# Usage errors: exit 2.
expect_fail 2 "--train and --label are required" -- "$TANDEM" eval --label label
expect_fail 2 "either --test FILE or --test-fraction" -- "$TANDEM" eval --train "$WORK/ok.csv" --label label
expect_fail 2 "unknown option --bogus" -- "$TANDEM" eval --bogus
expect_fail 2 "--target-error: expected a number" -- "$TANDEM" eval --train x --label y --test-fraction 0.2 --target-error 2
expect_fail 2 "--seed: expected a whole number" -- "$TANDEM" eval --train x --label y --test-fraction 0.2 --seed -4
expect_fail 2 "--test-fraction: expected a number" -- "$TANDEM" eval --train x --label y --test-fraction abc
expect_fail 2 "unknown command \"evaluate\"" -- "$TANDEM" evaluate
expect_fail 2 "needs a value" -- "$TANDEM" eval --train

# Data errors: exit 1, message names file, line or column.
expect_fail 1 "missing.csv" -- "$TANDEM" eval --train "$WORK/missing.csv" --label label --test-fraction 0.2
expect_fail 1 "no column named \"category\"" -- "$TANDEM" eval --train "$WORK/ok.csv" --label category --test-fraction 0.2
expect_fail 1 "has no column \"body\"" -- "$TANDEM" eval --train "$WORK/ok.csv" --label label --fields body --test-fraction 0.2
expect_fail 2 "unknown kind \"date\"" -- "$TANDEM" eval --train "$WORK/ok.csv" --label label --fields text:date --test-fraction 0.2

printf 'text,label\nfine,a\n"broken,b\nnext,a\n' >"$WORK/quote.csv"
expect_fail 1 "quote.csv:3" -- "$TANDEM" eval --train "$WORK/quote.csv" --label label --test-fraction 0.2
printf 'text,label\nfine,a\ntoo,many,fields\n' >"$WORK/fields.csv"
expect_fail 1 "fields.csv:3: expected 2 fields" -- "$TANDEM" eval --train "$WORK/fields.csv" --label label --test-fraction 0.2
printf '{"text": "fine", "label": "a"}\n{"text": "broken", "label": \n' >"$WORK/bad.jsonl"
expect_fail 1 "bad.jsonl:2" -- "$TANDEM" eval --train "$WORK/bad.jsonl" --label label --test-fraction 0.2
printf '{"text": "fine", "label": "a"}\n["not", "an", "object"]\n' >"$WORK/array.jsonl"
expect_fail 1 "array.jsonl:2.*object" -- "$TANDEM" eval --train "$WORK/array.jsonl" --label label --test-fraction 0.2
printf 'text,other\nhello,greet\n' >"$WORK/test-cols.csv"
expect_fail 1 "test-cols.csv: no column named \"label\"" -- "$TANDEM" eval --train "$WORK/ok.csv" --test "$WORK/test-cols.csv" --label label

# Nothing reached stdout on any failure above (checked on the last one).
[ ! -s "$WORK/out" ] || fail "stdout not empty on failure: $(cat "$WORK/out")"

# The same data as JSON Lines works, and --help is complete.
for i in $(seq 1 40); do
    printf '{"text": "hello friend %d", "label": "greet"}\n{"text": "goodbye friend %d", "label": "leave", "extra": null}\n' "$i" "$i"
done >"$WORK/ok.jsonl"
"$TANDEM" eval --train "$WORK/ok.jsonl" --label label --test-fraction 0.25 --json >"$WORK/j.json"
expect_number accuracy "$(json_get accuracy <"$WORK/j.json")" ">=" 0.9
"$TANDEM" eval --help >"$WORK/help.txt"
for opt in --train --test --test-fraction --label --text --fields --target-error --delta --seed \
    --epochs --learning-rate --dropout --folds --hash-bits --json --save-model --dump-features \
    --predictions; do
    grep -q -- "$opt" "$WORK/help.txt" || fail "eval --help does not mention $opt"
done
echo "ok: eval --help names every option"
"$TANDEM" --help | grep -q "eval" || fail "tandem --help does not list eval"
"$TANDEM" --version | grep -q "^tandem [0-9]" || fail "tandem --version"
echo "ok: --help and --version"
