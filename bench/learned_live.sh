#!/usr/bin/env bash
# Learned run-time estimates on a real one-machine cluster (`icos up`, 4
# simulated GPUs, real processes): mean job completion time of a burst of
# 40 one-GPU jobs, 20 that run 1 s ("eval-N") and 20 that run 6 s
# ("train-N"), submitted at once in a shuffled order, under
#   fifo          submission order (what the cluster does without estimates)
#   sjf-learned   shortest first, by estimates learned from a warm-up of 20
#                 earlier runs of the same jobs (the specs give no estimate)
#   sjf-oracle    shortest first, every spec giving its true run time
# Each mode starts a fresh cluster and runs the same warm-up first.
# Prints one line per mode: mean, median and max JCT in seconds, and the
# makespan of the burst. Usage: bench/learned_live.sh   (needs a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
ICOS=${BIN:-$PWD/build/release}/src/cli/icos
work=$(mktemp -d /tmp/icos-ll.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -INT $pid 2>/dev/null; sleep 1; pkill -KILL -f "$work" 2>/dev/null; rm -rf "$work"' EXIT

spec() {  # spec NAME SECONDS ORACLE
  echo "name: $1"
  [ "$3" = 1 ] && echo "runtime_estimate: $2"
  printf 'tasks:\n  - command: ["sleep", "%s"]\n    resources: {cpu: 0.1, memory: 16Mi, devices: 1}\n' "$2"
}
# The burst's order: 20 of each, shuffled with a fixed seed.
order=$(/usr/bin/python3 -c 'import random; r=random.Random(7); k=["eval"]*20+["train"]*20; r.shuffle(k); print(" ".join(k))')

run_mode() {  # run_mode NAME ORDER ORACLE
  local home=$work/$1
  export ICOS_HOME=$home
  local port
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$ICOS" up --port "$port" --order "$2" --devices nvidia/A100:4 --work-dir "$home/agent" --no-cgroups \
    > "$work/$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do grep -q "icos is up" "$work/$1.log" && break; sleep 0.1; done
  export ICOS_SERVER=http://127.0.0.1:$port
  local ids=() n=0
  for k in $(seq 1 10); do
    ids+=("$(spec "eval-$k" 1 "$3" | "$ICOS" submit - | awk '{print $2}')")
    ids+=("$(spec "train-$k" 6 "$3" | "$ICOS" submit - | awk '{print $2}')")
  done
  for id in "${ids[@]}"; do "$ICOS" wait "$id" --timeout 300 > /dev/null; done
  ids=()
  for kind in $order; do
    n=$((n + 1))
    ids+=("$(spec "$kind-$((100 + n))" "$([ "$kind" = eval ] && echo 1 || echo 6)" "$3" | "$ICOS" submit - | awk '{print $2}')")
  done
  for id in "${ids[@]}"; do "$ICOS" wait "$id" --timeout 600 > /dev/null; done
  "$ICOS" jobs -o json | /usr/bin/python3 -c '
import json, statistics, sys
first, mode = int(sys.argv[1]), sys.argv[2]
jobs = [j for j in json.load(sys.stdin)["jobs"] if j["id"] >= first]
assert len(jobs) == 40 and all(j["state"] == "Succeeded" for j in jobs), jobs
jct = [(j["end_ms"] - j["submit_ms"]) / 1000 for j in jobs]
span = (max(j["end_ms"] for j in jobs) - min(j["submit_ms"] for j in jobs)) / 1000
print(f"{mode:12s} mean_jct_s {statistics.mean(jct):6.2f}  median_jct_s {statistics.median(jct):6.2f}  "
      f"max_jct_s {max(jct):6.2f}  makespan_s {span:6.2f}")' "${ids[0]}" "$1"
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
run_mode fifo fifo 0
run_mode sjf-learned sjf 0
run_mode sjf-oracle sjf 1
