#!/usr/bin/env bash
# Builds and runs the standalone kernel tests (csrc/tests/test_*.cc: the templates
# of csrc/<kernel>.h against a naive reference, no XLA) under AddressSanitizer and
# UBSan, stopping at the first error. Exits non-zero if any test fails or any
# sanitizer reports.
#
#   scripts/sanitize.sh            # with -fsanitize=address,undefined
#   scripts/sanitize.sh --plain    # the same tests, -O3 and no sanitizers
#
# Environment: CXX (default g++), BUILD_DIR (default build/tests), JOBS (parallel
# compiles, default the number of CPUs).
set -euo pipefail

cd "$(dirname "$0")/.."
mode=sanitize
if [[ "${1:-}" == "--plain" ]]; then
  mode=plain
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--plain]" >&2
  exit 2
fi

CXX="${CXX:-g++}"
BUILD_DIR="${BUILD_DIR:-build/tests}/$mode"
JOBS="${JOBS:-$(nproc)}"
flags=(-std=c++20 -march=native -fno-math-errno -Wall -Icsrc -pthread)
if [[ "$mode" == sanitize ]]; then
  # Never -ffast-math (as CMakeLists.txt): the tests check non-finite results.
  flags+=(-fsanitize=address,undefined -fno-sanitize-recover=all
          -fno-omit-frame-pointer -g -O1)
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
else
  flags+=(-O3)
fi
mkdir -p "$BUILD_DIR"

tests=(csrc/tests/test_*.cc)
echo "building ${#tests[@]} tests ($mode) in $BUILD_DIR"
pids=()
for source in "${tests[@]}"; do
  name="$(basename "$source" .cc)"
  "$CXX" "${flags[@]}" "$source" -o "$BUILD_DIR/$name" &
  pids+=($!)
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
if (( status != 0 )); then
  echo "FAILED: a test did not compile" >&2
  exit 1
fi

failed=()
for source in "${tests[@]}"; do
  name="$(basename "$source" .cc)"
  if ! "$BUILD_DIR/$name"; then failed+=("$name"); fi
done
if (( ${#failed[@]} > 0 )); then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all ${#tests[@]} tests passed ($mode)"
