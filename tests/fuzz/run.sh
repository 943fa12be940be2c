#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build/fuzz and runs each for a bounded time,
# starting from a copy of its seed corpus (fuzz/corpus/<target>/) in a temporary directory so
# that the repository is not written to. Any crash, sanitizer report, leak, timeout or
# out-of-memory fails the run, and the input that caused it is kept under
# build/fuzz/artifacts/<target>/ (replay it with build/fuzz/fuzz/fuzz_<target> FILE).
#
#   tests/fuzz/run.sh                 the five targets, 15 s each (the test suite's stage)
#   tests/fuzz/run.sh rule table      only those
#   TDM_FUZZ_SECONDS=600 TDM_FUZZ_CORPUS=build/fuzz/corpus nice -n 19 tests/fuzz/run.sh intake
#                                     a long run that keeps what it learns in
#                                     build/fuzz/corpus/<target>/ (seeded from fuzz/corpus)
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${TDM_FUZZ_SECONDS:-15}
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(intake process table rule webhook)
for t in "${targets[@]}"; do
    [[ -d fuzz/corpus/$t ]] || { echo "fuzz: unknown target \"$t\" (expected intake, process, table, rule or webhook)" >&2; exit 2; }
done
command -v clang >/dev/null || { echo "fuzz: clang is missing: run scripts/deps.sh" >&2; exit 1; }

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DTDM_FUZZ=ON \
    -DTDM_TESTS=OFF >/dev/null
# fuzz_model is built too, so that it keeps compiling, but not run: see fuzz/README.md.
cmake --build build/fuzz -j"$jobs" --target fuzz_intake fuzz_process fuzz_table fuzz_rule \
    fuzz_webhook fuzz_model >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p build/fuzz/logs
failed=0
for t in "${targets[@]}"; do
    # libFuzzer adds what it finds to the first directory it is given.
    if [[ -n ${TDM_FUZZ_CORPUS:-} ]]; then
        mkdir -p "$TDM_FUZZ_CORPUS/$t"
        corpus=("$TDM_FUZZ_CORPUS/$t" "fuzz/corpus/$t")
    else
        cp -r "fuzz/corpus/$t" "$tmp/$t"
        corpus=("$tmp/$t")
    fi
    artifacts=build/fuzz/artifacts/$t
    mkdir -p "$artifacts"
    dict=()
    [[ -f fuzz/$t.dict ]] && dict=(-dict="fuzz/$t.dict")
    log=build/fuzz/logs/$t.log
    rc=0
    UBSAN_OPTIONS=print_stacktrace=1 "build/fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$artifacts/" "${corpus[@]}" </dev/null >"$log" 2>&1 || rc=$?
    # The last status line: "#123456 DONE cov: 812 ft: 3456 corp: 678/45Kb ...".
    status=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    printf 'fuzz_%-8s %6s runs  cov: %-5s corpus: %s\n' "$t" "${runs:-?}" \
        "$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")" \
        "$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$status")"
    if [[ $rc -ne 0 ]]; then
        failed=1
        echo "fuzz_$t FAILED (exit $rc); the end of its log ($log):" >&2
        tail -40 "$log" >&2
        for f in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
            echo "reproducer: $f (replay: build/fuzz/fuzz/fuzz_$t $f)" >&2
        done
    fi
done
exit $failed
