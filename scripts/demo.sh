#!/usr/bin/env bash
# The README's first command: installs what tandem needs, builds it, and runs its main job
# on the embedded defaults. Today that job is the learning core: train on the support-triage
# example (Banking77, 77 intents), certify the confidence above which the AI may decide
# alone at 1% error, and measure it on held-out tickets. The HTTP server, the SQLite store
# and the process files arrive with the engine (see the README's status section).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTDM_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)"

data=examples/support-triage/data
echo
echo "== tandem eval: support triage (Banking77), train on $data/train.csv, test on $data/test.csv"
build/release/tandem eval --train "$data/train.csv" --test "$data/test.csv" --label category \
    --target-error 0.01 --save-model build/release/support-triage.tdm

cat <<'NEXT'

What to try next:
  build/release/tandem eval --help
  build/release/tandem eval --train examples/loan-screening/data/german.csv --label credit \
      --test-fraction 0.3 --seed 1            # structured fields, typed automatically
  build/release/tandem eval --train examples/support-triage/data/train.csv \
      --test examples/support-triage/data/test.csv --label category --target-error 0.02 --json
  bench/classify                              # tandem against fastText and liblinear
The trained model was saved to build/release/support-triage.tdm.
NEXT
