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
kill -KILL "$SERVER_PID"
sleep 1
start_server   # same port and data directory
for id in "${ids[@]}"; do
  icos wait "$id" --timeout 60 || { icos job "$id"; fail "job $id did not succeed after the restart"; }
done
# Each job has exactly one task attempt, and it ran exactly once.
for id in "${ids[@]}"; do
  n=$(ls "$E2E_DIR/runs" | grep -c "^j$id-") || true
  [ "$n" = 1 ] || fail "job $id ran $n times: $(ls "$E2E_DIR/runs")"
done
[ "$(icos jobs -o json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')" = 6 ] || fail "jobs lost"
echo "PASS controller_restart (6 jobs, each ran once)"
