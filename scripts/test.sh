#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then builds and runs every
# test (unit, integration, and the workspace's browser tests in chromium) twice, once plain
# (with internal invariants checked) and once under AddressSanitizer and
# UndefinedBehaviorSanitizer; builds the release binary the demo uses; and runs the
# fuzz targets for 75 s in all.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh --test
jobs=$(nproc 2>/dev/null || echo 2)
# playwright-core and axe-core for the browser tests, at the versions tests/e2e pins.
npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error

echo "== build and test (invariants on)"
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTDM_ASSERTS=ON >/dev/null
cmake --build build/test -j"$jobs"
ctest --test-dir build/test --output-on-failure -j"$jobs"

echo "== release build (as scripts/demo.sh makes it: -O3 finds warnings -O2 does not)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTDM_TESTS=OFF >/dev/null
cmake --build build/release -j"$jobs"

echo "== build and test under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTDM_SANITIZE=ON >/dev/null
cmake --build build/asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build/asan --output-on-failure -j"$jobs"

echo "== fuzzing (75 s in all)"
tests/fuzz/run.sh

echo "== all tests passed"
