#!/usr/bin/env bash
# 1,000 trivial jobs (`true`, 1 CPU + 1 device each) on a one-node cluster
# with 2 CPUs and 8 (simulated) devices, from first submit to last completion.
# With --with-slurm, the same on Slurm (slurm-wlm: sched/backfill, cons_tres,
# 8 GRES GPUs; `sbatch -Q --gres=gpu:1 -c 1 --wrap true`) on this machine.
#
#   bench/trivial_jobs.sh [N] [--with-slurm[=M]]
# Slurm runs about 0.8 such jobs/s here, so --with-slurm=M runs only M jobs on
# it (default N) and the line reports both counts honestly.
# Ends with one line per system:  icos jobs=N seconds=S  (and  slurm jobs=N seconds=S)
# Needs a release build: cmake --preset release && cmake --build --preset release
set -euo pipefail
cd "$(dirname "$0")/.."
N=1000
[[ "${1:-}" =~ ^[0-9]+$ ]] && N=$1
with_slurm=0
slurm_n=$N
for a in "$@"; do
  case "$a" in
    --with-slurm) with_slurm=1 ;;
    --with-slurm=*) with_slurm=1; slurm_n=${a#--with-slurm=} ;;
  esac
done
BIN=${BIN:-$PWD/build/release}
ICOS=$BIN/src/cli/icos
LOAD=$BIN/bench/icos_load
[ -x "$ICOS" ] && [ -x "$LOAD" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }

work=$(mktemp -d /tmp/icos-trivial.XXXXXX)
export ICOS_HOME=$work/home
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ICOS" up --port "$port" --cpus 2 --devices sim/gpu:8 --work-dir "$work/agent" > "$work/up.log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "icos is up" "$work/up.log" && break; sleep 0.1; done
server="http://127.0.0.1:$port"
token=$(cat "$ICOS_HOME/admin.token")
cat > "$work/job.yaml" <<YAML
tasks:
  - command: ["true"]
    resources: {cpu: 1, memory: 64Mi, devices: 1}
YAML
start=$(date +%s.%N)
"$LOAD" submit --server "$server" --token "$token" --spec "$work/job.yaml" --count "$N" --threads 4 >&2
"$LOAD" wait --server "$server" --token "$token" --count "$N" --timeout 600 >&2
end=$(date +%s.%N)
succeeded=$(curl -s -H "Authorization: Bearer $token" "$server/api/v1/jobs?state=Succeeded&limit=100000" |
  /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
[ "$succeeded" = "$N" ] || echo "warning: only $succeeded of $N succeeded" >&2
icos_line=$(/usr/bin/python3 -c "print(\"icos jobs=%d seconds=%.2f\" % ($N, $end - $start))")

slurm_line=""
if [ $with_slurm = 1 ]; then
  slurm_line=$(bash bench/slurm_trivial_jobs.sh "$slurm_n" | tail -1)
fi
echo "$icos_line"
[ -z "$slurm_line" ] || echo "$slurm_line"
