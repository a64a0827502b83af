#!/usr/bin/env bash
# Ctrl-C on `icos up` stops the node's tasks; that is the infrastructure's
# doing, not the job's: the next `icos up` runs the job again (its next
# attempt, no retry spent), instead of leaving it Failed.
source "$(dirname "$0")/lib.sh"
start_up
cat > "$E2E_DIR/long.yaml" <<'YAML'
name: long
tasks:
  - command: ["sleep", "300"]
YAML
id=$(submit "$E2E_DIR/long.yaml")
running() { [ "$(job_field "$id" state)" = Running ]; }
requeued() { running && [ "$(job_field "$id" attempt)" = 1 ]; }
wait_until 30 running || fail "job $id did not start"
kill -INT "$UP_PID"
wait "$UP_PID" || true
start_up
wait_until 60 requeued || fail "job $id was not requeued and run again: $(icos job "$id" 2>&1)"
icos job "$id" | grep -q "Requeued" || fail "no Requeued event: $(icos job "$id" 2>&1)"
icos cancel "$id" >/dev/null
echo "PASS up_requeue (job $id stopped by Ctrl-C on icos up ran again at the next start)"
