#!/usr/bin/env bash
# Checkpoint-aware preemption in the simulator (issue #20) on the full
# Microsoft Philly trace, nodes of 8 V100s, learned SRTF beside the default
# policy, for each cluster size and setting:
#   perfect   a preempted job keeps all its work (the simulator's old model;
#             30 s restore)
#   ckpt      a checkpoint every 1,800 s of work, 60 s restore: a stop loses
#             the work since the last checkpoint
#   ckpt+...  the same with a minimum run time before preemption (--min-run)
#             and/or a cap on preemptions per job and hour
#   +faults   nodes also fail: at Meta's Llama 3 rate (--device-mtbf llama3,
#             one interruption per 50,677 GPU-hours) or ten times it, each
#             down an hour; a failure loses the work since the last checkpoint;
#             +racks adds correlated failures (racks of 4 nodes, each failing
#             whole every 2,190 h: four times a year) and heavy-tailed repairs
#             (log-normal, sigma 1.5, mean 1 h)
# One row per (GPUs, setting, policy): mean JCT, preemptions, GPU-hours lost
# and their share of GPU-hours used.
# Usage: bench/sim_checkpoints.sh [GPUS...]   (default 480 560 672; needs a
# release build; BIN=build dir, ICOS_TRACES=trace dir, POLICIES=list,
# JOBS=N for the first N jobs only: JOBS=10000 bench/sim_checkpoints.sh 672)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/release}
ICOS=$BIN/src/cli/icos
TRACE=${ICOS_TRACES:-$PWD/../shared/data/traces}/philly/philly.csv
POLICIES=${POLICIES:-srtf-learned,default}
[ -f "$TRACE" ] || { echo "no Philly trace at $TRACE (set ICOS_TRACES)" >&2; exit 1; }
[ -x "$ICOS" ] || { echo "no icos at $ICOS (cmake --preset release && cmake --build --preset release --target icos)" >&2; exit 1; }
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(480 560 672)
SETTINGS=(
  "perfect|"
  "ckpt|--checkpoint-interval 1800 --restore-delay 60"
  "ckpt+min-run 1860|--checkpoint-interval 1800 --restore-delay 60 --min-run 1860"
  "ckpt+min-run 3600|--checkpoint-interval 1800 --restore-delay 60 --min-run 3600"
  "ckpt+cap 1/h|--checkpoint-interval 1800 --restore-delay 60 --max-interruptions-per-hour 1"
  "ckpt+min-run 1860+cap 1/h|--checkpoint-interval 1800 --restore-delay 60 --min-run 1860 --max-interruptions-per-hour 1"
  "ckpt+min-run 1860+faults llama3|--checkpoint-interval 1800 --restore-delay 60 --min-run 1860 --device-mtbf llama3"
  "ckpt+min-run 1860+faults 10x llama3|--checkpoint-interval 1800 --restore-delay 60 --min-run 1860 --device-mtbf 5068"
  "ckpt+min-run 1860+faults llama3+racks|--checkpoint-interval 1800 --restore-delay 60 --min-run 1860 --device-mtbf llama3 --rack 4:2190 --repair-times lognormal:1.5"
)
# SETTINGS_MATCHING=REGEX keeps only the settings whose name matches.
if [ -n "${SETTINGS_MATCHING:-}" ]; then
  kept=()
  for s in "${SETTINGS[@]}"; do [[ ${s%%|*} =~ $SETTINGS_MATCHING ]] && kept+=("$s"); done
  SETTINGS=("${kept[@]}")
fi
echo "| GPUs | setting | policy | mean JCT | preemptions | GPU-h lost | GPU-h used | lost share | node failures: runs ended, GPU-h lost |"
echo "|---|---|---|---|---|---|---|---|---|"
for gpus in "${SIZES[@]}"; do
  for s in "${SETTINGS[@]}"; do
    name=${s%%|*}
    flags=${s#*|}
    # shellcheck disable=SC2086  # flags are words
    "$ICOS" sim --trace "philly:$TRACE" --cluster "$((gpus / 8))x8xV100" --policy "$POLICIES" ${JOBS:+--jobs "$JOBS"} $flags --json |
      python3 -c '
import json, sys
gpus, name = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    r = json.loads(line)
    used, lost = r["gpu_hours_used"], r["gpu_hours_lost"]
    jct_h = r["avg_jct_s"] / 3600
    share = 100 * lost / used if used else 0
    policy, preemptions = r["policy"], r["preemptions"]
    n, stops, flost = r.get("faults", 0), r.get("fault_stops", 0), r.get("gpu_hours_lost_to_faults", 0)
    racks, down = r.get("rack_faults", 0), r.get("node_hours_down", 0)
    faults = f"{n}: {stops}, {flost:.0f}" if n else "none"
    if racks:
        faults += f" ({racks} racks; {down:.0f} node-h down)"
    print(f"| {gpus} | {name} | {policy} | {jct_h:.2f} h | {preemptions} | {lost:.0f} | {used:.0f} | {share:.2f}% | {faults} |")
' "$gpus" "$name"
  done
done
