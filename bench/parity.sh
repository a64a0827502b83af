#!/usr/bin/env bash
# Parity of the simulator and the live cluster (issue #18): each trace runs
# (a) through the simulator and (b) through the real controller (its store,
# scheduling pass, binds, preemptions and moves) on a fake clock with
# simulated agents whose tasks take the trace's durations (src/parity). Same
# policy name in both. One line per trace and policy:
#   parity jobs=N policy=P identical=K/N max_jct_diff_s=D max_start_diff_s=S placement_diffs=M
# identical: same first start, same first placement (node and device indices),
# same finish within 1 s.
# Traces: the first 2,000 Philly jobs on 64 x 8 V100 (JOBS=...), and a
# Gavel-style heterogeneous synthetic trace (Gavel's throughputs, 5.6 jobs/h)
# on 36 V100 + 36 P100 + 36 K80.
# Usage: bench/parity.sh   (needs a release build; BIN=build dir, ICOS_TRACES=trace dir)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/release}
PARITY=$BIN/bench/icos_parity_bench
TRACES=${ICOS_TRACES:-$PWD/../shared/data/traces}
JOBS=${JOBS:-2000}
POLICIES=${POLICIES:-default,las,srtf,srtf-learned,fgd}
[ -x "$PARITY" ] || { echo "no $PARITY: cmake --build --preset release --target icos_parity_bench" >&2; exit 1; }
[ -f "$TRACES/philly/philly.csv" ] || { echo "no Philly trace under $TRACES (set ICOS_TRACES)" >&2; exit 1; }
status=0
"$PARITY" "philly:$TRACES/philly/philly.csv" 64x8xV100 "$JOBS" "$POLICIES" || status=$?
"$PARITY" "synthetic:$TRACES/gavel/simulation_throughputs.json" 36xV100,36xP100,36xK80 "$JOBS" "gavel,$POLICIES" ||
  status=$?
exit $status
