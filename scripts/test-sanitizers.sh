#!/usr/bin/env bash
# Builds the asan preset (ASan + UBSan) and runs the tests of the scheduling
# core, the store, the controller, the agent's runtime and the parity check
# under it. Any sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=(
  src/core/icos_core_test
  src/store/icos_store_test
  src/controller/icos_controller_test
  src/agent/icos_agent_runtime_test
  src/parity/icos_parity_test
)
targets=()
for t in "${tests[@]}"; do targets+=("$(basename "$t")"); done
cmake --preset asan >/dev/null
cmake --build --preset asan --target "${targets[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${tests[@]}"; do
  echo "== $t (asan, ubsan)"
  "build/asan/$t" --gtest_brief=1
done
echo "sanitizers: ${#tests[@]} test programs passed"
