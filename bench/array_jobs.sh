#!/usr/bin/env bash
# A job array of N trivial elements (`true`, 1 CPU + 1 device each) on the
# one-node cluster of bench/trivial_jobs.sh (2 CPUs, 8 simulated devices):
# how long the submission takes, and the rate its elements then run at
# (issue #19: 10,000 elements submitted in 1 s or less, run at 100 jobs/s or more).
#
#   bench/array_jobs.sh [N]     (default 10000)
#   PERF=1 bench/array_jobs.sh  also records a CPU profile of the controller (perf) while the elements run
#   TASK_CPU=0.25 bench/array_jobs.sh  asks 0.25 CPU per element (8 run at once instead of 2)
#   SPLIT=1 bench/array_jobs.sh  runs `icos server` and `icos agent` as two processes instead of `icos up`
# Ends with:  array jobs=N submit_s=S run_s=R jobs_per_s=J
# Needs a release build: cmake --preset release && cmake --build --preset release
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
BIN=${BIN:-$PWD/build/release}
ICOS=$BIN/src/cli/icos
LOAD=$BIN/bench/icos_load
[ -x "$ICOS" ] && [ -x "$LOAD" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }

work=$(mktemp -d /tmp/icos-array.XXXXXX)
export ICOS_HOME=$work/home
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ICOS_SERVER="http://127.0.0.1:$port"
if [ "${SPLIT:-0}" = 1 ]; then
  # The production layout: the controller and the node agent as two processes.
  "$ICOS" server --port "$port" --data-dir "$ICOS_HOME" > "$work/up.log" 2>&1 &
  up=$!
  trap 'kill -INT $up $agent 2>/dev/null; wait $up $agent 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 100); do grep -q listening "$work/up.log" && break; sleep 0.1; done
  "$ICOS" agent --server "$ICOS_SERVER" --token "$(cat "$ICOS_HOME/agent.token")" --node-name node-0 --allow-root-tasks \
    --cpus 2 --devices sim/gpu:8 --work-dir "$work/agent" > "$work/agent.log" 2>&1 &
  agent=$!
  for _ in $(seq 100); do grep -q joined "$work/agent.log" && break; sleep 0.1; done
else
  "$ICOS" up --port "$port" --cpus 2 --devices sim/gpu:8 --work-dir "$work/agent" > "$work/up.log" 2>&1 &
  up=$!
  trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 100); do grep -q "icos is up" "$work/up.log" && break; sleep 0.1; done
fi
token=$(cat "$ICOS_HOME/admin.token")
cat > "$work/job.yaml" <<YAML
tasks:
  - command: ["true"]
    resources: {cpu: ${TASK_CPU:-1}, memory: 64Mi, devices: 1}
YAML
t0=$(date +%s.%N)
"$ICOS" submit --array "0-$((N - 1))" "$work/job.yaml" > /dev/null
t1=$(date +%s.%N)
if [ "${PERF:-0}" = 1 ]; then
  perf record -g -o "$work/perf.data" -p "$up" -- sleep 20 2> /dev/null &
  perf_pid=$!
fi
"$LOAD" wait --server "$ICOS_SERVER" --token "$token" --count "$N" --timeout 1200 >&2
t2=$(date +%s.%N)
if [ "${PERF:-0}" = 1 ]; then
  wait "$perf_pid" || true
  perf report -i "$work/perf.data" --no-children --sort comm,dso,symbol -g none --stdio 2> /dev/null | grep "%" | head -60 | cut -c1-160 > "${PERF_OUT:-/tmp/array_jobs.perf.txt}" || true
  echo "profile: ${PERF_OUT:-/tmp/array_jobs.perf.txt}" >&2
fi
/usr/bin/python3 -c "print('array jobs=%d submit_s=%.2f run_s=%.2f jobs_per_s=%.1f' % ($N, $t1 - $t0, $t2 - $t1, $N / ($t2 - $t1)))"
