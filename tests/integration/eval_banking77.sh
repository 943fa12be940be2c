#!/usr/bin/env bash
# tandem eval on Banking77, train -> test: the learning core's quality, end to end through
# the real binary. The benchmark (bench/classify) checks the issue's targets and times;
# this test guards against regressions with a little room for floating-point differences
# between machines (accuracy 0.92 and coverage 0.65 are measured at 0.921 and 0.679).
TANDEM=$1
source "$(dirname "$0")/lib.bash"
DATA=$SRC/examples/support-triage/data

"$TANDEM" eval --train "$DATA/train.csv" --test "$DATA/test.csv" --label category --json \
    --save-model "$WORK/model.tdm" >"$WORK/result.json"
cat "$WORK/result.json"

# Exactly one JSON object with exactly the documented keys, in order.
[ "$(wc -l <"$WORK/result.json")" -eq 1 ] || fail "expected one line of JSON"
keys=$(json_keys <"$WORK/result.json" | tr '\n' ' ')
want="accuracy macro_f1 ece target_error delta threshold coverage selective_error n_train n_test n_classes train_seconds predict_per_second model_bytes "
[ "$keys" = "$want" ] || fail "keys: got [$keys], want [$want]"

get() { json_get "$1" <"$WORK/result.json"; }
expect_number accuracy "$(get accuracy)" ">=" 0.915
expect_number macro_f1 "$(get macro_f1)" ">=" 0.91
expect_number ece "$(get ece)" "<=" 0.03
expect_number coverage "$(get coverage)" ">=" 0.62
expect_number selective_error "$(get selective_error)" "<=" 0.0125
expect_number n_train "$(get n_train)" ">=" 10003
expect_number n_test "$(get n_test)" ">=" 3080
expect_number n_classes "$(get n_classes)" ">=" 77
expect_number threshold "$(get threshold)" "<=" 1
[ "$(get target_error)" = "0.01" ] || fail "target_error $(get target_error)"
[ "$(get delta)" = "0.05" ] || fail "delta $(get delta)"
[ -s "$WORK/model.tdm" ] || fail "no model file written"
size=$(stat -c %s "$WORK/model.tdm")
[ "$size" -eq "$(get model_bytes)" ] || fail "model file is $size bytes, JSON says $(get model_bytes)"
echo "ok: model file $size bytes"
