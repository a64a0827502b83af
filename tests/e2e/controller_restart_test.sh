#!/usr/bin/env bash
# Kill -9 the controller while jobs run and wait; start it again. No accepted
# job is lost, running tasks are reconciled with what the agent reports, and
# nothing runs twice.
source "$(dirname "$0")/lib.sh"
start_server
start_agent node-a --cpus 2
mkdir -p "$E2E_DIR/runs"
cat > "$E2E_DIR/job.yaml" <<YAML
tasks:
  - command: ["sh", "-c", "echo \$ICOS_TASK_ID >> $E2E_DIR/runs/\$ICOS_TASK_ID.\$\$; sleep 1.5"]
    resources: {cpu: 1, memory: 64Mi}
YAML
ids=()
for i in $(seq 6); do ids+=("$(submit "$E2E_DIR/job.yaml")"); done
wait_until 10 bash -c "ls $E2E_DIR/runs | grep -q ." || fail "nothing started"
# Keep submitting while the controller dies and comes back: every submit
# retries with its own Idempotency-Key until it is confirmed, so each one
# makes exactly one job, whether its first try was lost before or after the
# commit (a job is durable before its submit returns).
( for i in $(seq 40); do submit "$E2E_DIR/job.yaml" >> "$E2E_DIR/acked.txt" 2>>"$E2E_DIR/submit-errors.log" || true; done ) &
flood=$!
sleep 0.3
kill -KILL "$SERVER_PID"
sleep 0.5
start_server   # same port and data directory
wait "$flood" || true
for id in "${ids[@]}"; do
  icos wait "$id" --timeout 60 || { icos job "$id"; fail "job $id did not succeed after the restart"; }
done
# Each job has exactly one task attempt, and it ran exactly once.
for id in "${ids[@]}"; do
  n=$(ls "$E2E_DIR/runs" | grep -c "^j$id-") || true
  [ "$n" = 1 ] || fail "job $id ran $n times: $(ls "$E2E_DIR/runs")"
done
acked=$(grep -c . "$E2E_DIR/acked.txt" || true)
[ "$acked" = 40 ] || fail "only $acked of 40 submits were confirmed: $(cat "$E2E_DIR/submit-errors.log")"
icos jobs --all -o json > "$E2E_DIR/jobs.json"
total=$(/usr/bin/python3 -c "import json; print(len(json.load(open('$E2E_DIR/jobs.json'))['jobs']))")
[ "$total" = 46 ] || fail "$total jobs for 46 submits: a retried submit made a second job"
[ "$(sort "$E2E_DIR/acked.txt" | uniq -d)" = "" ] || fail "two submits were given the same job"
for id in $(grep . "$E2E_DIR/acked.txt"); do
  /usr/bin/python3 -c "import json,sys; ids={j['id'] for j in json.load(open('$E2E_DIR/jobs.json'))['jobs']}; sys.exit(0 if $id in ids else 1)" ||
    fail "job $id was acknowledged before the kill and is gone"
done
echo "PASS controller_restart (6 jobs each ran once; all $acked submits during the kill confirmed, each one job)"
