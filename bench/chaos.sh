#!/usr/bin/env bash
# Exactly once under random crashes (docs/reliability.md).
#
#   bench/chaos.sh [N] [KILLS] [--seed S]
#
# Submits N short jobs (default 1,000) to a controller and one agent, each a
# separate process, while KILLS times (default 10) at random moments a
# `kill -9` hits the controller, the agent or both, which are started again
# after a random short pause. Every job's task appends a line to a file of
# its own, so the jobs' own side effects are counted afterwards:
#   lost            a submission the client saw confirmed whose job never
#                   ended (or is gone)
#   twice           a job that ran more than once, or a submission that made
#                   more than one job
#   wrongly_failed  a job that did not end Succeeded although its one run
#                   exited 0
# Prints:  chaos jobs=N kills=K lost=L twice=T wrongly_failed=F seconds=S
# and exits 1 unless L = T = F = 0. Submissions retry with their own
# Idempotency-Key (icos submit --idempotency-key) until confirmed, as any
# client of icos should.
#
# ICOS_BIN picks the binary (default: the release build, then the debug one);
# ICOS_CLIENT_BIN, if set, the one that submits (to measure an older server
# with a client that retries).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
N=1000
KILLS=10
SEED=$RANDOM
pos=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) SEED=$2; shift 2 ;;
    *) pos+=("$1"); shift ;;
  esac
done
[ ${#pos[@]} -ge 1 ] && N=${pos[0]}
[ ${#pos[@]} -ge 2 ] && KILLS=${pos[1]}
if [ -z "${ICOS_BIN:-}" ]; then
  for b in "$here/build/release/src/cli/icos" "$here/build/debug/src/cli/icos"; do
    [ -x "$b" ] && { ICOS_BIN=$b; break; }
  done
fi
[ -x "${ICOS_BIN:-}" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 2; }
export ICOS_BIN
source "$here/tests/e2e/lib.sh"
RANDOM=$SEED
echo "chaos: seed $SEED, $N jobs, $KILLS kills, $ICOS_BIN" >&2

runs=$E2E_DIR/runs
mkdir -p "$runs"
start_server
start_agent node-a --cpus 4 --memory-mib 4096
agent_pid=$LAST_AGENT_PID
agent_flags=(--cpus 4 --memory-mib 4096)

# Each run of a job's task leaves a line in runs/<job id>.
cat > "$E2E_DIR/job.yaml" <<YAML
tasks:
  - command: ["sh", "-c", "echo \"\$ICOS_TASK_ID \$\$\" >> $runs/\$ICOS_JOB_ID; sleep 0.2"]
    resources: {cpu: 0.1, memory: 16Mi}
YAML

restart_server() {
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  sleep "0.$((RANDOM % 10))"
  start_server
}
restart_agent() {
  kill -KILL "$agent_pid" 2>/dev/null || true
  wait "$agent_pid" 2>/dev/null || true
  sleep "0.$((RANDOM % 10))"
  # Joined again in the background: it waits for a controller that is down.
  "$ICOS_BIN" agent --server "$ICOS_SERVER" --allow-root-tasks --token "$(cat "$ICOS_HOME/agent.token")" --node-name node-a \
    --work-dir "$E2E_DIR/agent-node-a" "${agent_flags[@]}" >> "$E2E_DIR/agent-node-a.log" 2>&1 &
  agent_pid=$!
  PIDS+=("$agent_pid")
}

begin=$(date +%s.%N)
# Submitters: four, each confirming its share, every submission with a key
# of its own that it keeps through its own retries.
submitter() {
  local first=$1 step=$2
  for ((i = first; i < N; i += step)); do
    until out=$("${ICOS_CLIENT_BIN:-$ICOS_BIN}" submit "$E2E_DIR/job.yaml" --idempotency-key "chaos-$SEED-$i" 2>>"$E2E_DIR/submit.err"); do
      sleep 0.2
    done
    echo "$i ${out#job }" | awk '{print $1, $2}' >> "$E2E_DIR/confirmed.$first"
  done
}
subs=()
for s in 0 1 2 3; do submitter "$s" 4 & subs+=($!); done

# The kills, spread over the submission phase and the time jobs take to drain.
expected_s=$((N / 25 + 5))
for ((k = 0; k < KILLS; k++)); do
  sleep "$(/usr/bin/python3 -c "import random; random.seed($SEED * 1000 + $k); print(round(random.uniform(0.2, 2.0 * $expected_s / max(1, $KILLS)), 2))")"
  case $((RANDOM % 3)) in
    0) echo "kill $k: controller" >&2; restart_server ;;
    1) echo "kill $k: agent" >&2; restart_agent ;;
    2) echo "kill $k: both" >&2; kill -KILL "$agent_pid" 2>/dev/null || true; restart_server; restart_agent ;;
  esac
done
for p in "${subs[@]}"; do wait "$p"; done
cat "$E2E_DIR"/confirmed.* > "$E2E_DIR/confirmed"

# Every confirmed job must end; then count what each one did.
list_jobs() {
  curl -sf -H "Authorization: Bearer $(cat "$ICOS_HOME/admin.token")" "$ICOS_SERVER/api/v1/jobs?limit=10000" > "$E2E_DIR/jobs.json"
}
all_ended() {
  list_jobs || return 1
  /usr/bin/python3 - "$E2E_DIR/jobs.json" <<'PY'
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
sys.exit(0 if all(j["state"] in ("Succeeded", "Failed", "Cancelled") for j in jobs) else 1)
PY
}
wait_until $((120 + N / 10)) all_ended || echo "chaos: not every job ended in time" >&2
end=$(date +%s.%N)
list_jobs
/usr/bin/python3 - "$E2E_DIR" "$N" "$KILLS" "$begin" "$end" <<'PY'
import json, os, subprocess, sys
d, n, kills, begin, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
jobs = {j["id"]: j for j in json.load(open(os.path.join(d, "jobs.json")))["jobs"]}
confirmed = {}
for line in open(os.path.join(d, "confirmed")):
    i, job = line.split()
    confirmed.setdefault(int(i), set()).add(int(job))
runs = {}
for f in os.listdir(os.path.join(d, "runs")):
    runs[int(f)] = [l.split()[0] for l in open(os.path.join(d, "runs", f)) if l.strip()]
lost = twice = wrongly_failed = 0
for i, ids in confirmed.items():
    if len(ids) > 1:
        twice += 1
        print(f"submission {i} made jobs {sorted(ids)}", file=sys.stderr)
    for job in ids:
        j = jobs.get(job)
        if j is None:
            out = subprocess.run([os.environ["ICOS_BIN"], "job", str(job), "-o", "json"], capture_output=True, text=True)
            j = json.loads(out.stdout) if out.returncode == 0 else None
        if j is None or j["state"] not in ("Succeeded", "Failed", "Cancelled"):
            lost += 1
            print(f"job {job} lost: {j['state'] if j else 'gone'}", file=sys.stderr)
            continue
        r = runs.get(job, [])
        if len(r) > 1:
            twice += 1
            print(f"job {job} ran {len(r)} times: {r}", file=sys.stderr)
        elif len(r) == 1 and j["state"] != "Succeeded":
            wrongly_failed += 1
            print(f"job {job} ran once but ended {j['state']}: {j.get('reason')}", file=sys.stderr)
        elif len(r) == 0:
            lost += 1
            print(f"job {job} never ran but ended {j['state']}: {j.get('reason')}", file=sys.stderr)
missing = n - len(confirmed)
if missing:
    lost += missing
    print(f"{missing} submissions never confirmed", file=sys.stderr)
print(f"chaos jobs={n} kills={kills} lost={lost} twice={twice} wrongly_failed={wrongly_failed} seconds={end - begin:.1f}")
sys.exit(0 if lost == twice == wrongly_failed == 0 else 1)
PY
