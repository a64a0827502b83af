#!/usr/bin/env bash
# Builds the asan preset (ASan + UBSan) and runs the tests of the scheduling
# core, the engine, the store, the controller, the agent's runtime and the
# parity check under it; then the tsan preset (ThreadSanitizer) and the tests
# of the parts that share state between threads: the store (group commit,
# reader pool), the engine and the controller (passes beside submits,
# heartbeats and watches). Any sanitizer report fails the run.
#
# Of the agent's runtime only the launcher's concurrency tests run under
# TSan (the agent starts tasks on several threads while another polls for
# exits): its other tests fork and exec real tasks (a fork bomb among them),
# which TSan's runtime slows past their limits in the children; ASan covers
# them.
set -euo pipefail
cd "$(dirname "$0")/.."

# run_under PRESET TEST...: builds the tests in the preset and runs each.
run_under() {
  local preset=$1
  shift
  local targets=()
  for t in "$@"; do targets+=("$(basename "$t")"); done
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" --target "${targets[@]}"
  for t in "$@"; do
    echo "== $t ($preset)"
    "build/$preset/$t" --gtest_brief=1
  done
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_under asan src/core/icos_core_test src/engine/icos_engine_test src/store/icos_store_test \
  src/controller/icos_controller_test src/agent/icos_agent_runtime_test src/parity/icos_parity_test

export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
run_under tsan src/store/icos_store_test src/engine/icos_engine_test src/controller/icos_controller_test
cmake --build --preset tsan --target icos_agent_runtime_test
echo "== src/agent/icos_agent_runtime_test LauncherConcurrency* (tsan)"
build/tsan/src/agent/icos_agent_runtime_test --gtest_brief=1 --gtest_filter='LauncherConcurrency*'
echo "sanitizers: passed (asan+ubsan: 6 test programs, tsan: 3 and the launcher's concurrency tests)"
