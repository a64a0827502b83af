#!/usr/bin/env bash
# The simulator on the full Microsoft Philly trace (82,247 jobs) on a 2,000-GPU
# cluster (250 nodes x 8) with the default policy. One figure per line:
#   sim_wall_s        wall seconds of the simulation itself (trace loaded)
#   process_wall_s    wall seconds of the whole `icos sim` process
#   events_per_s      arrivals + completions + re-queues per wall second
#   passes            scheduling passes run
#   peak_rss_mib      peak resident memory of the process
#   avg_jct_h         average JCT (for sanity; the lower bound is 3.65 h)
# Usage: bench/sim_philly.sh   (needs a release build; BIN=build dir, ICOS_TRACES=trace dir)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/release}
ICOS=$BIN/src/cli/icos
TRACE=${ICOS_TRACES:-$PWD/../shared/data/traces}/philly/philly.csv
[ -f "$TRACE" ] || { echo "no Philly trace at $TRACE (set ICOS_TRACES)" >&2; exit 1; }
work=$(mktemp -d /tmp/icos-sim.XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/time -v "$ICOS" sim --trace "philly:$TRACE" --cluster 250x8xV100 --policy default --json \
  > "$work/out.json" 2> "$work/time.txt"
python3 - "$work/out.json" "$work/time.txt" <<'PY'
import json, re, sys
r = json.loads(open(sys.argv[1]).readline())
t = open(sys.argv[2]).read()
def field(name):
    return re.search(re.escape(name) + r":\s*(\S+)", t).group(1)
wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
parts = [float(x) for x in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
print(f"sim_wall_s {r['wall_s']:.2f}")
print(f"process_wall_s {secs:.2f}")
print(f"events_per_s {r['events'] / r['wall_s']:.0f}")
print(f"passes {r['passes']}")
print(f"peak_rss_mib {int(field('Maximum resident set size (kbytes)')) / 1024:.0f}")
print(f"avg_jct_h {r['avg_jct_s'] / 3600:.2f}")
PY
